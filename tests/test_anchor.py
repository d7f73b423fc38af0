"""Signed checkpoints of the ledger, kept outside the database: `audit anchor` writes one,
`audit verify --anchors` fails when the log no longer extends it.

The forgeries here are the ones no check inside the database can see: the newest events
cut off everywhere (events, heads, ledger rows), and a value changed with every hash after
it recomputed. Each forger also rebuilds the query tables and puts the triggers back, so
the database is consistent in itself; only the checkpoint shows what happened.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, edit_tables, forger_connect, run_to
from hypothesis import given, settings
from hypothesis import strategies as st

from cmprep.cli import Shell, main
from cmprep.domain import anchors
from cmprep.errors import ClockBehind, NotFound, Refused
from cmprep.service import Services
from cmprep.store import open_store
from cmprep.store.packing import unpack

COLUMNS = [
    "batch_id",
    "seq",
    "type",
    "actor",
    "recorded_at",
    "performed_at",
    "reason",
    "payload",
    "prev_hash",
    "hash",
]


@pytest.fixture(autouse=True)
def no_anchor_env(monkeypatch):
    """No checkpoint folder from the machine running the tests."""
    monkeypatch.delenv("CMPREP_ANCHORS", raising=False)


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    path = tmp_path / "anchors"
    path.mkdir()
    return path


@pytest.fixture
def lab(svc, clock):
    """B1 run to QA review with bob's verification of filtration, then B2 started by bob."""
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    clock.advance(minutes=5)
    svc.batches.start(STANDARD, "bob", "B2")
    clock.advance(minutes=5)
    assert svc.audit.verify().problems == []
    return svc


def _anchor(svc, clock, folder: Path, who: str = "rita") -> anchors.Checkpoint:
    clock.advance(minutes=1)
    _path, cp = svc.audit.anchor(who, PASSWORD, str(folder))
    return cp


def _files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _checkpoint_problems(svc, folder: Path) -> list[str]:
    return [str(p) for p in svc.audit.verify(anchors_dir=str(folder)).problems]


# --- the forger's tools: plain sqlite3, as someone with the file and cmprep's source -------
def _open(db) -> sqlite3.Connection:
    conn = forger_connect(db)
    for name in ("events_no_update", "events_no_delete", "ledger_no_update", "ledger_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {name}")
    return conn


def _cover_up(conn: sqlite3.Connection, svc) -> None:
    """Put the triggers back and rebuild the query tables, so nothing inside looks wrong."""
    from cmprep.store.sqlite import _SCHEMA, _split

    for statement in _split(_SCHEMA):
        if statement.startswith("CREATE TRIGGER"):
            conn.execute(statement)
    conn.commit()
    conn.close()
    svc.audit.rebuild_projections()


def truncate(db, svc, keep: int) -> None:
    """Cut the log back to its first KEEP ledger positions: the events, their ledger rows,
    and each stream's head moved back to what is left (or removed with the stream)."""
    conn = _open(db)
    cut = conn.execute("SELECT batch_id, seq FROM ledger WHERE pos > ?", (keep,)).fetchall()
    assert cut, "nothing to cut"
    for stream, seq in cut:
        conn.execute("DELETE FROM events WHERE batch_id = ? AND seq = ?", (stream, seq))
    conn.execute("DELETE FROM ledger WHERE pos > ?", (keep,))
    for stream in {s for s, _ in cut}:
        last = conn.execute(
            "SELECT seq, hash FROM events WHERE batch_id = ? ORDER BY seq DESC LIMIT 1", (stream,)
        ).fetchone()
        if last:
            conn.execute("UPDATE heads SET seq = ?, hash = ? WHERE batch_id = ?", (*last, stream))
        else:
            conn.execute("DELETE FROM heads WHERE batch_id = ?", (stream,))
    _cover_up(conn, svc)


