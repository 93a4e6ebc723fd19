"""Fine-tuning the backbone (``spira train --fine-tune``): training, registry, parity, serving."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from typer.testing import CliRunner

from cli.main import app
from tests.photos import queue_photos
from training.finetune import augment, holdout_split


def test_holdout_keeps_groups_whole_and_every_stage_on_both_sides():
    stages = np.repeat(np.arange(5), 8)
    groups = np.arange(40) // 2  # pairs of images share a group
    train, held = holdout_split(groups, stages, 0.25, seed=3)
    assert not (train & held).any() and (train | held).all()
    assert not set(groups[train]) & set(groups[held])
    assert set(stages[held]) == set(stages[train]) == set(range(5))
    assert 0.15 < held.mean() < 0.35
    train, held = holdout_split(groups, stages, 0.0, seed=3)
    assert train.all() and not held.any()


def test_augment_varies_a_drawing_but_keeps_it_a_drawing():
    from vision.synthetic import render_drawing

    drawing = render_drawing(3, np.random.default_rng(0), size=320)
    a = augment(drawing, np.random.default_rng(1))
    b = augment(drawing, np.random.default_rng(2))
    assert a.dtype == np.uint8 and a.ndim == 3 and a.shape[2] == 3
    assert a.shape != b.shape or not np.array_equal(a, b)
    assert np.array_equal(a, augment(drawing, np.random.default_rng(1)))  # seeded
    # still mostly paper with some ink: corners filled with paper colour, not black
    grey = a.mean(axis=2)
    assert np.median(grey) > 150 and (grey < 120).mean() > 0.002


def test_timm_named_weights_without_classifier_load_by_name(tmp_path):
    from safetensors.torch import save_file

    from vision.embed import load_backbone

    model, _, _ = load_backbone("efficientnet_lite0")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    path = tmp_path / "tuned.safetensors"
    save_file(state, str(path))
    again, _, sha = load_backbone("efficientnet_lite0", path)
    for key, tensor in again.state_dict().items():
        assert np.array_equal(tensor.numpy(), state[key].numpy()), key
    with pytest.raises(ValueError, match="no classifier"):
        load_backbone("efficientnet_lite0", path, with_classifier=True)


@pytest.fixture(scope="module")
def fine_tuned(tmp_path_factory):
    """One fine-tuned model (60 synthetic drawings, 1 epoch on the CPU), trained through the CLI
    into its own models folder; returns (models folder, version, the command's output)."""
    from core.config import get_settings
    from core.db import dispose_engines

    root = tmp_path_factory.mktemp("finetune")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPIRA_VAR_DIR", str(root / "var"))
    mp.setenv("SPIRA_MODELS_DIR", str(root / "models"))
    mp.delenv("SPIRA_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(
            app,
            ["train", "--synthetic", "--n", "60", "--seed", "4", "--fine-tune", "--epochs", "1"]
            + ["--device", "cpu"],
        )
    finally:
        dispose_engines()
        mp.undo()
        get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    return root / "models", result.stdout.strip().splitlines()[-1], result.output


def test_fine_tuned_model_is_registered_with_its_backbone_and_honest_figures(fine_tuned):
    from vision.embed import create_embedder
    from vision.model import BACKBONE_FILE, StageModel

    models, version, output = fine_tuned
    folder = models / version
    assert (folder / BACKBONE_FILE).is_file()
    meta = json.loads((folder / "model.json").read_text())
    assert meta["fine_tuned"] is True
    assert meta["params"]["fine_tune"]["epochs"] == 1
    assert meta["params"]["fine_tune"]["device"] == "cpu"
    metrics = meta["metrics"]
    # the backbone was tuned on the training groups; the held-out groups are scored apart, next
    # to the frozen backbone on the very same split
    held, frozen = metrics["holdout"], metrics["holdout_frozen_backbone"]
    assert held["n"] == frozen["n"] and 5 <= held["n"] < 60
    assert -1 <= held["qwk"] <= 1 and held["mae"] >= 0
    assert metrics["cpu_runtime_parity"] >= 0.999
    assert "held-out groups" in output and "CPU runtime parity" in output
    card = (folder / "card.md").read_text()
    assert "Fine-tuned backbone: held-out groups" in card and "| n | " in card
    # the weights did change: the model names a backbone version other than the bundled one
    model = StageModel.load(folder)
    assert model.fine_tuned
    bundled = create_embedder("efficientnet_lite0", device="cpu")
    assert model.backbone_version != bundled.version
    assert model.backbone_version.startswith("efficientnet_lite0@")


def test_fine_tuned_model_scores_files_on_the_cpu_runtime(fine_tuned, tmp_path, monkeypatch):
    from core.config import get_settings
    from vision.synthetic import make_photo

    models, version, _ = fine_tuned
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(models))
    get_settings.cache_clear()
    for stage in (0, 4):
        (tmp_path / f"d{stage}.jpg").write_bytes(make_photo(stage, 300 + stage, megapixels=0.3))
    result = CliRunner().invoke(app, ["stages", str(tmp_path), "--jsonl", "--model", version])
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 2 and all(line["model"] == version for line in lines)
    # each of the five probabilities is printed rounded to 6 decimals (off by up to 5e-7 each)
    assert all(abs(sum(line["stage_probs"]) - 1) < 3e-6 for line in lines)


