"""Oracle bounds for the two per-seed targets of issue 17 that the fit misses on one seed.

On exactly the data of ``bench/assessment.py`` (``simulate_design(design, seed=seed)``, the same
seeds), each estimate is computed as if everything but the quantity of interest were known:

* (b) ``shared``, rater r: each educator's severity by its posterior mean (grid, prior
  ``N(0, severity_sd**2)``, the simulator's) given the true item thresholds, unit effects, age-band
  effects and sheet spread; every sheet's ability is integrated out (Gauss-Hermite, 21 nodes) over
  ``N(unit effect + age-band effect, sheet_sd**2)``. "Oracle+" knows the sheet abilities too (no
  integration): an upper bound above any estimator that sees only the ratings.
* (c) ``nested_calibrated``, unit Spearman: each unit's effect by its posterior mean (prior
  ``N(0, unit_sd**2)``) given the true thresholds, severities, age-band effects and sheet spread,
  sheets integrated out the same way. "Oracle+" is the mean of (true sheet ability - age-band
  effect) over the unit's sheets: what is left is only the sampling of children.

Posterior means are Bayes-optimal for squared error, not for a correlation on one seed, so an
estimator may beat the oracle by luck on one seed; across seeds nothing that sees the same
ratings does better on average. Each oracle is set next to the fit (``bench.assessment.one``, the
same call and figures as the benchmark) and the plain baseline on the same data.

``--write`` adds or replaces the subsection "### Oracle bounds" inside "## Assessment" of
BENCHMARKS.md (``bench/assessment.py --write`` keeps it).

    python bench/assessment_oracle.py [--write] [--seeds 20261 ...]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse
from scipy.interpolate import CubicSpline
from scipy.stats import spearmanr

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from assessment.synthetic import AGE_BAND_EFFECT, SyntheticTruth, simulate_design  # noqa: E402
from bench.assessment import SEEDS, baselines, one  # noqa: E402
from bench.common import write_subsection  # noqa: E402

#: The simulator's defaults (``simulate_design``): the oracle's priors.
SHEET_SD, UNIT_SD, SEVERITY_SD = 1.0, 0.8, 0.5
#: Seeds outside the benchmark's, to see how often a per-seed target can be met at all.
FRESH = (31001, 31002, 31003, 31004, 31005)
#: Targets of issue 17 (gain over the plain baseline on every seed).
RATER_TARGET, UNIT_TARGET = 0.03, 0.02
NODES, WEIGHTS = np.polynomial.hermite.hermgauss(21)
LOG_W = np.log(WEIGHTS / np.sqrt(np.pi))
Z = np.sqrt(2.0) * NODES  # N(0, 1) nodes


def _cum(truth: SyntheticTruth, items: list[tuple[str, str]]) -> np.ndarray:
    """Cumulative thresholds per item (column 0 = 0), the simulator's parametrisation."""
    k_max = max(len(truth.thresholds[k]) for k in items)
    cum = np.full((len(items), k_max + 1), -np.inf)
    cum[:, 0] = 0.0
    for n, key in enumerate(items):
        cum[n, 1 : len(truth.thresholds[key]) + 1] = np.cumsum(truth.thresholds[key])
    return cum


def logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    """log(sum(exp(a))) along ``axis`` (finite maxima; scipy's is several times slower here)."""
    m = a.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis=axis) + np.log(np.exp(a - m).sum(axis=axis))


def _log_prob(eta: np.ndarray, item: np.ndarray, level: np.ndarray, cum: np.ndarray) -> np.ndarray:
    """log P(level) of partial credit ratings at ``eta`` (ratings x nodes) = ability - severity."""
    steps = np.arange(cum.shape[1])
    logits = eta[:, :, None] * steps - np.where(np.isfinite(cum), cum, np.inf)[item][:, None, :]
    chosen = np.take_along_axis(logits, level[:, None, None].repeat(eta.shape[1], 1), axis=2)
    return chosen[:, :, 0] - logsumexp(logits, axis=2)


