"""What every service shares: the store, the clock, the protocols stored in the database,
and the one write path of a batch.

Each command follows the same shape: fold the batch from its events, decide with the pure
domain (pipeline for order, validation for values), and only then write every resulting
event in one transaction, or nothing. The batch is folded once: what was written is
applied to the batch the command decided from (``project``), never replayed from the
batch's first event again. Time comes in from outside so tests control it; the system
time is never taken from the user.

A batch names its protocol by content hash; ``Context.resolve`` finds that version in
the "@protocols" stream, and each version is parsed once per process.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from cmprep import events as ev
from cmprep.domain import ids
from cmprep.domain.clock import iso, utc_now
from cmprep.domain.settings import SETTINGS_STREAM, SiteSettings, fold_settings
from cmprep.errors import ConcurrencyError, Hint, NotFound, Refused
from cmprep.events import Event, NewEvent
from cmprep.store.base import EventStore, UnitOfWork

# The protocol models, the fold and the validators are imported where they are used, not
# here: every service imports this module, and a command that reads only the query tables
# (the lists, the audit report) must not pay for pydantic and the state machine at start.
if TYPE_CHECKING:
    from pathlib import Path

    from cmprep.domain.batch import Batch
    from cmprep.domain.protocols import Compiled, Resolver, StoredProtocol
    from cmprep.domain.validation import Finding
    from cmprep.protocol.models import Protocol, Step

Clock = Callable[[], datetime]
SYSTEM_RETRIES = 3  # a system stream write that lost a race is decided again this often
NEAR_IDS = 25  # ids read either side of an unknown one, to suggest the closest
# the system streams whose writes read and keep register rows (``append_keyed``), never
# the whole log (domain.traceability's MATERIALS_STREAM and EQUIPMENT_STREAM)
KEYED_STREAMS = ("@materials", "@equipment")


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
        return self.startable(ref).protocol

    def startable(self, ref: str) -> Compiled:
        """As ``protocol``, with the content hash a new batch names it by: the hash it is
        stored under (checked against its content), so the batch's fold finds it."""
        from cmprep.domain.protocols import for_batch
        from cmprep.protocol import library

        if library.is_file(ref):
            raise Refused(
                f"{ref} is a file; a batch starts only from a protocol imported into this "
                "database and approved there by QA",
                hint=Hint("import_protocol"),
            )
        return for_batch(self.protocols(), ref).compiled()

    def protocols(self) -> dict[str, StoredProtocol]:
        """Every protocol version stored in this database, by ``ID@VERSION``."""
        from cmprep.domain.protocols import PROTOCOLS_STREAM, fold_protocols

        return fold_protocols(self.store.events(PROTOCOLS_STREAM))

    def resolve(self, digest: str) -> Compiled | None:
        """The stored protocol version with content hash DIGEST, as a batch's fold needs
        it (None: this database holds no such version).

        Built once per process: the first time, it is read from the "@protocols" stream
        and its content checked against its hash (CorruptLog when it no longer matches);
        after that no batch read or write reads or parses it again."""
        from cmprep.domain.protocols import PROTOCOL_IMPORTED, PROTOCOLS_STREAM, compiled, known
        from cmprep.domain.protocols import ref as version_ref

        found = known(digest)
        if found is not None:
            return found
        for e in self.store.events(PROTOCOLS_STREAM):
            p = e.payload
            if e.type == PROTOCOL_IMPORTED and p.get("content_hash") == digest:
                what = f"stored protocol {version_ref(str(p.get('id')), str(p.get('version')))}"
                return compiled(p["content"], digest, what)
        return None

    def fold(self, events: list[Event]) -> Batch:
        """A batch's events folded, its protocol found in this database (``resolve``)."""
        from cmprep.domain.batch import fold

        return fold(events, self.resolve)

    def batch(self, batch_id: str) -> Batch:
        """The batch BATCH_ID names, typed in any case (``demo-001`` is DEMO-001)."""
        from cmprep.domain.batch import fold

        events = self.store.events(batch_id)
        if not events:
            events = self.store.events(self.batch_named(batch_id))
        return fold(events, self.resolve)

    def batch_named(self, text: str) -> str:
        """The stored id of the batch TEXT names ignoring case; NotFound naming the closest
        ids when there is none. Read from the index next to TEXT, never every batch."""
        near = [] if text.startswith("@") else self.store.ids_near("batch", text, NEAR_IDS)
        if near and ids.key(near[0]) == ids.key(text):
            return near[0]
        if near:
            raise NotFound(
                f"no batch {text!r}{ids.suggestion(text, near)}", hint=Hint("list_batches")
            )
        raise NotFound(f"no batch {text!r}; no batches yet", hint=Hint("start_batch"))

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
        transaction, and update the query tables from the batch as it then is.

        BATCH is the batch the command decided from (None for a new one): the written
        events are applied to it in place, and it is returned in the outcome."""
        findings = findings or []
        from cmprep.domain.validation import Verdict

        out_of_spec = [f for f in findings if f.verdict == Verdict.out_of_spec]
        opened: list[dict[str, Any]] = []
        with self.store.writing(batch_id, expected_seq) as unit:
            # a KEY saved meanwhile (looked up before the lock: BatchService._seen) is refused
            # by remember_key inside this transaction, so nothing of it is written
            all_new = list(new)
            for f in out_of_spec:
                dev = {
                    "deviation_id": f"DEV-{unit.next_number('deviation'):04d}",
                    "step": f.step or (step.id if step else ""),
                    "parameter": f.parameter,
                    "value": f.display,
                    "spec": f.spec,
                    "severity": f.severity.value if f.severity else "major",
                    "message": f.message,
                    "kind": "automatic",
                }
                opened.append(dev)
                # a rule's finding is opened by the system under the rule's name (Westgard
                # 1-3s), not by the person whose entry it judged
                opener = f.raised_by or new[0].actor
                all_new.append(NewEvent(ev.DEVIATION_OPENED, opener, dev))
            written = unit.append(all_new, iso(now))
            if key:
                unit.remember_key(key, written[0].seq, written[-1].seq)
            result = project(unit, batch, written, self.resolve)
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
        """Write to a system stream (@users, @protocols, @settings) under the same head
        check as a batch: ``decide`` sees exactly the events the write is checked against,
        so two people adding the same user at once give one user and one refusal.

        ``decide`` is pure, so a write that lost the race is decided again from the stream as
        it now is (a few times at most): two admins adding different people at once both
        succeed, and the second of two adding the same person hears "already exists".

        NOW is the time to record: a caller that signed what it writes passes the time it
        signed at, so the signature's time and the event's are the same instant."""
        if stream in KEYED_STREAMS:
            raise AssertionError(f"{stream} keeps its rows: write it with append_keyed")
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

    def append_keyed(
        self,
        stream: str,
        decide: Callable[[], list[NewEvent]],
        keep: Callable[[UnitOfWork, list[Event]], None],
        now: datetime | None = None,
    ) -> list[Event]:
        """Write to a system stream whose writes read only the rows they name (the lots,
        materials and instruments registers), not its whole log: the head is read first,
        DECIDE then reads its rows by key, and the write is checked against that head, so
        a write that slipped in between is refused and decided again from the rows as they
        now are. KEEP updates the rows the new events change, in the same unit."""
        at = iso(now) if now is not None else None
        for attempt in range(SYSTEM_RETRIES):
            head = self.store.head(stream)
            new = decide()
            try:
                with self.store.writing(stream, head.seq if head else 0) as unit:
                    written = unit.append(new, at or iso(self.clock()))
                    keep(unit, written)
                    return written
            except ConcurrencyError:
                if attempt == SYSTEM_RETRIES - 1:
                    raise
        raise AssertionError("unreachable")


def project(
    unit: UnitOfWork, batch: Batch | None, written: list[Event], resolve: Resolver | None = None
) -> Batch:
    """Update the query tables from the batch as it is after the new events.

    BATCH (folded up to the event before WRITTEN) is moved on by WRITTEN alone, in place;
    a new batch (None) is folded from WRITTEN, its protocol found by RESOLVE."""
    if batch is not None and written and written[0].seq != batch.seq + 1:
        raise ConcurrencyError(
            f"batch {batch.id} changed while you were entering (entry {batch.seq} was "
            f"decided from, entry {written[0].seq - 1} is the last); nothing was written",
            hint=Hint("try_again", batch=batch.id),
        )
    from cmprep.domain import qc_points, uses
    from cmprep.domain.batch import advance, fold

    result = advance(batch, written) if batch is not None else fold(written, resolve)
    unit.put_batch(result.projection())
    unit.put_qc_points(result.id, qc_points.points(result))  # the lab's QC history
    if any(e.payload.get("lots") for e in written):  # where each lot was used (a recall)
        unit.put_lot_uses(result.id, uses.lot_uses(result))
    touched = {e.payload.get("deviation_id") for e in written}
    for d in result.deviations.values():
        if d.id in touched:
            unit.put_deviation(d.row())
    return result
