"""Response sheets and ratings in the database: recording, bulk import, and the table the model fits.

No child identity is stored: a sheet has an anonymous id and carries unit, group, age band, case,
date and the raters' levels per rubric item.

Calibration ratings (rows with an empty unit: an educator's levels on a calibration response of the
case library) go to their own table, ``calibration_rating``: they belong to no unit, so no unit
figure, count or profile can ever include them; the fit reads them (``ratings_frame(...,
calibration=True)``) to link the educators' severities. An educator rates each item of a
calibration response once.
"""

from __future__ import annotations

import datetime as dt

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from assessment.cases import CaseLibrary
from assessment.ratings import RatingProblem, RatingsFileError
from core.domain import Term, check_age_band
from core.models import CalibrationRating, Group, Rating, ResponseSheet, Unit


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


def record_calibration(
    session: Session,
    *,
    library: CaseLibrary,
    response_id: str,
    rater: str,
    rated_on: dt.date,
    levels: dict[str, int],
    created_by: int | None = None,
) -> list[CalibrationRating]:
    """Validate and store one educator's levels on a calibration response; flushes.

    Raises :class:`SheetRejected` (nothing stored) for an unknown response, item or level, a date
    in the future, or an item this educator has rated on this response before."""
    case_id = library.calibration_cases().get(response_id)
    if case_id is None:
        raise SheetRejected(
            f"unknown calibration response {response_id!r}; see the calibration responses of "
            "GET /api/cases"
        )
    rater = rater.strip()
    if not rater:
        raise SheetRejected("a calibration rating needs the rater's name")
    if rated_on > dt.date.today():
        raise SheetRejected("the rating date lies in the future")
    if not levels:
        raise SheetRejected("a calibration rating needs a level for at least one rubric item")
    known = {item.id: item.max_level for item in library.get(case_id).rubric}
    for item_id, level in levels.items():
        if item_id not in known:
            raise SheetRejected(
                f"case {case_id} has no rubric item {item_id!r}; items: {', '.join(known)}"
            )
        if not 0 <= int(level) <= known[item_id]:
            raise SheetRejected(f"item {item_id}: level {level} is outside 0–{known[item_id]}")
    before = _calibration_keys(session)
    again = sorted(item for item in levels if (response_id, item, rater) in before)
    if again:
        raise SheetRejected(
            f"{rater} has rated item(s) {', '.join(again)} of calibration response "
            f"{response_id!r} before; each educator rates a calibration response once"
        )
    term = str(Term.of_month(rated_on.year, rated_on.month))
    rows = [
        CalibrationRating(
            response_id=response_id,
            item=item_id,
            rater=rater,
            case_id=case_id,
            level=int(level),
            rated_on=rated_on,
            term=term,
            created_by=created_by,
        )
        for item_id, level in levels.items()
    ]
    session.add_all(rows)
    session.flush()
    return rows


def _calibration_keys(session: Session) -> set[tuple[str, str, str]]:
    return {
        (str(a), str(b), str(c))
        for a, b, c in session.execute(
            select(CalibrationRating.response_id, CalibrationRating.item, CalibrationRating.rater)
        )
    }


def import_ratings(
    session: Session, ratings: pd.DataFrame, *, created_by: int | None = None
) -> int:
    """Store a validated ratings frame (``assessment.ratings.read_ratings``); all or nothing.

    Units and groups are matched by name; a sheet id already imported is an error. Rows with an
    empty unit are calibration ratings (module docstring; ``read_ratings`` with the case library
    has checked their response ids): stored in ``calibration_rating``, an error if the educator
    rated that item of that response before. Raises :class:`RatingsFileError` listing every problem
    (row as in the file: frame index + 2); nothing is written then. Returns the number of sheets
    stored, a calibration response counting once per educator; the caller commits.
    """
    units = {u.name: u for u in session.scalars(select(Unit))}
    groups = {(g.unit_id, g.name): g for g in session.scalars(select(Group))}
    known_ids = set(
        session.scalars(
            select(ResponseSheet.external_id).where(ResponseSheet.external_id.is_not(None))
        )
    )
    calibration_before = _calibration_keys(session)
    calibration_seen: set[tuple[str, str, str]] = set()
    is_calibration = ratings["unit"].astype(str).str.strip().isin(("", "nan", "None"))
    problems: list[RatingProblem] = []
    for idx, row in ratings.iterrows():
        line = int(str(idx)) + 2
        if is_calibration[idx]:
            key = (str(row["sheet_id"]), str(row["item"]), str(row["rater"]).strip())
            if key in calibration_before:
                problems.append(
                    RatingProblem(
                        line,
                        "rater",
                        f"{key[2]} has rated item {key[1]} of calibration response {key[0]!r} "
                        "before; each educator rates a calibration response once",
                    )
                )
            elif key in calibration_seen:
                problems.append(
                    RatingProblem(
                        line,
                        "rater",
                        f"{key[2]} rates item {key[1]} of calibration response {key[0]!r} twice "
                        "in this file; keep one row",
                    )
                )
            calibration_seen.add(key)
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
    calibration = ratings.loc[is_calibration]
    for (response_id, rater), rows in calibration.groupby(["sheet_id", "rater"], sort=False):
        for r in rows.itertuples():
            day = pd.Timestamp(r.date).date()
            session.add(
                CalibrationRating(
                    response_id=str(response_id),
                    item=str(r.item),
                    rater=str(rater).strip(),
                    case_id=str(r.case),
                    level=int(r.level),
                    rated_on=day,
                    term=str(Term.of_month(day.year, day.month)),
                    created_by=created_by,
                )
            )
        n += 1
    for sheet_key, rows in ratings.loc[~is_calibration].groupby("sheet_id", sort=False):
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


