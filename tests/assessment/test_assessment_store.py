"""Storing ratings: calibration rows (empty unit) go to calibration_rating, never to a unit; each
educator rates a calibration response's item once; the fit reads them; bad input stores nothing."""

from __future__ import annotations

import datetime as dt

import pandas as pd
import pytest
from sqlalchemy import func, select

from assessment.ratings import RatingsFileError


def _setup() -> None:
    from core.db import migrate, session_factory
    from core.models import Group, Municipality, Unit

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


def _frame(cal_rater: str = "anna") -> pd.DataFrame:
    return pd.DataFrame(
        {
            "sheet_id": ["s-1", "kal-matte-monster-1", "kal-matte-monster-1"],
            "unit": ["Dalhem", "", ""],
            "group": ["Blå", "", ""],
            "age_band": ["4-5", "", ""],
            "rater": ["anna", cal_rater, cal_rater],
            "case": ["matte-monster"] * 3,
            "item": ["fortsatta", "fortsatta", "skapa"],
            "level": [2, 3, 1],
            "date": pd.to_datetime(["2026-03-02"] * 3),
        }
    )


def _counts(session) -> tuple[int, int]:  # noqa: ANN001
    from core.models import CalibrationRating, ResponseSheet

    return (
        int(session.scalar(select(func.count()).select_from(ResponseSheet))),
        int(session.scalar(select(func.count()).select_from(CalibrationRating))),
    )


def test_import_stores_calibration_rows_apart_from_units_and_the_fit_reads_them(
    spira_env,  # noqa: ANN001
) -> None:
    from assessment.store import calibration_frame, import_ratings, ratings_frame
    from core.db import session_factory

    _setup()
    with session_factory()() as session:
        # one regular sheet + one calibration response rated by one educator: two sheets
        assert import_ratings(session, _frame()) == 2
        session.commit()
        assert _counts(session) == (1, 2)
        regular = ratings_frame(session)
        assert list(regular["sheet_id"]) == [regular["sheet_id"].iloc[0]]
        assert (regular["unit"] == "Dalhem").all()
        both = ratings_frame(session, calibration=True)
        cal = both[both["unit"] == ""]
        assert set(cal["sheet_id"]) == {"kal-matte-monster-1"}
        assert sorted(cal["level"]) == [1, 3] and (cal["term"] == "2026-VT").all()
        assert len(calibration_frame(session)) == 2
        # The profiles' fit reads them as calibration sheets; the unit counts only its own sheet.
        from profiles.queries import ability_frame

        table, model = ability_frame(session, min_n=1)
        assert model is not None and "kal-matte-monster-1" in model.sheets_
        assert model.sheet_calibration_[model.sheets_.index("kal-matte-monster-1")]
        assert (table.loc[table["unit"] == "Dalhem", "n_sheets"] == 1).all()
        # The same educator again (another file): refused, nothing stored; another educator: fine.
        with pytest.raises(RatingsFileError) as err:
            import_ratings(session, _frame().iloc[1:].reset_index(drop=True))
        assert len(err.value.problems) == 2
        assert all("rated item" in p.reason and "once" in p.reason for p in err.value.problems)
        assert _counts(session) == (1, 2)
        assert import_ratings(session, _frame("bo").iloc[1:].reset_index(drop=True)) == 1
        assert _counts(session) == (1, 4)


def test_a_calibration_row_twice_in_one_file_is_refused_and_nothing_stored(
    spira_env,  # noqa: ANN001
) -> None:
    from assessment.store import import_ratings
    from core.db import session_factory

    _setup()
    frame = pd.concat([_frame(), _frame().iloc[[1]]], ignore_index=True)
    with session_factory()() as session:
        with pytest.raises(RatingsFileError) as err:
            import_ratings(session, frame)
        (problem,) = err.value.problems
        assert problem.row == 5 and problem.column == "rater" and "twice" in problem.reason
        assert _counts(session) == (0, 0)


def test_record_calibration_validates_and_allows_one_rating_per_educator(
    spira_env,  # noqa: ANN001
) -> None:
    from assessment.cases import load_case_library
    from assessment.store import SheetRejected, record_calibration
    from core.db import session_factory

    library = load_case_library()
    _setup()
    day = dt.date(2026, 3, 2)
    with session_factory()() as session:
        rows = record_calibration(
            session,
            library=library,
            response_id="kal-natur-flyta-1",
            rater="anna",
            rated_on=day,
            levels={item.id: 1 for item in library.get("natur-flyta-sjunka").rubric},
        )
        assert {r.case_id for r in rows} == {"natur-flyta-sjunka"}
        assert {r.term for r in rows} == {"2026-VT"}
        stored = _counts(session)[1]
        bad = [
            ({"response_id": "kal-nope"}, "unknown calibration response"),
            ({"rated_on": dt.date.today() + dt.timedelta(days=2)}, "future"),
            ({"levels": {"nope": 1}}, "no rubric item"),
            ({"levels": {rows[0].item: 9}}, "outside"),
            ({"levels": {}}, "at least one"),
            ({"rater": " "}, "rater's name"),
            ({}, "before"),
        ]
        for change, message in bad:
            kwargs = {
                "library": library,
                "response_id": "kal-natur-flyta-1",
                "rater": "anna",
                "rated_on": day,
                "levels": {rows[0].item: 2},
                **change,
            }
            with pytest.raises(SheetRejected, match=message):
                record_calibration(session, **kwargs)  # type: ignore[arg-type]
        assert _counts(session)[1] == stored


def test_a_unit_figure_never_counts_calibration_sheets() -> None:
    import warnings

    from assessment.model import ManyFacetPCM, ModelFitWarning
    from assessment.synthetic import simulate_design
    from assessment.units import unit_abilities

    ratings, _ = simulate_design("nested_calibrated", n_units=6, sheets_per_unit=12, seed=3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        model = ManyFacetPCM().fit(ratings)
    units = unit_abilities(model.sheet_table().drop(columns="area"), min_sheets=1)
    assert {u.unit for u in units} == set(ratings.loc[ratings["unit"] != "", "unit"])
    assert all(u.n_sheets == 12 for u in units)
