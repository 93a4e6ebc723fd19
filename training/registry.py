"""The model registry: a folder per version under the models directory plus a database row.

Files: ``head.npz`` and ``model.json`` (what serving loads), ``card.md`` (the model card) and
``report.html`` (metrics with plots). The promoted version is recorded in the database and mirrored in
the file ``PROMOTED`` so that ``spira stages`` can score files without a database.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import subprocess
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Embedding, ModelVersion, Photo, StageEstimate
from core.storage import BlobStore, get_store
from training.finetune import check_cpu_parity, parity_probes
from training.model_files import (
    PROMOTED_FILE,
    load_model,
    models_dir,
    promoted_version_from_files,
)
from vision.model import BACKBONE_FILE, StageModel, drawing_features_batch
from vision.stages import DrawingAgeHead, OrdinalStageHead
from vision.stored import decode_stored
from vision.worker import estimate_row

log = logging.getLogger(__name__)


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


def new_version(head: OrdinalStageHead | DrawingAgeHead, prefix: str = "stage") -> str:
    """A sortable, unique version string: ``stage-YYYYmmddHHMMSS-<hash of the weights>``
    (``age-…`` for a model with a drawing-age head only)."""
    h = hashlib.sha256()
    for value in vars(head).values():
        if isinstance(value, np.ndarray):
            h.update(value.tobytes())
    digest = h.hexdigest()[:8]
    return f"{prefix}-{datetime.now(UTC):%Y%m%d%H%M%S}-{digest}"


def register(
    model: StageModel,
    *,
    data: dict,
    params: dict,
    metrics: dict,
    card: str,
    report_html: str,
    session: Session | None = None,
    backbone_weights: Path | None = None,
) -> Path:
    """Write the model's files and (when a session is given) its database row; returns its folder.

    ``backbone_weights``: a fine-tuned backbone's weights, copied into the folder
    (``backbone.safetensors``) so the model is served with them."""
    folder = models_dir() / model.version
    info: dict = {
        "data": data,
        "params": params,
        "metrics": metrics,
        "code_version": code_version(),
    }
    info["created_at"] = datetime.now(UTC).isoformat()
    info["fine_tuned"] = backbone_weights is not None
    model.save(folder, extra=info)
    if backbone_weights is not None:
        shutil.copyfile(backbone_weights, folder / BACKBONE_FILE)
    model.folder = folder
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


def promote(
    version: str,
    *,
    session: Session | None = None,
    batch: int = 2048,
    store: BlobStore | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Put ``version`` into service and re-score stored photos from their stored embeddings.

    For a model on the backbone already in service no image is decoded again: the new head runs on
    the embeddings and drawing features saved when the photos were processed. A fine-tuned model
    brings its own backbone: its CPU runtime is first checked against PyTorch (parity, see
    :func:`training.finetune.check_cpu_parity`; a failure refuses the promotion), then each stored
    processed image lacking that backbone's embedding is embedded once (``progress(done, total)``)
    and kept, so promoting it again later costs nothing. Returns the number of photos re-scored.
    """
    model = load_model(version)
    if model.head is None:
        raise RuntimeError(
            f"model {version} has no stage head (it was trained on ages alone), so it cannot score "
            "photos for unit profiles; use it with `spira stages --model` for drawing ages, or "
            "train with a stage column"
        )
    if model.fine_tuned:
        weights = model.backbone_weights()
        assert weights is not None
        check_cpu_parity(model.backbone, weights, parity_probes())
    rescored = 0
    if session is not None:
        if model.fine_tuned:
            embed_stored(session, model, store, progress=progress)
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


def embed_stored(
    session: Session,
    model: StageModel,
    store: BlobStore | None = None,
    *,
    batch: int = 32,
    progress: Callable[[int, int], None] | None = None,
) -> int:
    """Embed, with ``model``'s backbone, every processed photo that has no embedding from it yet;
    the drawing features are copied from the photo's earlier embedding (they do not depend on the
    backbone). Returns the number embedded; unreadable stored images are skipped and logged."""
    store = store or get_store()
    have = select(Embedding.photo_id).where(Embedding.model_version == model.backbone_version)
    photos = list(
        session.scalars(
            select(Photo)
            .where(Photo.status == "done", Photo.id.not_in(have))
            .order_by(Photo.created_at, Photo.id)
        )
    )
    embedder = model.embedder()
    done = 0
    for start in range(0, len(photos), batch):
        chunk, images = [], []
        for photo in photos[start : start + batch]:
            try:
                images.append(decode_stored(store.get(photo.content_key)))
                chunk.append(photo)
            except (OSError, ValueError) as err:
                log.warning(
                    "photo %s: stored image unreadable (%s); not re-embedded", photo.id, err
                )
        if chunk:
            vectors = embedder.embed(images)
            earlier = {
                e.photo_id: e.features
                for e in session.scalars(
                    select(Embedding).where(Embedding.photo_id.in_([p.id for p in chunk]))
                )
            }
            missing = [i for i, p in enumerate(chunk) if p.id not in earlier]
            computed = drawing_features_batch([images[i] for i in missing])
            for i, values in zip(missing, computed, strict=True):
                earlier[chunk[i].id] = {
                    n: float(v) for n, v in zip(model.feature_names, values, strict=True)
                }
            for photo, vector in zip(chunk, vectors, strict=True):
                session.add(
                    Embedding(
                        photo_id=photo.id,
                        model_version=embedder.version,
                        dim=vectors.shape[1],
                        vector=vector.astype("<f4").tobytes(),
                        features=earlier[photo.id],
                    )
                )
            session.flush()
        done += len(chunk)
        if progress:
            progress(min(start + batch, len(photos)), len(photos))
    return done


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
