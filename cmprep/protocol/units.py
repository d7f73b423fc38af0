"""The units a conditioned-medium lab types, as a small exact table.

Why a table and not pint: pint costs ~580 ms on first use on the bench machine, reads
"500 g" as grams (a lab means 500 x g) and cannot parse "37 degC" from text. A CM lab
uses about two dozen spellings; a table we can property-test is smaller, faster and
says exactly what it accepts.

Every unit belongs to one *dimension*; a value converts only within its dimension, via a
factor to that dimension's base unit (temperature, the one affine case, has one unit).
"""

from __future__ import annotations

import math
import re
import unicodedata
from dataclasses import dataclass


@dataclass(frozen=True)
class Unit:
    """A unit the protocols may use: its printed symbol, its dimension and its factor to the base
    unit."""

    symbol: str  # the canonical spelling, used when printing
    dimension: str
    factor: float  # multiply a value in this unit by factor to get the base unit


_UNITS: dict[str, Unit] = {}
_ALIASES: dict[str, str] = {}


def _define(symbol: str, dimension: str, factor: float, *aliases: str) -> None:
    _UNITS[symbol] = Unit(symbol, dimension, factor)
    for spelling in (symbol, *aliases):
        _ALIASES[_fold(spelling)] = symbol


def _fold(text: str) -> str:
    """Lower-case, NFKC-normalised, without spaces: the key spellings are looked up by."""
    text = unicodedata.normalize("NFKC", text)
    # NFKC maps the micro sign to Greek mu; both mean micro.
    text = text.replace("μ", "u").replace("×", "x")
    return re.sub(r"\s+", "", text).lower()


# time (base: second)
_define("s", "time", 1, "sec", "second", "seconds")
_define("min", "time", 60, "mins", "minute", "minutes")
_define("h", "time", 3600, "hr", "hrs", "hour", "hours")
_define("d", "time", 86400, "day", "days")
# length (base: metre)
_define("m", "length", 1)
_define("mm", "length", 1e-3)
_define("um", "length", 1e-6, "µm", "micron", "microns", "micrometre", "micrometer")
_define("nm", "length", 1e-9)
# relative centrifugal force (base: x g). "g" alone means x g in this lab, never grams.
_define("x g", "rcf", 1, "xg", "g", "x g", "*g", "rcf")
# rotational speed
_define("rpm", "rotation", 1, "rev/min")
# fractions (base: percent)
_define("%", "fraction", 1, "percent", "pct")
# temperature (base: degree Celsius)
_define("°C", "temperature", 1, "degC", "C", "deg C", "celsius", "ºC")
# volume (base: litre)
_define("L", "volume", 1, "l")
_define("mL", "volume", 1e-3, "ml")
_define("uL", "volume", 1e-6, "µL", "ul")
# mass concentration (base: pg/mL)
_define("pg/mL", "mass_concentration", 1, "pg/ml")
_define("ng/mL", "mass_concentration", 1e3, "ng/ml")
_define("ug/mL", "mass_concentration", 1e6, "µg/mL", "ug/ml")
_define("mg/mL", "mass_concentration", 1e9, "mg/ml")
# activity concentration
_define("U/mL", "activity_concentration", 1, "u/ml", "IU/mL", "iu/ml")
# counts
_define("cells", "count", 1, "cell")
_define("cells/cm2", "cell_density", 1, "cells/cm²", "cells/sqcm")
_define("cells/mL", "cell_concentration", 1, "cells/ml")
_define("particles/mL", "particle_concentration", 1, "particles/ml", "p/mL")
_define(
    "particles/10^6 cells",
    "particles_per_cells",
    1,
    "particles/1e6 cells",
    "particles/10⁶ cells",
    "particles per 10^6 cells",
    "p/10^6 cells",
)
_define(
    "pg/10^6 cells",
    "mass_per_cells",
    1,
    "pg/1e6 cells",
    "pg/10⁶ cells",
    "pg per 10^6 cells",
)
# a culture vessel's growth area (base: cm2) and a lyophilised cake's mass (base: mg)
_define("cm2", "area", 1, "cm²", "sqcm", "cm^2")
_define("mL/cm2", "volume_per_area", 1, "ml/cm2", "mL/cm²", "ml/cm²")
_define("mg", "mass", 1, "milligram", "milligrams")
_define("EU/mL", "endotoxin", 1, "eu/ml")
_define("kDa", "molecular_weight", 1, "kd")
# dimensionless counts with a unit word: washes, passages, flasks
_define("washes", "washes", 1, "wash", "x", "times")
_define("flasks", "flasks", 1, "flask", "vessels")


