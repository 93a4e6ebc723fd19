"""Password hashing (argon2), signed tokens (JWT, HS256) and the keyed digest of uploads.

Every use has its own key derived from the one secret (core.config.derived_key): access tokens,
page sessions, image links and upload digests cannot stand in for one another."""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.config import derived_key

_hasher = PasswordHasher()


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(password: str, password_hash: str) -> bool:
    try:
        return _hasher.verify(password_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def create_token(
    subject: str, *, purpose: str, minutes: int, extra: dict[str, Any] | None = None
) -> str:
    """A signed token for ``subject`` valid ``minutes`` minutes, bound to ``purpose``."""
    now = datetime.now(UTC)
    claims: dict[str, Any] = {
        "sub": subject,
        "purpose": purpose,
        "iat": now,
        "exp": now + timedelta(minutes=minutes),
    }
    claims.update(extra or {})
    return jwt.encode(claims, _token_key(purpose), algorithm="HS256")


def read_token(token: str, *, purpose: str) -> dict[str, Any]:
    """The claims of a valid token for ``purpose``; raises ``jwt.PyJWTError`` otherwise."""
    claims = jwt.decode(
        token,
        _token_key(purpose),
        algorithms=["HS256"],
        options={"require": ["exp", "sub", "purpose"]},
    )
    if claims.get("purpose") != purpose:
        raise jwt.InvalidTokenError("token used for the wrong purpose")
    # ``sub`` is a user id: digits only, within the database's integer range (else a lookup
    # would fail with a 500 instead of the 401 every other bad token gets)
    sub = claims.get("sub")
    if (
        not (isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= 10)
        or not 0 < int(sub) < 2**31
    ):
        raise jwt.InvalidTokenError("token subject is not a user id")
    # a page session carries its CSRF token and the account's session epoch
    if purpose == "session" and not (
        isinstance(claims.get("csrf"), str) and type(claims.get("epoch")) is int
    ):
        raise jwt.InvalidTokenError("session token without its CSRF token or epoch")
    return claims


def _token_key(purpose: str) -> bytes:
    """The signing key of tokens made for ``purpose`` (``access``, ``session``, ...)."""
    return derived_key(f"jwt:{purpose}")


def upload_digest(data: bytes) -> str:
    """HMAC-SHA256 of an upload's original bytes under a server-side key (hex): equal bytes give
    equal digests (duplicates are found), yet the stored value cannot be matched to a camera
    file by anyone without the key, unlike a plain SHA-256."""
    return hmac.new(derived_key("upload-digest"), data, hashlib.sha256).hexdigest()


# Image links: a processed image behind a signed, expiring URL (for Label Studio and the pages'
# thumbnails). The URL carries the photo id, the variant, an expiry time and an HMAC over the three,
# keyed with the server's secret: it can be handed to Label Studio without a Spira account, it
# expires, and it cannot be altered to point at another photo. Core owns the signing so that the
# annotation jobs (which hand links out) and the API route (which serves them) share it.


class ImageLinkError(ValueError):
    """A signed image link that is expired or not valid; ``str(err)`` says which, for the user."""


def image_link_signature(photo_id: str, variant: str, expires: int) -> str:
    key = derived_key("image-link")
    return hmac.new(key, f"{photo_id}:{variant}:{expires}".encode(), hashlib.sha256).hexdigest()[
        :32
    ]


def signed_image_path(photo_id: str, variant: str = "image", *, ttl_s: int = 7 * 24 * 3600) -> str:
    """Path (append to the public base URL) of a signed link valid ``ttl_s`` seconds."""
    expires = int(time.time()) + ttl_s
    sig = image_link_signature(photo_id, variant, expires)
    return f"/api/images/{photo_id}/{variant}?expires={expires}&sig={sig}"


def verify_image_link(photo_id: str, variant: str, expires: int, sig: str) -> None:
    """Raise :class:`ImageLinkError` unless ``sig`` signs this photo, variant and unexpired time."""
    if expires < time.time():
        raise ImageLinkError("this image link has expired; ask for a new one")
    if (
        len(sig) != 32
        or any(c not in "0123456789abcdef" for c in sig)
        or not hmac.compare_digest(sig, image_link_signature(photo_id, variant, expires))
    ):
        raise ImageLinkError("this image link is not valid")
