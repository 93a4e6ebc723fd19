"""Many-facet partial credit model (Linacre's many-facet Rasch model with Masters' partial credit).

For a rating of sheet ``s`` by rater ``r`` on rubric item ``i`` (levels ``0..K_i``)::

    log P(X = k) / P(X = k - 1) = theta_s - delta_ik - rho_r,      k = 1..K_i

``theta_s`` is the ability shown on the response sheet, ``delta_ik`` the k-th step threshold of the
item, ``rho_r`` the rater's severity, all in logits.

Estimation: penalised joint maximum likelihood (JML)
----------------------------------------------------
Why JML and not marginal ML: the facets are crossed in an arbitrary, sparse, unbalanced way (each
sheet one case, one to a few raters), and the item and rater steps need no integration when sheet
abilities are parameters. Every Newton step is then a handful of ``np.bincount`` sums over the rating
arrays, so 100 000 ratings fit in about a second, whereas MML needs a (ratings x quadrature nodes)
array in every E- and M-step. Raters are fixed facets in both approaches anyway.

Two known weaknesses of plain JML are handled explicitly:

* **Extreme sheets** (all lowest or all highest levels) have infinite ML abilities. Every sheet
  ability gets a weak normal penalty ``N(mu, theta_prior_sd**2)`` (``mu`` = mean sheet ability), the
  "epsilon adjustment" made principled: extreme sheets get finite, ordered estimates and sheets with
  data are barely moved (the penalty adds ``1 / theta_prior_sd**2`` = 0.11 to an information that is
  typically 1-10).
* **Disconnected cases.** A sheet answers exactly one case, so the items of different cases never
  meet on the same sheet: adding ``c`` to the abilities of a case's sheets and to that case's
  thresholds leaves the likelihood unchanged. The common prior resolves this the way MML's common
  population does: each case's sheets get the same mean ability (cases are assumed to be handed out
  independently of ability). The fit applies that optimum exactly after every sweep. Where cases
  are not handed out at random, anchor the items from a calibration where they were.

The remaining JML bias (thresholds spread out by roughly ``L / (L - 1)`` for ``L`` ratings per
sheet) is corrected with Wright's factor when ``bias_correction=True`` (default): thresholds and
severities are multiplied by ``(L - 1) / L`` with ``L`` the mean number of ratings per sheet, and
the sheet abilities are then re-estimated given them, so abilities, anchors and fit statistics
agree. Anchored fits are not corrected (the anchors carry the reference fit's scale). It matters
only with short sheets; correlations and rankings are unaffected. JML mean-squares sit somewhat
below 1 for the same reason (each sheet's own ability absorbs part of its residual variance).

Identification: mean item difficulty (mean of an item's thresholds) is 0 and mean rater severity is
0, unless those facets are anchored. Standard errors are the model (information-based) errors of
each parameter given the others, as in Facets and Winsteps. Fit: infit (information-weighted) and
outfit (unweighted) mean-squares of standardised residuals per item and per rater; values near 1 fit,
above about 1.5 mean noisy ratings, below about 0.5 redundant ones.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components

ItemKey = tuple[str, str]  # (case, rubric item)

#: Largest move of any parameter in one Newton step (logits); keeps early steps from overshooting.
_MAX_STEP = 1.0


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


def _category_probabilities(
    eta: np.ndarray, item_idx: np.ndarray, cum_delta: np.ndarray
) -> np.ndarray:
    """Category probabilities of every rating, shape (n_ratings, K_max + 1).

    ``eta`` = theta - rho per rating (logits); ``cum_delta[i, k]`` = sum of the first k thresholds
    of item i, +inf for levels the item does not have (their probability is then exactly 0).
    """
    n_cat = cum_delta.shape[1]
    logits = eta[:, None] * np.arange(n_cat) - cum_delta[item_idx]
    logits -= logits.max(axis=1, keepdims=True)
    np.exp(logits, out=logits)
    logits /= logits.sum(axis=1, keepdims=True)
    return logits


class ManyFacetPCM:
    """Many-facet partial credit model estimated by penalised JML (see the module docstring).

    Parameters
    ----------
    max_iter: most Newton sweeps (one sweep updates abilities, severities and thresholds).
    tol: convergence when no parameter moved more than this in a sweep (logits).
    anchors: fixed item thresholds and rater severities from a reference fit (an :class:`Anchors`
        or a fitted :class:`ManyFacetPCM`). Anchored facets are not centred, so the new sheet
        abilities are on the reference scale.
    theta_prior_sd: SD of the weak normal penalty on sheet abilities (logits).
    bias_correction: apply Wright's (L - 1) / L JML correction to thresholds and severities.

    Learned attributes (after :meth:`fit`)
    --------------------------------------
    item_keys_: list of (case, item); row order of the item arrays.
    item_levels_: the original levels used by each item (after collapsing unused ones).
    thresholds_, thresholds_se_: (n_items, max_steps) step thresholds and SEs, NaN-padded.
    item_difficulty_: mean threshold per item. item_infit_, item_outfit_, item_n_.
    raters_: rater ids. severity_, severity_se_, rater_infit_, rater_outfit_, rater_n_.
    sheets_: sheet ids. ability_, ability_se_, sheet_extreme_ (all-lowest or all-highest sheet).
    converged_, n_iter_, warnings_ (list of str, also issued as :class:`ModelFitWarning`).
    """

    def __init__(
        self,
        max_iter: int = 300,
        tol: float = 1e-4,
        anchors: Anchors | ManyFacetPCM | None = None,
        theta_prior_sd: float = 3.0,
        bias_correction: bool = True,
    ) -> None:
        self.max_iter = max_iter
        self.tol = tol
        self.anchors = anchors
        self.theta_prior_sd = theta_prior_sd
        self.bias_correction = bias_correction

    # ------------------------------------------------------------------ fitting
    def fit(
        self,
        ratings: pd.DataFrame,
        *,
        on_iteration: Callable[[int, float], None] | None = None,
    ) -> ManyFacetPCM:
        """Fit to a ratings frame with columns sheet_id, rater, case, item, level.

        ``on_iteration(iteration, largest_change)`` is called after every sweep (for progress
        displays). Returns self.
        """
        if self.max_iter < 1 or self.tol <= 0 or self.theta_prior_sd <= 0:
            raise ValueError("max_iter must be >= 1, tol and theta_prior_sd > 0")
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

        x, item_levels, item_fixed = self._collapse_levels(item_codes, raw_level, keys, anchors)
        n_steps = np.array([len(lv) - 1 for lv in item_levels])
        usable = n_steps[item_codes] > 0  # an item with one used level carries no information
        for i in np.flatnonzero(n_steps == 0):
            self._warn(f"item {keys[i]} has only level {item_levels[i][0]}; it is left out")
        if not usable.any():
            raise ValueError("no rubric item has two or more levels used; nothing to estimate")
        s, r, it, x = sheet_codes[usable], rater_codes[usable], item_codes[usable], x[usable]
        n_items, n_raters, n_sheets = len(keys), len(raters), len(sheets)
        k_max = max(int(n_steps.max()), 1)
        step_valid = np.arange(1, k_max + 1)[None, :] <= n_steps[:, None]  # (n_items, k_max)

        # Starting values and anchors.
        delta = np.where(
            step_valid, np.linspace(-1.0, 1.0, k_max)[None, :] if k_max > 1 else 0.0, 0.0
        )
        rho = np.zeros(n_raters)
        rater_fixed = np.zeros(n_raters, dtype=bool)
        if anchors is not None:
            for i in np.flatnonzero(item_fixed):
                delta[i, : n_steps[i]] = anchors.thresholds[keys[i]][1]
            for j, rater in enumerate(raters):
                if rater in anchors.severity:
                    rho[j] = anchors.severity[rater]
                    rater_fixed[j] = True
        centre_items = not item_fixed.any()
        centre_raters = not rater_fixed.any()
        case_codes, _ = pd.factorize(pd.Index([k[0] for k in keys]))
        n_cases = int(case_codes.max()) + 1
        sheet_case = np.zeros(n_sheets, dtype=np.int64)
        sheet_case[s] = case_codes[it]
        rated = np.zeros(n_sheets, dtype=bool)
        rated[s] = True
        case_sheets = np.bincount(sheet_case[rated], minlength=n_cases)
        case_anchored = (
            np.bincount(case_codes, weights=item_fixed, minlength=case_codes.max() + 1) > 0
        )

        self._check_connected(s, r, n_sheets, n_raters)

        # Observed sufficient statistics.
        obs_sheet = np.bincount(s, weights=x, minlength=n_sheets)
        obs_rater = np.bincount(r, weights=x, minlength=n_raters)
        ge_obs = np.stack(
            [np.bincount(it, weights=(x >= j), minlength=n_items) for j in range(1, k_max + 1)], 1
        )
        max_sheet = np.bincount(s, weights=n_steps[it], minlength=n_sheets)
        extreme = (obs_sheet == 0) | (obs_sheet == max_sheet)
        # Start abilities from the sheet's mean proportion of the maximum, on a logit scale.
        prop = (obs_sheet + 0.5) / (max_sheet + 1.0)
        theta = np.log(prop / (1 - prop))
        prec = 1.0 / self.theta_prior_sd**2

        def cum_delta_of(d: np.ndarray) -> np.ndarray:
            cum = np.zeros((n_items, k_max + 1))
            cum[:, 1:] = np.cumsum(np.where(step_valid, d, 0.0), axis=1)
            cum[:, 1:][~step_valid] = np.inf
            return cum

        ks = np.arange(k_max + 1, dtype=float)

        def theta_step(cum: np.ndarray) -> float:
            """One Newton step on every sheet ability (with the weak normal penalty); largest move."""
            p = _category_probabilities(theta[s] - rho[r], it, cum)
            e, v = p @ ks, p @ ks**2
            v -= e**2
            g = (
                obs_sheet
                - np.bincount(s, weights=e, minlength=n_sheets)
                - prec * (theta - theta.mean())
            )
            h = np.bincount(s, weights=v, minlength=n_sheets) + prec
            move = np.clip(g / h, -_MAX_STEP, _MAX_STEP)
            theta[:] += move
            return float(np.abs(move).max())

        converged = False
        iteration = 0
        for iteration in range(1, self.max_iter + 1):
            old = (theta.copy(), rho.copy(), delta.copy())
            cum = cum_delta_of(delta)

            theta_step(cum)

            # Rater severities.
            if not rater_fixed.all():
                p = _category_probabilities(theta[s] - rho[r], it, cum)
                e, v = p @ ks, p @ ks**2
                v -= e**2
                g = np.bincount(r, weights=e, minlength=n_raters) - obs_rater
                h = np.bincount(r, weights=v, minlength=n_raters) + 1e-9
                rho += np.where(rater_fixed, 0.0, np.clip(g / h, -_MAX_STEP, _MAX_STEP))

            # Item thresholds: a full Newton step per item on its (K x K) information matrix.
            if not item_fixed.all():
                p = _category_probabilities(theta[s] - rho[r], it, cum)
                step = self._threshold_step(p, it, ge_obs, step_valid)[0]
                delta += np.where(item_fixed[:, None], 0.0, step)

            # Move along the directions the likelihood cannot see (see module docstring).
            mu = theta.mean()
            shift = mu - np.bincount(sheet_case, weights=theta, minlength=n_cases) / np.maximum(
                case_sheets, 1
            )
            shift[case_anchored | (case_sheets == 0)] = 0.0
            theta += shift[sheet_case]
            delta += np.where(step_valid, shift[case_codes][:, None], 0.0)
            if centre_items:
                m = (delta.sum(1) / n_steps.clip(1))[n_steps > 0].mean()
                delta -= np.where(step_valid, m, 0.0)
                theta -= m
            if centre_raters:
                m = rho.mean()
                rho -= m
                theta -= m

            change = max(
                float(np.abs(theta - old[0]).max()),
                float(np.abs(rho - old[1]).max()),
                float(np.abs(delta - old[2]).max()),
            )
            if on_iteration is not None:
                on_iteration(iteration, change)
            if change < self.tol:
                converged = True
                break
        if not converged:
            self._warn(f"did not converge in {self.max_iter} sweeps")

        if self.bias_correction and centre_items and centre_raters:
            # Anchored fits keep the reference scale as it is. Otherwise: Wright's correction,
            # then the sheet abilities again given the corrected thresholds and severities, so
            # that abilities, anchors and fit statistics all agree.
            n_per_sheet = np.bincount(s, minlength=n_sheets)
            length = float(n_per_sheet[n_per_sheet > 0].mean())
            factor = (length - 1) / length if length > 1 else 1.0
            delta *= np.where(item_fixed, 1.0, factor)[:, None]
            rho *= np.where(rater_fixed, 1.0, factor)
            cum = cum_delta_of(delta)
            for _ in range(self.max_iter):
                if theta_step(cum) < self.tol:
                    break

        # Final information, SEs and fit statistics at the estimates.
        cum = cum_delta_of(delta)
        p = _category_probabilities(theta[s] - rho[r], it, cum)
        e, v = p @ ks, p @ ks**2
        v -= e**2
        _, info = self._threshold_step(p, it, ge_obs, step_valid)
        cov = np.linalg.inv(info)
        thr_se = np.sqrt(np.clip(np.diagonal(cov, axis1=1, axis2=2), 0, None))
        resid2 = (x - e) ** 2
        z2 = resid2 / np.maximum(v, 1e-12)

        nan_pad = np.where(step_valid, 1.0, np.nan)
        self.item_keys_ = keys
        self.item_levels_ = item_levels
        self.thresholds_ = delta * nan_pad
        self.thresholds_se_ = np.where(item_fixed[:, None], 0.0, thr_se) * nan_pad
        # Mean threshold per item; NaN for an item left out (no threshold estimated).
        self.item_difficulty_ = np.where(
            n_steps > 0, delta.sum(axis=1) / np.maximum(n_steps, 1), np.nan
        )
        self.item_n_ = np.bincount(it, minlength=n_items)
        self.item_infit_, self.item_outfit_ = _mean_squares(it, resid2, v, z2, n_items)
        self.raters_ = [str(x_) for x_ in raters]
        self.severity_ = rho
        rater_info = np.bincount(r, weights=v, minlength=n_raters)
        self.severity_se_ = np.where(rater_fixed, 0.0, 1.0 / np.sqrt(np.maximum(rater_info, 1e-12)))
        self.rater_n_ = np.bincount(r, minlength=n_raters)
        self.rater_infit_, self.rater_outfit_ = _mean_squares(r, resid2, v, z2, n_raters)
        self.sheets_ = [str(x_) for x_ in sheets]
        self.ability_ = theta
        self.ability_se_ = 1.0 / np.sqrt(np.bincount(s, weights=v, minlength=n_sheets) + prec)
        self.sheet_extreme_ = extreme
        self.item_anchored_ = item_fixed
        self.rater_anchored_ = rater_fixed
        self.converged_ = converged
        self.n_iter_ = iteration
        self._sheet_meta = ratings.drop_duplicates("sheet_id").assign(
            sheet_id=lambda d: d["sheet_id"].astype(str)
        )
        return self

    # ------------------------------------------------------------------ helpers
    def _warn(self, message: str) -> None:
        self.warnings_.append(message)
        warnings.warn(message, ModelFitWarning, stacklevel=3)

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

    def _check_connected(self, s: np.ndarray, r: np.ndarray, n_sheets: int, n_raters: int) -> None:
        """Warn when raters fall into subsets that never rate the same sheets."""
        graph = coo_matrix(
            (np.ones(len(s)), (s, n_sheets + r)), shape=(n_sheets + n_raters,) * 2
        ).tocsr()
        _, labels = connected_components(graph, directed=False)
        n_groups = len(np.unique(labels[n_sheets:]))
        if n_groups > 1:
            self._warn(
                f"raters form {n_groups} subsets that never rate the same sheets; their severities "
                "are comparable only through the assumption that their sheets have equal mean ability"
            )

    @staticmethod
    def _threshold_step(
        p: np.ndarray, it: np.ndarray, ge_obs: np.ndarray, step_valid: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray]:
        """Newton step for every item's thresholds and the items' information matrices.

        Score of threshold j: sum of P(X >= j) - 1[x >= j]; information: covariance of the
        indicators 1[X >= j], 1[X >= l]. Returns (step (n_items, K), information (n_items, K, K)).
        """
        n_items, k_max = step_valid.shape
        ge = np.cumsum(p[:, ::-1], axis=1)[:, ::-1][:, 1:]  # P(X >= j), j = 1..K
        ge_exp = np.stack(
            [np.bincount(it, weights=ge[:, j], minlength=n_items) for j in range(k_max)], 1
        )
        info = np.empty((n_items, k_max, k_max))
        for j in range(k_max):
            for m in range(j, k_max):
                w = ge[:, m] - ge[:, j] * ge[:, m]
                info[:, j, m] = info[:, m, j] = np.bincount(it, weights=w, minlength=n_items)
        pair_valid = step_valid[:, :, None] & step_valid[:, None, :]
        info = np.where(pair_valid, info, 0.0)
        diag = np.arange(k_max)
        info[:, diag, diag] += np.where(step_valid, 1e-9, 1.0)
        score = np.where(step_valid, ge_exp - ge_obs, 0.0)
        step = np.linalg.solve(info, score[:, :, None])[:, :, 0]
        return np.clip(step, -_MAX_STEP, _MAX_STEP), info

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
        """One row per sheet: sheet_id, ability, se (logits), extreme, plus the sheet's unit, group,
        age_band, case, term and area where the ratings frame had them."""
        self._check_fitted()
        table = pd.DataFrame(
            {
                "sheet_id": self.sheets_,
                "ability": self.ability_,
                "se": self.ability_se_,
                "extreme": self.sheet_extreme_,
            }
        )
        meta_cols = [
            c
            for c in ("sheet_id", "unit", "group", "age_band", "case", "term", "area")
            if c in self._sheet_meta.columns
        ]
        return table.merge(self._sheet_meta[meta_cols], on="sheet_id", how="left")


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


__all__ = ["Anchors", "ManyFacetPCM", "ModelFitWarning"]