def _frame(ratings: pd.DataFrame, truth: SyntheticTruth) -> dict[str, Any]:
    """Regular ratings (calibration rows left out) as index arrays with the true sheet figures."""
    reg = ratings[ratings["unit"].astype(str) != ""].reset_index(drop=True)
    items = sorted(truth.thresholds)
    pos = {k: n for n, k in enumerate(items)}
    sheet_codes, sheet_names = pd.factorize(reg["sheet_id"])
    first = reg.drop_duplicates("sheet_id").set_index("sheet_id").loc[sheet_names]
    return {
        "reg": reg,
        "cum": _cum(truth, items),
        "item": np.array([pos[k] for k in zip(reg["case"], reg["item"], strict=True)]),
        "level": reg["level"].to_numpy(np.int64),
        "sheet": sheet_codes,
        "n_sheets": len(sheet_names),
        "band": first["age_band"].map(AGE_BAND_EFFECT).to_numpy(float),
        "unit": first["unit"].to_numpy(),
        "ability": np.array([truth.ability[s] for s in sheet_names]),
        "severity": reg["rater"].map(truth.severity).to_numpy(float),
        "sheet_of": sparse.csr_matrix(
            (np.ones(len(reg)), (sheet_codes, np.arange(len(reg)))),
            shape=(len(sheet_names), len(reg)),
        ),
    }


def _posterior_mean(loglik: np.ndarray, grid: np.ndarray, prior_sd: float) -> np.ndarray:
    """Posterior means on ``grid`` from log-likelihoods (groups x grid) and a N(0, sd) prior."""
    logpost = loglik - 0.5 * (grid / prior_sd) ** 2
    post = np.exp(logpost - logpost.max(axis=1, keepdims=True))
    return (post * grid).sum(axis=1) / post.sum(axis=1)


def rater_oracle(ratings: pd.DataFrame, truth: SyntheticTruth) -> tuple[pd.Series, pd.Series]:
    """(oracle, oracle+) severity per educator: posterior means given everything else true."""
    d = _frame(ratings, truth)
    raters, codes = np.unique(d["reg"]["rater"].to_numpy(), return_inverse=True)
    # Every sheet is rated by one educator here (designs b-d): sheet -> educator.
    sheet_rater = np.zeros(d["n_sheets"], dtype=np.int64)
    sheet_rater[d["sheet"]] = codes
    if (
        pd.Series(codes).groupby(d["sheet"]).nunique().max() > 1
    ):  # crossed: not what the oracle is for
        raise ValueError("rater_oracle expects one educator per sheet")
    prior = np.array([truth.unit_effect[u] for u in d["unit"]]) + d["band"]  # sheet prior mean
    by_rater = sparse.csr_matrix(
        (np.ones(d["n_sheets"]), (sheet_rater, np.arange(d["n_sheets"]))),
        shape=(len(raters), d["n_sheets"]),
    )
    by_rating = sparse.csr_matrix(
        (np.ones(len(codes)), (codes, np.arange(len(codes)))), shape=(len(raters), len(codes))
    )
    grid = np.linspace(-3.0, 3.0, 121)
    marginal = np.empty((len(raters), len(grid)))
    known = np.empty((len(raters), len(grid)))
    theta_nodes = prior[d["sheet"]][:, None] + SHEET_SD * Z[None, :]
    theta_true = d["ability"][d["sheet"]][:, None]
    for g, sev in enumerate(grid):
        lp = _log_prob(theta_nodes - sev, d["item"], d["level"], d["cum"])
        per_sheet = logsumexp(np.asarray(d["sheet_of"] @ lp) + LOG_W, axis=1)
        marginal[:, g] = by_rater @ per_sheet
        known[:, g] = by_rating @ _log_prob(theta_true - sev, d["item"], d["level"], d["cum"])[:, 0]
    return (
        pd.Series(_posterior_mean(marginal, grid, SEVERITY_SD), index=raters),
        pd.Series(_posterior_mean(known, grid, SEVERITY_SD), index=raters),
    )


