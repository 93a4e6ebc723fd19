"""Hostile requests from an ordinary account (issue 20): none gives a 5xx, none changes anything,
and one bad stored row never takes the other profiles down."""

from __future__ import annotations

import io
import json
import tempfile
import time
import tracemalloc
import zipfile
from datetime import date, timedelta
from pathlib import Path

import jwt
import pytest
from sqlalchemy import func, select

from core.domain import check_date
from core.models import AuditEvent, Group, Photo, Rating, ResponseSheet, Unit, UnitContext
from tests.api.test_assessment_and_profiles import UNITS, _context_csv, _ratings_csv
from tests.security.conftest import distinct_jpeg, photo_count, token, unit_and_group, upload


def _count(api, model) -> int:
    with api.factory() as s:
        return int(s.scalar(select(func.count()).select_from(model)) or 0)


def _sheet(unit_id: int, group_id: int | None, **kw) -> dict:
    return {
        "case_id": "matte-rakna-knappar",
        "unit_id": unit_id,
        "group_id": group_id,
        "age_band": "4-5",
        "rated_on": date.today().isoformat(),
        "levels": {"ramsa": 1},
    } | kw


def _detail(r) -> str:
    return json.dumps(r.json()["detail"], ensure_ascii=False)


def _import(api, headers, route: str, name: str, data: bytes):
    return api.post(f"/api/{route}/import", headers=headers, files={"file": (name, data)})


def _spira_temp_dirs() -> set[str]:
    # folders the server could leave (spira-export-*, or any other of its spira-* folders), not
    # those of test servers (PostgreSQL, Label Studio) or bench runs, which a concurrent session
    # may start or stop meanwhile
    others = ("spira-pg-", "spira-ls-", "spira-bench-")
    return {
        p.name for p in Path(tempfile.gettempdir()).glob("spira-*") if not p.name.startswith(others)
    }


# ---- dates -----------------------------------------------------------------------------------


def test_dates_outside_the_window_are_refused_naming_the_field(api):
    edu, res = token(api, "edu"), token(api, "res")
    unit_id, group_id, band = unit_and_group(api, edu)
    case = api.get("/api/cases", headers=edu).json()[0]
    item = case["rubric"][0]["id"]
    tomorrow, far = date.today() + timedelta(days=1), date.today() + timedelta(days=2)
    for day in ("0001-01-01", "1999-12-31", far.isoformat()):
        body = _sheet(unit_id, group_id, case_id=case["id"], levels={item: 0}, rated_on=day)
        r = api.post("/api/sheets", headers=edu, json=body)
        assert r.status_code == 422 and "rated_on" in _detail(r) and "2000-01-01" in _detail(r)
        r = upload(api, edu, distinct_jpeg(1), unit_id, group_id, band, captured_on=day)
        assert r.status_code == 422 and "captured_on" in _detail(r), r.text
    assert _count(api, ResponseSheet) == 0 and photo_count(api) == 0
    # the first day of the window and today are accepted (tomorrow passes the window, which
    # allows for a tablet's clock running ahead, but photos and sheets refuse future days)
    body = _sheet(unit_id, group_id, case_id=case["id"], levels={item: 0}, rated_on="2000-01-01")
    assert api.post("/api/sheets", headers=edu, json=body).status_code == 201
    r = upload(api, edu, distinct_jpeg(2), unit_id, group_id, band, captured_on=str(date.today()))
    assert r.status_code == 201, r.text
    assert check_date(tomorrow, "rated_on") == tomorrow

    good = _ratings_csv(UNITS, n_sheets=40)
    bad = good.replace(b"2026-03-10", b"1999-03-10")
    r = _import(api, res, "ratings", "r.csv", bad)
    assert r.status_code == 422 and "column date" in r.json()["detail"]
    assert "1999-03-10 lies outside 2000-01-01" in r.json()["detail"]
    r = _import(api, res, "context", "c.csv", _context_csv(UNITS, terms=("1999-HT",)))
    assert r.status_code == 422 and "column 'term'" in r.json()["detail"]
    assert _count(api, Rating) == 1 and _count(api, UnitContext) == 0


