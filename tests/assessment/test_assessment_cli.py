"""`spira assess fit`: one JSON object with items, raters, units, converged and iterations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
from typer.testing import CliRunner

from assessment.cases import DEFAULT_CASE_DIR, load_case_library
from assessment.cli import app
from assessment.synthetic import simulate_ratings


def test_fit_json_has_the_documented_keys(
    tmp_path: Path, as_file_frame: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    library = load_case_library()
    ratings, _ = simulate_ratings(n_units=6, n_sheets=300, n_raters=6, library=library, seed=9)
    path = tmp_path / "ratings.csv"
    as_file_frame(ratings).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit", str(path), "--cases", str(DEFAULT_CASE_DIR), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {"items", "raters", "units", "converged", "iterations"} <= set(out)
    assert out["converged"] is True and out["iterations"] >= 1
    n_items = sum(len(c.rubric) for c in library)
    assert len(out["items"]) == n_items
    assert {"case", "item", "thresholds", "se", "infit", "outfit"} <= set(out["items"][0])
    assert len(out["items"][0]["thresholds"]) == len(out["items"][0]["se"]) == 3
    assert {"rater", "severity", "se", "infit", "outfit"} <= set(out["raters"][0])
    assert len(out["raters"]) == 6
    unit = out["units"][0]
    assert {"unit", "area", "term", "ability", "se", "n_sheets"} <= set(unit)
    assert {u["area"] for u in out["units"]} <= set(library.case_areas().values())
    for u in out["units"]:
        assert (u["ability"] is None) == (u["n_sheets"] < 5)


def test_fit_bad_file_exits_1_with_row_column_reason(
    tmp_path: Path, as_file_frame: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    ratings, _ = simulate_ratings(n_units=3, n_sheets=20, n_raters=3, seed=1)
    frame = as_file_frame(ratings)
    frame.loc[3, "age_band"] = "9-10"
    path = tmp_path / "bad.xlsx"
    frame.to_excel(path, index=False)
    result = CliRunner().invoke(app, ["fit", str(path), "--json"])
    assert result.exit_code == 1
    assert "row 5, column age_band" in result.output and "9-10" in result.output


def test_fit_human_output(
    tmp_path: Path, as_file_frame: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    ratings, _ = simulate_ratings(n_units=3, n_sheets=60, n_raters=3, seed=1)
    path = tmp_path / "r.csv"
    as_file_frame(ratings).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit", str(path)])
    assert result.exit_code == 0, result.output
    assert "converged" in result.output and "Raters" in result.output
