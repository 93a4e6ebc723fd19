"""Age bands as a fixed facet of the sheet level: theta_s = mu_g + beta_a(s) + sigma z_s."""

from __future__ import annotations

import json
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from assessment.cases import DEFAULT_CASE_DIR
from assessment.model import ManyFacetPCM, ModelFitWarning
from assessment.synthetic import AGE_BAND_EFFECT, simulate_design
from assessment.units import unit_abilities
from cli.assess import app


def _fit(ratings: pd.DataFrame, **kwargs: object) -> ManyFacetPCM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        return ManyFacetPCM(**kwargs).fit(ratings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def shared() -> pd.DataFrame:
    return simulate_design("shared", n_units=16, sheets_per_unit=40, seed=5)[0]


def test_age_band_effects_are_recovered(shared: pd.DataFrame) -> None:
    model = _fit(shared)
    assert model.converged_
    assert model.age_bands_ == sorted(AGE_BAND_EFFECT)
    sheets = shared.drop_duplicates("sheet_id")
    n = sheets["age_band"].value_counts().reindex(model.age_bands_).to_numpy()
    # identified by a sheet-weighted mean of 0 over the data's sheets
    assert float(n @ model.age_effect_) == pytest.approx(0.0, abs=1e-8)
    assert model.age_effect_n_.tolist() == n.tolist()
    truth = np.array([AGE_BAND_EFFECT[b] for b in model.age_bands_])
    truth = truth - float(n @ truth) / n.sum()
    assert np.all(np.diff(model.age_effect_) > 0)  # older children do more
    assert np.abs(model.age_effect_ - truth).max() < 3 * model.age_effect_se_.max()
    assert np.abs(model.age_effect_ - truth).max() < 0.3
    assert np.all((model.age_effect_se_ > 0.03) & (model.age_effect_se_ < 0.3))
    # The sheet table carries each sheet's effect; unit figures are the unit means (common mix).
    table = model.sheet_table()
    effect = dict(zip(model.age_bands_, model.age_effect_, strict=True))
    np.testing.assert_allclose(table["age_effect"], table["age_band"].map(effect), atol=1e-12)
    units = {u.unit: u.ability for u in unit_abilities(table.drop(columns="area"), min_sheets=1)}
    mean = dict(zip([g[0] for g in model.groups_], model.unit_mean_, strict=True))
    for unit, ability in units.items():
        assert ability == pytest.approx(mean[unit], abs=2e-3)


def test_a_unit_of_young_children_is_not_penalised(shared: pd.DataFrame) -> None:
    """Drop the older sheets of one unit: its figure without the facet falls, with it it stays."""
    unit = sorted(shared["unit"].unique())[0]
    sheets = shared.drop_duplicates("sheet_id")
    old = sheets.loc[(sheets["unit"] == unit) & sheets["age_band"].isin(["4-5", "5-6"]), "sheet_id"]
    young = shared[~shared["sheet_id"].isin(set(old))]

    def figure(ratings: pd.DataFrame, age_bands: bool) -> float:
        model = _fit(ratings, age_bands=age_bands)
        table = model.unit_table().set_index("unit")
        # relative to the other units, so the gauge cannot matter
        return float(table.loc[unit, "ability"] - table.drop(index=unit)["ability"].mean())

    with_facet = figure(young, True) - figure(shared, True)
    without = figure(young, False) - figure(shared, False)
    # Dropping sheets moves both figures by the same sheet deviations; the plain model moves it
    # further down by the drop in the unit's mean age effect, which the facet takes out.
    mine = sheets[sheets["unit"] == unit]
    gap = float(
        mine["age_band"].map(AGE_BAND_EFFECT).mean()
        - mine.loc[~mine["sheet_id"].isin(set(old)), "age_band"].map(AGE_BAND_EFFECT).mean()
    )
    assert gap > 0.4
    assert without < with_facet - 0.6 * gap
    assert with_facet - without < 1.5 * gap


def test_option_off_reproduces_the_old_fit(shared: pd.DataFrame) -> None:
    off = _fit(shared, age_bands=False)
    blind = _fit(shared.drop(columns="age_band"))  # no band column: the model before the facet
    assert off.age_bands_ == [] and blind.age_bands_ == []
    np.testing.assert_array_equal(off.severity_, blind.severity_)
    np.testing.assert_array_equal(off.unit_mean_, blind.unit_mean_)
    np.testing.assert_array_equal(off.ability_, blind.ability_)
    assert (off.sheet_table()["age_effect"] == 0).all()
    on = _fit(shared)
    assert not np.allclose(on.severity_, off.severity_, atol=1e-3)


def test_unknown_band_sheets_take_effect_zero(shared: pd.DataFrame) -> None:
    ratings = shared.copy()
    sheets = sorted(ratings["sheet_id"].unique())[::7]
    ratings.loc[ratings["sheet_id"].isin(sheets), "age_band"] = ""
    model = _fit(ratings)
    assert model.converged_ and len(model.age_bands_) == 5
    table = model.sheet_table().set_index("sheet_id")
    assert (table.loc[sheets, "age_effect"] == 0).all()
    known = ratings.drop_duplicates("sheet_id")
    known = known[known["age_band"] != ""]
    n = known["age_band"].value_counts().reindex(model.age_bands_).to_numpy()
    assert float(n @ model.age_effect_) == pytest.approx(0.0, abs=1e-8)


@pytest.mark.parametrize("design", ["shared", "nested_calibrated"])
def test_analytic_gradient_matches_finite_differences(design: str) -> None:
    ratings, _ = simulate_design(design, n_units=12, sheets_per_unit=12, seed=3)
    model = _fit(ratings, max_iter=30, unit_prior_sd=0.7, severity_prior_sd=0.8)
    p = model._estimates + np.random.default_rng(0).normal(0, 0.05, len(model._estimates))
    _, grad = model._objective(p)
    n_beta = len(model.age_bands_) - 1
    assert n_beta == 4
    # every age-band parameter, sigma, and a sample of the rest
    check = sorted(set(range(len(p) - n_beta, len(p))) | {0, 3, len(p) // 2, len(p) // 3})
    eps = 1e-5
    for j in check:
        step = np.zeros(len(p))
        step[j] = eps
        numeric = (model._objective(p + step)[0] - model._objective(p - step)[0]) / (2 * eps)
        assert grad[j] == pytest.approx(numeric, rel=1e-4, abs=1e-4), j


def test_fit_json_reports_age_band_effects(
    tmp_path: Path, as_file_frame: Callable[[pd.DataFrame], pd.DataFrame], shared: pd.DataFrame
) -> None:
    from assessment.cases import load_case_library
    from assessment.synthetic import simulate_ratings

    ratings, _ = simulate_ratings(
        n_units=6, n_sheets=300, n_raters=6, library=load_case_library(), seed=9
    )
    path = tmp_path / "ratings.csv"
    as_file_frame(ratings).to_csv(path, index=False)
    result = CliRunner().invoke(app, ["fit", str(path), "--cases", str(DEFAULT_CASE_DIR), "--json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert {"items", "raters", "units", "converged", "iterations", "warnings"} <= set(out)
    bands = out["age_bands"]
    assert [b["age_band"] for b in bands] == sorted(ratings["age_band"].unique())
    assert all({"effect", "se", "n_sheets"} <= set(b) for b in bands)
    n = np.array([b["n_sheets"] for b in bands])
    assert n.sum() == ratings["sheet_id"].nunique()
    assert float(n @ np.array([b["effect"] for b in bands])) == pytest.approx(
        0.0, abs=1e-2
    )  # rounded