# ---- one bad row isolated ------------------------------------------------------------------------


def _plant_bad_rows(api) -> None:
    """Rows no client can send any more, written straight into the database (as older versions
    stored them): a sheet dated 0001-01-01 of term '1-VT', a context row of term '1-VT'."""
    with api.factory() as s:
        unit = s.scalar(select(Unit).where(Unit.name == "Olympia"))
        sheet = ResponseSheet(
            case_id="matte-rakna-knappar",
            unit_id=unit.id,
            group_id=None,
            age_band="4-5",
            term="1-VT",
            rated_on=date(1, 1, 1),
        )
        s.add(sheet)
        s.flush()
        s.add(Rating(sheet_id=sheet.id, item="ramsa", rater="x", level=1))
        s.add(UnitContext(unit_id=unit.id, term="1-VT", children_enrolled=80, n_groups=5))
        s.commit()


def _every_profile_read(api, headers) -> dict[str, int]:
    statuses = {}
    for route in (
        "/api/profiles",
        "/api/profiles/export?format=csv",
        "/api/profiles/export?format=xlsx",
        "/api/assessment/fit",
        "/api/profiles/skipped",
    ):
        statuses[route] = api.get(route, headers=headers).status_code
    for unit in api.get("/api/units", headers=headers).json():
        r = api.get(f"/api/units/{unit['id']}/profile", headers=headers)
        statuses[f"profile {unit['name']}"] = r.status_code
    return statuses


def test_a_bad_stored_row_is_left_out_counted_and_every_profile_is_served(api, spira_env):
    from typer.testing import CliRunner

    from cli.main import app
    from profiles.service import profile_service

    res, boss = token(api, "res"), token(api, "boss")
    assert _import(api, res, "ratings", "r.csv", _ratings_csv(UNITS)).status_code == 200
    assert _import(api, res, "context", "c.csv", _context_csv(UNITS)).status_code == 200
    before = api.get("/api/profiles", headers=res).json()
    assert len(before) == 8
    _plant_bad_rows(api)
    for restart in (False, True):
        if restart:
            profile_service.forget()  # what a restart starts from: no build in memory
        statuses = _every_profile_read(api, res)
        assert all(code == 200 for code in statuses.values()), statuses
        assert api.get("/api/units", headers=boss).status_code == 200
        skipped = api.get("/api/profiles/skipped", headers=res).json()
        assert skipped["ratings"] == 1 and skipped["context"] == 1 and skipped["total"] == 2
        after = api.get("/api/profiles", headers=res).json()
        assert [p["unit"] for p in after] == [p["unit"] for p in before]
        assert {p["term"] for p in after} == {"2026-HT"}

    runner = CliRunner()
    found = runner.invoke(app, ["doctor", "--json"])
    assert found.exit_code == 1
    report = json.loads(found.stdout)
    assert sorted(r["table"] for r in report["unusable_rows"]) == ["context", "sheet"]
    assert all(
        "1-VT" in r["reason"] or "0001-01-01" in r["reason"] for r in report["unusable_rows"]
    )
    fixed = runner.invoke(app, ["doctor", "--fix", "--json"])
    assert fixed.exit_code == 0, fixed.stdout
    assert json.loads(fixed.stdout)["unusable_rows_removed"] == 2
    with api.factory() as s:
        assert s.scalar(select(func.count()).where(ResponseSheet.term == "1-VT")) == 0
        assert s.scalar(select(func.count()).where(UnitContext.term == "1-VT")) == 0
        deleted = s.scalars(
            select(AuditEvent).where(
                AuditEvent.action == "delete", AuditEvent.username == "spira doctor --fix"
            )
        ).all()
        assert sorted(e.object_type for e in deleted) == ["context", "sheet"]
    assert api.get("/api/profiles/skipped", headers=res).json()["total"] == 0
    assert runner.invoke(app, ["doctor"]).exit_code == 0


