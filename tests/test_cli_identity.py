"""The command line proves who is acting: init, login, whoami, logout, and refusals.

No test here pre-proves anyone: every identity comes from a password typed (stdin) or a
session file, exactly as at the bench.
"""

from __future__ import annotations

import sqlite3
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from conftest import PASSWORD, STANDARD, approve_bundled, seed_people

from cmprep.cli import Shell, main
from cmprep.domain import people
from cmprep.service import Services
from cmprep.store import open_store


@pytest.fixture
def run(tmp_path, monkeypatch, clock):
    """cmprep in-process with the test clock, a session folder of its own, no $CMPREP_USER."""
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.delenv("CMPREP_DB", raising=False)
    monkeypatch.setenv("CMPREP_SESSIONS", str(tmp_path / "sessions"))
    shell = Shell(lambda db: Services(open_store(db), clock=clock))

    def invoke(*args: str, input: str | None = None):
        clock.advance(minutes=1)
        return CliRunner().invoke(main, list(args), input=input, obj=shell)

    return invoke


@pytest.fixture
def lab(tmp_path, clock, run):
    """A database made by init, then people and protocols added in-process."""
    db = str(tmp_path / "lab.db")
    out = run(
        "init",
        "--db",
        db,
        "--admin",
        "root",
        "--full-name",
        "Ada Admin",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 0, out.output
    svc = Services(open_store(db), clock=clock)
    svc.gate.prove("root", PASSWORD, "log in")
    for name, full, role in [
        ("alice", "Alice Archer", "technician"),
        ("bob", "Bob Baker", "technician"),
        ("rita", "Rita R", "reviewer"),
        ("quinn", "Quinn Q", "qa"),
    ]:
        svc.people.add(name, full, role, PASSWORD, "root", PASSWORD)
    for name in ("rita", "quinn"):
        svc.gate.prove(name, PASSWORD, "log in")
    approve_bundled(svc)
    svc.close()
    return db


def test_init_creates_the_database_and_its_first_admin(run, tmp_path):
    db = tmp_path / "new.db"
    out = run(
        "init",
        "--db",
        str(db),
        "--admin",
        "root",
        "--full-name",
        "Ada Admin",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 0
    assert f"Database {db} created; root (Ada Admin) is its admin." in out.output
    assert "cmprep login --as root" in out.output
    again = run(
        "init",
        "--db",
        str(db),
        "--admin",
        "x",
        "--full-name",
        "X",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert again.exit_code == 1 and "already a cmprep database with users" in again.output


def test_no_other_command_creates_a_database(run, tmp_path):
    db = tmp_path / "typo.db"
    out = run("batch", "list", "--db", str(db))
    assert out.exit_code == 1
    assert f"no database at {db}; nothing was created" in out.output
    assert "cmprep init --db" in out.output
    assert not db.exists()


def test_an_sqlite_file_of_something_else_is_refused_not_altered(run, tmp_path):
    other = tmp_path / "other.sqlite"
    conn = sqlite3.connect(other)
    conn.execute("CREATE TABLE orders (id INTEGER)")
    conn.commit()
    conn.close()
    before = other.read_bytes()
    out = run("batch", "list", "--db", str(other))
    assert out.exit_code == 1 and "an SQLite database but not a cmprep one" in out.output
    out = run(
        "init",
        "--db",
        str(other),
        "--admin",
        "root",
        "--full-name",
        "A",
        "--password-stdin",
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 1 and "not a cmprep one; it was not changed" in out.output
    assert other.read_bytes() == before


def test_the_forgery_transcript_is_refused_at_its_first_line(run, lab):
    out = run(
        "user",
        "add",
        "eve",
        "--full-name",
        "Eve QA",
        "--role",
        "qa",
        "--password-stdin",
        "--as",
        "root",
        "--db",
        lab,
        input="eve-password1\n",
    )
    assert out.exit_code == 1
    assert "wrong password for root" in out.output and "Traceback" not in out.output
    users = Services(open_store(lab)).people.users()
    assert people.find(users, "eve") is None


def test_a_name_without_password_or_session_is_refused(run, lab):
    out = run("batch", "start", STANDARD, "--id", "B1", "--as", "alice", "--db", lab)
    assert out.exit_code == 1
    assert "Nobody is logged in to this database and no password was given" in out.output
    assert "cmprep login --as NAME" in out.output
    assert Services(open_store(lab)).store.events("B1") == []


def test_login_whoami_write_logout(run, lab, tmp_path):
    out = run("login", "--as", "alice", "--password-stdin", "--db", lab, input=PASSWORD + "\n")
    assert out.exit_code == 0 and "Logged in as alice (Alice Archer, technician)" in out.output
    files = list((tmp_path / "sessions").iterdir())
    assert len(files) == 1
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
    assert stat.S_IMODE(files[0].parent.stat().st_mode) == 0o700
    who = run("whoami", "--db", lab)
    assert "alice (Alice Archer, technician), logged in since" in who.output
    assert run("batch", "start", STANDARD, "--id", "B1", "--db", lab).exit_code == 0
    events = Services(open_store(lab)).store.events("B1")
    assert events[0].actor == "alice"
    out = run("batch", "start", STANDARD, "--id", "B2", "--as", "bob", "--db", lab)
    assert out.exit_code == 1
    assert "this session belongs to alice, not bob" in out.output
    assert "give bob's own password with --password-stdin" in out.output
    assert run("logout", "--db", lab).output == "alice logged out.\n"
    assert not files[0].exists()
    assert run("whoami", "--db", lab).output == "Nobody is logged in to this database.\n"
    assert run("logout", "--db", lab).output == "Nobody was logged in.\n"


def test_a_password_for_one_command_acts_without_a_session(run, lab):
    out = run(
        "batch",
        "start",
        STANDARD,
        "--id",
        "B1",
        "--as",
        "bob",
        "--password-stdin",
        "--db",
        lab,
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 0, out.output
    assert Services(open_store(lab)).store.events("B1")[0].actor == "bob"
    wrong = run(
        "batch",
        "start",
        STANDARD,
        "--id",
        "B2",
        "--as",
        "bob",
        "--password-stdin",
        "--db",
        lab,
        input="not-bobs-password\n",
    )
    assert wrong.exit_code == 1 and "wrong password for bob" in wrong.output


def test_an_idle_session_ends_and_its_file_goes(run, lab, clock, tmp_path):
    run("login", "--as", "alice", "--password-stdin", "--db", lab, input=PASSWORD + "\n")
    clock.advance(minutes=31)
    out = run("batch", "start", STANDARD, "--id", "B1", "--db", lab)
    assert out.exit_code == 1
    assert "your session has ended: it was not used for more than 30 min" in out.output
    assert list((tmp_path / "sessions").iterdir()) == []


def test_a_session_file_others_can_read_is_not_trusted(run, lab, tmp_path):
    run("login", "--as", "alice", "--password-stdin", "--db", lab, input=PASSWORD + "\n")
    (session,) = (tmp_path / "sessions").iterdir()
    session.chmod(0o644)
    out = run("batch", "start", STANDARD, "--id", "B1", "--db", lab)
    assert out.exit_code == 1 and "could be read by other users, so it was removed" in out.output
    assert not session.exists()


def test_user_admin_needs_the_admins_password_even_when_logged_in(run, lab):
    run("login", "--as", "root", "--password-stdin", "--db", lab, input=PASSWORD + "\n")
    out = run(
        "user",
        "add",
        "dan",
        "--full-name",
        "Dan D",
        "--role",
        "technician",
        "--db",
        lab,
        "--password-stdin",
        input="wrong-password\nnew-password1\n",
    )
    assert out.exit_code == 1 and "wrong password for root" in out.output
    out = run(
        "user",
        "add",
        "dan",
        "--full-name",
        "Dan D",
        "--role",
        "technician",
        "--db",
        lab,
        "--password-stdin",
        input=f"{PASSWORD}\nnew-password1\n",
    )
    assert out.exit_code == 0, out.output
    assert "User dan (Dan D, technician) added, with a new signing key." in out.output
    out = run(
        "user",
        "role",
        "dan",
        "--role",
        "reviewer",
        "--reason",
        "trained",
        "--db",
        lab,
        "--password-stdin",
        input=f"{PASSWORD}\n",
    )
    assert out.exit_code == 0 and "dan is now reviewer." in out.output
    out = run(
        "user",
        "add",
        "DAN",
        "--full-name",
        "Dan Two",
        "--role",
        "technician",
        "--db",
        lab,
        "--password-stdin",
        input=f"{PASSWORD}\nnew-password1\n",
    )
    assert out.exit_code == 1 and "'DAN' is taken by 'dan'" in out.output


def test_five_wrong_logins_lock_and_an_admin_unlocks(run, lab):
    for _ in range(5):
        out = run("login", "--as", "bob", "--password-stdin", "--db", lab, input="nope-nope\n")
        assert out.exit_code == 1
    assert "the account is now locked" in out.output
    assert "cmprep user unlock bob" in out.output
    out = run("login", "--as", "bob", "--password-stdin", "--db", lab, input=PASSWORD + "\n")
    assert out.exit_code == 1 and "locked" in out.output
    out = run(
        "user",
        "unlock",
        "bob",
        "--reason",
        "checked ID",
        "--as",
        "root",
        "--password-stdin",
        "--db",
        lab,
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 0 and "The account of bob is unlocked." in out.output
    out = run("login", "--as", "bob", "--password-stdin", "--db", lab, input=PASSWORD + "\n")
    assert out.exit_code == 0
    log = run("user", "security-log", "--format", "csv", "--db", lab).output
    assert "account locked after 5 wrong passwords" in log


def test_site_settings_are_shown_and_changed_by_an_admin(run, lab):
    assert "idle_minutes    30" in run("site", "show", "--db", lab).output
    out = run(
        "site",
        "set",
        "idle_minutes",
        "15",
        "--reason",
        "tablet",
        "--as",
        "root",
        "--password-stdin",
        "--db",
        lab,
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 0 and "idle_minutes is now 15." in out.output
    out = run(
        "site",
        "set",
        "idle_minutes",
        "0",
        "--reason",
        "x",
        "--as",
        "root",
        "--password-stdin",
        "--db",
        lab,
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 1 and "from 1 to 1440" in out.output
    out = run(
        "site",
        "set",
        "idle_minutes",
        "20",
        "--reason",
        "x",
        "--as",
        "alice",
        "--password-stdin",
        "--db",
        lab,
        input=PASSWORD + "\n",
    )
    assert out.exit_code == 1 and "to change settings one must be: admin" in out.output


def test_a_person_changes_their_own_password(run, lab):
    out = run(
        "user",
        "passwd",
        "--as",
        "alice",
        "--password-stdin",
        "--db",
        lab,
        input=f"{PASSWORD}\na-new-password\n",
    )
    assert out.exit_code == 0 and "Password of alice changed" in out.output
    out = run("login", "--as", "alice", "--password-stdin", "--db", lab, input="a-new-password\n")
    assert out.exit_code == 0


def test_seed_people_helper_still_works_for_a_fresh_database(tmp_path, clock):
    svc = seed_people(Services(open_store(tmp_path / "x.db", create=True), clock=clock))
    assert Path(tmp_path / "x.db").exists() and len(svc.people.users()) == 6