# The one dimension a reading may be below zero in: a freezer at -80 °C. A negative
# duration, speed, volume, pore size, count or concentration is impossible, never a
# reading, and is refused before it is converted (rpm is squared on the way to x g, so
# -1500 rpm would otherwise pass as +1500).
SIGNED_DIMENSIONS = frozenset({"temperature"})

_NOUNS = {
    "time": "a duration",
    "length": "a length or pore size",
    "rcf": "a centrifugal force",
    "rotation": "a speed",
    "fraction": "a percentage",
    "volume": "a volume",
    "count": "a count",
    "washes": "a number of washes",
    "flasks": "a number of flasks",
    "molecular_weight": "a molecular weight",
    "area": "an area",
    "mass": "a mass",
}


def can_be_negative(unit: str | None) -> bool:
    """Whether a value in this unit may be below zero; a plain number (no unit) is left to
    the protocol's limits."""
    return unit is None or lookup(unit).dimension in SIGNED_DIMENSIONS


def negative_problem(value: float, unit: str | None) -> str | None:
    """Why ``value`` cannot be a reading in ``unit``, or None."""
    if value >= 0 or can_be_negative(unit):
        return None
    assert unit is not None  # can_be_negative is True without a unit
    dimension = lookup(unit).dimension
    noun = _NOUNS.get(dimension, f"a {dimension.replace('_', ' ')}")
    return f"{value:g} {lookup(unit).symbol} is negative; {noun} cannot be below zero"


RCF_PER_RPM2_CM = 1.118e-5  # RCF (x g) = 1.118e-5 x rotor radius (cm) x rpm^2


def rpm_to_rcf(rpm: float, radius_cm: float) -> float:
    """Relative centrifugal force of a rotor of that radius at that speed.

    A negative speed or a radius that is not above zero is refused: the square would
    otherwise hide the sign and turn an impossible reading into a plausible one.
    """
    if not (math.isfinite(rpm) and rpm >= 0):
        raise UnitError(f"{rpm:g} rpm is impossible; a speed cannot be below zero")
    if not (math.isfinite(radius_cm) and radius_cm > 0):
        raise UnitError(f"a rotor radius of {radius_cm:g} cm is impossible")
    return float(f"{RCF_PER_RPM2_CM * radius_cm * rpm * rpm:.15g}")


class UnitError(ValueError):
    """A value or unit that cannot be read; the message says what was expected."""


class NeedsRotorRadius(UnitError):
    """A speed in rpm for an x g value, with no rotor radius to convert it: what to do
    (name a centrifuge, or type x g) is said by each shell in its own words (a hint)."""


def lookup(spelling: str) -> Unit:
    """The unit for a spelling, or UnitError naming the spelling."""
    key = _fold(spelling)
    if key not in _ALIASES:
        raise UnitError(f"unknown unit {spelling!r}")
    return _UNITS[_ALIASES[key]]


def is_known(spelling: str) -> bool:
    return _fold(spelling) in _ALIASES


def convert(value: float, from_unit: str, to_unit: str) -> float:
    """Convert between two units of one dimension; UnitError across dimensions."""
    src, dst = lookup(from_unit), lookup(to_unit)
    if src.dimension != dst.dimension:
        raise UnitError(
            f"{src.symbol} cannot be converted to {dst.symbol} "
            f"({src.dimension.replace('_', ' ')} vs {dst.dimension.replace('_', ' ')})"
        )
    if src.symbol == dst.symbol:
        return value
    result = value * src.factor / dst.factor
    if math.isfinite(value) and not math.isfinite(result):
        raise UnitError(f"{value:g} {src.symbol} is too large to express in {dst.symbol}")
    # Round away binary noise (220 nm must be exactly 0.22 um, or a spec of 0.22 fails it);
    # 15 significant digits keep every round trip exact to 1e-14 and beyond any instrument.
    rounded = float(f"{result:.15g}")
    return rounded if math.isfinite(rounded) else result  # near the float maximum, keep it