def unit_oracle(ratings: pd.DataFrame, truth: SyntheticTruth) -> tuple[pd.Series, pd.Series]:
    """(oracle, oracle+) unit effect: posterior mean given thresholds, severities, age-band effects
    and sheet spread; and the mean true sheet ability less its age-band effect."""
    d = _frame(ratings, truth)
    units, unit_codes = np.unique(d["unit"], return_inverse=True)
    by_unit = sparse.csr_matrix(
        (np.ones(d["n_sheets"]), (unit_codes, np.arange(d["n_sheets"]))),
        shape=(len(units), d["n_sheets"]),
    )
    grid = np.linspace(-4.0, 4.0, 161)
    loglik = np.empty((len(units), len(grid)))
    offset = d["band"][d["sheet"]] - d["severity"]  # per rating: age band minus severity
    for g, mu in enumerate(grid):
        eta = mu + offset[:, None] + SHEET_SD * Z[None, :]
        lp = _log_prob(eta, d["item"], d["level"], d["cum"])
        loglik[:, g] = by_unit @ logsumexp(np.asarray(d["sheet_of"] @ lp) + LOG_W, axis=1)
    plus = pd.Series(d["ability"] - d["band"]).groupby(d["unit"]).mean()
    return pd.Series(_posterior_mean(loglik, grid, UNIT_SD), index=units), plus[units]


