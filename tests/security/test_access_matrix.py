"""Who may do what: every route of the app x role x own/other unit, with the expected status.

The routes are collected from ``app.routes`` so that a new route without a row in :data:`MATRIX`
fails :func:`test_every_route_has_a_matrix_row`. "own" is Olympia (the educator's and principal's
unit), "other" is Dalhem. Where an allowed caller would otherwise succeed only with data the test
database lacks, the request is built so that an allowed caller reaches validation (422) while a
refused one is stopped before it (401/403/404): the difference is what the matrix checks.
"""

from __future__ import annotations

import itertools
from datetime import date

import pytest

from tests.security.conftest import PASSWORD, distinct_jpeg, token

ROLES = ("educator", "principal", "researcher", "admin", "none")
USERNAMES = {"educator": "edu", "principal": "boss", "researcher": "res", "admin": "adm"}

PUBLIC = dict.fromkeys(ROLES, (200, 200))
SIGNED_IN = {**dict.fromkeys(ROLES, (200, 200)), "none": (401, 401)}
READ_OWN = {
    "educator": (200, 404),
    "principal": (200, 404),
    "researcher": (200, 200),
    "admin": (200, 200),
    "none": (401, 401),
}
RESEARCH = {
    "educator": (403, 403),
    "principal": (403, 403),
    "researcher": (200, 200),
    "admin": (200, 200),
    "none": (401, 401),
}
ADMIN_ONLY = {**dict.fromkeys(ROLES, (403, 403)), "admin": (200, 200), "none": (401, 401)}
WRITE_OWN = {
    "educator": (201, 403),
    "principal": (403, 403),
    "researcher": (403, 403),
    "admin": (201, 201),
    "none": (401, 401),
}
MEASURE_WRITE = {
    "educator": (403, 403),
    "principal": (200, 404),
    "researcher": (403, 403),
    "admin": (200, 200),
    "none": (401, 401),
}

