"""Sessions: log in once at the bench, then work without typing the password for every
entry, until the session ends (logout, the site's idle timeout, or its maximum age).

A session is a random token. The person's shell keeps the token (a file only they can
read, a browser cookie); the database keeps only its SHA-256, so someone reading the
database cannot take over a session. The person's signing key is kept wrapped under the
token, so a logged-in person's entries can be sealed without their password, while acts
that carry meaning (verify, review, release) still ask for it at the time.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from cmprep.domain import keys, people
from cmprep.domain.clock import from_iso, iso
from cmprep.errors import Hint, Refused
from cmprep.events import NewEvent
from cmprep.service.access import Gate, Signer
from cmprep.service.context import Context
from cmprep.store.base import SessionRow


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True)
class SessionInfo:
    """What `whoami` tells: who, since when, and when the session ends if left alone."""

    user: str
    full_name: str
    role: str
    opened_at: str
    ends_at: str  # the earlier of idle timeout and maximum age


class SessionService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    def database_id(self) -> str:
        """The id a shell files this database's session under."""
        return self.ctx.store.database_id()

    def login(self, name: str, password: str | None) -> tuple[Signer, str]:
        """Prove NAME with their password and open a session; the token, to keep secret."""
        signer = self.gate.prove(name, password, "log in")
        token = secrets.token_urlsafe(32)
        now = iso(self.ctx.clock())
        row = SessionRow(
            token_hash(token), signer.name, now, now, keys.wrap_with_token(signer.key, token)
        )
        self.ctx.store.open_session(row)
        self._log(signer.name, people.SESSION_OPENED)
        return signer, token

    def resume(self, token: str) -> Signer:
        """The person whose live session TOKEN is, now present; refused once it has ended."""
        row = self.ctx.store.session(token_hash(token))
        if row is None:
            raise Refused("your session has ended (logged out or replaced)", hint=Hint("log_in"))
        now = self.ctx.clock()
        if ended := self._ended(row, now):
            self.ctx.store.close_sessions(token_hash=row.token_hash)
            self._log(row.user, people.SESSION_CLOSED, ended)
            raise Refused(
                f"your session has ended: {ended}; nothing was written", hint=Hint("log_in")
            )
        user = self.gate.user(row.user)
        if user is None or not user.active or user.locked:
            self.ctx.store.close_sessions(token_hash=row.token_hash)
            raise Refused(f"the account of {row.user} can no longer act; the session was ended")
        try:
            key = keys.unwrap_with_token(row.wrapped_key, token, user.public_key)
        except keys.KeyLocked:
            # the key was reset since login: the old session cannot sign with the new key
            self.ctx.store.close_sessions(token_hash=row.token_hash)
            raise Refused(
                "your signing key changed since you logged in", hint=Hint("log_in")
            ) from None
        self.ctx.store.touch_session(row.token_hash, iso(now))
        signer = Signer(user, key)
        self.gate.present[user.name.casefold()] = signer
        return signer

    def acting(self, token: str, claimed: str | None) -> Signer:
        """The session's owner, who is the one acting; naming anyone else is refused (and
        logged): a session never lends its owner's identity to another name."""
        signer = self.resume(token)
        if claimed and claimed.strip() and not people.same_name(claimed.strip(), signer.name):
            self.gate.log_refusal(
                claimed.strip(), "act as another user", f"the live session is {signer.name}'s"
            )
            raise Refused(
                f"this session belongs to {signer.name}, not {claimed.strip()}: a session acts "
                "only as its owner; nothing was written",
                hint=Hint("other_person", name=claimed.strip()),
            )
        return signer

    def info(self, token: str) -> SessionInfo:
        signer = self.resume(token)
        row = self.ctx.store.session(token_hash(token))
        assert row is not None
        return SessionInfo(
            user=signer.name,
            full_name=signer.user.full_name,
            role=signer.user.role.value,
            opened_at=row.opened_at,
            ends_at=iso(self._ends_at(row)),
        )

    def logout(self, token: str) -> str | None:
        """End the session; the name it belonged to, or None if it had already ended."""
        row = self.ctx.store.session(token_hash(token))
        if row is None:
            return None
        self.ctx.store.close_sessions(token_hash=row.token_hash)
        self._log(row.user, people.SESSION_CLOSED, "logged out")
        return row.user

    def _ends_at(self, row: SessionRow) -> datetime:
        settings = self.ctx.settings()
        idle_end = from_iso(row.last_seen) + timedelta(minutes=settings.idle_minutes)
        age_end = from_iso(row.opened_at) + timedelta(hours=settings.session_hours)
        return min(idle_end, age_end)

    def _ended(self, row: SessionRow, now: datetime) -> str | None:
        settings = self.ctx.settings()
        if now - from_iso(row.opened_at) > timedelta(hours=settings.session_hours):
            return f"it is older than the site's maximum of {settings.session_hours} h"
        if now - from_iso(row.last_seen) > timedelta(minutes=settings.idle_minutes):
            return f"it was not used for more than {settings.idle_minutes} min"
        return None

    def _log(self, name: str, kind: str, reason: str | None = None) -> None:
        event = NewEvent(kind, name, {"action": kind.replace("_", " ")}, reason=reason)
        self.ctx.append_system(people.SECURITY_STREAM, lambda _events: [event])