def rewrite(db, svc, stream: str, seq: int, change: Callable[[dict[str, Any]], None]) -> None:
    """Change one event, then recompute everything that depends on it: every chain hash,
    every signature's content hash, every head and the whole ledger."""
    from cmprep.domain.signatures import expected_content
    from cmprep.events import GENESIS, Event, hash_body, ledger_hash

    conn = _open(db)
    new_hashes: dict[tuple[str, int], str] = {}
    for (sid,) in conn.execute("SELECT DISTINCT batch_id FROM events").fetchall():
        prev, done = GENESIS, []
        rows = conn.execute("SELECT * FROM events WHERE batch_id = ? ORDER BY seq", (sid,))
        for row in rows.fetchall():
            data = dict(zip(COLUMNS, row, strict=True))
            data["payload"] = json.loads(unpack(data["payload"]))
            if (sid, data["seq"]) == (stream, seq):
                change(data)
            data["prev_hash"] = prev
            event = Event(**data)
            if sig := data["payload"].get("signature"):
                sig["content_hash"] = expected_content([*done, event], event)
            data["hash"] = hash_body(Event(**data).body())
            done.append(Event(**data))
            conn.execute(
                "UPDATE events SET actor = ?, payload = ?, prev_hash = ?, hash = ? "
                "WHERE batch_id = ? AND seq = ?",
                (
                    data["actor"],
                    json.dumps(data["payload"], ensure_ascii=False, sort_keys=True),
                    prev,
                    data["hash"],
                    sid,
                    data["seq"],
                ),
            )
            new_hashes[(sid, data["seq"])] = prev = data["hash"]
        conn.execute("UPDATE heads SET hash = ? WHERE batch_id = ?", (prev, sid))
    prev = GENESIS
    for pos, sid, sq in conn.execute(
        "SELECT pos, batch_id, seq FROM ledger ORDER BY pos"
    ).fetchall():
        eh = new_hashes[(sid, sq)]
        prev_new = ledger_hash(pos, sid, sq, eh, prev)
        conn.execute(
            "UPDATE ledger SET event_hash = ?, prev = ?, hash = ? WHERE pos = ?",
            (eh, prev, prev_new, pos),
        )
        prev = prev_new
    _cover_up(conn, svc)


def _confluence_seq(db) -> int:
    """The seq of B1's expansion (the step with the confluence), read as a forger would."""
    conn = forger_connect(db)
    seq = conn.execute(
        "SELECT seq FROM events WHERE batch_id = 'B1' AND type = 'step_recorded' "
        "AND unpacked(payload) LIKE '%\"confluence\"%'"
    ).fetchone()[0]
    conn.close()
    return int(seq)


# --- anchoring -----------------------------------------------------------------------------
def test_a_reviewer_anchors_the_ledger_head_into_a_signed_file(lab, clock, folder):
    mark = lab.audit.ledger_mark()
    cp = _anchor(lab, clock, folder)
    assert (cp.position, cp.ledger_hash, cp.anchored_by) == (mark.pos, mark.hash, "rita")
    stamp = clock.now.strftime("%Y%m%dT%H%M%SZ")
    name = f"ledger-{mark.pos:012d}-{stamp}"
    assert _files(folder) == [f"{name}.json", f"{name}.tables"]  # and its list of batches
    data = json.loads((folder / _files(folder)[0]).read_text())
    assert data["format"] == anchors.FORMAT and data["position"] == mark.pos
    assert data["ledger_hash"] == mark.hash
    assert data["anchored_at"] == clock.now.strftime("%Y-%m-%dT%H:%M:%SZ")
    sig = data["signature"]
    assert sig["meaning"] == "anchored" and sig["subject"] == {
        "kind": "ledger",
        "id": str(mark.pos),
    }
    assert sig["content_hash"] == mark.hash and sig["signer"] == "rita"
    result = lab.audit.verify(anchors_dir=str(folder))
    assert result.problems == [] and result.checkpoints == 1 and result.anchors == str(folder)


def test_qa_and_admin_may_anchor_a_technician_may_not_and_the_refusal_is_logged(lab, clock, folder):
    _anchor(lab, clock, folder, "quinn")
    _anchor(lab, clock, folder, "root")
    with pytest.raises(
        Refused, match="alice is technician; to anchor one must be: admin, qa, reviewer"
    ):
        _anchor(lab, clock, folder, "alice")
    assert len(_files(folder)) == 4  # two checkpoints, each with its list of batches
    assert lab.people.security_log()[-1]["reason"] == "role technician may not anchor"


def test_a_wrong_password_signs_and_writes_nothing(lab, clock, folder, monkeypatch):
    """Said before the log is read: for years of batches, that read takes minutes."""

    def unread(*_args: Any) -> None:
        raise AssertionError("the log was read before the password was checked")

    monkeypatch.setattr(lab.store, "iter_events", unread)
    with pytest.raises(Refused, match="wrong password for rita"):
        lab.audit.anchor("rita", "not the password", str(folder))
    assert _files(folder) == []


def test_without_a_folder_nothing_is_signed_and_the_hint_says_where_to_give_one(lab, clock):
    with pytest.raises(Refused, match="no folder for ledger checkpoints is set") as err:
        lab.audit.anchor("rita", PASSWORD, None)
    assert err.value.hint is not None and err.value.hint.kind == "anchor_folder"


def test_a_folder_that_does_not_exist_is_not_created(lab, tmp_path):
    missing = tmp_path / "unmounted-share"
    with pytest.raises(NotFound, match="unmounted-share does not exist or is not a folder"):
        lab.audit.anchor("rita", PASSWORD, str(missing))
    assert not missing.exists()
    with pytest.raises(NotFound, match="nothing was checked"):
        lab.audit.verify(anchors_dir=str(missing))


