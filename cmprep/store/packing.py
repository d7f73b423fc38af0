"""Event payloads packed for the embedded store: deflate primed with a preset dictionary.

Why: an event's payload is its canonical JSON, on average about 870 bytes in a lab's mix,
and two thirds of a database's size. Its keys and words ("display", "verdict": "in spec",
the parameter names) repeat in every event but rarely within one, so deflate alone only
halves it; primed with typical payloads (``payload-dictionary-1.bin``, made by
``bench/make_payload_dictionary.py`` from the demo's events) it takes it to about a fifth.

The packing is lossless: ``unpack(pack(text)) == text``, byte for byte, so what verification
hashes is still exactly the canonical JSON the event's hash was made over. A packed payload
starts with the number of its dictionary; a dictionary once written is never changed (a test
pins each one's SHA-256), a better one gets the next number, and every number stays
readable. A payload stored as text (a database from before packing, or a row someone edited
by hand) is read as it is.
"""

from __future__ import annotations

import os
import zlib
from functools import cache

CURRENT = 1  # the dictionary new payloads are packed with
_WBITS = -15  # raw deflate: the first byte says the format, no zlib header needed
_LEVEL = 6  # level 9 saves 2 % more and costs a third more time


class Unreadable(ValueError):
    """A stored payload that is not text and not a packing this program knows."""


@cache
def dictionary(number: int) -> bytes:
    """Preset dictionary NUMBER, as shipped with the package."""
    path = os.path.join(os.path.dirname(__file__), f"payload-dictionary-{number}.bin")
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        raise Unreadable(
            f"payload packed with dictionary {number}, which this program does not have"
        ) from None


@cache
def _primed(number: int) -> zlib._Compress:
    """A compressor with dictionary NUMBER loaded, copied for each payload: loading 16 KB
    of dictionary costs more than packing the payload itself."""
    return zlib.compressobj(
        _LEVEL, zlib.DEFLATED, _WBITS, 8, zlib.Z_DEFAULT_STRATEGY, dictionary(number)
    )


def pack(text: str) -> bytes:
    """TEXT (a payload's canonical JSON) packed: one byte for the dictionary, then deflate."""
    packer = _primed(CURRENT).copy()
    return bytes((CURRENT,)) + packer.compress(text.encode()) + packer.flush()


def unpack(stored: bytes | str) -> str:
    """The payload text as it was packed, or as stored when it is text (given as text, or as
    the bytes of a text: a JSON text never starts with a control character, which is what
    a dictionary number is); Unreadable when a stored value is neither."""
    if isinstance(stored, str):
        return stored
    if not isinstance(stored, bytes) or not stored:
        raise Unreadable(
            f"a stored payload of type {type(stored).__name__} is neither text nor packed"
        )
    if stored[0] >= 0x20:
        try:
            return stored.decode()
        except UnicodeDecodeError:
            raise Unreadable("a stored payload is neither UTF-8 text nor packed") from None
    try:
        unpacker = zlib.decompressobj(_WBITS, dictionary(stored[0]))
        text = unpacker.decompress(stored[1:]) + unpacker.flush()
        if not unpacker.eof or unpacker.unused_data:
            raise Unreadable("a packed payload is cut short or has bytes after its end")
        return text.decode()
    except (zlib.error, UnicodeDecodeError) as err:
        raise Unreadable(f"a packed payload does not unpack: {err}") from None
