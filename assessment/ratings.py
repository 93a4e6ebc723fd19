"""Reading educators' ratings from CSV or XLSX, validated all at once.

A ratings file has one row per sheet x rubric item x rater, with the columns
``sheet_id, unit, group, age_band, rater, case, item, level, date``. A row with an empty ``unit``
is a calibration rating: ``sheet_id`` is then the id of a calibration response of the case library
(a written response every educator rates; checked when a library is given), and ``group`` and
``age_band`` may be empty; many educators rate the same calibration sheet, on different days.
Every problem in the file is
collected as a :class:`RatingProblem` (row number as the file shows it, header = row 1; column;
reason) and :class:`RatingsFileError` is raised with all of them: a file with any error yields
nothing. No column identifies a child: ``sheet_id`` is an anonymous id of one response sheet.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from core.domain import AGE_BANDS, Term, date_problem, text_problem
from core.spreadsheet import SpreadsheetRefused, read_sheet

from .cases import CaseLibrary

RATING_COLUMNS: tuple[str, ...] = (
    "sheet_id",
    "unit",
    "group",
    "age_band",
    "rater",
    "case",
    "item",
    "level",
    "date",
)
#: Columns a calibration rating (empty unit) may leave empty.
CALIBRATION_OPTIONAL: tuple[str, ...] = ("unit", "group", "age_band")
#: Columns that must agree on every row of one sheet (a sheet is one child's response to one case).
SHEET_COLUMNS: tuple[str, ...] = ("unit", "group", "age_band", "case", "date")


@dataclass(frozen=True, order=True)
class RatingProblem:
    """One problem in a ratings file: the row as numbered in the file (header = 1), column, reason."""

    row: int
    column: str
    reason: str

    def __str__(self) -> str:
        return f"row {self.row}, column {self.column}: {self.reason}"


class RatingsFileError(ValueError):
    """A ratings file with problems; ``problems`` lists every one, sorted by row."""

    def __init__(self, problems: list[RatingProblem], source: str = "ratings file") -> None:
        self.problems = sorted(problems)
        shown = "\n".join(f"  {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(
            f"{source}: {len(self.problems)} problem(s), nothing imported:\n{shown}{more}"
        )


def _cell_text(value: object) -> str:
    """A cell as stripped text; dates as ISO dates, whole floats (XLSX numbers) without '.0'."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return ""
    if isinstance(value, dt.datetime):
        return value.date().isoformat() if value.time() == dt.time() else value.isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def text_cells(raw: pd.DataFrame) -> pd.DataFrame:
    """A sheet as read by :func:`core.spreadsheet.read_sheet` as stripped text cells, one column
    per header, in file order."""
    table = raw.map(_cell_text) if len(raw) else raw.astype(str)
    table.columns = [_cell_text(c) for c in raw.columns]
    return table


def read_ratings(path: Path | str, library: CaseLibrary | None = None) -> pd.DataFrame:
    """Read and validate a ratings file (CSV or XLSX).

    With a case library, cases, rubric items and level ranges are checked against it and an
    ``area`` column is added. Returns a frame with the nine rating columns (``level`` int,
    ``date`` datetime64) plus ``term`` ("2026-VT"). Raises :class:`RatingsFileError` listing every
    problem; nothing is returned from a file with any error. The file is read with the caps of
    :func:`core.spreadsheet.read_sheet`.
    """
    path = Path(path)
    if not path.is_file():
        raise RatingsFileError(
            [RatingProblem(1, "(file)", f"file {path} does not exist")], str(path)
        )
    try:
        raw = read_sheet(path.read_bytes(), path.suffix)
    except SpreadsheetRefused as exc:
        raise RatingsFileError(
            [RatingProblem(1, "(file)", f"cannot be read: {exc.reason}")], str(path)
        ) from None
    try:
        return validate_ratings(text_cells(raw), library)
    except RatingsFileError as exc:
        raise RatingsFileError(exc.problems, str(path)) from None


