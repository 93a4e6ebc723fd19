"""``spira report method``: does the method work in the pilot units? A self-contained HTML report.

For the researcher running the pilot, per term and outcome (drawing progression; the
cross-fitted drawing-age gap where ``spira train --from-uploads`` has run; assessed ability per
curriculum area):

- **sample sizes and suppression**: units, photos and sheets, and how many unit figures are
  shown or suppressed (fewer than ``min_n`` observations);
- **reliability of unit figures**: split-half over a unit's photos (sheets), the two halves'
  unit means correlated across units and stepped up with Spearman–Brown (2r / (1 + r)); the
  point is the mean over 50 random splits, the 90 % interval a bootstrap over units (each
  resample with a fresh split; stepped-up values below -1 are floored at -1). It says how far units are told apart by their own data;
- **term-to-term stability**: Pearson r of unit figures between consecutive terms (Fisher-z 90 %
  interval), bounded by the reliability and lowered by real change;
- **convergent validity**: across units, Pearson r of the progression index with the mean
  assessed ability (the two kinds of evidence pointing the same way, or not);
- **rater agreement and model fit**: severities, infit/outfit of raters and rubric items of the
  many-facet model, unit-terms whose severity and ability cannot be separated (confounded);
- **stage-model validation**: what the model card records (synthetic only or real drawings),
  and the cross-fitted drawing-age model's figures when there is one;
- a plain statement of what the figures can and cannot support.

Figures are drawn as inline SVG; the page has no external asset (no script, stylesheet, font
or image fetched). :func:`method_figures` is a pure function of frames (arrays in, dict out);
:func:`method_data` reads them from the database; :func:`render_html` writes the page.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from statistics import NormalDist

import numpy as np
import pandas as pd
from sqlalchemy.orm import Session

from assessment.cases import load_case_library
from core.domain import AREA_LABELS, EXPECTED_STAGE_BY_AGE_BAND, term_sort_key
from profiles.queries import ability_frame, photo_estimates, promoted_stage_version
from training.evaluate import model_validation_of
from training.model_files import list_models
from training.unit_age import (
    CrossFit,
    latest_crossfit_model,
    stored_backbone_version,
    stored_photos,
)
from vision.model import stage_inputs

LEVEL = 0.9
N_SPLITS = 50
N_BOOT = 200
#: Fewest units a correlation across units is computed on (below: "too few units").
MIN_UNITS = 5
PROGRESSION = "progression"
DRAWING_AGE_GAP = "drawing_age_gap"


@dataclass
class MethodData:
    """What the report is computed from.

    ``photos``: unit, term, age_band, expected_stage (one row per photo); ``sheets``: unit, term,
    area, ability (logits, one row per response sheet; may be empty); ``raters`` / ``items``:
    the assessment model's rater and item tables (rater or case/item, severity or difficulty,
    infit, outfit, n); ``stage_model``: version, validation, card metrics; ``drawing_age``: the
    cross-fitted drawing-age model's metrics (or None)."""

    photos: pd.DataFrame
    sheets: pd.DataFrame = field(default_factory=pd.DataFrame)
    raters: pd.DataFrame = field(default_factory=pd.DataFrame)
    items: pd.DataFrame = field(default_factory=pd.DataFrame)
    confounded_unit_terms: int = 0
    stage_model: dict = field(default_factory=dict)
    drawing_age: dict | None = None
    min_n: int = 5
    #: unit, term, gap (years): each photo's cross-fitted drawing-age gap (empty without a model)
    gaps: pd.DataFrame = field(default_factory=pd.DataFrame)


# ---- statistics ------------------------------------------------------------------------------


