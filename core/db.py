"""Database engine, sessions and migrations.

SQLite file under ``./var`` by default, any SQLAlchemy URL through ``SPIRA_DATABASE_URL`` (PostgreSQL in
production). Only portable SQL is used. The schema is created and upgraded by Alembic (``migrate``),
never by ``create_all``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from core.config import get_settings

_MIGRATIONS = Path(__file__).with_name("migrations")
_engines: dict[str, Engine] = {}
_lock = threading.Lock()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the worker write while the API reads; FULL sync makes an acknowledged upload durable.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


def get_engine(url: str | None = None) -> Engine:
    """The process-wide engine for ``url`` (default from settings)."""
    url = url or get_settings().db_url
    with _lock:
        if url not in _engines:
            # SQLite: a connection kept for each of the server thread pool's 40 threads, so a
            # burst of requests waits for the CPU, not for a connection (or for a new one's
            # pragmas). PostgreSQL: fewer, as its server caps connections (100 by default).
            sqlite = url.startswith("sqlite")
            _engines[url] = new_engine(
                url, pool_size=40 if sqlite else 10, max_overflow=20 if sqlite else 20
            )
        return _engines[url]


def new_engine(url: str, *, pool_size: int, max_overflow: int) -> Engine:
    """An engine of its own for ``url`` (SQLite with Spira's pragmas); callers that must never
    wait for the shared pool (the audit writer) use one with a single connection."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        if path and path != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_size=pool_size,
            max_overflow=max_overflow,
        )
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=pool_size, max_overflow=max_overflow)


def dispose_engines() -> None:
    """Close every pooled connection (tests switching databases call this)."""
    with _lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def session_factory(url: str | None = None) -> sessionmaker[Session]:
    return sessionmaker(bind=get_engine(url), expire_on_commit=False)


@contextmanager
def session_scope(url: str | None = None) -> Iterator[Session]:
    """A session that commits on success and rolls back on any error."""
    session = session_factory(url)()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()


def alembic_config(url: str | None = None):
    from alembic.config import Config  # lazy: Alembic is needed only to migrate

    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    cfg.set_main_option("sqlalchemy.url", (url or get_settings().db_url).replace("%", "%%"))
    return cfg


def migrate(url: str | None = None, revision: str = "head") -> None:
    """Upgrade the database at ``url`` to ``revision`` (creating it if needed)."""
    from alembic import command  # lazy: Alembic is needed only to migrate

    get_engine(url)  # creates the folder of a SQLite file
    command.upgrade(alembic_config(url), revision)


def downgrade(url: str | None = None, revision: str = "base") -> None:
    from alembic import command  # lazy: Alembic is needed only to migrate

    command.downgrade(alembic_config(url), revision)
