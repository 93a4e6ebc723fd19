"""The stage head given the drawing age: compared by nested grouped CV, kept only when it helps."""

from __future__ import annotations

import json

import numpy as np
import pytest

from core.config import get_settings
from training.train import Described, fit_and_register
from vision.model import StageModel, stage_inputs


def _simulated(n: int, seed: int, *, informative_age: bool):
    """Drawings whose embedding carries a child's developmental level weakly among 200 noise
    dimensions; researchers' stages are that level, coarsely and noisily; ages follow it closely
    (or, with ``informative_age`` false, are pure noise)."""
    rng = np.random.default_rng(seed)
    level = rng.uniform(0, 5, n)
    stages = np.clip(np.floor(level + rng.normal(0, 1.3, n)), 0, 4).astype(int)
    ages = 2 + 1.2 * level + rng.normal(0, 0.3, n) if informative_age else rng.uniform(2, 8, n)
    direction = np.random.default_rng(7).normal(0, 1, 200)
    emb = rng.normal(0, 1, (n, 200)) + 0.12 * level[:, None] * direction[None, :]
    feats = level[:, None] * np.array([0.3, 0.15]) + rng.normal(0, 1, (n, 2))
    groups = np.arange(n) // 4
    return Described(emb, feats, stages, groups, "sim@test", ages)


@pytest.fixture
def models_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(tmp_path / "models"))
    get_settings.cache_clear()
    yield tmp_path / "models"
    get_settings.cache_clear()


def _train(described: Described) -> tuple[StageModel, dict, str]:
    model, _ = fit_and_register(
        described, data={"source": "simulated"}, seed=0, age_candidates=("ridge",)
    )
    assert model.folder is not None
    meta = json.loads((model.folder / "model.json").read_text())
    return model, meta, (model.folder / "card.md").read_text()


def test_informative_ages_give_an_informed_stage_head_that_scores_the_same_after_loading(
    models_dir,
):
    described = _simulated(160, 0, informative_age=True)
    model, meta, card = _train(described)
    record = meta["metrics"]["stage_with_age"]
    assert record["kept"] and model.stage_uses_age and meta["stage_uses_age"]
    assert record["qwk_with"] >= record["qwk_without"]
    assert record["mae_with"] < record["mae_without"]
    assert record["mae_gain"] > 2 * record["mae_gain_se"]
    assert record["n"] == 160 and record["groups"] == 40 and record["folds"] == 5
    # the card's headline figures are the informed head's nested out-of-fold ones
    assert meta["metrics"]["qwk"] == pytest.approx(record["qwk_with"])
    assert "## Stage head given the drawing age" in card and "n = 160 drawings" in card
    assert f"{record['qwk_with']:.3f}" in card and "Kept" in card
    # served: the stage head reads the age head's raw drawing age as its last input
    X = stage_inputs(described.embeddings, described.features)
    assert model.head is not None and model.age_head is not None
    assert model.head.n_features_in_ == X.shape[1] + 1
    expected = model.head.predict_proba(np.column_stack([X, model.age_head.predict(X)]))
    scores = model.score_described(described.embeddings, described.features)
    assert np.allclose(scores.probs, expected)
    loaded = StageModel.load(model.folder)  # type: ignore[arg-type]
    assert loaded.stage_uses_age
    again = loaded.score_described(described.embeddings, described.features)
    assert np.allclose(again.probs, scores.probs) and np.allclose(again.expected, scores.expected)


def test_ages_that_are_noise_leave_the_plain_stage_head(models_dir):
    described = _simulated(160, 0, informative_age=False)
    model, meta, card = _train(described)
    record = meta["metrics"]["stage_with_age"]
    assert not record["kept"] and not model.stage_uses_age
    assert record["n"] == 160 and "qwk_with" in record and "qwk_without" in record
    assert meta["metrics"]["qwk"] == pytest.approx(record["qwk_without"])
    assert "Not kept" in card
    X = stage_inputs(described.embeddings, described.features)
    assert model.head is not None and model.head.n_features_in_ == X.shape[1]
    loaded = StageModel.load(model.folder)  # type: ignore[arg-type]
    assert not loaded.stage_uses_age
    assert np.allclose(
        loaded.score_described(described.embeddings, described.features).probs,
        model.head.predict_proba(X),
    )


def test_too_few_groups_to_cross_fit_the_age_skip_the_comparison_with_a_reason():
    from training.age import fit_age_head
    from training.fit import fit_stage_head
    from training.stage_age import compare_stage_with_age

    d = _simulated(40, 1, informative_age=True)
    X = stage_inputs(d.embeddings, d.features)
    groups = np.arange(40) % 2  # two children: each training fold holds one
    assert d.stages is not None and d.ages is not None
    plain = fit_stage_head(X, d.stages, groups, l2_grid=(1.0,))
    ages = fit_age_head(X, d.ages, groups, n_features=2, candidates=("ridge",))
    result = compare_stage_with_age(X, d.stages, d.ages, groups, plain, ages, n_features=2)
    assert not result.kept and result.fit is None
    assert "label drawings of more children" in result.metrics["skipped"]
    assert result.metrics["groups"] == 2
