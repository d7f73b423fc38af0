"""`cmprep site ...`: the lab's settings (session timeouts, lockout, checkpoint folder)."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import password_from_stdin, read_password, with_actor, with_app

if TYPE_CHECKING:
    from cmprep.service import Services


@click.group()
def site() -> None:
    """Site settings: shown to all, changed by an admin with their password."""


@site.command("show")
@with_app
def site_show(app: Services) -> None:
    """Show the site settings.

    \b
    Example:
      cmprep site show
    """
    from dataclasses import asdict

    for name, value in asdict(app.settings.show()).items():
        click.echo(f"{name:<15} {value}")


@site.command("set")
@click.argument("name")
@click.argument("value")
@click.option("--reason", required=True, help="Why: kept in the audit trail.")
@with_actor
@with_app
def site_set(app: Services, name: str, value: str, reason: str, actor: str) -> None:
    """Change a site setting (admins; needs your password now).

    \b
    Example:
      cmprep site set idle_minutes 15 --reason "shared tablet at the hood" --as root
    """
    password = read_password(password_from_stdin(), f"Password of {actor} (to authorize)")
    app.settings.change(name, value, actor, password, reason)
    click.echo(f"{name} is now {value.strip()}.")
