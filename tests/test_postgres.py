"""PostgreSQL as the lab's server, against a real throwaway cluster (tests/pgserver.py).

The store contract suite runs on it too (tests/test_store_contract.py); here is what only a
server has: many processes at once, a crash in the middle of writes, a read-only standby,
LISTEN/NOTIFY, grants, and moving a whole database between SQLite and PostgreSQL.
"""

from __future__ import annotations

import multiprocessing as mp
import subprocess
import time
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, approve_bundled, present, run_to, seed_people
from pgserver import cluster, psycopg_or_skip

from cmprep.cli import Shell, main
from cmprep.errors import ConcurrencyError, StoreError
from cmprep.events import NewEvent, verify_chain
from cmprep.service import Services
from cmprep.store import open_store

CTX = mp.get_context("fork")


@pytest.fixture
def pg_url() -> str:
    psycopg_or_skip()
    return cluster().new_database()


def _lab(url: str, clock) -> Services:
    """A PostgreSQL database made by create, with people and approved protocols."""
    return approve_bundled(seed_people(Services(open_store(url, create=True), clock=clock)))


def _a_released_batch(svc: Services, clock) -> None:
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650"}, "alice")
    run_to(svc, clock, "B1")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    svc.quality.verify_step("B1", "qc", "bob", PASSWORD)
    svc.quality.investigate("DEV-0001", "alice", "programme typo")
    clock.advance(minutes=5)
    svc.quality.close_deviation("DEV-0001", "quinn", PASSWORD, "accepted", "no impact")
    clock.advance(minutes=5)
    svc.quality.sign_review("B1", "rita", PASSWORD, "reviewed")
    clock.advance(minutes=5)
    svc.quality.release("B1", "quinn", PASSWORD)


# --- the whole service on PostgreSQL ------------------------------------------------------
def test_a_batch_from_start_to_release_on_postgresql_verifies(pg_url, clock):
    svc = _lab(pg_url, clock)
    _a_released_batch(svc, clock)
    assert svc.batches.batch("B1").state == "released"
    assert not svc.audit.verify().problems
    assert [r["deviation_id"] for r in svc.quality.deviations()] == ["DEV-0001"]


def test_a_verification_in_parts_on_postgresql_says_what_one_process_says(
    pg_url, clock, monkeypatch
):
    """Each part's process reads the server through connections of its own; the parent's
    connection is left alone (it still works after), and the verdict is one process's."""
    import threading

    from cmprep.service import log_parts

    svc = _lab(pg_url, clock)
    _a_released_batch(svc, clock)
    for batch in ("B2", "B3", "B4"):
        svc.batches.start(STANDARD, "alice", batch)
        run_to(svc, clock, batch, stop_before="filtration")
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:  # a query table edited behind its back
        conn.execute("UPDATE batches SET state = 'released' WHERE batch_id = 'B3'")
    assert threading.active_count() == 1
    monkeypatch.setattr(log_parts, "PARTS_FROM", 0)
    monkeypatch.setattr(log_parts, "processes", lambda: 1)
    alone = svc.audit.verify()
    monkeypatch.setattr(log_parts, "processes", lambda: 3)
    from cmprep.service.audit import AuditService

    real, here = AuditService._part, []

    def part(self, span, *args, **kwargs):  # called here only for a child that failed
        here.append(kwargs.get("here", False))
        return real(self, span, *args, **kwargs)

    monkeypatch.setattr(AuditService, "_part", part)
    split = svc.audit.verify()
    assert here == []  # every child sent its part back
    said = [str(p) for p in split.problems]
    assert (split.parts, said, split.checked) == (
        3,
        [str(p) for p in alone.problems],
        alone.checked,
    )
    assert len(said) == 1 and said[0].startswith("batches table, B3: a search by state")
    svc.batches.record("B4", "filtration", GOOD["filtration"], "alice")  # the parent's store
    assert svc.batches.batch("B4").steps["filtration"].status == "done"


