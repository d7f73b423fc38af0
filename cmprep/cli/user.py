"""`cmprep user ...`: add, list and deactivate people (admins only, after the first)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import (
    PASSWORD_STDIN,
    TABLE_FORMAT,
    read_password,
    table,
    with_actor,
    with_app,
)

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def user() -> None:
    """People: add, list and deactivate users (admins only, after the first)."""


@user.command("add")
@click.argument("name")
@click.option("--full-name", required=True, help="Printed with every signature.")
@click.option("--role", type=click.Choice(["technician", "reviewer", "qa", "admin"]), required=True)
@PASSWORD_STDIN
@click.option(
    "--as",
    "actor",
    envvar="CMPREP_USER",
    default=None,
    metavar="NAME",
    help="The admin adding the user (not needed for the first one).",
)
@with_app
def user_add(
    app: Services, name: str, full_name: str, role: str, password_stdin: bool, actor: str | None
) -> None:
    """Add a user. The new user's password is asked twice (or read from stdin).

    \b
    Example:
      cmprep user add admin --full-name "Ada Admin" --role admin
      cmprep user add alice --full-name "Alice Archer" --role technician --as admin
    """
    if password_stdin:
        password = read_password(True)
    else:
        password = click.prompt(f"Password for {name}", hide_input=True, confirmation_prompt=True)
    u = app.people.add(name, full_name, role, password, actor)
    click.echo(f"User {u.name} ({u.full_name}, {u.role.value}) added.")


@user.command("list")
@TABLE_FORMAT
@with_app
def user_list(app: Services, fmt: str) -> None:
    """List users, active and inactive.

    \b
    Example:
      cmprep user list
    """
    rows = [u.row() for u in app.people.users().values()]
    cols = ["name", "full_name", "role", "active", "added_by", "added_at", "deactivated_at"]
    table(rows, cols, fmt)


@user.command("deactivate")
@click.argument("name")
@click.option("--reason", required=True)
@with_actor
@with_app
def user_deactivate(app: Services, name: str, reason: str, actor: str) -> None:
    """Deactivate a user: they can do nothing more; their past entries stay theirs.

    \b
    Example:
      cmprep user deactivate bob --reason "left the lab" --as admin
    """
    app.people.deactivate(name, actor, reason)
    click.echo(f"User {name} deactivated.")
