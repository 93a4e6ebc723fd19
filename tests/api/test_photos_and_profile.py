"""Upload -> queue -> worker -> profile, through the real API, on real processed photos."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image
from sqlalchemy import func, select

from core.models import Embedding, Photo, StageEstimate
from tests.api.conftest import token, unit_and_group


def _photo(stage: int, seed: int) -> bytes:
    from vision.synthetic import make_photo

    return make_photo(stage, seed, megapixels=0.6)


def _upload(
    client,
    headers,
    data: bytes,
    unit_id: int,
    group_id: int,
    age_band: str,
    *,
    extra_headers=None,
    **form,
):
    return client.post(
        "/api/photos",
        headers=headers | (extra_headers or {}),
        files={"file": ("teckning.jpg", data, "image/jpeg")},
        data={
            "unit_id": unit_id,
            "group_id": group_id,
            "activity": "teckning",
            "age_band": age_band,
            **form,
        },
    )


def _drain(client) -> int:
    from core.storage import get_store
    from training.model_files import load_model
    from vision.worker import drain

    return drain(client.factory, get_store(), load_model())


def _count(client, model) -> int:
    with client.factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_every_route_needs_a_token(api):
    assert api.get("/api/units").status_code == 401
    assert api.get("/api/units/1/profile").status_code == 401
    assert api.post("/api/photos").status_code == 401
    bad = api.post("/api/token", data={"username": "edu", "password": "wrong-password"})
    assert bad.status_code == 401 and "wrong" in bad.json()["detail"]


def test_upload_is_processed_and_shows_in_profile_with_suppression(api):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    first = _upload(api, edu, _photo(3, 1), unit_id, group_id, band, captured_on="2026-10-01")
    assert first.status_code == 201, first.text
    body = first.json()
    assert (
        body["created"]
        and body["photo"]["status"] == "pending"
        and body["photo"]["term"] == "2026-HT"
    )
    boss = token(api, "boss")
    # fewer than 5 photos: suppressed, not a number
    assert _drain(api) == 1
    prof = api.get(f"/api/units/{unit_id}/profile", headers=boss).json()
    (term,) = prof["terms"]
    assert term["n_photos"] == 1 and term["suppressed"] and term["mean_stage"] is None
    for k in range(2, 7):
        assert (
            _upload(
                api, edu, _photo(k % 5, 10 + k), unit_id, group_id, band, captured_on="2026-10-02"
            ).status_code
            == 201
        )
    assert _drain(api) == 5
    assert _drain(api) == 0  # nothing is processed twice
    prof = api.get(f"/api/units/{unit_id}/profile", headers=boss).json()
    (term,) = prof["terms"]
    assert term["n_photos"] == 6 and not term["suppressed"]
    ms = term["mean_stage"]
    assert ms["lo"] <= ms["value"] <= ms["hi"] and 0 <= ms["value"] <= 4
    assert abs(sum(term["stage_distribution"]) - 1) < 1e-6
    assert prof["model_version"]
    assert _count(api, Embedding) == 6 and _count(api, StageEstimate) == 6


def test_retry_with_idempotency_key_and_duplicate_bytes_store_once(api):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    data = _photo(2, 99)
    key = {"Idempotency-Key": "tablet-1-photo-1"}
    a = _upload(api, edu, data, unit_id, group_id, band, extra_headers=key)
    b = _upload(api, edu, data, unit_id, group_id, band, extra_headers=key)
    c = _upload(api, edu, data, unit_id, group_id, band)
    assert a.status_code == 201 and b.status_code == 200 and c.status_code == 200
    assert a.json()["photo"]["id"] == b.json()["photo"]["id"] == c.json()["photo"]["id"]
    assert b.json()["reason"] == "replay" and c.json()["reason"] == "duplicate"
    assert _count(api, Photo) == 1


def test_stored_image_has_no_metadata_and_original_is_not_stored(api, spira_env):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    img = Image.fromarray(np.full((600, 800, 3), 245, np.uint8))
    exif = Image.Exif()
    exif[0x010F] = "SecretCamera"  # Make
    exif[0x8825] = {2: (59.0, 2.0, 0.0)}  # GPSInfo
    buf = io.BytesIO()
    img.save(buf, "JPEG", exif=exif)
    r = _upload(api, edu, buf.getvalue(), unit_id, group_id, band)
    assert r.status_code == 201, r.text
    files = [p for p in spira_env.storage_path.rglob("*") if p.is_file()]
    assert len(files) == 2  # processed image and thumbnail
    for f in files:
        raw = f.read_bytes()
        assert b"SecretCamera" not in raw and b"Exif" not in raw
        assert raw != buf.getvalue()


def test_bad_input_gets_clear_4xx_and_stores_nothing(api, spira_env):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    r = _upload(api, edu, b"<html><script>alert(1)</script></html>", unit_id, group_id, band)
    assert r.status_code == 415 and "html" in r.json()["detail"].lower()
    r = _upload(api, edu, _photo(1, 5)[:3000], unit_id, group_id, band)
    assert r.status_code == 422
    r = _upload(api, edu, _photo(1, 5), unit_id, group_id, "9-10")
    assert r.status_code == 422 and "age band" in r.json()["detail"]
    assert _count(api, Photo) == 0
    assert not [p for p in spira_env.storage_path.rglob("*") if p.is_file()]


def test_access_is_scoped_to_units(api):
    edu, boss, other, res = (token(api, u) for u in ("edu", "boss", "other", "res"))
    olympia, group_id, band = unit_and_group(api, boss)
    assert [u["name"] for u in api.get("/api/units", headers=other).json()] == ["Dalhem"]
    assert api.get(f"/api/units/{olympia}/profile", headers=other).status_code == 404
    assert api.get(f"/api/units/{olympia}/profile", headers=res).status_code == 200
    assert len(api.get("/api/units", headers=res).json()) == 8
    # a principal may not upload; an educator not to another unit
    assert _upload(api, boss, _photo(1, 3), olympia, group_id, band).status_code == 403
    dalhem = next(u for u in api.get("/api/units", headers=res).json() if u["name"] == "Dalhem")
    assert (
        _upload(api, edu, _photo(1, 3), dalhem["id"], dalhem["groups"][0]["id"], band).status_code
        == 403
    )
