"""What counts as a usable number, in one place: charts, Westgard rules, QC summaries and
comparisons all accept the same values (a yes/no is not a number; NaN is not a result)."""

from __future__ import annotations

import math
from typing import Any


def usable_number(value: Any) -> float | None:
    """``value`` as a finite float, or None when it is not a measured number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def finite(name: str, x: Any) -> float:
    """x as a float, or ValueError naming `name`: charts and rules accept the same numbers."""
    try:
        value = float(x)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {x!r}") from None
    if not math.isfinite(value):
        raise ValueError(f"{name} must be a finite number, got {x!r}")
    return value


def format_number(x: float) -> str:
    """A value for people: about four significant figures, no exponent, no trailing zeros.

    300.0 -> "300", 312.46 -> "312.5", 40.123 -> "40.12", 12345.6 -> "12346", 0.01234 -> "0.01234".
    """
    if not math.isfinite(x):
        return str(x)
    if x == 0:
        return "0"
    digits = min(max(0, 3 - math.floor(math.log10(abs(x)))), 12)
    text = f"{x:.{digits}f}"
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return "0" if text in ("-0", "") else text
