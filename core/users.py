"""Users, roles and the units they may act on."""

from __future__ import annotations

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
