"""How a command proves who is acting, and the session file that lets it.

The session token is kept in a file of its own per database (named by the database's id),
in a folder only the OS user can open, created with mode 0600: another OS user on the same
bench computer cannot read it, and the database holds only its hash. The folder is
$CMPREP_SESSIONS, else $XDG_STATE_HOME/cmprep/sessions, else ~/.local/state/cmprep/sessions.

Passwords are read here too: at a hidden prompt, or one line of standard input for scripts,
never as an argument (it would stay in the shell history).
"""

from __future__ import annotations

import os
import stat
import sys
from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:
    from pathlib import Path

    from cmprep.service import Services

STDIN_FLAG = "cmprep.password_stdin"  # ctx.meta: --password-stdin was given
_PASSWORD = "cmprep.password"  # ctx.meta: the password line already read from stdin


def password_from_stdin() -> bool:
    return bool(click.get_current_context().meta.get(STDIN_FLAG))


def read_password(from_stdin: bool, prompt: str = "Password (to sign)") -> str:
    """The person's password: typed at a hidden prompt, or one line on stdin for scripts.
    Never a command-line argument (it would stay in the shell history). The stdin line is
    read once per command: proving who acts and signing use the same password."""
    meta = click.get_current_context().meta
    if from_stdin:
        if _PASSWORD not in meta:
            meta[_PASSWORD] = read_line("--password-stdin: no password on standard input")
        return str(meta[_PASSWORD])
    if _PASSWORD in meta:  # asked for at the prompt a moment ago to prove who acts
        return str(meta[_PASSWORD])
    meta[_PASSWORD] = str(click.prompt(prompt, hide_input=True))
    return str(meta[_PASSWORD])


def read_line(missing: str) -> str:
    """One more line of standard input (a second password), or a usage error."""
    line = sys.stdin.readline()
    if not line:
        raise click.UsageError(missing)
    return line.rstrip("\r\n")


def sessions_dir() -> Path:
    from pathlib import Path  # here: a read such as `batch status` opens no session

    if folder := os.environ.get("CMPREP_SESSIONS"):
        return Path(folder)
    state = os.environ.get("XDG_STATE_HOME") or str(Path.home() / ".local" / "state")
    return Path(state) / "cmprep" / "sessions"


def session_file(app: Services) -> Path:
    return sessions_dir() / f"{app.sessions.database_id()}.session"


def read_token(app: Services) -> str | None:
    """The token of this database's session, or None. A file others could read is not
    trusted (someone may have copied it): it is removed and the person logs in again."""
    path = session_file(app)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return None
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        path.unlink(missing_ok=True)
        raise click.ClickException(
            f"session file {path} could be read by other users, so it was removed; "
            "log in again with `cmprep login`"
        )
    return path.read_text().strip() or None


def write_token(app: Services, token: str) -> Path:
    path = session_file(app)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.parent.chmod(0o700)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    path.chmod(0o600)
    return path


def identify(app: Services, actor: str | None) -> str:
    """Who is acting, proven: a password given for this command (--password-stdin, or the
    prompt at a terminal), else the live session, whose owner only --as may name."""
    from cmprep.errors import Hint, Refused

    if actor and actor.strip().casefold() in app.gate.present:
        return app.gate.person_proven(actor)  # proven earlier in this process
    token = read_token(app)
    if password_from_stdin() or (token is None and actor and sys.stdin.isatty()):
        if not actor:
            if token is None:
                raise click.UsageError("--password-stdin needs --as NAME (or a live session)")
            actor = app.sessions.resume(token).name
        return app.gate.prove(actor, read_password(password_from_stdin(), "Password"), "act").name
    if token is None:
        raise Refused(
            "who is doing this? Nobody is logged in to this database and no password was "
            "given; nothing was written",
            hint=Hint("log_in"),
        )
    try:
        return app.sessions.acting(token, actor).name
    except Refused as err:
        if "session has ended" in str(err):
            session_file(app).unlink(missing_ok=True)
        raise
