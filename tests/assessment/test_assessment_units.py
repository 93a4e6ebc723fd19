"""Unit abilities: mean of sheets with sd/sqrt(n), suppression below the minimum, age adjustment."""

from __future__ import annotations

import numpy as np
import pandas as pd

from assessment.units import unit_abilities, unit_abilities_frame


def _sheets(unit: str, abilities: list[float], band: str = "3-4", case: str = "c1") -> pd.DataFrame:
    return pd.DataFrame(
        {"unit": unit, "term": "2026-HT", "case": case, "age_band": band, "ability": abilities}
    )


def test_mean_and_se_include_between_sheet_spread() -> None:
    values = [0.1, 0.5, -0.2, 1.3, 0.9, 0.4]
    (result,) = unit_abilities(_sheets("Dalhem", values), case_areas={"c1": "mathematics"})
    assert result.area == "mathematics" and result.n_sheets == 6 and not result.suppressed
    assert result.ability is not None and result.se is not None
    assert np.isclose(result.ability, np.mean(values))
    assert np.isclose(result.se, np.std(values, ddof=1) / np.sqrt(6))


def test_too_few_sheets_are_suppressed_not_dropped() -> None:
    frame = pd.concat([_sheets("Laröd", [0.2, 0.4, 0.1, 0.3]), _sheets("Öknen", [1.0] * 5)])
    results = {u.unit: u for u in unit_abilities(frame)}
    assert set(results) == {"Laröd", "Öknen"}
    small = results["Laröd"]
    assert small.suppressed and small.ability is None and small.se is None and small.n_sheets == 4
    assert not results["Öknen"].suppressed and results["Öknen"].area is None
    frame_out = unit_abilities_frame(list(results.values()))
    assert list(frame_out.columns[:4]) == ["unit", "area", "term", "ability"]


def test_terms_sort_chronologically() -> None:
    frame = pd.concat(
        [_sheets("Olympia", [0.0] * 5).assign(term=t) for t in ("2026-HT", "2026-VT", "2025-HT")]
    )
    assert [u.term for u in unit_abilities(frame)] == ["2025-HT", "2026-VT", "2026-HT"]


def test_age_band_adjustment_removes_age_composition() -> None:
    # Two units with the same children-for-their-age, one with older children.
    young = _sheets("Adolfsberg", [-1.0, -0.8, -1.2, -0.9, -1.1], band="2-3")
    old = _sheets("Wieselgren", [1.0, 1.2, 0.8, 1.1, 0.9], band="5-6")
    mixed = pd.concat(
        [
            _sheets("Maria Park", [-1.0, -0.9, -1.1], band="2-3"),
            _sheets("Maria Park", [1.0, 0.9, 1.1], band="5-6"),
        ]
    )
    frame = pd.concat([young, old, mixed])
    raw = {u.unit: float(u.ability or 0.0) for u in unit_abilities(frame)}
    assert raw["Wieselgren"] - raw["Adolfsberg"] > 1.5
    adjusted = {u.unit: u for u in unit_abilities(frame, adjust_for_age_band=True)}
    assert all(u.age_adjusted for u in adjusted.values())
    assert all(abs(u.ability) < 0.15 for u in adjusted.values())  # type: ignore[arg-type]
