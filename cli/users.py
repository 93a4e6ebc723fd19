"""``spira users``: manage users and the units they may act on."""

from __future__ import annotations

import sys

import typer

from cli.common import console, migrated

app = typer.Typer(help="Manage users and the units they may act on.", no_args_is_help=True)


@app.command("add")
def users_add(
    username: str = typer.Option(..., help="sign-in name (no personal data about children)"),
    role: str = typer.Option(..., help="educator, principal, researcher or admin"),
    unit: list[str] = typer.Option(
        [], "--unit", help="unit name the user may act on; repeat for several"
    ),
    password: str | None = typer.Option(
        None,
        help="at least 8 characters; better omitted (asked for, hidden) or --password-stdin, "
        "since a password on the command line stays in the shell's history",
    ),
    password_stdin: bool = typer.Option(
        False, "--password-stdin", help="read the password from the first line of standard input"
    ),
) -> None:
    """Create a user (or update role, password and units of an existing one).

    The password is asked for (hidden, twice) unless given with --password-stdin or --password."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from core.users import UserError, upsert_user

    if password is not None and password_stdin:
        console.print("[red]error:[/red] give --password or --password-stdin, not both")
        raise typer.Exit(2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    elif password is None:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    factory = migrated()
    with factory() as session:
        try:
            user = upsert_user(
                session, username=username, password=password, role=role, unit_names=unit
            )
        except UserError as err:
            console.print(f"[red]error:[/red] {err}")
            raise typer.Exit(2) from None
        session.commit()
        names = ", ".join(u.name for u in user.units)
        if user.role in ("researcher", "admin"):
            names = "all units (read)" + (f"; {names}" if names else "")
        console.print(f"user {user.username} ({user.role}) may act on: {names or 'no units'}")


@app.command("list")
def users_list() -> None:
    """List users with their role and units."""
    # lazy: loaded only when the command runs, so `spira --help` stays fast
    from sqlalchemy import select

    from core.models import User

    factory = migrated()
    with factory() as session:
        for user in session.scalars(select(User).order_by(User.username)):
            print(f"{user.username}\t{user.role}\t{', '.join(u.name for u in user.units)}")
