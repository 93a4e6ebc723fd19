"""The database schema. Unit level only: there is no table for children and no column for a name.

A photo, a response sheet and every aggregate carry unit, group, term and age band. Schema changes go
through Alembic migrations in ``core/migrations`` (applied at start-up by ``core.db.migrate``).
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

from sqlalchemy import (
    JSON,
    Boolean,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


class Base(DeclarativeBase):
    pass


class Municipality(Base):
    __tablename__ = "municipality"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(120), unique=True)


class Unit(Base):
    """A preschool unit (förskoleenhet): the level at which everything is reported."""

    __tablename__ = "unit"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    municipality_id: Mapped[int] = mapped_column(ForeignKey("municipality.id"))
    name: Mapped[str] = mapped_column(String(120), unique=True)
    groups: Mapped[list[Group]] = relationship(back_populates="unit", order_by="Group.name")


class Group(Base):
    """A group (avdelning) within a unit, with the age band of its children."""

    __tablename__ = "unit_group"
    __table_args__ = (UniqueConstraint("unit_id", "name"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(120))
    age_band: Mapped[str] = mapped_column(String(8))
    unit: Mapped[Unit] = relationship(back_populates="groups")


class Term(Base):
    __tablename__ = "term"
    name: Mapped[str] = mapped_column(String(8), primary_key=True)  # "2026-HT"
    starts_on: Mapped[date] = mapped_column(Date)
    ends_on: Mapped[date] = mapped_column(Date)


class User(Base):
    __tablename__ = "app_user"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    #: Page sessions carry the epoch they were issued in; signing out moves it on, so every
    #: session cookie issued before (on any device) stops working at once.
    session_epoch: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    units: Mapped[list[Unit]] = relationship(secondary="user_unit", order_by="Unit.name")

    @property
    def unit_ids(self) -> frozenset[int]:
        """Ids of the units the user may act on (as :class:`core.users.Principal` has them)."""
        return frozenset(u.id for u in self.units)


class UserUnit(Base):
    __tablename__ = "user_unit"
    user_id: Mapped[int] = mapped_column(
        ForeignKey("app_user.id", ondelete="CASCADE"), primary_key=True
    )
    unit_id: Mapped[int] = mapped_column(
        ForeignKey("unit.id", ondelete="CASCADE"), primary_key=True
    )


class Photo(Base):
    """A processed photo of children's work. The original upload bytes are never stored.

    ``sha256`` is a keyed digest (HMAC-SHA256, core.security.upload_digest) of the original upload,
    for duplicate detection per unit; it cannot be matched to a camera file without the server's
    key (rows from before the change hold a plain SHA-256); ``content_key`` and
    ``thumb_key`` address the processed JPEG and its thumbnail in the content-addressed store.
    """

    __tablename__ = "photo"
    __table_args__ = (
        UniqueConstraint("unit_id", "sha256", name="uq_photo_unit_sha"),
        UniqueConstraint("uploaded_by", "idempotency_key", name="uq_photo_idempotency"),
        Index("ix_photo_status", "status"),
    )
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    sha256: Mapped[str] = mapped_column(String(64))
    content_key: Mapped[str] = mapped_column(String(64))
    thumb_key: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    group_id: Mapped[int] = mapped_column(ForeignKey("unit_group.id"))
    activity: Mapped[str] = mapped_column(String(120))
    age_band: Mapped[str] = mapped_column(String(8))
    term: Mapped[str] = mapped_column(String(8))
    captured_on: Mapped[date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="pending")  # pending|done|failed
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    source_format: Mapped[str] = mapped_column(String(8))
    width: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    faces_blurred: Mapped[int] = mapped_column(Integer, default=0)
    sheet_found: Mapped[bool] = mapped_column(Boolean, default=False)
    uploaded_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    idempotency_key: Mapped[str | None] = mapped_column(String(80), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    processed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Embedding(Base):
    """Backbone embedding and drawing features of a photo, per backbone version."""

    __tablename__ = "embedding"
    __table_args__ = (UniqueConstraint("photo_id", "model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[str] = mapped_column(ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(80))
    dim: Mapped[int] = mapped_column(Integer)
    vector: Mapped[bytes] = mapped_column(LargeBinary)  # float32, little endian
    features: Mapped[dict] = mapped_column(JSON)  # name -> value, see docs/features.md
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class StageEstimate(Base):
    """Stage probabilities of a photo from one stage model version."""

    __tablename__ = "stage_estimate"
    __table_args__ = (UniqueConstraint("photo_id", "model_version"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[str] = mapped_column(ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    model_version: Mapped[str] = mapped_column(String(80), index=True)
    p0: Mapped[float] = mapped_column(Float)
    p1: Mapped[float] = mapped_column(Float)
    p2: Mapped[float] = mapped_column(Float)
    p3: Mapped[float] = mapped_column(Float)
    p4: Mapped[float] = mapped_column(Float)
    expected_stage: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def probs(self) -> list[float]:
        return [self.p0, self.p1, self.p2, self.p3, self.p4]


class ModelVersion(Base):
    """A registered stage model: files under the models directory plus this row."""

    __tablename__ = "model_version"
    version: Mapped[str] = mapped_column(String(80), primary_key=True)
    kind: Mapped[str] = mapped_column(String(32), default="stage_head")
    backbone: Mapped[str] = mapped_column(String(80))
    path: Mapped[str] = mapped_column(Text)
    data: Mapped[dict] = mapped_column(JSON)
    params: Mapped[dict] = mapped_column(JSON)
    metrics: Mapped[dict] = mapped_column(JSON)
    code_version: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    promoted: Mapped[bool] = mapped_column(Boolean, default=False)
    promoted_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class Annotation(Base):
    """A researcher's stage label for a photo (from Label Studio)."""

    __tablename__ = "annotation"
    __table_args__ = (UniqueConstraint("source", "external_id"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    photo_id: Mapped[str] = mapped_column(ForeignKey("photo.id", ondelete="CASCADE"), index=True)
    source: Mapped[str] = mapped_column(String(32), default="label_studio")
    external_id: Mapped[str] = mapped_column(String(64))
    task_id: Mapped[str | None] = mapped_column(String(64), nullable=True)
    annotator: Mapped[str] = mapped_column(String(120))
    stage: Mapped[int] = mapped_column(Integer)
    annotated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))


