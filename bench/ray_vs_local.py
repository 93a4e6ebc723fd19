"""The Ray engine against the local worker on the same queue on one machine: Ray's overhead.

Both engines start from the same pending photos (processed images already in the store, as after
upload) and run the same decode, features, embedding and stage head, writing to the same SQLite
database; the results are compared photo by photo. Ray's start-up (``ray.init``) is timed apart from
the run; a run includes starting the embedding actors.

Usage: python bench/ray_vs_local.py [--photos 96] [--megapixels 2] [--batch 32] [--write]
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
import time
from datetime import date
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def _queue(factory, store, n: int, megapixels: float) -> None:
    """Store ``n`` ingested synthetic photos as pending rows."""
    from sqlalchemy import select

    from cli.demo import seed_structure
    from core.models import Group, Photo
    from vision.ingest import ingest
    from vision.synthetic import make_photo

    with factory() as s:
        unit = seed_structure(s)[0]
        group = s.scalar(select(Group).where(Group.unit_id == unit.id))
        for k in range(n):
            p = ingest(make_photo(k % 5, 5000 + k, megapixels=megapixels))
            s.add(
                Photo(
                    sha256=p.sha256,
                    content_key=store.put(p.jpeg),
                    thumb_key=store.put(p.thumbnail_jpeg),
                    unit_id=unit.id,
                    group_id=group.id,
                    activity="teckning",
                    age_band=group.age_band,
                    term="2026-HT",
                    captured_on=date(2026, 10, 1),
                    source_format=p.source_format,
                    width=p.image.shape[1],
                    height=p.image.shape[0],
                )
            )
        s.commit()


def _results(factory) -> dict[str, np.ndarray]:
    from sqlalchemy import select

    from core.models import Embedding, StageEstimate

    with factory() as s:
        emb = {e.photo_id: np.frombuffer(e.vector, "<f4") for e in s.scalars(select(Embedding))}
        est = {e.photo_id: np.array(e.probs) for e in s.scalars(select(StageEstimate))}
    return {pid: np.concatenate([emb[pid], est[pid]]) for pid in emb}


def _reset(factory) -> None:
    from sqlalchemy import delete, update

    from core.models import Embedding, Photo, StageEstimate

    with factory() as s:
        s.execute(delete(StageEstimate))
        s.execute(delete(Embedding))
        s.execute(update(Photo).values(status="pending", processed_at=None))
        s.commit()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--photos", type=int, default=96)
    parser.add_argument("--megapixels", type=float, default=2.0, help="size of the uploads")
    parser.add_argument("--batch", type=int, default=32, help="photos per batch (both engines)")
    parser.add_argument("--write", action="store_true", help="write the results to BENCHMARKS.md")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="spira-bench-ray-", dir="/tmp"))
    os.environ["SPIRA_VAR_DIR"] = str(tmp / "var")
    os.environ.setdefault("SPIRA_DEVICE", "cpu")
    import ray

    from bench.common import write_section
    from core.config import get_settings
    from core.db import migrate, session_factory
    from core.storage import get_store
    from training.jobs import run_training
    from training.model_files import load_model
    from vision.ray_engine import run_ray
    from vision.worker import drain

    get_settings.cache_clear()
    migrate()
    factory = session_factory()
    store = get_store()
    print("training a small synthetic stage model ...", flush=True)
    run_training(factory, synthetic=True, n=100, seed=0, promote=True, log=lambda s: None)
    model = load_model()
    print(f"queueing {args.photos} photos of {args.megapixels} MP ...", flush=True)
    _queue(factory, store, args.photos, args.megapixels)
    cpus = len(os.sched_getaffinity(0))

    model.embedder().embed(
        [np.zeros((64, 64, 3), np.uint8)]
    )  # load + compile, as a running worker has
    t0 = time.perf_counter()
    assert drain(factory, store, model, batch=args.batch) == args.photos
    local_s = time.perf_counter() - t0
    local = _results(factory)
    _reset(factory)

    t0 = time.perf_counter()
    ray.init(
        num_cpus=cpus,
        include_dashboard=False,
        _temp_dir=str(tmp / "ray"),
        _node_ip_address="127.0.0.1",
        logging_level=logging.WARNING,
    )
    init_s = time.perf_counter() - t0
    try:
        t0 = time.perf_counter()
        assert run_ray(batch_size=args.batch, model=model) == args.photos
        ray_s = time.perf_counter() - t0
        first = _results(factory)
        _reset(factory)
        t0 = time.perf_counter()
        assert run_ray(batch_size=args.batch, model=model) == args.photos
        ray_warm_s = time.perf_counter() - t0
    finally:
        ray.shutdown()
    remote = _results(factory)
    assert set(remote) == set(local) == set(first)
    worst = max(float(np.abs(remote[p] - local[p]).max()) for p in local)
    shutil.rmtree(tmp, ignore_errors=True)

    n = args.photos
    body = f"""
`python bench/ray_vs_local.py --photos {n} --megapixels {args.megapixels} --batch {args.batch}`:
{n} queued photos (synthetic {args.megapixels}-MP uploads, ingested; the stored processed images are
the input), decode + drawing features + embedding (EfficientNet-Lite0, OpenVINO CPU) + stage head +
database writes (SQLite), batch {args.batch}, both engines on the same {cpus} CPUs.

| engine | wall time | photos/s |
|---|---:|---:|
| local worker (`vision.worker.drain`, embedder warm) | {local_s:.2f} s | **{n / local_s:.1f}** |
| Ray Data (`vision.ray_engine.run_ray`), first run incl. actor start | {ray_s:.2f} s | **{n / ray_s:.1f}** |
| Ray Data, second run on the same cluster | {ray_warm_s:.2f} s | **{n / ray_warm_s:.1f}** |

- Ray start-up (`ray.init`, local, {cpus} CPUs), once per job: {init_s:.1f} s.
- Ray's overhead on one machine: {ray_warm_s / local_s:.2f}x the local worker's time (second run).
- Results equal: max |difference| over embeddings and stage probabilities = {worst:.1e}.
- Ray pays off only with more machines or GPUs than one worker can use; on one machine the local
  worker is the engine to use.
"""
    print(body)
    if args.write:
        write_section("Ray engine", body)


if __name__ == "__main__":
    main()
