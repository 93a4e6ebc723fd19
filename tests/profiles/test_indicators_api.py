"""Quality indicators through the API and the CLI on a real database (issue 19): the context import
route takes an indicator dictionary, refuses undeclared columns and bad dictionaries changing
nothing, the profile shows the indicators against the municipality mean, the CLI remembers the
dictionary and the export carries the indicator columns."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select
from typer.testing import CliRunner

from core.models import AuditEvent, QualityIndicator, UnitContext
from tests.api.conftest import PASSWORD, token, unit_and_group
from tests.api.test_assessment_and_profiles import UNITS, _ratings_csv

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
CONTEXT = (EXAMPLES / "context.example.csv").read_bytes()
DICTIONARY = (EXAMPLES / "indicators.example.csv").read_bytes()


@pytest.fixture
def api(spira_env):
    """The API on a fresh database with the pilot units and users, without a stage model
    (indicators need none; the shared ``api`` fixture trains one, minutes on a loaded machine)."""
    from api.main import create_app
    from cli.demo import seed_structure
    from core.db import migrate, session_factory
    from core.users import upsert_user

    migrate()
    factory = session_factory()
    with factory() as session:
        seed_structure(session)
        for username, role, units in [
            ("boss", "principal", ["Olympia"]),
            ("res", "researcher", []),
        ]:
            upsert_user(session, username=username, password=PASSWORD, role=role, unit_names=units)
        session.commit()
    with TestClient(create_app(start_worker=False)) as client:
        client.factory = factory  # type: ignore[attr-defined]
        yield client


def _out(result) -> str:
    return " ".join(result.output.split())  # Rich wraps long lines


def _count(client, model) -> int:
    with client.factory() as s:
        return s.scalar(select(func.count()).select_from(model))


def test_context_import_with_indicators_profile_cli_and_export(api, tmp_path):
    from cli.main import app

    res = token(api, "res")
    url = "/api/context/import"
    r = api.post(url, headers=res, files={"file": ("c.csv", CONTEXT, "text/csv")})
    assert r.status_code == 422 and "'parent_satisfaction'" in r.json()["detail"]
    bad = DICTIONARY.replace(b"lower_better", b"worse_is_better")
    r = api.post(
        url,
        headers=res,
        files={"file": ("c.csv", CONTEXT, "text/csv"), "indicators": ("d.csv", bad, "text/csv")},
    )
    assert r.status_code == 422
    assert "indicator dictionary" in r.json()["detail"] and "row 5" in r.json()["detail"]
    assert _count(api, UnitContext) == 0 and _count(api, QualityIndicator) == 0

    files = {
        "file": ("c.csv", CONTEXT, "text/csv"),
        "indicators": ("d.csv", DICTIONARY, "text/csv"),
    }
    r = api.post(url, headers=res, files=files)
    assert r.status_code == 200 and r.json()["imported"] == 8
    assert _count(api, QualityIndicator) == 4
    with api.factory() as s:
        event = s.scalars(select(AuditEvent).where(AuditEvent.action == "import")).all()[-1]
        assert "parent_satisfaction" in str(event.detail)

    boss = token(api, "boss")
    unit_id, _, _ = unit_and_group(api, boss)
    profile = api.get(f"/api/units/{unit_id}/profile", headers=boss).json()["profile"]
    values = {i["key"]: i for i in profile["indicators"]}
    satisfaction = values["parent_satisfaction"]
    file = pd.read_csv(EXAMPLES / "context.example.csv")
    own = file[file["unit"] == "Olympia"].iloc[0]
    assert satisfaction["value"] == own["parent_satisfaction"]
    assert satisfaction["label_sv"] == "Nöjda vårdnadshavare (enkät)"
    assert satisfaction["measure_unit"] == "percent 0-100"
    assert satisfaction["municipality_n_units"] == 8
    assert abs(satisfaction["municipality_mean"] - file["parent_satisfaction"].mean()) < 1e-9
    assert values["staff_sick_leave"]["direction"] == "lower_better"

    runner = CliRunner()
    listed = runner.invoke(app, ["profiles", "indicators", "--json"])
    assert listed.exit_code == 0, listed.output
    declared = [json.loads(line) for line in listed.stdout.splitlines()]
    assert [d["key"] for d in declared] == sorted(values)
    assert {d["key"]: (d["low"], d["high"]) for d in declared}["parent_satisfaction"] == (0, 100)
    path = tmp_path / "context.csv"
    changed = file.copy()
    changed.loc[changed["unit"] == "Olympia", "parent_satisfaction"] = 99
    changed.to_csv(path, index=False)
    # declared once, remembered: the same columns import without the dictionary
    result = runner.invoke(app, ["profiles", "import-context", str(path)])
    assert result.exit_code == 0, result.output
    assert "with indicator(s) staff_competence_development" in _out(result)
    # the replaced unit x term reaches the (cached) profile
    profile = api.get(f"/api/units/{unit_id}/profile", headers=boss).json()["profile"]
    satisfaction = next(i for i in profile["indicators"] if i["key"] == "parent_satisfaction")
    assert satisfaction["value"] == 99
    assert abs(satisfaction["municipality_mean"] - changed["parent_satisfaction"].mean()) < 1e-9
    frame = pd.read_csv(path)
    frame["outdoor_hours"] = 10
    frame.to_csv(path, index=False)
    result = runner.invoke(
        app,
        [
            "profiles",
            "import-context",
            str(path),
            "--indicators",
            str(EXAMPLES / "indicators.example.csv"),
        ],
    )
    assert result.exit_code == 1 and "'outdoor_hours'" in _out(result)

    # with outcomes to model (ratings and a second term of context), `spira profiles build`
    # reports per outcome which indicators its contextual model tried and used
    vt = pd.read_csv(EXAMPLES / "context.example.csv").assign(term="2026-VT")
    vt["children_per_fte"] = (vt["children_per_fte"] + 0.3).round(2)
    vt.to_csv(path, index=False)
    assert runner.invoke(app, ["profiles", "import-context", str(path)]).exit_code == 0
    r = api.post(
        "/api/ratings/import",
        headers=res,
        files={"file": ("r.csv", _ratings_csv(UNITS, n_sheets=480), "text/csv")},
    )
    assert r.status_code == 200, r.text
    result = runner.invoke(app, ["profiles", "build"])
    assert result.exit_code == 0, result.output
    lines = [line for line in _out(result).split("contextual model for ")[1:]]
    assert lines, result.output
    for line in lines:
        assert "quality indicators used:" in line
        for key in ("staff_competence_development", "parent_satisfaction", "staff_sick_leave"):
            assert f"{key}:" in line  # each tried, with the reason it was or was not used

    out = tmp_path / "export"
    result = runner.invoke(app, ["profiles", "export", "--format", "csv", "--out", str(out)])
    assert result.exit_code == 0, result.output
    table = pd.read_csv(tmp_path / "export.csv")
    olympia = table[table["unit"] == "Olympia"].iloc[0]
    assert olympia["indicator_parent_satisfaction"] == own["parent_satisfaction"]
    assert olympia["indicator_parent_satisfaction_municipality_n_units"] == 8
    assert {"measure_count", "followup_observed_change", "model_indicators"} <= set(table.columns)
