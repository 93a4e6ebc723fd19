"""Concurrent uploads and profile reads against the real server (two processes, worker on):
zero errors, zero lost or doubled uploads, every upload processed. Bounded in count and time,
localhost only. The figures are printed and kept in test-artifacts/load-test.json; the same mix
at a larger scale is ``bench/api_load.py``'s "mixed" row in BENCHMARKS.md."""

from __future__ import annotations

import json
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.security.conftest import PASSWORD, distinct_jpeg
from tests.security.test_crash_recovery import (  # noqa: F401 - prepared_env is a fixture
    Server,
    _free_port,
    olympia_upload_form,
    prepared_env,
)

pytestmark = pytest.mark.slow

UPLOADS, TABLETS = 16, 4
READS, READERS = 200, 10
ARTIFACT = Path(__file__).resolve().parents[2] / "test-artifacts" / "load-test.json"


def _token(url: str, username: str) -> dict[str, str]:
    r = httpx.post(url + "/api/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def test_concurrent_uploads_and_profile_reads_lose_nothing(prepared_env, spira_env, tmp_path):  # noqa: F811
    from core.db import dispose_engines, session_factory
    from core.users import upsert_user

    with session_factory()() as session:
        upsert_user(
            session, username="boss", password=PASSWORD, role="principal", unit_names=["Olympia"]
        )
        session.commit()
    dispose_engines()
    server = Server(prepared_env, _free_port(), tmp_path / "server.log", ("--workers", "2"))
    server.start()
    try:
        edu, boss = _token(server.url, "edu"), _token(server.url, "boss")
        form = olympia_upload_form(server.url, edu)
        lock = threading.Lock()
        uploads: list[tuple[float, int, str | None]] = []
        reads: list[tuple[float, int]] = []

        def upload(i: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                t = time.perf_counter()
                r = client.post(
                    "/api/photos",
                    headers=edu | {"Idempotency-Key": f"load-{i}"},
                    files={"file": (f"{i}.jpg", distinct_jpeg(900 + i, 1600, 1200), "image/jpeg")},
                    data=form,
                )
                photo = r.json().get("photo", {}).get("id") if r.status_code == 201 else None
                with lock:
                    uploads.append((time.perf_counter() - t, r.status_code, photo))

        def read(_: int) -> None:
            with httpx.Client(base_url=server.url, timeout=60) as client:
                for _ in range(READS // READERS):
                    t = time.perf_counter()
                    r = client.get(f"/api/units/{form['unit_id']}/profile", headers=boss)
                    with lock:
                        reads.append((time.perf_counter() - t, r.status_code))

        started = time.perf_counter()
        with ThreadPoolExecutor(TABLETS + READERS) as pool:
            done = [pool.submit(read, k) for k in range(READERS)]
            done += [pool.submit(upload, i) for i in range(UPLOADS)]
            for future in done:
                future.result(timeout=240)
        wall = time.perf_counter() - started

        assert [s for _, s, _ in uploads] == [201] * UPLOADS, server.log.read_text()[-3000:]
        assert [s for _, s in reads] == [200] * READS
        ids = {photo for _, _, photo in uploads}
        assert len(ids) == UPLOADS  # each stored once
        # every upload gets processed by the one queue worker draining at a time
        deadline = time.monotonic() + 180
        pending = set(ids)
        while pending and time.monotonic() < deadline:
            for photo_id in list(pending):
                r = httpx.get(f"{server.url}/api/photos/{photo_id}", headers=edu)
                if r.json()["status"] == "done":
                    pending.discard(photo_id)
            time.sleep(0.5)
        assert not pending, f"{len(pending)} upload(s) never processed"
        from sqlalchemy import func, select

        from core.models import Embedding, Photo

        with session_factory()() as s:
            assert s.scalar(select(func.count()).select_from(Photo)) == UPLOADS
            # no photo was embedded twice by the two server processes
            assert s.scalar(select(func.count()).select_from(Embedding)) == UPLOADS
        dispose_engines()
    finally:
        server.stop()

    read_ms = np.array([t for t, _ in reads]) * 1000
    figures = {
        "server": "spira serve --workers 2, worker on",
        "database": spira_env.db_url.split(":", 1)[0],
        "uploads": UPLOADS,
        "tablets": TABLETS,
        "reads": READS,
        "readers": READERS,
        "errors": 0,
        "lost_or_doubled_uploads": 0,
        "wall_s": round(wall, 2),
        "read_p50_ms": round(float(np.percentile(read_ms, 50)), 1),
        "read_p99_ms": round(float(np.percentile(read_ms, 99)), 1),
        "upload_p50_ms": round(float(np.median([t for t, _, _ in uploads]) * 1000), 1),
    }
    print(json.dumps(figures))
    ARTIFACT.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads(ARTIFACT.read_text()) if ARTIFACT.exists() else []
    ARTIFACT.write_text(json.dumps([*runs, figures], indent=2))