def test_the_folder_defaults_to_cmprep_anchors_for_anchor_and_verify(
    lab, clock, folder, monkeypatch
):
    monkeypatch.setenv("CMPREP_ANCHORS", str(folder))
    clock.advance(minutes=1)
    path, cp = lab.audit.anchor("rita", PASSWORD)
    assert path.parent == folder and path.name == cp.file_name
    result = lab.audit.verify()
    assert result.problems == [] and result.checkpoints == 1


def test_checkpoints_sort_by_position_and_none_is_ever_replaced(lab, clock, folder):
    first = _anchor(lab, clock, folder)
    lab.batches.record("B2", "isolation", GOOD["isolation"], "bob")
    second = _anchor(lab, clock, folder)
    assert second.position == first.position + 1
    assert _files(folder) == [
        first.file_name, first.tables_file_name, second.file_name, second.tables_file_name
    ]  # fmt: skip
    before = (folder / second.file_name).read_text()
    with pytest.raises(Refused, match=f"a checkpoint {second.file_name} already exists"):
        lab.audit.anchor("quinn", PASSWORD, str(folder))  # same position, same second
    assert (folder / second.file_name).read_text() == before
    assert [n for n in _files(folder) if n.startswith(".")] == []  # no temporary file left


def test_a_log_that_grows_after_the_checkpoint_still_extends_it(lab, clock, folder):
    _anchor(lab, clock, folder)
    lab.batches.record("B2", "isolation", GOOD["isolation"], "bob")
    assert _checkpoint_problems(lab, folder) == []


def test_a_broken_log_is_not_anchored(lab, clock, folder, db_path):
    conn = _open(db_path)
    conn.execute("UPDATE events SET actor = 'bob' WHERE batch_id = 'B1' AND seq = 2")
    conn.commit()
    conn.close()
    with pytest.raises(Refused, match="the log has 1 break") as err:
        _anchor(lab, clock, folder)
    assert err.value.problems and "B1: event 2" in err.value.problems[0]
    assert _files(folder) == []


def test_a_clock_behind_the_log_anchors_nothing(lab, clock, folder):
    clock.advance(hours=-1)
    with pytest.raises(ClockBehind, match="earlier than the newest entry of the log"):
        lab.audit.anchor("rita", PASSWORD, str(folder))
    assert _files(folder) == []


# --- what a checkpoint catches ---------------------------------------------------------------
def test_cutting_off_the_newest_events_everywhere_is_caught_by_the_checkpoint(
    lab, clock, folder, db_path
):
    cp = _anchor(lab, clock, folder)
    truncate(db_path, lab, keep=cp.position - 2)  # B2 started, and the event before it
    assert lab.audit.verify().problems == []  # consistent in itself: no inside check sees it
    assert "B2" not in lab.store.batch_ids()
    (problem,) = _checkpoint_problems(lab, folder)
    assert problem == (
        f"checkpoint {cp.file_name}: the ledger ends at position {cp.position - 2}, but on "
        f"{cp.anchored_at} rita anchored position {cp.position} ({cp.ledger_hash[:16]}): "
        "entries were removed since"
    )


def test_a_rewrite_with_every_hash_recomputed_is_caught_by_the_checkpoint(
    lab, clock, folder, db_path
):
    """B2's start by bob made alice's: nothing signs it, so the inside checks pass."""
    cp = _anchor(lab, clock, folder)
    rewrite(db_path, lab, "B2", 1, lambda e: e.update(actor="alice"))
    assert lab.batches.batch("B2").started_by == "alice"
    assert lab.audit.verify().problems == []
    (problem,) = _checkpoint_problems(lab, folder)
    assert problem.startswith(f"checkpoint {cp.file_name}: the ledger entry at position ")
    assert f"but rita anchored {cp.ledger_hash[:16]} on {cp.anchored_at}" in problem
    assert problem.endswith("the log up to it was rewritten")


def test_a_changed_value_with_every_hash_and_signature_hash_recomputed_is_caught(
    lab, clock, folder, db_path
):
    cp = _anchor(lab, clock, folder)
    seq = _confluence_seq(db_path)

    def confluence_79(event: dict[str, Any]) -> None:
        event["payload"]["values"]["confluence"]["raw"] = "79"

    rewrite(db_path, lab, "B1", seq, confluence_79)
    problems = _checkpoint_problems(lab, folder)
    assert any(
        p.startswith(f"checkpoint {cp.file_name}: the ledger entry at position {cp.position} ")
        and p.endswith("rewritten")
        for p in problems
    )


# --- seals a checkpoint vouches for ----------------------------------------------------------
@pytest.fixture
def seal_checks(monkeypatch) -> list[int]:
    """Counts every Ed25519 seal checked (one item per check)."""
    from cmprep.domain import keys

    checks: list[int] = []
    real = keys.is_valid

    def counted(public: str, message: bytes, signature: str) -> bool:
        checks.append(1)
        return real(public, message, signature)

    monkeypatch.setattr(keys, "is_valid", counted)
    return checks


