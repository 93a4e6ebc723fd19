"""Demo data: Helsingborg's eight pilot units with groups, users and synthetic photos.

Photos go through exactly the path of a real upload (``vision.photos.accept_photo``: ingest, privacy,
storage, queue) and are then embedded and scored by the same worker the server runs. Each unit gets its
own stage mix so the profiles differ. Seeding twice adds nothing (photos are recognised as duplicates).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import date
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.models import Group, Municipality, Unit, User
from core.storage import get_store
from core.users import upsert_user

PILOT_UNITS: dict[str, float] = {
    # unit -> shift of its children's mean stage against their age bands (demo only)
    "Olympia": 0.4,
    "Maria Park": -0.3,
    "Västra Ramlösa": 0.1,
    "Adolfsberg": -0.6,
    "Dalhem": 0.0,
    "Laröd": 0.6,
    "Öknen": -0.1,
    "Wieselgren": 0.25,
}
GROUPS = (("Blåbäret", "2-3"), ("Lingonet", "4-5"))
TERM_DATES = (date(2026, 3, 16), date(2026, 10, 12))


def seed_structure(session: Session) -> list[Unit]:
    muni = session.scalar(select(Municipality).where(Municipality.name == "Helsingborg"))
    if muni is None:
        muni = Municipality(name="Helsingborg")
        session.add(muni)
        session.flush()
    units = []
    for name in PILOT_UNITS:
        unit = session.scalar(select(Unit).where(Unit.name == name))
        if unit is None:
            unit = Unit(name=name, municipality_id=muni.id)
            session.add(unit)
            session.flush()
            for group_name, band in GROUPS:
                session.add(Group(unit_id=unit.id, name=group_name, age_band=band))
        units.append(unit)
    session.flush()
    return units


def seed_users(session: Session, units: list[Unit]) -> list[tuple[str, str, str, str]]:
    """Create demo users once; returns (username, password, role, units) for printing."""
    if session.scalar(select(User).where(User.username == "admin")) is not None:
        return []
    created = []

    def add(username: str, role: str, unit_names: list[str]) -> None:
        password = secrets.token_urlsafe(9)
        upsert_user(session, username=username, password=password, role=role, unit_names=unit_names)
        created.append((username, password, role, ", ".join(unit_names) or "all"))

    add("admin", "admin", [])
    add("forskare", "researcher", [])
    for unit in units:
        slug = (
            unit.name.lower().replace(" ", "").replace("ä", "a").replace("ö", "o").replace("å", "a")
        )
        add(f"rektor.{slug}", "principal", [unit.name])
        add(f"pedagog.{slug}", "educator", [unit.name])
    return created


def seed_demo(
    factory: sessionmaker[Session],
    *,
    photos_per_term: int = 12,
    seed: int = 7,
    progress: Any = None,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str, str, str]]:
    from core.domain import EXPECTED_STAGE_BY_AGE_BAND
    from training.jobs import run_training
    from training.registry import load_model, promoted_version_from_files
    from vision.photos import accept_photo
    from vision.synthetic import make_photo, unit_stage_mix
    from vision.worker import drain

    with factory() as session:
        units = seed_structure(session)
        credentials = seed_users(session, units)
        session.commit()
        unit_ids = [(u.id, u.name) for u in units]

    if promoted_version_from_files() is None:
        log(
            "no stage model promoted yet: training the default synthetic model (reproducible, seed 0)"
        )
        run_training(
            factory, synthetic=True, n=500, seed=0, promote=True, progress=progress, log=log
        )

    store = get_store()
    rng = np.random.default_rng(seed)
    total = len(unit_ids) * len(TERM_DATES) * len(GROUPS) * photos_per_term
    task = progress.add_task("uploading demo photos", total=total) if progress else None
    stored = 0
    for unit_id, unit_name in unit_ids:
        with factory() as session:
            unit = session.get(Unit, unit_id)
            assert unit is not None
            groups = list(
                session.scalars(select(Group).where(Group.unit_id == unit_id).order_by(Group.name))
            )
            educator = session.scalar(
                select(User).where(User.role == "educator", User.units.any(Unit.id == unit_id))
            )
            for term_index, captured in enumerate(TERM_DATES):
                for group in groups:
                    mean = (
                        EXPECTED_STAGE_BY_AGE_BAND[group.age_band]
                        + PILOT_UNITS[unit_name]
                        + 0.2 * term_index
                    )
                    for k, stage in enumerate(unit_stage_mix(mean, rng, photos_per_term)):
                        data = make_photo(
                            int(stage),
                            seed * 100_003
                            + unit_id * 10_007
                            + term_index * 1009
                            + group.id * 101
                            + k,
                            megapixels=1.0,
                        )
                        result = accept_photo(
                            session=session,
                            store=store,
                            data=data,
                            unit=unit,
                            group=group,  # type: ignore[arg-type]
                            activity="teckning",
                            age_band=group.age_band,
                            captured_on=captured,
                            uploaded_by=educator.id if educator else None,
                        )
                        stored += int(result.created)
                        if progress:
                            progress.advance(task)
    log(f"stored {stored} new demo photo(s); scoring the queue")
    model = load_model()
    drain(factory, store, model)
    return credentials
