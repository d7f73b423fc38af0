"""Derived values: a small arithmetic language over a protocol's parameters, never ``eval``.

A protocol may declare a value that is computed, not typed: a concentration factor
(``collection.volume / final_volume``), EVs per 10^6 cells, a recovery in %. QA writes the
formula in the protocol file, so it is text from outside the program: it is read by a
hand-written tokenizer and a recursive-descent parser into a tree of four kinds of node
(a number, a parameter, a minus sign, a binary operation) and only that tree is ever
evaluated. There are no function calls, no attribute access and no way to reach Python.

The grammar (unary minus binds tightest; ``*`` and ``/`` before ``+`` and ``-``; all
binary operators group to the left)::

    expression := term (("+" | "-") term)*
    term       := unary (("*" | "/") unary)*
    unary      := "-" unary | atom
    atom       := NUMBER | NAME | NAME "." NAME | "(" expression ")"

A NAME is a parameter of the same step; ``step.name`` is a parameter of an earlier step
(or of the arm of an earlier branch that was done: ``downstream.final_volume``).

Units are algebra, not decoration: every unit of the table (``units.py``) is a scale times
a product of base quantities (volume, mass, cells, particles, length...), so
``pg/mL * mL / cells`` is a mass per cell and converts to ``pg/10^6 cells``, and
``mL + cells`` is refused. A percentage is a plain number scaled by 1/100 (as in pint):
a ratio of two volumes shown in ``%`` is multiplied by 100 for you, so a formula for a
recovery in % is ``filtrate_volume / collection.volume``, without ``* 100``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass

from cmprep.protocol import units

MAX_LENGTH = 500  # a formula is a line; anything longer is not one
MAX_DEPTH = 40  # nesting of parentheses and minus signs; deeper is not a formula


class ExpressionError(ValueError):
    """A formula that cannot be read, typed or computed; the message says why and where."""


# --- the tree -------------------------------------------------------------------------------
@dataclass(frozen=True)
class Number:
    """A number in a derived value's formula."""

    value: float


@dataclass(frozen=True)
class Name:
    """A parameter a formula reads, in its own step or another (``step.name``)."""

    name: str
    step: str | None = None  # a step id or a branch name; None: the same step

    @property
    def text(self) -> str:
        return f"{self.step}.{self.name}" if self.step else self.name


@dataclass(frozen=True)
class Neg:
    """A negated operand of a formula."""

    operand: Node


@dataclass(frozen=True)
class BinOp:
    """Two operands of a formula joined by + - * or /."""

    op: str  # one of + - * /
    left: Node
    right: Node


Node = Number | Name | Neg | BinOp
_PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


# --- reading --------------------------------------------------------------------------------
@dataclass(frozen=True)
class _Token:
    """One token of a formula being read, with its place for the message."""

    kind: str  # "number", "name", "op", "(", ")", "." or "end"
    text: str
    at: int  # 0-based offset in the formula, for the message


def _tokens(text: str) -> list[_Token]:
    """Split a formula into tokens; refuse any character that has no place in one."""
    out: list[_Token] = []
    i, n = 0, len(text)
    while i < n:
        c = text[i]
        if c in " \t":
            i += 1
        elif c.isascii() and (c.isdigit() or (c == "." and i + 1 < n and text[i + 1].isdigit())):
            start = i
            while i < n and text[i].isascii() and text[i].isdigit():
                i += 1
            if i < n and text[i] == ".":
                i += 1
                while i < n and text[i].isascii() and text[i].isdigit():
                    i += 1
            if i < n and text[i] in "eE":
                j = i + 1
                if j < n and text[j] in "+-":
                    j += 1
                if j < n and text[j].isascii() and text[j].isdigit():
                    i = j
                    while i < n and text[i].isascii() and text[i].isdigit():
                        i += 1
            if i < n and (text[i].isascii() and (text[i].isalnum() or text[i] in "_.")):
                raise ExpressionError(
                    f"{text[start : i + 1]!r} at position {start + 1} is not a number"
                )
            out.append(_Token("number", text[start:i], start))
        elif c.isascii() and (c.isalpha() or c == "_"):
            start = i
            while i < n and text[i].isascii() and (text[i].isalnum() or text[i] == "_"):
                i += 1
            out.append(_Token("name", text[start:i], start))
        elif c in "+-*/":
            out.append(_Token("op", c, i))
            i += 1
        elif c in "().":
            out.append(_Token(c, c, i))
            i += 1
        else:
            raise ExpressionError(
                f"{c!r} at position {i + 1} has no place in a formula "
                "(numbers, parameter names, + - * / and parentheses)"
            )
    out.append(_Token("end", "", n))
    return out


