"""Command line for profiles (mounted as ``spira profiles``): import context, build, export."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Unit profiles: organisational data, building and exporting.", no_args_is_help=True
)
err = Console(stderr=True)


def _session():
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.config import get_settings
    from core.db import migrate, session_factory

    migrate(get_settings().db_url)
    return session_factory()()


@app.command("import-context")
def import_context_command(
    path: Path = typer.Argument(..., help="CSV or XLSX, one row per unit and term"),
) -> None:
    """Import organisational data (children, groups, staff, context) per unit and term; all or nothing."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from profiles.context import ContextFileError, read_context_file
    from profiles.store import import_context

    try:
        table = read_context_file(path)
        with _session() as session:
            n = import_context(session, table)
            session.commit()
    except ContextFileError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    err.print(f"imported {n} unit-term row(s) from {path.name}")


@app.command("build")
def build_command(
    as_json: bool = typer.Option(False, "--json", help="print every profile as JSON lines"),
) -> None:
    """Build every unit's profile from the database and summarise development areas."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from profiles.service import profile_service

    with (
        _session() as session,
        err.status("building profiles (contextual model across all units)…"),
    ):
        built = profile_service.build(session)
    for (unit, term), profile in sorted(built["profiles"].items()):
        if as_json:
            print(json.dumps(profile.to_dict(), ensure_ascii=False, default=str))
        else:
            areas = ", ".join(a.label_en for a in profile.development_areas) or "none flagged"
            print(f"{unit}\t{term}\tdevelopment areas: {areas}")
    err.print(f"{len(built['profiles'])} profile(s)")


@app.command("export")
def export_command(
    fmt: str = typer.Option("csv", "--format", help="csv, xlsx or parquet"),
    out: Path = typer.Option(Path("profiles-export"), "--out", help="file name (suffix added)"),
) -> None:
    """Export a flat table (one row per unit x term x outcome) for the decision-support system.

    The columns are documented in docs/profile_columns.md.
    """
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from profiles.export import export_profiles
    from profiles.service import profile_service

    if fmt not in ("csv", "xlsx", "parquet"):
        err.print(f"error: format {fmt!r} is not one of csv, xlsx, parquet")
        raise typer.Exit(2)
    with _session() as session:
        built = profile_service.build(session)
    path = out if out.suffix == f".{fmt}" else out.with_name(f"{out.name}.{fmt}")
    table = export_profiles(list(built["profiles"].values()), path, format=fmt)  # type: ignore[arg-type]
    err.print(f"wrote {len(table)} row(s) to {path}")