def bayes_oracle(
    ratings: pd.DataFrame, truth: SyntheticTruth, cal_sd: float = 1.2
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(severity, unit effect) at the joint posterior mode (columns ``estimate`` and ``sd``, the
    Laplace posterior SD) under the true model, everything else
    unknown: the true thresholds, age-band effects and spreads (sheets ``SHEET_SD``, units
    ``UNIT_SD``, severities ``SEVERITY_SD``, calibration responses ``cal_sd``) are known; unit
    effects, severities and calibration abilities are estimated jointly from the ratings, sheets
    integrated out. The best any estimator can do that knows the model's structure but no facet's
    values (the fit also has to estimate thresholds and spreads).

    Each (unit, educator) cell's log marginal likelihood is a function of ``d = mu_u - rho_r``
    alone (the sum over its sheets), each (calibration response, educator) cell's of
    ``d = a_c - rho_r``; both are tabulated on a grid, interpolated by cubic splines, and the
    log posterior is maximised by Newton's method."""
    d = _frame(ratings, truth)
    reg = d["reg"]
    units = np.unique(d["unit"])
    raters = np.unique(ratings["rater"].to_numpy())
    u_idx = {u: n for n, u in enumerate(units)}
    r_idx = {r: n for n, r in enumerate(raters)}
    grid = np.linspace(-6.0, 6.0, 161)
    # Regular cells: (unit, educator); each sheet is rated by one educator in designs b-d.
    sheet_rater = reg.drop_duplicates("sheet_id").set_index("sheet_id")["rater"]
    cell_key = pd.Series(list(zip(d["unit"], sheet_rater.to_numpy(), strict=True)))
    cell_codes, cell_names = pd.factorize(cell_key)
    by_cell = sparse.csr_matrix(
        (np.ones(d["n_sheets"]), (cell_codes, np.arange(d["n_sheets"]))),
        shape=(len(cell_names), d["n_sheets"]),
    )
    offset = d["band"][d["sheet"]]
    table = np.empty((len(grid), len(cell_names)))
    for g, x in enumerate(grid):
        lp = _log_prob(x + offset[:, None] + SHEET_SD * Z[None, :], d["item"], d["level"], d["cum"])
        table[g] = by_cell @ logsumexp(np.asarray(d["sheet_of"] @ lp) + LOG_W, axis=1)
    first = [u_idx[u] for u, _ in cell_names]
    second = [r_idx[r] for _, r in cell_names]
    # Calibration cells: (response, educator), the response's ability a fixed unknown.
    cal = ratings[ratings["unit"].astype(str) == ""].reset_index(drop=True)
    cal_names = np.unique(cal["sheet_id"].to_numpy()) if len(cal) else np.array([], dtype=object)
    if len(cal):
        items = sorted(truth.thresholds)
        pos = {k: n for n, k in enumerate(items)}
        ccodes, cnames = pd.factorize(
            pd.Series(list(zip(cal["sheet_id"], cal["rater"], strict=True)))
        )
        by_ccell = sparse.csr_matrix(
            (np.ones(len(cal)), (ccodes, np.arange(len(cal)))), shape=(len(cnames), len(cal))
        )
        citem = np.array([pos[k] for k in zip(cal["case"], cal["item"], strict=True)])
        clevel = cal["level"].to_numpy(np.int64)
        ctable = np.stack(
            [
                by_ccell @ _log_prob(np.full((len(cal), 1), x), citem, clevel, d["cum"])[:, 0]
                for x in grid
            ]
        )
        table = np.concatenate([table, ctable], axis=1)
        c_idx = {c: n for n, c in enumerate(cal_names)}
        first += [len(units) + c_idx[c] for c, _ in cnames]
        second += [r_idx[r] for _, r in cnames]
    spline = CubicSpline(grid, table, axis=0)
    coef = spline.c  # (4, intervals, cells)
    step = grid[1] - grid[0]
    p_of, q_of = np.array(first), len(units) + len(cal_names) + np.array(second)
    n_par = len(units) + len(cal_names) + len(raters)
    prec = np.r_[
        np.full(len(units), UNIT_SD**-2),
        np.full(len(cal_names), cal_sd**-2),
        np.full(len(raters), SEVERITY_SD**-2),
    ]
    cells = np.arange(table.shape[1])
    x = np.zeros(n_par)
    for _ in range(100):
        dd = np.clip(x[p_of] - x[q_of], grid[0], grid[-1] - 1e-9)
        k = np.minimum(((dd - grid[0]) // step).astype(int), len(grid) - 2)
        t = dd - grid[k]
        c3, c2, c1 = coef[0, k, cells], coef[1, k, cells], coef[2, k, cells]
        grad_c = 3 * c3 * t**2 + 2 * c2 * t + c1
        hess_c = np.minimum(6 * c3 * t + 2 * c2, -1e-6)  # log-concave (Prekopa); guard
        grad = -prec * x
        np.add.at(grad, p_of, grad_c)
        np.add.at(grad, q_of, -grad_c)
        hess = np.diag(-prec)
        np.add.at(hess, (p_of, p_of), hess_c)
        np.add.at(hess, (q_of, q_of), hess_c)
        np.add.at(hess, (p_of, q_of), -hess_c)
        np.add.at(hess, (q_of, p_of), -hess_c)
        move = np.linalg.solve(hess, -grad)
        x += move
        if np.abs(move).max() < 1e-8:
            break
    else:
        raise RuntimeError("bayes_oracle: Newton's method did not converge in 100 steps")
    sd = np.sqrt(np.diag(np.linalg.inv(-hess)))  # Laplace: posterior SDs
    cut = len(units) + len(cal_names)
    return (
        pd.DataFrame({"estimate": x[cut:], "sd": sd[cut:]}, index=raters),
        pd.DataFrame({"estimate": x[: len(units)], "sd": sd[: len(units)]}, index=units),
    )


def score(seed: int) -> dict[str, Any]:
    """Fit, plain and oracles for (b) rater r and (c) unit Spearman on one seed."""
    t0 = time.perf_counter()
    out: dict[str, Any] = {"seed": seed}
    fit_b = one("shared", seed)
    ratings, truth = simulate_design("shared", seed=seed)
    oracle, plus = rater_oracle(ratings, truth)
    sev = pd.Series(truth.severity)[oracle.index]
    bayes_sev, bayes_unit = bayes_oracle(ratings, truth)
    out |= {
        "rater_bayes": float(np.corrcoef(bayes_sev.estimate[oracle.index], sev)[0, 1]),
        "b_unit_bayes": float(
            spearmanr(bayes_unit.estimate, pd.Series(truth.unit_effect)[bayes_unit.index])[0]
        ),
        "b_sev_sd": float(bayes_sev.sd.mean()),
        "b_unit_sd": float(bayes_unit.sd.mean()),
        "b_unit_fit": fit_b["unit_rho"],
        "b_unit_plain": fit_b["unit_rho_base"],
        "rater_fit": fit_b["rater_r"],
        "rater_plain": fit_b["rater_r_base"],
        "rater_oracle": float(np.corrcoef(oracle, sev)[0, 1]),
        "rater_oracle_plus": float(np.corrcoef(plus, sev)[0, 1]),
        # Check that this is the benchmark's data: the plain baseline recomputed here.
        "rater_plain_here": float(np.corrcoef(baselines(ratings)[0][oracle.index], sev)[0, 1]),
    }
    fit_c = one("nested_calibrated", seed)
    ratings, truth = simulate_design("nested_calibrated", seed=seed)
    oracle, plus = unit_oracle(ratings, truth)
    effect = pd.Series(truth.unit_effect)[oracle.index]
    reg = ratings[ratings["unit"].astype(str) != ""].drop_duplicates("sheet_id")
    sheet_mean = reg["sheet_id"].map(truth.ability).groupby(reg["unit"]).mean()[oracle.index]
    raw = baselines(ratings)[1][oracle.index]
    bayes_sev, bayes_unit = bayes_oracle(ratings, truth)
    sev = pd.Series(truth.severity)[bayes_sev.index]
    # A unit's severity error: the SD of its educators' mean severity given the data (ignoring
    # the small posterior correlations between them).
    unit_of = ratings[ratings["unit"].astype(str) != ""].groupby("rater")["unit"].first()
    sev_var = (
        (bayes_sev.sd**2).groupby(unit_of[bayes_sev.index]).agg(lambda v: v.sum() / len(v) ** 2)
    )
    out |= {
        "unit_bayes": float(spearmanr(bayes_unit.estimate[oracle.index], effect)[0]),
        "unit_bayes_s": float(spearmanr(bayes_unit.estimate[oracle.index], sheet_mean)[0]),
        "c_rater_bayes": float(np.corrcoef(bayes_sev.estimate, sev)[0, 1]),
        "c_sev_sd": float(bayes_sev.sd.mean()),
        "c_unit_sev_sd": float(np.sqrt(sev_var).mean()),
        "c_unit_sd": float(bayes_unit.sd.mean()),
        "c_rater_fit": fit_c["rater_r"],
        "c_rater_plain": fit_c["rater_r_base"],
        "unit_fit": fit_c["unit_rho"],
        "unit_plain": fit_c["unit_rho_base"],
        "unit_oracle": float(spearmanr(oracle, effect)[0]),
        "unit_oracle_plus": float(spearmanr(plus, effect)[0]),
        "unit_plain_here": float(spearmanr(raw, effect)[0]),
        "unit_fit_s": fit_c["unit_rho_sample"],
        "unit_plain_s": fit_c["unit_rho_sample_base"],
        "unit_oracle_s": float(spearmanr(oracle, sheet_mean)[0]),
        "seconds": time.perf_counter() - t0,
    }
    return out


#: The reading of the figures below (written for the run of 2026-12-03; the figures are seeded).
READING = (
    "Reading (issue 17): the fit is at the Bayes bound. On every seed, the benchmark's and the "
    "fresh ones, the fit's rater r (b) and unit Spearman (c) are within 0.005 of the posterior mode "
    "under the true model, which knows the thresholds and every spread exactly; so neither the "
    "rater prior's shrinkage, nor the estimated unit spread, nor the quadrature costs anything "
    "measurable. On seed 20263 that bound gains +0.023 in rater r (target +0.03) and +0.010 in unit "
    "Spearman (target +0.02): no estimator that sees only these ratings can be expected to meet the "
    "targets on that seed (the posterior is the best guess in squared error; a correlation on one "
    "draw can still fall either way by luck). The oracles beat the targets on every seed (20263: "
    "+0.056 and +0.047), but only with what no estimator has: in (b) the true unit effects, known "
    "from the data only to a posterior SD of about 0.23 logit and entangled with the severities "
    "being estimated (3 educators a unit, about 4 units an educator); in (c) the true severities, "
    "which the 8 calibration responses and the unit's own sheets pin down to about 0.21 logit an "
    "educator, 0.13 for the mean of a unit's educators, against a posterior SD of 0.23 for the unit "
    "(figures above). Whether the per-seed margins are met is a property of the draw: the Bayes "
    "bound misses the rater target on 3 of the 10 seeds and the unit target on 1. The model is "
    "unchanged; the targets on means (rater r >= 0.88, unit Spearman >= 0.92) are met."
)


def _row(label: str, v: pd.Series, cols: list[str], base: str, sample: bool) -> str:
    """One table row: the figures of ``cols`` and their gains over ``base`` (``sample``: the
    figures against the true mean sheet ability in brackets, where there are any)."""

    def cell(col: str, gain: bool = False) -> str:
        sub = 0.0 if not gain else 1.0
        text = f"{v[col] - sub * v[base]:+.3f}" if gain else f"{v[col]:.3f}"
        if sample and f"{col}_s" in v:
            s = v[f"{col}_s"] - (v[f"{base}_s"] if gain else 0.0)
            text += f" ({s:+.3f})" if gain else f" ({s:.3f})"
        return text

    gains = [c for c in cols if c != base and not c.endswith("_plus")]
    return (
        "| " + " | ".join([label] + [cell(c) for c in cols] + [cell(c, True) for c in gains]) + " |"
    )


def section(table: pd.DataFrame, fresh: pd.DataFrame | None = None) -> str:
    """The body of the subsection: a per-seed table for each target (the benchmark's seeds, then
    ``fresh`` ones, each set with its mean) and the reading."""
    lines = [
        "`python bench/assessment_oracle.py --write`: the two per-seed targets (b) rater r and (c) "
        "unit Spearman, on the same simulated data and seeds (`simulate_design`), next to bounds "
        "computed with the truth. **Bayes**: the joint posterior mode of unit effects, severities "
        "and calibration abilities under the true model (true thresholds, age-band effects and "
        "spreads known; no facet's values known; sheets integrated out): what an estimator that "
        "knew the model's structure could expect. **Oracle**: the quantity's posterior mean with "
        "everything else known; for (b) the true unit effects (and thresholds, age-band effects, "
        "sheet spread), for (c) the true severities. **Oracle+**: also every sheet's true ability "
        "((c): the mean true sheet ability less its age-band effect, only the sampling of children "
        "left). In brackets: against the true mean ability of the unit's sheets.",
        "",
        "| (b) rater r, seed | fit | plain | Bayes | oracle | oracle+ | fit gain | Bayes gain | "
        "oracle gain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    cols_b = ["rater_fit", "rater_plain", "rater_bayes", "rater_oracle", "rater_oracle_plus"]
    cols_c = ["unit_fit", "unit_plain", "unit_bayes", "unit_oracle", "unit_oracle_plus"]
    rows = [(str(int(r.seed)), r) for _, r in table.iterrows()]
    rows.append(("mean", table.mean(numeric_only=True)))
    if fresh is not None and not fresh.empty:
        rows += [(f"{int(r.seed)} (fresh)", r) for _, r in fresh.iterrows()]
        rows.append(("mean (fresh)", fresh.mean(numeric_only=True)))
        table = pd.concat([table, fresh], ignore_index=True)
    lines += [_row(label, r, cols_b, "rater_plain", False) for label, r in rows]
    lines += [
        "",
        "| (c) unit Spearman, seed | fit | raw mean | Bayes | oracle | oracle+ | fit gain | "
        "Bayes gain | oracle gain |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    lines += [_row(label, r, cols_c, "unit_plain", True) for label, r in rows]
    m = table.mean(numeric_only=True)
    lines += [
        "",
        f"The same Bayes fit's other figures (mean over all {len(table)} seeds): (b) unit Spearman {m.b_unit_bayes:.3f} "
        f"(fit {m.b_unit_fit:.3f}, raw mean {m.b_unit_plain:.3f}); (c) rater r "
        f"{m.c_rater_bayes:.3f} (fit {m.c_rater_fit:.3f}, plain {m.c_rater_plain:.3f}). Its mean "
        f"posterior SDs (Laplace), logits: (b) severity {m.b_sev_sd:.2f}, unit effect "
        f"{m.b_unit_sd:.2f}; (c) severity {m.c_sev_sd:.2f}, mean severity of a unit's educators "
        f"{m.c_unit_sev_sd:.2f}, unit effect {m.c_unit_sd:.2f} (true spreads: severities "
        f"{SEVERITY_SD}, units {UNIT_SD}).",
    ]
    for name, col, base, target in (
        ("(b) rater r", "rater", "rater_plain", RATER_TARGET),
        ("(c) unit Spearman", "unit", "unit_plain", UNIT_TARGET),
    ):
        parts = []
        for est in ("fit", "bayes", "oracle"):
            short = table[table[f"{col}_{est}"] - table[base] < target].seed.tolist()
            parts.append(f"{est} {', '.join(map(str, short)) or 'none'}")
        lines.append(f"- Seeds below the target gain of +{target} in {name}: " + "; ".join(parts))
    lines += ["", READING]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update BENCHMARKS.md")
    parser.add_argument("--seeds", type=int, nargs="+", default=list(SEEDS))
    parser.add_argument(
        "--fresh", type=int, nargs="*", default=list(FRESH), help="seeds outside the benchmark's"
    )
    args = parser.parse_args(argv)
    if args.write and tuple(args.seeds) != SEEDS:
        parser.error("--write records the benchmark's seeds only")
    rows = []
    for seed in [*args.seeds, *args.fresh]:
        rows.append(score(seed))
        r = rows[-1]
        print(
            f"seed {seed}: (b) rater r fit {r['rater_fit']:.3f} plain {r['rater_plain']:.3f} "
            f"(here {r['rater_plain_here']:.3f}) oracle {r['rater_oracle']:.3f} oracle+ "
            f"{r['rater_oracle_plus']:.3f} bayes {r['rater_bayes']:.3f} [units fit "
            f"{r['b_unit_fit']:.3f} raw {r['b_unit_plain']:.3f} bayes {r['b_unit_bayes']:.3f}]; "
            f"(c) unit rho fit {r['unit_fit']:.3f} raw "
            f"{r['unit_plain']:.3f} (here {r['unit_plain_here']:.3f}) oracle {r['unit_oracle']:.3f} "
            f"oracle+ {r['unit_oracle_plus']:.3f} bayes {r['unit_bayes']:.3f} [raters fit "
            f"{r['c_rater_fit']:.3f} plain {r['c_rater_plain']:.3f} bayes {r['c_rater_bayes']:.3f}]; "
            f"{r['seconds']:.1f} s",
            flush=True,
        )
    table = pd.DataFrame(rows)
    text = section(table[table.seed.isin(args.seeds)], table[table.seed.isin(args.fresh)])
    print(text)
    if args.write:
        write_subsection("Assessment", "Oracle bounds", text)
        print("wrote BENCHMARKS.md")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
