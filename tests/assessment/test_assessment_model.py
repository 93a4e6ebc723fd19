"""The many-facet partial credit model: recovery, agreement with girth, anchoring, edge cases."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from assessment.model import ManyFacetPCM, ModelFitWarning
from assessment.synthetic import SyntheticTruth, simulate_ratings
from assessment.units import unit_abilities


def _flat_thresholds(model: ManyFacetPCM) -> np.ndarray:
    return np.concatenate(
        [model.thresholds_[i, : len(lv) - 1] for i, lv in enumerate(model.item_levels_)]
    )


@pytest.fixture(scope="module")
def fitted(recovery_data: tuple[pd.DataFrame, SyntheticTruth]) -> ManyFacetPCM:
    return ManyFacetPCM().fit(recovery_data[0])


def test_recovers_known_parameters(
    recovery_data: tuple[pd.DataFrame, SyntheticTruth], fitted: ManyFacetPCM
) -> None:
    _, truth = recovery_data
    assert fitted.converged_ and fitted.n_iter_ < 100
    true_thr = np.concatenate([truth.thresholds[key] for key in fitted.item_keys_])
    assert np.corrcoef(_flat_thresholds(fitted), true_thr)[0, 1] >= 0.95
    true_sev = [truth.severity[r] for r in fitted.raters_]
    assert np.corrcoef(fitted.severity_, true_sev)[0, 1] >= 0.95
    units = unit_abilities(fitted.sheet_table().drop(columns="area"))  # whole unit
    assert len(units) == 40 and not any(u.suppressed for u in units)
    rho = spearmanr([u.ability for u in units], [truth.unit_effect[u.unit] for u in units])[0]
    assert rho >= 0.9


def test_identification_errors_and_fit(fitted: ManyFacetPCM) -> None:
    assert abs(fitted.severity_.mean()) < 1e-6
    assert abs(fitted.item_difficulty_.mean()) < 1e-6  # centred
    assert np.all(fitted.thresholds_se_ > 0) and np.all(fitted.thresholds_se_ < 0.5)
    assert np.all(fitted.severity_se_ > 0) and np.all(fitted.ability_se_ > 0)
    # Data drawn from the model fit it: leave-one-out predictive mean-squares centre on 1.
    for values in (
        fitted.item_infit_,
        fitted.item_outfit_,
        fitted.rater_infit_,
        fitted.rater_outfit_,
    ):
        assert 0.9 < values.mean() < 1.1


def test_erratic_rater_misfits(recovery_data: tuple[pd.DataFrame, SyntheticTruth]) -> None:
    ratings = recovery_data[0].copy()
    erratic = ratings["rater"] == "rater-003"
    rng = np.random.default_rng(0)
    ratings.loc[erratic, "level"] = rng.integers(0, 4, erratic.sum())
    model = ManyFacetPCM().fit(ratings)
    infit = dict(zip(model.raters_, model.rater_infit_, strict=True))
    assert infit.pop("rater-003") > 1.3
    assert max(infit.values()) < 1.1


def test_agrees_with_girth_pcm_mml_single_rater() -> None:
    girth = pytest.importorskip("girth")
    ratings, _ = simulate_ratings(
        n_units=10,
        n_sheets=600,
        n_cases=1,
        items_per_case=8,
        n_raters=1,
        raters_per_sheet=1,
        missing_rate=0.0,
        seed=3,
    )
    model = ManyFacetPCM().fit(ratings)
    items = [key[1] for key in model.item_keys_]
    wide = ratings.pivot(index="item", columns="sheet_id", values="level").loc[items]
    reference = girth.pcm_mml(wide.to_numpy())["Difficulty"]
    assert reference.shape == model.thresholds_.shape
    assert np.corrcoef(model.thresholds_.ravel(), reference.ravel())[0, 1] >= 0.99


def test_anchoring_reproduces_reference_values(
    recovery_data: tuple[pd.DataFrame, SyntheticTruth], fitted: ManyFacetPCM
) -> None:
    ratings, _ = recovery_data
    later = ratings[ratings["sheet_id"] >= "sheet-001500"]
    anchored = ManyFacetPCM(anchors=fitted).fit(later)
    assert anchored.item_anchored_.all() and anchored.rater_anchored_.all()
    np.testing.assert_array_equal(anchored.thresholds_, fitted.thresholds_)
    ref = dict(zip(fitted.raters_, fitted.severity_, strict=True))
    np.testing.assert_array_equal(anchored.severity_, [ref[r] for r in anchored.raters_])
    assert np.all(anchored.thresholds_se_[np.isfinite(anchored.thresholds_)] == 0)
    # Sheets on the reference scale: the same sheets got nearly the same ability in the full fit
    # (posterior means shrink toward a unit mean now estimated from a quarter of the sheets).
    full = fitted.sheet_table().set_index("sheet_id")["ability"]
    again = anchored.sheet_table().set_index("sheet_id")["ability"]
    assert np.abs(again - full.loc[again.index]).mean() < 0.1

    # Anchors as values work the same, and do not move when a sheet's data change.
    values = fitted.anchor_values()
    shifted = later.assign(level=np.minimum(later["level"] + 1, 3))  # level 0 no longer used
    moved = ManyFacetPCM(anchors=values).fit(shifted)
    assert moved.item_anchored_.all() and not moved.warnings_
    np.testing.assert_array_equal(moved.thresholds_, fitted.thresholds_)
    assert moved.ability_.mean() > anchored.ability_.mean() + 0.3


def test_unused_level_is_collapsed_with_warning() -> None:
    ratings, _ = simulate_ratings(n_units=5, n_sheets=300, n_raters=5, seed=4)
    target = (ratings["case"] == "syn-01") & (ratings["item"] == "i2")
    ratings.loc[target & (ratings["level"] == 2), "level"] = 3
    with pytest.warns(ModelFitWarning, match=r"level\(s\) \[2\] never used"):
        model = ManyFacetPCM().fit(ratings)
    i = model.item_keys_.index(("syn-01", "i2"))
    assert model.item_levels_[i] == (0, 1, 3)
    assert np.isfinite(model.thresholds_[i, :2]).all() and np.isnan(model.thresholds_[i, 2])
    assert any("never used" in w for w in model.warnings_)


def test_extreme_sheets_have_finite_ordered_abilities() -> None:
    ratings, _ = simulate_ratings(n_units=5, n_sheets=300, n_raters=5, seed=6)
    top, bottom = "sheet-000001", "sheet-000002"
    ratings.loc[ratings["sheet_id"] == top, "level"] = 3
    ratings.loc[ratings["sheet_id"] == bottom, "level"] = 0
    model = ManyFacetPCM().fit(ratings)
    table = model.sheet_table().set_index("sheet_id")
    assert np.isfinite(table["ability"]).all() and np.isfinite(table["se"]).all()
    assert table.loc[top, "extreme"] and table.loc[bottom, "extreme"]
    others = table.drop(index=[top, bottom])
    assert table.loc[top, "ability"] > others["ability"].median() + 1
    assert table.loc[bottom, "ability"] < others["ability"].median() - 1
    assert table.loc[top, "ability"] < 15 and table.loc[bottom, "ability"] > -15


def test_pinned_regression_values() -> None:
    ratings, _ = simulate_ratings(n_units=6, n_sheets=120, n_cases=2, n_raters=4, seed=42)
    # age_bands=False is the model before the age-band facet, adaptive=False its fixed 15-node
    # quadrature: together they must reproduce that fit.
    model = ManyFacetPCM(age_bands=False, adaptive=False).fit(ratings)
    assert model.converged_ and model.age_bands_ == [] and model.n_nodes_ == 15
    # Optimiser tolerance 1e-3 on the gradient: values agree to about 1e-3 across platforms.
    np.testing.assert_allclose(model.thresholds_[0], PINNED["thresholds_0"], atol=2e-3)
    np.testing.assert_allclose(model.severity_, PINNED["severity"], atol=2e-3)
    np.testing.assert_allclose(model.ability_[:3], PINNED["ability_3"], atol=2e-3)
    assert model.sigma_ == pytest.approx(PINNED["sigma"], abs=2e-3)


def test_adaptive_quadrature_agrees_with_a_fine_fixed_grid() -> None:
    """7 nodes per sheet, centred and scaled on its posterior, give the fit of 61 fixed nodes
    (PINNED_FINE); the 15 fixed nodes of PINNED are off by up to 0.026 logit on abilities."""
    ratings, _ = simulate_ratings(n_units=6, n_sheets=120, n_cases=2, n_raters=4, seed=42)
    model = ManyFacetPCM(age_bands=False).fit(ratings)
    assert model.converged_ and model.n_nodes_ == 7
    np.testing.assert_allclose(model.thresholds_[0], PINNED_FINE["thresholds_0"], atol=2e-3)
    np.testing.assert_allclose(model.severity_, PINNED_FINE["severity"], atol=2e-3)
    np.testing.assert_allclose(model.ability_[:3], PINNED_FINE["ability_3"], atol=2e-3)
    assert model.sigma_ == pytest.approx(PINNED_FINE["sigma"], abs=2e-3)
    coarse = np.abs(np.subtract(PINNED["ability_3"], PINNED_FINE["ability_3"])).max()
    assert coarse > 0.01  # the check can tell the quadratures apart


#: Values of the current implementation (seed 42; marginal ML with sheets nested in units,
#: empirical-Bayes rater prior); a change means the estimator changed.
PINNED: dict = {
    "thresholds_0": [-1.166422, 0.856784, 1.655466],
    "severity": [1.058714, -0.343164, -0.163762, -0.551788],
    "ability_3": [-0.396451, 1.356742, 0.655868],
    "sigma": 1.253834,
}
#: The same data and model with 61 fixed Gauss-Hermite nodes (adaptive=False, n_nodes=61).
PINNED_FINE: dict = {
    "thresholds_0": [-1.162878, 0.859848, 1.649326],
    "severity": [1.058268, -0.346486, -0.16066, -0.551123],
    "ability_3": [-0.408802, 1.364331, 0.681705],
    "sigma": 1.243212,
}


def test_rejects_bad_input_and_unfitted_use() -> None:
    with pytest.raises(ValueError, match="lack column"):
        ManyFacetPCM().fit(pd.DataFrame({"sheet_id": ["a"], "level": [1]}))
    with pytest.raises(RuntimeError, match="not fitted"):
        ManyFacetPCM().item_table()


def test_item_with_a_single_used_level_is_left_out_with_warning() -> None:
    ratings, _ = simulate_ratings(n_units=5, n_sheets=300, n_raters=5, seed=4)
    ratings.loc[ratings["case"] == "syn-02", "level"] = 1  # a whole case without variation
    with pytest.warns(ModelFitWarning, match="has only level 1"):
        model = ManyFacetPCM().fit(ratings)
    assert model.converged_
    assert np.isfinite(model.severity_).all() and np.isfinite(model.ability_).all()
    usable = [i for i, lv in enumerate(model.item_levels_) if len(lv) > 1]
    assert np.isfinite(model.thresholds_[usable, 0]).all()


def test_the_last_item_with_a_single_used_level_is_left_out_too() -> None:
    ratings, _ = simulate_ratings(n_units=5, n_sheets=300, n_raters=5, seed=4)
    last = ratings[["case", "item"]].drop_duplicates().sort_values(["case", "item"]).iloc[-1]
    ratings.loc[(ratings["case"] == last["case"]) & (ratings["item"] == last["item"]), "level"] = 2
    with pytest.warns(ModelFitWarning, match="has only level 2"):
        model = ManyFacetPCM().fit(ratings)
    assert model.converged_ and np.isnan(model.item_difficulty_[-1])
    assert np.isfinite(model.item_difficulty_[:-1]).all()


def test_adaptive_quadrature_follows_narrow_posteriors() -> None:
    """About 23 ratings per sheet: posteriors narrower than the spacing of fixed nodes on N(0, 1).
    15 fixed nodes then miss unit means by tenths of a logit; 7 adapted nodes agree with 61."""
    ratings, _ = simulate_ratings(
        n_units=6, n_sheets=60, n_cases=2, n_raters=10, raters_per_sheet=8, seed=1
    )
    adaptive = ManyFacetPCM().fit(ratings)
    fine = ManyFacetPCM(adaptive=False, n_nodes=61).fit(ratings)
    coarse = ManyFacetPCM(adaptive=False, n_nodes=15).fit(ratings)
    assert adaptive.converged_ and fine.converged_
    assert np.abs(adaptive.unit_mean_ - fine.unit_mean_).max() < 5e-3
    assert np.abs(adaptive.ability_ - fine.ability_).max() < 5e-3
    assert np.abs(adaptive.severity_ - fine.severity_).max() < 2e-3
    assert np.abs(coarse.unit_mean_ - fine.unit_mean_).max() > 0.1


def test_quadrature_nodes_follow_the_ratings_per_sheet() -> None:
    import warnings

    from assessment.synthetic import simulate_design

    crossed, _ = simulate_design("crossed", n_units=4, sheets_per_unit=10, seed=1)  # 15 per sheet
    shared, _ = simulate_design("shared", n_units=4, sheets_per_unit=10, seed=1)  # 3 per sheet
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        assert ManyFacetPCM(max_iter=5, adaptive=False).fit(crossed).n_nodes_ == 31
        assert ManyFacetPCM(max_iter=5, adaptive=False).fit(shared).n_nodes_ == 15
        assert ManyFacetPCM(max_iter=5, n_nodes=9).fit(crossed).n_nodes_ == 9
        assert ManyFacetPCM(max_iter=5).fit(crossed).n_nodes_ == 7  # adaptive: 7 everywhere
    with pytest.raises(ValueError, match="n_nodes >= 3"):
        ManyFacetPCM(n_nodes=2).fit(shared)
