"""A unit's drawing-age gap per term: how much older (or younger) its children's drawings look than
the midpoint of their age band, in years, with a 90 % bootstrap interval and n.

The per-photo gap is the bias-corrected drawing age minus the band midpoint
(:mod:`training.unit_age`). Which model scores the photos, best first:

1. ``cross_fitted``: the newest model trained from the stored uploads (``spira train
   --from-uploads``) that has unit-fold heads for the unit's embeddings: the unit is scored by the
   head of its fold, which never saw a photo of the unit (a unit newer than the model, by the mean
   of all heads, none of which saw it);
2. ``not_trained_on_units``: else the promoted model's drawing-age head when it was trained on
   synthetic drawings only (it saw no unit's photos either);
3. ``unavailable``: else no figure, with the reason and what to run.

Every answer says whether the scoring model was validated on real drawings (its model card, see
:func:`training.evaluate.model_validation_of`); one that was not carries the label "not validated
on real drawings" and the figures must be read as a description of the model, not of children.
Terms with fewer than ``min_n`` photos are suppressed (value None, n kept).
"""

from __future__ import annotations

import logging
from typing import Literal

import numpy as np
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from core.domain import term_sort_key
from profiles.progression import bootstrap_mean_interval
from profiles.queries import promoted_stage_version
from training.evaluate import model_validation_of
from training.model_files import list_models, load_model
from training.unit_age import (
    CrossFit,
    latest_crossfit_model,
    stored_backbone_version,
    stored_photos,
)
from vision.model import stage_inputs

NOT_VALIDATED = "not validated on real drawings"

log = logging.getLogger(__name__)


class GapInterval(BaseModel):
    value: float = Field(description="mean drawing-age gap, years")
    lo: float = Field(description="lower bound of the 90 % bootstrap interval, years")
    hi: float = Field(description="upper bound of the 90 % bootstrap interval, years")


class TermDrawingAgeGap(BaseModel):
    term: str
    n_photos: int
    suppressed: bool = Field(description="true: too few photos to show (below the threshold)")
    gap: GapInterval | None


class DrawingAgeGap(BaseModel):
    """The unit's drawing-age gap per term (oldest first) and how it was computed."""

    status: Literal["cross_fitted", "not_trained_on_units", "unavailable"] = Field(
        description="cross_fitted: scored by a unit-fold head that never saw the unit's photos; "
        "not_trained_on_units: by a model trained on synthetic drawings only; unavailable: no "
        "drawing-age model (see reason)"
    )
    validated_on_real_drawings: bool
    validation_label: str = Field(
        description='"not validated on real drawings", or what the model was validated on'
    )
    model_version: str | None
    scored_by: str | None = Field(description="which head scored this unit's photos, in words")
    measure_unit: str = "years"
    level: float = 0.9
    min_n: int
    terms: list[TermDrawingAgeGap]
    reason: str | None = None
    note: str = (
        "Mean over the unit's photos of the bias-corrected drawing age minus the midpoint of the "
        "photo's age band. Relative to the units the model learnt from; describes drawings, "
        "assesses no child."
    )


def gap_by_term(
    terms: np.ndarray,
    gaps: np.ndarray,
    *,
    min_n: int,
    resamples: int = 1000,
    level: float = 0.9,
    seed: int = 0,
) -> list[TermDrawingAgeGap]:
    """Mean gap per term (chronological) with a percentile bootstrap interval over the term's
    photos; terms with fewer than ``min_n`` photos suppressed."""
    terms = np.asarray(terms).astype(str)
    gaps = np.asarray(gaps, np.float64)
    out = []
    for term in sorted(set(terms), key=term_sort_key):
        values = gaps[terms == term]
        n = len(values)
        if n < min_n:
            out.append(TermDrawingAgeGap(term=term, n_photos=n, suppressed=True, gap=None))
            continue
        lo, hi = bootstrap_mean_interval(values, resamples=resamples, level=level, seed=seed)
        gap = GapInterval(value=float(values.mean()), lo=lo, hi=hi)
        out.append(TermDrawingAgeGap(term=term, n_photos=n, suppressed=False, gap=gap))
    return out


def _validation(version: str) -> tuple[bool, str]:
    v = model_validation_of(version)
    ok = v.get("status") == "validated"
    return ok, (str(v.get("text")) if ok else NOT_VALIDATED)


