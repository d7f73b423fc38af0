"""Reading protocol files: YAML in, a validated Protocol or a list of every problem out.

QA fixes a protocol file by its error list, so the list names file, line and field for
every problem at once rather than stopping at the first one.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cmprep.errors import CmprepError
from cmprep.protocol.checks import CrossReferenceError, Loc
from cmprep.protocol.models import Protocol
from cmprep.protocol.schema import validate
from cmprep.protocol.text import control_problem

MAX_BYTES = 512 * 1024  # a protocol is a few KiB; anything this large is not one
# steps[3].parameters[0].spec.min is six levels deep; YAML nested far deeper is not a
# protocol, and the composer recurses once per level (1,000 levels: RecursionError).
MAX_DEPTH = 32
# No limit, count or bound in a protocol needs more digits than this; Python refuses to
# read an integer of over 4,300 digits at all (ValueError), so it is refused before that.
MAX_DIGITS = 100
# Text fields that are paragraphs: a line break (and a tab) is part of the text there.
# Everywhere else (titles, labels, choices, units) a control character is refused.
LONG_TEXT = frozenset({"instructions", "summary", "help", "note", "citation"})
_INT_TAG = "tag:yaml.org,2002:int"


@dataclass(frozen=True)
class Problem:
    """One problem found in a protocol file: where (file, line, field) and what, in words."""

    file: str
    line: int | None
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        field = f" {self.field}:" if self.field else ""
        return f"{where}:{field} {self.message}"


class ProtocolError(CmprepError, ValueError):
    """A protocol file that cannot be used; carries every problem found.

    Like every error of the tree, ``problems`` is the text of each problem (what a shell
    prints); ``details`` keeps them as ``Problem`` objects, so a caller (QA's editor, a
    test) can read the file, line and field of each without parsing the text back.
    """

    def __init__(self, problems: list[Problem]) -> None:
        files = sorted({p.file for p in problems})
        super().__init__(
            f"{', '.join(files) or 'the protocol'} is not a usable protocol",
            [str(p) for p in problems],
        )
        self.details = list(problems)


class _TooDeep(Exception):
    """Raised by the composer past MAX_DEPTH, with the line it got to."""

    def __init__(self, line: int) -> None:
        super().__init__(line)
        self.line = line


class _Loader(yaml.SafeLoader):
    """The safe loader, refusing nesting deeper than MAX_DEPTH while it composes."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise _TooDeep(event.start_mark.line + 1)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


@dataclass
class _Scan:
    """What a walk over the composed YAML found: the line of every key and item, and the
    problems that are in the text itself rather than in what it means."""

    lines: dict[Loc, int] = field(default_factory=dict)
    found: list[tuple[Loc, int, str]] = field(default_factory=list)  # place, line, message
    huge: set[Loc] = field(default_factory=set)  # numbers too long to read, already said


def _scan(root: yaml.Node) -> _Scan:
    """Walk every node once, without recursion: the line of every mapping key and
    sequence item, duplicate keys, nesting past MAX_DEPTH, control characters in text,
    and integers too long to read (these are turned into text, so constructing the
    document cannot fail on them and the rest of the file is still checked).

    A node reached again through a YAML alias is not walked twice: a recursive alias
    would never end and nested aliases would grow exponentially. Aliases can also chain
    deeper than the text is nested, so depth is counted here as well as in the loader.
    """
    scan = _Scan()
    seen_nodes: set[int] = set()
    stack: list[tuple[yaml.Node, Loc]] = [(root, ())]
    while stack:
        node, path = stack.pop()
        if id(node) in seen_nodes:
            continue
        seen_nodes.add(id(node))
        line = node.start_mark.line + 1
        if len(path) > MAX_DEPTH:
            scan.found.append((path[:MAX_DEPTH], line, _TOO_DEEP))
            continue
        children: list[tuple[yaml.Node, Loc]] = []
        if isinstance(node, yaml.MappingNode):
            keys: set[str] = set()
            for key_node, value_node in node.value:
                key = str(key_node.value)
                key_path: Loc = (*path, key)
                key_line = key_node.start_mark.line + 1
                if key in keys:
                    scan.found.append((key_path, key_line, "key appears twice"))
                keys.add(key)
                scan.lines.setdefault(key_path, key_line)
                if isinstance(key_node, yaml.ScalarNode):
                    _check_text(key_node, key_path, "the key", "", scan)
                children.append((value_node, key_path))
        elif isinstance(node, yaml.SequenceNode):
            for i, item in enumerate(node.value):
                item_path: Loc = (*path, i)
                scan.lines.setdefault(item_path, item.start_mark.line + 1)
                children.append((item, item_path))
        elif isinstance(node, yaml.ScalarNode):
            named = [p for p in path if isinstance(p, str)]
            long_text = bool(named) and named[-1] in LONG_TEXT
            _check_text(node, path, "the text", "\n\t" if long_text else "", scan)
            if node.tag == _INT_TAG and sum(c.isalnum() for c in node.value) > MAX_DIGITS:
                scan.found.append(
                    (
                        path,
                        line,
                        f"a number {len(node.value)} characters long; "
                        f"no protocol value needs over {MAX_DIGITS} digits",
                    )
                )
                scan.huge.add(path)
                node.tag = "tag:yaml.org,2002:str"
        stack.extend(reversed(children))
    return scan


