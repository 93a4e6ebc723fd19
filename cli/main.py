"""``spira``: one command-line program for every job. Run ``spira --help`` or ``spira JOB --help``.

Each sub-command lives in its own module of this package and imports what it runs inside its
function, so building the help imports no model, database or web code (docs/architecture.md).
"""

from __future__ import annotations

import sys

import typer

from cli import (
    annotate,
    assess,
    evaluate,
    ingest,
    models,
    profiles,
    report,
    server,
    stages,
    train,
    users,
)
from cli.admin import mount as mount_admin

app = typer.Typer(
    help=(
        "Spira: unit-level profiles of preschool children's knowledge development from photos of their "
        "work, educators' assessments and organisational data. No child is identified. Every command "
        "honours SPIRA_DATABASE_URL, SPIRA_STORAGE_DIR and SPIRA_VAR_DIR."
    ),
    no_args_is_help=True,
    add_completion=False,
)
app.add_typer(users.app, name="users")
app.add_typer(models.app, name="models")
app.add_typer(annotate.app, name="annotate")
app.add_typer(assess.app, name="assess")
app.add_typer(profiles.app, name="profiles")
app.add_typer(report.app, name="report")
mount_admin(app)
app.command()(server.migrate)
app.command()(server.serve)
app.command()(stages.stages)
app.command()(train.train)
app.command()(evaluate.evaluate)
app.command()(ingest.ingest)
app.command()(ingest.embed)
app.command()(server.demo)


def main() -> None:  # pragma: no cover
    try:
        app()
    except KeyboardInterrupt:
        sys.exit(130)