def spearman_brown(r: float) -> float:
    """Reliability of the whole from the correlation of two halves: 2r / (1 + r), floored at
    -1 (a strongly negative half correlation, seen in bootstraps of a few units, would step
    down below -1, which no correlation can be); NaN when ``r`` is (too few units, flat halves),
    so an incomputable resample is left out rather than counted as -1."""
    if not math.isfinite(r):
        return float("nan")
    return max(float(2 * r / (1 + r)), -1.0) if r > -1 else -1.0


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 3 or np.ptp(x) < 1e-12 or np.ptp(y) < 1e-12:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def correlation_figure(x, y, *, level: float = LEVEL) -> dict:
    """Pearson r with a Fisher-z interval and n; value None below :data:`MIN_UNITS` pairs."""
    x, y = np.asarray(x, float), np.asarray(y, float)
    n = len(x)
    r = _pearson(x, y) if n >= MIN_UNITS else float("nan")
    if not math.isfinite(r):
        return {"value": None, "lo": None, "hi": None, "n": n}
    z = NormalDist().inv_cdf(0.5 + level / 2)
    fz = math.atanh(max(min(r, 0.999999), -0.999999))
    half = z / math.sqrt(n - 3) if n > 3 else float("inf")
    return {"value": r, "lo": math.tanh(fz - half), "hi": math.tanh(fz + half), "n": n}


def split_half_reliability(
    values: np.ndarray,
    units: np.ndarray,
    *,
    min_n: int,
    seed: int = 0,
    n_splits: int = N_SPLITS,
    n_boot: int = N_BOOT,
    level: float = LEVEL,
) -> dict:
    """Spearman–Brown split-half reliability of unit means (see the module docstring).

    Units with fewer than ``min_n`` observations (suppressed figures) are left out; None below
    :data:`MIN_UNITS` units."""
    values = np.asarray(values, float)
    units = np.asarray(units).astype(str)
    members = [np.flatnonzero(units == u) for u in sorted(set(units))]
    members = [m for m in members if len(m) >= max(min_n, 2)]
    out: dict = {"value": None, "lo": None, "hi": None, "n": len(members)}
    if len(members) < MIN_UNITS:
        return out
    rng = np.random.default_rng(seed)

    def one_split(groups: list[np.ndarray]) -> float:
        a, b = np.empty(len(groups)), np.empty(len(groups))
        for i, m in enumerate(groups):
            p = rng.permutation(m)
            a[i], b[i] = values[p[0::2]].mean(), values[p[1::2]].mean()
        return spearman_brown(_pearson(a, b))

    point = np.nanmean([one_split(members) for _ in range(n_splits)])
    draws = []
    for _ in range(n_boot):
        pick = rng.integers(0, len(members), len(members))
        draws.append(one_split([members[i] for i in pick]))
    draws_arr = np.array(draws)
    draws_arr = draws_arr[np.isfinite(draws_arr)]
    if math.isfinite(point):
        out["value"] = float(point)
    if len(draws_arr) >= n_boot // 2:
        alpha = (1 - level) / 2
        out["lo"], out["hi"] = (float(q) for q in np.quantile(draws_arr, [alpha, 1 - alpha]))
    return out


# ---- the figures -----------------------------------------------------------------------------


def _observations(data: MethodData) -> dict[str, pd.DataFrame]:
    """Per outcome, one row per observation: unit, term, value (progression index in stages;
    sheet ability in logits)."""
    photos = data.photos
    out: dict[str, pd.DataFrame] = {}
    if len(photos):
        expected = photos["age_band"].astype(str).map(EXPECTED_STAGE_BY_AGE_BAND).astype(float)
        out[PROGRESSION] = pd.DataFrame(
            {
                "unit": photos["unit"].astype(str),
                "term": photos["term"].astype(str),
                "value": photos["expected_stage"].astype(float) - expected,
            }
        ).dropna()
    if len(data.gaps):
        out[DRAWING_AGE_GAP] = pd.DataFrame(
            {
                "unit": data.gaps["unit"].astype(str),
                "term": data.gaps["term"].astype(str),
                "value": data.gaps["gap"].astype(float),
            }
        ).dropna()
    sheets = data.sheets
    if len(sheets) and {"unit", "term", "area", "ability"} <= set(sheets.columns):
        for area in sorted(set(sheets["area"].dropna().astype(str))):
            rows = sheets[sheets["area"].astype(str) == area]
            out[area] = pd.DataFrame(
                {
                    "unit": rows["unit"].astype(str),
                    "term": rows["term"].astype(str),
                    "value": rows["ability"].astype(float),
                }
            ).dropna()
    return out


