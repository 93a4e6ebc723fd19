"""Organisational context per unit x term: import from CSV/XLSX, municipality means, national references.

A context file has one row per unit and term with the columns in :data:`CONTEXT_COLUMNS`. Shares
may be given as fractions (0.41) or percentages (41, "41 %"); they are stored as fractions. Swedish
decimal commas ("0,41") are accepted. Every problem in a file is collected before anything is
returned, and a file with any problem raises :class:`ContextFileError` and imports nothing.

Beside the built-in columns a file may carry the municipality's own quality indicators: numeric
columns declared in an indicator dictionary (:class:`Indicator`, read by
:func:`profiles.indicators.read_indicator_dictionary`). Any other extra column is an error naming
it. In validated frames an indicator's values are in the column :func:`indicator_column` (key).
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydantic import BaseModel

from core.domain import term_problem, term_sort_key, text_problem
from core.spreadsheet import SpreadsheetRefused, read_sheet

#: Context columns, in the order they are shown.
CONTEXT_COLUMNS: tuple[str, ...] = (
    "children_enrolled",
    "n_groups",
    "mean_group_size",
    "children_per_fte",
    "share_trained_staff",
    "staff_turnover",
    "socioeconomic_index",
    "share_multilingual",
)

#: Columns that are shares: stored as fractions 0-1, accepted as 0-100 % too.
SHARE_COLUMNS: tuple[str, ...] = (
    "share_trained_staff",
    "staff_turnover",
    "socioeconomic_index",
    "share_multilingual",
)

#: Directions an indicator can have: which way is better, or neither.
DIRECTIONS: tuple[str, ...] = ("higher_better", "lower_better", "neutral")

#: Prefix of an indicator's column in validated context frames (``ind__<key>``): it keeps
#: indicator keys apart from every other column of the frames they travel in.
INDICATOR_PREFIX = "ind__"


def indicator_column(key: str) -> str:
    """The column of indicator ``key`` in a validated context frame."""
    return f"{INDICATOR_PREFIX}{key}"


def indicator_columns(frame: pd.DataFrame) -> list[str]:
    """The indicator columns of a context frame, in frame order."""
    return [str(c) for c in frame.columns if str(c).startswith(INDICATOR_PREFIX)]


@dataclass(frozen=True)
class Indicator:
    """One of the municipality's quality indicators, as declared in its indicator dictionary.

    ``unit`` is the unit of measure shown with the value ("share 0-1", "score 1-5"); ``direction``
    one of :data:`DIRECTIONS`; ``reference`` where the indicator is defined or measured (free
    text, may be empty); ``low``/``high`` an optional plausible range (inclusive) that imported
    values are checked against. Values are stored as written (a "%" sign is dropped)."""

    key: str
    label_sv: str
    label_en: str
    unit: str
    direction: str
    reference: str = ""
    low: float | None = None
    high: float | None = None


#: Columns that must be whole numbers.
COUNT_COLUMNS: tuple[str, ...] = ("children_enrolled", "n_groups")

#: Plausible range (inclusive) per non-share column; values outside are rejected as likely typos.
PLAUSIBLE_RANGES: dict[str, tuple[float, float]] = {
    "children_enrolled": (1, 1000),
    "n_groups": (1, 60),
    "mean_group_size": (1, 40),
    "children_per_fte": (0.5, 20),
}

#: The plausible range (inclusive) of every context column, shares as fractions: imports and
#: what-if questions are checked against it (docs/profile_columns.md lists it).
COLUMN_RANGES: dict[str, tuple[float, float]] = {
    **PLAUSIBLE_RANGES,
    **{col: (0.0, 1.0) for col in SHARE_COLUMNS},
}


def what_if_problems(current: dict[str, float], changes: dict[str, float]) -> list[str]:
    """Why a what-if question cannot be asked: a change that is not a finite number, or one that
    takes its column outside :data:`COLUMN_RANGES` from the unit's ``current`` value; each problem
    states the column, the resulting value and the range."""
    problems = []
    for col, change in changes.items():
        low, high = COLUMN_RANGES[col]
        if not math.isfinite(change):
            problems.append(f"{col}: the change {change!r} is not a finite number")
            continue
        base = current.get(col)
        after = change + (float(base) if base is not None and math.isfinite(base) else 0.0)
        if not low <= after <= high:
            problems.append(
                f"{col}: {base:g} {change:+g} = {after:g} lies outside the plausible range "
                f"{low:g} to {high:g}"
                if base is not None
                else f"{col}: {after:g} lies outside the plausible range {low:g} to {high:g}"
            )
    return problems


#: What each context column is, its unit of measure, in Swedish and English.
CONTEXT_LABELS: dict[str, dict[str, str]] = {
    "children_enrolled": {"sv": "Inskrivna barn", "en": "Children enrolled", "unit": "children"},
    "n_groups": {"sv": "Antal barngrupper", "en": "Number of groups", "unit": "groups"},
    "mean_group_size": {
        "sv": "Genomsnittlig barngruppsstorlek",
        "en": "Mean group size",
        "unit": "children per group",
    },
    "children_per_fte": {
        "sv": "Barn per årsarbetare",
        "en": "Children per full-time employee",
        "unit": "children per FTE",
    },
    "share_trained_staff": {
        "sv": "Andel personal med förskollärarexamen",
        "en": "Share of staff with a preschool-teacher degree",
        "unit": "share 0-1",
    },
    "staff_turnover": {"sv": "Personalomsättning", "en": "Staff turnover", "unit": "share 0-1"},
    "socioeconomic_index": {
        "sv": "Socioekonomiskt index (andel föräldrar med eftergymnasial utbildning)",
        "en": "Socio-economic index (share of parents with post-secondary education)",
        "unit": "share 0-1",
    },
    "share_multilingual": {
        "sv": "Andel flerspråkiga barn",
        "en": "Share of multilingual children",
        "unit": "share 0-1",
    },
}


class Benchmark(BaseModel):
    """A benchmark range, e.g. Skolverket's group size 6-12 children for ages 1-3."""

    label_sv: str
    label_en: str
    low: float
    high: float


