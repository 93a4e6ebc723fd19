"""Bad input through the real API: each refusal is a 4xx with a clear reason and changes nothing."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from core.models import Rating, ResponseSheet, UnitContext
from tests.security.conftest import photo_count, stored_files, token, unit_and_group, upload
from tests.vision.hostile import hostile_files, odd_but_valid_files

#: A small per-file limit for these tests, so the "over the limit" file is 2 MB, not 40 MB.
MAX_BYTES = 2 * 1024 * 1024


@pytest.fixture
def small_limit(monkeypatch, api):
    from core.config import get_settings

    monkeypatch.setenv("SPIRA_MAX_UPLOAD_BYTES", str(MAX_BYTES))
    get_settings.cache_clear()
    yield MAX_BYTES
    get_settings.cache_clear()


def test_every_hostile_file_is_refused_with_a_reason_and_leaves_nothing(
    api, storage_root, small_limit
):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    before_rows, before_files = photo_count(api), stored_files(storage_root)
    outcomes = {}
    for name, data, expected in hostile_files(small_limit):
        r = upload(api, edu, data, unit_id, group_id, band, filename=name)
        detail = r.json().get("detail")
        outcomes[name] = (r.status_code, detail)
        assert r.status_code == expected, (name, r.status_code, detail)
        # a sentence a person can act on, not a code or a stack trace
        assert isinstance(detail, str) and len(detail) > 15 and "Traceback" not in detail, name
    assert photo_count(api) == before_rows
    assert stored_files(storage_root) == before_files
    assert len(outcomes) == len(hostile_files(small_limit))


def test_odd_but_valid_files_are_accepted_without_their_trailers(api, storage_root):
    from core.models import Photo

    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    seen_ids = set()
    for name, data, _trailer in odd_but_valid_files():
        r = upload(api, edu, data, unit_id, group_id, band, filename=name)
        assert r.status_code in (200, 201), (name, r.text)
        seen_ids.add(r.json()["photo"]["id"])
    with api.factory() as s:
        photos = list(s.scalars(select(Photo)))
    assert {p.id for p in photos} == seen_ids
    store = api.app.state.store
    for p in photos:
        stored = store.get(p.content_key)
        assert stored.startswith(b"\xff\xd8"), "stored images are re-encoded JPEGs"
        assert b"PK\x03\x04" not in stored, "an appended ZIP must never be stored"
        assert b"ftyp" not in stored and b"mdat" not in stored, "a motion photo's MP4 is dropped"
        assert b"Exif" not in stored and b"Tablet 9000" not in stored, "metadata is stripped"
        assert b"PK\x03\x04" not in store.get(p.thumb_key)
    # nothing but blobs under storage, all referenced by a row
    referenced = {k for p in photos for k in (p.content_key, p.thumb_key)}
    assert {Path(f).name for f in stored_files(storage_root)} == referenced


def test_file_names_and_content_types_are_ignored_and_nothing_escapes_storage(
    api, storage_root, tmp_path
):
    from tests.security.conftest import distinct_jpeg

    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    var = Path(api.app.state.store.root).parent
    outside_before = sorted(
        p.as_posix() for p in var.rglob("*") if storage_root not in p.parents and p != storage_root
    )
    names = [
        ("../../etc/passwd.jpg", "image/jpeg"),
        ("..\\..\\windows\\win.ini.jpg", "application/octet-stream"),
        ("/absolute/path/x.jpg", "text/html"),
        ("ritning_åäö_😀 (1).jpg", "image/png"),
        ("\u202egpj.exe", "application/x-msdownload"),
        ("null\x00byte.jpg", "image/jpeg"),
    ]
    for i, (name, ctype) in enumerate(names):
        r = upload(
            api,
            edu,
            distinct_jpeg(100 + i),
            unit_id,
            group_id,
            band,
            filename=name,
            content_type=ctype,
        )
        assert r.status_code == 201, (name, r.text)
    outside_after = sorted(
        p.as_posix() for p in var.rglob("*") if storage_root not in p.parents and p != storage_root
    )
    # only the database's own files live next to storage; no upload name became a path
    assert outside_after == outside_before
    assert not Path("/etc/passwd.jpg").exists()
    for f in stored_files(storage_root):
        assert len(Path(f).name) == 64 and ".." not in f
    # a supported image named and typed as something else is still recognised from its bytes,
    # and a non-image named .jpg and typed image/jpeg is still refused
    r = upload(api, edu, b"MZ\x90\x00" + b"\x00" * 200, unit_id, group_id, band, filename="x.jpg")
    assert r.status_code == 415 and "JPEG" in r.json()["detail"]


def _counts(api) -> tuple[int, int, int]:
    with api.factory() as s:
        return (
            int(s.scalar(select(func.count()).select_from(ResponseSheet)) or 0),
            int(s.scalar(select(func.count()).select_from(Rating)) or 0),
            int(s.scalar(select(func.count()).select_from(UnitContext)) or 0),
        )


def _xlsx(rows: list[list[object]]) -> bytes:
    from openpyxl import Workbook

    wb = Workbook()
    ws = wb.active
    for row in rows:
        ws.append(row)
    buffer = io.BytesIO()
    wb.save(buffer)
    return buffer.getvalue()


RATING_HEADER = ["sheet_id", "unit", "group", "age_band", "rater", "case", "item", "level", "date"]


def _valid_rating_row(api) -> list[object]:
    from assessment.cases import load_case_library

    case = sorted(load_case_library(), key=lambda c: c.id)[0]
    edu = token(api, "edu")
    units = api.get("/api/units", headers=edu).json()
    olympia = next(u for u in units if u["name"] == "Olympia")
    group = next(g for g in olympia["groups"] if g["age_band"] in case.age_bands)
    return [
        "s1",
        "Olympia",
        group["name"],
        group["age_band"],
        "rater-a",
        case.id,
        case.rubric[0].id,
        0,
        "2026-03-02",
    ]


def test_bad_ratings_files_name_row_and_column_and_import_nothing(api):
    res = token(api, "res")
    good = _valid_rating_row(api)
    bad_level = [*good[:7], 99, good[8]]
    bad_unit = ["s2", "Atlantis", *good[2:]]
    bad_date = ["s3", *good[1:8], "31/02/2026"]
    csv_text = "\n".join(
        ",".join(str(v) for v in row)
        for row in [RATING_HEADER, good, bad_level, bad_unit, bad_date]
    )
    before = _counts(api)
    cases = [
        ("ratings.csv", csv_text.encode(), ["row 3", "level", "row 5", "date"]),
        ("ratings.xlsx", _xlsx([RATING_HEADER, good, bad_level]), ["row 3", "level"]),
        ("ratings.csv", b"sheet_id,unit\ns1,Olympia\n", ["column", "rater"]),
        ("ratings.xlsx", b"PK\x03\x04 this is not a workbook", ["xlsx"]),
        ("ratings.yaml", b"- a: 1\n", ["csv"]),
    ]
    for name, data, must_mention in cases:
        r = api.post("/api/ratings/import", headers=res, files={"file": (name, data, "text/csv")})
        assert r.status_code in (415, 422), (name, r.text)
        detail = r.json()["detail"]
        for word in must_mention:
            assert word.lower() in detail.lower(), (name, word, detail)
        assert _counts(api) == before, f"{name} imported something"


CONTEXT_HEADER = [
    "unit",
    "term",
    "children_enrolled",
    "n_groups",
    "mean_group_size",
    "children_per_fte",
    "share_trained_staff",
    "staff_turnover",
    "socioeconomic_index",
    "share_multilingual",
]


def test_bad_context_files_name_row_and_column_and_import_nothing(api):
    from profiles.context import CONTEXT_COLUMNS

    assert CONTEXT_HEADER[2:] == list(CONTEXT_COLUMNS), "keep the test header in step"
    adm = token(api, "adm")
    good = ["Olympia", "2026-VT", 60, 4, 15, 5.1, 0.41, 0.1, 0.0, 0.2]
    bad_term = ["Dalhem", "2026-sommar", 60, 4, 15, 5.1, 0.41, 0.1, 0.0, 0.2]
    bad_share = ["Laröd", "2026-VT", 60, 4, 15, 5.1, "mycket", 0.1, 0.0, 0.2]
    unknown_unit = ["Atlantis", "2026-VT", 60, 4, 15, 5.1, 0.41, 0.1, 0.0, 0.2]
    before = _counts(api)

    def csv_of(*rows):
        return "\n".join(",".join(str(v) for v in row) for row in rows).encode()

    cases = [
        (
            "context.csv",
            csv_of(CONTEXT_HEADER, good, bad_term, bad_share),
            ["row 3", "term", "row 4"],
        ),
        (
            "context.xlsx",
            _xlsx([CONTEXT_HEADER, good, bad_share]),
            ["row 3", "share_trained_staff"],
        ),
        ("context.csv", csv_of(CONTEXT_HEADER, good, unknown_unit), ["row", "unit", "Atlantis"]),
        ("context.csv", csv_of(CONTEXT_HEADER[:3], good[:3]), ["n_groups"]),
        ("context.txt", b"unit;term\n", ["csv"]),
    ]
    for name, data, must_mention in cases:
        r = api.post("/api/context/import", headers=adm, files={"file": (name, data, "text/csv")})
        assert r.status_code in (415, 422), (name, r.text)
        detail = r.json()["detail"]
        for word in must_mention:
            assert word.lower() in detail.lower(), (name, word, detail)
        assert _counts(api) == before, f"{name} imported something"


def test_bad_case_files_name_file_field_and_reason(tmp_path):
    import yaml

    from assessment.cases import DEFAULT_CASE_DIR, validate_case_library

    good = yaml.safe_load(next(Path(DEFAULT_CASE_DIR).glob("*.yaml")).read_text(encoding="utf-8"))
    (tmp_path / "good.yaml").write_text(yaml.safe_dump(good, allow_unicode=True), encoding="utf-8")
    broken_area = {**good, "id": "other-id", "area": "astrology"}
    (tmp_path / "area.yaml").write_text(yaml.safe_dump(broken_area), encoding="utf-8")
    (tmp_path / "syntax.yaml").write_text("id: [unclosed\nrubric: {", encoding="utf-8")
    levels_gap = {**good, "id": "gap-id"}
    levels_gap["rubric"] = [
        {
            **good["rubric"][0],
            "levels": [{"level": 0, "descriptor": "a"}, {"level": 2, "descriptor": "b"}],
        }
    ]
    (tmp_path / "levels.yaml").write_text(yaml.safe_dump(levels_gap), encoding="utf-8")
    (tmp_path / "duplicate.yml").write_text(yaml.safe_dump(good), encoding="utf-8")

    library, errors = validate_case_library(tmp_path)
    by_file = {Path(e.file).name: e for e in errors}
    assert set(by_file) == {"area.yaml", "syntax.yaml", "levels.yaml", "duplicate.yml"} or set(
        by_file
    ) == {"area.yaml", "syntax.yaml", "levels.yaml", "good.yaml"}
    assert by_file["area.yaml"].field == "area" and "astrology" in str(by_file["area.yaml"])
    assert "rubric" in by_file["levels.yaml"].field and by_file["levels.yaml"].reason
    assert by_file["syntax.yaml"].reason
    # the broken cases are not in the library: nothing partial is used
    assert {c.id for c in library} <= {good["id"]}
    assert "other-id" not in {c.id for c in library} and "gap-id" not in {c.id for c in library}


def test_unknown_unit_in_context_file_is_reported_on_its_own_row(api):
    adm = token(api, "adm")
    good = ["Olympia", "2026-VT", 60, 4, 15, 5.1, 0.41, 0.1, 0.0, 0.2]
    unknown_unit = ["Atlantis", *good[1:]]
    data = "\n".join(",".join(str(v) for v in row) for row in (CONTEXT_HEADER, good, unknown_unit))
    r = api.post(
        "/api/context/import",
        headers=adm,
        files={"file": ("context.csv", data.encode(), "text/csv")},
    )
    assert r.status_code == 422
    assert "row 3" in r.json()["detail"]
