"""Numbers as a printed record shows them: to a stated precision, large counts as powers of ten.

Why one module: the step tables, the QC table and the checklist all print measured numbers,
and a record that shows ``2.6e+08`` in one place, ``260000000`` in another and ``701.447 x g``
(a computed value with digits nobody measured) in a third reads as careless. The rules:

- a parameter that declares its precision (significant figures) is printed to it;
- a value the program computed (a speed in rpm converted to x g, a derived value) gets
  ``DERIVED_DIGITS`` significant figures;
- a value a person typed keeps the significant digits they typed (``37.0`` stays ``37.0``;
  ``0.5 L`` in a mL parameter prints ``500``);
- a magnitude of a million or more, or under a thousandth, prints as ``2.6 x 10^8``; the
  HTML templates turn the ``^8`` into a real superscript (``superscript_html``).

Pure text in, text out: no Jinja, no store.
"""

from __future__ import annotations

import math
import re

from markupsafe import Markup, escape

from cmprep.protocol import units

DERIVED_DIGITS = 3  # significant figures of a value the program computed
LARGE = 1e6  # from here on a number prints as a power of ten
SMALL = 1e-3  # below this (and above zero) too
MAX_DIGITS = 15  # a float carries no more

_NUMBER = re.compile(r"[+-]?(?P<int>\d*)(?:\.(?P<frac>\d*))?(?:[eE][+-]?\d+)?")
_POWER = re.compile(r"(?<![\w^.])(?:(\d+(?:\.\d+)?) x )?10\^(-?\d+)")
_E_NOTATION = re.compile(r"(?<![\w.])(\d+(?:\.\d+)?)[eE]([+-]?)0*(\d+)(?![\w.])")


def significant(x: float, digits: int) -> str:
    """``x`` to ``digits`` significant figures, trailing zeros kept (they are the precision).

    ``significant(701.447, 3) == "701"``, ``significant(37, 3) == "37.0"``,
    ``significant(272090909, 3) == "2.72 x 10^8"``, ``significant(12345.6, 2) == "12000"``.
    """
    if not math.isfinite(x):
        raise ValueError(f"{x!r} is not a finite number")
    digits = min(max(1, int(digits)), MAX_DIGITS)
    if x == 0:
        return "0"
    mantissa, _, exp_text = f"{abs(x):.{digits - 1}e}".partition("e")
    exponent = int(exp_text)  # after rounding: 9.99 at 2 figures is 1.0e+01
    rounded = float(f"{mantissa}e{exponent}")
    sign = "-" if x < 0 else ""
    if rounded >= LARGE or rounded < SMALL:
        return f"{sign}{mantissa} x 10^{exponent}"
    decimals = max(0, digits - 1 - exponent)
    return f"{sign}{rounded:.{decimals}f}"


def typed_digits(raw: str) -> int | None:
    """The significant digits of the first number in what a person typed, or None.

    Leading zeros never count; trailing zeros of a number without a decimal point do not
    either (``260000000`` is 2 figures, ``500`` is 1, ``500.`` and ``37.0`` are 3).
    """
    text = raw or ""
    match = next((m for m in _NUMBER.finditer(text) if m.group("int") or m.group("frac")), None)
    if match is None:
        return None
    whole, frac = match.group("int") or "", match.group("frac")
    digits = whole.lstrip("0").rstrip("0") if frac is None else (whole + frac).lstrip("0")
    return min(max(1, len(digits)), MAX_DIGITS)


def computed_from(raw: str, unit: str | None) -> bool:
    """Whether a value was computed rather than scaled from what was typed: its unit is of
    another dimension than the parameter's (a speed in rpm for an x g parameter)."""
    match = _NUMBER.match((raw or "").strip())
    if match is None or not unit:
        return False
    rest = raw.strip()[match.end() :].strip()
    if not rest or not units.is_known(rest) or not units.is_known(unit):
        return False
    return units.lookup(rest).dimension != units.lookup(unit).dimension


def value_digits(raw: str, unit: str | None, precision: int | None, *, derived: bool) -> int:
    """How many significant figures a value prints with (the rules in the module text)."""
    if precision:
        return precision
    if derived or computed_from(raw, unit):
        return DERIVED_DIGITS
    return typed_digits(raw) or DERIVED_DIGITS


def quantity(
    value: float,
    raw: str = "",
    unit: str | None = None,
    *,
    precision: int | None = None,
    derived: bool = False,
) -> str:
    """A measured value with its unit, as the record prints it: ``2.6 x 10^8 cells``."""
    text = significant(float(value), value_digits(raw, unit, precision, derived=derived))
    return f"{text} {unit}" if unit else text


def plain_powers(text: object) -> str:
    """Text with every number in e-notation (``2.8e+08``, as a computer writes it) written
    as people do: ``2.8 x 10^8``."""

    def power(match: re.Match[str]) -> str:
        sign = "-" if match.group(2) == "-" else ""
        return f"{match.group(1)} x 10^{sign}{match.group(3)}"

    return _E_NOTATION.sub(power, "" if text is None else str(text))


def superscript_html(text: object) -> Markup:
    """Escaped text for HTML with each power of ten (``2.6 x 10^8``, ``10^6``, or
    ``2.6e+08``) written with a real superscript: ``2.6 × 10<sup>8</sup>``."""
    escaped = str(escape(plain_powers(text)))

    def power(match: re.Match[str]) -> str:
        mantissa = f"{match.group(1)} × " if match.group(1) else ""
        return f"{mantissa}10<sup>{match.group(2)}</sup>"

    return Markup(_POWER.sub(power, escaped))


__all__ = [
    "DERIVED_DIGITS",
    "computed_from",
    "plain_powers",
    "quantity",
    "significant",
    "superscript_html",
    "typed_digits",
    "value_digits",
]
