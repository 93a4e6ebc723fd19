"""Seeded simulator of educators' ratings from known many-facet partial credit parameters.

Used by the tests (parameter recovery), the benchmark and the demo. :func:`simulate_ratings` mimics
a moderated design: units with their own effect, sheets nested in units (unevenly many per unit),
each sheet one case answered by a child of some age band, rated by a home rater of the unit plus,
optionally, raters from elsewhere, with ratings randomly missing. :func:`simulate_design` draws the
field's designs (:data:`DESIGNS`): one educator per sheet, educators in one or several units, and
calibration responses (rows with an empty unit) rated by every educator.
"""

from __future__ import annotations

from dataclasses import dataclass, field
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
    calibration_reference: dict[tuple[str, str], int] = field(default_factory=dict)


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


#: The designs :func:`simulate_design` draws (see its docstring).
DESIGNS: tuple[str, ...] = ("crossed", "shared", "nested_calibrated", "nested")


def _levels(
    rng: np.random.Generator, eta: np.ndarray, item: np.ndarray, cum: np.ndarray
) -> np.ndarray:
    """Draw partial credit levels for ``eta`` (= ability - severity) on items with ``cum``."""
    logits = eta[:, None] * np.arange(cum.shape[1]) - cum[item]
    logits -= logits.max(axis=1, keepdims=True)
    prob = np.exp(logits)
    prob /= prob.sum(axis=1, keepdims=True)
    level = (rng.random(len(eta))[:, None] > np.cumsum(prob, axis=1)).sum(axis=1)
    return np.minimum(level, (cum[item] < np.inf).sum(axis=1) - 1)


