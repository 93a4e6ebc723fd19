"""Which photos get labelled next: uncertainty, diversity, hybrid, random."""

from __future__ import annotations

import numpy as np
import pytest

from annotation.selection import (
    Strategy,
    k_center_greedy,
    select_for_labelling,
    stage_uncertainty,
)

PEAKED = [0.96, 0.01, 0.01, 0.01, 0.01]
FLAT = [0.2, 0.2, 0.2, 0.2, 0.2]


def softmaxish(rng: np.random.Generator, n: int, sharpness: float) -> np.ndarray:
    logits = rng.normal(0, sharpness, (n, 5))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def confident(rng: np.random.Generator, n: int) -> np.ndarray:
    """Distributions with 0.9 on one random stage: stage std at most about 0.83."""
    probs = np.full((n, 5), 0.025)
    probs[np.arange(n), rng.integers(0, 5, n)] = 0.9
    return probs


def clustered(rng: np.random.Generator, n_clusters: int, per_cluster: int, d: int = 16):
    centres = np.eye(d)[:n_clusters] * 10.0
    points = np.repeat(centres, per_cluster, axis=0) + rng.normal(
        0, 0.3, (n_clusters * per_cluster, d)
    )
    labels = np.repeat(np.arange(n_clusters), per_cluster)
    return points, labels


def test_uncertainty_is_the_stage_standard_deviation() -> None:
    probs = np.array([PEAKED, FLAT, [0.5, 0, 0, 0, 0.5], [0, 0, 0.5, 0.5, 0]])
    np.testing.assert_allclose(
        stage_uncertainty(probs),
        [np.sqrt(0.04 * 0 + 0.01 * (1 + 4 + 9 + 16) - 0.1**2), np.sqrt(2), 2.0, 0.5],
    )


def test_uncertainty_picks_the_flattest_distributions() -> None:
    rng = np.random.default_rng(0)
    probs = confident(rng, 50)
    flat_rows = [7, 23, 41]
    probs[flat_rows] = FLAT
    ids = [f"photo-{i}" for i in range(50)]
    picked = select_for_labelling(ids, probs, rng.normal(size=(50, 8)), 3, "uncertainty")
    assert sorted(picked) == sorted(ids[i] for i in flat_rows)


def test_uncertainty_prefers_distant_confusion_over_adjacent() -> None:
    probs = np.array([[0, 0, 0.5, 0.5, 0], [0.5, 0, 0, 0, 0.5], PEAKED])
    assert select_for_labelling(["adjacent", "distant", "sure"], probs, np.eye(3), 1) == ["distant"]


def test_k_center_picks_one_from_each_separated_cluster() -> None:
    rng = np.random.default_rng(1)
    points, labels = clustered(rng, n_clusters=6, per_cluster=30)
    ids = list(range(len(points)))
    probs = np.tile(FLAT, (len(points), 1))
    picked = select_for_labelling(ids, probs, points, 6, "diverse")
    assert sorted(labels[picked]) == list(range(6))


def test_k_center_counts_already_labelled_photos_as_covered() -> None:
    rng = np.random.default_rng(2)
    points, labels = clustered(rng, n_clusters=4, per_cluster=20)
    ids = list(range(len(points)))
    probs = np.tile(FLAT, (len(points), 1))
    labelled = [i for i in ids if labels[i] in (0, 1)][:3] + [int(np.flatnonzero(labels == 1)[0])]
    picked = select_for_labelling(ids, probs, points, 2, "diverse", already_labelled=labelled)
    assert sorted(labels[picked]) == [2, 3]
    assert not set(picked) & set(labelled)


def test_k_center_greedy_is_farthest_point_on_a_line() -> None:
    unit = np.array([[1.0, 0.0], [0.0, 1.0], [np.sqrt(0.5), np.sqrt(0.5)], [-1.0, 0.0]])
    picked = k_center_greedy(unit, np.arange(4), centers=np.array([0]), n=2)
    assert picked.tolist() == [3, 1]


