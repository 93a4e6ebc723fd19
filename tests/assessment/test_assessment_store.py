"""Storing ratings: calibration rows (empty unit) are refused clearly and nothing is stored."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import func, select

from assessment.ratings import RatingsFileError


def test_import_refuses_calibration_rows_and_stores_nothing(spira_env) -> None:  # noqa: ANN001
    from assessment.store import import_ratings
    from core.db import migrate, session_factory
    from core.models import Group, Municipality, ResponseSheet, Unit

    migrate()
    with session_factory()() as session:
        town = Municipality(name="Kommun")
        session.add(town)
        session.flush()
        unit = Unit(name="Dalhem", municipality_id=town.id)
        session.add(unit)
        session.flush()
        session.add(Group(unit_id=unit.id, name="Blå", age_band="4-5"))
        session.commit()
        frame = pd.DataFrame(
            {
                "sheet_id": ["s-1", "kal-matte-monster-1"],
                "unit": ["Dalhem", ""],
                "group": ["Blå", ""],
                "age_band": ["4-5", ""],
                "rater": ["anna", "anna"],
                "case": ["matte-monster", "matte-monster"],
                "item": ["fortsatta", "fortsatta"],
                "level": [2, 3],
                "date": pd.to_datetime(["2026-03-02", "2026-03-02"]),
            }
        )
        with pytest.raises(RatingsFileError) as err:
            import_ratings(session, frame)
        (problem,) = err.value.problems
        assert problem.row == 3 and problem.column == "unit"
        assert "calibration rating" in problem.reason and "spira assess fit" in problem.reason
        assert session.scalar(select(func.count()).select_from(ResponseSheet)) == 0
        assert import_ratings(session, frame.iloc[:1]) == 1
