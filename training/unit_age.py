"""Cross-fitted drawing age of stored uploads: K unit-folds, so no unit is scored by a head that saw it.

Every uploaded photo carries its children's age band; the band's midpoint (years) is a weak but free
age label. ``spira train --from-uploads`` fits drawing-age heads on the stored embeddings and
drawing features of every processed photo, with that midpoint as the target:

- the units are dealt into K folds (seeded); head k is fitted (:func:`training.age.fit_age_head`,
  its own candidates compared by cross-validation grouped by unit, its bias correction fitted on its
  own out-of-fold predictions) on the photos of the units *outside* fold k only;
- a photo of a unit in fold k is scored by head k, which never saw a photo of that unit: the unit's
  drawing-age gap (bias-corrected drawing age minus the band midpoint) is then not pulled towards
  zero by the model having learnt that unit's own drawings (cross-fitting, as in double machine
  learning and brain-age studies). A unit added after training is scored by the mean of all K
  heads (none saw it).

The gap is in years: +0.4 means the unit's drawings look like those of children 0.4 years older
than the band midpoint, *relative to the other units the heads were trained on* (the target is the
band, so on average over the training units the gap is about zero by construction). It is a
comparison between units, not against an external norm; and the midpoint is a coarse stand-in for
the children's actual ages (a band spans a year).

Measured on: the simulations of tests/training/test_unit_age.py only (units whose drawings are
offset by a known number of years). Whether the gap means anything on real drawings is unknown
until a model is validated on them (``spira evaluate --record``); until then every figure built on
it is labelled "not validated on real drawings".
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.config import get_settings
from core.domain import AGE_BANDS
from core.models import Embedding, Photo, Unit
from training.age import CANDIDATES, age_metrics, fit_age_head
from training.model_files import list_models
from training.train import Described, fit_and_register
from vision.features import FEATURE_NAMES
from vision.model import stage_inputs
from vision.stages import DrawingAgeHead

#: Subfolder of a model's folder holding its unit-fold heads and ``crossfit.json``.
CROSSFIT_DIR = "crossfit"
CROSSFIT_FILE = "crossfit.json"
DEFAULT_FOLDS = 5
#: Fewest units cross-fitting can run on: every head must train on at least two units.
MIN_UNITS = 3


def age_band_midpoint(band: str) -> float:
    """Midpoint of an age band in years: "3-4" -> 3.5. Raises ValueError for an unknown band."""
    if band not in AGE_BANDS:
        raise ValueError(f"age band {band!r} is not one of {', '.join(AGE_BANDS)}")
    lo, hi = (float(x) for x in band.split("-"))
    return (lo + hi) / 2


def unit_folds(units: np.ndarray, k: int, seed: int) -> dict[str, int]:
    """Deal the distinct units into ``min(k, n_units)`` folds at random (``seed``), as evenly as
    possible: {unit: fold}."""
    uniq = sorted({str(u) for u in units})
    k = max(2, min(k, len(uniq)))
    order = np.random.default_rng(seed).permutation(len(uniq))
    return {uniq[j]: i % k for i, j in enumerate(order)}


@dataclass
class CrossFit:
    """K drawing-age heads, head k trained without the units of fold k.

    ``train_units[k]``: the units head k was trained on (never one of fold k)."""

    heads: list[DrawingAgeHead]
    fold_of_unit: dict[str, int]
    train_units: list[list[str]]
    metrics: dict = field(default_factory=dict)

    @property
    def k(self) -> int:
        return len(self.heads)

    def scoring_fold(self, unit: str) -> int | None:
        """The fold whose head scores ``unit`` (None: a unit none of the heads saw, scored by all)."""
        return self.fold_of_unit.get(str(unit))

    def gaps(self, X: np.ndarray, age: np.ndarray, units: np.ndarray) -> np.ndarray:
        """Bias-corrected drawing age minus ``age`` (years) of each row, each row scored by the
        head that did not see its unit (a unit unknown to every head: the mean over heads)."""
        X = np.asarray(X, np.float64)
        age = np.asarray(age, np.float64)
        units = np.asarray(units).astype(str)
        out = np.full(len(age), np.nan)
        folds = np.array([self.fold_of_unit.get(u, -1) for u in units])
        for k, head in enumerate(self.heads):
            rows = folds == k
            if rows.any():
                out[rows] = head.corrected(head.predict(X[rows]), age[rows]) - age[rows]
        unknown = folds == -1
        if unknown.any():
            out[unknown] = (
                np.mean(
                    [h.corrected(h.predict(X[unknown]), age[unknown]) for h in self.heads], axis=0
                )
                - age[unknown]
            )
        return out

    def save(self, folder: Path) -> Path:
        """Write the heads and ``crossfit.json`` into ``folder/crossfit``; returns that folder."""
        root = Path(folder) / CROSSFIT_DIR
        for k, head in enumerate(self.heads):
            head.save(root / f"fold-{k}")
        meta = {
            "k": self.k,
            "fold_of_unit": self.fold_of_unit,
            "train_units": self.train_units,
            "metrics": self.metrics,
        }
        (root / CROSSFIT_FILE).write_text(json.dumps(meta, indent=2, default=str))
        return root

    @classmethod
    def load(cls, folder: Path) -> CrossFit | None:
        """The cross-fit saved in a model's ``folder`` (None when it has none)."""
        root = Path(folder) / CROSSFIT_DIR
        if not (root / CROSSFIT_FILE).is_file():
            return None
        meta = json.loads((root / CROSSFIT_FILE).read_text())
        heads = []
        for k in range(int(meta["k"])):
            head = DrawingAgeHead.load(root / f"fold-{k}")
            if head is None:
                raise FileNotFoundError(f"{root}: the head of fold {k} is missing")
            heads.append(head)
        return cls(
            heads=heads,
            fold_of_unit={str(u): int(f) for u, f in meta["fold_of_unit"].items()},
            train_units=[[str(u) for u in us] for us in meta["train_units"]],
            metrics=meta.get("metrics", {}),
        )


