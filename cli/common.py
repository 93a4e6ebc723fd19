"""What the ``spira`` commands share: the console (stderr), progress bars, a migrated database."""

from __future__ import annotations

from rich.console import Console

from core.config import get_settings

console = Console(stderr=True)


def progress_bar():
    # lazy: rich.progress only for commands that show progress
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeRemainingColumn,
    )

    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        transient=False,
    )


def migrated():
    # lazy: SQLAlchemy and Alembic load only for commands that use the database
    from core.db import migrate, session_factory

    url = get_settings().db_url
    migrate(url)
    return session_factory(url)
