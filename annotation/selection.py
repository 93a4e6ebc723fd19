"""Choosing which photos researchers label next.

Four strategies, all deterministic for a given ``seed``:

- ``uncertainty``: the photos whose stage the model is least sure of. Stages are ordered, so
  uncertainty is the standard deviation of the predicted stage distribution (in stages), not its
  entropy: entropy rates "stage 0 or 4?" and "stage 2 or 3?" the same, but confusing 0 with 4
  costs sixteen times as much under quadratic weighted kappa, the measure Spira reports. The
  variance is exactly the expected quadratic loss of predicting the mean stage.
- ``diverse``: k-center greedy on L2-normalised embeddings: each pick is the photo farthest
  from every photo already labelled or picked, so the batch covers the kinds of drawings.
- ``hybrid``: k-center greedy restricted to the most uncertain photos (a pool of
  ``pool_factor × n``): uncertain, and not n near-copies of the same uncertain drawing.
- ``random``: a seeded uniform sample, the baseline the others must beat.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from typing import Literal, TypeVar

import numpy as np

from core.domain import N_STAGES

Strategy = Literal["uncertainty", "diverse", "hybrid", "random"]
STRATEGIES: tuple[str, ...] = ("uncertainty", "diverse", "hybrid", "random")

PhotoId = TypeVar("PhotoId", bound=Hashable)


def stage_uncertainty(stage_probs: np.ndarray) -> np.ndarray:
    """Standard deviation of the predicted stage for each photo, in stages (n,).

    0 for a certain prediction; √2 ≈ 1.41 for a uniform distribution over five stages; 2 for
    an even split between stages 0 and 4.
    """
    probs = np.asarray(stage_probs, dtype=float)
    stages = np.arange(probs.shape[1], dtype=float)
    mean = probs @ stages
    variance = probs @ stages**2 - mean**2
    return np.sqrt(np.clip(variance, 0.0, None))


def _normalise(embeddings: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(embeddings, axis=1, keepdims=True)
    return embeddings / np.maximum(norms, 1e-12)


def k_center_greedy(
    embeddings: np.ndarray,
    candidates: np.ndarray,
    centers: np.ndarray,
    n: int,
) -> np.ndarray:
    """Greedy k-center: pick ``n`` of ``candidates`` (row indices) far from ``centers`` and each other.

    ``embeddings`` must be L2-normalised (distances are then 2 − 2·cosine). Without initial
    centers the first pick is the candidate nearest the candidates' mean direction (a typical
    drawing rather than an outlier). O(len(candidates) · n · d) time, O(len(candidates)) memory.
    Returns the picked row indices in pick order.
    """
    if n <= 0 or len(candidates) == 0:
        return np.zeros(0, dtype=int)
    pool = embeddings[candidates]
    min_dist = np.full(len(candidates), np.inf)
    if len(centers):
        # Chunked so memory stays O(len(candidates)) even with many labelled photos.
        for start in range(0, len(centers), 1024):
            block = embeddings[centers[start : start + 1024]]
            dist = 2.0 - 2.0 * pool @ block.T
            min_dist = np.minimum(min_dist, dist.min(axis=1))
        first = int(np.argmax(min_dist))
    else:
        first = int(np.argmax(pool @ pool.mean(axis=0)))
    picked = [first]
    min_dist = np.minimum(min_dist, 2.0 - 2.0 * pool @ pool[first])
    min_dist[first] = -np.inf
    for _ in range(min(n, len(candidates)) - 1):
        nxt = int(np.argmax(min_dist))
        picked.append(nxt)
        min_dist = np.minimum(min_dist, 2.0 - 2.0 * pool @ pool[nxt])
        min_dist[nxt] = -np.inf
    return candidates[np.asarray(picked, dtype=int)]


def select_for_labelling(
    ids: Sequence[PhotoId],
    stage_probs: np.ndarray,
    embeddings: np.ndarray,
    n: int,
    strategy: Strategy = "uncertainty",
    *,
    already_labelled: Iterable[PhotoId] = (),
    seed: int = 0,
    pool_factor: int = 5,
) -> list[PhotoId]:
    """The ``n`` photos to label next, best first.

    ``ids`` (n_photos,) name the rows of ``stage_probs`` (n_photos × 5, rows summing to 1) and
    ``embeddings`` (n_photos × d). Photos in ``already_labelled`` are never picked; those that
    are in ``ids`` count as covered for the diversity strategies. When fewer than ``n`` photos
    are left, all of them are returned. ``pool_factor`` sizes the uncertain pool of ``hybrid``.

    Raises ValueError naming the problem for mismatched shapes, duplicate ids, probabilities
    that are not distributions, non-finite embeddings, a negative ``n`` or an unknown strategy;
    nothing is selected then.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy {strategy!r} is not one of {', '.join(STRATEGIES)}")
    if n < 0:
        raise ValueError(f"n must be 0 or more, got {n}")
    if pool_factor < 1:
        raise ValueError(f"pool_factor must be at least 1, got {pool_factor}")
    id_list = list(ids)
    if len(set(id_list)) != len(id_list):
        raise ValueError("ids contain duplicates; each photo must appear once")
    probs = np.asarray(stage_probs, dtype=float)
    emb = np.asarray(embeddings, dtype=float)
    if probs.ndim != 2 or probs.shape != (len(id_list), N_STAGES):
        raise ValueError(
            f"stage_probs has shape {probs.shape}, expected ({len(id_list)}, {N_STAGES})"
        )
    if emb.ndim != 2 or emb.shape[0] != len(id_list):
        raise ValueError(f"embeddings have shape {emb.shape}, expected ({len(id_list)}, d)")
    if not np.isfinite(probs).all() or (probs < 0).any():
        raise ValueError("stage_probs contain negative or non-finite values")
    if len(probs) and not np.allclose(probs.sum(axis=1), 1.0, atol=1e-3):
        bad = int(np.argmax(np.abs(probs.sum(axis=1) - 1.0)))
        raise ValueError(f"stage_probs row for {id_list[bad]!r} sums to {probs[bad].sum():.4f}")
    if not np.isfinite(emb).all():
        raise ValueError("embeddings contain non-finite values")

    labelled = set(already_labelled)
    is_labelled = np.array([i in labelled for i in id_list], dtype=bool)
    candidates = np.flatnonzero(~is_labelled)
    centers = np.flatnonzero(is_labelled)
    k = min(n, len(candidates))
    if k == 0:
        return []

    if strategy == "random":
        rng = np.random.default_rng(seed)
        chosen = rng.choice(candidates, size=k, replace=False)
    else:
        uncertainty = stage_uncertainty(probs[candidates])
        # Stable order: most uncertain first, ties by position in ids.
        by_uncertainty = candidates[np.argsort(-uncertainty, kind="stable")]
        if strategy == "uncertainty":
            chosen = by_uncertainty[:k]
        else:
            unit = _normalise(emb)
            pool = candidates if strategy == "diverse" else by_uncertainty[: k * pool_factor]
            chosen = k_center_greedy(unit, pool, centers, k)
    return [id_list[int(i)] for i in chosen]