def _unit_means(obs: pd.DataFrame, min_n: int) -> pd.DataFrame:
    """unit x term means of shown figures (at least ``min_n`` observations)."""
    g = obs.groupby(["unit", "term"])["value"].agg(["mean", "size"]).reset_index()
    return g[g["size"] >= min_n]


def outcome_label(outcome: str) -> str:
    if outcome == PROGRESSION:
        return "Drawing progression (index, stages)"
    if outcome == DRAWING_AGE_GAP:
        return "Drawing-age gap (cross-fitted, years)"
    return f"{AREA_LABELS.get(outcome, {}).get('en', outcome)} (ability, logits)"


def method_figures(data: MethodData, *, seed: int = 0) -> dict:
    """Every figure of the report (JSON-compatible; see the module docstring)."""
    min_n = data.min_n
    obs = _observations(data)
    terms = sorted({t for o in obs.values() for t in o["term"]}, key=term_sort_key)
    samples, reliability, stability, convergent = [], [], [], []
    means = {k: _unit_means(o, min_n) for k, o in obs.items()}
    for outcome, o in obs.items():
        for term in terms:
            rows = o[o["term"] == term]
            if rows.empty:
                continue
            sizes = rows.groupby("unit").size()
            samples.append(
                {
                    "outcome": outcome,
                    "term": term,
                    "n_units": int(len(sizes)),
                    "n_observations": int(len(rows)),
                    "shown": int((sizes >= min_n).sum()),
                    "suppressed": int((sizes < min_n).sum()),
                }
            )
            rel = split_half_reliability(
                rows["value"].to_numpy(), rows["unit"].to_numpy(), min_n=min_n, seed=seed
            )
            reliability.append({"outcome": outcome, "term": term, **rel})
        m = means[outcome]
        for a, b in zip(terms, terms[1:], strict=False):
            pair = m[m["term"] == a].merge(m[m["term"] == b], on="unit", suffixes=("_a", "_b"))
            fig = correlation_figure(pair["mean_a"], pair["mean_b"])
            stability.append({"outcome": outcome, "from": a, "to": b, **fig})
    areas = [k for k in means if k not in (PROGRESSION, DRAWING_AGE_GAP)]
    drawing = [k for k in (PROGRESSION, DRAWING_AGE_GAP) if k in means]
    if areas:
        ability = pd.concat([means[a] for a in areas]).groupby(["unit", "term"])["mean"].mean()
        for outcome in drawing:
            prog = means[outcome].set_index(["unit", "term"])["mean"]
            both = pd.concat([prog.rename("drawing"), ability.rename("ability")], axis=1).dropna()
            for term in terms:
                rows = both[both.index.get_level_values("term") == term]
                convergent.append(
                    {
                        "outcome": outcome,
                        "term": term,
                        **correlation_figure(rows["drawing"], rows["ability"]),
                    }
                )
    return {
        "generated_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "min_n": min_n,
        "level": LEVEL,
        "terms": terms,
        "samples": samples,
        "reliability": reliability,
        "stability": stability,
        "convergent": convergent,
        "assessment_model": _model_fit(data),
        "stage_model": data.stage_model,
        "drawing_age": data.drawing_age,
        "statements": _statements(data, reliability, convergent),
    }


def _fit_summary(table: pd.DataFrame) -> dict | None:
    if table.empty or "infit" not in table.columns:
        return None
    infit = table["infit"].astype(float)
    outfit = table["outfit"].astype(float)
    misfit = ((infit < 0.5) | (infit > 1.5) | (outfit < 0.5) | (outfit > 1.5)).fillna(False)
    return {
        "n": int(len(table)),
        "n_misfit": int(misfit.sum()),
        "infit_median": float(infit.median()) if infit.notna().any() else None,
        "outfit_median": float(outfit.median()) if outfit.notna().any() else None,
    }


def _model_fit(data: MethodData) -> dict:
    raters = _fit_summary(data.raters)
    if raters is not None and "severity" in data.raters.columns:
        sev = data.raters["severity"].astype(float)
        raters["severity_sd"] = float(sev.std()) if len(sev) > 1 else None
        raters["severity_range"] = [float(sev.min()), float(sev.max())]
    return {
        "raters": raters,
        "items": _fit_summary(data.items),
        "confounded_unit_terms": int(data.confounded_unit_terms),
    }


