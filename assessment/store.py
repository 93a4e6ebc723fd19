"""Response sheets and ratings in the database: recording, bulk import, and the table the model fits.

No child identity is stored: a sheet has an anonymous id and carries unit, group, age band, case,
date and the raters' levels per rubric item.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from assessment.cases import CaseLibrary
from assessment.ratings import RatingProblem, RatingsFileError
from core.domain import Term, check_age_band
from core.models import Group, Rating, ResponseSheet, Unit


class SheetRejected(ValueError):
    """A response sheet that cannot be recorded; the message says why."""


def record_sheet(
    session: Session,
    *,
    library: CaseLibrary,
    case_id: str,
    unit: Unit,
    group: Group | None,
    age_band: str,
    rated_on: dt.date,
    rater: str,
    levels: dict[str, int],
    created_by: int | None = None,
) -> ResponseSheet:
    """Validate and store one sheet (one child's response to one case, anonymous); flushes."""
    try:
        case = library.get(case_id)
    except KeyError:
        raise SheetRejected(f"unknown case {case_id!r}; see GET /api/cases") from None
    try:
        check_age_band(age_band)
    except ValueError as err:
        raise SheetRejected(str(err)) from None
    if group is not None and group.unit_id != unit.id:
        raise SheetRejected(f"group {group.name!r} does not belong to unit {unit.name!r}")
    if rated_on > dt.date.today():
        raise SheetRejected("the rating date lies in the future")
    if not levels:
        raise SheetRejected("a sheet needs a level for at least one rubric item")
    known = {item.id: item.max_level for item in case.rubric}
    for item_id, level in levels.items():
        if item_id not in known:
            raise SheetRejected(
                f"case {case_id} has no rubric item {item_id!r}; items: {', '.join(known)}"
            )
        if not 0 <= int(level) <= known[item_id]:
            raise SheetRejected(f"item {item_id}: level {level} is outside 0–{known[item_id]}")
    sheet = ResponseSheet(
        case_id=case_id,
        unit_id=unit.id,
        group_id=group.id if group else None,
        age_band=age_band,
        term=str(Term.of_month(rated_on.year, rated_on.month)),
        rated_on=rated_on,
        created_by=created_by,
    )
    session.add(sheet)
    session.flush()
    for item_id, level in levels.items():
        session.add(Rating(sheet_id=sheet.id, item=item_id, rater=rater, level=int(level)))
    session.flush()
    return sheet


def import_ratings(
    session: Session, ratings: pd.DataFrame, *, created_by: int | None = None
) -> int:
    """Store a validated ratings frame (``assessment.ratings.read_ratings``); all or nothing.

    Units and groups are matched by name; a sheet id already imported is an error. Raises
    :class:`RatingsFileError` listing every problem (row as in the file: frame index + 2); nothing is
    written then. Returns the number of sheets stored; the caller commits.
    """
    units = {u.name: u for u in session.scalars(select(Unit))}
    groups = {(g.unit_id, g.name): g for g in session.scalars(select(Group))}
    known_ids = set(
        session.scalars(
            select(ResponseSheet.external_id).where(ResponseSheet.external_id.is_not(None))
        )
    )
    problems: list[RatingProblem] = []
    for idx, row in ratings.iterrows():
        line = int(str(idx)) + 2
        if str(row["unit"]).strip() in ("", "nan", "None"):
            # The sheet table needs a unit; calibration responses have none (see the report of
            # issue 17): refuse them clearly rather than lose or mis-store them.
            problems.append(
                RatingProblem(
                    line,
                    "unit",
                    f"calibration rating of {row['sheet_id']!r} (empty unit): the database does not "
                    "store calibration ratings yet; fit the file with `spira assess fit` instead, "
                    "or import it without the calibration rows",
                )
            )
            continue
        unit = units.get(str(row["unit"]))
        if unit is None:
            problems.append(RatingProblem(line, "unit", f"no unit named {row['unit']!r} in Spira"))
        elif (unit.id, str(row["group"])) not in groups:
            problems.append(
                RatingProblem(line, "group", f"unit {unit.name!r} has no group {row['group']!r}")
            )
        if str(row["sheet_id"]) in known_ids:
            problems.append(
                RatingProblem(line, "sheet_id", f"sheet {row['sheet_id']!r} was imported before")
            )
    if problems:
        raise RatingsFileError(problems)
    n = 0
    for sheet_key, rows in ratings.groupby("sheet_id", sort=False):
        first = rows.iloc[0]
        unit = units[str(first["unit"])]
        day = pd.Timestamp(first["date"]).date()
        sheet = ResponseSheet(
            external_id=str(sheet_key),
            case_id=str(first["case"]),
            unit_id=unit.id,
            group_id=groups[(unit.id, str(first["group"]))].id,
            age_band=str(first["age_band"]),
            term=str(Term.of_month(day.year, day.month)),
            rated_on=day,
            created_by=created_by,
        )
        session.add(sheet)
        session.flush()
        for r in rows.itertuples():
            session.add(
                Rating(sheet_id=sheet.id, item=str(r.item), rater=str(r.rater), level=int(r.level))
            )
        n += 1
    session.flush()
    return n


def ratings_frame(session: Session, library: CaseLibrary | None = None) -> pd.DataFrame:
    """Every stored rating in the shape the model fits (columns of a ratings file plus term, area)."""
    rows = session.execute(
        select(
            ResponseSheet.id,
            Unit.name,
            Group.name,
            ResponseSheet.age_band,
            Rating.rater,
            ResponseSheet.case_id,
            Rating.item,
            Rating.level,
            ResponseSheet.rated_on,
            ResponseSheet.term,
        )
        .join(Rating, Rating.sheet_id == ResponseSheet.id)
        .join(Unit, Unit.id == ResponseSheet.unit_id)
        .outerjoin(Group, Group.id == ResponseSheet.group_id)
    ).all()
    cols = [
        "sheet_id",
        "unit",
        "group",
        "age_band",
        "rater",
        "case",
        "item",
        "level",
        "date",
        "term",
    ]
    frame = pd.DataFrame(rows, columns=cols)
    frame["level"] = frame["level"].astype(int)
    if library is not None:
        frame["area"] = frame["case"].map(library.case_areas())
    return frame