#: (method, path) -> role -> (status on own unit, status on the other unit)
MATRIX: dict[tuple[str, str], dict[str, tuple[int, int]]] = {
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/assets/{name}"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/upload"): PUBLIC,
    ("GET", "/assess"): PUBLIC,
    # page shells hold no data: the API calls they make are checked in their own rows
    ("GET", "/units/{unit_id}"): PUBLIC,
    ("GET", "/research"): PUBLIC,
    ("GET", "/network"): PUBLIC,
    ("GET", "/static"): PUBLIC,
    ("GET", "/health"): PUBLIC,
    # sign-in: a role signs in with its password, "none" with a wrong one
    ("POST", "/api/token"): {**PUBLIC, "none": (401, 401)},
    ("POST", "/session/login"): {**PUBLIC, "none": (401, 401)},
    ("POST", "/session/logout"): PUBLIC,
    ("GET", "/session/me"): SIGNED_IN,
    ("GET", "/api/me"): SIGNED_IN,
    ("GET", "/api/units"): SIGNED_IN,
    ("GET", "/api/profiles"): SIGNED_IN,
    ("GET", "/api/cases"): SIGNED_IN,
    ("POST", "/api/photos"): WRITE_OWN,
    ("GET", "/api/photos/{photo_id}"): READ_OWN,
    ("DELETE", "/api/photos/{photo_id}"): {
        "educator": (204, 404),
        "principal": (403, 404),
        "researcher": (403, 403),
        "admin": (204, 204),
        "none": (401, 401),
    },
    ("GET", "/api/units/{unit_id}/profile"): READ_OWN,
    # an unknown context column: allowed callers get 422, others never learn the unit exists
    ("POST", "/api/units/{unit_id}/what-if"): {
        "educator": (422, 404),
        "principal": (422, 404),
        "researcher": (422, 422),
        "admin": (422, 422),
        "none": (401, 401),
    },
    ("POST", "/api/sheets"): WRITE_OWN,
    # the count of sheets per case and group: only those who record for the group's unit
    ("GET", "/api/sheets/count"): {
        "educator": (200, 404),
        "principal": (404, 404),
        "researcher": (404, 404),
        "admin": (200, 200),
        "none": (401, 401),
    },
    # undo: a sheet recorded by the admin a moment ago; only its creator may take it back
    ("DELETE", "/api/sheets/{sheet_id}"): {
        **dict.fromkeys(ROLES, (404, 404)),
        "admin": (204, 204),
        "none": (401, 401),
    },
    ("GET", "/api/calibration"): SIGNED_IN,
    ("GET", "/api/assessment/recorded"): RESEARCH,
    # calibration responses belong to no unit: educators (and admins) rate each once
    ("POST", "/api/calibration/ratings"): {
        **dict.fromkeys(ROLES, (403, 403)),
        "educator": (201, 201),
        "admin": (201, 201),
        "none": (401, 401),
    },
    # a file without the required columns: allowed callers get 422
    ("POST", "/api/ratings/import"): {**RESEARCH, "researcher": (422, 422), "admin": (422, 422)},
    ("POST", "/api/context/import"): {**RESEARCH, "researcher": (422, 422), "admin": (422, 422)},
    # a signed link is its own credential: valid for anyone holding it
    ("GET", "/api/images/{photo_id}/{variant}"): PUBLIC,
    # Label Studio's webhook needs the shared secret, which no role has
    ("POST", "/api/annotations/webhook"): dict.fromkeys(ROLES, (401, 401)),
    # no labels stored: allowed callers learn that (404), others are refused first (403)
    ("GET", "/api/annotations/agreement"): {
        **RESEARCH,
        "researcher": (404, 404),
        "admin": (404, 404),
    },
    ("GET", "/api/models"): RESEARCH,
    # no ratings stored: allowed callers get 404 "no ratings stored yet"
    ("GET", "/api/assessment/fit"): {**RESEARCH, "researcher": (404, 404), "admin": (404, 404)},
    # asked with ?unit_id= of the own or the other unit
    ("GET", "/api/profiles/export"): READ_OWN,
    ("GET", "/api/profiles/skipped"): RESEARCH,
    ("GET", "/api/audit"): ADMIN_ONLY,
    ("GET", "/api/units/{unit_id}/export"): ADMIN_ONLY,
    # measures (issue 19): read like the profile; written by the unit's principal or an admin
    ("GET", "/api/units/{unit_id}/measures"): READ_OWN,
    ("GET", "/api/units/{unit_id}/measures/summary"): READ_OWN,
    ("GET", "/api/measures/areas"): SIGNED_IN,
    # the municipality's network view: every unit's development areas and measures
    ("GET", "/api/network"): RESEARCH,
    ("POST", "/api/units/{unit_id}/measures"): {
        **MEASURE_WRITE,
        "principal": (201, 404),
        "admin": (201, 201),
    },
    ("PATCH", "/api/units/{unit_id}/measures/{measure_id}"): MEASURE_WRITE,
    ("DELETE", "/api/units/{unit_id}/measures/{measure_id}"): {
        **MEASURE_WRITE,
        "principal": (204, 404),
        "admin": (204, 204),
    },
}


def app_routes(app) -> set[tuple[str, str]]:
    """Every (method, path) the app answers, HEAD left out; mounts count as GET of their path.

    Walks included routers too (FastAPI >= 0.16x keeps them as lazily expanded branches).
    """

    def walk(routes):
        for route in routes:
            if hasattr(route, "effective_candidates"):
                yield from walk(route.effective_candidates())
            else:
                yield route

    found: set[tuple[str, str]] = set()
    for route in walk(app.routes):
        path = getattr(route, "path", "") or getattr(
            getattr(route, "original_route", None), "path", ""
        )
        methods = set(getattr(route, "methods", None) or ()) - {"HEAD"} or {"GET"}
        found.update((m, path) for m in methods)
    return found


