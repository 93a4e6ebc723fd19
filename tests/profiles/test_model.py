import numpy as np
import pandas as pd
import pytest

from profiles.model import ContextModel
from profiles.profile import what_if
from profiles.synthetic import TRUE_PROGRESSION_COEF


def test_what_if_fewer_children_per_employee_predicts_higher_progression(synthetic, models):
    row = synthetic.context.iloc[0]
    result = models["progression"].what_if(row, {"children_per_fte": -0.5}, outcome="progression")
    true_change = -0.5 * TRUE_PROGRESSION_COEF["children_per_fte"]
    assert result.change > 0 and result.change_lo > 0  # direction, credibly
    assert result.change_lo < true_change < result.change_hi
    assert result.expected_after == pytest.approx(result.expected_before + result.change)
    assert "association" in result.note_en and "samband" in result.note_sv
    assert not result.extrapolation
    opposite = models["progression"].what_if(row, {"children_per_fte": +0.5})
    assert opposite.change == pytest.approx(-result.change)
    # 1 child per employee lies far outside the municipality's range: flagged as extrapolation.
    far = models["progression"].what_if(row, {"children_per_fte": 1.0 - row["children_per_fte"]})
    assert far.extrapolation


def test_what_if_for_every_outcome_and_bad_changes(synthetic, models):
    row = synthetic.context.iloc[0]
    results = what_if(models, row, {"share_trained_staff": 0.1})
    assert [r.outcome for r in results][0] == "progression" and len(results) == 6
    assert all(r.change > 0 for r in results)  # trained staff goes with higher results everywhere
    with pytest.raises(ValueError, match="cannot change"):
        models["progression"].what_if(row, {"sunshine_hours": 10})
    with pytest.raises(ValueError, match="share range"):
        models["progression"].what_if(row, {"share_trained_staff": 2.0})


def test_shrinkage_pulls_results_with_little_data_toward_expectation(synthetic, models):
    model = models["mathematics"]
    X = synthetic.context.iloc[[0, 0]]
    out = model.assess(X, np.array([1.0, 1.0]), np.array([0.1, 1.0]))
    assert out["residual"].iloc[0] == pytest.approx(out["residual"].iloc[1])
    assert out["shrinkage"].iloc[0] > out["shrinkage"].iloc[1]
    assert abs(out["shrunk_residual"].iloc[1]) < abs(out["shrunk_residual"].iloc[0])
    # The residual interval is wider than the observation's own: model uncertainty is added.
    assert (out["residual_hi"] - out["residual_lo"]).iloc[0] > 2 * 1.645 * 0.1


def test_context_model_recovers_known_coefficients():
    rng = np.random.default_rng(0)
    n_units, n_terms = 150, 3
    X = pd.DataFrame(
        {"a": rng.normal(0, 1, n_units * n_terms), "b": rng.normal(5, 2, n_units * n_terms)}
    )
    unit = np.tile(np.arange(n_units), n_terms)
    effect = rng.normal(0, 0.3, n_units)[unit]
    se = rng.uniform(0.05, 0.3, len(X))
    y = 1.0 + 0.5 * X["a"] - 0.2 * X["b"] + effect + rng.normal(0, 1, len(X)) * se
    model = ContextModel(features=("a", "b"), n_boot=100).fit(X, y, se, unit)
    assert model.coef_raw_ == pytest.approx([0.5, -0.2], abs=0.08)
    assert model.tau2_ == pytest.approx(0.09, abs=0.04)
    expected, expected_se = model.predict(X.iloc[:3], return_std=True)
    assert expected.shape == (3,) and (expected_se > 0).all()
    with pytest.raises(ValueError, match="lacks"):
        model.predict(X[["a"]])
