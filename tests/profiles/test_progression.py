import numpy as np
import pandas as pd
import pytest

from core.domain import EXPECTED_STAGE_BY_AGE_BAND
from profiles.progression import photo_expected_stage, progression_from_photos, stage_distribution


def _photos(n: int, unit: str = "Olympia", term: str = "2025-HT", band: str = "3-4", start=1.0):
    stages = start + 0.05 * np.arange(n)
    return pd.DataFrame({"unit": unit, "term": term, "age_band": band, "expected_stage": stages})


def test_index_is_mean_stage_minus_age_expectation_with_interval_around_it():
    photos = _photos(20)
    table = progression_from_photos(photos, n_boot=500, seed=1)
    row = table.iloc[0]
    assert row["n_photos"] == 20
    assert row["mean_stage"] == pytest.approx(photos["expected_stage"].mean())
    assert row["index"] == pytest.approx(
        photos["expected_stage"].mean() - EXPECTED_STAGE_BY_AGE_BAND["3-4"]
    )
    assert row["index_lo"] < row["index"] < row["index_hi"]
    # Bootstrap SE of a mean is about sd / sqrt(n); the 90 % width is about 3.3 of those.
    width = 3.29 * photos["expected_stage"].std(ddof=0) / np.sqrt(20)
    assert row["index_hi"] - row["index_lo"] == pytest.approx(width, rel=0.2)
    again = progression_from_photos(photos, n_boot=500, seed=1)
    assert again.iloc[0]["index_lo"] == row["index_lo"]


def test_bands_weigh_by_photos_and_resampling_stays_within_unit_term():
    photos = pd.concat(
        [
            _photos(10, band="1-2", start=0.5),
            _photos(30, band="5-6", start=2.0),
            _photos(8, unit="Dalhem", start=3.0),
        ]
    )
    table = progression_from_photos(photos, n_boot=300).set_index("unit")
    deviation = photos["expected_stage"] - photos["age_band"].map(EXPECTED_STAGE_BY_AGE_BAND)
    olympia = deviation[photos["unit"] == "Olympia"].mean()
    assert table.loc["Olympia", "index"] == pytest.approx(olympia)
    assert table.loc["Olympia", "n_photos"] == 40
    # Dalhem's interval lies within the range of Dalhem's own photos only.
    dalhem = deviation[photos["unit"] == "Dalhem"]
    assert (
        dalhem.min()
        <= table.loc["Dalhem", "index_lo"]
        <= table.loc["Dalhem", "index_hi"]
        <= dalhem.max()
    )
    by_band = progression_from_photos(photos, n_boot=100, by_age_band=True)
    assert set(by_band[by_band["unit"] == "Olympia"]["age_band"]) == {"1-2", "5-6"}


def test_suppressed_below_min_n_and_shown_at_min_n():
    photos = pd.concat([_photos(4, unit="A"), _photos(5, unit="B")])
    table = progression_from_photos(photos, min_n=5, n_boot=100).set_index("unit")
    assert bool(table.loc["A", "suppressed"]) and table.loc["A", "index"] is None
    assert table.loc["A", "index_lo"] is None and table.loc["A", "n_photos"] == 4
    assert not table.loc["B", "suppressed"] and table.loc["B", "index"] is not None


def test_rows_are_chronological_and_bad_input_is_named():
    photos = pd.concat(
        [_photos(6, term="2025-HT"), _photos(6, term="2025-VT"), _photos(6, term="2024-HT")]
    )
    assert list(progression_from_photos(photos, n_boot=50)["term"]) == [
        "2024-HT",
        "2025-VT",
        "2025-HT",
    ]
    with pytest.raises(ValueError, match="age band"):
        progression_from_photos(_photos(6, band="7-8"))
    with pytest.raises(ValueError, match="YYYY-VT"):
        progression_from_photos(_photos(6, term="2025-autumn"))
    with pytest.raises(ValueError, match="expected_stage"):
        progression_from_photos(_photos(6).drop(columns="expected_stage"))


def test_stage_distribution_shares_and_suppression():
    probs = [[1, 0, 0, 0, 0], [0, 0.5, 0.5, 0, 0]] * 3
    photos = pd.DataFrame({"unit": ["A"] * 6, "term": "2025-HT", "stage_probs": probs})
    small = pd.DataFrame({"unit": ["B"] * 2, "term": "2025-HT", "stage_probs": probs[:2]})
    table = stage_distribution(pd.concat([photos, small])).set_index("unit")
    assert table.loc["A", "share_stage_0"] == pytest.approx(0.5)
    assert table.loc["A", "share_stage_2"] == pytest.approx(0.25)
    assert table.loc["B", "suppressed"] and table.loc["B", "share_stage_0"] is None
    wide = pd.DataFrame(
        {"unit": "A", "term": "2025-HT", **{f"p{k}": np.eye(5)[k % 5] for k in range(5)}}
    )
    assert stage_distribution(wide, min_n=1).iloc[0]["n_photos"] == 5
    assert photo_expected_stage(np.array([[0, 0, 1, 0, 0], [0.5, 0, 0, 0, 0.5]])).tolist() == [
        2.0,
        2.0,
    ]
