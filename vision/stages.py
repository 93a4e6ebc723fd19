"""Ordinal stage head: drawing-progression stage probabilities from an embedding and drawing features.

A cumulative-link (proportional-odds) logistic model, the standard model for an ordered outcome:

    P(stage <= k | x) = sigmoid((b_k - w.x) / T),   k = 0..3,   b_0 < b_1 < b_2 < b_3

One weight vector ``w`` shared by all cut points keeps the stages ordered by construction (a CORAL-style
head is the same model). ``x`` is the standardised concatenation of the backbone embedding and the
drawing features (``vision.features``). ``T`` is a temperature fitted after training on held-out
predictions (temperature scaling) so that probabilities are calibrated; the expected calibration error
is reported in the model card.

Fitting uses L-BFGS on the L2-penalised negative log-likelihood (PyTorch autograd); prediction is plain
NumPy so serving needs no autograd.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from core.domain import N_STAGES


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


def _check_is_fitted(head: OrdinalStageHead) -> None:
    if not hasattr(head, "coef_"):
        raise RuntimeError("the stage head is not fitted yet; call fit() first")


class OrdinalStageHead:
    """Cumulative-link ordinal regression over stages 0..n_stages-1 (scikit-learn style)."""

    def __init__(self, l2: float = 1e-3, max_iter: int = 300, n_stages: int = N_STAGES) -> None:
        self.l2 = l2
        self.max_iter = max_iter
        self.n_stages = n_stages

    # -- fitting ------------------------------------------------------------------------------
    def fit(self, X: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None = None):
        """Fit on features ``X`` (n, d) and integer stages ``y`` (n,); returns self."""
        import torch  # lazy: torch takes seconds to import; only fitting needs autograd

        X = np.asarray(X, dtype=np.float64)
        y = np.asarray(y, dtype=np.int64)
        if X.ndim != 2 or len(X) != len(y):
            raise ValueError(f"X must be (n, d) with n = len(y); got {X.shape} and {y.shape}")
        if y.min() < 0 or y.max() >= self.n_stages:
            raise ValueError(f"stages must lie in 0..{self.n_stages - 1}")
        self.mean_ = X.mean(axis=0)
        self.scale_ = X.std(axis=0)
        self.scale_[self.scale_ < 1e-8] = 1.0
        Z = torch.from_numpy((X - self.mean_) / self.scale_)
        t = torch.from_numpy(y)
        sw = torch.ones(len(y), dtype=torch.float64)
        if sample_weight is not None:
            sw = torch.as_tensor(sample_weight, dtype=torch.float64)
        sw = sw / sw.sum()
        d = X.shape[1]
        w = torch.zeros(d, dtype=torch.float64, requires_grad=True)
        # thresholds as first cut + positive gaps keeps them ordered without constraints
        prior = np.bincount(y, minlength=self.n_stages) + 1.0
        cum = np.cumsum(prior)[:-1] / prior.sum()
        b0 = np.log(cum / (1 - cum))
        first = torch.tensor([b0[0]], dtype=torch.float64, requires_grad=True)
        gaps = torch.tensor(
            np.log(np.maximum(np.diff(b0), 1e-2)), dtype=torch.float64, requires_grad=True
        )
        opt = torch.optim.LBFGS(
            [w, first, gaps], lr=1.0, max_iter=self.max_iter, line_search_fn="strong_wolfe"
        )

        def cuts() -> Any:
            return torch.cat([first, first + torch.cumsum(torch.exp(gaps), 0)])

        def closure() -> Any:
            opt.zero_grad()
            eta = Z @ w
            cdf = torch.sigmoid(cuts()[None, :] - eta[:, None])
            upper = torch.cat([cdf, torch.ones(len(y), 1, dtype=torch.float64)], 1)
            lower = torch.cat([torch.zeros(len(y), 1, dtype=torch.float64), cdf], 1)
            p = (upper - lower).gather(1, t[:, None]).squeeze(1).clamp_min(1e-12)
            loss = -(sw * torch.log(p)).sum() + self.l2 * (w * w).sum()
            loss.backward()
            return loss

        opt.step(closure)
        self.coef_ = w.detach().numpy().copy()
        self.thresholds_ = cuts().detach().numpy().copy()
        self.temperature_ = 1.0
        self.n_features_in_ = d
        return self

    def calibrate(self, X: np.ndarray, y: np.ndarray) -> OrdinalStageHead:
        """Fit the temperature on held-out data (minimises NLL over T in [0.05, 20]); returns self."""
        # lazy: SciPy's optimiser only for calibrating at training time
        from scipy.optimize import minimize_scalar

        _check_is_fitted(self)
        eta = self.decision_function(X)
        y = np.asarray(y, dtype=np.int64)

        def nll(log_t: float) -> float:
            p = self._probs_from_eta(eta, float(np.exp(log_t)))
            return float(-np.log(np.clip(p[np.arange(len(y)), y], 1e-12, None)).mean())

        res = minimize_scalar(nll, bounds=(np.log(0.05), np.log(20.0)), method="bounded")
        self.temperature_ = float(np.exp(res.x))
        return self

    # -- prediction ---------------------------------------------------------------------------
    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """Latent score w.x (higher = later stage), shape (n,)."""
        _check_is_fitted(self)
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected (n, {self.n_features_in_}) inputs, got {X.shape}")
        return ((X - self.mean_) / self.scale_) @ self.coef_

    def _probs_from_eta(self, eta: np.ndarray, temperature: float) -> np.ndarray:
        cdf = _sigmoid((self.thresholds_[None, :] - eta[:, None]) / temperature)
        n = len(eta)
        upper = np.concatenate([cdf, np.ones((n, 1))], axis=1)
        lower = np.concatenate([np.zeros((n, 1)), cdf], axis=1)
        p = np.clip(upper - lower, 0.0, 1.0)
        return p / p.sum(axis=1, keepdims=True)

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Calibrated stage probabilities, shape (n, n_stages), rows sum to 1."""
        return self._probs_from_eta(self.decision_function(X), self.temperature_)

    def predict_expected(self, X: np.ndarray) -> np.ndarray:
        """Expected stage sum_k k p_k (a float in 0..n_stages-1), shape (n,)."""
        return self.predict_proba(X) @ np.arange(self.n_stages)

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Most probable stage, shape (n,)."""
        return self.predict_proba(X).argmax(axis=1)

    # -- persistence --------------------------------------------------------------------------
    def save(self, path: Path, **meta: Any) -> None:
        """Write the fitted head to ``path`` (.npz); ``meta`` strings are stored alongside."""
        _check_is_fitted(self)
        arrays: dict[str, Any] = dict(
            coef=self.coef_,
            thresholds=self.thresholds_,
            mean=self.mean_,
            scale=self.scale_,
            temperature=np.array(self.temperature_),
            hyper=np.array([self.l2, self.max_iter, self.n_stages]),
        )
        arrays.update({f"meta_{k}": np.array(str(v)) for k, v in meta.items()})
        np.savez(path, **arrays)

    @classmethod
    def load(cls, path: Path) -> tuple[OrdinalStageHead, dict[str, str]]:
        """Read a head written by :meth:`save`; returns ``(head, meta)``."""
        with np.load(path, allow_pickle=False) as z:
            l2, max_iter, n_stages = z["hyper"]
            head = cls(l2=float(l2), max_iter=int(max_iter), n_stages=int(n_stages))
            head.coef_ = z["coef"]
            head.thresholds_ = z["thresholds"]
            head.mean_ = z["mean"]
            head.scale_ = z["scale"]
            head.temperature_ = float(z["temperature"])
            head.n_features_in_ = len(head.coef_)
            meta = {k[5:]: str(z[k]) for k in z.files if k.startswith("meta_")}
        return head, meta


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, n_bins: int = 10) -> float:
    """Top-label expected calibration error: sum over confidence bins of |accuracy - confidence| x share."""
    probs = np.asarray(probs)
    y = np.asarray(y)
    conf = probs.max(axis=1)
    correct = (probs.argmax(axis=1) == y).astype(float)
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    ece = 0.0
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            ece += mask.mean() * abs(correct[mask].mean() - conf[mask].mean())
    return float(ece)


# -- drawing age --------------------------------------------------------------------------------

AGE_HEAD_FILE = "age_head.npz"
AGE_ORDINAL_FILE = "age_ordinal.npz"
AGE_TREES_FILE = "age_trees.npz"
#: The pickle older models kept the gradient-boosting head in; it is never loaded (a pickle can
#: run code), such a model's age head must be retrained.
OLD_AGE_HGB_FILE = "age_hgb.joblib"
#: The kinds of age head :class:`DrawingAgeHead` can serve.
AGE_HEAD_KINDS = ("ridge", "ordinal", "hgb")


class TreeEnsemble:
    """A fitted gradient-boosting regressor as plain arrays, evaluated with numpy.

    Made from scikit-learn's HistGradientBoostingRegressor once it is fitted (:meth:`from_fitted`),
    saved with ``numpy.savez`` (no pickle, so a model file cannot run code) and evaluated without
    scikit-learn, which keeps ``spira stages`` from importing it (about 2 s). Nodes of all trees
    are stacked; ``roots`` holds each tree's first node. A row goes left where its value is at most
    the node's threshold, and where it is missing (NaN) as the node says; the prediction is the
    baseline plus the values of the leaves reached.
    """

    FIELDS = ("feature", "threshold", "left", "right", "is_leaf", "missing_left", "value")

    def __init__(
        self,
        *,
        feature: np.ndarray,
        threshold: np.ndarray,
        left: np.ndarray,
        right: np.ndarray,
        is_leaf: np.ndarray,
        missing_left: np.ndarray,
        value: np.ndarray,
        roots: np.ndarray,
        baseline: float,
    ) -> None:
        self.feature = np.asarray(feature, np.int64)
        self.threshold = np.asarray(threshold, np.float64)
        self.left = np.asarray(left, np.int64)
        self.right = np.asarray(right, np.int64)
        self.is_leaf = np.asarray(is_leaf, bool)
        self.missing_left = np.asarray(missing_left, bool)
        self.value = np.asarray(value, np.float64)
        self.roots = np.asarray(roots, np.int64)
        self.baseline = float(baseline)
        n = len(self.value)
        inner = ~self.is_leaf
        children = np.concatenate([self.left[inner], self.right[inner]])
        if (
            any(len(getattr(self, f)) != n for f in self.FIELDS)
            or (children.size and (children.min() < 0 or children.max() >= n))
            or (self.roots.size and (self.roots.min() < 0 or self.roots.max() >= n))
        ):
            raise ValueError("inconsistent tree arrays (node counts or child indices)")

    @classmethod
    def from_fitted(cls, estimator: Any) -> TreeEnsemble:
        """From a fitted scikit-learn HistGradientBoostingRegressor (numeric features only)."""
        parts, roots, offset = [], [], 0
        for (tree,) in estimator._predictors:  # one tree per iteration for a regressor
            nodes = tree.nodes
            if nodes["is_categorical"].any():
                raise ValueError("categorical splits are not supported")
            roots.append(offset)
            parts.append(nodes)
            offset += len(nodes)
        offsets = np.repeat(roots, [len(p) for p in parts])
        nodes = np.concatenate(parts)
        return cls(
            feature=nodes["feature_idx"],
            threshold=nodes["num_threshold"],
            left=nodes["left"].astype(np.int64) + offsets,
            right=nodes["right"].astype(np.int64) + offsets,
            is_leaf=nodes["is_leaf"].astype(bool),
            missing_left=nodes["missing_go_to_left"].astype(bool),
            value=nodes["value"],
            roots=np.asarray(roots),
            baseline=float(np.ravel(estimator._baseline_prediction)[0]),
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Predictions for rows ``X`` (n, features), shape (n,)."""
        X = np.asarray(X, np.float64)
        rows = np.arange(len(X))
        out = np.full(len(X), self.baseline)
        for root in self.roots:
            node = np.full(len(X), root)
            active = ~self.is_leaf[node]
            while active.any():
                at = node[active]
                x = X[rows[active], self.feature[at]]
                go_left = np.where(np.isnan(x), self.missing_left[at], x <= self.threshold[at])
                node[active] = np.where(go_left, self.left[at], self.right[at])
                active = ~self.is_leaf[node]
            out += self.value[node]
        return out

    def arrays(self) -> dict[str, Any]:
        """What :meth:`from_arrays` needs, for ``numpy.savez``."""
        out = {f: getattr(self, f) for f in self.FIELDS}
        return out | {"roots": self.roots, "baseline": np.array(self.baseline)}

    @classmethod
    def from_arrays(cls, z: Any) -> TreeEnsemble:
        return cls(**{f: z[f] for f in cls.FIELDS}, roots=z["roots"], baseline=float(z["baseline"]))


