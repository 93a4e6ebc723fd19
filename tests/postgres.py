"""A real PostgreSQL server for the tests, started by the harness itself (a pytest plugin).

The server is Debian's ``postgresql`` (15 here): ``initdb`` and ``pg_ctl`` from ``PATH`` or
``/usr/lib/postgresql/<version>/bin``, in a temporary folder, listening on a free port on 127.0.0.1
only, trust authentication, fsync off (a test database need not survive a power cut). It starts at
the first test that asks for it and stops (``pg_ctl stop -m fast``) at the end of the session, also
when tests fail. Each test gets its own empty database, created from ``template0`` and dropped after.

When the binaries are missing the PostgreSQL tests are skipped with the reason, unless
``SPIRA_REQUIRE_POSTGRES=1`` (CI), where they fail. The session header says which it is.

Fixtures:

* ``postgres_server`` (session): the running :class:`PostgresServer`.
* ``postgres_url`` (function): ``postgresql+psycopg://postgres@127.0.0.1:PORT/test_xxx``, fresh.
* ``db_backend_url`` (function, parametrised ``sqlite`` / ``postgresql``): ``None`` for SQLite (the
  default file under ``SPIRA_VAR_DIR``), else a fresh PostgreSQL URL. ``spira_env`` takes it to run
  every database test on both backends.

Enable with ``pytest_plugins = ["tests.postgres"]`` in the top-level ``tests/conftest.py``.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

#: Environment variable that turns "PostgreSQL missing" from a skip into a failure (CI sets it).
REQUIRE_ENV = "SPIRA_REQUIRE_POSTGRES"
#: The unprivileged account the server runs as when the tests run as root (initdb refuses root).
SERVER_USER = "postgres"
BACKENDS = ("sqlite", "postgresql")


def find_postgres_bin() -> Path | None:
    """The folder holding ``initdb``, ``pg_ctl`` and ``postgres``, or None when not installed.

    ``PATH`` first (Debian links ``initdb``/``pg_ctl`` there only sometimes), then the newest
    ``/usr/lib/postgresql/<version>/bin``.
    """
    on_path = shutil.which("pg_ctl")
    if on_path and shutil.which("initdb"):
        folder = Path(on_path).resolve().parent
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0,
        reverse=True,
    )
    for folder in candidates:
        if all((folder / name).exists() for name in ("initdb", "pg_ctl", "postgres")):
            return folder
    return None


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PostgresUnavailable(RuntimeError):
    """The server cannot be started here (binaries or the unprivileged account missing)."""


class PostgresServer:
    """A throw-away PostgreSQL cluster in a temporary folder, on 127.0.0.1:``port``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.root = Path(tempfile.mkdtemp(prefix="spira-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = 0
        self._started = False
        self._as_root = os.geteuid() == 0

    # -- running the server binaries ---------------------------------------------------------
    def _run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        cmd = [str(self.bin_dir / args[0]), *args[1:]]
        if self._as_root:
            # initdb and postgres refuse to run as root; runuser drops to the server account
            cmd = ["runuser", "-u", SERVER_USER, "--", *cmd]
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if out.returncode != 0:
            log = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(
                f"{' '.join(args[:2])} failed ({out.returncode}): {out.stderr.strip()}\n{log}"
            )
        return out

    def start(self) -> PostgresServer:
        """initdb, configure and start; returns self. Raises PostgresUnavailable or RuntimeError."""
        if self._as_root:
            try:
                account = pwd.getpwnam(SERVER_USER)
            except KeyError:
                raise PostgresUnavailable(
                    f"running as root and there is no {SERVER_USER!r} account to run the server as"
                ) from None
            if shutil.which("runuser") is None:
                raise PostgresUnavailable("running as root and `runuser` is not installed")
            os.chown(self.root, account.pw_uid, account.pw_gid)
        self._run(
            "initdb",
            "-D",
            str(self.data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--no-locale",
            "--no-sync",
        )
        settings = {
            "listen_addresses": "'127.0.0.1'",
            # the socket lives in our folder: /var/run/postgresql may be absent or someone else's
            "unix_socket_directories": f"'{self.root}'",
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
            "shared_buffers": "64MB",
        }
        # A port can be taken between choosing and binding it: try a few.
        for attempt in range(3):
            self.port = _free_port()
            conf = dict(settings, port=str(self.port))
            (self.data / "postgresql.auto.conf").write_text(
                "".join(f"{k} = {v}\n" for k, v in conf.items())
            )
            try:
                self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "start")
                break
            except RuntimeError:
                if attempt == 2:
                    raise
        self._started = True
        atexit.register(self.stop)  # also when the session dies before its teardown
        return self

    def stop(self) -> None:
        """Stop the server (fast shutdown) and delete its folder. Safe to call twice."""
        if self._started:
            self._started = False
            # a server already gone is fine: the folder is removed regardless
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop", timeout=60)
        shutil.rmtree(self.root, ignore_errors=True)

    # -- databases ----------------------------------------------------------------------------
    def url(self, database: str = "postgres") -> str:
        """SQLAlchemy URL (psycopg 3 driver) of ``database`` on this server."""
        return f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(
            host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True
        ) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """Create a fresh, empty database (from template0); returns its name."""
        name = f"test_{uuid.uuid4().hex[:12]}"
        self._admin(f"CREATE DATABASE \"{name}\" TEMPLATE template0 ENCODING 'UTF8'")
        return name

    def drop_database(self, name: str) -> None:
        """Drop ``name``, closing any connection a test left open."""
        self._admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _unavailable(reason: str) -> None:
    if os.environ.get(REQUIRE_ENV) == "1":
        pytest.fail(f"PostgreSQL is required ({REQUIRE_ENV}=1) but {reason}", pytrace=False)
    pytest.skip(f"PostgreSQL tests skipped: {reason} (run scripts/postgres.sh to install it)")


# -- pytest hooks ---------------------------------------------------------------------------------
def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "postgres: runs against a real PostgreSQL server")


def pytest_report_header(config: pytest.Config) -> str:
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        how = "fail" if os.environ.get(REQUIRE_ENV) == "1" else "are SKIPPED"
        return (
            f"postgresql: server binaries not found; PostgreSQL tests {how} "
            "(install with scripts/postgres.sh)"
        )
    return f"postgresql: {bin_dir} (a throw-away server on 127.0.0.1 per session)"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    # Tests parametrised over db_backend_url get the postgres marker on their postgresql case,
    # so `-m "not postgres"` runs the SQLite half alone.
    for item in items:
        callspec = getattr(item, "callspec", None)
        if callspec is not None and callspec.params.get("db_backend_url") == "postgresql":
            item.add_marker(pytest.mark.postgres)


# -- fixtures -------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A PostgreSQL server for the whole session (skips, or fails under SPIRA_REQUIRE_POSTGRES=1)."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        _unavailable("initdb/pg_ctl were not found on PATH or in /usr/lib/postgresql/*/bin")
    assert bin_dir is not None
    server = PostgresServer(bin_dir)
    try:
        server.start()
    except PostgresUnavailable as err:
        server.stop()
        _unavailable(str(err))
    except BaseException:
        server.stop()
        raise
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> Iterator[str]:
    """A fresh, empty database on the session's server; dropped after the test."""
    name = postgres_server.create_database()
    try:
        yield postgres_server.url(name)
    finally:
        from core.db import dispose_engines

        dispose_engines()  # the test's pooled connections would otherwise hold the database open
        postgres_server.drop_database(name)


@pytest.fixture(params=BACKENDS)
def db_backend_url(request: pytest.FixtureRequest) -> str | None:
    """``None`` for SQLite (the default file), or a fresh PostgreSQL database URL."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return None
