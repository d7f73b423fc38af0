"""Text a person typed: the control-character rule for ids, names, reasons and values.

The rule lives in ``cmprep.protocol.text``, because the protocol loader (a layer below the
domain) refuses the same characters in protocol files; the domain and the service take it
from here, so there is one rule for everything a person types.

``control_problem(value, what)`` is why a text cannot be accepted (or None);
``printable(value)`` shows a text with each control character escaped, for a message, a
log line or a page.
"""

from __future__ import annotations

from cmprep.protocol.text import (
    control_characters,
    control_problem,
    describe,
    escaped,
    is_control,
    printable,
)

__all__ = [
    "control_characters",
    "control_problem",
    "describe",
    "escaped",
    "is_control",
    "printable",
]
