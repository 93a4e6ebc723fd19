"""Database tests: make sure the PostgreSQL harness is loaded even before the top-level conftest
lists it in ``pytest_plugins`` (registering it twice would start two servers)."""

from __future__ import annotations

import pytest


def pytest_configure(config: pytest.Config) -> None:
    if not config.pluginmanager.has_plugin("tests.postgres"):
        config.pluginmanager.import_plugin("tests.postgres")
