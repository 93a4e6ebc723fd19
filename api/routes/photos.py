"""Uploading photos of children's work and following them through the queue."""

from __future__ import annotations

from datetime import date
from typing import Annotated

from fastapi import (
    APIRouter,
    File,
    Form,
    Header,
    HTTPException,
    Request,
    Response,
    UploadFile,
    status,
)

from api.deps import MAX_ID, CurrentUser, SessionDep, can_read_unit, can_upload_to_unit
from api.schemas import ErrorOut, PhotoOut, UploadOut, safe_text
from core.audit import record
from core.config import get_settings
from core.domain import check_date
from core.models import Group, Photo, Unit
from vision.ingest import IngestError
from vision.photos import PhotoRejected, accept_photo

router = APIRouter(prefix="/api/photos", tags=["photos"])

_errors: dict[int | str, dict] = {
    code: {"model": ErrorOut} for code in (401, 403, 404, 413, 415, 422)
}


@router.post(
    "",
    response_model=UploadOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": UploadOut, "description": "already stored (duplicate or retry)"},
        **_errors,
    },
    summary="Upload a photo of children's work",
    description=(
        "Multipart upload. The format is recognised from the bytes (JPEG, PNG, WebP, HEIC). Before "
        "anything is stored the photo is re-encoded without metadata, faces are blurred and the sheet "
        "is straightened. Send an `Idempotency-Key` header so a retry returns the first answer."
    ),
)
def upload_photo(
    request: Request,
    response: Response,
    session: SessionDep,
    user: CurrentUser,
    file: Annotated[UploadFile, File(description="the photo")],
    unit_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    group_id: Annotated[int, Form(ge=1, le=MAX_ID)],
    activity: Annotated[str, Form(max_length=120)],
    age_band: Annotated[str, Form(examples=["3-4"])],
    captured_on: Annotated[date | None, Form()] = None,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=80)] = None,
) -> UploadOut:
    if not can_upload_to_unit(user, unit_id):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="you may not upload to this unit")
    unit = session.get(Unit, unit_id)
    group = session.get(Group, group_id)
    # a group of another unit gets the same answer as one that does not exist
    if unit is None or group is None or group.unit_id != unit.id:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such unit or group")
    try:
        safe_text(activity, "activity")
        if captured_on is not None:
            check_date(captured_on, "captured_on")
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    limit = get_settings().max_upload_bytes
    # The route is synchronous, so FastAPI runs it in its thread pool: decoding, the face scan,
    # storage and the commit never stall the event loop (other requests of this process).
    data = file.file.read(limit + 1)
    if len(data) > limit:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"the file is larger than {limit // (1024 * 1024)} MB; take the photo at a lower resolution",
        )
    try:
        result = accept_photo(
            session=session,
            store=request.app.state.store,
            data=data,
            unit=unit,
            group=group,
            activity=activity,
            age_band=age_band,
            captured_on=captured_on,
            uploaded_by=user.id,
            idempotency_key=idempotency_key,
        )
    except IngestError as err:
        raise HTTPException(err.status, detail=err.message) from None
    except PhotoRejected as err:
        raise HTTPException(err.status, detail=err.message) from None
    if result.created:
        record(session, user.username, "upload", "photo", result.photo.id, {"unit_id": unit_id})
        session.commit()
        worker = getattr(request.app.state, "worker", None)
        if worker is not None:
            worker.notify()
    else:
        response.status_code = status.HTTP_200_OK
    return UploadOut(
        photo=PhotoOut.model_validate(result.photo), created=result.created, reason=result.reason
    )


@router.get(
    "/{photo_id}",
    response_model=PhotoOut,
    responses={404: {"model": ErrorOut}},
    summary="A photo's status",
)
def get_photo(session: SessionDep, user: CurrentUser, photo_id: str) -> PhotoOut:
    photo = session.get(Photo, photo_id)
    if photo is None or not can_read_unit(user, photo.unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such photo that you may read")
    return PhotoOut.model_validate(photo)