# ---- numbers -------------------------------------------------------------------------------------


def test_what_if_changes_must_be_finite_and_keep_the_column_in_its_range(api):
    res, boss = token(api, "res"), token(api, "boss")
    assert _import(api, res, "ratings", "r.csv", _ratings_csv(UNITS)).status_code == 200
    assert _import(api, res, "context", "c.csv", _context_csv(UNITS)).status_code == 200
    unit_id, _, _ = unit_and_group(api, boss)
    url = f"/api/units/{unit_id}/what-if"
    for changes, expected in [
        ({"children_per_fte": -100}, "0.5 to 20"),
        ({"share_trained_staff": 5}, "0 to 1"),
        ({"children_per_fte": -1e308}, "0.5 to 20"),
        ({"n_groups": 1e308}, "1 to 60"),
    ]:
        r = api.post(url, headers=boss, json={"changes": changes})
        assert r.status_code == 422 and expected in r.json()["detail"], (changes, r.text)
    for raw in ('{"changes": {"children_per_fte": -Infinity}}', '{"changes": {"x": NaN}}'):
        r = api.post(url, headers=boss | {"Content-Type": "application/json"}, content=raw)
        assert r.status_code == 422, r.text
    r = api.post(url, headers=boss, json={"changes": {"children_per_fte": 10}})
    assert r.status_code == 200
    # 4.8 + 10 children per employee lies beyond every unit the model was fitted on
    assert all(result["extrapolation"] for result in r.json()["results"])


# ---- spreadsheets --------------------------------------------------------------------------------


def _far_cell_xlsx() -> bytes:
    from openpyxl import Workbook

    book = Workbook()
    book.active.cell(row=20_000, column=5_000).value = 1
    buffer = io.BytesIO()
    book.save(buffer)
    return buffer.getvalue()


def _zip_bomb_xlsx(inflated_mb: int = 120) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("[Content_Types].xml", "<Types/>")
        with archive.open("xl/worksheets/sheet1.xml", "w") as member:
            chunk = b" " * (1024 * 1024)
            for _ in range(inflated_mb):
                member.write(chunk)
    return buffer.getvalue()


@pytest.mark.parametrize("route", ["ratings", "context"])
def test_oversized_sheets_and_zip_bombs_are_refused_fast_with_bounded_memory(api, route):
    res = token(api, "res")
    before = _spira_temp_dirs()
    far, bomb = _far_cell_xlsx(), _zip_bomb_xlsx()
    assert len(far) < 10_000 and len(bomb) < 1024 * 1024
    for name, data, words in [
        ("far.xlsx", far, "5000 columns"),
        ("bomb.xlsx", bomb, "inflates to"),
    ]:
        tracemalloc.start()
        started = time.perf_counter()
        r = _import(api, res, route, name, data)
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert r.status_code == 413 and words in r.json()["detail"], r.text
        assert elapsed < 1.0, f"{name} took {elapsed:.2f} s"
        assert peak < 32 * 1024 * 1024, f"{name} allocated {peak / 2**20:.0f} MB"
    rows = io.BytesIO()
    from openpyxl import Workbook

    book = Workbook()
    book.active.cell(row=300_000, column=2).value = 1
    book.save(rows)
    r = _import(api, res, route, "rows.xlsx", rows.getvalue())
    assert r.status_code == 413 and "300000 rows" in r.json()["detail"]
    r = _import(api, res, route, "broken.xlsx", b"PK\x03\x04 not really a workbook")
    assert r.status_code == 422
    assert tempfile.gettempdir() not in r.text and "spira-" not in r.text
    assert _spira_temp_dirs() == before
    assert _count(api, Rating) == 0 and _count(api, UnitContext) == 0