def _statements(data: MethodData, reliability: list[dict], convergent: list[dict]) -> dict:
    can, cannot = [], []
    validated = data.stage_model.get("validation", {}).get("status") == "validated"
    if not validated:
        cannot.append(
            "Say anything about children's drawing development: the stage model has not been "
            "validated on real drawings (only on synthetic ones), so the progression figures "
            "describe how the model reads the photos."
        )
    else:
        can.append(
            "Read the stage model's figures against its validation on real drawings: "
            + str(data.stage_model["validation"].get("text", ""))
        )
    prog = [r for r in reliability if r["outcome"] == PROGRESSION and r["value"] is not None]
    if prog:
        low = [r for r in prog if r["value"] < 0.7]
        if low:
            cannot.append(
                "Tell units apart reliably on drawing progression in "
                + ", ".join(r["term"] for r in low)
                + " (split-half reliability below 0.7): differences between units there are "
                "largely noise."
            )
        high = [r for r in prog if r["value"] >= 0.7 and (r["lo"] or 0) >= 0.5]
        if high:
            can.append(
                "Separate units on drawing progression in "
                + ", ".join(r["term"] for r in high)
                + " (split-half reliability at least 0.7, lower bound at least 0.5)."
            )
    else:
        cannot.append(
            f"Estimate the reliability of unit progression figures: fewer than {MIN_UNITS} "
            "units with enough photos in every term."
        )
    conv = [c for c in convergent if c["value"] is not None and c["outcome"] == PROGRESSION]
    if conv:
        crossing = [c for c in conv if c["lo"] is not None and c["lo"] <= 0 <= c["hi"]]
        if crossing:
            cannot.append(
                "Show that drawing progression and assessed ability measure related things: "
                "their correlation across units includes 0 in "
                + ", ".join(c["term"] for c in crossing)
                + "."
            )
    else:
        cannot.append(
            f"Check convergent validity: fewer than {MIN_UNITS} units have both drawing and "
            "assessment figures in a term."
        )
    if data.drawing_age is None:
        cannot.append(
            "Report a cross-fitted drawing-age gap: no drawing-age model has been trained on the "
            "stored uploads (`spira train --from-uploads`)."
        )
    cannot += [
        "Profile, rank or compare individual children: every figure is a unit aggregate, by design.",
        "Explain why a unit differs: comparisons with what a unit's context would lead one to "
        "expect describe associations, not causes.",
        "Rank units: a ranking drops the intervals; differences between units within their "
        "intervals are not differences the data show.",
    ]
    fit = _model_fit(data)
    raters = fit["raters"]
    if raters and raters["n_misfit"]:
        cannot.append(
            f"Take every educator's ratings at face value: {raters['n_misfit']} of {raters['n']} "
            "raters fit the assessment model poorly (infit or outfit outside 0.5–1.5)."
        )
    if fit["confounded_unit_terms"]:
        cannot.append(
            f"Separate rater severity from unit ability in {fit['confounded_unit_terms']} "
            "unit-term(s): their raters are linked to no other unit (calibration ratings link them)."
        )
    can.append(
        "Follow a unit over terms, as far as its intervals and the stability figures allow, and "
        "decide where to look closer together with the educators."
    )
    return {"can": can, "cannot": cannot}


# ---- the database edge -----------------------------------------------------------------------


