"""Loading what profiles are built from out of the database (the numerical work lives beside it)."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import numpy as np
import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from core.models import ModelVersion, Photo, RetainedAggregate, StageEstimate, Unit

T = TypeVar("T")
log = logging.getLogger(__name__)

#: What kinds of stored rows profiles rest on, as counted in :func:`skipped_rows`.
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
    from core.domain import AGE_BANDS, term_problem

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
    return usable_rows(
        pd.DataFrame(rows, columns=cols),
        "photos",
        numeric=("expected_stage", "p0", "p1", "p2", "p3", "p4"),
        id_column="photo_id",
    )


#: Columns of :func:`retained_frame`: one row per retained unit x term x age band cell.
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


def retained_progression(
    retained: pd.DataFrame, *, min_n: int, level: float = 0.9, by_age_band: bool = False
) -> pd.DataFrame:
    """Progression figures of retained cells (:func:`retained_frame`), computed from their sums.

    The same table as :func:`profiles.progression.progression_from_photos` (its
    ``PROGRESSION_COLUMNS``, pooled with ``age_band`` "all" or per age band) plus ``mean_lo``,
    ``mean_hi`` and ``p0`` .. ``p4`` (the stage distribution). The deleted photos cannot be
    resampled, so intervals are normal approximations at ``level``: mean ± z·sqrt(var / n), with
    var = sum_sq / n - mean² of the stage (mean stage) or of stage minus the expected stage of the
    photo's age band (index, weighted by photos across bands). Below ``min_n`` photos every figure
    is None and ``suppressed`` True, ``n_photos`` kept.
    """
    from statistics import NormalDist

    from core.domain import EXPECTED_STAGE_BY_AGE_BAND, term_sort_key
    from profiles.progression import ALL_AGE_BANDS, PROGRESSION_COLUMNS

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


def bootstrap_mean_interval(
    values: np.ndarray, *, resamples: int = 1000, level: float = 0.90, seed: int = 0
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean (vectorised)."""
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, len(values), size=(resamples, len(values)))
    means = values[idx].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


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
    suppressed (None). Built on :mod:`profiles.progression`; adds the mean stage's own interval.

    Terms with remaining photos (``source`` "photos") get bootstrap intervals from those photos.
    ``retained`` (:func:`retained_frame`, one unit) adds the photos that retention deleted: a term
    with no remaining photo but retained cells gets the same figures computed from the cells' sums
    (``source`` "retained", :func:`retained_progression`): deleted photos cannot be resampled, so
    those intervals are normal approximations. When retention cut through a term, its figures
    rest on the remaining photos only and ``n_retained`` says how many deleted photos they leave
    out (figures from two kinds of interval are not combined); ``n_retained`` is 0 where nothing
    was retained.
    """
    from core.domain import EXPECTED_STAGE_BY_AGE_BAND, term_sort_key
    from profiles.progression import progression_from_photos, stage_distribution

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


# ---- full profiles (issue 6) from the database ----------------------------------------------------


def context_frame(session: Session) -> pd.DataFrame:
    """Organisational data per unit x term (columns of a context file)."""
    from core.models import UnitContext
    from profiles.context import CONTEXT_COLUMNS

    rows = session.execute(
        select(UnitContext, Unit.name).join(Unit, Unit.id == UnitContext.unit_id)
    ).all()
    data = [
        {"unit": name, "term": c.term, **{k: getattr(c, k) for k in CONTEXT_COLUMNS}}
        for c, name in rows
    ]
    return usable_rows(
        pd.DataFrame(data, columns=["unit", "term", *CONTEXT_COLUMNS]),
        "context",
        numeric=CONTEXT_COLUMNS,
        with_age_band=False,
        id_column="unit",
    )


def import_context(session: Session, context: pd.DataFrame) -> int:
    """Store a validated context frame (``profiles.context.read_context_file``), replacing the same
    unit x term (history is kept per term). Unknown units raise ContextFileError; nothing is written."""
    from core.models import UnitContext
    from profiles.context import CONTEXT_COLUMNS, ContextFileError, ContextProblem

    units = {u.name: u.id for u in session.scalars(select(Unit))}
    problems = [
        ContextProblem(
            int(row["row"]) if "row" in context.columns else int(str(i)) + 2,
            "unit",
            f"no unit named {row['unit']!r} in Spira",
        )
        for i, row in context.iterrows()
        if row["unit"] not in units
    ]
    if problems:
        raise ContextFileError(problems)
    for _, row in context.iterrows():
        unit_id = units[row["unit"]]
        existing = session.scalar(
            select(UnitContext).where(
                UnitContext.unit_id == unit_id, UnitContext.term == row["term"]
            )
        )
        target = existing or UnitContext(unit_id=unit_id, term=row["term"])
        for col in CONTEXT_COLUMNS:
            value = row[col]
            setattr(target, col, None if pd.isna(value) else float(value))
        session.add(target)
    session.flush()
    return len(context)


def ability_frame(session: Session, *, min_n: int) -> tuple[pd.DataFrame, object | None]:
    """Unit ability per area and term from the many-facet model fitted on every stored rating.

    Returns (table unit, term, area, ability, se, n_sheets; the fitted model or None).
    """
    import warnings

    from assessment.cases import load_case_library
    from assessment.model import ManyFacetPCM, ModelFitWarning
    from assessment.store import ratings_frame
    from assessment.units import unit_abilities, unit_abilities_frame

    cols = ["unit", "term", "area", "ability", "se", "n_sheets"]
    library = load_case_library()
    ratings = usable_rows(ratings_frame(session, library), "ratings", id_column="sheet_id")
    skipped = int(ratings.attrs.get("skipped", 0))
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
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        model = ManyFacetPCM().fit(ratings)
    sheets = model.sheet_table()
    table = unit_abilities_frame(
        unit_abilities(sheets, case_areas=library.case_areas(), min_sheets=min_n)
    )[cols]
    table.attrs["skipped"] = skipped
    return table, model


def _in_background(held: threading.Lock, work: Callable[[], None], what: str) -> None:
    """Run ``work`` in a daemon thread that releases ``held`` (acquired by the caller) when done;
    a failure is logged with ``what``, and ``held`` is released as well when no thread starts."""

    def run() -> None:
        try:
            work()
        except Exception:  # noqa: BLE001 - logged; the service keeps serving what it has
            log.exception("%s failed", what)
        finally:
            held.release()

    try:
        threading.Thread(target=run, name="spira-profiles", daemon=True).start()
    except RuntimeError:
        held.release()


class ProfileService:
    """Builds every unit's profile from the database and caches them until the data change.

    The contextual model is fitted across all units and terms, so profiles are built together; a
    cheap fingerprint query (counts and latest timestamps of what profiles rest on, and the promoted
    model) decides when to rebuild. Reads between changes are served from memory.
    """

    def __init__(self) -> None:
        import threading

        self._lock = threading.Lock()
        self._key: tuple | None = None
        self._result: dict | None = None
        self._checked_at = float("-inf")
        self._checking = threading.Lock()
        self._refreshing: set[tuple] = set()
        self._rebuilt_at = float("-inf")  # when the last background rebuild started
        self._refreshing_lock = threading.Lock()
        self._refresh_pool: ThreadPoolExecutor | None = None
        self._bind: Engine | Connection | None = None  # of the last build: background checks

    @staticmethod
    def fingerprint(session: Session) -> tuple:
        """Counts and latest timestamps of what profiles rest on, and the promoted model: one
        statement of scalar subqueries (it runs on every profile read)."""
        from sqlalchemy import func

        from core.models import Rating, ResponseSheet, UnitContext

        done = Photo.status == "done"
        row = session.execute(
            select(
                select(func.count()).where(done).select_from(Photo).scalar_subquery(),
                select(func.max(Photo.processed_at)).where(done).scalar_subquery(),
                select(func.count()).select_from(ResponseSheet).scalar_subquery(),
                select(func.max(ResponseSheet.created_at)).scalar_subquery(),
                select(func.count()).select_from(Rating).scalar_subquery(),
                select(func.count()).select_from(UnitContext).scalar_subquery(),
                select(func.max(UnitContext.imported_at)).scalar_subquery(),
                # retention folds into these; deleting a unit removes them without a photo
                select(func.count()).select_from(RetainedAggregate).scalar_subquery(),
                select(func.sum(RetainedAggregate.n_photos)).scalar_subquery(),
                # a unit added or deleted (cached answers are kept per unit)
                select(func.count()).select_from(Unit).scalar_subquery(),
                select(ModelVersion.version)
                .where(ModelVersion.promoted.is_(True))
                .limit(1)
                .scalar_subquery(),
            )
        ).one()
        promoted = row[-1]
        if promoted is None:
            from training.registry import promoted_version_from_files

            promoted = promoted_version_from_files()
        return (*row[:-1], promoted)

    def invalidate(self) -> None:
        """Forget the last fingerprint check: the next read checks the database again (called
        after this process writes what profiles rest on)."""
        self._checked_at = float("-inf")

    def peek(self) -> dict | None:
        """The current build without asking the database, for a read on the event loop; None
        when there is none yet or ``profile_check_seconds`` is 0 (then every read checks).

        When the last check is older than ``profile_check_seconds`` (or was dropped by a write),
        one background thread checks the fingerprint (and starts a rebuild if the data changed)
        while this and every other read go on being answered from the last build: readers never
        wait for the check, and fifty of them do not run fifty checks."""
        import time

        from core.config import get_settings

        ttl = get_settings().profile_check_seconds
        result = self._result
        if ttl <= 0 or result is None:
            return None
        if time.monotonic() - self._checked_at >= ttl:
            self._check_in_background()
        return result

    def _check_in_background(self) -> None:
        bind = self._bind
        if bind is None or not self._checking.acquire(blocking=False):
            return

        def check() -> None:
            with Session(bind) as session:
                self.build(session)

        # on failure the next read tries again
        _in_background(self._checking, check, "checking whether the unit profiles are current")

    def _current_fingerprint(self, session: Session) -> tuple:
        """The fingerprint, queried at most every ``profile_check_seconds`` (it counts whole
        tables, the dearest part of a cached read)."""
        import time

        from core.config import get_settings

        ttl = get_settings().profile_check_seconds
        now = time.monotonic()
        if ttl > 0 and self._key is not None and now - self._checked_at < ttl:
            return self._key
        key = self.fingerprint(session)
        self._checked_at = now
        return key

    def build(self, session: Session) -> dict:
        """{"profiles": {(unit, term): UnitProfile}, "models": context models, "photos": frame, ...}.

        The first build is made in the caller's thread. Later, when the data have changed, the
        last build is returned at once and the next one is made in the background (with
        ``profile_check_seconds`` 0, as in the tests, every change is built before answering)."""
        from core.config import get_settings

        self._bind = session.get_bind()
        key = self._current_fingerprint(session)
        result = self._result
        if result is not None and self._key == key:
            return result
        if result is not None and get_settings().profile_check_seconds > 0:
            # Serve the last build while a background thread makes the next one: reads never
            # wait for a rebuild, though processed uploads change the data every few seconds.
            self._rebuild_in_background(session.get_bind())
            return result
        with self._lock:
            if self._key == key and self._result is not None:
                return self._result
            self._result = self._succeed(self._compute(session))
            self._key = key
            return self._result

    def _succeed(self, built: dict) -> dict:
        """``built``, keeping the current build's memoised results as its ``previous`` ones
        (one generation back only)."""
        if self._result is not None:
            built["previous"] = self._result["memo"]
        return built

    def previous_or_refresh(self, built: dict, name: tuple, refresh: Callable[[], object]):
        """What the build before ``built`` memoised under ``name`` (None if nothing), starting
        ``refresh()`` in a background thread, once per name, to compute the current value.

        Readers of a unit just after a rebuild get its last answer at once instead of all
        waiting for its bootstrap (50 ms to 1 s under load): the same staleness as serving the
        last build while the next one is made. A refresh that raises drops the old value, so
        the next read computes (and gets the error) itself."""
        previous = built.get("previous", {})
        value = previous.get(name)
        if value is None:
            return None
        with self._refreshing_lock:
            if name in self._refreshing:
                return value
            self._refreshing.add(name)

        def run() -> None:
            try:
                refresh()
            except Exception as err:  # noqa: BLE001 - e.g. the unit was deleted meanwhile
                previous.pop(name, None)
                log.info("refreshing %s failed (%s); the next read computes it", name, err)
            finally:
                with self._refreshing_lock:
                    self._refreshing.discard(name)

        try:
            self._refresher().submit(run)
        except RuntimeError:  # the pool is shutting down with the interpreter
            with self._refreshing_lock:
                self._refreshing.discard(name)
        return value

    def _refresher(self):
        """Two threads for refreshes: after a rebuild each unit read starts one, and they
        queue here rather than each taking a thread and a database connection."""
        with self._refreshing_lock:
            if self._refresh_pool is None:
                self._refresh_pool = ThreadPoolExecutor(2, thread_name_prefix="spira-refresh")
            return self._refresh_pool

    def forget(self) -> None:
        """Drop the build and everything memoised with it (tests; a restored database)."""
        with self._lock:
            self._result = None
            self._key = None
            self._bind = None
            self._checked_at = float("-inf")
            self._rebuilt_at = float("-inf")

    def _rebuild_in_background(self, bind) -> None:
        """Start one rebuild in a thread of its own, with its own session; a no-op while one
        (or a synchronous build) is running, or within ``profile_rebuild_seconds`` of the last
        start (the change is picked up by a later check). Failures are logged; the last build
        stays."""
        import time

        from core.config import get_settings

        now = time.monotonic()
        if now - self._rebuilt_at < get_settings().profile_rebuild_seconds:
            return
        if not self._lock.acquire(blocking=False):
            return
        self._rebuilt_at = now

        def rebuild() -> None:
            with Session(bind) as session:
                key = self.fingerprint(session)
                if key != self._key:
                    self._result = self._succeed(self._compute(session))
                    self._key = key

        # on failure the last build is served and a later check starts the rebuild
        _in_background(self._lock, rebuild, "rebuilding the unit profiles")

    def _compute(self, session: Session) -> dict:
        """Build every profile from the database (the expensive part of :meth:`build`)."""
        from core.config import get_settings
        from profiles.profile import build_profiles, fit_context_models
        from profiles.progression import PROGRESSION_COLUMNS, progression_from_photos

        settings = get_settings()
        min_n = settings.min_group_size
        photos = photo_estimates(session)
        progression = (
            progression_from_photos(
                photos[["unit", "term", "age_band", "expected_stage"]],
                min_n=min_n,
                n_boot=settings.bootstrap_resamples,
            )
            if len(photos)
            else pd.DataFrame(columns=list(PROGRESSION_COLUMNS))
        )
        # Unit x terms whose photos retention deleted, from their aggregates (normal
        # intervals, see unit_progression); terms with remaining photos keep those figures.
        all_retained = retained_frame(session)
        retained = without_photo_terms(all_retained, photos)
        if len(retained):
            from_sums = retained_progression(retained, min_n=min_n)
            progression = pd.concat(
                [progression, from_sums[list(PROGRESSION_COLUMNS)]], ignore_index=True
            )
        # rows that cannot be used were left out by the loaders (usable_rows): count them
        skipped = {"photos": int(photos.attrs.get("skipped", 0))}
        skipped["retained"] = int(all_retained.attrs.get("skipped", 0))
        ability, pcm = ability_frame(session, min_n=min_n)
        skipped["ratings"] = int(ability.attrs.get("skipped", 0))
        context = context_frame(session)
        skipped["context"] = int(context.attrs.get("skipped", 0))
        models = fit_context_models(
            progression, ability, context, min_n=min_n, level=0.9, random_state=0
        )
        built = build_profiles(progression, ability, context, min_n=min_n, models=models)
        return {
            "profiles": {(p.unit, p.term): p for p in built},
            "models": models,
            "context": context,
            "assessment": pcm,
            # stored rows left out because they cannot be used (shown on the research page)
            "skipped": skipped,
            # Results derived from this build (a unit's progression, a serialised answer),
            # kept with it and so dropped together when the data change.
            "memo": {},
        }

    @staticmethod
    def memoised(built: dict, name: tuple, compute: Callable[[], T]) -> T:
        """``compute()`` once per build of the data: later calls with the same ``name`` return
        the kept value until the fingerprint changes. Concurrent first calls wait for the one
        that computes (fifty readers of a unit just rebuilt cost one computation, not fifty)."""
        memo = built["memo"]
        if name in memo:
            return memo[name]
        lock = built.setdefault("memo_locks", {}).setdefault(name, threading.Lock())
        with lock:
            if name not in memo:
                memo[name] = compute()
        return memo[name]


profile_service = ProfileService()
