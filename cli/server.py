"""``spira migrate``, ``spira serve`` and ``spira demo`` (registered by :mod:`cli.main`)."""

from __future__ import annotations

import typer

from cli.common import console, migrated, progress_bar
from core.config import get_settings


def migrate() -> None:
    """Create or upgrade the database schema (Alembic)."""
    migrated()
    console.print(f"database at {get_settings().db_url} is up to date")


def serve(
    host: str = typer.Option("127.0.0.1", help="address to listen on"),
    port: int = typer.Option(8000, help="port to listen on"),
    workers: int = typer.Option(
        1,
        min=1,
        help="server processes (one per CPU core serves the most reads; they share one queue "
        "worker at a time)",
    ),
) -> None:
    """Serve the API and the web pages on an existing database (the worker scores queued photos).

    On any address but loopback a secret must be configured (``SPIRA_SECRET_KEY``)."""
    _serve(host, port, workers, demo=False)


def _serve(host: str, port: int, workers: int, *, demo: bool) -> None:
    """Check the secret for ``host`` (``demo``: the demo's own random key counts as configured,
    see core.config.check_serving_secret), migrate, and run uvicorn until stopped."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    import uvicorn

    from api.main import create_app
    from core.config import SecretMissing, check_serving_secret

    try:
        check_serving_secret(host, demo=demo)
    except SecretMissing as err:
        console.print(f"[red]{err}[/red]")
        raise typer.Exit(2) from None
    migrated()
    console.print(f"Spira serves on http://{host}:{port}  (API docs: http://{host}:{port}/docs)")
    if workers == 1:
        uvicorn.run(create_app(), host=host, port=port, log_level="info")
    else:
        uvicorn.run(
            "api.main:create_app",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )


def demo(
    serve_after: bool = typer.Option(True, "--serve/--no-serve", help="serve after seeding"),
    host: str = typer.Option("127.0.0.1"),
    port: int = typer.Option(8000),
    photos_per_term: int = typer.Option(12, help="synthetic photos per unit and term"),
    seed: int = typer.Option(7),
) -> None:
    """Seed the eight pilot units with synthetic photos pushed through the real pipeline, then serve."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from cli.demo import seed_demo

    factory = migrated()
    with progress_bar() as progress:
        credentials = seed_demo(
            factory,
            photos_per_term=photos_per_term,
            seed=seed,
            progress=progress,
            log=console.print,
        )
    if credentials:
        console.print("\n[bold]Demo users (shown once; passwords are not stored in clear):[/bold]")
        for username, password, role, units in credentials:
            console.print(f"  {username:<22} {password:<16} {role:<11} {units}")
    if serve_after:
        # the demo's own random key (made in its var folder on first run) counts as configured
        _serve(host, port, 1, demo=True)
