"""The `cmprep` command line: one module per noun, each command parse, call one service,
print.

Start-up is part of the interface: a technician types `cmprep --help` or `cmprep batch
status` at the bench many times a day. So this module imports click and nothing else: each
noun's module (and what it imports) is loaded only when one of its commands runs or its
own help is shown. `cmprep --help` lists every command from ``COMMANDS`` below, which keeps
each command's one-line help; a test checks that the table says what the commands do.

The services reach the commands through ``ctx.obj`` (a ``Shell``); tests hand in their own
with a clock they control: ``CliRunner().invoke(main, args, obj=Shell(open_services))``.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, MutableMapping
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    from cmprep.cli.common import Shell


class Lazy:
    """A top-level command not imported yet: where it lives and its first sentence of help.

    ``target`` is ``module:attribute``; the attribute is the command, or a function that
    builds it (the hidden ``record`` alias). A plain class: a dataclass would cost more to
    define than the rest of this module at every start.
    """

    __slots__ = ("help", "hidden", "target")

    def __init__(self, target: str, help: str, hidden: bool = False) -> None:
        self.target, self.help, self.hidden = target, help, hidden

    def stub(self, name: str) -> click.Command:
        """A bare command with this help, so click shortens it exactly as the real one's."""
        return click.Command(name, help=self.help, hidden=self.hidden)

    def load(self) -> click.Command:
        module, _, attribute = self.target.partition(":")
        found = getattr(importlib.import_module(module), attribute)
        command = found() if callable(found) and not isinstance(found, click.Command) else found
        if not isinstance(command, click.Command):  # a wrong table entry: a bug here
            raise TypeError(f"{self.target} is not a click command")
        return command


# Every top-level command: name -> where it lives and the first sentence of its help (what
# `cmprep --help` shows, shortened to the terminal's width as click shortens it).
COMMANDS: dict[str, Lazy] = {
    "audit": Lazy(
        "cmprep.cli.audit:audit",
        "Audit: trails, reports across batches, and proof that nothing was changed.",
    ),
    "batch": Lazy("cmprep.cli.batch:batch", "Start batches and record their steps in order."),
    "checklist": Lazy(
        "cmprep.cli.protocol:checklist",
        "Print the SOP checklist of a protocol (HTML for print, Markdown or PDF): a stored "
        "ID, ID@VERSION or a YAML file.",
    ),
    "db": Lazy("cmprep.cli.db:db", "Database maintenance."),
    "deviation": Lazy(
        "cmprep.cli.deviation:deviation",
        "Deviations: open, investigate, close (QA), show and list them.",
    ),
    "equipment": Lazy(
        "cmprep.cli.materials:equipment",
        "Instruments: register them with their calibration due date (and rotor radius).",
    ),
    "export": Lazy(
        "cmprep.cli.export:export",
        "Export batch records: an .eln archive (signed), or a long CSV/XLSX table; verify "
        "an archive without a database.",
    ),
    "init": Lazy("cmprep.cli.session:init", "Create a database and its first admin."),
    "label": Lazy(
        "cmprep.cli.label:label",
        "Print labels of a lot (50 x 25 mm): lot id, product, status, expiry, QR and Code 128.",
    ),
    "login": Lazy(
        "cmprep.cli.session:login",
        "Log in: your password once, then work until you log out or the session times out.",
    ),
    "logout": Lazy("cmprep.cli.session:logout", "End your session on this database."),
    "materials": Lazy(
        "cmprep.cli.materials:materials",
        "Materials from donor to aliquot: register, derive, release, trace and recall them.",
    ),
    "protocol": Lazy(
        "cmprep.cli.protocol:protocol",
        "Master protocols: import, approve, retire, list, show and check them.",
    ),
    "qc": Lazy(
        "cmprep.cli.qc:qc", "Secretome QC: import results, control charts, group comparisons."
    ),
    # `cmprep record BATCH` is the old name of `cmprep batch record-doc`; kept for scripts,
    # hidden from the help so it no longer reads like `batch record`.
    "record": Lazy(
        "cmprep.cli:record_alias",
        "Render the batch record a QA reviewer signs (HTML for print, Markdown or PDF).",
        hidden=True,
    ),
    "serve": Lazy(
        "cmprep.cli.serve:serve",
        "Serve the bench web page: sign in, the bench board, step pages, verification, QA.",
    ),
    "site": Lazy(
        "cmprep.cli.site:site",
        "Site settings: shown to all, changed by an admin with their password.",
    ),
    "user": Lazy(
        "cmprep.cli.user:user",
        "People: add, list, deactivate, change role, unlock, reset; change your password.",
    ),
    "whoami": Lazy(
        "cmprep.cli.session:whoami", "Who is logged in to this database, and until when."
    ),
}