class _Parser:
    def __init__(self, text: str) -> None:
        self.tokens = _tokens(text)
        self.pos = 0
        self.depth = 0

    def peek(self) -> _Token:
        return self.tokens[self.pos]

    def take(self) -> _Token:
        token = self.tokens[self.pos]
        self.pos += 1
        return token

    def deeper(self) -> None:
        self.depth += 1
        if self.depth > MAX_DEPTH:
            raise ExpressionError(f"nested more than {MAX_DEPTH} levels deep")

    def expression(self) -> Node:
        node = self.term()
        while self.peek().kind == "op" and self.peek().text in "+-":
            op = self.take().text
            node = BinOp(op, node, self.term())
        return node

    def term(self) -> Node:
        node = self.unary()
        while self.peek().kind == "op" and self.peek().text in "*/":
            op = self.take().text
            node = BinOp(op, node, self.unary())
        return node

    def unary(self) -> Node:
        token = self.peek()
        if token.kind == "op" and token.text == "-":
            self.take()
            self.deeper()
            node = Neg(self.unary())
            self.depth -= 1
            return node
        return self.atom()

    def atom(self) -> Node:
        token = self.take()
        if token.kind == "number":
            value = float(token.text)
            if not math.isfinite(value):
                raise ExpressionError(f"{token.text} at position {token.at + 1} is too large")
            return Number(value)
        if token.kind == "name":
            if self.peek().kind == ".":
                self.take()
                second = self.take()
                if second.kind != "name":
                    raise ExpressionError(
                        f"a parameter name must follow {token.text}. at position {second.at + 1}"
                    )
                return Name(second.text, token.text)
            return Name(token.text)
        if token.kind == "(":
            self.deeper()
            node = self.expression()
            closing = self.take()
            if closing.kind != ")":
                raise ExpressionError(
                    f"a closing parenthesis is missing for the one at position {token.at + 1}"
                )
            self.depth -= 1
            return node
        if token.kind == "end":
            raise ExpressionError("the formula ends where a number or a name is expected")
        raise ExpressionError(
            f"{token.text!r} at position {token.at + 1}: a number, a name or "
            "an opening parenthesis is expected here"
        )


def parse(text: str) -> Node:
    """The tree of a formula, or ExpressionError saying what is wrong and where."""
    if not isinstance(text, str):
        raise ExpressionError("a formula is text")
    if len(text) > MAX_LENGTH:
        raise ExpressionError(f"a formula is at most {MAX_LENGTH} characters")
    if not text.strip():
        raise ExpressionError("the formula is empty")
    parser = _Parser(text)
    node = parser.expression()
    rest = parser.peek()
    if rest.kind != "end":
        raise ExpressionError(
            f"{rest.text!r} at position {rest.at + 1} does not continue the formula "
            "(an operator + - * / is missing, or a parenthesis is not opened)"
        )
    return node


def names(node: Node) -> Iterator[Name]:
    """Every parameter a formula reads, in the order written (repeats included)."""
    if isinstance(node, Name):
        yield node
    elif isinstance(node, Neg):
        yield from names(node.operand)
    elif isinstance(node, BinOp):
        yield from names(node.left)
        yield from names(node.right)