def _seals_checked(checks: list[int], run: Callable[[], Any]) -> tuple[int, Any]:
    checks.clear()
    result = run()
    return len(checks), result


def test_seals_up_to_the_newest_checkpoint_that_holds_are_vouched_for_not_checked_again(
    lab, clock, folder, seal_checks
):
    every, plain = _seals_checked(seal_checks, lab.audit.verify)
    assert every >= 5 and plain.vouched == 0 and plain.vouched_by is None
    cp = _anchor(lab, clock, folder)
    # the checkpoint's own seals (the ledger's, its table list's) are the ones checked;
    # every seal of the log is vouched for
    checked, result = _seals_checked(seal_checks, lambda: lab.audit.verify(anchors_dir=str(folder)))
    assert (checked, result.problems) == (2, [])
    assert (result.vouched, result.vouched_by) == (every, cp.file_name)
    # a seal made after the checkpoint is checked; those before stay vouched for
    clock.advance(minutes=1)
    lab.batches.record("B2", "isolation", GOOD["isolation"], "bob", password=PASSWORD)
    checked, result = _seals_checked(seal_checks, lambda: lab.audit.verify(anchors_dir=str(folder)))
    assert (checked, result.vouched, result.problems) == (3, every, [])
    # --all-seals checks them all, and BATCH checks all of that batch's
    checked, result = _seals_checked(
        seal_checks, lambda: lab.audit.verify(anchors_dir=str(folder), all_seals=True)
    )
    assert (checked, result.vouched, result.vouched_by) == (2 + every + 1, 0, None)
    alone, _ = _seals_checked(seal_checks, lambda: lab.audit.verify("B1"))
    checked, result = _seals_checked(
        seal_checks, lambda: lab.audit.verify("B1", anchors_dir=str(folder))
    )
    assert (checked, result.vouched) == (2 + alone, 0) and alone >= 1


def test_a_failing_checkpoint_vouches_for_nothing(lab, clock, folder, seal_checks):
    every, _ = _seals_checked(seal_checks, lab.audit.verify)
    cp = _anchor(lab, clock, folder)
    path = folder / cp.file_name
    data = json.loads(path.read_text())
    data["anchored_by"] = data["signature"]["signer"] = "quinn"  # the seal no longer holds
    path.write_text(json.dumps(data))
    checked, result = _seals_checked(seal_checks, lambda: lab.audit.verify(anchors_dir=str(folder)))
    assert (checked, result.vouched, result.vouched_by) == (1 + every, 0, None)
    assert [p.label for p in result.problems] == ["BROKEN"]


def test_a_log_with_any_break_has_every_seal_checked_again(
    lab, clock, folder, db_path, seal_checks
):
    """The checkpoint still holds (the ledger is untouched), but a chain is broken: then
    nothing is vouched for, and every seal of every whole stream is checked."""
    _anchor(lab, clock, folder)
    conn = _open(db_path)
    conn.execute("UPDATE events SET actor = 'alice' WHERE batch_id = 'B2' AND seq = 1")
    conn.commit()
    conn.close()
    checked, result = _seals_checked(seal_checks, lambda: lab.audit.verify(anchors_dir=str(folder)))
    assert result.vouched == 0 and result.vouched_by is None
    b1_seals, _ = _seals_checked(seal_checks, lambda: lab.audit.verify("B1"))
    assert checked >= 1 + b1_seals
    assert any("B2: event 1" in str(p) for p in result.problems)


def test_a_forged_seal_before_the_checkpoint_is_named_as_the_ledger_no_longer_extends_it(
    lab, clock, folder, db_path
):
    """A value behind a signature changed, every hash recomputed: the checkpoint fails,
    so it vouches for nothing, and the seal over the old value is named."""
    cp = _anchor(lab, clock, folder)
    seq = _confluence_seq(db_path)
    rewrite(
        db_path, lab, "B1", seq, lambda e: e["payload"]["values"]["confluence"].update(raw="79")
    )
    result = lab.audit.verify(anchors_dir=str(folder))
    shown = [str(p) for p in result.problems]
    # bob's verification of filtration covers the value: its seal no longer holds
    assert any(
        p.startswith("B1: event ") and "verified signature by 'bob' was not made with" in p
        for p in shown
    ), shown
    assert any(p.startswith(f"checkpoint {cp.file_name}") for p in shown)
    assert result.vouched == 0


def test_a_log_rewritten_since_a_checkpoint_is_not_anchored_again(lab, clock, folder, db_path):
    cp = _anchor(lab, clock, folder)
    rewrite(db_path, lab, "B2", 1, lambda e: e.update(actor="alice"))
    with pytest.raises(Refused, match="1 problem\\(s\\) with the checkpoints already in") as err:
        _anchor(lab, clock, folder)
    assert err.value.problems and err.value.problems[0].startswith(f"checkpoint {cp.file_name}")
    assert _files(folder) == [cp.file_name, cp.tables_file_name]


