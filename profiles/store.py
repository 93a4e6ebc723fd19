"""Loading what profiles are built from out of the database (the numerical work lives beside it)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import ModelVersion, Photo, StageEstimate, Unit


def promoted_stage_version(session: Session) -> str | None:
    """The promoted stage model's version (database first, then the models folder)."""
    version = session.scalar(select(ModelVersion.version).where(ModelVersion.promoted.is_(True)))
    if version:
        return version
    from training.registry import promoted_version_from_files

    return promoted_version_from_files()


def photo_estimates(session: Session, unit_ids: list[int] | None = None) -> pd.DataFrame:
    """One row per processed photo with the promoted model's estimate.

    Columns: photo_id, unit_id, unit, term, age_band, expected_stage, p0..p4.
    """
    version = promoted_stage_version(session)
    cols = [
        "photo_id",
        "unit_id",
        "unit",
        "term",
        "age_band",
        "expected_stage",
        "p0",
        "p1",
        "p2",
        "p3",
        "p4",
    ]
    if version is None:
        return pd.DataFrame(columns=cols)
    query = (
        select(
            Photo.id,
            Photo.unit_id,
            Unit.name,
            Photo.term,
            Photo.age_band,
            StageEstimate.expected_stage,
            StageEstimate.p0,
            StageEstimate.p1,
            StageEstimate.p2,
            StageEstimate.p3,
            StageEstimate.p4,
        )
        .join(StageEstimate, StageEstimate.photo_id == Photo.id)
        .join(Unit, Unit.id == Photo.unit_id)
        .where(StageEstimate.model_version == version, Photo.status == "done")
    )
    if unit_ids is not None:
        query = query.where(Photo.unit_id.in_(unit_ids))
    rows = session.execute(query).all()
    return pd.DataFrame(rows, columns=cols)


def bootstrap_mean_interval(
    values: np.ndarray, *, resamples: int = 1000, level: float = 0.90, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (vectorised)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def unit_progression(
    rows: pd.DataFrame, *, min_n: int, resamples: int = 1000, seed: int = 0
) -> list[dict]:
    """Per term (chronological): stage distribution, mean stage and age-adjusted index with 90 %
    bootstrap intervals and n; figures on fewer than ``min_n`` photos are suppressed (None)."""
    from core.domain import AGE_BANDS, EXPECTED_STAGE_BY_AGE_BAND, term_sort_key

    out = []
    for term in sorted(rows["term"].unique(), key=term_sort_key) if len(rows) else []:
        t = rows[rows["term"] == term]
        n = len(t)
        stages = t["expected_stage"].to_numpy(dtype=float)
        expected = t["age_band"].map(EXPECTED_STAGE_BY_AGE_BAND).to_numpy(dtype=float)
        entry: dict = {"term": term, "n_photos": n, "suppressed": n < min_n, "by_age_band": []}
        if n >= min_n:
            lo, hi = bootstrap_mean_interval(stages, resamples=resamples, seed=seed)
            ilo, ihi = bootstrap_mean_interval(stages - expected, resamples=resamples, seed=seed)
            probs = t[["p0", "p1", "p2", "p3", "p4"]].to_numpy(dtype=float).mean(axis=0)
            entry["mean_stage"] = {"value": float(stages.mean()), "lo": lo, "hi": hi}
            entry["index"] = {"value": float((stages - expected).mean()), "lo": ilo, "hi": ihi}
            entry["stage_distribution"] = [float(p) for p in probs]
        else:
            entry.update(mean_stage=None, index=None, stage_distribution=None)
        for band in AGE_BANDS:
            b = t[t["age_band"] == band]
            if not len(b):
                continue
            vals = b["expected_stage"].to_numpy(dtype=float)
            exp_b = EXPECTED_STAGE_BY_AGE_BAND[band]
            row: dict = {
                "age_band": band,
                "n_photos": len(b),
                "suppressed": len(b) < min_n,
                "expected_stage_for_age": exp_b,
                "mean_stage": None,
                "index": None,
            }
            if len(b) >= min_n:
                lo, hi = bootstrap_mean_interval(vals, resamples=resamples, seed=seed)
                row["mean_stage"] = {"value": float(vals.mean()), "lo": lo, "hi": hi}
                row["index"] = {
                    "value": float(vals.mean() - exp_b),
                    "lo": lo - exp_b,
                    "hi": hi - exp_b,
                }
            entry["by_age_band"].append(row)
        out.append(entry)
    return out
