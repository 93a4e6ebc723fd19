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
    indicators: Path | None = typer.Option(
        None,
        "--indicators",
        help="indicator dictionary (CSV/XLSX: key,label_sv,label_en,unit,direction,reference"
        "[,min,max]) declaring the municipality's own quality-indicator columns of the file; "
        "indicators declared before are remembered",
    ),
) -> None:
    """Import organisational data (children, groups, staff, context) per unit and term, with the
    municipality's own quality indicators declared in a dictionary; all or nothing."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from profiles.context import (
        INDICATOR_PREFIX,
        ContextFileError,
        indicator_columns,
        read_context_file,
    )
    from profiles.indicators import merge_dictionaries, read_indicator_dictionary
    from profiles.store import import_context, stored_indicators

    try:
        given = read_indicator_dictionary(indicators) if indicators is not None else []
        with _session() as session:
            declared = merge_dictionaries(stored_indicators(session), given)
            table = read_context_file(path, declared)
            n = import_context(session, table, given)
            session.commit()
    except ContextFileError as exc:
        err.print(str(exc), markup=False)
        raise typer.Exit(1) from None
    keys = [c.removeprefix(INDICATOR_PREFIX) for c in indicator_columns(table)]
    with_ind = f" with indicator(s) {', '.join(keys)}" if keys else ""
    err.print(f"imported {n} unit-term row(s) from {path.name}{with_ind}", markup=False)
    if given and indicators is not None:
        err.print(
            f"indicator dictionary: {len(given)} indicator(s) declared from {indicators.name}; "
            "`spira profiles build` reports which ones the contextual model uses",
            markup=False,
        )


@app.command("indicators")
def indicators_command(
    as_json: bool = typer.Option(False, "--json", help="print the dictionary as JSON lines"),
) -> None:
    """List the municipality's declared quality indicators (the stored indicator dictionary)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from dataclasses import asdict

    from profiles.store import stored_indicators

    with _session() as session:
        declared = stored_indicators(session)
    for ind in declared:
        if as_json:
            print(json.dumps(asdict(ind), ensure_ascii=False))
        else:
            span = "" if ind.low is None and ind.high is None else f"\t[{ind.low}, {ind.high}]"
            print(f"{ind.key}\t{ind.label_en} ({ind.label_sv})\t{ind.unit}\t{ind.direction}{span}")
    if not declared:
        err.print(
            "no quality indicators declared; declare them with "
            "`spira profiles import-context FILE --indicators DICT.csv`",
            markup=False,
        )


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
    for s in built.get("indicator_selection", []):
        if not s.tried:
            continue
        used = ", ".join(s.used) or "none"
        tried = "; ".join(f"{t['key']}: {t['reason']}" for t in s.tried)
        err.print(
            f"contextual model for {s.outcome}: quality indicators used: {used} ({tried})",
            markup=False,
        )


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
    from profiles.queries import measures_frame
    from profiles.service import profile_service

    if fmt not in ("csv", "xlsx", "parquet"):
        err.print(f"error: format {fmt!r} is not one of csv, xlsx, parquet")
        raise typer.Exit(2)
    with _session() as session:
        built = profile_service.build(session)
        measures = measures_frame(session)
    path = out if out.suffix == f".{fmt}" else out.with_name(f"{out.name}.{fmt}")
    table = export_profiles(
        list(built["profiles"].values()),
        path,
        format=fmt,  # type: ignore[arg-type]
        measures=measures,
    )
    err.print(f"wrote {len(table)} row(s) to {path}")
