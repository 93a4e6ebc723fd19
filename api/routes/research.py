"""Researchers' views: the model registry and the assessment model's item and rater fit; exports."""

from __future__ import annotations

import math
import shutil
import tempfile
from pathlib import Path
from typing import Annotated, Literal

from fastapi import APIRouter, HTTPException, Query, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel, Field
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep, can_read_unit, require_role
from api.schemas import ErrorOut
from core.audit import record
from core.models import Unit, User
from profiles.export import export_profiles
from profiles.queries import measures_frame
from profiles.service import profile_service
from training.model_files import list_models

router = APIRouter(prefix="/api", tags=["research"])


class ModelOut(BaseModel):
    version: str
    promoted: bool
    created_at: str | None = None
    backbone_version: str
    data: dict
    params: dict
    metrics: dict = Field(description="out-of-fold qwk, mae (stages), accuracy, ece, confusion, n")


class ItemFitOut(BaseModel):
    case: str
    item: str
    thresholds: list[float | None] = Field(description="step difficulties in logits")
    se: list[float | None]
    infit: float | None
    outfit: float | None
    n: int


class RaterFitOut(BaseModel):
    rater: str
    severity: float | None = Field(description="logits; higher = more severe")
    se: float | None
    infit: float | None
    outfit: float | None
    n: int


class AssessmentFitOut(BaseModel):
    converged: bool
    iterations: int
    items: list[ItemFitOut]
    raters: list[RaterFitOut]
    warnings: list[str]


def _num(x) -> float | None:
    return None if x is None or not math.isfinite(float(x)) else float(x)


@router.get(
    "/models", response_model=list[ModelOut], summary="Registered stage models, newest first"
)
def list_models_route(user: User = require_role("researcher", "admin")) -> list[ModelOut]:
    return [
        ModelOut(
            version=m["version"],
            promoted=m["promoted"],
            created_at=m.get("created_at"),
            backbone_version=m["backbone_version"],
            data=m.get("data", {}),
            params=m.get("params", {}),
            metrics=m.get("metrics", {}),
        )
        for m in list_models()
    ]


def _confounded_lines(model: object) -> list[str]:
    """One line per unit whose educators' severity the design cannot separate from its ability."""
    by_unit: dict[str, list[str]] = {}
    for c in getattr(model, "confounded_", []):
        by_unit.setdefault(c.unit, []).append(c.rater)
    return [
        f"rater_unit_confounded: unit {unit}: the severity of educator(s) {', '.join(sorted(raters))} "
        "cannot be told apart from the unit's ability (no shared unit, no calibration responses); "
        "the unit's interval is widened accordingly"
        for unit, raters in sorted(by_unit.items())
    ]


@router.get(
    "/assessment/fit",
    response_model=AssessmentFitOut,
    responses={404: {"model": ErrorOut}},
    summary="Item and rater fit of the many-facet model on every stored rating",
)
def assessment_fit(
    session: SessionDep, user: User = require_role("researcher", "admin")
) -> AssessmentFitOut:
    model = profile_service.build(session)["assessment"]
    if model is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND,
            detail="no ratings the assessment model can be fitted to yet (it needs two or more sheets and some rubric item with two or more levels used)",
        )
    items = [
        ItemFitOut(
            case=r.case,
            item=r.item,
            thresholds=[_num(t) for t in r.thresholds],
            se=[_num(t) for t in r.se],
            infit=_num(r.infit),
            outfit=_num(r.outfit),
            n=int(r.n),
        )
        for r in model.item_table().itertuples()
    ]
    raters = [
        RaterFitOut(
            rater=r.rater,
            severity=_num(r.severity),
            se=_num(r.se),
            infit=_num(r.infit),
            outfit=_num(r.outfit),
            n=int(r.n),
        )
        for r in model.rater_table().itertuples()
    ]
    return AssessmentFitOut(
        converged=bool(model.converged_),
        iterations=int(model.n_iter_),
        items=items,
        raters=raters,
        warnings=_confounded_lines(model) + [str(w) for w in model.warnings_],
    )


@router.get(
    "/profiles/export",
    response_class=FileResponse,
    responses={200: {"content": {"text/csv": {}, "application/octet-stream": {}}}},
    summary="The profiles you may read as a flat table (CSV, XLSX or Parquet; columns in docs/profile_columns.md)",
)
def export_profiles_route(
    session: SessionDep,
    user: CurrentUser,
    format: Literal["csv", "xlsx", "parquet"] = "csv",
    unit_id: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
) -> FileResponse:
    readable = {u.name for u in session.scalars(select(Unit)) if can_read_unit(user, u.id)}
    if unit_id is not None:
        unit = session.get(Unit, unit_id)
        if unit is None or unit.name not in readable:
            raise HTTPException(
                status.HTTP_404_NOT_FOUND, detail=f"no unit {unit_id} that you may read"
            )
        readable = {unit.name}
    built = profile_service.build(session)
    chosen = [p for (name, _), p in sorted(built["profiles"].items()) if name in readable]
    folder = Path(tempfile.mkdtemp(prefix="spira-export-"))
    path = folder / f"spira-profiles.{format}"
    try:  # the file is sent from memory; its folder goes before the answer (issue 20)
        export_profiles(chosen, path, format=format, measures=measures_frame(session))
        content = path.read_bytes()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    record(
        session, user.username, "export", "profiles", unit_id, {"format": format, "n": len(chosen)}
    )
    session.commit()
    media = {
        "csv": "text/csv",
        "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        "parquet": "application/octet-stream",
    }
    return Response(  # type: ignore[return-value]
        content,
        media_type=media[format],
        headers={"Content-Disposition": f'attachment; filename="{path.name}"'},
    )
