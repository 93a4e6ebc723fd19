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

from vision.stages import OrdinalStageHead

HEAD_FILE = "head.npz"
META_FILE = "model.json"
#: A fine-tuned backbone's weights (timm naming, safetensors), kept in the model's own folder.
BACKBONE_FILE = "backbone.safetensors"


def drawing_features_batch(images: list[np.ndarray], *, parallel: bool = True) -> np.ndarray:
    """Drawing features (``vision.features``) for a batch, shape (n, len(FEATURE_NAMES)).

    ``parallel``: spread the images over one thread per core (``vision.threads.map_per_core``);
    off where the caller already runs one task per core (the Ray engine's CPU tasks).
    """
    from vision.features import FEATURE_NAMES, drawing_features
    from vision.threads import map_per_core

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
class StageModel:
    """A registered stage model loaded from its folder."""

    version: str
    backbone: str  # registry name of the backbone
    backbone_version: str  # name@weights-sha the embeddings must come from
    feature_names: tuple[str, ...]
    head: OrdinalStageHead
    #: The model's folder when loaded from one (where a fine-tuned backbone's weights live).
    folder: Path | None = None

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
        from core.config import get_settings

        return get_settings().backbone_weights

    @classmethod
    def load(cls, folder: Path) -> StageModel:
        folder = Path(folder)
        meta_path = folder / META_FILE
        if not meta_path.exists():
            raise FileNotFoundError(f"{folder} is not a stage model folder (no {META_FILE})")
        meta = json.loads(meta_path.read_text())
        head, _ = OrdinalStageHead.load(folder / HEAD_FILE)
        return cls(
            version=meta["version"],
            backbone=meta["backbone"],
            backbone_version=meta["backbone_version"],
            feature_names=tuple(meta["feature_names"]),
            head=head,
            folder=folder,
        )

    def save(self, folder: Path, extra: dict | None = None) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.head.save(folder / HEAD_FILE, version=self.version)
        meta = {
            "version": self.version,
            "backbone": self.backbone,
            "backbone_version": self.backbone_version,
            "feature_names": list(self.feature_names),
            **(extra or {}),
        }
        (folder / META_FILE).write_text(json.dumps(meta, indent=2, default=str))

    def score_described(self, embeddings: np.ndarray, features: np.ndarray) -> StageScores:
        """Score stored embeddings (n, d) and features (n, f)."""
        probs = self.head.predict_proba(stage_inputs(embeddings, features))
        return StageScores(
            probs=probs, expected=probs @ np.arange(probs.shape[1]), top=probs.argmax(1)
        )

    def embedder(self, **options):
        """The embedder whose embeddings this head was trained on (``options`` go to
        :func:`vision.embed.create_embedder`, e.g. ``runtime``). Raises RuntimeError when the
        configured backbone's weights are not those."""
        from vision.embed import create_embedder

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
