"""Every error a person can meet, as one tree.

Each carries a plain message and, where there is one, a structured ``Hint``: what to do
next, as data (``Hint("resume_batch", batch="CM-1")``), never as a command line. The
service and the domain raise these; each shell (the command line, the web page) says the
hint in its own words, so no message here ever names a flag or a command.

This module imports nothing of cmprep: every layer may raise from it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Hint:
    """What the person can do next, as data for a shell to phrase.

    ``kind`` names the situation (see ``HINT_KINDS``); ``data`` carries the ids the shell
    needs to phrase it (a batch id, a step id, a lot number).
    """

    kind: str
    data: dict[str, str] = field(default_factory=dict)

    def __init__(self, kind: str, **data: Any) -> None:
        if kind not in HINT_KINDS:
            raise ValueError(f"unknown hint kind {kind!r}")
        object.__setattr__(self, "kind", kind)
        object.__setattr__(self, "data", {k: str(v) for k, v in data.items()})


# Every hint a shell must know how to say; a test checks that each shell says each one.
HINT_KINDS = (
    "needs_person",  # no acting person was given
    "first_admin",  # no users yet: the first one must be an admin
    "ask_admin",  # an unknown user: an admin adds people
    "start_batch",  # no batches yet
    "list_batches",  # an unknown batch id
    "resume_batch",  # data: batch
    "correct_value",  # data: batch, step
    "record_step",  # data: batch, due (the step or arms due, comma separated)
    "investigate_deviation",  # data: deviation
    "sign_review",  # data: batch; release needs a review that still counts
    "reject_batch",  # data: batch; a rejected deviation leaves only rejection
    "list_deviations",  # an unknown deviation id
    "import_protocol",  # a protocol not in the database (or a file): import it, QA approves
    "approve_protocol",  # data: protocol, version; a draft cannot start a batch
    "list_protocols",  # an unknown or retired protocol version
    "register_lot",  # data: lot
    "register_equipment",  # data: equipment
    "name_centrifuge",  # a speed in rpm needs a centrifuge whose record has its rotor radius
    "give_reason",  # a reason is required
    "give_output_file",  # a binary document needs a file to go to
    "install_extra",  # data: extra, package
    "check_clock",  # the system clock is behind the log
    "anchor_folder",  # no usable folder for ledger checkpoints
    "try_again",  # data: batch (optional); a concurrent writer won
    "upgrade",  # the database is newer than this program
    "init_database",  # data: path; no database there yet
    "log_in",  # the person has not proven who they are (no session, no password)
    "unlock_account",  # data: name; too many wrong passwords locked the account
    "other_person",  # data: name; a session was asked to act as someone else
    "verify_log",  # a log found damaged while reading it (a copy): verify it
    "conditional_release",  # data: batch; fresh use before QC needs QA's conditional release
)


class CmprepError(Exception):
    """An error whose message a technician can act on; nothing was written.

    ``problems`` lists every reason at once (a refused form lists each bad field);
    ``hint`` says what to do next.
    """

    def __init__(
        self, message: str, problems: list[str] | None = None, *, hint: Hint | None = None
    ) -> None:
        self.message = message
        self.problems = list(problems or [])
        self.hint = hint
        full = message + "".join(f"\n  - {p}" for p in self.problems)
        super().__init__(full)


class NotFound(CmprepError):
    """What was named does not exist (a batch, a deviation, a user, a protocol)."""


class Refused(CmprepError):
    """A rule says no: out of order, wrong role, impossible value. Nothing was written."""


class StoreError(CmprepError):
    """The database cannot be used; the message says why and what to do."""


class ConcurrencyError(StoreError):
    """Another writer changed the stream between reading it and writing to it."""


class ClockBehind(StoreError):
    """The system clock reads earlier than the stream's last entry: refuse, never reorder."""


class CorruptLog(CmprepError):
    """The events do not replay: the log was written by something other than cmprep."""


class MissingExtra(CmprepError):
    """An optional part (PDF, PNG, PostgreSQL) is not installed; the hint names it."""


# Ctrl-C: the status a shell reports for a command stopped by it (128 + SIGINT), and what
# both shells (click's and the quick path's) say of the work
INTERRUPTED = 130
INTERRUPTED_SAID = (
    "\nInterrupted. What was saved before stays saved; what was being saved was not written "
    "(each save is whole or nothing)."
)

__all__ = [
    "HINT_KINDS",
    "INTERRUPTED",
    "INTERRUPTED_SAID",
    "ClockBehind",
    "CmprepError",
    "ConcurrencyError",
    "CorruptLog",
    "Hint",
    "MissingExtra",
    "NotFound",
    "Refused",
    "StoreError",
]
