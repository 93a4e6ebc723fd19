"""Test set-up shared across packages: photos accepted into a unit's queue."""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker


def queue_photos(
    unit_name: str,
    photos: Iterable[tuple[int, int]],
    *,
    megapixels: float,
    age_band: str,
) -> sessionmaker[Session]:
    """Migrate the test database, seed the demo structure and accept one synthetic photo per
    (stage, seed) into ``unit_name``'s first group, as an upload would (left pending). Returns
    the session factory."""
    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.models import Group, Unit
    from core.storage import get_store
    from vision.photos import accept_photo
    from vision.synthetic import make_photo

    migrate()
    factory = session_factory()
    with factory() as s:
        seed_structure(s)
        s.commit()
        unit = s.scalar(select(Unit).where(Unit.name == unit_name))
        group = s.scalar(select(Group).where(Group.unit_id == unit.id))
        for stage, seed in photos:
            accept_photo(
                session=s,
                store=get_store(),
                data=make_photo(stage, seed, megapixels=megapixels),
                unit=unit,
                group=group,
                activity="teckning",
                age_band=age_band,
            )
    return factory
