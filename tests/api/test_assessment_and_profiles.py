"""Assessment sheets and imports, organisational data, and the triangulated profile through the API."""

from __future__ import annotations

import io

import pandas as pd
from sqlalchemy import func, select

from core.models import Rating, ResponseSheet, UnitContext
from tests.api.conftest import token, unit_and_group


def _ratings_csv(units: list[str], *, seed: int = 0, n_sheets: int = 800) -> bytes:
    from assessment.cases import load_case_library
    from assessment.synthetic import simulate_ratings

    ratings, _ = simulate_ratings(
        n_units=len(units),
        n_sheets=n_sheets,
        n_raters=6,
        library=load_case_library(),
        terms=("2026-VT", "2026-HT"),
        seed=seed,
    )
    sims = sorted(ratings["unit"].unique())
    ratings["unit"] = ratings["unit"].map({s: units[i] for i, s in enumerate(sims)})
    ratings["group"] = "Lingonet"
    ratings["age_band"] = "4-5"
    ratings["date"] = ratings["term"].map({"2026-VT": "2026-03-10", "2026-HT": "2026-10-06"})
    cols = ["sheet_id", "unit", "group", "age_band", "rater", "case", "item", "level", "date"]
    return ratings[cols].to_csv(index=False).encode()


def _context_csv(units: list[str], terms=("2026-VT", "2026-HT")) -> bytes:
    rows = []
    for i, unit in enumerate(units):
        for term in terms:
            rows.append(
                {
                    "unit": unit,
                    "term": term,
                    "children_enrolled": 80 + i,
                    "n_groups": 5,
                    "mean_group_size": (80 + i) / 5,
                    "children_per_fte": 4.8 + 0.1 * i,
                    "share_trained_staff": 0.35 + 0.02 * i,
                    "staff_turnover": 0.1,
                    "socioeconomic_index": 0.4 + 0.03 * i,
                    "share_multilingual": 0.2,
                }
            )
    return pd.DataFrame(rows).to_csv(index=False).encode()


def _count(api, model) -> int:
    with api.factory() as s:
        return s.scalar(select(func.count()).select_from(model))


UNITS = [
    "Olympia",
    "Maria Park",
    "Västra Ramlösa",
    "Adolfsberg",
    "Dalhem",
    "Laröd",
    "Öknen",
    "Wieselgren",
]


def test_cases_and_recording_a_sheet(api):
    edu = token(api, "edu")
    cases = api.get("/api/cases", headers=edu).json()
    assert len(cases) >= 10 and {c["area"] for c in cases} >= {"mathematics", "social_emotional"}
    case = cases[0]
    item = case["rubric"][0]
    unit_id, group_id, band = unit_and_group(api, edu)
    body = {
        "case_id": case["id"],
        "unit_id": unit_id,
        "group_id": group_id,
        "age_band": band,
        "rated_on": "2026-10-05",
        "levels": {item["id"]: 1},
    }
    r = api.post("/api/sheets", headers=edu, json=body)
    assert r.status_code == 201, r.text
    assert r.json()["term"] == "2026-HT" and len(r.json()["sheet_id"]) == 32
    bad = api.post("/api/sheets", headers=edu, json=body | {"levels": {item["id"]: 99}})
    assert bad.status_code == 422 and "outside" in bad.json()["detail"]
    bad = api.post("/api/sheets", headers=edu, json=body | {"levels": {"no-such-item": 1}})
    assert bad.status_code == 422 and "no rubric item" in bad.json()["detail"]
    assert _count(api, ResponseSheet) == 1 and _count(api, Rating) == 1
    other = token(api, "boss")  # principals read, they don't record
    assert api.post("/api/sheets", headers=other, json=body).status_code == 403


def test_ratings_import_is_all_or_nothing(api):
    res = token(api, "res")
    good = _ratings_csv(UNITS)
    broken = good.replace(b"Dalhem", b"Atlantis", 1)
    r = api.post("/api/ratings/import", headers=res, files={"file": ("r.csv", broken, "text/csv")})
    assert r.status_code == 422 and "Atlantis" in r.json()["detail"] and "row" in r.json()["detail"]
    assert _count(api, ResponseSheet) == 0
    r = api.post("/api/ratings/import", headers=res, files={"file": ("r.csv", good, "text/csv")})
    assert r.status_code == 200 and r.json()["imported"] == 800
    again = api.post(
        "/api/ratings/import", headers=res, files={"file": ("r.csv", good, "text/csv")}
    )
    assert again.status_code == 422 and "imported before" in again.json()["detail"]
    assert _count(api, ResponseSheet) == 800
    edu = token(api, "edu")
    assert (
        api.post(
            "/api/ratings/import", headers=edu, files={"file": ("r.csv", good, "text/csv")}
        ).status_code
        == 403
    )