def method_data(session: Session, *, min_n: int) -> MethodData:
    """Read everything the report needs from the database and the model registry."""
    photos = photo_estimates(session)
    ability, pcm = ability_frame(session, min_n=min_n)
    sheets = pd.DataFrame(columns=["unit", "term", "area", "ability"])
    raters = items = pd.DataFrame()
    confounded = 0
    if pcm is not None:
        table = pcm.sheet_table()  # type: ignore[attr-defined]
        table = table[~table["calibration"].astype(bool) & table["unit"].notna()]
        if "area" not in table.columns and "case" in table.columns:
            table = table.assign(area=table["case"].map(load_case_library().case_areas()))
        age = table["age_effect"].fillna(0.0) if "age_effect" in table.columns else 0.0
        sheets = table.assign(ability=table["ability"].astype(float) - age)[
            ["unit", "term", "area", "ability"]
        ]
        raters = pcm.rater_table()  # type: ignore[attr-defined]
        items = pcm.item_table()  # type: ignore[attr-defined]
        confounded = int(pcm.unit_table()["confounded"].sum())  # type: ignore[attr-defined]
    version = promoted_stage_version(session)
    meta = {m["version"]: m for m in list_models()}.get(version or "", {})
    card = meta.get("metrics", {})
    stage_model = {
        "version": version,
        "validation": model_validation_of(version),
        "trained_on": meta.get("data", {}).get("description"),
        "out_of_fold": {k: card.get(k) for k in ("qwk", "mae", "accuracy", "ece", "n")},
    }
    backbone = stored_backbone_version(session)
    crossfit = latest_crossfit_model(backbone) if backbone else None
    drawing_age = None
    gaps = pd.DataFrame(columns=["unit", "term", "gap"])
    if crossfit is not None:
        drawing_age = {
            "version": crossfit["version"],
            **crossfit.get("metrics", {}).get("crossfit", {}),
            "validation": model_validation_of(crossfit["version"]),
        }
        heads = CrossFit.load(crossfit["path"])
        stored = stored_photos(session, crossfit["feature_names"], backbone_version=backbone)
        if heads is not None and len(stored.ages):
            X = stage_inputs(stored.embeddings, stored.features)
            gaps = pd.DataFrame(
                {
                    "unit": stored.units,
                    "term": stored.terms,
                    "gap": heads.gaps(X, stored.ages, stored.units),
                }
            )
    return MethodData(
        photos=photos[["unit", "term", "age_band", "expected_stage"]]
        if len(photos)
        else pd.DataFrame(columns=["unit", "term", "age_band", "expected_stage"]),
        sheets=sheets,
        raters=raters,
        items=items,
        confounded_unit_terms=confounded,
        stage_model=stage_model,
        drawing_age=drawing_age,
        min_n=min_n,
        gaps=gaps,
    )


# ---- HTML ------------------------------------------------------------------------------------


def _fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return html.escape(str(v))


def _interval(f: dict) -> str:
    if f.get("value") is None:
        return f"too few units (n = {f.get('n', 0)})"
    if f.get("lo") is None:
        return f"{_fmt(f['value'])} (n = {f['n']})"
    return f"{_fmt(f['value'])} [{_fmt(f['lo'])}, {_fmt(f['hi'])}] (n = {f['n']})"


def forest_svg(rows: list[tuple[str, dict]], *, lo: float = -1.0, hi: float = 1.0) -> str:
    """Inline SVG: one line per (label, figure) with its point and interval on [lo, hi]."""
    width, label_w, row_h, pad = 640, 260, 22, 24
    plot_w = width - label_w - 20
    height = pad * 2 + row_h * max(len(rows), 1)

    def x(v: float) -> float:
        return label_w + (min(max(v, lo), hi) - lo) / (hi - lo) * plot_w

    parts = [f'<svg width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img">']
    for tick in np.linspace(lo, hi, 5):
        tx = x(float(tick))
        parts.append(
            f'<line x1="{tx:.1f}" y1="{pad - 6}" x2="{tx:.1f}" y2="{height - pad + 6}" '
            'stroke="#ddd"/>'
            f'<text x="{tx:.1f}" y="{height - 6}" font-size="11" text-anchor="middle">'
            f"{tick:.1f}</text>"
        )
    for i, (label, f) in enumerate(rows):
        y = pad + row_h * i + row_h / 2
        parts.append(
            f'<text x="4" y="{y + 4:.1f}" font-size="12">{html.escape(label)} '
            f"(n = {f.get('n', 0)})</text>"
        )
        if f.get("value") is None:
            parts.append(
                f'<text x="{label_w}" y="{y + 4:.1f}" font-size="12" fill="#777">too few units'
                "</text>"
            )
            continue
        if f.get("lo") is not None:
            parts.append(
                f'<line x1="{x(f["lo"]):.1f}" y1="{y:.1f}" x2="{x(f["hi"]):.1f}" y2="{y:.1f}" '
                'stroke="#345" stroke-width="2"/>'
            )
        parts.append(f'<circle cx="{x(f["value"]):.1f}" cy="{y:.1f}" r="4" fill="#c33"/>')
    parts.append("</svg>")
    return "".join(parts)


