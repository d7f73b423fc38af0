"""Who may do what: the acting person, proven by a password or a live session, their
role, their signing key, and the log of refused attempts.

A name alone is never believed. A person is *present* in this process only after their
password opened their signing key (``prove``) or their session token did
(``SessionService``); every write checks that the acting name is present, active, not
locked, and that their role allows the act. Wrong passwords are counted: the site's limit
in a row locks the account (an event in @users) until an admin unlocks it. Every refusal is
itself written to the "@security" stream, so tries at acting as someone else leave a trace.

People are read from the @users stream only after its chain and every signature in it
check out: a role rewritten in the database file is refused, not believed.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, NoReturn

from cmprep.domain import people
from cmprep.domain.clock import iso
from cmprep.domain.ids import RULE, is_usable
from cmprep.domain.people import PERMISSIONS, User
from cmprep.domain.signatures import check_signatures, signature
from cmprep.domain.text import control_problem
from cmprep.errors import CorruptLog, Hint, Refused, StoreError
from cmprep.events import NewEvent, verify_chain
from cmprep.service.context import Context

if TYPE_CHECKING:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

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
    if problem := control_problem(reason.strip(), what):
        raise Refused(problem)
    return reason.strip()


@dataclass(frozen=True)
class Signer:
    """A person proven in this process, with their signing key opened."""

    user: User
    key: Ed25519PrivateKey

    @property
    def name(self) -> str:
        return self.user.name


class Gate:
    """Checks people against the verified @users stream; logs every refusal."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.present: dict[str, Signer] = {}  # casefolded name -> proven in this process
        self._users: tuple[int, dict[str, User]] | None = None  # (@users head seq, users)

    # --- people --------------------------------------------------------------------------
    def users(self) -> dict[str, User]:
        """Every user, from the @users stream once its chain and signatures check out
        (re-read only when the stream has grown)."""
        head = self.ctx.store.head(people.USERS_STREAM)
        seq = head.seq if head else 0
        if self._users is not None and self._users[0] == seq:
            return self._users[1]
        events = self.ctx.store.events(people.USERS_STREAM)
        problems = []
        if broken := verify_chain(people.USERS_STREAM, events):
            problems.append((broken.seq, broken.problem))
        else:
            problems += check_signatures(events, people.key_ring(events))
            problems += people.user_stream_problems(events)
        if problems:
            raise CorruptLog(
                "the user records fail their checks, so nobody's identity or role can be "
                "trusted; nothing was written. QA must restore the database from a backup",
                problems=[f"@users entry {seq}: {problem}" for seq, problem in problems],
            )
        users = people.fold_users(events)
        self._users = (seq, users)
        return users

    def user(self, name: str) -> User | None:
        return people.find(self.users(), name)

    def person(self, actor: str | None, action: str) -> str:
        """The acting user's name (as registered), if they are proven present, active, not
        locked, and their role allows the act."""
        user = self._usable_user(actor, action)
        if user.name.casefold() not in self.present:
            self.log_refusal(user.name, action, "identity not proven (no password, no session)")
            raise Refused(
                f"{user.name} has not proven who they are (no live session and no password "
                "given); nothing was written",
                hint=Hint("log_in"),
            )
        allowed = PERMISSIONS[action]
        if user.role not in allowed:
            self.log_refusal(user.name, action, f"role {user.role.value} may not {action}")
            roles = ", ".join(sorted(r.value for r in allowed))
            raise Refused(f"{user.name} is {user.role.value}; to {action} one must be: {roles}")
        return user.name

    def _usable_user(self, actor: str | None, action: str) -> User:
        """The registered user ACTOR names (in any case), if they exist, are active and not
        locked; every refusal is logged."""
        name = person_name(actor)
        users = self.users()
        if not users:
            raise Refused("no users yet: create the first admin", hint=Hint("first_admin"))
        user = people.find(users, name)
        if user is None:
            self.log_refusal(name, action, "unknown user")
            raise Refused(
                f"{name!r} is not a user of this database; ask an admin to add you",
                hint=Hint("ask_admin"),
            )
        self._usable(user, action)
        return user

    def _usable(self, user: User, action: str) -> None:
        if not user.active:
            self.log_refusal(user.name, action, "inactive user")
            raise Refused(
                f"user {user.name!r} is deactivated and can do nothing; past entries stay theirs"
            )
        if user.locked:
            self.log_refusal(user.name, action, "locked account")
            raise Refused(
                f"the account of {user.name} is locked after too many wrong passwords; "
                "nothing was written",
                hint=Hint("unlock_account", name=user.name),
            )

    def person_proven(self, actor: str) -> str:
        """The registered name of someone already proven present in this process."""
        return self.present[actor.strip().casefold()].name

    # --- proof ---------------------------------------------------------------------------
    def prove(self, actor: str | None, password: str | None, action: str) -> Signer:
        """Check NAME's password, open their signing key, and count them present.

        A wrong password is logged and counted; the site's limit in a row locks the
        account. A right one clears the count.
        """
        user = self._usable_user(actor, action)
        if not password or not people.check_password(password, user.password_hash):
            self._wrong_password(user, action)
        self.ctx.store.clear_failures(user.name)
        from cmprep.domain import keys  # cryptography, loaded by a command that signs

        try:
            key = keys.unwrap_with_password(user.wrapped_key, password, user.public_key)
        except keys.KeyLocked:
            raise CorruptLog(
                f"the signing key of {user.name} does not open with their password; "
                "an admin must reset it (a new key pair); nothing was written"
            ) from None
        signer = Signer(user, key)
        self.present[user.name.casefold()] = signer
        return signer

    def _wrong_password(self, user: User, action: str) -> NoReturn:
        count = self.ctx.store.count_failure(user.name)
        limit = self.ctx.settings().lockout_after
        self.log_refusal(user.name, action, f"wrong password ({count} in a row)")
        if count < limit:
            raise Refused(
                f"wrong password for {user.name}; nothing was signed or written (the attempt "
                f"is logged; {limit - count} more wrong in a row lock the account)"
            )
        with contextlib.suppress(Refused, StoreError):
            self.ctx.append_system(people.USERS_STREAM, lambda events: self._lock(events, user))
        self.log_refusal(user.name, action, f"account locked after {count} wrong passwords")
        raise Refused(
            f"wrong password for {user.name}: {count} in a row, so the account is now locked; "
            "nothing was written",
            hint=Hint("unlock_account", name=user.name),
        )

    @staticmethod
    def _lock(events: list[Any], user: User) -> list[NewEvent]:
        now = people.find(people.fold_users(events), user.name)
        if now is None or now.locked:
            return []
        reason = "too many wrong passwords in a row"
        return [NewEvent(people.ACCOUNT_LOCKED, user.name, {"name": user.name}, reason=reason)]

    def authenticate(self, name: str, password: str | None, meaning: str) -> Signer:
        """A signature's password check: the signer proves themself at the moment of signing."""
        return self.prove(name, password, f"sign ({meaning})")

    def authorize(self, actor: str | None, password: str | None, action: str) -> Signer:
        """Prove ACTOR with their password now, then check their role allows ACTION: for acts
        that need the password at the time (user administration, site settings)."""
        signer = self.prove(actor, password, action)
        self.person(signer.name, action)
        return signer

    def refuse(self, name: str, action: str, message: str) -> None:
        """A rule of who-may-do-what was broken: log it, then refuse."""
        self.log_refusal(name, action, message)
        raise Refused(message)

    def signature(
        self, meaning: str, signer: Signer, now: datetime, subject: dict[str, str], content: str
    ) -> dict[str, Any]:
        u = signer.user
        return signature(
            meaning, u.name, u.full_name, u.role.value, iso(now), subject, content, signer.key
        )

    def log_refusal(self, name: str, action: str, reason: str) -> None:
        event = NewEvent(people.ACCESS_REFUSED, name or "(none)", {"action": action}, reason=reason)
        # the refusal itself still stands; a busy log must not turn it into a crash
        with contextlib.suppress(StoreError):
            self.ctx.append_system(people.SECURITY_STREAM, lambda _events: [event])
