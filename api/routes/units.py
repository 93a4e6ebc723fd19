"""Units and their profiles (read access: a principal their own units, researchers and admins all)."""

from __future__ import annotations

from fastapi import APIRouter
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, can_read_unit, readable_unit
from api.schemas import ErrorOut, UnitOut, UnitProfileOut
from core.audit import record
from core.config import get_settings
from core.models import Unit
from profiles.store import photo_estimates, promoted_stage_version, unit_progression

router = APIRouter(prefix="/api/units", tags=["units"])


@router.get("", response_model=list[UnitOut], summary="Units you may read, with their groups")
def list_units(session: SessionDep, user: CurrentUser) -> list[UnitOut]:
    units = session.scalars(select(Unit).order_by(Unit.name)).all()
    return [UnitOut.model_validate(u) for u in units if can_read_unit(user, u.id)]


@router.get(
    "/{unit_id}/profile",
    response_model=UnitProfileOut,
    responses={404: {"model": ErrorOut}},
    summary="A unit's profile: progression per term with intervals and n",
)
def unit_profile(
    session: SessionDep, user: CurrentUser, unit_id: int, term: str | None = None
) -> UnitProfileOut:
    unit = readable_unit(session, user, unit_id)
    settings = get_settings()
    rows = photo_estimates(session, [unit.id])
    terms = unit_progression(
        rows, min_n=settings.min_group_size, resamples=settings.bootstrap_resamples
    )
    if term:
        terms = [t for t in terms if t["term"] == term]
    record(session, user.username, "read", "profile", unit.id)
    session.commit()
    return UnitProfileOut.model_validate(
        {
            "unit_id": unit.id,
            "unit": unit.name,
            "model_version": promoted_stage_version(session),
            "min_group_size": settings.min_group_size,
            "terms": terms,
        }
    )
