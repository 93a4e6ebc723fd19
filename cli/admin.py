"""Administrator commands: doctor, audit, retention, delete, export-unit.

Mounted at the top level of ``spira`` by :func:`mount`; also runnable on its own as
``python -m cli.admin COMMAND``.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import typer
from rich.console import Console

app = typer.Typer(
    help="Administration: consistency, audit log, retention, deletion, export.",
    no_args_is_help=True,
    add_completion=False,
)
retention_app = typer.Typer(
    help="Delete photos older than the retention age.", no_args_is_help=True
)
app.add_typer(retention_app, name="retention")
console = Console(stderr=True)


def mount(parent: typer.Typer) -> None:
    """Add every command of this app at the top level of ``parent`` (``spira doctor`` ...)."""
    parent.registered_commands.extend(app.registered_commands)
    parent.registered_groups.extend(app.registered_groups)


def _factory():
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.config import get_settings
    from core.db import migrate, session_factory

    url = get_settings().db_url
    migrate(url)
    return session_factory(url)


@app.command()
def doctor(
    repair: bool = typer.Option(
        False, "--repair", help="delete orphaned blobs and temporary files; mark rows failed"
    ),
    pending_minutes: float = typer.Option(
        30, help="report photos pending for longer than this (minutes)"
    ),
    grace_minutes: float = typer.Option(
        10, help="never repair files younger than this (minutes): a live upload may own them"
    ),
    as_json: bool = typer.Option(False, "--json", help="print the report as JSON on stdout"),
    fix: bool = typer.Option(
        False,
        "--fix",
        help="delete stored rows whose date, term or age band lies outside what is accepted "
        "(dates 2000-01-01 to tomorrow); audited",
    ),
) -> None:
    """Check (and with --repair fix) consistency between the database and the stored images;
    list (and with --fix delete) stored rows the profiles cannot use.

    Exit code 0 when consistent and no unusable row is left (after repair/fix, if asked), 1
    otherwise.
    """
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.doctor import check_consistency, find_unusable_rows, remove_unusable_rows
    from core.storage import get_store

    factory = _factory()
    with factory() as session:
        unusable = find_unusable_rows(session)
        removed = (
            remove_unusable_rows(session, get_store(), unusable, actor="spira doctor --fix")
            if fix and unusable
            else 0
        )
        left = find_unusable_rows(session) if fix else unusable
        report = check_consistency(
            session,
            get_store(),
            repair=repair,
            pending_minutes=pending_minutes,
            grace_minutes=grace_minutes,
        )
        if repair:
            # Report the state after the repair, which is what the exit code speaks for.
            after = check_consistency(
                session, get_store(), pending_minutes=pending_minutes, grace_minutes=grace_minutes
            )
    if as_json:
        data = report.as_dict()
        if repair:
            data["after_repair"] = after.as_dict()
        data["unusable_rows"] = [vars(r) for r in unusable]
        data["unusable_rows_removed"] = removed
        print(json.dumps(data, indent=2))
    else:
        console.print(report.summary())
        if repair:
            console.print("after repair: " + after.summary().splitlines()[-1])
        console.print(
            f"stored rows the profiles cannot use: {len(unusable)}"
            + (f" (deleted: {removed})" if removed else "")
            + ("" if fix or not unusable else "; `spira doctor --fix` deletes them")
        )
        for r in unusable[:50]:
            console.print(f"  {r.table} {r.id} (unit {r.unit_id}): {r.reason}", markup=False)
    if not (after if repair else report).consistent or left:
        raise typer.Exit(1)


def _parse_since(text: str | None) -> datetime | None:
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text)
    except ValueError:
        console.print(f"[red]error:[/red] --since {text!r} is not a date (YYYY-MM-DD[THH:MM])")
        raise typer.Exit(2) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@app.command()
def audit(
    user: str | None = typer.Option(None, "--user", help="only events by this username"),
    action: str | None = typer.Option(
        None, "--action", help="upload, read, delete, export, import, ..."
    ),
    since: str | None = typer.Option(None, "--since", help="only events from this date (UTC)"),
    limit: int = typer.Option(1000, help="at most this many events, newest first"),
    as_json: bool = typer.Option(False, "--json", help="one JSON object per line"),
) -> None:
    """Show the audit log: who uploaded, read, deleted or exported what, newest first."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.retention import find_audit_events

    moment = _parse_since(since)
    factory = _factory()
    with factory() as session:
        events = find_audit_events(session, username=user, action=action, since=moment, limit=limit)
    for e in events:
        if as_json:
            print(
                json.dumps(
                    {
                        "at": e.at.isoformat(),
                        "username": e.username,
                        "action": e.action,
                        "object_type": e.object_type,
                        "object_id": e.object_id,
                        "detail": e.detail,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            print(
                f"{e.at:%Y-%m-%d %H:%M:%S}\t{e.username or '-'}\t{e.action}\t"
                f"{e.object_type}\t{e.object_id or '-'}\t{json.dumps(e.detail, ensure_ascii=False)}"
            )
    console.print(f"{len(events)} event(s)")


@retention_app.command("run")
def retention_run(
    older_than_days: int | None = typer.Option(
        None, "--older-than-days", help="default: SPIRA_RETENTION_DAYS"
    ),
    dry_run: bool = typer.Option(False, "--dry-run", help="only say what would be deleted"),
) -> None:
    """Delete photos taken more than N days ago (and their files); unit-level aggregates stay."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.retention import retention_days_setting, run_retention
    from core.storage import get_store

    days = older_than_days if older_than_days is not None else retention_days_setting()
    if days is None:
        console.print(
            "[red]error:[/red] no retention age: pass --older-than-days N or set SPIRA_RETENTION_DAYS"
        )
        raise typer.Exit(2)
    factory = _factory()
    with factory() as session:
        try:
            result = run_retention(session, get_store(), older_than_days=days, dry_run=dry_run)
        except ValueError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
    if dry_run:
        console.print(f"would delete {result.photos} photo(s) taken more than {days} days ago")
    else:
        console.print(result.summary())


@app.command()
def delete(
    photo: str | None = typer.Option(None, "--photo", help="a photo id"),
    group: int | None = typer.Option(None, "--group", help="a group id: all its photos and sheets"),
    unit: str | None = typer.Option(None, "--unit", help="a unit name: everything stored about it"),
    actor: str = typer.Option("admin-cli", help="name recorded in the audit log"),
) -> None:
    """Delete a photo, everything of a group, or everything stored about a unit (with files)."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.retention import DeletionError, delete_group, delete_photo, delete_unit
    from core.storage import get_store

    if sum(x is not None for x in (photo, group, unit)) != 1:
        console.print("[red]error:[/red] choose exactly one of --photo ID, --group ID, --unit NAME")
        raise typer.Exit(2)
    factory = _factory()
    store = get_store()
    with factory() as session:
        try:
            if photo is not None:
                result = delete_photo(session, store, photo, actor=actor)
            elif group is not None:
                result = delete_group(session, store, group, actor=actor)
            else:
                result = delete_unit(session, store, str(unit), actor=actor)
        except DeletionError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
    console.print(result.summary())


@app.command("export-unit")
def export_unit_command(
    name: str = typer.Argument(..., help="the unit's name"),
    out: Path = typer.Option(..., "--out", help="folder to write into (created if missing)"),
    actor: str = typer.Option("admin-cli", help="name recorded in the audit log"),
) -> None:
    """Export everything stored for a unit: tables as JSON and CSV, and its processed images."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.retention import DeletionError, export_unit
    from core.storage import get_store

    factory = _factory()
    with factory() as session:
        try:
            result = export_unit(session, get_store(), name, out, actor=actor)
        except DeletionError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
    rows = ", ".join(f"{k} {v}" for k, v in result.tables.items())
    console.print(f"exported to {result.folder}: {rows}; {result.images} image file(s)")
    print(result.folder)


if __name__ == "__main__":  # pragma: no cover
    app()
