"""Units as a random facet: empirical-Bayes spread, shrinkage toward the term mean, posterior SDs,
consistency with unit_abilities, and fixed effects where too few units could estimate a spread."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
import pytest

from assessment.model import ManyFacetPCM, ModelFitWarning
from assessment.synthetic import SyntheticTruth, simulate_design, simulate_ratings
from assessment.units import unit_abilities


def _fit(ratings: pd.DataFrame, **kwargs: object) -> ManyFacetPCM:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        return ManyFacetPCM(**kwargs).fit(ratings)  # type: ignore[arg-type]


@pytest.fixture(scope="module")
def unequal() -> tuple[pd.DataFrame, SyntheticTruth, ManyFacetPCM, ManyFacetPCM]:
    """Design (b) with 4-40 sheets per unit (units of very different size), both fits."""
    ratings, truth = simulate_design("shared", n_units=24, sheets_per_unit=40, seed=5)
    rng = np.random.default_rng(5)
    keep_n = dict(zip(sorted(truth.unit_effect), rng.integers(4, 41, 24), strict=True))
    sheets = ratings.drop_duplicates("sheet_id")
    sheets = sheets.assign(k=sheets.groupby("unit").cumcount())
    keep = sheets.loc[sheets["k"] < sheets["unit"].map(keep_n), "sheet_id"]
    ratings = ratings[ratings["sheet_id"].isin(set(keep))].reset_index(drop=True)
    return ratings, truth, _fit(ratings), _fit(ratings, random_units=False)


def _whole_units(model: ManyFacetPCM) -> pd.DataFrame:
    units = unit_abilities(model.sheet_table().drop(columns="area"), min_sheets=1)
    return pd.DataFrame(
        {
            "unit": [u.unit for u in units],
            "ability": [u.ability for u in units],
            "se": [u.se for u in units],
            "n": [u.n_sheets for u in units],
        }
    )


def test_spread_is_estimated_and_unit_figures_are_the_shrunken_means(
    unequal: tuple[pd.DataFrame, SyntheticTruth, ManyFacetPCM, ManyFacetPCM],
) -> None:
    _, _, random, fixed = unequal
    assert random.converged_ and fixed.converged_
    assert random.unit_prior_sd_ is not None and 0.4 <= random.unit_prior_sd_ <= 1.3  # true 0.8
    assert fixed.unit_prior_sd_ is None
    table = random.unit_table()
    units = _whole_units(random).set_index("unit").loc[table["unit"]]
    # For a whole unit and term unit_abilities gives exactly the model's unit mean and SE.
    np.testing.assert_allclose(units["ability"], table["ability"], atol=2e-3)
    np.testing.assert_allclose(units["se"], table["se"], rtol=1e-6)
    sheets = random.sheet_table()
    regular = sheets[~sheets["calibration"]]
    np.testing.assert_allclose(regular["unit_prior_prec"], 1.0 / random.unit_prior_sd_**2)
    assert sheets.loc[sheets["calibration"], "unit_mean"].isna().all()


def test_small_units_are_shrunk_most_and_estimates_get_closer_to_the_truth(
    unequal: tuple[pd.DataFrame, SyntheticTruth, ManyFacetPCM, ManyFacetPCM],
) -> None:
    _, truth, random, fixed = unequal
    r, f = random.unit_table(), fixed.unit_table()
    prior = random.unit_prior_mean_
    # Shrinkage factor toward the term mean, per unit: smaller units move further.
    factor = (r["ability"] - prior) / (f["ability"] - prior)
    # (per unit the severities move too, so only the pattern is checked)
    assert factor.median() < 0.95
    n = r["n_sheets"].to_numpy()
    assert np.corrcoef(n, factor)[0, 1] > 0.5
    # Posterior SDs are narrower than the fixed-effect SEs, most so for small units.
    assert (r["se"] < f["se"]).all()
    assert np.corrcoef(n, r["se"] / f["se"])[0, 1] > 0.5
    # Borrowing strength: smaller squared error against the truth (both centred, same scale).
    effect = np.array([truth.unit_effect[u] for u in r["unit"]])

    def sq_error(est: pd.Series) -> float:
        return float((((est - est.mean()) - (effect - effect.mean())) ** 2).sum())

    assert sq_error(r["ability"]) < sq_error(f["ability"])


def test_few_units_keep_fixed_effects_and_a_given_spread_is_used() -> None:
    ratings, _ = simulate_ratings(n_units=6, n_sheets=120, n_cases=2, n_raters=4, seed=42)
    few = _fit(ratings)
    assert few.unit_prior_sd_ is None and few.unit_prior_prec_ == 0
    assert (few.sheet_table()["unit_prior_prec"].dropna() == 0).all()
    given = _fit(ratings, unit_prior_sd=0.5)
    assert given.unit_prior_sd_ == pytest.approx(0.5)
    assert given.unit_mean_.std() < few.unit_mean_.std()
    with pytest.raises(ValueError, match="prior SDs"):
        ManyFacetPCM(unit_prior_sd=0.0).fit(ratings)


def test_units_shrink_toward_their_own_term_mean() -> None:
    ratings, _ = simulate_design("shared", n_units=12, sheets_per_unit=20, seed=9)
    later = ratings.assign(
        sheet_id=ratings["sheet_id"].astype(str) + "-ht",
        term="2026-HT",
        level=np.minimum(ratings["level"] + 1, 3),
    )
    model = _fit(pd.concat([ratings, later], ignore_index=True))
    assert model.unit_prior_sd_ is not None
    terms = np.array([g[1] for g in model.groups_])
    prior = pd.Series(model.unit_prior_mean_).groupby(terms).agg(["min", "max"])
    assert (prior["max"] - prior["min"] < 1e-9).all()  # one prior mean per term
    assert prior.loc["2026-HT", "min"] > prior.loc["2026-VT", "min"] + 0.5
