"""The audit log: who uploaded, deleted, read or exported what."""

from __future__ import annotations

from sqlalchemy.orm import Session

from core.models import AuditEvent


def record(
    session: Session,
    username: str | None,
    action: str,
    object_type: str,
    object_id: str | int | None = None,
    detail: dict | None = None,
) -> None:
    """Add an audit event to the session (committed with the caller's transaction)."""
    session.add(
        AuditEvent(
            username=username,
            action=action,
            object_type=object_type,
            object_id=None if object_id is None else str(object_id),
            detail=detail,
        )
    )
