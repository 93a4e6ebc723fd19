"""Seeded synthetic units x terms with known unit effects, for tests, benchmarks and the demo.

Each unit has a context that drifts a little from term to term and relates to the outcomes
(fewer children per employee, more trained staff and a higher socio-economic index go with
higher results); on top of the context each unit has a true effect on drawing progression, a
correlated general effect on assessed ability, small area-specific effects and term-to-term noise.
One named unit gets a planted weakness in one curriculum area in its latest term(s) only.
Photos and sheets are then drawn around these truths, and the three input frames of
:func:`profiles.profile.build_profiles` are produced the way the real pipeline would produce them.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from core.domain import AGE_BANDS, CURRICULUM_AREAS, EXPECTED_STAGE_BY_AGE_BAND, N_STAGES
from profiles.context import CONTEXT_COLUMNS
from profiles.progression import progression_from_photos

#: Pilot unit names (docs/architecture.md); further units are named "Enhet 0009" and so on.
PILOT_UNITS: tuple[str, ...] = (
    "Olympia",
    "Maria Park",
    "Västra Ramlösa",
    "Adolfsberg",
    "Dalhem",
    "Laröd",
    "Öknen",
    "Wieselgren",
)

#: True association of each context column with progression (stages per raw unit of the column).
TRUE_PROGRESSION_COEF: dict[str, float] = {
    "children_enrolled": 0.0,
    "n_groups": 0.0,
    "mean_group_size": -0.02,
    "children_per_fte": -0.15,
    "share_trained_staff": 0.8,
    "staff_turnover": -0.5,
    "socioeconomic_index": 0.8,
    "share_multilingual": -0.4,
}

_CONTEXT_CENTRE: dict[str, float] = {
    "mean_group_size": 15.0,
    "children_per_fte": 5.1,
    "share_trained_staff": 0.41,
    "staff_turnover": 0.15,
    "socioeconomic_index": 0.5,
    "share_multilingual": 0.25,
    "children_enrolled": 0.0,
    "n_groups": 0.0,
}


@dataclass
class SyntheticProfileData:
    """Inputs of :func:`profiles.profile.build_profiles` plus the truth they were drawn from.

    ``truth`` has one row per unit x term x outcome (``progression`` or an area) with
    ``true_value`` (what a perfect measurement would show, stages or logits) and
    ``true_deviation`` (the part not explained by context). ``unit_effect`` is each unit's true
    progression effect (stages), constant over terms.
    """

    photos: pd.DataFrame
    progression: pd.DataFrame
    ability: pd.DataFrame
    context: pd.DataFrame
    truth: pd.DataFrame
    unit_effect: pd.Series
    weak_unit: str
    weak_area: str
    weak_terms: list[str]
    terms: list[str]


def synthetic_terms(n_terms: int, first_year: int = 2023) -> list[str]:
    """Chronological term strings, starting with the autumn term of ``first_year``."""
    terms = []
    year, half = first_year, 1
    for _ in range(n_terms):
        terms.append(f"{year}-{'VT' if half == 0 else 'HT'}")
        year, half = (year + 1, 0) if half == 1 else (year, 1)
    return terms


def unit_names(n_units: int) -> list[str]:
    """The pilot names first, then "Enhet 0009", "Enhet 0010", ..."""
    names = list(PILOT_UNITS[:n_units])
    names += [f"Enhet {i + 1:04d}" for i in range(len(names), n_units)]
    return names


def make_synthetic(
    n_units: int = 60,
    n_terms: int = 4,
    *,
    photos_per_term: float = 25.0,
    sheets_per_area: float = 12.0,
    small_share: float = 0.03,
    weak_unit: str = "Dalhem",
    weak_area: str = "mathematics",
    weak_effect: float = -1.2,
    weak_last_terms: int = 1,
    n_boot: int = 1000,
    seed: int = 0,
) -> SyntheticProfileData:
    """Draw a seeded synthetic municipality.

    Args:
        n_units: number of units (at least 5, so the named weak unit exists).
        n_terms: number of consecutive terms.
        photos_per_term: mean photos per unit x term (Poisson).
        sheets_per_area: mean response sheets per unit x term x curriculum area (Poisson).
        small_share: share of unit x term cells with very few photos and sheets (to be
            suppressed).
        weak_unit: the unit with the planted weak area (must be among :func:`unit_names`).
        weak_area: the curriculum area planted weak.
        weak_effect: size of the planted weakness, logits (negative).
        weak_last_terms: the weakness applies to this many latest terms.
        n_boot: bootstrap resamples for the progression intervals.
        seed: everything drawn follows from it.

    Returns:
        :class:`SyntheticProfileData`.
    """
    names = unit_names(n_units)
    if weak_unit not in names:
        raise ValueError(f"weak unit {weak_unit!r} is not among the {n_units} synthetic units")
    if weak_area not in CURRICULUM_AREAS:
        raise ValueError(f"weak area {weak_area!r} is not one of {', '.join(CURRICULUM_AREAS)}")
    rng = np.random.default_rng(seed)
    terms = synthetic_terms(n_terms)
    n_areas = len(CURRICULUM_AREAS)
    weak_idx = names.index(weak_unit)

    # --- context: a unit-level base that drifts a little per term ---
    base_size = rng.normal(15.0, 3.0, n_units).clip(6, 30)
    base_cpf = rng.normal(5.1, 0.8, n_units).clip(2.5, 9)
    base_trained = rng.beta(8, 11.5, n_units)
    base_turnover = rng.beta(3, 17, n_units)
    base_socio = rng.beta(5, 5, n_units)
    base_multi = rng.beta(2, 6, n_units)
    base_groups = rng.integers(2, 9, n_units)

    rows = []
    for t in range(n_terms):
        size = (base_size + rng.normal(0, 0.7, n_units)).clip(5, 35)
        groups = base_groups
        rows.append(
            pd.DataFrame(
                {
                    "unit": names,
                    "term": terms[t],
                    "children_enrolled": np.rint(size * groups).astype(int),
                    "n_groups": groups.astype(int),
                    "mean_group_size": size.round(1),
                    "children_per_fte": (base_cpf + rng.normal(0, 0.2, n_units))
                    .clip(2, 10)
                    .round(2),
                    "share_trained_staff": (base_trained + rng.normal(0, 0.02, n_units)).clip(0, 1),
                    "staff_turnover": (base_turnover + rng.normal(0, 0.03, n_units)).clip(0, 1),
                    "socioeconomic_index": (base_socio + rng.normal(0, 0.01, n_units)).clip(0, 1),
                    "share_multilingual": (base_multi + rng.normal(0, 0.01, n_units)).clip(0, 1),
                }
            )
        )
    context = pd.concat(rows, ignore_index=True)

    ctx = context[list(CONTEXT_COLUMNS)].to_numpy(dtype=float)
    centre = np.array([_CONTEXT_CENTRE[c] for c in CONTEXT_COLUMNS])
    coef = np.array([TRUE_PROGRESSION_COEF[c] for c in CONTEXT_COLUMNS])
    ctx_prog = (ctx - centre) @ coef  # per unit x term row, stages
    # Areas relate to the same context a little differently (logits).
    area_scale = rng.uniform(0.8, 1.6, n_areas)
    ctx_area = np.outer(ctx_prog, area_scale)

    # --- true unit effects ---
    unit_effect = rng.normal(0, 0.3, n_units)
    general = 0.6 * unit_effect / 0.3 * 0.4 + rng.normal(0, 0.32, n_units)
    area_effect = rng.normal(0, 0.15, (n_units, n_areas))
    unit_effect[weak_idx] = 0.0
    general[weak_idx] = 0.0
    area_effect[weak_idx] = 0.0

    n_rows = len(context)
    unit_of_row = np.tile(np.arange(n_units), n_terms)
    term_of_row = np.repeat(np.arange(n_terms), n_units)
    prog_noise = rng.normal(0, 0.08, n_rows)
    area_noise = rng.normal(0, 0.08, (n_rows, n_areas))
    true_prog = ctx_prog + unit_effect[unit_of_row] + prog_noise
    dev_area = general[unit_of_row, None] + area_effect[unit_of_row] + area_noise
    weak_rows = (unit_of_row == weak_idx) & (term_of_row >= n_terms - weak_last_terms)
    dev_area[weak_rows, CURRICULUM_AREAS.index(weak_area)] += weak_effect
    true_area = ctx_area + dev_area

    small = rng.random(n_rows) < small_share
    small[unit_of_row == weak_idx] = False

    # --- photos ---
    n_photos = np.where(small, rng.integers(1, 5, n_rows), rng.poisson(photos_per_term, n_rows))
    photo_row = np.repeat(np.arange(n_rows), n_photos)
    band_p = np.array([0.05, 0.2, 0.25, 0.25, 0.25])
    bands = np.asarray(AGE_BANDS)[rng.choice(len(AGE_BANDS), len(photo_row), p=band_p)]
    expected_by_band = pd.Series(bands).map(EXPECTED_STAGE_BY_AGE_BAND).to_numpy(dtype=float)
    stage = expected_by_band + true_prog[photo_row] + rng.normal(0, 0.5, len(photo_row))
    photos = pd.DataFrame(
        {
            "unit": np.asarray(names, dtype=object)[unit_of_row[photo_row]],
            "term": np.asarray(terms, dtype=object)[term_of_row[photo_row]],
            "age_band": bands,
            "expected_stage": stage.clip(0, N_STAGES - 1),
        }
    )
    progression = progression_from_photos(photos, n_boot=n_boot, seed=seed)

    # --- response sheets, summarised per unit x term x area as the assessment model would ---
    n_sheets = np.where(
        small[:, None],
        rng.integers(1, 5, (n_rows, n_areas)),
        rng.poisson(sheets_per_area, (n_rows, n_areas)),
    )
    n_sheets = np.maximum(n_sheets, 1)
    se = 1.0 / np.sqrt(n_sheets)
    observed = true_area + rng.normal(0, 1, (n_rows, n_areas)) * se
    ability = pd.DataFrame(
        {
            "unit": np.repeat(np.asarray(names, dtype=object)[unit_of_row], n_areas),
            "term": np.repeat(np.asarray(terms, dtype=object)[term_of_row], n_areas),
            "area": np.tile(np.asarray(CURRICULUM_AREAS, dtype=object), n_rows),
            "ability": observed.ravel(),
            "se": se.ravel(),
            "n_sheets": n_sheets.ravel().astype(int),
        }
    )

    truth = pd.concat(
        [
            pd.DataFrame(
                {
                    "unit": context["unit"],
                    "term": context["term"],
                    "outcome": "progression",
                    "true_value": true_prog,
                    "true_deviation": true_prog - ctx_prog,
                }
            ),
            pd.DataFrame(
                {
                    "unit": ability["unit"],
                    "term": ability["term"],
                    "outcome": ability["area"],
                    "true_value": true_area.ravel(),
                    "true_deviation": dev_area.ravel(),
                }
            ),
        ],
        ignore_index=True,
    )
    return SyntheticProfileData(
        photos=photos,
        progression=progression,
        ability=ability,
        context=context,
        truth=truth,
        unit_effect=pd.Series(unit_effect, index=pd.Index(names, name="unit"), name="unit_effect"),
        weak_unit=weak_unit,
        weak_area=weak_area,
        weak_terms=terms[n_terms - weak_last_terms :],
        terms=terms,
    )
