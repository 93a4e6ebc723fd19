"""Units and their profiles (read access: a principal their own units, researchers and admins all)."""

from __future__ import annotations

from typing import Annotated

import pandas as pd
from fastapi import APIRouter, HTTPException, Path, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import select
from sqlalchemy.orm import Session

from api.deps import (
    CurrentUser,
    Reader,
    SessionDep,
    UnitId,
    can_read_unit,
    readable_unit,
    require_role,
)
from api.measure_views import measure_in_term, measure_out
from api.read_audit import record_read, record_read_async
from api.schemas import (
    ErrorOut,
    MeasureAreaOut,
    MeasureIn,
    MeasureOut,
    MeasurePatch,
    SkippedRowsOut,
    TermSummaryOut,
    UnitOut,
    UnitProfileOut,
    WhatIfIn,
    WhatIfOut,
)
from core.audit import record
from core.config import get_settings
from core.domain import term_problem, term_sort_key
from core.models import Unit, User
from core.users import Principal
from profiles import measures as measures_domain
from profiles.context import CONTEXT_COLUMNS, what_if_problems
from profiles.drawing_age import unit_drawing_age_gap
from profiles.profile import what_if
from profiles.progression import unit_progression
from profiles.queries import ROW_KINDS, photo_estimates, promoted_stage_version, retained_frame
from profiles.schemas import UnitProfile
from profiles.service import profile_service
from training.evaluate import model_validation_of

router = APIRouter(prefix="/api", tags=["units"])


@router.get("/units", response_model=list[UnitOut], summary="Units you may read, with their groups")
def list_units(session: SessionDep, user: CurrentUser) -> list[UnitOut]:
    units = session.scalars(select(Unit).order_by(Unit.name)).all()
    return [UnitOut.model_validate(u) for u in units if can_read_unit(user, u.id)]


def _unit_terms(built: dict, unit: str) -> list[str]:
    return sorted({t for (u, t) in built["profiles"] if u == unit}, key=term_sort_key)


@router.get(
    "/units/{unit_id}/profile",
    response_model=UnitProfileOut,
    responses={404: {"model": ErrorOut}},
    summary="A unit's profile: progression per term, and the triangulated profile of one term",
)
async def unit_profile(
    request: Request, reader: Reader, unit_id: UnitId, term: str | None = None
) -> UnitProfileOut:
    # The hot read of the principals' pages (bench/api_load.py). While the cached build is known
    # to be current, the answer is a memoised body: no database, no thread. Otherwise it is
    # made in a worker thread against the database and memoised with the build.
    if not can_read_unit(reader, unit_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no unit {unit_id} that you may read"
        )
    built = profile_service.peek()
    answer: tuple[str | None, bytes] | None = None
    if built is not None:
        key = ("answer", unit_id, term)
        answer = built["memo"].get(key) or profile_service.previous_or_refresh(
            built, key, lambda: _profile_answer(request, reader, unit_id, term)
        )
    if answer is None:
        answer = await run_in_threadpool(_profile_answer, request, reader, unit_id, term)
    chosen, body = answer
    await record_read_async(request, reader.username, "profile", unit_id, {"term": chosen})
    # Validated against UnitProfileOut when it was built; sent as it is.
    return Response(content=body, media_type="application/json")  # type: ignore[return-value]


def _profile_answer(
    request: Request, reader: Principal, unit_id: int, term: str | None
) -> tuple[str | None, bytes]:
    """(the term shown, the serialised UnitProfileOut), memoised with the profile build under
    ("answer", unit id, requested term)."""
    with request.app.state.session_factory() as session:
        unit = readable_unit(session, reader, unit_id)
        settings = get_settings()
        # Everything below the access check is derived from the cached build and kept with it:
        # the unit's progression (bootstrap intervals) and the serialised answer are computed
        # once per change of the data, not per read.
        built = profile_service.build(session)
        terms = profile_service.memoised(
            built,
            ("terms", unit.id),
            lambda: unit_progression(
                photo_estimates(session, [unit.id]),
                min_n=settings.min_group_size,
                resamples=settings.bootstrap_resamples,
                retained=retained_frame(session, [unit.id]),
            ),
        )
        available = _unit_terms(built, unit.name)
        if term is not None and term not in available and term not in [t["term"] for t in terms]:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no data for {unit.name} in term {term}"
            )
        chosen = term or (available[-1] if available else None)
        body = profile_service.memoised(
            built,
            ("profile_json", unit.id, chosen),
            lambda: (
                UnitProfileOut.model_validate(
                    {
                        "unit_id": unit.id,
                        "unit": unit.name,
                        "model_version": promoted_stage_version(session),
                        "model_validation": model_validation_of(promoted_stage_version(session)),
                        "drawing_age_gap": unit_drawing_age_gap(
                            session,
                            unit.id,
                            min_n=settings.min_group_size,
                            resamples=settings.bootstrap_resamples,
                        ),
                        "min_group_size": settings.min_group_size,
                        "terms": terms,
                        "term": chosen,
                        "profile": built["profiles"].get((unit.name, chosen)) if chosen else None,
                    }
                )
                .model_dump_json()
                .encode()
            ),
        )
        return profile_service.memoised(built, ("answer", unit.id, term), lambda: (chosen, body))