class DrawingAgeHead:
    """Drawing age: the age (years) typical of a drawing, from the stage head's inputs.

    ``kind`` is one of :data:`AGE_HEAD_KINDS`: a ridge regression on the standardised inputs
    (``coef``, ``intercept``), an ordinal head over age bins (``ordinal``, ``bin_centres``; the
    prediction is the expected bin centre) or a gradient-boosting regressor (``estimator``, on
    the first ``n_embedding_pcs`` principal components of the standardised embedding part and the
    drawing features). Which one is chosen by grouped cross-validation (``training.age``).

    Regression to the mean: every such model over-estimates young and under-estimates old
    children. ``bias_intercept`` and ``bias_slope`` are the linear relation of cross-validated
    predictions on actual age (pred = a + b age), as brain-age studies fit it; where the actual age
    is known (a unit's age band) :meth:`corrected` removes it, so the gap is uncorrelated with age.
    """

    def __init__(
        self,
        kind: str,
        *,
        mean: np.ndarray,
        scale: np.ndarray,
        coef: np.ndarray | None = None,
        intercept: float = 0.0,
        ordinal: OrdinalStageHead | None = None,
        bin_centres: np.ndarray | None = None,
        estimator: Any = None,
        components: np.ndarray | None = None,
        n_features: int = 0,
        bias_intercept: float = 0.0,
        bias_slope: float = 1.0,
    ) -> None:
        if kind not in AGE_HEAD_KINDS:
            raise ValueError(f"age head kind must be one of {AGE_HEAD_KINDS}, got {kind!r}")
        self.kind = kind
        self.mean_ = np.asarray(mean, np.float64)
        self.scale_ = np.asarray(scale, np.float64)
        self.coef_ = None if coef is None else np.asarray(coef, np.float64)
        self.intercept_ = float(intercept)
        self.ordinal = ordinal
        self.bin_centres = None if bin_centres is None else np.asarray(bin_centres, np.float64)
        self.trees: TreeEnsemble | None = None
        if estimator is not None:
            self.estimator = estimator
        self.components_ = None if components is None else np.asarray(components, np.float64)
        self.n_features = int(n_features)  # drawing features at the end of the inputs (hgb)
        self.bias_intercept = float(bias_intercept)
        self.bias_slope = float(bias_slope)
        self.n_features_in_ = len(self.mean_)

    @property
    def estimator(self) -> TreeEnsemble | None:
        """The gradient-boosting head's trees; set it to a fitted scikit-learn regressor (or a
        :class:`TreeEnsemble`) and it is kept as a :class:`TreeEnsemble`."""
        return self.trees

    @estimator.setter
    def estimator(self, fitted: Any) -> None:
        self.trees = (
            fitted if isinstance(fitted, TreeEnsemble) else TreeEnsemble.from_fitted(fitted)
        )

    def _standardise(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features_in_:
            raise ValueError(f"expected (n, {self.n_features_in_}) inputs, got {X.shape}")
        return (X - self.mean_) / self.scale_

    def tree_inputs(self, Z: np.ndarray) -> np.ndarray:
        """The gradient-boosting head's inputs from standardised ones: embedding PCs + features."""
        assert self.components_ is not None
        f = self.n_features
        return np.concatenate(
            [Z[:, : Z.shape[1] - f] @ self.components_.T, Z[:, Z.shape[1] - f :]], 1
        )

    def predict(self, X: np.ndarray) -> np.ndarray:
        """Raw drawing age in years, shape (n,) (not bias-corrected: the best guess for one
        drawing, shrunk towards the training mean as every regression is)."""
        Z = self._standardise(X)
        if self.kind == "ridge":
            assert self.coef_ is not None
            return Z @ self.coef_ + self.intercept_
        if self.kind == "ordinal":
            assert self.ordinal is not None and self.bin_centres is not None
            return self.ordinal.predict_proba(Z) @ self.bin_centres
        assert self.trees is not None
        return self.trees.predict(self.tree_inputs(Z))

    def corrected(self, raw: np.ndarray, actual_age: np.ndarray) -> np.ndarray:
        """Bias-corrected drawing age where the actual age is known:
        ``raw - (a + b age) + age``, so that ``corrected - age`` does not depend on age."""
        raw = np.asarray(raw, np.float64)
        age = np.asarray(actual_age, np.float64)
        return raw - (self.bias_intercept + self.bias_slope * age) + age

    # -- persistence --------------------------------------------------------------------------
    def save(self, folder: Path) -> None:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        arrays: dict[str, Any] = dict(
            kind=np.array(self.kind),
            mean=self.mean_,
            scale=self.scale_,
            intercept=np.array(self.intercept_),
            bias=np.array([self.bias_intercept, self.bias_slope]),
            n_features=np.array(self.n_features),
        )
        if self.coef_ is not None:
            arrays["coef"] = self.coef_
        if self.bin_centres is not None:
            arrays["bin_centres"] = self.bin_centres
        if self.components_ is not None:
            arrays["components"] = self.components_
        np.savez(folder / AGE_HEAD_FILE, **arrays)
        if self.ordinal is not None:
            self.ordinal.save(folder / AGE_ORDINAL_FILE)
        if self.trees is not None:
            np.savez(folder / AGE_TREES_FILE, **self.trees.arrays())

    @classmethod
    def load(cls, folder: Path) -> DrawingAgeHead | None:
        """The age head saved in a model's ``folder``, or None when it has none (older models)."""
        folder = Path(folder)
        if not (folder / AGE_HEAD_FILE).is_file():
            return None
        with np.load(folder / AGE_HEAD_FILE, allow_pickle=False) as z:
            kind = str(z["kind"])
            kwargs: dict[str, Any] = dict(
                mean=z["mean"],
                scale=z["scale"],
                intercept=float(z["intercept"]),
                bias_intercept=float(z["bias"][0]),
                bias_slope=float(z["bias"][1]),
                n_features=int(z["n_features"]),
                coef=z["coef"] if "coef" in z.files else None,
                bin_centres=z["bin_centres"] if "bin_centres" in z.files else None,
                components=z["components"] if "components" in z.files else None,
            )
        if kind == "ordinal":
            kwargs["ordinal"], _ = OrdinalStageHead.load(folder / AGE_ORDINAL_FILE)
        if kind == "hgb":
            if not (folder / AGE_TREES_FILE).is_file():
                old = (
                    " (it has the old pickled age_hgb.joblib)"
                    if (folder / OLD_AGE_HGB_FILE).is_file()
                    else ""
                )
                raise FileNotFoundError(
                    f"{folder} lacks {AGE_TREES_FILE}{old}: retrain the model with `spira train`"
                )
            with np.load(folder / AGE_TREES_FILE, allow_pickle=False) as z:
                kwargs["estimator"] = TreeEnsemble.from_arrays(z)
        return cls(kind, **kwargs)
