"""The municipality's own quality indicators: reading and checking an indicator dictionary.

An indicator dictionary (CSV or XLSX) declares the extra numeric columns a context file may carry,
one row per indicator, with the columns ``key,label_sv,label_en,unit,direction,reference`` and
optionally ``min,max`` (a plausible range imported values are checked against):

- ``key``: the column name in context files, lower-case letters, digits and ``_`` (at most 40),
  not a built-in context column;
- ``label_sv``/``label_en``: what the page shows; ``unit``: the unit of measure ("share 0-1");
- ``direction``: ``higher_better``, ``lower_better`` or ``neutral``;
- ``reference``: where the indicator is defined or measured (may be empty).

Every problem is collected (row and column, as in context files) and a dictionary with any
problem raises :class:`IndicatorDictionaryError`; nothing is imported.
docs/examples/indicators.example.csv is an example.
"""

from __future__ import annotations

import math
import re
from pathlib import Path

import pandas as pd

from core.domain import text_problem
from core.spreadsheet import SpreadsheetRefused, read_sheet
from profiles.context import (
    CONTEXT_COLUMNS,
    DIRECTIONS,
    ContextFileError,
    ContextProblem,
    Indicator,
    _normalise_header,
    _parse_number,
)

#: Required columns of an indicator dictionary, in order.
DICTIONARY_COLUMNS: tuple[str, ...] = (
    "key",
    "label_sv",
    "label_en",
    "unit",
    "direction",
    "reference",
)
#: Optional columns: a plausible range of the values.
OPTIONAL_DICTIONARY_COLUMNS: tuple[str, ...] = ("min", "max")
#: Names an indicator key may not take: the columns every context file has.
RESERVED_KEYS: frozenset[str] = frozenset({"unit", "term", "row", *CONTEXT_COLUMNS})

_KEY = re.compile(r"^[a-z][a-z0-9_]{0,39}$")
_LABEL_MAX = 200
_UNIT_MAX = 80
_REFERENCE_MAX = 500


class IndicatorDictionaryError(ContextFileError):
    """An indicator dictionary had problems; ``problems`` lists every one. Nothing was imported."""

    def __init__(self, problems: list[ContextProblem]) -> None:
        super().__init__(problems)
        shown = "\n".join(f"  - {p}" for p in self.problems[:50])
        more = f"\n  ... and {len(self.problems) - 50} more" if len(self.problems) > 50 else ""
        self.args = (
            f"indicator dictionary has {len(self.problems)} problem(s); nothing was imported:"
            f"\n{shown}{more}",
        )

    def __str__(self) -> str:
        return str(self.args[0])


def _cell(record: dict, col: str) -> str:
    value = record.get(col)
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return str(value).strip()


def read_indicator_dictionary(path: str | Path) -> list[Indicator]:
    """Read and check an indicator dictionary file (.csv or .xlsx); see the module docstring.

    Raises:
        IndicatorDictionaryError: listing every problem; nothing is returned.
    """
    path = Path(path)
    if not path.exists():
        raise IndicatorDictionaryError(
            [ContextProblem(None, None, f"file {str(path)!r} does not exist")]
        )
    try:
        raw = read_sheet(path.read_bytes(), path.suffix)
    except SpreadsheetRefused as exc:
        raise IndicatorDictionaryError([ContextProblem(None, None, exc.reason)]) from None
    return validate_indicator_dictionary(raw)


