"""Build unit profiles: progression, ability, context, expected vs observed, development areas.

Inputs are three tables (the database layer produces them):

- progression: ``unit, term, age_band, n_photos, mean_stage, index, index_lo, index_hi``
  (see :func:`profiles.progression.progression_from_photos`; rows with ``age_band`` "all" are
  used, otherwise a unit's age-band rows are pooled, weighted by photos);
- ability: ``unit, term, area, ability, se, n_sheets`` (logits, from the assessment model);
- context: ``unit, term`` and :data:`profiles.context.CONTEXT_COLUMNS`, optionally with the
  municipality's quality indicators (:func:`profiles.context.indicator_column`), which the
  contextual models use only where they help in cross-validation.

Everything is computed on whole tables at once; the per-profile loop only assembles objects.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from scipy import stats
from sklearn.neighbors import NearestNeighbors

from core.domain import AREA_LABELS, CURRICULUM_AREAS, MIN_GROUP_SIZE, term_sort_key
from profiles.context import (
    CONTEXT_COLUMNS,
    CONTEXT_LABELS,
    INDICATOR_PREFIX,
    REFERENCES,
    Indicator,
    indicator_column,
    indicator_columns,
    municipality_means,
)
from profiles.model import ASSOCIATION_NOTE, ContextModel, WhatIfResult
from profiles.progression import ALL_AGE_BANDS
from profiles.schemas import (
    AbilityFigure,
    ContextValue,
    DevelopmentArea,
    ExpectedVsObserved,
    IndicatorSelection,
    IndicatorValue,
    ProgressionFigure,
    SimilarUnit,
    Triangulation,
    TriangulationAcrossUnits,
    UnitProfile,
)

PROGRESSION = "progression"

#: Outcomes of a profile, in the order shown: drawing progression, then the curriculum areas.
OUTCOMES: tuple[str, ...] = (PROGRESSION, *CURRICULUM_AREAS)

OUTCOME_LABELS: dict[str, dict[str, str]] = {
    PROGRESSION: {"sv": "Teckningsprogression", "en": "Drawing progression"},
    **AREA_LABELS,
}

#: Unit of measure of each outcome.
OUTCOME_MEASURE: dict[str, str] = {
    PROGRESSION: "stages (age-adjusted index)",
    **{a: "logits (assessed ability)" for a in CURRICULUM_AREAS},
}

_WHAT: dict[str, dict[str, str]] = {
    PROGRESSION: {
        "sv": "hur långt barnens teckningar ligger före (+) eller efter (-) det som är typiskt "
        "för deras åldersgrupper, i stadier",
        "en": "how far the children's drawings are ahead of (+) or behind (-) what is typical "
        "for their age bands, in stages",
    },
    **{
        a: {
            "sv": f"pedagogernas bedömningar av barnens svar på uppgifter inom "
            f"{AREA_LABELS[a]['sv'].lower()}, som förmåga i logits",
            "en": f"educators' ratings of the children's responses to cases in "
            f"{AREA_LABELS[a]['en'].lower()}, as ability in logits",
        }
        for a in CURRICULUM_AREAS
    },
}

_SUGGESTION: dict[str, dict[str, str]] = {
    PROGRESSION: {
        "sv": "Se över hur ofta barnen tecknar och samtalar om sina teckningar, och om tid och "
        "material för att teckna erbjuds i alla grupper; följ upp nästa termin.",
        "en": "Look at how often the children draw and talk about their drawings, and whether "
        "time and materials for drawing are offered in every group; follow up next term.",
    },
    "language_communication": {
        "sv": "Se över hur högläsning, samtal och berättande planeras i grupperna och diskutera "
        "med pedagogerna vilka uppgifter barnen fann svåra; följ upp nästa termin.",
        "en": "Look at how reading aloud, conversation and storytelling are planned in the groups "
        "and discuss with the educators which cases the children found hard; follow up next term.",
    },
    "mathematics": {
        "sv": "Se över hur antal, form, mönster och mätning förekommer i lek och rutiner och "
        "diskutera med pedagogerna vilka uppgifter barnen fann svåra; följ upp nästa termin.",
        "en": "Look at how number, shape, pattern and measuring appear in play and routines and "
        "discuss with the educators which cases the children found hard; follow up next term.",
    },
    "science_technology": {
        "sv": "Se över om barnen regelbundet får utforska, pröva och bygga med natur, material och "
        "enkel teknik, och diskutera vilka uppgifter de fann svåra; följ upp nästa termin.",
        "en": "Look at whether the children regularly get to explore, test and build with nature, "
        "materials and simple technology, and discuss which cases they found hard; follow up "
        "next term.",
    },
    "creative_expression": {
        "sv": "Se över tid, plats och material för bild, musik, dans och drama i grupperna och "
        "diskutera vilka uppgifter barnen fann svåra; följ upp nästa termin.",
        "en": "Look at the time, space and materials for image, music, dance and drama in the "
        "groups and discuss which cases the children found hard; follow up next term.",
    },
    "social_emotional": {
        "sv": "Se över hur grupperna arbetar med lek, vänskap, turtagning och att sätta ord på "
        "känslor, och diskutera vilka uppgifter barnen fann svåra; följ upp nästa termin.",
        "en": "Look at how the groups work with play, friendship, taking turns and putting "
        "feelings into words, and discuss which cases the children found hard; follow up next "
        "term.",
    },
}


def area_suggestion(outcome: str) -> dict[str, str]:
    """The help text a development area's explanation ends with ("Förslag: …"), {"sv", "en"};
    measures (profiles.measures) offer it as a starting point to edit."""
    return dict(_SUGGESTION[outcome])


_TRIANGULATION_NOTE = {
    "agree": {
        "sv": "Teckningar och bedömningar pekar åt samma håll.",
        "en": "Drawings and assessments point the same way.",
    },
    "differ": {
        "sv": "Teckningar och bedömningar pekar åt olika håll men skillnaden är liten.",
        "en": "Drawings and assessments point different ways, but the difference is small.",
    },
    "diverges": {
        "sv": "Teckningar och bedömningar pekar tydligt åt olika håll; granska underlagen "
        "(antal foton och bedömningar, vilka grupper som bidragit) innan slutsatser dras.",
        "en": "Drawings and assessments clearly point different ways; check the evidence "
        "(number of photos and sheets, which groups contributed) before drawing conclusions.",
    },
    "missing": {
        "sv": "För lite underlag för att jämföra teckningar och bedömningar.",
        "en": "Too little evidence to compare drawings and assessments.",
    },
}

#: Divergence threshold: standardised progression and assessment deviations of opposite sign that
#: are at least this far apart are flagged.
DIVERGENCE_GAP = 1.0


# ---------------------------------------------------------------------------------------------
# input preparation
# ---------------------------------------------------------------------------------------------
def _require(frame: pd.DataFrame, name: str, columns: Sequence[str]) -> None:
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(f"{name} table lacks column(s) {', '.join(missing)}")


def _z(level: float) -> float:
    return float(stats.norm.ppf(0.5 + level / 2.0))


def _num(series: pd.Series) -> np.ndarray:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=float)


def _pool_progression(progression: pd.DataFrame, level: float) -> pd.DataFrame:
    """One row per unit x term: the "all" row, else the age-band rows pooled by photos."""
    frame = progression.copy()
    frame["unit"] = frame["unit"].astype(str)
    frame["term"] = frame["term"].astype(str)
    if "age_band" not in frame.columns:
        frame["age_band"] = ALL_AGE_BANDS
    frame["age_band"] = frame["age_band"].astype(str)
    for col in ("n_photos", "mean_stage", "index", "index_lo", "index_hi"):
        frame[col] = _num(frame[col])
    frame["se"] = (frame["index_hi"] - frame["index_lo"]) / (2 * _z(level))
    is_all = frame["age_band"] == ALL_AGE_BANDS
    pooled_all = frame[is_all]
    if pooled_all.duplicated(["unit", "term"]).any():
        raise ValueError("progression table has a unit x term twice")
    bands = frame[~is_all]
    have = set(zip(pooled_all["unit"], pooled_all["term"], strict=True))
    bands = bands[[k not in have for k in zip(bands["unit"], bands["term"], strict=True)]]
    if len(bands):
        shown = bands["index"].notna() & bands["se"].notna()
        b = bands.assign(
            w=np.where(shown, bands["n_photos"], 0.0),
            wi=np.where(shown, bands["n_photos"] * bands["index"], 0.0),
            wm=np.where(shown, bands["n_photos"] * bands["mean_stage"], 0.0),
            wse2=np.where(shown, (bands["n_photos"] * bands["se"]) ** 2, 0.0),
        )
        g = b.groupby(["unit", "term"], sort=False)[["w", "wi", "wm", "wse2"]].sum().reset_index()
        with np.errstate(divide="ignore", invalid="ignore"):
            idx = g["wi"] / g["w"]
            se = np.sqrt(g["wse2"]) / g["w"]
        z = _z(level)
        # Photos of suppressed age bands have no index to pool, so n counts the shown bands only.
        pooled_bands = pd.DataFrame(
            {
                "unit": g["unit"],
                "term": g["term"],
                "n_photos": g["w"],
                "mean_stage": g["wm"] / g["w"].where(g["w"] > 0),
                "index": idx,
                "index_lo": idx - z * se,
                "index_hi": idx + z * se,
                "se": se,
            }
        )
        pooled_all = pd.concat([pooled_all, pooled_bands], ignore_index=True)
    return pooled_all[
        ["unit", "term", "n_photos", "mean_stage", "index", "index_lo", "index_hi", "se"]
    ]


def observations(
    progression: pd.DataFrame,
    ability: pd.DataFrame,
    *,
    units_terms: pd.DataFrame | None = None,
    min_n: int = MIN_GROUP_SIZE,
    level: float = 0.9,
) -> pd.DataFrame:
    """All outcomes in one long table, one row per unit x term x outcome (full grid).

    Missing combinations appear with n = 0 and ``suppressed`` True (never silently dropped).

    Returns:
        DataFrame with ``unit, term, term_rank, outcome, n, suppressed, observed, se, lo, hi,
        mean_stage`` (progression in stages, areas in logits; ``mean_stage`` only for progression).
    """
    _require(
        progression, "progression", ("unit", "term", "n_photos", "index", "index_lo", "index_hi")
    )
    if "mean_stage" not in progression.columns:
        progression = progression.assign(mean_stage=np.nan)
    _require(ability, "ability", ("unit", "term", "area", "ability", "se", "n_sheets"))
    unknown = sorted(set(ability["area"].astype(str)) - set(CURRICULUM_AREAS))
    if unknown:
        raise ValueError(f"unknown area(s) {unknown}; known: {', '.join(CURRICULUM_AREAS)}")
    prog = _pool_progression(progression, level)
    ab = pd.DataFrame(
        {
            "unit": ability["unit"].astype(str).to_numpy(),
            "term": ability["term"].astype(str).to_numpy(),
            "outcome": ability["area"].astype(str).to_numpy(),
            "n": _num(ability["n_sheets"]),
            "observed": _num(ability["ability"]),
            "se": _num(ability["se"]),
        }
    )
    if ab.duplicated(["unit", "term", "outcome"]).any():
        raise ValueError("ability table has a unit x term x area twice")
    z = _z(level)
    ab["lo"] = ab["observed"] - z * ab["se"]
    ab["hi"] = ab["observed"] + z * ab["se"]
    ab["mean_stage"] = np.nan
    pr = pd.DataFrame(
        {
            "unit": prog["unit"],
            "term": prog["term"],
            "outcome": PROGRESSION,
            "n": prog["n_photos"],
            "observed": prog["index"],
            "se": prog["se"],
            "lo": prog["index_lo"],
            "hi": prog["index_hi"],
            "mean_stage": prog["mean_stage"],
        }
    )
    long = pd.concat([pr, ab], ignore_index=True)

    keys = [long[["unit", "term"]]]
    if units_terms is not None:
        keys.append(units_terms[["unit", "term"]].astype(str))
    cells = pd.concat(keys, ignore_index=True).drop_duplicates()
    term_rank = {t: term_sort_key(t) for t in cells["term"].unique()}
    grid = cells.merge(pd.DataFrame({"outcome": list(OUTCOMES)}), how="cross")
    long = grid.merge(long, on=["unit", "term", "outcome"], how="left")
    long["n"] = long["n"].fillna(0).astype(int)
    valid = long["observed"].notna() & long["se"].notna() & (long["se"] >= 0)
    long["suppressed"] = (long["n"] < min_n) | ~valid
    for col in ("observed", "se", "lo", "hi", "mean_stage"):
        long.loc[long["suppressed"], col] = np.nan
    long["term_rank"] = long["term"].map(lambda t: term_rank[t][0] * 2 + term_rank[t][1])
    outcome_rank = {o: i for i, o in enumerate(OUTCOMES)}
    long["_o"] = long["outcome"].map(outcome_rank)
    long = long.sort_values(["unit", "term_rank", "_o"]).drop(columns="_o")
    return long.reset_index(drop=True)


def _prepare_context(context: pd.DataFrame) -> pd.DataFrame:
    _require(context, "context", ("unit", "term", *CONTEXT_COLUMNS))
    ind_cols = indicator_columns(context)
    ctx = context[["unit", "term", *CONTEXT_COLUMNS, *ind_cols]].copy()
    ctx["unit"] = ctx["unit"].astype(str)
    ctx["term"] = ctx["term"].astype(str)
    for col in (*CONTEXT_COLUMNS, *ind_cols):
        ctx[col] = _num(ctx[col])
    if ctx.duplicated(["unit", "term"]).any():
        raise ValueError("context table has a unit x term twice")
    return ctx


# ---------------------------------------------------------------------------------------------
# models
# ---------------------------------------------------------------------------------------------
def fit_context_models(
    progression: pd.DataFrame,
    ability: pd.DataFrame,
    context: pd.DataFrame,
    *,
    min_n: int = MIN_GROUP_SIZE,
    level: float = 0.9,
    random_state: int = 0,
) -> dict[str, ContextModel]:
    """Fit one :class:`ContextModel` per outcome (``"progression"`` and each area with data).

    Only figures that are shown (at least ``min_n`` photos/sheets) and have context are used.
    Indicator columns of ``context`` are offered to each model as optional features: used only
    when they lower its grouped cross-validation error (see each model's ``selection_`` and
    :func:`indicator_selection`).

    Returns:
        dict outcome -> fitted model; outcomes with too few rows to fit are left out.
    """
    obs = observations(progression, ability, min_n=min_n, level=level)
    return _fit_models(obs, _prepare_context(context), level, random_state)


def _fit_models(
    obs: pd.DataFrame, ctx: pd.DataFrame, level: float, random_state: int
) -> dict[str, ContextModel]:
    data = obs[~obs["suppressed"]].merge(ctx, on=["unit", "term"], how="inner")
    data = data.dropna(subset=list(CONTEXT_COLUMNS))
    optional = indicator_columns(ctx)
    models: dict[str, ContextModel] = {}
    for outcome, rows in data.groupby("outcome", sort=False):
        if len(rows) < len(CONTEXT_COLUMNS) + 2:
            continue
        model = ContextModel(optional=optional, level=level, random_state=random_state)
        models[str(outcome)] = model.fit(rows, rows["observed"], rows["se"], rows["unit"])
    return models


def what_if(
    models: Mapping[str, ContextModel],
    unit_context_row: Mapping[str, float] | pd.Series,
    changes: Mapping[str, float],
) -> list[WhatIfResult]:
    """Predicted change of every outcome for a change of context, e.g.
    ``{"children_per_fte": -0.5}`` (raw units; shares as fractions). An association, not a cause.

    Returns:
        one :class:`WhatIfResult` per modelled outcome, in :data:`OUTCOMES` order.
    """
    row = dict(unit_context_row)

    def measured(model: ContextModel) -> bool:
        # a model that uses an indicator the unit has not measured cannot answer for it
        return all(row.get(f) is not None and not pd.isna(row[f]) for f in model.features_)

    return [
        models[o].what_if(row, changes, outcome=o)
        for o in OUTCOMES
        if o in models and measured(models[o])
    ]


def indicator_selection(models: Mapping[str, ContextModel]) -> list[IndicatorSelection]:
    """Per modelled outcome (in :data:`OUTCOMES` order): the quality indicators its model tried
    and the ones it used because they lowered the grouped cross-validation error."""
    out = []
    for outcome in OUTCOMES:
        model = models.get(outcome)
        if model is None:
            continue
        report = getattr(model, "selection_", [])
        key = len(INDICATOR_PREFIX)
        out.append(
            IndicatorSelection(
                outcome=outcome,
                used=[r.feature[key:] for r in report if r.used],
                tried=[
                    {
                        "key": r.feature[key:],
                        "used": r.used,
                        "cv_gain": r.cv_gain,
                        "reason": r.reason,
                    }
                    for r in report
                ],
            )
        )
    return out


# ---------------------------------------------------------------------------------------------
# text
# ---------------------------------------------------------------------------------------------
def _f(x: float, lang: str, signed: bool = True) -> str:
    text = f"{x:+.2f}" if signed else f"{x:.2f}"
    return text.replace(".", ",") if lang == "sv" else text


def _explain(row: dict, level: float, lang: str) -> str:
    outcome = row["outcome"]
    label = OUTCOME_LABELS[outcome][lang]
    pct = f"{round(level * 100)} %"
    is_prog = outcome == PROGRESSION
    if lang == "sv":
        n_text = f"{row['n']} {'foton' if is_prog else 'bedömningsunderlag'}"
        what = "index" if is_prog else "genomsnittliga förmåga"
        parts = [f"{label}: {_WHAT[outcome]['sv']}."]
        parts.append(f"Den här terminen är enhetens {what} {_f(row['observed'], 'sv')} ({n_text}).")
        if row["below_expected"]:
            parts.append(
                f"Enheter med liknande förutsättningar förväntas ligga på "
                f"{_f(row['expected'], 'sv')}; avvikelsen är {_f(row['shrunk_residual'], 'sv')} "
                f"({pct}-intervall {_f(row['shrunk_lo'], 'sv')} till {_f(row['shrunk_hi'], 'sv')}), "
                f"tydligt under det förväntade. Det är ett samband med förutsättningarna, "
                f"inte en orsak."
            )
        if row["below_earlier"]:
            parts.append(
                f"Det är {_f(row['change'], 'sv')} jämfört med enhetens tidigare terminer "
                f"({', '.join(row['earlier_terms'])}; {pct}-intervall {_f(row['change_lo'], 'sv')} "
                f"till {_f(row['change_hi'], 'sv')})."
            )
        parts.append(f"Förslag: {_SUGGESTION[outcome]['sv']}")
        return " ".join(parts)
    n_text = f"{row['n']} {'photos' if is_prog else 'sheets'}"
    what = "index" if is_prog else "mean ability"
    parts = [f"{label}: {_WHAT[outcome]['en']}."]
    parts.append(f"This term the unit's {what} is {_f(row['observed'], 'en')} ({n_text}).")
    if row["below_expected"]:
        parts.append(
            f"Units with a similar context would be expected at {_f(row['expected'], 'en')}; the "
            f"deviation is {_f(row['shrunk_residual'], 'en')} ({pct} interval "
            f"{_f(row['shrunk_lo'], 'en')} to {_f(row['shrunk_hi'], 'en')}), credibly below "
            f"expectation. This is an association with context, not a cause."
        )
    if row["below_earlier"]:
        parts.append(
            f"It is {_f(row['change'], 'en')} compared with the unit's earlier terms "
            f"({', '.join(row['earlier_terms'])}; {pct} interval {_f(row['change_lo'], 'en')} to "
            f"{_f(row['change_hi'], 'en')})."
        )
    parts.append(f"Suggestion: {_SUGGESTION[outcome]['en']}")
    return " ".join(parts)


# ---------------------------------------------------------------------------------------------
# computations on the whole long table
# ---------------------------------------------------------------------------------------------
def _earlier_terms(obs: pd.DataFrame, level: float) -> pd.DataFrame:
    """Compare each shown figure with the inverse-variance mean of the unit's earlier shown terms."""
    shown = ~obs["suppressed"] & (obs["se"] > 0)
    w = np.where(shown, 1.0 / np.where(shown, obs["se"], 1.0) ** 2, 0.0)
    frame = pd.DataFrame(
        {
            "w": w,
            "wv": np.where(shown, w * obs["observed"].fillna(0.0), 0.0),
            "k": shown.astype(int),
        }
    )
    grouped = frame.groupby([obs["unit"], obs["outcome"]], sort=False)
    # obs is sorted by unit and term, so cumulative sums minus the row itself cover earlier terms.
    cw = grouped["w"].cumsum() - frame["w"]
    cwv = grouped["wv"].cumsum() - frame["wv"]
    ck = grouped["k"].cumsum() - frame["k"]
    with np.errstate(divide="ignore", invalid="ignore"):
        prev_mean = cwv / cw
        prev_se = 1.0 / np.sqrt(cw)
    change = obs["observed"] - prev_mean
    change_se = np.sqrt(obs["se"] ** 2 + prev_se**2)
    z = _z(level)
    ok = shown & (ck > 0)
    out = pd.DataFrame(
        {
            "change": change.where(ok),
            "change_lo": (change - z * change_se).where(ok),
            "change_hi": (change + z * change_se).where(ok),
            "n_earlier": ck,
        },
        index=obs.index,
    )
    return out


