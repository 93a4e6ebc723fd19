"""Evaluation of stage predictions against labels: the figures every model card reports.

Quadratic weighted kappa lives here once, for model cards and for the agreement between annotators
(:mod:`training.agreement` imports it). Its weights use the stage numbers themselves (0–4), not
the ranks of the stages that happen to be present; this equals scikit-learn's
``cohen_kappa_score(a, b, weights="quadratic", labels=range(n_stages))``.
"""

from __future__ import annotations

import numpy as np

from core.domain import N_STAGES
from vision.stages import expected_calibration_error


def confusion_matrix(a: np.ndarray, b: np.ndarray, n_stages: int = N_STAGES) -> np.ndarray:
    """Stages × stages counts: row = stage from ``a``, column = stage from ``b``."""
    out = np.zeros((n_stages, n_stages), dtype=int)
    np.add.at(out, (np.asarray(a).astype(int), np.asarray(b).astype(int)), 1)
    return out


def qwk_from_confusions(confusions: np.ndarray) -> np.ndarray:
    """Quadratic weighted kappa for a stack of confusion matrices (..., K, K); NaN if undefined."""
    k = confusions.shape[-1]
    idx = np.arange(k)
    weights = (idx[:, None] - idx[None, :]) ** 2 / max(k - 1, 1) ** 2
    conf = confusions.astype(float)
    total = conf.sum(axis=(-2, -1))
    expected = (
        np.einsum("...i,...j->...ij", conf.sum(axis=-1), conf.sum(axis=-2))
        / np.maximum(total, 1.0)[..., None, None]
    )
    observed_dis = (weights * conf).sum(axis=(-2, -1))
    expected_dis = (weights * expected).sum(axis=(-2, -1))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(expected_dis > 0, 1.0 - observed_dis / expected_dis, np.nan)


def quadratic_weighted_kappa(a: np.ndarray, b: np.ndarray, n_stages: int = N_STAGES) -> float:
    """Cohen's kappa with quadratic weights on the stage numbers; NaN when undefined."""
    return float(qwk_from_confusions(confusion_matrix(a, b, n_stages)))


def stage_metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    """Quadratic weighted kappa, MAE in stages (of the expected stage), accuracy, ECE, confusion, n."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    top = probs.argmax(axis=1)
    expected = probs @ np.arange(probs.shape[1])
    confusion = confusion_matrix(y, top, N_STAGES)
    return {
        "n": int(len(y)),
        "qwk": float(qwk_from_confusions(confusion)),
        "mae": float(np.abs(expected - y).mean()),
        "accuracy": float((top == y).mean()),
        "ece": expected_calibration_error(probs, y),
        "confusion": confusion.tolist(),
    }
