"""The order of a batch's steps, as a `transitions` state machine built from its protocol.

It answers one question, "what may happen next?", and nothing else: validation and
writing happen elsewhere. A machine is built once per protocol version (content hash,
see ``domain.protocols.compiled``) and shared by every batch of it. A batch is a small
cursor (its state, and the stage a hold came from) that is never attached to the machine:
the machine's transitions are read once into a table by (trigger, state), and moving a
cursor is a lookup in it, so replaying an event costs a dictionary lookup rather than
binding the machine's methods to an object and unbinding them again.

The machine decides what may be written (``may``, asked before every step is recorded). A
fold only replays what was written and checked then: it moves the cursor (``fire``) through
the same transitions, read into the same table without building the machine, so a command
that only reads batches never imports ``transitions`` (``tests/test_protocol_models.py`` holds the
table to the machine's decisions for every protocol, state and trigger).

States: one per stage (a step, or a branch whose arms are alternatives), then
``awaiting_review``, plus ``on_hold``, ``released`` and ``rejected``.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any, NamedTuple

from cmprep.protocol.models import Protocol, Step, stage_name

if TYPE_CHECKING:
    from transitions import Machine

ON_HOLD = "on_hold"
AWAITING_REVIEW = "awaiting_review"
RELEASED = "released"
REJECTED = "rejected"
FINAL = (RELEASED, REJECTED)


class Cursor:
    """Where one batch stands: the model the machine's conditions look at."""

    def __init__(self, state: str, held_from: str | None = None) -> None:
        self.state = state
        self.held_from = held_from


class _Asked(NamedTuple):
    """What a condition of the machine is handed (in place of transitions' EventData,
    of which the conditions here read only ``model``)."""

    model: Cursor


class NotAllowed(Exception):
    """A trigger the machine does not allow from where a cursor stands (or does not know)."""


class _Move(NamedTuple):
    """One transition of the machine: where it goes, and its conditions (functions)."""

    dest: str
    conditions: tuple[Any, ...]


def _holds(func: Any, target: bool, asked: _Asked) -> bool:
    """Whether a condition of the machine gives TARGET for the cursor (the conditions here
    are all functions; a condition named by a method would be a model's, never used)."""
    return callable(func) and bool(func(asked)) == target


def _resumes_to(name: str) -> Any:
    """The condition of "resume" into stage NAME: the hold came from there."""
    return lambda event, name=name: event.model.held_from == name


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
                    "conditions": [_resumes_to(name)],
                }
            )
        transitions.append({"trigger": "release", "source": AWAITING_REVIEW, "dest": RELEASED})
        transitions.append({"trigger": "reject", "source": [*active, ON_HOLD], "dest": REJECTED})
        self._transitions = transitions
        self._states = [*active, ON_HOLD, RELEASED, REJECTED]
        # (trigger, source state) -> the transitions from there, in the order they are tried
        self._table: dict[tuple[str, str], list[_Move]] = {}
        for t in transitions:
            sources = t["source"] if isinstance(t["source"], list) else [t["source"]]
            for source in sources:
                move = _Move(t["dest"], tuple(t.get("conditions", ())))
                self._table.setdefault((t["trigger"], source), []).append(move)
        self._triggers = {t["trigger"] for t in transitions}

    @cached_property
    def machine(self) -> Machine:
        """The `transitions` machine of the protocol, built on first use (by ``may``)."""
        from transitions import Machine

        return Machine(
            model=None,
            states=self._states,
            transitions=self._transitions,
            initial=self.stage_names[0],
            auto_transitions=False,
            send_event=True,
        )

    @property
    def initial(self) -> str:
        return self.stage_names[0]

    def _destination(self, cursor: Cursor, trigger: str) -> str | None:
        """Where the machine takes the cursor on TRIGGER (None: not allowed): its first
        transition from this state whose conditions hold."""
        asked = _Asked(cursor)
        event = self.machine.events.get(trigger)
        for move in event.transitions.get(cursor.state, []) if event else []:
            if all(_holds(c.func, c.target, asked) for c in move.conditions):
                return str(move.dest)
        return None

    def may(self, cursor: Cursor, trigger: str) -> bool:
        """Whether the machine allows TRIGGER from where the cursor stands: asked before a
        step is written."""
        return self._destination(cursor, trigger) is not None

    def replayed(self, cursor: Cursor, trigger: str) -> str | None:
        """Where TRIGGER took the cursor when it was written (None: it could not have), read
        from the machine's transitions without building it: the fold's move."""
        asked = _Asked(cursor)
        for move in self._table.get((trigger, cursor.state), ()):
            if all(bool(c(asked)) for c in move.conditions):
                return move.dest
        return None

    def fire(self, cursor: Cursor, trigger: str) -> None:
        """Move the cursor as a logged event did; NotAllowed if it could not have."""
        if trigger not in self._triggers:
            raise NotAllowed(f"no trigger {trigger!r}")
        dest = self.replayed(cursor, trigger)
        if dest is None:
            raise NotAllowed(f"{trigger} not allowed from {cursor.state}")
        if trigger == "hold":
            cursor.held_from = cursor.state
        elif trigger == "resume":
            cursor.held_from = None
        cursor.state = dest

    def due_steps(self, state: str) -> list[Step]:
        """The step, or the branch arms, that may be recorded now."""
        if state in self.stage_names:
            return list(self.stages[self.stage_names.index(state)])
        return []
