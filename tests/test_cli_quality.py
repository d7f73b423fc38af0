"""People, signatures, deviations, release and audit from the command line."""

from __future__ import annotations

import csv
import io
import json

import pytest
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, approve_bundled, present, run_to, seed_people

from cmprep.cli import Shell, main
from cmprep.service import Services
from cmprep.store import open_store

SHELL: list[Shell] = [Shell()]  # the test clock's services, set by the fixture


@pytest.fixture
def env(db_path, monkeypatch, clock):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    SHELL[0] = Shell(lambda db: present(Services(open_store(db), clock=clock)))
    return db_path


def run(*args: str, user: str | None = None, password: str | None = None, input: str | None = None):
    env = {"CMPREP_USER": user} if user else {}
    if password is not None:
        args = (*args, "--password-stdin")
        input = password + "\n"
    return CliRunner().invoke(
        main, list(args), input=input, env=env, obj=SHELL[0], catch_exceptions=False
    )


@pytest.fixture
def finished(env, clock):
    """A whole batch B1 by alice with DEV-0001 (spin at 650 x g)."""
    svc = approve_bundled(seed_people(Services(open_store(str(env), create=True), clock=clock)))
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="spin")
    svc.batches.record("B1", "spin", {**GOOD["spin"], "rcf": "650"}, "alice")
    for step in ("filtration", "concentrate", "qc"):
        clock.advance(hours=1)
        svc.batches.record("B1", step, GOOD[step], "alice")
    return svc


def test_init_makes_the_first_admin_who_then_adds_the_rest(env):
    first = run("init", "--admin", "ada", "--full-name", "Ada Admin", password=PASSWORD)
    assert first.exit_code == 0 and "ada (Ada Admin) is its admin" in first.output
    nobody = run(
        "user", "add", "bob", "--full-name", "Bob", "--role", "technician", password=PASSWORD
    )
    assert nobody.exit_code == 2 and "--password-stdin needs --as NAME" in nobody.output
    ok = run(
        "user",
        "add",
        "bob",
        "--full-name",
        "Bob B",
        "--role",
        "technician",
        "--password-stdin",
        user="ada",
        input=f"{PASSWORD}\n{PASSWORD}\n",
    )
    assert ok.exit_code == 0, ok.output
    rows = json.loads(run("user", "list", "--format", "json").output)
    assert [(r["name"], r["role"], r["active"]) for r in rows] == [
        ("ada", "admin", True),
        ("bob", "technician", True),
    ]
    gone = run("user", "deactivate", "bob", "--reason", "left", user="ada", password=PASSWORD)
    assert gone.exit_code == 0
    assert "deactivated" in run("batch", "start", STANDARD, user="bob", password=PASSWORD).output