def fit_crossfit(
    X: np.ndarray,
    age: np.ndarray,
    units: np.ndarray,
    *,
    n_features: int,
    k: int = DEFAULT_FOLDS,
    seed: int = 0,
    candidates: tuple[str, ...] = CANDIDATES,
    log: Callable[[str], None] | None = None,
) -> CrossFit:
    """Fit one drawing-age head per unit-fold, each on the other folds' units only.

    ``X``: stage inputs (embedding + ``n_features`` drawing features), ``age``: the target in
    years (a photo's age-band midpoint), ``units``: each row's unit. Raises ValueError with fewer
    than :data:`MIN_UNITS` units. ``metrics``: the cross-fitted (every row scored by the head that
    did not see its unit) Spearman and MAE of the raw drawing age with the target, the
    correlation of the gap with the target before and after bias correction, n and n_units."""
    X = np.asarray(X, np.float64)
    age = np.asarray(age, np.float64)
    units = np.asarray(units).astype(str)
    n_units = len(set(units))
    if n_units < MIN_UNITS:
        raise ValueError(
            f"cross-fitting needs photos of at least {MIN_UNITS} units (each head trains on "
            f"the others); got {n_units}"
        )
    fold_of_unit = unit_folds(units, k, seed)
    fold = np.array([fold_of_unit[u] for u in units])
    n_folds = max(fold_of_unit.values()) + 1
    heads, train_units = [], []
    raw = np.zeros(len(age))
    for f in range(n_folds):
        train = fold != f
        fit = fit_age_head(
            X[train],
            age[train],
            units[train],
            n_features=n_features,
            seed=seed,
            candidates=candidates,
        )
        heads.append(fit.head)
        train_units.append(sorted(set(units[train])))
        raw[~train] = fit.head.predict(X[~train])
        if log:
            log(
                f"unit-fold {f + 1}/{n_folds}: {fit.head.kind} head on {int(train.sum())} photos "
                f"of {len(train_units[-1])} units"
            )
    cf = CrossFit(heads=heads, fold_of_unit=fold_of_unit, train_units=train_units)
    gap = cf.gaps(X, age, units)
    constant = np.ptp(age) < 1e-12
    cf.metrics = {
        **age_metrics(raw, age),
        "gap_age_r_raw": None if constant else float(np.corrcoef(raw - age, age)[0, 1]),
        "gap_age_r_corrected": None if constant else float(np.corrcoef(gap, age)[0, 1]),
        "n_units": n_units,
        "k": n_folds,
        "heads": [h.kind for h in heads],
    }
    return cf


@dataclass
class StoredPhotos:
    """Processed photos with an embedding of one backbone version: inputs and their labels."""

    photo_ids: np.ndarray
    embeddings: np.ndarray
    features: np.ndarray
    units: np.ndarray  # unit names
    terms: np.ndarray
    ages: np.ndarray  # age-band midpoints, years
    backbone_version: str


def stored_backbone_version(session: Session) -> str | None:
    """The backbone version most processed photos have an embedding of (None: no embedding)."""
    row = session.execute(
        select(Embedding.model_version, func.count())
        .join(Photo, Photo.id == Embedding.photo_id)
        .where(Photo.status == "done")
        .group_by(Embedding.model_version)
        .order_by(func.count().desc(), Embedding.model_version)
        .limit(1)
    ).first()
    return None if row is None else str(row[0])


