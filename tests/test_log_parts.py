"""A whole-log verification made in parts, one process each (``cmprep.service.log_parts``).

Checked as a verdict, not as a speed: the same problems, in the same order, with the same
counts, as one process finds on the same forged log, with and without a checkpoint, on
both backends; the same list of vouched batches signed by an anchor; a part whose process
fails checked by the parent; and no process left behind when the parent's part fails.
The speed is in `make bench` (bench/bench_verify.py).
"""

from __future__ import annotations

import itertools
import os
import threading
import time
from itertools import pairwise
from pathlib import Path

import pytest
from conftest import GOOD, PASSWORD, STANDARD, edit_tables, run_to
from hypothesis import given
from hypothesis import strategies as st

from cmprep.errors import StoreError
from cmprep.service import Services, log_parts
from cmprep.service.audit import AuditService
from cmprep.store.query import Span

BATCHES = ["B1", "B2", "B3", "B4", "B5", "B6"]


@pytest.fixture(autouse=True)
def no_anchor_env(monkeypatch):
    monkeypatch.delenv("CMPREP_ANCHORS", raising=False)


@pytest.fixture
def lab(svc: Services, clock) -> Services:
    """Six batches at several steps, B3 and B6 through QC (B3's filtration verified by a
    second person)."""
    for n, batch in enumerate(BATCHES):
        svc.batches.start(STANDARD, "alice", batch)
        run_to(svc, clock, batch, stop_before=["spin", "filtration", None][n % 3])
    svc.quality.verify_step("B3", "filtration", "bob", PASSWORD)
    clock.advance(minutes=5)
    return svc


def in_parts(monkeypatch, parts: int) -> None:
    """Verifications from now on made in PARTS processes, however small the log (1: one
    process)."""
    assert threading.active_count() == 1, "a fork is only made with no other thread running"
    monkeypatch.setattr(log_parts, "PARTS_FROM", 0 if parts > 1 else 10**12)
    monkeypatch.setattr(log_parts, "processes", lambda: parts)


def _said(result) -> list[str]:
    return [f"{p.label} {p}" for p in result.problems]


def _forge(db_path: Path) -> None:
    """Edits behind cmprep's back, in batches of different parts of the log."""
    edit_tables(
        db_path,
        "UPDATE batches SET state = 'released' WHERE batch_id = 'B2'",
        "UPDATE qc_points SET value = value + 1 WHERE batch_id = 'B3'",
        "DELETE FROM qc_points WHERE batch_id = 'B6' AND name = 'vegf'",
        "UPDATE deviations SET severity = 'minor' WHERE batch_id = 'B4'",
        "CREATE TEMP TABLE p AS SELECT * FROM qc_points WHERE batch_id = 'B3' LIMIT 1",
        "UPDATE p SET batch_id = 'B9'",
        "INSERT INTO qc_points SELECT * FROM p",
    )


@pytest.mark.parametrize("parts", [2, 3])
def test_a_log_checked_in_parts_says_what_one_process_says(
    lab, monkeypatch, db_path, tmp_path, clock, parts
):
    folder = tmp_path / "anchors"
    folder.mkdir()
    in_parts(monkeypatch, 1)
    clean = lab.audit.verify()
    lab.audit.anchor("rita", PASSWORD, str(folder))
    clock.advance(minutes=1)
    spin = {**GOOD["spin"], "rcf": "650"}  # out of spec: a deviation opened
    lab.batches.record("B4", "spin", spin, "alice")  # after the checkpoint
    _forge(db_path)
    alone = lab.audit.verify()
    anchored = lab.audit.verify(anchors_dir=str(folder))
    assert clean.problems == [] and alone.parts == 1
    named = " ".join(_said(alone))
    assert all(b in named for b in ("B2", "B3", "DEV-0001", "B6", "B9")), named
    in_parts(monkeypatch, parts)
    split = lab.audit.verify()
    split_anchored = lab.audit.verify(anchors_dir=str(folder))
    assert (split.parts, split_anchored.parts) == (parts, parts)
    assert _said(split) == _said(alone)
    assert _said(split_anchored) == _said(anchored)
    for field in ("checked", "vouched", "vouched_by", "tables_vouched", "tables_folded"):
        assert getattr(split, field) == getattr(alone, field), field
        assert getattr(split_anchored, field) == getattr(anchored, field), field
    assert anchored.tables_vouched > 0 and anchored.vouched > 0


