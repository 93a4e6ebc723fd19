"""Benchmark: recovery of the many-facet model in the field's designs, against plain estimates.

Four designs (``assessment.synthetic.simulate_design``; 40 units x 50 sheets, 4 cases x 3 items,
levels 0-3), 5 seeds each, each with baselines measured on the same data:

* (a) ``crossed``: 5 raters per sheet; (b) ``shared``: one educator per sheet, educators each in
  about 4 units; (c) ``nested_calibrated``: each educator in exactly one unit (2-4 per unit) plus 8
  calibration responses every educator rates; (d) ``nested``: as (c) without calibration.
* Raters: Pearson r of the fitted severities with the truth, against the unit-centred mean rating
  (minus the educator's mean of rating minus the unit's mean rating).
* Units: Spearman of the unit abilities (``unit_abilities`` on the sheet table) with the true unit
  effects, against the raw unit mean rating; also against the true mean ability of the unit's
  sheets (what both estimators see; it takes out the sampling of children common to both).
* Coverage of the 95 % unit intervals (truth put on the fit's scale: minus the true mean item
  difficulty and mean severity), ``rater_unit_confounded`` warnings, mean infit/outfit.

Units as a random facet against fixed unit means (``random_units=False``): the four designs have
50 sheets in every unit, where shrinkage cannot reorder units; so designs (b) and (c) are also run
with units of 5-50 sheets (each unit keeps a random number of its sheets), both fits on the same
data.

Then the fit time of 100 000 ratings in design (b) and (a) (target <= 10 s on 2 CPU cores), each
against the fixed-node quadrature (``adaptive=False``) on the same data in the same run.
``--write`` replaces the "## Assessment" section of BENCHMARKS.md (other sections are kept, and
its subsection "### Oracle bounds", written by ``bench/assessment_oracle.py``).

    python bench/assessment.py [--write] [--seeds 5]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assessment.model import ManyFacetPCM, ModelFitWarning  # noqa: E402
from assessment.synthetic import AGE_BAND_EFFECT, simulate_design  # noqa: E402
from assessment.units import unit_abilities  # noqa: E402
from bench.common import write_section  # noqa: E402

LABELS = {
    "crossed": "(a) crossed, 5 raters per sheet",
    "shared": "(b) one educator per sheet, educators in ~4 units",
    "nested_calibrated": "(c) educators in one unit + 8 calibration responses",
    "nested": "(d) educators in one unit, no calibration",
}
#: Seeds of this benchmark (fixed here, never tuned on: the checks elsewhere use other seeds).
SEEDS = (20261, 20262, 20263, 20264, 20265)


def baselines(ratings: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """Plain estimates on the same data: severity = -(educator's mean of rating minus the unit's
    mean rating); unit = raw mean rating. Calibration rows (empty unit) are left out."""
    reg = ratings[ratings["unit"].astype(str) != ""]
    centred = reg["level"] - reg.groupby("unit")["level"].transform("mean")
    return -centred.groupby(reg["rater"]).mean(), reg.groupby("unit")["level"].mean()


def age_mix(model: ManyFacetPCM, sheets: pd.DataFrame) -> float:
    """With the age-band facet a unit's figure is its ability at the data's age mix: the unit
    effect plus the sheet-weighted mean of the true age-band effects (the model's betas sum to 0
    that way); without it, 0 (the truth is the unit effect, as before)."""
    if not model.age_bands_:
        return 0.0
    return float(sheets["age_band"].map(AGE_BAND_EFFECT).mean())


def one(
    design: str, seed: int, *, age_bands: bool = True, adaptive: bool = True, **size: Any
) -> dict[str, Any]:
    """Simulate, fit and score one design and seed (``age_bands``: the model's age-band facet;
    ``adaptive``: adaptive quadrature, else the fixed Gauss-Hermite nodes)."""
    ratings, truth = simulate_design(design, seed=seed, **size)
    t0 = time.perf_counter()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ModelFitWarning)
        model = ManyFacetPCM(age_bands=age_bands, adaptive=adaptive).fit(ratings)
    fit_s = time.perf_counter() - t0
    base_sev, base_unit = baselines(ratings)
    sev_true = np.array([truth.severity[r] for r in model.raters_])
    units = [
        u for u in unit_abilities(model.sheet_table().drop(columns="area")) if u.ability is not None
    ]
    names = [u.unit for u in units]
    effect = np.array([truth.unit_effect[n] for n in names])
    sheets = ratings.drop_duplicates("sheet_id")
    sheets = sheets[sheets["unit"].astype(str) != ""]
    sheet_mean = (
        sheets.assign(t=sheets["sheet_id"].map(truth.ability)).groupby("unit")["t"].mean()[names]
    )
    ability = np.array([u.ability for u in units], dtype=float)
    se = np.array([u.se for u in units], dtype=float)
    shift = np.mean([truth.thresholds[k].mean() for k in model.item_keys_]) + sev_true.mean()
    shift -= age_mix(model, sheets)
    return {
        "ratings": len(ratings),
        "fit_s": fit_s,
        "n_nodes": model.n_nodes_,
        "converged": model.converged_,
        "rater_r": float(np.corrcoef(model.severity_, sev_true)[0, 1]),
        "rater_r_base": float(np.corrcoef(base_sev[model.raters_], sev_true)[0, 1]),
        "unit_rho": float(spearmanr(ability, effect)[0]),
        "unit_rho_base": float(spearmanr(base_unit[names], effect)[0]),
        "unit_rho_sample": float(spearmanr(ability, sheet_mean)[0]),
        "unit_rho_sample_base": float(spearmanr(base_unit[names], sheet_mean)[0]),
        "covered": int((np.abs(ability - (effect - shift)) <= 1.96 * se).sum()),
        "n_units": len(units),
        "confounded_raters": len({c.rater for c in model.confounded_}),
        "n_raters": len(model.raters_),
        "confounded_units": len({c.unit for c in model.confounded_}),
        "infit": float(np.nanmean(np.r_[model.item_infit_, model.rater_infit_])),
        "outfit": float(np.nanmean(np.r_[model.item_outfit_, model.rater_outfit_])),
        "mnsq_range": (
            float(np.nanmin(np.r_[model.item_infit_, model.item_outfit_])),
            float(np.nanmax(np.r_[model.item_infit_, model.item_outfit_])),
        ),
    }


def unequal(design: str, seed: int, **size: Any) -> dict[str, Any]:
    """Units of 5-50 sheets: unit Spearman, rater r and coverage, random vs fixed unit means."""
    ratings, truth = simulate_design(design, seed=seed, **size)
    rng = np.random.default_rng(seed + 1000)
    n_units = len(truth.unit_effect)
    keep_n = dict(zip(sorted(truth.unit_effect), rng.integers(5, 51, n_units), strict=True))
    sheets = ratings.drop_duplicates("sheet_id")
    sheets = sheets[sheets["unit"].astype(str) != ""]
    sheets = sheets.assign(k=sheets.groupby("unit").cumcount())
    drop = set(sheets.loc[sheets["k"] >= sheets["unit"].map(keep_n), "sheet_id"])
    ratings = ratings[~ratings["sheet_id"].isin(drop)].reset_index(drop=True)
    base_unit = baselines(ratings)[1]
    out: dict[str, Any] = {"design": design, "seed": seed}
    for name, random_units in (("random", True), ("fixed", False)):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ModelFitWarning)
            model = ManyFacetPCM(random_units=random_units).fit(ratings)
        units = unit_abilities(model.sheet_table().drop(columns="area"), min_sheets=1)
        names = [u.unit for u in units]
        effect = np.array([truth.unit_effect[n] for n in names])
        ability = np.array([u.ability for u in units], dtype=float)
        se = np.array([u.se for u in units], dtype=float)
        sev_true = np.array([truth.severity[r] for r in model.raters_])
        shift = np.mean([truth.thresholds[k].mean() for k in model.item_keys_]) + sev_true.mean()
        shift -= age_mix(model, sheets)
        out[f"unit_rho_{name}"] = float(spearmanr(ability, effect)[0])
        out[f"rater_r_{name}"] = float(np.corrcoef(model.severity_, sev_true)[0, 1])
        out[f"covered_{name}"] = float(np.mean(np.abs(ability - (effect - shift)) <= 1.96 * se))
        out["unit_rho_raw"] = float(spearmanr(base_unit[names], effect)[0])
    return out


def run(
    seeds: tuple[int, ...] = SEEDS,
) -> tuple[pd.DataFrame, list[dict[str, Any]], pd.DataFrame]:
    """Every design and seed, then the two 100 000-rating timings."""
    rows = []
    for design in LABELS:
        for seed in seeds:
            result = one(design, seed)
            rows.append({"design": design, "seed": seed, **result})
            print(
                f"{design:18s} seed {seed}: rater r {result['rater_r']:.3f} (plain "
                f"{result['rater_r_base']:.3f}), unit rho {result['unit_rho']:.3f} (raw "
                f"{result['unit_rho_base']:.3f}), covered {result['covered']}/{result['n_units']}, "
                f"{result['fit_s']:.1f} s",
                flush=True,
            )
    sizes = []
    for design in ("shared", "nested_calibrated"):
        for seed in seeds:
            sizes.append(unequal(design, seed))
            print(f"unequal sizes {design} seed {seed}: {sizes[-1]}", flush=True)
    timings = []
    for design, size in (
        ("shared", 834),
        ("crossed", 167),
    ):
        # Baseline on the same data, one after the other: the fixed-node quadrature
        # (adaptive=False: 15 nodes, 31 with > 6 ratings per sheet).
        fixed = one(design, seeds[0], adaptive=False, sheets_per_unit=size)
        result = one(design, seeds[0], sheets_per_unit=size)
        timings.append(
            {"design": design, **result, "fixed_s": fixed["fit_s"], "fixed_nodes": fixed["n_nodes"]}
        )
        print(
            f"100k {design}: {result['ratings']} ratings, {result['fit_s']:.2f} s "
            f"(fixed nodes {fixed['fit_s']:.2f} s)",
            flush=True,
        )
    return pd.DataFrame(rows), timings, pd.DataFrame(sizes)


def targets(table: pd.DataFrame) -> list[str]:
    """The issue's targets, each marked met or not on this run's seeds."""
    out = [
        "Targets (issue 17) on these seeds (the best any estimator can expect on the same data: "
        '"Oracle bounds" below):',
        "",
    ]
    for design in ("shared", "nested_calibrated"):
        grp = table[table["design"] == design]
        if grp.empty:
            continue
        rater_gain = (grp.rater_r - grp.rater_r_base).min()
        unit_gain = (grp.unit_rho - grp.unit_rho_base).min()
        checks = [
            ("rater r beats plain by >= 0.03 on every seed", rater_gain >= 0.03),
            ("unit Spearman beats raw mean by >= 0.02 on every seed", unit_gain >= 0.02),
            ("mean rater r >= 0.88", grp.rater_r.mean() >= 0.88),
            ("mean unit Spearman >= 0.92", grp.unit_rho.mean() >= 0.92),
        ]
        out.append(
            f"- {LABELS[design]}: "
            + "; ".join(f"{text}: {'met' if ok else 'NOT met'}" for text, ok in checks)
        )
    grp = table[table["design"] == "nested"]
    if not grp.empty:
        coverage = grp.covered.sum() / grp.n_units.sum()
        out.append(
            f"- {LABELS['nested']}: warning for every educator: "
            f"{'met' if (grp.confounded_raters == grp.n_raters).all() else 'NOT met'}; coverage "
            f"{coverage:.3f} within 0.95 +- 0.05: {'met' if abs(coverage - 0.95) <= 0.05 else 'NOT met'}"
        )
    return out


def section(
    table: pd.DataFrame, timings: list[dict[str, Any]], sizes: pd.DataFrame | None = None
) -> str:
    """The body of the "## Assessment" section."""
    lines = [
        "Many-facet partial credit model with sheets nested in units (`assessment.ManyFacetPCM`, "
        "marginal ML, adaptive Gauss-Hermite quadrature: 7 nodes per sheet centred on its "
        "posterior mode and scaled by its curvature, "
        "preconditioned L-BFGS-B; empirical-Bayes rater prior; "
        "units a random facet with empirical-Bayes spread; age bands a fixed facet of the sheet "
        "level, sheet-weighted mean 0, so unit figures are at the data's common age mix), "
        "`python bench/assessment.py --write`. Simulated by `assessment.synthetic.simulate_design`: "
        f"40 units x 50 sheets, 4 cases x 3 items (levels 0-3), seeds {', '.join(map(str, SEEDS))}. "
        "Baselines on the same data: raters, the unit-centred mean rating; units, the raw unit "
        "mean rating. Unit truth: the simulated unit effect (plus the data's mean age-band "
        "effect for the coverage; in brackets: the true mean ability "
        "of the unit's sheets, which takes out the sampling of children both estimators share).",
        "",
        "| design | rater r fit | rater r plain | min gain | unit Spearman fit | raw mean | "
        "min gain | 95 % coverage | confounded raters | mean infit / outfit | fit s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for design, grp in table.groupby("design", sort=False):
        lines.append(
            f"| {LABELS[str(design)]} | {grp.rater_r.mean():.3f} | {grp.rater_r_base.mean():.3f} | "
            f"{(grp.rater_r - grp.rater_r_base).min():+.3f} | {grp.unit_rho.mean():.3f} "
            f"({grp.unit_rho_sample.mean():.3f}) | {grp.unit_rho_base.mean():.3f} "
            f"({grp.unit_rho_sample_base.mean():.3f}) | "
            f"{(grp.unit_rho - grp.unit_rho_base).min():+.3f} "
            f"({(grp.unit_rho_sample - grp.unit_rho_sample_base).min():+.3f}) | "
            f"{grp.covered.sum() / grp.n_units.sum():.3f} ({grp.n_units.sum()} units) | "
            f"{grp.confounded_raters.sum()}/{grp.n_raters.sum()} | "
            f"{grp.infit.mean():.2f} / {grp.outfit.mean():.2f} | {grp.fit_s.mean():.1f} |"
        )
    lines.append("")
    lines.append("Per seed (rater r fit/plain; unit Spearman fit/raw):")
    lines.append("")
    for design, grp in table.groupby("design", sort=False):
        per = "; ".join(
            f"{r.seed}: {r.rater_r:.3f}/{r.rater_r_base:.3f}, {r.unit_rho:.3f}/{r.unit_rho_base:.3f}"
            for r in grp.itertuples()
        )
        lines.append(f"- {design}: {per}")
    lines.append("")
    lines.extend(targets(table))
    lines.append("")
    if sizes is not None and not sizes.empty:
        lines.append(
            "Units as a random facet vs fixed unit means, units of 5-50 sheets (same data for "
            "both fits; mean over seeds, worst seed's gain in brackets):"
        )
        lines.append("")
        for design, grp in sizes.groupby("design", sort=False):
            lines.append(
                f"- {LABELS[str(design)]}: unit Spearman random {grp.unit_rho_random.mean():.3f}, "
                f"fixed {grp.unit_rho_fixed.mean():.3f} "
                f"({(grp.unit_rho_random - grp.unit_rho_fixed).min():+.3f}), raw mean "
                f"{grp.unit_rho_raw.mean():.3f}; rater r random {grp.rater_r_random.mean():.3f}, "
                f"fixed {grp.rater_r_fixed.mean():.3f} "
                f"({(grp.rater_r_random - grp.rater_r_fixed).min():+.3f}); 95 % coverage random "
                f"{grp.covered_random.mean():.3f}, fixed {grp.covered_fixed.mean():.3f}"
            )
        lines.append("")
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines.append(
        f"- Load average when the run ended: {load:.1f} on this machine's cores (shared with other "
        "jobs; fit times are inflated accordingly)"
    )
    for t in timings:
        baseline = (
            f"; fixed {t['fixed_nodes']} nodes (`adaptive=False`) on the same data in this run "
            f"{t['fixed_s']:.2f} s, {t['fixed_s'] / t['fit_s']:.1f}x"
            if "fixed_s" in t
            else ""
        )
        lines.append(
            f"- 100 000-rating fit, design {t['design']}: {t['ratings']:,} ratings in "
            f"**{t['fit_s']:.2f} s** ({t['n_nodes']} adaptive nodes, converged: "
            f"{t['converged']}){baseline}; target <= 10 s on 2 cores"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--seeds", type=int, default=len(SEEDS), help="how many seeds (max 5)")
    args = parser.parse_args(argv)
    table, timings, sizes = run(SEEDS[: args.seeds])
    text = section(table, timings, sizes)
    print(text)
    if args.write:
        write_section("Assessment", text, keep=("Oracle bounds",))
        print("wrote BENCHMARKS.md")
    return 0 if all(t["fit_s"] <= 10.0 for t in timings) else 1


if __name__ == "__main__":
    raise SystemExit(main())
