"""Audit log, retention with aggregates kept, deletion by photo/group/unit, unit export, doctor."""

from __future__ import annotations

import json
import statistics
from datetime import date, timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from typer.testing import CliRunner

from cli.admin import app as admin_app
from core.models import AuditEvent, Embedding, Photo, StageEstimate
from core.retention import RetainedAggregate
from tests.security.conftest import (
    distinct_jpeg,
    photo_count,
    stored_files,
    token,
    unit_and_group,
    upload,
)

runner = CliRunner()


def _store_photo(api, unit_name: str, seed: int, captured_on: date | None = None) -> str:
    from core.models import Group, Unit
    from vision.photos import accept_photo

    with api.factory() as s:
        unit = s.scalar(select(Unit).where(Unit.name == unit_name))
        group = unit.groups[0]
        result = accept_photo(
            session=s,
            store=api.app.state.store,
            data=distinct_jpeg(seed),
            unit=unit,
            group=s.get(Group, group.id),
            activity="teckning",
            age_band=group.age_band,
            captured_on=captured_on,
        )
        return result.photo.id


def _drain(api) -> int:
    from training.model_files import load_model
    from vision.worker import drain

    return drain(api.factory, api.app.state.store, load_model())


def _events(api, **where) -> list[AuditEvent]:
    with api.factory() as s:
        q = select(AuditEvent)
        for key, value in where.items():
            q = q.where(getattr(AuditEvent, key) == value)
        return list(s.scalars(q))


def test_uploads_reads_deletions_and_exports_are_audited_and_filterable(api):
    edu, adm = token(api, "edu"), token(api, "adm")
    unit_id, group_id, band = unit_and_group(api, edu)
    r = upload(api, edu, distinct_jpeg(11), unit_id, group_id, band)
    photo_id = r.json()["photo"]["id"]
    assert api.get(f"/api/units/{unit_id}/profile", headers=edu).status_code == 200
    assert api.delete(f"/api/photos/{photo_id}", headers=edu).status_code == 204
    export = api.get(f"/api/units/{unit_id}/export", headers=adm)
    assert export.status_code == 200 and export.headers["content-type"] == "application/zip"

    assert [e.object_id for e in _events(api, action="upload", username="edu")] == [photo_id]
    assert _events(api, action="read", username="edu", object_type="profile")
    deleted = _events(api, action="delete", object_type="photo")
    assert [(e.username, e.object_id) for e in deleted] == [("edu", photo_id)]
    assert [e.username for e in _events(api, action="export")] == ["adm"]

    listed = api.get("/api/audit", params={"action": "delete"}, headers=adm).json()
    assert [e["object_id"] for e in listed] == [photo_id]
    by_edu = api.get("/api/audit", params={"username": "edu"}, headers=adm).json()
    assert {e["action"] for e in by_edu} == {"upload", "read", "delete"}
    future = (date.today() + timedelta(days=2)).isoformat()
    assert api.get("/api/audit", params={"since": f"{future}T00:00:00"}, headers=adm).json() == []

    out = runner.invoke(admin_app, ["audit", "--user", "edu", "--action", "upload", "--json"])
    assert out.exit_code == 0, out.output
    lines = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    assert [(e["username"], e["action"], e["object_id"]) for e in lines] == [
        ("edu", "upload", photo_id)
    ]
    bad = runner.invoke(admin_app, ["audit", "--since", "last tuesday"])
    assert bad.exit_code == 2


