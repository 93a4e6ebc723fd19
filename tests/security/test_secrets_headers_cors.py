"""Secrets only from the environment, security headers on every answer, CORS for Label Studio only."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from pydantic import ValidationError

from core.config import DEV_SECRET


@pytest.fixture
def settings_env(spira_env, monkeypatch):
    """Change SPIRA_* variables, then rebuild settings (cleared again by ``spira_env``)."""
    from core.config import get_settings

    def apply(**values: str | None) -> None:
        for key, value in values.items():
            if value is None:
                monkeypatch.delenv(key, raising=False)
            else:
                monkeypatch.setenv(key, value)
        get_settings.cache_clear()

    return apply


@pytest.mark.parametrize("secret", [None, "", DEV_SECRET])
def test_production_refuses_to_start_with_a_default_secret(settings_env, secret):
    from api.main import create_app

    settings_env(SPIRA_ENV="production", SPIRA_SECRET_KEY=secret)
    with pytest.raises(ValidationError, match="SPIRA_SECRET_KEY"):
        create_app(start_worker=False)


def test_production_starts_with_a_secret_from_the_environment(settings_env):
    from api.main import create_app
    from core.config import get_settings

    secret = "k" * 48
    settings_env(SPIRA_ENV="production", SPIRA_SECRET_KEY=secret)
    app = create_app(start_worker=False)
    assert get_settings().secret_key == secret and app.title == "Spira"


def test_tokens_signed_with_another_secret_are_refused(settings_env):
    from api.main import create_app
    from core.security import create_token

    settings_env(SPIRA_SECRET_KEY="a" * 48)
    forged = create_token("1", purpose="access", minutes=5)
    settings_env(SPIRA_SECRET_KEY="b" * 48)
    with TestClient(create_app(start_worker=False)) as client:
        r = client.get("/api/units", headers={"Authorization": f"Bearer {forged}"})
    assert r.status_code == 401 and "not valid" in r.json()["detail"]


@pytest.mark.parametrize(
    "path, status",
    [("/health", 200), ("/", 200), ("/api/units", 401), ("/api/no-such-route", 404)],
)
def test_security_headers_on_every_answer(settings_env, path, status):
    from api.main import create_app

    settings_env()
    with TestClient(create_app(start_worker=False)) as client:
        r = client.get(path)
    assert r.status_code == status
    assert r.headers["X-Content-Type-Options"] == "nosniff"
    assert r.headers["X-Frame-Options"] == "DENY"
    assert r.headers["Referrer-Policy"] == "same-origin"
    assert "default-src 'self'" in r.headers["Content-Security-Policy"]


def _preflight(client: TestClient, origin: str):
    return client.options(
        "/api/units",
        headers={"Origin": origin, "Access-Control-Request-Method": "GET"},
    )


def test_cors_allows_only_the_configured_label_studio_origin(settings_env):
    from api.main import create_app

    settings_env(SPIRA_LABEL_STUDIO_URL="http://labelstudio.example:8080/")
    with TestClient(create_app(start_worker=False)) as client:
        ok = _preflight(client, "http://labelstudio.example:8080")
        assert ok.headers.get("access-control-allow-origin") == "http://labelstudio.example:8080"
        evil = _preflight(client, "http://evil.example")
        assert "access-control-allow-origin" not in evil.headers
        simple = client.get("/health", headers={"Origin": "http://evil.example"})
        assert "access-control-allow-origin" not in simple.headers
        # only reads are allowed cross-origin
        post = client.options(
            "/api/photos",
            headers={
                "Origin": "http://labelstudio.example:8080",
                "Access-Control-Request-Method": "POST",
            },
        )
        assert "POST" not in post.headers.get("access-control-allow-methods", "")


def test_no_cors_at_all_without_label_studio(settings_env):
    from api.main import create_app

    settings_env(SPIRA_LABEL_STUDIO_URL=None)
    with TestClient(create_app(start_worker=False)) as client:
        r = _preflight(client, "http://labelstudio.example:8080")
        assert "access-control-allow-origin" not in r.headers
