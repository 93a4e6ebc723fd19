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

from core.domain import Term
from core.models import Group, Measure, Municipality, Unit, User
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


def seed_context_and_ratings(session: Session, units: list[Unit], *, seed: int) -> tuple[int, int]:
    """Organisational data and educators' ratings for the pilot units (synthetic, demo only).

    Returns (context rows, sheets) added; nothing when the demo already has them.
    """
    # lazy: seeding pulls in training and vision; seed_structure alone (tests) does not
    import pandas as pd

    from assessment.cases import load_case_library
    from assessment.store import import_ratings
    from assessment.synthetic import simulate_ratings
    from core.models import ResponseSheet, UnitContext
    from profiles.context import Indicator, indicator_column
    from profiles.store import import_context

    if session.scalar(select(UnitContext.id).limit(1)) is not None:
        return 0, 0
    rng = np.random.default_rng(seed)
    terms = [str(Term.of_month(d.year, d.month)) for d in TERM_DATES]
    rows = []
    for unit in units:
        base = PILOT_UNITS[unit.name]
        for term in terms:
            groups = int(rng.integers(3, 7))
            children = float(groups * rng.integers(13, 19))
            rows.append(
                {
                    "unit": unit.name,
                    "term": term,
                    "children_enrolled": children,
                    "n_groups": float(groups),
                    "mean_group_size": children / groups,
                    "children_per_fte": round(float(5.3 - 0.8 * base + rng.normal(0, 0.3)), 2),
                    "share_trained_staff": round(
                        float(np.clip(0.42 + 0.15 * base + rng.normal(0, 0.04), 0.1, 0.9)), 3
                    ),
                    "staff_turnover": round(
                        float(np.clip(0.15 - 0.05 * base + rng.normal(0, 0.03), 0, 0.6)), 3
                    ),
                    "socioeconomic_index": round(
                        float(np.clip(0.5 + 0.2 * base + rng.normal(0, 0.05), 0, 1)), 3
                    ),
                    "share_multilingual": round(
                        float(np.clip(0.3 - 0.15 * base + rng.normal(0, 0.05), 0, 1)), 3
                    ),
                }
            )
    # Two example quality indicators (the municipality's own, issue 19) so the unit page and
    # the export show them; values from their own generator so the built-in columns stay as
    # they were. Marked as examples, as docs/examples/indicators.example.csv is.
    indicators = [
        Indicator(
            key="staff_competence_development",
            label_sv="Andel personal i kompetensutveckling",
            label_en="Share of staff in competence development",
            unit="share 0-1",
            direction="higher_better",
            reference="EXAMPLE (demo data): share of staff in planned competence development",
            low=0.0,
            high=1.0,
        ),
        Indicator(
            key="parent_satisfaction",
            label_sv="Nöjda vårdnadshavare (enkät)",
            label_en="Parent survey satisfaction",
            unit="percent 0-100",
            direction="higher_better",
            reference="EXAMPLE (demo data): share agreeing in the parent survey",
            low=0.0,
            high=100.0,
        ),
    ]
    ind_rng = np.random.default_rng(seed + 1)
    for row in rows:
        row[indicator_column("staff_competence_development")] = round(
            float(np.clip(0.6 + ind_rng.normal(0, 0.12), 0, 1)), 2
        )
        row[indicator_column("parent_satisfaction")] = round(
            float(np.clip(82 + ind_rng.normal(0, 6), 0, 100)), 0
        )
    n_context = import_context(session, pd.DataFrame(rows), indicators)

    if session.scalar(select(ResponseSheet.id).limit(1)) is not None:
        return n_context, 0
    library = load_case_library()
    ratings, _ = simulate_ratings(
        n_units=len(units),
        n_sheets=120 * len(units),
        n_raters=2 * len(units),
        raters_per_sheet=2,
        library=library,
        terms=tuple(terms),
        seed=seed,
    )
    unit_of = {sim: units[i] for i, sim in enumerate(sorted(ratings["unit"].unique()))}

    def group_for(sim_unit: str, sim_group: str) -> Group:
        groups = unit_of[sim_unit].groups
        return groups[int(sim_group.rsplit("-", 1)[-1]) % len(groups)]

    chosen = [group_for(u, g) for u, g in zip(ratings["unit"], ratings["group"], strict=True)]
    ratings["group"] = [g.name for g in chosen]
    ratings["age_band"] = [g.age_band for g in chosen]
    ratings["unit"] = ratings["unit"].map(lambda sim: unit_of[sim].name)
    ratings["rater"] = ratings["rater"].str.replace("rater-", "pedagog-", regex=False)
    # One educator rates at random, as a misunderstood rubric would: the demo then shows what the
    # research page's rater fit flags look like (ratings drawn from the model itself fit at ~1).
    erratic = ratings["rater"] == sorted(ratings["rater"].unique())[0]
    top = [library.max_level(c, i) for c, i in zip(ratings["case"], ratings["item"], strict=True)]
    ratings.loc[erratic, "level"] = [
        int(rng.integers(0, m + 1)) for m, e in zip(top, erratic, strict=True) if e
    ]
    day_by_term = {t: d for t, d in zip(terms, TERM_DATES, strict=True)}
    ratings["date"] = pd.to_datetime(ratings["term"].map(day_by_term))
    ratings["sheet_id"] = "demo-" + ratings["sheet_id"].astype(str)
    n_sheets = import_ratings(session, ratings.reset_index(drop=True))
    return n_context, n_sheets


