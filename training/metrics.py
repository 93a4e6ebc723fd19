"""Evaluation of stage predictions against labels: the figures every model card reports."""

from __future__ import annotations

import numpy as np
from sklearn.metrics import cohen_kappa_score, confusion_matrix

from core.domain import N_STAGES
from vision.stages import expected_calibration_error


def stage_metrics(probs: np.ndarray, y: np.ndarray) -> dict:
    """Quadratic weighted kappa, MAE in stages (of the expected stage), accuracy, ECE, confusion, n."""
    probs = np.asarray(probs, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    top = probs.argmax(axis=1)
    expected = probs @ np.arange(probs.shape[1])
    labels = list(range(N_STAGES))
    return {
        "n": int(len(y)),
        "qwk": float(cohen_kappa_score(y, top, weights="quadratic", labels=labels)),
        "mae": float(np.abs(expected - y).mean()),
        "accuracy": float((top == y).mean()),
        "ece": expected_calibration_error(probs, y),
        "confusion": confusion_matrix(y, top, labels=labels).tolist(),
    }
