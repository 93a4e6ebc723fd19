"""``spira doctor``: consistency between the database and the blob store, checked and repaired.

An accepted upload writes its blobs (fsynced) before its row is committed, so a crash can leave
blobs that no row references (the request died between the two) and temporary ``.tmp-*`` files of
an interrupted write, but never a row without its blobs, unless the storage itself lost files.
This module finds all four kinds of problem and, asked to repair, fixes what can be fixed without
guessing: orphaned blobs and temporary files are deleted, rows whose image is gone are marked
``failed`` with the reason, and photos waiting too long in the queue are reported (the worker picks
them up again by itself).

Blobs and temporary files younger than ``grace`` are left alone, so a repair run next to a live
server never deletes the blob of an upload whose row is about to be committed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.audit import record
from core.domain import AGE_BANDS, date_problem, term_problem
from core.models import Photo, Rating, ResponseSheet, RetainedAggregate, UnitContext
from core.retention import delete_photos
from core.storage import LOCK_FILES, BlobStore

#: A pending photo waiting longer than this is reported (minutes).
DEFAULT_PENDING_MINUTES = 30
#: Files younger than this are never repaired: a live upload may still be writing them (minutes).
DEFAULT_GRACE_MINUTES = 10


@dataclass
class MissingBlob:
    """A photo row whose processed image or thumbnail is not in the store."""

    photo_id: str
    key: str
    variant: str  # "image" or "thumbnail"


@dataclass
class DoctorReport:
    """What :func:`check_consistency` found and, with ``repair``, what it changed.

    Every list holds what was found; the ``repaired_*`` counters say how many of them were fixed.
    """

    photos_checked: int = 0
    blobs_checked: int = 0
    #: Rows not yet marked failed whose image or thumbnail is gone.
    missing_blobs: list[MissingBlob] = field(default_factory=list)
    #: Rows already marked failed whose image is gone (accounted for; not a new problem).
    failed_without_image: list[str] = field(default_factory=list)
    orphan_blobs: list[str] = field(default_factory=list)
    temp_files: list[str] = field(default_factory=list)
    stray_files: list[str] = field(default_factory=list)
    stale_pending: list[str] = field(default_factory=list)
    repaired_missing: int = 0
    repaired_orphans: int = 0
    repaired_temp_files: int = 0

    @property
    def consistent(self) -> bool:
        """True when no row lacks a blob and no blob, temporary or stray file lacks a row."""
        return not (self.missing_blobs or self.orphan_blobs or self.temp_files or self.stray_files)

    def as_dict(self) -> dict[str, Any]:
        """The report as plain JSON-ready data."""
        return {
            "consistent": self.consistent,
            "photos_checked": self.photos_checked,
            "blobs_checked": self.blobs_checked,
            "missing_blobs": [vars(m) for m in self.missing_blobs],
            "failed_without_image": self.failed_without_image,
            "orphan_blobs": self.orphan_blobs,
            "temp_files": self.temp_files,
            "stray_files": self.stray_files,
            "stale_pending": self.stale_pending,
            "repaired": {
                "missing_marked_failed": self.repaired_missing,
                "orphan_blobs_deleted": self.repaired_orphans,
                "temp_files_deleted": self.repaired_temp_files,
            },
        }

    def summary(self) -> str:
        """A few human lines: counts of each problem and what was repaired."""
        lines = [
            f"checked {self.photos_checked} photo row(s) and {self.blobs_checked} stored blob(s)",
            f"rows whose image is missing: {len(self.missing_blobs)}"
            + (f" (marked failed: {self.repaired_missing})" if self.repaired_missing else ""),
            f"blobs no row references: {len(self.orphan_blobs)}"
            + (f" (deleted: {self.repaired_orphans})" if self.repaired_orphans else ""),
            f"temporary files of interrupted writes: {len(self.temp_files)}"
            + (f" (deleted: {self.repaired_temp_files})" if self.repaired_temp_files else ""),
            f"files in storage that are not blobs: {len(self.stray_files)}",
            f"photos pending for too long: {len(self.stale_pending)}",
        ]
        lines.append("consistent" if self.consistent else "NOT consistent")
        return "\n".join(lines)


def _is_key(name: str) -> bool:
    return len(name) == 64 and all(c in "0123456789abcdef" for c in name)


def _mtime(path: Path) -> datetime:
    return datetime.fromtimestamp(path.stat().st_mtime, UTC)


def _as_utc(moment: datetime) -> datetime:
    # SQLite returns naive datetimes for timezone-aware columns; they were written in UTC.
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


def check_consistency(
    session: Session,
    store: BlobStore,
    *,
    repair: bool = False,
    pending_minutes: float = DEFAULT_PENDING_MINUTES,
    grace_minutes: float = DEFAULT_GRACE_MINUTES,
    now: datetime | None = None,
) -> DoctorReport:
    """Compare photo rows with the files under ``store.root``; with ``repair``, fix what is safe.

    Repairs: rows whose image or thumbnail is missing get ``status = "failed"`` and an ``error``
    saying so (committed); blobs no row references and ``.tmp-*`` files are deleted when older than
    ``grace_minutes``. Pending photos older than ``pending_minutes`` are only reported. Returns the
    report of what was found and changed.
    """
    now = now or datetime.now(UTC)
    grace_cutoff = now - timedelta(minutes=grace_minutes)
    report = DoctorReport()

    referenced: set[str] = set()
    for photo in session.scalars(select(Photo).order_by(Photo.created_at, Photo.id)):
        report.photos_checked += 1
        referenced.update((photo.content_key, photo.thumb_key))
        gone = [
            MissingBlob(photo.id, key, variant)
            for key, variant in ((photo.content_key, "image"), (photo.thumb_key, "thumbnail"))
            if not store.exists(key)
        ]
        if gone and photo.status == "failed":
            report.failed_without_image.append(photo.id)
            continue
        report.missing_blobs.extend(gone)
        if gone and repair:
            photo.status = "failed"
            photo.error = (
                f"stored {' and '.join(m.variant for m in gone)} missing from storage "
                f"(found by spira doctor on {now:%Y-%m-%d}); upload the photo again"
            )
            report.repaired_missing += 1
        if photo.status == "pending" and _as_utc(photo.created_at) < now - timedelta(
            minutes=pending_minutes
        ):
            report.stale_pending.append(photo.id)
    if repair:
        session.commit()

    if store.root.exists():
        for path in sorted(p for p in store.root.rglob("*") if p.is_file()):
            relative = path.relative_to(store.root).as_posix()
            if relative in LOCK_FILES:
                continue  # the server processes' shared locks
            if path.name.startswith(".tmp-"):
                report.temp_files.append(relative)
                if repair and _mtime(path) < grace_cutoff:
                    path.unlink(missing_ok=True)
                    report.repaired_temp_files += 1
            elif not _is_key(path.name) or store.path_for(path.name) != path:
                report.stray_files.append(relative)
            else:
                report.blobs_checked += 1
                if path.name not in referenced:
                    report.orphan_blobs.append(path.name)
                    if repair and _mtime(path) < grace_cutoff:
                        path.unlink(missing_ok=True)
                        report.repaired_orphans += 1
    return report


# ---- rows profiles cannot use (issue 20) -----------------------------------------------------------


@dataclass
class UnusableRow:
    """A stored row outside what clients may send today: a date or term outside the window of
    :func:`core.domain.date_problem`, or an unknown age band. Profiles leave such rows out."""

    table: str  # "photo", "sheet", "context", "retained"
    id: str
    unit_id: int
    reason: str


def _row_reason(
    *, term: str, day: date | None = None, age_band: str | None = None, field_name: str = "date"
) -> str | None:
    if day is not None:
        problem = date_problem(day, field_name)
        if problem:
            return problem
    problem = term_problem(term)
    if problem:
        return problem
    if age_band is not None and age_band not in AGE_BANDS:
        return f"age band {age_band!r} is not one of {', '.join(AGE_BANDS)}"
    return None


def find_unusable_rows(session: Session) -> list[UnusableRow]:
    """Every stored photo, response sheet, organisational-data row and retained aggregate whose
    date, term or age band lies outside what is accepted today (see :class:`UnusableRow`)."""
    found: list[UnusableRow] = []
    for pid, unit_id, term, day, band in session.execute(
        select(Photo.id, Photo.unit_id, Photo.term, Photo.captured_on, Photo.age_band)
    ):
        reason = _row_reason(term=term, day=day, age_band=band, field_name="captured_on")
        if reason:
            found.append(UnusableRow("photo", pid, unit_id, reason))
    for sid, unit_id, term, day, band in session.execute(
        select(
            ResponseSheet.id,
            ResponseSheet.unit_id,
            ResponseSheet.term,
            ResponseSheet.rated_on,
            ResponseSheet.age_band,
        )
    ):
        reason = _row_reason(term=term, day=day, age_band=band, field_name="rated_on")
        if reason:
            found.append(UnusableRow("sheet", sid, unit_id, reason))
    for cid, unit_id, term in session.execute(
        select(UnitContext.id, UnitContext.unit_id, UnitContext.term)
    ):
        reason = _row_reason(term=term)
        if reason:
            found.append(UnusableRow("context", str(cid), unit_id, reason))
    for rid, unit_id, term, band in session.execute(
        select(
            RetainedAggregate.id,
            RetainedAggregate.unit_id,
            RetainedAggregate.term,
            RetainedAggregate.age_band,
        )
    ):
        reason = _row_reason(term=term, age_band=band)
        if reason:
            found.append(UnusableRow("retained", str(rid), unit_id, reason))
    return found


def remove_unusable_rows(
    session: Session, store: BlobStore, rows: list[UnusableRow], *, actor: str | None
) -> int:
    """Delete ``rows`` (from :func:`find_unusable_rows`): photos with their files (as a deletion
    does), sheets with their ratings, context rows and retained aggregates; one audit event per
    row (action ``delete``, the reason). Commits; returns how many were removed."""
    photos = [session.get(Photo, r.id) for r in rows if r.table == "photo"]
    models: dict[str, Any] = {
        "sheet": ResponseSheet,
        "context": UnitContext,
        "retained": RetainedAggregate,
    }
    removed = 0
    for row in rows:
        if row.table == "photo":
            continue
        key: Any = row.id if row.table == "sheet" else int(row.id)
        if row.table == "sheet":
            session.execute(delete(Rating).where(Rating.sheet_id == key))
        model = models[row.table]
        session.execute(delete(model).where(model.id == key))
        record(
            session,
            actor,
            "delete",
            row.table,
            row.id,
            {"unit_id": row.unit_id, "reason": f"spira doctor --fix: {row.reason}"},
        )
        removed += 1
    session.commit()
    present = [p for p in photos if p is not None]
    if present:
        delete_photos(
            session,
            store,
            present,
            actor=actor,
            reason="spira doctor --fix: date, term or age band outside what is accepted",
        )
        removed += len(present)
    return removed
