"""Property-based fuzzing of the OpenAPI schema (schemathesis): no input gives a 5xx.

Every operation of the app's own schema gets up to :data:`MAX_EXAMPLES` generated requests with an
administrator's bearer token (the widest access, so the handlers are reached rather than stopped
at the door), against the real app and a real database: SQLite and PostgreSQL (the ``api``
fixture runs on both, tests/postgres.py). Any 5xx, or an exception the app did not turn into an
answer, fails the test. ``SPIRA_FUZZ_EXAMPLES`` sets the examples per operation (25 by default,
which keeps the test to a few minutes per backend).
"""

from __future__ import annotations

import os

import pytest

from tests.security.conftest import token

schemathesis = pytest.importorskip(
    "schemathesis",
    reason="schemathesis is not installed: add `schemathesis` to the dev dependencies to fuzz the API",
)

MAX_EXAMPLES = int(os.environ.get("SPIRA_FUZZ_EXAMPLES", "25"))


def test_fuzzing_every_operation_finds_no_server_error(api):
    from hypothesis import HealthCheck, given, settings

    headers = token(api, "adm")
    schema = schemathesis.openapi.from_asgi("/openapi.json", api.app)
    server_errors: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        operations += 1

        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            database=None,
            derandomize=True,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy())
        def exercise(case) -> None:
            try:
                response = case.call(headers=headers)
            except Exception as err:  # the test client re-raises what the app did not handle
                server_errors.append(
                    f"{case.method} {case.formatted_path} raised {type(err).__name__}: {err} "
                    f"(path={case.path_parameters}, query={case.query}, body={str(case.body)[:200]})"
                )
                return
            if response.status_code >= 500:
                server_errors.append(
                    f"{case.method} {case.formatted_path} -> {response.status_code}: "
                    f"{response.text[:200]} (query={case.query}, body={str(case.body)[:200]})"
                )

        exercise()
    assert operations >= 20, "the schema lost operations"
    assert not server_errors, f"{len(server_errors)} server error(s):\n" + "\n".join(
        sorted(set(server_errors))[:20]
    )
