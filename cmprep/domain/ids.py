"""Identifiers a person types: batch ids, user names, lot numbers, equipment ids, keys.

One rule for all of them, so an id that is accepted in one place is accepted everywhere
and never needs quoting in a file name, a URL or a CSV cell.
"""

from __future__ import annotations

import re

from cmprep.errors import Refused

_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
RULE = "use letters, digits, '.', '_' or '-' (up to 64), starting with a letter or digit"


def is_usable(text: str) -> bool:
    return bool(_ID.match(text))


def usable(text: str, what: str) -> str:
    """``text`` if it is a usable id, else Refused naming ``what`` and the rule."""
    if not isinstance(text, str) or not _ID.match(text):
        raise Refused(f"{what} {text!r} is not usable: {RULE}")
    return text
