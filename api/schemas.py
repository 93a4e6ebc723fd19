"""Typed responses: every number that crosses the API carries its unit, uncertainty and n."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from core.domain import check_date, check_text
from profiles.drawing_age import DrawingAgeGap
from profiles.model import WhatIfResult
from profiles.schemas import UnitProfile


def _client_date(value: date, info: ValidationInfo) -> date:
    return check_date(value, info.field_name or "date")


def _safe_text(value: str, info: ValidationInfo) -> str:
    return check_text(value, info.field_name or "text")


#: A date a client sends: within core.domain's window (2000-01-01 to tomorrow), else 422 naming
#: the field.
ClientDate = Annotated[date, AfterValidator(_client_date)]
#: One line of free text: no control characters (NUL, tab, newline, C1) and no bidirectional
#: overrides or isolates (U+202A–U+202E, U+2066–U+2069), else 422 naming the character.
SafeText = Annotated[str, AfterValidator(_safe_text)]


def safe_text(value: str, field: str) -> str:
    """:data:`SafeText`'s check for values that do not pass through a model (form fields)."""
    return check_text(value, field)


class ErrorOut(BaseModel):
    detail: str = Field(examples=["the file is a PDF document; accepted: JPEG, PNG, WebP, HEIC"])


class TokenOut(BaseModel):
    access_token: str
    token_type: str = "bearer"
    expires_in: int = Field(description="seconds", examples=[28800])


class GroupOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str
    age_band: str = Field(examples=["3-4"])


class UnitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    name: str = Field(examples=["Olympia"])
    groups: list[GroupOut]


class MeOut(BaseModel):
    username: str
    role: str
    units: list[UnitOut]


class PhotoOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: str
    unit_id: int
    group_id: int
    activity: str
    age_band: str
    term: str = Field(examples=["2026-HT"])
    captured_on: date
    status: str = Field(
        description="pending: queued for scoring; done: scored; failed", examples=["pending"]
    )
    faces_blurred: int = Field(description="faces found and blurred before the photo was stored")
    sheet_found: bool = Field(
        description="a sheet of paper was found and its perspective corrected"
    )
    created_at: datetime

    @field_validator("created_at")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # SQLite gives naive datetimes back; every stored time is UTC, so say so
        return value if value.tzinfo else value.replace(tzinfo=UTC)


class UploadOut(BaseModel):
    photo: PhotoOut
    created: bool = Field(description="false when this upload repeats one already stored")
    reason: str = Field(examples=["stored", "duplicate", "replay"])


class Interval(BaseModel):
    value: float
    lo: float = Field(
        description="lower bound of the 90 % interval (bootstrap; normal approximation for "
        "figures from retained aggregates)"
    )
    hi: float = Field(
        description="upper bound of the 90 % interval (bootstrap; normal approximation for "
        "figures from retained aggregates)"
    )


FigureSource = Literal["photos", "retained"]
SOURCE_DESCRIPTION = (
    "photos: from the stored photos (bootstrap intervals); retained: from the aggregates kept "
    "when retention deleted the term's photos (normal-approximation intervals)"
)


class AgeBandProgression(BaseModel):
    age_band: str
    source: FigureSource = Field("photos", description=SOURCE_DESCRIPTION)
    n_photos: int
    suppressed: bool = Field(description="true: too few photos to show (below the threshold)")
    mean_stage: Interval | None
    expected_stage_for_age: float
    index: Interval | None = Field(
        description="observed mean stage minus the stage expected for the age band"
    )


class TermProgression(BaseModel):
    term: str
    source: FigureSource = Field("photos", description=SOURCE_DESCRIPTION)
    n_photos: int
    n_retained: int = Field(
        0,
        description="photos of the term deleted by retention and kept as aggregates; with source "
        "photos the figures rest on the remaining photos and leave these out",
    )
    suppressed: bool
    stage_distribution: list[float] | None = Field(
        description="share of photos per stage 0–4 (mean of stage probabilities)"
    )
    mean_stage: Interval | None
    index: Interval | None = Field(description="age-adjusted progression index, weighted by photos")
    by_age_band: list[AgeBandProgression]


