"""Flat export of unit profiles for the municipality's decision-support system.

One row per unit x term x outcome; every column is documented in docs/profile_columns.md.
Suppressed figures are empty (null) with ``suppressed`` true and ``n`` kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.spreadsheet import neutralise_frame
from profiles.context import CONTEXT_COLUMNS
from profiles.profile import PROGRESSION
from profiles.schemas import UnitProfile

EXPORT_FORMATS: tuple[str, ...] = ("csv", "xlsx", "parquet")

#: Export columns in order (context columns are appended as value and municipality mean).
EXPORT_COLUMNS: tuple[str, ...] = (
    "unit",
    "term",
    "outcome",
    "outcome_label_sv",
    "outcome_label_en",
    "measure_unit",
    "n",
    "n_kind",
    "suppressed",
    "level",
    "min_n",
    "observed",
    "observed_lo",
    "observed_hi",
    "expected",
    "expected_se",
    "residual",
    "residual_lo",
    "residual_hi",
    "shrunk_residual",
    "shrunk_lo",
    "shrunk_hi",
    "previous_term",
    "previous_observed",
    "previous_suppressed",
    "development_rank",
    "development_reasons",
    "standardised_gap",
    "change_from_earlier",
    "change_lo",
    "change_hi",
    "triangulation_agree",
    "triangulation_diverges",
    *(c for col in CONTEXT_COLUMNS for c in (f"ctx_{col}", f"ctx_{col}_municipality_mean")),
)

_INT_COLUMNS = ("n", "min_n", "development_rank")
_BOOL_COLUMNS = (
    "suppressed",
    "previous_suppressed",
    "triangulation_agree",
    "triangulation_diverges",
)
_STR_COLUMNS = (
    "unit",
    "term",
    "outcome",
    "outcome_label_sv",
    "outcome_label_en",
    "measure_unit",
    "n_kind",
    "previous_term",
    "development_reasons",
)


def profiles_table(profiles: Sequence[UnitProfile]) -> pd.DataFrame:
    """The profiles as a flat table, one row per unit x term x outcome, columns
    :data:`EXPORT_COLUMNS` (floats in the outcome's unit; nullable ints and booleans)."""
    rows: list[dict[str, Any]] = []
    for p in profiles:
        figures: dict[str, tuple[float | None, float | None, float | None]] = {
            PROGRESSION: (p.progression.index, p.progression.index_lo, p.progression.index_hi)
        }
        for a in p.ability:
            figures[a.area] = (a.ability, a.ability_lo, a.ability_hi)
        previous: dict[str, tuple[str, float | None, bool]] = {}
        if p.progression_previous:
            last = p.progression_previous[-1]
            previous[PROGRESSION] = (last.term, last.index, last.suppressed)
        for a in p.ability_previous:  # chronological, so the last one per area wins
            previous[a.area] = (a.term, a.ability, a.suppressed)
        areas = {d.outcome: d for d in p.development_areas}
        context = {c.column: (c.value, c.municipality_mean) for c in p.context}
        tri = p.triangulation
        for e in p.expected:
            observed, lo, hi = figures.get(e.outcome, (None, None, None))
            prev = previous.get(e.outcome)
            dev = areas.get(e.outcome)
            row: dict[str, Any] = {
                "unit": p.unit,
                "term": p.term,
                "outcome": e.outcome,
                "outcome_label_sv": e.label_sv,
                "outcome_label_en": e.label_en,
                "measure_unit": e.measure_unit,
                "n": e.n,
                "n_kind": "photos" if e.outcome == PROGRESSION else "sheets",
                "suppressed": e.suppressed,
                "level": p.level,
                "min_n": p.min_n,
                "observed": observed,
                "observed_lo": lo,
                "observed_hi": hi,
                "expected": e.expected,
                "expected_se": e.expected_se,
                "residual": e.residual,
                "residual_lo": e.residual_lo,
                "residual_hi": e.residual_hi,
                "shrunk_residual": e.shrunk_residual,
                "shrunk_lo": e.shrunk_lo,
                "shrunk_hi": e.shrunk_hi,
                "previous_term": prev[0] if prev else None,
                "previous_observed": prev[1] if prev else None,
                "previous_suppressed": prev[2] if prev else None,
                "development_rank": dev.rank if dev else None,
                "development_reasons": ";".join(dev.reasons) if dev else None,
                "standardised_gap": dev.standardised_gap if dev else None,
                "change_from_earlier": dev.change_from_earlier if dev else None,
                "change_lo": dev.change_lo if dev else None,
                "change_hi": dev.change_hi if dev else None,
                "triangulation_agree": tri.agree,
                "triangulation_diverges": tri.diverges,
            }
            for col in CONTEXT_COLUMNS:
                value, mean = context.get(col, (None, None))
                row[f"ctx_{col}"] = value
                row[f"ctx_{col}_municipality_mean"] = mean
            rows.append(row)
    table = pd.DataFrame(rows, columns=list(EXPORT_COLUMNS))
    for col in _INT_COLUMNS:
        table[col] = table[col].astype("Int64")
    for col in _BOOL_COLUMNS:
        table[col] = table[col].astype("boolean")
    for col in _STR_COLUMNS:
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    float_cols = [
        c for c in EXPORT_COLUMNS if c not in (*_INT_COLUMNS, *_BOOL_COLUMNS, *_STR_COLUMNS)
    ]
    for col in float_cols:
        table[col] = pd.to_numeric(table[col]).astype(float)
    return table


def export_profiles(
    profiles: Sequence[UnitProfile], path: str | Path, format: str = "csv"
) -> pd.DataFrame:
    """Write the flat profile table to ``path`` as CSV (UTF-8, comma, '.' decimals), XLSX (one
    sheet "profiles") or Parquet.

    Returns:
        the table written (see :func:`profiles_table`).

    Raises:
        ValueError: an unknown format (nothing is written).
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    table = profiles_table(profiles)
    path = Path(path)
    # Write to a sibling first and rename, so a failed export never leaves half a file behind.
    tmp = path.with_name(f".{path.name}.partial")
    try:
        # Text that a spreadsheet would run as a formula (a unit named "=cmd|...") is written
        # with a ' in front in the files people open; numbers are left as they are.
        if format == "csv":
            neutralise_frame(table).to_csv(tmp, index=False, encoding="utf-8")
        elif format == "xlsx":
            neutralise_frame(table).to_excel(
                tmp, index=False, sheet_name="profiles", engine="openpyxl"
            )
        else:
            table.to_parquet(tmp, index=False, engine="pyarrow")
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return table


def _as_bool(value: object) -> bool | None:
    """A boolean cell as read back from CSV ("True"), XLSX (True or 1.0) or Parquet (True)."""
    if value is None or (not isinstance(value, str) and pd.isna(value)):
        return None
    if isinstance(value, str):
        return value.strip().lower() in ("true", "1")
    return bool(value)


def read_profiles_export(path: str | Path) -> pd.DataFrame:
    """Read an export written by :func:`export_profiles` back, with the same column types."""
    path = Path(path)
    suffix = path.suffix.lower()
    if suffix == ".csv":
        table = pd.read_csv(path, dtype={c: "string" for c in _STR_COLUMNS})
    elif suffix == ".xlsx":
        table = pd.read_excel(path, sheet_name="profiles", engine="openpyxl")
    elif suffix == ".parquet":
        table = pd.read_parquet(path)
    else:
        raise ValueError(f"unknown export file type {suffix!r}; use .csv, .xlsx or .parquet")
    for col in _INT_COLUMNS:
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    for col in _BOOL_COLUMNS:
        table[col] = table[col].map(_as_bool).astype("boolean")
    for col in _STR_COLUMNS:
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table[list(EXPORT_COLUMNS)]
