"""Unit ability per curriculum area and term, aggregated from response sheets.

Estimator with the sheet table of :class:`assessment.model.ManyFacetPCM` (columns ``unit_info``
and ``unit_extra_var``): the mean of the sheets' posterior abilities, which for a whole unit and
term equals the model's unit mean, with variance ``1 / sum(unit_info) + mean(unit_extra_var)``:
the observed information the sheets carry about their unit mean, plus the variance from the raters'
severities (and, for a unit whose raters nothing links to the rest, the spread of severities). The
spread of posterior means cannot give the SE: they are shrunk toward the unit mean.

With units as a random facet (columns ``unit_mean``, ``sigma2``, ``unit_prior_mean`` and
``unit_prior_prec`` > 0), the figure is the empirical-Bayes posterior of the group's mean: the
data's estimate ``y = mu + sum(ability - mu) / (sigma2 * W)`` (``W = sum(unit_info)``; the sheets'
posterior means re-expanded around their unit-term mean ``mu``) combined with the prior,
``(W * y + prec * m) / (W + prec)``, variance ``1 / (W + prec) + mean(unit_extra_var)``. For a whole
unit and term this is exactly the model's shrunken unit mean.

Without those columns (sheet abilities from elsewhere): the simple mean of the unit's sheet
abilities, with standard error ``sd / sqrt(n)``.
Why not the precision-weighted mean: the spread of sheet abilities within a unit is mostly real
differences between children (between-sheet variance), not measurement error. Weights ``1/se**2``
ignore that variance, so they over-weight long or central sheets and their SE ``1/sqrt(sum w)``
understates the uncertainty of the unit figure. The sample SD of the sheet estimates contains both
between-sheet variance and measurement error, which is exactly what the unit mean's SE needs.

Groups of fewer than ``min_sheets`` (default :data:`core.domain.MIN_GROUP_SIZE`) sheets are kept
in the result with ``ability=None, se=None, suppressed=True`` ("too few to show"), never dropped.

Age-band adjustment (optional): sheet abilities are regressed on age-band indicators within each
curriculum area (all units and terms pooled, i.e. each sheet minus its area x age-band mean); the
unit figure is then the mean residual: above 0 = higher than typical for the children's ages.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass

import numpy as np
import pandas as pd

from core.domain import MIN_GROUP_SIZE, term_sort_key


@dataclass(frozen=True)
class UnitAbility:
    """A unit's ability (logits) in one curriculum area and term, with its SE and sheet count.

    ``area`` is None when no case library told the areas. ``ability``/``se`` are None when
    ``suppressed`` (fewer than the minimum number of sheets). ``age_adjusted`` tells whether the
    value is the mean residual after the age-band regression.
    """

    unit: str
    area: str | None
    term: str
    ability: float | None
    se: float | None
    n_sheets: int
    suppressed: bool
    age_adjusted: bool


def unit_abilities(
    sheets: pd.DataFrame,
    *,
    case_areas: Mapping[str, str] | None = None,
    min_sheets: int = MIN_GROUP_SIZE,
    adjust_for_age_band: bool = False,
) -> list[UnitAbility]:
    """Aggregate sheet abilities (``ManyFacetPCM.sheet_table()``) to unit x area x term.

    ``sheets`` needs columns unit, term, ability and either area or case (mapped through
    ``case_areas``); age_band too when ``adjust_for_age_band``. Returns one :class:`UnitAbility`
    per unit x area x term, sorted by unit, area and chronological term.
    """
    needed = {"unit", "term", "ability"} | ({"age_band"} if adjust_for_age_band else set())
    missing = needed - set(sheets.columns)
    if missing:
        raise ValueError(f"sheet table lacks column(s): {', '.join(sorted(missing))}")
    frame = sheets.copy()
    if "calibration" in frame.columns:  # calibration responses belong to no unit
        frame = frame.loc[~frame["calibration"].astype(bool)]
    model_se = {"unit_info", "unit_extra_var"} <= set(frame.columns)
    shrink = model_se and {"unit_mean", "sigma2", "unit_prior_mean", "unit_prior_prec"} <= set(
        frame.columns
    )
    if case_areas is not None:
        frame["area"] = frame["case"].map(case_areas)
    elif "area" not in frame.columns:
        frame["area"] = None
    if "age_effect" in frame.columns:
        # The model's age-band effects: the unit figure is its ability at the common age mix.
        frame["ability"] = frame["ability"].astype(float) - frame["age_effect"].fillna(0.0)
    value = frame["ability"].astype(float)
    if adjust_for_age_band:
        value = value - frame.groupby(["area", "age_band"], dropna=False)["ability"].transform(
            "mean"
        )
    frame["value"] = value

    results = []
    for (unit, area, term), grp in frame.groupby(
        ["unit", "area", "term"], sort=False, dropna=False
    ):
        n = len(grp)
        suppressed = n < min_sheets
        ability = se = None
        if not suppressed:
            ability = float(grp["value"].mean())
            if shrink and float(grp["unit_prior_prec"].iloc[0]) > 0:
                info = max(float(grp["unit_info"].sum()), 1e-12)
                prec = float(grp["unit_prior_prec"].iloc[0])
                mu = grp["unit_mean"].astype(float)
                data = float(mu.mean()) + float((grp["ability"].astype(float) - mu).sum()) / (
                    float(grp["sigma2"].iloc[0]) * info
                )
                prior = float(grp["unit_prior_mean"].astype(float).mean())
                adjustment = float((grp["ability"].astype(float) - grp["value"]).mean())
                ability = (info * data + prec * prior) / (info + prec) - adjustment
                se = float(np.sqrt(1.0 / (info + prec) + float(grp["unit_extra_var"].mean())))
            elif model_se:
                variance = 1.0 / max(float(grp["unit_info"].sum()), 1e-12)
                se = float(np.sqrt(variance + float(grp["unit_extra_var"].mean())))
            else:
                se = float(grp["value"].std(ddof=1) / np.sqrt(n))
        results.append(
            UnitAbility(
                unit=str(unit),
                area=None if pd.isna(area) else str(area),
                term=str(term),
                ability=ability,
                se=se,
                n_sheets=n,
                suppressed=suppressed,
                age_adjusted=adjust_for_age_band,
            )
        )
    results.sort(key=lambda u: (u.unit, u.area or "", term_sort_key(u.term)))
    return results


def unit_abilities_frame(results: list[UnitAbility]) -> pd.DataFrame:
    """The unit abilities as a frame (one row each, the dataclass fields as columns)."""
    return pd.DataFrame(
        [asdict(u) for u in results], columns=list(UnitAbility.__dataclass_fields__)
    )
