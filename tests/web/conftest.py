"""Fixtures for the web pages: the session layer on TestClient, and a live server for Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.api.conftest import PASSWORD, api  # noqa: F401  (re-exported fixture)

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "test-artifacts" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
]
USERS = [
    ("edu", "educator", ["Olympia"]),
    ("boss", "principal", ["Olympia"]),
    ("other", "principal", ["Dalhem"]),
    ("res", "researcher", []),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def chromium(tmp_path_factory) -> Iterator[object]:
    """A headless Chromium (Debian's), shared by the session; skips (or fails) when missing."""
    if not CHROMIUM.exists():
        reason = (
            f"Chromium not found at {CHROMIUM}: install it with `apt-get install -y chromium` "
            "to run the browser end-to-end tests"
        )
        if os.environ.get("SPIRA_REQUIRE_BROWSER") == "1":
            pytest.fail(reason + " (SPIRA_REQUIRE_BROWSER=1)")
        pytest.skip(reason)
    from playwright.sync_api import sync_playwright

    home = tmp_path_factory.mktemp("chromium-home")
    mp = pytest.MonkeyPatch()
    # Chromium writes its profile and caches under XDG folders: keep them out of $HOME
    mp.setenv("XDG_CONFIG_HOME", str(home / "config"))
    mp.setenv("XDG_CACHE_HOME", str(home / "cache"))
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
            )
            yield browser
            browser.close()
    finally:
        mp.undo()


@dataclass
class LiveServer:
    """A real Spira server (uvicorn, worker enabled) on 127.0.0.1 and its database."""

    url: str
    factory: object  # sessionmaker over the server's database file
    log: Path

    def unit_id(self, name: str) -> int:
        from sqlalchemy import select

        from core.models import Unit

        with self.factory() as s:  # type: ignore[operator]
            return int(s.scalar(select(Unit.id).where(Unit.name == name)))


@pytest.fixture
def live_server(chromium, spira_env, trained_model, tmp_path) -> Iterator[LiveServer]:
    """Seed a fresh var folder (two units' users, promoted model) and serve it with uvicorn."""
    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.users import upsert_user
    from training.registry import promote

    migrate()
    factory = session_factory()
    with factory() as session:
        seed_structure(session)
        for username, role, units in USERS:
            upsert_user(session, username=username, password=PASSWORD, role=role, unit_names=units)
        promote(trained_model, session=session)
        session.commit()

    port = _free_port()
    log = tmp_path / "server.log"
    env = os.environ | {"SPIRA_WORKER_ENABLED": "true", "SPIRA_ENV": "test"}
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "api.main:create_app", "--factory"]
            + ["--host", "127.0.0.1", "--port", str(port), "--log-level", "warning"],
            cwd=REPO,
            env=env,
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
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the server did not start:\n{log.read_text()[-4000:]}")
            time.sleep(0.2)
        yield LiveServer(url=url, factory=factory, log=log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
