"""cmprep/digest.py: SHA-256 with OpenSSL loaded only where it pays; the same digest by
every path (a changed digest would be a broken chain or a refused protocol)."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cmprep import digest


@given(st.binary(max_size=5000))
def test_every_path_gives_hashlib_s_digest(data):
    expected = hashlib.sha256(data).hexdigest()
    own = digest._own()
    assert own is not None  # CPython ships its own SHA-256
    assert own(data).hexdigest() == expected
    assert digest.sha256_hex(data) == digest.sha256_once(data) == expected
    assert digest.sha256(data).hexdigest() == expected


def test_one_document_is_hashed_without_hashlib_where_it_is_not_loaded(monkeypatch):
    monkeypatch.delitem(sys.modules, "hashlib")
    calls = []
    own = digest._own()
    assert own is not None
    monkeypatch.setattr(digest, "_own", lambda: lambda data: calls.append(data) or own(data))
    assert digest.sha256_once(b"protocol") == hashlib.sha256(b"protocol").hexdigest()
    assert calls == [b"protocol"]


@pytest.mark.parametrize(
    ("code", "loaded"),
    [
        ("from cmprep.digest import sha256_once; sha256_once(b'x')", False),
        ("from cmprep.digest import sha256_hex; sha256_hex(b'x')", True),
        ("import cmprep.events, cmprep.domain.protocols", False),
    ],
)
def test_hashlib_is_loaded_by_bulk_hashing_only(code, loaded):
    out = subprocess.run(
        [sys.executable, "-c", f"import sys; {code}; print('_hashlib' in sys.modules)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert out == str(loaded)
