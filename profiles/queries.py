"""Reading what profiles are built from out of the database: photo estimates of the promoted model,
retained aggregates, organisational context and unit abilities from the stored ratings.

Every loader leaves out (and logs) the stored rows profiles cannot use (:func:`usable_rows`).
"""

from __future__ import annotations

import logging
import warnings

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from assessment.cases import load_case_library
from assessment.model import ManyFacetPCM, ModelFitWarning
from assessment.store import calibration_frame, ratings_frame
from assessment.units import unit_abilities, unit_abilities_frame
from core.domain import AGE_BANDS, term_problem
from core.models import (
    Measure,
    ModelVersion,
    Photo,
    RetainedAggregate,
    StageEstimate,
    Unit,
    UnitContext,
)
from profiles.context import CONTEXT_COLUMNS, Indicator, indicator_column
from profiles.progression import RETAINED_COLUMNS
from profiles.store import stored_indicators
from training.model_files import promoted_version_from_files

log = logging.getLogger(__name__)

#: What kinds of stored rows profiles rest on, as counted in ``attrs["skipped"]``.
ROW_KINDS: tuple[str, ...] = ("photos", "ratings", "context", "retained")


def usable_rows(
    frame: pd.DataFrame,
    kind: str,
    *,
    numeric: tuple[str, ...] = (),
    with_age_band: bool = True,
    id_column: str | None = None,
) -> pd.DataFrame:
    """``frame`` without the rows profiles cannot use (a term that is not YYYY-VT/HT within the
    date window, an unknown age band, an infinite number; a missing number is not a problem):
    one bad stored row must not take every profile down. Each left-out row is logged (with
    ``id_column``) and their number is kept in ``attrs["skipped"]`` (kinds: :data:`ROW_KINDS`);
    ``spira doctor`` lists such rows and ``--fix`` removes them."""
    if frame.empty:
        frame.attrs["skipped"] = 0
        return frame
    # the same term / age band repeats on many rows: check each distinct value once
    terms = frame["term"].astype(str)
    term_reasons = {t: term_problem(t) for t in terms.unique()}
    reasons = terms.map(term_reasons)
    if with_age_band:
        bands = frame["age_band"].astype(str)
        unknown = ~bands.isin(AGE_BANDS)
        reasons = reasons.where(
            reasons.notna() | ~unknown, "age band " + bands.map(repr) + " is not known"
        )
    for col in numeric:
        values = pd.to_numeric(frame[col], errors="coerce").astype(float)
        infinite = pd.Series(np.isinf(values.to_numpy()), index=frame.index)
        reasons = reasons.where(reasons.notna() | ~infinite, f"{col} is not a finite number")
    drop = reasons.notna().to_numpy()
    if not drop.any():
        frame.attrs["skipped"] = 0
        return frame
    for i in np.flatnonzero(drop)[:20]:
        ident = frame.iloc[i][id_column] if id_column else i
        log.warning("left out of the profiles: %s %s: %s", kind, ident, reasons.iloc[i])
    if drop.sum() > 20:
        log.warning("left out of the profiles: %d more %s rows", drop.sum() - 20, kind)
    kept = frame.loc[~drop].reset_index(drop=True)
    kept.attrs["skipped"] = int(drop.sum())
    return kept


def promoted_stage_version(session: Session) -> str | None:
    """The promoted stage model's version (database first, then the models folder)."""
    version = session.scalar(select(ModelVersion.version).where(ModelVersion.promoted.is_(True)))
    if version:
        return version
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
    return usable_rows(
        pd.DataFrame(rows, columns=cols),
        "photos",
        numeric=("expected_stage", "p0", "p1", "p2", "p3", "p4"),
        id_column="photo_id",
    )


def retained_frame(session: Session, unit_ids: list[int] | None = None) -> pd.DataFrame:
    """The retained aggregates (:class:`core.models.RetainedAggregate`) of the promoted model.

    One row per unit x term x age band: the n, sum and sum of squares of the expected stage and the
    summed stage probabilities (``p0`` .. ``p4``) of photos that retention deleted. Cells of other
    model versions are left out, as photo estimates of other versions are.
    """
    version = promoted_stage_version(session)
    if version is None:
        return pd.DataFrame(columns=RETAINED_COLUMNS)
    query = (
        select(RetainedAggregate, Unit.name)
        .join(Unit, Unit.id == RetainedAggregate.unit_id)
        .where(RetainedAggregate.model_version == version, RetainedAggregate.n_photos > 0)
    )
    if unit_ids is not None:
        query = query.where(RetainedAggregate.unit_id.in_(unit_ids))
    rows = [
        (
            a.unit_id,
            name,
            a.term,
            a.age_band,
            a.n_photos,
            a.sum_stage,
            a.sum_sq_stage,
            *(float(p) for p in a.stage_prob_sums),
        )
        for a, name in session.execute(query).all()
    ]
    return usable_rows(
        pd.DataFrame(rows, columns=RETAINED_COLUMNS),
        "retained",
        numeric=("sum_stage", "sum_sq_stage"),
    )