class UnitProfileOut(BaseModel):
    unit_id: int
    unit: str
    model_version: str | None = Field(description="stage model whose estimates the figures rest on")
    model_validation: dict = Field(
        default_factory=lambda: {"status": "synthetic_only", "text": "synthetic drawings only"},
        description='what the stage model was validated on: {"status": "synthetic_only" | '
        '"validated", "text", and for validated n_drawings, n_children, qwk, spearman_age}',
    )
    drawing_age_gap: DrawingAgeGap | None = Field(
        None,
        description="per term, the mean over the unit's photos of the bias-corrected drawing age "
        "minus the age-band midpoint (years, 90 % interval, n), scored by a model that never saw "
        'the unit\'s photos; status, and validation_label "not validated on real drawings" '
        "until the model is validated on real drawings",
    )
    min_group_size: int
    terms: list[TermProgression] = Field(
        description="progression from photos and retained aggregates, every term, oldest first"
    )
    term: str | None = Field(description="the term of `profile` (requested, else the latest)")
    profile: UnitProfile | None = Field(
        description="triangulated profile of the term: progression and assessment with intervals, "
        "context against references, expected vs observed, development areas, similar units"
    )
    note: str = "Figures describe unit-level aggregates; they assess no child."


class WhatIfIn(BaseModel):
    term: SafeText | None = Field(
        None, max_length=7, description="term whose context is changed (default: latest)"
    )
    changes: dict[
        Annotated[str, Field(max_length=40)], Annotated[float, Field(allow_inf_nan=False)]
    ] = Field(
        description="context column -> change in its own units (shares as fractions); the changed "
        "value must stay within the column's plausible range (docs/profile_columns.md)",
        examples=[{"children_per_fte": -0.5}],
        max_length=16,
    )


class WhatIfOut(BaseModel):
    unit: str
    term: str
    results: list[WhatIfResult]
    note_sv: str = "Beskriver ett samband i data, inte en orsak."
    note_en: str = "Describes an association in the data, not a cause."


class SkippedRowsOut(BaseModel):
    """Stored rows the profiles leave out because they cannot be used (a term outside the date
    window, an unknown age band, a non-finite number); `spira doctor` lists them and
    `spira doctor --fix` removes them."""

    photos: int = Field(description="processed photos (their stage estimates)")
    ratings: int = Field(description="ratings (one rater's level for one item of a sheet)")
    context: int = Field(description="organisational data rows (unit x term)")
    retained: int = Field(description="retained aggregates (unit x term x age band)")
    total: int


class ImportOut(BaseModel):
    imported: int = Field(description="rows (context) or sheets (ratings) stored")


class SheetIn(BaseModel):
    case_id: SafeText = Field(max_length=120, examples=["matematik-sortera-knappar"])
    unit_id: int = Field(ge=1, le=2**31 - 1)
    group_id: int | None = Field(None, ge=1, le=2**31 - 1)
    age_band: SafeText = Field(max_length=16, examples=["4-5"])
    rated_on: ClientDate = Field(description="the day the sheet was rated: 2000-01-01 to tomorrow")
    levels: dict[
        Annotated[SafeText, Field(max_length=120)], Annotated[int, Field(ge=0, le=100)]
    ] = Field(description="rubric item id -> level", examples=[{"sorterar": 2}], max_length=200)


class SheetOut(BaseModel):
    sheet_id: str = Field(description="anonymous id of the response sheet")
    term: str
    n_ratings: int
    n_recorded: int | None = Field(
        None, description="sheets recorded for this case, group and term (this one included)"
    )


class SheetCountOut(BaseModel):
    case_id: str
    group_id: int
    term: str
    n_recorded: int


class CalibrationRatingIn(BaseModel):
    response_id: SafeText = Field(max_length=120, examples=["sortera-knappar-a"])
    levels: dict[
        Annotated[SafeText, Field(max_length=120)], Annotated[int, Field(ge=0, le=100)]
    ] = Field(description="rubric item id -> level", max_length=200)


class CalibrationResponseOut(BaseModel):
    response_id: str
    case_id: str
    title_sv: str
    title_en: str
    text: str
    rubric: list[dict] = Field(description="the case's rubric items and their level descriptors")
    rated: bool = Field(description="whether the signed-in educator has rated it")
    my_levels: dict[str, int] = Field(default_factory=dict)
    reference: dict[str, int] | None = Field(None, description="shown only after rating")
    explanation: str | None = Field(None, description="shown only after rating")


