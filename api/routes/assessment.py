"""Cases, response sheets and ratings imports (assessment), and organisational data imports."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Literal

import pandas as pd
from fastapi import APIRouter, File, Header, HTTPException, Query, Response, UploadFile, status
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from api.deps import MAX_ID, CurrentUser, SessionDep, can_upload_to_unit, require_role
from api.schemas import (
    CalibrationRatingIn,
    CalibrationResponseOut,
    ErrorOut,
    ImportOut,
    SheetCountOut,
    SheetIn,
    SheetOut,
    safe_text,
)
from assessment.cases import Case, load_case_library
from assessment.ratings import RatingsFileError
from core.audit import record
from core.models import Group, ResponseSheet, Unit, User
from profiles.context import ContextFileError

router = APIRouter(prefix="/api", tags=["assessment"])

_IMPORT_SUFFIXES = {".csv", ".xlsx"}


@router.get(
    "/cases",
    response_model=list[Case],
    summary="The case library: structured cases and their rubrics",
)
def list_cases(
    user: CurrentUser,
    area: Annotated[str | None, Query(max_length=40, description="curriculum area")] = None,
    age_band: Annotated[str | None, Query(max_length=16, examples=["4-5"])] = None,
) -> list[Case]:
    return sorted(
        (
            c
            for c in load_case_library()
            if (not area or c.area == area) and (not age_band or age_band in c.age_bands)
        ),
        key=lambda c: c.id,
    )


@router.post(
    "/sheets",
    response_model=SheetOut,
    status_code=status.HTTP_201_CREATED,
    responses={
        200: {"model": SheetOut, "description": "already recorded (a retry with the same key)"},
        403: {"model": ErrorOut},
        404: {"model": ErrorOut},
        422: {"model": ErrorOut},
    },
    summary="Record one response sheet (an anonymous child's response to a case, rated per item)",
    description=(
        "Send an `Idempotency-Key` header (at most 64 characters) so a retry answers 200 with the "
        "first sheet's id instead of recording the sheet twice."
    ),
)
def record_sheet_route(
    session: SessionDep,
    user: CurrentUser,
    body: SheetIn,
    response: Response,
    idempotency_key: Annotated[str | None, Header(alias="Idempotency-Key", max_length=64)] = None,
) -> SheetOut:
    from assessment.store import (
        SheetRejected,
        count_sheets,
        idempotency_external_id,
        record_sheet,
        sheet_by_key,
    )

    if not can_upload_to_unit(user, body.unit_id):
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="you may not record ratings for this unit"
        )
    unit = session.get(Unit, body.unit_id)
    group = session.get(Group, body.group_id) if body.group_id is not None else None
    # a group of another unit gets the same answer as one that does not exist
    if unit is None or (body.group_id is not None and (group is None or group.unit_id != unit.id)):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such unit or group")
    if idempotency_key:
        try:
            safe_text(idempotency_key, "Idempotency-Key")
        except ValueError as err:
            raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
        first = sheet_by_key(session, user.id, idempotency_key)
        if first is not None:
            response.status_code = status.HTTP_200_OK
            return _sheet_out(session, first, count_sheets)
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
    if idempotency_key:
        sheet.external_id = idempotency_external_id(user.id, idempotency_key)
    record(session, user.username, "create", "sheet", sheet.id, {"unit_id": unit.id})
    try:
        session.commit()
    except IntegrityError:
        # the same key raced in from another request: answer with the sheet that won
        session.rollback()
        first = sheet_by_key(session, user.id, idempotency_key or "")
        if first is None:
            raise
        response.status_code = status.HTTP_200_OK
        return _sheet_out(session, first, count_sheets)
    return _sheet_out(session, sheet, count_sheets)


def _sheet_out(session: Session, sheet, count_sheets) -> SheetOut:
    from sqlalchemy import func, select

    from core.models import Rating

    n_ratings = session.scalar(
        select(func.count()).select_from(Rating).where(Rating.sheet_id == sheet.id)
    )
    n = (
        count_sheets(session, case_id=sheet.case_id, group_id=sheet.group_id, term=sheet.term)
        if sheet.group_id is not None
        else None
    )
    return SheetOut(sheet_id=sheet.id, term=sheet.term, n_ratings=int(n_ratings or 0), n_recorded=n)


@router.get(
    "/sheets/count",
    response_model=SheetCountOut,
    responses={403: {"model": ErrorOut}, 404: {"model": ErrorOut}},
    summary="How many sheets are recorded for a case and group in this term",
)
def count_sheets_route(
    session: SessionDep,
    user: CurrentUser,
    case_id: Annotated[str, Query(max_length=120)],
    group_id: Annotated[int, Query(ge=1, le=MAX_ID)],
) -> SheetCountOut:
    import datetime as dt

    from assessment.store import count_sheets
    from core.domain import Term

    group = session.get(Group, group_id)
    if group is None or not can_upload_to_unit(user, group.unit_id):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such group that you record for")
    today = dt.date.today()
    term = str(Term.of_month(today.year, today.month))
    return SheetCountOut(
        case_id=case_id,
        group_id=group_id,
        term=term,
        n_recorded=count_sheets(session, case_id=case_id, group_id=group_id, term=term),
    )


@router.delete(
    "/sheets/{sheet_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}},
    summary="Undo: the creator takes back a sheet within 2 minutes of recording it",
)
def undo_sheet_route(session: SessionDep, user: CurrentUser, sheet_id: str) -> Response:
    import datetime as dt

    from assessment.store import UNDO_WINDOW_S, undo_sheet

    why = undo_sheet(session, sheet_id, user_id=user.id, now=dt.datetime.now(dt.UTC))
    if why == "missing":
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="no such sheet of yours")
    if why == "late":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"a sheet can be taken back only within {UNDO_WINDOW_S // 60} minutes",
        )
    record(session, user.username, "undo", "sheet", sheet_id, {})
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)


def _calibration_list(session: Session, user: User) -> list[CalibrationResponseOut]:
    from assessment.store import calibration_of_rater

    mine = calibration_of_rater(session, user.username)
    out = []
    for case in sorted(load_case_library(), key=lambda c: c.id):
        for r in case.calibration:
            rated = r.id in mine
            out.append(
                CalibrationResponseOut(
                    response_id=r.id,
                    case_id=case.id,
                    title_sv=case.title_sv,
                    title_en=case.title_en,
                    text=r.text,
                    rubric=[item.model_dump() for item in case.rubric if item.id in r.reference],
                    rated=rated,
                    my_levels=mine.get(r.id, {}),
                    reference=r.reference if rated else None,
                    explanation=r.explanation if rated else None,
                )
            )
    return out


@router.get(
    "/calibration",
    response_model=list[CalibrationResponseOut],
    summary="Calibration responses of the case library; reference levels only once rated",
)
def list_calibration(session: SessionDep, user: CurrentUser) -> list[CalibrationResponseOut]:
    return _calibration_list(session, user)


@router.post(
    "/calibration/ratings",
    response_model=CalibrationResponseOut,
    status_code=status.HTTP_201_CREATED,
    responses={422: {"model": ErrorOut}},
    summary="Rate a calibration response once; the answer shows the reference levels",
)
def rate_calibration(
    session: SessionDep,
    body: CalibrationRatingIn,
    user: User = require_role("educator", "admin"),
) -> CalibrationResponseOut:
    import datetime as dt

    from assessment.store import SheetRejected, record_calibration

    try:
        record_calibration(
            session,
            library=load_case_library(),
            response_id=body.response_id,
            rater=user.username,
            rated_on=dt.date.today(),
            levels=body.levels,
            created_by=user.id,
        )
    except SheetRejected as err:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    record(session, user.username, "create", "calibration_rating", body.response_id, {})
    session.commit()
    return next(r for r in _calibration_list(session, user) if r.response_id == body.response_id)


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
    indicators: UploadFile | None = None,
) -> ImportOut:
    """One implementation of both imports: read (capped, from memory), validate, store all or
    nothing, audit. Errors name row, column and reason, never a server path. ``indicators``: an
    indicator dictionary declaring the context file's quality-indicator columns."""
    raw = _read_upload(file)
    raw_dictionary = _read_upload(indicators) if indicators is not None else None
    given: list = []
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
            from profiles.indicators import merge_dictionaries, validate_indicator_dictionary
            from profiles.store import import_context, stored_indicators

            if raw_dictionary is not None:
                given = validate_indicator_dictionary(raw_dictionary)
            declared = merge_dictionaries(stored_indicators(session), given)
            n = import_context(session, validate_context(raw, declared), given)
    except (RatingsFileError, ContextFileError) as err:
        session.rollback()
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    record(
        session,
        user.username,
        "import",
        kind,
        None,
        {"sheets": n}
        if kind == "ratings"
        else {"rows": n, **({"indicators": [i.key for i in given]} if given else {})},
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
    summary="Import organisational data per unit and term from CSV/XLSX, with quality indicators declared in an optional indicator dictionary (`indicators`); all or nothing",
)
def import_context_route(
    session: SessionDep,
    file: Annotated[UploadFile, File()],
    indicators: Annotated[UploadFile | None, File()] = None,
    user: User = require_role("researcher", "admin"),
) -> ImportOut:
    return _import(session, user, file, "context", indicators)


@router.get(
    "/assessment/recorded",
    summary="For researchers: sheets per unit, case and term, and each educator's calibration agreement",
)
def recorded_route(
    session: SessionDep, user: User = require_role("researcher", "admin")
) -> dict[str, list[dict]]:
    from sqlalchemy import func, select

    from assessment.store import calibration_agreement

    rows = session.execute(
        select(Unit.name, ResponseSheet.case_id, ResponseSheet.term, func.count())
        .join(Unit, Unit.id == ResponseSheet.unit_id)
        .group_by(Unit.name, ResponseSheet.case_id, ResponseSheet.term)
        .order_by(Unit.name, ResponseSheet.case_id, ResponseSheet.term)
    ).all()
    return {
        "sheets": [
            {"unit": unit, "case": case, "term": term, "n": int(n)} for unit, case, term, n in rows
        ],
        "calibration": calibration_agreement(session, load_case_library()),
    }
