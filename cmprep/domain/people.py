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

from cmprep.events import Event

USERS_STREAM = "@users"
SECURITY_STREAM = "@security"

USER_ADDED = "user_added"
USER_DEACTIVATED = "user_deactivated"
ACCESS_REFUSED = "access_refused"

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
    "manage users": {Role.admin},
}


@dataclass
class User:
    name: str
    full_name: str
    role: Role
    password_hash: str
    active: bool = True
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
                added_by=e.actor,
                added_at=e.recorded_at,
            )
        elif e.type == USER_DEACTIVATED:
            u = users[p["name"]]
            u.active, u.deactivated_by, u.deactivated_at = False, e.actor, e.recorded_at
    return users