def unit_drawing_age_gap(
    session: Session,
    unit_id: int,
    *,
    min_n: int,
    resamples: int = 1000,
    level: float = 0.9,
) -> DrawingAgeGap:
    """The drawing-age gap per term of unit ``unit_id`` (see the module docstring). A model whose
    files cannot be read (or do not fit the stored embeddings) gives status "unavailable" with
    the reason, logged, instead of failing the whole profile."""
    try:
        return _unit_drawing_age_gap(
            session, unit_id, min_n=min_n, resamples=resamples, level=level
        )
    except (OSError, ValueError, KeyError) as err:
        log.warning("drawing-age gap of unit %s not computed: %s", unit_id, err)
        # the error itself (with the model folder's path) goes to the log only
        return _unavailable(
            "the drawing-age model's files could not be read; retrain it with "
            "`spira train --from-uploads`",
            level=level,
            min_n=min_n,
        )


def _unit_drawing_age_gap(
    session: Session, unit_id: int, *, min_n: int, resamples: int, level: float
) -> DrawingAgeGap:
    backbone = stored_backbone_version(session)
    meta = latest_crossfit_model(backbone) if backbone else None
    if meta is not None:
        crossfit = CrossFit.load(meta["path"])
        assert crossfit is not None
        photos = stored_photos(
            session, meta["feature_names"], backbone_version=backbone, unit_ids=[unit_id]
        )
        X = stage_inputs(photos.embeddings, photos.features) if len(photos.ages) else None
        gaps = crossfit.gaps(X, photos.ages, photos.units) if X is not None else np.zeros(0)
        unit = str(photos.units[0]) if len(photos.units) else None
        fold = crossfit.scoring_fold(unit) if unit is not None else None
        if fold is None:
            scored_by = f"the mean of all {crossfit.k} unit-fold heads (none saw this unit)"
        else:
            scored_by = (
                f"the head of unit-fold {fold + 1} of {crossfit.k}, trained on "
                f"{len(crossfit.train_units[fold])} other units, never on this unit's photos"
            )
        ok, label = _validation(meta["version"])
        return DrawingAgeGap(
            status="cross_fitted",
            validated_on_real_drawings=ok,
            validation_label=label,
            model_version=meta["version"],
            scored_by=scored_by,
            level=level,
            min_n=min_n,
            terms=gap_by_term(photos.terms, gaps, min_n=min_n, resamples=resamples, level=level),
        )
    version = promoted_stage_version(session)
    reason = (
        "no drawing-age model trained on the stored uploads; run `spira train --from-uploads` "
        "(each term) to fit one"
    )
    if version is not None:
        try:
            model = load_model(version)
        except FileNotFoundError:
            model = None
        meta_of = {m["version"]: m for m in list_models()}.get(version, {})
        synthetic = meta_of.get("data", {}).get("source") == "synthetic"
        if model is not None and model.age_head is not None and synthetic:
            photos = stored_photos(
                session,
                model.feature_names,
                backbone_version=model.backbone_version,
                unit_ids=[unit_id],
            )
            gaps = np.zeros(0)
            if len(photos.ages):
                scored = model.predict_drawing_age(photos.embeddings, photos.features, photos.ages)
                assert scored.gap is not None
                gaps = scored.gap
            ok, label = _validation(version)
            return DrawingAgeGap(
                status="not_trained_on_units",
                validated_on_real_drawings=ok,
                validation_label=label,
                model_version=version,
                scored_by="the promoted model's drawing-age head, trained on synthetic drawings only",
                level=level,
                min_n=min_n,
                terms=gap_by_term(
                    photos.terms, gaps, min_n=min_n, resamples=resamples, level=level
                ),
            )
    return _unavailable(reason, level=level, min_n=min_n)


def _unavailable(reason: str, *, level: float, min_n: int) -> DrawingAgeGap:
    """The answer when no drawing-age figure can be given, with ``reason`` (what to do)."""
    return DrawingAgeGap(
        status="unavailable",
        validated_on_real_drawings=False,
        validation_label=NOT_VALIDATED,
        model_version=None,
        scored_by=None,
        level=level,
        min_n=min_n,
        terms=[],
        reason=reason,
    )
