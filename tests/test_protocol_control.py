"""Controlled master protocols: a file is imported as a draft, QA approves it with a
signature, a retired version starts no new batch, and a batch never starts from a file.

The `svc` fixture has the bundled protocols imported (rita) and approved (quinn) already;
these tests put a copy of the standard protocol, "cm-ctl", through the same steps.
"""

from __future__ import annotations

import dataclasses
import json
import multiprocessing as mp
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import (
    GOOD,
    PASSWORD,
    STANDARD,
    approve_bundled,
    forger_connect,
    present,
    run_to,
    seed_people,
)

from cmprep.cli import Shell, main
from cmprep.domain import people
from cmprep.domain import protocols as control
from cmprep.domain.signatures import expected_content
from cmprep.errors import ConcurrencyError, CorruptLog, Hint, NotFound, Refused
from cmprep.protocol.loader import ProtocolError
from cmprep.resources import protocols_dir
from cmprep.service import Services
from cmprep.store import open_store
from cmprep.store.sqlite import SQLiteStore

STANDARD_TEXT = (protocols_dir() / f"{STANDARD}.yaml").read_text(encoding="utf-8")


def protocol_file(
    folder: Path,
    *,
    version: str = "1.0",
    status: str = "approved",
    rcf_max: int = 500,
    name: str = "ctl.yaml",
) -> Path:
    """The standard protocol as "cm-ctl", with the version, status and spin spec given."""
    text = (
        STANDARD_TEXT.replace(f"id: {STANDARD}\n", "id: cm-ctl\n")
        .replace("version: '2.0'\n", f"version: '{version}'\n")  # the bundled file's
        .replace("status: approved\n", f"status: {status}\n")
        .replace("spec: {min: 300, max: 500}", f"spec: {{min: 300, max: {rcf_max}}}")
    )
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def stream(svc: Services) -> list:
    return svc.store.events(control.PROTOCOLS_STREAM)


def refusals(svc: Services) -> list[tuple[str, str]]:
    return [(r["who"], r["reason"]) for r in svc.people.security_log()]


# --- import -------------------------------------------------------------------------------
def test_an_import_stores_a_draft_whatever_the_file_says(svc, tmp_path, clock):
    path = protocol_file(tmp_path, status="approved")
    stored = svc.protocols.import_file(str(path), "rita")
    assert (stored.ref, stored.status, stored.imported_by) == ("cm-ctl@1.0", "draft", "rita")
    assert (stored.approved_by, stored.source) == (None, "ctl.yaml")
    event = stream(svc)[-1]
    assert (event.type, event.actor) == (control.PROTOCOL_IMPORTED, "rita")
    assert (event.payload["id"], event.payload["version"]) == ("cm-ctl", "1.0")
    # the content is the validated model; its hash is the model's own content hash
    model = svc.protocols.get("cm-ctl@1.0")
    assert event.payload["content"]["steps"][5]["parameters"][0]["spec"]["max"] == 500
    assert event.payload["content_hash"] == control.content_hash(event.payload["content"])
    assert model.status == "draft"  # what the database says, not the file
    listed = {s.ref: s.status for s in svc.protocols.versions()}
    assert listed["cm-ctl@1.0"] == "draft" and listed[f"{STANDARD}@2.0"] == "approved"


