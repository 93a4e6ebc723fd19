"""Evaluating a registered model on a labelled set (``spira evaluate --csv``), and recording it.

Metrics are computed on all rows; their 95 % intervals come from a percentile bootstrap that
resamples *groups* (children or sessions: the CSV's ``group`` column), since drawings of one child
are not independent. Against stage labels: quadratic weighted kappa, MAE of the expected stage,
accuracy of the top stage, expected calibration error (top label) and a reliability diagram.
Against ages: Spearman and MAE of the drawing age. Everything again per whole-year age band where
the rows carry ages.

A model's card records what it was validated on (:func:`record_validation`); a model never
validated on real drawings reads "synthetic drawings only" (:func:`model_validation`).
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from training.metrics import quadratic_weighted_kappa
from training.model_files import models_dir
from vision.model import StageModel
from vision.stages import expected_calibration_error

N_BOOT = 500
N_BINS = 10


def _stage_point(probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    top = probs.argmax(axis=1)
    expected = probs @ np.arange(probs.shape[1])
    return {
        "qwk": quadratic_weighted_kappa(y, top),
        "mae": float(np.abs(expected - y).mean()),
        "accuracy": float((top == y).mean()),
        "ece": expected_calibration_error(probs, y, N_BINS),
    }


def _age_point(pred: np.ndarray, age: np.ndarray) -> dict[str, float]:
    constant = np.ptp(pred) < 1e-12 or np.ptp(age) < 1e-12
    return {
        "spearman": float("nan") if constant else float(spearmanr(pred, age).statistic),
        "mae_years": float(np.abs(pred - age).mean()),
    }


def _stage_rows(probs: np.ndarray, y: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    return _stage_point(probs[rows], y[rows])


def _age_rows(pred: np.ndarray, age: np.ndarray, rows: np.ndarray) -> dict[str, float]:
    return _age_point(pred[rows], age[rows])


def _with_intervals(
    point: Callable[[np.ndarray], dict[str, float]],
    groups: np.ndarray,
    n_boot: int,
    seed: int,
) -> dict:
    """``point(rows)`` on all rows, and percentile intervals over ``n_boot`` group resamples."""
    all_rows = np.arange(len(groups))
    estimate = point(all_rows)
    uniq, inverse = np.unique(groups, return_inverse=True)
    members = [all_rows[inverse == g] for g in range(len(uniq))]
    rng = np.random.default_rng(seed)
    draws: dict[str, list[float]] = {k: [] for k in estimate}
    if len(uniq) >= 2:
        for _ in range(n_boot):
            pick = rng.integers(0, len(uniq), len(uniq))
            rows = np.concatenate([members[g] for g in pick])
            for k, v in point(rows).items():
                if np.isfinite(v):
                    draws[k].append(v)
    out: dict = {}
    for k, v in estimate.items():
        d = np.array(draws[k])
        enough = len(d) >= max(20, n_boot // 2)
        out[k] = {
            "value": None if not np.isfinite(v) else round(float(v), 4),
            "ci95": [round(float(np.quantile(d, 0.025)), 4), round(float(np.quantile(d, 0.975)), 4)]
            if enough
            else None,
        }
    out["n"] = int(len(groups))
    out["n_groups"] = int(len(uniq))
    return out


def age_band_of(age: float) -> str:
    """Whole-year band of an age in years: 4.3 -> "4-5"."""
    lo = int(np.floor(age))
    return f"{lo}-{lo + 1}"


def reliability_bins(probs: np.ndarray, y: np.ndarray, n_bins: int = N_BINS) -> list[dict]:
    """Per confidence bin: mean confidence, accuracy, n (the reliability diagram's data)."""
    conf = probs.max(axis=1)
    correct = probs.argmax(axis=1) == y
    bins = np.minimum((conf * n_bins).astype(int), n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = bins == b
        if mask.any():
            out.append(
                {
                    "bin": [b / n_bins, (b + 1) / n_bins],
                    "confidence": round(float(conf[mask].mean()), 4),
                    "accuracy": round(float(correct[mask].mean()), 4),
                    "n": int(mask.sum()),
                }
            )
    return out


def reliability_png(bins: list[dict], path: Path, size: int = 360) -> Path:
    """Draw the reliability diagram (accuracy bars per confidence bin, diagonal) as a PNG.

    Drawn with OpenCV, already a dependency of vision, instead of importing matplotlib."""
    # lazy: OpenCV is only needed when a diagram is written
    import cv2

    pad = 40
    img = np.full((size + 2 * pad, size + 2 * pad, 3), 255, np.uint8)
    cv2.line(img, (pad, pad + size), (pad + size, pad), (160, 160, 160), 1, cv2.LINE_AA)
    cv2.rectangle(img, (pad, pad), (pad + size, pad + size), (0, 0, 0), 1)
    for b in bins:
        x0 = pad + int(size * b["bin"][0]) + 2
        x1 = pad + int(size * b["bin"][1]) - 2
        y0 = pad + size - int(size * b["accuracy"])
        cv2.rectangle(img, (x0, y0), (x1, pad + size), (119, 170, 68), -1)
        yc = pad + size - int(size * b["confidence"])
        cv2.line(img, (x0, yc), (x1, yc), (40, 40, 200), 2)
    font = cv2.FONT_HERSHEY_SIMPLEX
    cv2.putText(img, "confidence", (pad + size // 2 - 40, pad + size + 28), font, 0.5, (0, 0, 0), 1)
    cv2.putText(
        img, "accuracy (bars); red: mean confidence", (pad, pad - 12), font, 0.45, (0, 0, 0), 1
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), img):
        raise OSError(f"could not write {path}")
    return path


def evaluate_described(
    model: StageModel,
    embeddings: np.ndarray,
    features: np.ndarray,
    *,
    stages: np.ndarray | None,
    ages: np.ndarray | None,
    groups: np.ndarray,
    n_boot: int = N_BOOT,
    seed: int = 0,
) -> dict:
    """Grouped metrics with bootstrap intervals, overall and per whole-year age band.

    Raises ValueError when the labels ask for a head the model lacks."""
    groups = np.asarray(groups).astype(str)
    result: dict = {"model": model.version, "n": int(len(groups)), "n_groups": len(set(groups))}
    probs = pred_age = None
    if stages is not None:
        if model.head is None:
            raise ValueError(f"model {model.version} has no stage head; drop the stage column")
        stages = np.asarray(stages, int)
        probs = model.score_described(embeddings, features).probs
        result["stage"] = _with_intervals(
            lambda r: _stage_point(probs[r], stages[r]), groups, n_boot, seed
        )
        result["calibration"] = {
            "ece": result["stage"]["ece"],
            "reliability": reliability_bins(probs, stages),
        }
    if ages is not None:
        if model.age_head is None:
            raise ValueError(f"model {model.version} has no drawing-age head; drop the age column")
        ages = np.asarray(ages, float)
        pred_age = model.predict_drawing_age(embeddings, features).raw
        result["age"] = _with_intervals(
            lambda r: _age_point(pred_age[r], ages[r]), groups, n_boot, seed
        )
        bands = np.array([age_band_of(a) for a in ages])
        by_band: dict = {}
        for band in sorted(set(bands)):
            rows = np.flatnonzero(bands == band)
            entry: dict = {}
            if probs is not None and stages is not None:
                p, s = probs[rows], stages[rows]
                entry["stage"] = _with_intervals(
                    partial(_stage_rows, p, s), groups[rows], n_boot, seed
                )
            pa, aa = pred_age[rows], ages[rows]
            entry["age"] = _with_intervals(partial(_age_rows, pa, aa), groups[rows], n_boot, seed)
            by_band[band] = entry
        result["by_age_band"] = by_band
    return result


def validation_summary(result: dict, *, source: str, synthetic: bool) -> dict:
    """What goes on a model card from an evaluation ``result``."""
    summary: dict = {
        "status": "synthetic_only" if synthetic else "validated",
        "source": source,
        "n_drawings": result["n"],
        "n_children": result["n_groups"],
        "evaluated_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    if "stage" in result:
        summary["qwk"] = result["stage"]["qwk"]
    if "age" in result:
        summary["spearman_age"] = result["age"]["spearman"]
    summary["text"] = validation_text(summary)
    return summary


def validation_text(v: dict) -> str:
    if v.get("status") != "validated":
        return "synthetic drawings only"
    parts = [f"{v['n_drawings']} real drawings from {v['n_children']} children"]
    for key, label in (("qwk", "QWK"), ("spearman_age", "Spearman with age")):
        m = v.get(key)
        if m and m.get("value") is not None:
            ci = m.get("ci95")
            parts.append(
                f"{label} {m['value']:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")
            )
    return ": ".join([parts[0], ", ".join(parts[1:])]) if len(parts) > 1 else parts[0]


def model_validation(meta: dict | None) -> dict:
    """The API's ``model_validation`` of a model's metadata (model.json or its database row):
    {"status": "synthetic_only" | "validated", "text": ...}. A model whose card records no
    validation on real drawings is "synthetic_only"."""
    v = (meta or {}).get("validation")
    if isinstance(v, dict) and v.get("status") == "validated":
        return {**v, "text": validation_text(v)}
    return {"status": "synthetic_only", "text": "synthetic drawings only"}


def record_validation(model: StageModel, summary: dict, session=None) -> None:
    """Write ``summary`` onto the model's card: model.json's ``validation``, a section of card.md,
    and (with a ``session``) the database row's metrics. Real-data validations are kept over
    synthetic ones: a synthetic check never overwrites a validation on real drawings."""
    if model.folder is None:
        raise ValueError(f"model {model.version} has no folder to record its validation in")
    meta_path = Path(model.folder) / "model.json"
    meta = json.loads(meta_path.read_text())
    if model_validation(meta)["status"] == "validated" and summary["status"] != "validated":
        return
    meta["validation"] = summary
    meta_path.write_text(json.dumps(meta, indent=2, default=str))
    card = Path(model.folder) / "card.md"
    text = card.read_text() if card.exists() else ""
    marker = "\n## Validation\n"
    text = text.split(marker)[0].rstrip("\n")
    text += f"\n{marker}\nValidated on: {summary['text']} (source: {summary['source']}, {summary['evaluated_at']}).\n"
    card.write_text(text)
    if session is not None:
        # lazy: the database model is needed only when a session is given
        from core.models import ModelVersion

        row = session.get(ModelVersion, model.version)
        if row is not None:
            row.metrics = {**(row.metrics or {}), "validation": summary}
            session.flush()


def model_validation_of(version: str | None) -> dict:
    """:func:`model_validation` of a registered model by version (its model.json); a missing
    model or version reads "synthetic_only" too (nothing validated it)."""
    if not version:
        return model_validation(None)
    path = models_dir() / version / "model.json"
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        meta = None
    return {**model_validation(meta), "model_version": version}