def test_profile_triangulates_assessment_and_context(api):
    res = token(api, "res")
    assert (
        api.post(
            "/api/ratings/import",
            headers=res,
            files={"file": ("r.csv", _ratings_csv(UNITS), "text/csv")},
        ).status_code
        == 200
    )
    bad = _context_csv(UNITS).replace(b"4.8", b"-4.8", 1)
    r = api.post("/api/context/import", headers=res, files={"file": ("c.csv", bad, "text/csv")})
    assert r.status_code == 422 and "children_per_fte" in r.json()["detail"]
    assert _count(api, UnitContext) == 0
    r = api.post(
        "/api/context/import",
        headers=res,
        files={"file": ("c.csv", _context_csv(UNITS), "text/csv")},
    )
    assert r.status_code == 200 and r.json()["imported"] == 16

    boss = token(api, "boss")
    unit_id, _, _ = unit_and_group(api, boss)
    prof = api.get(f"/api/units/{unit_id}/profile", headers=boss).json()
    assert prof["term"] == "2026-HT"
    p = prof["profile"]
    assert p["unit"] == "Olympia"
    shown = [a for a in p["ability"] if not a["suppressed"]]
    assert shown and all(a["se"] > 0 and a["n_sheets"] >= 5 for a in shown)
    ctx = {c["column"]: c for c in p["context"]}
    assert (
        ctx["children_per_fte"]["value"] == 4.8 and ctx["children_per_fte"]["national"] is not None
    )
    assert any(e["expected"] is not None for e in p["expected"])
    assert "association" in p["note_en"].lower() or any(
        "association" in e["note_en"].lower() for e in p["expected"]
    )
    # a principal sees their own unit's profile only; a researcher all
    assert [x["unit"] for x in api.get("/api/profiles", headers=boss).json()] == ["Olympia"]
    assert len(api.get("/api/profiles", headers=res).json()) == 8
    # what-if: an association with an interval
    r = api.post(
        f"/api/units/{unit_id}/what-if", headers=boss, json={"changes": {"children_per_fte": -0.5}}
    )
    assert r.status_code == 200, r.text
    for res_ in r.json()["results"]:
        assert res_["change_lo"] <= res_["change"] <= res_["change_hi"]
    assert (
        api.post(
            f"/api/units/{unit_id}/what-if", headers=boss, json={"changes": {"salary": 1}}
        ).status_code
        == 422
    )


def test_export_cli_writes_every_format(api, spira_env, tmp_path):
    from typer.testing import CliRunner

    from cli.main import app

    res = token(api, "res")
    api.post(
        "/api/context/import",
        headers=res,
        files={"file": ("c.csv", _context_csv(UNITS), "text/csv")},
    )
    api.post(
        "/api/ratings/import",
        headers=res,
        files={"file": ("r.csv", _ratings_csv(UNITS), "text/csv")},
    )
    runner = CliRunner()
    for fmt in ("csv", "xlsx", "parquet"):
        out = tmp_path / "export"
        result = runner.invoke(app, ["profiles", "export", "--format", fmt, "--out", str(out)])
        assert result.exit_code == 0, result.output
        path = tmp_path / f"export.{fmt}"
        table = {"csv": pd.read_csv, "xlsx": pd.read_excel, "parquet": pd.read_parquet}[fmt](path)
        assert set(table["unit"]) == set(UNITS)
        assert {"outcome", "term"} <= set(table.columns)


def test_research_routes_and_export(api):
    res, boss, edu = token(api, "res"), token(api, "boss"), token(api, "edu")
    assert api.get("/api/assessment/fit", headers=res).status_code == 404  # no ratings yet
    assert api.get("/api/annotations/agreement", headers=res).status_code == 404  # no labels yet
    api.post(
        "/api/ratings/import",
        headers=res,
        files={"file": ("r.csv", _ratings_csv(UNITS), "text/csv")},
    )
    fit = api.get("/api/assessment/fit", headers=res).json()
    assert fit["converged"] and len(fit["raters"]) == 6 and all(i["n"] > 0 for i in fit["items"])
    models = api.get("/api/models", headers=res).json()
    assert sum(m["promoted"] for m in models) == 1 and models[0]["metrics"]["n"] > 0
    for route in ("/api/models", "/api/assessment/fit", "/api/annotations/agreement"):
        assert api.get(route, headers=edu).status_code == 403
    unit_id, _, _ = unit_and_group(api, boss)
    r = api.get(f"/api/profiles/export?format=csv&unit_id={unit_id}", headers=boss)
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/csv")
    table = pd.read_csv(io.BytesIO(r.content))
    assert set(table["unit"]) == {"Olympia"}
    dalhem = next(u for u in api.get("/api/units", headers=res).json() if u["name"] == "Dalhem")
    assert api.get(f"/api/profiles/export?unit_id={dalhem['id']}", headers=boss).status_code == 404
