"""The life cycle of stored data: retention, deletion by photo, group or unit, and unit export.

Retention deletes photos taken more than a configured number of days ago (``SPIRA_RETENTION_DAYS``)
with their blobs, embeddings and stage estimates. The unit-level figures built from them stay:
before anything is deleted, the stage estimates are folded into :class:`RetainedAggregate`, one row
per unit x term x age band x model version holding sums (n, sum and sum of squares of the expected
stage, summed stage probabilities), so later deletions add to the same row and means, standard
deviations and distributions can be recomputed exactly. No aggregate identifies a child.

Deletion on request (a photo, a group, a unit) removes the data and keeps no aggregate: whoever
asks for deletion wants it gone. Every deletion and export is written to the audit log.

Blobs are content-addressed and may be shared by photos of two units (the same processed bytes);
a blob is deleted only when no remaining photo references it, and only after the rows are gone, so
a crash in between leaves an orphaned blob (``spira doctor --repair`` removes it), never a row
without its image.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import (
    delete,
    inspect,
    select,
)
from sqlalchemy.orm import Session

from core.audit import record
from core.config import get_settings
from core.models import (
    Annotation,
    AuditEvent,
    Embedding,
    Group,
    Photo,
    Rating,
    ResponseSheet,
    RetainedAggregate,
    StageEstimate,
    Unit,
    UnitContext,
    utcnow,
)
from core.spreadsheet import neutralise_formula
from core.storage import BlobStore


@dataclass
class DeletionResult:
    """What a deletion removed: rows per table and blobs (files) from the store."""

    photos: int = 0
    blobs: int = 0
    sheets: int = 0
    context_rows: int = 0
    aggregates_kept: int = 0
    photo_ids: list[str] = field(default_factory=list)

    def summary(self) -> str:
        """One human line."""
        parts = [f"{self.photos} photo(s)", f"{self.blobs} stored file(s)"]
        if self.sheets:
            parts.append(f"{self.sheets} response sheet(s)")
        if self.context_rows:
            parts.append(f"{self.context_rows} organisational-data row(s)")
        text = "deleted " + ", ".join(parts)
        if self.aggregates_kept:
            text += f"; kept {self.aggregates_kept} unit-level aggregate(s)"
        return text


class DeletionError(LookupError):
    """A deletion that names nothing stored (unknown photo, group or unit); nothing was changed."""


def retention_days_setting() -> int | None:
    """The configured retention age in days (``SPIRA_RETENTION_DAYS``), None when unset."""
    days = get_settings().retention_days
    if days is not None and days < 1:
        raise ValueError(f"SPIRA_RETENTION_DAYS must be at least 1 (days), not {days}")
    return days


def fold_into_aggregates(session: Session, photos: Sequence[Photo]) -> int:
    """Add the stage estimates of ``photos`` to :class:`RetainedAggregate` (flushed, not committed).

    Every model version's estimate of a photo counts in that version's row; photos without an
    estimate (pending, failed) add nothing. Returns the number of aggregate rows touched.
    """
    ids = [p.id for p in photos]
    by_id = {p.id: p for p in photos}
    touched: dict[tuple[int, str, str, str], RetainedAggregate] = {}
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for est in session.scalars(select(StageEstimate).where(StageEstimate.photo_id.in_(chunk))):
            photo = by_id[est.photo_id]
            cell = (photo.unit_id, photo.term, photo.age_band, est.model_version)
            row = touched.get(cell)
            if row is None:
                row = session.scalar(
                    select(RetainedAggregate).where(
                        RetainedAggregate.unit_id == cell[0],
                        RetainedAggregate.term == cell[1],
                        RetainedAggregate.age_band == cell[2],
                        RetainedAggregate.model_version == cell[3],
                    )
                )
                if row is None:
                    row = RetainedAggregate(
                        unit_id=cell[0],
                        term=cell[1],
                        age_band=cell[2],
                        model_version=cell[3],
                        n_photos=0,
                        sum_stage=0.0,
                        sum_sq_stage=0.0,
                        stage_prob_sums=[0.0] * 5,
                    )
                    session.add(row)
                touched[cell] = row
            stage = float(est.expected_stage)
            row.n_photos += 1
            row.sum_stage += stage
            row.sum_sq_stage += stage * stage
            # A new list: JSON columns only notice reassignment, not in-place changes.
            row.stage_prob_sums = [
                a + b for a, b in zip(row.stage_prob_sums, est.probs, strict=True)
            ]
            row.updated_at = utcnow()
    session.flush()
    return len(touched)


def _delete_photo_rows(session: Session, photos: Sequence[Photo]) -> set[str]:
    """Delete photos and the rows hanging off them; returns the blob keys they referenced."""
    keys: set[str] = set()
    ids = [p.id for p in photos]
    for p in photos:
        keys.update((p.content_key, p.thumb_key))
    for start in range(0, len(ids), 500):
        chunk = ids[start : start + 500]
        for model in (Embedding, StageEstimate, Annotation):
            session.execute(delete(model).where(model.photo_id.in_(chunk)))
        session.execute(delete(Photo).where(Photo.id.in_(chunk)))
    return keys


def _delete_unreferenced_blobs(session: Session, store: BlobStore, keys: Iterable[str]) -> int:
    """Delete each blob of ``keys`` that no remaining photo references; returns how many."""
    deleted = 0
    for key in sorted(keys):
        still_used = session.scalar(
            select(Photo.id).where((Photo.content_key == key) | (Photo.thumb_key == key)).limit(1)
        )
        if still_used is None and store.delete(key):
            deleted += 1
    return deleted


def delete_photos(
    session: Session,
    store: BlobStore,
    photos: Sequence[Photo],
    *,
    actor: str | None,
    reason: str,
    keep_aggregates: bool = False,
) -> DeletionResult:
    """Delete ``photos`` (rows, embeddings, estimates, labels) and then their unshared blobs.

    With ``keep_aggregates`` their stage estimates are first folded into
    :class:`RetainedAggregate`. One audit event per photo (action ``delete``) records ``actor``
    and ``reason``. Commits; returns what was removed.
    """
    result = DeletionResult(photo_ids=[p.id for p in photos])
    if not photos:
        return result
    if keep_aggregates:
        result.aggregates_kept = fold_into_aggregates(session, photos)
    for p in photos:
        record(
            session,
            actor,
            "delete",
            "photo",
            p.id,
            {"unit_id": p.unit_id, "group_id": p.group_id, "term": p.term, "reason": reason},
        )
    keys = _delete_photo_rows(session, photos)
    result.photos = len(photos)
    session.commit()
    # Only after the rows are committed: a crash here leaves orphans for doctor, never lost images.
    result.blobs = _delete_unreferenced_blobs(session, store, keys)
    return result


def delete_photo(
    session: Session, store: BlobStore, photo_id: str, *, actor: str | None
) -> DeletionResult:
    """Delete one photo by id; raises :class:`DeletionError` when there is none."""
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise DeletionError(f"no photo with id {photo_id!r}")
    return delete_photos(session, store, [photo], actor=actor, reason="deleted on request")


def _delete_sheets(session: Session, sheet_ids: list[str]) -> int:
    for start in range(0, len(sheet_ids), 500):
        chunk = sheet_ids[start : start + 500]
        session.execute(delete(Rating).where(Rating.sheet_id.in_(chunk)))
        session.execute(delete(ResponseSheet).where(ResponseSheet.id.in_(chunk)))
    return len(sheet_ids)


def delete_group(
    session: Session, store: BlobStore, group_id: int, *, actor: str | None
) -> DeletionResult:
    """Delete every photo and response sheet of a group (the group itself stays, now empty).

    Raises :class:`DeletionError` when there is no such group.
    """
    group = session.get(Group, group_id)
    if group is None:
        raise DeletionError(f"no group with id {group_id}")
    sheet_ids = list(
        session.scalars(select(ResponseSheet.id).where(ResponseSheet.group_id == group_id))
    )
    record(
        session,
        actor,
        "delete",
        "group",
        group_id,
        {"unit_id": group.unit_id, "sheets": len(sheet_ids)},
    )
    sheets = _delete_sheets(session, sheet_ids)
    photos = list(session.scalars(select(Photo).where(Photo.group_id == group_id)))
    result = delete_photos(session, store, photos, actor=actor, reason=f"group {group_id} deleted")
    result.sheets = sheets
    session.commit()
    return result


def delete_unit(
    session: Session, store: BlobStore, unit_name: str, *, actor: str | None
) -> DeletionResult:
    """Delete everything stored about a unit: photos, response sheets, organisational data and
    retained aggregates. The unit and its groups stay as (empty) structure for the users bound to
    them. Raises :class:`DeletionError` naming the known units when there is no such unit.
    """
    unit = session.scalar(select(Unit).where(Unit.name == unit_name))
    if unit is None:
        known = ", ".join(session.scalars(select(Unit.name).order_by(Unit.name))) or "none"
        raise DeletionError(f"no unit named {unit_name!r}; known units: {known}")
    sheet_ids = list(
        session.scalars(select(ResponseSheet.id).where(ResponseSheet.unit_id == unit.id))
    )
    context_rows = len(
        list(session.scalars(select(UnitContext.id).where(UnitContext.unit_id == unit.id)))
    )
    session.execute(delete(UnitContext).where(UnitContext.unit_id == unit.id))
    session.execute(delete(RetainedAggregate).where(RetainedAggregate.unit_id == unit.id))
    record(session, actor, "delete", "unit", unit.id, {"unit": unit.name, "sheets": len(sheet_ids)})
    sheets = _delete_sheets(session, sheet_ids)
    photos = list(session.scalars(select(Photo).where(Photo.unit_id == unit.id)))
    result = delete_photos(session, store, photos, actor=actor, reason=f"unit {unit.name} deleted")
    result.sheets = sheets
    result.context_rows = context_rows
    session.commit()
    return result


def run_retention(
    session: Session,
    store: BlobStore,
    *,
    older_than_days: int,
    dry_run: bool = False,
    today: date | None = None,
    actor: str = "retention",
) -> DeletionResult:
    """Delete photos taken (``captured_on``) more than ``older_than_days`` days before ``today``.

    Their stage estimates are kept as unit-level aggregates first. With ``dry_run`` nothing is
    changed and the result lists what would be deleted (``photos`` = how many). Commits.
    """
    if older_than_days < 1:
        raise ValueError(f"the retention age must be at least 1 day, not {older_than_days}")
    cutoff = (today or date.today()) - timedelta(days=older_than_days)
    photos = list(
        session.scalars(
            select(Photo).where(Photo.captured_on < cutoff).order_by(Photo.captured_on, Photo.id)
        )
    )
    if dry_run:
        return DeletionResult(photos=len(photos), photo_ids=[p.id for p in photos])
    result = delete_photos(
        session,
        store,
        photos,
        actor=actor,
        reason=f"retention: taken before {cutoff.isoformat()} ({older_than_days} days)",
        keep_aggregates=True,
    )
    record(
        session,
        actor,
        "retention",
        "photo",
        None,
        {"older_than_days": older_than_days, "cutoff": cutoff.isoformat(), "photos": result.photos},
    )
    session.commit()
    return result


# -- export ---------------------------------------------------------------------------------------


def _row_dict(obj: Any, skip: tuple[str, ...] = ()) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for column in inspect(type(obj)).columns:
        if column.key in skip:
            continue
        value = getattr(obj, column.key)
        if isinstance(value, datetime | date):
            value = value.isoformat()
        out[column.key] = value
    return out


def _write_table(folder: Path, name: str, rows: list[dict[str, Any]]) -> None:
    (folder / f"{name}.json").write_text(
        json.dumps(rows, indent=2, ensure_ascii=False, default=str), encoding="utf-8"
    )
    with open(folder / f"{name}.csv", "w", newline="", encoding="utf-8") as f:
        columns = sorted({k for row in rows for k in row}, key=lambda k: (k != "id", k))
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for row in rows:
            writer.writerow(
                {  # text a spreadsheet would run as a formula gets a ' in front (issue 20)
                    k: neutralise_formula(
                        json.dumps(v, ensure_ascii=False) if isinstance(v, dict | list) else v
                    )
                    for k, v in row.items()
                }
            )


@dataclass
class ExportResult:
    """Where a unit export was written and how many rows per table and images it holds."""

    folder: Path
    tables: dict[str, int]
    images: int


def export_unit(
    session: Session, store: BlobStore, unit_name: str, out_dir: Path, *, actor: str | None
) -> ExportResult:
    """Write everything stored for a unit to ``out_dir/<unit name>/``.

    Tables as JSON and CSV side by side (unit and groups, photos, stage estimates, embeddings'
    drawing features — the vectors themselves are derived and left out —, researchers' labels,
    response sheets, ratings, organisational data, retained aggregates, the audit events about the
    unit's photos) and each processed image and thumbnail under ``images/``. Records an ``export``
    audit event and commits. Raises :class:`DeletionError` (a ``LookupError``) for an unknown unit.
    """
    unit = session.scalar(select(Unit).where(Unit.name == unit_name))
    if unit is None:
        known = ", ".join(session.scalars(select(Unit.name).order_by(Unit.name))) or "none"
        raise DeletionError(f"no unit named {unit_name!r}; known units: {known}")
    folder = Path(out_dir) / unit.name.replace("/", "_")
    images = folder / "images"
    images.mkdir(parents=True, exist_ok=True)

    photos = list(
        session.scalars(
            select(Photo).where(Photo.unit_id == unit.id).order_by(Photo.created_at, Photo.id)
        )
    )
    ids = [p.id for p in photos]

    def by_photo(model) -> list:
        rows: list = []
        for start in range(0, len(ids), 500):
            rows.extend(
                session.scalars(select(model).where(model.photo_id.in_(ids[start : start + 500])))
            )
        return rows

    sheets = list(session.scalars(select(ResponseSheet).where(ResponseSheet.unit_id == unit.id)))
    sheet_ids = [s.id for s in sheets]
    ratings: list = []
    for start in range(0, len(sheet_ids), 500):
        ratings.extend(
            session.scalars(
                select(Rating).where(Rating.sheet_id.in_(sheet_ids[start : start + 500]))
            )
        )
    id_set = set(ids)
    audit = [
        e
        for e in session.scalars(
            select(AuditEvent).where(AuditEvent.object_type == "photo").order_by(AuditEvent.at)
        )
        if e.object_id in id_set
    ]
    tables: dict[str, list[dict[str, Any]]] = {
        "unit": [{"id": unit.id, "name": unit.name, "groups": [_row_dict(g) for g in unit.groups]}],
        "photos": [_row_dict(p) for p in photos],
        "stage_estimates": [_row_dict(e) for e in by_photo(StageEstimate)],
        "embeddings": [_row_dict(e, skip=("vector",)) for e in by_photo(Embedding)],
        "annotations": [_row_dict(a) for a in by_photo(Annotation)],
        "response_sheets": [_row_dict(s) for s in sheets],
        "ratings": [_row_dict(r) for r in ratings],
        "unit_context": [
            _row_dict(c)
            for c in session.scalars(select(UnitContext).where(UnitContext.unit_id == unit.id))
        ],
        "retained_aggregates": [
            _row_dict(a)
            for a in session.scalars(
                select(RetainedAggregate).where(RetainedAggregate.unit_id == unit.id)
            )
        ],
        "audit_events": [_row_dict(e) for e in audit],
    }
    for name, rows in tables.items():
        _write_table(folder, name, rows)
    n_images = 0
    for p in photos:
        for key, suffix in ((p.content_key, ""), (p.thumb_key, ".thumb")):
            if store.exists(key):
                (images / f"{p.id}{suffix}.jpg").write_bytes(store.get(key))
                n_images += 1
    record(
        session,
        actor,
        "export",
        "unit",
        unit.id,
        {"unit": unit.name, "photos": len(photos), "images": n_images},
    )
    session.commit()
    return ExportResult(
        folder=folder, tables={k: len(v) for k, v in tables.items()}, images=n_images
    )


# -- the audit log, filtered ----------------------------------------------------------------------


def find_audit_events(
    session: Session,
    *,
    username: str | None = None,
    action: str | None = None,
    object_type: str | None = None,
    since: datetime | None = None,
    limit: int | None = 1000,
) -> list[AuditEvent]:
    """Audit events, newest first, filtered by user, action, object type and time (``since``, UTC
    when naive). Returns at most ``limit`` events (all with None)."""
    query = select(AuditEvent).order_by(AuditEvent.at.desc(), AuditEvent.id.desc())
    if username:
        query = query.where(AuditEvent.username == username)
    if action:
        query = query.where(AuditEvent.action == action)
    if object_type:
        query = query.where(AuditEvent.object_type == object_type)
    if since is not None:
        # Stored in UTC; SQLite keeps no offset, so compare in UTC.
        since = since.astimezone(UTC) if since.tzinfo else since.replace(tzinfo=UTC)
        query = query.where(AuditEvent.at >= since)
    if limit is not None:
        query = query.limit(limit)
    return list(session.scalars(query))
