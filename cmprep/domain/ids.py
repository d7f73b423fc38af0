"""Identifiers a person types: batch ids, user names, lot numbers, equipment ids, keys.

One rule for all of them, so an id that is accepted in one place is accepted everywhere
and never needs quoting in a file name, a URL or a CSV cell.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

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


def key(text: str) -> str:
    """The form ids are compared in: ``LOT-042`` and ``lot-042`` are one id.

    Why: a technician types what the label shows, in whatever case the keyboard is in; two
    lots or batches that differ only in case would be two records of one thing. Ids are
    ASCII (the rule above), so lower-casing is exact and the databases' ``lower()`` agrees.
    """
    return text.lower()


def same(text: str, known: Iterable[str]) -> str | None:
    """The id among KNOWN that is TEXT ignoring case (as stored), or None."""
    wanted = key(text)
    return next((k for k in known if key(k) == wanted), None)


def closest(text: str, candidates: Iterable[str], n: int = 3) -> list[str]:
    """Up to N of CANDIDATES that look most like TEXT (a typo, a missing digit), best first.

    CANDIDATES must be a bounded list (a registry, or the ids the store found next to TEXT
    in its index): difflib compares each one.
    """
    import difflib

    by_key: dict[str, str] = {}
    for c in candidates:
        by_key.setdefault(key(c), c)
    found = difflib.get_close_matches(key(text), list(by_key), n=n, cutoff=0.6)
    return [by_key[k] for k in found]


def suggestion(text: str, candidates: Iterable[str]) -> str:
    """'; did you mean CM-1 or CM-2?' for the closest CANDIDATES, or '' when none is close."""
    near = closest(text, candidates)
    if not near:
        return ""
    return "; did you mean " + " or ".join(near) + "?"


def same_kind(kind: str, wanted: str) -> bool:
    """Whether an instrument registered as KIND is what a step's slot WANTED names:
    ignoring case, spaces, '-' and '_' ("Biosafety-Cabinet" is a "biosafety cabinet")."""

    def words(text: str) -> str:
        return " ".join(re.split(r"[\s_-]+", text.strip().lower()))

    return words(kind) == words(wanted)
