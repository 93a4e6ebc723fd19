"""Storing what profiles are built from: the organisational context of units per term.

Reading lives in :mod:`profiles.queries`, the cached profiles in :mod:`profiles.service`.
"""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.models import Unit, UnitContext
from profiles.context import CONTEXT_COLUMNS, ContextFileError, ContextProblem


def import_context(session: Session, context: pd.DataFrame) -> int:
    """Store a validated context frame (``profiles.context.read_context_file``), replacing the same
    unit x term (history is kept per term). Unknown units raise ContextFileError; nothing is written."""
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
    if problems:
        raise ContextFileError(problems)
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
        session.add(target)
    session.flush()
    return len(context)
