"""Typed, JSON-serialisable pieces of a unit profile (pydantic models, reusable as API schemas).

Units of measure: progression figures are in drawing stages (index = observed mean stage minus
the stage expected for the children's age bands); ability figures are in logits of the
assessment model. Every figure carries its n; figures resting on fewer than ``min_n``
photos/sheets have value None and ``suppressed`` True ("too few to show").
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from profiles.context import Reference


class ProgressionFigure(BaseModel):
    """Age-adjusted drawing progression of a unit in a term (stages)."""

    term: str
    n_photos: int
    suppressed: bool
    mean_stage: float | None
    index: float | None
    index_lo: float | None
    index_hi: float | None


class AbilityFigure(BaseModel):
    """Mean assessed ability of a unit in one curriculum area and term (logits)."""

    term: str
    area: str
    label_sv: str
    label_en: str
    n_sheets: int
    suppressed: bool
    ability: float | None
    se: float | None
    ability_lo: float | None
    ability_hi: float | None


class ContextValue(BaseModel):
    """One organisational value of the unit next to the municipality mean and national reference."""

    column: str
    label_sv: str
    label_en: str
    measure_unit: str
    value: float | None
    municipality_mean: float | None
    municipality_n_units: int
    national: Reference | None


class IndicatorValue(BaseModel):
    """One of the municipality's own quality indicators for the unit in the term, next to the
    municipality mean (unweighted over the units measured that term, with their number and
    standard deviation). ``favourable`` says whether the unit's value lies on the better side of
    the mean given the indicator's ``direction`` (None for neutral indicators, a missing value,
    or a value equal to the mean); it describes the figure, not its cause. ``used_by_model``
    lists the outcomes whose contextual model uses the indicator (it helped in
    cross-validation)."""

    key: str
    label_sv: str
    label_en: str
    measure_unit: str
    direction: str
    reference: str
    value: float | None
    municipality_mean: float | None
    municipality_sd: float | None
    municipality_n_units: int
    difference: float | None
    favourable: bool | None
    used_by_model: list[str]


class IndicatorSelection(BaseModel):
    """Which quality indicators one outcome's contextual model tried and used (grouped
    cross-validation; ``cv_gain`` 0.05 = 5 % lower error with the indicator)."""

    outcome: str
    used: list[str]
    tried: list[dict[str, Any]]


class ExpectedVsObserved(BaseModel):
    """Observed outcome against what the unit's context would lead one to expect.

    ``residual`` = observed - expected with an interval combining the observation's and the
    model's uncertainty; ``shrunk_residual`` is the same deviation pulled toward 0 in proportion
    to how little data it rests on (empirical Bayes); development areas use the shrunk interval.
    """

    outcome: str
    label_sv: str
    label_en: str
    measure_unit: str
    n: int
    suppressed: bool
    observed: float | None
    expected: float | None
    expected_se: float | None
    residual: float | None
    residual_lo: float | None
    residual_hi: float | None
    shrunk_residual: float | None
    shrunk_lo: float | None
    shrunk_hi: float | None
    note_sv: str
    note_en: str


class DevelopmentArea(BaseModel):
    """An outcome where the unit is credibly below its expected value or its own earlier terms.

    ``reasons`` holds "below_expected" and/or "below_earlier_terms". ``standardised_gap`` is the
    larger shortfall in units of the spread of true unit deviations (negative; ranks the unit's own
    areas, never units against each other).
    """

    rank: int
    outcome: str
    label_sv: str
    label_en: str
    reasons: list[str]
    standardised_gap: float
    shrunk_residual: float | None
    shrunk_lo: float | None
    shrunk_hi: float | None
    change_from_earlier: float | None
    change_lo: float | None
    change_hi: float | None
    earlier_terms: list[str]
    explanation_sv: str
    explanation_en: str


class SimilarUnit(BaseModel):
    """A unit with a similar context in the same term, with its results (not a ranking)."""

    unit: str
    distance: float
    progression: ProgressionFigure
    ability: list[AbilityFigure]


class TriangulationAcrossUnits(BaseModel):
    """Correlation, across the term's units, of standardised progression and assessment deviations."""

    term: str
    n_units: int
    suppressed: bool
    pearson_r: float | None
    r_lo: float | None
    r_hi: float | None
    spearman_rho: float | None


class Triangulation(BaseModel):
    """Whether drawing progression and assessed ability point the same way for this unit.

    ``progression_z`` and ``assessment_z`` are shrunk deviations from expectation in units of the
    spread of true unit deviations; ``assessment_z`` averages the shown areas. ``diverges`` is True
    when the signs differ and the two are at least 1 apart.
    """

    progression_z: float | None
    assessment_z: float | None
    n_areas: int
    agree: bool | None
    diverges: bool
    note_sv: str
    note_en: str
    across_units: TriangulationAcrossUnits


class UnitProfile(BaseModel):
    """Everything a principal sees for one unit and term."""

    unit: str
    term: str
    min_n: int
    level: float
    progression: ProgressionFigure
    progression_previous: list[ProgressionFigure]
    ability: list[AbilityFigure]
    ability_previous: list[AbilityFigure]
    context: list[ContextValue]
    expected: list[ExpectedVsObserved]
    development_areas: list[DevelopmentArea]
    similar_units: list[SimilarUnit]
    triangulation: Triangulation
    note_sv: str
    note_en: str
    indicators: list[IndicatorValue] = []
    indicator_selection: list[IndicatorSelection] = []

    def to_dict(self) -> dict[str, Any]:
        """The profile as plain JSON-compatible Python (dicts, lists, str, float, None)."""
        return self.model_dump(mode="json")
