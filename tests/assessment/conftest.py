"""Shared fixtures for the assessment tests: small seeded simulated designs."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import pytest

from assessment.ratings import RATING_COLUMNS
from assessment.synthetic import SyntheticTruth, simulate_ratings


@pytest.fixture(scope="session")
def recovery_data() -> tuple[pd.DataFrame, SyntheticTruth]:
    """40 units, 2 000 sheets, 8 cases x 3 items, 20 raters, two raters per sheet."""
    return simulate_ratings(n_units=40, n_sheets=2000, n_raters=20, raters_per_sheet=2, seed=11)


def _as_file_frame(ratings: pd.DataFrame) -> pd.DataFrame:
    frame = ratings[list(RATING_COLUMNS)].copy()
    frame["date"] = frame["date"].dt.strftime("%Y-%m-%d")
    return frame.astype(str)


@pytest.fixture(scope="session")
def as_file_frame() -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Turns simulated ratings into the nine file columns as text, as a spreadsheet holds them."""
    return _as_file_frame
