"""Ratings import: valid files load typed; any problem is reported (row, column, reason), nothing loads."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from assessment.cases import load_case_library
from assessment.ratings import RatingProblem, RatingsFileError, read_ratings
from assessment.synthetic import simulate_ratings

FileFrame = Callable[[pd.DataFrame], pd.DataFrame]


@pytest.fixture(scope="module")
def small(as_file_frame: FileFrame) -> pd.DataFrame:
    ratings, _ = simulate_ratings(n_units=4, n_sheets=30, n_raters=4, seed=5)
    return as_file_frame(ratings)


def test_valid_csv_loads_with_terms(tmp_path: Path, small: pd.DataFrame) -> None:
    frame = small.copy()
    path = tmp_path / "ok.csv"
    frame.to_csv(path, index=False)
    out = read_ratings(path)
    assert len(out) == len(frame)
    assert out["level"].dtype == "int64"
    assert set(out["term"]) == {"2026-VT"}


def test_semicolon_csv_and_autumn_term(tmp_path: Path, small: pd.DataFrame) -> None:
    frame = small.copy()
    frame["date"] = "2026-09-15"
    path = tmp_path / "sv.csv"
    frame.to_csv(path, index=False, sep=";", encoding="utf-8-sig")
    out = read_ratings(path)
    assert set(out["term"]) == {"2026-HT"}


def test_bad_csv_reports_every_problem_and_imports_nothing(
    tmp_path: Path, small: pd.DataFrame
) -> None:
    bad = small.copy()
    bad.loc[2, "level"] = "two"
    bad.loc[3, "age_band"] = "6-7"
    bad.loc[4, "date"] = "15/03/2026"
    bad.loc[5, "rater"] = ""
    bad.loc[7] = bad.loc[6]  # duplicate sheet x item x rater
    first_of_sheet = bad.index[bad["sheet_id"] == bad.loc[10, "sheet_id"]][0]
    bad.loc[first_of_sheet + 1, "unit"] = "elsewhere"  # conflicts within one sheet
    path = tmp_path / "bad.csv"
    bad.to_csv(path, index=False)
    with pytest.raises(RatingsFileError) as info:
        read_ratings(path)
    problems = info.value.problems
    # File rows: header is row 1, so frame row n is file row n + 2.
    assert RatingProblem(4, "level", "level 'two' is not a whole number >= 0") in problems
    assert any(p.row == 5 and p.column == "age_band" and "6-7" in p.reason for p in problems)
    assert any(p.row == 6 and p.column == "date" and "YYYY-MM-DD" in p.reason for p in problems)
    assert RatingProblem(7, "rater", "value is missing") in problems
    assert any(p.row == 9 and "duplicate of row 8" in p.reason for p in problems)
    assert any(
        p.row == first_of_sheet + 3 and p.column == "unit" and "elsewhere" in p.reason
        for p in problems
    )
    assert "nothing imported" in str(info.value)


def test_missing_columns(tmp_path: Path, small: pd.DataFrame) -> None:
    path = tmp_path / "cols.csv"
    small.drop(columns=["rater", "date"]).to_csv(path, index=False)
    with pytest.raises(RatingsFileError) as info:
        read_ratings(path)
    assert {(p.row, p.column) for p in info.value.problems} == {(1, "rater"), (1, "date")}


def test_xlsx_with_real_dates_loads_and_bad_xlsx_reports(
    tmp_path: Path, small: pd.DataFrame
) -> None:
    frame = small.copy().astype(object)
    frame["date"] = [datetime(2026, 3, 2)] * len(frame)
    frame["level"] = frame["level"].astype(int)
    good = tmp_path / "ok.xlsx"
    frame.to_excel(good, index=False)
    out = read_ratings(good)
    assert out["level"].tolist() == frame["level"].tolist()
    assert out["date"].iloc[0] == pd.Timestamp("2026-03-02")

    frame.loc[1, "level"] = -1
    frame.loc[2, "sheet_id"] = None
    bad = tmp_path / "bad.xlsx"
    frame.to_excel(bad, index=False)
    with pytest.raises(RatingsFileError) as info:
        read_ratings(bad)
    assert {(p.row, p.column) for p in info.value.problems} == {(3, "level"), (4, "sheet_id")}


def test_checks_against_case_library(tmp_path: Path, as_file_frame: FileFrame) -> None:
    library = load_case_library()
    ratings, _ = simulate_ratings(n_units=3, n_sheets=20, n_raters=3, library=library, seed=8)
    frame = as_file_frame(ratings)
    frame.loc[0, "level"] = "4"  # items go 0..3
    frame.loc[1, "item"] = "nonexistent"
    rows_of_other_sheet = frame.index[frame["sheet_id"] != frame.loc[0, "sheet_id"]]
    frame.loc[rows_of_other_sheet, "case"] = "no-such-case"
    path = tmp_path / "lib.csv"
    frame.to_csv(path, index=False)
    with pytest.raises(RatingsFileError) as info:
        read_ratings(path, library)
    problems = info.value.problems
    assert any(
        p.row == 2 and p.column == "level" and "highest level 3" in p.reason for p in problems
    )
    assert any(p.row == 3 and p.column == "item" and "nonexistent" in p.reason for p in problems)
    assert sum(p.column == "case" and "unknown case" in p.reason for p in problems) == len(
        rows_of_other_sheet
    )

    ok = as_file_frame(ratings)
    ok.to_csv(path, index=False)
    loaded = read_ratings(path, library)
    assert set(loaded["area"]) <= set(library.case_areas().values())


def test_calibration_rows_have_an_empty_unit_and_a_known_response(
    tmp_path: Path, as_file_frame: FileFrame
) -> None:
    library = load_case_library()
    ratings, _ = simulate_ratings(n_units=3, n_sheets=20, n_raters=3, library=library, seed=8)
    frame = as_file_frame(ratings)
    cal_id, case_id = next(iter(library.calibration_cases().items()))
    item = library.get(case_id).rubric[0].id
    calibration = pd.DataFrame(
        {
            "sheet_id": cal_id,
            "unit": "",
            "group": "",
            "age_band": "",
            "rater": ["rater-001", "rater-002"],
            "case": case_id,
            "item": item,
            "level": "1",
            "date": ["2026-03-02", "2026-03-09"],  # rated on different days: fine
        }
    )
    path = tmp_path / "with-calibration.csv"
    pd.concat([frame, calibration]).to_csv(path, index=False)
    loaded = read_ratings(path, library)
    rows = loaded[loaded["sheet_id"] == cal_id]
    assert len(rows) == 2 and (rows["unit"] == "").all()

    bad = calibration.assign(
        sheet_id=["no-such-response", cal_id], case=[case_id, "sprak-rim-ljud"]
    )
    bad_path = tmp_path / "bad-calibration.csv"
    pd.concat([frame, bad]).to_csv(bad_path, index=False)
    with pytest.raises(RatingsFileError) as err:
        read_ratings(bad_path, library)
    reasons = {(p.column, p.reason.split(" (")[0]) for p in err.value.problems}
    assert ("unit", "value is missing") in reasons  # empty unit, but not a calibration response
    assert any(c == "case" and "belongs to case" in r for c, r in reasons)
