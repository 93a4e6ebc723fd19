"""Flat export of unit profiles for the municipality's decision-support system.

One row per unit x term x outcome; every column is documented in docs/profile_columns.md.
Suppressed figures are empty (null) with ``suppressed`` true and ``n`` kept. Rows carry the
measures (åtgärder) of their outcome with the follow-up since the latest measure began, and the
municipality's quality indicators (``indicator_<key>`` columns after the fixed ones).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from core.domain import term_sort_key
from core.spreadsheet import neutralise_frame
from profiles.context import CONTEXT_COLUMNS
from profiles.measures import area_figures, follow_up
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
    "model_indicators",
    "measure_count",
    "measure_ids",
    "measure_titles",
    "measure_start_terms",
    "followup_measure_id",
    "followup_baseline_term",
    "followup_n",
    "followup_suppressed",
    "followup_observed_change",
    "followup_observed_lo",
    "followup_observed_hi",
    "followup_residual_change",
    "followup_residual_lo",
    "followup_residual_hi",
)

#: Columns of each quality indicator, after :data:`EXPORT_COLUMNS` ({key} = the indicator key).
INDICATOR_EXPORT_COLUMNS: tuple[str, ...] = (
    "indicator_{key}",
    "indicator_{key}_municipality_mean",
    "indicator_{key}_municipality_n_units",
)

#: Columns a measures frame given to :func:`profiles_table` must have
#: (``profiles.queries.measures_frame``).
MEASURE_COLUMNS: tuple[str, ...] = ("id", "unit", "area", "title", "start_term")

_INT_COLUMNS = (
    "n",
    "min_n",
    "development_rank",
    "measure_count",
    "followup_measure_id",
    "followup_n",
)
_BOOL_COLUMNS = (
    "suppressed",
    "previous_suppressed",
    "triangulation_agree",
    "triangulation_diverges",
    "followup_suppressed",
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
    "model_indicators",
    "measure_ids",
    "measure_titles",
    "measure_start_terms",
    "followup_baseline_term",
)


def _measure_columns(
    p: UnitProfile, outcome: str, measures: pd.DataFrame, unit_profiles: dict[str, UnitProfile]
) -> dict[str, Any]:
    """Measures of the row's outcome started by its term, and the follow-up of the latest one
    started before it (``profiles.measures.follow_up``: from the term after the start)."""
    key = term_sort_key(p.term)
    mine = measures[
        (measures["unit"] == p.unit)
        & (measures["area"] == outcome)
        & (measures["start_term"].map(term_sort_key) <= key)
    ]
    out: dict[str, Any] = dict.fromkeys(
        (c for c in EXPORT_COLUMNS if c.startswith(("measure_", "followup_"))), None
    )
    out["measure_count"] = len(mine)
    if mine.empty:
        return out
    mine = mine.assign(_t=mine["start_term"].map(term_sort_key)).sort_values(["_t", "id"])
    out["measure_ids"] = ";".join(str(int(i)) for i in mine["id"])
    out["measure_titles"] = "; ".join(str(t) for t in mine["title"])
    out["measure_start_terms"] = ";".join(str(t) for t in mine["start_term"])
    started = mine[mine["_t"] < key]
    if started.empty:
        return out
    latest = started.iloc[-1]
    rows = follow_up(str(latest["start_term"]), area_figures(unit_profiles, outcome), p.min_n)
    row = next((r for r in rows if r.term == p.term), None)
    out["followup_measure_id"] = int(latest["id"])
    if row is None:
        return out
    out.update(
        followup_baseline_term=row.baseline_term,
        followup_n=row.n,
        followup_suppressed=row.suppressed,
        followup_observed_change=row.observed_change,
        followup_observed_lo=row.observed_lo,
        followup_observed_hi=row.observed_hi,
        followup_residual_change=row.residual_change,
        followup_residual_lo=row.residual_lo,
        followup_residual_hi=row.residual_hi,
    )
    return out


def indicator_export_columns(profiles: Sequence[UnitProfile]) -> list[str]:
    """The indicator columns of an export of ``profiles``, by indicator key."""
    keys = sorted({i.key for p in profiles for i in p.indicators})
    return [c.format(key=k) for k in keys for c in INDICATOR_EXPORT_COLUMNS]


def profiles_table(
    profiles: Sequence[UnitProfile], measures: pd.DataFrame | None = None
) -> pd.DataFrame:
    """The profiles as a flat table, one row per unit x term x outcome, columns
    :data:`EXPORT_COLUMNS` then :func:`indicator_export_columns` (floats in the outcome's unit;
    nullable ints and booleans).

    Args:
        profiles: the profiles to export (for follow-up figures, every term of a unit).
        measures: the measures of the units (columns :data:`MEASURE_COLUMNS`); None = none.
    """
    if measures is None:
        measures = pd.DataFrame(columns=list(MEASURE_COLUMNS))
    missing = [c for c in MEASURE_COLUMNS if c not in measures.columns]
    if missing:
        raise ValueError(f"measures lack column(s) {', '.join(missing)}")
    by_unit: dict[str, dict[str, UnitProfile]] = {}
    for p in profiles:
        by_unit.setdefault(p.unit, {})[p.term] = p
    ind_columns = indicator_export_columns(profiles)
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
        used = {s.outcome: ";".join(s.used) for s in p.indicator_selection}
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
            row["model_indicators"] = used.get(e.outcome) or None
            row.update(_measure_columns(p, e.outcome, measures, by_unit[p.unit]))
            for ind in p.indicators:
                row[f"indicator_{ind.key}"] = ind.value
                row[f"indicator_{ind.key}_municipality_mean"] = ind.municipality_mean
                row[f"indicator_{ind.key}_municipality_n_units"] = ind.municipality_n_units
            rows.append(row)
    table = pd.DataFrame(rows, columns=[*EXPORT_COLUMNS, *ind_columns])
    for col in _INT_COLUMNS:
        table[col] = table[col].astype("Int64")
    for col in _BOOL_COLUMNS:
        table[col] = table[col].astype("boolean")
    for col in _STR_COLUMNS:
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    for col in ind_columns:
        if col.endswith("_municipality_n_units"):
            table[col] = table[col].astype("Int64")
    float_cols = [
        c
        for c in (*EXPORT_COLUMNS, *ind_columns)
        if c not in (*_INT_COLUMNS, *_BOOL_COLUMNS, *_STR_COLUMNS)
        and not c.endswith("_municipality_n_units")
    ]
    for col in float_cols:
        table[col] = pd.to_numeric(table[col]).astype(float)
    return table


def export_profiles(
    profiles: Sequence[UnitProfile],
    path: str | Path,
    format: str = "csv",
    *,
    measures: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Write the flat profile table to ``path`` as CSV (UTF-8, comma, '.' decimals), XLSX (one
    sheet "profiles") or Parquet; ``measures`` as for :func:`profiles_table`.

    Returns:
        the table written (see :func:`profiles_table`).

    Raises:
        ValueError: an unknown format (nothing is written).
    """
    if format not in EXPORT_FORMATS:
        raise ValueError(
            f"unknown export format {format!r}; use one of {', '.join(EXPORT_FORMATS)}"
        )
    table = profiles_table(profiles, measures)
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
    ind_columns = [c for c in table.columns if str(c).startswith("indicator_")]
    for col in (*_INT_COLUMNS, *(c for c in ind_columns if c.endswith("_municipality_n_units"))):
        table[col] = pd.to_numeric(table[col]).astype("Int64")
    for col in _BOOL_COLUMNS:
        table[col] = table[col].map(_as_bool).astype("boolean")
    for col in _STR_COLUMNS:
        table[col] = table[col].astype(object).where(table[col].notna(), None)
    return table[[*EXPORT_COLUMNS, *ind_columns]]
