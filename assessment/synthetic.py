"""Seeded simulator of educators' ratings from known many-facet partial credit parameters.

Used by the tests (parameter recovery), the benchmark and the demo. The design mimics the real one:
units with their own effect, sheets nested in units (unevenly many per unit), each sheet one case
answered by a child of some age band, rated by a home rater of the unit plus, optionally, raters
from elsewhere (moderation, which links the raters), with ratings randomly missing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

import numpy as np
import pandas as pd

from core.domain import AGE_BANDS, CURRICULUM_AREAS, Term

from .cases import CaseLibrary

#: Mean ability shift per age band (logits) used by the simulator: older children do more.
AGE_BAND_EFFECT: dict[str, float] = {"1-2": -1.0, "2-3": -0.5, "3-4": 0.0, "4-5": 0.5, "5-6": 1.0}


@dataclass(frozen=True)
class SyntheticTruth:
    """The parameters the ratings were drawn from (logits).

    ``thresholds[(case, item)]`` step thresholds; ``severity[rater]``; ``unit_effect[unit]``;
    ``ability[sheet_id]``; ``case_areas[case]`` curriculum area.
    """

    thresholds: dict[tuple[str, str], np.ndarray]
    severity: dict[str, float]
    unit_effect: dict[str, float]
    ability: dict[str, float]
    case_areas: dict[str, str]


def simulate_ratings(
    *,
    n_units: int = 40,
    n_sheets: int = 2000,
    n_cases: int = 8,
    items_per_case: int = 3,
    max_level: int = 3,
    n_raters: int = 20,
    raters_per_sheet: int = 2,
    missing_rate: float = 0.05,
    unit_sd: float = 0.8,
    sheet_sd: float = 1.0,
    severity_sd: float = 0.5,
    age_effects: bool = True,
    terms: tuple[str, ...] = ("2026-VT",),
    library: CaseLibrary | None = None,
    seed: int = 0,
) -> tuple[pd.DataFrame, SyntheticTruth]:
    """Draw a ratings frame (the columns of a ratings file plus ``term`` and ``area``) and the truth.

    Cases come from ``library`` when given (its items and levels), else ``n_cases`` synthetic cases
    of ``items_per_case`` items with levels 0..``max_level``, areas assigned in turn. Sheets go to
    units by a Dirichlet draw (unbalanced). Each sheet is rated by a home rater of its unit and
    ``raters_per_sheet - 1`` raters drawn from all; each rating is then dropped with probability
    ``missing_rate`` (at least one rating per sheet is kept). Sheet ability = unit effect + age-band
    effect + N(0, sheet_sd). Returns (ratings, truth).
    """
    if raters_per_sheet > n_raters:
        raise ValueError("raters_per_sheet cannot exceed n_raters")
    rng = np.random.default_rng(seed)

    # Cases and items.
    case_items: list[tuple[str, list[str], list[int]]] = []
    case_areas: dict[str, str] = {}
    if library is not None:
        for case in library:
            case_items.append(
                (case.id, [i.id for i in case.rubric], [i.max_level for i in case.rubric])
            )
            case_areas[case.id] = case.area
    else:
        for c in range(n_cases):
            cid = f"syn-{c + 1:02d}"
            case_items.append(
                (cid, [f"i{j + 1}" for j in range(items_per_case)], [max_level] * items_per_case)
            )
            case_areas[cid] = CURRICULUM_AREAS[c % len(CURRICULUM_AREAS)]
    thresholds: dict[tuple[str, str], np.ndarray] = {}
    for cid, items, maxes in case_items:
        for item, k in zip(items, maxes, strict=True):
            location = rng.normal(0.0, 0.7)
            steps = (
                np.sort(np.linspace(-1.2, 1.2, k) + rng.normal(0.0, 0.25, k)) if k > 1 else [0.0]
            )
            thresholds[(cid, item)] = location + np.asarray(steps, dtype=float)

    # Units, raters, sheets.
    units = [f"unit-{u + 1:02d}" for u in range(n_units)]
    unit_effect = rng.normal(0.0, unit_sd, n_units)
    raters = [f"rater-{r + 1:03d}" for r in range(n_raters)]
    severity = rng.normal(0.0, severity_sd, n_raters)
    home_unit_of_rater = np.arange(n_raters) % n_units  # every rater works in one unit
    sheet_unit = rng.choice(n_units, size=n_sheets, p=rng.dirichlet(np.full(n_units, 3.0)))
    sheet_band = rng.integers(0, len(AGE_BANDS), n_sheets)
    band_shift = np.array([AGE_BAND_EFFECT[b] for b in AGE_BANDS]) if age_effects else np.zeros(5)
    ability = unit_effect[sheet_unit] + band_shift[sheet_band] + rng.normal(0.0, sheet_sd, n_sheets)
    sheet_case = rng.integers(0, len(case_items), n_sheets)
    sheet_term = rng.integers(0, len(terms), n_sheets)
    sheet_group = rng.integers(0, 3, n_sheets)

    # Home rater: one of the unit's raters, or any rater where the unit has none of its own.
    home = np.empty(n_sheets, dtype=np.int64)
    for u in range(n_units):
        mine = np.flatnonzero(sheet_unit == u)
        own = np.flatnonzero(home_unit_of_rater == u)
        home[mine] = rng.choice(own if len(own) else n_raters, size=len(mine))
    rater_sets = [home[:, None]]
    if raters_per_sheet > 1:
        # Other raters: a random draw without the home rater (argsort of noise = random subset).
        noise = rng.random((n_sheets, n_raters))
        noise[np.arange(n_sheets), home] = 2.0
        rater_sets.append(np.argsort(noise, axis=1)[:, : raters_per_sheet - 1])
    sheet_raters = np.concatenate(rater_sets, axis=1)  # (n_sheets, raters_per_sheet)

    # One row per sheet x item x rater.
    rows_sheet, rows_item, rows_rater = [], [], []
    item_keys = list(thresholds)
    item_pos = {key: n for n, key in enumerate(item_keys)}
    for c, (cid, items, _) in enumerate(case_items):
        on_case = np.flatnonzero(sheet_case == c)
        for item in items:
            for j in range(raters_per_sheet):
                rows_sheet.append(on_case)
                rows_item.append(np.full(len(on_case), item_pos[(cid, item)]))
                rows_rater.append(sheet_raters[on_case, j])
    s = np.concatenate(rows_sheet)
    i = np.concatenate(rows_item)
    r = np.concatenate(rows_rater)
    keep = rng.random(len(s)) >= missing_rate
    # Keep at least one rating of every sheet, so no sheet silently disappears.
    first = np.unique(s, return_index=True)[1]
    keep[first] = True
    s, i, r = s[keep], i[keep], r[keep]

    k_max = max(len(t) for t in thresholds.values())
    cum = np.full((len(item_keys), k_max + 1), np.inf)
    cum[:, 0] = 0.0
    for n, key in enumerate(item_keys):
        cum[n, 1 : len(thresholds[key]) + 1] = np.cumsum(thresholds[key])
    eta = ability[s] - severity[r]
    logits = eta[:, None] * np.arange(k_max + 1) - cum[i]
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    level = (rng.random(len(s))[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    level = np.minimum(level, (cum[i] < np.inf).sum(axis=1) - 1)  # guard against rounding

    term_objs = [Term.parse(t) for t in terms]
    term_start = [date(t.year, 2 if t.half == 0 else 9, 1) for t in term_objs]
    sheet_date = [
        term_start[t] + timedelta(days=int(d))
        for t, d in zip(sheet_term, rng.integers(0, 100, n_sheets), strict=True)
    ]
    sheet_ids = np.array([f"sheet-{n + 1:06d}" for n in range(n_sheets)])
    case_ids = np.array([c[0] for c in case_items])
    frame = pd.DataFrame(
        {
            "sheet_id": sheet_ids[s],
            "unit": np.array(units)[sheet_unit[s]],
            "group": np.char.add("group-", (sheet_group[s] + 1).astype(str)),
            "age_band": np.array(AGE_BANDS)[sheet_band[s]],
            "rater": np.array(raters)[r],
            "case": case_ids[sheet_case[s]],
            "item": np.array([key[1] for key in item_keys])[i],
            "level": level.astype(np.int64),
            "date": pd.to_datetime(np.array(sheet_date, dtype="datetime64[D]")[s]),
            "term": np.array(terms)[sheet_term[s]],
        }
    )
    frame["area"] = frame["case"].map(case_areas)
    frame = frame.sort_values(["sheet_id", "item", "rater"], kind="stable").reset_index(drop=True)
    truth = SyntheticTruth(
        thresholds=thresholds,
        severity=dict(zip(raters, severity.tolist(), strict=True)),
        unit_effect=dict(zip(units, unit_effect.tolist(), strict=True)),
        ability=dict(zip(sheet_ids.tolist(), ability.tolist(), strict=True)),
        case_areas=case_areas,
    )
    return frame, truth
