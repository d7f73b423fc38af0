"""Who is acting is proven, never believed: passwords, sessions, lockout, keys that sign.

Each forgery below is made the way someone with the database file would make it: the
triggers dropped, a value changed, and every hash after it recomputed (event chain, heads,
ledger, signature content hashes). Only the Ed25519 seals cannot be remade without the
signer's password, and that is what catches it.
"""

from __future__ import annotations

import json

import pytest
from conftest import GOOD, PASSWORD, PEOPLE, STANDARD, forger_connect, present, run_to

from cmprep import events as ev
from cmprep.domain import people
from cmprep.domain.signatures import payload_content, step_content
from cmprep.errors import CorruptLog, Refused
from cmprep.service import Services
from cmprep.service.sessions import token_hash
from cmprep.store.packing import unpack
from cmprep.store.sqlite import SQLiteStore


def fresh(svc: Services) -> Services:
    """A second service on the same database: a new process where nobody is proven yet."""
    return Services(SQLiteStore(svc.store.path), clock=svc.ctx.clock)  # type: ignore[attr-defined]


# --- a name is not an identity ------------------------------------------------------------
def test_a_name_alone_is_refused_and_the_attempt_logged(svc):
    other = fresh(svc)
    with pytest.raises(Refused, match="alice has not proven who they are") as err:
        other.batches.start(STANDARD, "alice", "B1")
    assert err.value.hint is not None and err.value.hint.kind == "log_in"
    last = other.people.security_log()[-1]
    assert last["who"] == "alice" and "not proven" in last["reason"]
    assert other.store.events("B1") == []


def test_a_password_proves_the_person_for_this_service_only(svc):
    other = fresh(svc)
    other.gate.prove("alice", PASSWORD, "log in")
    other.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Refused, match="bob has not proven"):
        other.batches.record("B1", "isolation", GOOD["isolation"], "bob")


# --- user names ---------------------------------------------------------------------------
def test_user_names_are_unique_in_any_case_and_a_deactivated_name_stays_taken(svc):
    svc.people.add("carol", "Carol C", "technician", PASSWORD, "root", PASSWORD)
    svc.people.deactivate("carol", "root", "left", PASSWORD)
    with pytest.raises(Refused, match="'CAROL' is taken by 'carol' \\(deactivated\\)"):
        svc.people.add("CAROL", "Carol Again", "technician", PASSWORD, "root", PASSWORD)
    with pytest.raises(Refused, match="is taken by 'alice' \\(active\\)"):
        svc.people.add("Alice", "Alice Twin", "qa", PASSWORD, "root", PASSWORD)


def test_a_name_in_another_case_acts_as_the_registered_person(svc):
    svc.batches.start(STANDARD, "ALICE", "B1")
    assert svc.store.events("B1")[0].actor == "alice"


# --- user administration needs the admin's password now ----------------------------------
def test_adding_a_user_needs_the_admins_password_at_the_time(svc):
    with pytest.raises(Refused, match="wrong password for root"):
        svc.people.add("eve", "Eve QA", "qa", PASSWORD, "root", "eve-password1")
    with pytest.raises(Refused, match="wrong password for root"):
        svc.people.add("eve", "Eve QA", "qa", PASSWORD, "root", None)
    assert people.find(svc.people.users(), "eve") is None


def test_role_change_unlock_and_reset_are_signed_by_the_admin(svc):
    svc.people.change_role("rita", "qa", "root", "moved to QA", PASSWORD)
    assert svc.people.users()["rita"].role.value == "qa"
    with pytest.raises(Refused, match="already qa"):
        svc.people.change_role("rita", "qa", "root", "again", PASSWORD)
    with pytest.raises(Refused, match="to manage users one must be: admin"):
        svc.people.change_role("alice", "qa", "rita", "promote", PASSWORD)
    events = svc.store.events(people.USERS_STREAM)
    changed = [e for e in events if e.type == people.ROLE_CHANGED]
    assert changed[0].actor == "root" and changed[0].reason == "moved to QA"
    assert changed[0].payload["signature"]["signer"] == "root"
    assert not svc.audit.verify().problems