def simulate_design(
    design: str,
    *,
    n_units: int = 40,
    sheets_per_unit: int = 50,
    n_cases: int = 4,
    items_per_case: int = 3,
    max_level: int = 3,
    n_calibration: int = 8,
    unit_sd: float = 0.8,
    sheet_sd: float = 1.0,
    severity_sd: float = 0.5,
    term: str = "2026-VT",
    seed: int = 0,
) -> tuple[pd.DataFrame, SyntheticTruth]:
    """Draw ratings in one of the field's designs; returns (ratings, truth).

    Every unit has ``sheets_per_unit`` sheets, each one case (random) answered by a child of a
    random age band (ability = unit effect + age-band effect + N(0, ``sheet_sd``)).

    * ``crossed``: 1.5 raters per unit, each with a home unit; every sheet is rated by a home rater
      and 4 raters drawn from all (5 ratings of every item).
    * ``shared``: 0.75 educators per unit; every unit has 3 of them and every educator works in
      about 4 units; one educator (of the unit's) rates each sheet.
    * ``nested_calibrated``: each educator works in exactly one unit (2-4 per unit) and rates each
      sheet alone; ``n_calibration`` calibration responses (sheet ids ``cal-01``..., empty unit,
      cases in turn) are rated by every educator on every item of their case.
    * ``nested``: as ``nested_calibrated`` without calibration responses.

    ``truth.calibration_reference`` holds the reference level of each calibration response and
    item: the level most probable at the response's true ability with severity 0.
    """
    if design not in DESIGNS:
        raise ValueError(f"unknown design {design!r}; one of {', '.join(DESIGNS)}")
    rng = np.random.default_rng(seed)
    case_ids = [f"syn-{c + 1:02d}" for c in range(n_cases)]
    case_areas = {
        cid: CURRICULUM_AREAS[c % len(CURRICULUM_AREAS)] for c, cid in enumerate(case_ids)
    }
    item_keys = [(cid, f"i{j + 1}") for cid in case_ids for j in range(items_per_case)]
    thresholds: dict[tuple[str, str], np.ndarray] = {}
    for key in item_keys:
        steps = np.sort(np.linspace(-1.2, 1.2, max_level) + rng.normal(0.0, 0.25, max_level))
        thresholds[key] = rng.normal(0.0, 0.7) + steps
    cum = np.full((len(item_keys), max_level + 1), np.inf)
    cum[:, 0] = 0.0
    for n, key in enumerate(item_keys):
        cum[n, 1:] = np.cumsum(thresholds[key])

    units = np.array([f"unit-{u + 1:02d}" for u in range(n_units)])
    unit_effect = rng.normal(0.0, unit_sd, n_units)
    # Educators and the units they rate in (a list of unit indices per educator).
    if design == "crossed":
        n_raters = max(int(round(1.5 * n_units)), 5)
        rater_units = [[r % n_units] for r in range(n_raters)]
    elif design == "shared":
        n_raters = max(int(round(0.75 * n_units)), 3)
        per_unit = min(3, n_raters)
        rater_units = [[] for _ in range(n_raters)]
        load = np.zeros(n_raters)
        for u in rng.permutation(n_units):
            # The least-loaded educators (ties at random) take the unit: about 4 units each.
            order = np.lexsort((rng.random(n_raters), load))[:per_unit]
            for r in order:
                rater_units[r].append(int(u))
            load[order] += 1
    else:
        counts = rng.integers(2, 5, n_units)
        rater_units = [[u] for u in range(n_units) for _ in range(counts[u])]
        n_raters = len(rater_units)
    raters = np.array([f"rater-{r + 1:03d}" for r in range(n_raters)])
    severity = rng.normal(0.0, severity_sd, n_raters)
    unit_raters = [[r for r in range(n_raters) if u in rater_units[r]] for u in range(n_units)]

    n_sheets = n_units * sheets_per_unit
    sheet_unit = np.repeat(np.arange(n_units), sheets_per_unit)
    sheet_band = rng.integers(0, len(AGE_BANDS), n_sheets)
    band_shift = np.array([AGE_BAND_EFFECT[b] for b in AGE_BANDS])
    ability = unit_effect[sheet_unit] + band_shift[sheet_band] + rng.normal(0, sheet_sd, n_sheets)
    sheet_case = rng.integers(0, n_cases, n_sheets)
    home = np.array([rng.choice(unit_raters[u]) for u in sheet_unit])
    if design == "crossed":
        noise = rng.random((n_sheets, n_raters))
        noise[np.arange(n_sheets), home] = 2.0
        sheet_raters = np.concatenate([home[:, None], np.argsort(noise, axis=1)[:, :4]], axis=1)
    else:
        sheet_raters = home[:, None]
    per_sheet = sheet_raters.shape[1]
    s = np.repeat(np.arange(n_sheets), items_per_case * per_sheet)
    j = np.tile(np.repeat(np.arange(items_per_case), per_sheet), n_sheets)
    rater_col = np.tile(np.arange(per_sheet), n_sheets * items_per_case)
    r = sheet_raters[s, rater_col]
    item = sheet_case[s] * items_per_case + j
    level = _levels(rng, ability[s] - severity[r], item, cum)
    sheet_ids = np.array([f"sheet-{n + 1:06d}" for n in range(n_sheets)])
    start = Term.parse(term)
    day0 = date(start.year, 2 if start.half == 0 else 9, 1)
    days = rng.integers(0, 100, n_sheets)
    frame = pd.DataFrame(
        {
            "sheet_id": sheet_ids[s],
            "unit": units[sheet_unit[s]],
            "group": "group-1",
            "age_band": np.array(AGE_BANDS)[sheet_band[s]],
            "rater": raters[r],
            "case": np.array(case_ids)[sheet_case[s]],
            "item": np.array([k[1] for k in item_keys])[item],
            "level": level.astype(np.int64),
            "date": pd.to_datetime(day0) + pd.to_timedelta(days[s], unit="D"),
        }
    )
    truth_ability = dict(zip(sheet_ids.tolist(), ability.tolist(), strict=True))
    reference: dict[tuple[str, str], int] = {}
    if design == "nested_calibrated" and n_calibration > 0:
        cal_ability = rng.normal(0.0, 1.2, n_calibration)
        cal_ids = np.array([f"cal-{c + 1:02d}" for c in range(n_calibration)])
        cal_case = np.arange(n_calibration) % n_cases
        cs = np.repeat(np.arange(n_calibration), items_per_case * n_raters)
        cj = np.tile(np.repeat(np.arange(items_per_case), n_raters), n_calibration)
        cr = np.tile(np.arange(n_raters), n_calibration * items_per_case)
        citem = cal_case[cs] * items_per_case + cj
        clevel = _levels(rng, cal_ability[cs] - severity[cr], citem, cum)
        frame = pd.concat(
            [
                frame,
                pd.DataFrame(
                    {
                        "sheet_id": cal_ids[cs],
                        "unit": "",
                        "group": "",
                        "age_band": "",
                        "rater": raters[cr],
                        "case": np.array(case_ids)[cal_case[cs]],
                        "item": np.array([k[1] for k in item_keys])[citem],
                        "level": clevel.astype(np.int64),
                        "date": pd.to_datetime(day0)
                        + pd.to_timedelta(rng.integers(0, 100, len(cs)), unit="D"),
                    }
                ),
            ],
            ignore_index=True,
        )
        for c in range(n_calibration):
            truth_ability[str(cal_ids[c])] = float(cal_ability[c])
            for jj in range(items_per_case):
                n = cal_case[c] * items_per_case + jj
                logits = cal_ability[c] * np.arange(max_level + 1) - cum[n]
                reference[(str(cal_ids[c]), item_keys[n][1])] = int(np.argmax(logits))
    frame["term"] = term
    frame["area"] = frame["case"].map(case_areas)
    truth = SyntheticTruth(
        thresholds=thresholds,
        severity=dict(zip(raters.tolist(), severity.tolist(), strict=True)),
        unit_effect=dict(zip(units.tolist(), unit_effect.tolist(), strict=True)),
        ability=truth_ability,
        case_areas=case_areas,
        calibration_reference=reference,
    )
    return frame, truth