def validate_ratings(table: pd.DataFrame, library: CaseLibrary | None = None) -> pd.DataFrame:
    """Validate a frame of text cells in file order (row n of the frame = file row n + 2).

    Returns the typed frame (see :func:`read_ratings`); raises :class:`RatingsFileError`.
    """
    problems: list[RatingProblem] = []
    missing = [c for c in RATING_COLUMNS if c not in table.columns]
    if missing:
        raise RatingsFileError([RatingProblem(1, c, "required column is missing") for c in missing])
    table = table.loc[:, list(RATING_COLUMNS)].astype(str).reset_index(drop=True)
    # Rows where every cell is empty are spreadsheet leftovers, not ratings.
    table = table.loc[(table != "").any(axis=1)]
    if table.empty:
        raise RatingsFileError([RatingProblem(2, "(file)", "the file has no ratings")])
    file_row = table.index.to_numpy() + 2

    def flag(mask: np.ndarray | pd.Series, column: str, reasons: pd.Series | str) -> None:
        mask = np.asarray(mask, dtype=bool)
        texts = reasons[mask].tolist() if isinstance(reasons, pd.Series) else [reasons] * mask.sum()
        problems.extend(
            RatingProblem(int(r), column, t) for r, t in zip(file_row[mask], texts, strict=True)
        )

    empty = table == ""
    calibration = empty["unit"].to_numpy()  # empty unit: a calibration response (module docstring)
    for column in RATING_COLUMNS:
        optional = calibration if column in CALIBRATION_OPTIONAL else False
        flag(empty[column] & ~optional, column, "value is missing")

    band = table["age_band"]
    flag(
        ~empty["age_band"] & ~band.isin(AGE_BANDS),
        "age_band",
        "age band " + band.map(repr) + f" is not one of {', '.join(AGE_BANDS)}",
    )

    level_num = pd.to_numeric(table["level"], errors="coerce")
    bad_level = ~empty["level"] & (level_num.isna() | (level_num % 1 != 0) | (level_num < 0))
    flag(bad_level, "level", "level " + table["level"].map(repr) + " is not a whole number >= 0")

    dates = pd.to_datetime(table["date"], format="%Y-%m-%d", errors="coerce")
    flag(
        ~empty["date"] & dates.isna(),
        "date",
        "date " + table["date"].map(repr) + " is not a date of the form YYYY-MM-DD",
    )

    in_window = dates.notna()
    for i in np.flatnonzero(in_window.to_numpy()):
        problem = date_problem(dates.iloc[i].date(), "date")
        if problem:
            problems.append(RatingProblem(int(file_row[i]), "date", problem))
    for column in ("sheet_id", "unit", "group", "rater", "case", "item"):
        for i, value in enumerate(table[column].tolist()):
            problem = text_problem(value, column) if value else None
            if problem:
                problems.append(RatingProblem(int(file_row[i]), column, problem))

    if library is not None:
        known_case = table["case"].isin([c.id for c in library])
        flag(~empty["case"] & ~known_case, "case", "unknown case " + table["case"].map(repr))
        max_level = pd.Series(np.nan, index=table.index)
        for case in library:
            on_case = table["case"] == case.id
            for item in case.rubric:
                max_level[on_case & (table["item"] == item.id)] = item.max_level
        unknown_item = known_case & ~empty["item"] & max_level.isna()
        flag(
            unknown_item,
            "item",
            "case " + table["case"].map(repr) + " has no rubric item " + table["item"].map(repr),
        )
        too_high = ~bad_level & ~empty["level"] & max_level.notna() & (level_num > max_level)
        flag(
            too_high,
            "level",
            "level "
            + table["level"]
            + " is above the item's highest level "
            + max_level.fillna(0).astype(int).astype(str),
        )

    if library is not None:
        cal_case = library.calibration_cases()
        known_cal = table["sheet_id"].map(cal_case)
        flag(
            calibration & ~empty["sheet_id"] & known_cal.isna(),
            "unit",
            "value is missing (an empty unit marks a calibration rating, but "
            + table["sheet_id"].map(repr)
            + " is not a calibration response of the case library)",
        )
        flag(
            calibration & known_cal.notna() & ~empty["case"] & (known_cal != table["case"]),
            "case",
            "calibration response "
            + table["sheet_id"].map(repr)
            + " belongs to case "
            + known_cal.fillna("").map(repr)
            + ", not "
            + table["case"].map(repr),
        )

    # One sheet = one child's response to one case: its unit, group, age band, case and date agree.
    # A calibration sheet is rated by many educators on different days: its unit and case agree.
    present = ~empty["sheet_id"]
    first_row = table.loc[present].groupby("sheet_id", sort=False).head(1)
    first_pos = pd.Series(first_row.index, index=first_row["sheet_id"])
    ref_index = table["sheet_id"].map(first_pos)
    for column in SHEET_COLUMNS:
        ref_value = table[column].reindex(ref_index.fillna(-1).astype(int).to_numpy()).to_numpy()
        conflict = present & (table[column].to_numpy() != ref_value)
        if column in CALIBRATION_OPTIONAL + ("date",):
            conflict &= ~calibration
        flag(
            conflict,
            column,
            "sheet "
            + table["sheet_id"].map(repr)
            + f" has {column} "
            + pd.Series(ref_value, index=table.index).map(repr)
            + " on row "
            + (ref_index.fillna(-2).astype(int) + 2).astype(str)
            + " but "
            + table[column].map(repr)
            + " here",
        )

    # The same rater rating the same item of the same sheet twice.
    key = ["sheet_id", "item", "rater"]
    complete = ~empty[key].any(axis=1)
    dup = complete & table.duplicated(key, keep="first")
    if dup.any():
        first_of = table.loc[complete].reset_index().groupby(key)["index"].transform("first")
        first_of.index = table.loc[complete].index
        flag(
            dup,
            "item",
            "duplicate of row "
            + (first_of.reindex(table.index).fillna(-2).astype(int) + 2).astype(str)
            + " (same sheet, item and rater)",
        )

    if problems:
        raise RatingsFileError(problems)

    out = table.copy()
    out["level"] = level_num.astype(np.int64)
    out["date"] = dates
    # Term.of_month on the distinct year-months only, then broadcast (files can have 100k rows).
    year_month = dates.dt.year * 100 + dates.dt.month
    terms = {ym: str(Term.of_month(ym // 100, ym % 100)) for ym in year_month.unique()}
    out["term"] = year_month.map(terms)
    if library is not None:
        out["area"] = out["case"].map(library.case_areas())
    return out.reset_index(drop=True)
