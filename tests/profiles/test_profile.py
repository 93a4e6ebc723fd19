import json

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from core.domain import CURRICULUM_AREAS
from profiles.profile import OUTCOMES, build_profiles


def _by_key(profiles):
    return {(p.unit, p.term): p for p in profiles}


def test_one_profile_per_unit_and_term_in_chronological_order(synthetic, profiles):
    assert len(profiles) == 80 * 4
    olympia = [p.term for p in profiles if p.unit == "Olympia"]
    assert olympia == synthetic.terms
    assert json.loads(json.dumps(profiles[0].to_dict()))["unit"] == profiles[0].unit


@pytest.mark.parametrize("term_index", [1, 3])
def test_progression_deviation_orders_units_by_their_true_effect(synthetic, profiles, term_index):
    term = synthetic.terms[term_index]
    pairs = [
        (p.unit, e.shrunk_residual)
        for p in profiles
        if p.term == term
        for e in p.expected
        if e.outcome == "progression" and e.shrunk_residual is not None
    ]
    assert len(pairs) >= 70
    rho = spearmanr([r for _, r in pairs], [synthetic.unit_effect[u] for u, _ in pairs])[0]
    assert rho >= 0.8


def test_planted_weak_area_is_flagged_first_in_its_unit(synthetic, profiles):
    weak = _by_key(profiles)[(synthetic.weak_unit, synthetic.weak_terms[-1])]
    assert weak.development_areas, "the planted weak area was not flagged"
    first = weak.development_areas[0]
    assert first.outcome == synthetic.weak_area and first.rank == 1
    assert "below_expected" in first.reasons and "below_earlier_terms" in first.reasons
    assert first.shrunk_hi < 0 and first.change_hi < 0
    assert first.earlier_terms == synthetic.terms[:-1]
    assert "Matematik" in first.explanation_sv and "Mathematics" in first.explanation_en
    assert "not a cause" in first.explanation_en and "inte en orsak" in first.explanation_sv
    assert "Suggestion:" in first.explanation_en and "Förslag:" in first.explanation_sv
    # Before the weakness was planted, the unit's mathematics is not flagged.
    before = _by_key(profiles)[(synthetic.weak_unit, synthetic.terms[0])]
    assert synthetic.weak_area not in {d.outcome for d in before.development_areas}


def test_few_false_development_flags_against_the_truth(synthetic, profiles):
    truth = synthetic.truth.set_index(["unit", "term", "outcome"])["true_deviation"]
    flagged = false = 0
    for p in profiles:
        ranks = [d.rank for d in p.development_areas]
        assert ranks == list(range(1, len(ranks) + 1))
        gaps = [d.standardised_gap for d in p.development_areas]
        assert gaps == sorted(gaps) and all(g < 0 for g in gaps)
        for d in p.development_areas:
            if "below_expected" in d.reasons:
                flagged += 1
                false += truth[(p.unit, p.term, d.outcome)] >= 0
    n_figures = sum(len(p.expected) for p in profiles)
    assert flagged > 20  # some units are truly below their expectation and are found
    assert false / flagged <= 0.10
    assert flagged / n_figures <= 0.25


def test_residual_interval_combines_observation_and_model_uncertainty(profiles):
    e = next(e for e in profiles[5].expected if not e.suppressed)
    assert e.residual == pytest.approx(e.observed - e.expected)
    assert e.residual_lo < e.residual < e.residual_hi
    # The shrunk deviation is pulled toward 0 and its interval is narrower.
    assert abs(e.shrunk_residual) <= abs(e.residual)
    assert e.shrunk_hi - e.shrunk_lo < e.residual_hi - e.residual_lo
    assert "not cause" in e.note_en


def test_suppression_below_min_n_and_figure_at_min_n(synthetic, models):
    progression = synthetic.progression.copy()
    ability = synthetic.ability.copy()
    term = synthetic.terms[-1]
    cell = (progression["unit"] == "Olympia") & (progression["term"] == term)
    progression.loc[cell, "n_photos"] = 4
    cell5 = (progression["unit"] == "Laröd") & (progression["term"] == term)
    progression.loc[cell5, "n_photos"] = 5
    area = (
        (ability["unit"] == "Olympia")
        & (ability["term"] == term)
        & (ability["area"] == "mathematics")
    )
    ability.loc[area, "n_sheets"] = 4
    area5 = (
        (ability["unit"] == "Olympia")
        & (ability["term"] == term)
        & (ability["area"] == "social_emotional")
    )
    ability.loc[area5, "n_sheets"] = 5
    by_key = _by_key(build_profiles(progression, ability, synthetic.context, models=models))
    olympia = by_key[("Olympia", term)]
    assert olympia.progression.suppressed and olympia.progression.index is None
    assert olympia.progression.n_photos == 4
    prog = next(e for e in olympia.expected if e.outcome == "progression")
    assert prog.suppressed and prog.residual is None and prog.n == 4
    assert prog.expected is not None  # the expectation rests on context, not on the photos
    maths = next(a for a in olympia.ability if a.area == "mathematics")
    assert maths.suppressed and maths.ability is None and maths.se is None and maths.n_sheets == 4
    social = next(a for a in olympia.ability if a.area == "social_emotional")
    assert not social.suppressed and social.ability is not None and social.n_sheets == 5
    assert not by_key[("Laröd", term)].progression.suppressed
    assert "progression" not in {d.outcome for d in olympia.development_areas}
    # Suppressed figures stay suppressed when they appear among another unit's similar units.
    shown_olympia = [
        s
        for p in by_key.values()
        for s in p.similar_units
        if s.unit == "Olympia" and p.term == term
    ]
    assert all(s.progression.suppressed for s in shown_olympia)