def test_a_false_dimension_cannot_make_the_reader_pad_beyond_the_caps():
    """A sheet that declares A1:B2 but holds a cell at column 5000 is refused by the row reader."""
    from core.spreadsheet import SpreadsheetRefused, read_sheet

    data = _far_cell_xlsx()
    source = io.BytesIO(data)
    out = io.BytesIO()
    with zipfile.ZipFile(source) as src, zipfile.ZipFile(out, "w") as dst:
        for info in src.infolist():
            body = src.read(info.filename)
            if info.filename.startswith("xl/worksheets/"):
                body = body.replace(b'ref="GJH20000"', b'ref="A1:B2"').replace(
                    b"A1:GJH20000", b"A1:B2"
                )
            dst.writestr(info, body)
    with pytest.raises(SpreadsheetRefused) as err:
        read_sheet(out.getvalue(), ".xlsx")
    assert err.value.status == 413


def test_health_answers_while_a_big_import_is_parsed(tmp_path, spira_env, trained_model):
    """Against a real uvicorn: /health answers within a second all through a slow import."""
    import os
    import subprocess
    import sys
    import threading

    import httpx
    from openpyxl import Workbook

    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.users import upsert_user
    from tests.api.conftest import PASSWORD
    from tests.web.conftest import REPO, _free_port

    migrate()
    with session_factory()() as session:
        seed_structure(session)
        upsert_user(session, username="res", password=PASSWORD, role="researcher", unit_names=[])
        session.commit()
    book = Workbook(write_only=True)
    sheet = book.create_sheet()
    sheet.append(
        ["sheet_id", "unit", "group", "age_band", "rater", "case", "item", "level", "date"]
    )
    for i in range(40_000):
        sheet.append([f"s{i}", "Olympia", "Lingonet", "4-5", "r", "c", "i", 1, "2026-03-10"])
    buffer = io.BytesIO()
    book.save(buffer)

    port = _free_port()
    log = tmp_path / "server.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=REPO,
            env=os.environ | {"SPIRA_ENV": "test"},
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.2)
        tok = httpx.post(f"{url}/api/token", data={"username": "res", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {tok.json()['access_token']}"}
        answer: dict = {}

        def send() -> None:
            answer["r"] = httpx.post(
                f"{url}/api/ratings/import",
                headers=headers,
                files={"file": ("big.xlsx", buffer.getvalue())},
                timeout=120,
            )

        importer = threading.Thread(target=send)
        importer.start()
        slowest, polls = 0.0, 0
        while importer.is_alive():
            started = time.perf_counter()
            assert httpx.get(f"{url}/health", timeout=5).status_code == 200
            slowest = max(slowest, time.perf_counter() - started)
            polls += 1
            time.sleep(0.05)
        importer.join()
        assert answer["r"].status_code == 422  # case "c" is unknown: read, then refused
        assert polls >= 3, "the import was too quick to show anything"
        assert slowest < 1.0, f"/health took {slowest:.2f} s during the import"
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---- exports -------------------------------------------------------------------------------------


def test_exports_neutralise_formulas_but_keep_negative_numbers(api):
    import csv

    from openpyxl import load_workbook

    res = token(api, "res")
    payloads = ["=cmd|' /C calc'!A0", "+1+1", "@SUM(1+1)", "-2+3", "\tx", "\rx"]
    assert _import(api, res, "ratings", "r.csv", _ratings_csv(UNITS)).status_code == 200
    assert _import(api, res, "context", "c.csv", _context_csv(UNITS)).status_code == 200
    with api.factory() as s:
        unit = s.scalar(select(Unit).where(Unit.name == "Olympia"))
        unit.name = payloads[0]
        s.commit()
    before = _spira_temp_dirs()
    r = api.get("/api/profiles/export?format=csv", headers=res)
    assert r.status_code == 200
    rows = list(csv.DictReader(io.StringIO(r.text)))
    names = {row["unit"] for row in rows}
    assert "'" + payloads[0] in names and payloads[0] not in names
    numbers = [float(row["residual"]) for row in rows if row["residual"]]
    assert any(n < 0 for n in numbers)  # negative figures stay numbers
    r = api.get("/api/profiles/export?format=xlsx", headers=res)
    sheet = load_workbook(io.BytesIO(r.content), read_only=True).worksheets[0]
    cells = [row for row in sheet.iter_rows(values_only=True)]
    header = cells[0]
    units = {row[header.index("unit")] for row in cells[1:]}
    assert "'" + payloads[0] in units
    residuals = [row[header.index("residual")] for row in cells[1:]]
    assert any(isinstance(v, float) and v < 0 for v in residuals)
    assert not any(isinstance(c, str) and c.startswith("=") for row in cells for c in row)
    assert _spira_temp_dirs() == before  # the export's folder is gone after the request

    from core.spreadsheet import neutralise_formula

    assert [neutralise_formula(p) for p in payloads] == ["'" + p for p in payloads]
    assert neutralise_formula(-3.5) == -3.5 and neutralise_formula("Olympia") == "Olympia"


def test_unit_export_csv_neutralises_formulas(api, tmp_path):
    import csv

    from core.retention import export_unit

    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    r = upload(api, edu, distinct_jpeg(3), unit_id, group_id, band)
    assert r.status_code == 201
    with api.factory() as s:
        s.get(Photo, r.json()["photo"]["id"]).activity = '=HYPERLINK("http://x")'
        s.commit()
        export_unit(s, api.app.state.store, "Olympia", tmp_path / "out", actor="adm")
    photos = next((tmp_path / "out").rglob("photo*.csv"))
    activities = [row["activity"] for row in csv.DictReader(photos.open(encoding="utf-8"))]
    assert activities == ['\'=HYPERLINK("http://x")']


# ---- tokens, webhook, text, groups ---------------------------------------------------------------


def test_tokens_need_exp_a_numeric_sub_and_the_purpose(api):
    """Validly signed tokens (with the key of their use) that lack a claim or carry one of the
    wrong form are 401, as bearer tokens and as page-session cookies; never a 500."""
    from datetime import UTC, datetime

    from core.security import _token_key

    later = datetime.now(UTC) + timedelta(hours=1)
    for use in ("access", "session"):
        good = {"sub": "1", "purpose": use, "exp": later, "csrf": "x", "epoch": 0}
        for claims in [
            {k: v for k, v in good.items() if k != "exp"},
            {k: v for k, v in good.items() if k != "sub"},
            {k: v for k, v in good.items() if k != "purpose"},
            good | {"sub": "abc"},
            good | {"sub": "-1"},
            good | {"sub": "99999999999999999999"},
            good | {"sub": "1" * 5000},
            good | {"sub": 1},
            good | {"purpose": "image"},
            *(
                [
                    {k: v for k, v in good.items() if k != "csrf"},
                    good | {"epoch": "zero"},
                ]
                if use == "session"
                else []
            ),
        ]:
            signed = jwt.encode(claims, _token_key(use), algorithm="HS256")
            if use == "access":
                for route in ("/api/units", "/api/me", "/api/profiles"):
                    r = api.get(route, headers={"Authorization": f"Bearer {signed}"})
                    assert r.status_code == 401, (claims, route, r.status_code)
            else:
                api.cookies.set("spira_session", signed)
                try:
                    for route in ("/session/me", "/api/units", "/api/profiles"):
                        r = api.get(route)
                        assert r.status_code == 401, (claims, route, r.status_code)
                finally:
                    api.cookies.clear()
        # the well-formed token of the same use is accepted (the refusals are about the claims)
        signed = jwt.encode(good, _token_key(use), algorithm="HS256")
        if use == "access":
            assert api.get("/api/units", headers={"Authorization": f"Bearer {signed}"}).is_success


def test_a_deeply_nested_webhook_body_is_refused_not_a_crash(api, monkeypatch):
    from core.config import get_settings

    monkeypatch.setenv("SPIRA_WEBHOOK_SECRET", "a-long-shared-secret")
    get_settings.cache_clear()
    try:
        body = "[" * 100_000 + "]" * 100_000
        r = api.post(
            "/api/annotations/webhook",
            headers={"X-Spira-Webhook-Secret": "a-long-shared-secret"},
            content=body,
        )
        assert r.status_code in (400, 422) and "nested too deeply" in r.json()["detail"]
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize("char", ["\x00", "\u202e", "\u2066", "\x1b", "\x85"])
def test_control_and_bidi_characters_are_refused_in_free_text(api, char):
    edu, res = token(api, "edu"), token(api, "res")
    unit_id, group_id, band = unit_and_group(api, edu)
    r = api.post("/api/sheets", headers=edu, json=_sheet(unit_id, group_id, case_id=f"a{char}b"))
    assert r.status_code == 422 and f"U+{ord(char):04X}" in _detail(r)
    data = {"activity": f"teckning{char}gnin"}
    r = upload(api, edu, distinct_jpeg(4), unit_id, group_id, band, **data)
    assert r.status_code == 422 and f"U+{ord(char):04X}" in _detail(r), r.text
    ratings = _ratings_csv(UNITS, n_sheets=20).decode()
    first = ratings.splitlines()[1].split(",")
    bad = ratings.replace(",".join(first), ",".join([*first[:4], f"x{char}y", *first[5:]]), 1)
    r = _import(api, res, "ratings", "r.csv", bad.encode())
    if char == "\x00":  # pandas' CSV reader stops at NUL: refused either way
        assert r.status_code == 422
    else:
        assert r.status_code == 422 and "column rater" in r.json()["detail"]
    assert photo_count(api) == 0 and _count(api, ResponseSheet) == 0


def test_a_group_of_another_unit_gets_the_404_of_a_missing_group(api):
    edu = token(api, "edu")
    unit_id, _, band = unit_and_group(api, edu)
    with api.factory() as s:
        foreign = s.scalar(select(Group.id).join(Unit).where(Unit.name == "Dalhem"))
        missing = (s.scalar(select(func.max(Group.id))) or 0) + 1000
    answers = []
    for group_id in (foreign, missing):
        r = api.post("/api/sheets", headers=edu, json=_sheet(unit_id, group_id))
        answers.append((r.status_code, r.json()["detail"]))
        r = upload(api, edu, distinct_jpeg(5), unit_id, group_id, band)
        answers.append((r.status_code, r.json()["detail"]))
    assert answers[0] == answers[2] and answers[1] == answers[3]
    assert {code for code, _ in answers} == {404}
    assert "Dalhem" not in json.dumps(answers)
    assert photo_count(api) == 0 and _count(api, ResponseSheet) == 0


def test_a_30_mb_json_body_is_refused_before_it_is_read(api):
    """The body cap of api.main (issue 14) covers the JSON routes of this issue: a 30 MB what-if
    is 413, with a declared length and sent in chunks."""
    from core.config import get_settings

    boss = token(api, "boss")
    unit_id, _, _ = unit_and_group(api, boss)
    body = b'{"changes": {"children_per_fte": 1}, "term": "' + b"x" * (30 * 1024 * 1024) + b'"}'
    headers = boss | {"Content-Type": "application/json"}
    r = api.post(f"/api/units/{unit_id}/what-if", headers=headers, content=body)
    assert r.status_code == 413

    def chunks():
        for start in range(0, len(body), 1024 * 1024):
            yield body[start : start + 1024 * 1024]

    r = api.post(f"/api/units/{unit_id}/what-if", headers=headers, content=chunks())
    assert r.status_code == 413
    assert get_settings().max_body_bytes < 30 * 1024 * 1024