class Reference(BaseModel):
    """A national reference value for a context column, with its source."""

    column: str
    value: float | None
    benchmarks: list[Benchmark]
    period: str
    source: str


_SKOLVERKET_STATS = (
    "Skolverket, official statistics on preschool: children and staff, autumn 2023 "
    "(Skolverket, Barn och personal i förskolan hösten 2023)"
)
_SKOLVERKET_BENCHMARK = (
    "Skolverket, non-binding benchmarks for group size in preschool "
    "(riktmärken för barngruppernas storlek)"
)

#: National references per context column (docs/architecture.md, "Context and national references").
REFERENCES: dict[str, Reference] = {
    "mean_group_size": Reference(
        column="mean_group_size",
        value=15.3,
        benchmarks=[
            Benchmark(label_sv="Barn 1-3 år", label_en="Children aged 1-3", low=6, high=12),
            Benchmark(label_sv="Barn 4-5 år", label_en="Children aged 4-5", low=9, high=15),
        ],
        period="autumn 2023 (mean); benchmarks standing",
        source=f"{_SKOLVERKET_STATS}; {_SKOLVERKET_BENCHMARK}",
    ),
    "children_per_fte": Reference(
        column="children_per_fte",
        value=5.1,
        benchmarks=[],
        period="autumn 2023",
        source=_SKOLVERKET_STATS,
    ),
    "share_trained_staff": Reference(
        column="share_trained_staff",
        value=0.41,
        benchmarks=[],
        period="autumn 2023",
        source=_SKOLVERKET_STATS,
    ),
}


@dataclass(frozen=True)
class ContextProblem:
    """One problem in a context file. ``row`` is the spreadsheet row (header = row 1), None for
    problems with the file as a whole; ``column`` is None for problems with a whole row."""

    row: int | None
    column: str | None
    reason: str

    def __str__(self) -> str:
        where = []
        if self.row is not None:
            where.append(f"row {self.row}")
        if self.column is not None:
            where.append(f"column {self.column!r}")
        return f"{', '.join(where) or 'file'}: {self.reason}"