def test_the_first_admins_password_is_asked_twice_at_a_prompt(env):
    result = run("init", "--admin", "ada", "--full-name", "Ada", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0
    assert PASSWORD not in result.output
    mismatch = run(
        "init",
        "--db",
        str(env.parent / "b.db"),
        "--admin",
        "ada",
        "--full-name",
        "Ada",
        input=f"{PASSWORD}\nsomething-else\n{PASSWORD}\n{PASSWORD}\n",
    )
    assert "do not match" in mismatch.output.lower() or "don't match" in mismatch.output.lower()


def test_release_from_the_command_line_lists_what_blocks_it_before_asking_a_password(finished):
    result = run("batch", "release", "B1", user="quinn")
    assert result.exit_code == 1
    assert "deviation DEV-0001 (major) is open" in result.output
    assert "Password" not in result.output


def test_the_whole_qa_path_from_the_command_line(finished):
    assert (
        run("batch", "verify", "B1", "filtration", user="alice", password=PASSWORD).exit_code == 1
    )
    verified = run("batch", "verify", "B1", "filtration", user="bob", password=PASSWORD)
    assert verified.exit_code == 0 and "Still to verify: qc" in verified.output
    assert (
        "wrong password" in run("batch", "verify", "B1", "qc", user="bob", password="nope").output
    )
    assert run("batch", "verify", "B1", "qc", user="bob", password=PASSWORD).exit_code == 0
    assert (
        run(
            "deviation",
            "investigate",
            "DEV-0001",
            "--reason",
            "wrong programme",
            "--impact",
            "none",
            user="alice",
        ).exit_code
        == 0
    )
    closed = run(
        "deviation",
        "close",
        "DEV-0001",
        "--decision",
        "accepted",
        "--reason",
        "no impact",
        "--capa",
        "CAPA-1",
        user="quinn",
        password=PASSWORD,
    )
    assert closed.exit_code == 0 and "closed: accepted by quinn" in closed.output
    shown = run("deviation", "show", "DEV-0001").output
    assert "wrong programme" in shown and "approved by Quinn Quality" in shown
    assert "no review signed" in run("batch", "review", "B1").output
    review = run("batch", "review", "B1", "--sign", "reviewed", user="rita", password=PASSWORD)
    review = review.output
    assert "Release: ready for QA release" in review and "650 x g" in review
    released = run("batch", "release", "B1", user="quinn", password=PASSWORD)
    assert released.exit_code == 0 and "released by quinn" in released.output
    assert (
        "released; it takes no more entries"
        in run("batch", "hold", "B1", "--reason", "x", user="alice").output
    )


def test_a_deviation_opened_by_hand_from_the_command_line(finished):
    result = run(
        "deviation",
        "open",
        "B1",
        "--step",
        "conditioning",
        "--severity",
        "major",
        "--reason",
        "incubator alarm",
        user="alice",
    )
    assert (
        result.exit_code == 0
        and "Deviation DEV-0002 opened (major) at conditioning" in result.output
    )
    bad = run(
        "deviation",
        "open",
        "B1",
        "--step",
        "nope",
        "--severity",
        "major",
        "--reason",
        "x",
        user="alice",
    )
    assert bad.exit_code == 1 and "no step 'nope'" in bad.output


def test_deviation_list_filters_by_person_and_date(finished):
    assert (
        len(json.loads(run("deviation", "list", "--person", "alice", "--format", "json").output))
        == 1
    )
    assert json.loads(run("deviation", "list", "--person", "bob", "--format", "json").output) == []
    assert (
        json.loads(run("deviation", "list", "--since", "2030-01-01", "--format", "json").output)
        == []
    )
    assert (
        len(
            json.loads(run("deviation", "list", "--until", "2030-01-01", "--format", "json").output)
        )
        == 1
    )
    bad = run("deviation", "list", "--since", "last week")
    assert bad.exit_code == 2 and "--since" in bad.output


def test_audit_trail_exports_every_event(finished):
    rows = list(csv.DictReader(io.StringIO(run("audit", "trail", "B1", "--format", "csv").output)))
    assert rows[0]["what"].startswith("batch started from cm-standard-serum-free")
    assert any(r["what"] == "DEV-0001 opened (major, automatic) at spin" for r in rows)
    assert all(r["who"] and r["at"] for r in rows)
    security = json.loads(run("audit", "trail", "@users", "--format", "json").output)
    assert security[0]["what"] == "user added: root (admin)"


def test_audit_verify_and_report(finished, tmp_path):
    ok = run("audit", "verify")
    assert ok.exit_code == 0 and "Ledger head:" in ok.output
    assert run("audit", "verify", "B9").exit_code == 1
    md = run("audit", "report", "--format", "md").output
    assert "spin" in md and "DEV-0001" in md
    out = tmp_path / "audit.html"
    assert run("audit", "report", "-o", str(out)).exit_code == 0
    assert "<svg" in out.read_text()


def test_record_with_sign_asks_the_password(finished):
    svc = finished
    svc.batches.start(STANDARD, "alice", "B2")
    result = run(
        "batch",
        "record",
        "B2",
        "isolation",
        "source_tissue=UC",
        "donor_id=D9",
        "--sign",
        user="alice",
        password=PASSWORD,
    )
    assert result.exit_code == 0 and "signed as performed" in result.output


def test_a_retried_record_with_the_same_key_is_saved_once(finished):
    finished.batches.start(STANDARD, "alice", "B2")
    args = ("batch", "record", "B2", "isolation", "source_tissue=UC", "donor_id=D9", "--key", "k-1")
    assert run(*args, user="alice").exit_code == 0
    again = run(*args, user="alice")
    assert again.exit_code == 0 and "nothing new was written" in again.output
