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
import pandas as pd
from sqlalchemy.orm import Session

from core.config import get_settings
from training.age import CANDIDATES, fit_age_head
from training.fit import FitResult, fit_stage_head
from training.registry import new_version, register
from training.report import html_report, model_card
from training.stage_age import compare_stage_with_age
from vision.embed import create_embedder
from vision.features import FEATURE_NAMES
from vision.ingest import IngestError, ingest
from vision.model import StageModel, drawing_features_batch, stage_inputs
from vision.stored import decode_stored
from vision.synthetic import make_labelled_photo

Progress = Callable[[int, int], None]


@dataclass
class Described:
    """Embeddings and features of a labelled image set; ``stages`` and/or ``ages`` (None where
    the labels have no such column)."""

    embeddings: np.ndarray
    features: np.ndarray
    stages: np.ndarray | None
    groups: np.ndarray
    backbone_version: str
    ages: np.ndarray | None = None


@dataclass
class Labelled:
    """Processed images with their labels: stages (0–4) and/or ages (years), and groups."""

    images: list[np.ndarray]
    stages: np.ndarray | None
    ages: np.ndarray | None
    groups: np.ndarray


#: Ages (years) a drawing in the CSV may carry: children old enough to hold a pen, of preschool age.
AGE_RANGE = (1.0, 10.0)


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
    n: int,
    seed: int,
    *,
    megapixels: float = 0.5,
    medium: str | None = "mixed",
    progress: Progress | None = None,
) -> tuple[list[np.ndarray], np.ndarray, np.ndarray]:
    """``n`` synthetic drawings (balanced stages) processed like uploads: images, stages, groups.

    See :func:`synthetic_labelled` (this drops the ages)."""
    data = synthetic_labelled(n, seed, megapixels=megapixels, medium=medium, progress=progress)
    assert data.stages is not None
    return data.images, data.stages, data.groups


