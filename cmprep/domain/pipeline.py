"""The order of a batch's steps, as a `transitions` state machine built from its protocol.

It answers one question, "what may happen next?", and nothing else: validation and
writing happen elsewhere. Machines are built once per protocol (content hash) and reused;
each batch is a small cursor object added to the machine for the time of one question.

States: one per stage (a step, or a branch whose arms are alternatives), then
``awaiting_review``, plus ``on_hold``, ``released`` and ``rejected``.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from transitions import Machine, MachineError

from cmprep.protocol.models import Protocol, Step, stage_name

ON_HOLD = "on_hold"
AWAITING_REVIEW = "awaiting_review"
RELEASED = "released"
REJECTED = "rejected"
FINAL = (RELEASED, REJECTED)


class Cursor:
    """Where one batch stands; the machine's model (a plain object, as transitions needs)."""

    def __init__(self, state: str, held_from: str | None = None) -> None:
        self.state = state
        self.held_from = held_from

    if TYPE_CHECKING:
        # bound by transitions while the cursor is attached to a machine (Pipeline._attached)
        def trigger(self, name: str) -> bool: ...


class Pipeline:
    """The machine of one protocol."""

    def __init__(self, protocol: Protocol) -> None:
        self.protocol = protocol
        self.stages = protocol.stages()
        self.stage_names = [stage_name(s) for s in self.stages]
        self.stage_of: dict[str, str] = {
            step.id: stage_name(stage) for stage in self.stages for step in stage
        }
        transitions: list[dict[str, Any]] = []
        for i, stage in enumerate(self.stages):
            src = self.stage_names[i]
            dest = self.stage_names[i + 1] if i + 1 < len(self.stages) else AWAITING_REVIEW
            for step in stage:
                transitions.append({"trigger": f"record_{step.id}", "source": src, "dest": dest})
                if step.optional:
                    transitions.append({"trigger": f"skip_{step.id}", "source": src, "dest": dest})
        active = [*self.stage_names, AWAITING_REVIEW]
        transitions.append({"trigger": "hold", "source": active, "dest": ON_HOLD})
        for name in active:
            transitions.append(
                {
                    "trigger": "resume",
                    "source": ON_HOLD,
                    "dest": name,
                    "conditions": [lambda ev, name=name: ev.model.held_from == name],
                }
            )
        transitions.append({"trigger": "release", "source": AWAITING_REVIEW, "dest": RELEASED})
        transitions.append({"trigger": "reject", "source": [*active, ON_HOLD], "dest": REJECTED})
        self.machine = Machine(
            model=None,
            states=[*active, ON_HOLD, RELEASED, REJECTED],
            transitions=transitions,
            initial=self.stage_names[0],
            auto_transitions=False,
            send_event=True,
        )

    @property
    def initial(self) -> str:
        return self.stage_names[0]

    @contextmanager
    def _attached(self, cursor: Cursor) -> Iterator[Cursor]:
        self.machine.add_model(cursor, initial=cursor.state)
        try:
            yield cursor
        finally:
            self.machine.remove_model(cursor)
            # drop the bound trigger methods so the cursor can be attached again cleanly
            cursor.__dict__ = {"state": cursor.state, "held_from": cursor.held_from}

    def may(self, cursor: Cursor, trigger: str) -> bool:
        if trigger not in self.machine.events:
            return False
        with self._attached(cursor) as c:
            return bool(getattr(c, f"may_{trigger}")())

    def fire(self, cursor: Cursor, trigger: str) -> None:
        """Move the cursor; raises MachineError if the trigger is not allowed from here."""
        if trigger not in self.machine.events:
            raise MachineError(f"no trigger {trigger!r}")
        with self._attached(cursor) as c:
            if trigger == "hold":
                c.held_from = c.state
            ok = c.trigger(trigger)
            if not ok:
                raise MachineError(f"{trigger} not allowed from {c.state}")
            if trigger == "resume":
                c.held_from = None

    def due_steps(self, state: str) -> list[Step]:
        """The step, or the branch arms, that may be recorded now."""
        if state in self.stage_names:
            return list(self.stages[self.stage_names.index(state)])
        return []


_MACHINES: dict[str, Pipeline] = {}


def pipeline_for(protocol: Protocol, content_hash: str | None = None) -> Pipeline:
    """One machine per protocol content, reused across batches and commands."""
    key = content_hash or protocol.content_hash()
    if key not in _MACHINES:
        if len(_MACHINES) > 64:
            _MACHINES.clear()
        _MACHINES[key] = Pipeline(protocol)
    return _MACHINES[key]
