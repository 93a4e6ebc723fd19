"""A servable stage model: the backbone it expects, the drawing features, and the ordinal head.

``StageModel.score(images)`` runs the whole path for decoded, processed images; ``score_described``
scores stored embeddings and features without decoding anything again (used when a newly promoted
model re-scores every stored photo).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from core.config import get_settings
from vision.embed import create_embedder
from vision.features import FEATURE_NAMES, drawing_features
from vision.stages import DrawingAgeHead, OrdinalStageHead
from vision.threads import map_per_core

HEAD_FILE = "head.npz"
META_FILE = "model.json"
#: A fine-tuned backbone's weights (timm naming, safetensors), kept in the model's own folder.
BACKBONE_FILE = "backbone.safetensors"


def drawing_features_batch(images: list[np.ndarray], *, parallel: bool = True) -> np.ndarray:
    """Drawing features (``vision.features``) for a batch, shape (n, len(FEATURE_NAMES)).

    ``parallel``: spread the images over one thread per core (``vision.threads.map_per_core``);
    off where the caller already runs one task per core (the Ray engine's CPU tasks).
    """
    if not images:
        return np.zeros((0, len(FEATURE_NAMES)), dtype=np.float32)
    rows = map_per_core(drawing_features, images) if parallel else map(drawing_features, images)
    return np.stack(list(rows)).astype(np.float32)


def stage_inputs(embeddings: np.ndarray, features: np.ndarray) -> np.ndarray:
    """The head's input: L2-normalised embedding next to the drawing features."""
    emb = np.asarray(embeddings, dtype=np.float64)
    norm = np.linalg.norm(emb, axis=1, keepdims=True)
    return np.concatenate([emb / np.maximum(norm, 1e-12), np.asarray(features, np.float64)], axis=1)


@dataclass
class StageScores:
    probs: np.ndarray  # (n, 5)
    expected: np.ndarray  # (n,)
    top: np.ndarray  # (n,)


@dataclass
class DrawingAge:
    """Drawing ages (years) of n drawings: ``raw`` always; with the children's actual ages,
    ``corrected`` (regression to the mean removed) and ``gap`` = corrected - actual."""

    raw: np.ndarray  # (n,)
    corrected: np.ndarray | None = None
    gap: np.ndarray | None = None


@dataclass
class StageModel:
    """A registered stage model loaded from its folder.

    ``head`` is the ordinal stage head (None for a model trained on ages alone); ``age_head`` the
    drawing-age head (None for models trained on stages alone, and for models older than it). With
    ``stage_uses_age`` the stage head reads the drawing age as one more input."""

    version: str
    backbone: str  # registry name of the backbone
    backbone_version: str  # name@weights-sha the embeddings must come from
    feature_names: tuple[str, ...]
    head: OrdinalStageHead | None
    #: The model's folder when loaded from one (where a fine-tuned backbone's weights live).
    folder: Path | None = None
    age_head: DrawingAgeHead | None = None
    stage_uses_age: bool = False

    @property
    def fine_tuned(self) -> bool:
        """True when the model carries its own fine-tuned backbone weights."""
        return self.folder is not None and (self.folder / BACKBONE_FILE).is_file()

    def backbone_weights(self) -> Path | None:
        """The weights file the embeddings must come from: the model's own fine-tuned backbone,
        else the configured one (``SPIRA_BACKBONE_WEIGHTS``; None for the bundled weights)."""
        if self.fine_tuned:
            assert self.folder is not None
            return self.folder / BACKBONE_FILE

        return get_settings().backbone_weights

    @classmethod
    def load(cls, folder: Path) -> StageModel:
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{folder} is not a stage model folder (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        head = None
        if (folder / HEAD_FILE).is_file():
            head, _ = OrdinalStageHead.load(folder / HEAD_FILE)
        return cls(
            version=meta["version"],
            backbone=meta["backbone"],
            backbone_version=meta["backbone_version"],
            feature_names=tuple(meta["feature_names"]),
            head=head,
            folder=folder,
            age_head=DrawingAgeHead.load(folder),  # None for models without one (older ones)
            stage_uses_age=bool(meta.get("stage_uses_age", False)),
        )

    def save(self, folder: Path, extra: dict | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        if self.head is not None:
            self.head.save(folder / HEAD_FILE, version=self.version)
        if self.age_head is not None:
            self.age_head.save(folder)
        meta = {
            "version": self.version,
            "backbone": self.backbone,
            "backbone_version": self.backbone_version,
            "feature_names": list(self.feature_names),
            "stage_head": self.head is not None,
            "age_head": None if self.age_head is None else self.age_head.kind,
            "stage_uses_age": self.stage_uses_age,
            **(extra or {}),
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))

    def score_described(self, embeddings: np.ndarray, features: np.ndarray) -> StageScores:
        """Score stored embeddings (n, d) and features (n, f).

        Raises ValueError for a model without a stage head (trained on ages alone)."""
        if self.head is None:
            raise ValueError(
                f"model {self.version} has no stage head (it was trained on ages alone); "
                "it gives drawing ages only (predict_drawing_age)"
            )
        X = stage_inputs(embeddings, features)
        if self.stage_uses_age:
            assert self.age_head is not None
            X = np.concatenate([X, self.age_head.predict(X)[:, None]], axis=1)
        probs = self.head.predict_proba(X)
        return StageScores(
            probs=probs, expected=probs @ np.arange(probs.shape[1]), top=probs.argmax(1)
        )

    @property
    def has_stage_head(self) -> bool:
        return self.head is not None

    def predict_drawing_age(
        self,
        embeddings: np.ndarray,
        features: np.ndarray,
        actual_age: np.ndarray | None = None,
    ) -> DrawingAge:
        """Drawing ages of stored embeddings (n, d) and features (n, f).

        ``actual_age`` (years, (n,); e.g. the midpoint of each photo's age band): also return the
        bias-corrected drawing age and the gap (corrected - actual), uncorrelated with age. Raises
        ValueError when the model has no age head (trained on stages alone, or older)."""
        if self.age_head is None:
            raise ValueError(
                f"model {self.version} has no drawing-age head; train one with ages "
                "(`spira train --csv` with an age column, or `--synthetic`)"
            )
        raw = self.age_head.predict(stage_inputs(embeddings, features))
        if actual_age is None:
            return DrawingAge(raw=raw)
        age = np.asarray(actual_age, np.float64)
        corrected = self.age_head.corrected(raw, age)
        return DrawingAge(raw=raw, corrected=corrected, gap=corrected - age)

    def embedder(self, **options):
        """The embedder whose embeddings this head was trained on (``options`` go to
        :func:`vision.embed.create_embedder`, e.g. ``runtime``). Raises RuntimeError when the
        configured backbone's weights are not those."""
        emb = create_embedder(self.backbone, weights=self.backbone_weights(), **options)
        if emb.version != self.backbone_version:
            raise RuntimeError(
                f"stage model {self.version} was trained on {self.backbone_version} embeddings but the "
                f"configured backbone gives {emb.version}; set SPIRA_BACKBONE/SPIRA_BACKBONE_WEIGHTS"
            )
        return emb

    def score(self, images: list[np.ndarray]) -> StageScores:
        """Score processed RGB images end to end (embedding, features, head)."""
        emb = self.embedder().embed(images)
        return self.score_described(emb, drawing_features_batch(images))
