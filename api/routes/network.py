"""The municipality's network view (issue 19): every unit's development areas and running
measures in one term, and the areas several units share (where a network meeting on the area
could help). Administrators and researchers only; units are listed alphabetically, never ranked.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from sqlalchemy import select

from api.deps import SessionDep, require_role
from api.measure_views import measure_in_term
from api.read_audit import record_read
from api.schemas import ErrorOut, NetworkAreaOut, NetworkOut, NetworkUnitOut
from core.config import get_settings
from core.domain import term_problem, term_sort_key
from core.models import Unit, User
from profiles import measures as measures_domain
from profiles.service import profile_service

router = APIRouter(prefix="/api", tags=["network"])


@router.get(
    "/network",
    response_model=NetworkOut,
    responses={403: {"model": ErrorOut}, 422: {"model": ErrorOut}},
    summary="Every unit's development areas and measures in a term, and the areas units share "
    "(administrators, researchers; no ranking)",
)
def network(
    request: Request,
    session: SessionDep,
    term: Annotated[str | None, Query(max_length=8, examples=["2026-HT"])] = None,
    user: User = require_role("admin", "researcher"),
) -> NetworkOut:
    if term is not None and (problem := term_problem(term, "term")):
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=problem)
    built = profile_service.build(session)
    profiles = built["profiles"]
    measures = measures_domain.list_measures(session)
    terms = sorted({t for (_, t) in profiles} | {m.start_term for m in measures}, key=term_sort_key)
    # by default the latest term with profiles: a measure planned for a coming term would
    # otherwise open the view on a term where no unit has a profile yet
    profiled = sorted({t for (_, t) in profiles}, key=term_sort_key)
    chosen = term or (profiled[-1] if profiled else terms[-1] if terms else None)
    min_n = get_settings().min_group_size
    units_out: list[NetworkUnitOut] = []
    development: dict[str, list[str]] = {}
    measured: dict[str, list[str]] = {}
    for unit in session.scalars(select(Unit).order_by(Unit.name)):
        profile = profiles.get((unit.name, chosen)) if chosen else None
        areas = list(profile.development_areas) if profile is not None else []
        running = (
            measures_domain.running_in([m for m in measures if m.unit_id == unit.id], chosen)
            if chosen
            else []
        )
        development[unit.name] = [d.outcome for d in areas]
        measured[unit.name] = [m.area for m in running]
        units_out.append(
            NetworkUnitOut(
                unit_id=unit.id,
                unit=unit.name,
                has_profile=profile is not None,
                development_areas=[
                    NetworkAreaOut(area=d.outcome, label_sv=d.label_sv, label_en=d.label_en)
                    for d in areas
                ],
                measures=[
                    measure_in_term(m, unit.name, profiles, min_n, chosen)  # type: ignore[arg-type]
                    for m in running
                ],
            )
        )
    record_read(
        request, session, user.username, "network", None, {"term": chosen, "n": len(units_out)}
    )
    return NetworkOut.model_validate(
        {
            "term": chosen,
            "terms": terms,
            "units": units_out,
            "common_areas": measures_domain.common_areas(development, measured),
        }
    )
