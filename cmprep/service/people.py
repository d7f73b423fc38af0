"""People: add, deactivate, change the role of, unlock and reset users, and let each person
change their own password; read the log of refused attempts.

Every change to an account needs the acting admin's password at that moment (not only a
session: 21 CFR 11.300 controls over identification codes) and carries the admin's
signature, so a role rewritten in the database file no longer verifies. Each person has an
Ed25519 key pair made when they are added; only their password opens the private half.

Users are events in the "@users" stream, decided and written under the stream's head
check: two admins adding the same name at once give one user and one clear refusal.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from cmprep.domain import keys, people
from cmprep.domain.people import Role, User
from cmprep.domain.signatures import payload_content
from cmprep.domain.text import control_problem
from cmprep.errors import Hint, NotFound, Refused
from cmprep.events import Event, NewEvent
from cmprep.service.access import Gate, Signer, person_name, reason_text
from cmprep.service.context import Context

Decide = Callable[[dict[str, User]], tuple[str, dict[str, Any]]]


class PeopleService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    def users(self) -> dict[str, User]:
        return self.gate.users()

    def add(
        self,
        name: str,
        full_name: str,
        role: str,
        password: str,
        actor: str | None,
        actor_password: str | None = None,
    ) -> User:
        """Add a person with a new key pair. The first user (an admin) adds themself;
        after that an admin adds people, giving their own password."""
        name = person_name(name)
        first = not self.users()
        admin: Signer | None = None
        if not first:
            admin = self.gate.authorize(actor, actor_password, "manage users")
        elif role != Role.admin.value:
            raise Refused("the first user must be an admin, who then adds the others")
        if not full_name or not full_name.strip():
            raise Refused("give the person's full name: it is printed with their signatures")
        if problem := control_problem(full_name.strip(), "full name"):
            raise Refused(problem)
        if role not in {r.value for r in Role}:
            raise Refused(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")
        if problem := people.password_problem(password):
            raise Refused(problem)
        private = keys.new_private_key()
        payload: dict[str, Any] = {
            "name": name,
            "full_name": full_name.strip(),
            "role": role,
            "password_hash": people.hash_password(password),
            "public_key": keys.public_text(private),
            "wrapped_key": keys.wrap_with_password(private, password, people.SCRYPT_N),
        }
        now = self.ctx.clock()
        own = User(name, payload["full_name"], Role(role), "", payload["public_key"])
        signer = admin or Signer(own, private)
        payload["signature"] = self.gate.signature(
            "authorized", signer, now, {"kind": "user", "id": name}, payload_content(payload)
        )

        def decide(events: list[Event]) -> list[NewEvent]:
            users = people.fold_users(events)
            if taken := people.find(users, name):
                state = "active" if taken.active else "deactivated"
                raise Refused(
                    f"user name {name!r} is taken by {taken.name!r} ({state}); names are one "
                    "per person in any case, and a deactivated name is never given again"
                )
            if users and admin is None:
                # someone made the first admin between our check and this write: the
                # addition now needs an admin, and nobody was checked as one
                raise Refused(
                    "another person created the first admin meanwhile; nothing was written",
                    hint=Hint("ask_admin"),
                )
            return [NewEvent(people.USER_ADDED, signer.name, payload)]

        self.ctx.append_system(people.USERS_STREAM, decide, now)
        user = self.gate.user(name)
        assert user is not None
        return user

    # --- an admin's changes to an account ---------------------------------------------------
    def deactivate(self, name: str, actor: str, reason: str, actor_password: str | None) -> User:
        def change(users: dict[str, User]) -> tuple[str, dict[str, Any]]:
            user = self._target(users, name)
            if not user.active:
                raise Refused(f"user {user.name!r} is already inactive")
            return people.USER_DEACTIVATED, {"name": user.name}

        return self._admin_change(name, actor, actor_password, reason, change, own_ok=False)

    def change_role(
        self, name: str, role: str, actor: str, reason: str, actor_password: str | None
    ) -> User:
        if role not in {r.value for r in Role}:
            raise Refused(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")

        def change(users: dict[str, User]) -> tuple[str, dict[str, Any]]:
            user = self._target(users, name)
            if user.role.value == role:
                raise Refused(f"{user.name} is already {role}")
            return people.ROLE_CHANGED, {"name": user.name, "role": role, "was": user.role.value}

        return self._admin_change(name, actor, actor_password, reason, change, own_ok=False)

    def unlock(self, name: str, actor: str, reason: str, actor_password: str | None) -> User:
        def change(users: dict[str, User]) -> tuple[str, dict[str, Any]]:
            user = self._target(users, name)
            if not user.locked:
                raise Refused(f"the account of {user.name} is not locked")
            return people.ACCOUNT_UNLOCKED, {"name": user.name}

        user = self._admin_change(name, actor, actor_password, reason, change, own_ok=False)
        self.ctx.store.clear_failures(user.name)
        return user

    def reset_password(
        self, name: str, new_password: str, actor: str, reason: str, actor_password: str | None
    ) -> User:
        """An admin sets a new password for someone who forgot theirs. Their old key pair
        cannot be opened without the old password, so a new one is issued; signatures made
        with the old key stay valid (checked against the key held then)."""
        if problem := people.password_problem(new_password):
            raise Refused(problem)
        private = keys.new_private_key()

        def change(users: dict[str, User]) -> tuple[str, dict[str, Any]]:
            user = self._target(users, name)
            if not user.active:
                raise Refused(f"user {user.name!r} is deactivated; a password cannot be reset")
            public = keys.public_text(private)
            return people.PASSWORD_RESET, {
                "name": user.name,
                "password_hash": people.hash_password(new_password),
                "public_key": public,
                "wrapped_key": keys.wrap_with_password(private, new_password, people.SCRYPT_N),
                "key_issued": keys.fingerprint(public),
            }

        user = self._admin_change(name, actor, actor_password, reason, change, own_ok=False)
        self.ctx.store.close_sessions(user=user.name)
        self.ctx.store.clear_failures(user.name)
        return user

    def change_password(self, name: str, old: str, new: str) -> User:
        """A person changes their own password: the same key pair, re-wrapped under the new
        password, so every signature they made before still verifies."""
        if problem := people.password_problem(new):
            raise Refused(problem)
        signer = self.gate.prove(name, old, "change password")
        if new == old:
            raise Refused("the new password is the same as the old one")
        payload: dict[str, Any] = {
            "name": signer.name,
            "password_hash": people.hash_password(new),
            "wrapped_key": keys.wrap_with_password(signer.key, new, people.SCRYPT_N),
        }
        now = self.ctx.clock()
        subject = {"kind": "user", "id": signer.name}
        payload["signature"] = self.gate.signature(
            "authorized", signer, now, subject, payload_content(payload)
        )
        event = NewEvent(people.PASSWORD_CHANGED, signer.name, payload, reason="own password")
        self.ctx.append_system(people.USERS_STREAM, lambda _events: [event], now)
        self.ctx.store.close_sessions(user=signer.name)
        return self._target(self.users(), signer.name)

    def _target(self, users: dict[str, User], name: str) -> User:
        user = people.find(users, name)
        if user is None:
            raise NotFound(f"no user {name!r}")
        return user

    def _admin_change(
        self,
        name: str,
        actor: str,
        actor_password: str | None,
        reason: str,
        change: Decide,
        *,
        own_ok: bool,
    ) -> User:
        """Prove the admin now, decide the change against the stream as it is, and write it
        signed by the admin."""
        reason = reason_text(reason)
        admin = self.gate.authorize(actor, actor_password, "manage users")
        target = self._target(self.users(), name)
        if not own_ok and people.same_name(target.name, admin.name):
            raise Refused("you cannot change your own account this way; ask another admin")
        now = self.ctx.clock()

        def decide(events: list[Event]) -> list[NewEvent]:
            kind, payload = change(people.fold_users(events))
            subject = {"kind": "user", "id": payload["name"]}
            payload["signature"] = self.gate.signature(
                "authorized", admin, now, subject, payload_content(payload)
            )
            return [NewEvent(kind, admin.name, payload, reason=reason)]

        self.ctx.append_system(people.USERS_STREAM, decide, now)
        return self._target(self.users(), name)

    def security_log(self) -> list[dict[str, Any]]:
        return [
            {
                "seq": e.seq,
                "at": e.recorded_at,
                "who": e.actor,
                "action": e.payload.get("action"),
                "reason": e.reason,
            }
            for e in self.ctx.store.events(people.SECURITY_STREAM)
        ]
