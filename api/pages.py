"""The web pages: sign-in landing page, the educators' upload page and their static files.

Everything is served by the app itself (no CDN, no build step): plain HTML shells whose ES modules
under ``/static`` talk to the JSON API with the page-session cookie (see ``api.routes.session``).
The pages are shells without user data, so they can be served to anyone; the data behind them needs
a session.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse
from fastapi.staticfiles import StaticFiles

from api.routes import session as session_routes

STATIC_DIR = Path(__file__).with_name("static")

router = APIRouter()
# The session routes belong to the pages (cookie + CSRF); including them here keeps main.py unchanged.
router.include_router(session_routes.router)
router.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")

# Shells are small and change with each release: let the browser revalidate them every time.
_SHELL_HEADERS = {"Cache-Control": "no-cache"}


def _shell(name: str) -> FileResponse:
    return FileResponse(STATIC_DIR / name, media_type="text/html", headers=_SHELL_HEADERS)


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    """The landing page: sign in, then educators go to /upload, everyone else sees their units."""
    return _shell("index.html")


@router.get("/upload", include_in_schema=False)
def upload() -> FileResponse:
    """The educators' upload page (tablets): camera or library, queued in IndexedDB, retried."""
    return _shell("upload.html")


@router.get("/units/{unit_id}", include_in_schema=False)
def unit_page(unit_id: int) -> FileResponse:
    """A unit's profile page for principals; the page reads /api/units/{unit_id}/profile itself."""
    return _shell("unit.html")


@router.get("/research", include_in_schema=False)
def research_page() -> FileResponse:
    """The researchers' page: models and their metrics, annotation agreement, assessment fit."""
    return _shell("research.html")
