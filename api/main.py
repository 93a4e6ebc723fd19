"""The FastAPI application: migrations at start-up, the queue worker, routes and pages."""

from __future__ import annotations

import gc
import json
from collections.abc import Callable
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI
from fastapi import HTTPException as RouteError
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import FileResponse, HTMLResponse
from sqlalchemy.orm import sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.exceptions import HTTPException
from starlette.formparsers import MultiPartParser
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api import pages
from api.errors import validation_error_answer
from api.routes import admin, assessment, auth, images, network, photos, research, units
from api.routes import annotations as annotation_routes
from core.audit import AuditWriter
from core.config import get_settings
from core.db import migrate, new_engine, session_factory
from core.storage import AUDIT_LOCK, BlobStore
from profiles.service import profile_service
from training.model_files import load_model
from vision.threads import one_thread_per_operation
from vision.worker import BackgroundWorker

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'",
}


class SecurityHeaders:
    """Adds :data:`SECURITY_HEADERS` to every HTTP answer that does not set its own.

    Plain ASGI rather than ``@app.middleware("http")``: Starlette's BaseHTTPMiddleware runs each
    request through extra tasks and streams, a cost paid on every profile read."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for key, value in SECURITY_HEADERS.items():
                    if key not in headers:
                        headers[key] = value
            await send(message)

        await self.app(scope, receive, send_with_headers)


#: Room for a multipart form's boundaries, headers and small fields around its file.
FORM_OVERHEAD = 256 * 1024

# Original camera files (EXIF, GPS) are held in memory only: Starlette spools a multipart file
# part over ``spool_max_size`` to a temporary file, and 0 means never (the part stays a BytesIO).
# Memory is bounded by BodyLimit below, which refuses a body over its route's limit.
MultiPartParser.spool_max_size = 0


class BodyTooLarge(HTTPException):
    """A request body over its route's limit (raised while it is read; answered with 413)."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            detail=f"the request body is larger than {_size(limit)}; send a smaller file",
        )


def _size(n: int) -> str:
    return f"{n / (1024 * 1024):.0f} MB" if n >= 1024 * 1024 else f"{n // 1024} KB"


class BodyLimit:
    """Caps every request body at its route's limit (``limit_for(method, path)``).

    A ``Content-Length`` over the limit is answered with 413 before any of the body is read; a
    body without one (chunked) is counted while it is read and refused with 413 once it passes
    the limit, so no more than the limit is ever held in memory."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app = app
        self.limit_for = limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        declared = next((v for k, v in scope["headers"] if k == b"content-length"), None)
        if declared is not None:
            if not declared.isdigit():
                await _answer(send, 400, "Content-Length is not a number")
                return
            if int(declared) > limit:
                await _answer(send, 413, BodyTooLarge(limit).detail)
                return
        received = 0
        started = False

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        async def tracked(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, counted, tracked)
        except BodyTooLarge as err:  # read outside a route (no exception handler around it)
            if started:
                raise
            await _answer(send, 413, err.detail)


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.lower().encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    headers.append((b"connection", b"close"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def body_limits(settings) -> Callable[[str, str], int]:
    """The body limit of each route: the photo upload and the spreadsheet imports carry a file
    (their file limit plus form overhead); everything else is JSON or a small form."""

    def limit_for(method: str, path: str) -> int:
        if path.rstrip("/") == "/api/photos":
            return settings.max_upload_bytes + FORM_OVERHEAD
        if path.endswith("/import"):
            return settings.max_import_bytes + FORM_OVERHEAD
        return settings.max_body_bytes

    return limit_for


#: Swagger UI's files served under /docs/assets, from the swagger-ui-bundle-v2 package.
DOCS_ASSETS = {
    "swagger-ui.css": "text/css",
    "swagger-ui-bundle.js": "text/javascript",
}
DOCS_HTML = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title} - API docs</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/static/swagger-init.js"></script>
</body>
</html>
"""


