"""Measures (issue 19): validation, follow-up figures on a planted change, and the API's scope and
audit (create, edit, delete)."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from profiles.measures import MeasureError, follow_up, follow_up_text, validate
from tests.api.conftest import api, token  # noqa: F401

BODY = {
    "title": "Matematik i leken",
    "area": "mathematics",
    "start_term": "2026-VT",
    "decided_by": "Rektor Olympia",
    "description": "Räkna och sortera i vardagen.\nUppföljning på arbetslagsmöten.",
}


def test_validate_accepts_a_measure_and_refuses_bad_fields():
    clean = validate(BODY)
    assert clean["title"] == "Matematik i leken" and clean["area"] == "mathematics"
    with pytest.raises(MeasureError, match="U\\+0007"):
        validate({**BODY, "title": "Matte\x07"})
    with pytest.raises(MeasureError, match="area 'cooking'"):
        validate({**BODY, "area": "cooking"})
    with pytest.raises(MeasureError, match="start_term"):
        validate({**BODY, "start_term": "2026-XX"})
    with pytest.raises(MeasureError, match="title is required"):
        validate({**BODY, "title": "  "})
    assert validate({"title": "Ny"}, partial=True) == {"title": "Ny"}


def _fig(observed, residual, n=20, se=0.1, suppressed=False):
    return {
        "n": n,
        "suppressed": suppressed,
        "observed": observed,
        "observed_se": se,
        "residual": residual,
        "residual_lo": residual - 1.96 * se,
        "residual_hi": residual + 1.96 * se,
    }


def test_follow_up_shows_a_planted_change_from_the_term_after_the_start():
    figures = {
        "2025-HT": _fig(0.0, -0.5),
        "2026-VT": _fig(0.1, -0.4),  # the start term: no follow-up yet
        "2026-HT": _fig(0.8, 0.3),  # planted change of +0.8 observed, +0.8 against expectation
        "2027-VT": _fig(0.9, 0.2, n=3),  # too few
    }
    rows = follow_up("2026-VT", figures, min_n=5)
    assert [r.term for r in rows] == ["2026-HT", "2027-VT"]
    first = rows[0]
    assert first.baseline_term == "2025-HT" and first.n == 20 and not first.suppressed
    assert first.observed_change == pytest.approx(0.8)
    assert first.residual_change == pytest.approx(0.8)
    half = 1.959963984540054 * math.hypot(0.1, 0.1)
    assert first.observed_lo == pytest.approx(0.8 - half)
    assert first.residual_hi == pytest.approx(0.8 + half, rel=1e-3)
    assert rows[1].suppressed and rows[1].observed_change is None and rows[1].n == 3
    text = follow_up_text(first, "sv")
    assert "Uppföljning 2026-HT" in text and "+0.80" in text and "inte att åtgärden" in text
    assert "not that the measure caused it" in follow_up_text(first, "en")
    assert "för få" in follow_up_text(rows[1], "sv")
    # no figures before the start term and none at it: nothing to follow up
    assert follow_up("2024-HT", {}, min_n=5) == []


def test_follow_up_without_an_earlier_term_uses_the_start_term_as_baseline():
    rows = follow_up("2026-VT", {"2026-VT": _fig(1.0, 0.0), "2026-HT": _fig(1.5, 0.2)}, 5)
    assert rows[0].baseline_term == "2026-VT"
    assert rows[0].observed_change == pytest.approx(0.5)


def test_measures_api_create_edit_delete_scope_and_audit(api):  # noqa: F811
    from core.models import AuditEvent, Measure, Unit

    with api.factory() as s:
        own = s.scalar(select(Unit).where(Unit.name == "Olympia")).id
        other = s.scalar(select(Unit).where(Unit.name == "Dalhem")).id
    boss, edu, res = token(api, "boss"), token(api, "edu"), token(api, "res")
    r = api.post(f"/api/units/{own}/measures", headers=boss, json=BODY)
    assert r.status_code == 201, r.text
    mid = r.json()["id"]
    assert r.json()["follow_up"] == []  # no profile data in this database
    # refused: an educator writing, a principal on another unit, a control character
    assert api.post(f"/api/units/{own}/measures", headers=edu, json=BODY).status_code == 403
    assert api.post(f"/api/units/{other}/measures", headers=boss, json=BODY).status_code == 404
    bad = api.post(f"/api/units/{own}/measures", headers=boss, json={**BODY, "area": "x"})
    assert bad.status_code == 422 and "area" in bad.json()["detail"]
    # read: educators of the unit and researchers
    assert [m["id"] for m in api.get(f"/api/units/{own}/measures", headers=edu).json()] == [mid]
    assert api.get(f"/api/units/{own}/measures", headers=res).status_code == 200
    assert api.get(f"/api/units/{other}/measures", headers=edu).status_code == 404
    # edit
    r = api.patch(f"/api/units/{own}/measures/{mid}", headers=boss, json={"title": "Matte ute"})
    assert r.status_code == 200 and r.json()["title"] == "Matte ute"
    assert (
        api.patch(
            f"/api/units/{other}/measures/{mid}", headers=token(api, "adm"), json={"title": "x"}
        ).status_code
        == 404
    )
    # delete
    assert api.delete(f"/api/units/{own}/measures/{mid}", headers=edu).status_code == 403
    assert api.delete(f"/api/units/{own}/measures/{mid}", headers=boss).status_code == 204
    assert api.delete(f"/api/units/{own}/measures/{mid}", headers=boss).status_code == 404
    with api.factory() as s:
        assert s.scalars(select(Measure)).all() == []
        events = [
            (e.username, e.action)
            for e in s.scalars(
                select(AuditEvent).where(AuditEvent.object_type.in_(["measure", "measures"]))
            )
        ]
    assert ("boss", "create") in events and ("boss", "update") in events
    assert ("boss", "delete") in events and ("edu", "read") in events


def test_common_areas_need_two_units_and_list_them_alphabetically():
    from profiles.measures import common_areas

    shared = common_areas(
        {"Olympia": ["mathematics"], "Dalhem": ["mathematics", "progression"], "Laröd": []},
        {"Adolfsberg": ["progression"], "Olympia": ["mathematics"]},
    )
    assert [(r["area"], r["units"]) for r in shared] == [
        ("progression", ["Adolfsberg", "Dalhem"]),
        ("mathematics", ["Dalhem", "Olympia"]),
    ]
    assert shared[1]["n_development"] == 2 and shared[1]["n_measures"] == 1
    assert common_areas({"Olympia": ["mathematics"]}, {}) == []


def test_a_measure_runs_from_its_start_term_and_is_followed_up_after_it():
    from types import SimpleNamespace

    from profiles.measures import running_in, term_status

    vt = SimpleNamespace(start_term="2026-VT")
    ht = SimpleNamespace(start_term="2026-HT")
    assert running_in([vt, ht], "2026-VT") == [vt]  # type: ignore[list-item]
    rows = follow_up("2026-VT", {"2026-VT": _fig(0.0, 0.0), "2026-HT": _fig(0.5, 0.2)}, 5)
    assert term_status(vt, rows, "2026-VT") == "starts"  # type: ignore[arg-type]
    assert term_status(vt, rows, "2026-HT") == "follow_up"  # type: ignore[arg-type]
    assert term_status(vt, rows, "2027-VT") == "no_comparison"  # type: ignore[arg-type]
