"""The FastAPI application: migrations at start-up, the queue worker, routes and pages."""

from __future__ import annotations

import gc
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.middleware.cors import CORSMiddleware
from sqlalchemy.orm import sessionmaker
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.routes import admin, assessment, auth, images, photos, research, units
from api.routes import annotations as annotation_routes
from core.audit import AuditWriter
from core.config import get_settings
from core.db import migrate, new_engine, session_factory
from core.storage import AUDIT_LOCK, BlobStore
from profiles.store import profile_service
from vision.threads import one_thread_per_operation

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
            from training.registry import load_model
            from vision.worker import BackgroundWorker

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
    )
    if settings.label_studio_url:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=[settings.label_studio_url.rstrip("/")],
            allow_methods=["GET"],
            allow_headers=["*"],
        )

    app.add_middleware(SecurityHeaders)

    app.include_router(auth.router)
    app.include_router(photos.router)
    app.include_router(units.router)
    app.include_router(assessment.router)
    app.include_router(images.router)
    app.include_router(annotation_routes.router)
    app.include_router(research.router)
    app.include_router(admin.router)
    from api import pages

    app.include_router(pages.router)

    @app.get("/health", tags=["meta"], summary="Liveness")
    def health() -> dict[str, str]:
        return {"status": "ok"}

    return app
