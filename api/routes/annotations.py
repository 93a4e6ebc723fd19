"""Label Studio's webhook and the agreement figures for researchers."""

from __future__ import annotations

import hmac
from typing import Any

from fastapi import APIRouter, Header, HTTPException, Request, status

from annotation.labelstudio import parse_deleted, parse_webhook
from annotation.store import agreement_report, remove_annotations, store_annotations
from api.deps import SessionDep, require_role
from api.schemas import ErrorOut
from core.audit import record
from core.config import get_settings
from core.models import User
from training.agreement import AgreementReport

router = APIRouter(prefix="/api/annotations", tags=["annotations"])


@router.post(
    "/webhook",
    summary="Label Studio reports a new, changed or deleted annotation (shared secret checked)",
)
async def webhook(
    request: Request,
    session: SessionDep,
    secret: str | None = Header(None, alias="X-Spira-Webhook-Secret"),
) -> dict[str, int]:
    expected = get_settings().webhook_secret
    # compared as bytes: a header with non-ASCII characters is a wrong secret (401), not a 500
    if not expected or not secret or not hmac.compare_digest(secret.encode(), expected.encode()):
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="missing or wrong webhook secret")
    try:
        payload: Any = await request.json()
        rows = parse_webhook(payload)
        deleted = parse_deleted(payload)
    except RecursionError:  # e.g. a 100k-deep JSON array: refused, not a 500
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail="not a Label Studio annotation payload: the JSON is nested too deeply",
        ) from None
    except (ValueError, KeyError, TypeError) as err:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            detail=f"not a Label Studio annotation payload: {err}",
        ) from None
    added, updated = store_annotations(session, rows)
    removed = remove_annotations(session, deleted)
    record(
        session,
        "label-studio",
        "label",
        "annotation",
        None,
        {"added": added, "updated": updated, "removed": removed},
    )
    session.commit()
    return {"added": added, "updated": updated, "removed": removed}


@router.get(
    "/agreement",
    response_model=AgreementReport,
    responses={404: {"model": ErrorOut}},
    summary="Agreement between researchers' stage labels (QWK, Krippendorff's alpha, each vs consensus, n)",
)
def agreement(
    session: SessionDep, user: User = require_role("researcher", "admin")
) -> AgreementReport:
    report = agreement_report(session)
    if report is None:
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail="no labels stored yet; run `spira annotate pull`"
        )
    return report