def ratings_frame(
    session: Session, library: CaseLibrary | None = None, *, calibration: bool = False
) -> pd.DataFrame:
    """Every stored rating in the shape the model fits (columns of a ratings file plus term, area).

    With ``calibration`` the calibration ratings follow, as in a ratings file: ``sheet_id`` the
    calibration response, unit, group and age band empty (the fit's calibration sheets; no unit
    aggregation counts them)."""
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
    if calibration:
        cal = calibration_frame(session)[cols]
        if not cal.empty:
            frame = cal if frame.empty else pd.concat([frame, cal], ignore_index=True)
    frame["level"] = frame["level"].astype(int)
    if library is not None:
        frame["area"] = frame["case"].map(library.case_areas())
    return frame


def calibration_frame(session: Session, library: CaseLibrary | None = None) -> pd.DataFrame:
    """The stored calibration ratings as ratings-file rows (unit, group, age band empty; term)."""
    rows = session.execute(
        select(
            CalibrationRating.response_id,
            CalibrationRating.rater,
            CalibrationRating.case_id,
            CalibrationRating.item,
            CalibrationRating.level,
            CalibrationRating.rated_on,
            CalibrationRating.term,
        )
    ).all()
    frame = pd.DataFrame(
        rows, columns=["sheet_id", "rater", "case", "item", "level", "date", "term"]
    ).assign(unit="", group="", age_band="")
    frame["level"] = frame["level"].astype(int)
    if library is not None:
        frame["area"] = frame["case"].map(library.case_areas())
    return frame


#: How long the creator of a sheet may take it back (the tablet's "undo"), in seconds.
UNDO_WINDOW_S = 120


def idempotency_external_id(user_id: int, key: str) -> str:
    """The sheet's ``external_id`` for a sheet sent with an ``Idempotency-Key`` (as photos do it):
    unique per account and key, so a retried request finds the first sheet. Imported sheet ids
    never start with ``key:`` followed by a number and a colon and the key (max 64 characters)."""
    return f"key:{user_id}:{key}"


def sheet_by_key(session: Session, user_id: int, key: str) -> ResponseSheet | None:
    """The sheet this account recorded with this ``Idempotency-Key``, if any."""
    return session.scalar(
        select(ResponseSheet).where(
            ResponseSheet.external_id == idempotency_external_id(user_id, key)
        )
    )


def count_sheets(session: Session, *, case_id: str, group_id: int, term: str) -> int:
    """How many sheets are recorded for this case, group and term."""
    from sqlalchemy import func

    return int(
        session.scalar(
            select(func.count())
            .select_from(ResponseSheet)
            .where(
                ResponseSheet.case_id == case_id,
                ResponseSheet.group_id == group_id,
                ResponseSheet.term == term,
            )
        )
        or 0
    )


def undo_sheet(session: Session, sheet_id: str, *, user_id: int, now: dt.datetime) -> str:
    """Delete a sheet its creator recorded less than :data:`UNDO_WINDOW_S` ago; flushes.

    Returns "" when deleted, else why not: "missing" (no such sheet of this account) or "late"."""
    sheet = session.get(ResponseSheet, sheet_id)
    if sheet is None or sheet.created_by != user_id:
        return "missing"
    created = sheet.created_at
    if created.tzinfo is None:  # SQLite hands back naive UTC
        created = created.replace(tzinfo=dt.UTC)
    if (now - created).total_seconds() > UNDO_WINDOW_S:
        return "late"
    for rating in session.scalars(select(Rating).where(Rating.sheet_id == sheet.id)):
        session.delete(rating)
    session.delete(sheet)
    session.flush()
    return ""


def calibration_of_rater(session: Session, rater: str) -> dict[str, dict[str, int]]:
    """This educator's calibration levels: response id -> item -> level."""
    out: dict[str, dict[str, int]] = {}
    for response_id, item, level in session.execute(
        select(
            CalibrationRating.response_id, CalibrationRating.item, CalibrationRating.level
        ).where(CalibrationRating.rater == rater)
    ):
        out.setdefault(str(response_id), {})[str(item)] = int(level)
    return out


def calibration_agreement(session: Session, library: CaseLibrary) -> list[dict]:
    """Per educator: calibration items rated, exact agreement with the reference level, and mean
    absolute distance; the researchers' view of how closely each educator follows the rubric."""
    refs = library.calibration_references()
    per: dict[str, list[int]] = {}
    for response_id, item, rater, level in session.execute(
        select(
            CalibrationRating.response_id,
            CalibrationRating.item,
            CalibrationRating.rater,
            CalibrationRating.level,
        )
    ):
        ref = refs.get((str(response_id), str(item)))
        if ref is not None:
            per.setdefault(str(rater), []).append(int(level) - ref)
    return [
        {
            "rater": rater,
            "n_items": len(diffs),
            "exact": sum(d == 0 for d in diffs) / len(diffs),
            "mean_abs_diff": sum(abs(d) for d in diffs) / len(diffs),
        }
        for rater, diffs in sorted(per.items())
    ]
