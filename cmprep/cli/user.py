"""`cmprep user ...`: people and their accounts. Every change to an account needs the acting
admin's password at that moment, even when logged in; with --password-stdin the admin's
password is the first line and a new password for the person (add, reset) the second."""

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
from cmprep.cli.session import new_password

if TYPE_CHECKING:
    from cmprep.service import Services

ROLES = click.Choice(["technician", "reviewer", "qa", "admin"], case_sensitive=False)
REASON = click.option("--reason", required=True, help="Why: kept in the audit trail.")


def admin_password(actor: str, from_stdin: bool) -> str:
    return read_password(from_stdin, f"Password of {actor} (to authorize)")


@click.group()
def user() -> None:
    """People: add, list, deactivate, change role, unlock, reset; change your password."""


@user.command("add")
@click.argument("name")
@click.option("--full-name", required=True, help="Printed with every signature.")
@click.option("--role", type=ROLES, required=True)
@PASSWORD_STDIN
@with_actor
@with_app
def user_add(
    app: Services, name: str, full_name: str, role: str, password_stdin: bool, actor: str
) -> None:
    """Add a user, with a signing key of their own. The new password is asked twice.

    \b
    Example:
      cmprep user add alice --full-name "Alice Archer" --role technician --as root
      printf 'root-pw\\nalice-initial-pw\\n' | cmprep user add alice --full-name "Alice \\
        Archer" --role technician --as root --password-stdin
    """
    authorizing = admin_password(actor, password_stdin)
    password = new_password(name, password_stdin)
    u = app.people.add(name, full_name, role, password, actor, authorizing)
    click.echo(f"User {u.name} ({u.full_name}, {u.role.value}) added, with a new signing key.")


@user.command("list")
@TABLE_FORMAT
@with_app
def user_list(app: Services, fmt: str) -> None:
    """List users, active and inactive, locked or not.

    \b
    Example:
      cmprep user list
    """
    rows = [u.row() for u in app.people.users().values()]
    cols = ["name", "full_name", "role", "active", "locked", "added_by", "added_at"]
    table(rows, [*cols, "deactivated_at"], fmt)


@user.command("deactivate")
@click.argument("name")
@REASON
@with_actor
@with_app
def user_deactivate(app: Services, name: str, reason: str, actor: str) -> None:
    """Deactivate a user: they can do nothing more; their past entries stay theirs.

    \b
    Example:
      cmprep user deactivate bob --reason "left the lab" --as root
    """
    from cmprep.cli.common import password_from_stdin

    u = app.people.deactivate(name, actor, reason, admin_password(actor, password_from_stdin()))
    click.echo(f"User {u.name} deactivated.")


@user.command("role")
@click.argument("name")
@click.option("--role", type=ROLES, required=True)
@REASON
@with_actor
@with_app
def user_role(app: Services, name: str, role: str, reason: str, actor: str) -> None:
    """Change a user's role.

    \b
    Example:
      cmprep user role rita --role qa --reason "moved to QA" --as root
    """
    from cmprep.cli.common import password_from_stdin

    authorizing = admin_password(actor, password_from_stdin())
    u = app.people.change_role(name, role, actor, reason, authorizing)
    click.echo(f"{u.name} is now {u.role.value}.")


@user.command("unlock")
@click.argument("name")
@REASON
@with_actor
@with_app
def user_unlock(app: Services, name: str, reason: str, actor: str) -> None:
    """Unlock an account locked by too many wrong passwords.

    \b
    Example:
      cmprep user unlock alice --reason "confirmed in person" --as root
    """
    from cmprep.cli.common import password_from_stdin

    u = app.people.unlock(name, actor, reason, admin_password(actor, password_from_stdin()))
    click.echo(f"The account of {u.name} is unlocked.")


@user.command("reset-password")
@click.argument("name")
@REASON
@with_actor
@with_app
def user_reset(app: Services, name: str, reason: str, actor: str) -> None:
    """Give someone who forgot their password a new one, and a new signing key.

    \b
    Example:
      cmprep user reset-password alice --reason "forgot it" --as root
    """
    from cmprep.cli.common import password_from_stdin

    authorizing = admin_password(actor, password_from_stdin())
    password = new_password(name, password_from_stdin())
    u = app.people.reset_password(name, password, actor, reason, authorizing)
    click.echo(
        f"Password of {u.name} reset; a new signing key was issued and their sessions ended."
    )


@user.command("passwd")
@click.option("--as", "name", envvar="CMPREP_USER", required=True, metavar="NAME")
@PASSWORD_STDIN
@with_app
def user_passwd(app: Services, name: str, password_stdin: bool) -> None:
    """Change your own password (your signing key stays the same).

    \b
    Example:
      cmprep user passwd --as alice
    """
    old = read_password(password_stdin, "Current password")
    new = new_password(name, password_stdin)
    u = app.people.change_password(name, old, new)
    click.echo(f"Password of {u.name} changed; log in again.")


@user.command("security-log")
@TABLE_FORMAT
@with_app
def user_security_log(app: Services, fmt: str) -> None:
    """Refused attempts, logins, logouts and locks, oldest first.

    \b
    Example:
      cmprep user security-log --format csv
    """
    table(app.people.security_log(), ["seq", "at", "who", "action", "reason"], fmt)
