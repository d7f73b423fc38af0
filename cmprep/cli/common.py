"""What every command shares: the services (through ``ctx.obj``), the error handler, the
options used by several nouns, and tables, JSON and files.

Only click is imported at start-up; the service, pydantic, jinja2 and WeasyPrint are
imported when a command runs, so `cmprep --help` at the bench answers at once.
"""

from __future__ import annotations

import functools
import sys
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import click

from cmprep.cli.hints import say
from cmprep.cli.identity import (
    STDIN_FLAG,
    identify,
    password_from_stdin,
    read_line,
    read_password,
)

if TYPE_CHECKING:
    from cmprep.service import Services

F = TypeVar("F", bound=Callable[..., Any])


class Shell:
    """``ctx.obj``: how a command gets its services. Tests pass one with their own clock."""

    def __init__(self, open_services: Callable[[str | None], Services] | None = None) -> None:
        self._open = open_services

    def services(self, db: str | None, *, create: bool = False, pool: bool = False) -> Services:
        """The services on database DB; only ``init`` passes CREATE (a new file), and a
        server answering many requests POOL (a lent PostgreSQL connection)."""
        from cmprep.store import open_store

        if create:
            open_store(db, create=True).close()
        if self._open is not None:
            return self._open(db)
        from cmprep.service import Services

        return Services(open_store(db, pool=pool))


def error_message(err: BaseException) -> str:
    """Any error this program raises, as the plain text a technician reads."""
    from cmprep.errors import CmprepError

    if isinstance(err, CmprepError):
        return shown(say(err), keep="\n")
    if isinstance(err, OSError):  # an output file that cannot be written, a full disk
        where = f" {err.filename}" if err.filename else ""
        return f"cannot write{where}: {err.strerror or err}"
    raise err


def quiet_exit() -> None:
    """End a command whose reader went away (a pipe into ``head`` closed): nothing more is
    said, and the status is 141 (128 + SIGPIPE), what a shell reports for such a writer.
    Standard output is pointed at /dev/null first, so the flush at exit does not fail
    again with a traceback."""
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):  # no real file behind stdout (a test)
        pass
    raise click.exceptions.Exit(141)


ACTS = "cmprep.acts"  # ctx.meta: the command writes as someone (with_actor), who must be proven


def shown(text: str, keep: str = "") -> str:
    """TEXT safe for a terminal: control characters (ESC, BEL, NUL ...) written as escapes,
    so a value stored before they were refused cannot recolour or clear the screen."""
    from cmprep.domain.text import printable

    return printable(text, allow=keep)


def with_app(func: F) -> F:
    """Adds --db, hands the command its services, proves who is acting (for a command that
    takes ``actor``), and turns every cmprep error into a plain message and exit status 1
    (never a traceback)."""

    @click.option(
        "--db",
        envvar="CMPREP_DB",
        default=None,
        metavar="PATH",
        help="Database file (default ./cmprep.db, or $CMPREP_DB).",
    )
    @functools.wraps(func)
    def wrapper(*args: Any, db: str | None, **kwargs: Any) -> Any:
        from cmprep.errors import CmprepError

        shell = click.get_current_context().ensure_object(Shell)
        try:
            app = shell.services(db)
            if click.get_current_context().meta.get(ACTS):  # a write: prove who acts
                kwargs["actor"] = identify(app, kwargs["actor"])
            return func(*args, app=app, **kwargs)
        except BrokenPipeError:  # `cmprep ... | head`: the reader has all it wanted
            quiet_exit()
        except (CmprepError, OSError) as err:
            raise click.ClickException(error_message(err)) from None

    # functools.wraps types this as _Wrapped, not F, and it takes --db where the command
    # took app=; only click calls it, by the options it declares
    return wrapper  # type: ignore[return-value]


