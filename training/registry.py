"""The model registry: a folder per version under the models directory plus a database row.

Files: ``head.npz`` and ``model.json`` (what serving loads), ``card.md`` (the model card) and
``report.html`` (metrics with plots). The promoted version is recorded in the database and mirrored in
the file ``PROMOTED`` so that ``spira stages`` can score files without a database.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import Embedding, ModelVersion, StageEstimate
from vision.model import StageModel
from vision.stages import OrdinalStageHead

PROMOTED_FILE = "PROMOTED"


def code_version() -> str:
    """The git commit of the running code, or "unknown" outside a checkout."""
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def new_version(head: OrdinalStageHead, prefix: str = "stage") -> str:
    """A sortable, unique version string: ``stage-YYYYmmddHHMMSS-<hash of the weights>``."""
    digest = hashlib.sha256(head.coef_.tobytes() + head.thresholds_.tobytes()).hexdigest()[:8]
    return f"{prefix}-{datetime.now(UTC):%Y%m%d%H%M%S}-{digest}"


def models_dir() -> Path:
    return get_settings().models_path


def register(
    model: StageModel,
    *,
    data: dict,
    params: dict,
    metrics: dict,
    card: str,
    report_html: str,
    session: Session | None = None,
) -> Path:
    """Write the model's files and (when a session is given) its database row; returns its folder."""
    folder = models_dir() / model.version
    info = {"data": data, "params": params, "metrics": metrics, "code_version": code_version()}
    info["created_at"] = datetime.now(UTC).isoformat()
    model.save(folder, extra=info)
    (folder / "card.md").write_text(card)
    (folder / "report.html").write_text(report_html)
    if session is not None:
        session.merge(
            ModelVersion(
                version=model.version,
                backbone=model.backbone_version,
                path=str(folder),
                data=data,
                params=params,
                metrics=metrics,
                code_version=info["code_version"],
            )
        )
        session.flush()
    return folder


def sync_from_files(session: Session) -> int:
    """Register in the database every model folder that has no row yet (e.g. trained without one)."""
    known = set(session.scalars(select(ModelVersion.version)))
    added = 0
    root = models_dir()
    if not root.exists():
        return 0
    for meta_path in sorted(root.glob("*/model.json")):
        meta = json.loads(meta_path.read_text())
        if meta["version"] in known:
            continue
        session.add(
            ModelVersion(
                version=meta["version"],
                backbone=meta["backbone_version"],
                path=str(meta_path.parent),
                data=meta.get("data", {}),
                params=meta.get("params", {}),
                metrics=meta.get("metrics", {}),
                code_version=meta.get("code_version", "unknown"),
            )
        )
        added += 1
    promoted = promoted_version_from_files()
    if promoted:
        for row in session.scalars(select(ModelVersion)):
            row.promoted = row.version == promoted
    session.flush()
    return added


def list_models() -> list[dict]:
    """Every model folder's metadata (newest first), with ``promoted`` set."""
    root = models_dir()
    promoted = promoted_version_from_files()
    out = []
    for meta_path in root.glob("*/model.json") if root.exists() else []:
        meta = json.loads(meta_path.read_text())
        meta["promoted"] = meta["version"] == promoted
        meta["path"] = str(meta_path.parent)
        out.append(meta)
    return sorted(out, key=lambda m: m.get("created_at", ""), reverse=True)


def promoted_version_from_files() -> str | None:
    path = models_dir() / PROMOTED_FILE
    return path.read_text().strip() or None if path.exists() else None


def load_model(version: str | None = None) -> StageModel:
    """Load ``version`` (default: the promoted one). Raises FileNotFoundError saying what to do."""
    version = version or promoted_version_from_files()
    if not version:
        raise FileNotFoundError(
            f"no stage model is promoted in {models_dir()}; run `spira train --synthetic` "
            "(or train on real labels) and `spira models promote VERSION`"
        )
    folder = models_dir() / version
    if not folder.exists():
        known = ", ".join(m["version"] for m in list_models()) or "none"
        raise FileNotFoundError(f"model {version} not found in {models_dir()}; known: {known}")
    return StageModel.load(folder)


def promote(version: str, *, session: Session | None = None, batch: int = 2048) -> int:
    """Put ``version`` into service and re-score stored photos from their stored embeddings.

    No image is decoded again: the new head runs on the embeddings and drawing features saved when the
    photos were processed (from the backbone version the model was trained on). Returns the number of
    photos re-scored.
    """
    model = load_model(version)
    rescored = 0
    if session is not None:
        for row in session.scalars(select(ModelVersion)):
            row.promoted = row.version == version
            row.promoted_at = datetime.now(UTC) if row.version == version else row.promoted_at
        if session.get(ModelVersion, version) is None:
            sync_from_files(session)
            session.get(ModelVersion, version).promoted = True  # type: ignore[union-attr]
        rescored = rescore_stored(session, model, batch=batch)
        session.flush()
    path = models_dir() / PROMOTED_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(version)
    tmp.replace(path)
    return rescored


def rescore_stored(session: Session, model: StageModel, *, batch: int = 2048) -> int:
    """Write ``model``'s estimates for every stored embedding of its backbone version."""
    done = set(
        session.scalars(
            select(StageEstimate.photo_id).where(StageEstimate.model_version == model.version)
        )
    )
    rows = session.execute(
        select(Embedding.photo_id, Embedding.vector, Embedding.features).where(
            Embedding.model_version == model.backbone_version
        )
    ).all()
    rows = [r for r in rows if r.photo_id not in done]
    for start in range(0, len(rows), batch):
        chunk = rows[start : start + batch]
        emb = np.stack([np.frombuffer(r.vector, dtype="<f4") for r in chunk])
        feats = np.array([[r.features[name] for name in model.feature_names] for r in chunk])
        scores = model.score_described(emb, feats)
        for r, p, e in zip(chunk, scores.probs, scores.expected, strict=True):
            session.add(estimate_row(r.photo_id, model.version, p, float(e)))
    return len(rows)


def estimate_row(photo_id: str, version: str, probs: np.ndarray, expected: float) -> StageEstimate:
    p = [float(x) for x in probs]
    return StageEstimate(
        photo_id=photo_id,
        model_version=version,
        p0=p[0],
        p1=p[1],
        p2=p[2],
        p3=p[3],
        p4=p[4],
        expected_stage=expected,
    )
