"""Sign-in: OAuth2 password flow issuing JWT bearer tokens, with a per-user+address rate limit."""

from __future__ import annotations

import threading
import time
from collections import defaultdict, deque
from typing import Annotated

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.security import OAuth2PasswordRequestForm
from sqlalchemy import select

from api.deps import CurrentUser, SessionDep
from api.schemas import MeOut, TokenOut
from core.config import get_settings
from core.models import User
from core.security import create_token, verify_password

router = APIRouter(prefix="/api", tags=["auth"])


class LoginLimiter:
    """At most ``attempts`` failed sign-ins per (username, address) within ``window`` seconds."""

    def __init__(self, attempts: int = 10, window: float = 300.0) -> None:
        self.attempts = attempts
        self.window = window
        self._failures: dict[tuple[str, str], deque[float]] = defaultdict(deque)
        self._lock = threading.Lock()

    def blocked(self, key: tuple[str, str]) -> bool:
        now = time.monotonic()
        with self._lock:
            q = self._failures[key]
            while q and now - q[0] > self.window:
                q.popleft()
            return len(q) >= self.attempts

    def fail(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures[key].append(time.monotonic())

    def reset(self, key: tuple[str, str]) -> None:
        with self._lock:
            self._failures.pop(key, None)


limiter = LoginLimiter()


def authenticate(session, username: str, password: str, address: str) -> User:
    key = (username.lower(), address)
    if limiter.blocked(key):
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS, detail="too many failed sign-ins; wait five minutes"
        )
    user = session.scalar(select(User).where(User.username == username))
    if user is None or not user.active or not verify_password(password, user.password_hash):
        limiter.fail(key)
        raise HTTPException(status.HTTP_401_UNAUTHORIZED, detail="wrong username or password")
    limiter.reset(key)
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
