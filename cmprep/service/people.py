"""People: add and deactivate users (admins only, after the first), and read the log of
refused attempts.

Users are events in the "@users" stream, decided and written under the stream's head
check: two admins adding the same name at once give one user and one clear refusal.
"""

from __future__ import annotations

from typing import Any

from cmprep.domain import people
from cmprep.domain.people import Role, User
from cmprep.errors import Hint, NotFound, Refused
from cmprep.events import Event, NewEvent
from cmprep.service.access import Gate, person_name, reason_text
from cmprep.service.context import Context


class PeopleService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    def users(self) -> dict[str, User]:
        return self.gate.users()

    def add(self, name: str, full_name: str, role: str, password: str, actor: str | None) -> User:
        name = person_name(name)
        # Who signs the addition: a checked admin, or nobody yet (the first admin adds themself).
        by: str | None = None
        if self.users():
            by = self.gate.person(actor, "manage users")
        elif role != Role.admin.value:
            raise Refused("the first user must be an admin, who then adds the others")
        if not full_name or not full_name.strip():
            raise Refused("give the person's full name: it is printed with their signatures")
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

        def decide(events: list[Event]) -> list[NewEvent]:
            users = people.fold_users(events)
            if name in users:
                raise Refused(f"user {name!r} already exists; every person has exactly one account")
            if not users and role != Role.admin.value:
                raise Refused("the first user must be an admin, who then adds the others")
            if users and by is None:
                # someone made the first admin between our check and this write: the
                # addition now needs an admin, and nobody was checked as one
                raise Refused(
                    "another person created the first admin meanwhile; nothing was written",
                    hint=Hint("ask_admin"),
                )
            return [NewEvent(people.USER_ADDED, by if by is not None else name, payload)]

        self.ctx.append_system(people.USERS_STREAM, decide)
        return self.users()[name]

    def deactivate(self, name: str, actor: str, reason: str) -> User:
        actor, reason = self.gate.person(actor, "manage users"), reason_text(reason)
        if name == actor:
            raise Refused("you cannot deactivate your own account; ask another admin")

        def decide(events: list[Event]) -> list[NewEvent]:
            users = people.fold_users(events)
            if name not in users:
                raise NotFound(f"no user {name!r}")
            if not users[name].active:
                raise Refused(f"user {name!r} is already inactive")
            return [NewEvent(people.USER_DEACTIVATED, actor, {"name": name}, reason=reason)]

        self.ctx.append_system(people.USERS_STREAM, decide)
        return self.users()[name]

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
