"""Measures (åtgärder): what a principal decided to do about a unit's development area, and the
follow-up of that area from the term after the measure starts.

No FastAPI here (api.routes.units is the thin layer). A measure is about the unit's work, never a
child: title and description are free text without control characters (core.domain.text_problem),
and the page says not to write child information. The follow-up is worded as follow-up: it shows
how the area moved since the measure began, observed and against expectation, with interval and
n; it is never a claim that the measure caused the change.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from statistics import NormalDist

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.domain import AREA_LABELS, term_problem, term_sort_key, text_problem
from core.models import Measure
from profiles.profile import OUTCOME_LABELS, area_suggestion

#: Areas a measure may address: drawing progression and the curriculum areas.
MEASURE_AREAS: tuple[str, ...] = ("progression", *AREA_LABELS)
MAX_TITLE = 200
MAX_DESCRIPTION = 4000
MAX_DECIDED_BY = 120
#: z for the 95 % interval the profile's figures carry.
_Z = 1.959963984540054


class MeasureError(ValueError):
    """Bad input for a measure; the message says which field and what to do."""


def _text(value: object, field: str, limit: int, *, required: bool, multiline: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise MeasureError(f"{field} is required; write a short {field}")
        return None
    if not isinstance(value, str):
        raise MeasureError(f"{field} must be text")
    value = value.strip()
    if len(value) > limit:
        raise MeasureError(f"{field} is {len(value)} characters; at most {limit} are allowed")
    problem = text_problem(value, field, multiline=multiline)
    if problem:
        raise MeasureError(problem)
    return value


def validate(fields: Mapping[str, object], *, partial: bool = False) -> dict[str, object]:
    """The cleaned fields of a measure (title, area, start_term, description, decided_by);
    MeasureError naming the first bad field. ``partial``: only the fields given (an edit)."""
    out: dict[str, object] = {}
    unknown = sorted(set(fields) - {"title", "area", "start_term", "description", "decided_by"})
    if unknown:
        raise MeasureError(f"unknown field(s) {', '.join(unknown)}")
    if not partial or "title" in fields:
        out["title"] = _text(
            fields.get("title"), "title", MAX_TITLE, required=True, multiline=False
        )
    if not partial or "area" in fields:
        area = fields.get("area")
        if area not in MEASURE_AREAS:
            raise MeasureError(f"area {area!r} is not known; use one of {', '.join(MEASURE_AREAS)}")
        out["area"] = area
    if not partial or "start_term" in fields:
        problem = term_problem(fields.get("start_term"), "start_term")
        if problem:
            raise MeasureError(problem)
        out["start_term"] = str(fields.get("start_term"))
    if not partial or "description" in fields:
        out["description"] = _text(
            fields.get("description"),
            "description",
            MAX_DESCRIPTION,
            required=False,
            multiline=True,
        )
    if not partial or "decided_by" in fields:
        out["decided_by"] = _text(
            fields.get("decided_by"), "decided_by", MAX_DECIDED_BY, required=True, multiline=False
        )
    return out


def list_measures(session: Session, unit_id: int | None = None) -> list[Measure]:
    """Measures of a unit (or all), by start term then id."""
    query = select(Measure)
    if unit_id is not None:
        query = query.where(Measure.unit_id == unit_id)
    rows = list(session.scalars(query))
    return sorted(rows, key=lambda m: (m.unit_id, term_sort_key(m.start_term), m.id))


def create_measure(
    session: Session, unit_id: int, fields: Mapping[str, object], created_by: int | None
) -> Measure:
    """Add a validated measure to the session (the caller commits with its audit event)."""
    clean = validate(fields)
    measure = Measure(unit_id=unit_id, created_by=created_by, **clean)
    session.add(measure)
    session.flush()
    return measure


def get_measure(session: Session, unit_id: int, measure_id: int) -> Measure | None:
    measure = session.get(Measure, measure_id)
    return measure if measure is not None and measure.unit_id == unit_id else None


def update_measure(session: Session, measure: Measure, fields: Mapping[str, object]) -> list[str]:
    """Apply a validated partial edit; returns the names of the fields that changed."""
    clean = validate(fields, partial=True)
    changed = [k for k, v in clean.items() if getattr(measure, k) != v]
    for k in changed:
        setattr(measure, k, clean[k])
    if changed:
        measure.updated_at = datetime.now(UTC)
    return changed


# ---- follow-up -------------------------------------------------------------------------------


@dataclass(frozen=True)
class FollowUp:
    """The change of a measure's area from its baseline term to a later term.

    ``observed_change``: observed figure later minus at baseline; ``residual_change``: the same
    for observed minus expected (so against what the unit's context would predict). Intervals
    are 95 %, combining the two terms' intervals as independent. ``n`` is the smaller n of the
    two terms; a suppressed term gives no figures."""

    term: str
    baseline_term: str
    n: int
    suppressed: bool
    observed_change: float | None
    observed_lo: float | None
    observed_hi: float | None
    residual_change: float | None
    residual_lo: float | None
    residual_hi: float | None


def _se(lo: float | None, hi: float | None) -> float | None:
    if lo is None or hi is None or not (math.isfinite(lo) and math.isfinite(hi)):
        return None
    return (hi - lo) / (2 * _Z)


def follow_up(
    start_term: str, figures: Mapping[str, Mapping[str, object]], min_n: int
) -> list[FollowUp]:
    """Follow-up rows of one measure from per-term figures of its area.

    ``figures``: term -> {n, suppressed, observed, observed_se, residual, residual_lo,
    residual_hi} (expected-vs-observed of the area). The baseline is the latest term before
    ``start_term`` with figures (else the start term itself); rows are the terms after
    ``start_term``. Nothing is returned before the term after the start."""
    order = sorted(figures, key=term_sort_key)
    start = term_sort_key(start_term)
    before = [t for t in order if term_sort_key(t) < start]
    baseline = before[-1] if before else (start_term if start_term in figures else None)
    if baseline is None:
        return []
    base = figures[baseline]
    rows = []
    for term in (t for t in order if term_sort_key(t) > start):
        now = figures[term]
        n = min(int(now.get("n") or 0), int(base.get("n") or 0))  # type: ignore[call-overload]
        suppressed = bool(now.get("suppressed")) or bool(base.get("suppressed")) or n < min_n
        obs = res = None
        obs_lo = obs_hi = res_lo = res_hi = None
        if not suppressed:
            o1, o0 = now.get("observed"), base.get("observed")
            if o1 is not None and o0 is not None:
                obs = float(o1) - float(o0)  # type: ignore[arg-type]
                s1, s0 = now.get("observed_se"), base.get("observed_se")
                if s1 is not None and s0 is not None:
                    half = _Z * math.hypot(float(s1), float(s0))  # type: ignore[arg-type]
                    obs_lo, obs_hi = obs - half, obs + half
            r1, r0 = now.get("residual"), base.get("residual")
            if r1 is not None and r0 is not None:
                res = float(r1) - float(r0)  # type: ignore[arg-type]
                e1 = _se(now.get("residual_lo"), now.get("residual_hi"))  # type: ignore[arg-type]
                e0 = _se(base.get("residual_lo"), base.get("residual_hi"))  # type: ignore[arg-type]
                if e1 is not None and e0 is not None:
                    half = _Z * math.hypot(e1, e0)
                    res_lo, res_hi = res - half, res + half
        rows.append(
            FollowUp(
                term=term,
                baseline_term=baseline,
                n=n,
                suppressed=suppressed,
                observed_change=obs,
                observed_lo=obs_lo,
                observed_hi=obs_hi,
                residual_change=res,
                residual_lo=res_lo,
                residual_hi=res_hi,
            )
        )
    return rows


def follow_up_text(row: FollowUp, language: str = "sv") -> str:
    """One sentence of follow-up, never a claim that the measure worked."""
    if row.suppressed or row.observed_change is None:
        return (
            f"{row.term}: för få underlag (n = {row.n}) för att följa upp"
            if language == "sv"
            else f"{row.term}: too few observations (n = {row.n}) to follow up"
        )
    interval = (
        f" (95 %: {row.observed_lo:+.2f} till {row.observed_hi:+.2f})"
        if row.observed_lo is not None
        else ""
    )
    if language == "sv":
        return (
            f"Uppföljning {row.term}: förändring sedan {row.baseline_term} {row.observed_change:+.2f}"
            f"{interval}, n = {row.n}. Visar hur området rört sig, inte att åtgärden orsakat det."
        )
    interval = interval.replace(" till ", " to ")
    return (
        f"Follow-up {row.term}: change since {row.baseline_term} {row.observed_change:+.2f}"
        f"{interval}, n = {row.n}. Shows how the area moved, not that the measure caused it."
    )


def area_figures(profiles: Mapping[str, object], area: str) -> dict[str, dict[str, object]]:
    """term -> follow-up input of ``area`` from a unit's profiles (term -> UnitProfile):
    expected-vs-observed of the area, with the observed figure's standard error from the
    progression index interval or the assessed ability's se."""
    out: dict[str, dict[str, object]] = {}
    for term, profile in profiles.items():
        row = next((e for e in profile.expected if e.outcome == area), None)  # type: ignore[attr-defined]
        if row is None:
            continue
        # The profile's intervals are at its own level (90 % by default) and follow_up reads
        # intervals as 95 % ones: widen them to 95 % first.
        widen = _Z / NormalDist().inv_cdf(0.5 + float(profile.level) / 2)  # type: ignore[attr-defined]
        se = None
        if area == "progression":
            se = _se(profile.progression.index_lo, profile.progression.index_hi)  # type: ignore[attr-defined]
            se = None if se is None else se * widen
        else:
            fig = next((a for a in profile.ability if a.area == area), None)  # type: ignore[attr-defined]
            se = fig.se if fig is not None else None
        res, lo, hi = row.residual, row.residual_lo, row.residual_hi
        out[term] = {
            "n": row.n,
            "suppressed": row.suppressed,
            "observed": row.observed,
            "observed_se": se,
            "residual": res,
            "residual_lo": None if res is None or lo is None else res - (res - lo) * widen,
            "residual_hi": None if res is None or hi is None else res + (hi - res) * widen,
        }
    return out


# ---- suggestions, term summary and the network view ------------------------------------------

#: A short title per area for the suggestion taken from the area's help text (the "Förslag" of
#: the development-area explanation, profiles.profile.area_suggestion); both are edited before
#: saving.
_SUGGESTION_TITLES: dict[str, dict[str, str]] = {
    "progression": {
        "sv": "Mer tid och material för att teckna",
        "en": "More time and materials for drawing",
    },
    "language_communication": {
        "sv": "Högläsning, samtal och berättande i grupperna",
        "en": "Reading aloud, conversation and storytelling in the groups",
    },
    "mathematics": {"sv": "Matematik i lek och rutiner", "en": "Mathematics in play and routines"},
    "science_technology": {
        "sv": "Utforska, pröva och bygga",
        "en": "Exploring, testing and building",
    },
    "creative_expression": {
        "sv": "Tid, plats och material för skapande",
        "en": "Time, space and materials for creative expression",
    },
    "social_emotional": {
        "sv": "Lek, vänskap och känslor i grupperna",
        "en": "Play, friendship and feelings in the groups",
    },
}


def area_label(area: str) -> dict[str, str]:
    """{"sv", "en"} label of a measure area."""
    return dict(OUTCOME_LABELS[area])


def suggestions() -> list[dict[str, object]]:
    """Every measure area with its label and the suggestions a principal may pick and edit:
    [{area, label_sv, label_en, suggestions: [{title_sv, title_en, text_sv, text_en}]}]."""
    out: list[dict[str, object]] = []
    for area in MEASURE_AREAS:
        label, text, title = area_label(area), area_suggestion(area), _SUGGESTION_TITLES[area]
        out.append(
            {
                "area": area,
                "label_sv": label["sv"],
                "label_en": label["en"],
                "suggestions": [
                    {
                        "title_sv": title["sv"],
                        "title_en": title["en"],
                        "text_sv": text["sv"],
                        "text_en": text["en"],
                    }
                ],
            }
        )
    return out


def running_in(measures: Sequence[Measure], term: str) -> list[Measure]:
    """The measures that have started by ``term`` (a measure has no end term: it runs until it
    is deleted)."""
    key = term_sort_key(term)
    return [m for m in measures if term_sort_key(m.start_term) <= key]


def term_status(measure: Measure, rows: Sequence[FollowUp], term: str) -> str:
    """How a running measure stands in ``term``: "starts" (its start term), "follow_up" (a
    follow-up row exists for the term) or "no_comparison" (no figures of its area that term)."""
    if measure.start_term == term:
        return "starts"
    return "follow_up" if any(r.term == term for r in rows) else "no_comparison"


def common_areas(
    development: Mapping[str, Sequence[str]], measured: Mapping[str, Sequence[str]]
) -> list[dict[str, object]]:
    """Areas shared by at least two units, as development area or measure: where a network
    meeting on the area could help. ``development``/``measured``: unit -> areas. Returns
    [{area, label_sv, label_en, units, n_units, n_development, n_measures}], most shared first
    (areas are ordered, units never are: their names are listed alphabetically)."""
    by_area: dict[str, set[str]] = {}
    for source in (development, measured):
        for unit, areas in source.items():
            for area in areas:
                by_area.setdefault(area, set()).add(unit)
    out = []
    for area, units in by_area.items():
        if len(units) < 2:
            continue
        label = area_label(area)
        out.append(
            {
                "area": area,
                "label_sv": label["sv"],
                "label_en": label["en"],
                "units": sorted(units),
                "n_units": len(units),
                "n_development": sum(area in a for a in development.values()),
                "n_measures": sum(area in a for a in measured.values()),
            }
        )
    order = {a: i for i, a in enumerate(MEASURE_AREAS)}
    return sorted(out, key=lambda r: (-int(r["n_units"]), order.get(str(r["area"]), 99)))  # type: ignore[call-overload]
