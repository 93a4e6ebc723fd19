"""Shared fixtures: every test runs against its own var folder (database file, storage, models)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest_plugins = ["tests.postgres"]

# OpenMP threads (scikit-learn's gradient boosting, PyTorch) wait for work by spinning; with a test
# server, PostgreSQL or Label Studio busy on the same 2 cores that turned a 0.2-s fit into 6 s and a
# 2-s one into 20 s. Waiting threads sleep instead (set before anything loads libgomp).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
# Tests never touch ./var, the network or a GPU unless they ask for it.
os.environ.setdefault("SPIRA_ENV", "test")
os.environ.setdefault("SPIRA_DEVICE", "cpu")
# Tests write through their own sessions and read through the API at once: every read checks
# whether the data changed (the 1-s reuse of that check has its own test in tests/profiles).
os.environ.setdefault("SPIRA_PROFILE_CHECK_SECONDS", "0")
os.environ.setdefault("SPIRA_PROFILE_REBUILD_SECONDS", "0")


@pytest.fixture(scope="session")
def onnx_cache(tmp_path_factory) -> Path:
    """One ONNX export of the backbone shared by the whole session (exporting takes seconds)."""
    return tmp_path_factory.mktemp("onnx")


@pytest.fixture
def spira_env(tmp_path, monkeypatch, shared_models, db_backend_url):
    """Settings pointing at a fresh var folder and database; runs once on SQLite and once on a
    real PostgreSQL (tests/postgres.py). The models folder is shared (trained once)."""
    from core.config import get_settings
    from core.db import dispose_engines

    monkeypatch.setenv("SPIRA_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("SPIRA_MODELS_DIR", str(shared_models))
    if db_backend_url:
        monkeypatch.setenv("SPIRA_DATABASE_URL", db_backend_url)
    else:
        monkeypatch.delenv("SPIRA_DATABASE_URL", raising=False)
    get_settings.cache_clear()
    yield get_settings()
    dispose_engines()
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def shared_models(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def trained_model(shared_models, tmp_path_factory):
    """A small synthetic stage model, trained once per session and promoted (files only)."""
    from core.config import get_settings
    from core.db import dispose_engines, migrate, session_factory
    from training.jobs import run_training

    var = tmp_path_factory.mktemp("train-var")
    mp = pytest.MonkeyPatch()
    mp.setenv("SPIRA_VAR_DIR", str(var))
    mp.setenv("SPIRA_MODELS_DIR", str(shared_models))
    get_settings.cache_clear()
    try:
        migrate()
        version = run_training(
            session_factory(), synthetic=True, n=150, seed=1, promote=True, log=lambda s: None
        )
    finally:
        dispose_engines()
        mp.undo()
        get_settings.cache_clear()
    return version