@pytest.mark.parametrize("parts", [1, 3])
def test_a_verification_reads_the_server_at_one_moment_in_every_part(
    pg_url, clock, monkeypatch, parts
):
    """A batch started and a step recorded at the bench while QA's verification runs are
    not in it, in any part (each part's process imports the snapshot the verification
    began with, and so does each of their connections): the events counted are those of
    the moment it began, and nothing is said to differ. The next verification has them."""
    import os
    import threading

    from cmprep.service import log_parts
    from cmprep.service.audit import AuditService

    svc = _lab(pg_url, clock)
    for batch in ("B1", "B2", "B3"):
        svc.batches.start(STANDARD, "alice", batch)
        run_to(svc, clock, batch, stop_before="filtration")
    clock.advance(minutes=5)
    bench = Services(open_store(pg_url), clock=clock)  # the technician's terminal
    bench.gate.prove("alice", PASSWORD, "log in")
    before = svc.audit.verify()
    assert threading.active_count() == 1
    monkeypatch.setattr(log_parts, "PARTS_FROM", 0)
    monkeypatch.setattr(log_parts, "processes", lambda: parts)
    parent, real, wrote = os.getpid(), AuditService._check_streams, []

    def meanwhile(self, found, only, span, tables, users):
        if os.getpid() != parent:
            time.sleep(0.5)  # each part's process reads only after the bench has written
        elif not wrote:
            bench.batches.record("B1", "filtration", GOOD["filtration"], "alice")
            bench.batches.start(STANDARD, "alice", "Z9")  # the last id: the last part's
            wrote.append(True)
        return real(self, found, only, span, tables, users)

    monkeypatch.setattr(AuditService, "_check_streams", meanwhile)
    during = svc.audit.verify()
    assert wrote and during.parts == parts
    assert (during.checked, during.problems) == (before.checked, [])
    after = svc.audit.verify()
    assert after.checked > before.checked and after.problems == []
    bench.close()


def test_a_step_recorded_while_verify_runs_is_not_said_to_differ(pg_url, clock, monkeypatch):
    """QA verifies the live server while a technician records: the batch written meanwhile
    is checked as it stood when the verification began (its events and its rows read in
    the same moment), not its old log against its new rows; the next verification sees the
    step. Reading each batch's rows by key, when it was reached, said it differed."""
    svc = _lab(pg_url, clock)
    for batch in ("B1", "B2"):
        svc.batches.start(STANDARD, "alice", batch)
    clock.advance(minutes=5)
    bench = Services(open_store(pg_url), clock=clock)  # the technician's terminal
    bench.gate.prove("alice", PASSWORD, "log in")
    real = svc.audit._check_batch
    wrote: list[str] = []

    def meanwhile(stream, *args, **kwargs):
        if not wrote:  # B1 is being checked: B2's next step is recorded at the bench
            bench.batches.record("B2", "isolation", GOOD["isolation"], "alice")
            wrote.append(stream)
        return real(stream, *args, **kwargs)

    monkeypatch.setattr(svc.audit, "_check_batch", meanwhile)
    result = svc.audit.verify()
    assert (wrote, [str(p) for p in result.problems]) == (["B1"], [])
    monkeypatch.undo()
    again = svc.audit.verify()
    assert again.problems == [] and again.checked == result.checked + 1
    bench.close()


def test_a_non_cmprep_postgresql_database_is_refused_untouched(pg_url):
    import psycopg

    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id INTEGER)")
    with pytest.raises(StoreError, match="has tables but is not a cmprep database"):
        open_store(pg_url, create=True)


def test_an_empty_postgresql_database_is_made_only_by_init(pg_url, tmp_path, monkeypatch):
    with pytest.raises(StoreError, match="empty, not a cmprep database; nothing was created"):
        open_store(pg_url)
    monkeypatch.setenv("CMPREP_SESSIONS", str(tmp_path / "s"))
    out = CliRunner().invoke(
        main,
        ["init", "--db", pg_url, "--admin", "root", "--full-name", "Ada", "--password-stdin"],
        input=PASSWORD + "\n",
        obj=Shell(),
    )
    assert out.exit_code == 0, out.output
    assert "is its admin" in out.output
    out = CliRunner().invoke(
        main,
        ["login", "--db", pg_url, "--as", "root", "--password-stdin"],
        input=PASSWORD + "\n",
        obj=Shell(),
    )
    assert out.exit_code == 0 and "Logged in as root" in out.output


def test_a_newer_schema_is_refused(pg_url):
    import psycopg

    open_store(pg_url, create=True).close()
    with psycopg.connect(pg_url, autocommit=True) as conn:
        conn.execute("UPDATE schema_version SET version = 99")
    with pytest.raises(StoreError, match="newer cmprep \\(schema 99\\)"):
        open_store(pg_url)


