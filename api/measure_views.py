"""A unit's measures (åtgärder) as the API shows them: each with its follow-up, term by term, on
the unit's profiles (used by the unit routes and the network view)."""

from __future__ import annotations

from api.schemas import FollowUpOut, MeasureOut, MeasureTermOut
from profiles import measures as measures_domain


def follow_up_rows(
    measure, unit_name: str, profiles: dict, min_n: int
) -> list[measures_domain.FollowUp]:
    """The measure's follow-up, term by term from its start, on the unit's figures for its area."""
    figures = measures_domain.area_figures(
        {t: p for (u, t), p in profiles.items() if u == unit_name}, measure.area
    )
    return measures_domain.follow_up(measure.start_term, figures, min_n)


def follow_up_out(row: measures_domain.FollowUp) -> FollowUpOut:
    """One term's follow-up with its sentence in Swedish and English."""
    return FollowUpOut(
        **row.__dict__,
        text_sv=measures_domain.follow_up_text(row, "sv"),
        text_en=measures_domain.follow_up_text(row, "en"),
    )


def measure_in_term(measure, unit_name: str, profiles: dict, min_n: int, term: str):
    """A running measure as it stands in ``term`` (MeasureTermOut), for the term summary and
    the network view."""
    rows = follow_up_rows(measure, unit_name, profiles, min_n)
    row = next((r for r in rows if r.term == term), None)
    label = measures_domain.area_label(measure.area)
    return MeasureTermOut(
        id=measure.id,
        unit_id=measure.unit_id,
        title=measure.title,
        area=measure.area,
        label_sv=label["sv"],
        label_en=label["en"],
        start_term=measure.start_term,
        decided_by=measure.decided_by,
        status=measures_domain.term_status(measure, rows, term),  # type: ignore[arg-type]
        follow_up=follow_up_out(row) if row is not None else None,
    )


def measure_out(measure, unit_name: str, profiles: dict, min_n: int) -> MeasureOut:
    """A measure with its whole follow-up (MeasureOut), as the unit's measure routes answer."""
    rows = follow_up_rows(measure, unit_name, profiles, min_n)
    out = MeasureOut.model_validate(
        {
            c: getattr(measure, c)
            for c in (
                "id",
                "unit_id",
                "area",
                "title",
                "start_term",
                "description",
                "decided_by",
                "created_at",
                "updated_at",
            )
        }
    )
    out.follow_up = [follow_up_out(r) for r in rows]
    return out