class MeasureIn(BaseModel):
    """A measure (åtgärd) for a development area; no child information (issue 19)."""

    model_config = ConfigDict(extra="forbid")
    title: SafeText = Field(min_length=1, max_length=200)
    area: str = Field(max_length=40, examples=["mathematics"])
    start_term: str = Field(max_length=8, examples=["2026-HT"])
    description: str | None = Field(None, max_length=4000)
    decided_by: SafeText = Field(min_length=1, max_length=120)


class MeasurePatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    title: SafeText | None = Field(None, min_length=1, max_length=200)
    area: str | None = Field(None, max_length=40)
    start_term: str | None = Field(None, max_length=8)
    description: str | None = Field(None, max_length=4000)
    decided_by: SafeText | None = Field(None, min_length=1, max_length=120)


class FollowUpOut(BaseModel):
    term: str
    baseline_term: str
    n: int
    suppressed: bool
    observed_change: float | None
    observed_lo: float | None
    observed_hi: float | None
    residual_change: float | None = Field(description="change of observed minus expected")
    residual_lo: float | None
    residual_hi: float | None
    text_sv: str
    text_en: str


class MeasureOut(BaseModel):
    id: int
    unit_id: int
    area: str
    title: str
    start_term: str
    description: str | None
    decided_by: str
    created_at: datetime
    updated_at: datetime
    follow_up: list[FollowUpOut] = Field(
        default_factory=list,
        description="the area's change since the measure began, from the term after its start "
        "(follow-up, not proof that the measure worked)",
    )


class MeasureSuggestionOut(BaseModel):
    title_sv: str
    title_en: str
    text_sv: str = Field(description="the area's help text, to be edited before saving")
    text_en: str


class MeasureAreaOut(BaseModel):
    """An area a measure may address, with suggestions from the area's help texts."""

    area: str = Field(examples=["mathematics"])
    label_sv: str
    label_en: str
    suggestions: list[MeasureSuggestionOut]


class MeasureTermOut(BaseModel):
    """A measure as it stands in one term: just started, followed up, or no comparison."""

    id: int
    unit_id: int
    title: str
    area: str
    label_sv: str
    label_en: str
    start_term: str
    decided_by: str
    status: Literal["starts", "follow_up", "no_comparison"]
    follow_up: FollowUpOut | None = Field(
        description="the area's change from the measure's baseline to this term (follow-up, "
        "not proof that the measure worked)"
    )


FOLLOW_UP_NOTE_SV = (
    "Uppföljningen visar hur området har rört sig sedan åtgärden började, inte att åtgärden "
    "orsakade det: annat har också förändrats."
)
FOLLOW_UP_NOTE_EN = (
    "The follow-up shows how the area moved since the measure began, not that the measure "
    "caused it: other things changed too."
)


class TermSummaryOut(BaseModel):
    """Every measure of a unit running in a term, with the follow-up of its area."""

    unit_id: int
    unit: str
    term: str | None
    measures: list[MeasureTermOut]
    note_sv: str = FOLLOW_UP_NOTE_SV
    note_en: str = FOLLOW_UP_NOTE_EN


class NetworkAreaOut(BaseModel):
    area: str
    label_sv: str
    label_en: str


class NetworkUnitOut(BaseModel):
    unit_id: int
    unit: str
    has_profile: bool = Field(description="whether the unit has a profile for the term")
    development_areas: list[NetworkAreaOut]
    measures: list[MeasureTermOut]


class CommonAreaOut(BaseModel):
    area: str
    label_sv: str
    label_en: str
    units: list[str] = Field(description="the units sharing the area, alphabetically")
    n_units: int
    n_development: int = Field(description="units with the area as a development area")
    n_measures: int = Field(description="units with a measure running for the area")


class NetworkOut(BaseModel):
    """The municipality's network in one term: every unit (alphabetically, never ranked) with
    its development areas and running measures, and the areas shared by several units."""

    term: str | None
    terms: list[str]
    units: list[NetworkUnitOut]
    common_areas: list[CommonAreaOut]
    note_sv: str = "Enheterna står i bokstavsordning; sidan rangordnar inte enheter. " + (
        FOLLOW_UP_NOTE_SV
    )
    note_en: str = "Units are listed alphabetically; the view ranks no units. " + (
        FOLLOW_UP_NOTE_EN
    )
