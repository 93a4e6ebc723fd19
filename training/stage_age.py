"""The stage head informed by the drawing age: measured by nested grouped CV, kept only if it helps.

When a training set carries both researchers' stage labels and children's ages, the age labels
are extra supervision: the drawing-age head learns from every row what changes with age, and the
stage head may read that drawing age as one more input (stages as an ordinal head on the
age-informed representation). Whether that helps is measured, not assumed:

- (a) the plain stage head on its inputs (embedding + drawing features), and
- (b) the same head (same penalty) with the drawing age appended as one more input,

are compared on the same grouped folds as the plain head's own figures (``training.fit``). The
drawing age (b) reads is cross-fitted twice over: inside each outer fold, the training rows' ages
come from age heads fitted on the other inner folds of that training part (grouped), and the
test rows' ages from an age head fitted on the whole training part, so no age prediction comes
from a head that saw that row's group and the outer test fold is seen by nothing. The age head is
the kind and settings chosen for the model (``training.age``), refitted in every fold; that choice
was made on all rows, which flatters (b) slightly.

(b) is kept only when it raises the out-of-fold QWK *and* lowers the out-of-fold MAE. Kept, the
final head is fitted on all rows with the age head's out-of-fold predictions as the extra input
(so it learns how far to trust an age predicted for a drawing the age head has not seen), and at
prediction time reads the age head's raw prediction (``vision.model.StageModel.score_described``,
which the worker, ``spira stages``, ``spira evaluate`` and promotion all use).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from training.age import AgeFit, group_folds, refit_age_head
from training.fit import FitResult, stage_folds
from training.metrics import stage_metrics
from vision.stages import OrdinalStageHead

#: How many standard errors the MAE must fall by for the informed head to be kept.
MIN_SE = 2.0


def paired_mae_gain(
    probs_without: np.ndarray, probs_with: np.ndarray, y: np.ndarray, groups: np.ndarray
) -> tuple[float, float]:
    """How much the informed head lowers the out-of-fold MAE (of the expected stage), and the
    standard error of that fall over groups (rows of a group move together, so the paired
    differences are averaged per group first; at least two groups)."""
    k = np.arange(probs_with.shape[1])
    diff = np.abs(probs_without @ k - y) - np.abs(probs_with @ k - y)
    _, inverse = np.unique(groups, return_inverse=True)
    per_group = np.bincount(inverse, weights=diff) / np.bincount(inverse)
    se = float(per_group.std(ddof=1) / np.sqrt(len(per_group)))
    return float(diff.mean()), se


@dataclass
class StageAgeComparison:
    metrics: dict  # the model card's record: figures with and without, n, folds, kept
    kept: bool
    #: The informed head fitted on all rows (calibrated) and its nested out-of-fold figures;
    #: a model uses it only when ``kept``. None where the comparison could not be made.
    fit: FitResult | None


def nested_age(
    X: np.ndarray,
    ages: np.ndarray,
    groups: np.ndarray,
    train: np.ndarray,
    test: np.ndarray,
    age_fit: AgeFit,
    *,
    n_features: int,
    n_splits: int,
    seed: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Drawing ages for an outer fold: the training rows' cross-fitted within ``train`` (grouped
    inner folds), the test rows' from an age head fitted on all of ``train``."""
    kind = age_fit.metrics["head"]
    params = age_fit.comparison[kind]
    Xtr, atr = X[train], ages[train]
    inner = np.zeros(len(train))
    for itr, ite in group_folds(groups[train], n_splits, seed):
        head = refit_age_head(kind, Xtr[itr], atr[itr], n_features, params, seed)
        inner[ite] = head.predict(Xtr[ite])
    outer = refit_age_head(kind, Xtr, atr, n_features, params, seed).predict(X[test])
    return inner, outer


def compare_stage_with_age(
    X: np.ndarray,
    stages: np.ndarray,
    ages: np.ndarray,
    groups: np.ndarray,
    plain: FitResult,
    age_fit: AgeFit,
    *,
    n_features: int,
    n_splits: int = 5,
    seed: int = 0,
    progress: Callable[[str], None] | None = None,
) -> StageAgeComparison:
    """Compare the plain stage head ``plain`` (from :func:`training.fit.fit_stage_head` with the
    same ``n_splits`` and ``seed``, so on the same folds) with the age-informed head by nested
    grouped CV, and fit the informed head on all rows (``kept`` says whether it wins)."""
    X = np.asarray(X, np.float64)
    y = np.asarray(stages, np.int64)
    ages = np.asarray(ages, np.float64)
    groups = np.asarray(groups)
    folds = stage_folds(y, groups, n_splits, seed)
    if min(len(np.unique(groups[train])) for train, _ in folds) < 2:
        # the age of a training row must come from a head fitted on other groups of its fold
        reason = (
            f"not compared: {len(np.unique(groups))} groups leave a training fold with one group, "
            "so its drawing ages cannot be cross-fitted; label drawings of more children"
        )
        if progress:
            progress(f"stage head with the drawing age as input: {reason}")
        skipped = {"n": int(len(y)), "groups": int(len(np.unique(groups))), "kept": False}
        return StageAgeComparison(metrics=skipped | {"skipped": reason}, kept=False, fit=None)
    fold_heads = []
    for train, test in folds:
        inner, outer = nested_age(
            X,
            ages,
            groups,
            train,
            test,
            age_fit,
            n_features=n_features,
            n_splits=n_splits,
            seed=seed,
        )
        head = OrdinalStageHead(l2=plain.l2).fit(np.column_stack([X[train], inner]), y[train])
        Xt = np.column_stack([X[test], outer])
        head.calibrate(Xt, y[test])
        fold_heads.append((head, Xt, test))
    # one temperature for all folds, as for the plain head (training.fit)
    temperature = float(np.exp(np.mean([np.log(h.temperature_) for h, _, _ in fold_heads])))
    oof = np.zeros_like(plain.oof_probs)
    for head, Xt, test in fold_heads:
        head.temperature_ = temperature
        oof[test] = head.predict_proba(Xt)
    informed = stage_metrics(oof, y)
    without = plain.metrics
    gain, se = paired_mae_gain(plain.oof_probs, oof, y, groups)
    kept = bool(informed["qwk"] >= without["qwk"] and gain > MIN_SE * se)
    record: dict = {
        "qwk_without": without["qwk"],
        "qwk_with": informed["qwk"],
        "mae_without": without["mae"],
        "mae_with": informed["mae"],
        "accuracy_without": without["accuracy"],
        "accuracy_with": informed["accuracy"],
        "mae_gain": gain,
        "mae_gain_se": se,
        "n": int(len(y)),
        "groups": int(len(np.unique(groups))),
        "folds": len(folds),
        "age_head": age_fit.metrics["head"],
        "l2": plain.l2,
        "kept": kept,
    }
    if progress:
        progress(
            f"stage head with the drawing age as input (nested grouped CV, n={len(y)}): "
            f"QWK {informed['qwk']:.3f} vs {without['qwk']:.3f} without, MAE "
            f"{informed['mae']:.3f} vs {without['mae']:.3f} (fall {gain:.3f} ± {se:.3f} SE); "
            f"{'kept' if kept else 'not kept'}"
        )
    final = OrdinalStageHead(l2=plain.l2).fit(np.column_stack([X, age_fit.oof]), y)
    final.temperature_ = temperature
    metrics = {**informed, "temperature": temperature, "folds": len(folds)}
    fit = FitResult(head=final, l2=plain.l2, metrics=metrics, oof_probs=oof)
    return StageAgeComparison(metrics=record, kept=kept, fit=fit)
