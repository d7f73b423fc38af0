"""Reading protocol files: YAML in, a validated Protocol or a list of every problem out.

QA fixes a protocol file by its error list, so the list names file, line and field for
every problem at once rather than stopping at the first one.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from cmprep.errors import CmprepError
from cmprep.protocol.models import CrossReferenceError, Loc, Protocol

MAX_BYTES = 512 * 1024  # a protocol is a few KiB; anything this large is not one


@dataclass(frozen=True)
class Problem:
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


def _lines(
    node: yaml.Node,
    path: Loc,
    out: dict[Loc, int],
    dupes: list[tuple[Loc, int]],
    seen_nodes: set[int] | None = None,
) -> None:
    """Record the line of every mapping key and sequence item, and duplicate keys.

    A node reached again through a YAML alias is not walked twice: a recursive alias
    would never end and nested aliases would grow exponentially.
    """
    seen_nodes = set() if seen_nodes is None else seen_nodes
    if id(node) in seen_nodes:
        return
    seen_nodes.add(id(node))
    if isinstance(node, yaml.MappingNode):
        seen: set[str] = set()
        for key_node, value_node in node.value:
            key = key_node.value
            key_path: Loc = (*path, key)
            if key in seen:
                dupes.append((key_path, key_node.start_mark.line + 1))
            seen.add(key)
            out[key_path] = key_node.start_mark.line + 1
            _lines(value_node, key_path, out, dupes, seen_nodes)
    elif isinstance(node, yaml.SequenceNode):
        for i, item in enumerate(node.value):
            item_path: Loc = (*path, i)
            out[item_path] = item.start_mark.line + 1
            _lines(item, item_path, out, dupes, seen_nodes)


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
        loader = yaml.SafeLoader(text)
        try:
            node = loader.get_single_node()
            data = loader.construct_document(node) if node is not None else None
        finally:
            loader.dispose()
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
    lines: dict[Loc, int] = {}
    dupes: list[tuple[Loc, int]] = []
    _lines(node, (), lines, dupes)
    problems = [
        Problem(filename, line, _field_name(path, data), "key appears twice")
        for path, line in dupes
    ]
    try:
        protocol = Protocol.model_validate(data)
    except ValidationError as err:
        for e in err.errors():
            loc = e["loc"]
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
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_BYTES:
            raise ProtocolError(
                [
                    Problem(
                        str(path),
                        None,
                        "",
                        f"file is {size} bytes; a protocol must be under {MAX_BYTES}",
                    )
                ]
            )
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ProtocolError([Problem(str(path), None, "", "no such file")]) from None
    except IsADirectoryError:
        raise ProtocolError(
            [Problem(str(path), None, "", "is a folder, not a protocol file")]
        ) from None
    except UnicodeDecodeError:
        raise ProtocolError([Problem(str(path), None, "", "not UTF-8 text")]) from None
    return parse_text(text, str(path))