def test_promoting_a_fine_tuned_model_embeds_stored_photos_once(
    spira_env, trained_model, shared_models, fine_tuned
):
    from sqlalchemy import func, select

    from core.models import Embedding, StageEstimate
    from core.storage import get_store
    from training.model_files import load_model
    from training.registry import promote
    from vision.worker import drain

    models, version, _ = fine_tuned
    # the fine-tuned model joins this test's registry (a copy: the module's stays untouched)
    shutil.copytree(models / version, shared_models / version, dirs_exist_ok=True)
    factory = queue_photos(
        "Öknen", [(k + 1, 90 + k) for k in range(3)], megapixels=0.3, age_band="4-5"
    )
    drain(factory, get_store(), load_model(trained_model))
    tuned = load_model(version)
    try:
        with factory() as s:
            assert promote(version, session=s) == 3
            s.commit()
        with factory() as s:
            versions = dict(
                s.execute(
                    select(Embedding.model_version, func.count()).group_by(Embedding.model_version)
                ).all()
            )
            assert versions[tuned.backbone_version] == 3  # embedded with the tuned backbone
            assert len(versions) == 2  # next to the bundled backbone's, which stay
            estimates = s.scalar(select(func.count()).where(StageEstimate.model_version == version))
            assert estimates == 3
        with factory() as s:  # promoting again embeds nothing twice
            promote(version, session=s)
            s.commit()
            n = s.scalar(
                select(func.count()).where(Embedding.model_version == tuned.backbone_version)
            )
            assert n == 3
    finally:
        with factory() as s:  # the session's other tests expect the shared model in service
            promote(trained_model, session=s)
            s.commit()


def test_a_broken_cpu_export_refuses_promotion(fine_tuned, tmp_path, monkeypatch):
    import vision.embed as embed
    from core.config import get_settings
    from training.registry import promote

    models, version, _ = fine_tuned
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(tmp_path))
    get_settings.cache_clear()
    shutil.copytree(models / version, tmp_path / version)

    # the serving runtime's embeddings come out permuted: what a broken export would give

    original = embed.Embedder.embed

    def skewed(self, images):
        out = original(self, images)
        return out if self.runtime == "torch" else out[:, ::-1].copy()

    monkeypatch.setattr(embed.Embedder, "embed", skewed)
    with pytest.raises(RuntimeError, match="do not serve"):
        promote(version)
    assert not (tmp_path / "PROMOTED").exists()
    get_settings.cache_clear()