def test_a_checkpoint_edited_to_match_a_forged_log_fails_its_own_signature(
    lab, clock, folder, db_path
):
    cp = _anchor(lab, clock, folder)
    rewrite(db_path, lab, "B2", 1, lambda e: e.update(actor="alice"))
    forged_head = lab.audit.ledger_mark().hash
    path = folder / cp.file_name
    data = json.loads(path.read_text())
    data["ledger_hash"] = forged_head
    path.write_text(json.dumps(data))
    assert f"checkpoint {cp.file_name}: the signature covers another ledger hash" in (
        "\n".join(_checkpoint_problems(lab, folder))
    )
    data["signature"]["content_hash"] = forged_head
    path.write_text(json.dumps(data))
    (problem,) = _checkpoint_problems(lab, folder)
    assert problem == (
        f"checkpoint {cp.file_name}: anchored signature by 'rita' was not made with their key "
        "(forged or altered)"
    )


def test_a_renamed_or_unreadable_checkpoint_is_named_and_other_files_are_left_alone(
    lab, clock, folder
):
    cp = _anchor(lab, clock, folder)
    renamed = cp.file_name.replace(f"{cp.position:012d}", f"{cp.position + 5:012d}")
    (folder / cp.file_name).rename(folder / renamed)
    (folder / "ledger-000000000001-20261101T000000Z.json").write_text("{not json")
    (folder / "README.txt").write_text("QA share: do not delete")
    (folder / ".ledger-000000000009-x.json.1.tmp").write_text("half written")
    problems = _checkpoint_problems(lab, folder)
    assert problems == [
        "checkpoint ledger-000000000001-20261101T000000Z.json: is not readable JSON "
        "(damaged or not a checkpoint)",
        f"checkpoint {renamed}: its name says position {cp.position + 5} but it records "
        f"{cp.position} (renamed or edited)",
    ]


def test_a_checkpoint_of_the_wrong_shape_names_every_problem():
    bad = json.dumps({"format": anchors.FORMAT, "position": 0, "ledger_hash": "x"})
    assert [str(b) for b in anchors.check("ledger-x.json", bad, [])] == [
        "checkpoint ledger-x.json: position must be a whole number from 1, not 0",
        "checkpoint ledger-x.json: ledger_hash must be 64 hexadecimal digits",
        "checkpoint ledger-x.json: anchored_at is missing",
        "checkpoint ledger-x.json: anchored_by is missing",
        "checkpoint ledger-x.json: it carries no signature",
    ]
    other = anchors.check("ledger-y.json", json.dumps({"position": 3}), [])
    assert [b.problem for b in other] == [
        "is not a cmprep ledger checkpoint (no format 'cmprep ledger checkpoint 1')"
    ]


# --- query tables a checkpoint vouches for ---------------------------------------------------
@pytest.fixture
def folds(lab) -> list[str]:
    """The first event's stream of every batch folded from here on (one item per fold)."""
    folded: list[str] = []
    real = lab.audit.ctx.fold

    def counted(events, *args, **kwargs):
        folded.append(events[0].batch_id if events else "")
        return real(events, *args, **kwargs)

    lab.audit.ctx.fold = counted
    return folded


def test_a_checkpoint_vouches_for_the_tables_of_batches_unchanged_since(
    lab, clock, folder, folds, db_path
):
    """Folding every batch is most of what comparing the tables costs: a batch whose head
    and rows are those the checkpoint found equal to its log is not folded again; one
    written since is, and so is one whose rows were edited, which is then named."""
    cp = _anchor(lab, clock, folder)
    assert sorted(folds) == ["B1", "B2"] and cp.tables and cp.tables["batches"] == 2
    with open(folder / cp.tables_file_name, newline="") as f:
        listed = anchors.VouchedTables.read(f)
    assert len(listed) == 2 and listed.get("B3") is None
    assert listed.get("B1") == (*lab.store.head("B1"), listed.get("B1").digest)
    folds.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert (result.problems, folds, result.tables_vouched, result.tables_folded) == ([], [], 2, 0)
    clock.advance(minutes=1)
    lab.batches.record("B2", "isolation", GOOD["isolation"], "bob")
    result = lab.audit.verify(anchors_dir=str(folder))
    assert (result.problems, folds, result.tables_vouched) == ([], ["B2"], 1)
    # B1's row edited: its digest no longer holds
    edit_tables(db_path, "UPDATE batches SET state = 'released' WHERE batch_id = 'B1'")
    folds.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert sorted(folds) == ["B1", "B2"] and result.tables_vouched == 0
    assert [f"{p.label} {p}" for p in result.problems] == [
        "DIFFERS batches table, B1: a search by state = 'awaiting_review' misses it, though "
        "the log says it matches"
    ]
    folds.clear()
    every = lab.audit.verify(anchors_dir=str(folder), all_seals=True)
    assert sorted(folds) == ["B1", "B2"] and every.tables_vouched == 0


