"""Alembic migrations: upgrade, downgrade and upgrade again on both backends; schema equals models."""

from __future__ import annotations

import pytest
from sqlalchemy import create_engine, inspect, pool


@pytest.fixture(params=["sqlite", "postgresql"])
def fresh_url(request, tmp_path) -> str:
    """An empty database of either backend."""
    if request.param == "postgresql":
        return str(request.getfixturevalue("postgres_url"))
    return f"sqlite:///{(tmp_path / 'migrations.db').as_posix()}"


def _metadata():
    # every module that declares tables on the shared Base (env.py's target_metadata)
    import core.retention  # noqa: F401  (RetainedAggregate)
    from core.models import Base

    return Base.metadata


def _schema_differences(url: str) -> list:
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        with engine.connect() as conn:
            return compare_metadata(MigrationContext.configure(conn), _metadata())
    finally:
        engine.dispose()


def _tables(url: str) -> set[str]:
    engine = create_engine(url, poolclass=pool.NullPool)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_downgrade_upgrade_is_clean_and_matches_the_models(fresh_url):
    from core.db import dispose_engines, downgrade, migrate

    expected = set(_metadata().tables)
    try:
        migrate(fresh_url)
        assert _tables(fresh_url) == expected | {"alembic_version"}
        assert _schema_differences(fresh_url) == []

        downgrade(fresh_url, "base")
        assert _tables(fresh_url) <= {"alembic_version"}  # every table of ours is gone

        migrate(fresh_url)
        assert _tables(fresh_url) == expected | {"alembic_version"}
        assert _schema_differences(fresh_url) == []
    finally:
        dispose_engines()


def test_schema_comparison_notices_a_missing_column(fresh_url):
    """The comparison above is not vacuous: a schema one column short is reported."""
    from sqlalchemy import text

    from core.db import dispose_engines, migrate

    try:
        migrate(fresh_url)
        engine = create_engine(fresh_url, poolclass=pool.NullPool)
        with engine.begin() as conn:
            conn.execute(text("ALTER TABLE audit_event DROP COLUMN detail"))
        engine.dispose()
        diffs = _schema_differences(fresh_url)
        assert any(d[0] == "add_column" and d[3].name == "detail" for d in diffs), diffs
    finally:
        dispose_engines()