@router.get(
    "/profiles",
    response_model=list[UnitProfile],
    summary="Profiles of every unit you may read (a principal their own, researchers all), latest term or ?term=",
)
def list_profiles(
    request: Request, session: SessionDep, user: CurrentUser, term: str | None = None
) -> list[UnitProfile]:
    built = profile_service.build(session)
    readable = {u.name for u in session.scalars(select(Unit)) if can_read_unit(user, u.id)}
    out = []
    for name in sorted(readable):
        terms = _unit_terms(built, name)
        chosen = term if term in terms else (None if term else (terms[-1] if terms else None))
        if chosen:
            out.append(built["profiles"][(name, chosen)])
    record_read(request, session, user.username, "profiles", None, {"term": term, "n": len(out)})
    return out


@router.get(
    "/profiles/skipped",
    response_model=SkippedRowsOut,
    summary="Stored rows left out of the profiles because they cannot be used (researchers, admins)",
)
def skipped_rows_route(
    session: SessionDep, user: User = require_role("researcher", "admin")
) -> SkippedRowsOut:
    built = profile_service.build(session)
    counts = {kind: int(built.get("skipped", {}).get(kind, 0)) for kind in ROW_KINDS}
    return SkippedRowsOut(**counts, total=sum(counts.values()))


@router.post(
    "/units/{unit_id}/what-if",
    response_model=WhatIfOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Predicted change of each outcome for a change of the unit's context (an association)",
)
def what_if_route(
    session: SessionDep, user: CurrentUser, unit_id: UnitId, body: WhatIfIn
) -> WhatIfOut:
    unit = readable_unit(session, user, unit_id)
    unknown = sorted(set(body.changes) - set(CONTEXT_COLUMNS))
    if unknown or not body.changes:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"changes must name context columns ({', '.join(CONTEXT_COLUMNS)}); unknown: {', '.join(unknown) or 'none given'}",
        )
    built = profile_service.build(session)
    context: pd.DataFrame = built["context"]
    rows = context[context["unit"] == unit.name]
    if body.term:
        rows = rows[rows["term"] == body.term]
    if rows.empty or not built["models"]:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail=f"no organisational data{' for ' + body.term if body.term else ''} for {unit.name}, or too little data to fit the model",
        )
    row = rows.sort_values("term", key=lambda s: s.map(term_sort_key)).iloc[-1]
    problems = what_if_problems({c: row[c] for c in CONTEXT_COLUMNS}, body.changes)
    if problems:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail="; ".join(problems))
    results = what_if(built["models"], row, body.changes)
    return WhatIfOut(unit=unit.name, term=str(row["term"]), results=results)


# ---- measures (issue 19) -------------------------------------------------------------------------
# Read: whoever may read the unit (educators read their units' measures, read-only). Write: a
# principal of the unit, or an administrator. Every read and change is audited.


def _may_write_measures(user: User, unit_id: int) -> None:
    if user.role == "admin" or (user.role == "principal" and unit_id in user.unit_ids):
        return
    if user.role == "principal":
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no unit {unit_id} that you may read"
        )
    raise HTTPException(
        status.HTTP_403_FORBIDDEN,
        detail="measures are recorded by the unit's principal or an administrator",
    )


@router.get(
    "/units/{unit_id}/measures",
    response_model=list[MeasureOut],
    responses={404: {"model": ErrorOut}},
    summary="A unit's measures (åtgärder), each with the follow-up of its area",
)
def list_unit_measures(
    request: Request, session: SessionDep, user: CurrentUser, unit_id: UnitId
) -> list[MeasureOut]:
    unit = readable_unit(session, user, unit_id)
    built = profile_service.build(session)
    min_n = get_settings().min_group_size
    out = [
        measure_out(m, unit.name, built["profiles"], min_n)
        for m in measures_domain.list_measures(session, unit.id)
    ]
    record_read(request, session, user.username, "measures", unit.id, {"n": len(out)})
    return out