def test_a_new_checkpoint_carries_on_what_the_last_vouched_for(lab, clock, folder, folds):
    """`audit anchor` trusts the newest checkpoint that holds as `verify` does: a batch
    unchanged since is listed again without folding its log."""
    _anchor(lab, clock, folder)
    clock.advance(minutes=1)
    lab.batches.record("B2", "isolation", GOOD["isolation"], "bob")
    folds.clear()
    second = _anchor(lab, clock, folder)
    assert folds == ["B2"] and second.tables and second.tables["batches"] == 2
    folds.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert (result.problems, folds, result.tables_vouched) == ([], [], 2)


@pytest.mark.parametrize(
    ("edit", "said"),
    [
        (lambda text: text.replace("\t1", "\t2", 1), "was changed since it was signed"),
        (None, "cannot be read"),
    ],
    ids=["an entry changed", "the list removed"],
)  # fmt: skip
def test_a_table_list_changed_or_removed_vouches_for_nothing_and_is_named(
    lab, clock, folder, folds, edit, said
):
    cp = _anchor(lab, clock, folder)
    path = folder / cp.tables_file_name
    if edit is None:
        path.unlink()
    else:
        path.write_text(edit(path.read_text()))
    folds.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert sorted(folds) == ["B1", "B2"] and result.tables_vouched == 0
    shown = [f"{p.label} {p}" for p in result.problems]
    assert len(shown) == 1 and shown[0].startswith(f"BROKEN checkpoint {cp.file_name}: ")
    assert said in shown[0]
    with pytest.raises(Refused, match="problem\\(s\\) with the checkpoints already in"):
        _anchor(lab, clock, folder)  # a tampered folder is not anchored on


def test_a_table_list_signed_by_someone_else_vouches_for_nothing(lab, clock, folder, folds):
    """Its hash recorded again to match an edited list, and the list's signature moved to
    another person: the signature no longer holds."""
    cp = _anchor(lab, clock, folder)
    path = folder / cp.tables_file_name
    path.write_text(path.read_text().replace("\t1", "\t2", 1))
    data = json.loads((folder / cp.file_name).read_text())
    data["tables"]["sha256"] = anchors.tables_sha256([path.read_text()])
    data["tables"]["signature"]["content_hash"] = data["tables"]["sha256"]
    (folder / cp.file_name).write_text(json.dumps(data))
    folds.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert sorted(folds) == ["B1", "B2"] and result.tables_vouched == 0
    [problem] = [str(p) for p in result.problems]
    assert problem.startswith(f"checkpoint {cp.file_name}: its table list's signature: ")


@pytest.fixture
def keyed(monkeypatch) -> list[str]:
    """The batch of every read of a batch's query-table rows by its key (one per read)."""
    import cmprep.service.audit as audit_service

    read: list[str] = []
    real = audit_service.kept_by_key

    def counted(store, batch_id, kept_uses):
        read.append(batch_id)
        return real(store, batch_id, kept_uses)

    monkeypatch.setattr(audit_service, "kept_by_key", counted)
    return read


def test_with_a_checkpoint_each_table_is_read_once_beside_the_log_not_by_batch(
    lab, clock, folder, keyed, db_path
):
    """Reading each batch's rows by its key (four reads a batch) was most of an anchored
    verification of years of batches: each table is streamed once in the log's order, and
    a batch's rows are read by key only when they are not as vouched for."""
    _anchor(lab, clock, folder)
    keyed.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert (result.problems, result.tables_vouched) == ([], 2)
    assert [k for k in keyed if not k.startswith("@")] == []  # the system streams': no rows
    # B1's row edited: read again by key, folded, named
    edit_tables(db_path, "UPDATE batches SET state = 'released' WHERE batch_id = 'B1'")
    keyed.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert [k for k in keyed if not k.startswith("@")] == ["B1"]
    assert result.tables_vouched == 1 and len(result.problems) == 1
    assert "B1: a search by state = 'awaiting_review' misses it" in str(result.problems[0])


def test_rows_streamed_out_of_the_logs_order_cost_reads_never_a_verdict(
    lab, clock, folder, keyed, folds, monkeypatch
):
    """Should a database ever order ids otherwise for a table than for the log, a batch is
    handed no rows (or another's): its digest disagrees, it is read again by key, and it
    is still vouched for; nothing is said that is not so."""
    _anchor(lab, clock, folder)
    real = lab.store.iter_logged_rows
    monkeypatch.setattr(
        lab.store,
        "iter_logged_rows",
        lambda table, columns, span=None: reversed(list(real(table, columns, span))),
    )
    keyed.clear()
    folds.clear()
    result = lab.audit.verify(anchors_dir=str(folder))
    assert (result.problems, result.tables_vouched, folds) == ([], 2, [])
    # B2's rows come first: B1 is handed none and read by key; B2 then takes its own
    assert [k for k in keyed if not k.startswith("@")] == ["B1"]


