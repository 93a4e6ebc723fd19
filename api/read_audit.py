"""Auditing reads of unit data: every profile, measure and network read leaves an audit row,
committed before the answer is sent (docs/architecture.md; SECURITY.md, audit log)."""

from __future__ import annotations

from fastapi import Request
from fastapi.concurrency import run_in_threadpool
from sqlalchemy.orm import Session

from core.audit import record


async def record_read_async(
    request: Request, username: str, object_type: str, object_id: int | None, detail: dict
) -> None:
    """:func:`record_read` for coroutine routes (no database session of their own)."""
    writer = getattr(request.app.state, "audit", None)
    if writer is None:  # an app used without its lifespan

        def commit() -> None:
            with request.app.state.session_factory() as session:
                record(session, username, "read", object_type, object_id, detail)
                session.commit()

        await run_in_threadpool(commit)
    else:
        await writer.record_async(username, "read", object_type, object_id, detail)


def record_read(
    request: Request,
    session: Session,
    username: str,
    object_type: str,
    object_id: int | None,
    detail: dict,
) -> None:
    """Audit a read: committed before the answer is sent, by the app's group-committing writer
    (``core.audit.AuditWriter``) so concurrent readers do not queue for the write lock."""
    writer = getattr(request.app.state, "audit", None)
    if writer is None:  # an app used without its lifespan
        record(session, username, "read", object_type, object_id, detail)
        session.commit()
    else:
        session.close()  # give the connection back while waiting for the commit
        writer.record(username, "read", object_type, object_id, detail)
