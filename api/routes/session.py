"""Cookie sessions for the web pages, with a CSRF token bound to each session.

The pages never see a bearer token: signing in sets an HttpOnly, SameSite=Strict ``spira_session``
cookie holding a signed JWT (purpose ``session``) whose ``csrf`` claim the page must echo in the
``X-CSRF-Token`` header on every write (checked in :func:`api.deps.get_current_user`). The API for
programs keeps OAuth2 bearer tokens (``POST /api/token``).
"""

from __future__ import annotations

import secrets
import time
from typing import Annotated

import jwt
from fastapi import APIRouter, Form, HTTPException, Request, Response, status
from pydantic import BaseModel, Field

from api.deps import SessionDep, csrf_matches, session_current
from api.routes.auth import authenticate
from api.schemas import ErrorOut, MeOut
from core.audit import record
from core.config import get_settings
from core.models import User
from core.security import create_token, read_token
from core.users import principal_cache

router = APIRouter(prefix="/session", tags=["session"])

#: Name of the page-session cookie (read by api.deps.get_current_user).
COOKIE = "spira_session"


class SessionOut(BaseModel):
    """The signed-in user of a page session and the CSRF token the page sends on writes."""

    csrf_token: str = Field(
        description="send as the X-CSRF-Token header on every POST/PUT/PATCH/DELETE",
        examples=["kq3V0u3m2c8h2bJ1sQ2Q4w"],
    )
    expires_in: int = Field(description="seconds until the session expires", examples=[28800])
    user: MeOut


class SignedOut(BaseModel):
    signed_out: bool = Field(True, description="the session cookie was cleared")


def _secure_cookie(request: Request) -> bool:
    """Secure flag: always in production (TLS at the proxy), else only when served over https."""
    return get_settings().env == "production" or request.url.scheme == "https"


def _me(user: User) -> MeOut:
    return MeOut.model_validate(
        {"username": user.username, "role": user.role, "units": user.units}, from_attributes=True
    )


@router.post(
    "/login",
    response_model=SessionOut,
    responses={401: {"model": ErrorOut}, 429: {"model": ErrorOut}},
    summary="Sign in to the web pages (sets the session cookie)",
    description=(
        "Form fields `username` and `password`. Failed attempts are rate-limited per user and "
        "address, exactly as for `POST /api/token`. The answer carries the CSRF token to send as "
        "`X-CSRF-Token` on writes, and the user's role and units with their groups."
    ),
)
def login(
    request: Request,
    response: Response,
    session: SessionDep,
    username: Annotated[str, Form(max_length=150)],
    password: Annotated[str, Form(max_length=1024)],
) -> SessionOut:
    address = request.client.host if request.client else "?"
    user = authenticate(session, username, password, address)
    minutes = get_settings().session_minutes
    csrf = secrets.token_urlsafe(32)
    token = create_token(
        str(user.id),
        purpose="session",
        minutes=minutes,
        extra={"csrf": csrf, "role": user.role, "epoch": user.session_epoch},
    )
    response.set_cookie(
        COOKIE,
        token,
        max_age=minutes * 60,
        path="/",
        httponly=True,
        samesite="strict",
        secure=_secure_cookie(request),
    )
    # The answer holds a CSRF token: never let an intermediary keep it.
    response.headers["Cache-Control"] = "no-store"
    return SessionOut(csrf_token=csrf, expires_in=minutes * 60, user=_me(user))


@router.post(
    "/logout",
    response_model=SignedOut,
    summary="Sign out of the web pages (clears the session cookie, ends the account's sessions)",
    responses={403: {"model": ErrorOut}},
    description=(
        "Succeeds also when the session has already expired or ended. A valid session cookie's "
        "account has every page session ended, on every device: a copy of the cookie no longer "
        "works. Like every write, ending a valid session needs its `X-CSRF-Token` (403 without)."
    ),
)
def logout(request: Request, response: Response, session: SessionDep) -> SignedOut:
    token = request.cookies.get(COOKIE)
    if token:
        try:
            claims = read_token(token, purpose="session")
        except jwt.PyJWTError:
            claims = None
        user = session.get(User, int(claims["sub"])) if claims else None
        if user is not None and claims is not None and session_current(user, claims):
            # Ending a live session is a write like any other: another site cannot sign the
            # educator out (and lose their place on a shared tablet) without the session's token.
            if not csrf_matches(request.headers.get("X-CSRF-Token", ""), claims):
                raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
            user.session_epoch += 1
            record(session, user.username, "sign_out", "session", user.id)
            session.commit()
            # before the answer: a copied cookie's next profile read is refused at once
            principal_cache.invalidate()
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="strict", secure=_secure_cookie(request)
    )
    return SignedOut(signed_out=True)


@router.get(
    "/me",
    response_model=SessionOut,
    responses={401: {"model": ErrorOut}},
    summary="The user of the current page session and its CSRF token",
)
def me(request: Request, response: Response, session: SessionDep) -> SessionOut:
    token = request.cookies.get(COOKIE)
    if not token:
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="not signed in")
    try:
        claims = read_token(token, purpose="session")
    except jwt.ExpiredSignatureError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="your session has expired; sign in again"
        ) from None
    except jwt.PyJWTError:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="the session is not valid"
        ) from None
    user = session.get(User, int(claims["sub"]))
    if user is None or not user.active:
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="the account no longer exists or is disabled"
        )
    if not session_current(user, claims):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED, detail="you have signed out; sign in again"
        )
    response.headers["Cache-Control"] = "no-store"
    remaining = max(0, int(claims["exp"] - time.time()))
    return SessionOut(csrf_token=str(claims["csrf"]), expires_in=remaining, user=_me(user))