def test_retention_deletes_old_photos_and_files_but_keeps_their_aggregates(api, storage_root):
    old_day = date.today() - timedelta(days=400)
    old = [_store_photo(api, "Olympia", 20 + i, old_day) for i in range(3)]
    recent = _store_photo(api, "Olympia", 30)
    assert _drain(api) == 4
    with api.factory() as s:
        old_stages = [
            e.expected_stage
            for e in s.scalars(select(StageEstimate).where(StageEstimate.photo_id.in_(old)))
        ]
        old_rows = [s.get(Photo, pid) for pid in old]
        term, band, unit_id = old_rows[0].term, old_rows[0].age_band, old_rows[0].unit_id
        old_keys = {k for p in old_rows for k in (p.content_key, p.thumb_key)}
    files_before = stored_files(storage_root)

    dry = runner.invoke(admin_app, ["retention", "run", "--older-than-days", "365", "--dry-run"])
    assert dry.exit_code == 0 and "would delete 3 photo" in dry.output
    assert photo_count(api) == 4 and stored_files(storage_root) == files_before

    done = runner.invoke(admin_app, ["retention", "run", "--older-than-days", "365"])
    assert done.exit_code == 0, done.output
    with api.factory() as s:
        assert [p.id for p in s.scalars(select(Photo))] == [recent]
        assert s.scalar(select(func.count()).select_from(Embedding)) == 1
        aggregates = list(s.scalars(select(RetainedAggregate)))
    assert {Path(f).name for f in stored_files(storage_root)}.isdisjoint(old_keys)
    assert len(stored_files(storage_root)) == 2
    assert len(aggregates) == 1
    agg = aggregates[0]
    assert (agg.unit_id, agg.term, agg.age_band, agg.n_photos) == (unit_id, term, band, 3)
    assert agg.mean_stage == pytest.approx(statistics.fmean(old_stages))
    assert sum(agg.stage_prob_sums) == pytest.approx(3.0, abs=1e-6)
    assert len(_events(api, action="delete", object_type="photo")) == 3
    assert len(_events(api, action="retention")) == 1


def test_retention_age_comes_from_the_environment(api, monkeypatch):
    _store_photo(api, "Olympia", 40, date.today() - timedelta(days=50))
    unset = runner.invoke(admin_app, ["retention", "run"])
    assert unset.exit_code == 2 and "SPIRA_RETENTION_DAYS" in unset.output
    monkeypatch.setenv("SPIRA_RETENTION_DAYS", "30")
    from core.config import get_settings

    get_settings.cache_clear()
    done = runner.invoke(admin_app, ["retention", "run"])
    assert done.exit_code == 0, done.output
    assert photo_count(api) == 0


def test_delete_by_photo_group_and_unit_removes_rows_and_files(api, storage_root):
    from core.models import Group, Unit

    a = _store_photo(api, "Olympia", 50)
    _store_photo(api, "Olympia", 51)
    d = _store_photo(api, "Dalhem", 52)
    _store_photo(api, "Dalhem", 53)
    assert runner.invoke(admin_app, ["delete", "--photo", a]).exit_code == 0
    with api.factory() as s:
        assert s.get(Photo, a) is None
        group_id = s.get(Photo, d).group_id
        dalhem = s.scalar(select(Unit).where(Unit.name == "Dalhem"))
        dalhem_id = dalhem.id
    assert len(stored_files(storage_root)) == 6
    assert runner.invoke(admin_app, ["delete", "--group", str(group_id)]).exit_code == 0
    assert photo_count(api) == 1
    assert runner.invoke(admin_app, ["delete", "--unit", "Olympia"]).exit_code == 0
    assert photo_count(api) == 0 and stored_files(storage_root) == []
    with api.factory() as s:
        # structure stays: the unit and its groups, now empty
        assert s.get(Unit, dalhem_id) is not None and s.get(Group, group_id) is not None
    unknown = runner.invoke(admin_app, ["delete", "--unit", "Atlantis"])
    assert unknown.exit_code == 2 and "Olympia" in unknown.output
    assert runner.invoke(admin_app, ["delete"]).exit_code == 2


