"""Identifiers a person types: batch ids, user names, lot numbers, equipment ids, keys.

One rule for all of them, so an id that is accepted in one place is accepted everywhere
and never needs quoting in a file name, a URL or a CSV cell.
"""

from __future__ import annotations

import re

from cmprep.domain.text import control_problem
from cmprep.errors import Refused

# fullmatch, not match with "$": "$" also matches before a final newline, and "CM-1\n"
# would pass as an id that splits every CSV row and log line it is written to.
_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}")
RULE = "use letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit"


def is_usable(text: str) -> bool:
    return isinstance(text, str) and bool(_ID.fullmatch(text))


def usable(text: str, what: str) -> str:
    """``text`` if it is a usable id, else Refused naming ``what`` and the rule (and any
    control character in it, shown escaped)."""
    if not isinstance(text, str):
        raise Refused(f"{what} {text!r} is not usable: {RULE}")
    problem = control_problem(text, what)
    if problem:
        raise Refused(f"{problem}: {RULE}")
    if not _ID.fullmatch(text):
        raise Refused(f"{what} {text!r} is not usable: {RULE}")
    return text