_TOO_DEEP = (
    f"nested more than {MAX_DEPTH} levels deep; a protocol is a few levels "
    "(steps, their parameters, a parameter's spec)"
)


def _check_text(node: yaml.ScalarNode, path: Loc, what: str, allow: str, scan: _Scan) -> None:
    """Control characters in text (written as escapes in a quoted YAML string, e.g.
    "\\x1b"; the YAML reader itself refuses them typed raw), with line breaks and tabs
    allowed in the paragraph fields."""
    problem = control_problem(str(node.value), what, allow)
    if problem:
        scan.found.append((path, node.start_mark.line + 1, problem))


def _line_for(loc: Loc, lines: dict[Loc, int]) -> int | None:
    loc = tuple(loc)
    while loc:
        if loc in lines:
            return lines[loc]
        loc = loc[:-1]
    return None


def _field_name(loc: Loc, data: Any) -> str:
    """steps[3].parameters[0].spec, with the step's id when it has one: easier to find."""
    parts: list[str] = []
    node = data
    for item in loc:
        if isinstance(item, int):
            label = f"[{item}]"
            if isinstance(node, list) and item < len(node) and isinstance(node[item], dict):
                ident = node[item].get("id") or node[item].get("name")
                if isinstance(ident, str):
                    label = f"[{item}:{ident}]"
            parts.append(label)
            node = node[item] if isinstance(node, list) and item < len(node) else None
        else:
            parts.append(("." if parts else "") + str(item))
            node = node.get(item) if isinstance(node, dict) else None
    return "".join(parts)


def parse_text(text: str, filename: str) -> Protocol:
    """Validate protocol YAML text; raise ProtocolError listing every problem."""
    if len(text.encode()) > MAX_BYTES:
        raise ProtocolError(
            [
                Problem(
                    filename,
                    None,
                    "",
                    f"file is {len(text.encode())} bytes; a protocol must be under {MAX_BYTES}",
                )
            ]
        )
    try:
        return _parse(text, filename)
    except RecursionError:  # a last guard: the depth limits above should come first
        raise ProtocolError([Problem(filename, None, "", _TOO_DEEP)]) from None


