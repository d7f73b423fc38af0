"""People, roles and passwords.

Users are events in the "@users" stream (hash-chained like a batch), so adding or
deactivating someone is as attributable and tamper-evident as recording a step. Passwords
are kept only as salted scrypt hashes (hashlib, memory-hard, in the standard library).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
from dataclasses import dataclass
from enum import Enum

from cmprep.domain.keyring import KeyRing
from cmprep.events import Event

USERS_STREAM = "@users"
SECURITY_STREAM = "@security"

USER_ADDED = "user_added"
USER_DEACTIVATED = "user_deactivated"
ROLE_CHANGED = "user_role_changed"
PASSWORD_CHANGED = "password_changed"  # by the person: same key pair, re-wrapped
PASSWORD_RESET = "password_reset"  # by an admin: a new key pair, the old one retired
ACCOUNT_LOCKED = "account_locked"  # too many wrong passwords in a row
ACCOUNT_UNLOCKED = "account_unlocked"
USER_EVENTS = (
    USER_ADDED,
    USER_DEACTIVATED,
    ROLE_CHANGED,
    PASSWORD_CHANGED,
    PASSWORD_RESET,
    ACCOUNT_LOCKED,
    ACCOUNT_UNLOCKED,
)
ACCESS_REFUSED = "access_refused"
SESSION_OPENED = "session_opened"
SESSION_CLOSED = "session_closed"

# scrypt cost: ~50 ms a check on the bench machine; slow for a guesser, instant for a person
SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1
MIN_PASSWORD = 8


class Role(str, Enum):
    technician = "technician"
    reviewer = "reviewer"
    qa = "qa"
    admin = "admin"


# what each role may do; segregation of duties: admin manages people, not batches
PERMISSIONS: dict[str, set[Role]] = {
    "start": {Role.technician, Role.reviewer},
    "record": {Role.technician, Role.reviewer},
    "skip": {Role.technician, Role.reviewer},
    "correct": {Role.technician, Role.reviewer},
    "hold": {Role.technician, Role.reviewer, Role.qa},
    "resume": {Role.technician, Role.reviewer, Role.qa},
    "verify": {Role.technician, Role.reviewer, Role.qa},
    "open deviation": {Role.technician, Role.reviewer, Role.qa},
    "investigate": {Role.technician, Role.reviewer, Role.qa},
    "close deviation": {Role.reviewer, Role.qa},
    "review": {Role.reviewer, Role.qa},
    "release": {Role.qa},
    "reject": {Role.qa},
    "register materials": {Role.technician, Role.reviewer, Role.qa},
    "register equipment": {Role.technician, Role.reviewer, Role.qa},
    "import protocol": {Role.reviewer, Role.qa},
    "approve protocol": {Role.qa},
    "retire protocol": {Role.qa},
    "manage users": {Role.admin},
    "anchor": {Role.reviewer, Role.qa, Role.admin},  # sign a ledger checkpoint
    "change settings": {Role.admin},
}


@dataclass
class User:
    """A person as the @users stream leaves them: role, password hash, public key, whether active
    or locked."""

    name: str
    full_name: str
    role: Role
    password_hash: str
    public_key: str = ""
    wrapped_key: str = ""
    active: bool = True
    locked: bool = False
    added_by: str = ""
    added_at: str = ""
    deactivated_by: str | None = None
    deactivated_at: str | None = None

    def row(self) -> dict[str, object]:
        return {
            "name": self.name,
            "full_name": self.full_name,
            "role": self.role.value,
            "active": self.active,
            "locked": self.locked,
            "added_by": self.added_by,
            "added_at": self.added_at,
            "deactivated_by": self.deactivated_by,
            "deactivated_at": self.deactivated_at,
        }


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    salt = salt or os.urandom(16)
    digest = hashlib.scrypt(
        password.encode(), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32
    )
    b64 = base64.b64encode
    return f"scrypt${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt).decode()}${b64(digest).decode()}"


def check_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
    except ValueError:
        return False
    if scheme != "scrypt":
        return False
    got = hashlib.scrypt(
        password.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32
    )
    return hmac.compare_digest(got, base64.b64decode(digest))


def password_problem(password: str) -> str | None:
    if len(password) < MIN_PASSWORD:
        return f"a password needs at least {MIN_PASSWORD} characters"
    if password.strip() != password:
        return "a password cannot start or end with spaces"
    return None


def same_name(a: str, b: str) -> bool:
    """User names are one per person whatever the case: CAROL is carol."""
    return a.casefold() == b.casefold()


def find(users: dict[str, User], name: str) -> User | None:
    """The user NAME refers to, in any case; None if nobody has that name."""
    return users.get(name) or next((u for u in users.values() if same_name(u.name, name)), None)


def fold_users(events: list[Event]) -> dict[str, User]:
    users: dict[str, User] = {}
    for e in events:
        p = e.payload
        if e.type == USER_ADDED:
            users[p["name"]] = User(
                name=p["name"],
                full_name=p["full_name"],
                role=Role(p["role"]),
                password_hash=p["password_hash"],
                public_key=p.get("public_key", ""),
                wrapped_key=p.get("wrapped_key", ""),
                added_by=e.actor,
                added_at=e.recorded_at,
            )
            continue
        u = find(users, p.get("name", ""))
        if u is None:
            continue
        if e.type == USER_DEACTIVATED:
            u.active, u.deactivated_by, u.deactivated_at = False, e.actor, e.recorded_at
        elif e.type == ROLE_CHANGED:
            u.role = Role(p["role"])
        elif e.type in (PASSWORD_CHANGED, PASSWORD_RESET):
            u.password_hash, u.wrapped_key = p["password_hash"], p["wrapped_key"]
            u.public_key = p.get("public_key", u.public_key)
            u.locked = False if e.type == PASSWORD_RESET else u.locked
        elif e.type == ACCOUNT_LOCKED:
            u.locked = True
        elif e.type == ACCOUNT_UNLOCKED:
            u.locked = False
    return users


def key_ring(events: list[Event]) -> KeyRing:
    """Every public key of every person, from the time it was issued."""
    ring = KeyRing()
    for e in events:
        if e.type in (USER_ADDED, PASSWORD_RESET) and e.payload.get("public_key"):
            ring.issue(e.payload["name"], e.recorded_at, e.payload["public_key"])
    return ring


# who must have signed each kind of @users event (the lock is the system's own doing)
_SIGNED_BY_ADMIN = (USER_ADDED, USER_DEACTIVATED, ROLE_CHANGED, PASSWORD_RESET, ACCOUNT_UNLOCKED)


def user_stream_problems(events: list[Event]) -> list[tuple[int, str]]:
    """(seq, problem) for every @users event that was not made by someone entitled to it.

    The content and seal of each signature are checked by ``check_signatures``; this adds
    *who* may sign what: an active admin for every change to an account (the very first
    admin signs their own creation), the person themself for their own password change.
    A role rewritten in the file and every hash recomputed therefore fails here, because
    the seal needs the admin's private key.
    """
    problems: list[tuple[int, str]] = []
    folded: list[Event] = []
    for e in events:
        users = fold_users(folded)
        sig = e.payload.get("signature") or {}
        signer = find(users, str(sig.get("signer", "")))
        if e.type == ACCOUNT_LOCKED:
            pass
        elif not sig:
            problems.append((e.seq, f"{e.type} of {e.payload.get('name')!r} is not signed"))
        elif e.type == USER_ADDED and not users:
            if sig.get("signer") != e.payload.get("name") or e.payload.get("role") != "admin":
                problems.append((e.seq, "the first user must be an admin who signs for themself"))
        elif e.type in _SIGNED_BY_ADMIN and (
            signer is None or not signer.active or signer.role != Role.admin
        ):
            problems.append((e.seq, f"{e.type} signed by {sig.get('signer')!r}, not an admin"))
        elif e.type == PASSWORD_CHANGED and not same_name(
            str(sig.get("signer", "")), str(e.payload.get("name", ""))
        ):
            problems.append((e.seq, "a password change must be signed by its owner"))
        folded.append(e)
    return problems