class _Commands(MutableMapping[str, click.Command]):
    """A group's commands by name, each imported the first time it is looked up.

    Names, ``in`` and ``len`` need no import; ``[name]``, ``get`` and ``items()`` load
    what they return. click and the tests see an ordinary mapping.
    """

    def __init__(self, loaded: Mapping[str, click.Command], lazy: Mapping[str, Lazy]) -> None:
        self.loaded = dict(loaded)
        self.lazy = lazy

    def __getitem__(self, name: str) -> click.Command:
        if name not in self.loaded:
            if name not in self.lazy:
                raise KeyError(name)
            self.loaded[name] = self.lazy[name].load()
        return self.loaded[name]

    def __setitem__(self, name: str, command: click.Command) -> None:
        self.loaded[name] = command

    def __delitem__(self, name: str) -> None:
        del self.loaded[name]

    def __iter__(self) -> Iterator[str]:
        yield from self.loaded
        yield from (n for n in self.lazy if n not in self.loaded)

    def __len__(self) -> int:
        return len(self.loaded.keys() | self.lazy.keys())

    def __contains__(self, name: object) -> bool:
        return name in self.loaded or name in self.lazy


class LazyGroup(click.Group):
    """A click group whose commands are imported when one runs or shows its help.

    Its own help lists every command from the table's one-line texts, importing none.
    """

    def __init__(self, *args: Any, lazy: Mapping[str, Lazy], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.commands = _Commands(self.commands, lazy)
        self.lazy = lazy

    def invoke(self, ctx: click.Context) -> Any:
        """Run the command; Ctrl-C ends it with status 130 (what a shell reports for an
        interrupt) and says what became of the work, not click's bare "Aborted!"."""
        try:
            return super().invoke(ctx)
        except (KeyboardInterrupt, click.Abort) as err:
            if not isinstance(err, KeyboardInterrupt) and not isinstance(
                err.__context__, KeyboardInterrupt
            ):
                raise  # the end of the input at a prompt: click's own answer
            from cmprep.errors import INTERRUPTED, INTERRUPTED_SAID

            click.echo(INTERRUPTED_SAID, err=True)
            raise click.exceptions.Exit(INTERRUPTED) from None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """As click's, but a command not imported yet is described from the table."""
        loaded = self.commands.loaded if isinstance(self.commands, _Commands) else self.commands
        shown: list[tuple[str, Lazy | click.Command]] = []
        for name in self.list_commands(ctx):
            found = loaded.get(name) or self.lazy.get(name)
            if found is not None and not found.hidden:
                shown.append((name, found))
        if not shown:
            return
        limit = formatter.width - 6 - max(len(name) for name, _ in shown)
        rows = [
            (
                name,
                (found.stub(name) if isinstance(found, Lazy) else found).get_short_help_str(limit),
            )
            for name, found in shown
        ]
        with formatter.section("Commands"):
            formatter.write_dl(rows)


def record_alias() -> click.Command:
    """The hidden ``cmprep record``: ``batch record-doc`` under its old name."""
    from cmprep.cli.batch import batch

    doc = batch.commands["record-doc"]
    return click.Command(
        "record", params=doc.params, callback=doc.callback, hidden=True, help=doc.help
    )


@click.group(cls=LazyGroup, lazy=COMMANDS, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cmprep")
@click.pass_context
def main(ctx: click.Context) -> None:
    """Batch records for MSC-conditioned medium.

    \b
    Example:
      cmprep init --admin root --full-name "Ada Admin"
      cmprep user add alice --full-name "Alice Archer" --role technician --as root
      cmprep login --as alice
      cmprep batch start cm-standard-serum-free
      cmprep batch run CM-20261129-001
    """
    from cmprep.cli.common import Shell

    ctx.ensure_object(Shell)


def __getattr__(name: str) -> Any:
    """``Shell`` is imported when asked for (tests and the web shell), not at start-up."""
    if name == "Shell":
        from cmprep.cli.common import Shell

        return Shell
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["COMMANDS", "LazyGroup", "Shell", "main"]