def test_missing_cells_are_shown_as_suppressed_with_n_zero(synthetic, models):
    ability = synthetic.ability[
        ~((synthetic.ability["unit"] == "Olympia") & (synthetic.ability["area"] == "mathematics"))
    ]
    profile = _by_key(
        build_profiles(synthetic.progression, ability, synthetic.context, models=models)
    )[("Olympia", synthetic.terms[0])]
    maths = next(a for a in profile.ability if a.area == "mathematics")
    assert maths.n_sheets == 0 and maths.suppressed
    assert [a.area for a in profile.ability] == list(CURRICULUM_AREAS)


def test_previous_terms_are_listed_chronologically(synthetic, profiles):
    last = _by_key(profiles)[("Dalhem", synthetic.terms[-1])]
    assert [f.term for f in last.progression_previous] == synthetic.terms[:-1]
    assert len(last.ability_previous) == 3 * len(CURRICULUM_AREAS)
    assert [f.term for f in last.ability_previous[:: len(CURRICULUM_AREAS)]] == synthetic.terms[:-1]
    assert _by_key(profiles)[("Dalhem", synthetic.terms[0])].progression_previous == []


def test_context_sits_next_to_municipality_mean_and_national_reference(synthetic, profiles):
    p = _by_key(profiles)[("Olympia", synthetic.terms[0])]
    cpf = next(c for c in p.context if c.column == "children_per_fte")
    term_rows = synthetic.context[synthetic.context["term"] == synthetic.terms[0]]
    assert cpf.municipality_mean == pytest.approx(term_rows["children_per_fte"].mean())
    assert cpf.municipality_n_units == 80
    assert cpf.national is not None and cpf.national.value == 5.1
    own = term_rows.set_index("unit").loc["Olympia", "children_per_fte"]
    assert cpf.value == pytest.approx(own)


def test_similar_units_are_nearest_by_context_in_the_same_term(synthetic, profiles):
    term = synthetic.terms[2]
    p = _by_key(profiles)[("Olympia", term)]
    assert len(p.similar_units) == 5
    assert "Olympia" not in {s.unit for s in p.similar_units}
    assert all(s.progression.term == term for s in p.similar_units)
    distances = [s.distance for s in p.similar_units]
    assert distances == sorted(distances)
    features = synthetic.context.drop(columns=["unit", "term"])
    ctx = (
        synthetic.context[synthetic.context["term"] == term].set_index("unit").drop(columns="term")
    )
    z = (ctx - features.mean()) / features.std(ddof=0)
    d = np.sqrt(((z - z.loc["Olympia"]) ** 2).sum(axis=1)).drop("Olympia").sort_values()
    assert [s.unit for s in p.similar_units] == list(d.index[:5])


def test_triangulation_agrees_across_units_and_flags_divergence(synthetic, profiles):
    term = synthetic.terms[-1]
    across = _by_key(profiles)[("Olympia", term)].triangulation.across_units
    # The synthetic ability effect correlates with the progression effect (about 0.6).
    assert across.n_units >= 70 and across.pearson_r > 0.2
    assert across.r_lo < across.pearson_r < across.r_hi
    for p in profiles:
        t = p.triangulation
        if t.progression_z is None or t.assessment_z is None:
            assert t.agree is None and not t.diverges
            continue
        assert t.agree == (np.sign(t.progression_z) == np.sign(t.assessment_z))
        assert t.diverges == ((not t.agree) and abs(t.progression_z - t.assessment_z) >= 1.0)
    assert any(p.triangulation.diverges for p in profiles)


def test_bad_input_tables_are_named(synthetic):
    with pytest.raises(ValueError, match="ability table lacks"):
        build_profiles(
            synthetic.progression, synthetic.ability.drop(columns="se"), synthetic.context
        )
    bad = synthetic.ability.copy()
    bad.loc[0, "area"] = "astrology"
    with pytest.raises(ValueError, match="unknown area"):
        build_profiles(synthetic.progression, bad, synthetic.context)
    with pytest.raises(ValueError, match="twice"):
        build_profiles(synthetic.progression, synthetic.ability, pd.concat([synthetic.context] * 2))


def test_outcomes_cover_progression_and_every_area(profiles):
    assert [e.outcome for e in profiles[0].expected] == list(OUTCOMES)
