"""Processed images behind signed, expiring URLs (for Label Studio and the pages' thumbnails).

A URL carries the photo id, the variant, an expiry time and an HMAC over the three, keyed with the
server's secret: it can be handed to Label Studio without giving it a Spira account, it expires, and
it cannot be altered to point at another photo.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Literal

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.responses import Response

from api.deps import SessionDep
from core.config import derived_key
from core.models import Photo

router = APIRouter(prefix="/api/images", tags=["images"])
Variant = Literal["image", "thumb"]


def _signature(photo_id: str, variant: str, expires: int) -> str:
    key = derived_key("image-link")
    return hmac.new(key, f"{photo_id}:{variant}:{expires}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def signed_image_path(
    photo_id: str, variant: Variant = "image", *, ttl_s: int = 7 * 24 * 3600
) -> str:
    """Path (append to the public base URL) of a signed link valid ``ttl_s`` seconds."""
    expires = int(time.time()) + ttl_s
    return f"/api/images/{photo_id}/{variant}?expires={expires}&sig={_signature(photo_id, variant, expires)}"


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
    if expires < time.time():
        raise HTTPException(
            status.HTTP_403_FORBIDDEN, detail="this image link has expired; ask for a new one"
        )
    if (
        len(sig) != 32
        or any(c not in "0123456789abcdef" for c in sig)
        or not hmac.compare_digest(sig, _signature(photo_id, variant, expires))
    ):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="this image link is not valid")
    photo = session.get(Photo, photo_id)
    if photo is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="the photo no longer exists")
    key = photo.content_key if variant == "image" else photo.thumb_key
    data = request.app.state.store.get(key)
    return Response(
        data, media_type="image/jpeg", headers={"Cache-Control": "private, max-age=3600"}
    )
