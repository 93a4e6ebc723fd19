"""Unit progression from per-photo stage estimates: age-adjusted index, bootstrap interval, stages.

The progression index of a unit in a term is the mean, over its photos, of the photo's estimated
stage minus the stage a typical child of the photo's age band reaches
(:data:`core.domain.EXPECTED_STAGE_BY_AGE_BAND`). It is in stages: +0.3 means the children's
drawings are on average a third of a stage ahead of what their age would suggest. Each photo
weighs the same, so age bands count by their number of photos.
"""

from __future__ import annotations

from collections.abc import Sequence
from statistics import NormalDist

import numpy as np
import pandas as pd

from core.domain import EXPECTED_STAGE_BY_AGE_BAND, MIN_GROUP_SIZE, N_STAGES, term_sort_key

#: Columns of the progression table consumed by :func:`profiles.profile.build_profiles`.
PROGRESSION_COLUMNS: tuple[str, ...] = (
    "unit",
    "term",
    "age_band",
    "n_photos",
    "mean_stage",
    "index",
    "index_lo",
    "index_hi",
    "suppressed",
)

#: Value of ``age_band`` on rows that pool all of a unit's age bands in a term.
ALL_AGE_BANDS = "all"

# Resamples are drawn in chunks of about this many photo draws, to bound memory (float64 bytes x 8).
_DRAWS_PER_CHUNK = 4_000_000


def photo_expected_stage(stage_probs: np.ndarray) -> np.ndarray:
    """Expected stage of each photo, sum_k k * p_k, from an (n_photos, 5) array of probabilities."""
    probs = np.asarray(stage_probs, dtype=float)
    if probs.ndim != 2 or probs.shape[1] != N_STAGES:
        raise ValueError(f"stage_probs must have shape (n_photos, {N_STAGES}), got {probs.shape}")
    return probs @ np.arange(N_STAGES, dtype=float)


def _check_photo_columns(photos: pd.DataFrame, needed: Sequence[str]) -> None:
    missing = [c for c in needed if c not in photos.columns]
    if missing:
        raise ValueError(
            f"photo rows lack column(s) {', '.join(missing)}; need {', '.join(needed)}"
        )


def _bootstrap_group_means(
    values: np.ndarray, starts: np.ndarray, sizes: np.ndarray, n_boot: int, seed: int
) -> np.ndarray:
    """Bootstrap means of contiguous groups: returns an (n_boot, n_groups) array.

    Each resample draws, for every group, as many photos as it has, with replacement and only from
    that group (resampling within unit x term). Vectorised over groups, chunked over resamples.
    """
    rng = np.random.default_rng(seed)
    n_total = int(sizes.sum())
    group_of_photo = np.repeat(np.arange(len(sizes)), sizes)
    # float32 uniforms and int32 offsets halve the memory traffic, which dominates the run time;
    # float32 resolution (2**-24) is ample for groups of up to millions of photos.
    start_of_photo = starts[group_of_photo].astype(np.int32)
    size_of_photo = sizes[group_of_photo].astype(np.float32)
    chunk = max(1, _DRAWS_PER_CHUNK // max(n_total, 1))
    means = np.empty((n_boot, len(sizes)), dtype=float)
    for b0 in range(0, n_boot, chunk):
        b1 = min(n_boot, b0 + chunk)
        u = rng.random((b1 - b0, n_total), dtype=np.float32)
        u *= size_of_photo
        draw = u.astype(np.int32)
        draw += start_of_photo
        sums = np.add.reduceat(values[draw], starts, axis=1)
        means[b0:b1] = sums / sizes
    return means


def progression_from_photos(
    photos: pd.DataFrame,
    *,
    min_n: int = MIN_GROUP_SIZE,
    n_boot: int = 1000,
    level: float = 0.9,
    by_age_band: bool = False,
    seed: int = 0,
) -> pd.DataFrame:
    """Age-adjusted progression index per unit x term (optionally x age band) with bootstrap interval.

    Args:
        photos: one row per photo with columns ``unit``, ``term``, ``age_band`` and
            ``expected_stage`` (the photo's estimated stage, a float in 0-4).
        min_n: figures resting on fewer photos are suppressed (values None, ``suppressed`` True,
            ``n_photos`` kept).
        n_boot: bootstrap resamples (photos resampled within each unit x term / age band).
        level: coverage of the percentile interval (0.9 = 90 %).
        by_age_band: False pools a unit's age bands (``age_band`` = "all"); True gives one row
            per unit x term x age band.
        seed: seed of the bootstrap, so the same photos always give the same interval.

    Returns:
        DataFrame with :data:`PROGRESSION_COLUMNS`, sorted by unit and chronological term.
        ``mean_stage`` and ``index*`` are in stages; ``index`` = mean_stage - mean expected stage.
    """
    _check_photo_columns(photos, ("unit", "term", "age_band", "expected_stage"))
    unknown = sorted(set(photos["age_band"].astype(str)) - set(EXPECTED_STAGE_BY_AGE_BAND))
    if unknown:
        raise ValueError(
            f"unknown age band(s) {unknown}; known: {', '.join(EXPECTED_STAGE_BY_AGE_BAND)}"
        )
    stage = photos["expected_stage"].to_numpy(dtype=float)
    if np.isnan(stage).any() or (stage < 0).any() or (stage > N_STAGES - 1).any():
        raise ValueError(f"expected_stage must be a number in 0-{N_STAGES - 1} for every photo")
    # term_sort_key raises ValueError naming a malformed term.
    term_key = {t: term_sort_key(t) for t in photos["term"].astype(str).unique()}
    term_rank = {t: r for r, t in enumerate(sorted(term_key, key=term_key.__getitem__))}

    frame = pd.DataFrame(
        {
            "unit": photos["unit"].astype(str).to_numpy(),
            "term": photos["term"].astype(str).to_numpy(),
            "age_band": photos["age_band"].astype(str).to_numpy() if by_age_band else ALL_AGE_BANDS,
            "term_rank": photos["term"].astype(str).map(term_rank).to_numpy(dtype=np.int64),
            "stage": stage,
            "deviation": stage
            - photos["age_band"].astype(str).map(EXPECTED_STAGE_BY_AGE_BAND).to_numpy(dtype=float),
        }
    )
    # Sorting once (unit, chronological term, age band) makes every group a contiguous block,
    # which the vectorised bootstrap relies on, and gives the output its order.
    frame = frame.sort_values(["unit", "term_rank", "age_band"], kind="stable")
    frame = frame.reset_index(drop=True)
    keys = ["unit", "term_rank", "term", "age_band"]
    grouped = frame.groupby(keys, sort=False)
    table = grouped.agg(
        n_photos=("stage", "size"), mean_stage=("stage", "mean"), index=("deviation", "mean")
    ).reset_index()
    sizes = table["n_photos"].to_numpy(dtype=np.int64)
    shown = sizes >= min_n
    lo = np.full(len(table), np.nan)
    hi = np.full(len(table), np.nan)
    if shown.any():
        # Only groups that are shown are resampled; their photos are gathered contiguously.
        photo_shown = np.repeat(shown, sizes)
        sub_values = frame["deviation"].to_numpy()[photo_shown]
        sub_sizes = sizes[shown]
        sub_starts = np.concatenate([[0], np.cumsum(sub_sizes)[:-1]]).astype(np.int64)
        boot = _bootstrap_group_means(sub_values, sub_starts, sub_sizes, n_boot, seed)
        alpha = (1.0 - level) / 2.0
        q = np.quantile(boot, [alpha, 1.0 - alpha], axis=0)
        lo[shown], hi[shown] = q[0], q[1]

    table["index_lo"] = lo
    table["index_hi"] = hi
    table["suppressed"] = ~shown
    table["mean_stage"] = table["mean_stage"].astype(object).where(shown, None)
    for col in ("index", "index_lo", "index_hi"):
        table[col] = table[col].astype(object).where(shown, None)
    table["n_photos"] = table["n_photos"].astype(int)
    return table[list(PROGRESSION_COLUMNS)]


def stage_distribution(
    photos: pd.DataFrame, *, min_n: int = MIN_GROUP_SIZE, by_age_band: bool = False
) -> pd.DataFrame:
    """Share of photos per stage 0-4 per unit x term (optionally x age band).

    Args:
        photos: one row per photo with ``unit``, ``term`` (and ``age_band`` when ``by_age_band``)
            and either ``stage_probs`` (a sequence of 5 stage probabilities per photo) or the
            columns ``p0`` ... ``p4``.
        min_n: unit x term cells with fewer photos get shares None and ``suppressed`` True.
        by_age_band: also split by age band.

    Returns:
        DataFrame with ``unit``, ``term`` (, ``age_band``), ``n_photos``, ``share_stage_0`` ...
        ``share_stage_4`` (expected share of photos at each stage, summing to 1) and ``suppressed``.
    """
    keys = ["unit", "term"] + (["age_band"] if by_age_band else [])
    p_cols = [f"p{k}" for k in range(N_STAGES)]
    if "stage_probs" not in photos.columns and all(c in photos.columns for c in p_cols):
        _check_photo_columns(photos, keys)
        probs = photos[p_cols].to_numpy(dtype=float)
    else:
        _check_photo_columns(photos, [*keys, "stage_probs"])
        probs = np.stack([np.asarray(p, dtype=float) for p in photos["stage_probs"]])
    if probs.ndim != 2 or probs.shape[1] != N_STAGES:
        raise ValueError(f"every stage_probs must hold {N_STAGES} probabilities")
    if (probs < 0).any() or not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        raise ValueError("stage_probs must be non-negative and sum to 1 for every photo")
    share_cols = [f"share_stage_{k}" for k in range(N_STAGES)]
    frame = photos[keys].astype(str).copy()
    frame[share_cols] = probs
    table = frame.groupby(keys, sort=False)[share_cols].mean()
    table.insert(0, "n_photos", frame.groupby(keys, sort=False).size())
    table = table.reset_index()
    table["suppressed"] = table["n_photos"] < min_n
    for col in share_cols:
        table[col] = table[col].astype(object).where(~table["suppressed"], None)
    table["_t"] = table["term"].map(term_sort_key)
    return table.sort_values(["unit", "_t", *keys[2:]]).drop(columns="_t").reset_index(drop=True)


#: Columns of :func:`profiles.queries.retained_frame`: one row per retained unit x term x age band.
RETAINED_COLUMNS: list[str] = [
    "unit_id",
    "unit",
    "term",
    "age_band",
    "n_photos",
    "sum_stage",
    "sum_sq_stage",
    *(f"p{k}" for k in range(5)),
]


def bootstrap_mean_interval(
    values: np.ndarray, *, resamples: int = 1000, level: float = 0.90, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of ``values`` (one group of
    :func:`_bootstrap_group_means`, the bootstrap every progression figure uses)."""
    values = np.asarray(values, dtype=float)
    starts = np.zeros(1, dtype=np.int64)
    sizes = np.array([len(values)], dtype=np.int64)
    means = _bootstrap_group_means(values, starts, sizes, resamples, seed)[:, 0]
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def retained_progression(
    retained: pd.DataFrame, *, min_n: int, level: float = 0.9, by_age_band: bool = False
) -> pd.DataFrame:
    """Progression figures of retained cells (:func:`profiles.queries.retained_frame`), computed from their sums.

    The same table as :func:`progression_from_photos` (its
    ``PROGRESSION_COLUMNS``, pooled with ``age_band`` "all" or per age band) plus ``mean_lo``,
    ``mean_hi`` and ``p0`` .. ``p4`` (the stage distribution). The deleted photos cannot be
    resampled, so intervals are normal approximations at ``level``: mean ± z·sqrt(var / n), with
    var = sum_sq / n - mean² of the stage (mean stage) or of stage minus the expected stage of the
    photo's age band (index, weighted by photos across bands). Below ``min_n`` photos every figure
    is None and ``suppressed`` True, ``n_photos`` kept.
    """
    figures = ["mean_stage", "mean_lo", "mean_hi", "index", "index_lo", "index_hi"]
    p_cols = [f"p{k}" for k in range(5)]
    if retained.empty:
        return pd.DataFrame(columns=[*PROGRESSION_COLUMNS, "mean_lo", "mean_hi", *p_cols])
    unknown = sorted(set(retained["age_band"].astype(str)) - set(EXPECTED_STAGE_BY_AGE_BAND))
    if unknown:
        raise ValueError(f"retained cells of unknown age band(s) {unknown}")
    cells = retained.assign(
        unit=retained["unit"].astype(str),
        term=retained["term"].astype(str),
        age_band=retained["age_band"].astype(str) if by_age_band else ALL_AGE_BANDS,
        expected=retained["age_band"].astype(str).map(EXPECTED_STAGE_BY_AGE_BAND).astype(float),
    )
    n = cells["n_photos"].astype(float)
    # Sums of the deviation d = stage - expected: sum d = S - n e, sum d² = Q - 2 e S + n e².
    cells["sum_dev"] = cells["sum_stage"] - n * cells["expected"]
    cells["sum_sq_dev"] = (
        cells["sum_sq_stage"]
        - 2 * cells["expected"] * cells["sum_stage"]
        + n * cells["expected"] ** 2
    )
    keys = ["unit", "term", "age_band"]
    sums = ["n_photos", "sum_stage", "sum_sq_stage", "sum_dev", "sum_sq_dev", *p_cols]
    table = cells.groupby(keys, sort=False)[sums].sum().reset_index()
    z = NormalDist().inv_cdf(0.5 + level / 2)
    count = table["n_photos"].astype(float)

    def mean_and_halfwidth(total: str, total_sq: str) -> tuple[pd.Series, pd.Series]:
        mean = table[total] / count
        var = (table[total_sq] / count - mean**2).clip(lower=0.0)
        return mean, z * np.sqrt(var / count)

    mean, half = mean_and_halfwidth("sum_stage", "sum_sq_stage")
    table["mean_stage"], table["mean_lo"], table["mean_hi"] = mean, mean - half, mean + half
    index, half = mean_and_halfwidth("sum_dev", "sum_sq_dev")
    table["index"], table["index_lo"], table["index_hi"] = index, index - half, index + half
    table[p_cols] = table[p_cols].div(count, axis=0)
    table["suppressed"] = table["n_photos"] < min_n
    for col in [*figures, *p_cols]:
        table[col] = table[col].astype(object).where(~table["suppressed"], None)
    table["n_photos"] = table["n_photos"].astype(int)
    table["_t"] = table["term"].map(term_sort_key)
    table = table.sort_values(["unit", "_t", "age_band"]).reset_index(drop=True)
    return table[[*PROGRESSION_COLUMNS, "mean_lo", "mean_hi", *p_cols]]


def without_photo_terms(retained: pd.DataFrame, photos: pd.DataFrame) -> pd.DataFrame:
    """The retained cells of unit x terms that have no remaining photo (``unit`` and ``term``)."""
    have = set(zip(photos["unit"].astype(str), photos["term"].astype(str), strict=True))
    keep = [
        k not in have
        for k in zip(retained["unit"].astype(str), retained["term"].astype(str), strict=True)
    ]
    return retained[keep]


def _figure(value, lo, hi) -> dict | None:
    return (
        None
        if value is None or pd.isna(value)
        else {"value": float(value), "lo": float(lo), "hi": float(hi)}
    )


def unit_progression(
    rows: pd.DataFrame,
    *,
    min_n: int,
    resamples: int = 1000,
    seed: int = 0,
    retained: pd.DataFrame | None = None,
) -> list[dict]:
    """Per term (chronological): stage distribution, mean stage and age-adjusted index with 90 %
    intervals and n, pooled and per age band; figures on fewer than ``min_n`` photos are
    suppressed (None). Built on :func:`progression_from_photos`; adds the mean stage's own interval.

    Terms with remaining photos (``source`` "photos") get bootstrap intervals from those photos.
    ``retained`` (:func:`profiles.queries.retained_frame`, one unit) adds the photos that retention deleted: a term
    with no remaining photo but retained cells gets the same figures computed from the cells' sums
    (``source`` "retained", :func:`retained_progression`): deleted photos cannot be resampled, so
    those intervals are normal approximations. When retention cut through a term, its figures
    rest on the remaining photos only and ``n_retained`` says how many deleted photos they leave
    out (figures from two kinds of interval are not combined); ``n_retained`` is 0 where nothing
    was retained.
    """
    out = []
    retained = retained if retained is not None else pd.DataFrame(columns=RETAINED_COLUMNS)
    n_retained = retained.groupby(retained["term"].astype(str))["n_photos"].sum()
    if not rows.empty:
        photos = rows.assign(unit=rows["unit"].astype(str))
        pooled = progression_from_photos(photos, min_n=min_n, n_boot=resamples, seed=seed)
        bands = progression_from_photos(
            photos, min_n=min_n, n_boot=resamples, seed=seed, by_age_band=True
        )
        shares = stage_distribution(photos, min_n=min_n).set_index("term")
        for row in pooled.itertuples():
            term_photos = photos[photos["term"] == row.term]
            entry: dict = {
                "term": row.term,
                "source": "photos",
                "n_photos": int(row.n_photos),
                "n_retained": int(n_retained.get(row.term, 0)),
                "suppressed": bool(row.suppressed),
                "mean_stage": None,
                "index": None,
                "stage_distribution": None,
                "by_age_band": [],
            }
            if not row.suppressed:
                stages = term_photos["expected_stage"].to_numpy(dtype=float)
                lo, hi = bootstrap_mean_interval(stages, resamples=resamples, seed=seed)
                entry["mean_stage"] = _figure(stages.mean(), lo, hi)
                entry["index"] = _figure(row.index, row.index_lo, row.index_hi)
                entry["stage_distribution"] = [
                    float(shares.loc[row.term, f"share_stage_{k}"]) for k in range(5)
                ]
            for band in bands[bands["term"] == row.term].itertuples():
                expected = EXPECTED_STAGE_BY_AGE_BAND[band.age_band]
                shown = not band.suppressed
                entry["by_age_band"].append(
                    {
                        "age_band": band.age_band,
                        "source": "photos",
                        "n_photos": int(band.n_photos),
                        "suppressed": bool(band.suppressed),
                        "expected_stage_for_age": expected,
                        # within one age band the mean stage is the index shifted by a constant
                        "mean_stage": _figure(
                            band.mean_stage, band.index_lo + expected, band.index_hi + expected
                        )
                        if shown
                        else None,
                        "index": _figure(band.index, band.index_lo, band.index_hi)
                        if shown
                        else None,
                    }
                )
            out.append(entry)
    only_retained = retained[~retained["term"].astype(str).isin([e["term"] for e in out])]
    if not only_retained.empty:
        pooled = retained_progression(only_retained, min_n=min_n)
        bands = retained_progression(only_retained, min_n=min_n, by_age_band=True)
        for row in pooled.itertuples():
            entry = {
                "term": row.term,
                "source": "retained",
                "n_photos": int(row.n_photos),
                "n_retained": int(row.n_photos),
                "suppressed": bool(row.suppressed),
                "mean_stage": _figure(row.mean_stage, row.mean_lo, row.mean_hi),
                "index": _figure(row.index, row.index_lo, row.index_hi),
                "stage_distribution": None
                if row.suppressed
                else [float(getattr(row, f"p{k}")) for k in range(5)],
                "by_age_band": [
                    {
                        "age_band": band.age_band,
                        "source": "retained",
                        "n_photos": int(band.n_photos),
                        "suppressed": bool(band.suppressed),
                        "expected_stage_for_age": EXPECTED_STAGE_BY_AGE_BAND[band.age_band],
                        "mean_stage": _figure(band.mean_stage, band.mean_lo, band.mean_hi),
                        "index": _figure(band.index, band.index_lo, band.index_hi),
                    }
                    for band in bands[bands["term"] == row.term].itertuples()
                ],
            }
            out.append(entry)
    return sorted(out, key=lambda e: term_sort_key(e["term"]))