def test_how_far_the_checkpoint_vouches_for_each_stream_is_read_once_beside_the_log(
    lab, clock, folder, monkeypatch
):
    """One read of the ledger gives how far the checkpoint vouches for every stream's
    seals, not one read per stream with a signature; a stream not in it (or read out of
    the log's order) is asked by itself, and vouches for the same seals."""
    _anchor(lab, clock, folder)
    asked: list[str] = []
    real = lab.store.ledgered_through

    def counted(stream: str, pos: int) -> int:
        asked.append(stream)
        return real(stream, pos)

    monkeypatch.setattr(lab.store, "ledgered_through", counted)
    result = lab.audit.verify(anchors_dir=str(folder))
    assert (result.problems, asked) == ([], []) and result.vouched > 0
    streamed = lab.store.iter_ledgered_through
    monkeypatch.setattr(
        lab.store,
        "iter_ledgered_through",
        lambda pos, span=None: reversed(list(streamed(pos, span))),
    )
    again = lab.audit.verify(anchors_dir=str(folder))
    assert (again.problems, again.vouched) == ([], result.vouched) and asked


def test_without_a_checkpoint_the_tables_are_streamed_too_and_an_edit_is_read_by_key(
    lab, keyed, folds, db_path, monkeypatch
):
    """Every batch is folded, and compared with its rows as streamed beside the log; a
    batch whose streamed rows differ from its fold is read again by key, and what differs
    then is said. Streamed in another order than the log's, nothing false is said."""
    result = lab.audit.verify()
    assert (result.problems, sorted(folds), result.tables_folded) == ([], ["B1", "B2"], 2)
    assert [k for k in keyed if not k.startswith("@")] == []
    edit_tables(
        db_path,
        "UPDATE qc_points SET value = value + 1 WHERE batch_id = 'B1'",
        "UPDATE batches SET state = 'released' WHERE batch_id = 'B2'",
    )
    keyed.clear()
    said = [str(p) for p in lab.audit.verify().problems]
    assert [k for k in keyed if not k.startswith("@")] == ["B1", "B2"]
    assert any(p.startswith("qc_points table, B1/qc/") for p in said), said
    assert (
        "batches table, B2: a search by state = 'isolation' misses it, though the log says it matches"
        in said
    )
    real = lab.store.iter_logged_rows
    monkeypatch.setattr(
        lab.store,
        "iter_logged_rows",
        lambda table, columns, span=None: reversed(list(real(table, columns, span))),
    )
    assert [str(p) for p in lab.audit.verify().problems] == said


# --- records and reports say which state of the log they were made from ---------------------
def test_the_record_and_the_audit_report_print_the_ledger_position_and_short_head(lab):
    mark = lab.audit.ledger_mark()
    short = mark.hash[:16]
    record_md = lab.documents.record("B1", "md")
    assert f"- Ledger position: {mark.pos} (head `{short}…`)" in record_md
    record_html = lab.documents.record("B1", "html")
    assert f"ledger position {mark.pos}, {short}…" in record_html
    assert f"<tr><th>Ledger position</th><td>{mark.pos} (head {short}…)" in record_html
    report_md = lab.documents.audit_report(None, "md")
    assert f"| Made from the ledger at | position {mark.pos}, head `{short}…` |" in report_md
    report_html = lab.documents.audit_report(None, "html")
    assert f'position {mark.pos}, head <span class="mono">{short}…</span>' in report_html


# --- the command line ----------------------------------------------------------------------
@pytest.fixture
def cli(lab, clock, db_path, tmp_path, monkeypatch):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    monkeypatch.setenv("CMPREP_SESSIONS", str(tmp_path / "sessions"))
    shell = Shell(lambda db: Services(open_store(db), clock=clock))

    def invoke(*args: str, input: str | None = None):
        clock.advance(minutes=1)
        return CliRunner().invoke(main, list(args), input=input, obj=shell)

    return invoke


