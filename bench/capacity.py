"""Inputs for docs/scale.md: stored bytes per photo and PostgreSQL bytes per photo and per rating.

(a) Blob store: processed JPEG + thumbnail of synthetic 12-MP tablet photos after ingest.
(b) PostgreSQL (a throw-away server, as in the tests): photo + embedding + stage estimate rows for
    ``--rows`` photos with real embeddings and drawing features, and response sheets with ratings;
    ``pg_total_relation_size`` (table + indexes + TOAST) after VACUUM ANALYZE, divided by the rows.

Usage: python bench/capacity.py [--photos 16] [--rows 5000] [--write]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=16, help="12-MP photos ingested")
    parser.add_argument("--rows", type=int, default=5000, help="photo rows inserted in PostgreSQL")
    parser.add_argument("--write", action="store_true", help="write the results to BENCHMARKS.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="spira-capacity-", dir="/tmp"))
    os.environ["SPIRA_VAR_DIR"] = str(tmp / "var")
    os.environ.setdefault("SPIRA_DEVICE", "cpu")
    from sqlalchemy import insert, select, text

    from bench.common import write_section
    from cli.demo import seed_structure
    from core.config import get_settings
    from core.db import dispose_engines, get_engine, migrate, session_factory
    from core.models import Embedding, Group, Photo, Rating, ResponseSheet, StageEstimate
    from tests.postgres import PostgresServer, find_postgres_bin
    from vision.embed import create_embedder
    from vision.features import FEATURE_NAMES
    from vision.ingest import ingest
    from vision.model import drawing_features_batch
    from vision.stored import decode_stored
    from vision.synthetic import make_photo

    # (a) stored bytes
    uploads, jpegs, thumbs, images = [], [], [], []
    for k in range(args.photos):
        data = make_photo(k % 5, 8000 + k, megapixels=12.0)
        p = ingest(data)
        uploads.append(len(data))
        jpegs.append(len(p.jpeg))
        thumbs.append(len(p.thumbnail_jpeg))
        images.append(decode_stored(p.jpeg))
    emb = create_embedder().embed(images)
    feats = drawing_features_batch(images)

    # (b) database bytes
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        raise SystemExit("PostgreSQL server binaries not found; run scripts/postgres.sh")
    server = PostgresServer(bin_dir).start()
    try:
        url = server.url(server.create_database())
        os.environ["SPIRA_DATABASE_URL"] = url
        get_settings.cache_clear()
        migrate(url)
        factory = session_factory(url)
        with factory() as s:
            unit = seed_structure(s)[0]
            s.commit()
            group_id = s.scalars(select(Group.id).where(Group.unit_id == unit.id)).first()
            unit_id = unit.id
        n = args.rows
        photo_rows, emb_rows, est_rows = [], [], []
        for k in range(n):
            pid = f"{k:032x}"
            i = k % len(images)
            photo_rows.append(
                dict(
                    id=pid,
                    sha256=f"{k:064x}",
                    content_key=f"{k + 1:064x}",
                    thumb_key=f"{k + 2:064x}",
                    unit_id=unit_id,
                    group_id=group_id,
                    activity="teckning",
                    age_band="3-4",
                    term="2026-HT",
                    captured_on=date(2026, 10, 1),
                    status="done",
                    attempts=0,
                    source_format="jpeg",
                    width=1600,
                    height=1200,
                    faces_blurred=0,
                    sheet_found=True,
                )
            )
            emb_rows.append(
                dict(
                    photo_id=pid,
                    model_version="efficientnet_lite0@0123abcd",
                    dim=emb.shape[1],
                    vector=emb[i].astype("<f4").tobytes(),
                    features={nm: float(v) for nm, v in zip(FEATURE_NAMES, feats[i], strict=True)},
                )
            )
            p5 = np.random.default_rng(k).dirichlet(np.ones(5))
            est_rows.append(
                dict(
                    photo_id=pid,
                    model_version="stage-20261122000000-0123abcd",
                    **{f"p{j}": float(p5[j]) for j in range(5)},
                    expected_stage=float(p5 @ np.arange(5)),
                )
            )
        n_sheets = n // 2
        sheets = [
            dict(
                id=f"{k:032x}",
                case_id="case-shapes-1",
                unit_id=unit_id,
                group_id=group_id,
                age_band="3-4",
                term="2026-HT",
                rated_on=date(2026, 10, 1),
            )
            for k in range(n_sheets)
        ]
        ratings = [
            dict(
                sheet_id=f"{k:032x}", item=f"shapes-{j}", rater=f"rater-{r:02d}", level=(k + j) % 4
            )
            for k in range(n_sheets)
            for j in range(4)
            for r in range(2)
        ]
        with get_engine(url).begin() as conn:
            for table, rows in (
                (Photo, photo_rows),
                (Embedding, emb_rows),
                (StageEstimate, est_rows),
                (ResponseSheet, sheets),
                (Rating, ratings),
            ):
                for start in range(0, len(rows), 1000):
                    conn.execute(insert(table), rows[start : start + 1000])
        engine = get_engine(url)
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
            conn.execute(text("VACUUM ANALYZE"))
            size = {
                t: conn.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
                for t in ("photo", "embedding", "stage_estimate", "response_sheet", "rating")
            }
            version = conn.execute(text("SHOW server_version")).scalar_one()
        dispose_engines()
    finally:
        server.stop()
        shutil.rmtree(tmp, ignore_errors=True)

    per_photo = {t: size[t] / n for t in ("photo", "embedding", "stage_estimate")}
    db_photo = sum(per_photo.values())
    body = f"""
`python bench/capacity.py --photos {args.photos} --rows {n}`: inputs for docs/scale.md.

(a) Blob store, {args.photos} synthetic 12-MP photos (4000×3000 JPEG, mean upload
{np.mean(uploads) / 1e6:.2f} MB) through `vision.ingest`: processed JPEG mean
**{np.mean(jpegs) / 1024:.0f} KiB** (max {max(jpegs) / 1024:.0f}), thumbnail mean
**{np.mean(thumbs) / 1024:.1f} KiB**; together **{(np.mean(jpegs) + np.mean(thumbs)) / 1024:.0f} KiB per photo**.

(b) PostgreSQL {version}, {n} photos with real embeddings ({emb.shape[1]} float32) and
{len(FEATURE_NAMES)} drawing features, one stage estimate each; `pg_total_relation_size` (table +
indexes + TOAST) after VACUUM ANALYZE:

| table | bytes per photo |
|---|---:|
| photo | {per_photo["photo"]:.0f} |
| embedding (vector + features JSON) | {per_photo["embedding"]:.0f} |
| stage_estimate (one model version) | {per_photo["stage_estimate"]:.0f} |
| **together** | **{db_photo:.0f}** |

Assessment: {n_sheets} response sheets with {len(ratings)} ratings (4 rubric items × 2 raters):
{size["response_sheet"] / n_sheets:.0f} bytes per sheet, {size["rating"] / len(ratings):.0f} bytes per rating.
"""
    print(body)
    if args.write:
        write_section("Capacity inputs", body)


if __name__ == "__main__":
    main()