def synthetic_labelled(
    n: int,
    seed: int,
    *,
    megapixels: float = 0.5,
    medium: str | None = "mixed",
    progress: Progress | None = None,
) -> Labelled:
    """``n`` synthetic drawings (balanced stages, each with its child's age) processed like uploads.

    ``medium``: one of :data:`vision.synthetic.MEDIA`, or "mixed" (each drawing's medium, colour
    or monochrome, scan or photo drawn at random, so a model learns cues that do not depend on the
    pen). Returns the processed images as the queue worker analyses them (``decode_stored`` of the
    stored JPEG), stages, ages and groups (one group per drawing seed block of 5, so the
    cross-validation never sees near-duplicates on both sides).
    """
    images, stages, ages, groups = [], [], [], []
    for i in range(n):
        stage = i % 5
        photo = make_labelled_photo(
            stage, seed * 1_000_003 + i, megapixels=megapixels, medium=medium
        )
        # What the queue worker analyses: the stored JPEG's analysis copy (the same inputs).
        images.append(decode_stored(ingest(photo.data).jpeg))
        stages.append(stage)
        ages.append(photo.age)
        groups.append(i // 5)
        if progress:
            progress(i + 1, n)
    return Labelled(images, np.array(stages), np.array(ages), np.array(groups))


def images_from_csv(path: Path, *, progress: Progress | None = None):
    """Images, stages and groups of a CSV with a stage column (see :func:`labelled_from_csv`)."""
    data = labelled_from_csv(path, progress=progress)
    if data.stages is None:
        raise ValueError(f"{path}: no stage column")
    return data.images, data.stages, data.groups


def labelled_from_csv(path: Path, *, progress: Progress | None = None) -> Labelled:
    """Read a CSV with columns ``path`` and at least one of ``stage`` (0–4) and ``age`` (years,
    decimal), optionally ``group`` (the child or session: its rows never straddle folds), and
    ingest each file (paths relative to the CSV).

    Raises ValueError listing every bad row by line and column (missing file, unreadable image,
    stage not 0–4, age not a number within 1–10, empty label)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise ValueError(f"{path}: cannot read it as a CSV file ({err})") from None
    table.columns = [str(c).strip().lower() for c in table.columns]
    has_stage, has_age = "stage" in table.columns, "age" in table.columns
    if "path" not in table.columns or not (has_stage or has_age):
        need = [c for c in ("path",) if c not in table.columns]
        if not (has_stage or has_age):
            need.append("stage or age")
        raise ValueError(
            f"{path}: missing column(s) {', '.join(need)}; need path and at least one of "
            "stage (0–4) and age (years), optionally group"
        )
    if table.empty:
        raise ValueError(f"{path}: no rows below the header")
    lo, hi = AGE_RANGE
    problems: list[str] = []
    images, stages, ages, groups = [], [], [], []
    for i, row in table.iterrows():
        line = int(str(i)) + 2  # header is line 1
        bad = False
        stage = age = None
        if has_stage:
            try:
                text = str(row["stage"]).strip()
                stage = int(text)
                if not 0 <= stage <= 4:
                    raise ValueError
            except ValueError:
                problems.append(f"line {line}, column stage: {row['stage']!r} is not a stage 0–4")
                bad = True
        if has_age:
            try:
                age = float(str(row["age"]).strip().replace(",", "."))
                if not np.isfinite(age):
                    raise ValueError
            except ValueError:
                problems.append(f"line {line}, column age: {row['age']!r} is not a number (years)")
                bad = True
            else:
                if not lo <= age <= hi:
                    problems.append(
                        f"line {line}, column age: {age:g} is outside {lo:g}–{hi:g} years "
                        "(ages are in years, e.g. 4.5)"
                    )
                    bad = True
        name = str(row["path"]).strip()
        if not name:
            problems.append(f"line {line}, column path: empty")
            continue
        file = (Path(path).parent / name).resolve()
        try:
            image = decode_stored(ingest(file.read_bytes()).jpeg)
        except (FileNotFoundError, IsADirectoryError):
            problems.append(f"line {line}, column path: {file} does not exist")
            continue
        except IngestError as err:
            problems.append(f"line {line}, column path: {file.name}: {err.message}")
            continue
        if bad:
            continue
        images.append(image)
        stages.append(stage)
        ages.append(age)
        group = str(row["group"]).strip() if "group" in table.columns else ""
        groups.append(group or str(file))
        if progress:
            progress(len(images), len(table))
    if problems:
        raise ValueError("cannot train from this file:\n" + "\n".join(problems))
    return Labelled(
        images,
        np.array(stages, dtype=np.int64) if has_stage else None,
        np.array(ages, dtype=np.float64) if has_age else None,
        np.array(groups),
    )


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
    age_candidates: tuple[str, ...] = CANDIDATES,
    log: Callable[[str], None] | None = None,
) -> tuple[StageModel, FitResult | None]:
    """Fit the heads the labels allow with grouped CV, write the artifact (+ database row), return
    the model and the stage fit (None for a model trained on ages alone).

    With ages, a drawing-age head (:func:`training.age.fit_age_head`); with stages, the ordinal
    stage head; with both, the stage head is also tried with the cross-fitted drawing age as one
    more input (:mod:`training.stage_age`, nested grouped CV), and that is kept only when it
    raises the out-of-fold QWK and lowers the MAE.
    ``backbone_weights``: a fine-tuned backbone the embeddings came from, copied into the model's
    folder so it is served with it. ``extra_metrics``/``extra_params`` join the model card's.
    ``age_candidates``: the drawing-age heads compared (:data:`training.age.CANDIDATES`)."""
    if described.stages is None and described.ages is None:
        raise ValueError("nothing to fit: the labels have neither stages nor ages")
    X = stage_inputs(described.embeddings, described.features)
    metrics: dict = {}
    params: dict = {"seed": seed}
    age_fit = None
    if described.ages is not None:
        age_fit = fit_age_head(
            X,
            described.ages,
            described.groups,
            n_features=described.features.shape[1],
            seed=seed,
            candidates=age_candidates,
            progress=log,
        )
        metrics["age"] = age_fit.metrics
        params["age_head"] = age_fit.head.kind
    fit = None
    uses_age = False
    if described.stages is not None:
        fit = fit_stage_head(X, described.stages, described.groups, seed=seed, progress=log)
        if age_fit is not None:
            # The stage head given the drawing age, by nested grouped CV on the same folds;
            # kept only where it raises the out-of-fold QWK and lowers the MAE.
            assert described.ages is not None
            informed = compare_stage_with_age(
                X,
                described.stages,
                described.ages,
                described.groups,
                fit,
                age_fit,
                n_features=described.features.shape[1],
                seed=seed,
                progress=log,
            )
            metrics["stage_with_age"] = informed.metrics
            uses_age = informed.kept
            if informed.kept and informed.fit is not None:
                fit = informed.fit
        metrics.update(fit.metrics)
        params.update(l2=fit.l2, temperature=round(fit.metrics["temperature"], 4))
    if human_agreement:
        metrics["human_agreement"] = human_agreement
    metrics.update(extra_metrics or {})
    if fit is not None:
        version = new_version(fit.head)
    else:
        assert age_fit is not None
        version = new_version(age_fit.head, prefix="age")
    model = StageModel(
        version=version,
        backbone=backbone or get_settings().backbone,
        backbone_version=described.backbone_version,
        feature_names=tuple(FEATURE_NAMES),
        head=None if fit is None else fit.head,
        age_head=None if age_fit is None else age_fit.head,
        stage_uses_age=uses_age,
    )
    params.update(extra_params or {})
    card = model_card(
        version, data=data, params=params, metrics=metrics, backbone=model.backbone_version
    )
    report = html_report(
        version,
        card_md=card,
        metrics=metrics,
        oof_probs=None if fit is None else fit.oof_probs,
        y=described.stages,
        age_oof=None if age_fit is None else age_fit.oof,
        ages=described.ages,
    )
    register(
        model,
        data=data,
        params=params,
        metrics=metrics,
        card=card,
        report_html=report,
        session=session,
        backbone_weights=backbone_weights,
    )
    return model, fit