def with_actor(func: F) -> F:
    """Adds --as NAME (or $CMPREP_USER) and --password-stdin: who is doing this, proven.

    A name is never believed alone: the acting person is the owner of the live session
    (``cmprep login``), or the person whose password is given for this one command. The
    command's own --password-stdin (a signing command's) is reused, not declared twice.
    """
    import inspect

    has_own = "password_stdin" in inspect.signature(func).parameters

    @functools.wraps(func)
    def wrapper(*args: Any, actor: str | None, **kwargs: Any) -> Any:
        meta = click.get_current_context().meta
        meta[STDIN_FLAG] = kwargs["password_stdin"] if has_own else kwargs.pop("password_stdin")
        meta[ACTS] = True
        return func(*args, actor=actor, **kwargs)

    if not has_own:
        wrapper = PASSWORD_STDIN(wrapper)
    wrapper = click.option(
        "--as",
        "actor",
        envvar="CMPREP_USER",
        default=None,
        metavar="NAME",
        help="Who is doing this: your own name when logged in, or anyone's with their "
        "password (--password-stdin or the prompt).",
    )(wrapper)
    # as in with_app: a _Wrapped, not F; only click calls it
    return wrapper  # type: ignore[return-value]


def entries(pairs: tuple[str, ...]) -> dict[str, str]:
    """NAME=VALUE arguments as a dict; a malformed or repeated one is a usage error."""
    found: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise click.UsageError(
                f"expected NAME=VALUE, got {pair!r} (e.g. rcf=400 or rcf='400 x g')"
            )
        if name in found:
            raise click.UsageError(f"{name} is given twice; give each value once")
        found[name] = value
    return found


def echo_json(data: Any) -> None:
    from cmprep.render.view import json_text

    click.echo(json_text(data))


def write_or_print(content: str | bytes | Iterable[str], output: str | None, what: str) -> None:
    """CONTENT to the file OUTPUT (whole or not at all), or printed; given in parts (a long
    report), each part is written or printed as it is made."""
    from cmprep.render.output import write_output

    if output:
        path = write_output(content, output)
        click.echo(f"{what} written to {path}")
    elif isinstance(content, bytes):
        raise click.UsageError("PDF output needs -o FILE")
    elif isinstance(content, str):
        click.echo(content, nl=False)
    else:
        for part in content:
            click.echo(part, nl=False)


DOC_SUFFIXES = {".html": "html", ".htm": "html", ".md": "md", ".pdf": "pdf"}


def need_output(fmt: str | None, output: str | None) -> str:
    """The document format: --format FMT, else the one -o FILE's extension names (record.pdf
    is a PDF), else HTML. A format and an extension that disagree are refused: a .pdf file
    holding HTML opens as a broken PDF at the printer."""
    import os.path

    named = DOC_SUFFIXES.get(os.path.splitext(output or "")[1].lower())
    if fmt is not None and named is not None and fmt != named:
        raise click.UsageError(
            f"-o {output} names a {named.upper()} file but --format {fmt} was given; "
            f"drop --format (the extension decides) or give a .{fmt} file name"
        )
    fmt = fmt or named or "html"
    if fmt == "pdf" and not output:
        raise click.UsageError("PDF output needs -o FILE (e.g. -o record.pdf)")
    return fmt


def day(app: Services, text: str | None, option: str) -> str | None:
    """A date or ISO time typed at an option, as the UTC text the store compares against:
    a date is its midnight in the site's time zone (the ``timezone`` setting, read only
    for a date)."""
    if not text:
        return None
    from cmprep.domain.clock import parse_day_or_time

    is_date = len(text.strip()) == len("2026-11-01")
    zone = app.ctx.settings().timezone if is_date else "UTC"
    try:
        return parse_day_or_time(text, zone)
    except ValueError as err:
        raise click.BadParameter(str(err), param_hint=option) from None


def when(app: Services) -> Callable[[str | None], str]:
    """How this site reads a stored time: in its time zone (the ``timezone`` setting), with
    the offset. Only screens use it: JSON, CSV and the trail's data keep UTC."""
    from cmprep.domain.clock import local

    zone = app.ctx.settings().timezone
    return lambda text: local(text, zone)


