"""The gradient-boosting age head as plain arrays: same predictions as scikit-learn, no pickle."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
from sklearn.ensemble import HistGradientBoostingRegressor

from vision.stages import AGE_TREES_FILE, OLD_AGE_HGB_FILE, DrawingAgeHead, TreeEnsemble


def _fitted(seed: int = 0) -> tuple[HistGradientBoostingRegressor, np.ndarray]:
    rng = np.random.default_rng(seed)
    X = rng.normal(0, 1, (300, 6))
    X[rng.random(X.shape) < 0.05] = np.nan  # missing values take the side each node learned
    y = np.nan_to_num(X[:, 0]) * 2 + np.sin(np.nan_to_num(X[:, 1]) * 3) + rng.normal(0, 0.1, 300)
    est = HistGradientBoostingRegressor(max_iter=40, max_leaf_nodes=15, random_state=seed)
    return est.fit(X, y), X


def test_trees_predict_what_scikit_learn_predicts_also_for_missing_values():
    est, X = _fitted()
    trees = TreeEnsemble.from_fitted(est)
    rng = np.random.default_rng(5)
    new = rng.normal(0, 1.5, (500, 6))
    new[rng.random(new.shape) < 0.1] = np.nan
    for rows in (X, new):
        assert np.allclose(trees.predict(rows), est.predict(rows), atol=1e-9)
    # through savez and back (no pickle allowed)
    again = TreeEnsemble.from_arrays(dict(trees.arrays()))
    assert np.allclose(again.predict(new), est.predict(new), atol=1e-9)


def test_broken_tree_arrays_are_refused():
    est, _ = _fitted()
    arrays = TreeEnsemble.from_fitted(est).arrays()
    arrays["left"] = arrays["left"] + 10_000  # a child index past the nodes
    with pytest.raises(ValueError, match="inconsistent tree arrays"):
        TreeEnsemble.from_arrays(arrays)


def _head(tmp_path):
    est, _ = _fitted()
    d = 6
    # 4 embedding columns reduced to 3 components, plus 2 drawing features: 5 tree inputs
    head = DrawingAgeHead(
        "hgb", mean=np.zeros(d), scale=np.ones(d), components=np.eye(4)[:3], n_features=2
    )
    rng = np.random.default_rng(1)
    head.estimator = est.fit(rng.normal(0, 1, (300, 5)), rng.normal(5, 1, 300))
    head.save(tmp_path)
    return head


def test_the_age_head_is_saved_without_a_pickle_and_loads_without_scikit_learn(tmp_path):
    head = _head(tmp_path)
    assert (tmp_path / AGE_TREES_FILE).is_file() and not (tmp_path / OLD_AGE_HGB_FILE).exists()
    X = np.random.default_rng(2).normal(0, 1, (20, 6))
    code = (
        "import sys, numpy as np; from vision.stages import DrawingAgeHead; "
        f"h = DrawingAgeHead.load({str(tmp_path)!r}); "
        f"print(list(h.predict(np.random.default_rng(2).normal(0, 1, (20, 6))))); "
        "print('sklearn' in sys.modules or 'joblib' in sys.modules)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.splitlines()
    assert np.allclose(eval(out[0], {"np": np}), head.predict(X)) and out[1] == "False"


def test_an_old_pickled_age_head_is_never_loaded(tmp_path):
    _head(tmp_path)
    (tmp_path / AGE_TREES_FILE).unlink()
    (tmp_path / OLD_AGE_HGB_FILE).write_bytes(b"not loaded")
    with pytest.raises(FileNotFoundError, match="age_hgb.joblib.*spira train"):
        DrawingAgeHead.load(tmp_path)
