"""Contextual model: the outcome a unit's context would lead one to expect (SALSA-style).

One :class:`ContextModel` per outcome (progression index, ability in one curriculum area) is
fitted across all units and terms: a weighted ridge regression of the outcome on standardised
context. Observations are weighted by 1 / (SE^2 + tau^2), where tau^2 is the spread of true unit
deviations around the expectation (estimated by moments); the ridge penalty is chosen by
cross-validation with folds by unit, so a unit's terms never help predict each other.

Optional features (the municipality's own quality indicators) are added by forward selection
only when they lower the grouped cross-validation error by at least ``min_gain`` and by more than
every one of ``n_perm`` random shuffles of their values does; the model reports which were tried
and which it used (``selection_``).

Prediction uncertainty comes from a bootstrap over units (all terms of a drawn unit together),
which respects that a unit's terms are not independent. A unit's deviation is shrunk toward 0
(the expectation) by the empirical-Bayes factor tau^2 / (tau^2 + SE^2 + prediction variance), so
units with few photos or sheets are pulled toward what their context predicts.

Everything here describes association, not cause.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from pydantic import BaseModel
from scipy import stats
from sklearn.base import BaseEstimator
from sklearn.model_selection import GroupKFold
from sklearn.utils.validation import check_is_fitted

from profiles.context import CONTEXT_COLUMNS, SHARE_COLUMNS

ASSOCIATION_NOTE = {
    "sv": (
        "Jämförelsen beskriver ett samband med enhetens förutsättningar, inte orsak och verkan."
    ),
    "en": "This comparison describes an association with the unit's context, not cause and effect.",
}

WHAT_IF_NOTE = {
    "sv": (
        "Beräkningen visar hur resultatet samvarierar med förutsättningarna bland kommunens "
        "enheter; det är ett samband, inte en förutsägelse om vad en förändring skulle orsaka."
    ),
    "en": (
        "This shows how results co-vary with context across the municipality's units; it is an "
        "association, not a prediction of what a change would cause."
    ),
}


class WhatIfResult(BaseModel):
    """The model's predicted change of one outcome for a change of context (an association)."""

    outcome: str
    changes: dict[str, float]
    expected_before: float
    expected_after: float
    change: float
    change_lo: float
    change_hi: float
    level: float
    extrapolation: bool
    note_sv: str
    note_en: str


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _weighted_ridge(
    design: np.ndarray, y: np.ndarray, w: np.ndarray, alpha: float
) -> tuple[float, np.ndarray]:
    """Weighted ridge with an unpenalised intercept; alpha is in units of 'mean weight'."""
    sw = w.sum()
    xm = w @ design / sw
    ym = w @ y / sw
    xc = design - xm
    gram = (xc * w[:, None]).T @ xc
    penalty = alpha * sw / len(w)
    coef = np.linalg.solve(gram + penalty * np.eye(design.shape[1]), (xc * w[:, None]).T @ (y - ym))
    return float(ym - xm @ coef), coef


def _gain_reason(gain: float, min_gain: float) -> str:
    if gain >= 0.0005:
        return (
            f"lowers the cross-validation error by {gain:.1%}, less than the {min_gain:.0%} "
            "required"
        )
    if gain <= -0.0005:
        return f"raises the cross-validation error by {-gain:.1%}"
    return "leaves the cross-validation error unchanged"


class OptionalFeature(BaseModel):
    """How one optional feature fared in the model's cross-validated forward selection.

    ``cv_gain`` is the relative reduction of the grouped cross-validation error when the feature
    was last tried (0.05 = 5 % lower; negative = worse), None when it could not be tried, with
    ``reason`` saying why."""

    feature: str
    used: bool
    cv_gain: float | None
    reason: str


