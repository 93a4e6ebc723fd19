"""Users, roles and the units they may act on."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.domain import ROLES
from core.models import Unit, User
from core.security import hash_password


class UserError(ValueError):
    pass


def upsert_user(
    session: Session, *, username: str, password: str, role: str, unit_names: list[str]
) -> User:
    """Create or update a user; raises UserError naming what is wrong (nothing changed then)."""
    username = username.strip()
    if not username or len(username) > 80:
        raise UserError("username must be 1–80 characters")
    if role not in ROLES:
        raise UserError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if len(password) < 8:
        raise UserError("password must be at least 8 characters")
    units = []
    for name in unit_names:
        unit = session.scalar(select(Unit).where(Unit.name == name))
        if unit is None:
            known = ", ".join(session.scalars(select(Unit.name).order_by(Unit.name))) or "none yet"
            raise UserError(f"no unit named {name!r}; known units: {known}")
        units.append(unit)
    if role in ("educator", "principal") and not units:
        raise UserError(f"a {role} needs at least one --unit")
    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(username=username, password_hash="", role=role)
        session.add(user)
    user.password_hash = hash_password(password)
    user.role = role
    user.units = units
    session.flush()
    return user


@dataclass(frozen=True)
class Principal:
    """What a read needs to know about the signed-in account: a snapshot, not an ORM object, so
    it can be kept between requests (:class:`PrincipalCache`) and used without a database."""

    id: int
    username: str
    role: str
    active: bool
    session_epoch: int
    unit_ids: frozenset[int]

    @classmethod
    def of(cls, user: User) -> Principal:
        return cls(
            id=user.id,
            username=user.username,
            role=user.role,
            active=user.active,
            session_epoch=user.session_epoch,
            unit_ids=user.unit_ids,
        )


def load_principal(session: Session, user_id: int) -> Principal | None:
    """The account's snapshot, or None when it does not exist."""
    user = session.get(User, user_id)
    return None if user is None else Principal.of(user)


class PrincipalCache:
    """Account snapshots kept for ``ttl`` seconds, so a stream of reads by one account does not
    look the account up each time. A change made through this process (any write request) calls
    :meth:`invalidate`; a change made elsewhere (another server process, the CLI) is seen within
    ``ttl`` seconds. ``ttl`` 0 keeps nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[int, tuple[float, Principal | None]] = {}
        #: Moves on with every invalidation: a snapshot loaded before it is not kept.
        self.generation = 0

    def get(self, user_id: int, ttl: float) -> tuple[bool, Principal | None]:
        """(found, principal): found is False when there is no snapshot younger than ``ttl``."""
        entry = self._entries.get(user_id)
        if entry is None or ttl <= 0 or time.monotonic() - entry[0] >= ttl:
            return False, None
        return True, entry[1]

    def put(self, user_id: int, principal: Principal | None, generation: int) -> None:
        """Keep ``principal``, loaded when :attr:`generation` was ``generation`` (not kept when
        an invalidation came in between: it may predate a change)."""
        with self._lock:
            if generation != self.generation:
                return
            if len(self._entries) > 10_000:  # bounded: accounts number in the hundreds
                self._entries.clear()
            self._entries[user_id] = (time.monotonic(), principal)

    def invalidate(self) -> None:
        with self._lock:
            self.generation += 1
            self._entries.clear()


#: The process's account snapshots (read routes; see api.deps.current_reader).
principal_cache = PrincipalCache()