def test_anchor_and_verify_from_the_command_line(cli, lab, folder, db_path):
    out = cli(
        "audit", "anchor", "--to", str(folder), "--as", "rita", "--password-stdin",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert out.exit_code == 0, out.output
    (name, tables) = _files(folder)
    mark = lab.audit.ledger_mark()
    assert out.output == (
        f"Ledger anchored at position {mark.pos} ({mark.hash[:16]}…), signed by rita: "
        f"{folder / name}\nQuery tables of 2 batch(es) found equal to their logs, listed and "
        f"signed beside it: {folder / tables}\n"
    )
    ok = cli("audit", "verify", "--anchors", str(folder))
    assert ok.exit_code == 0, ok.output
    assert f"Checkpoints: the ledger extends all 1 in {folder}." in ok.output
    vouched = lab.audit.verify(anchors_dir=str(folder)).vouched
    assert vouched >= 5 and (
        f"Seals: the {vouched} signed event(s) up to checkpoint {name} were checked when it "
        "was signed and are unchanged since (--all-seals checks them again)."
    ) in " ".join(ok.output.split())
    assert (
        f"Tables: the rows of 2 batch(es) are those checkpoint {name} found equal to their "
        "logs, and their logs are unchanged since; 0 batch(es) were folded and compared "
        "(--all-seals compares them all)."
    ) in " ".join(ok.output.split())
    every = cli("audit", "verify", "--anchors", str(folder), "--all-seals")
    assert every.exit_code == 0 and "Seals:" not in every.output, every.output
    assert "Tables:" not in every.output
    assert f"Ledger head: {mark.hash} at position {mark.pos}" in ok.output
    truncate(db_path, lab, keep=mark.pos - 1)
    assert cli("audit", "verify").exit_code == 0
    bad = cli("audit", "verify", "--anchors", str(folder))
    assert bad.exit_code == 1
    assert f"BROKEN checkpoint {name}: the ledger ends at position {mark.pos - 1}" in bad.output
    assert "1 problem(s) in" in bad.output


def test_verify_reads_cmprep_anchors_when_no_folder_is_given(
    cli, lab, clock, folder, db_path, monkeypatch
):
    _anchor(lab, clock, folder)
    monkeypatch.setenv("CMPREP_ANCHORS", str(folder))
    truncate(db_path, lab, keep=lab.audit.ledger_mark().pos - 1)
    bad = cli("audit", "verify")
    assert bad.exit_code == 1 and "BROKEN checkpoint ledger-" in bad.output


def test_a_technician_cannot_anchor_from_the_command_line(cli, folder):
    out = cli(
        "audit", "anchor", "--to", str(folder), "--as", "alice", "--password-stdin",
        input=PASSWORD + "\n",
    )  # fmt: skip
    assert out.exit_code == 1
    assert "alice is technician; to anchor one must be: admin, qa, reviewer" in out.output
    assert _files(folder) == []


def test_anchor_without_a_folder_says_how_to_give_one(cli):
    out = cli("audit", "anchor", "--as", "rita", "--password-stdin", input=PASSWORD + "\n")
    assert out.exit_code == 1
    assert "no folder for ledger checkpoints is set; nothing was signed" in out.output
    assert "--to DIR, or set CMPREP_ANCHORS" in out.output


def test_verify_with_a_missing_checkpoint_folder_fails_naming_it(cli, tmp_path):
    out = cli("audit", "verify", "--anchors", str(tmp_path / "nowhere"))
    assert out.exit_code == 1 and "nowhere does not exist or is not a folder" in out.output


# --- the list of vouched batches, as a parser ---------------------------------------------------
BATCH_IDS = st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._-]{0,63}", fullmatch=True)
VOUCHED = st.builds(
    anchors.Vouched,
    st.integers(1, 2**40),
    st.text("0123456789abcdef", min_size=64, max_size=64),
    st.text("0123456789abcdef", min_size=32, max_size=32),
)


@settings(max_examples=200)
@given(entries=st.dictionaries(BATCH_IDS, VOUCHED, max_size=40), other=BATCH_IDS)
def test_a_list_of_vouched_batches_reads_back_what_was_written_in_any_order(entries, other):
    written = anchors.VouchedTables()
    for batch_id, vouched in entries.items():
        written.add(batch_id, vouched)
    text = "".join(written.lines())
    read = anchors.VouchedTables.read(text.splitlines(keepends=True))
    assert len(read) == len(entries)
    for batch_id, vouched in entries.items():
        assert read.get(batch_id) == vouched
    if other not in entries:
        assert read.get(other) is None
    assert anchors.tables_sha256(written.lines()) == anchors.tables_sha256([text])


@settings(max_examples=200)
@given(
    entries=st.dictionaries(BATCH_IDS, VOUCHED, min_size=2, max_size=20),
    data=st.data(),
)
def test_a_list_line_broken_or_moved_is_refused_naming_its_line(entries, data):
    written = anchors.VouchedTables()
    for batch_id, vouched in entries.items():
        written.add(batch_id, vouched)
    lines = list(written.lines())
    n = data.draw(st.integers(0, len(lines) - 1))
    broken = data.draw(
        st.sampled_from(
            [
                lines[n].replace("\t", " ", 1),  # a field lost
                lines[n][:16] + "\tX" + lines[n][16:],  # the key no longer the batch's
                lines[n].rstrip("\n")[:-1] + "g\n",  # a digest that is not hexadecimal
            ]
        )
    )
    with pytest.raises(ValueError, match=f"line {n + 1} is not"):
        anchors.VouchedTables.read([*lines[:n], broken, *lines[n + 1 :]])
    with pytest.raises(ValueError, match="line 2 is out of order"):
        anchors.VouchedTables.read([lines[1], lines[0]])