def test_the_same_version_with_other_content_is_refused_a_new_version_is_needed(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    before = len(stream(svc))
    wider = protocol_file(tmp_path, rcf_max=800, name="wider.yaml")  # still "1.0", "approved"
    with pytest.raises(Refused) as err:
        svc.protocols.import_file(str(wider), "rita")
    assert str(err.value).startswith(
        "cm-ctl@1.0 is already in this database (draft, imported by rita at "
        "2026-11-02T08:00:00Z) with different content; a changed protocol needs a new "
        "version number; nothing was written"
    )
    assert err.value.hint == Hint("list_protocols")
    assert len(stream(svc)) == before
    assert svc.protocols.get("cm-ctl").step("spin").parameter("rcf").spec.max == 500
    newer = svc.protocols.import_file(
        str(protocol_file(tmp_path, version="1.1", rcf_max=800)), "rita"
    )
    assert (newer.ref, newer.status) == ("cm-ctl@1.1", "draft")


def test_the_same_content_again_is_refused_as_already_imported_saying_its_status(svc, tmp_path):
    path = protocol_file(tmp_path)
    svc.protocols.import_file(str(path), "rita")
    # the file's status is not part of what is stored: a "draft" file is the same content
    as_draft = protocol_file(tmp_path, status="draft", name="as-draft.yaml")
    with pytest.raises(Refused) as err:
        svc.protocols.import_file(str(as_draft), "quinn")
    assert "cm-ctl@1.0 is already imported with this same content; it is draft" in str(err.value)
    assert err.value.hint == Hint("approve_protocol", protocol="cm-ctl", version="1.0")
    svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    with pytest.raises(Refused, match="already imported with this same content; it is approved"):
        svc.protocols.import_file(str(path), "rita")
    assert len(stream(svc)) == 4 * 2 + 2  # the bundled four, then cm-ctl's import and approval


def test_a_bundled_protocol_is_imported_by_its_id(tmp_path, clock):
    svc = seed_people(Services(SQLiteStore(tmp_path / "fresh.db", create=True), clock=clock))
    with pytest.raises(NotFound) as err:
        svc.batches.start(STANDARD, "alice", "B1")
    assert str(err.value) == f"no protocol {STANDARD!r} in this database; none is stored yet"
    assert err.value.hint == Hint("import_protocol")
    stored = svc.protocols.import_file(STANDARD, "quinn")
    assert (stored.ref, stored.source) == (f"{STANDARD}@2.0", f"{STANDARD}.yaml")
    with pytest.raises(NotFound, match="no protocol file 'cm-nope'; bundled protocols: cm-3d"):
        svc.protocols.import_file("cm-nope", "quinn")


def test_a_file_with_problems_is_not_imported(svc, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text(STANDARD_TEXT.replace("unit: x g", "unit: furlongs"), encoding="utf-8")
    with pytest.raises(ProtocolError) as err:
        svc.protocols.import_file(str(bad), "rita")
    assert "unit 'furlongs' does not parse" in err.value.problems[0]
    assert len(stream(svc)) == 8


def test_only_a_reviewer_or_qa_imports_and_a_refusal_is_logged(svc, tmp_path):
    path = protocol_file(tmp_path)
    with pytest.raises(
        Refused, match="alice is technician; to import protocol one must be: qa, reviewer"
    ):
        svc.protocols.import_file(str(path), "alice")
    assert refusals(svc)[-1] == ("alice", "role technician may not import protocol")
    assert svc.protocols.import_file(str(path), "quinn").imported_by == "quinn"


# --- approval -----------------------------------------------------------------------------
def test_qa_approves_with_a_signature_over_the_content_hash(svc, tmp_path, clock):
    stored = svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    clock.advance(hours=2)
    approved = svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    assert (approved.status, approved.approved_by) == ("approved", "quinn")
    assert approved.approved_at == "2026-11-02T10:00:00Z"
    event = stream(svc)[-1]
    sig = event.payload["signature"]
    assert (event.type, event.actor) == (control.PROTOCOL_APPROVED, "quinn")
    assert (sig["meaning"], sig["signer"], sig["signed_at"]) == (
        "approved",
        "quinn",
        event.recorded_at,
    )
    assert sig["subject"] == {"kind": "protocol", "id": "cm-ctl@1.0"}
    assert sig["content_hash"] == stored.content_hash
    assert expected_content(stream(svc), event) == stored.content_hash
    assert svc.audit.verify().problems == []


def test_the_importer_cannot_approve_their_own_import(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "quinn")
    with pytest.raises(Refused) as err:
        svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    assert str(err.value) == (
        "quinn imported cm-ctl@1.0; its approval needs a second person, QA who did not "
        "import it; nothing was signed"
    )
    assert refusals(svc)[-1] == ("quinn", str(err.value))
    assert svc.protocols.stored("cm-ctl", "1.0").status == "draft"
    assert svc.protocols.approve("cm-ctl", "1.0", "quentin", PASSWORD).approved_by == "quentin"


def test_only_qa_approves(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "quinn")
    with pytest.raises(Refused, match="rita is reviewer; to approve protocol one must be: qa"):
        svc.protocols.approve("cm-ctl", "1.0", "rita", PASSWORD)
    assert refusals(svc)[-1] == ("rita", "role reviewer may not approve protocol")


def test_a_wrong_password_signs_nothing(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    before = len(stream(svc))
    with pytest.raises(Refused, match="wrong password for quinn; nothing was signed"):
        svc.protocols.approve("cm-ctl", "1.0", "quinn", "not the password")
    assert len(stream(svc)) == before
    assert svc.protocols.stored("cm-ctl", "1.0").status == "draft"


def test_an_approved_or_retired_version_is_not_approved_again(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    with pytest.raises(Refused, match=r"cm-ctl@1.0 is already approved \(by quinn at "):
        svc.protocols.approve("cm-ctl", "1.0", "quentin", PASSWORD)
    svc.protocols.retire("cm-ctl", "1.0", "quinn", "replaced")
    with pytest.raises(
        Refused, match=r"is retired .* and cannot be approved; import a new version"
    ):
        svc.protocols.approve("cm-ctl", "1.0", "quentin", PASSWORD)


def test_an_unknown_version_is_named_with_the_stored_ones(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    with pytest.raises(NotFound) as err:
        svc.protocols.approve("cm-ctl", "2.0", "quinn", PASSWORD)
    assert (
        str(err.value) == "no version 2.0 of cm-ctl in this database; stored versions: 1.0 (draft)"
    )
    assert err.value.hint == Hint("list_protocols")


def test_two_qa_approving_at_once_give_one_signature_and_one_refusal(svc, tmp_path, db_path, clock):
    """quentin approves while quinn's approval is between its decision and its write."""
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    other = present(Services(SQLiteStore(db_path), clock=clock))
    original = svc.store.writing
    raced = []

    def writing(stream_id, expected_seq):
        if stream_id == control.PROTOCOLS_STREAM and not raced:
            raced.append(other.protocols.approve("cm-ctl", "1.0", "quentin", PASSWORD))
        return original(stream_id, expected_seq)

    svc.store.writing = writing
    with pytest.raises(Refused, match=r"cm-ctl@1.0 is already approved \(by quentin at "):
        svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    approvals = [e for e in stream(svc) if e.type == control.PROTOCOL_APPROVED]
    assert [e.actor for e in approvals][-1] == "quentin" and len(approvals) == 5


# --- batches start only from an approved stored version -------------------------------------
def test_a_draft_cannot_start_a_batch(svc, tmp_path):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    for ref in ("cm-ctl", "cm-ctl@1.0"):
        with pytest.raises(Refused) as err:
            svc.batches.start(ref, "alice", "B1")
        assert (
            "protocol cm-ctl@1.0 is a draft (imported by rita); only a version QA approved"
            in str(err.value)
        )
        assert err.value.hint == Hint("approve_protocol", protocol="cm-ctl", version="1.0")
    assert str(err.value).startswith("protocol cm-ctl@1.0")
    assert svc.batches.batches() == []


def test_a_file_cannot_start_a_batch_even_one_that_was_approved(svc, tmp_path):
    path = protocol_file(tmp_path)
    svc.protocols.import_file(str(path), "rita")
    svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    with pytest.raises(Refused) as err:
        svc.batches.start(str(path), "alice", "B1")
    assert str(err.value) == (
        f"{path} is a file; a batch starts only from a protocol imported into this "
        "database and approved there by QA"
    )
    assert err.value.hint == Hint("import_protocol")
    assert svc.batches.batches() == []


def test_a_batch_starts_from_the_newest_approved_version_and_copies_its_hash(svc, tmp_path):
    for version, rcf in (("1.9", 450), ("1.10", 480), ("1.11", 490)):
        svc.protocols.import_file(
            str(protocol_file(tmp_path, version=version, rcf_max=rcf)), "rita"
        )
    svc.protocols.approve("cm-ctl", "1.9", "quinn", PASSWORD)
    svc.protocols.approve("cm-ctl", "1.10", "quinn", PASSWORD)  # 1.11 stays a draft
    batch = svc.batches.start("cm-ctl", "alice", "B1").batch
    assert batch.protocol.version == "1.10"  # 1.10 is newer than 1.9
    assert batch.protocol.step("spin").parameter("rcf").spec.max == 480
    assert batch.protocol_hash == svc.protocols.stored("cm-ctl", "1.10").content_hash
    older = svc.batches.start("cm-ctl@1.9", "alice", "B2").batch
    assert older.protocol.version == "1.9"


def test_a_retired_version_starts_no_new_batch_and_its_batches_go_on(svc, tmp_path, clock):
    svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    svc.batches.start("cm-ctl", "alice", "B1")
    clock.advance(hours=1)
    retired = svc.protocols.retire("cm-ctl", "1.0", "quentin", "spin spec under review")
    assert (retired.status, retired.retired_by) == ("retired", "quentin")
    assert stream(svc)[-1].reason == "spin spec under review"
    for ref in ("cm-ctl", "cm-ctl@1.0"):
        with pytest.raises(Refused) as err:
            svc.batches.start(ref, "alice", "B2")
        assert str(err.value) == (
            "protocol cm-ctl@1.0 was retired by quentin at 2026-11-02T09:00:00Z "
            "(spin spec under review); no new batch can start from it"
        )
        assert err.value.hint == Hint("list_protocols")
    run_to(svc, clock, "B1", stop_before="spin")  # the batch already started goes on
    assert svc.batches.batch("B1").steps["conditioning"].status == "done"
    with pytest.raises(Refused, match="is already retired"):
        svc.protocols.retire("cm-ctl", "1.0", "quinn", "again")


def test_retiring_names_the_approved_versions_left(svc, tmp_path):
    for version in ("1.0", "1.1"):
        svc.protocols.import_file(
            str(protocol_file(tmp_path, version=version, rcf_max=490 if version == "1.1" else 500)),
            "rita",
        )
        svc.protocols.approve("cm-ctl", version, "quinn", PASSWORD)
    svc.protocols.retire("cm-ctl", "1.1", "quinn", "withdrawn")
    assert svc.batches.start("cm-ctl", "alice", "B1").batch.protocol.version == "1.0"
    with pytest.raises(Refused, match=r"no new batch can start from it; approved: cm-ctl@1.0$"):
        svc.batches.start("cm-ctl@1.1", "alice", "B2")


def test_only_qa_retires_and_with_a_reason(svc):
    with pytest.raises(Refused, match="rita is reviewer; to retire protocol one must be: qa"):
        svc.protocols.retire(STANDARD, "2.0", "rita", "old")
    with pytest.raises(Refused, match="a reason is required"):
        svc.protocols.retire(STANDARD, "2.0", "quinn", "  ")
    assert svc.protocols.stored(STANDARD).status == "approved"


# --- integrity ------------------------------------------------------------------------------
def _edit_import(db_path: Path, protocol_id: str, change) -> None:
    """Someone edits the stored content of an import in the SQLite file."""
    conn = forger_connect(db_path)
    for trigger in ("events_no_update", "events_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    rows = conn.execute(
        "SELECT seq, unpacked(payload) FROM events WHERE batch_id = ? AND type = ?",
        (control.PROTOCOLS_STREAM, control.PROTOCOL_IMPORTED),
    ).fetchall()
    for seq, text in rows:
        payload = json.loads(text)
        if payload["id"] == protocol_id:
            change(payload)
            conn.execute(
                "UPDATE events SET payload = ? WHERE batch_id = ? AND seq = ?",
                (json.dumps(payload), control.PROTOCOLS_STREAM, seq),
            )
    conn.commit()
    conn.close()


def _widen(payload: dict) -> None:
    spin = next(s for s in payload["content"]["steps"] if s["id"] == "spin")
    spin["parameters"][0]["spec"]["max"] = 800.0


def test_content_edited_in_the_file_breaks_the_chain_and_starts_no_batch(svc, db_path):
    _edit_import(db_path, STANDARD, _widen)
    breaks = [p for p in svc.audit.verify().problems if getattr(p, "stream", "") == "@protocols"]
    assert breaks and "@protocols: event 5" in str(breaks[0])
    with pytest.raises(CorruptLog, match=f"stored protocol {STANDARD}@2.0 does not match"):
        svc.batches.start(STANDARD, "alice", "B1")


def test_the_approval_signature_covers_the_imported_content(svc):
    events = stream(svc)
    approval = next(e for e in events if e.type == control.PROTOCOL_APPROVED)
    imported = next(e for e in events if e.type == control.PROTOCOL_IMPORTED)
    assert approval.payload["signature"]["content_hash"] == imported.payload["content_hash"]
    assert expected_content(events, approval) == imported.payload["content_hash"]
    content = json.loads(json.dumps(imported.payload["content"]))
    _widen({"content": content})
    forged = dataclasses.replace(imported, payload={**imported.payload, "content": content})
    changed = [forged if e is imported else e for e in events]
    assert expected_content(changed, approval) != imported.payload["content_hash"]


# --- two imports at once ------------------------------------------------------------------
CTX = mp.get_context("fork")


def _import(db: str, path: str, who: str, barrier, result) -> None:
    """Import PATH; both processes decide from a stream without it, then write."""
    store = SQLiteStore(db, timeout=30)
    original = store.writing
    met: list[bool] = []

    def writing(stream_id, expected_seq):
        if stream_id == control.PROTOCOLS_STREAM and not met:
            met.append(True)
            barrier.wait(10)
        return original(stream_id, expected_seq)

    store.writing = writing  # type: ignore[method-assign]
    try:
        present(Services(store)).protocols.import_file(path, who)
        result.put(("imported", who))
    except (ConcurrencyError, Refused) as err:
        result.put((type(err).__name__, str(err)))


def test_two_imports_of_the_same_version_at_once_give_one_import_and_one_refusal(tmp_path):
    db = str(tmp_path / "race.db")
    seed_people(Services(SQLiteStore(db, create=True)))
    path = str(protocol_file(tmp_path))
    barrier, result = CTX.Barrier(2), CTX.Queue()
    procs = [
        CTX.Process(target=_import, args=(db, path, who, barrier, result))
        for who in ("rita", "quinn")
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(30)
    outcomes = sorted(result.get(timeout=5) for _ in procs)
    assert [p.exitcode for p in procs] == [0, 0]
    assert [o[0] for o in outcomes] == ["Refused", "imported"], outcomes
    assert "cm-ctl@1.0 is already imported with this same content; it is draft" in outcomes[0][1]
    events = SQLiteStore(db).events(control.PROTOCOLS_STREAM)
    assert [e.type for e in events] == [control.PROTOCOL_IMPORTED]


# --- looking at protocols ---------------------------------------------------------------------
def test_show_reads_a_file_a_stored_version_or_a_bundled_file_not_imported(svc, tmp_path):
    path = protocol_file(tmp_path)
    doc = svc.protocols.doc(str(path))
    assert (doc.protocol.status, doc.stored, doc.source) == ("draft", None, str(path))
    imported = svc.protocols.import_file(str(path), "rita")
    assert doc.content_hash == imported.content_hash  # what the file will be stored as
    stored = svc.protocols.doc("cm-ctl")
    assert (stored.protocol.status, stored.stored.ref) == ("draft", "cm-ctl@1.0")
    with pytest.raises(NotFound) as err:
        svc.protocols.doc("cm-nope")
    assert str(err.value).startswith("no protocol 'cm-nope' in this database; stored protocols: ")
    assert str(err.value).endswith(
        f"; bundled protocol files: cm-3d-spheroid-bm, cm-hypoxia-uc, {STANDARD}, cm-tnf-primed-ad"
    )


def test_checklist_of_a_draft_says_it_must_not_be_used(svc, tmp_path):
    imported = svc.protocols.import_file(str(protocol_file(tmp_path)), "rita")
    md = svc.protocols.checklist("cm-ctl@1.0", "md")
    assert "**DRAFT: this protocol is not approved and must not be used for a batch.**" in md
    assert imported.content_hash in md
    svc.protocols.approve("cm-ctl", "1.0", "quinn", PASSWORD)
    md = svc.protocols.checklist("cm-ctl@1.0", "md")
    assert "must not be used" not in md and imported.content_hash in md


def test_check_validates_a_stored_version_again(svc):
    doc = svc.protocols.check(f"{STANDARD}@2.0")
    assert (doc.source, doc.stored.status) == (f"{STANDARD}@2.0", "approved")


# --- the command line ---------------------------------------------------------------------
@pytest.fixture
def cli(db_path, monkeypatch, clock, tmp_path):
    """A database with people only: the commands put protocols under control themselves."""
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    seed_people(Services(open_store(str(db_path), create=True), clock=clock))
    shell = Shell(lambda db: Services(open_store(db), clock=clock))

    def invoke(*args: str, user: str | None = None):
        clock.advance(minutes=5)
        extra = ["--as", user, "--password-stdin"] if user else []
        return CliRunner().invoke(
            main, [*args, *extra], input=PASSWORD + "\n" if user else None, obj=shell
        )

    return invoke


def test_import_approve_list_show_and_retire_from_the_command_line(cli, tmp_path):
    path = protocol_file(tmp_path)
    empty = cli("protocol", "list")
    assert (
        "No protocols in this database yet. Bundled protocol files: cm-3d-spheroid-bm"
        in empty.output
    )
    assert "cmprep protocol import FILE" in empty.output
    out = cli("protocol", "import", str(path), user="rita")
    assert out.exit_code == 0, out.output
    assert out.output.startswith("Imported cm-ctl@1.0 (Standard serum-free")
    assert "from ctl.yaml as a draft, by rita" in out.output
    assert "Next: QA approves it with `cmprep protocol approve cm-ctl --version 1.0`." in out.output
    refused = cli("batch", "start", "cm-ctl", user="alice")
    assert refused.exit_code == 1
    assert "is a draft (imported by rita)" in refused.output
    assert "QA approves it with `cmprep protocol approve cm-ctl --version 1.0`." in refused.output
    own = cli("protocol", "approve", "cm-ctl", "--version", "1.0", user="rita")
    assert (
        own.exit_code == 1 and "rita is reviewer; to approve protocol one must be: qa" in own.output
    )
    ok = cli("protocol", "approve", "cm-ctl", "--version", "1.0", user="quinn")
    assert ok.exit_code == 0, ok.output
    assert (
        "Protocol cm-ctl@1.0 (Standard serum-free" in ok.output and "approved by quinn" in ok.output
    )
    listed = cli("protocol", "list").output.splitlines()
    assert listed[0].split() == [
        "protocol",
        "version",
        "status",
        "imported_by",
        "approved_by",
        "retired_by",
        "hash",
        "title",
    ]
    assert listed[1].split()[:5] == ["cm-ctl", "1.0", "approved", "rita", "quinn"]
    shown = cli("protocol", "show", "cm-ctl")
    assert "cm-ctl v1.0 (approved), hash " in shown.output
    assert "Stored as cm-ctl@1.0: imported by rita at " in shown.output
    started = cli("batch", "start", "cm-ctl@1.0", "--id", "B1", user="alice")
    assert started.exit_code == 0, started.output
    gone = cli(
        "protocol", "retire", "cm-ctl", "--version", "1.0", "--reason", "replaced", user="quinn"
    )
    assert gone.exit_code == 0, gone.output
    assert "retired by quinn; no new batch can start from it" in gone.output
    again = cli("batch", "start", "cm-ctl", "--id", "B2", user="alice")
    assert (
        again.exit_code == 1
        and "List the stored versions with `cmprep protocol list`." in again.output
    )
    data = json.loads(cli("protocol", "list", "--format", "json").output)
    assert data[0]["status"] == "retired" and data[0]["retired_reason"] == "replaced"


def test_batch_start_from_a_file_is_refused_with_what_to_do(cli, tmp_path):
    path = protocol_file(tmp_path)
    out = cli("batch", "start", str(path), user="alice")
    assert out.exit_code == 1
    assert (
        "is a file; a batch starts only from a protocol imported into this database" in out.output
    )
    assert "Import the file with `cmprep protocol import FILE`" in out.output


def test_show_and_check_a_file_before_import(cli, tmp_path):
    path = protocol_file(tmp_path)
    shown = cli("protocol", "show", str(path))
    assert "cm-ctl v1.0 (draft), hash " in shown.output
    assert f"From the file {path}, not this database: no batch can start from it." in shown.output
    data = json.loads(cli("protocol", "show", str(path), "--format", "json").output)
    assert data["status"] == "draft" and data["stored"] is None and len(data["content_hash"]) == 64
    checked = cli("protocol", "check", str(path), "cm-nope")
    assert checked.exit_code == 1
    assert f"{path}: ok (cm-ctl v1.0, 11 steps)" in checked.output
    assert "cm-nope: no protocol 'cm-nope' in this database" in checked.output
    assert "1 of 2 protocol(s) have problems" in checked.output


def test_the_checklist_of_a_stored_draft_from_the_command_line(cli, tmp_path):
    cli("protocol", "import", str(protocol_file(tmp_path)), user="rita")
    out = cli("checklist", "cm-ctl@1.0", "--format", "md")
    assert out.exit_code == 0, out.output
    assert "DRAFT: this protocol is not approved and must not be used for a batch." in out.output


def test_the_conftest_helper_approves_every_bundled_protocol(tmp_path, clock):
    svc = approve_bundled(
        seed_people(Services(SQLiteStore(tmp_path / "b.db", create=True), clock=clock))
    )
    assert {s.status for s in svc.protocols.versions()} == {"approved"}
    assert len(svc.protocols.versions()) == 4
    assert svc.batches.start(STANDARD, "alice", "B1").batch.protocol.id == STANDARD
    run_to(svc, clock, "B1", stop_before="spin")
    assert svc.batches.record("B1", "spin", GOOD["spin"], "alice").deviations == []
    assert people.USERS_STREAM in svc.store.stream_ids()