def _triangulation_across(
    tri: pd.DataFrame, level: float, min_n: int
) -> dict[str, TriangulationAcrossUnits]:
    result: dict[str, TriangulationAcrossUnits] = {}
    z = _z(level)
    for term, rows in tri.groupby("term", sort=False):
        both = rows.dropna(subset=["progression_z", "assessment_z"])
        n = len(both)
        if n < max(min_n, 4) or both["progression_z"].std() == 0 or both["assessment_z"].std() == 0:
            result[str(term)] = TriangulationAcrossUnits(
                term=str(term),
                n_units=n,
                suppressed=True,
                pearson_r=None,
                r_lo=None,
                r_hi=None,
                spearman_rho=None,
            )
            continue
        r = float(np.corrcoef(both["progression_z"], both["assessment_z"])[0, 1])
        fz = np.arctanh(np.clip(r, -0.999999, 0.999999))
        half = z / np.sqrt(n - 3)
        rho = float(stats.spearmanr(both["progression_z"], both["assessment_z"]).statistic)
        result[str(term)] = TriangulationAcrossUnits(
            term=str(term),
            n_units=n,
            suppressed=False,
            pearson_r=r,
            r_lo=float(np.tanh(fz - half)),
            r_hi=float(np.tanh(fz + half)),
            spearman_rho=rho,
        )
    return result


