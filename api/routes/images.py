"""Processed images behind signed, expiring URLs (for Label Studio and the pages' thumbnails).

A URL carries the photo id, the variant, an expiry time and an HMAC over the three, keyed with the
server's secret: it can be handed to Label Studio without giving it a Spira account, it expires, and
it cannot be altered to point at another photo. The signing lives in :mod:`core.security`
(:func:`~core.security.signed_image_path`), shared with the annotation jobs that hand links out.
"""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from api.deps import SessionDep
from core.models import Photo
from core.security import ImageLinkError, verify_image_link

router = APIRouter(prefix="/api/images", tags=["images"])
Variant = Literal["image", "thumb"]


@router.get(
    "/{photo_id}/{variant}",
    responses={
        200: {"content": {"image/jpeg": {}}},
        403: {"description": "bad or expired signature"},
    },
    summary="A processed image or thumbnail through a signed, expiring link",
)
def signed_image(
    request: Request, session: SessionDep, photo_id: str, variant: Variant, expires: int, sig: str
) -> Response:
    try:
        verify_image_link(photo_id, variant, expires, sig)
    except ImageLinkError as err:
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail=str(err)) from None
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="the photo no longer exists")
    key = photo.content_key if variant == "image" else photo.thumb_key
    data = request.app.state.store.get(key)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )
