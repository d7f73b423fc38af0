"""The layers hold: no import circles, imports point down only, commands stay thin, every
error reaches a person as a sentence (never a traceback), and nothing below the shells
speaks in command-line flags.

The import graph is read from the source with ``ast`` (no module is imported), so a circle
hidden inside a function is caught too.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import click
import pytest

import cmprep
from cmprep import errors
from cmprep.cli import main
from cmprep.cli.common import error_message
from cmprep.cli.hints import HINTS, hint_text

PACKAGE = Path(cmprep.__file__).resolve().parent


def _module_name(path: Path) -> str:
    parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


MODULES = _modules()


def _imports(path: Path) -> set[str]:
    """Every cmprep module this file imports, at the top or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            for alias in node.names:  # `from cmprep.x import y`: y is a module or a name in x
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in MODULES else node.module)
    return {m for m in found if m in MODULES and m != "cmprep"}


GRAPH = {name: _imports(path) - {name} for name, path in MODULES.items()}


def _cycles() -> list[list[str]]:
    """Every strongly connected group of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []
    counter = [0]

    def visit(v: str) -> None:
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in GRAPH[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                out.append(sorted(group))

    for v in sorted(GRAPH):
        if v not in index:
            visit(v)
    return out


def test_no_import_circles_anywhere_in_cmprep():
    assert _cycles() == []


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


# what each layer may import (besides itself); imports point down only
ALLOWED = {
    "errors": set(),
    "digest": set(),  # SHA-256 with hashlib loaded at the first hash: a leaf, like errors
    "events": {"errors", "digest"},
    "resources": set(),
    "protocol": {"errors", "digest", "events", "resources"},
    "domain": {"errors", "digest", "events", "protocol"},
    "store": {"errors", "events"},
    "render": {"errors", "events", "protocol", "domain", "resources", "views"},
    "views": {"errors", "events", "protocol", "domain"},
    "service": {"errors", "events", "protocol", "domain", "store", "render", "resources", "views"},
    "cli": {"errors", "events", "protocol", "domain", "store", "render", "service", "views", "web"},
    # the second shell: like the CLI, over the service (store only for its typed filters)
    "web": {
        "errors",
        "events",
        "protocol",
        "domain",
        "store",
        "render",
        "service",
        "resources",
        "views",
    },
    "demo": {"errors", "protocol", "domain", "store", "render", "service", "views"},
    # the entry point: the quick path of `batch status`, else the command line
    "__main__": {"cli", "quick"},
    # a shell for one question, over the service like the CLI (store only to open it)
    "quick": {"errors", "domain", "store", "render", "service"},
    "": set(),
}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_point_down_the_layers(module):
    layer = _layer(module)
    allowed = ALLOWED.get(layer)
    assert allowed is not None, f"{module}: a new top-level module; add its layer to ALLOWED"
    wrong = sorted(m for m in GRAPH[module] if _layer(m) not in allowed | {layer})
    assert wrong == [], f"{module} ({layer}) imports {wrong}"


def test_the_domain_imports_no_store_service_render_or_shell():
    for module, imported in GRAPH.items():
        if _layer(module) == "domain":
            assert not {_layer(m) for m in imported} & {"store", "service", "render", "cli"}


def test_render_never_fetches():
    for module, imported in GRAPH.items():
        if _layer(module) == "render":
            assert not {_layer(m) for m in imported} & {"store", "service", "cli"}, module


# --- commands stay thin ----------------------------------------------------------------------
def _commands(group: click.Group, prefix: str = "") -> list[tuple[str, click.Command]]:
    found = []
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            found += _commands(cmd, f"{prefix}{name} ")
        else:
            found.append((f"{prefix}{name}", cmd))
    return found


COMMANDS = _commands(main)


def _source_lines(cmd: click.Command) -> int:
    """Lines from ``def`` to the end of the function (its decorators not counted)."""
    assert cmd.callback is not None
    lines = inspect.getsourcelines(inspect.unwrap(cmd.callback))[0]
    start = next(i for i, line in enumerate(lines) if line.lstrip().startswith("def "))
    return len(lines) - start


@pytest.mark.parametrize("name,cmd", COMMANDS, ids=[n for n, _ in COMMANDS])
def test_no_command_function_is_over_40_lines(name, cmd):
    assert _source_lines(cmd) <= 40, f"`cmprep {name}` is {_source_lines(cmd)} lines"


def test_every_command_has_help_with_an_example():
    for name, cmd in COMMANDS:
        assert cmd.help and "Example:" in cmd.help, f"`cmprep {name}` has no example"


# --- one error tree -----------------------------------------------------------------------
def _subclasses(cls: type) -> list[type]:
    out = []
    for sub in cls.__subclasses__():
        out += [sub, *_subclasses(sub)]
    return out


ERROR_CLASSES = [errors.CmprepError, *_subclasses(errors.CmprepError)]


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_reaches_a_person_as_a_sentence_not_a_traceback(cls):
    """Each error, raised inside a command, ends as a message and exit status 1."""
    if cls.__module__ == "cmprep.protocol.loader":
        from cmprep.protocol.loader import Problem

        err = cls([Problem("p.yaml", 3, "steps", "something is wrong")])
    else:
        err = cls("something is wrong", ["first problem"], hint=errors.Hint("give_reason"))

    @click.command()
    def boom() -> None:
        raise click.ClickException(error_message(err))

    from click.testing import CliRunner

    result = CliRunner().invoke(boom, [])
    assert result.exit_code == 1
    assert "something is wrong" in result.output
    assert "Traceback" not in result.output
    if cls.__module__ != "cmprep.protocol.loader":
        assert "first problem" in result.output and "--reason TEXT" in result.output


def test_the_cli_error_handler_catches_every_cmprep_error_from_a_real_command(tmp_path):
    """A real command whose service raises: the same handler, a sentence, exit status 1."""
    from click.testing import CliRunner

    from cmprep.cli import Shell

    def broken(db):
        raise errors.ClockBehind("the clock is behind", hint=errors.Hint("check_clock"))

    result = CliRunner().invoke(main, ["batch", "list"], obj=Shell(broken))
    assert result.exit_code == 1
    assert "the clock is behind Check the computer's clock" in result.output


def test_every_hint_kind_has_a_sentence_on_the_command_line():
    assert set(HINTS) == set(errors.HINT_KINDS)
    for kind in errors.HINT_KINDS:
        fields = set(re.findall(r"{(\w+)}", HINTS[kind]))
        text = hint_text(errors.Hint(kind, **{f: "X-1" for f in fields}))
        assert text and "{" not in text, kind


def test_an_unknown_hint_kind_is_refused_where_it_is_written():
    with pytest.raises(ValueError, match="unknown hint"):
        errors.Hint("do_something_vague")


# --- nothing below the shells speaks in flags ----------------------------------------------
CLI_SYNTAX = re.compile(r"`cmprep |(?<![\w-])--[a-z][a-z-]+|CMPREP_USER")


@pytest.mark.parametrize(
    "module",
    sorted(m for m in MODULES if _layer(m) in ("service", "domain", "store", "protocol", "errors")),
)
def test_service_and_domain_messages_name_no_command_line_syntax(module):
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    docstrings = {
        id(n.body[0].value)
        for n in ast.walk(tree)
        if isinstance(n, (ast.Module, ast.FunctionDef, ast.ClassDef, ast.AsyncFunctionDef))
        and n.body
        and isinstance(n.body[0], ast.Expr)
        and isinstance(n.body[0].value, ast.Constant)
    }
    found = [
        node.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and id(node) not in docstrings
        and CLI_SYNTAX.search(node.value)
    ]
    assert found == [], f"{module} says {found}"


def test_every_dataclass_says_what_it_is():
    """Docstrings say why; and a dataclass without one has `dataclasses` build one from
    `inspect.signature` when its module is imported (about 0.2 ms a class on the bench
    machine, paid at every start of a command that imports it)."""
    bare = []
    for name, path in MODULES.items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.ClassDef) and ast.get_docstring(node) is None:
                decorators = [ast.unparse(d) for d in node.decorator_list]
                if any(d.split("(")[0].endswith("dataclass") for d in decorators):
                    bare.append(f"{name}.{node.name}")
    assert bare == []