@router.get(
    "/measures/areas",
    response_model=list[MeasureAreaOut],
    summary="Areas a measure may address, with suggestions from each area's help text",
)
def measure_areas(user: CurrentUser) -> list[MeasureAreaOut]:
    return [MeasureAreaOut.model_validate(a) for a in measures_domain.suggestions()]


@router.get(
    "/units/{unit_id}/measures/summary",
    response_model=TermSummaryOut,
    responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Term summary: every measure of the unit running in the term, with its follow-up",
)
def unit_term_summary(
    request: Request,
    session: SessionDep,
    user: CurrentUser,
    unit_id: UnitId,
    term: Annotated[str | None, Query(max_length=8, examples=["2026-HT"])] = None,
) -> TermSummaryOut:
    unit = readable_unit(session, user, unit_id)
    if term is not None and (problem := term_problem(term, "term")):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem)
    built = profile_service.build(session)
    measures = measures_domain.list_measures(session, unit.id)
    known = _unit_terms(built, unit.name) + [m.start_term for m in measures]
    # by default the latest term with a profile (a measure may be planned for a coming term)
    profiled = _unit_terms(built, unit.name)
    chosen = term or (max(profiled or known, key=term_sort_key) if known else None)
    min_n = get_settings().min_group_size
    rows = (
        [
            measure_in_term(m, unit.name, built["profiles"], min_n, chosen)
            for m in measures_domain.running_in(measures, chosen)
        ]
        if chosen
        else []
    )
    record_read(
        request, session, user.username, "measures", unit.id, {"term": chosen, "n": len(rows)}
    )
    return TermSummaryOut(unit_id=unit.id, unit=unit.name, term=chosen, measures=rows)


def _problem(err: ValueError) -> HTTPException:
    return HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err))


@router.post(
    "/units/{unit_id}/measures",
    response_model=MeasureOut,
    status_code=status.HTTP_201_CREATED,
    responses={404: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Record a measure for a development area (principal of the unit, admin)",
)
def create_unit_measure(
    session: SessionDep, user: CurrentUser, unit_id: UnitId, body: MeasureIn
) -> MeasureOut:
    _may_write_measures(user, unit_id)
    unit = readable_unit(session, user, unit_id)
    try:
        measure = measures_domain.create_measure(session, unit.id, body.model_dump(), user.id)
    except measures_domain.MeasureError as err:
        raise _problem(err) from None
    record(
        session,
        user.username,
        "create",
        "measure",
        measure.id,
        {"unit_id": unit.id, "area": measure.area},
    )
    session.commit()
    built = profile_service.build(session)
    return measure_out(measure, unit.name, built["profiles"], get_settings().min_group_size)


MeasureId = Annotated[int, Path(ge=1, le=2**31 - 1, description="measure id")]


def _unit_measure(session: Session, user: User, unit_id: int, measure_id: int):
    _may_write_measures(user, unit_id)
    unit = readable_unit(session, user, unit_id)
    measure = measures_domain.get_measure(session, unit.id, measure_id)
    if measure is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no measure {measure_id} in unit {unit_id}"
        )
    return unit, measure


@router.patch(
    "/units/{unit_id}/measures/{measure_id}",
    response_model=MeasureOut,
    responses={404: {"model": ErrorOut}, 403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Edit a measure (principal of the unit, admin)",
)
def edit_unit_measure(
    session: SessionDep,
    user: CurrentUser,
    unit_id: UnitId,
    measure_id: MeasureId,
    body: MeasurePatch,
) -> MeasureOut:
    unit, measure = _unit_measure(session, user, unit_id, measure_id)
    try:
        changed = measures_domain.update_measure(
            session, measure, body.model_dump(exclude_unset=True)
        )
    except measures_domain.MeasureError as err:
        raise _problem(err) from None
    record(
        session,
        user.username,
        "update",
        "measure",
        measure.id,
        {"unit_id": unit.id, "fields": changed},
    )
    session.commit()
    built = profile_service.build(session)
    return measure_out(measure, unit.name, built["profiles"], get_settings().min_group_size)


@router.delete(
    "/units/{unit_id}/measures/{measure_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses={404: {"model": ErrorOut}, 403: {"model": ErrorOut}},
    summary="Delete a measure (principal of the unit, admin)",
)
def delete_unit_measure(
    session: SessionDep, user: CurrentUser, unit_id: UnitId, measure_id: MeasureId
) -> Response:
    unit, measure = _unit_measure(session, user, unit_id, measure_id)
    record(
        session,
        user.username,
        "delete",
        "measure",
        measure.id,
        {"unit_id": unit.id, "area": measure.area, "title": measure.title},
    )
    session.delete(measure)
    session.commit()
    return Response(status_code=status.HTTP_204_NO_CONTENT)
