"""`spira assess fit`: one JSON object with items, raters, units, converged and iterations."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from assessment.cases import DEFAULT_CASE_DIR, load_case_library
from assessment.synthetic import simulate_ratings
from cli.assess import app


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


def _nested_file(
    tmp_path: Path,
    as_file_frame: Callable[[pd.DataFrame], pd.DataFrame],
    *,
    calibration: bool,
) -> tuple[Path, list[str]]:
    """Ratings where every educator rates alone in one unit (2 per unit), optionally with every
    educator rating the shipped calibration responses (empty unit): exact on all but one item."""
    library = load_case_library()
    ratings, _ = simulate_ratings(
        n_units=4, n_sheets=240, n_raters=8, raters_per_sheet=1, library=library, seed=5
    )
    frame = as_file_frame(ratings)
    raters = sorted(frame["rater"].unique())
    if calibration:
        rows = []
        cases = library.calibration_cases()
        for n, ((cal_id, item), level) in enumerate(
            sorted(library.calibration_references().items())
        ):
            for rater in raters:
                off = 1 if (n == 0 and rater == raters[0]) else 0  # one adjacent miss
                rows.append(
                    {
                        "sheet_id": cal_id,
                        "unit": "",
                        "group": "",
                        "age_band": "",
                        "rater": rater,
                        "case": cases[cal_id],
                        "item": item,
                        "level": str(level + off if level < 3 else level - off),
                        "date": "2026-03-02",
                    }
                )
        frame = pd.concat([frame, pd.DataFrame(rows)], ignore_index=True)
    path = tmp_path / f"nested-{calibration}.csv"
    frame.to_csv(path, index=False)
    return path, raters


def test_fit_json_warns_when_educators_and_units_are_confounded(
    tmp_path: Path, as_file_frame: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    path, raters = _nested_file(tmp_path, as_file_frame, calibration=False)
    result = CliRunner().invoke(app, ["fit", str(path), "--cases", str(DEFAULT_CASE_DIR), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    confounded = [w for w in out["warnings"] if w["code"] == "rater_unit_confounded"]
    assert {w["rater"] for w in confounded} == set(raters)
    assert all({"rater", "unit", "message"} <= set(w) for w in confounded)
    assert all(u["confounded"] for u in out["units"])
    assert all("calibration" not in r for r in out["raters"])
    assert {"items", "raters", "units", "converged", "iterations"} <= set(out)


def test_fit_json_with_calibration_links_and_reports_agreement(
    tmp_path: Path, as_file_frame: Callable[[pd.DataFrame], pd.DataFrame]
) -> None:
    path, raters = _nested_file(tmp_path, as_file_frame, calibration=True)
    result = CliRunner().invoke(app, ["fit", str(path), "--cases", str(DEFAULT_CASE_DIR), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert not [w for w in out["warnings"] if w["code"] == "rater_unit_confounded"]
    assert not any(u["confounded"] for u in out["units"])
    assert {u["unit"] for u in out["units"]} == {f"unit-{n:02d}" for n in range(1, 5)}
    n_refs = len(load_case_library().calibration_references())
    by_rater = {r["rater"]: r["calibration"] for r in out["raters"]}
    assert all(c["n"] == n_refs and c["adjacent"] == 1.0 for c in by_rater.values())
    assert by_rater[raters[0]]["exact"] == pytest.approx((n_refs - 1) / n_refs, abs=1e-6)
    assert all(by_rater[r]["exact"] == 1.0 for r in raters[1:])
    # The table view shows the agreement too.
    text = CliRunner().invoke(app, ["fit", str(path), "--cases", str(DEFAULT_CASE_DIR)])
    assert text.exit_code == 0 and "calibration" in text.output
