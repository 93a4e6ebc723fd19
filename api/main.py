"""The FastAPI application: migrations at start-up, the queue worker, routes and pages."""

from __future__ import annotations

from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware

from api.routes import admin, assessment, auth, images, photos, research, units
from api.routes import annotations as annotation_routes
from core.config import get_settings
from core.db import migrate, session_factory
from core.storage import BlobStore

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data: blob:; style-src 'self' 'unsafe-inline'",
}


def create_app(*, start_worker: bool | None = None) -> FastAPI:
    """Build the app for the current settings. ``start_worker`` overrides ``SPIRA_WORKER_ENABLED``."""
    settings = get_settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        migrate(settings.db_url)
        app.state.session_factory = session_factory(settings.db_url)
        app.state.store = BlobStore(settings.storage_path)
        app.state.worker = None
        if settings.worker_enabled if start_worker is None else start_worker:
            from training.registry import load_model
            from vision.worker import BackgroundWorker

            worker = BackgroundWorker(app.state.session_factory, app.state.store, load_model)
            worker.start()
            app.state.worker = worker
        yield
        if app.state.worker is not None:
            app.state.worker.stop()
            app.state.worker.join(timeout=30)

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

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        for key, value in SECURITY_HEADERS.items():
            response.headers.setdefault(key, value)
        return response

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
