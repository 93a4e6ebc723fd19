"""Agreement figures checked against the krippendorff package and scikit-learn."""

from __future__ import annotations

import itertools

import krippendorff
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import cohen_kappa_score

from core.domain import N_STAGES
from training.agreement import (
    TOO_FEW,
    UNDEFINED_NO_VARIATION,
    compute_agreement,
    consensus_of_others,
    krippendorff_alpha_ordinal,
)
from training.metrics import quadratic_weighted_kappa, stage_metrics

STAGE_RANGE = list(range(N_STAGES))


def long_table(matrix: np.ndarray) -> pd.DataFrame:
    """Annotators × items matrix (NaN = not labelled) -> long table of labels."""
    rows = [
        {"item": f"photo-{j:03d}", "annotator": f"rater-{i}", "stage": matrix[i, j]}
        for i, j in itertools.product(range(matrix.shape[0]), range(matrix.shape[1]))
        if not np.isnan(matrix[i, j])
    ]
    return pd.DataFrame(rows)


def noisy_raters(rng: np.random.Generator, n_raters: int, n_items: int, missing: float):
    truth = rng.integers(0, N_STAGES, n_items)
    noise = rng.integers(-1, 2, (n_raters, n_items)) * (rng.random((n_raters, n_items)) < 0.4)
    matrix = np.clip(truth + noise, 0, N_STAGES - 1).astype(float)
    matrix[rng.random(matrix.shape) < missing] = np.nan
    return matrix


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("missing", [0.0, 0.3])
def test_alpha_matches_krippendorff_package(seed: int, missing: float) -> None:
    rng = np.random.default_rng(seed)
    matrix = noisy_raters(rng, n_raters=4, n_items=40, missing=missing)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    alpha, n_items, n_values = krippendorff_alpha_ordinal(matrix)
    assert alpha == pytest.approx(expected, abs=1e-10)
    pairable = (~np.isnan(matrix)).sum(axis=0) >= 2
    assert n_items == int(pairable.sum())
    assert n_values == int((~np.isnan(matrix[:, pairable])).sum())

    report = compute_agreement(long_table(matrix), n_bootstrap=0)
    assert report.krippendorff_alpha.value == pytest.approx(expected, abs=1e-10)
    assert report.krippendorff_alpha.n_items == n_items


def test_alpha_on_uniformly_random_labels_is_near_zero_and_matches() -> None:
    rng = np.random.default_rng(7)
    matrix = rng.integers(0, N_STAGES, (3, 300)).astype(float)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    alpha, _, _ = krippendorff_alpha_ordinal(matrix)
    assert alpha == pytest.approx(expected, abs=1e-10)
    assert abs(alpha) < 0.1


def test_alpha_with_gaps_in_the_stages_used_matches() -> None:
    # Only stages 0, 2 and 4 occur: unobserved stages must not change the ordinal distances.
    matrix = np.array([[0, 2, 4, 4, 2, 0, 2], [0, 2, 4, 2, 2, 0, 4], [2, 2, 4, 4, np.nan, 0, 4]])
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert krippendorff_alpha_ordinal(matrix)[0] == pytest.approx(expected, abs=1e-10)


