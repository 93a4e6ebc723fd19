"""Dependencies shared by routes: database session, current user, unit access checks."""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from typing import Annotated

import jwt
from fastapi import Depends, HTTPException, Path, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import OAuth2PasswordBearer
from sqlalchemy.orm import Session

from core.config import get_settings
from core.models import Unit, User
from core.security import read_token
from core.users import Principal, load_principal, principal_cache
from profiles.service import profile_service

oauth2 = OAuth2PasswordBearer(tokenUrl="/api/token", auto_error=False)

#: Database ids fit a 32-bit signed integer on every backend; larger ones are refused with 422.
MAX_ID = 2**31 - 1
#: Methods that change nothing: no CSRF token needed, no cache dropped.
SAFE_METHODS = ("GET", "HEAD", "OPTIONS")
UnitId = Annotated[int, Path(ge=1, le=MAX_ID, description="unit id")]


def get_session(request: Request) -> Iterator[Session]:
    session = request.app.state.session_factory()
    try:
        yield session
    finally:
        session.close()
        if request.method not in SAFE_METHODS:
            # A write may change what profiles rest on, or an account: the next read checks.
            profile_service.invalidate()
            principal_cache.invalidate()


SessionDep = Annotated[Session, Depends(get_session)]


def _unauthorised(detail: str) -> HTTPException:
    return HTTPException(
        status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"}
    )


def _claims(request: Request, token: str | None) -> tuple[dict, str]:
    """(claims, purpose) of the bearer token, or of the page session cookie (pages and their
    fetch calls; cookie-authenticated writes must carry the session's CSRF token). Pure: no
    database."""
    purpose = "access"
    if not token:
        token = request.cookies.get("spira_session")
        purpose = "session"
        if token and request.method not in SAFE_METHODS:
            csrf = request.headers.get("X-CSRF-Token", "")
            try:
                claims = read_token(token, purpose="session")
            except jwt.PyJWTError:
                raise _unauthorised("your session has expired; sign in again") from None
            if not csrf_matches(csrf, claims):
                raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    if not token:
        raise _unauthorised("sign in first: send a bearer token from POST /api/token")
    try:
        return read_token(token, purpose=purpose), purpose
    except jwt.ExpiredSignatureError:
        raise _unauthorised("the token has expired; sign in again") from None
    except jwt.PyJWTError:
        raise _unauthorised("the token is not valid") from None


def csrf_matches(sent: str, claims: dict) -> bool:
    """True when ``sent`` is the session's CSRF token (compared in constant time)."""
    expected = claims.get("csrf")
    if not sent or not isinstance(expected, str) or not expected:
        return False
    return hmac.compare_digest(sent.encode(), expected.encode())


def _check_account(user: User | Principal | None, claims: dict, purpose: str) -> None:
    if user is None or not user.active:
        raise _unauthorised("the account no longer exists or is disabled")
    if purpose == "session" and not session_current(user, claims):
        raise _unauthorised("you have signed out; sign in again")


def get_current_user(
    request: Request, session: SessionDep, token: Annotated[str | None, Depends(oauth2)]
) -> User:
    """The user of a bearer token, or of the page session cookie (pages and their fetch calls)."""
    claims, purpose = _claims(request, token)
    user = session.get(User, int(claims["sub"]))
    _check_account(user, claims, purpose)
    assert user is not None
    return user


async def current_reader(
    request: Request, token: Annotated[str | None, Depends(oauth2)]
) -> Principal:
    """The signed-in account for read-only routes, as a snapshot kept for up to
    ``profile_check_seconds`` (core.users.PrincipalCache): a stream of reads costs no account
    lookup and no thread hop. Any write request in this process drops the snapshots; a change
    made by another process (a role change, a disabled account, a sign-out) is seen within that
    window."""
    if request.method not in SAFE_METHODS:
        raise RuntimeError("current_reader serves read-only routes; use CurrentUser for writes")
    claims, purpose = _claims(request, token)
    user_id = int(claims["sub"])
    found, principal = principal_cache.get(user_id, get_settings().profile_check_seconds)
    if not found:
        generation = principal_cache.generation

        def load() -> Principal | None:
            with request.app.state.session_factory() as session:
                return load_principal(session, user_id)

        principal = await run_in_threadpool(load)
        principal_cache.put(user_id, principal, generation)
    _check_account(principal, claims, purpose)
    assert principal is not None
    return principal


def session_current(user: User | Principal, claims: dict) -> bool:
    """True when a page session's claims belong to the account's current session epoch (signing
    out moves the epoch on; cookies from before it no longer work)."""
    return int(claims.get("epoch", 0)) == user.session_epoch


CurrentUser = Annotated[User, Depends(get_current_user)]
#: The signed-in account on read-only routes (no database session, no thread hop when cached).
Reader = Annotated[Principal, Depends(current_reader)]


def can_read_unit(user: User | Principal, unit_id: int) -> bool:
    if user.role in ("researcher", "admin"):
        return True
    return unit_id in user.unit_ids


def can_upload_to_unit(user: User, unit_id: int) -> bool:
    if user.role == "admin":
        return True
    return user.role == "educator" and unit_id in user.unit_ids


def readable_unit(session: Session, user: User | Principal, unit_id: int) -> Unit:
    """The unit if it exists and the user may read it; 404 either way otherwise (no existence leak)."""
    unit = session.get(Unit, unit_id)
    if unit is None or not can_read_unit(user, unit_id):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"no unit {unit_id} that you may read"
        )
    return unit


def require_role(*roles: str):
    def check(user: CurrentUser) -> User:
        if user.role not in roles:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN, detail=f"this needs the role {' or '.join(roles)}"
            )
        return user

    return Depends(check)
