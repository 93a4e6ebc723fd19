"""An API on a fresh database with a promoted model, two units and users of every role."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

PASSWORD = "correct-horse-battery"


@pytest.fixture
def api(spira_env, trained_model):
    from api.main import create_app
    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.users import upsert_user
    from training.registry import promote

    migrate()
    factory = session_factory()
    with factory() as session:
        seed_structure(session)
        for username, role, units in [
            ("edu", "educator", ["Olympia"]),
            ("boss", "principal", ["Olympia"]),
            ("other", "principal", ["Dalhem"]),
            ("res", "researcher", []),
            ("adm", "admin", []),
        ]:
            upsert_user(session, username=username, password=PASSWORD, role=role, unit_names=units)
        promote(trained_model, session=session)
        session.commit()
    app = create_app(start_worker=False)
    with TestClient(app) as client:
        client.factory = factory  # type: ignore[attr-defined]
        yield client


def token(client, username: str) -> dict[str, str]:
    r = client.post("/api/token", data={"username": username, "password": PASSWORD})
    assert r.status_code == 200, r.text
    return {"Authorization": f"Bearer {r.json()['access_token']}"}


def unit_and_group(client, headers, name: str = "Olympia") -> tuple[int, int, str]:
    units = client.get("/api/units", headers=headers).json()
    unit = next(u for u in units if u["name"] == name)
    group = unit["groups"][0]
    return unit["id"], group["id"], group["age_band"]