# --- wrong passwords lock the account ------------------------------------------------------
def test_five_wrong_passwords_in_a_row_lock_the_account_until_an_admin_unlocks(svc):
    other = fresh(svc)
    for n in range(1, 5):
        with pytest.raises(Refused, match=f"{5 - n} more wrong in a row lock"):
            other.gate.prove("alice", "not-her-password", "log in")
    with pytest.raises(Refused, match="5 in a row, so the account is now locked") as err:
        other.gate.prove("alice", "not-her-password", "log in")
    assert err.value.hint is not None and err.value.hint.kind == "unlock_account"
    # locked: even the right password is refused, and so is her open session elsewhere
    with pytest.raises(Refused, match="locked"):
        other.gate.prove("alice", PASSWORD, "log in")
    with pytest.raises(Refused, match="locked"):
        svc.batches.start(STANDARD, "alice", "B1")
    locks = [e for e in svc.store.events(people.USERS_STREAM) if e.type == people.ACCOUNT_LOCKED]
    assert len(locks) == 1
    reasons = [r["reason"] for r in svc.people.security_log()]
    assert "account locked after 5 wrong passwords" in reasons
    svc.people.unlock("alice", "root", "confirmed in person", PASSWORD)
    other.gate.prove("alice", PASSWORD, "log in")
    svc.batches.start(STANDARD, "alice", "B1")
    assert not svc.audit.verify().problems


def test_a_right_password_starts_the_count_again(svc):
    other = fresh(svc)
    for _ in range(4):
        with pytest.raises(Refused):
            other.gate.prove("bob", "nope-nope-nope", "log in")
    other.gate.prove("bob", PASSWORD, "log in")
    with pytest.raises(Refused, match="4 more wrong in a row"):
        other.gate.prove("bob", "nope-nope-nope", "log in")


def test_the_lockout_limit_is_a_site_setting_changed_by_an_admin(svc):
    with pytest.raises(Refused, match="lockout_after must be a whole number from 1 to 100"):
        svc.settings.change("lockout_after", "0", "root", PASSWORD, "test")
    with pytest.raises(Refused, match="no setting 'colour'"):
        svc.settings.change("colour", "red", "root", PASSWORD, "test")
    with pytest.raises(Refused, match="to change settings one must be: admin"):
        svc.settings.change("lockout_after", "2", "quinn", PASSWORD, "test")
    svc.settings.change("lockout_after", "2", "root", PASSWORD, "shared tablet")
    assert svc.settings.show().lockout_after == 2
    other = fresh(svc)
    with pytest.raises(Refused, match="1 more wrong"):
        other.gate.prove("bob", "nope-nope-nope", "log in")
    with pytest.raises(Refused, match="now locked"):
        other.gate.prove("bob", "nope-nope-nope", "log in")
    assert not svc.audit.verify().problems


# --- sessions --------------------------------------------------------------------------
def test_a_session_proves_its_owner_in_a_later_process(svc, clock):
    signer, token = svc.sessions.login("alice", PASSWORD)
    assert signer.name == "alice" and len(token) >= 40
    raw = forger_connect(svc.store.path).execute("SELECT * FROM sessions").fetchall()
    assert token not in json.dumps(raw)  # the database keeps only the token's hash
    assert svc.store.session(token_hash(token)) is not None
    later = fresh(svc)
    assert later.sessions.acting(token, None).name == "alice"
    later.batches.start(STANDARD, "alice", "B1")
    with pytest.raises(Refused, match="this session belongs to alice, not bob") as err:
        fresh(svc).sessions.acting(token, "bob")
    assert err.value.hint is not None and err.value.hint.kind == "other_person"
    assert svc.people.security_log()[-1]["action"] == "act as another user"


def test_a_session_ends_after_the_idle_timeout_and_at_its_maximum_age(svc, clock):
    _signer, token = svc.sessions.login("alice", PASSWORD)
    clock.advance(minutes=29)
    fresh(svc).sessions.resume(token)
    clock.advance(minutes=31)
    with pytest.raises(Refused, match="not used for more than 30 min"):
        fresh(svc).sessions.resume(token)
    with pytest.raises(Refused, match="session has ended"):
        fresh(svc).sessions.resume(token)  # and it stays ended
    _signer, token = svc.sessions.login("alice", PASSWORD)
    for _ in range(26):  # used every 28 min, it still ends at 12 h
        clock.advance(minutes=28)
        try:
            fresh(svc).sessions.resume(token)
        except Refused as err:
            assert "older than the site's maximum of 12 h" in str(err)
            break
    else:
        pytest.fail("the session outlived its maximum age")


def test_logout_ends_the_session(svc):
    _signer, token = svc.sessions.login("bob", PASSWORD)
    assert svc.sessions.logout(token) == "bob"
    assert svc.sessions.logout(token) is None
    with pytest.raises(Refused, match="session has ended"):
        fresh(svc).sessions.resume(token)


