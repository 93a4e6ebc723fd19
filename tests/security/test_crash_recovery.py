"""SIGKILL the real server in the middle of a burst of uploads, restart it, and check that every
upload that got a success answer is present and gets processed, and that storage is consistent."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.security.conftest import PASSWORD, distinct_jpeg

pytestmark = pytest.mark.slow

N_UPLOADS = 24
KILL_AFTER = 6  # successes before the server is killed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def olympia_upload_form(url: str, headers: dict[str, str]) -> dict:
    """The upload form fields for Olympia's first group, as the server lists them."""
    unit = next(
        u for u in httpx.get(url + "/api/units", headers=headers).json() if u["name"] == "Olympia"
    )
    group = unit["groups"][0]
    return {
        "unit_id": unit["id"],
        "group_id": group["id"],
        "activity": "teckning",
        "age_band": group["age_band"],
    }


def _spira() -> list[str]:
    script = Path(sys.executable).with_name("spira")
    return (
        [str(script)]
        if script.exists()
        else [sys.executable, "-c", "from cli.main import app; app()"]
    )


class Server:
    """``spira serve`` in a subprocess on 127.0.0.1."""

    def __init__(
        self, env: dict[str, str], port: int, log: Path, args: tuple[str, ...] = ()
    ) -> None:
        self.env, self.port, self.log, self.args = env, port, log, args
        self.url = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 90) -> None:
        out = open(self.log, "ab")  # noqa: SIM115 - the server writes to it until killed
        self.proc = subprocess.Popen(
            [*_spira(), "serve", "--host", "127.0.0.1", "--port", str(self.port), *self.args],
            env=self.env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text(errors="replace")[-3000:]
            try:
                if httpx.get(self.url + "/health", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(
            "server did not start:\n" + self.log.read_text(errors="replace")[-3000:]
        )

    def kill(self) -> None:
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def prepared_env(spira_env, trained_model, tmp_path):
    """A migrated database with units, an educator and the promoted model; the server's env."""
    from cli.demo import seed_structure
    from core.db import dispose_engines, migrate, session_factory
    from core.users import upsert_user
    from training.registry import promote

    migrate()
    with session_factory()() as session:
        seed_structure(session)
        upsert_user(
            session, username="edu", password=PASSWORD, role="educator", unit_names=["Olympia"]
        )
        promote(trained_model, session=session)
        session.commit()
    dispose_engines()
    env = {
        **os.environ,
        "SPIRA_ENV": "test",
        "SPIRA_DEVICE": "cpu",
        "SPIRA_VAR_DIR": str(spira_env.var_dir),
        "SPIRA_MODELS_DIR": str(spira_env.models_path),
        "PYTHONPATH": str(Path(__file__).resolve().parents[2]),
    }
    return env


def _admin(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "cli.admin", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        cwd=Path(__file__).resolve().parents[2],
    )


def test_sigkill_mid_burst_loses_no_accepted_upload(prepared_env, tmp_path):
    server = Server(prepared_env, _free_port(), tmp_path / "server.log")
    server.start()
    try:
        r = httpx.post(server.url + "/api/token", data={"username": "edu", "password": PASSWORD})
        headers = {"Authorization": f"Bearer {r.json()['access_token']}"}
        form = olympia_upload_form(server.url, headers)

        accepted: dict[str, str] = {}  # idempotency key -> photo id
        failed: list[str] = []
        lock = threading.Lock()
        killed = threading.Event()

        def send(i: int) -> None:
            key = f"crash-test-{i}"
            try:
                resp = httpx.post(
                    server.url + "/api/photos",
                    headers=headers | {"Idempotency-Key": key},
                    files={"file": (f"{i}.jpg", distinct_jpeg(500 + i, 640, 480), "image/jpeg")},
                    data=form,
                    timeout=30,
                )
            except httpx.HTTPError:
                with lock:
                    failed.append(key)
                return
            with lock:
                if resp.status_code in (200, 201):
                    accepted[key] = resp.json()["photo"]["id"]
                    if len(accepted) >= KILL_AFTER and not killed.is_set():
                        killed.set()
                        server.kill()
                else:
                    failed.append(key)

        with ThreadPoolExecutor(6) as pool:
            list(pool.map(send, range(N_UPLOADS)))
        assert killed.is_set(), "the burst finished before the kill; raise N_UPLOADS"
        assert len(accepted) >= KILL_AFTER and failed, (len(accepted), len(failed))

        server.start()
        # every success answer is durable
        for key, photo_id in accepted.items():
            got = httpx.get(f"{server.url}/api/photos/{photo_id}", headers=headers)
            assert got.status_code == 200, (key, got.text)
        # the tablet retries what failed with the same key: stored once, never twice
        for key in failed:
            i = int(key.rsplit("-", 1)[1])
            resp = httpx.post(
                server.url + "/api/photos",
                headers=headers | {"Idempotency-Key": key},
                files={"file": (f"{i}.jpg", distinct_jpeg(500 + i, 640, 480), "image/jpeg")},
                data=form,
                timeout=30,
            )
            assert resp.status_code in (200, 201), resp.text
            accepted[key] = resp.json()["photo"]["id"]
        assert len(set(accepted.values())) == N_UPLOADS

        # the restarted worker processes everything, including what was queued before the kill
        deadline = time.monotonic() + 150
        pending = set(accepted.values())
        while pending and time.monotonic() < deadline:
            for photo_id in list(pending):
                status = httpx.get(f"{server.url}/api/photos/{photo_id}", headers=headers).json()[
                    "status"
                ]
                assert status != "failed", photo_id
                if status == "done":
                    pending.discard(photo_id)
            time.sleep(1)
        assert not pending, f"{len(pending)} photo(s) never processed"
    finally:
        server.stop()

    # no orphaned rows or files once doctor has cleaned up what the kill left behind
    repaired = _admin(prepared_env, "doctor", "--repair", "--grace-minutes", "0", "--json")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    report = json.loads(repaired.stdout)
    assert report["missing_blobs"] == [] and report["photos_checked"] == N_UPLOADS
    assert report["after_repair"]["consistent"]
    again = _admin(prepared_env, "doctor", "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["blobs_checked"] == 2 * N_UPLOADS