class ResponseSheet(Base):
    """An educator's rating of one (anonymous) child's response to one case."""

    __tablename__ = "response_sheet"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    external_id: Mapped[str | None] = mapped_column(String(80), nullable=True, unique=True)
    case_id: Mapped[str] = mapped_column(String(80))
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id"))
    group_id: Mapped[int | None] = mapped_column(ForeignKey("unit_group.id"), nullable=True)
    age_band: Mapped[str] = mapped_column(String(8))
    term: Mapped[str] = mapped_column(String(8))
    rated_on: Mapped[date] = mapped_column(Date)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Rating(Base):
    """One rater's level on one rubric item of a sheet (a sheet may be rated by several raters)."""

    __tablename__ = "rating"
    sheet_id: Mapped[str] = mapped_column(
        ForeignKey("response_sheet.id", ondelete="CASCADE"), primary_key=True
    )
    item: Mapped[str] = mapped_column(String(80), primary_key=True)
    rater: Mapped[str] = mapped_column(String(80), primary_key=True)
    level: Mapped[int] = mapped_column(Integer)


class CalibrationRating(Base):
    """An educator's level on one rubric item of a calibration response (a written response of the
    case library that every educator rates; ``response_id`` is its id there). It belongs to no unit
    and is never any unit's data: the many-facet fit uses it only to link educators' severities.
    An educator rates each calibration response's item once (the primary key)."""

    __tablename__ = "calibration_rating"
    response_id: Mapped[str] = mapped_column(String(80), primary_key=True)
    item: Mapped[str] = mapped_column(String(80), primary_key=True)
    rater: Mapped[str] = mapped_column(String(80), primary_key=True)
    case_id: Mapped[str] = mapped_column(String(80))
    level: Mapped[int] = mapped_column(Integer)
    rated_on: Mapped[date] = mapped_column(Date)
    term: Mapped[str] = mapped_column(String(8))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class UnitContext(Base):
    """Organisational data of a unit in a term (history kept per term)."""

    __tablename__ = "unit_context"
    __table_args__ = (UniqueConstraint("unit_id", "term"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"))
    term: Mapped[str] = mapped_column(String(8))
    children_enrolled: Mapped[float | None] = mapped_column(Float, nullable=True)
    n_groups: Mapped[float | None] = mapped_column(Float, nullable=True)
    mean_group_size: Mapped[float | None] = mapped_column(Float, nullable=True)
    children_per_fte: Mapped[float | None] = mapped_column(Float, nullable=True)
    share_trained_staff: Mapped[float | None] = mapped_column(Float, nullable=True)
    staff_turnover: Mapped[float | None] = mapped_column(Float, nullable=True)
    socioeconomic_index: Mapped[float | None] = mapped_column(Float, nullable=True)
    share_multilingual: Mapped[float | None] = mapped_column(Float, nullable=True)
    #: The municipality's own quality indicators of the unit in the term, {key: value}, keys
    #: declared in ``quality_indicator`` (None or a missing key: not measured).
    indicators: Mapped[dict | None] = mapped_column(JSON, nullable=True)
    imported_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class QualityIndicator(Base):
    """One declared quality indicator of the municipality (its indicator dictionary), see
    profiles.indicators: what an extra numeric column of a context file means."""

    __tablename__ = "quality_indicator"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(40), unique=True)
    label_sv: Mapped[str] = mapped_column(String(200))
    label_en: Mapped[str] = mapped_column(String(200))
    unit: Mapped[str] = mapped_column(String(80))
    direction: Mapped[str] = mapped_column(String(16))
    reference: Mapped[str | None] = mapped_column(Text, nullable=True)
    low: Mapped[float | None] = mapped_column(Float, nullable=True)
    high: Mapped[float | None] = mapped_column(Float, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Measure(Base):
    """A measure (åtgärd) a principal decided for a unit's development area, from a term on.

    Unit level only: title and description are about the unit's work, never about a child
    (profiles.measures refuses control characters; the form says no child information)."""

    __tablename__ = "unit_measure"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    area: Mapped[str] = mapped_column(String(40))
    title: Mapped[str] = mapped_column(String(200))
    start_term: Mapped[str] = mapped_column(String(8))
    description: Mapped[str | None] = mapped_column(Text, nullable=True)
    decided_by: Mapped[str] = mapped_column(String(120))
    created_by: Mapped[int | None] = mapped_column(ForeignKey("app_user.id"), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class AuditEvent(Base):
    """Who uploaded, deleted, read or exported what."""

    __tablename__ = "audit_event"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    username: Mapped[str | None] = mapped_column(String(80), nullable=True)
    action: Mapped[str] = mapped_column(String(32))
    object_type: Mapped[str] = mapped_column(String(32))
    object_id: Mapped[str | None] = mapped_column(String(80), nullable=True)
    detail: Mapped[dict | None] = mapped_column(JSON, nullable=True)


class LoginFailure(Base):
    """One failed sign-in, for the rate limit shared by every server process (api.routes.auth).

    ``key`` is a SHA-256 of the lower-cased username and the client address (no name is kept in
    clear); rows older than the limit's window are deleted as new failures arrive."""

    __tablename__ = "login_failure"
    __table_args__ = (Index("ix_login_failure_key_at", "key", "at"),)
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)


class RetainedAggregate(Base):
    """Stage figures of photos removed by retention, per unit x term x age band x model version.

    Sums rather than means, so that each retention run adds to the row: mean stage is
    ``sum_stage / n_photos``, its variance ``sum_sq_stage / n - mean**2``, the stage distribution
    ``stage_prob_sums / n``. Stages are the 0–4 drawing-progression scale.
    """

    __tablename__ = "retained_aggregate"
    __table_args__ = (
        UniqueConstraint("unit_id", "term", "age_band", "model_version", name="uq_retained_cell"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("unit.id", ondelete="CASCADE"), index=True)
    term: Mapped[str] = mapped_column(String(8))
    age_band: Mapped[str] = mapped_column(String(8))
    model_version: Mapped[str] = mapped_column(String(80))
    n_photos: Mapped[int] = mapped_column(Integer, default=0)
    sum_stage: Mapped[float] = mapped_column(Float, default=0.0)
    sum_sq_stage: Mapped[float] = mapped_column(Float, default=0.0)
    #: Per stage 0–4, the sum over photos of the stage probability.
    stage_prob_sums: Mapped[list] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)

    @property
    def mean_stage(self) -> float:
        """Mean expected stage (0–4) of the retained photos."""
        return self.sum_stage / self.n_photos if self.n_photos else float("nan")
