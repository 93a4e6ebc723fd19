"""Storing what profiles are built from: the organisational context of units per term.

Reading lives in :mod:`profiles.queries`, the cached profiles in :mod:`profiles.service`.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import QualityIndicator, Unit, UnitContext
from profiles.context import (
    CONTEXT_COLUMNS,
    INDICATOR_PREFIX,
    ContextFileError,
    ContextProblem,
    Indicator,
    indicator_column,
    indicator_columns,
)


def stored_indicators(session: Session) -> list[Indicator]:
    """The municipality's indicator dictionary as stored, by key."""
    return [
        Indicator(
            key=q.key,
            label_sv=q.label_sv,
            label_en=q.label_en,
            unit=q.unit,
            direction=q.direction,
            reference=q.reference or "",
            low=q.low,
            high=q.high,
        )
        for q in session.scalars(select(QualityIndicator).order_by(QualityIndicator.key))
    ]


def store_indicators(session: Session, indicators: Sequence[Indicator]) -> None:
    """Add or update declared indicators (by key); indicators not given are kept."""
    existing = {q.key: q for q in session.scalars(select(QualityIndicator))}
    now = datetime.now(UTC)
    for ind in indicators:
        row = existing.get(ind.key) or QualityIndicator(key=ind.key)
        row.label_sv, row.label_en, row.unit = ind.label_sv, ind.label_en, ind.unit
        row.direction, row.reference = ind.direction, ind.reference or None
        row.low, row.high, row.updated_at = ind.low, ind.high, now
        session.add(row)


def import_context(
    session: Session, context: pd.DataFrame, indicators: Sequence[Indicator] = ()
) -> int:
    """Store a validated context frame (``profiles.context.read_context_file``), replacing the same
    unit x term (history is kept per term), with the frame's indicator values (the file is the
    state of the unit x term: an indicator it does not carry is not kept for that row).
    ``indicators``: the dictionary the frame was validated against; its entries are stored too.
    Unknown units raise ContextFileError; nothing is written."""
    units = {u.name: u.id for u in session.scalars(select(Unit))}
    problems = [
        ContextProblem(
            int(row["row"]) if "row" in context.columns else int(str(i)) + 2,
            "unit",
            f"no unit named {row['unit']!r} in Spira",
        )
        for i, row in context.iterrows()
        if row["unit"] not in units
    ]
    declared = {ind.key for ind in indicators} | {ind.key for ind in stored_indicators(session)}
    keys = [c.removeprefix(INDICATOR_PREFIX) for c in indicator_columns(context)]
    undeclared = [k for k in keys if k not in declared]
    problems += [
        ContextProblem(None, k, "indicator is not declared in an indicator dictionary")
        for k in undeclared
    ]
    if problems:
        raise ContextFileError(problems)
    store_indicators(session, indicators)
    now = datetime.now(UTC)
    for _, row in context.iterrows():
        unit_id = units[row["unit"]]
        existing = session.scalar(
            select(UnitContext).where(
                UnitContext.unit_id == unit_id, UnitContext.term == row["term"]
            )
        )
        target = existing or UnitContext(unit_id=unit_id, term=row["term"])
        for col in CONTEXT_COLUMNS:
            value = row[col]
            setattr(target, col, None if pd.isna(value) else float(value))
        values = {k: row[indicator_column(k)] for k in keys}
        target.indicators = {k: float(v) for k, v in values.items() if not pd.isna(v)} or None
        target.imported_at = now  # a replaced row is news to the cached profiles too
        session.add(target)
    session.flush()
    return len(context)