def test_every_route_has_a_matrix_row(api):
    routes = app_routes(api.app)
    missing = sorted(routes - set(MATRIX))
    assert not missing, f"routes without an authorisation-matrix row: {missing}"
    stale = sorted(set(MATRIX) - routes)
    assert not stale, f"matrix rows for routes that no longer exist: {stale}"
    for row in MATRIX.values():
        assert set(row) == set(ROLES)


class Context:
    """Ids, headers and fresh objects for the matrix requests."""

    def __init__(self, client):
        from sqlalchemy import select

        from assessment.cases import load_case_library
        from core.models import Group, Unit

        self.client = client
        self.headers = {role: token(client, u) for role, u in USERNAMES.items()}
        self.headers["none"] = {}
        self.seed = itertools.count(1000)
        with client.factory() as s:
            self.units = {
                scope: s.scalar(select(Unit).where(Unit.name == name))
                for scope, name in (("own", "Olympia"), ("other", "Dalhem"))
            }
            self.groups = {
                scope: list(s.scalars(select(Group).where(Group.unit_id == unit.id)))
                for scope, unit in self.units.items()
            }
        library = sorted(load_case_library(), key=lambda c: c.id)
        bands = {g.age_band for g in self.groups["own"]} & {
            g.age_band for g in self.groups["other"]
        }
        self.case = next(c for c in library if set(c.age_bands) & bands)
        self.band = sorted(set(self.case.age_bands) & bands)[0]

    def group(self, scope: str):
        return next(g for g in self.groups[scope] if g.age_band == self.band)

    def new_measure(self, scope: str) -> int:
        """Store a fresh measure in the unit through the domain module; returns its id."""
        from profiles.measures import create_measure

        with self.client.factory() as s:
            measure = create_measure(s, self.units[scope].id, MEASURE_BODY, None)
            s.commit()
            return measure.id

    def new_photo(self, scope: str) -> str:
        """Store a fresh photo in the unit through the real accept path; returns its id."""
        from vision.photos import accept_photo

        with self.client.factory() as s:
            from core.models import Group, Unit

            unit = s.get(Unit, self.units[scope].id)
            group = s.get(Group, self.group(scope).id)
            result = accept_photo(
                session=s,
                store=self.client.app.state.store,
                data=distinct_jpeg(next(self.seed)),
                unit=unit,
                group=group,
                activity="teckning",
                age_band=self.band,
            )
            return result.photo.id


MEASURE_BODY = {
    "title": "Matematik i leken",
    "area": "mathematics",
    "start_term": "2026-HT",
    "decided_by": "Rektor",
}


