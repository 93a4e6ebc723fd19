"""The web pages: sign-in landing page, the educators' upload page and their static files.

Everything is served by the app itself (no CDN, no build step): HTML pages (one shell in ``api/templates``) whose ES modules
under ``/static`` talk to the JSON API with the page-session cookie (see ``api.routes.session``).
The pages are shells without user data, so they can be served to anyone; the data behind them needs
a session.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.routes import session as session_routes

STATIC_DIR = Path(__file__).with_name("static")
#: One shell (``shell.html``: head, top bar, the page's module script) and a template per page
#: that fills its blocks (title, script, main); no inline script, so the CSP stays strict.
TEMPLATES_DIR = Path(__file__).with_name("templates")

router = APIRouter()
# The session routes belong to the pages (cookie + CSRF); including them here keeps main.py unchanged.
router.include_router(session_routes.router)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

# Shells are small and change with each release: let the browser revalidate them every time.
_SHELL_HEADERS = {"Cache-Control": "no-cache"}
_templates = Environment(
    loader=FileSystemLoader(TEMPLATES_DIR),
    autoescape=select_autoescape(["html"]),
    undefined=StrictUndefined,
    trim_blocks=True,
    keep_trailing_newline=True,
)


@cache
def render_page(name: str) -> str:
    """The page ``templates/<name>.html`` in the shell, rendered once per process (no user data)."""
    return _templates.get_template(name).render()


def _shell(name: str) -> HTMLResponse:
    return HTMLResponse(render_page(name), headers=_SHELL_HEADERS)


@router.get("/", include_in_schema=False)
def index() -> HTMLResponse:
    """The landing page: sign in, then educators go to /upload, everyone else sees their units."""
    return _shell("index.html")


@router.get("/upload", include_in_schema=False)
def upload() -> HTMLResponse:
    """The educators' upload page (tablets): camera or library, queued in IndexedDB, retried."""
    return _shell("upload.html")


@router.get("/assess", include_in_schema=False)
def assess() -> HTMLResponse:
    """The educators' assessment page (tablets): rate case responses child by child, calibrate."""
    return _shell("assess.html")


@router.get("/units/{unit_id}", include_in_schema=False)
def unit_page(unit_id: int) -> HTMLResponse:
    """A unit's profile page for principals; the page reads /api/units/{unit_id}/profile itself."""
    return _shell("unit.html")


@router.get("/research", include_in_schema=False)
def research_page() -> HTMLResponse:
    """The researchers' page: models and their metrics, annotation agreement, assessment fit."""
    return _shell("research.html")


@router.get("/network", include_in_schema=False)
def network_page() -> HTMLResponse:
    """The municipality's network view for administrators and researchers: every unit's
    development areas and measures this term, and the areas units share (no ranking)."""
    return _shell("network.html")