def add_offline_docs(app: FastAPI) -> None:
    """``/docs``: Swagger UI from the installed package's files, started by a script under
    /static, so the page works under the app's own Content-Security-Policy and makes no request
    outside this server (FastAPI's default page loads Swagger from a CDN with an inline script)."""
    import swagger_ui_bundle  # lazy: Swagger UI's files, only when /docs is mounted

    root = Path(swagger_ui_bundle.swagger_ui_path)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(DOCS_HTML.format(title=app.title))

    @app.get("/docs/assets/{name}", include_in_schema=False)
    def docs_asset(name: str) -> FileResponse:
        if name not in DOCS_ASSETS:
            raise RouteError(404, detail="no such file")
        return FileResponse(
            root / name,
            media_type=DOCS_ASSETS[name],
            headers={"Cache-Control": "public, max-age=86400"},
        )


def settle_heap(*, worker: bool) -> None:
    """Import what the first profile build and the queue worker's first batch would import, then
    move the whole start-up heap (libraries, settings, engines) out of the garbage collector's
    view (``gc.freeze``). Without it each full collection walks every object of numpy, pandas,
    SQLAlchemy, torch and the rest: pauses of 100–160 ms every second or so under load, each
    stalling every request in flight (bench/api_load.py)."""
    import profiles.profile  # noqa: F401 - imported lazily by the first profile build
    import profiles.progression  # noqa: F401

    if worker:
        import openvino  # noqa: F401 - imported lazily by the worker's first batch
        import timm  # noqa: F401
        import torch  # noqa: F401
    if _settled:  # once per process: a second app (tests) would be frozen in for good
        return
    _settled.append(True)
    gc.collect()
    gc.freeze()


_settled: list[bool] = []


def create_app(*, start_worker: bool | None = None) -> FastAPI:
    """Build the app for the current settings. ``start_worker`` overrides ``SPIRA_WORKER_ENABLED``."""
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(settings.db_url)
        # Requests (and the queue worker) run side by side, one per core: library thread
        # pools inside each would only oversubscribe the cores (vision/threads.py).
        one_thread_per_operation()
        app.state.session_factory = session_factory(settings.db_url)
        app.state.store = BlobStore(settings.storage_path)
        settings.storage_path.mkdir(parents=True, exist_ok=True)  # the lock files live there
        # The audit writer has a connection of its own: requests waiting for it hold theirs.
        audit_engine = new_engine(settings.db_url, pool_size=1, max_overflow=0)
        app.state.audit = AuditWriter(
            sessionmaker(bind=audit_engine),
            lock_path=settings.storage_path / AUDIT_LOCK
            if settings.db_url.startswith("sqlite")
            else None,
        )
        app.state.worker = None
        if settings.worker_enabled if start_worker is None else start_worker:
            worker = BackgroundWorker(
                app.state.session_factory,
                app.state.store,
                load_model,
                on_change=profile_service.invalidate,
            )
            worker.start()
            app.state.worker = worker
        settle_heap(worker=app.state.worker is not None)
        yield
        if app.state.worker is not None:
            app.state.worker.stop()
            app.state.worker.join(timeout=30)
        app.state.audit.close()
        audit_engine.dispose()

    app = FastAPI(
        title="Spira",
        version="0.1.0",
        description=(
            "Unit-level view of preschool children's knowledge development. No child is identified: "
            "every figure is an aggregate per unit, with its uncertainty and n."
        ),
        lifespan=lifespan,
        docs_url=None,  # served from local files by add_offline_docs
        redoc_url=None,  # ReDoc would load from a CDN
    )
    if settings.label_studio_url:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[settings.label_studio_url.rstrip("/")],
            allow_methods=["GET"],
            allow_headers=["*"],
        )

    app.add_middleware(BodyLimit, limit_for=body_limits(settings))
    app.add_middleware(SecurityHeaders)

    app.include_router(auth.router)
    app.include_router(photos.router)
    app.include_router(units.router)
    app.include_router(network.router)
    app.include_router(assessment.router)
    app.include_router(images.router)
    app.include_router(annotation_routes.router)
    app.include_router(research.router)
    app.include_router(admin.router)
    # a 422 that echoes an input such as -Infinity is still valid JSON (issue 20)
    app.add_exception_handler(RequestValidationError, validation_error_answer)
    app.include_router(pages.router)

    add_offline_docs(app)

    @app.get("/health", tags=["meta"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
