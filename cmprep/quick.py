"""The question asked most at the bench, answered without loading the command-line framework.

``cmprep batch status BATCH`` is typed between every two steps, and loading click is about
a third of its time. So the ``cmprep`` command first looks whether the words typed are
exactly a status (the batch, ``--format text|json``, ``--db PATH``, in any order, each
once) and, if so, answers it here: the same services, the same screen
(``render/status_text.py``), the same JSON, the same time zone.

Anything else goes to the full command line, which says it as always: another command,
help, an option this path does not know, a repeated one, a value that looks like an
option, an output that is not UTF-8, and any error at all, raised before a byte is written
(a batch that does not exist, a database that cannot be opened). This path only ever
answers a status that succeeds; `tests/test_quick.py` holds its answers to the full
command's, byte for byte, over generated command lines.
"""

from __future__ import annotations

import os
import sys
from typing import NamedTuple

FORMATS = ("text", "json")
_OPTIONS = ("--format", "--db")


class Status(NamedTuple):
    """A status command line as this path reads it."""

    batch: str
    fmt: str
    db: str | None  # None: $CMPREP_DB, else the default database


def parse(args: list[str]) -> Status | None:
    """ARGS as a status this path answers, or None for the full command line to read."""
    if args[:2] != ["batch", "status"]:
        return None
    found: dict[str, str] = {}
    batch: str | None = None
    rest = iter(args[2:])
    for word in rest:
        if not word.startswith("-"):
            if batch is not None or not word:
                return None
            batch = word
            continue
        name, equals, value = word.partition("=")
        if name not in _OPTIONS or name in found:
            return None
        if not equals:
            value = next(rest, "")
        if not value or value.startswith("-"):
            return None
        found[name] = value
    fmt = found.get("--format", "text")
    if batch is None or not fmt.isascii() or fmt.lower() not in FORMATS:
        return None
    db = found.get("--db") or os.environ.get("CMPREP_DB") or None
    return Status(batch, fmt.lower(), db)


def _utf8(stream: object) -> bool:
    """Whether STREAM writes UTF-8, as click writes to a terminal set up for it."""
    import codecs

    encoding = getattr(stream, "encoding", None)
    try:
        return bool(encoding) and codecs.lookup(str(encoding)).name == "utf-8"
    except LookupError:
        return False


def answer(args: list[str]) -> bool:
    """Answer ARGS if they are a status this path can answer whole; False leaves them
    (and any error) to the full command line, nothing having been written."""
    asked = parse(args)
    if asked is None or not _utf8(sys.stdout):
        return False
    try:
        text = _status_text(asked)
    except KeyboardInterrupt:
        from cmprep.errors import INTERRUPTED, INTERRUPTED_SAID

        sys.stderr.write(INTERRUPTED_SAID + "\n")
        raise SystemExit(INTERRUPTED) from None
    except Exception:  # said by the full command line, which does it all again
        return False
    if text is None:
        return False
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:  # `cmprep batch status B | head`: the reader has what it wanted
        _quiet_exit()
    return True


def _status_text(asked: Status) -> str | None:
    """The whole answer, or None where click would write other bytes (an escape
    sequence, which click strips when the output is not a terminal)."""
    from functools import partial

    from cmprep.domain.clock import local
    from cmprep.service import Services
    from cmprep.service.status import status
    from cmprep.store import open_store

    app = Services(open_store(asked.db))
    try:
        view = status(app.batch(asked.batch))
        if asked.fmt == "json":
            from cmprep.render.view import json_text

            text = json_text(view.to_json()) + "\n"
        else:
            from cmprep.render.status_text import status_lines

            when = partial(local, zone=app.ctx.settings().timezone)
            text = "".join(line + "\n" for line in status_lines(view, when))
    finally:
        app.close()
    return None if "\x1b" in text else text


def _quiet_exit() -> None:
    """As the full command line ends when its reader went away: nothing more said, status
    141 (128 + SIGPIPE), standard output pointed at /dev/null so the flush at exit is quiet."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass
    raise SystemExit(141)
