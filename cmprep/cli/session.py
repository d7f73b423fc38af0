"""`cmprep init`, `login`, `logout` and `whoami`: a database's first admin, and sessions."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

from cmprep.cli.common import PASSWORD_STDIN, Shell, error_message, with_app
from cmprep.cli.identity import read_line, read_password, read_token, session_file, write_token

if TYPE_CHECKING:
    from cmprep.service import Services


@click.command("init")
@click.option("--admin", "name", required=True, metavar="NAME", help="The first admin's name.")
@click.option("--full-name", required=True, help="Printed with every signature.")
@PASSWORD_STDIN
@click.option("--db", envvar="CMPREP_DB", default=None, metavar="PATH", help="The new file.")
def init(name: str, full_name: str, password_stdin: bool, db: str | None) -> None:
    """Create a database and its first admin. No other command creates a database.

    \b
    Example:
      cmprep init --db lab.db --admin root --full-name "Ada Admin"
    """
    from cmprep.errors import CmprepError, Refused

    try:
        app = click.get_current_context().ensure_object(Shell).services(db, create=True)
        if app.people.users():
            raise Refused(f"{db or 'cmprep.db'} is already a cmprep database with users")
        password = new_password(name, password_stdin)
        user = app.people.add(name, full_name, "admin", password, None)
    except CmprepError as err:
        raise click.ClickException(error_message(err)) from None
    click.echo(
        f"Database {db or 'cmprep.db'} created; {user.name} ({user.full_name}) is its admin."
    )
    click.echo(f"Next: cmprep login --as {user.name}")


def new_password(name: str, from_stdin: bool) -> str:
    """A new password for NAME: typed twice, or the next line of standard input."""
    if from_stdin:
        return read_line(f"--password-stdin: no password for {name} on standard input")
    return str(click.prompt(f"New password for {name}", hide_input=True, confirmation_prompt=True))


@click.command("login")
@click.option("--as", "name", envvar="CMPREP_USER", required=True, metavar="NAME")
@PASSWORD_STDIN
@with_app
def login(app: Services, name: str, password_stdin: bool) -> None:
    """Log in: your password once, then work until you log out or the session times out.

    \b
    Example:
      cmprep login --as alice
    """
    if (old := read_token(app)) is not None:
        app.sessions.logout(old)
    signer, token = app.sessions.login(name, read_password(password_stdin, "Password"))
    write_token(app, token)
    info = app.sessions.info(token)
    click.echo(f"Logged in as {signer.name} ({info.full_name}, {info.role}) until {info.ends_at}")


@click.command("logout")
@with_app
def logout(app: Services) -> None:
    """End your session on this database.

    \b
    Example:
      cmprep logout
    """
    token = read_token(app)
    who = app.sessions.logout(token) if token else None
    session_file(app).unlink(missing_ok=True)
    click.echo(f"{who} logged out." if who else "Nobody was logged in.")


@click.command("whoami")
@with_app
def whoami(app: Services) -> None:
    """Who is logged in to this database, and until when.

    \b
    Example:
      cmprep whoami
    """
    token = read_token(app)
    if token is None:
        click.echo("Nobody is logged in to this database.")
        return
    info = app.sessions.info(token)
    click.echo(f"{info.user} ({info.full_name}, {info.role}), logged in since {info.opened_at}")
    click.echo(f"The session ends at {info.ends_at} unless used again.")
