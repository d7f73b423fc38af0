"""Text a person typed, checked for characters that have no place in a record.

A control character in an id, a name or a value is invisible or worse where the record is
read: ESC starts a terminal escape sequence (it can recolour or hide what follows), BEL
rings, NUL ends a C string early, CR rewrites the line it is on, a newline in an id splits
a CSV row or a log line in two, and a bidirectional override shows text in another order
than it was signed in. None of them is ever typed on purpose, so they are refused where
text comes in, with the character shown escaped so the person can find it.

One rule here, used by the protocol loader and, through ``cmprep.domain.text``, by the id
rule, the value check, the QC CSV import and the service, so what one entry point refuses
none accepts. It lives in the protocol layer, like the unit table, because the loader sits
below the domain and needs it too.
"""

from __future__ import annotations

import unicodedata

# Characters that are not control characters (category Cc) but still rewrite how text
# reads: line and paragraph separators, and the bidirectional embeddings, overrides and
# isolates (U+202A-U+202E, U+2066-U+2069). The plain left-to-right and right-to-left marks
# (U+200E, U+200F) stay allowed: names in Arabic or Hebrew need them.
_DISGUISED = frozenset("\u2028\u2029\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")

# The names a person may know a control character by.
_NAMES = {
    "\x00": "NUL",
    "\x07": "BEL, a bell",
    "\x08": "BS, a backspace",
    "\t": "TAB, a tab",
    "\n": "LF, a line break",
    "\x0b": "VT, a vertical tab",
    "\x0c": "FF, a form feed",
    "\r": "CR, a carriage return",
    "\x1b": "ESC, an escape",
    "\x7f": "DEL, a delete",
    "\x85": "NEL, a line break",
    "\u2028": "a line separator",
    "\u2029": "a paragraph separator",
}

MAX_VALUE_SHOWN = 80  # a long text is shown up to here in a message
MAX_SHOWN = 3  # a message names this many different characters, then says "and N more"


def is_control(char: str) -> bool:
    """True for a C0 or C1 control character, DEL, or a character that reorders or
    breaks lines (see ``_DISGUISED``)."""
    return unicodedata.category(char) == "Cc" or char in _DISGUISED


def escaped(char: str) -> str:
    """One character as Python writes it in a string: ``'\\x1b'``, ``'\\n'``, ``'\\u202e'``."""
    return repr(char)[1:-1]


def printable(value: str, allow: str = "") -> str:
    """``value`` with every control character written as its escape (``\\x1b``), so a
    message, a log line or a page shows it instead of acting on it. Characters in
    ``allow`` are kept as they are."""
    return "".join(escaped(c) if is_control(c) and c not in allow else c for c in value)


def control_characters(value: str, allow: str = "") -> list[str]:
    """The different control characters in ``value``, in the order they first appear."""
    found: list[str] = []
    for char in value:
        if is_control(char) and char not in allow and char not in found:
            found.append(char)
    return found


def describe(char: str) -> str:
    """``'\\x1b' (ESC, an escape)``: the escape and, where it has one, its name."""
    name = _NAMES.get(char)
    return f"'{escaped(char)}'" + (f" ({name})" if name else "")


def control_problem(value: str, what: str, allow: str = "") -> str | None:
    """Why ``value`` cannot be accepted as ``what``, or None when it has no control
    character (other than those in ``allow``, e.g. line breaks in a long instruction).

    ``control_problem("CM-1\\x1b[31m", "batch id")`` says: batch id 'CM-1\\x1b[31m'
    contains a control character '\\x1b' (ESC, an escape); type it again without it.
    """
    found = control_characters(value, allow)
    if not found:
        return None
    shown = ", ".join(describe(c) for c in found[:MAX_SHOWN])
    more = f" and {len(found) - MAX_SHOWN} more" if len(found) > MAX_SHOWN else ""
    one = len(found) == 1
    shown_value = printable(value, allow)
    if len(shown_value) > MAX_VALUE_SHOWN:
        shown_value = shown_value[:MAX_VALUE_SHOWN] + "..."
    return (
        f"{what} '{shown_value}' contains "
        f"{'a control character' if one else 'control characters'} {shown}{more}; "
        f"type it again without {'it' if one else 'them'}"
    )
