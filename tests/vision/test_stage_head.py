"""The ordinal stage head on data with a known ordinal structure."""

from __future__ import annotations

import numpy as np
import pytest

from training.fit import fit_stage_head
from vision.stages import OrdinalStageHead


def _ordinal_data(n: int, seed: int):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 6))
    latent = X @ np.array([1.5, -1.0, 0.5, 0, 0, 0]) + rng.logistic(size=n) * 0.5
    y = np.digitize(latent, [-2, -0.7, 0.7, 2])
    return X, y


def test_head_recovers_order_and_probabilities_sum_to_one():
    X, y = _ordinal_data(800, 0)
    head = OrdinalStageHead(l2=1e-3).fit(X, y)
    p = head.predict_proba(X)
    assert p.shape == (800, 5)
    assert np.allclose(p.sum(1), 1)
    assert np.all(np.diff(head.thresholds_) > 0)
    assert np.corrcoef(head.predict_expected(X), y)[0, 1] > 0.85
    assert head.coef_[0] > 0 and head.coef_[1] < 0


def test_save_load_roundtrip(tmp_path):
    X, y = _ordinal_data(200, 1)
    head = OrdinalStageHead().fit(X, y)
    head.temperature_ = 1.7
    head.save(tmp_path / "h.npz", version="v1")
    loaded, meta = OrdinalStageHead.load(tmp_path / "h.npz")
    assert meta["version"] == "v1"
    assert np.allclose(loaded.predict_proba(X), head.predict_proba(X))


def test_unfitted_and_bad_input_are_clear_errors():
    with pytest.raises(RuntimeError, match="not fitted"):
        OrdinalStageHead().predict_proba(np.zeros((1, 3)))
    with pytest.raises(ValueError, match="stages must lie"):
        OrdinalStageHead().fit(np.zeros((3, 2)), np.array([0, 1, 7]))


def test_grouped_cv_metrics_and_calibration():
    X, y = _ordinal_data(600, 2)
    groups = np.arange(600) // 3
    fit = fit_stage_head(X, y, groups, n_splits=4)
    assert fit.metrics["qwk"] > 0.8
    assert fit.metrics["n"] == 600 and fit.metrics["folds"] == 4
    assert fit.metrics["ece"] < 0.1
    # an overconfident head (weights and cuts scaled up) is cooled by temperature scaling
    head = OrdinalStageHead().fit(X[:300], y[:300])
    head.coef_ = head.coef_ * 4
    head.thresholds_ = head.thresholds_ * 4

    def nll(h):
        return -np.log(h.predict_proba(X[300:])[np.arange(300), y[300:]]).mean()

    before = nll(head)
    head.calibrate(X[300:], y[300:])
    assert head.temperature_ > 2
    assert nll(head) < before


def test_penalty_search_goes_past_the_grid_when_its_edge_is_best():
    # Few rows, many noise dimensions (as real-drawing embeddings with few labels): the best
    # penalty lies above the grid; the search must go on until the log-loss stops improving.
    rng = np.random.default_rng(5)
    n = 120
    signal = rng.normal(size=n)
    X = np.column_stack([signal, rng.normal(size=(n, 300))])
    y = np.digitize(signal + rng.logistic(size=n) * 0.8, [-1.5, -0.5, 0.5, 1.5])
    groups = np.arange(n) // 2
    fit = fit_stage_head(X, y, groups, n_splits=4, l2_grid=(1e-4, 1e-3, 1e-2, 1e-1))
    assert max(fit.cv_by_l2) > 0.1  # went past the upper edge
    assert fit.l2 > 0.1 and fit.l2 == min(fit.cv_by_l2, key=fit.cv_by_l2.get)
    # it stopped where the loss turned (or at the limit), not by chance
    beyond = [l2 for l2 in fit.cv_by_l2 if l2 > fit.l2]
    assert beyond or fit.l2 >= 1e3
    assert fit.metrics["n"] == n


def test_penalty_search_stays_on_the_grid_when_its_optimum_is_inside():
    from training.fit import L2_GRID

    X, y = _ordinal_data(600, 2)
    groups = np.arange(600) // 3
    fit = fit_stage_head(X, y, groups, n_splits=4)
    assert fit.l2 == 1e-3 and set(fit.cv_by_l2) == set(L2_GRID)  # interior: nothing more tried
    # the lower edge best: one step below is tried, found worse, and the edge kept
    low = fit_stage_head(X, y, groups, n_splits=4, l2_grid=(1e-6, 1e-2, 1e1))
    assert low.l2 == 1e-6 and min(low.cv_by_l2) < 1e-6
    assert low.cv_by_l2[min(low.cv_by_l2)] > low.cv_by_l2[1e-6]