def test_a_password_reset_issues_a_new_key_and_ends_sessions_old_signatures_stay_valid(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    _signer, token = svc.sessions.login("bob", PASSWORD)
    old_key = svc.people.users()["bob"].public_key
    clock.advance(minutes=1)
    svc.people.reset_password("bob", "a-new-password", "root", "forgot it", PASSWORD)
    bob = svc.people.users()["bob"]
    assert bob.public_key != old_key
    reset = svc.store.events(people.USERS_STREAM)[-1]
    assert reset.type == people.PASSWORD_RESET and reset.payload["key_issued"]
    with pytest.raises(Refused, match="session has ended"):
        fresh(svc).sessions.resume(token)
    other = fresh(svc)
    with pytest.raises(Refused, match="wrong password"):
        other.gate.prove("bob", PASSWORD, "log in")
    other.gate.prove("bob", "a-new-password", "log in")
    clock.advance(minutes=1)
    run_to(svc, clock, "B1")
    clock.advance(minutes=1)
    other.quality.verify_step("B1", "qc", "bob", "a-new-password")
    assert not svc.audit.verify().problems  # the old signature checks against the old key


def test_changing_ones_own_password_keeps_the_key(svc, clock):
    before = svc.people.users()["rita"].public_key
    with pytest.raises(Refused, match="wrong password"):
        svc.people.change_password("rita", "not-it-at-all", "a-new-password")
    svc.people.change_password("rita", PASSWORD, "a-new-password")
    after = svc.people.users()["rita"]
    assert after.public_key == before
    fresh(svc).gate.prove("rita", "a-new-password", "log in")
    assert not svc.audit.verify().problems


# --- the file cannot forge a signature --------------------------------------------------
def _rewrite(db, stream: str, seq: int, change) -> None:
    """Change one event's payload and recompute every hash that depends on it: the stream's
    chain from there, signature content hashes, its head, and the whole ledger."""
    conn = forger_connect(db)
    for trigger in ("events_no_update", "events_no_delete", "ledger_no_update", "ledger_no_delete"):
        conn.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    rows = conn.execute(
        "SELECT * FROM events WHERE batch_id = ? ORDER BY seq", (stream,)
    ).fetchall()
    cols = [d[0] for d in conn.execute("SELECT * FROM events LIMIT 1").description]
    events = [
        ev.Event(
            **{
                **dict(zip(cols, r, strict=True)),
                "payload": json.loads(unpack(r[cols.index("payload")])),
            }
        )
        for r in rows
    ]
    fixed: list[ev.Event] = []
    prev = ev.GENESIS
    for e in events:
        payload = dict(e.payload)
        if e.seq == seq:
            payload = change(payload)
        sig = payload.get("signature")
        if sig and sig["subject"]["kind"] == "step" and sig["meaning"] != "performed":
            sig = {**sig, "content_hash": step_content(fixed, sig["subject"]["id"], e.seq)}
            payload["signature"] = sig
        if sig and sig["subject"]["kind"] == "user":
            payload["signature"] = {**sig, "content_hash": payload_content(payload)}
        body = ev.event_body(
            e.batch_id,
            e.seq,
            e.type,
            e.actor,
            e.recorded_at,
            e.performed_at,
            e.reason,
            payload,
            prev,
        )
        new = ev.Event(**body, hash=ev.hash_body(body))
        fixed.append(new)
        prev = new.hash
        conn.execute(
            "UPDATE events SET payload = ?, prev_hash = ?, hash = ? WHERE batch_id = ? AND seq = ?",
            (json.dumps(payload, sort_keys=True), new.prev_hash, new.hash, stream, e.seq),
        )
    conn.execute("UPDATE heads SET hash = ? WHERE batch_id = ?", (prev, stream))
    hashes = {(e.batch_id, e.seq): e.hash for e in fixed}
    last = None
    for pos, stream_id, s, event_hash in conn.execute(
        "SELECT pos, batch_id, seq, event_hash FROM ledger ORDER BY pos"
    ).fetchall():
        entry_event = ev.Event(
            stream_id, s, "", "", "", None, None, {}, "", hashes.get((stream_id, s), event_hash)
        )
        last = ev.next_ledger_entry(last, entry_event)
        conn.execute(
            "UPDATE ledger SET event_hash = ?, prev = ?, hash = ? WHERE pos = ?",
            (last.event_hash, last.prev, last.hash, pos),
        )
    conn.commit()
    conn.close()


def test_a_value_changed_with_every_hash_recomputed_fails_verify_by_its_seal(svc, clock, db_path):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    assert not svc.audit.verify().problems
    recorded = next(
        e
        for e in svc.store.events("B1")
        if e.type == ev.STEP_RECORDED and e.payload["step"] == "filtration"
    )

    def change(payload):
        payload["values"] = {**payload["values"], "filter_lot": "F-FORGED"}
        return payload

    _rewrite(db_path, "B1", recorded.seq, change)
    report = fresh(svc).audit.verify()
    problems = " ".join(str(getattr(p, "problem", p)) for p in report.problems)
    assert "verified signature by 'bob' was not made with their key" in problems


def test_a_role_rewritten_in_the_user_records_is_refused_not_believed(svc, db_path):
    added = next(
        e
        for e in svc.store.events(people.USERS_STREAM)
        if e.type == people.USER_ADDED and e.payload["name"] == "alice"
    )
    _rewrite(db_path, people.USERS_STREAM, added.seq, lambda p: {**p, "role": "qa"})
    other = fresh(svc)
    with pytest.raises(CorruptLog, match="user records fail their checks") as err:
        other.gate.prove("alice", PASSWORD, "log in")
    assert any("not made with their key" in p for p in err.value.problems)
    assert other.audit.verify().problems


def test_a_user_added_without_an_admins_key_is_refused(svc, db_path):
    """A forged account: a new @users event whose signature is made with a key of the
    forger's own (not root's), every hash recomputed."""
    mallory = Services(SQLiteStore(db_path.parent / "m.db", create=True), clock=svc.ctx.clock)
    mallory.people.add("root", "Not Root", "admin", "mallory-pass", None)
    forged = mallory.store.events(people.USERS_STREAM)[0]
    victim = svc.store.events(people.USERS_STREAM)
    alice = next(e for e in victim if e.payload.get("name") == "alice")
    _rewrite(
        db_path,
        people.USERS_STREAM,
        alice.seq,
        lambda p: {**forged.payload, "name": "alice", "role": "qa"},
    )
    with pytest.raises(CorruptLog):
        fresh(svc).people.users()


def test_every_signature_carries_an_ed25519_seal(svc, clock):
    svc.batches.start(STANDARD, "alice", "B1")
    run_to(svc, clock, "B1", stop_before="concentrate")
    svc.quality.verify_step("B1", "filtration", "bob", PASSWORD)
    sig = svc.store.events("B1")[-1].payload["signature"]
    assert sig["algorithm"] == "ed25519" and len(sig["seal"]) == 88
    for e in svc.store.events(people.USERS_STREAM):
        assert e.payload["signature"]["algorithm"] == "ed25519"


def test_everyone_in_the_test_people_can_be_proven(svc):
    other = fresh(svc)
    present(other)
    assert set(other.gate.present) == {name for name, _f, _r in PEOPLE}


def test_a_user_event_is_recorded_at_the_instant_its_signature_was_made(tmp_path):
    """With the real clock, signing and writing happen microseconds apart: the event must
    still carry the signing time, or verify would call the signature misdated."""
    svc = Services(SQLiteStore(tmp_path / "real.db", create=True))
    svc.people.add("root", "Ada Admin", "admin", PASSWORD, None)
    svc.people.add("dan", "Dan D", "technician", PASSWORD, "root", PASSWORD)
    added = svc.store.events(people.USERS_STREAM)[-1]
    assert added.payload["signature"]["signed_at"] == added.recorded_at


def test_the_trail_says_what_happened_to_accounts_keys_protocols_and_settings(svc):
    svc.people.change_role("rita", "qa", "root", "moved to QA", PASSWORD)
    svc.people.reset_password("bob", "a-new-password", "root", "forgot it", PASSWORD)
    svc.settings.change("idle_minutes", "15", "root", PASSWORD, "shared tablet")
    users = [row["what"] for row in svc.audit.trail(people.USERS_STREAM)]
    assert "user role changed: rita (qa)" in users
    reset = svc.audit.trail(people.USERS_STREAM)[-1]
    assert reset["what"] == "password reset: bob" and reset["new"].startswith("new signing key ")
    assert reset["why"] == "forgot it"
    setting = svc.audit.trail("@settings")[-1]
    assert (setting["what"], setting["new"], setting["who"]) == (
        "setting idle_minutes changed",
        "15",
        "root",
    )
    approved = [r["what"] for r in svc.audit.trail("@protocols")]
    assert "protocol approved: cm-standard-serum-free@2.0" in approved