# --- printing -------------------------------------------------------------------------------
def to_text(node: Node) -> str:
    """The formula as text that parses back to the same tree (only the parentheses it needs)."""
    if isinstance(node, Number):
        return repr(node.value)
    if isinstance(node, Name):
        return node.text
    if isinstance(node, Neg):
        inner = to_text(node.operand)
        return f"-({inner})" if isinstance(node.operand, BinOp) else f"-{inner}"
    mine = _PRECEDENCE[node.op]
    left, right = to_text(node.left), to_text(node.right)
    if isinstance(node.left, BinOp) and _PRECEDENCE[node.left.op] < mine:
        left = f"({left})"
    if isinstance(node.right, BinOp) and _PRECEDENCE[node.right.op] <= mine:
        right = f"({right})"
    return f"{left} {node.op} {right}"


# --- computing ------------------------------------------------------------------------------
def evaluate(node: Node, values: Mapping[Name, float]) -> float:
    """The formula's value, VALUES giving each parameter's in the formula's base units.

    Division by zero and a result too large for a float are ExpressionError (naming the
    divisor), never infinity or NaN: a derived value is either a number or not computed.
    """
    if isinstance(node, Number):
        return node.value
    if isinstance(node, Name):
        if node not in values:
            raise ExpressionError(f"{node.text} has no value")
        return values[node]
    if isinstance(node, Neg):
        return -evaluate(node.operand, values)
    left, right = evaluate(node.left, values), evaluate(node.right, values)
    if node.op == "+":
        result = left + right
    elif node.op == "-":
        result = left - right
    elif node.op == "*":
        result = left * right
    else:
        if right == 0:
            raise ExpressionError(f"division by zero: {to_text(node.right)} is 0")
        result = left / right
    if not math.isfinite(result):
        raise ExpressionError(f"{to_text(node)} is too large to compute")
    return result


# --- unit algebra ---------------------------------------------------------------------------
Dims = tuple[tuple[str, int], ...]  # base quantity -> exponent, sorted, no zero exponents


@dataclass(frozen=True)
class Kind:
    """What a quantity is: a scale to the base units, times base quantities with powers."""

    scale: float
    dims: Dims

    def times(self, other: Kind, sign: int = 1) -> Kind:
        powers = dict(self.dims)
        for base, power in other.dims:
            powers[base] = powers.get(base, 0) + sign * power
        dims = tuple(sorted((b, p) for b, p in powers.items() if p))
        scale = self.scale * other.scale if sign > 0 else self.scale / other.scale
        return Kind(scale, dims)


PLAIN = Kind(1.0, ())

# Each dimension of the unit table as base quantities, and the scale of that dimension's
# base unit in them (base units: s, m, L, g, cells, particles, EU, U). A dimension not
# listed (one added to the table later) is a base quantity of its own.
_DIMENSIONS: dict[str, tuple[float, dict[str, int]]] = {
    "fraction": (0.01, {}),
    "time": (1.0, {"time": 1}),
    "length": (1.0, {"length": 1}),
    "area": (1e-4, {"length": 2}),  # cm2
    "volume": (1.0, {"volume": 1}),  # L
    "mass": (1e-3, {"mass": 1}),  # mg
    "volume_per_area": (1e-3 / 1e-4, {"volume": 1, "length": -2}),  # mL/cm2
    "mass_concentration": (1e-9, {"mass": 1, "volume": -1}),  # pg/mL
    "activity_concentration": (1e3, {"activity": 1, "volume": -1}),  # U/mL
    "count": (1.0, {"cells": 1}),
    "cell_density": (1e4, {"cells": 1, "length": -2}),  # cells/cm2
    "cell_concentration": (1e3, {"cells": 1, "volume": -1}),  # cells/mL
    "particle_concentration": (1e3, {"particles": 1, "volume": -1}),  # particles/mL
    "particles_per_cells": (1e-6, {"particles": 1, "cells": -1}),  # particles/10^6 cells
    "mass_per_cells": (1e-18, {"mass": 1, "cells": -1}),  # pg/10^6 cells
    "endotoxin": (1e3, {"endotoxin": 1, "volume": -1}),  # EU/mL
}