def test_hybrid_covers_clusters_among_the_uncertain() -> None:
    rng = np.random.default_rng(3)
    points, labels = clustered(rng, n_clusters=4, per_cluster=25)
    probs = confident(rng, len(points))
    # Cluster 0 is wholly uncertain; in the other clusters a few photos are.
    uncertain = list(np.flatnonzero(labels == 0)) + [
        int(np.flatnonzero(labels == c)[0]) for c in (1, 2, 3)
    ]
    probs[uncertain] = FLAT
    ids = [f"p{i}" for i in range(len(points))]
    picked = select_for_labelling(ids, probs, points, 4, "hybrid", pool_factor=7)
    rows = [ids.index(p) for p in picked]
    assert sorted(labels[rows]) == [0, 1, 2, 3]
    assert all(np.allclose(probs[r], FLAT) for r in rows)
    # Pure uncertainty would spend most of the batch on cluster 0.
    unc = [ids.index(p) for p in select_for_labelling(ids, probs, points, 4, "uncertainty")]
    assert (labels[unc] == 0).sum() >= 3


@pytest.mark.parametrize("strategy", ["uncertainty", "diverse", "hybrid", "random"])
def test_deterministic_excludes_labelled_and_caps_at_pool(strategy: Strategy) -> None:
    rng = np.random.default_rng(4)
    probs, emb = softmaxish(rng, 30, 2.0), rng.normal(size=(30, 8))
    ids = [f"photo-{i}" for i in range(30)]
    labelled = ids[:10]
    first = select_for_labelling(ids, probs, emb, 8, strategy, already_labelled=labelled, seed=5)
    again = select_for_labelling(ids, probs, emb, 8, strategy, already_labelled=labelled, seed=5)
    assert first == again
    assert len(first) == 8 == len(set(first))
    assert not set(first) & set(labelled)
    everything = select_for_labelling(ids, probs, emb, 100, strategy, already_labelled=labelled)
    assert sorted(everything) == sorted(ids[10:])
    assert select_for_labelling(ids, probs, emb, 0, strategy) == []
    assert select_for_labelling(ids, probs, emb, 5, strategy, already_labelled=ids) == []


def test_random_depends_on_seed() -> None:
    rng = np.random.default_rng(5)
    probs, emb = softmaxish(rng, 200, 2.0), rng.normal(size=(200, 4))
    ids = list(range(200))
    a = select_for_labelling(ids, probs, emb, 10, "random", seed=1)
    b = select_for_labelling(ids, probs, emb, 10, "random", seed=2)
    assert a != b


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"stage_probs": np.full((3, 5), 0.5)}, "sums to"),
        ({"stage_probs": np.full((3, 4), 0.25)}, "expected \\(3, 5\\)"),
        ({"embeddings": np.ones((2, 4))}, "embeddings have shape"),
        ({"embeddings": np.full((3, 4), np.nan)}, "non-finite"),
        ({"ids": ["a", "a", "b"]}, "duplicates"),
        ({"n": -1}, "0 or more"),
        ({"strategy": "smart"}, "not one of"),
    ],
)
def test_bad_input_is_refused(kwargs: dict, message: str) -> None:
    args: dict = {
        "ids": ["a", "b", "c"],
        "stage_probs": np.tile(FLAT, (3, 1)),
        "embeddings": np.ones((3, 4)),
        "n": 2,
        "strategy": "uncertainty",
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=message):
        select_for_labelling(**args)


def test_selection_scales_linearly_enough() -> None:
    rng = np.random.default_rng(6)
    n = 20_000
    probs, emb = softmaxish(rng, n, 2.0), rng.normal(size=(n, 64)).astype(np.float32)
    picked = select_for_labelling(list(range(n)), probs, emb, 200, "diverse")
    assert len(set(picked)) == 200
