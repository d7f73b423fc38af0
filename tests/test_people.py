"""People and roles: accounts, passwords, deactivation, and refusals that leave a trace."""

from __future__ import annotations

import pytest
from conftest import GOOD, PASSWORD, STANDARD, forger_connect, run_to

from cmprep.domain import people
from cmprep.errors import Refused
from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore


def test_the_first_user_needs_no_one_but_must_be_an_admin(tmp_path, clock):
    svc = Services(SQLiteStore(tmp_path / "p.db", create=True), clock=clock)
    with pytest.raises(Refused, match="first user must be an admin"):
        svc.people.add("alice", "Alice A", "technician", PASSWORD, None)
    admin = svc.people.add("ada", "Ada Admin", "admin", PASSWORD, None)
    assert admin.role.value == "admin" and admin.added_by == "ada"
    with pytest.raises(Refused, match="who is doing this"):
        svc.people.add("bob", "Bob B", "technician", PASSWORD, None)


def test_before_any_user_exists_writes_are_refused_with_what_to_do(tmp_path, clock):
    svc = Services(SQLiteStore(tmp_path / "p.db", create=True), clock=clock)
    with pytest.raises(Refused, match="no users yet"):
        svc.batches.start(STANDARD, "alice", "B1")


def test_only_an_admin_adds_users(svc):
    with pytest.raises(Refused, match="to manage users one must be: admin"):
        svc.people.add("mallory", "M", "qa", PASSWORD, "alice", PASSWORD)
    assert "mallory" not in svc.people.users()


def test_no_duplicate_accounts(svc):
    with pytest.raises(Refused, match="is taken"):
        svc.people.add("alice", "Alice Again", "qa", PASSWORD, "root", PASSWORD)


@pytest.mark.parametrize(
    ("password", "expected"), [("short", "at least 8"), (" padded pass ", "spaces")]
)
def test_weak_passwords_are_refused(svc, password, expected):
    with pytest.raises(Refused, match=expected):
        svc.people.add("newbie", "New Bie", "technician", password, "root", PASSWORD)


def test_passwords_are_stored_only_as_salted_scrypt_hashes(svc, db_path):
    raw = (  # read as a forger would: unpacked, the password would show as text
        forger_connect(db_path)
        .execute("SELECT unpacked(payload) FROM events WHERE batch_id = '@users'")
        .fetchall()
    )
    text = " ".join(r[0] for r in raw)
    assert PASSWORD not in text
    hashes = [u.password_hash for u in svc.people.users().values()]
    assert all(h.startswith("scrypt$") for h in hashes)
    assert len(set(hashes)) == len(hashes)  # same password, different salts
    assert people.check_password(PASSWORD, hashes[0]) and not people.check_password(
        "wrong", hashes[0]
    )


def test_an_unknown_user_is_refused_and_the_attempt_logged(svc):
    with pytest.raises(Refused, match="not a user of this database"):
        svc.batches.start(STANDARD, "mallory", "B1")
    log = svc.people.security_log()
    assert log[-1]["who"] == "mallory" and log[-1]["reason"] == "unknown user"


def test_a_deactivated_user_can_do_nothing_but_keeps_their_entries(svc, clock):
    svc.batches.start(STANDARD, "bob", "B1")
    svc.batches.record("B1", "isolation", GOOD["isolation"], "bob")
    svc.people.deactivate("bob", "root", "left the lab", PASSWORD)
    with pytest.raises(Refused, match="deactivated"):
        svc.batches.record("B1", "expansion", GOOD["expansion"], "bob")
    assert svc.batches.batch("B1").steps["isolation"].actor == "bob"
    assert svc.people.security_log()[-1]["reason"] == "inactive user"
    assert not svc.people.users()["bob"].active


def test_deactivation_needs_an_admin_and_a_reason(svc):
    with pytest.raises(Refused, match="admin"):
        svc.people.deactivate("bob", "alice", "x", PASSWORD)
    with pytest.raises(Refused, match="reason"):
        svc.people.deactivate("bob", "root", " ", PASSWORD)
    with pytest.raises(Refused, match="your own account"):
        svc.people.deactivate("root", "root", "bye", PASSWORD)


def test_qa_does_not_record_steps_and_admin_does_not_touch_batches(svc):
    with pytest.raises(Refused, match="quinn is qa"):
        svc.batches.start(STANDARD, "quinn", "B1")
    with pytest.raises(Refused, match="root is admin"):
        svc.batches.start(STANDARD, "root", "B1")
    assert [r["reason"] for r in svc.people.security_log()][-2:] == [
        "role qa may not start",
        "role admin may not start",
    ]


def test_a_technician_cannot_release(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1")
    with pytest.raises(Refused, match="to release one must be: qa"):
        svc.quality.release("B1", "bob", PASSWORD)
    assert svc.batches.batch("B1").state == "awaiting_review"
