"""The page session: HttpOnly cookie, CSRF on writes, logout, expiry, rate limit; the page shells."""

from __future__ import annotations

import pytest
from sqlalchemy import func, select

from core.models import Photo
from tests.api.conftest import PASSWORD


def _login(client, username: str = "edu", password: str = PASSWORD):
    return client.post("/session/login", data={"username": username, "password": password})


def _upload(client, unit_id: int, group_id: int, band: str, headers: dict[str, str]):
    from vision.synthetic import make_photo

    return client.post(
        "/api/photos",
        headers=headers,
        files={"file": ("teckning.jpg", make_photo(2, 7, megapixels=0.3), "image/jpeg")},
        data={"unit_id": unit_id, "group_id": group_id, "activity": "teckning", "age_band": band},
    )


def _photos(client) -> int:
    with client.factory() as s:
        return int(s.scalar(select(func.count()).select_from(Photo)))


@pytest.fixture
def fresh_limiter(monkeypatch):
    """A limiter of its own, so failures here block no other test (the limiter is process-wide)."""
    from api.routes import auth

    limiter = auth.LoginLimiter()
    monkeypatch.setattr(auth, "limiter", limiter)
    return limiter


def test_login_sets_http_only_strict_cookie_and_returns_csrf_and_units(api):
    r = _login(api)
    assert r.status_code == 200, r.text
    cookie = r.headers["set-cookie"]
    assert cookie.startswith("spira_session=")
    low = cookie.lower()
    assert "httponly" in low and "samesite=strict" in low and "path=/" in low
    assert "max-age=28800" in low  # settings.session_minutes (8 h) in seconds
    assert r.headers["cache-control"] == "no-store"
    body = r.json()
    assert len(body["csrf_token"]) >= 32 and body["expires_in"] == 8 * 60 * 60
    assert body["user"]["role"] == "educator"
    (unit,) = body["user"]["units"]
    assert unit["name"] == "Olympia"
    assert {g["age_band"] for g in unit["groups"]} == {"2-3", "4-5"}
    # the token is in the cookie only, never in the answer
    assert api.cookies["spira_session"] not in r.text


def test_cookie_session_reads_and_me_returns_the_same_csrf(api):
    csrf = _login(api).json()["csrf_token"]
    units = api.get("/api/units")
    assert units.status_code == 200 and [u["name"] for u in units.json()] == ["Olympia"]
    me = api.get("/session/me")
    assert me.status_code == 200
    assert me.json()["csrf_token"] == csrf and me.json()["user"]["username"] == "edu"
    assert 0 < me.json()["expires_in"] <= 8 * 60 * 60


def test_cookie_writes_need_the_sessions_csrf_token(api):
    body = _login(api).json()
    unit = body["user"]["units"][0]
    unit_id, group = unit["id"], unit["groups"][0]
    missing = _upload(api, unit_id, group["id"], group["age_band"], {})
    wrong = _upload(api, unit_id, group["id"], group["age_band"], {"X-CSRF-Token": "x" * 43})
    assert missing.status_code == 403 and "CSRF" in missing.json()["detail"]
    assert wrong.status_code == 403 and "CSRF" in wrong.json()["detail"]
    assert _photos(api) == 0  # refused writes change nothing
    ok = _upload(api, unit_id, group["id"], group["age_band"], {"X-CSRF-Token": body["csrf_token"]})
    assert ok.status_code == 201, ok.text
    assert _photos(api) == 1
    # another session's token does not fit this session
    other = _login(api).json()["csrf_token"]
    assert other != body["csrf_token"]


def _logout(client, csrf: str):
    return client.post("/session/logout", headers={"X-CSRF-Token": csrf})


def test_logout_needs_the_sessions_csrf_token_compared_in_constant_time(api, monkeypatch):
    import hmac

    from api import deps

    compared: list[tuple[bytes, bytes]] = []
    constant_time = hmac.compare_digest

    def compare_digest(a, b):
        compared.append((a, b))
        return constant_time(a, b)

    monkeypatch.setattr(deps.hmac, "compare_digest", compare_digest)
    csrf = _login(api).json()["csrf_token"]
    for sent in ({}, {"X-CSRF-Token": "x" * 43}):
        refused = api.post("/session/logout", headers=sent)
        assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
        # nothing changed: the cookie is kept and still works
        assert "spira_session" in api.cookies and api.get("/session/me").status_code == 200
    assert compared and all(isinstance(a, bytes) for a, _ in compared)
    assert _logout(api, csrf).status_code == 200
    assert api.get("/session/me").status_code == 401


def test_logout_clears_the_cookie(api):
    csrf = _login(api).json()["csrf_token"]
    assert api.get("/api/units").status_code == 200
    out = _logout(api, csrf)
    assert out.status_code == 200 and out.json() == {"signed_out": True}
    assert "spira_session" not in api.cookies
    assert api.get("/api/units").status_code == 401
    assert api.get("/session/me").status_code == 401
    # signing out again (already signed out) still succeeds
    assert api.post("/session/logout").status_code == 200