def validate_indicator_dictionary(raw: pd.DataFrame) -> list[Indicator]:
    """Check a dictionary sheet as read by :func:`core.spreadsheet.read_sheet` (header = row 1).

    Returns:
        the indicators in file order.

    Raises:
        IndicatorDictionaryError: listing every problem (row, column, reason).
    """
    raw = raw.copy()
    raw.columns = [_normalise_header(c) for c in raw.columns]
    allowed = (*DICTIONARY_COLUMNS, *OPTIONAL_DICTIONARY_COLUMNS)
    problems = [
        ContextProblem(None, col, "required column is missing")
        for col in DICTIONARY_COLUMNS
        if col not in raw.columns
    ]
    problems += [
        ContextProblem(
            None, str(col), f"is not a dictionary column; the columns are {', '.join(allowed)}"
        )
        for col in raw.columns
        if col not in allowed and not str(col).startswith("unnamed:")
    ]
    if problems:
        raise IndicatorDictionaryError(problems)
    records = [
        (i + 2, r)
        for i, r in enumerate(raw.to_dict("records"))
        if any(_cell(r, c) for c in allowed if c in r)  # blank rows are spreadsheet leftovers
    ]
    if not records:
        raise IndicatorDictionaryError(
            [ContextProblem(None, None, "the dictionary declares no indicator")]
        )

    out: list[Indicator] = []
    first_row: dict[str, int] = {}
    for row, record in records:
        key = _cell(record, "key")
        if not key:
            problems.append(ContextProblem(row, "key", "missing key"))
        elif not _KEY.match(key):
            problems.append(
                ContextProblem(
                    row,
                    "key",
                    f"{key!r} is not a key: use lower-case letters, digits and _, starting with a "
                    "letter, at most 40 characters (e.g. parent_satisfaction)",
                )
            )
        elif key in RESERVED_KEYS:
            problems.append(
                ContextProblem(
                    row,
                    "key",
                    f"{key!r} clashes with the built-in context column of that name; "
                    "choose another key",
                )
            )
        elif key.endswith("_municipality_mean"):
            problems.append(
                ContextProblem(
                    row, "key", f"{key!r} may not end in _municipality_mean (export column names)"
                )
            )
        elif key in first_row:
            problems.append(
                ContextProblem(row, "key", f"{key!r} is already declared on row {first_row[key]}")
            )
        else:
            first_row[key] = row
        texts: dict[str, str] = {}
        for col, limit, required in (
            ("label_sv", _LABEL_MAX, True),
            ("label_en", _LABEL_MAX, True),
            ("unit", _UNIT_MAX, True),
            ("reference", _REFERENCE_MAX, False),
        ):
            text = _cell(record, col)
            texts[col] = text
            if not text:
                if required:
                    problems.append(ContextProblem(row, col, f"missing {col}"))
                continue
            if len(text) > limit:
                problems.append(
                    ContextProblem(row, col, f"{len(text)} characters; at most {limit} allowed")
                )
            bad = text_problem(text, col)
            if bad:
                problems.append(ContextProblem(row, col, bad))
        direction = _cell(record, "direction").lower()
        if direction not in DIRECTIONS:
            problems.append(
                ContextProblem(
                    row,
                    "direction",
                    f"{_cell(record, 'direction')!r} is not a direction; use one of "
                    f"{', '.join(DIRECTIONS)}",
                )
            )
        bounds: dict[str, float | None] = {}
        for col in OPTIONAL_DICTIONARY_COLUMNS:
            text = _cell(record, col)
            bounds[col] = None
            if not text:
                continue
            value, _percent, problem = _parse_number(text)
            if problem is not None:
                problems.append(ContextProblem(row, col, problem))
            else:
                bounds[col] = value
        low, high = bounds["min"], bounds["max"]
        if low is not None and high is not None and low >= high:
            problems.append(ContextProblem(row, "max", f"max {high:g} is not above min {low:g}"))
        out.append(
            Indicator(
                key=key,
                label_sv=texts["label_sv"],
                label_en=texts["label_en"],
                unit=texts["unit"],
                direction=direction,
                reference=texts["reference"],
                low=low,
                high=high,
            )
        )
    if problems:
        problems.sort(key=lambda p: (p.row if p.row is not None else 0, p.column or ""))
        raise IndicatorDictionaryError(problems)
    return out


def merge_dictionaries(stored: list[Indicator], given: list[Indicator]) -> list[Indicator]:
    """The stored dictionary updated by ``given``: a given key replaces the stored one."""
    merged = {ind.key: ind for ind in stored}
    merged.update({ind.key: ind for ind in given})
    return list(merged.values())
