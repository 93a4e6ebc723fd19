"""Retried uploads: the same Idempotency-Key returns the first answer; the same bytes to the same
unit are a duplicate, never a second row or file."""

from __future__ import annotations

from tests.security.conftest import (
    distinct_jpeg,
    photo_count,
    stored_files,
    token,
    unit_and_group,
    upload,
)


def _same_photo(a: dict, b: dict) -> bool:
    """Equal answers, reading a timestamp without offset as UTC (SQLite drops the offset)."""
    from datetime import UTC, datetime

    def moment(text: str) -> datetime:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    rest = {k for k in a if k != "created_at"}
    return {k: a[k] for k in rest} == {k: b[k] for k in rest} and moment(a["created_at"]) == moment(
        b["created_at"]
    )


def test_a_replay_is_byte_for_byte_the_first_answer(api):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    key = {"Idempotency-Key": "tablet-7:0002"}
    first = upload(api, edu, distinct_jpeg(5), unit_id, group_id, band, extra_headers=key)
    again = upload(api, edu, distinct_jpeg(5), unit_id, group_id, band, extra_headers=key)
    assert again.json()["photo"] == first.json()["photo"]


def test_a_retry_with_the_same_idempotency_key_returns_the_first_answer(api, storage_root):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    key = {"Idempotency-Key": "tablet-7:2026-03-12T10:15:00:0001"}
    first = upload(api, edu, distinct_jpeg(1), unit_id, group_id, band, extra_headers=key)
    assert first.status_code == 201 and first.json()["reason"] == "stored"
    files = stored_files(storage_root)
    again = upload(api, edu, distinct_jpeg(1), unit_id, group_id, band, extra_headers=key)
    assert again.status_code == 200
    assert _same_photo(again.json()["photo"], first.json()["photo"])
    assert again.json()["reason"] == "replay" and again.json()["created"] is False
    # a retry whose body got mangled in transit still gets the first answer, stores nothing new
    mangled = upload(api, edu, distinct_jpeg(2), unit_id, group_id, band, extra_headers=key)
    assert (
        mangled.status_code == 200 and mangled.json()["photo"]["id"] == first.json()["photo"]["id"]
    )
    assert photo_count(api) == 1 and stored_files(storage_root) == files


def test_the_same_bytes_to_the_same_unit_are_a_duplicate(api, storage_root):
    edu, adm = token(api, "edu"), token(api, "adm")
    unit_id, group_id, band = unit_and_group(api, edu)
    data = distinct_jpeg(3)
    first = upload(api, edu, data, unit_id, group_id, band)
    dup = upload(api, edu, data, unit_id, group_id, band, filename="renamed.jpg")
    assert first.status_code == 201
    assert dup.status_code == 200 and dup.json()["reason"] == "duplicate"
    assert dup.json()["photo"]["id"] == first.json()["photo"]["id"]
    assert photo_count(api) == 1
    # another unit may hold the same picture: a separate photo, but the blobs are shared
    other_unit, other_group, other_band = unit_and_group(api, adm, "Dalhem")
    elsewhere = upload(api, adm, data, other_unit, other_group, other_band)
    assert (
        elsewhere.status_code == 201
        and elsewhere.json()["photo"]["id"] != first.json()["photo"]["id"]
    )
    assert photo_count(api) == 2 and len(stored_files(storage_root)) == 2


def test_an_overlong_idempotency_key_is_refused(api):
    edu = token(api, "edu")
    unit_id, group_id, band = unit_and_group(api, edu)
    r = upload(
        api,
        edu,
        distinct_jpeg(4),
        unit_id,
        group_id,
        band,
        extra_headers={"Idempotency-Key": "k" * 81},
    )
    assert r.status_code == 422 and photo_count(api) == 0
