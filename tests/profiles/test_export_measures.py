"""Measures and their follow-up in the profile export (issue 19), on the synthetic municipality
whose unit ``weak_unit`` has a planted drop in ``weak_area`` in its latest term."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from profiles.export import export_profiles, profiles_table, read_profiles_export


def _measures(synthetic) -> pd.DataFrame:
    before_drop = synthetic.terms[-2]  # the measure starts the term before the planted drop
    other = next(u for u in sorted(set(synthetic.context["unit"])) if u != synthetic.weak_unit)
    return pd.DataFrame(
        [
            (7, synthetic.weak_unit, synthetic.weak_area, "=Räkna i leken", before_drop),
            (9, other, "progression", "Teckna och berätta", synthetic.terms[0]),
        ],
        columns=["id", "unit", "area", "title", "start_term"],
    )


def test_follow_up_of_a_planted_change_appears_in_the_export(tmp_path, synthetic, profiles):
    measures = _measures(synthetic)
    mine = [p for p in profiles if p.unit in set(measures["unit"])]
    table = profiles_table(mine, measures)
    rows = table[(table["unit"] == synthetic.weak_unit) & (table["outcome"] == synthetic.weak_area)]
    by_term = rows.set_index("term")
    first, baseline, start, drop = synthetic.terms[0], *synthetic.terms[-3:]
    # before the measure starts: none; from its start term on: counted; follow-up from the next
    assert by_term.loc[baseline, "measure_count"] == 0
    assert by_term.loc[start, "measure_count"] == 1
    assert by_term.loc[start, "measure_titles"] == "=Räkna i leken"
    assert pd.isna(by_term.loc[start, "followup_observed_change"])
    after = by_term.loc[drop]
    assert after["measure_ids"] == "7" and after["followup_measure_id"] == 7
    assert after["followup_baseline_term"] == baseline
    change = after["followup_observed_change"]
    # the planted drop (about -1.1 logits), against the unit's own figures of the two terms
    assert change == pytest.approx(after["observed"] - by_term.loc[baseline, "observed"])
    assert change < -0.5 and after["followup_observed_hi"] < 0 < after["followup_n"]
    assert after["followup_observed_lo"] < change < after["followup_observed_hi"]
    assert after["followup_residual_change"] < 0 and after["followup_suppressed"] == False  # noqa: E712
    # another area of the same unit, and another unit's measure, do not leak into these rows
    assert (
        table[(table["unit"] == synthetic.weak_unit) & (table["outcome"] != synthetic.weak_area)][
            "measure_count"
        ]
        == 0
    ).all()
    other = table[table["unit"] == measures.loc[1, "unit"]]
    assert set(other[other["measure_count"] > 0]["outcome"]) == {"progression"}
    assert (
        other[(other["term"] == first) & (other["outcome"] == "progression")]["followup_measure_id"]
        .isna()
        .all()
    )

    for fmt in ("csv", "xlsx"):
        path = tmp_path / f"export.{fmt}"
        export_profiles(mine, path, format=fmt, measures=measures)
        back = read_profiles_export(path)
        row = back[
            (back["unit"] == synthetic.weak_unit)
            & (back["term"] == drop)
            & (back["outcome"] == synthetic.weak_area)
        ].iloc[0]
        assert row["followup_observed_change"] == pytest.approx(change)
        assert row["measure_titles"] == "'=Räkna i leken"  # a formula is written as text


def test_export_refuses_a_measures_frame_without_its_columns(profiles):
    with pytest.raises(ValueError, match="measures lack column"):
        profiles_table(profiles[:1], pd.DataFrame({"unit": ["x"]}))


def test_follow_up_intervals_are_95_percent_whatever_the_profile_level(synthetic, profiles):
    """The profile's intervals are at its level (90 %); the follow-up's are 95 %: the standard
    errors read from the profile must be those of the profile's level."""
    from statistics import NormalDist

    from profiles.measures import area_figures, follow_up

    unit = synthetic.weak_unit
    mine = {p.term: p for p in profiles if p.unit == unit}
    first, second = synthetic.terms[0], synthetic.terms[1]
    assert mine[first].level == 0.9
    z90, z95 = NormalDist().inv_cdf(0.95), NormalDist().inv_cdf(0.975)

    def se(p):
        return (p.progression.index_hi - p.progression.index_lo) / (2 * z90)

    row = next(
        r for r in follow_up(first, area_figures(mine, "progression"), 5) if r.term == second
    )
    assert row.baseline_term == first and not row.suppressed
    half = (row.observed_hi - row.observed_lo) / 2
    assert half == pytest.approx(z95 * np.hypot(se(mine[first]), se(mine[second])))
    e = {
        t: next(x for x in mine[t].expected if x.outcome == "progression") for t in (first, second)
    }
    res_se = [(e[t].residual_hi - e[t].residual_lo) / (2 * z90) for t in (first, second)]
    assert (row.residual_hi - row.residual_lo) / 2 == pytest.approx(z95 * np.hypot(*res_se))