@pytest.mark.parametrize("seed", range(5))
def test_pairwise_kappa_matches_sklearn(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    matrix = noisy_raters(rng, n_raters=3, n_items=60, missing=0.2)
    report = compute_agreement(long_table(matrix), n_bootstrap=0)
    assert len(report.pairs) == 3
    for pair in report.pairs:
        i, j = int(pair.annotator_a[-1]), int(pair.annotator_b[-1])
        both = ~np.isnan(matrix[i]) & ~np.isnan(matrix[j])
        a, b = matrix[i, both].astype(int), matrix[j, both].astype(int)
        expected = cohen_kappa_score(a, b, weights="quadratic", labels=STAGE_RANGE)
        assert pair.quadratic_weighted_kappa.value == pytest.approx(expected, abs=1e-10)
        assert pair.n_items == int(both.sum()) == pair.quadratic_weighted_kappa.n_items
        conf = np.array(pair.confusion)
        assert conf.sum() == pair.n_items
        assert np.trace(conf) / pair.n_items == pytest.approx(np.mean(a == b))
        assert conf[a[0], b[0]] >= 1


def test_kappa_uses_stage_numbers_not_ranks() -> None:
    # Only stages 0, 1 and 4 occur: confusing 1 with 4 is three stages apart, not one rank.
    a = np.array([0, 1, 4, 4, 1, 0])
    b = np.array([0, 4, 4, 1, 1, 0])
    on_scale = cohen_kappa_score(a, b, weights="quadratic", labels=STAGE_RANGE)
    by_rank = cohen_kappa_score(a, b, weights="quadratic")
    assert quadratic_weighted_kappa(a, b) == pytest.approx(on_scale)
    assert quadratic_weighted_kappa(a, b) == pytest.approx(25 / 52)
    assert by_rank == pytest.approx(0.75)


def test_model_cards_and_annotators_share_one_kappa() -> None:
    # stage_metrics (model cards) scores the predicted top stage with the same QWK as annotators.
    rng = np.random.default_rng(3)
    y = rng.integers(0, N_STAGES, 200)
    probs = rng.dirichlet(np.ones(N_STAGES), 200)
    probs[np.arange(200), y] += 0.5
    top = probs.argmax(axis=1)
    metrics = stage_metrics(probs, y)
    expected = cohen_kappa_score(y, top, weights="quadratic", labels=STAGE_RANGE)
    assert metrics["qwk"] == pytest.approx(expected, abs=1e-12)
    assert metrics["qwk"] == pytest.approx(quadratic_weighted_kappa(y, top), abs=1e-12)
    assert metrics["confusion"] == [
        [int(((y == i) & (top == j)).sum()) for j in range(N_STAGES)] for i in range(N_STAGES)
    ]


def test_perfect_agreement_gives_one_everywhere() -> None:
    stages = np.array([0, 1, 2, 3, 4, 2, 3, 1])
    matrix = np.vstack([stages, stages, stages]).astype(float)
    report = compute_agreement(long_table(matrix), n_bootstrap=200)
    assert report.krippendorff_alpha.value == pytest.approx(1.0)
    assert all(p.quadratic_weighted_kappa.value == pytest.approx(1.0) for p in report.pairs)
    assert all(p.exact_agreement.value == 1.0 for p in report.pairs)
    for row in report.versus_consensus:
        assert row.quadratic_weighted_kappa.value == pytest.approx(1.0)
        assert row.mean_absolute_difference.value == 0.0
        assert row.n_items == len(stages)
    assert report.krippendorff_alpha.low == pytest.approx(1.0)


def test_constant_labels_are_undefined_not_a_number() -> None:
    matrix = np.full((2, 10), 2.0)
    with pytest.raises(ValueError):  # the reference package refuses too
        krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    report = compute_agreement(long_table(matrix))
    assert report.krippendorff_alpha.value is None
    assert report.krippendorff_alpha.status == UNDEFINED_NO_VARIATION
    assert report.krippendorff_alpha.n_items == 10
    pair = report.pairs[0]
    assert pair.quadratic_weighted_kappa.value is None
    assert pair.exact_agreement.value == 1.0
    assert any("undefined" in note for note in report.notes)


def test_one_constant_rater_against_a_varying_one_matches_sklearn() -> None:
    a = np.array([2, 2, 2, 2, 2, 2])
    b = np.array([1, 2, 3, 2, 1, 3])
    report = compute_agreement(long_table(np.vstack([a, b]).astype(float)), n_bootstrap=0)
    expected = cohen_kappa_score(a, b, weights="quadratic", labels=STAGE_RANGE)
    assert report.pairs[0].quadratic_weighted_kappa.value == pytest.approx(expected)


def test_few_items_are_suppressed_not_dropped() -> None:
    matrix = np.array([[0, 1, 2, np.nan, np.nan], [0, 1, 3, 4, np.nan], [np.nan, np.nan, 2, 4, 1]])
    report = compute_agreement(long_table(matrix), min_items=5)
    assert report.krippendorff_alpha.status == TOO_FEW
    assert report.krippendorff_alpha.value is None
    assert report.krippendorff_alpha.n_items == 4  # item 4 has a single label
    assert [p.n_items for p in report.pairs] == [3, 1, 2]
    assert all(p.quadratic_weighted_kappa.status == TOO_FEW for p in report.pairs)
    shown = compute_agreement(long_table(matrix), min_items=1, n_bootstrap=0)
    expected = krippendorff.alpha(reliability_data=matrix, level_of_measurement="ordinal")
    assert shown.krippendorff_alpha.value == pytest.approx(expected)


def test_bootstrap_interval_brackets_the_estimate_and_is_seeded() -> None:
    matrix = noisy_raters(np.random.default_rng(3), n_raters=3, n_items=80, missing=0.1)
    first = compute_agreement(long_table(matrix), n_bootstrap=300, seed=1)
    again = compute_agreement(long_table(matrix), n_bootstrap=300, seed=1)
    alpha = first.krippendorff_alpha
    assert alpha.low is not None and alpha.high is not None and alpha.value is not None
    assert alpha.low < alpha.value < alpha.high
    assert alpha.high - alpha.low < 0.4
    assert first.to_dict() == again.to_dict()
    kappa = first.pairs[0].quadratic_weighted_kappa
    assert kappa.low is not None and kappa.high is not None
    assert kappa.low <= kappa.value <= kappa.high  # type: ignore[operator]


def test_versus_consensus_median_of_the_others() -> None:
    # rater-2 is one stage more lenient than raters 0 and 1, who agree with each other.
    truth = np.array([0, 1, 2, 3, 1, 2, 0, 3])
    matrix = np.vstack([truth, truth, np.clip(truth + 1, 0, 4)]).astype(float)
    report = compute_agreement(long_table(matrix), n_bootstrap=0, consensus="median")
    lenient = next(r for r in report.versus_consensus if r.annotator == "rater-2")
    assert lenient.mean_difference.value == pytest.approx(1.0)
    assert lenient.mean_absolute_difference.value == pytest.approx(1.0)
    assert lenient.exact_agreement.value == 0.0
    assert lenient.n_items == 8
    # rater-0's others are rater-1 (= truth) and rater-2 (truth + 1): median halfway, rounded
    # half to even.
    cons = consensus_of_others(matrix, 0, "median")
    np.testing.assert_array_equal(cons, np.rint(truth + 0.5))
    assert report.consensus_method == "median"


def test_majority_consensus_breaks_ties_toward_the_median() -> None:
    matrix = np.array([[2.0], [1.0], [1.0], [3.0], [3.0]])  # others of row 0: 1, 1, 3, 3
    assert consensus_of_others(matrix, 0, "majority")[0] == 1.0  # tie, equal distance: lower
    matrix = np.array([[0.0], [1.0], [1.0], [4.0]])
    assert consensus_of_others(matrix, 0, "majority")[0] == 1.0
    assert consensus_of_others(matrix, 3, "majority")[0] == 1.0


def test_to_dict_is_plain_and_complete() -> None:
    matrix = noisy_raters(np.random.default_rng(9), n_raters=2, n_items=20, missing=0.0)
    out = compute_agreement(long_table(matrix), n_bootstrap=50).to_dict()
    assert out["n_annotators"] == 2 and out["n_items"] == 20 and out["n_labels"] == 40
    assert set(out["krippendorff_alpha"]) == {"value", "n_items", "low", "high", "status"}
    assert out["pairs"][0]["confusion"] and isinstance(out["pairs"][0]["confusion"][0], list)
    assert out["versus_consensus"][0]["n_items"] == 20


def test_custom_column_names_and_rows_input() -> None:
    rows = [{"photo": "a", "rater": "x", "label": 1}, {"photo": "a", "rater": "y", "label": 2}]
    report = compute_agreement(
        rows, item="photo", annotator="rater", stage="label", min_items=1, n_bootstrap=0
    )
    assert report.annotators == ["x", "y"] and report.pairs[0].n_items == 1


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"item": "a", "annotator": "x", "stage": 5}], "whole number 0–4"),
        ([{"item": "a", "annotator": "x", "stage": 1.5}], "whole number 0–4"),
        ([{"item": "a", "annotator": "x", "stage": "two"}], "whole number 0–4"),
        ([{"item": "a", "rater": "x", "stage": 1}], "lack column"),
        (
            [
                {"item": "a", "annotator": "x", "stage": 1},
                {"item": "a", "annotator": "x", "stage": 2},
            ],
            "same item twice",
        ),
    ],
)
def test_bad_labels_are_refused_with_a_clear_error(rows: list[dict], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        compute_agreement(rows)


def test_missing_stage_rows_are_ignored_and_single_rater_is_noted() -> None:
    rows = [
        {"item": "a", "annotator": "x", "stage": 1},
        {"item": "b", "annotator": "y", "stage": None},
    ]
    report = compute_agreement(rows)
    assert report.n_labels == 1 and report.n_annotators == 1 and report.pairs == []
    assert any("fewer than two annotators" in note for note in report.notes)