def test_a_log_with_a_broken_chain_is_named_alike_in_parts(lab, monkeypatch, db_path):
    """A break of the log itself (an event changed) and a ledger entry gone: the parts'
    breaks, then the ledger's, in the order one process says them."""
    from conftest import forger_connect

    conn = forger_connect(db_path)
    for name in ("events_no_update", "ledger_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    conn.execute("UPDATE events SET actor = 'mallory' WHERE batch_id = 'B5' AND seq = 2")
    conn.execute("DELETE FROM ledger WHERE pos = (SELECT MAX(pos) FROM ledger)")
    conn.commit()
    conn.close()
    in_parts(monkeypatch, 1)
    alone = lab.audit.verify()
    in_parts(monkeypatch, 3)
    split = lab.audit.verify()
    assert split.parts == 3 and _said(split) == _said(alone)
    assert any("B5" in p and p.startswith("BROKEN") for p in _said(split)), _said(split)


def test_an_anchor_made_in_parts_signs_the_same_list_of_batches(lab, monkeypatch, tmp_path, clock):
    lists = []
    for parts in (1, 3):
        folder = tmp_path / f"anchors-{parts}"
        folder.mkdir()
        in_parts(monkeypatch, parts)
        clock.advance(minutes=1)
        _path, cp = lab.audit.anchor("rita", PASSWORD, str(folder))
        lists.append((folder / cp.tables_file_name).read_text(encoding="utf-8"))
        assert cp.tables and cp.tables["batches"] == len(BATCHES)
        assert lab.audit.verify(anchors_dir=str(folder)).tables_vouched == len(BATCHES)
    assert lists[0] == lists[1] and lists[0].count("\n") == len(BATCHES)


def test_a_part_whose_process_fails_is_checked_here(lab, monkeypatch, db_path):
    """A child that raises, or dies without a word, costs time, never a verdict."""
    _forge(db_path)
    in_parts(monkeypatch, 1)
    alone = lab.audit.verify()
    parent = os.getpid()
    real = AuditService._check_streams
    here: list[Span | None] = []

    def failing(self, found, only, span, tables, users):
        if os.getpid() != parent:
            if span is not None and span[1] is None:
                os._exit(3)  # the last part's process dies
            raise StoreError("the server went away")  # the others' raise
        here.append(span)
        return real(self, found, only, span, tables, users)

    monkeypatch.setattr(AuditService, "_check_streams", failing)
    in_parts(monkeypatch, 3)
    split = lab.audit.verify()
    assert split.parts == 3 and _said(split) == _said(alone)
    assert len(here) == 3  # its own part, then both others'


def test_when_the_parents_part_fails_no_child_is_left_running(lab, monkeypatch):
    parent = os.getpid()
    started: list[int] = []
    real_init = log_parts.Forked.__init__

    def noted(self, work):
        real_init(self, work)
        started.append(self.pid)

    def stuck_or_failing(self, found, only, span, tables, users):
        if os.getpid() != parent:
            time.sleep(60)
        raise StoreError("cannot read the database: disk I/O error")

    monkeypatch.setattr(log_parts.Forked, "__init__", noted)
    monkeypatch.setattr(AuditService, "_check_streams", stuck_or_failing)
    in_parts(monkeypatch, 3)
    began = time.monotonic()
    with pytest.raises(StoreError, match="disk I/O error"):
        lab.audit.verify()
    assert time.monotonic() - began < 30
    assert len(started) == 2
    for pid in started:
        with pytest.raises(ChildProcessError):
            os.waitpid(pid, os.WNOHANG)  # reaped: not running, not a zombie


def test_a_small_log_or_a_single_processor_is_checked_in_one_process(lab, monkeypatch):
    monkeypatch.setattr(log_parts, "processes", lambda: 1)
    monkeypatch.setattr(log_parts, "PARTS_FROM", 0)
    assert lab.audit.verify().parts == 1
    monkeypatch.setattr(log_parts, "processes", lambda: 4)
    monkeypatch.setattr(log_parts, "PARTS_FROM", 10**9)
    assert lab.audit.verify().parts == 1
    assert log_parts.spans(lab.store, 10**9, parts=1) == [(None, None)]


def test_with_another_thread_running_no_process_is_forked(monkeypatch):
    """A child would inherit the other thread's locks held mid-step: one process then."""
    stop = threading.Event()
    other = threading.Thread(target=stop.wait)
    other.start()
    try:
        assert log_parts.processes() == 1
    finally:
        stop.set()
        other.join()
    assert log_parts.processes() >= 1


def test_each_part_holds_about_its_share_of_the_events_and_no_stream_is_cut(lab, monkeypatch):
    """The first process takes the smaller share (it walks the ledger after its span); a
    cut falls where a stream begins, so a part's share is off by less than one stream."""
    monkeypatch.setattr(log_parts, "PARTS_FROM", 0)
    store = lab.store
    tail = store.ledger_tail()
    assert tail is not None
    longest = max(len(store.events(s)) for s in store.stream_ids())
    for parts in (2, 3, 4):
        spans = log_parts.spans(store, tail.pos, parts)
        assert len(spans) == parts and spans[0][0] is None and spans[-1][1] is None
        assert all(a[1] == b[0] for a, b in itertools.pairwise(spans))
        sizes = [len(list(store.iter_events(span=span))) for span in spans]
        assert sum(sizes) == tail.pos
        shares = [log_parts.HERE_SHARE, *[1.0] * (parts - 1)]
        for size, share in zip(sizes, shares, strict=True):
            assert abs(size - tail.pos * share / sum(shares)) <= longest, (parts, sizes)


class _Layout:
    """A log as ``spans`` sees it: streams in the database's order, each with its events."""

    def __init__(self, sizes: list[int]) -> None:
        self.order = [s for i, n in enumerate(sizes) for s in [f"S{i:03d}"] * n]

    def streams_at(self, places: list[int]) -> list[str | None]:
        return [self.order[max(p, 0)] if p < len(self.order) else None for p in places]


@given(
    sizes=st.lists(st.integers(min_value=1, max_value=40), min_size=1, max_size=60),
    parts=st.integers(min_value=2, max_value=6),
)
def test_spans_cut_the_log_into_ordered_parts_at_stream_starts(sizes, parts):
    """Whatever the streams' lengths: the spans run end to end from the first stream to
    past the last, each cut is the start of a stream, no part is empty, and each stream
    falls in exactly one part."""
    layout = _Layout(sizes)
    events = len(layout.order)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(log_parts, "PARTS_FROM", 0)
        spans = log_parts.spans(layout, events, parts)  # type: ignore[arg-type]
    assert spans[0][0] is None and spans[-1][1] is None and 1 <= len(spans) <= parts
    assert all(a[1] == b[0] for a, b in pairwise(spans))
    streams = list(dict.fromkeys(layout.order))
    cuts = [s[0] for s in spans[1:]]
    assert all(c in streams for c in cuts) and cuts == sorted(cuts)

    def within(span: Span, stream: str) -> bool:
        first, stop = span
        return (first is None or first <= stream) and (stop is None or stream < stop)

    assert all(sum(within(span, s) for span in spans) == 1 for s in streams)
    assert all(any(within(span, s) for s in streams) for span in spans)  # none empty
