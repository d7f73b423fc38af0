"""Payloads packed in the embedded store: lossless, small, and every bad packing named.

The SQLite store keeps each event's payload deflated with a preset dictionary
(``cmprep/store/packing.py``). What verification hashes must still be the exact canonical
JSON the event's hash was made over, an older database (payloads kept as text) must read and
verify as before, and a payload mangled in the file must be named by ``audit verify`` as the
event changed, not turn the whole file unreadable.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

import pytest
from conftest import PASSWORD, STANDARD, Clock, approve_bundled, forger_connect, run_to, seed_people
from hypothesis import given, settings
from hypothesis import strategies as st

from cmprep.errors import CorruptLog
from cmprep.events import canonical_json
from cmprep.service import Services
from cmprep.service.transfer import copy
from cmprep.store.packing import CURRENT, Unreadable, dictionary, pack, unpack
from cmprep.store.sqlite import SQLiteStore

# A dictionary is part of the stored format: payloads packed with it can be read only with
# these very bytes. Changing one makes every database written with it unreadable.
DICTIONARIES = {1: "de0c627bd8c74a027bac53b4c636d67529a700fc13c65b22818a74dc57d303a0"}


def test_every_dictionary_is_the_one_payloads_were_packed_with():
    assert CURRENT in DICTIONARIES
    for number, digest in DICTIONARIES.items():
        assert hashlib.sha256(dictionary(number)).hexdigest() == digest


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_packing_gives_back_the_very_text(text):
    packed = pack(text)
    assert packed[0] == CURRENT
    assert unpack(packed) == text


@settings(max_examples=100, deadline=None)
@given(
    st.recursive(
        st.none() | st.booleans() | st.floats(allow_nan=False) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    )
)
def test_a_payloads_canonical_json_comes_back_byte_for_byte(value):
    text = canonical_json({"values": value})
    assert unpack(pack(text)).encode() == text.encode()


def test_text_is_read_as_it_is_whether_given_as_text_or_as_its_bytes():
    assert unpack('{"a":1}') == '{"a":1}'
    assert unpack('{"é":"°C"}'.encode()) == '{"é":"°C"}'


@pytest.mark.parametrize(
    "stored,said",
    [
        (b"", "neither text nor packed"),
        (bytes((7,)) + b"\x00\x01", "dictionary 7, which this program does not have"),
        (pack('{"a":1}')[:-3], "cut short"),
        (pack('{"a":1}') + b"\x00", "bytes after its end"),
        (bytes((1,)) + b"\xff\xfe\xfd", "does not unpack"),
        (b"{\xff\xfe}", "neither UTF-8 text nor packed"),
    ],
    ids=["empty", "unknown dictionary", "cut short", "trailing bytes", "not deflate", "not utf-8"],
)
def test_a_stored_value_that_is_no_payload_is_refused_saying_why(stored, said):
    with pytest.raises(Unreadable, match=said):
        unpack(stored)


# --- in the store -----------------------------------------------------------------------------
def _lab(path: Path) -> Services:
    clock = Clock()
    svc = approve_bundled(seed_people(Services(SQLiteStore(path, create=True), clock=clock)))
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    return svc


def _edit(path: Path, statement: str, *args: object) -> None:
    """Change the file behind cmprep's back, the append-only rule lifted and put back."""
    conn = forger_connect(path)
    (rule,) = conn.execute(
        "SELECT sql FROM sqlite_master WHERE name = 'events_no_update'"
    ).fetchone()
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute(statement, args)
    conn.execute(rule)
    conn.commit()
    conn.close()


def test_a_new_event_is_stored_packed_and_much_smaller_than_its_text(tmp_path):
    svc = _lab(tmp_path / "lab.db")
    conn = forger_connect(tmp_path / "lab.db")
    rows = conn.execute(
        "SELECT typeof(payload), length(payload), length(CAST(unpacked(payload) AS BLOB)) "
        "FROM events WHERE batch_id = 'B1'"
    ).fetchall()
    conn.close()
    assert {kind for kind, _, _ in rows} == {"blob"}
    packed, text = sum(r[1] for r in rows), sum(r[2] for r in rows)
    assert packed * 3 < text  # the demo's steps pack to about a fifth
    assert [p for p in svc.audit.verify().problems] == []
    stored = [r for r, _ in svc.store.iter_events("B1")]
    assert all(r.payload == canonical_json(json.loads(r.payload)) for r in stored)
    assert all(hashlib.sha256(r.body()).hexdigest() == r.hash for r in stored)


def test_payloads_kept_as_text_by_an_older_cmprep_read_and_verify_as_before(tmp_path):
    path = tmp_path / "old.db"
    svc = _lab(path)
    before = svc.store.events("B1")
    svc.close()
    _edit(path, "UPDATE events SET payload = unpacked(payload)")  # as written before packing
    conn = sqlite3.connect(path)
    assert {r[0] for r in conn.execute("SELECT typeof(payload) FROM events")} == {"text"}
    conn.close()
    again = Services(SQLiteStore(path), clock=Clock())
    assert again.store.events("B1") == before
    assert again.audit.verify().problems == []


def test_a_copy_of_an_older_database_packs_every_payload(tmp_path):
    path, copied = tmp_path / "old.db", tmp_path / "new.db"
    _lab(path).close()
    _edit(path, "UPDATE events SET payload = unpacked(payload)")
    copy(str(path), str(copied))
    conn = sqlite3.connect(copied)
    assert {r[0] for r in conn.execute("SELECT typeof(payload) FROM events")} == {"blob"}
    conn.close()
    assert Services(SQLiteStore(copied), clock=Clock()).audit.verify().problems == []


def test_a_packed_payload_mangled_in_the_file_is_named_as_its_event_changed(tmp_path):
    """replace() on a packed payload turns it into text that is not UTF-8: sqlite3 would
    refuse to read the row at all; verification names the event instead."""
    path = tmp_path / "lab.db"
    svc = _lab(path)
    _edit(path, "UPDATE events SET payload = replace(payload, 'a', 'b') WHERE batch_id = 'B1'")
    problems = [str(p) for p in svc.audit.verify("B1").problems]
    assert problems and "content does not match its hash (changed after writing)" in problems[0]
    with pytest.raises(CorruptLog, match=r"the payload of B1 event \d+ cannot be read"):
        svc.batches.batch("B1")


def test_a_payload_packed_with_a_dictionary_this_program_lacks_is_named_not_guessed(tmp_path):
    path = tmp_path / "lab.db"
    svc = _lab(path)
    _edit(path, "UPDATE events SET payload = ? WHERE batch_id = 'B1' AND seq = 2", b"\x07junk")
    broken = [str(p) for p in svc.audit.verify("B1").problems]
    assert broken and broken[0].startswith("B1: event 2: content does not match its hash")
    with pytest.raises(CorruptLog, match="dictionary 7, which this program does not have"):
        svc.batches.batch("B1")