def kind_of(unit: str | None) -> Kind:
    """The kind of a value in UNIT (None: a plain number); ExpressionError if unknown."""
    if unit is None:
        return PLAIN
    try:
        found = units.lookup(unit)
    except units.UnitError as err:
        raise ExpressionError(str(err)) from None
    scale, dims = _DIMENSIONS.get(found.dimension, (1.0, {found.dimension: 1}))
    return Kind(scale * found.factor, tuple(sorted(dims.items())))


def describe(kind: Kind) -> str:
    """A kind in words, by a unit of the table that has it ("a volume (e.g. mL)")."""
    if not kind.dims:
        return "a plain number (or %)"
    for unit in units.known_units():
        if kind_of(unit.symbol).dims == kind.dims:
            noun = unit.dimension.replace("_", " ")
            return f"{'an' if noun[0] in 'aeiou' else 'a'} {noun} (e.g. {unit.symbol})"
    return " x ".join(b if p == 1 else f"{b}^{p}" for b, p in kind.dims)


def infer(node: Node, kind_of_name: Callable[[Name], Kind]) -> Kind:
    """The kind of the formula's result; ExpressionError where + or - mixes kinds."""
    if isinstance(node, Number):
        return PLAIN
    if isinstance(node, Name):
        return kind_of_name(node)
    if isinstance(node, Neg):
        return infer(node.operand, kind_of_name)
    left, right = infer(node.left, kind_of_name), infer(node.right, kind_of_name)
    if node.op in "+-":
        if left.dims != right.dims:
            verb = "add" if node.op == "+" else "subtract"
            raise ExpressionError(
                f"cannot {verb} {to_text(node.right)} ({describe(right)}) "
                f"{'to' if node.op == '+' else 'from'} {to_text(node.left)} "
                f"({describe(left)}): the units are incompatible"
            )
        return Kind(1.0, left.dims)  # both sides are in base units when computed
    return left.times(right, 1 if node.op == "*" else -1)


def check_result(node: Node, kind_of_name: Callable[[Name], Kind], unit: str | None) -> Kind:
    """The formula's kind, checked against the unit its parameter declares."""
    result = infer(node, kind_of_name)
    declared = kind_of(unit)
    if result.dims != declared.dims:
        shown = unit or "no unit (a plain number)"
        raise ExpressionError(
            f"the formula gives {describe(result)} but the parameter's unit is {shown} "
            f"({describe(declared)})"
        )
    return result


def compute(node: Node, inputs: Mapping[Name, tuple[float, str | None]], unit: str | None) -> float:
    """The value of the formula in UNIT, from each input's value in its own unit.

    Inputs are brought to base units, the formula is evaluated, and the result is brought
    to UNIT: ``500 mL / 40 mL`` is 12.5 with no unit and 1250 in %.
    """
    based = {name: value * kind_of(u).scale for name, (value, u) in inputs.items()}
    kinds = {name: kind_of(u) for name, (_, u) in inputs.items()}

    def lookup(name: Name) -> Kind:
        if name not in kinds:
            raise ExpressionError(f"{name.text} has no value")
        return kinds[name]

    check_result(node, lookup, unit)
    result = evaluate(node, based) / kind_of(unit).scale
    if not math.isfinite(result):
        raise ExpressionError(f"{to_text(node)} is too large to compute")
    return float(f"{result:.15g}")  # no binary noise (500 mL / 40 mL is 12.5, not 12.4999)


def significant(value: float, figures: int) -> float:
    """VALUE rounded to FIGURES significant figures (a derived value's precision)."""
    if value == 0 or not math.isfinite(value):
        return value
    return float(f"{value:.{figures}g}") + 0.0
