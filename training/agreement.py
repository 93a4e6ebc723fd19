"""Agreement between raters who labelled photos with progression stages.

Open-source Label Studio does not compute agreement, so Spira does. From a long table of labels
(one row per item × annotator, the stage 0–4 the annotator gave) :func:`compute_agreement` returns

- pairwise quadratic weighted kappa (QWK) for every pair of annotators, with its confusion matrix,
- Krippendorff's alpha with the ordinal metric over all annotators (missing labels allowed),
- each annotator against the consensus of the *other* annotators,

every figure with the number of items behind it and a bootstrap 95 % interval over items. Figures
resting on fewer than ``min_items`` items are suppressed ("too few to show"), never dropped.

Kappa is :mod:`training.metrics`'s (one implementation for model cards and annotators): its weights
use the stage numbers themselves (0–4), not the ranks of the stages that happen to be present, so a
pair that only used stages 0, 2 and 4 is still scored on the 0–4 scale.

It lives in ``training`` (below ``annotation``) because both use it: a model card states the human
agreement ceiling (:mod:`training.labels`) and ``spira annotate agreement`` reports it
(:mod:`annotation.store`); see docs/architecture.md for the layers.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd

from core.domain import MIN_GROUP_SIZE, N_STAGES
from training.metrics import confusion_matrix, qwk_from_confusions

TOO_FEW = "too few to show"
UNDEFINED_NO_VARIATION = "undefined: no variation in the labels"

ConsensusMethod = Literal["median", "majority"]


@dataclass(frozen=True)
class Figure:
    """One agreement figure with its uncertainty and the number of items behind it.

    ``value`` is ``None`` when the figure is suppressed (fewer than ``min_items`` items) or
    undefined (no variation: chance disagreement is zero); ``status`` says which.
    ``low``/``high`` bound a percentile bootstrap 95 % interval over items (``None`` when the
    bootstrap was switched off or the value is missing).
    """

    value: float | None
    n_items: int
    low: float | None = None
    high: float | None = None
    status: str = "ok"


@dataclass(frozen=True)
class PairAgreement:
    """Agreement of two annotators on the items both labelled.

    ``confusion[i][j]`` counts items that ``annotator_a`` gave stage ``i`` and ``annotator_b``
    gave stage ``j``. ``exact_agreement`` is the share of items with the same stage (0–1).
    """

    annotator_a: str
    annotator_b: str
    n_items: int
    quadratic_weighted_kappa: Figure
    exact_agreement: Figure
    confusion: list[list[int]]


@dataclass(frozen=True)
class AnnotatorVsConsensus:
    """One annotator against the consensus of the others on the items they share.

    ``mean_difference`` is annotator minus consensus in stages (positive: the annotator places
    drawings higher than the others do); ``mean_absolute_difference`` is in stages too.
    """

    annotator: str
    n_items: int
    quadratic_weighted_kappa: Figure
    exact_agreement: Figure
    mean_absolute_difference: Figure
    mean_difference: Figure
    confusion: list[list[int]]


@dataclass(frozen=True)
class AgreementReport:
    """Everything :func:`compute_agreement` measured, with the counts behind it."""

    n_stages: int
    n_labels: int
    n_items: int
    n_annotators: int
    annotators: list[str]
    #: Items with at least two labels: the only ones that carry information about agreement.
    n_items_multiply_labelled: int
    krippendorff_alpha: Figure
    #: Pairable values behind alpha (labels on items with at least two labels).
    alpha_n_values: int
    pairs: list[PairAgreement]
    versus_consensus: list[AnnotatorVsConsensus]
    consensus_method: str
    min_items: int
    n_bootstrap: int
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dictionary (nested dicts and lists, floats, ints, strings, None)."""
        return asdict(self)


# --------------------------------------------------------------------------------------------
# Input
# --------------------------------------------------------------------------------------------


