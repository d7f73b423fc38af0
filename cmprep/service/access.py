"""Who may do what: the acting person, their role, their password, their signature, and
the log of refused attempts.

Every write names an active user whose role allows the act; a refused attempt is itself
written to the "@security" stream, so failed tries at acting as someone else or signing
with a wrong password leave a trace.
"""

from __future__ import annotations

import contextlib
from datetime import datetime
from typing import Any

from cmprep.domain import people
from cmprep.domain.clock import iso
from cmprep.domain.ids import RULE, is_usable
from cmprep.domain.people import PERMISSIONS, User
from cmprep.domain.signatures import signature
from cmprep.errors import Hint, Refused, StoreError
from cmprep.events import NewEvent
from cmprep.service.context import Context

MAX_REASON = 2000


def person_name(actor: str | None) -> str:
    """A user name as given, trimmed; refused when missing or unusable."""
    if not actor or not actor.strip():
        raise Refused(
            "who is doing this? A record without a person is not accepted; nothing was written",
            hint=Hint("needs_person"),
        )
    actor = actor.strip()
    if not is_usable(actor):
        raise Refused(f"person {actor!r} is not a usable name: {RULE}")
    return actor


def reason_text(reason: str | None, what: str = "a reason") -> str:
    """A reason, justification or comment: required, not blank, of a sane length."""
    if reason is None or not reason.strip():
        raise Refused(
            f"{what} is required and cannot be empty or only spaces", hint=Hint("give_reason")
        )
    if len(reason) > MAX_REASON:
        raise Refused(f"{what} is longer than {MAX_REASON} characters")
    return reason.strip()


class Gate:
    """Checks people against the @users stream; logs every refusal."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def users(self) -> dict[str, User]:
        return people.fold_users(self.ctx.store.events(people.USERS_STREAM))

    def person(self, actor: str | None, action: str) -> str:
        """The acting user's name, if they exist, are active and their role allows the act."""
        name = person_name(actor)
        users = self.users()
        if not users:
            raise Refused("no users yet: create the first admin", hint=Hint("first_admin"))
        user = users.get(name)
        if user is None:
            self.log_refusal(name, action, "unknown user")
            raise Refused(
                f"{name!r} is not a user of this database; ask an admin to add you",
                hint=Hint("ask_admin"),
            )
        if not user.active:
            self.log_refusal(name, action, "inactive user")
            raise Refused(
                f"user {name!r} is deactivated and can do nothing; past entries stay theirs"
            )
        allowed = PERMISSIONS[action]
        if user.role not in allowed:
            self.log_refusal(name, action, f"role {user.role.value} may not {action}")
            roles = ", ".join(sorted(r.value for r in allowed))
            raise Refused(f"{name} is {user.role.value}; to {action} one must be: {roles}")
        return name

    def authenticate(self, name: str, password: str | None, meaning: str) -> User:
        user = self.users()[name]
        if not password or not people.check_password(password, user.password_hash):
            self.log_refusal(name, f"sign ({meaning})", "wrong password")
            raise Refused(
                f"wrong password for {name}; nothing was signed or written (the attempt is logged)"
            )
        return user

    def refuse(self, name: str, action: str, message: str) -> None:
        """A rule of who-may-do-what was broken: log it, then refuse."""
        self.log_refusal(name, action, message)
        raise Refused(message)

    def signature(
        self, meaning: str, user: User, now: datetime, subject: dict[str, str], content: str
    ) -> dict[str, Any]:
        return signature(
            meaning, user.name, user.full_name, user.role.value, iso(now), subject, content
        )

    def log_refusal(self, name: str, action: str, reason: str) -> None:
        event = NewEvent(people.ACCESS_REFUSED, name or "(none)", {"action": action}, reason=reason)
        # the refusal itself still stands; a busy log must not turn it into a crash
        with contextlib.suppress(StoreError):
            self.ctx.append_system(people.SECURITY_STREAM, lambda _events: [event])
