"""Password hashing (argon2) and signed tokens (JWT, HS256)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import jwt
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from core.config import get_settings

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
    return jwt.encode(claims, get_settings().secret_key, algorithm="HS256")


def read_token(token: str, *, purpose: str) -> dict[str, Any]:
    """The claims of a valid token for ``purpose``; raises ``jwt.PyJWTError`` otherwise."""
    claims = jwt.decode(
        token,
        get_settings().secret_key,
        algorithms=["HS256"],
        options={"require": ["exp", "sub", "purpose"]},
    )
    if claims.get("purpose") != purpose:
        raise jwt.InvalidTokenError("token used for the wrong purpose")
    # ``sub`` is a user id: digits only, within the database's integer range (else a lookup
    # would fail with a 500 instead of the 401 every other bad token gets)
    sub = claims.get("sub")
    if not (
        isinstance(sub, str) and sub.isascii() and sub.isdigit() and len(sub) <= 10
    ) or not 0 < int(sub) < 2**31:
        raise jwt.InvalidTokenError("token subject is not a user id")
    return claims