class ContextFileError(ValueError):
    """A context file had problems; ``problems`` lists every one. Nothing was imported."""

    def __init__(self, problems: list[ContextProblem]) -> None:
        self.problems = list(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        super().__init__(
            f"context file has {len(self.problems)} problem(s); nothing was imported:\n{shown}{more}"
        )


_NUMBER_RE = re.compile(r"^\s*([+-]?\d+(?:[.,]\d+)?)\s*(%?)\s*$")


def _normalise_header(name: object) -> str:
    return re.sub(r"[\s\-]+", "_", str(name).strip().lower())


def _parse_number(cell: object) -> tuple[float | None, bool, str | None]:
    """Parse one cell: returns (value, given_as_percent, problem). Empty cells give a problem."""
    if cell is None or (isinstance(cell, float) and math.isnan(cell)):
        return None, False, "missing value"
    if isinstance(cell, bool):
        return None, False, f"{cell!r} is not a number"
    if isinstance(cell, int | float | np.integer | np.floating):
        if not math.isfinite(float(cell)):
            return None, False, f"{cell!r} is not a finite number"
        return float(cell), False, None
    text = str(cell).replace("\u00a0", " ").replace(" ", "")
    if text == "":
        return None, False, "missing value"
    m = _NUMBER_RE.match(text)
    if not m:
        return None, False, f"{cell!r} is not a number"
    return float(m.group(1).replace(",", ".")), m.group(2) == "%", None


def read_context_file(path: str | Path, indicators: Sequence[Indicator] = ()) -> pd.DataFrame:
    """Read and validate a context file (CSV or XLSX) of organisational data per unit x term.

    Checks: required columns present (``unit``, ``term`` and :data:`CONTEXT_COLUMNS`; header names
    are matched case-insensitively); every other column declared in ``indicators`` (an
    undeclared one is an error naming it; an empty column without a header is ignored); terms of the form YYYY-VT / YYYY-HT;
    every value present and numeric; counts whole and positive; shares in 0-1 or, for a column
    given as percentages (any value above 1 or a "%" sign), in 0-100; counts and ratios within
    :data:`PLAUSIBLE_RANGES`; mean group size consistent with children / groups (within a factor
    of 2); no unit x term twice. Indicator values must be numbers within the indicator's range
    when it declares one; an empty indicator cell means "not measured" and is kept empty.

    Args:
        path: a .csv (comma or semicolon separated, UTF-8) or .xlsx file.
        indicators: the declared quality indicators the file may carry.

    Returns:
        DataFrame with ``unit`` (str), ``term`` (str) and :data:`CONTEXT_COLUMNS` (counts int,
        others float; shares as fractions 0-1), one row per unit x term, sorted by unit and term,
        plus :func:`indicator_column` of each declared indicator present in the file (float,
        NaN where not measured).

    Raises:
        ContextFileError: listing every problem as (row, column, reason); nothing is returned.
    """
    path = Path(path)
    if not path.exists():
        raise ContextFileError([ContextProblem(None, None, f"file {str(path)!r} does not exist")])
    try:
        raw = read_sheet(path.read_bytes(), path.suffix)
    except SpreadsheetRefused as exc:  # a corrupt file is a user error, reported like any other
        raise ContextFileError([ContextProblem(None, None, exc.reason)]) from None
    return validate_context(raw, indicators)


_UNNAMED = re.compile(r"^Unnamed: \d+(\.\d+)?$")


def _blank(cell: object) -> bool:
    return cell is None or (isinstance(cell, float) and math.isnan(cell)) or str(cell).strip() == ""


def validate_context(raw: pd.DataFrame, indicators: Sequence[Indicator] = ()) -> pd.DataFrame:
    """Validate a context sheet as read by :func:`core.spreadsheet.read_sheet` (header = row 1);
    see :func:`read_context_file` for the checks, the result and the error."""
    raw = raw.copy()
    problems: list[ContextProblem] = []
    keep = []
    for i, name in enumerate(raw.columns):
        if _UNNAMED.match(str(name)) or str(name).strip() == "":
            if all(_blank(v) for v in raw.iloc[:, i]):
                continue  # an empty column left over at the edge of a spreadsheet
            problems.append(
                ContextProblem(None, f"column {i + 1}", "has values but no header; name it")
            )
            continue
        keep.append(i)
    raw = raw.iloc[:, keep]
    raw.columns = [_normalise_header(c) for c in raw.columns]
    required = ("unit", "term", *CONTEXT_COLUMNS)
    declared = {ind.key: ind for ind in indicators}
    problems += [
        ContextProblem(None, col, "required column is missing")
        for col in required
        if col not in raw.columns
    ]
    known = ", ".join(sorted(declared)) or "none"
    problems += [
        ContextProblem(
            None,
            col,
            "is neither a context column nor a declared indicator (declared indicators: "
            f"{known}); declare it in an indicator dictionary (--indicators DICT.csv, columns "
            "key,label_sv,label_en,unit,direction,reference) or remove the column",
        )
        for col in dict.fromkeys(raw.columns)
        if col not in required and col not in declared
    ]
    repeated = sorted({str(c) for c in raw.columns if list(raw.columns).count(c) > 1})
    problems += [ContextProblem(None, col, "column appears twice") for col in repeated]
    if problems:
        raise ContextFileError(problems)
    if raw.empty:
        raise ContextFileError([ContextProblem(None, None, "the file has no data rows")])

    n = len(raw)
    values: dict[str, np.ndarray] = {c: np.full(n, np.nan) for c in CONTEXT_COLUMNS}
    percent_flags: dict[str, np.ndarray] = {c: np.zeros(n, dtype=bool) for c in SHARE_COLUMNS}
    units: list[str] = []
    terms: list[str] = []
    for i, record in enumerate(raw.to_dict("records")):
        row = i + 2  # spreadsheet numbering: header is row 1
        unit = "" if record["unit"] is None else str(record["unit"]).strip()
        if unit in ("", "nan"):
            problems.append(ContextProblem(row, "unit", "missing unit"))
        else:
            bad_text = text_problem(unit, "unit")
            if bad_text:
                problems.append(ContextProblem(row, "unit", bad_text))
        units.append(unit)
        term = "" if record["term"] is None else str(record["term"]).strip()
        bad_term = term_problem(term)
        if bad_term:
            problems.append(ContextProblem(row, "term", bad_term))
        terms.append(term)
        for col in CONTEXT_COLUMNS:
            value, as_percent, problem = _parse_number(record[col])
            if problem is not None:
                problems.append(ContextProblem(row, col, problem))
                continue
            assert value is not None
            values[col][i] = value
            if col in SHARE_COLUMNS:
                percent_flags[col][i] = as_percent

    for col in SHARE_COLUMNS:
        v = values[col]
        # A column is read as percentages if any value carries "%" or exceeds 1; mixing the two
        # scales within one column would be ambiguous (is 0.5 half or half a percent?).
        percent = bool(percent_flags[col].any() or (v[~np.isnan(v)] > 1).any())
        top = 100.0 if percent else 1.0
        for i in map(int, np.flatnonzero(~np.isnan(v))):
            if v[i] < 0 or v[i] > top:
                scale = "0-100 % (the column is read as percentages)" if percent else "0-1"
                problems.append(ContextProblem(i + 2, col, f"{v[i]:g} is not a share in {scale}"))
            elif percent and 0 < v[i] < 1 and not percent_flags[col][i]:
                problems.append(
                    ContextProblem(
                        i + 2,
                        col,
                        f"{v[i]:g} looks like a fraction but other rows give percentages; "
                        f"write {v[i] * 100:g} (or '{v[i]:g} %' if a fraction of a percent is meant)",
                    )
                )
        if percent:
            values[col] = v / 100.0

    for col in COUNT_COLUMNS:
        v = values[col]
        for i in map(int, np.flatnonzero(~np.isnan(v))):
            if v[i] != round(v[i]):
                problems.append(ContextProblem(i + 2, col, f"{v[i]:g} is not a whole number"))
    for col, (low, high) in PLAUSIBLE_RANGES.items():
        v = values[col]
        for i in map(int, np.flatnonzero(~np.isnan(v))):
            if v[i] <= 0:
                problems.append(ContextProblem(i + 2, col, f"{v[i]:g} must be positive"))
            elif not low <= v[i] <= high:
                problems.append(
                    ContextProblem(
                        i + 2, col, f"{v[i]:g} is outside the plausible range {low:g}-{high:g}"
                    )
                )
    enrolled, groups, size = (
        values["children_enrolled"],
        values["n_groups"],
        values["mean_group_size"],
    )
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = (enrolled / groups) / size
    for i in map(int, np.flatnonzero(np.isfinite(ratio) & ((ratio > 2) | (ratio < 0.5)))):
        problems.append(
            ContextProblem(
                i + 2,
                "mean_group_size",
                f"{size[i]:g} does not fit {enrolled[i]:g} children in {groups[i]:g} groups "
                f"({enrolled[i] / groups[i]:.1f} per group)",
            )
        )

    present = [declared[c] for c in dict.fromkeys(raw.columns) if c in declared]
    ind_values: dict[str, np.ndarray] = {}
    for ind in present:
        v = np.full(n, np.nan)
        for i, cell in enumerate(raw[ind.key].tolist()):
            if _blank(cell):
                continue  # not measured in this unit and term
            value, _percent, problem = _parse_number(cell)
            if problem is not None:
                problems.append(ContextProblem(i + 2, ind.key, problem))
                continue
            assert value is not None
            if (ind.low is not None and value < ind.low) or (
                ind.high is not None and value > ind.high
            ):
                lowest = "-inf" if ind.low is None else f"{ind.low:g}"
                highest = "inf" if ind.high is None else f"{ind.high:g}"
                problems.append(
                    ContextProblem(
                        i + 2,
                        ind.key,
                        f"{value:g} is outside the indicator's range {lowest} to {highest} "
                        f"({ind.unit}; declared in the indicator dictionary)",
                    )
                )
                continue
            v[i] = value
        ind_values[ind.key] = v

    first_row: dict[tuple[str, str], int] = {}
    for i, key in enumerate(zip(units, terms, strict=True)):
        if key in first_row:
            problems.append(
                ContextProblem(
                    i + 2,
                    None,
                    f"unit {key[0]!r} term {key[1]!r} already given on row {first_row[key]}",
                )
            )
        else:
            first_row[key] = i + 2

    if problems:
        problems.sort(key=lambda p: (p.row if p.row is not None else 0, p.column or ""))
        raise ContextFileError(problems)

    # ``row`` is the row as the file shows it (header = 1), for errors found later (unknown unit)
    table = pd.DataFrame({"unit": units, "term": terms, "row": np.arange(len(units)) + 2})
    for col in CONTEXT_COLUMNS:
        table[col] = values[col].astype(int) if col in COUNT_COLUMNS else values[col]
    for ind_key, v in ind_values.items():
        table[indicator_column(ind_key)] = v
    table["_t"] = table["term"].map(term_sort_key)
    return table.sort_values(["unit", "_t"]).drop(columns="_t").reset_index(drop=True)


def municipality_means(context: pd.DataFrame) -> pd.DataFrame:
    """Mean of each context column over the municipality's units, per term.

    Each unit counts once (an unweighted mean over units, what "the average preschool" means).

    Returns:
        DataFrame indexed by term with :data:`CONTEXT_COLUMNS` (same units as the input) and
        ``n_units``.
    """
    means = context.groupby("term")[list(CONTEXT_COLUMNS)].mean()
    means["n_units"] = context.groupby("term")["unit"].nunique()
    return means