# --- many processes at once -----------------------------------------------------------------
def _one_batch_writer(url: str, rounds: int, result) -> None:
    store = open_store(url)
    accepted, refused = [], 0
    for _ in range(rounds):
        head = store.head("B1")
        seq = head.seq if head else 0
        try:
            with store.writing("B1", seq) as unit:
                written = unit.append([NewEvent("note", "p", {"n": seq})], _now())
            accepted.append(written[0].seq)
        except ConcurrencyError as err:
            assert "changed while you were entering" in str(err) or "already exists" in str(err)
            refused += 1
    store.close()
    result.put((accepted, refused))


def _now() -> str:
    from datetime import datetime, timezone

    return datetime.now(timezone.utc).isoformat().replace("+00:00", "Z")


def test_fifty_processes_on_one_batch_give_one_write_per_seq_and_no_fork(pg_url):
    open_store(pg_url, create=True).close()
    result = CTX.Queue()
    procs = [CTX.Process(target=_one_batch_writer, args=(pg_url, 20, result)) for _ in range(50)]
    for p in procs:
        p.start()
    outcomes = [result.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    accepted = sorted(seq for got, _ in outcomes for seq in got)
    refused = sum(r for _, r in outcomes)
    assert accepted == list(range(1, len(accepted) + 1))  # one accepted write per seq
    assert len(accepted) + refused == 50 * 20  # every other one a clear refusal
    store = open_store(pg_url)
    events = store.events("B1")
    assert [e.seq for e in events] == accepted  # no lost write, no fork
    assert verify_chain("B1", events, store.recorded_heads()["B1"].hash) is None
    ledger = store.ledger()
    assert [x.pos for x in ledger] == list(range(1, len(accepted) + 1))


def _own_batch_writer(url: str, name: str, result) -> None:
    store = open_store(url)
    for seq in range(20):
        with store.writing(name, seq) as unit:
            unit.append([NewEvent("note", "p", {"n": seq})], _now())
    store.close()
    result.put(name)


def test_fifty_processes_on_fifty_batches_all_succeed(pg_url):
    open_store(pg_url, create=True).close()
    result = CTX.Queue()
    names = [f"B{i:02d}" for i in range(50)]
    procs = [CTX.Process(target=_own_batch_writer, args=(pg_url, n, result)) for n in names]
    for p in procs:
        p.start()
    done = sorted(result.get(timeout=120) for _ in procs)
    for p in procs:
        p.join(30)
    assert done == names and all(p.exitcode == 0 for p in procs)
    store = open_store(pg_url)
    ledger = store.ledger()
    assert [x.pos for x in ledger] == list(range(1, 50 * 20 + 1))
    from cmprep.domain.audit import verify

    streams = {n: store.events(n) for n in names}
    assert verify(streams, store.recorded_heads(), ledger) == []


# --- a crash in the middle of writes --------------------------------------------------------
def _crash_writer(url: str, acked: str) -> None:
    store = open_store(url)
    with open(acked, "a") as out:
        seq = 0
        while True:
            try:
                with store.writing("B1", seq) as unit:
                    unit.append([NewEvent("note", "p", {"n": seq})], _now())
            except Exception:
                return
            seq += 1
            out.write(f"{seq}\n")  # only after the commit returned: acknowledged
            out.flush()


def test_an_immediate_server_stop_loses_no_acknowledged_write(tmp_path):
    psycopg_or_skip()
    server = cluster()
    url = server.new_database()
    open_store(url, create=True).close()
    acked = tmp_path / "acked"
    writer = CTX.Process(target=_crash_writer, args=(url, str(acked)))
    writer.start()
    deadline = time.time() + 30
    while time.time() < deadline and (not acked.exists() or len(acked.read_text().split()) < 50):
        time.sleep(0.05)
    server.stop("immediate")  # as if the server process died mid-write
    writer.join(30)
    server.start()
    done = [int(x) for x in acked.read_text().split()]
    assert len(done) >= 50
    store = open_store(url)
    seqs = [e.seq for e in store.events("B1")]
    assert set(done) <= set(seqs)  # nothing acknowledged was lost
    from cmprep.domain.audit import verify

    assert verify({"B1": store.events("B1")}, store.recorded_heads(), store.ledger()) == []


# --- a read-only standby --------------------------------------------------------------------
def test_a_write_on_a_streaming_standby_is_refused_as_read_only_and_reads_work(pg_url, clock):
    svc = _lab(pg_url, clock)
    svc.batches.start(STANDARD, "alice", "B1")
    server = cluster()
    standby = Path(server.root) / "standby"
    subprocess.run(
        [
            *server.as_postgres,
            str(server.bin / "pg_basebackup"),
            "-h",
            str(server.root),
            "-U",
            "postgres",
            "-D",
            str(standby),
            "-R",
            "-X",
            "stream",
        ],
        check=True,
        capture_output=True,
    )
    sock = Path(server.root) / "standby-sock"
    sock.mkdir()
    if server.as_postgres:
        import shutil

        shutil.chown(sock, "postgres")
    subprocess.run(
        [
            *server.as_postgres,
            str(server.bin / "pg_ctl"),
            "-D",
            str(standby),
            "-o",
            f"-k {sock} -c listen_addresses='' -c port=5433 -c max_connections=200",
            "-l",
            str(standby / "log"),
            "-w",
            "start",
        ],
        check=True,
        capture_output=True,
    )
    try:
        url = pg_url.replace(f"host={server.root}", f"host={sock}") + "&port=5433"
        replica = Services(open_store(url), clock=clock)
        deadline = time.time() + 20
        while time.time() < deadline and not replica.store.events("B1"):
            time.sleep(0.1)
        assert replica.batches.batch("B1").protocol.id == STANDARD  # reads work
        assert replica.audit.verify().problems == []  # at one moment, read only
        # proving a person writes (the wrong-password count), and so does any entry
        with pytest.raises(StoreError, match="this server is read-only \\(standby\\)"):
            present(replica)
        with (
            pytest.raises(StoreError, match="this server is read-only \\(standby\\)"),
            replica.store.writing("B1", 1) as unit,
        ):
            unit.append([NewEvent("note", "alice", {})], _now())
        assert [e.seq for e in replica.store.events("B1")] == [1]
    finally:
        subprocess.run(
            [
                *server.as_postgres,
                str(server.bin / "pg_ctl"),
                "-D",
                str(standby),
                "-m",
                "immediate",
                "stop",
            ],
            capture_output=True,
        )


# --- NOTIFY and grants ----------------------------------------------------------------------
def test_each_commit_notifies_listeners_with_stream_and_seq(pg_url):
    import psycopg

    store = open_store(pg_url, create=True)
    with psycopg.connect(pg_url, autocommit=True) as listener:
        listener.execute("LISTEN cmprep_events")
        with store.writing("B1", 0) as unit:
            unit.append([NewEvent("a", "p", {}), NewEvent("b", "p", {})], _now())
        got = [n.payload for n in listener.notifies(timeout=5, stop_after=1)]
    assert got == ["B1:2"]


def test_an_application_role_without_update_and_delete_cannot_change_the_log(pg_url):
    import psycopg

    store = open_store(pg_url, create=True)
    with store.writing("B1", 0) as unit:
        unit.append([NewEvent("a", "p", {})], _now())
    with psycopg.connect(pg_url, autocommit=True) as owner:
        owner.execute("DROP ROLE IF EXISTS cmprep_app")
        owner.execute("CREATE ROLE cmprep_app LOGIN")
        owner.execute("GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA public TO cmprep_app")
        owner.execute("DROP TRIGGER events_no_update ON events")  # even without the trigger
    app_url = pg_url.replace("postgres@", "cmprep_app@")
    with (
        psycopg.connect(app_url, autocommit=True) as app,
        pytest.raises(psycopg.errors.InsufficientPrivilege),
    ):
        app.execute("UPDATE events SET actor = 'mallory'")
    assert "events_no_update is missing" in " ".join(store.missing_protections())


# --- moving a whole database ----------------------------------------------------------------
def _record_and_verify(url: str, clock) -> tuple[str, list[str]]:
    svc = Services(open_store(url), clock=clock)
    try:
        record = svc.documents.record("B1", "md")
        assert isinstance(record, str)
        # the moment the document was made is not part of what was copied
        kept = "\n".join(x for x in record.splitlines() if not x.startswith("| Generated |"))
        return kept, [str(p) for p in svc.audit.verify().problems]
    finally:
        svc.close()


def test_copy_sqlite_to_postgresql_and_back_gives_the_same_record_and_verify(
    tmp_path, pg_url, clock
):
    first = str(tmp_path / "first.db")
    svc = approve_bundled(seed_people(Services(open_store(first, create=True), clock=clock)))
    _a_released_batch(svc, clock)
    svc.close()
    runner = CliRunner()
    out = runner.invoke(main, ["db", "copy", first, pg_url], obj=Shell())
    assert out.exit_code == 0, out.output
    assert "Verified: every chain, signature and the ledger" in out.output
    back = str(tmp_path / "back.db")
    out = runner.invoke(main, ["db", "copy", pg_url, back], obj=Shell())
    assert out.exit_code == 0, out.output
    original = _record_and_verify(first, clock)
    assert original[1] == []
    assert _record_and_verify(pg_url, clock) == original
    copied_back = _record_and_verify(back, clock)
    import difflib

    diff = "\n".join(difflib.unified_diff(original[0].splitlines(), copied_back[0].splitlines()))
    assert copied_back == original, diff
    a, b = open_store(first), open_store(back)
    assert a.ledger() == b.ledger() and a.counters() == b.counters() and a.keys() == b.keys()
    again = runner.invoke(main, ["db", "copy", first, pg_url], obj=Shell())
    assert again.exit_code == 1 and "target database is not empty" in again.output


def test_backup_and_restore_round_trip_on_both_backends(tmp_path, pg_url, clock):
    for url in (str(tmp_path / "live.db"), pg_url):
        svc = approve_bundled(seed_people(Services(open_store(url, create=True), clock=clock)))
        _a_released_batch(svc, clock)
        svc.close()
        name = "sqlite" if url.endswith(".db") else "pg"
        backup = tmp_path / f"backup-{name}.db"
        out = CliRunner().invoke(main, ["db", "backup", str(backup), "--db", url], obj=Shell())
        assert out.exit_code == 0, out.output
        again = CliRunner().invoke(main, ["db", "backup", str(backup), "--db", url], obj=Shell())
        assert again.exit_code == 1 and "never overwrites" in again.output
        over = CliRunner().invoke(main, ["db", "restore", str(backup), "--db", url], obj=Shell())
        assert over.exit_code == 1 and "not empty" in over.output
        restored = str(tmp_path / f"restored-{name}.db")
        out = CliRunner().invoke(
            main, ["db", "restore", str(backup), "--db", restored], obj=Shell()
        )
        assert out.exit_code == 0, out.output
        assert _record_and_verify(restored, clock) == _record_and_verify(url, clock)


def test_a_failed_copy_leaves_no_half_written_file(tmp_path, clock):
    first = str(tmp_path / "first.db")
    svc = approve_bundled(seed_people(Services(open_store(first, create=True), clock=clock)))
    svc.close()
    import sqlite3

    conn = sqlite3.connect(first)
    conn.execute("DROP TRIGGER events_no_update")
    conn.execute("UPDATE events SET actor = 'mallory' WHERE seq = 2 AND batch_id = '@users'")
    conn.commit()
    conn.close()
    target = tmp_path / "copy.db"
    out = CliRunner().invoke(main, ["db", "copy", first, str(target)], obj=Shell())
    assert out.exit_code == 1 and "does not copy to the same hash" in out.output
    assert not target.exists()


def test_a_server_lends_pooled_connections_and_replaces_one_the_server_dropped(pg_url):
    """A pool is made for the web server's requests; closed at the end, so its worker
    threads do not outlive the test (a verification forks only with no other thread)."""
    import psycopg

    from cmprep.store import postgres

    try:
        open_store(pg_url, create=True).close()
        first = open_store(pg_url, pool=True)
        with first.writing("B1", 0) as unit:
            unit.append([NewEvent("a", "p", {})], _now())
        first.close()
        for _ in range(20):  # twenty requests: connections lent again, not made anew
            open_store(pg_url, pool=True).close()
        dbname = pg_url.rsplit("/", 1)[1].split("?")[0]
        with psycopg.connect(pg_url, autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
                (dbname,),
            ).fetchone()
        assert row is not None and row[0] <= 8  # the pool's maximum
        second = open_store(pg_url, pool=True)
        pid = second.conn.info.backend_pid
        second.close()
        with psycopg.connect(pg_url, autocommit=True) as admin:
            admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
        third = open_store(pg_url, pool=True)
        with third.writing("B1", 1) as unit:  # a fresh connection, not the dead one
            unit.append([NewEvent("b", "p", {})], _now())
        assert [e.seq for e in third.events("B1")] == [1, 2]
        third.close()
    finally:
        pool = postgres._POOLS.pop(pg_url, None)
        if pool is not None:
            pool.close()