CSS = """
body{font-family:system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
table{border-collapse:collapse;margin:0.5rem 0 1rem}td,th{border:1px solid #ccc;padding:0.25rem 0.5rem;
text-align:left}th{background:#f3f3f3}.note{color:#555}.cannot li{margin-bottom:0.3rem}
.warn{background:#fff4e0;border-left:4px solid #e90;padding:0.5rem 1rem}
"""


def _table(header: list[str], rows: list[list[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html(fig: dict) -> str:
    """The report as one HTML page with inline CSS and SVG (no external asset)."""
    level = int(round(fig["level"] * 100))
    sm = fig.get("stage_model") or {}
    validation = sm.get("validation") or {}
    validated = validation.get("status") == "validated"
    out = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        "<title>Spira: does the method work in the pilot units?</title>",
        f"<style>{CSS}</style></head><body>",
        "<h1>Does the method work in the pilot units?</h1>",
        f'<p class="note">Generated {html.escape(fig["generated_at"])}. Figures are unit '
        f"aggregates with {level} % intervals and n; unit figures on fewer than {fig['min_n']} "
        "observations are suppressed and left out of every correlation.</p>",
    ]
    if not validated:
        out.append(
            '<p class="warn"><strong>Stage model not validated on real drawings.</strong> '
            "Every drawing figure below describes how the model reads the photos, not children's "
            "development.</p>"
        )
    out.append("<h2>What the figures can and cannot support</h2><h3>They can</h3><ul>")
    out += [f"<li>{html.escape(s)}</li>" for s in fig["statements"]["can"]]
    out.append('</ul><h3>They cannot</h3><ul class="cannot">')
    out += [f"<li>{html.escape(s)}</li>" for s in fig["statements"]["cannot"]]
    out.append("</ul>")

    out.append("<h2>Sample sizes and suppression</h2>")
    out.append(
        _table(
            ["outcome", "term", "units", "observations", "unit figures shown", "suppressed"],
            [
                [
                    html.escape(outcome_label(s["outcome"])),
                    html.escape(s["term"]),
                    str(s["n_units"]),
                    str(s["n_observations"]),
                    str(s["shown"]),
                    str(s["suppressed"]),
                ]
                for s in fig["samples"]
            ],
        )
    )

    out.append(
        "<h2>Reliability of unit figures (split-half, Spearman–Brown)</h2>"
        "<p class=\"note\">Each unit's photos (sheets) split at random into halves; the halves' "
        "unit means correlated across units and stepped up to the full sample (mean of "
        f"{N_SPLITS} splits; interval: bootstrap over units). 1 = units perfectly told apart by "
        "their own data, 0 = not at all.</p>"
    )
    rel_rows = [(f"{outcome_label(r['outcome'])}, {r['term']}", r) for r in fig["reliability"]]
    out.append(forest_svg(rel_rows))
    out.append(
        _table(
            ["outcome", "term", f"reliability [{level} %]"],
            [
                [html.escape(outcome_label(r["outcome"])), html.escape(r["term"]), _interval(r)]
                for r in fig["reliability"]
            ],
        )
    )

    out.append(
        "<h2>Term-to-term stability</h2>"
        '<p class="note">Pearson r of unit figures between consecutive terms (units shown in '
        "both). Bounded by the reliability; lowered by real change.</p>"
    )
    stab_rows = [
        (f"{outcome_label(s['outcome'])}, {s['from']}→{s['to']}", s) for s in fig["stability"]
    ]
    out.append(forest_svg(stab_rows))
    out.append(
        _table(
            ["outcome", "terms", f"r [{level} %]"],
            [
                [
                    html.escape(outcome_label(s["outcome"])),
                    html.escape(f"{s['from']} → {s['to']}"),
                    _interval(s),
                ]
                for s in fig["stability"]
            ],
        )
    )

    out.append(
        "<h2>Convergent validity: drawings and assessed ability</h2>"
        '<p class="note">Across units, Pearson r of the progression index (and of the '
        "drawing-age gap, where a cross-fitted model exists) with the mean assessed ability over "
        "curriculum areas (age-band adjusted).</p>"
    )
    out.append(
        forest_svg([(f"{outcome_label(c['outcome'])}, {c['term']}", c) for c in fig["convergent"]])
    )
    out.append(
        _table(
            ["drawing figure", "term", f"r with assessed ability [{level} %]"],
            [
                [html.escape(outcome_label(c["outcome"])), html.escape(c["term"]), _interval(c)]
                for c in fig["convergent"]
            ],
        )
    )

    am = fig["assessment_model"]
    out.append("<h2>Rater agreement and model fit (many-facet model)</h2>")
    if am["raters"] is None:
        out.append("<p>No stored ratings the model could be fitted on.</p>")
    else:
        r, it = am["raters"], am["items"] or {}
        sev = r.get("severity_range") or [None, None]
        out.append(
            _table(
                ["", "n", "infit (median)", "outfit (median)", "outside 0.5–1.5"],
                [
                    [
                        "raters",
                        str(r["n"]),
                        _fmt(r["infit_median"]),
                        _fmt(r["outfit_median"]),
                        str(r["n_misfit"]),
                    ],
                    [
                        "rubric items",
                        str(it.get("n", 0)),
                        _fmt(it.get("infit_median")),
                        _fmt(it.get("outfit_median")),
                        str(it.get("n_misfit", 0)),
                    ],
                ],
            )
        )
        out.append(
            f"<p>Rater severity: SD {_fmt(r.get('severity_sd'))} logits, from {_fmt(sev[0])} to "
            f"{_fmt(sev[1])}. Unit-terms whose raters' severity cannot be separated from the "
            f"unit's ability (no link through calibration or shared raters): "
            f"{am['confounded_unit_terms']}.</p>"
        )

    out.append("<h2>Stage-model validation</h2>")
    oof = sm.get("out_of_fold") or {}
    out.append(
        _table(
            ["model", "validated on", "trained on", "out-of-fold QWK", "MAE", "n"],
            [
                [
                    _fmt(sm.get("version")),
                    html.escape(
                        str(validation.get("text", "synthetic drawings only"))
                        if validated
                        else "not validated on real drawings (synthetic drawings only)"
                    ),
                    _fmt(sm.get("trained_on")),
                    _fmt(oof.get("qwk")),
                    _fmt(oof.get("mae")),
                    _fmt(oof.get("n")),
                ]
            ],
        )
    )
    da = fig.get("drawing_age")
    out.append("<h3>Cross-fitted drawing age (from the uploads' age bands)</h3>")
    if not da:
        out.append("<p>None trained: run <code>spira train --from-uploads</code>.</p>")
    else:
        dv = (da.get("validation") or {}).get("status") == "validated"
        out.append(
            _table(
                [
                    "model",
                    "units",
                    "photos",
                    "Spearman with band midpoint",
                    "gap–age r raw",
                    "gap–age r corrected",
                    "validated on real drawings",
                ],
                [
                    [
                        _fmt(da.get("version")),
                        _fmt(da.get("n_units")),
                        _fmt(da.get("n")),
                        _fmt(da.get("spearman")),
                        _fmt(da.get("gap_age_r_raw")),
                        _fmt(da.get("gap_age_r_corrected")),
                        "yes" if dv else "no: not validated on real drawings",
                    ]
                ],
            )
        )
    out.append(
        '<p class="note">Computed by <code>spira report method</code>; the figures as JSON are in '
        "method.json beside this page.</p></body></html>"
    )
    return "\n".join(out)


def write_report(fig: dict, folder: Path) -> tuple[Path, Path]:
    """Write ``method.html`` and ``method.json`` into ``folder``; returns their paths."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    page, data = folder / "method.html", folder / "method.json"
    page.write_text(render_html(fig), encoding="utf-8")
    data.write_text(json.dumps(fig, indent=2, default=str), encoding="utf-8")
    return page, data