def labels_frame(
    labels: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    item: str = "item",
    annotator: str = "annotator",
    stage: str = "stage",
    n_stages: int = N_STAGES,
) -> pd.DataFrame:
    """Validate a long table of labels and return it as columns ``item, annotator, stage``.

    ``item`` and ``annotator`` become strings, ``stage`` an int in ``0..n_stages-1``. Rows with a
    missing stage are dropped (a missing label is simply absent). Raises ValueError naming the
    problem for a missing column, a stage that is not a whole number in range, or an annotator who
    labelled the same item twice.
    """
    frame = labels.copy() if isinstance(labels, pd.DataFrame) else pd.DataFrame(list(labels))
    missing = [c for c in (item, annotator, stage) if c not in frame.columns]
    if missing and not frame.empty:
        raise ValueError(f"labels lack column(s) {', '.join(missing)}; have {list(frame.columns)}")
    if frame.empty:
        return pd.DataFrame({"item": [], "annotator": [], "stage": []}).astype(
            {"item": str, "annotator": str, "stage": int}
        )
    frame = frame[[item, annotator, stage]].rename(
        columns={item: "item", annotator: "annotator", stage: "stage"}
    )
    frame = frame[frame["stage"].notna()]
    stages = pd.to_numeric(frame["stage"], errors="coerce")
    bad = stages.isna() | (stages != np.floor(stages)) | (stages < 0) | (stages >= n_stages)
    if bad.any():
        examples = frame.loc[bad, "stage"].head(3).tolist()
        raise ValueError(
            f"{int(bad.sum())} label(s) have a stage that is not a whole number 0–{n_stages - 1}, "
            f"e.g. {examples}"
        )
    out = pd.DataFrame(
        {
            "item": frame["item"].astype(str).to_numpy(),
            "annotator": frame["annotator"].astype(str).to_numpy(),
            "stage": stages.astype(int).to_numpy(),
        }
    )
    dup = out.duplicated(["item", "annotator"], keep=False)
    if dup.any():
        pairs = out.loc[dup, ["item", "annotator"]].drop_duplicates().head(3)
        listed = ", ".join(f"{r.item}/{r.annotator}" for r in pairs.itertuples())
        raise ValueError(
            f"{int(dup.sum())} rows label the same item twice by the same annotator "
            f"(item/annotator: {listed}); keep one label per item and annotator"
        )
    return out


def reliability_matrix(frame: pd.DataFrame) -> tuple[np.ndarray, list[str], list[str]]:
    """Annotators × items matrix of stages (float, NaN where an annotator did not label).

    Returns the matrix, the annotator names (rows) and the item ids (columns), both sorted.
    """
    wide = frame.pivot(index="annotator", columns="item", values="stage").sort_index()
    wide = wide.reindex(sorted(wide.columns), axis=1)
    return (
        wide.to_numpy(dtype=float),
        [str(a) for a in wide.index],
        [str(i) for i in wide.columns],
    )


# --------------------------------------------------------------------------------------------
# Numerical core: arrays in, arrays out
# --------------------------------------------------------------------------------------------


def _stage_counts(matrix: np.ndarray, n_stages: int) -> np.ndarray:
    """Items × stages counts of how many annotators gave each stage to each item."""
    values = matrix.T  # items × annotators
    counts = np.zeros((values.shape[0], n_stages), dtype=float)
    rows, cols = np.nonzero(~np.isnan(values))
    np.add.at(counts, (rows, values[rows, cols].astype(int)), 1.0)
    return counts


def ordinal_distance(marginals: np.ndarray) -> np.ndarray:
    """Krippendorff's ordinal metric δ²(c, k) = (Σ_{g=c..k} n_g − (n_c + n_k)/2)² (stages × stages)."""
    cum = np.concatenate([[0.0], np.cumsum(marginals)])
    c = np.arange(len(marginals))
    lo, hi = np.minimum.outer(c, c), np.maximum.outer(c, c)
    between = cum[hi + 1] - cum[lo]
    return (between - (marginals[:, None] + marginals[None, :]) / 2.0) ** 2


def krippendorff_alpha_ordinal(
    matrix: np.ndarray, n_stages: int = N_STAGES
) -> tuple[float, int, int]:
    """Krippendorff's alpha (ordinal metric) from an annotators × items matrix with NaN gaps.

    Built on the coincidence matrix o_ck = Σ_u n_uc (n_uk − [c=k]) / (m_u − 1) over items u with
    m_u ≥ 2 labels; alpha = 1 − (n − 1) Σ o_ck δ²_ck / Σ n_c n_k δ²_ck.

    Returns (alpha, pairable items, pairable values); alpha is NaN when the expected
    disagreement is zero (a single stage used throughout) or nothing is pairable.
    """
    counts = _stage_counts(matrix, n_stages)
    m = counts.sum(axis=1)
    keep = m >= 2
    counts, m = counts[keep], m[keep]
    if len(m) == 0:
        return float("nan"), 0, 0
    scaled = counts / (m - 1.0)[:, None]
    coincidence = scaled.T @ counts - np.diag(scaled.sum(axis=0))
    marginals = coincidence.sum(axis=1)
    n = marginals.sum()
    delta = ordinal_distance(marginals)
    expected = (np.outer(marginals, marginals) * delta).sum()
    if expected <= 0 or n <= 1:
        return float("nan"), int(keep.sum()), int(m.sum())
    alpha = 1.0 - (n - 1.0) * (coincidence * delta).sum() / expected
    return float(alpha), int(keep.sum()), int(m.sum())


