"""SHA-256, with hashlib loaded at the first hash rather than when a module is imported.

Importing hashlib loads OpenSSL's libcrypto: 3-16 ms on the bench machine, more than all
of ``batch status``'s own work. Reads that hash nothing (a list, the report) should not
pay it at every start; a command that hashes pays it once, at its first hash, and every
later hash calls hashlib's own constructor directly.

A read that hashes one document (a status checks its stored protocol's hash) uses
``sha256_once``: the interpreter's own SHA-256 (the module hashlib itself falls back to
without OpenSSL), loaded in a tenth of a millisecond. It is slower per byte, so whatever
hashes in bulk (a write, a verification) uses ``sha256_hex``; the digest is the same.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from hashlib import _Hash


def _load(data: bytes = b"") -> _Hash:
    """The first hash: load hashlib, and put its constructor where later hashes look."""
    global _new
    from hashlib import sha256 as new

    _new = new
    return new(data)


_new: Callable[[bytes], _Hash] = _load


def sha256(data: bytes = b"") -> _Hash:
    """A SHA-256 object over DATA, to update further (hashlib's own)."""
    return _new(data)


def sha256_hex(data: bytes) -> str:
    """The SHA-256 of DATA as 64 hexadecimal digits."""
    return _new(data).hexdigest()


def _own() -> Callable[[bytes], _Hash] | None:
    """The interpreter's own SHA-256 constructor (``_sha2`` from Python 3.12, ``_sha256``
    before), or None where it was built without one."""
    try:
        from _sha2 import sha256 as own  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        try:
            from _sha256 import sha256 as own  # type: ignore[import-not-found,no-redef,unused-ignore]
        except ImportError:
            return None
    return own  # type: ignore[no-any-return,unused-ignore]


def sha256_once(data: bytes) -> str:
    """The SHA-256 of one document, as hexadecimal digits, for a command that may hash
    nothing else: hashlib's when it is loaded already, else the interpreter's own."""
    own = None if "hashlib" in sys.modules else _own()
    return (own or _new)(data).hexdigest()