def _indicator_values(
    ctx: pd.DataFrame, indicators: Sequence[Indicator], selection: list[IndicatorSelection]
) -> dict[tuple[str, str], list[IndicatorValue]]:
    """(unit, term) -> the unit's quality indicators next to the municipality mean of the term."""
    declared = {ind.key: ind for ind in indicators}
    keys = [c[len(INDICATOR_PREFIX) :] for c in indicator_columns(ctx)]
    if not keys:
        return {}
    used_by: dict[str, list[str]] = defaultdict(list)
    for s in selection:
        for k in s.used:
            used_by[k].append(s.outcome)
    cols = [indicator_column(k) for k in keys]
    by_term = ctx.groupby("term")[cols]
    mean, sd, count = by_term.mean(), by_term.std(ddof=1), by_term.count()
    out: dict[tuple[str, str], list[IndicatorValue]] = {}
    for r in ctx[["unit", "term", *cols]].itertuples(index=False, name=None):
        unit, term, *values = r
        items = []
        for k, col, v in zip(keys, cols, values, strict=True):
            ind = declared.get(k) or Indicator(k, k, k, "", "neutral")
            value = _opt(v)
            n_units = int(count.at[term, col])
            m = _opt(mean.at[term, col]) if n_units else None
            diff = None if value is None or m is None else value - m
            favourable = None
            if diff is not None and diff != 0 and ind.direction != "neutral":
                favourable = (diff > 0) == (ind.direction == "higher_better")
            items.append(
                IndicatorValue(
                    key=k, label_sv=ind.label_sv, label_en=ind.label_en, measure_unit=ind.unit,
                    direction=ind.direction, reference=ind.reference, value=value,
                    municipality_mean=m,
                    municipality_sd=_opt(sd.at[term, col]) if n_units > 1 else None,
                    municipality_n_units=n_units, difference=diff, favourable=favourable,
                    used_by_model=used_by.get(k, []),
                )
            )  # fmt: skip
        out[(str(unit), str(term))] = items
    return out


