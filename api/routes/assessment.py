"""Cases, response sheets and ratings imports (assessment), and organisational data imports."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated

from fastapi import APIRouter, File, HTTPException, UploadFile, status

from api.deps import CurrentUser, SessionDep, can_upload_to_unit, require_role
from api.schemas import ErrorOut, ImportOut, SheetIn, SheetOut
from assessment.cases import Case, load_case_library
from core.audit import record
from core.models import Group, Unit, User

router = APIRouter(prefix="/api", tags=["assessment"])

_IMPORT_SUFFIXES = {".csv", ".xlsx"}


@router.get(
    "/cases",
    response_model=list[Case],
    summary="The case library: structured cases and their rubrics",
)
def list_cases(user: CurrentUser) -> list[Case]:
    return sorted(load_case_library(), key=lambda c: c.id)


@router.post(
    "/sheets",
    response_model=SheetOut,
    status_code=status.HTTP_201_CREATED,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Record one response sheet (an anonymous child's response to a case, rated per item)",
)
def record_sheet_route(session: SessionDep, user: CurrentUser, body: SheetIn) -> SheetOut:
    from assessment.store import SheetRejected, record_sheet

    if not can_upload_to_unit(user, body.unit_id):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="you may not record ratings for this unit"
        )
    unit = session.get(Unit, body.unit_id)
    group = session.get(Group, body.group_id) if body.group_id is not None else None
    if unit is None or (body.group_id is not None and group is None):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such unit or group")
    try:
        sheet = record_sheet(
            session,
            library=load_case_library(),
            case_id=body.case_id,
            unit=unit,
            group=group,
            age_band=body.age_band,
            rated_on=body.rated_on,
            rater=user.username,
            levels=body.levels,
            created_by=user.id,
        )
    except SheetRejected as err:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    record(session, user.username, "create", "sheet", sheet.id, {"unit_id": unit.id})
    session.commit()
    return SheetOut(sheet_id=sheet.id, term=sheet.term, n_ratings=len(body.levels))


async def _spooled(file: UploadFile) -> Path:
    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in _IMPORT_SUFFIXES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send a .csv or .xlsx file"
        )
    data = await file.read(20 * 1024 * 1024 + 1)
    if len(data) > 20 * 1024 * 1024:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE, detail="the file is larger than 20 MB"
        )
    tmp = Path(tempfile.mkdtemp(prefix="spira-import-")) / f"upload{suffix}"
    tmp.write_bytes(data)
    return tmp


@router.post(
    "/ratings/import",
    response_model=ImportOut,
    responses={415: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Import ratings from CSV/XLSX (sheet_id, unit, group, age_band, rater, case, item, level, date); all or nothing",
)
async def import_ratings_route(
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    user: User = require_role("researcher", "admin"),
) -> ImportOut:
    from assessment.ratings import RatingsFileError, read_ratings
    from assessment.store import import_ratings

    path = await _spooled(file)
    try:
        table = read_ratings(path, load_case_library())
        n = import_ratings(session, table, created_by=user.id)
    except RatingsFileError as err:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    finally:
        path.unlink(missing_ok=True)
    record(session, user.username, "import", "ratings", None, {"sheets": n})
    session.commit()
    return ImportOut(imported=n)


@router.post(
    "/context/import",
    response_model=ImportOut,
    responses={415: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Import organisational data per unit and term from CSV/XLSX; all or nothing",
)
async def import_context_route(
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    user: User = require_role("researcher", "admin"),
) -> ImportOut:
    from profiles.context import ContextFileError, read_context_file
    from profiles.store import import_context

    path = await _spooled(file)
    try:
        n = import_context(session, read_context_file(path))
    except ContextFileError as err:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    finally:
        path.unlink(missing_ok=True)
    record(session, user.username, "import", "context", None, {"rows": n})
    session.commit()
    return ImportOut(imported=n)