def test_a_shared_blob_survives_until_its_last_photo_is_deleted(api, storage_root):
    edu, adm = token(api, "edu"), token(api, "adm")
    unit_id, group_id, band = unit_and_group(api, edu)
    other = unit_and_group(api, adm, "Dalhem")
    data = distinct_jpeg(60)
    first = upload(api, edu, data, unit_id, group_id, band).json()["photo"]["id"]
    second = upload(api, adm, data, *other).json()["photo"]["id"]
    assert api.delete(f"/api/photos/{first}", headers=edu).status_code == 204
    assert len(stored_files(storage_root)) == 2, "still used by the other unit's photo"
    assert api.delete(f"/api/photos/{second}", headers=adm).status_code == 204
    assert stored_files(storage_root) == []


def test_export_unit_writes_tables_and_images(api, tmp_path):
    ids = [_store_photo(api, "Olympia", 70 + i) for i in range(2)]
    _store_photo(api, "Dalhem", 72)
    _drain(api)
    out = runner.invoke(admin_app, ["export-unit", "Olympia", "--out", str(tmp_path / "export")])
    assert out.exit_code == 0, out.output
    folder = tmp_path / "export" / "Olympia"
    photos = json.loads((folder / "photos.json").read_text(encoding="utf-8"))
    assert sorted(p["id"] for p in photos) == sorted(ids)
    assert (folder / "photos.csv").read_text(encoding="utf-8").count("\n") == 3
    assert len(json.loads((folder / "stage_estimates.json").read_text())) == 2
    images = sorted(p.name for p in (folder / "images").iterdir())
    assert images == sorted([f"{i}.jpg" for i in ids] + [f"{i}.thumb.jpg" for i in ids])
    assert (folder / "images" / f"{ids[0]}.jpg").read_bytes()[:2] == b"\xff\xd8"
    assert not any("vector" in row for row in json.loads((folder / "embeddings.json").read_text()))


def test_doctor_finds_and_repairs_inconsistencies(api, storage_root):
    from core.doctor import check_consistency

    keep = _store_photo(api, "Olympia", 80)
    broken = _store_photo(api, "Olympia", 81)
    store = api.app.state.store
    with api.factory() as s:
        broken_key = s.get(Photo, broken).content_key
    store.path_for(broken_key).unlink()
    orphan = store.put(b"bytes of an upload whose row was never committed")
    tmp = storage_root / "ab" / "cd" / ".tmp-interrupted"
    tmp.parent.mkdir(parents=True, exist_ok=True)
    tmp.write_bytes(b"half a jpeg")

    check = runner.invoke(admin_app, ["doctor", "--json"])
    assert check.exit_code == 1
    report = json.loads(check.stdout)
    assert [m["photo_id"] for m in report["missing_blobs"]] == [broken]
    assert report["orphan_blobs"] == [orphan]
    assert report["temp_files"] == ["ab/cd/.tmp-interrupted"]

    # a live server's fresh files are protected by the grace period
    with api.factory() as s:
        young = check_consistency(s, store, repair=True, grace_minutes=10)
    assert young.repaired_orphans == 0 and store.exists(orphan) and tmp.exists()

    fixed = runner.invoke(admin_app, ["doctor", "--repair", "--grace-minutes", "0"])
    assert fixed.exit_code == 0, fixed.output
    assert not store.exists(orphan) and not tmp.exists()
    with api.factory() as s:
        assert s.get(Photo, broken).status == "failed" and "missing" in s.get(Photo, broken).error
        assert s.get(Photo, keep).status == "pending"
        assert check_consistency(s, store).consistent
    assert runner.invoke(admin_app, ["doctor"]).exit_code == 0


def test_doctor_reports_photos_pending_too_long(api):
    from datetime import UTC, datetime

    from core.doctor import check_consistency

    pid = _store_photo(api, "Olympia", 90)
    with api.factory() as s:
        now = datetime.now(UTC)
        assert check_consistency(s, api.app.state.store, now=now).stale_pending == []
        later = check_consistency(s, api.app.state.store, now=now + timedelta(hours=2))
    assert later.stale_pending == [pid] and later.consistent
