"""The measures' term summary, the areas with their suggestions, and the municipality's network
view (issue 19): who may see them, what they list, and the areas units share."""

from __future__ import annotations

from sqlalchemy import select

from tests.api.conftest import api, token  # noqa: F401


def _measure(title: str, area: str, start: str) -> dict:
    return {"title": title, "area": area, "start_term": start, "decided_by": "Rektor"}


def test_areas_summary_and_network_list_measures_and_common_areas(api):  # noqa: F811
    from core.models import AuditEvent, Unit

    with api.factory() as s:
        ids = {u.name: u.id for u in s.scalars(select(Unit))}
    adm, boss, res = token(api, "adm"), token(api, "boss"), token(api, "res")

    # every area a measure may address, each with a suggestion taken from its help text
    areas = api.get("/api/measures/areas", headers=boss).json()
    assert [a["area"] for a in areas][:2] == ["progression", "language_communication"]
    math = next(a for a in areas if a["area"] == "mathematics")
    assert math["label_sv"] == "Matematik"
    assert "antal, form, mönster" in math["suggestions"][0]["text_sv"]
    assert math["suggestions"][0]["title_en"]

    for unit, body in [
        ("Olympia", _measure("Matematik i leken", "mathematics", "2025-HT")),
        ("Olympia", _measure("Läsfokus", "language_communication", "2026-VT")),
        ("Olympia", _measure("Nästa termin", "progression", "2026-HT")),
        ("Dalhem", _measure("Räkna ute", "mathematics", "2026-VT")),
    ]:
        r = api.post(f"/api/units/{ids[unit]}/measures", headers=adm, json=body)
        assert r.status_code == 201, r.text

    # the term summary: the measures running in the term, the one starting now marked
    r = api.get(f"/api/units/{ids['Olympia']}/measures/summary?term=2026-VT", headers=boss)
    assert r.status_code == 200, r.text
    summary = r.json()
    rows = {m["title"]: m for m in summary["measures"]}
    assert set(rows) == {"Matematik i leken", "Läsfokus"}  # 2026-HT has not started
    assert rows["Läsfokus"]["status"] == "starts"
    # no profile data here: nothing to compare, and the answer says so rather than guessing
    assert rows["Matematik i leken"]["status"] == "no_comparison"
    assert rows["Matematik i leken"]["follow_up"] is None
    assert "inte att åtgärden orsakade det" in summary["note_sv"]
    # without ?term= the latest term with a profile; with none yet (here), a measure's start term
    assert (
        api.get(f"/api/units/{ids['Olympia']}/measures/summary", headers=boss).json()["term"]
        == "2026-HT"
    )
    bad = api.get(f"/api/units/{ids['Olympia']}/measures/summary?term=2026-XX", headers=boss)
    assert bad.status_code == 422 and "term" in bad.json()["detail"]
    assert api.get(f"/api/units/{ids['Dalhem']}/measures/summary", headers=boss).status_code == 404

    # the network view: researchers and admins only
    assert api.get("/api/network", headers=boss).status_code == 403
    r = api.get("/api/network?term=2026-VT", headers=res)
    assert r.status_code == 200, r.text
    net = r.json()
    assert net["term"] == "2026-VT" and net["terms"] == ["2025-HT", "2026-VT", "2026-HT"]
    names = [u["unit"] for u in net["units"]]
    assert names == sorted(names) and len(names) == 8  # every unit, alphabetically
    olympia = next(u for u in net["units"] if u["unit"] == "Olympia")
    assert [m["title"] for m in olympia["measures"]] == ["Matematik i leken", "Läsfokus"]
    assert olympia["has_profile"] is False and olympia["development_areas"] == []
    # mathematics is worked on in two units: a common area; no other area is shared
    (common,) = net["common_areas"]
    assert common["area"] == "mathematics" and common["units"] == ["Dalhem", "Olympia"]
    assert common["n_units"] == 2 and common["n_measures"] == 2
    assert "rangordnar inte" in net["note_sv"]
    assert api.get("/api/network?term=bad", headers=res).status_code == 422
    with api.factory() as s:
        assert s.scalar(
            select(AuditEvent.id).where(
                AuditEvent.object_type == "network", AuditEvent.username == "res"
            )
        )