def _bootstrap_alpha(
    matrix: np.ndarray, n_stages: int, n_bootstrap: int, rng: np.random.Generator
) -> np.ndarray:
    """Alpha on ``n_bootstrap`` resamples of the pairable items (vectorised over resamples)."""
    counts = _stage_counts(matrix, n_stages)
    m = counts.sum(axis=1)
    counts, m = counts[m >= 2], m[m >= 2]
    n_items = len(m)
    # Multinomial item weights == resampling items with replacement.
    weights = rng.multinomial(n_items, np.full(n_items, 1.0 / n_items), size=n_bootstrap)
    per_item = np.einsum("uc,uk->uck", counts, counts) - np.einsum(
        "uc,ck->uck", counts, np.eye(n_stages)
    )
    per_item /= (m - 1.0)[:, None, None]
    coincidence = np.einsum("bu,uck->bck", weights.astype(float), per_item)
    marginals = coincidence.sum(axis=2)
    n = marginals.sum(axis=1)
    out = np.full(n_bootstrap, np.nan)
    for b in range(n_bootstrap):  # K×K algebra per resample; the heavy part is the einsum above
        delta = ordinal_distance(marginals[b])
        expected = (np.outer(marginals[b], marginals[b]) * delta).sum()
        if expected > 0:
            out[b] = 1.0 - (n[b] - 1.0) * (coincidence[b] * delta).sum() / expected
    return out


