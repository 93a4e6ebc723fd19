"""A small synthetic municipality and its profiles, built once for the profile tests."""

from __future__ import annotations

import pytest

from profiles.profile import build_profiles, fit_context_models
from profiles.synthetic import make_synthetic


@pytest.fixture(scope="session")
def synthetic():
    return make_synthetic(n_units=80, n_terms=4, n_boot=400, seed=3)


@pytest.fixture(scope="session")
def models(synthetic):
    return fit_context_models(synthetic.progression, synthetic.ability, synthetic.context)


@pytest.fixture(scope="session")
def profiles(synthetic, models):
    return build_profiles(
        synthetic.progression, synthetic.ability, synthetic.context, models=models
    )
