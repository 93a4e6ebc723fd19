"""Many-facet partial credit model with sheets nested in units (marginal maximum likelihood).

For a rating of sheet ``s`` by rater ``r`` on rubric item ``i`` (levels ``0..K_i``)::

    log P(X = k) / P(X = k - 1) = theta_s - delta_ik - rho_r,      k = 1..K_i

``theta_s`` is the ability shown on the response sheet, ``delta_ik`` the k-th step threshold of the
item, ``rho_r`` the rater's severity, all in logits (Linacre's many-facet model with Masters'
partial credit).

The field's design, and why the sheets are not free parameters
--------------------------------------------------------------
In preschool one educator presents a case to a child of their own unit and rates the response
once. With a free ability per sheet (joint ML), a lenient educator and an able unit are the same
thing to the likelihood: every sheet of the educator can absorb the severity. So each sheet belongs
to its unit and term::

    theta_s = mu_g + sigma * z_s,    z_s ~ N(0, 1),    g = (unit, term) of the sheet

``mu_g`` (the unit's ability in the term) is a random effect, ``mu_g ~ N(m_t, unit_prior_sd**2)``
around the mean ``m_t`` of its term's unit-terms (a flat prior on ``m_t``, so units of different
terms are never pulled together), and ``sigma`` the within-unit spread of sheet abilities,
estimated. The unit spread is estimated by empirical Bayes (method of moments on a first fit with
fixed unit means: the spread of the unit-term means around their term mean less their mean
sampling variance, floor 0.1 logit) when there are at least ``MIN_UNITS_FOR_PRIOR`` (10) units in
a term; with fewer the spread is too uncertain to shrink by and the means stay fixed effects
(``random_units=False`` always keeps them fixed). Estimating ``mu_g`` is then penalised
likelihood: ``mu_g`` is the posterior mode, shrunk toward ``m_t`` by ``W / (W + 1/unit_prior_sd**2)``
with ``W`` the unit's information (units with few sheets move most), and its SE the posterior SD
``1 / sqrt(W + 1/unit_prior_sd**2)`` (plus the raters' share, below). Severities are then separated from units wherever the design links
them: an educator who rates in several units, units with several educators who also rate
elsewhere, or **calibration responses** (written responses every educator rates; ratings with an
empty ``unit``). A calibration sheet has its own fixed ability, outside any unit.

Age bands (``age_bands=True``, the default)
-------------------------------------------
In preschool age is a strong predictor of what a child can do, so a sheet's age band (column
``age_band`` of the ratings) is a fixed facet of the sheet level::

    theta_s = mu_g + beta_a(s) + sigma * z_s

Identification: the sheet-weighted mean of ``beta`` over the fitted data is 0 (``sum_a n_a beta_a
= 0``, ``n_a`` the regular sheets of band ``a``; the last band's effect is implied by the others).
So ``mu_g`` -- the unit's reported ability -- is its ability **at the common age mix of the data**,
not at its own: a unit whose children are younger is no longer penalised for it (DESIGN: a unit's
progression is read against the age bands of its children). Sheets with an unknown or empty band
get ``beta = 0``, i.e. they count as the data's average age; calibration sheets have no band and
stay out of ``beta``. The score of ``beta_a`` is the same per-sheet score as ``mu_g``'s, summed
by band (through the constraint); combinations are (unit-term, band, rater, item), so the work per
step grows by up to the number of bands. ``age_effect_`` (per ``age_bands_``, with an SE from the
band's information given the unit means, ignoring the constraint) is reported;
:meth:`ManyFacetPCM.sheet_table` gives each sheet's ``age_effect`` and ``ability`` (EAP, which
includes it), and :func:`assessment.units.unit_abilities` subtracts it, so unit figures are at the
common mix. ``age_bands=False`` (or no ``age_band`` column) is the model without the facet,
bit-for-bit.

Estimation: marginal maximum likelihood. The sheet deviations ``z_s`` are integrated out by
adaptive Gauss-Hermite quadrature (Liu & Pierce 1994; ``n_nodes`` = 7 nodes per sheet by default):
each sheet's nodes are centred at the mode of its posterior and scaled by the curvature there
(Newton steps on all sheets at once), ``int f(z) phi(z) dz = sum_q w_q b phi(a + b t_q) / phi(t_q)
f(a + b t_q)``. Within one L-BFGS run the nodes stay fixed, so the objective is smooth and its
gradient exact; they are adapted at the start values, the first (loose) run is followed by a
re-adaptation at its estimates and the final run. Sheets with many ratings have narrow posteriors,
which fixed nodes spread over N(0, 1) cannot resolve (``adaptive=False``: the earlier fixed nodes,
15, or 31 with more than 6 ratings per sheet); adapted nodes follow them (fit times and accuracy
below). Every regular rating is evaluated at its sheet's nodes; the
marginal log-likelihood of thresholds, severities, unit means, ``log sigma`` and calibration
abilities is maximised by L-BFGS-B with its analytic gradient (Fisher's identity: the gradient is
the posterior-weighted complete-data score). One evaluation is a few (ratings x nodes x levels)
array operations. L-BFGS works on diagonally preconditioned parameters (each scaled by the square
root of an information guessed from its counts), which cut the iterations about 3-fold. Two weak penalties make the fit unique
where the data cannot: severities get a ``N(0, severity_prior_sd**2)`` penalty (1 logit by default:
it adds 1 to an information of 20-2 000 per rater, so it barely moves a linked rater, and it puts
the mean severity of a block of raters that nothing links to the rest at 0), and calibration
abilities a ``N(0, 3**2)`` one (finite values for all-lowest or all-highest responses).

Identification: mean item difficulty (mean of an item's thresholds) 0 and mean severity 0, unless
those facets are anchored (anchored fits keep the reference scale). Cases are linked through the
unit means: the sheets of one unit and term share ``mu_g`` whatever the case (cases are assumed to
be handed out independently of ability within a unit).

What the fit reports
--------------------
* Sheet abilities: posterior means (EAP) and posterior SDs. With fixed unit means the mean EAP of
  a unit's sheets equals ``mu_g`` (the score equation of ``mu_g``); with the unit prior the score
  equation gives ``sum(EAP - mu_g) / sigma**2 = (mu_g - m_t) / unit_prior_sd**2``, and
  :func:`assessment.units.unit_abilities` recombines the sheets' data estimate with the prior
  (columns ``unit_mean``, ``sigma2``, ``unit_prior_mean``, ``unit_prior_prec`` of
  :meth:`ManyFacetPCM.sheet_table`), which for a whole unit-term is exactly ``mu_g``. The SE comes
  from each sheet's information about its unit mean (``unit_info``: ``1 / (sigma**2 + e**2)`` from
  the posterior variance) plus the prior precision, not from the spread of the shrunken EAPs.
* Standard errors: observed information by Louis' formula per (sheet, rater) for severities (it
  includes the uncertainty from not knowing each child's ability) and the complete-data
  information for thresholds, each given the other parameters.
* Fit: infit and outfit mean-squares with each rating's expected value and variance from the
  leave-one-out posterior predictive (the sheet's other ratings and its unit's distribution). Under
  the model ``(x - E)**2 / Var`` then has expectation exactly 1; residuals against the sheet's own
  posterior mean or a JML ability sit below 1 (measured 0.75-0.8 with three ratings per sheet).
  Values near 1 fit, above about 1.5 mean noisy ratings, below about 0.5 redundant ones.
* Connectedness (:attr:`ManyFacetPCM.confounded_`): a bipartite graph with raters on one side and
  unit-terms and calibration sheets on the other, an edge wherever a rater rated there. Its
  connected components are the blocks whose severities are comparable. If one component holds more
  than half of the raters it is the reference; every rater-unit pair outside it (all pairs when no
  component has a majority) is *confounded*: the block's mean severity cannot be told from its
  units' abilities. Those units' ``unit_confound_var`` = ``tau**2 / n_block_raters`` widens their
  interval, with ``tau**2`` the spread of severities estimated within components (pooled variance
  around the component means minus the mean squared SE), i.e. the uncertainty about where the
  block's mean severity lies.

Age-band facet on vs off (the simulator draws sheet ability = unit effect + age-band effect
(-1..+1 logit, variance 0.5) + N(0, 1); 40 units x 50 sheets; mean over 5 seeds, worst seed's
gain over the plain estimates in brackets; off = the figures of the earlier model). Bench seeds
20261-20265:

* (b) shared: rater r 0.910 vs 0.887 (gain >= +0.021 vs +0.010), unit Spearman 0.963 vs 0.956
  (gain >= +0.023 vs +0.003), coverage 0.940 vs 0.925;
* (c) calibrated: rater r 0.896 vs 0.891, unit Spearman 0.947 vs 0.933 (gain >= +0.014 vs
  -0.015), coverage 0.900 vs 0.910;
* (d) nested: rater r 0.678 vs 0.641, unit Spearman 0.915 vs 0.901, coverage 0.965 vs 0.975;
* (a) crossed, seeds 20261-20263 only (compared on and off): rater r unchanged (0.984-0.993),
  unit Spearman 0.973 vs 0.962 (gain >= +0.015 vs +0.011); on all 5 seeds with the facet (bench
  rerun) 0.974, but seed 20264 is below the raw mean (0.966 vs 0.974, -0.008).

Unseen seeds 101-105 (not tuned on; crossed not run there for time):

* (b): rater r 0.928 vs 0.920 (gain >= +0.003 vs -0.016), unit Spearman 0.961 vs 0.944
  (gain >= +0.050 vs +0.030), coverage 0.925 vs 0.925;
* (c): rater r 0.911 vs 0.908, unit Spearman 0.942 vs 0.937 (gain >= +0.014 vs +0.009),
  coverage 0.930 vs 0.920;
* (d): rater r 0.704 vs 0.682, unit Spearman 0.907 vs 0.886 (gain >= +0.001 vs -0.030),
  coverage 0.980 vs 0.975.

Better on average in every design, coverage within 2 points of the earlier model, so it is the
default. Not on every seed: (b) seed 105 rater r 0.905 vs 0.911, seed 20265 unit Spearman 0.951
vs 0.956; (c) seed 101 unit Spearman 0.932 vs 0.939 (others within 0.001). Fit time about doubles at this size (e.g. (b) 0.8-1.4 s vs
0.4-0.8 s, under load; that was with fixed nodes on (unit-term, band, rater, item) combinations,
whose number the facet multiplies: 100k ratings took 19.1 s (b) and 156 s (crossed) at load 16.8).
Per-rating adaptive quadrature (below) does not depend on the number of combinations.

How far from the best possible (``bench/assessment_oracle.py``, BENCHMARKS.md "Oracle bounds"): on
the bench seeds and on 31001-31005, rater r (b) and unit Spearman (c) are within 0.005 of the joint
posterior mode under the true model (true thresholds, age-band effects and spreads known). On seed
20263 that Bayes bound gains only +0.023 / +0.010 over the plain estimates, below the issue's
per-seed +0.03 / +0.02; over the 10 seeds it misses the rater target on 3 and the unit target on 1.
Oracles handed the other facet's true values (unit effects in (b), severities in (c)) clear both
targets on every seed, with information no estimator has. So the per-seed misses are the draw's,
not the model's.

Recovery measured by ``python bench/assessment.py`` before the age-band facet (40 units x 50
sheets, 4 cases x 3 items, 5 seeds per design; mean over seeds, plain estimate in brackets;
BENCHMARKS.md has every seed of the current model):

* crossed, 5 raters per sheet (31 nodes): rater r 0.987 (0.968), unit Spearman 0.968 (raw mean
  0.959; below it on one seed of five, -0.004);
* one educator per sheet, educators in ~4 units: rater r 0.887 (0.848), unit Spearman 0.956
  (0.919); the gain over the plain estimates is positive on every seed but as small as +0.010
  (raters) and +0.003 (units) on one, below the issue's +0.03 / +0.02 targets;
* educators in one unit + 8 calibration responses: rater r 0.891 (0.595), unit Spearman 0.933
  (0.898; one seed of five below the raw mean, -0.015);
* educators in one unit, no calibration: every educator warned, rater r 0.641 (0.595), 95 %
  unit intervals covered the truth for 0.975 of 200 units (0.910-0.930 in the linked designs).
* Mean infit/outfit of items and raters: 0.96-0.99 in every design.
* Units as a random facet vs fixed unit means: with 50 sheets in every unit shrinkage cannot
  reorder units and the figures above moved by at most 0.012 (fixed means: rater r 0.887 / 0.889 /
  0.629 in b / c / d); with units of 5-50 sheets unit Spearman 0.896 vs 0.895 (b) and 0.895 vs
  0.888 (c), rater r 0.788 vs 0.784 and 0.877 vs 0.874, coverage 0.925 / 0.940 vs 0.950 / 0.950:
  a small gain on average, not on every seed.

Fit time and quadrature (2 CPU cores shared with other jobs; timings on this machine are noisy).
Every evaluation works on (ratings x nodes x levels) arrays: 100 000 ratings x 7 nodes x 4 levels.
The earlier fit grouped ratings by (unit-term, band, rater, item) combination, which pays only where
few combinations exist (design b); in the crossed design (5 raters per sheet, every combination
nearly distinct) it worked on ~100 000 combinations x 31 nodes. The same 100k data fitted by the
implementation before it (commit 5315bbd) and by this one, one after the other (load 2.5): design (b) 3.94 s -> 3.34 s,
crossed 17.6 s -> 3.15 s (5.6x; 50 L-BFGS iterations, ~40 ms each); ``bench/assessment.py``
records both against ``adaptive=False`` in the same run. BLAS is held to one thread during the fit
(threadpoolctl): its products are thin, and at load ~4 OpenBLAS's 2 threads doubled an evaluation.
Accuracy against 81 fixed nodes at a tight tolerance (20 units x 40 sheets, seed 7; max |difference|
of unit means / abilities / severities): 7 adaptive nodes 0.0004 / 0.0006 / 0.0005 (b), 0.0003 /
0.0002 / 0.0000 (crossed), 0.0004 / 0.0005 / 0.0004 (c), i.e. within the optimiser's tolerance;
the earlier fixed nodes 0.0004 / 0.0013 / 0.0006 (b, 15 nodes) but 0.0074 / 0.0117 / 0.0007
(crossed, 31 nodes); 5 adaptive nodes 0.0025 / 0.0016 in the crossed design, so 7 is the default.
The bench's recovery figures did not move (3 decimals; one rater r by 0.001).
"""