class ContextModel(BaseEstimator):
    """Expected outcome from standardised context, with shrunk unit deviations and intervals.

    Parameters:
        features: context columns always used as predictors.
        optional: further columns (quality indicators) added by forward selection only when each
            lowers the grouped cross-validation error by at least ``min_gain`` (relative).
        min_gain: relative cross-validation improvement an optional feature must bring.
        n_perm: the improvement must also beat the feature's values shuffled this many times
            (each shuffle doing as well rejects it: a permutation test at 1 / (n_perm + 1)).
        alphas: ridge penalties tried by cross-validation (in units of observations).
        cv: number of folds (grouped by unit).
        n_boot: bootstrap resamples over units for the prediction and what-if intervals.
        n_iter: rounds alternating the fit and the tau^2 estimate.
        level: coverage of the intervals (0.9 = 90 %).
        random_state: seed of the bootstrap.

    Learned attributes: ``features_`` (the columns used: ``features`` then the optional ones
    chosen), ``selection_`` (one :class:`OptionalFeature` per optional column), ``mean_``, ``scale_`` (standardisation of each feature), ``min_``/``max_``
    (observed range), ``alpha_``, ``intercept_``, ``coef_`` (per standard deviation of each
    feature, outcome units), ``coef_raw_`` (per raw unit of each feature), ``tau2_`` (variance of
    true deviations, outcome units squared), ``cov_`` (bootstrap covariance of [intercept, coef]),
    ``n_obs_``, ``n_units_``.
    """

    def __init__(
        self,
        features: Sequence[str] = CONTEXT_COLUMNS,
        optional: Sequence[str] = (),
        min_gain: float = 0.02,
        n_perm: int = 19,
        alphas: Sequence[float] = (0.01, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0, 100.0, 1000.0),
        cv: int = 5,
        n_boot: int = 200,
        n_iter: int = 3,
        level: float = 0.9,
        random_state: int = 0,
    ) -> None:
        self.features = features
        self.optional = optional
        self.min_gain = min_gain
        self.n_perm = n_perm
        self.alphas = alphas
        self.cv = cv
        self.n_boot = n_boot
        self.n_iter = n_iter
        self.level = level
        self.random_state = random_state

    # -- helpers -------------------------------------------------------------------------------
    def _design(self, X: pd.DataFrame, features: Sequence[str] | None = None) -> np.ndarray:
        if features is None:
            features = getattr(self, "features_", self.features)
        missing = [f for f in features if f not in X.columns]
        if missing:
            raise ValueError(f"context lacks column(s) {', '.join(missing)}")
        raw = X[list(features)].to_numpy(dtype=float)
        if np.isnan(raw).any():
            raise ValueError("context has missing values; every feature is needed")
        return raw

    def _cv_losses(
        self, design: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray
    ) -> np.ndarray:
        """Weighted squared error of each alpha, summed over folds grouped by unit."""
        splitter = GroupKFold(n_splits=min(self.cv, len(np.unique(groups))))
        losses = np.zeros(len(self.alphas))
        for train, test in splitter.split(design, y, groups):
            for k, alpha in enumerate(self.alphas):
                b0, b = _weighted_ridge(design[train], y[train], w[train], alpha)
                err = y[test] - b0 - design[test] @ b
                losses[k] += float(w[test] @ err**2)
        return losses

    def _choose_alpha(self, design: np.ndarray, y: np.ndarray, w: np.ndarray, groups: np.ndarray):
        if len(np.unique(groups)) < 3:
            return float(np.median(self.alphas))
        losses = self._cv_losses(design, y, w, groups)
        return float(np.asarray(self.alphas)[int(np.argmin(losses))])

    def _select(
        self, X: pd.DataFrame, y: np.ndarray, se2: np.ndarray, groups: np.ndarray
    ) -> tuple[list[str], list[OptionalFeature]]:
        """Forward selection of ``optional`` by grouped cross-validation (best alpha each time)."""
        chosen: list[str] = []
        report: dict[str, OptionalFeature] = {}
        candidates: list[str] = []
        for f in self.optional:
            if f in self.features or f in candidates:
                continue
            if f not in X.columns:
                report[f] = OptionalFeature(
                    feature=f, used=False, cv_gain=None, reason="not in the context"
                )
                continue
            n_missing = int(pd.to_numeric(X[f], errors="coerce").isna().sum())
            if n_missing:
                report[f] = OptionalFeature(
                    feature=f,
                    used=False,
                    cv_gain=None,
                    reason=f"not measured on {n_missing} of {len(X)} unit-terms the model is "
                    "fitted on; the model needs it on every one",
                )
            elif float(np.nanstd(X[f].to_numpy(dtype=float))) == 0.0:
                report[f] = OptionalFeature(
                    feature=f, used=False, cv_gain=None, reason="the same value everywhere"
                )
            else:
                candidates.append(f)
        n_units = len(np.unique(groups))
        if candidates and n_units < 3:
            for f in candidates:
                report[f] = OptionalFeature(
                    feature=f,
                    used=False,
                    cv_gain=None,
                    reason=f"only {n_units} unit(s): too few to cross-validate",
                )
            candidates = []
        if candidates:
            tau2 = max(float(np.var(y)) - float(se2.mean()), 1e-6 + 0.1 * float(np.var(y)))
            w = 1.0 / (se2 + tau2)

            def loss(cols: list[str], frame: pd.DataFrame = X) -> float:
                raw = self._design(frame, [*self.features, *cols])
                scale = raw.std(axis=0)
                design = (raw - raw.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
                return float(self._cv_losses(design, y, w, groups).min())

            current = loss([])
            remaining = list(candidates)
            while remaining:
                if len(y) < len(self.features) + len(chosen) + 3:
                    for f in remaining:
                        report[f] = OptionalFeature(
                            feature=f,
                            used=False,
                            cv_gain=None,
                            reason=f"too few unit-terms ({len(y)}) for another predictor",
                        )
                    break
                gains = {f: 1.0 - loss([*chosen, f]) / current for f in remaining}
                best = max(remaining, key=lambda f: gains[f])
                for f in remaining:
                    report[f] = OptionalFeature(
                        feature=f,
                        used=False,
                        cv_gain=gains[f],
                        reason=_gain_reason(gains[f], self.min_gain),
                    )
                if gains[best] < self.min_gain:
                    break
                # With few units a feature of pure noise can lower the CV error by chance: the
                # gain must also beat every one of n_perm shuffles of the same values.
                rng = np.random.default_rng(self.random_state)
                shuffled = X.copy()
                beaten_by = 0
                for _ in range(self.n_perm):
                    shuffled[best] = rng.permutation(X[best].to_numpy())
                    beaten_by += int(1.0 - loss([*chosen, best], shuffled) / current >= gains[best])
                if beaten_by:
                    report[best] = OptionalFeature(
                        feature=best,
                        used=False,
                        cv_gain=gains[best],
                        reason=f"lowers the cross-validation error by {gains[best]:.1%}, but "
                        f"{beaten_by} of {self.n_perm} random shuffles of its values did as well",
                    )
                    break
                chosen.append(best)
                remaining.remove(best)
                current *= 1.0 - gains[best]
                report[best] = OptionalFeature(
                    feature=best,
                    used=True,
                    cv_gain=gains[best],
                    reason=f"lowers the cross-validation error by {gains[best]:.1%}",
                )
        order = [f for f in self.optional if f in report]
        return chosen, [report[f] for f in dict.fromkeys(order)]

    # -- estimator API -------------------------------------------------------------------------
    def fit(
        self,
        X: pd.DataFrame,
        y: Sequence[float] | np.ndarray,
        se: Sequence[float] | np.ndarray | None = None,
        groups: Sequence[str] | np.ndarray | None = None,
    ) -> ContextModel:
        """Fit on one row per unit x term.

        Args:
            X: context with the ``features`` columns.
            y: observed outcome per row (index in stages, or ability in logits).
            se: standard error of each observation (same units); None treats them as exact.
            groups: unit of each row (for grouped CV and the unit bootstrap); None = each row.

        Returns:
            self.
        """
        raw = self._design(X, self.features)
        y_arr = np.asarray(y, dtype=float)
        se_arr = np.zeros(len(y_arr)) if se is None else np.asarray(se, dtype=float)
        if not (len(raw) == len(y_arr) == len(se_arr)):
            raise ValueError("X, y and se must have the same number of rows")
        if np.isnan(y_arr).any() or np.isnan(se_arr).any() or (se_arr < 0).any():
            raise ValueError("y and se must be numbers (se >= 0) on every row used for fitting")
        if len(y_arr) < len(self.features) + 2:
            raise ValueError(
                f"need at least {len(self.features) + 2} observations to fit, got {len(y_arr)}"
            )
        group_arr = np.arange(len(y_arr)) if groups is None else np.asarray(groups)
        unit_codes, unit_index = np.unique(group_arr, return_inverse=True)
        chosen, self.selection_ = self._select(X, y_arr, se_arr**2, group_arr)
        self.features_ = (*self.features, *chosen)
        raw = self._design(X, self.features_)

        self.mean_ = raw.mean(axis=0)
        scale = raw.std(axis=0)
        self.scale_ = np.where(scale > 0, scale, 1.0)  # a constant feature contributes nothing
        self.min_ = raw.min(axis=0)
        self.max_ = raw.max(axis=0)
        design = (raw - self.mean_) / self.scale_
        se2 = se_arr**2

        tau2 = max(float(np.var(y_arr)) - float(se2.mean()), 1e-6 + 0.1 * float(np.var(y_arr)))
        alpha = float(np.median(self.alphas))
        for it in range(max(1, self.n_iter)):
            w = 1.0 / (se2 + tau2)
            if it == 0:
                alpha = self._choose_alpha(design, y_arr, w, group_arr)
            b0, b = _weighted_ridge(design, y_arr, w, alpha)
            resid = y_arr - b0 - design @ b
            # Moment estimate of tau^2 from the weighted excess of squared residuals over SE^2.
            tau2 = max(float(w @ (resid**2 - se2) / w.sum()), 1e-6)
        w = 1.0 / (se2 + tau2)
        b0, b = _weighted_ridge(design, y_arr, w, alpha)
        self.alpha_ = alpha
        self.tau2_ = tau2
        self.intercept_ = b0
        self.coef_ = b
        self.coef_raw_ = b / self.scale_

        rng = np.random.default_rng(self.random_state)
        n_units = len(unit_codes)
        boots = np.empty((self.n_boot, 1 + design.shape[1]))
        for k in range(self.n_boot):
            counts = np.bincount(rng.integers(0, n_units, n_units), minlength=n_units)
            wk = w * counts[unit_index]
            keep = wk > 0
            bk0, bk = _weighted_ridge(design[keep], y_arr[keep], wk[keep], alpha)
            boots[k, 0], boots[k, 1:] = bk0, bk
        self.cov_ = np.cov(boots, rowvar=False)
        self.n_obs_ = len(y_arr)
        self.n_units_ = n_units
        return self

    def predict(self, X: pd.DataFrame, return_std: bool = False):
        """Expected outcome for each row of context (outcome units); with ``return_std`` also its
        standard error from the unit bootstrap, as a tuple (expected, expected_se)."""
        check_is_fitted(self, "coef_")
        design = (self._design(X) - self.mean_) / self.scale_
        expected = self.intercept_ + design @ self.coef_
        if not return_std:
            return expected
        full = np.hstack([np.ones((len(design), 1)), design])
        var = np.einsum("ij,jk,ik->i", full, self.cov_, full)
        return expected, np.sqrt(np.maximum(var, 0.0))

    def assess(
        self,
        X: pd.DataFrame,
        y: Sequence[float] | np.ndarray,
        se: Sequence[float] | np.ndarray,
    ) -> pd.DataFrame:
        """Expected versus observed for each row; NaN ``y`` gives NaN residuals.

        Returns:
            DataFrame (same row order) with ``expected``, ``expected_se``, ``residual`` (observed
            - expected), ``residual_se`` (combining the observation's SE and the prediction's),
            ``residual_lo``/``residual_hi`` (interval at ``level``), ``shrinkage`` (0-1, weight
            kept on the observation), ``shrunk_residual`` (empirical-Bayes deviation estimate)
            and ``shrunk_lo``/``shrunk_hi`` (its posterior interval). All in outcome units.
        """
        expected, expected_se = self.predict(X, return_std=True)
        y_arr = np.asarray(y, dtype=float)
        se_arr = np.asarray(se, dtype=float)
        residual = y_arr - expected
        noise_var = se_arr**2 + expected_se**2
        residual_se = np.sqrt(noise_var)
        z = _z(self.level)
        shrink = self.tau2_ / (self.tau2_ + noise_var)
        shrunk = shrink * residual
        shrunk_se = np.sqrt(shrink * noise_var)
        return pd.DataFrame(
            {
                "expected": expected,
                "expected_se": expected_se,
                "residual": residual,
                "residual_se": residual_se,
                "residual_lo": residual - z * residual_se,
                "residual_hi": residual + z * residual_se,
                "shrinkage": shrink,
                "shrunk_residual": shrunk,
                "shrunk_se": shrunk_se,
                "shrunk_lo": shrunk - z * shrunk_se,
                "shrunk_hi": shrunk + z * shrunk_se,
            },
            index=X.index,
        )

    def what_if(
        self,
        unit_context_row: Mapping[str, float] | pd.Series,
        changes: Mapping[str, float],
        *,
        outcome: str = "outcome",
    ) -> WhatIfResult:
        """Predicted change of the outcome when context values change by ``changes`` (raw units,
        e.g. ``{"children_per_fte": -0.5}``; shares as fractions). An association, not a cause.

        Returns:
            :class:`WhatIfResult` with expected before and after, the change and its interval
            (from the unit bootstrap covariance), and ``extrapolation`` True when a new value lies
            outside the range seen in fitting.

        Raises:
            ValueError: an unknown column, a missing context value, or a share outside 0-1.
        """
        check_is_fitted(self, "coef_")
        unknown = sorted(set(changes) - set(self.features_))
        if unknown:
            raise ValueError(
                f"cannot change {', '.join(unknown)}; known context: {', '.join(self.features_)}"
            )
        row = dict(unit_context_row)
        missing = [f for f in self.features_ if f not in row or row[f] is None]
        if missing:
            raise ValueError(f"unit context lacks {', '.join(missing)}")
        before = np.array([float(row[f]) for f in self.features_])
        delta = np.array([float(changes.get(f, 0.0)) for f in self.features_])
        after = before + delta
        for j, f in enumerate(self.features_):
            if f in SHARE_COLUMNS and not 0.0 <= after[j] <= 1.0:
                raise ValueError(f"{f} would be {after[j]:g}, outside the share range 0-1")
            if after[j] < 0:
                raise ValueError(f"{f} would be {after[j]:g}, which is negative")
        dz = delta / self.scale_
        change = float(self.coef_ @ dz)
        change_se = float(np.sqrt(max(dz @ self.cov_[1:, 1:] @ dz, 0.0)))
        z = _z(self.level)
        expected_before = float(
            self.intercept_ + ((before - self.mean_) / self.scale_) @ self.coef_
        )
        changed = delta != 0
        extrapolation = bool(((after < self.min_) | (after > self.max_))[changed].any())
        return WhatIfResult(
            outcome=outcome,
            changes={f: float(changes[f]) for f in self.features_ if f in changes},
            expected_before=expected_before,
            expected_after=expected_before + change,
            change=change,
            change_lo=change - z * change_se,
            change_hi=change + z * change_se,
            level=self.level,
            extrapolation=extrapolation,
            note_sv=WHAT_IF_NOTE["sv"],
            note_en=WHAT_IF_NOTE["en"],
        )