def _opt(x: object) -> float | None:
    if x is None:
        return None
    v = float(x)  # type: ignore[arg-type]
    return None if np.isnan(v) else v


# ---------------------------------------------------------------------------------------------
# the profile builder
# ---------------------------------------------------------------------------------------------
def build_profiles(
    progression: pd.DataFrame,
    ability: pd.DataFrame,
    context: pd.DataFrame,
    *,
    min_n: int = MIN_GROUP_SIZE,
    k_similar: int = 5,
    level: float = 0.9,
    models: Mapping[str, ContextModel] | None = None,
    random_state: int = 0,
    indicators: Sequence[Indicator] = (),
) -> list[UnitProfile]:
    """Build one :class:`UnitProfile` per unit x term found in any of the three tables.

    Args:
        progression: progression table (stages; intervals at ``level``).
        ability: ability table (logits with SE).
        context: context table (as from :func:`profiles.context.read_context_file`).
        min_n: figures resting on fewer photos/sheets are suppressed (value None, n kept).
        k_similar: number of similar units (nearest by standardised context, same term).
        level: coverage of every interval (0.9 = 90 %).
        models: fitted models per outcome (from :func:`fit_context_models`); fitted here if None.
        random_state: seed of the model bootstrap.
        indicators: the municipality's indicator dictionary: labels, units and directions of
            the indicator columns of ``context`` (a column without an entry is shown by its key).

    Returns:
        profiles sorted by unit and chronological term.
    """
    ctx = _prepare_context(context)
    obs = observations(progression, ability, units_terms=ctx, min_n=min_n, level=level)
    if models is None:
        models = _fit_models(obs, ctx, level, random_state)

    # --- expected vs observed, per outcome model, on whole columns ---
    obs = obs.merge(ctx, on=["unit", "term"], how="left")
    assessed_cols = [
        "expected", "expected_se", "residual", "residual_lo", "residual_hi",
        "shrunk_residual", "shrunk_lo", "shrunk_hi",
    ]  # fmt: skip
    for col in assessed_cols:
        obs[col] = np.nan
    obs["tau"] = np.nan
    for outcome, model in models.items():
        features = list(getattr(model, "features_", model.features))
        has_ctx = obs[features].notna().all(axis=1).to_numpy() if features else True
        sel = (obs["outcome"] == outcome).to_numpy() & has_ctx
        if not sel.any():
            continue
        part = obs.loc[sel]
        assessed = model.assess(part, part["observed"], part["se"])
        obs.loc[sel, assessed_cols] = assessed[assessed_cols].to_numpy()
        obs.loc[sel, "tau"] = np.sqrt(model.tau2_)

    earlier = _earlier_terms(obs, level)
    obs = pd.concat([obs, earlier], axis=1)
    obs["below_expected"] = (obs["shrunk_hi"] < 0).fillna(False).astype(bool)
    obs["below_earlier"] = (obs["change_hi"] < 0).fillna(False).astype(bool)
    gap_exp = np.where(obs["below_expected"], obs["shrunk_residual"] / obs["tau"], 0.0)
    # Without a model the spread of true deviations is unknown; fall back to the change's own SE.
    tau_or_se = obs["tau"].fillna((obs["change_hi"] - obs["change_lo"]) / (2 * _z(level)))
    gap_early = np.where(obs["below_earlier"], obs["change"] / tau_or_se, 0.0)
    obs["gap"] = np.minimum(np.nan_to_num(gap_exp), np.nan_to_num(gap_early))

    # --- triangulation per unit x term ---
    obs["z"] = obs["shrunk_residual"] / obs["tau"]
    prog_z = obs[obs["outcome"] == PROGRESSION].set_index(["unit", "term"])["z"]
    area_rows = obs[obs["outcome"] != PROGRESSION]
    assess_z = area_rows.groupby(["unit", "term"], sort=False)["z"].mean()
    n_areas = area_rows.groupby(["unit", "term"], sort=False)["z"].count()
    tri = pd.DataFrame({"progression_z": prog_z}).join(
        pd.DataFrame({"assessment_z": assess_z, "n_areas": n_areas}), how="outer"
    )
    tri = tri.reset_index()
    across = _triangulation_across(tri, level, min_n)

    # --- figures, built once and shared between profiles ---
    z_level = _z(level)
    prog_fig: dict[tuple[str, str], ProgressionFigure] = {}
    ab_fig: dict[tuple[str, str], list[AbilityFigure]] = defaultdict(list)
    rank_of: dict[tuple[str, str], int] = {}
    for r in obs.itertuples(index=False):
        key = (r.unit, r.term)
        rank_of[key] = r.term_rank
        sup = bool(r.suppressed)
        if r.outcome == PROGRESSION:
            prog_fig[key] = ProgressionFigure(
                term=r.term, n_photos=int(r.n), suppressed=sup, mean_stage=_opt(r.mean_stage),
                index=_opt(r.observed), index_lo=_opt(r.lo), index_hi=_opt(r.hi),
            )  # fmt: skip
        else:
            labels = AREA_LABELS[r.outcome]
            ab_fig[key].append(
                AbilityFigure(
                    term=r.term, area=r.outcome, label_sv=labels["sv"], label_en=labels["en"],
                    n_sheets=int(r.n), suppressed=sup, ability=_opt(r.observed), se=_opt(r.se),
                    ability_lo=None if sup else _opt(r.observed - z_level * r.se),
                    ability_hi=None if sup else _opt(r.observed + z_level * r.se),
                )
            )  # fmt: skip

    expected_of: dict[tuple[str, str], list[ExpectedVsObserved]] = defaultdict(list)
    areas_of: dict[tuple[str, str], list[dict]] = defaultdict(list)
    cols = [
        "unit", "term", "outcome", "n", "suppressed", "observed", "expected", "expected_se",
        "residual", "residual_lo", "residual_hi", "shrunk_residual", "shrunk_lo", "shrunk_hi",
        "below_expected", "below_earlier", "gap", "change", "change_lo", "change_hi",
        "term_rank",
    ]  # fmt: skip
    for r in obs[cols].itertuples(index=False):
        key = (r.unit, r.term)
        sup = bool(r.suppressed)
        expected_of[key].append(
            ExpectedVsObserved(
                outcome=r.outcome, label_sv=OUTCOME_LABELS[r.outcome]["sv"],
                label_en=OUTCOME_LABELS[r.outcome]["en"], measure_unit=OUTCOME_MEASURE[r.outcome],
                n=int(r.n), suppressed=sup, observed=_opt(r.observed), expected=_opt(r.expected),
                expected_se=_opt(r.expected_se),
                residual=None if sup else _opt(r.residual),
                residual_lo=None if sup else _opt(r.residual_lo),
                residual_hi=None if sup else _opt(r.residual_hi),
                shrunk_residual=None if sup else _opt(r.shrunk_residual),
                shrunk_lo=None if sup else _opt(r.shrunk_lo),
                shrunk_hi=None if sup else _opt(r.shrunk_hi),
                note_sv=ASSOCIATION_NOTE["sv"], note_en=ASSOCIATION_NOTE["en"],
            )
        )  # fmt: skip
        if r.below_expected or r.below_earlier:
            areas_of[key].append(r._asdict())

    # Earlier terms of each unit, for the "previous" lists and the explanations.
    terms_of_unit: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for unit, term in prog_fig:
        terms_of_unit[unit].append((rank_of[(unit, term)], term))
    for unit in terms_of_unit:
        terms_of_unit[unit].sort()

    # --- similar units: nearest by standardised context within the same term ---
    similar_of: dict[tuple[str, str], list[SimilarUnit]] = {}
    ctx_valid = ctx.dropna(subset=list(CONTEXT_COLUMNS)).reset_index(drop=True)
    feats = ctx_valid[list(CONTEXT_COLUMNS)].to_numpy(dtype=float)
    if len(feats):
        scale = feats.std(axis=0)
        standardised = (feats - feats.mean(axis=0)) / np.where(scale > 0, scale, 1.0)
    else:
        standardised = feats
    for _term, idx in ctx_valid.groupby("term", sort=False).indices.items():
        if len(idx) < 2 or k_similar <= 0:
            continue
        k = min(k_similar + 1, len(idx))
        nn = NearestNeighbors(n_neighbors=k).fit(standardised[idx])
        dist, nbr = nn.kneighbors(standardised[idx])
        units = ctx_valid["unit"].to_numpy()[idx]
        term = str(_term)
        for i, unit in enumerate(units):
            chosen = [
                (d, units[j]) for d, j in zip(dist[i], nbr[i], strict=True) if units[j] != unit
            ]
            similar_of[(unit, term)] = [
                SimilarUnit(
                    unit=other, distance=float(d), progression=prog_fig[(other, term)],
                    ability=ab_fig[(other, term)],
                )
                for d, other in chosen[:k_similar]
            ]  # fmt: skip

    # --- context values next to municipality means and national references ---
    means = municipality_means(ctx_valid) if len(ctx_valid) else pd.DataFrame()
    ctx_by_key = {
        (u, t): vals
        for u, t, *vals in ctx[["unit", "term", *CONTEXT_COLUMNS]].itertuples(index=False)
    }
    tri_by_key = {(r.unit, r.term): r for r in tri.itertuples(index=False)}
    selection = indicator_selection(models)
    indicators_of = _indicator_values(ctx, indicators, selection)

    profiles: list[UnitProfile] = []
    for unit in sorted(terms_of_unit):
        history = terms_of_unit[unit]
        for pos, (_rank, term) in enumerate(history):
            key = (unit, term)
            earlier_terms = [t for _, t in history[:pos]]
            vals = ctx_by_key.get(key)
            context_values = []
            for j, col in enumerate(CONTEXT_COLUMNS):
                has_mean = term in means.index
                context_values.append(
                    ContextValue(
                        column=col, label_sv=CONTEXT_LABELS[col]["sv"],
                        label_en=CONTEXT_LABELS[col]["en"], measure_unit=CONTEXT_LABELS[col]["unit"],
                        value=None if vals is None else _opt(vals[j]),
                        municipality_mean=_opt(means.at[term, col]) if has_mean else None,
                        municipality_n_units=int(means.at[term, "n_units"]) if has_mean else 0,
                        national=REFERENCES.get(col),
                    )
                )  # fmt: skip
            areas = sorted(areas_of.get(key, []), key=lambda a: a["gap"])
            development = []
            for rank, a in enumerate(areas, start=1):
                a["earlier_terms"] = earlier_terms
                reasons = (["below_expected"] if a["below_expected"] else []) + (
                    ["below_earlier_terms"] if a["below_earlier"] else []
                )
                development.append(
                    DevelopmentArea(
                        rank=rank, outcome=a["outcome"], label_sv=OUTCOME_LABELS[a["outcome"]]["sv"],
                        label_en=OUTCOME_LABELS[a["outcome"]]["en"], reasons=reasons,
                        standardised_gap=float(a["gap"]),
                        shrunk_residual=_opt(a["shrunk_residual"]), shrunk_lo=_opt(a["shrunk_lo"]),
                        shrunk_hi=_opt(a["shrunk_hi"]),
                        change_from_earlier=_opt(a["change"]) if a["below_earlier"] else None,
                        change_lo=_opt(a["change_lo"]) if a["below_earlier"] else None,
                        change_hi=_opt(a["change_hi"]) if a["below_earlier"] else None,
                        earlier_terms=earlier_terms if a["below_earlier"] else [],
                        explanation_sv=_explain(a, level, "sv"),
                        explanation_en=_explain(a, level, "en"),
                    )
                )  # fmt: skip
            t = tri_by_key.get(key)
            pz = _opt(t.progression_z) if t is not None else None
            az = _opt(t.assessment_z) if t is not None else None
            if pz is None or az is None:
                agree, diverges, note = None, False, "missing"
            else:
                agree = bool(np.sign(pz) == np.sign(az))
                diverges = (not agree) and abs(pz - az) >= DIVERGENCE_GAP
                note = "agree" if agree else ("diverges" if diverges else "differ")
            triangulation = Triangulation(
                progression_z=pz, assessment_z=az,
                n_areas=int(t.n_areas) if t is not None and not pd.isna(t.n_areas) else 0,
                agree=agree, diverges=diverges, note_sv=_TRIANGULATION_NOTE[note]["sv"],
                note_en=_TRIANGULATION_NOTE[note]["en"],
                across_units=across.get(term) or TriangulationAcrossUnits(
                    term=term, n_units=0, suppressed=True, pearson_r=None, r_lo=None, r_hi=None,
                    spearman_rho=None,
                ),
            )  # fmt: skip
            profiles.append(
                UnitProfile(
                    unit=unit, term=term, min_n=min_n, level=level, progression=prog_fig[key],
                    progression_previous=[prog_fig[(unit, e)] for e in earlier_terms],
                    ability=ab_fig[key],
                    ability_previous=[f for e in earlier_terms for f in ab_fig[(unit, e)]],
                    context=context_values, expected=expected_of[key],
                    development_areas=development, similar_units=similar_of.get(key, []),
                    triangulation=triangulation, note_sv=ASSOCIATION_NOTE["sv"],
                    note_en=ASSOCIATION_NOTE["en"], indicators=indicators_of.get(key, []),
                    indicator_selection=selection,
                )
            )  # fmt: skip
    return profiles
