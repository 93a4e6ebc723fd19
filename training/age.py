"""Fitting the drawing-age head: candidates compared by grouped cross-validation, bias correction.

The drawing age is the age typical of a drawing (as brain age is for a scan). Every regression
towards age shrinks to the mean: young children's drawings are over-, old children's under-estimated,
so the gap (predicted - actual) falls with age. As in brain-age studies the linear relation of the
cross-validated predictions on actual age (pred = a + b age) is fitted and removed where the actual
age is known: corrected = pred - (a + b age) + age. Whether that works is checked on held-out folds
(the correction fitted on the other folds' predictions), and both figures go on the model card.

Candidates (all on the stage head's inputs: L2-normalised embedding + drawing features, standardised):

- ``ridge``: ridge regression, penalty chosen by grouped CV (the strong baseline on real drawings);
- ``ridge_features``: ridge on the drawing features alone (what a sceptic would try first);
- ``ordinal``: the ordinal (cumulative-link) head over age bins, predicting the expected bin centre;
- ``hgb``: gradient boosting (scikit-learn's HistGradientBoosting) on 16 principal components of
  the embedding plus the drawing features.

The head with the lowest out-of-fold MAE is refitted on all rows. Hyper-parameters are chosen on the
same folds the candidates are compared on, which flatters every candidate a little and equally.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.stats import pearsonr, spearmanr

from vision.stages import DrawingAgeHead, OrdinalStageHead

RIDGE_ALPHAS = (1.0, 10.0, 100.0, 1e3, 1e4, 1e5)
ORDINAL_L2 = (1e-2, 1e-1, 1.0)
N_PCS = 16
CANDIDATES = ("ridge", "ridge_features", "ordinal", "hgb")


@dataclass
class AgeFit:
    head: DrawingAgeHead
    oof: np.ndarray  # out-of-fold raw predictions of the chosen head
    metrics: dict  # chosen head's out-of-fold figures, the comparison, the bias check
    comparison: dict = field(default_factory=dict)


def group_folds(
    groups: np.ndarray, n_splits: int, seed: int
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Grouped folds: every group's rows in one test fold; groups shuffled by ``seed``."""
    uniq = np.unique(groups)
    k = max(2, min(n_splits, len(uniq)))
    order = np.random.default_rng(seed).permutation(len(uniq))
    fold_of_group = {g: i % k for i, g in zip(range(len(uniq)), uniq[order], strict=True)}
    fold = np.array([fold_of_group[g] for g in groups])
    idx = np.arange(len(groups))
    return [(idx[fold != f], idx[fold == f]) for f in range(k)]


def age_metrics(pred: np.ndarray, age: np.ndarray) -> dict:
    """Spearman and Pearson with age, MAE in years, n."""
    pred, age = np.asarray(pred, float), np.asarray(age, float)
    constant = np.ptp(pred) < 1e-12 or np.ptp(age) < 1e-12
    return {
        "spearman": 0.0 if constant else float(spearmanr(pred, age).statistic),
        "pearson": 0.0 if constant else float(pearsonr(pred, age).statistic),
        "mae": float(np.abs(pred - age).mean()),
        "n": int(len(age)),
    }


