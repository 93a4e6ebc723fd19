"""Training jobs: from synthetic drawings, from a CSV of labelled files, or from stored annotations.

Every path goes through the same processing as a real upload (``vision.ingest``: orientation, sheet
correction, light flattening), then the same embedding and drawing features as serving, so the head
learns on exactly what it will see.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from sqlalchemy.orm import Session

from training.fit import FitResult, fit_stage_head
from training.registry import new_version, register
from training.report import html_report, model_card
from vision.embed import create_embedder
from vision.model import StageModel, drawing_features_batch, stage_inputs

Progress = Callable[[int, int], None]


@dataclass
class Described:
    """Embeddings and features of a labelled image set."""

    embeddings: np.ndarray
    features: np.ndarray
    stages: np.ndarray
    groups: np.ndarray
    backbone_version: str


def describe_images(
    images: Sequence[np.ndarray],
    *,
    backbone: str | None = None,
    weights: Path | None = None,
    progress: Progress | None = None,
) -> tuple[np.ndarray, np.ndarray, str]:
    """Embeddings (n, d), drawing features (n, f) and the backbone version, in batches.

    ``weights``: a weights file for the backbone (a fine-tuned one); default the configured."""
    embedder = create_embedder(backbone, weights=weights)
    emb_chunks, feat_chunks = [], []
    step = embedder.batch_size
    for start in range(0, len(images), step):
        batch = list(images[start : start + step])
        emb_chunks.append(embedder.embed(batch))
        feat_chunks.append(drawing_features_batch(batch))
        if progress:
            progress(min(start + step, len(images)), len(images))
    return np.concatenate(emb_chunks), np.concatenate(feat_chunks), embedder.version


def synthetic_images(
    n: int, seed: int, *, megapixels: float = 0.5, progress: Progress | None = None
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """``n`` photographed synthetic drawings (balanced stages) processed like uploads.

    Returns the processed images as the queue worker analyses them (``decode_stored`` of the
    stored JPEG), stages and groups (one group per drawing seed block of 5, so the
    cross-validation never sees near-duplicates on both sides).
    """
    from vision.ingest import ingest
    from vision.synthetic import make_photo
    from vision.worker import decode_stored

    images, stages, groups = [], [], []
    for i in range(n):
        stage = i % 5
        data = make_photo(stage, seed * 1_000_003 + i, megapixels=megapixels)
        # What the queue worker analyses: the stored JPEG's analysis copy (the same inputs).
        images.append(decode_stored(ingest(data).jpeg))
        stages.append(stage)
        groups.append(i // 5)
        if progress:
            progress(i + 1, n)
    return images, np.array(stages), np.array(groups)


def images_from_csv(path: Path, *, progress: Progress | None = None):
    """Read a CSV with columns ``path,stage[,group]`` (paths relative to the CSV) and ingest each file.

    Raises ValueError listing every bad row (missing file, bad stage, unreadable image).
    """
    import pandas as pd

    from vision.ingest import IngestError, ingest
    from vision.worker import decode_stored

    table = pd.read_csv(path, dtype=str)
    missing = {"path", "stage"} - set(table.columns)
    if missing:
        raise ValueError(
            f"{path}: missing column(s) {', '.join(sorted(missing))}; need path,stage[,group]"
        )
    problems, images, stages, groups = [], [], [], []
    for i, row in table.iterrows():
        line = int(str(i)) + 2  # header is line 1
        file = (Path(path).parent / str(row["path"])).resolve()
        try:
            stage = int(str(row["stage"]))
            if not 0 <= stage <= 4:
                raise ValueError
        except ValueError:
            problems.append(f"line {line}, column stage: {row['stage']!r} is not a stage 0–4")
            continue
        try:
            images.append(decode_stored(ingest(file.read_bytes()).jpeg))
        except FileNotFoundError:
            problems.append(f"line {line}, column path: {file} does not exist")
            continue
        except IngestError as err:
            problems.append(f"line {line}, column path: {file.name}: {err.message}")
            continue
        stages.append(stage)
        groups.append(str(row["group"]) if "group" in table.columns and row["group"] else str(file))
        if progress:
            progress(len(images), len(table))
    if problems:
        raise ValueError("cannot train from this file:\n" + "\n".join(problems))
    return images, np.array(stages), np.array(groups)


def fit_and_register(
    described: Described,
    *,
    data: dict,
    seed: int = 0,
    session: Session | None = None,
    backbone: str | None = None,
    human_agreement: dict | None = None,
    backbone_weights: Path | None = None,
    extra_metrics: dict | None = None,
    extra_params: dict | None = None,
    log: Callable[[str], None] | None = None,
) -> tuple[StageModel, FitResult]:
    """Fit the head with grouped CV, write the artifact (+ database row), return model and fit.

    ``backbone_weights``: a fine-tuned backbone the embeddings came from, copied into the model's
    folder so it is served with it. ``extra_metrics``/``extra_params`` join the model card's."""
    from core.config import get_settings
    from vision.features import FEATURE_NAMES

    X = stage_inputs(described.embeddings, described.features)
    fit = fit_stage_head(X, described.stages, described.groups, seed=seed, progress=log)
    if human_agreement:
        fit.metrics["human_agreement"] = human_agreement
    fit.metrics.update(extra_metrics or {})
    version = new_version(fit.head)
    model = StageModel(
        version=version,
        backbone=backbone or get_settings().backbone,
        backbone_version=described.backbone_version,
        feature_names=tuple(FEATURE_NAMES),
        head=fit.head,
    )
    params = {"l2": fit.l2, "temperature": round(fit.metrics["temperature"], 4), "seed": seed}
    params.update(extra_params or {})
    card = model_card(
        version, data=data, params=params, metrics=fit.metrics, backbone=model.backbone_version
    )
    report = html_report(
        version, card_md=card, metrics=fit.metrics, oof_probs=fit.oof_probs, y=described.stages
    )
    register(
        model,
        data=data,
        params=params,
        metrics=fit.metrics,
        card=card,
        report_html=report,
        session=session,
        backbone_weights=backbone_weights,
    )
    return model, fit