def context_frame(session: Session, indicators: list[Indicator] | None = None) -> pd.DataFrame:
    """Organisational data per unit x term (columns of a context file), with one
    :func:`profiles.context.indicator_column` per indicator of ``indicators`` (default: the
    stored dictionary; NaN where not measured)."""
    if indicators is None:
        indicators = stored_indicators(session)
    rows = session.execute(
        select(UnitContext, Unit.name).join(Unit, Unit.id == UnitContext.unit_id)
    ).all()
    ind_cols = {ind.key: indicator_column(ind.key) for ind in indicators}

    def measured(values: object, key: str) -> float:
        value = values.get(key) if isinstance(values, dict) else None
        # a stored value that is not a number is left out like any unusable value
        return (
            float(value)
            if isinstance(value, int | float) and not isinstance(value, bool)
            else np.nan
        )

    data = [
        {
            "unit": name,
            "term": c.term,
            **{k: getattr(c, k) for k in CONTEXT_COLUMNS},
            **{col: measured(c.indicators, key) for key, col in ind_cols.items()},
        }
        for c, name in rows
    ]
    return usable_rows(
        pd.DataFrame(data, columns=["unit", "term", *CONTEXT_COLUMNS, *ind_cols.values()]),
        "context",
        numeric=(*CONTEXT_COLUMNS, *ind_cols.values()),
        with_age_band=False,
        id_column="unit",
    )


def measures_frame(session: Session) -> pd.DataFrame:
    """Every measure (åtgärd) with its unit's name: ``id, unit, area, title, start_term`` (for
    the export; profiles.measures has the rest)."""
    rows = session.execute(
        select(Measure.id, Unit.name, Measure.area, Measure.title, Measure.start_term)
        .join(Unit, Unit.id == Measure.unit_id)
        .order_by(Measure.id)
    ).all()
    return pd.DataFrame(
        [tuple(r) for r in rows], columns=["id", "unit", "area", "title", "start_term"]
    )


def ability_frame(session: Session, *, min_n: int) -> tuple[pd.DataFrame, object | None]:
    """Unit ability per area and term from the many-facet model fitted on every stored rating.

    Returns (table unit, term, area, ability, se, n_sheets; the fitted model or None).
    """
    cols = ["unit", "term", "area", "ability", "se", "n_sheets"]
    library = load_case_library()
    ratings = usable_rows(ratings_frame(session, library), "ratings", id_column="sheet_id")
    skipped = int(ratings.attrs.get("skipped", 0))
    calibration = calibration_frame(session, library)  # links severities; never a unit's data
    if not ratings.empty and not calibration.empty:
        ratings = pd.concat([ratings, calibration[list(ratings.columns)]], ignore_index=True)
    if not ratings.empty and "area" in ratings.columns:
        # a rating of a case the library no longer has cannot be placed on its area
        unknown = ratings["area"].isna()
        if unknown.any():
            skipped += int(unknown.sum())
            log.warning("left out of the profiles: %d ratings of unknown cases", unknown.sum())
            ratings = ratings.loc[~unknown].reset_index(drop=True)
    if ratings.empty or ratings["sheet_id"].nunique() < 2:
        empty = pd.DataFrame(columns=cols)
        empty.attrs["skipped"] = skipped
        return empty, None
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelFitWarning)
            model = ManyFacetPCM().fit(ratings)
    except ValueError as err:  # e.g. every stored rating at one level: nothing to estimate
        log.warning("assessment model not fitted: %s", err)
        empty = pd.DataFrame(columns=cols)
        empty.attrs["skipped"] = skipped
        empty.attrs["fit_error"] = str(err)
        return empty, None
    sheets = model.sheet_table()
    table = unit_abilities_frame(
        unit_abilities(sheets, case_areas=library.case_areas(), min_sheets=min_n)
    )[cols]
    table.attrs["skipped"] = skipped
    return table, model
