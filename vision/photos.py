"""Accepting a photo: ingest (privacy and normalisation), durable storage, one database row.

The order matters for the principles in docs/architecture.md: nothing is written before the bytes have passed
every check and been re-encoded without metadata, so a refused upload leaves nothing behind; blobs are
written (fsynced) before the row is committed, so a success answer means the photo is durable; the
idempotency key and the (unit, sha256) constraint make a retried upload return the first answer.

The ``sha256`` column holds a keyed digest of the original bytes (core.security.upload_digest,
HMAC-SHA256 under a key derived from the server's secret), not their plain SHA-256: the same bytes
to the same unit are still a duplicate, but a stored row cannot be linked to a camera file by
hashing the file. Rows stored before this change hold the plain SHA-256 and are simply not matched
by a new upload of the same bytes (which is then stored once more); changing the secret has the
same effect on every earlier row.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.config import get_settings
from core.domain import Term, check_age_band
from core.models import Group, Photo, Unit
from core.security import upload_digest
from core.storage import BlobStore
from vision.ingest import IngestLimits, ProcessedPhoto, ingest


class PhotoRejected(Exception):
    """A request that cannot be accepted for reasons other than the image bytes (4xx)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


@dataclass
class Accepted:
    photo: Photo
    created: bool  # False: a duplicate of, or an idempotent replay for, an existing photo
    reason: str = "stored"  # stored | duplicate | replay


def limits_from_settings() -> IngestLimits:
    s = get_settings()
    return IngestLimits(max_bytes=s.max_upload_bytes, max_pixels=s.max_pixels, min_side=s.min_side)


def check_photo_fields(
    unit: Unit, group: Group, activity: str, age_band: str, captured_on: date | None
) -> tuple[str, date]:
    """Check what is said about a photo (not its bytes): the group is the unit's, the age band is
    known, the activity is 1–120 characters, the date is not in the future. Returns the activity
    stripped and the date (today when None). Raises PhotoRejected (422) naming the problem."""
    if group.unit_id != unit.id:
        raise PhotoRejected(
            422, "group_not_in_unit", f"group {group.name!r} does not belong to unit {unit.name!r}"
        )
    try:
        check_age_band(age_band)
    except ValueError as err:
        raise PhotoRejected(422, "bad_age_band", str(err)) from None
    activity = activity.strip()
    if not activity or len(activity) > 120:
        raise PhotoRejected(422, "bad_activity", "activity must be 1–120 characters")
    captured_on = captured_on or date.today()
    if captured_on > date.today():
        raise PhotoRejected(422, "bad_date", "the capture date lies in the future")
    return activity, captured_on


def accept_photo(
    *,
    session: Session,
    store: BlobStore,
    data: bytes,
    unit: Unit,
    group: Group,
    activity: str,
    age_band: str,
    captured_on: date | None = None,
    uploaded_by: int | None = None,
    idempotency_key: str | None = None,
    limits: IngestLimits | None = None,
    processed: ProcessedPhoto | None = None,
) -> Accepted:
    """Ingest and store one photo; commits. Raises IngestError / PhotoRejected with nothing stored.

    ``processed``: what ``ingest(data)`` made of these very bytes, when the caller ran it
    beforehand (``spira ingest`` prepares several photos at once on worker threads, since ingest
    needs no database); otherwise ingest runs here.
    """
    if idempotency_key:
        if len(idempotency_key) > 80:
            raise PhotoRejected(
                422, "bad_idempotency_key", "Idempotency-Key is longer than 80 characters"
            )
        prior = session.scalar(
            select(Photo).where(
                Photo.uploaded_by == uploaded_by, Photo.idempotency_key == idempotency_key
            )
        )
        if prior is not None:
            return Accepted(prior, created=False, reason="replay")
    activity, captured_on = check_photo_fields(unit, group, activity, age_band, captured_on)
    if processed is None:
        processed = ingest(data, limits=limits or limits_from_settings())
    digest = upload_digest(data)
    existing = session.scalar(select(Photo).where(Photo.unit_id == unit.id, Photo.sha256 == digest))
    if existing is not None:
        return Accepted(existing, created=False, reason="duplicate")

    content_key = store.put(processed.jpeg)
    thumb_key = store.put(processed.thumbnail_jpeg)
    h, w = processed.image.shape[:2]
    photo = Photo(
        sha256=digest,
        content_key=content_key,
        thumb_key=thumb_key,
        unit_id=unit.id,
        group_id=group.id,
        activity=activity,
        age_band=age_band,
        term=str(Term.of_month(captured_on.year, captured_on.month)),
        captured_on=captured_on,
        status="pending",
        source_format=processed.source_format,
        width=w,
        height=h,
        faces_blurred=processed.faces_blurred,
        sheet_found=processed.sheet_found,
        uploaded_by=uploaded_by,
        idempotency_key=idempotency_key or None,
    )
    session.add(photo)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request stored the same bytes or key first: answer with that one.
        session.rollback()
        prior = session.scalar(
            select(Photo).where(
                (Photo.unit_id == unit.id) & (Photo.sha256 == digest)
                | (Photo.uploaded_by == uploaded_by) & (Photo.idempotency_key == idempotency_key)
            )
        )
        if prior is None:
            raise
        return Accepted(prior, created=False, reason="duplicate")
    return Accepted(photo, created=True)
