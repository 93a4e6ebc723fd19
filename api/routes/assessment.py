"""Cases, response sheets and ratings imports (assessment), and organisational data imports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, File, HTTPException, UploadFile, status
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep, can_upload_to_unit, require_role
from api.schemas import ErrorOut, ImportOut, SheetIn, SheetOut
from assessment.cases import Case, load_case_library
from assessment.ratings import RatingsFileError
from core.audit import record
from core.models import Group, Unit, User
from profiles.context import ContextFileError

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
    # a group of another unit gets the same answer as one that does not exist
    if unit is None or (body.group_id is not None and (group is None or group.unit_id != unit.id)):
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


def _read_upload(file: UploadFile) -> pd.DataFrame:
    """The upload's first sheet, read from memory with the caps of core.spreadsheet (413 over a
    cap, 415 another type, 422 unreadable). Runs in a worker thread: the routes are plain defs."""
    from core.config import get_settings
    from core.spreadsheet import SpreadsheetRefused, read_sheet

    suffix = Path(file.filename or "").suffix.lower()
    if suffix not in _IMPORT_SUFFIXES:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE, detail="send a .csv or .xlsx file"
        )
    limit = get_settings().max_import_bytes
    file.file.seek(0)
    data = file.file.read(limit + 1)
    try:
        return read_sheet(data, suffix, max_bytes=limit)
    except SpreadsheetRefused as err:
        raise HTTPException(err.status, detail=err.reason) from None


def _import(
    session: Session,
    user: User,
    file: UploadFile,
    kind: Literal["ratings", "context"],
) -> ImportOut:
    """One implementation of both imports: read (capped, from memory), validate, store all or
    nothing, audit. Errors name row, column and reason, never a server path."""
    raw = _read_upload(file)
    try:
        if kind == "ratings":
            from assessment.ratings import text_cells, validate_ratings
            from assessment.store import import_ratings

            n = import_ratings(
                session,
                validate_ratings(text_cells(raw), load_case_library()),
                created_by=user.id,
            )
        else:
            from profiles.context import validate_context
            from profiles.store import import_context

            n = import_context(session, validate_context(raw))
    except (RatingsFileError, ContextFileError) as err:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    record(
        session,
        user.username,
        "import",
        kind,
        None,
        {"sheets": n} if kind == "ratings" else {"rows": n},
    )
    session.commit()
    return ImportOut(imported=n)


_import_errors: dict[int | str, dict] = {code: {"model": ErrorOut} for code in (413, 415, 422)}


@router.post(
    "/ratings/import",
    response_model=ImportOut,
    responses=_import_errors,
    summary="Import ratings from CSV/XLSX (sheet_id, unit, group, age_band, rater, case, item, level, date); all or nothing",
)
def import_ratings_route(
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    user: User = require_role("researcher", "admin"),
) -> ImportOut:
    return _import(session, user, file, "ratings")


@router.post(
    "/context/import",
    response_model=ImportOut,
    responses=_import_errors,
    summary="Import organisational data per unit and term from CSV/XLSX; all or nothing",
)
def import_context_route(
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    user: User = require_role("researcher", "admin"),
) -> ImportOut:
    return _import(session, user, file, "context")
