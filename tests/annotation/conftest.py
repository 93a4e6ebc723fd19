"""Fixtures for annotation tests, among them a real Label Studio server.

Other test folders can reuse the server with ``pytest_plugins = ["tests.annotation.conftest"]``
or by calling :func:`annotation.devserver.running_label_studio` themselves.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from annotation.devserver import DEFAULT_LABEL_STUDIO_BIN, LabelStudioServer, running_label_studio


@pytest.fixture(scope="session")
def label_studio_server() -> Iterator[LabelStudioServer]:
    """A Label Studio on a free localhost port with a throwaway data dir, for the whole session.

    Skips when ``.venv-ls`` is missing (CI installs it with scripts/label_studio.sh, so CI
    never skips).
    """
    if not DEFAULT_LABEL_STUDIO_BIN.exists():
        if os.environ.get("SPIRA_REQUIRE_LABEL_STUDIO") == "1":
            pytest.fail(f"SPIRA_REQUIRE_LABEL_STUDIO=1 but {DEFAULT_LABEL_STUDIO_BIN} is missing")
        pytest.skip(
            f"Label Studio is not installed at {DEFAULT_LABEL_STUDIO_BIN}; "
            "run scripts/label_studio.sh"
        )
    with running_label_studio(startup_timeout=150.0) as server:
        yield server


@pytest.fixture(scope="session")
def label_studio(label_studio_server: LabelStudioServer) -> tuple[str, str]:
    """(base_url, admin API token) of the session's Label Studio server."""
    return label_studio_server.base_url, label_studio_server.token