#: Demo measures (issue 19): (unit, area, start term, title, description). Two start in the first
#: demo term so the second shows their follow-up; two share an area so the network view has a
#: common area. No child information, as in real use.
DEMO_MEASURES: tuple[tuple[str, str, str, str, str], ...] = (
    (
        "Dalhem",
        "mathematics",
        "2026-VT",
        "Matematik i lek och rutiner",
        "Antal, form och mönster i samlingar, måltider och utelek; arbetslaget följer upp "
        "på reflektionsmötena.",
    ),
    (
        "Adolfsberg",
        "progression",
        "2026-VT",
        "Mer tid och material för att teckna",
        "Ett ritbord framme hela dagen i båda grupperna och samtal om teckningarna.",
    ),
    (
        "Maria Park",
        "progression",
        "2026-HT",
        "Teckna och berätta",
        "Barnen berättar om sina teckningar i små grupper en gång i veckan.",
    ),
    (
        "Olympia",
        "language_communication",
        "2026-HT",
        "Högläsning och samtal i grupperna",
        "Daglig högläsning i mindre grupper med samtal om texten.",
    ),
)


def seed_measures(session: Session, units: list[Unit]) -> int:
    """Add the demo measures once (a unit's measure with the same title is not added again);
    returns how many were added."""
    # lazy: profiles.measures pulls in the profile model (scipy, scikit-learn); seed_structure
    # alone (tests) does not need it
    from profiles.measures import create_measure

    by_name = {u.name: u for u in units}
    added = 0
    for unit_name, area, start, title, description in DEMO_MEASURES:
        unit = by_name.get(unit_name)
        if unit is None or session.scalar(
            select(Measure.id).where(Measure.unit_id == unit.id, Measure.title == title)
        ):
            continue
        principal = session.scalar(
            select(User).where(User.role == "principal", User.units.any(Unit.id == unit.id))
        )
        fields = {
            "title": title,
            "area": area,
            "start_term": start,
            "description": description,
            "decided_by": "Rektor och arbetslag",
        }
        create_measure(session, unit.id, fields, principal.id if principal else None)
        added += 1
    return added


def seed_demo(
    factory: sessionmaker[Session],
    *,
    photos_per_term: int = 12,
    seed: int = 7,
    progress: Any = None,
    log: Callable[[str], None] = print,
) -> list[tuple[str, str, str, str]]:
    # lazy: seeding pulls in training and vision; seed_structure alone (tests) does not
    from core.config import master_secret
    from core.domain import EXPECTED_STAGE_BY_AGE_BAND
    from training.jobs import run_training
    from training.model_files import load_model, promoted_version_from_files
    from vision.photos import accept_photo
    from vision.synthetic import make_photo, unit_stage_mix
    from vision.worker import drain

    # Without SPIRA_SECRET_KEY the demo signs with a random key made in its var folder on the
    # first run (secret.key, mode 0600) and reused after; there is no built-in default key.
    master_secret()
    with factory() as session:
        units = seed_structure(session)
        credentials = seed_users(session, units)
        n_context, n_sheets = seed_context_and_ratings(session, units, seed=seed)
        n_measures = seed_measures(session, units)
        session.commit()
        if n_measures:
            log(f"seeded {n_measures} measures (åtgärder) for the network and follow-up views")
        if n_context or n_sheets:
            log(
                f"seeded organisational data ({n_context} unit-terms) and {n_sheets} rated response sheets"
            )
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