def _request(ctx: Context, method: str, path: str, role: str, scope: str):
    client, headers = ctx.client, ctx.headers[role]
    unit_id, group = ctx.units[scope].id, ctx.group(scope)
    client.cookies.clear()
    username = USERNAMES.get(role, "nobody")
    password = PASSWORD if role != "none" else "wrong-password"
    if path == "/static":
        return client.get("/static/app.css")
    if path in ("/api/token", "/session/login"):
        return client.post(path, data={"username": username, "password": password})
    if path == "/session/me" and role != "none":
        signed_in = client.post("/session/login", data={"username": username, "password": password})
        assert signed_in.status_code == 200, signed_in.text
        return client.get(path)
    if "{photo_id}" in path:
        photo_id = ctx.new_photo(scope)
        if path.startswith("/api/images/"):
            from core.security import signed_image_path

            return client.get(signed_image_path(photo_id))
        return client.request(method, path.replace("{photo_id}", photo_id), headers=headers)
    if "{sheet_id}" in path:
        sheet = client.post(
            "/api/sheets",
            headers=ctx.headers["admin"],
            json={
                "case_id": ctx.case.id,
                "unit_id": unit_id,
                "group_id": group.id,
                "age_band": ctx.band,
                "rated_on": date.today().isoformat(),
                "levels": {item.id: 0 for item in ctx.case.rubric},
            },
        )
        assert sheet.status_code == 201, sheet.text
        answer = client.delete(
            path.replace("{sheet_id}", sheet.json()["sheet_id"]), headers=headers
        )
        # leave no sheet behind: later rows (the fit) must see the database as before
        client.delete(
            path.replace("{sheet_id}", sheet.json()["sheet_id"]), headers=ctx.headers["admin"]
        )
        return answer
    if path == "/api/sheets/count":
        return client.get(
            path, headers=headers, params={"case_id": ctx.case.id, "group_id": group.id}
        )
    if path == "/api/calibration/ratings":
        from assessment.cases import load_case_library

        responses = [(c, r) for c in load_case_library() for r in c.calibration]
        case, response = responses[next(ctx.seed) % len(responses)]
        return client.post(
            path,
            headers=headers,
            json={"response_id": response.id, "levels": dict.fromkeys(response.reference, 0)},
        )
    path = path.replace("{unit_id}", str(unit_id)).replace("{name}", "swagger-ui.css")
    if "{measure_id}" in path:
        path = path.replace("{measure_id}", str(ctx.new_measure(scope)))
        return client.request(method, path, headers=headers, json={"title": "Läsfokus i vardagen"})
    if path.endswith("/measures") and method == "POST":
        return client.post(path, headers=headers, json=MEASURE_BODY)
    if path == "/api/profiles/export":
        return client.get(path, headers=headers, params={"unit_id": unit_id})
    if path == "/api/photos":
        return client.post(
            path,
            headers=headers,
            files={"file": ("x.jpg", distinct_jpeg(next(ctx.seed)), "image/jpeg")},
            data={
                "unit_id": unit_id,
                "group_id": group.id,
                "activity": "lek",
                "age_band": ctx.band,
            },
        )
    if path.endswith("/what-if"):
        return client.post(path, headers=headers, json={"changes": {"no_such_column": 1.0}})
    if path == "/api/sheets":
        body = {
            "case_id": ctx.case.id,
            "unit_id": unit_id,
            "group_id": group.id,
            "age_band": ctx.band,
            "rated_on": date.today().isoformat(),
            "levels": {item.id: 0 for item in ctx.case.rubric},
        }
        return client.post(path, headers=headers, json=body)
    if path.endswith("/import"):
        return client.post(
            path,
            headers=headers,
            files={"file": ("x.csv", b"unit,term\nOlympia,2026-VT\n", "text/csv")},
        )
    if path == "/api/annotations/webhook":
        return client.post(path, headers=headers, json={"action": "ANNOTATION_CREATED"})
    return client.request(method, path, headers=headers)


def test_authorisation_matrix(api):
    ctx = Context(api)
    wrong = []
    for (method, path), row in sorted(MATRIX.items()):
        for role, scope in itertools.product(ROLES, ("own", "other")):
            expected = row[role][0 if scope == "own" else 1]
            r = _request(ctx, method, path, role, scope)
            if r.status_code != expected:
                wrong.append(
                    f"{method} {path} as {role} on {scope} unit: {r.status_code} != {expected} ({r.text[:120]})"
                )
    api.cookies.clear()
    assert not wrong, "\n".join(wrong)


def test_lists_show_only_readable_units(api):
    edu, other = token(api, "edu"), token(api, "other")
    assert [u["name"] for u in api.get("/api/units", headers=edu).json()] == ["Olympia"]
    assert [u["name"] for u in api.get("/api/units", headers=other).json()] == ["Dalhem"]
    assert len(api.get("/api/units", headers=token(api, "res")).json()) == 8


@pytest.mark.parametrize("variant", ["image", "thumb"])
def test_signed_image_links_cannot_be_altered(api, variant):
    from core.security import signed_image_path

    ctx = Context(api)
    photo_id, other_id = ctx.new_photo("own"), ctx.new_photo("other")
    path = signed_image_path(photo_id, variant)
    assert api.get(path).status_code == 200
    assert api.get(path.replace(photo_id, other_id)).status_code == 403
    assert api.get(path[:-4] + "0000").status_code == 403
    expired = path.split("?")[0] + "?expires=1&sig=" + path.split("sig=")[1]
    assert api.get(expired).status_code == 403