from __future__ import annotations

import functools
import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy.optimize import OptimizeResult, minimize
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

ItemKey = tuple[str, str]  # (case, rubric item)
#: Unit-terms (beyond one per term) needed before their spread is estimated and units shrunk.
MIN_UNITS_FOR_PRIOR = 10
#: Gauss-Hermite nodes per sheet with adaptive quadrature (module docstring).
ADAPTIVE_NODES = 7


class ModelFitWarning(UserWarning):
    """Something about the data the fit had to work around (unused levels, disconnected raters)."""


@dataclass(frozen=True)
class Anchors:
    """Item thresholds and rater severities (logits) to hold fixed in a later fit.

    ``thresholds`` maps (case, item) to (used levels, thresholds); ``severity`` maps rater to logits.
    """

    thresholds: Mapping[ItemKey, tuple[tuple[int, ...], tuple[float, ...]]] = field(
        default_factory=dict
    )
    severity: Mapping[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Confounded:
    """A rater whose severity cannot be told from the ability of a unit they rated in."""

    rater: str
    unit: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {
            "code": "rater_unit_confounded",
            "rater": self.rater,
            "unit": self.unit,
            "message": self.message,
        }


def _category_probabilities(
    eta: np.ndarray, item_idx: np.ndarray, cum_delta: np.ndarray
) -> np.ndarray:
    """Category probabilities, shape eta.shape + (K_max + 1,).

    ``eta`` = theta - rho per rating (logits; shape (n,) or (n, nodes)); ``cum_delta[i, k]`` = sum
    of the first k thresholds of item i, +inf for levels the item does not have (probability 0).
    """
    n_cat = cum_delta.shape[1]
    cd = cum_delta[item_idx]
    if eta.ndim == 2:
        cd = cd[:, None, :]
    logits = eta[..., None] * np.arange(n_cat) - cd
    logits -= logits.max(axis=-1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=-1, keepdims=True)
    return logits


def _is_blank(values: pd.Series) -> np.ndarray:
    text = values.astype(object).where(values.notna(), "")
    return (text.astype(str).str.strip() == "").to_numpy()


class ManyFacetPCM:
    """Many-facet partial credit model, sheets nested in units, by marginal ML (module docstring).

    Parameters
    ----------
    max_iter: most L-BFGS iterations.
    tol: convergence tolerance on the projected gradient (log-likelihood units).
    anchors: fixed item thresholds and rater severities from a reference fit (an :class:`Anchors`
        or a fitted :class:`ManyFacetPCM`). Anchored facets are not centred, so the new unit and
        sheet abilities are on the reference scale.
    theta_prior_sd: SD of the weak normal penalty on calibration-sheet abilities (logits).
    severity_prior_sd: SD of the weak normal penalty on severities (logits).
    n_nodes: Gauss-Hermite nodes per sheet for the sheet deviations; None: 7 with adaptive
        quadrature; without, 15, or 31 when the regular sheets carry more than 6 ratings on
        average (module docstring). ``n_nodes_`` is the number used.
    adaptive: centre and scale each sheet's nodes on its posterior (module docstring); False
        keeps the nodes fixed on N(0, 1) (the earlier fit, bit for bit up to the optimiser).
    random_units: unit means as a random facet, ``mu_g ~ N(m_term, unit_prior_sd**2)`` (module
        docstring); False keeps them as free fixed effects.
    unit_prior_sd: SD of that distribution (logits); None estimates it (empirical Bayes) when
        there are enough unit-terms (``MIN_UNITS_FOR_PRIOR`` units in one term, or as many degrees
        of freedom pooled over terms), and keeps fixed effects below that.

    Learned attributes (after :meth:`fit`)
    --------------------------------------
    item_keys_, item_levels_, thresholds_, thresholds_se_, item_difficulty_, item_infit_,
    item_outfit_, item_n_, item_anchored_: per rubric item ((case, item) order).
    raters_, severity_, severity_se_, rater_infit_, rater_outfit_, rater_n_, rater_anchored_.
    sheets_, ability_ (EAP; calibration sheets: their fitted ability), ability_se_,
    sheet_extreme_, sheet_calibration_.
    groups_ (list of (unit, term)), unit_mean_, unit_mean_se_, unit_confound_var_, sigma_.
    tau_: spread of severities (SD) estimated within linked blocks.
    unit_prior_sd_: spread of unit means within a term used by the fit (None: fixed effects);
    unit_prior_mean_: the term mean each unit-term is shrunk toward.
    confounded_: list of :class:`Confounded`. converged_, n_iter_, warnings_ (list of str).
    """

    def __init__(
        self,
        max_iter: int = 500,
        tol: float = 1e-3,
        anchors: Anchors | ManyFacetPCM | None = None,
        theta_prior_sd: float = 3.0,
        severity_prior_sd: float | None = None,
        n_nodes: int | None = None,
        random_units: bool = True,
        unit_prior_sd: float | None = None,
        age_bands: bool = True,
        adaptive: bool = True,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.anchors = anchors
        self.theta_prior_sd = theta_prior_sd
        self.severity_prior_sd = severity_prior_sd
        self.n_nodes = n_nodes
        self.random_units = random_units
        self.unit_prior_sd = unit_prior_sd
        self.age_bands = age_bands
        self.adaptive = adaptive

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        ratings: pd.DataFrame,
        *,
        on_iteration: Callable[[int, float], None] | None = None,
    ) -> ManyFacetPCM:
        """Fit to a ratings frame with columns sheet_id, rater, case, item, level (and unit, term).

        Rows with an empty ``unit`` are calibration ratings (the sheet is a calibration response).
        Without a ``unit`` column all sheets of a term form one group. ``on_iteration(iteration,
        objective)`` is called after every L-BFGS iteration. Returns self.

        BLAS runs on one thread during the fit: its matrix products are thin (ratings x nodes
        against a vector), where threads only add synchronisation (on 2 shared cores one
        evaluation took about twice as long with OpenBLAS's 2 threads).
        """
        with threadpool_limits(limits=1, user_api="blas"):
            return self._fit(ratings, on_iteration)

    def _fit(
        self, ratings: pd.DataFrame, on_iteration: Callable[[int, float], None] | None
    ) -> ManyFacetPCM:
        if (
            self.max_iter < 1
            or self.tol <= 0
            or self.theta_prior_sd <= 0
            or (self.severity_prior_sd is not None and self.severity_prior_sd <= 0)
            or (self.unit_prior_sd is not None and self.unit_prior_sd <= 0)
            or (self.n_nodes is not None and self.n_nodes < 3)
        ):
            raise ValueError("max_iter must be >= 1, n_nodes >= 3, tol and the prior SDs > 0")
        missing = {"sheet_id", "rater", "case", "item", "level"} - set(ratings.columns)
        if missing:
            raise ValueError(f"ratings lack column(s): {', '.join(sorted(missing))}")
        if len(ratings) == 0:
            raise ValueError("no ratings to fit")
        anchors = (
            self.anchors.anchor_values() if isinstance(self.anchors, ManyFacetPCM) else self.anchors
        )
        self.warnings_: list[str] = []

        sheet_codes, sheets = pd.factorize(ratings["sheet_id"].astype(str), sort=True)
        rater_codes, raters = pd.factorize(ratings["rater"].astype(str), sort=True)
        item_frame = pd.DataFrame(
            {"case": ratings["case"].astype(str).to_numpy(), "item": ratings["item"].astype(str)}
        )
        item_codes, item_index = pd.factorize(pd.MultiIndex.from_frame(item_frame), sort=True)
        keys: list[ItemKey] = [(str(c), str(i)) for c, i in item_index]
        raw_level = ratings["level"].to_numpy(dtype=np.int64)
        if (raw_level < 0).any():
            raise ValueError("levels must be >= 0")
        n_items, n_raters, n_sheets = len(keys), len(raters), len(sheets)

        # Sheets: calibration (empty unit) or nested in a (unit, term) group.
        if "unit" in ratings.columns:
            blank = _is_blank(ratings["unit"])
            unit_text = ratings["unit"].astype(object).where(~blank, "").astype(str).to_numpy()
        else:
            blank = np.zeros(len(ratings), dtype=bool)
            unit_text = np.full(len(ratings), "", dtype=object)
        term_text = (
            ratings["term"].astype(str).to_numpy()
            if "term" in ratings.columns
            else np.full(len(ratings), "", dtype=object)
        )
        is_cal = np.zeros(n_sheets, dtype=bool)
        is_cal[sheet_codes[blank]] = True
        group_codes, group_index = pd.factorize(
            pd.MultiIndex.from_arrays([unit_text, term_text]), sort=True
        )
        sheet_group: np.ndarray = np.full(n_sheets, -1, dtype=np.int64)
        sheet_group[sheet_codes[~blank]] = group_codes[~blank]
        groups = [(str(u), str(t)) for u, t in group_index]
        # Renumber the groups that hold regular sheets 0..G-1.
        used_groups = np.unique(sheet_group[~is_cal])
        group_map = np.full(len(groups), -1, dtype=np.int64)
        group_map[used_groups] = np.arange(len(used_groups))
        groups = [groups[g] for g in used_groups]
        sheet_group = np.where(is_cal, -1, group_map[np.maximum(sheet_group, 0)]).astype(np.int64)
        n_groups = len(groups)
        cal_codes = np.full(n_sheets, -1, dtype=np.int64)
        cal_codes[is_cal] = np.arange(int(is_cal.sum()))
        n_cal = int(is_cal.sum())
        # Age bands of the regular sheets (a fixed facet; module docstring). -1: unknown/empty or
        # a calibration sheet (beta 0). Band codes follow the sorted labels.
        sheet_band: np.ndarray = np.full(n_sheets, -1, dtype=np.int64)
        band_labels: list[str] = []
        if self.age_bands and "age_band" in ratings.columns:
            band_blank = _is_blank(ratings["age_band"])
            known = ~band_blank & ~blank
            if known.any():
                band_codes, band_index = pd.factorize(
                    ratings["age_band"].astype(str).str.strip().to_numpy()[known], sort=True
                )
                band_labels = [str(b) for b in band_index]
                sheet_band[sheet_codes[known]] = band_codes
        n_bands = len(band_labels)

        x, item_levels, item_fixed = self._collapse_levels(item_codes, raw_level, keys, anchors)
        n_steps = np.array([len(lv) - 1 for lv in item_levels])
        usable = n_steps[item_codes] > 0  # an item with one used level carries no information
        for i in np.flatnonzero(n_steps == 0):
            self._warn(f"item {keys[i]} has only level {item_levels[i][0]}; it is left out")
        if not usable.any():
            raise ValueError("no rubric item has two or more levels used; nothing to estimate")
        s, r, it, x = sheet_codes[usable], rater_codes[usable], item_codes[usable], x[usable]
        k_max = max(int(n_steps.max()), 1)
        step_valid = np.arange(1, k_max + 1)[None, :] <= n_steps[:, None]  # (n_items, k_max)
        n_valid = int(step_valid.sum())
        ks = np.arange(k_max + 1, dtype=float)

        # Regular ratings (integrated over the sheet deviation) and calibration ratings.
        reg = ~is_cal[s]
        reg_sheets, sr = np.unique(s[reg], return_inverse=True)
        n_rs = len(reg_sheets)
        gr, rr, ir, xr = sheet_group[reg_sheets][sr], r[reg], it[reg], x[reg]
        # band of every regular rating; n_bands = unknown (beta 0)
        br = np.where(sheet_band[reg_sheets] >= 0, sheet_band[reg_sheets], n_bands)[sr]
        cc, rc, ic, xc = cal_codes[s[~reg]], r[~reg], it[~reg], x[~reg]
        n_reg = len(xr)
        # Sheet x rating incidence: a sheet's log-likelihood at a node is the sum of its ratings'.
        m_sheet = csr_matrix((np.ones(n_reg), (sr, np.arange(n_reg))), shape=(n_rs, n_reg))
        x_sheet = np.bincount(sr, weights=xr, minlength=n_rs)
        x_group = np.bincount(gr, weights=xr, minlength=n_groups)
        x_band = np.bincount(br, weights=xr, minlength=n_bands + 1)
        # beta identified by sum_a n_a beta_a = 0 (n_a: regular sheets of band a); the last band's
        # effect is implied by the others (n_bands - 1 free parameters).
        reg_band = sheet_band[reg_sheets]
        band_n = np.bincount(reg_band[reg_band >= 0], minlength=n_bands).astype(float)
        n_beta = max(n_bands - 1, 0)

        def beta_full(free: np.ndarray) -> np.ndarray:
            """Every band's effect plus 0 for unknown band (index n_bands)."""
            beta = np.zeros(n_bands + 1)
            if n_bands:
                beta[:n_beta] = free
                beta[n_beta] = -float(band_n[:n_beta] @ free) / max(band_n[n_beta], 1.0)
            return beta

        x_rater_reg = np.bincount(rr, weights=xr, minlength=n_raters)
        n_q = self.n_nodes
        if n_q is None:
            n_q = ADAPTIVE_NODES if self.adaptive else (31 if n_reg > 6 * max(n_rs, 1) else 15)
        self.n_nodes_ = n_q
        nodes, node_w = np.polynomial.hermite_e.hermegauss(n_q)
        log_node_w = np.log(node_w / node_w.sum())
        ones_q = np.ones(n_q)
        # The quadrature of every regular sheet: nodes z_sq on the sheet's deviation (standardised)
        # and log weights; fixed Gauss-Hermite (z = nodes) unless adapted (see adapt below).
        quad: dict[str, np.ndarray] = {}

        def set_nodes(centre: np.ndarray, spread: np.ndarray) -> None:
            """Nodes centred at ``centre`` and scaled by ``spread`` (per sheet, in z units):
            int f(z) phi(z) dz = int f(a + b t) phi(a + b t) / phi(t) b phi(t) dt."""
            z_q = centre[:, None] + spread[:, None] * nodes[None, :]
            quad["z"] = z_q
            quad["zr"] = z_q[sr]
            quad["lw"] = (
                log_node_w[None, :]
                + np.log(spread)[:, None]
                - 0.5 * z_q**2
                + 0.5 * nodes[None, :] ** 2
            )

        set_nodes(np.zeros(n_rs), np.ones(n_rs))
        buf: dict[str, np.ndarray] = {
            name: np.empty((n_reg, n_q)) for name in ("eta", "u", "z", "log_z", "wz")
        }
        buf["terms"] = np.empty((k_max + 1, n_reg, n_q))
        buf["terms"][0] = 1.0
        buf["w_terms"] = np.empty((k_max, n_reg, n_q))
        ge_obs = np.stack(
            [np.bincount(it, weights=(x >= j), minlength=n_items) for j in range(1, k_max + 1)], 1
        )
        xc_idx = xc[:, None]

        # Anchors, starting values, bounds.
        delta0 = np.where(
            step_valid, np.linspace(-1.0, 1.0, k_max)[None, :] if k_max > 1 else 0.0, 0.0
        )
        rho0 = np.zeros(n_raters)
        rater_fixed = np.zeros(n_raters, dtype=bool)
        if anchors is not None:
            for i in np.flatnonzero(item_fixed):
                delta0[i, : n_steps[i]] = anchors.thresholds[keys[i]][1]
            for j, rater in enumerate(raters):
                if rater in anchors.severity:
                    rho0[j] = anchors.severity[rater]
                    rater_fixed[j] = True
        centre_items = not item_fixed.any()
        centre_raters = not rater_fixed.any()
        max_sheet = np.bincount(s, weights=n_steps[it], minlength=n_sheets)
        obs_sheet = np.bincount(s, weights=x, minlength=n_sheets)
        prop = (obs_sheet + 0.5) / (max_sheet + 1.0)
        start_theta = np.log(prop / (1 - prop))
        mu0 = np.zeros(n_groups)
        beta0 = np.zeros(n_beta)
        if n_groups:
            cnt = np.bincount(sheet_group[reg_sheets], minlength=n_groups)
            theta_reg = start_theta[reg_sheets]
            if n_bands > 1:
                band_mean = np.bincount(
                    reg_band[reg_band >= 0], weights=theta_reg[reg_band >= 0], minlength=n_bands
                ) / np.maximum(band_n, 1)
                band_mean -= float(band_n @ band_mean) / band_n.sum()
                beta0 = band_mean[:n_beta]
                theta_reg = theta_reg - beta_full(beta0)[np.where(reg_band >= 0, reg_band, n_bands)]
            mu0 = np.bincount(
                sheet_group[reg_sheets], weights=theta_reg, minlength=n_groups
            ) / np.maximum(cnt, 1)
        sections = np.cumsum([n_valid, n_raters, n_groups, 1, n_cal])
        p0 = np.concatenate([delta0[step_valid], rho0, mu0, [0.0], start_theta[is_cal], beta0])
        bounds: list[tuple[float | None, float | None]] = []
        item_step_fixed = np.broadcast_to(item_fixed[:, None], step_valid.shape)[step_valid]
        bounds += [
            (v, v) if f else (None, None)
            for v, f in zip(p0[:n_valid], item_step_fixed, strict=True)
        ]
        bounds += [(v, v) if f else (None, None) for v, f in zip(rho0, rater_fixed, strict=True)]
        bounds += [(None, None)] * n_groups + [(math.log(0.05), math.log(5.0))]
        bounds += [(None, None)] * n_cal + [(None, None)] * n_beta
        if n_groups == 0:
            bounds[sections[2]] = (0.0, 0.0)  # no regular sheets: sigma plays no part
        steps_of = np.broadcast_to(n_steps[:, None], step_valid.shape)[step_valid]
        n_centred = max(int((n_steps > 0).sum()), 1)
        item_of_step = np.broadcast_to(np.arange(n_items)[:, None], step_valid.shape)[step_valid]
        prec_cell = [1.0 / (self.severity_prior_sd or 1.0) ** 2]
        # Unit means as a random facet: N(term mean, unit_prec**-1); 0 = fixed effects (first fit
        # when the spread is estimated).
        group_term, _ = pd.factorize(np.array([g[1] for g in groups], dtype=object))
        group_term = np.asarray(group_term, dtype=np.int64)
        n_terms = int(group_term.max()) + 1 if n_groups else 0
        term_size = np.bincount(group_term, minlength=n_terms).astype(float)
        unit_prec = [
            1.0 / self.unit_prior_sd**2
            if self.random_units and self.unit_prior_sd is not None
            else 0.0
        ]

        def term_dev(mu: np.ndarray) -> np.ndarray:
            """Each unit-term mean minus the mean of its term's unit-term means."""
            means = np.bincount(group_term, weights=mu, minlength=n_terms) / np.maximum(
                term_size, 1
            )
            return np.asarray(mu - means[group_term])

        cal_prec = 1.0 / self.theta_prior_sd**2

        def unpack(p: np.ndarray) -> tuple[Any, ...]:
            delta = np.zeros((n_items, k_max))
            delta[step_valid] = p[:n_valid]
            rho = p[sections[0] : sections[1]]
            mu = p[sections[1] : sections[2]]
            sigma = math.exp(p[sections[2]])
            theta_c = p[sections[3] : sections[4]]
            cum = np.zeros((n_items, k_max + 1))
            cum[:, 1:] = np.cumsum(delta, axis=1)
            cum[:, 1:][~step_valid] = np.inf
            return delta, rho, mu, sigma, theta_c, cum

        def evaluate(p: np.ndarray, full: bool = False) -> tuple[float, np.ndarray, dict]:
            delta, rho, mu, sigma, theta_c, cum = unpack(p)
            out: dict = {}
            nll = 0.0
            g_delta = ge_obs.astype(float).copy()  # sum of 1[x >= j] - P(X >= j) = -dlogL/ddelta
            sev_prec = prec_cell[0]
            g_rho = sev_prec * rho
            g_mu = np.zeros(n_groups)
            g_ls: float = 0.0
            g_cal = cal_prec * theta_c
            g_beta = np.zeros(n_beta)
            nll += 0.5 * sev_prec * float(rho @ rho) + 0.5 * cal_prec * float(theta_c @ theta_c)
            if unit_prec[0] > 0 and n_groups:
                # The term mean is profiled out (flat prior); deviations sum to 0 within a term,
                # so the gradient is unit_prec * deviation.
                dev_mu = term_dev(mu)
                nll += 0.5 * unit_prec[0] * float(dev_mu @ dev_mu)
                g_mu += unit_prec[0] * dev_mu
            if n_reg:
                # Every regular rating at its sheet's nodes: eta = theta_sq - rho. exp(k * eta -
                # cum_k) as running products of exp(eta - delta_k): one exp per node, not per level
                # (|eta| <= 30 keeps exp(K * eta) finite; real logits stay far inside).
                beta = beta_full(p[sections[4] :])
                off = mu[gr] + beta[br] - rho[rr]
                # (in buffers kept across evaluations: fresh arrays of this size cost page faults)
                eta = np.multiply(quad["zr"], sigma, out=buf["eta"])
                eta += off[:, None]
                np.clip(eta, -30, 30, out=eta)
                u = np.exp(eta, out=buf["u"])
                step_exp = (np.exp(-delta) * step_valid)[ir]  # 0 above the item's top level
                terms = buf["terms"]  # unnormalised P, level first; terms[0] = 1
                for k in range(1, k_max + 1):
                    np.multiply(terms[k - 1], u, out=terms[k])
                    terms[k] *= step_exp[:, k - 1, None]
                z = np.sum(terms, axis=0, out=buf["z"])
                log_z = np.log(z, out=buf["log_z"])
                # A sheet's log-likelihood per node: its ratings' x * eta - cum_x - log Z, where
                # the sum of x * eta is the sheet's total times its node plus a constant.
                lin = np.bincount(sr, weights=xr * off - cum[ir, xr], minlength=n_rs)
                ll_sq = (
                    lin[:, None]
                    + (sigma * x_sheet)[:, None] * quad["z"]
                    - m_sheet @ log_z
                    + quad["lw"]
                )
                m = functools.reduce(np.maximum, ll_sq.T)[:, None]
                w_sq = np.exp(ll_sq - m)
                total = w_sq @ ones_q
                lse = m[:, 0] + np.log(total)
                nll -= float(lse.sum())
                w_sq /= total[:, None]
                out["w_sq"] = w_sq
                wz = np.divide(w_sq[sr], z, out=buf["wz"])  # posterior weight of a node / Z
                # sum over nodes of w P_k per rating and level (k >= 1); row sums as matrix
                # products (numpy's reductions over a short last axis are slow)
                w_terms = np.multiply(terms[1:], wz, out=buf["w_terms"])
                p_k = (w_terms.reshape(-1, n_q) @ ones_q).reshape(k_max, n_reg)
                gbar = np.cumsum(p_k[::-1], axis=0)[::-1].T  # posterior P(X >= j), j = 1..K
                ew = ks[1:] @ p_k  # each rating's posterior expected level
                ew_q = ks[1:] @ w_terms.reshape(k_max, -1)  # ... per node (weighted)
                g_mu -= x_group - np.bincount(gr, weights=ew, minlength=n_groups)
                if n_beta:
                    # beta's score is mu's per-sheet score summed by band, through the constraint
                    g_band = np.bincount(br, weights=ew, minlength=n_bands + 1) - x_band
                    g_beta = g_band[:n_beta] - band_n[:n_beta] / band_n[n_beta] * g_band[n_beta]
                g_ls -= sigma * float(
                    x_sheet @ ((w_sq * quad["z"]) @ ones_q) - ew_q @ quad["zr"].ravel()
                )
                g_rho += x_rater_reg - np.bincount(rr, weights=ew, minlength=n_raters)
                for j in range(k_max):
                    g_delta[:, j] -= np.bincount(ir, weights=gbar[:, j], minlength=n_items)
                if full:
                    prob = np.moveaxis(terms / z, 0, -1)
                    ge = np.cumsum(prob[..., ::-1], axis=-1)[..., ::-1][..., 1:]
                    out.update(
                        prob=prob,
                        logp=xr[:, None] * eta - cum[ir, xr][:, None] - log_z,
                        w=w_sq[sr],
                        e_k=prob @ ks,
                        ge=ge,
                    )
            if n_cal:
                eta_c = theta_c[cc] - rho[rc]
                prob_c = _category_probabilities(eta_c, ic, cum)
                lp = np.log(np.maximum(np.take_along_axis(prob_c, xc_idx, 1)[:, 0], 1e-300))
                nll -= float(lp.sum())
                res_c = xc - prob_c @ ks
                g_cal -= np.bincount(cc, weights=res_c, minlength=n_cal)
                g_rho += np.bincount(rc, weights=res_c, minlength=n_raters)
                ge_c = np.cumsum(prob_c[:, ::-1], axis=1)[:, ::-1][:, 1:]
                for j in range(k_max):
                    g_delta[:, j] -= np.bincount(ic, weights=ge_c[:, j], minlength=n_items)
                if full:
                    out.update(prob_c=prob_c, ge_c=ge_c)
            g_d = g_delta[step_valid]  # gradient of the negative log-likelihood
            if centre_items:
                difficulty = np.bincount(
                    item_of_step, weights=p[:n_valid] / steps_of, minlength=n_items
                )
                c = float(difficulty[n_steps > 0].sum()) / n_centred
                nll += 0.5 * c * c
                g_d = g_d + c / (n_centred * steps_of)
            grad = np.concatenate([g_d, g_rho, g_mu, [g_ls], g_cal, g_beta])
            return nll, grad, out

        iteration = [0]

        def callback(p: np.ndarray) -> None:
            iteration[0] += 1
            if on_iteration is not None:
                on_iteration(iteration[0], float(evaluate(p)[0]))

        # Diagonal preconditioning: L-BFGS works on p * scale, scale ~ sqrt(information) from the
        # counts (a unit mean with 2 500 ratings and a threshold with 30 differ by ~10**2 in
        # curvature; unscaled, L-BFGS needs several times more iterations). The tolerance then
        # applies to the scaled gradient (parameter error about tol / scale).
        n_item_r = np.bincount(it, minlength=n_items).astype(float)
        # a sheet's information about its unit mean ~ 1 / (1 + e**2), e**2 ~ 1 / (0.25 n_ratings)
        share_s = 1.0 / (1.0 + 1.0 / (0.25 * np.bincount(sr, minlength=n_rs) + 1e-9))
        scale = np.sqrt(
            1.0
            + np.concatenate(
                [
                    0.25 * n_item_r[item_of_step],
                    0.25 * np.bincount(r, minlength=n_raters),
                    np.bincount(sheet_group[reg_sheets], weights=share_s, minlength=n_groups),
                    [2.0 * float(share_s @ share_s)],
                    0.25 * np.bincount(cc, minlength=n_cal),
                    np.bincount(
                        reg_band[reg_band >= 0], weights=share_s[reg_band >= 0], minlength=n_bands
                    )[:n_beta],
                ]
            )
        )
        scaled_bounds = [
            (None if lo is None else lo * c, None if hi is None else hi * c)
            for (lo, hi), c in zip(bounds, scale, strict=True)
        ]

        is_fixed = np.array([lo is not None and lo == hi for lo, hi in bounds], dtype=bool)
        fixed_value = np.array([lo if lo is not None else 0.0 for lo, _ in bounds], dtype=float)

        def scaled(q: np.ndarray) -> tuple[float, np.ndarray]:
            value, grad, _ = evaluate(q / scale)
            return value, grad / scale

        def run(start: np.ndarray, gtol: float) -> OptimizeResult:
            result = minimize(
                scaled,
                start * scale,
                jac=True,
                method="L-BFGS-B",
                bounds=scaled_bounds,
                callback=lambda q: callback(q / scale),
                options={"maxiter": self.max_iter, "gtol": gtol, "ftol": 1e-13, "maxcor": 20},
            )
            # fixed (anchored) values exactly as given, not via the scaling's rounding
            result.x = np.where(is_fixed, fixed_value, result.x / scale)
            return result

        reg_b = np.where(reg_band >= 0, reg_band, n_bands)

        def group_info(p: np.ndarray) -> np.ndarray:
            """Information of each unit-term's sheets about its mean (see unit_info below)."""
            _, _, mu, sigma, _, _ = unpack(p)
            w_sq = evaluate(p)[2]["w_sq"]
            theta_q = (mu[sheet_group[reg_sheets]] + beta_full(p[sections[4] :])[reg_b])[
                :, None
            ] + sigma * quad["z"]
            eap = (w_sq * theta_q).sum(1)
            var = np.maximum((w_sq * theta_q**2).sum(1) - eap**2, 1e-12)
            s2 = sigma**2
            info_s = np.maximum((s2 - var) / s2**2, 1e-9)
            return np.bincount(sheet_group[reg_sheets], weights=info_s, minlength=n_groups)

        # A refit follows when a prior's spread is estimated from this first fit, which then needs
        # only a loose tolerance (the spreads need two decimals; the refit converges fully).
        def adapt(p: np.ndarray) -> None:
            """Adaptive quadrature: centre each sheet's nodes at the mode of its posterior (given
            the parameters p) and scale them by the posterior's curvature there (Newton steps on
            all sheets at once; the log posterior is concave)."""
            _, rho, mu, sigma, _, cum = unpack(p)
            off = mu[gr] + beta_full(p[sections[4] :])[br] - rho[rr]
            mode = np.zeros(n_rs)
            curv = np.ones(n_rs)
            for _ in range(50):
                prob = _category_probabilities(off + sigma * mode[sr], ir, cum)
                e = prob @ ks
                score = sigma * np.bincount(sr, weights=xr - e, minlength=n_rs) - mode
                curv = 1.0 + sigma**2 * np.bincount(sr, weights=prob @ ks**2 - e**2, minlength=n_rs)
                move = np.clip(score / curv, -1.0, 1.0)
                mode += move
                if np.abs(move).max() < 1e-8:
                    break
            set_nodes(mode, 1.0 / np.sqrt(curv))

        adaptive = self.adaptive and n_reg > 0
        if adaptive:
            adapt(p0)
        # With adaptive nodes a refit always follows (on nodes adapted to the first fit's
        # estimates), so the first fit needs only a loose tolerance.
        loose = (
            adaptive
            or self.severity_prior_sd is None
            or (self.random_units and self.unit_prior_sd is None)
        )
        result = run(p0, 10 * self.tol if loose else self.tol)
        refit = loose
        if adaptive:
            adapt(result.x)
        if self.severity_prior_sd is None:
            # Empirical Bayes: raters as a random facet, N(0, tau**2) with tau the spread of the
            # first fit's severities within the blocks that compare them; then refit from there.
            rater_comp = self._components(s, r, sheet_group, is_cal, cal_codes, n_groups, n_raters)[
                0
            ]
            rho1 = result.x[sections[0] : sections[1]]
            free = ~rater_fixed
            frame = pd.DataFrame({"c": rater_comp[free], "rho": rho1[free]})
            dev = frame["rho"] - frame.groupby("c")["rho"].transform("mean")
            dof = len(frame) - frame["c"].nunique()
            if dof > 0:
                tau2 = max(float((dev**2).sum()) / dof, 0.1**2)
                prec_cell[0] = 1.0 / tau2
                refit = True
        if (
            self.random_units
            and self.unit_prior_sd is None
            and n_reg
            and n_groups - n_terms >= MIN_UNITS_FOR_PRIOR - 1
        ):
            # Empirical Bayes for the units (method of moments): the spread of the first fit's
            # unit-term means around their term mean, less their mean sampling variance. With
            # fewer unit-terms the spread is too uncertain to shrink by: fixed effects.
            dev_mu = term_dev(result.x[sections[1] : sections[2]])
            spread = float(dev_mu @ dev_mu) / (n_groups - n_terms)
            noise = float(np.mean(1.0 / np.maximum(group_info(result.x), 1e-12)))
            unit_prec[0] = 1.0 / max(spread - noise, 0.1**2)
            refit = True
        if refit:
            nit = result.nit
            result = run(result.x, self.tol)
            result.nit += nit
        self.severity_prior_sd_ = 1.0 / math.sqrt(prec_cell[0])
        p = result.x.copy()
        grad_max = float(np.abs(result.jac).max()) if len(p) else 0.0
        converged = bool(result.success) or grad_max < 10 * self.tol
        if not converged:
            self._warn(f"did not converge in {self.max_iter} iterations ({result.message})")

        # Exact gauge: mean item difficulty 0, mean severity 0 (the likelihood cannot see them).
        delta, rho, mu, sigma, theta_c, _ = unpack(p)
        delta, rho, mu, theta_c = delta.copy(), rho.copy(), mu.copy(), theta_c.copy()
        if centre_items:
            shift = float((delta.sum(1) / n_steps.clip(1))[n_steps > 0].mean())
            delta -= np.where(step_valid, shift, 0.0)
            mu -= shift
            theta_c -= shift
        if centre_raters:
            shift = float(rho.mean())
            rho -= shift
            mu -= shift
            theta_c -= shift
        beta_free = p[sections[4] :].copy()
        p = np.concatenate([delta[step_valid], rho, mu, [math.log(sigma)], theta_c, beta_free])
        beta = beta_full(beta_free)
        _, _, st = evaluate(p, full=True)

        # ---------------------------------------------------------------- results at the estimates
        v_all: list[np.ndarray] = []
        resid2 = np.zeros(len(x))
        var_pred = np.ones(len(x))
        rater_info = np.zeros(n_raters)
        info: np.ndarray = np.zeros((n_items, k_max, k_max))
        ability = np.zeros(n_sheets)
        ability_se = np.zeros(n_sheets)
        unit_info = np.zeros(n_sheets)
        if n_reg:
            prob, w, w_sq, e_k, ge = st["prob"], st["w"], st["w_sq"], st["e_k"], st["ge"]
            v_k = prob @ ks**2 - e_k**2
            # Sheet abilities: posterior mean and SD around the unit mean.
            theta_q = (mu[sheet_group[reg_sheets]] + beta[reg_b])[:, None] + sigma * quad["z"]
            eap = (w_sq * theta_q).sum(1)
            ability[reg_sheets] = eap
            ability_se[reg_sheets] = np.sqrt(np.maximum((w_sq * theta_q**2).sum(1) - eap**2, 1e-12))
            # Each sheet's information about its unit mean, 1 / (sigma**2 + e**2) with e**2 its
            # measurement error; with the posterior variance v = sigma**2 e**2 / (sigma**2 + e**2)
            # that is (sigma**2 - v) / sigma**4 (exact for a normal likelihood). Louis' formula on
            # the fixed nodes is unstable when a sheet has many ratings (narrow posterior).
            s2 = sigma**2
            unit_info[reg_sheets] = np.maximum((s2 - ability_se[reg_sheets] ** 2) / s2**2, 1e-9)
            res = xr[:, None] - e_k
            # The same per (sheet, rater) pair for the severities.
            pair, pair_rater = pd.factorize(sr.astype(np.int64) * n_raters + rr)
            n_pairs = len(pair_rater)
            a_pair = csr_matrix((np.ones(n_reg), (pair, np.arange(n_reg))), shape=(n_pairs, n_reg))
            w_pair = w_sq[np.asarray(pair_rater) // n_raters]
            sp, ip = a_pair @ res, a_pair @ v_k
            mp = (w_pair * sp).sum(1)
            pair_info = (w_pair * ip).sum(1) - ((w_pair * sp**2).sum(1) - mp**2)
            rater_info += np.bincount(
                np.asarray(pair_rater) % n_raters, weights=pair_info, minlength=n_raters
            )
            # Fit: leave-one-out posterior predictive of every rating.
            log_loo = np.log(np.maximum(w, 1e-300)) - st["logp"]
            log_loo -= log_loo.max(axis=1, keepdims=True)
            loo = np.exp(log_loo)
            loo /= loo.sum(axis=1, keepdims=True)
            e_pred = (loo * e_k).sum(1)
            var_pred[reg] = np.maximum((loo * (v_k + e_k**2)).sum(1) - e_pred**2, 1e-12)
            resid2[reg] = (xr - e_pred) ** 2
            for j in range(k_max):
                for m in range(j, k_max):
                    cov = (w * (ge[..., m] - ge[..., j] * ge[..., m])).sum(1)
                    info[:, j, m] += np.bincount(ir, weights=cov, minlength=n_items)
        if n_cal:
            prob_c, ge_c = st["prob_c"], st["ge_c"]
            e_c = prob_c @ ks
            v_c = prob_c @ ks**2 - e_c**2
            cal_sheets = np.flatnonzero(is_cal)
            cal_info = np.bincount(cc, weights=v_c, minlength=n_cal) + cal_prec
            ability[cal_sheets] = theta_c
            ability_se[cal_sheets] = 1.0 / np.sqrt(cal_info)
            rater_info += np.bincount(rc, weights=v_c, minlength=n_raters)
            var_pred[~reg] = np.maximum(v_c, 1e-12)
            resid2[~reg] = (xc - e_c) ** 2
            for j in range(k_max):
                for m in range(j, k_max):
                    cov = ge_c[:, m] - ge_c[:, j] * ge_c[:, m]
                    info[:, j, m] += np.bincount(ic, weights=cov, minlength=n_items)
        for j in range(k_max):
            for m in range(j + 1, k_max):
                info[:, m, j] = info[:, j, m]
        pair_valid = step_valid[:, :, None] & step_valid[:, None, :]
        info = np.asarray(np.where(pair_valid, info, 0.0), dtype=float)
        diag = np.arange(k_max)
        info[:, diag, diag] += np.where(step_valid, 1e-9, 1.0)
        cov_thr = np.linalg.inv(info)
        thr_se = np.sqrt(np.clip(np.diagonal(cov_thr, axis1=1, axis2=2), 0, None))
        z2 = resid2 / var_pred
        v_all.append(var_pred)

        nan_pad = np.where(step_valid, 1.0, np.nan)
        self.item_keys_ = keys
        self.item_levels_ = item_levels
        self.thresholds_ = delta * nan_pad
        self.thresholds_se_ = np.where(item_fixed[:, None], 0.0, thr_se) * nan_pad
        self.item_difficulty_ = np.where(
            n_steps > 0, delta.sum(axis=1) / np.maximum(n_steps, 1), np.nan
        )
        self.item_n_ = np.bincount(it, minlength=n_items)
        self.item_infit_, self.item_outfit_ = _mean_squares(it, resid2, var_pred, z2, n_items)
        self.raters_ = [str(x_) for x_ in raters]
        self.severity_ = rho
        self.severity_se_ = np.where(rater_fixed, 0.0, 1.0 / np.sqrt(np.maximum(rater_info, 1e-12)))
        self.rater_n_ = np.bincount(r, minlength=n_raters)
        self.rater_infit_, self.rater_outfit_ = _mean_squares(r, resid2, var_pred, z2, n_raters)
        self.sheets_ = [str(x_) for x_ in sheets]
        self.ability_ = ability
        self.ability_se_ = ability_se
        self.sheet_extreme_ = (obs_sheet == 0) | (obs_sheet == max_sheet)
        self.sheet_calibration_ = is_cal
        self.sheet_unit_info_ = unit_info
        self.item_anchored_ = item_fixed
        self.rater_anchored_ = rater_fixed
        self.groups_ = groups
        self.sigma_ = sigma
        self.unit_mean_ = mu
        self.age_bands_ = band_labels
        self.age_effect_ = beta[:n_bands].copy()
        # Information of each band's sheets about its effect given the unit means (the sum of
        # their unit_info); ignores the sum-to-0 constraint and the unit means' own error.
        band_info = np.bincount(
            reg_band[reg_band >= 0], weights=unit_info[reg_sheets][reg_band >= 0], minlength=n_bands
        )
        self.age_effect_se_ = 1.0 / np.sqrt(np.maximum(band_info, 1e-12))
        self.age_effect_n_ = band_n.astype(int)
        self._sheet_band = sheet_band
        # The objective (negative penalised marginal log-likelihood, gradient) and the estimates
        # in its parametrisation, for checks of the analytic gradient.
        self._objective = lambda q: evaluate(q)[:2]
        self._estimates = p
        self.unit_prior_sd_ = 1.0 / math.sqrt(unit_prec[0]) if unit_prec[0] > 0 else None
        self.unit_prior_prec_ = unit_prec[0]
        self.unit_prior_mean_ = mu - term_dev(mu) if n_groups else np.zeros(0)
        self.converged_ = converged
        self.n_iter_ = int(result.nit)

        # Which rater-unit blocks the design links (module docstring).
        self._link(s, r, sheet_group, is_cal, cal_codes, n_groups, n_cal, n_raters)
        self.unit_mean_se_ = 1.0 / np.sqrt(
            np.maximum(
                np.bincount(
                    sheet_group[reg_sheets], weights=unit_info[reg_sheets], minlength=n_groups
                )
                + unit_prec[0],
                1e-12,
            )
            if n_groups
            else np.zeros(0)
        )
        # The unit figure also carries its raters' severity errors (weighted by their share of the
        # unit's ratings), and for a confounded unit the spread of severities (module docstring).
        share = np.zeros((n_groups, n_raters))
        regular = ~is_cal[s]
        np.add.at(share, (sheet_group[s[regular]], r[regular]), 1.0)
        share /= np.maximum(share.sum(axis=1, keepdims=True), 1.0)
        self.unit_extra_var_ = share**2 @ (self.severity_se_**2) + self.unit_confound_var_
        self.unit_mean_se_ = np.sqrt(self.unit_mean_se_**2 + self.unit_extra_var_)
        meta = ratings.drop_duplicates("sheet_id").assign(
            sheet_id=lambda d: d["sheet_id"].astype(str)
        )
        if "unit" in meta.columns:
            meta = meta.assign(unit=meta["unit"].where(~_is_blank(meta["unit"]), None))
        self._sheet_meta = meta
        return self

    # ------------------------------------------------------------------ helpers
    def _warn(self, message: str) -> None:
        self.warnings_.append(message)
        warnings.warn(message, ModelFitWarning, stacklevel=3)

    @staticmethod
    def _components(
        s: np.ndarray,
        r: np.ndarray,
        sheet_group: np.ndarray,
        is_cal: np.ndarray,
        cal_codes: np.ndarray,
        n_groups: int,
        n_raters: int,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Component labels of raters and unit-terms in the rater x (unit-term + calibration
        sheet) graph."""
        target = np.where(is_cal[s], n_groups + cal_codes[s], sheet_group[s])
        n_nodes = n_raters + n_groups + int(is_cal.sum())
        graph = coo_matrix(
            (np.ones(len(s)), (r, n_raters + target)), shape=(n_nodes, n_nodes)
        ).tocsr()
        _, labels = connected_components(graph, directed=False)
        return labels[:n_raters], labels[n_raters : n_raters + n_groups]

    def _link(
        self,
        s: np.ndarray,
        r: np.ndarray,
        sheet_group: np.ndarray,
        is_cal: np.ndarray,
        cal_codes: np.ndarray,
        n_groups: int,
        n_cal: int,
        n_raters: int,
    ) -> None:
        """Connected components of raters x (unit-terms + calibration sheets); sets confounded_,
        tau_ and unit_confound_var_ (see the module docstring)."""
        rater_comp, group_comp = self._components(
            s, r, sheet_group, is_cal, cal_codes, n_groups, n_raters
        )
        comps, comp_size = np.unique(rater_comp, return_counts=True)
        size_of = dict(zip(comps.tolist(), comp_size.tolist(), strict=True))
        linked: set[int] = set()
        if len(comps) == 1:
            linked = {int(comps[0])}
        else:
            linked = {int(c) for c, n in size_of.items() if n > n_raters / 2}
        linked |= {int(c) for c in rater_comp[self.rater_anchored_]}
        # tau^2: severities' spread within components (relative severities are identified there).
        free = ~self.rater_anchored_
        dev2, dof = 0.0, 0
        for c in comps:
            members = (rater_comp == c) & free
            if members.sum() >= 2:
                sev = self.severity_[members]
                dev2 += float(((sev - sev.mean()) ** 2).sum())
                dof += int(members.sum()) - 1
        se2 = float(np.mean(self.severity_se_[free] ** 2)) if free.any() else 0.0
        if dof == 0:
            tau2 = self.severity_prior_sd_**2  # nothing compares raters: the prior's variance
        elif self.severity_prior_sd is None:
            # The empirical-Bayes prior variance is the first fit's within-block spread of (nearly
            # unshrunk) severities; less their mean squared error it estimates tau**2.
            tau2 = max(self.severity_prior_sd_**2 - se2, 0.0)
        else:
            tau2 = max(dev2 / dof - se2, 0.0)
        self.tau_ = math.sqrt(tau2)
        self.unit_confound_var_ = np.array(
            [0.0 if int(c) in linked else tau2 / size_of.get(int(c), 1) for c in group_comp]
        )
        self.confounded_: list[Confounded] = []
        if len(comps) > 1:
            regular = ~is_cal[s]
            pairs = np.unique(np.stack([r[regular], sheet_group[s[regular]]], 1), axis=0)
            seen: set[tuple[str, str]] = set()
            for rater_i, group_i in pairs.tolist():
                if int(rater_comp[rater_i]) in linked:
                    continue
                rater, unit = self.raters_[rater_i], self.groups_[group_i][0]
                if (rater, unit) in seen:
                    continue
                seen.add((rater, unit))
                self.confounded_.append(
                    Confounded(
                        rater,
                        unit,
                        f"educator {rater}'s severity cannot be told apart from the ability of "
                        f"unit {unit}: no educator links this unit to the others and no "
                        "calibration responses were rated; the unit's interval is widened by the "
                        f"spread of severities (tau = {self.tau_:.2f} logits). Have the "
                        "educators rate the calibration responses, or rate in other units too.",
                    )
                )
            n_blocks = len(comps) - len(linked & {int(c) for c in comps})
            self._warn(
                f"{len({c.rater for c in self.confounded_})} rater(s) in {n_blocks} block(s) that "
                "nothing links to the rest of the design (no shared unit, no calibration): their "
                "severities are confounded with their units' abilities (see confounded_)"
            )

    def _collapse_levels(
        self,
        item_codes: np.ndarray,
        level: np.ndarray,
        keys: list[ItemKey],
        anchors: Anchors | None,
    ) -> tuple[np.ndarray, list[tuple[int, ...]], np.ndarray]:
        """Recode each item's levels to 0..(number used - 1); warn where levels were unused.

        Unused levels have no estimable threshold, so neighbouring categories are merged (the usual
        Rasch practice). An anchored item keeps the anchor's levels when the levels seen here are
        among them: its thresholds are fixed, so unseen levels need no estimate. Returns the recoded
        levels, the original levels per item, and which items take their anchor's thresholds.
        """
        top = int(level.max()) + 1
        used = np.zeros((len(keys), top), dtype=bool)
        used[item_codes, level] = True
        anchor_levels = anchors.thresholds if anchors is not None else {}
        item_levels: list[tuple[int, ...]] = []
        anchored = np.zeros(len(keys), dtype=bool)
        for i, key in enumerate(keys):
            seen = tuple(int(v) for v in np.flatnonzero(used[i]))
            if key in anchor_levels:
                levels = tuple(int(v) for v in anchor_levels[key][0])
                if set(seen) <= set(levels):
                    item_levels.append(levels)
                    anchored[i] = True
                    continue
                self._warn(
                    f"item {key} uses levels {list(seen)} here but the anchors have "
                    f"{list(levels)}; it is estimated freely"
                )
            expected = tuple(range(seen[-1] + 1))
            if seen != expected and len(seen) > 1:
                unused = sorted(set(expected) - set(seen))
                self._warn(
                    f"item {key}: level(s) {unused} never used; collapsed, levels "
                    f"{list(seen)} are scored 0..{len(seen) - 1}"
                )
            item_levels.append(seen)
        # code[i, raw level] = position of the raw level among the item's levels.
        width = max(top, max(lv[-1] for lv in item_levels) + 1)
        code = np.zeros((len(keys), width), dtype=np.int64)
        for i, levels in enumerate(item_levels):  # a loop over items, not ratings
            code[i, list(levels)] = np.arange(len(levels))
        return code[item_codes, level], item_levels, anchored

    # ------------------------------------------------------------------ results
    def _check_fitted(self) -> None:
        if not hasattr(self, "converged_"):
            raise RuntimeError("ManyFacetPCM is not fitted yet; call fit(ratings) first")

    def anchor_values(self) -> Anchors:
        """The fitted item thresholds and rater severities, ready to pass as ``anchors=``."""
        self._check_fitted()
        thresholds = {
            key: (levels, tuple(float(t) for t in row[: len(levels) - 1]))
            for key, levels, row in zip(
                self.item_keys_, self.item_levels_, self.thresholds_, strict=True
            )
            if len(levels) > 1
        }
        return Anchors(thresholds, dict(zip(self.raters_, map(float, self.severity_), strict=True)))

    def item_table(self) -> pd.DataFrame:
        """One row per rubric item: case, item, levels, thresholds, se (lists, logits), difficulty,
        infit, outfit, n (ratings), anchored."""
        self._check_fitted()
        rows = []
        for i, (case, item) in enumerate(self.item_keys_):
            k = len(self.item_levels_[i]) - 1
            rows.append(
                {
                    "case": case,
                    "item": item,
                    "levels": list(self.item_levels_[i]),
                    "thresholds": [float(t) for t in self.thresholds_[i, :k]],
                    "se": [float(t) for t in self.thresholds_se_[i, :k]],
                    "difficulty": float(self.item_difficulty_[i]) if k else math.nan,
                    "infit": float(self.item_infit_[i]),
                    "outfit": float(self.item_outfit_[i]),
                    "n": int(self.item_n_[i]),
                    "anchored": bool(self.item_anchored_[i]),
                }
            )
        return pd.DataFrame(rows)

    def rater_table(self) -> pd.DataFrame:
        """One row per rater: rater, severity, se (logits), infit, outfit, n, anchored."""
        self._check_fitted()
        return pd.DataFrame(
            {
                "rater": self.raters_,
                "severity": self.severity_,
                "se": self.severity_se_,
                "infit": self.rater_infit_,
                "outfit": self.rater_outfit_,
                "n": self.rater_n_,
                "anchored": self.rater_anchored_,
            }
        )

    def sheet_table(self) -> pd.DataFrame:
        """One row per sheet: sheet_id, ability (EAP), se (posterior SD), extreme, calibration,
        unit_info (the sheet's information about its unit mean), unit_extra_var (variance its unit's
        figure gets from the raters' severities: their SEs, and the spread of severities where the
        unit is confounded with its raters), plus the sheet's unit,
        group, age_band, case, term and area where the ratings frame had them (unit None for a
        calibration response)."""
        self._check_fitted()
        sheet_group = self._sheet_group()
        extra = np.where(
            sheet_group >= 0,
            self.unit_extra_var_[np.maximum(sheet_group, 0)] if len(self.groups_) else 0.0,
            0.0,
        )

        def group_value(values: np.ndarray) -> np.ndarray:
            if not len(self.groups_):
                return np.full(len(sheet_group), np.nan)
            return np.where(sheet_group >= 0, values[np.maximum(sheet_group, 0)], np.nan)

        table = pd.DataFrame(
            {
                "sheet_id": self.sheets_,
                "ability": self.ability_,
                "se": self.ability_se_,
                "extreme": self.sheet_extreme_,
                "calibration": self.sheet_calibration_,
                "unit_info": self.sheet_unit_info_,
                "unit_extra_var": extra,
                # The sheet's unit-term mean, the within-unit variance, and the unit prior
                # (mean, precision; precision 0 = fixed effects): unit_abilities shrinks with them.
                "unit_mean": group_value(self.unit_mean_),
                "sigma2": np.where(sheet_group >= 0, self.sigma_**2, np.nan),
                "unit_prior_mean": group_value(self.unit_prior_mean_),
                "unit_prior_prec": np.where(sheet_group >= 0, self.unit_prior_prec_, np.nan),
                # The sheet's age-band effect (0 for an unknown band; NaN for calibration): the
                # ability minus it is the sheet's ability at the common age mix.
                "age_effect": np.where(sheet_group >= 0, self._age_effect_of_sheets(), np.nan),
            }
        )
        meta_cols = [
            c
            for c in ("sheet_id", "unit", "group", "age_band", "case", "term", "area")
            if c in self._sheet_meta.columns
        ]
        return table.merge(self._sheet_meta[meta_cols], on="sheet_id", how="left")

    def _age_effect_of_sheets(self) -> np.ndarray:
        band = getattr(self, "_sheet_band", np.full(len(self.sheets_), -1))
        effect = np.append(getattr(self, "age_effect_", np.zeros(0)), 0.0)
        return np.asarray(effect[np.where(band >= 0, band, len(effect) - 1)], dtype=float)

    def _sheet_group(self) -> np.ndarray:
        """Index into groups_ of every sheet (-1 for calibration sheets)."""
        meta = self._sheet_meta.set_index("sheet_id").reindex(self.sheets_)
        unit = meta["unit"].fillna("").astype(str) if "unit" in meta else pd.Series("", meta.index)
        term = meta["term"].astype(str) if "term" in meta else pd.Series("", meta.index)
        lookup = {g: n for n, g in enumerate(self.groups_)}
        return np.array(
            [
                -1 if cal else lookup.get((u, t), -1)
                for u, t, cal in zip(unit, term, self.sheet_calibration_, strict=True)
            ],
            dtype=np.int64,
        )

    def unit_table(self) -> pd.DataFrame:
        """One row per unit and term: unit, term, ability (the unit mean, logits), se (including
        the confounding variance), n_sheets, confounded."""
        self._check_fitted()
        sheet_group = self._sheet_group()
        n = np.bincount(sheet_group[sheet_group >= 0], minlength=len(self.groups_))
        return pd.DataFrame(
            {
                "unit": [g[0] for g in self.groups_],
                "term": [g[1] for g in self.groups_],
                "ability": self.unit_mean_,
                "se": self.unit_mean_se_,
                "n_sheets": n,
                "confounded": self.unit_confound_var_ > 0,
            }
        )


def calibration_agreement(
    ratings: pd.DataFrame, references: Mapping[tuple[str, str], int]
) -> pd.DataFrame:
    """Each rater's agreement with the researchers' reference levels on calibration responses.

    ``references`` maps (calibration sheet id, rubric item) to the reference level. Ratings of
    those (sheet, item) pairs count; others are ignored. Returns one row per rater with calibration
    ratings: rater, exact (share equal to the reference), adjacent (share within one level), n.
    """
    cols = ["rater", "exact", "adjacent", "n"]
    if ratings.empty or not references:
        return pd.DataFrame(columns=cols)
    ref = pd.Series(
        list(references.values()),
        index=pd.MultiIndex.from_tuples(list(references), names=["sheet_id", "item"]),
        dtype=float,
    )
    key = pd.MultiIndex.from_arrays(
        [ratings["sheet_id"].astype(str), ratings["item"].astype(str)], names=["sheet_id", "item"]
    )
    target = ref.reindex(key).to_numpy()
    mask = ~np.isnan(target)
    if not mask.any():
        return pd.DataFrame(columns=cols)
    diff = np.abs(ratings["level"].to_numpy(dtype=float)[mask] - target[mask])
    frame = pd.DataFrame(
        {
            "rater": ratings["rater"].astype(str).to_numpy()[mask],
            "exact": diff == 0,
            "adjacent": diff <= 1,
        }
    )
    out = frame.groupby("rater", sort=True).agg(
        exact=("exact", "mean"), adjacent=("adjacent", "mean"), n=("exact", "size")
    )
    return out.reset_index()[cols]


def _mean_squares(
    idx: np.ndarray, resid2: np.ndarray, var: np.ndarray, z2: np.ndarray, n: int
) -> tuple[np.ndarray, np.ndarray]:
    """Infit (sum of squared residuals / sum of variances) and outfit (mean squared standardised
    residual) per element; NaN for elements without ratings."""
    count = np.bincount(idx, minlength=n).astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):
        infit = np.bincount(idx, weights=resid2, minlength=n) / np.bincount(
            idx, weights=var, minlength=n
        )
        outfit = np.bincount(idx, weights=z2, minlength=n) / count
    return infit, outfit


__all__ = ["Anchors", "Confounded", "ManyFacetPCM", "ModelFitWarning", "calibration_agreement"]