def _standardise(X: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    mean = X.mean(axis=0)
    scale = X.std(axis=0)
    scale[scale < 1e-8] = 1.0
    return (X - mean) / scale, mean, scale


def _ridge_path(Z: np.ndarray, y: np.ndarray, alphas) -> list[tuple[np.ndarray, float]]:
    """Ridge coefficients and intercepts for every alpha at once (SVD of the centred inputs)."""
    zm, ym = Z.mean(axis=0), y.mean()
    U, s, Vt = np.linalg.svd(Z - zm, full_matrices=False)
    uty = U.T @ (y - ym)
    out = []
    for a in alphas:
        coef = Vt.T @ (s / (s * s + a) * uty)
        out.append((coef, float(ym - zm @ coef)))
    return out


def _bins(age: np.ndarray, n_bins: int = 6) -> tuple[np.ndarray, np.ndarray]:
    """Age bins at quantiles: (edges between bins, centres = mean age in each bin)."""
    qs = np.unique(np.quantile(age, np.linspace(0, 1, n_bins + 1)[1:-1]))
    idx = np.searchsorted(qs, age, side="right")
    # Ages taking few values (age-band midpoints of uploads) leave some quantile bins empty:
    # keep the non-empty ones, each starting at its own lower edge (the same assignment).
    keep = [k for k in range(len(qs) + 1) if (idx == k).any()]
    edges = np.array([qs[k - 1] for k in keep[1:]], dtype=np.float64)
    centres = np.array([age[idx == k].mean() for k in keep])
    return edges, centres


def fit_age_head(
    X: np.ndarray,
    age: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_features: int,
    n_splits: int = 5,
    seed: int = 0,
    candidates: tuple[str, ...] = CANDIDATES,
    progress: Callable[[str], None] | None = None,
) -> AgeFit:
    """Compare the candidate heads by grouped CV, refit the best on all rows, fit its bias
    correction on its out-of-fold predictions. ``n_features``: how many of ``X``'s last columns
    are drawing features (the rest is the embedding)."""
    X = np.asarray(X, np.float64)
    age = np.asarray(age, np.float64)
    groups = np.arange(len(age)) if groups is None else np.asarray(groups)
    folds = group_folds(groups, n_splits, seed)
    d = X.shape[1]
    feat_cols = np.arange(d - n_features, d)
    oof: dict[str, np.ndarray] = {}
    chosen_params: dict[str, dict] = {}

    if "ridge" in candidates or "ridge_features" in candidates:
        for name, cols in (("ridge", np.arange(d)), ("ridge_features", feat_cols)):
            if name not in candidates:
                continue
            preds = np.zeros((len(RIDGE_ALPHAS), len(age)))
            for train, test in folds:
                Z, m, s = _standardise(X[train][:, cols])
                Zt = (X[test][:, cols] - m) / s
                for k, (coef, b) in enumerate(_ridge_path(Z, age[train], RIDGE_ALPHAS)):
                    preds[k, test] = Zt @ coef + b
            errs = np.abs(preds - age).mean(axis=1)
            best = int(np.argmin(errs))
            oof[name] = preds[best]
            chosen_params[name] = {"alpha": RIDGE_ALPHAS[best]}

    if "ordinal" in candidates:
        edges, _ = _bins(age)
        y_bin = np.searchsorted(edges, age, side="right")
        if len(edges) >= 1:
            best_err, best_pred, best_l2 = np.inf, None, None
            for l2 in ORDINAL_L2:
                pred = np.zeros(len(age))
                for train, test in folds:
                    _, centres = _bins(age[train])
                    tr_edges, _ = _bins(age[train])
                    yb = np.searchsorted(tr_edges, age[train], side="right")
                    head = OrdinalStageHead(l2=l2, n_stages=len(centres)).fit(X[train], yb)
                    pred[test] = head.predict_proba(X[test]) @ centres
                err = float(np.abs(pred - age).mean())
                if err < best_err:
                    best_err, best_pred, best_l2 = err, pred, l2
            assert best_pred is not None
            oof["ordinal"] = best_pred
            chosen_params["ordinal"] = {"l2": best_l2, "bins": int(y_bin.max() + 1)}

    if "hgb" in candidates:
        pred = np.zeros(len(age))
        for train, test in folds:
            head = _fit_hgb(X[train], age[train], n_features, seed)
            pred[test] = head.predict(X[test])
        oof["hgb"] = pred
        chosen_params["hgb"] = {"pcs": N_PCS, "max_iter": 200, "learning_rate": 0.05}

    comparison = {name: {**age_metrics(p, age), **chosen_params[name]} for name, p in oof.items()}
    if progress:
        for name, c in comparison.items():
            progress(
                f"drawing age, {name}: out-of-fold Spearman {c['spearman']:.3f}, MAE {c['mae']:.2f} y"
            )
    chosen = min(comparison, key=lambda n: comparison[n]["mae"])
    final = refit_age_head(chosen, X, age, n_features, chosen_params[chosen], seed)
    chosen_oof = oof[chosen]
    slope, intercept = np.polyfit(age, chosen_oof, 1)
    final.bias_slope, final.bias_intercept = float(slope), float(intercept)
    metrics = {
        "head": chosen,
        **age_metrics(chosen_oof, age),
        "bias_slope": float(slope),
        "bias_intercept": float(intercept),
        **bias_check(chosen_oof, age, folds),
        "folds": len(folds),
        "comparison": comparison,
    }
    return AgeFit(head=final, oof=chosen_oof, metrics=metrics, comparison=comparison)


def bias_check(pred: np.ndarray, age: np.ndarray, folds) -> dict:
    """Correlation of the gap with age before and after the correction, on held-out folds: each
    fold's correction is fitted on the other folds' out-of-fold predictions."""
    corrected = np.zeros(len(age))
    for train, test in folds:
        b, a = np.polyfit(age[train], pred[train], 1)
        corrected[test] = pred[test] - (a + b * age[test]) + age[test]
    raw_gap, gap = pred - age, corrected - age
    return {
        "gap_age_r_raw": float(np.corrcoef(raw_gap, age)[0, 1]),
        "gap_age_r_corrected": float(np.corrcoef(gap, age)[0, 1]),
        "corrected_mae": float(np.abs(gap).mean()),
    }


def _fit_hgb(X: np.ndarray, age: np.ndarray, n_features: int, seed: int) -> DrawingAgeHead:
    # lazy: scikit-learn only for the gradient-boosting age head
    from sklearn.ensemble import HistGradientBoostingRegressor

    Z, mean, scale = _standardise(X)
    emb = Z[:, : Z.shape[1] - n_features]
    k = max(1, min(N_PCS, emb.shape[1], len(age) - 1))
    _, _, Vt = np.linalg.svd(emb - emb.mean(axis=0), full_matrices=False)
    head = DrawingAgeHead("hgb", mean=mean, scale=scale, components=Vt[:k], n_features=n_features)
    est = HistGradientBoostingRegressor(
        max_iter=200,
        learning_rate=0.05,
        max_leaf_nodes=15,
        min_samples_leaf=10,
        l2_regularization=1.0,
        random_state=seed,
    )
    head.estimator = est.fit(head.tree_inputs(Z), age)
    return head


def refit_age_head(
    kind: str, X: np.ndarray, age: np.ndarray, n_features: int, params: dict, seed: int
) -> DrawingAgeHead:
    """Fit the candidate ``kind`` (a name in :data:`CANDIDATES`) with the settings ``params``
    chosen for it (``AgeFit.comparison[kind]``) on ``X``/``age``; no bias correction."""
    d = X.shape[1]
    if kind in ("ridge", "ridge_features"):
        cols = np.arange(d) if kind == "ridge" else np.arange(d - n_features, d)
        Z, mean, scale = _standardise(X)
        ((coef_part, b),) = _ridge_path(Z[:, cols], age, [params["alpha"]])
        coef = np.zeros(d)
        coef[cols] = coef_part
        return DrawingAgeHead(
            "ridge", mean=mean, scale=scale, coef=coef, intercept=b, n_features=n_features
        )
    if kind == "ordinal":
        Z, mean, scale = _standardise(X)
        edges, centres = _bins(age)
        yb = np.searchsorted(edges, age, side="right")
        head = OrdinalStageHead(l2=params["l2"], n_stages=len(centres)).fit(Z, yb)
        return DrawingAgeHead(
            "ordinal",
            mean=mean,
            scale=scale,
            ordinal=head,
            bin_centres=centres,
            n_features=n_features,
        )
    return _fit_hgb(X, age, n_features, seed)
