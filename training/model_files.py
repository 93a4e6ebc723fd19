"""The models directory on disk: which version is promoted and loading a version's files.

A folder per version under ``models_dir()`` holds what serving loads (``head.npz``,
``model.json``, a fine-tuned backbone's weights); the file ``PROMOTED`` names the version in
service. This module reads them without a database, so ``spira stages`` scores files without
importing one; :mod:`training.registry` writes them and keeps the database rows in step.
"""

from __future__ import annotations

import json
from pathlib import Path

from core.config import get_settings
from vision.model import StageModel

PROMOTED_FILE = "PROMOTED"


def models_dir() -> Path:
    return get_settings().models_path


def list_models() -> list[dict]:
    """Every model folder's metadata (newest first), with ``promoted`` set."""
    root = models_dir()
    promoted = promoted_version_from_files()
    out = []
    for meta_path in root.glob("*/model.json") if root.exists() else []:
        meta = json.loads(meta_path.read_text())
        meta["promoted"] = meta["version"] == promoted
        meta["path"] = str(meta_path.parent)
        out.append(meta)
    return sorted(out, key=lambda m: m.get("created_at", ""), reverse=True)


def promoted_version_from_files() -> str | None:
    path = models_dir() / PROMOTED_FILE
    return path.read_text().strip() or None if path.exists() else None


def load_model(version: str | None = None) -> StageModel:
    """Load ``version`` (default: the promoted one). Raises FileNotFoundError saying what to do."""
    version = version or promoted_version_from_files()
    if not version:
        raise FileNotFoundError(
            f"no stage model is promoted in {models_dir()}; run `spira train --synthetic` "
            "(or train on real labels) and `spira models promote VERSION`"
        )
    folder = models_dir() / version
    if not folder.exists():
        known = ", ".join(m["version"] for m in list_models()) or "none"
        raise FileNotFoundError(f"model {version} not found in {models_dir()}; known: {known}")
    return StageModel.load(folder)
