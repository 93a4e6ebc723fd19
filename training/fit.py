"""Fitting the ordinal stage head with grouped cross-validation and temperature scaling.

Photos that share a group (the same child's series, the same session, the same original scan) never
straddle folds, so the reported figures are what a new group of drawings would see.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from sklearn.model_selection import GroupKFold, StratifiedGroupKFold

from training.metrics import stage_metrics
from vision.stages import OrdinalStageHead

L2_GRID = (1e-4, 1e-3, 1e-2, 1e-1)
#: How far beyond the grid the search may go when the best penalty is on its edge.
L2_LIMITS = (1e-7, 1e3)


@dataclass
class FitResult:
    head: OrdinalStageHead
    l2: float
    metrics: dict  # out-of-fold, calibrated
    oof_probs: np.ndarray
    cv_by_l2: dict = field(default_factory=dict)


def stage_folds(y: np.ndarray, groups: np.ndarray, n_splits: int, seed: int):
    """The stage head's grouped folds (stratified by stage where the groups allow)."""
    n_groups = len(np.unique(groups))
    k = max(2, min(n_splits, n_groups))
    try:
        return list(StratifiedGroupKFold(k, shuffle=True, random_state=seed).split(y, y, groups))
    except ValueError:
        return list(GroupKFold(k).split(y, y, groups))


def fit_stage_head(
    X: np.ndarray,
    y: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    n_splits: int = 5,
    seed: int = 0,
    l2_grid: tuple[float, ...] = L2_GRID,
    progress: Callable[[str], None] | None = None,
) -> FitResult:
    """Choose the L2 penalty by grouped CV, fit the temperature on out-of-fold scores, refit on all.

    Returns the final head (fitted on all rows, calibrated), the chosen penalty and the out-of-fold
    metrics of the calibrated model (qwk, mae, accuracy, ece, confusion, n).
    """
    X = np.asarray(X, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    groups = np.arange(len(y)) if groups is None else np.asarray(groups)
    folds = stage_folds(y, groups, n_splits, seed)
    cv_by_l2: dict[float, float] = {}
    fold_heads_by_l2: dict[float, list] = {}

    def try_l2(l2: float) -> float:
        heads = [
            (OrdinalStageHead(l2=l2).fit(X[train_idx], y[train_idx]), test_idx)
            for train_idx, test_idx in folds
        ]
        # Out-of-fold probabilities with each fold's own thresholds at T = 1
        probs = np.zeros((len(y), heads[0][0].n_stages))
        for head, test_idx in heads:
            probs[test_idx] = head.predict_proba(X[test_idx])
        nll = float(-np.log(np.clip(probs[np.arange(len(y)), y], 1e-12, None)).mean())
        cv_by_l2[l2] = nll
        fold_heads_by_l2[l2] = heads
        if progress:
            progress(f"l2={l2:g}: out-of-fold log-loss {nll:.3f}")
        return nll

    for l2 in l2_grid:
        try_l2(l2)
    # An optimum on the grid's edge says the grid was too narrow for these data (real drawings'
    # embeddings need other penalties than synthetic ones): go on by factors of ten while the
    # out-of-fold log-loss improves, within L2_LIMITS.
    for step, limit in ((10.0, L2_LIMITS[1]), (0.1, L2_LIMITS[0])):
        edge = max(cv_by_l2) if step > 1 else min(cv_by_l2)
        while min(cv_by_l2, key=cv_by_l2.__getitem__) == edge:
            nxt = float(f"{edge * step:.3g}")  # 1e-05, not 1.0000000000000001e-05
            if (step > 1 and nxt > limit) or (step < 1 and nxt < limit):
                break
            try_l2(nxt)
            edge = nxt
    l2 = min(cv_by_l2, key=cv_by_l2.__getitem__)
    # The chosen penalty's fold heads give its out-of-fold scores; one temperature for all
    fold_heads = fold_heads_by_l2[l2]
    probe = OrdinalStageHead(l2=l2).fit(X, y)
    oof_probs = np.zeros((len(y), probe.n_stages))
    # Temperature fitted on out-of-fold predictions (each fold's thresholds)
    temps = []
    for head, test_idx in fold_heads:
        head.calibrate(X[test_idx], y[test_idx])
        temps.append(head.temperature_)
    temperature = float(np.exp(np.mean(np.log(temps))))
    for head, test_idx in fold_heads:
        head.temperature_ = temperature
        oof_probs[test_idx] = head.predict_proba(X[test_idx])
    probe.temperature_ = temperature
    metrics = stage_metrics(oof_probs, y)
    metrics["temperature"] = temperature
    metrics["folds"] = len(folds)
    return FitResult(head=probe, l2=l2, metrics=metrics, oof_probs=oof_probs, cv_by_l2=cv_by_l2)
