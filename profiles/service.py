"""The threaded caching service that builds every unit's profile and serves it until the data
change (:class:`ProfileService`; the process-wide :data:`profile_service`)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import (
    ModelVersion,
    Photo,
    QualityIndicator,
    Rating,
    ResponseSheet,
    RetainedAggregate,
    Unit,
    UnitContext,
)
from profiles.profile import build_profiles, fit_context_models, indicator_selection
from profiles.progression import (
    PROGRESSION_COLUMNS,
    progression_from_photos,
    retained_progression,
    without_photo_terms,
)
from profiles.queries import ability_frame, context_frame, photo_estimates, retained_frame
from profiles.store import stored_indicators
from training.model_files import promoted_version_from_files

T = TypeVar("T")
log = logging.getLogger(__name__)


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
                # the indicator dictionary: labels and directions shown with the indicators
                select(func.count()).select_from(QualityIndicator).scalar_subquery(),
                select(func.max(QualityIndicator.updated_at)).scalar_subquery(),
                # retention folds into these; deleting a unit removes them without a photo
                select(func.count()).select_from(RetainedAggregate).scalar_subquery(),
                select(func.sum(RetainedAggregate.n_photos)).scalar_subquery(),
                # a unit added or deleted (cached answers are kept per unit)
                select(func.count()).select_from(Unit).scalar_subquery(),
                # a model registered (e.g. `spira train --from-uploads`: the drawing-age gap)
                select(func.count()).select_from(ModelVersion).scalar_subquery(),
                select(ModelVersion.version)
                .where(ModelVersion.promoted.is_(True))
                .limit(1)
                .scalar_subquery(),
            )
        ).one()
        promoted = row[-1]
        if promoted is None:
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
        indicators = stored_indicators(session)
        context = context_frame(session, indicators)
        skipped["context"] = int(context.attrs.get("skipped", 0))
        models = fit_context_models(
            progression, ability, context, min_n=min_n, level=0.9, random_state=0
        )
        built = build_profiles(
            progression, ability, context, min_n=min_n, models=models, indicators=indicators
        )
        return {
            "profiles": {(p.unit, p.term): p for p in built},
            "models": models,
            "context": context,
            # the municipality's quality indicators and which each outcome's model used
            "indicators": indicators,
            "indicator_selection": indicator_selection(models),
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