def _bootstrap_pair(
    a: np.ndarray, b: np.ndarray, n_stages: int, n_bootstrap: int, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    """Bootstrap resamples of QWK, exact agreement, mean |a−b| and mean a−b over shared items."""
    n = len(a)
    weights = rng.multinomial(n, np.full(n, 1.0 / n), size=n_bootstrap).astype(float)
    onehot = np.zeros((n, n_stages * n_stages))
    onehot[np.arange(n), a.astype(int) * n_stages + b.astype(int)] = 1.0
    confusions = (weights @ onehot).reshape(n_bootstrap, n_stages, n_stages)
    diff = a - b
    return {
        "kappa": qwk_from_confusions(confusions),
        "exact": weights @ (diff == 0) / n,
        "mad": weights @ np.abs(diff) / n,
        "md": weights @ diff / n,
    }


# --------------------------------------------------------------------------------------------
# Figures
# --------------------------------------------------------------------------------------------


def _figure(value: float, n_items: int, resamples: np.ndarray | None, min_items: int) -> Figure:
    if n_items < min_items:
        return Figure(value=None, n_items=n_items, status=TOO_FEW)
    if not np.isfinite(value):
        return Figure(value=None, n_items=n_items, status=UNDEFINED_NO_VARIATION)
    low = high = None
    if resamples is not None:
        finite = resamples[np.isfinite(resamples)]
        if len(finite):
            low, high = (float(x) for x in np.percentile(finite, [2.5, 97.5]))
    return Figure(value=float(value), n_items=n_items, low=low, high=high)


def _pair_figures(
    a: np.ndarray,
    b: np.ndarray,
    n_stages: int,
    min_items: int,
    n_bootstrap: int,
    rng: np.random.Generator,
) -> tuple[dict[str, Figure], np.ndarray]:
    n = len(a)
    conf = confusion_matrix(a, b, n_stages)
    point = {
        "kappa": float(qwk_from_confusions(conf)),
        "exact": float(np.mean(a == b)) if n else float("nan"),
        "mad": float(np.mean(np.abs(a - b))) if n else float("nan"),
        "md": float(np.mean(a - b)) if n else float("nan"),
    }
    boots: dict[str, np.ndarray] | None = None
    if n_bootstrap > 0 and n >= min_items and n > 0:
        boots = _bootstrap_pair(a, b, n_stages, n_bootstrap, rng)
    figures = {
        key: _figure(val, n, None if boots is None else boots[key], min_items)
        for key, val in point.items()
    }
    return figures, conf


def consensus_of_others(
    matrix: np.ndarray, row: int, method: ConsensusMethod, n_stages: int = N_STAGES
) -> np.ndarray:
    """Consensus stage per item from every annotator except ``row`` (NaN where nobody else labelled).

    ``median``: the median of the others' stages; a median halfway between two stages (even
    number of others) is rounded half to even, which favours neither direction across stages.
    ``majority``: the most frequent stage among the others; ties go to the stage nearest the
    others' median, then to the lower stage.
    """
    others = np.delete(matrix, row, axis=0)
    has_other = (~np.isnan(others)).any(axis=0)
    out = np.full(matrix.shape[1], np.nan)
    if not has_other.any():
        return out
    sub = others[:, has_other]
    med = np.nanmedian(sub, axis=0)
    if method == "median":
        out[has_other] = np.rint(med)
        return out
    if method != "majority":
        raise ValueError(f"consensus method {method!r} is not 'median' or 'majority'")
    counts = _stage_counts(sub, n_stages)
    stages = np.arange(n_stages)
    # Lexicographic preference: most votes, then nearest the median, then the lower stage.
    distance = np.abs(stages[None, :] - med[:, None])
    score = counts * 1e6 - distance * 1e3 - stages[None, :]
    score[counts == 0] = -np.inf
    out[has_other] = np.argmax(score, axis=1)
    return out


def compute_agreement(
    labels: pd.DataFrame | Iterable[Mapping[str, Any]],
    *,
    item: str = "item",
    annotator: str = "annotator",
    stage: str = "stage",
    n_stages: int = N_STAGES,
    consensus: ConsensusMethod = "median",
    min_items: int = MIN_GROUP_SIZE,
    n_bootstrap: int = 1000,
    seed: int = 0,
) -> AgreementReport:
    """Agreement between annotators from a long table of stage labels.

    ``labels``: a DataFrame or rows with columns ``item`` (photo or task id), ``annotator`` and
    ``stage`` (0..n_stages-1; missing stages are ignored). Column names can be renamed with the
    keyword arguments. ``consensus`` picks how the others' labels are combined for the
    annotator-vs-consensus figures (see :func:`consensus_of_others`). Figures on fewer than
    ``min_items`` items are suppressed; ``n_bootstrap`` item resamples (seeded) give the 95 %
    percentile intervals (0 switches them off).

    Returns an :class:`AgreementReport`. Raises ValueError for bad input (see :func:`labels_frame`).
    """
    if min_items < 1:
        raise ValueError(f"min_items must be at least 1, got {min_items}")
    if n_bootstrap < 0:
        raise ValueError(f"n_bootstrap must be 0 or more, got {n_bootstrap}")
    if consensus not in ("median", "majority"):
        raise ValueError(f"consensus {consensus!r} is not 'median' or 'majority'")
    frame = labels_frame(labels, item=item, annotator=annotator, stage=stage, n_stages=n_stages)
    rng = np.random.default_rng(seed)
    notes: list[str] = []
    names: list[str] = []
    if frame.empty:
        matrix = np.zeros((0, 0))
    else:
        matrix, names, _ = reliability_matrix(frame)

    n_per_item = (~np.isnan(matrix)).sum(axis=0) if matrix.size else np.zeros(0)
    alpha, alpha_items, alpha_values = (
        krippendorff_alpha_ordinal(matrix, n_stages) if matrix.size else (float("nan"), 0, 0)
    )
    alpha_boot = None
    if n_bootstrap > 0 and alpha_items >= min_items and np.isfinite(alpha):
        alpha_boot = _bootstrap_alpha(matrix, n_stages, n_bootstrap, rng)
    alpha_figure = _figure(alpha, alpha_items, alpha_boot, min_items)

    pairs: list[PairAgreement] = []
    for i, j in itertools.combinations(range(len(names)), 2):
        both = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
        a, b = matrix[i, both], matrix[j, both]
        figs, conf = _pair_figures(a, b, n_stages, min_items, n_bootstrap, rng)
        pairs.append(
            PairAgreement(
                annotator_a=names[i],
                annotator_b=names[j],
                n_items=int(both.sum()),
                quadratic_weighted_kappa=figs["kappa"],
                exact_agreement=figs["exact"],
                confusion=conf.tolist(),
            )
        )

    versus: list[AnnotatorVsConsensus] = []
    for i, name in enumerate(names):
        cons = consensus_of_others(matrix, i, consensus, n_stages)
        both = ~np.isnan(matrix[i]) & ~np.isnan(cons)
        a, b = matrix[i, both], cons[both]
        figs, conf = _pair_figures(a, b, n_stages, min_items, n_bootstrap, rng)
        versus.append(
            AnnotatorVsConsensus(
                annotator=name,
                n_items=int(both.sum()),
                quadratic_weighted_kappa=figs["kappa"],
                exact_agreement=figs["exact"],
                mean_absolute_difference=figs["mad"],
                mean_difference=figs["md"],
                confusion=conf.tolist(),
            )
        )

    if len(names) < 2:
        notes.append("fewer than two annotators: no agreement can be measured")
    if alpha_figure.status == UNDEFINED_NO_VARIATION:
        notes.append("every pairable label is the same stage: alpha and kappa are undefined")
    return AgreementReport(
        n_stages=n_stages,
        n_labels=len(frame),
        n_items=int(frame["item"].nunique()) if len(frame) else 0,
        n_annotators=len(names),
        annotators=names,
        n_items_multiply_labelled=int((n_per_item >= 2).sum()),
        krippendorff_alpha=alpha_figure,
        alpha_n_values=alpha_values,
        pairs=pairs,
        versus_consensus=versus,
        consensus_method=consensus,
        min_items=min_items,
        n_bootstrap=n_bootstrap,
        notes=notes,
    )