def test_expired_or_foreign_session_is_401(api):
    from core.models import User
    from core.security import create_token

    with api.factory() as s:
        uid = s.scalar(select(User.id).where(User.username == "edu"))
    expired = create_token(str(uid), purpose="session", minutes=-1, extra={"csrf": "c" * 43})
    api.cookies.set("spira_session", expired)
    r = api.get("/api/units")
    assert r.status_code == 401 and "expired" in r.json()["detail"]
    assert api.get("/session/me").status_code == 401
    w = api.post("/api/photos", headers={"X-CSRF-Token": "c" * 43})
    assert w.status_code == 401
    # a bearer (access) token placed in the cookie is not a session
    access = create_token(str(uid), purpose="access", minutes=5)
    api.cookies.set("spira_session", access)
    assert api.get("/api/units").status_code == 401
    assert api.get("/session/me").status_code == 401


def test_repeated_failures_are_rate_limited(api, fresh_limiter):
    for _ in range(fresh_limiter.attempts):
        r = _login(api, "boss", "wrong-password")
        assert r.status_code == 401 and "wrong" in r.json()["detail"]
    blocked = _login(api, "boss", PASSWORD)  # even the right password now waits
    assert blocked.status_code == 429 and "too many" in blocked.json()["detail"]
    assert "spira_session" not in api.cookies
    # the bearer sign-in shares the limit
    token = api.post("/api/token", data={"username": "boss", "password": PASSWORD})
    assert token.status_code == 429
    # another user from the same address is not blocked
    assert _login(api, "edu").status_code == 200


def test_pages_are_shells_with_module_scripts_allowed_by_the_csp(api):
    csp = api.get("/health").headers["content-security-policy"]
    assert "default-src 'self'" in csp
    for path, script in [("/", "/static/home.js"), ("/upload", "/static/upload.js")]:
        r = api.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
        html = r.text
        assert f'<script type="module" src="{script}"></script>' in html
        # the CSP forbids inline scripts, so none may exist
        assert html.count("<script") == 1
        js = api.get(script)
        assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    upload = api.get("/upload").text
    assert 'capture="environment"' in upload and upload.count('type="file"') == 2
    assert api.get("/static/i18n.js").text.count("refused_format") == 3  # sv, en, rule
    # the session routes are documented; the page shells are not
    paths = api.get("/openapi.json").json()["paths"]
    assert {"/session/login", "/session/logout", "/session/me"} <= set(paths)
    assert "/upload" not in paths and "/" not in paths


def test_every_page_is_the_one_shell_with_its_own_script_and_main(api):
    """The four pages share one head and top bar (api/templates/shell.html), each with its own
    module script, title and main content; the shell is rendered, not copied per page."""
    from api.pages import TEMPLATES_DIR

    pages = {
        "/": "home.js",
        "/upload": "upload.js",
        "/units/1": "unit.js",
        "/research": "research.js",
    }
    bars, titles = set(), set()
    for path, script in pages.items():
        r = api.get(path)
        assert r.status_code == 200 and r.headers["cache-control"] == "no-cache", path
        html = r.text
        assert html.count("<script") == 1 and f'src="/static/{script}"' in html, path
        bar = html[html.index('<header class="topbar">') : html.index("</header>")]
        assert 'id="sign-out"' in bar and 'data-lang="en"' in bar
        bars.add(bar)
        titles.add(html[html.index("<title>") : html.index("</title>")])
        assert html.count("<main") == 1 and html.rstrip().endswith("</html>")
    assert len(bars) == 1 and len(titles) == 4
    assert 'id="unit-name"' in api.get("/units/1").text
    assert 'id="login"' in api.get("/").text and 'id="research"' in api.get("/research").text
    # only the shell holds <html>/<head>; the pages fill its blocks
    for name in ("index", "upload", "unit", "research"):
        assert "<head>" not in (TEMPLATES_DIR / f"{name}.html").read_text()
    assert api.get("/static/index.html").status_code == 404


def test_signing_out_ends_the_session_everywhere(api):
    """A copy of the cookie (another tab, another device, a stolen copy) stops working the moment
    its account signs out; the next sign-in works again; bearer tokens are not page sessions."""
    from core.models import AuditEvent

    csrf = _login(api).json()["csrf_token"]
    cookie = api.cookies.get("spira_session")
    bearer = api.post("/api/token", data={"username": "edu", "password": PASSWORD}).json()
    assert _logout(api, csrf).status_code == 200
    api.cookies.set("spira_session", cookie)  # the copy, replayed after sign-out
    for path in ("/api/units", "/session/me"):
        r = api.get(path)
        assert r.status_code == 401 and "signed out" in r.json()["detail"], (path, r.text)
    # signing out with the dead copy again changes nothing and still succeeds
    assert api.post("/session/logout").status_code == 200
    api.cookies.clear()
    headers = {"Authorization": f"Bearer {bearer['access_token']}"}
    assert api.get("/api/units", headers=headers).status_code == 200
    _login(api)
    assert api.get("/session/me").status_code == 200
    with api.factory() as s:
        outs = s.scalars(select(AuditEvent).where(AuditEvent.action == "sign_out")).all()
    assert [e.username for e in outs] == ["edu"]
