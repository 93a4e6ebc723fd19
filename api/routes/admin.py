"""Deleting photos, reading the audit log and exporting a unit (administrators; educators may delete
their own unit's photos)."""

from __future__ import annotations

import io
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path as FilePath
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from pydantic import BaseModel, ConfigDict

from api.deps import CurrentUser, SessionDep, can_read_unit, can_upload_to_unit, require_role
from api.schemas import ErrorOut
from core.models import Photo, Unit, User
from core.retention import delete_photos, export_unit, find_audit_events

router = APIRouter(prefix="/api", tags=["admin"])


class AuditEventOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    at: datetime
    username: str | None
    action: str
    object_type: str
    object_id: str | None
    detail: dict[str, Any] | None


@router.delete(
    "/photos/{photo_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
    summary="Delete a photo and its stored files (an educator of its unit, or an administrator)",
)
def delete_photo_route(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    photo_id: Annotated[str, Path(max_length=32)],
) -> Response:
    photo = session.get(Photo, photo_id)
    if photo is None or not can_read_unit(user, photo.unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such photo that you may read")
    if not can_upload_to_unit(user, photo.unit_id):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN,
            detail="only an educator of the photo's unit or an administrator may delete it",
        )
    delete_photos(
        session, request.app.state.store, [photo], actor=user.username, reason="deleted on request"
    )
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get(
    "/audit",
    response_model=list[AuditEventOut],
    summary="The audit log, newest first: who uploaded, read, deleted or exported what (admins)",
)
def audit_route(
    session: SessionDep,
    user: User = require_role("admin"),
    username: str | None = Query(None, max_length=80, description="only events by this user"),
    action: str | None = Query(None, max_length=32, description="upload, read, delete, export…"),
    since: datetime | None = Query(None, description="only events at or after this time (UTC)"),
    limit: int = Query(200, ge=1, le=5000),
) -> list[AuditEventOut]:
    events = find_audit_events(session, username=username, action=action, since=since, limit=limit)
    return [AuditEventOut.model_validate(e) for e in events]


@router.get(
    "/units/{unit_id}/export",
    responses={
        200: {"content": {"application/zip": {}}, "description": "tables and images as a ZIP"},
        404: {"model": ErrorOut},
    },
    summary="Everything stored for a unit as a ZIP: tables (JSON and CSV) and processed images (admins)",
)
def export_unit_route(
    request: Request,
    session: SessionDep,
    unit_id: Annotated[int, Path(ge=1, le=2**31 - 1)],
    user: User = require_role("admin"),
) -> Response:
    unit = session.get(Unit, unit_id)
    if unit is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no unit {unit_id}")
    workdir = FilePath(tempfile.mkdtemp(prefix="spira-export-"))
    try:
        result = export_unit(
            session, request.app.state.store, unit.name, workdir, actor=user.username
        )
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
            for path in sorted(result.folder.rglob("*")):
                if path.is_file():
                    archive.write(path, path.relative_to(workdir).as_posix())
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    filename = f"spira-unit-{unit.id}.zip"
    return Response(
        buffer.getvalue(),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{filename}"'},
    )
