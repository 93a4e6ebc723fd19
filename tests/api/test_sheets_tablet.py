"""The tablet's assessment API: cases filtered by area and age band, sheets with an Idempotency-Key
(a retry answers 200 with the first sheet's id), the count per case, group and term, the creator's
undo within 2 minutes, and calibration ratings whose reference levels show only after rating."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import func, select

from core.models import AuditEvent, CalibrationRating, ResponseSheet
from tests.api.conftest import token, unit_and_group


def _case(api, headers, band: str):
    cases = api.get("/api/cases", headers=headers, params={"age_band": band}).json()
    assert cases and all(band in c["age_bands"] for c in cases)
    return cases[0]


def _body(api, headers, name: str = "Olympia") -> dict:
    unit_id, group_id, band = unit_and_group(api, headers, name)
    case = _case(api, headers, band)
    return {
        "case_id": case["id"],
        "unit_id": unit_id,
        "group_id": group_id,
        "age_band": band,
        "rated_on": dt.date.today().isoformat(),
        "levels": {item["id"]: 1 for item in case["rubric"]},
    }


def _n_sheets(api) -> int:
    with api.factory() as s:
        return int(s.scalar(select(func.count()).select_from(ResponseSheet)))


def test_cases_filter_by_area_and_age_band(api):
    edu = token(api, "edu")
    every = api.get("/api/cases", headers=edu).json()
    area = every[0]["area"]
    some = api.get("/api/cases", headers=edu, params={"area": area}).json()
    assert some and all(c["area"] == area for c in some)
    assert len(some) < len(every) or len({c["area"] for c in every}) == 1
    assert api.get("/api/cases", headers=edu, params={"area": "no-such-area"}).json() == []


def test_a_retried_sheet_returns_the_first_sheets_id(api):
    edu = token(api, "edu")
    body = _body(api, edu)
    key = {"Idempotency-Key": "3f0c2d4e-tablet-sheet-1"}
    first = api.post("/api/sheets", headers=edu | key, json=body)
    assert first.status_code == 201, first.text
    assert first.json()["n_recorded"] == 1
    again = api.post("/api/sheets", headers=edu | key, json=body)
    assert again.status_code == 200, again.text
    assert again.json()["sheet_id"] == first.json()["sheet_id"]
    assert _n_sheets(api) == 1
    # another key is another child's sheet
    other = api.post("/api/sheets", headers=edu | {"Idempotency-Key": "k2"}, json=body)
    assert other.status_code == 201 and other.json()["n_recorded"] == 2
    count = api.get(
        "/api/sheets/count",
        headers=edu,
        params={"case_id": body["case_id"], "group_id": body["group_id"]},
    )
    assert count.status_code == 200 and count.json()["n_recorded"] == 2
    # the same key from another account is not a retry of edu's sheet
    adm = token(api, "adm")
    assert api.post("/api/sheets", headers=adm | key, json=body).status_code == 201
    assert _n_sheets(api) == 3


def test_an_invalid_sheet_names_the_item_and_stores_nothing(api):
    edu = token(api, "edu")
    body = _body(api, edu)
    item = next(iter(body["levels"]))
    r = api.post("/api/sheets", headers=edu, json=body | {"levels": {item: 99}})
    assert r.status_code == 422 and item in r.json()["detail"]
    r = api.post("/api/sheets", headers=edu | {"Idempotency-Key": "a\x07b"}, json=body)
    assert r.status_code == 422
    assert _n_sheets(api) == 0


def test_an_educator_records_only_for_their_units(api):
    edu = token(api, "edu")
    body = _body(api, token(api, "adm"), "Dalhem")
    r = api.post("/api/sheets", headers=edu | {"Idempotency-Key": "x1"}, json=body)
    assert r.status_code == 403
    r = api.get(
        "/api/sheets/count",
        headers=edu,
        params={"case_id": body["case_id"], "group_id": body["group_id"]},
    )
    assert r.status_code == 404
    assert _n_sheets(api) == 0


def test_undo_by_the_creator_within_two_minutes_is_audited(api):
    edu = token(api, "edu")
    body = _body(api, edu)
    sheet_id = api.post("/api/sheets", headers=edu, json=body).json()["sheet_id"]
    # nobody else may take it back
    assert api.delete(f"/api/sheets/{sheet_id}", headers=token(api, "adm")).status_code == 404
    assert api.delete(f"/api/sheets/{sheet_id}", headers=edu).status_code == 204
    assert _n_sheets(api) == 0
    assert api.delete(f"/api/sheets/{sheet_id}", headers=edu).status_code == 404
    with api.factory() as s:
        actions = set(s.scalars(select(AuditEvent.action).where(AuditEvent.object_id == sheet_id)))
    assert {"create", "undo"} <= actions
    # too late: recorded more than 2 minutes ago
    late_id = api.post("/api/sheets", headers=edu, json=body).json()["sheet_id"]
    with api.factory() as s:
        sheet = s.get(ResponseSheet, late_id)
        sheet.created_at = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=3)
        s.commit()
    r = api.delete(f"/api/sheets/{late_id}", headers=edu)
    assert r.status_code == 409 and "2 minutes" in r.json()["detail"]
    assert _n_sheets(api) == 1


def test_calibration_reference_shows_only_after_rating_once(api):
    edu = token(api, "edu")
    listed = api.get("/api/calibration", headers=edu).json()
    assert len(listed) >= 9
    assert all(r["reference"] is None and r["explanation"] is None for r in listed)
    first = listed[0]
    levels = {item["id"]: 1 for item in first["rubric"]}
    r = api.post(
        "/api/calibration/ratings",
        headers=edu,
        json={"response_id": first["response_id"], "levels": levels},
    )
    assert r.status_code == 201, r.text
    out = r.json()
    assert out["rated"] and out["my_levels"] == levels
    assert out["reference"] and out["explanation"]
    again = api.post(
        "/api/calibration/ratings",
        headers=edu,
        json={"response_id": first["response_id"], "levels": levels},
    )
    assert again.status_code == 422 and "once" in again.json()["detail"]
    with api.factory() as s:
        assert s.scalar(select(func.count()).select_from(CalibrationRating)) == len(levels)
    # a principal does not rate calibration responses
    r = api.post(
        "/api/calibration/ratings",
        headers=token(api, "boss"),
        json={"response_id": first["response_id"], "levels": levels},
    )
    assert r.status_code == 403