def _parse(text: str, filename: str) -> Protocol:
    try:
        loader = _Loader(text)
        try:
            node = loader.get_single_node()
            scan = _scan(node) if node is not None else _Scan()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
    except _TooDeep as err:
        raise ProtocolError([Problem(filename, err.line, "", _TOO_DEEP)]) from None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        line = mark.line + 1 if mark else None
        reason = getattr(err, "problem", None) or str(err)
        raise ProtocolError([Problem(filename, line, "", f"not valid YAML: {reason}")]) from None
    if node is None or not isinstance(data, dict):  # no document is an empty one
        kind = "empty" if data is None else type(data).__name__
        raise ProtocolError(
            [
                Problem(
                    filename,
                    1,
                    "",
                    f"a protocol is a YAML mapping (id:, version:, steps: ...), not {kind}",
                )
            ]
        )
    lines = scan.lines
    problems = [
        Problem(filename, line, _field_name(path, data), message)
        for path, line, message in scan.found
    ]
    try:
        protocol = validate(data)
    except ValidationError as err:
        for e in err.errors():
            loc = e["loc"]
            if any(loc[: len(huge)] == huge for huge in scan.huge):
                continue  # already said: a number too long to read
            cause = (e.get("ctx") or {}).get("error")
            if isinstance(cause, CrossReferenceError):  # one problem each, at its own line
                for place, message in cause.problems:
                    at = (*loc, *place)
                    problems.append(
                        Problem(filename, _line_for(at, lines), _field_name(at, data), message)
                    )
                continue
            msg = e["msg"].removeprefix("Value error, ")
            if e["type"] == "extra_forbidden":
                msg = "unknown key (check its spelling against the README's protocol format)"
            elif e["type"] == "string_type" and loc and loc[-1] == "version":
                msg = "version must be text: quote it, e.g. version: '1.0'"
            elif e["type"] == "finite_number":
                msg = (
                    "must be a finite number, not NaN or infinity (a NaN limit would let "
                    "every value pass); give a number, or leave an unneeded bound out"
                )
            problems.append(Problem(filename, _line_for(loc, lines), _field_name(loc, data), msg))
        raise ProtocolError(problems) from None
    problems.extend(_reference_problems(protocol, filename, lines, data))
    if problems:
        raise ProtocolError(problems)
    return protocol


def _reference_problems(
    protocol: Protocol, filename: str, lines: dict[Loc, int], data: dict[str, Any]
) -> list[Problem]:
    """A parameter's `reference:` must name a shipped literature range of a compatible unit."""
    from cmprep.protocol import units
    from cmprep.protocol.reference import load_all

    known = load_all()
    problems = []
    for i, step in enumerate(protocol.steps):
        for j, param in enumerate(step.parameters):
            if param.reference is None:
                continue
            loc = ("steps", i, "parameters", j, "reference")
            where = (filename, _line_for(loc, lines), _field_name(loc, data))
            if param.reference not in known:
                problems.append(
                    Problem(
                        *where,
                        f"no reference range {param.reference!r}; "
                        f"known: {', '.join(sorted(known))}",
                    )
                )
                continue
            rng = known[param.reference][0]
            if (
                param.unit is None
                or units.lookup(param.unit).dimension != units.lookup(rng.unit).dimension
            ):
                problems.append(
                    Problem(
                        *where,
                        f"the reference range is in {rng.unit}; "
                        "the parameter's unit must convert to it",
                    )
                )
    return problems


def load_file(path: str | Path) -> Protocol:
    """Read and validate a protocol file; ProtocolError naming the file when it cannot be.

    Only a regular file under MAX_BYTES is read, and never more than that: /dev/zero,
    a named pipe or a terminal would otherwise be read for ever. The file is opened
    without blocking and checked on the open handle, so it cannot be swapped for a pipe
    between the check and the read.
    """
    path = Path(path)

    def refused(message: str) -> ProtocolError:
        return ProtocolError([Problem(str(path), None, "", message)])

    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except FileNotFoundError:
        raise refused("no such file") from None
    except IsADirectoryError:
        raise refused("is a folder, not a protocol file") from None
    except OSError as err:
        raise refused(f"cannot be read: {err.strerror or err}") from None
    try:
        info = os.fstat(fd)
        if stat.S_ISDIR(info.st_mode):
            raise refused("is a folder, not a protocol file")
        if not stat.S_ISREG(info.st_mode):
            raise refused(
                "is not a regular file (a device, a pipe or a socket); "
                "give the path of a protocol's YAML file"
            )
        if info.st_size > MAX_BYTES:
            raise refused(f"file is {info.st_size} bytes; a protocol must be under {MAX_BYTES}")
        raw = b""
        while len(raw) <= MAX_BYTES:
            chunk = os.read(fd, MAX_BYTES + 1 - len(raw))
            if not chunk:
                break
            raw += chunk
    except OSError as err:
        raise refused(f"cannot be read: {err.strerror or err}") from None
    finally:
        os.close(fd)
    if len(raw) > MAX_BYTES:  # it grew after it was measured
        raise refused(f"file is over {MAX_BYTES} bytes; a protocol must be under {MAX_BYTES}")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise refused("not UTF-8 text") from None
    return parse_text(text, str(path))
