"""Sign-in: OAuth2 password flow issuing JWT bearer tokens, with a per-user+address rate limit."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from api.deps import CurrentUser, SessionDep
from api.schemas import MeOut, TokenOut
from core.config import get_settings
from core.models import LoginFailure, User
from core.security import create_token, verify_password

router = APIRouter(prefix="/api", tags=["auth"])


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per (username, address) within ``window`` seconds,
    counted in the database (table ``login_failure``) so that every server process (``--workers``)
    and every restart share one count. Bounded: a blocked key gets no new rows, and rows older
    than the window are deleted whenever a failure is recorded."""

    def __init__(self, attempts: int = 10, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window

    @staticmethod
    def key(username: str, address: str) -> str:
        return hashlib.sha256(f"{username.lower()}\0{address}".encode()).hexdigest()

    def _cutoff(self) -> datetime:
        return datetime.now(UTC) - timedelta(seconds=self.window)

    def blocked(self, session: Session, key: str) -> bool:
        recent = session.scalar(
            select(func.count())
            .select_from(LoginFailure)
            .where(LoginFailure.key == key, LoginFailure.at > self._cutoff())
        )
        return int(recent or 0) >= self.attempts

    def fail(self, session: Session, key: str) -> None:
        session.execute(delete(LoginFailure).where(LoginFailure.at <= self._cutoff()))
        session.add(LoginFailure(key=key, at=datetime.now(UTC)))
        session.commit()

    def reset(self, session: Session, key: str) -> None:
        session.execute(delete(LoginFailure).where(LoginFailure.key == key))
        session.commit()


limiter = LoginLimiter()


def authenticate(session: Session, username: str, password: str, address: str) -> User:
    key = limiter.key(username, address)
    if limiter.blocked(session, key):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, detail="too many failed sign-ins; wait five minutes"
        )
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not verify_password(password, user.password_hash):
        limiter.fail(session, key)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong username or password")
    limiter.reset(session, key)
    return user


@router.post("/token", response_model=TokenOut, summary="Sign in and get a bearer token")
def login(
    request: Request, session: SessionDep, form: Annotated[OAuth2PasswordRequestForm, Depends()]
) -> TokenOut:
    address = request.client.host if request.client else "?"
    user = authenticate(session, form.username, form.password, address)
    minutes = get_settings().token_minutes
    token = create_token(str(user.id), purpose="access", minutes=minutes, extra={"role": user.role})
    return TokenOut(access_token=token, expires_in=minutes * 60)


@router.get("/me", response_model=MeOut, summary="Who am I and which units may I act on")
def me(user: CurrentUser) -> MeOut:
    return MeOut.model_validate(
        {"username": user.username, "role": user.role, "units": user.units}, from_attributes=True
    )