def stored_photos(
    session: Session,
    feature_names: tuple[str, ...] | list[str],
    *,
    backbone_version: str | None = None,
    unit_ids: list[int] | None = None,
) -> StoredPhotos:
    """Every processed photo (of ``unit_ids``, default all) with its stored embedding of
    ``backbone_version`` (default :func:`stored_backbone_version`); photos of an unknown age
    band or lacking a drawing feature are left out."""
    version = backbone_version or stored_backbone_version(session)
    query = (
        select(
            Photo.id, Unit.name, Photo.term, Photo.age_band, Embedding.vector, Embedding.features
        )
        .join(Embedding, Embedding.photo_id == Photo.id)
        .join(Unit, Unit.id == Photo.unit_id)
        .where(Photo.status == "done", Embedding.model_version == (version or ""))
        .order_by(Photo.id)
    )
    if unit_ids is not None:
        query = query.where(Photo.unit_id.in_(unit_ids))
    ids, units, terms, ages, vectors, feats = [], [], [], [], [], []
    for pid, unit, term, band, vector, features in session.execute(query):
        if band not in AGE_BANDS or any(n not in (features or {}) for n in feature_names):
            continue
        ids.append(pid)
        units.append(unit)
        terms.append(term)
        ages.append(age_band_midpoint(band))
        vectors.append(np.frombuffer(vector, dtype="<f4"))
        feats.append([float(features[n]) for n in feature_names])
    return StoredPhotos(
        photo_ids=np.array(ids, dtype=object),
        embeddings=np.stack(vectors) if vectors else np.zeros((0, 0), np.float32),
        features=np.array(feats, np.float64).reshape(len(ids), len(feature_names)),
        units=np.array(units, dtype=object),
        terms=np.array(terms, dtype=object),
        ages=np.array(ages, np.float64),
        backbone_version=version or "",
    )


def latest_crossfit_model(backbone_version: str | None = None) -> dict | None:
    """Metadata (model.json, with ``path``) of the newest registered model trained from uploads
    with unit-fold heads, of ``backbone_version`` when given; None when there is none."""
    for meta in list_models():
        if meta.get("data", {}).get("source") != "uploads":
            continue
        if backbone_version and meta.get("backbone_version") != backbone_version:
            continue
        if (Path(meta["path"]) / CROSSFIT_DIR / CROSSFIT_FILE).is_file():
            return meta
    return None


def train_from_uploads(
    session: Session,
    *,
    k: int = DEFAULT_FOLDS,
    seed: int = 0,
    candidates: tuple[str, ...] = CANDIDATES,
    log: Callable[[str], None] | None = None,
) -> str:
    """Fit the drawing-age model on every stored photo with its age band (grouped by unit), and
    its ``k`` unit-fold heads; register it (files and database row) and return its version.

    Uses the stored embeddings (no image is decoded). Raises ValueError when the photos cannot
    support it (no embeddings, fewer than :data:`MIN_UNITS` units, one age band only)."""
    settings = get_settings()
    photos = stored_photos(session, FEATURE_NAMES)
    n = len(photos.ages)
    if n == 0:
        raise ValueError(
            "no processed photo with a stored embedding; upload photos and let the worker "
            "process them first"
        )
    if np.ptp(photos.ages) < 0.5:
        raise ValueError(
            "every stored photo is of one age band; a drawing-age model needs two bands or more"
        )
    X = stage_inputs(photos.embeddings, photos.features)
    nf = photos.features.shape[1]
    cf = fit_crossfit(
        X,
        photos.ages,
        photos.units,
        n_features=nf,
        k=k,
        seed=seed,
        candidates=candidates,
        log=log,
    )
    m = cf.metrics
    if log:
        log(
            f"cross-fitted over {m['k']} unit-folds ({m['n_units']} units, {m['n']} photos): "
            f"Spearman with the band midpoint {m['spearman']:.3f}; gap–age r "
            f"{m['gap_age_r_raw']:.2f} raw, {m['gap_age_r_corrected']:.2f} corrected"
        )
    described = Described(
        photos.embeddings,
        photos.features,
        None,
        photos.units,
        photos.backbone_version,
        photos.ages,
    )
    data = {
        "description": "stored uploads, age-band midpoints as ages (grouped by unit)",
        "n": n,
        "n_units": m["n_units"],
        "source": "uploads",
        "labels": ["age_band"],
    }
    model, _ = fit_and_register(
        described,
        data=data,
        seed=seed,
        session=session,
        backbone=photos.backbone_version.split("@")[0] or settings.backbone,
        extra_metrics={"crossfit": m},
        extra_params={"crossfit_folds": m["k"]},
        age_candidates=candidates,
        log=log,
    )
    assert model.folder is not None
    cf.save(model.folder)
    return model.version
