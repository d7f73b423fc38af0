"""SHA-256, with hashlib loaded at the first hash rather than when a module is imported.

Importing hashlib loads OpenSSL's libcrypto: 8-16 ms on the bench machine, more than all
of ``batch status``'s own work. Reads that hash nothing (a status, a list, the report)
should not pay it at every start; a command that hashes pays it once, at its first hash,
and every later hash calls hashlib's own constructor directly.
"""

from __future__ import annotations

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
