"""What every service shares: the store, the clock, the protocols stored in the database,
and the one write path of a batch.

Each command follows the same shape: fold the batch from its events, decide with the pure
domain (pipeline for order, validation for values), and only then write every resulting
event in one transaction, or nothing. Time comes in from outside so tests control it; the
system time is never taken from the user.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from cmprep import events as ev
from cmprep.domain.batch import Batch, fold
from cmprep.domain.clock import iso, utc_now
from cmprep.domain.protocols import PROTOCOLS_STREAM, StoredProtocol, fold_protocols, for_batch
from cmprep.domain.settings import SETTINGS_STREAM, SiteSettings, fold_settings
from cmprep.domain.validation import Finding, Verdict
from cmprep.errors import ConcurrencyError, Hint, NotFound, Refused
from cmprep.events import Event, NewEvent
from cmprep.protocol import library
from cmprep.protocol.models import Protocol, Step
from cmprep.store.base import EventStore, UnitOfWork

Clock = Callable[[], datetime]
SYSTEM_RETRIES = 3  # a system stream write that lost a race is decided again this often


@dataclass
class Outcome:
    """What a write did, for the shell to tell the user."""

    batch: Batch
    findings: list[Finding] = field(default_factory=list)
    deviations: list[dict[str, Any]] = field(default_factory=list)
    late: bool = False
    written: int = 0
    duplicate: bool = False  # the same idempotency key was already saved: nothing written


class Context:
    """The store, the clock and the protocols; the services share one."""

    def __init__(
        self, store: EventStore, clock: Clock = utc_now, protocols_dir: Path | None = None
    ) -> None:
        self.store = store
        self.clock = clock
        self.protocols_dir = protocols_dir

    # --- reading --------------------------------------------------------------------------
    def protocol(self, ref: str) -> Protocol:
        """The protocol a new batch starts from: a version approved in this database, by
        ``ID`` (its newest approved version) or ``ID@VERSION``. A file is refused (it can be
        edited after QA read it), and so is a draft or a retired version."""
        if library.is_file(ref):
            raise Refused(
                f"{ref} is a file; a batch starts only from a protocol imported into this "
                "database and approved there by QA",
                hint=Hint("import_protocol"),
            )
        return for_batch(self.protocols(), ref).protocol()

    def protocols(self) -> dict[str, StoredProtocol]:
        """Every protocol version stored in this database, by ``ID@VERSION``."""
        return fold_protocols(self.store.events(PROTOCOLS_STREAM))

    def batch(self, batch_id: str) -> Batch:
        events = self.store.events(batch_id)
        if not events:
            known = self.store.batch_ids()
            if known:
                raise NotFound(
                    f"no batch {batch_id!r}; batches: {', '.join(known[-10:])}",
                    hint=Hint("list_batches"),
                )
            raise NotFound(f"no batch {batch_id!r}; no batches yet", hint=Hint("start_batch"))
        return fold(events)

    # --- writing --------------------------------------------------------------------------
    def write(
        self,
        batch_id: str,
        expected_seq: int,
        new: list[NewEvent],
        now: datetime,
        batch: Batch | None,
        findings: list[Finding] | None = None,
        step: Step | None = None,
        *,
        key: str | None = None,
    ) -> Outcome:
        """Append the events (and a deviation for each out-of-spec finding) in one
        transaction, and update the query tables from the batch as it then is."""
        findings = findings or []
        out_of_spec = [f for f in findings if f.verdict == Verdict.out_of_spec]
        opened: list[dict[str, Any]] = []
        with self.store.writing(batch_id, expected_seq) as unit:
            if key and unit.seen_key(key):
                raise ConcurrencyError(
                    f"the command with key {key!r} was saved meanwhile; nothing more was written"
                )
            all_new = list(new)
            for f in out_of_spec:
                dev = {
                    "deviation_id": f"DEV-{unit.next_number('deviation'):04d}",
                    "step": step.id if step else "",
                    "parameter": f.parameter,
                    "value": f.display,
                    "spec": f.spec,
                    "severity": f.severity.value if f.severity else "major",
                    "message": f.message,
                    "kind": "automatic",
                }
                opened.append(dev)
                all_new.append(NewEvent(ev.DEVIATION_OPENED, new[0].actor, dev))
            written = unit.append(all_new, iso(now))
            if key:
                unit.remember_key(key, written[0].seq, written[-1].seq)
            result = project(unit, batch, written)
        late = bool(new[0].payload.get("late"))
        return Outcome(
            batch=result, findings=findings, deviations=opened, late=late, written=len(written)
        )

    def settings(self) -> SiteSettings:
        """The site's settings as the admins last set them (defaults until then)."""
        return fold_settings(self.store.events(SETTINGS_STREAM))

    def append_system(
        self,
        stream: str,
        decide: Callable[[list[Event]], list[NewEvent]],
        now: datetime | None = None,
    ) -> list[Event]:
        """Write to a system stream (@users, @materials, @equipment) under the same head
        check as a batch: ``decide`` sees exactly the events the write is checked against,
        so two people adding the same user at once give one user and one refusal.

        ``decide`` is pure, so a write that lost the race is decided again from the stream as
        it now is (a few times at most): two admins adding different people at once both
        succeed, and the second of two adding the same person hears "already exists".

        NOW is the time to record: a caller that signed what it writes passes the time it
        signed at, so the signature's time and the event's are the same instant."""
        at = iso(now) if now is not None else None
        for attempt in range(SYSTEM_RETRIES):
            events = self.store.events(stream)
            new = decide(events)
            try:
                with self.store.writing(stream, events[-1].seq if events else 0) as unit:
                    return unit.append(new, at or iso(self.clock()))
            except ConcurrencyError:
                if attempt == SYSTEM_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


def project(unit: UnitOfWork, batch: Batch | None, written: list[Event]) -> Batch:
    """Update the query tables from the batch as it is after the new events."""
    result = fold((batch.events if batch else []) + written)
    unit.put_batch(result.projection())
    touched = {e.payload.get("deviation_id") for e in written}
    for d in result.deviations.values():
        if d.id in touched:
            unit.put_deviation(d.row())
    return result
