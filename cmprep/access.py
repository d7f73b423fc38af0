"""Who may do what: users, roles, passwords, signatures, and the log of refused attempts.

A mixin of the service facade: every write names an active user whose role allows the
act; a refused attempt is itself written to the "@security" stream, so failed tries at
acting as someone else or signing with a wrong password leave a trace.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from cmprep import people
from cmprep.events import NewEvent
from cmprep.people import PERMISSIONS, Role, User
from cmprep.signatures import signature

if TYPE_CHECKING:
    from cmprep.service import Outcome


class AccessMixin:
    """Needs self.store, self.clock, and the service's _name, _reason and iso helpers."""

    # --- users ---------------------------------------------------------------------------
    def users(self) -> dict[str, User]:
        return people.fold_users(self.store.events(people.USERS_STREAM))

    def add_user(
        self, name: str, full_name: str, role: str, password: str, actor: str | None
    ) -> User:
        from cmprep.service import Refused, iso

        name = self._name(name)
        users = self.users()
        if users:
            actor = self._person(actor, "manage users")
        else:
            if role != Role.admin.value:
                raise Refused(
                    "the first user must be an admin (--role admin), who then adds the others"
                )
            actor = name
        if name in users:
            raise Refused(f"user {name!r} already exists; every person has exactly one account")
        if not full_name or not full_name.strip():
            raise Refused(
                "give the person's full name (--full-name): it is printed with their signatures"
            )
        if role not in {r.value for r in Role}:
            raise Refused(f"role {role!r} is not one of: {', '.join(r.value for r in Role)}")
        if problem := people.password_problem(password):
            raise Refused(problem)
        payload = {
            "name": name,
            "full_name": full_name.strip(),
            "role": role,
            "password_hash": people.hash_password(password),
        }
        now = self.clock()
        head = self.store.head(people.USERS_STREAM)
        with self.store.writing(people.USERS_STREAM, head[0] if head else 0) as unit:
            unit.append([NewEvent(people.USER_ADDED, actor, payload)], iso(now))
            user = self.users_after(unit, name, payload, actor, iso(now))
        return user

    @staticmethod
    def users_after(unit: Any, name: str, payload: dict[str, Any], actor: str, at: str) -> User:
        user = User(
            name=name,
            full_name=payload["full_name"],
            role=Role(payload["role"]),
            password_hash=payload["password_hash"],
            added_by=actor,
            added_at=at,
        )
        unit.put_user(name, user.row())
        return user

    def deactivate_user(self, name: str, actor: str, reason: str) -> User:
        from cmprep.service import NotFound, Refused, iso

        actor, reason = self._person(actor, "manage users"), self._reason(reason)
        users = self.users()
        if name not in users:
            raise NotFound(f"no user {name!r}")
        if not users[name].active:
            raise Refused(f"user {name!r} is already inactive")
        if name == actor:
            raise Refused("you cannot deactivate your own account; ask another admin")
        now = self.clock()
        head = self.store.head(people.USERS_STREAM)
        with self.store.writing(people.USERS_STREAM, head[0] if head else 0) as unit:
            unit.append(
                [NewEvent(people.USER_DEACTIVATED, actor, {"name": name}, reason=reason)], iso(now)
            )
            user = users[name]
            user.active, user.deactivated_by, user.deactivated_at = False, actor, iso(now)
            unit.put_user(name, user.row())
        return user

    # --- checks --------------------------------------------------------------------------
    def _person(self, actor: str | None, action: str) -> str:
        """The acting user's name, if they exist, are active and their role allows the act."""
        from cmprep.service import Refused

        name = self._name(actor)
        users = self.users()
        if not users:
            raise Refused(
                "no users yet: create the first admin with "
                "`cmprep user add NAME --full-name '...' --role admin`, then the others"
            )
        user = users.get(name)
        if user is None:
            self._log_refusal(name, action, "unknown user")
            raise Refused(
                f"{name!r} is not a user of this database; "
                "ask an admin to add you (`cmprep user add`)"
            )
        if not user.active:
            self._log_refusal(name, action, "inactive user")
            raise Refused(
                f"user {name!r} is deactivated and can do nothing; past entries stay theirs"
            )
        allowed = PERMISSIONS[action]
        if user.role not in allowed:
            self._log_refusal(name, action, f"role {user.role.value} may not {action}")
            roles = ", ".join(sorted(r.value for r in allowed))
            raise Refused(f"{name} is {user.role.value}; to {action} one must be: {roles}")
        return name

    def _authenticate(self, name: str, password: str | None, meaning: str) -> User:
        from cmprep.service import Refused

        user = self.users()[name]
        if not password or not people.check_password(password, user.password_hash):
            self._log_refusal(name, f"sign ({meaning})", "wrong password")
            raise Refused(
                f"wrong password for {name}; nothing was signed or written (the attempt is logged)"
            )
        return user

    def _refuse(self, name: str, action: str, message: str) -> None:
        """A rule of who-may-do-what was broken: log it, then refuse."""
        from cmprep.service import Refused

        self._log_refusal(name, action, message)
        raise Refused(message)

    def _signature(
        self, meaning: str, user: User, now: datetime, subject: dict[str, str], content: str
    ) -> dict[str, Any]:
        from cmprep.service import iso

        return signature(
            meaning, user.name, user.full_name, user.role.value, iso(now), subject, content
        )

    def _log_refusal(self, name: str, action: str, reason: str) -> None:
        from cmprep.service import iso
        from cmprep.store.base import StoreError

        try:
            head = self.store.head(people.SECURITY_STREAM)
            with self.store.writing(people.SECURITY_STREAM, head[0] if head else 0) as unit:
                unit.append(
                    [
                        NewEvent(
                            people.ACCESS_REFUSED,
                            name or "(none)",
                            {"action": action},
                            reason=reason,
                        )
                    ],
                    iso(self.clock()),
                )
        except StoreError:
            pass  # the refusal itself still stands; a busy log must not turn it into a crash

    def security_log(self) -> list[dict[str, Any]]:
        return [
            {
                "seq": e.seq,
                "at": e.recorded_at,
                "who": e.actor,
                "action": e.payload.get("action"),
                "reason": e.reason,
            }
            for e in self.store.events(people.SECURITY_STREAM)
        ]

    if TYPE_CHECKING:  # provided by the service
        store: Any
        clock: Any

        def _name(self, actor: str | None) -> str: ...
        def _reason(self, reason: str | None) -> str: ...
        def batch(self, batch_id: str) -> Any: ...
        def _write(self, *args: Any, **kwargs: Any) -> Outcome: ...