def table(rows: list[dict[str, Any]], cols: list[str], fmt: str) -> None:
    """Rows as an aligned table, CSV (formula-safe) or JSON."""
    if fmt == "json":
        echo_json(rows)
        return
    if fmt == "csv":
        import csv

        from cmprep.render.output import csv_safe

        writer = csv.DictWriter(
            sys.stdout, fieldnames=cols, extrasaction="ignore", lineterminator="\n"
        )
        writer.writeheader()
        for row in rows:
            writer.writerow({c: csv_safe(row.get(c)) for c in cols})
        return
    if not rows:
        click.echo("(none)")
        return
    cells = [{c: shown(str(r.get(c, "") or "")) for c in cols} for r in rows]
    widths = {c: max(len(c), *(len(r[c]) for r in cells)) for c in cols}
    click.echo("  ".join(c.ljust(widths[c]) for c in cols).rstrip())
    for r in cells:
        click.echo("  ".join(r[c].ljust(widths[c]) for c in cols).rstrip())


def stream_table(
    fetch: Callable[[tuple[str, ...]], Iterable[Sequence[Any]]], cols: list[str], fmt: str
) -> None:
    """Rows from the store, printed as they arrive: CSV (formula-safe), JSON, or an aligned
    table. FETCH gives the rows of the columns asked for, afresh at each call.

    No format holds the list: CSV and JSON are written row by row (JSON from each stored
    row's own text, one object a line), and the table reads the rows twice, once for the
    width of each column and once to print them.
    """
    from cmprep.store.query import ROW

    out = sys.stdout
    if fmt == "json":
        first = True
        for (text,) in fetch((ROW,)):
            out.write(("[\n  " if first else ",\n  ") + text)
            first = False
        out.write("[]\n" if first else "\n]\n")
        return
    columns = tuple(cols)
    if fmt == "csv":
        import csv

        from cmprep.render.output import csv_safe

        writer = csv.writer(out, lineterminator="\n")
        writer.writerow(cols)
        writer.writerows([csv_safe(v) for v in row] for row in fetch(columns))
        return
    widths, count = [len(c) for c in cols], 0
    for row in fetch(columns):
        widths = [max(w, len(_cell(v))) for w, v in zip(widths, row, strict=True)]
        count += 1
    if not count:
        click.echo("(none)")
        return
    out.write("  ".join(c.ljust(w) for c, w in zip(cols, widths, strict=True)).rstrip() + "\n")
    for row in fetch(columns):
        out.write(
            "  ".join(_cell(v).ljust(w) for v, w in zip(row, widths, strict=True)).rstrip() + "\n"
        )


def _cell(value: Any) -> str:
    """One value as a table shows it: empty for none, control characters escaped."""
    text = str(value or "")
    return text if text.isprintable() else shown(text)


TABLE_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json"], case_sensitive=False),
    default="table",
    show_default=True,
    help="table for reading; csv or json for export.",
)
TEXT_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json"], case_sensitive=False),
    default="text",
    show_default=True,
)
DOC_FORMAT = click.option(
    "--format",
    "fmt",
    type=click.Choice(["html", "md", "pdf"], case_sensitive=False),
    default=None,
    help="html (the default), md or pdf; with -o FILE, the file's extension decides.",
)
OUTPUT = click.option(
    "-o", "--output", type=click.Path(dir_okay=False), help="Write to FILE (needed for pdf)."
)
PASSWORD_STDIN = click.option(
    "--password-stdin",
    is_flag=True,
    help="Read your password from standard input (one line) instead of a prompt.",
)
KEY = click.option(
    "--key",
    default=None,
    metavar="KEY",
    help="Idempotency key: the same command sent twice with it is saved once.",
)

__all__ = ["STDIN_FLAG", "password_from_stdin", "read_line", "read_password"]
