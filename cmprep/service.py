"""The one API every shell (CLI, web, scripts) calls. It owns transactions.

Each command follows the same shape: fold the batch from its events, decide with the pure
domain (pipeline for order, validation for values), and only then write every resulting
event in one transaction, or nothing. Time and the acting person come in from outside so
tests control both; the system time is never taken from the user.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cmprep import events as ev
from cmprep.access import AccessMixin
from cmprep.batch import Batch, fold
from cmprep.events import Event, NewEvent
from cmprep.pipeline import Cursor
from cmprep.protocol import library
from cmprep.protocol.models import Protocol, Step
from cmprep.qc import QCMixin
from cmprep.quality import QualityMixin
from cmprep.signatures import performed_content
from cmprep.store.base import ConcurrencyError, EventStore, UnitOfWork
from cmprep.validation import Finding, Verdict, check_entries, check_window, parse_time

Clock = Callable[[], datetime]
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
FUTURE_SKEW = timedelta(minutes=2)


class CmprepError(Exception):
    """An error whose message a technician can act on."""


class NotFound(CmprepError):
    pass


class Refused(CmprepError):
    """Nothing was written; ``problems`` lists every reason."""

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = problems or []
        full = (
            message
            if not self.problems
            else message + "\n" + "\n".join(f"  - {p}" for p in self.problems)
        )
        super().__init__(full)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


@dataclass
class Outcome:
    """What a write did, for the shell to tell the user."""

    batch: Batch
    findings: list[Finding] = field(default_factory=list)
    deviations: list[dict[str, Any]] = field(default_factory=list)
    late: bool = False
    written: int = 0
    duplicate: bool = False  # the same idempotency key was already saved: nothing written


class Service(AccessMixin, QualityMixin, QCMixin):
    def __init__(
        self, store: EventStore, clock: Clock = utc_now, protocols_dir: Path | None = None
    ):
        self.store = store
        self.clock = clock
        self.protocols_dir = protocols_dir

    # --- reading ------------------------------------------------------------------------
    def protocol(self, ref: str) -> Protocol:
        try:
            return library.find(ref, self.protocols_dir)
        except LookupError as err:
            raise NotFound(str(err)) from None

    def protocols(self) -> list[Protocol]:
        return library.bundled(self.protocols_dir)

    def batch(self, batch_id: str) -> Batch:
        events = self.store.events(batch_id)
        if not events:
            known = self.store.batch_ids()
            hint = (
                f"; batches: {', '.join(known[-10:])}"
                if known
                else "; no batches yet (start one with `cmprep batch start PROTOCOL`)"
            )
            raise NotFound(f"no batch {batch_id!r}{hint}")
        return fold(events)

    def batches(self, **filters: Any) -> list[dict[str, Any]]:
        return self.store.batch_rows(**filters)

    def deviations(self, **filters: Any) -> list[dict[str, Any]]:
        return self.store.deviation_rows(**filters)

    # --- writing ------------------------------------------------------------------------
    def start_batch(
        self, protocol_ref: str, actor: str, batch_id: str | None = None, *, key: str | None = None
    ) -> Outcome:
        actor = self._person(actor, "start")
        if key and (done := self._seen(key)):
            return done
        protocol = self.protocol(protocol_ref)
        if protocol.status != "approved":
            raise Refused(
                f"protocol {protocol.id} v{protocol.version} is {protocol.status}; "
                "only an approved protocol can start a batch"
            )
        now = self.clock()
        if batch_id is not None and not _ID.match(batch_id):
            raise Refused(
                f"batch id {batch_id!r} is not usable: use letters, digits, '.', '_' or '-' "
                "(up to 64), starting with a letter or digit"
            )
        payload = {
            "protocol": protocol.model_dump(mode="json"),
            "protocol_hash": protocol.content_hash(),
            "protocol_id": protocol.id,
            "protocol_version": protocol.version,
        }
        if batch_id is None:
            day = now.astimezone(timezone.utc).strftime("%Y%m%d")
            with self.store.writing("__counter__", 0) as unit:
                number = unit.next_number(f"batch-{day}")
            batch_id = f"CM-{day}-{number:03d}"
        return self._write(
            batch_id, 0, [NewEvent(ev.BATCH_STARTED, actor, payload)], now, None, key=key
        )

    def record_step(
        self,
        batch_id: str,
        step_id: str,
        entries: dict[str, str],
        actor: str,
        *,
        note: str | None = None,
        at: str | datetime | None = None,
        password: str | None = None,
        key: str | None = None,
        lots: list[str] | None = None,
        equipment: list[str] | None = None,
        replicates: dict[str, Any] | None = None,
    ) -> Outcome:
        """Record a step. With a password, the performer also signs it ("performed").

        ``lots`` and ``equipment`` name what was used (checked for expiry and calibration);
        ``replicates`` carries QC replicate details from a CSV import.
        """
        actor = self._person(actor, "record")
        if key and (done := self._seen(key)):
            return done
        batch = self.batch(batch_id)
        self._writable(batch)
        step = self._step(batch, step_id)
        self._in_order(batch, step, "record")
        now = self.clock()
        performed = self._performed_at(batch, at, now)
        traced, trace_payload, radius = self._traceability(
            batch, step, lots or [], equipment or [], performed
        )
        findings = check_entries(step, entries, rotor_radius_cm=radius)
        if not any(f.refused for f in findings):
            findings += self._westgard_findings(batch, step, findings)
        findings += traced
        if step.window:
            start = batch.steps[step.window.after]
            if start.performed_at:
                findings.append(
                    check_window(
                        step.window,
                        step.title,
                        datetime.fromisoformat(start.performed_at.replace("Z", "+00:00")),
                        performed,
                    )
                )
        refused = [f for f in findings if f.refused]
        if refused:
            raise Refused(f"{step.title}: nothing was recorded.", [f.message for f in refused])
        late = (now - performed) > timedelta(minutes=batch.protocol.late_entry_minutes)
        values = {
            f.parameter: _value_payload(f)
            for f in findings
            if f.parameter in {p.name for p in step.parameters}
        }
        window = next((f for f in findings if f.parameter.startswith("time_since_")), None)
        payload: dict[str, Any] = {"step": step.id, "values": values, "late": late, **trace_payload}
        if replicates:
            payload["replicates"] = replicates
        if note:
            payload["note"] = note
        if window:
            payload["window"] = {**_value_payload(window), "name": window.parameter}
        if password is not None:
            user = self._authenticate(actor, password, "performed")
            content = performed_content(step.id, values, iso(performed), actor)
            payload["signature"] = self._signature(
                "performed", user, now, {"kind": "step", "id": step.id}, content
            )
        new = [NewEvent(ev.STEP_RECORDED, actor, payload, performed_at=iso(performed))]
        return self._write(batch.id, batch.seq, new, now, batch, findings, step, key=key)

    def skip_step(
        self, batch_id: str, step_id: str, actor: str, reason: str, *, key: str | None = None
    ) -> Outcome:
        actor, reason = self._person(actor, "skip"), self._reason(reason)
        if key and (done := self._seen(key)):
            return done
        batch = self.batch(batch_id)
        self._writable(batch)
        step = self._step(batch, step_id)
        if not step.optional:
            if step.branch:
                raise Refused(
                    f"{step.title} is an arm of the {step.branch} branch; "
                    "choose one arm by recording it "
                    f"({', '.join(s.id for s in batch.due())}), the others are then not taken"
                )
            raise Refused(
                f"{step.title} is not optional in {batch.protocol.id}; it cannot be skipped"
            )
        self._in_order(batch, step, "skip")
        new = [NewEvent(ev.STEP_SKIPPED, actor, {"step": step.id}, reason=reason)]
        return self._write(batch.id, batch.seq, new, self.clock(), batch, key=key)

    def correct(
        self,
        batch_id: str,
        step_id: str,
        entries: dict[str, str],
        actor: str,
        reason: str,
        *,
        key: str | None = None,
    ) -> Outcome:
        actor, reason = self._person(actor, "correct"), self._reason(reason)
        if key and (done := self._seen(key)):
            return done
        batch = self.batch(batch_id)
        self._writable(batch)
        step = self._step(batch, step_id)
        entry = batch.steps[step.id]
        if entry.status != "done":
            raise Refused(
                f"{step.title} has not been recorded ({entry.status}); "
                "record it instead of correcting it"
            )
        if not entries:
            raise Refused("give at least one name=value to correct")
        findings = check_entries(step, entries, partial=True)
        refused = [f for f in findings if f.refused]
        if refused:
            raise Refused(f"{step.title}: nothing was corrected.", [f.message for f in refused])
        new: list[NewEvent] = []
        for f in findings:
            old = entry.values.get(f.parameter)
            if old is not None and old.value == f.value:
                raise Refused(f"{f.parameter} is already {old.display}; nothing to correct")
            new.append(
                NewEvent(
                    ev.VALUE_CORRECTED,
                    actor,
                    {
                        "step": step.id,
                        "parameter": f.parameter,
                        "old": {"value": old.value, "display": old.display} if old else None,
                        "new": _value_payload(f),
                    },
                    reason=reason,
                )
            )
        return self._write(batch.id, batch.seq, new, self.clock(), batch, findings, step, key=key)

    def hold(self, batch_id: str, actor: str, reason: str) -> Outcome:
        actor, reason = self._person(actor, "hold"), self._reason(reason)
        batch = self.batch(batch_id)
        self._writable(batch)
        if batch.on_hold:
            raise Refused(
                f"batch {batch.id} is already on hold; "
                f"resume it with `cmprep batch resume {batch.id} --reason ...`"
            )
        return self._write(
            batch.id,
            batch.seq,
            [NewEvent(ev.BATCH_HELD, actor, {}, reason=reason)],
            self.clock(),
            batch,
        )

    def resume(self, batch_id: str, actor: str, reason: str) -> Outcome:
        actor, reason = self._person(actor, "resume"), self._reason(reason)
        batch = self.batch(batch_id)
        self._writable(batch)
        if not batch.on_hold:
            raise Refused(f"batch {batch.id} is not on hold")
        return self._write(
            batch.id,
            batch.seq,
            [NewEvent(ev.BATCH_RESUMED, actor, {}, reason=reason)],
            self.clock(),
            batch,
        )

    # --- audit ------------------------------------------------------------------------
    def audit_trail(self, batch_id: str) -> list[dict[str, Any]]:
        from cmprep.audit import describe

        if batch_id.startswith("@"):
            return [describe(e) for e in self.store.events(batch_id)]
        return [describe(e) for e in self.batch(batch_id).events]

    def audit_verify(self, batch_id: str | None = None) -> tuple[int, list[Any]]:
        """(events checked, breaks): recompute every chain, head, signature and the ledger."""
        from cmprep.audit import verify

        streams = {sid: self.store.events(sid) for sid in self.store.stream_ids()}
        if batch_id and batch_id not in streams and batch_id not in self.store.recorded_heads():
            raise NotFound(f"no batch {batch_id!r}")
        breaks = verify(streams, self.store.recorded_heads(), self.store.ledger(), batch_id)
        checked = sum(len(v) for k, v in streams.items() if not batch_id or k == batch_id)
        return checked, breaks

    def ledger_head(self) -> str:
        """The hash of the newest ledger entry: print it, keep it outside, compare it later."""
        rows = self.store.ledger()
        return rows[-1]["hash"] if rows else ev.GENESIS

    def audit_report(self, since: str | None = None) -> dict[str, Any]:
        from cmprep.audit import report_data

        if since:
            try:
                since = iso(parse_time(since if "T" in since else since + "T00:00Z"))
            except ValueError as err:
                raise Refused(f"--since: {err}") from None
        return report_data(
            self.store.deviation_rows(), self.store.batch_rows(), self.clock(), since
        )

    def rebuild_projections(self) -> int:
        """Recompute the query tables from the event log (after an upgrade or a repair)."""
        batches, deviations = [], []
        for batch_id in self.store.batch_ids():
            events = self.store.events(batch_id)
            if not events or events[0].type != ev.BATCH_STARTED:
                continue
            b = fold(events)
            batches.append(b.projection())
            deviations.extend(d.row() for d in b.deviations.values())
        self.store.replace_projections(batches, deviations)
        return len(batches)

    # --- helpers ------------------------------------------------------------------------
    def _write(
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
        """Append the events (and a deviation for each out-of-spec finding) in one transaction."""
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
                number = unit.next_number("deviation")
                dev = {
                    "deviation_id": f"DEV-{number:04d}",
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
            result = self._project(unit, batch, written)
        late = bool(new[0].payload.get("late"))
        return Outcome(
            batch=result, findings=findings, deviations=opened, late=late, written=len(written)
        )

    @staticmethod
    def _project(unit: UnitOfWork, batch: Batch | None, written: list[Event]) -> Batch:
        """Update the query tables from the batch as it is after the new events."""
        result = fold((batch.events if batch else []) + written)
        unit.put_batch(result.projection())
        touched = {e.payload.get("deviation_id") for e in written}
        for d in result.deviations.values():
            if d.id in touched:
                unit.put_deviation(d.row())
        return result

    @staticmethod
    def _name(actor: str | None) -> str:
        if not actor or not actor.strip():
            raise Refused(
                "who is doing this? Give --as NAME or set CMPREP_USER; "
                "a record without a person is not accepted"
            )
        actor = actor.strip()
        if not _ID.match(actor):
            raise Refused(
                f"person {actor!r} is not a usable name: use letters, digits, '.', '_' or '-'"
            )
        return actor

    def _seen(self, key: str) -> Outcome | None:
        """The outcome of a command already saved under this idempotency key, if any."""
        if not _ID.match(key):
            raise Refused(
                f"idempotency key {key!r} is not usable: letters, digits, '.', '_' or '-'"
            )
        found = self.store.key_used(key)
        if found is None:
            return None
        batch = self.batch(found[0])
        return Outcome(batch=batch, duplicate=True)

    @staticmethod
    def _reason(reason: str | None) -> str:
        if reason is None or not reason.strip():
            raise Refused("a reason is required (--reason TEXT) and cannot be empty or only spaces")
        if len(reason) > 2000:
            raise Refused("the reason is longer than 2000 characters")
        return reason.strip()

    @staticmethod
    def _writable(batch: Batch) -> None:
        if batch.is_final:
            raise Refused(f"batch {batch.id} is {batch.state}; it takes no more entries")

    @staticmethod
    def _step(batch: Batch, step_id: str) -> Step:
        step = batch.protocol.step(step_id)
        if step is None:
            names = ", ".join(s.id for s in batch.protocol.steps)
            raise Refused(
                f"protocol {batch.protocol.id} has no step {step_id!r}; its steps: {names}"
            )
        return step

    @staticmethod
    def _in_order(batch: Batch, step: Step, action: str) -> None:
        if batch.on_hold:
            raise Refused(
                f"batch {batch.id} is on hold; "
                f"resume it first with `cmprep batch resume {batch.id} --reason ...`"
            )
        if batch.pipeline.may(_cursor(batch), f"{action}_{step.id}"):
            return
        entry = batch.steps[step.id]
        due = batch.due()
        due_text = (
            " or ".join(f"{s.id} ({s.title})" for s in due) if due else "none: all steps are done"
        )
        if entry.status in ("done", "skipped", "not taken"):
            raise Refused(
                f"{step.title} is already {entry.status} in batch {batch.id}; "
                "to change a value use "
                f"`cmprep batch correct {batch.id} {step.id} NAME=VALUE --reason ...`. "
                f"Step due: {due_text}"
            )
        raise Refused(
            f"{step.title} is not due yet in batch {batch.id}: the step due is {due_text}"
        )

    def _performed_at(self, batch: Batch, at: str | datetime | None, now: datetime) -> datetime:
        if at is None:
            performed = now
        else:
            try:
                performed = parse_time(at) if isinstance(at, str) else at.astimezone(timezone.utc)
            except ValueError as err:
                raise Refused(f"--at: {err}") from None
            if performed > now + FUTURE_SKEW:
                raise Refused(
                    f"--at {iso(performed)} is in the future (now {iso(now)}); "
                    "give the time the step was done"
                )
        last = batch.last_performed_at()
        # (without --at, a "now" before the last step is the clock going backwards:
        # the store refuses it)
        if (
            at is not None
            and last
            and performed < datetime.fromisoformat(last.replace("Z", "+00:00"))
        ):
            raise Refused(
                f"--at {iso(performed)} is before the previous step was done ({last}); "
                "steps are done in order"
            )
        if performed < datetime.fromisoformat(batch.started_at.replace("Z", "+00:00")) - timedelta(
            days=365
        ):
            raise Refused(f"--at {iso(performed)} is more than a year before the batch started")
        return performed


def _cursor(batch: Batch) -> Cursor:
    return Cursor(batch.state, batch.held_from)


def _value_payload(f: Finding) -> dict[str, Any]:
    return {
        "value": f.value,
        "raw": f.raw,
        "verdict": f.verdict.value,
        "message": f.message,
        "spec": f.spec,
        "display": f.display,
        **({"note": f.note} if f.note else {}),
    }