def known_units() -> list[Unit]:
    """Every unit of the table, for a caller that describes a dimension by an example."""
    return list(_UNITS.values())


def compatible_units(unit: str) -> list[str]:
    """Canonical spellings the given unit converts from, for help texts."""
    dim = lookup(unit).dimension
    return [u.symbol for u in _UNITS.values() if u.dimension == dim]


_NUMBER = re.compile(r"^[+-]?(\d+(\.\d*)?|\.\d+)([eE][+-]?\d+)?")


def leading_number(text: str) -> float | None:
    """The number ``text`` starts with ("-5 pg/mL" -> -5.0), or None: for a caller that
    must say which column of a file a sign is wrong in before reading the whole value."""
    match = _NUMBER.match(unicodedata.normalize("NFKC", text).strip())
    return float(match.group(0)) if match else None


def parse_quantity(text: str, unit: str | None, *, rotor_radius_cm: float | None = None) -> float:
    """Read "650 x g", "2 d", "0.22 µm" or a bare number into a float in ``unit``.

    A bare number is taken in the protocol's unit. A speed in rpm for an x g value needs
    the centrifuge's rotor radius. Refuses, with a sentence a technician understands:
    empty text, a decimal comma, NaN/infinity, an unknown unit, a unit of another dimension,
    and a value below zero in any unit but a temperature's.
    """
    raw = unicodedata.normalize("NFKC", text).strip()
    if not raw:
        raise UnitError("no value given")
    if re.fullmatch(r"[+-]?\d{1,3}(,\d{3})+(?![\d,]).*", raw):
        # "1,000" may be a thousands separator: suggesting "1.000" would change the value.
        raise UnitError(
            f"{text!r} has a comma; write the number without thousands separators and "
            f"with a decimal point if it has decimals (e.g. {raw.replace(',', '')!r})"
        )
    if re.fullmatch(r"[+-]?\d+,\d+.*", raw):
        raise UnitError(
            f"{text!r} has a decimal comma; write a decimal point "
            f"(e.g. {raw.replace(',', '.', 1)!r})"
        )
    lowered = raw.lower()
    if lowered.lstrip("+-").startswith(("nan", "inf")):
        raise UnitError(f"{text!r} is not a finite number")
    match = _NUMBER.match(raw)
    if not match:
        raise UnitError(f"{text!r} does not start with a number")
    number = float(match.group(0)) + 0.0  # + 0.0: "-0" is 0, not "-0"
    if not math.isfinite(number):
        raise UnitError(f"{text!r} is too large to be a reading")
    rest = raw[match.end() :].strip()
    if not rest:
        _refuse_negative(number, unit)
        return number
    if unit is None:
        raise UnitError(f"{text!r} has a unit ({rest}) but this parameter takes a plain number")
    if not is_known(rest):
        expected = ", ".join(compatible_units(unit))
        raise UnitError(f"unknown unit {rest!r} in {text!r}; expected one of: {expected}")
    _refuse_negative(number, rest)
    if lookup(rest).dimension == "rotation" and lookup(unit).dimension == "rcf":
        if rotor_radius_cm is None:
            raise NeedsRotorRadius(
                f"{text!r} is a speed in rpm; converting it to x g needs the rotor radius "
                "of the centrifuge used, and no centrifuge with one was named"
            )
        return rpm_to_rcf(number, rotor_radius_cm)
    try:
        result = convert(number, rest, unit)
    except UnitError as err:
        expected = ", ".join(compatible_units(unit))
        raise UnitError(f"{err}; expected one of: {expected}") from None
    return result


def _refuse_negative(value: float, unit: str | None) -> None:
    problem = negative_problem(value, unit)
    if problem:
        raise UnitError(problem)


def canonical(unit: str) -> str:
    """The canonical spelling of a unit, for display."""
    return lookup(unit).symbol
