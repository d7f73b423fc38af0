"""`make bench SIZE=N`, part one: a database of N batches of a documented mix, in minutes.

    python bench/generate.py --size 10000 --out bench-output/bench-10000.db

The mix (every batch is one of these kinds, each protocol in the share PROTOCOLS gives):

| kind                | share | what the batch holds                                          |
|---------------------|------:|---------------------------------------------------------------|
| released            |  50 % | every step in spec, steps verified, QC results, reviewed,     |
|                     |       | released                                                      |
| released_deviation  |  15 % | one value out of spec (an automatic deviation), a correction  |
|                     |       | of another value, the deviation investigated and accepted by  |
|                     |       | QA, reviewed, released                                        |
| rejected            |   5 % | a value out of spec, the deviation closed as rejected, the    |
|                     |       | batch rejected                                                |
| awaiting_review     |   6 % | every step recorded, a deviation investigated but not closed  |
| on_hold             |   4 % | recorded halfway, then put on hold                            |
| stage_K             |  20 % | in progress: stopped before stage K, spread evenly over every |
|                     |       | stage of its protocol (some with a deviation still open)      |

How it is fast: the service records one batch of each kind and protocol (the *templates*:
real commands, with every check and signature). Every other batch is a copy of a template's
events with a new batch id, new deviation numbers and its times moved forward, written
straight through the store's units with the same payloads, and its query rows made by the
service's own ``project`` (as every write makes them). The copies are what lists, counts
and reports read. Each signature a copy carries is made again, as the service makes it:
its content hash recomputed from the copy's own log and sealed with its signer's Ed25519
key, so the whole database verifies clean and ``audit verify`` checks every seal, as it
would in a lab.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import sys
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

PROTOCOLS = {  # protocol -> share of batches
    "cm-standard-serum-free": 0.40,
    "cm-hypoxia-uc": 0.30,
    "cm-tnf-primed-ad": 0.15,
    "cm-3d-spheroid-bm": 0.15,
}
KINDS = {  # kind -> share of batches; "stage" is split evenly over the protocol's stages
    "released": 0.50,
    "released_deviation": 0.15,
    "rejected": 0.05,
    "awaiting_review": 0.06,
    "on_hold": 0.04,
    "stage": 0.20,
}
START = datetime(2020, 1, 6, 7, 0, tzinfo=timezone.utc)
SPACING = timedelta(hours=3)  # between the starts of two batches
_ISO = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d(?::\d\d(?:\.\d+)?)?Z")


class Templates:
    """One batch of each kind and protocol, recorded through the service."""

    def __init__(self, db: Path) -> None:
        from cmprep.demo import DEMO_PASSWORD, EQUIPMENT, LOTS, PEOPLE, Lab, approve_protocols

        self.password = DEMO_PASSWORD
        self.lab = Lab(db, START - timedelta(days=30))
        svc = self.lab.svc
        for name, full_name, role in PEOPLE:
            svc.people.add(name, full_name, role, DEMO_PASSWORD, "admin", DEMO_PASSWORD)
        for name, _full, _role in PEOPLE:
            svc.gate.prove(name, DEMO_PASSWORD, "log in")
        approve_protocols(self.lab)
        for lot, material, _expiry in LOTS:
            svc.materials.register_lot(lot, material, "2099-12-31", "alice")  # copies run on
        for ident, kind, _due, radius in EQUIPMENT:
            svc.materials.register_equipment(
                ident, kind, "2099-12-31", "alice", rotor_radius_cm=radius
            )
        self.made: dict[tuple[str, str], str] = {}  # (protocol, kind) -> template batch id
        self.doer, self.checker = "alice", "bob"

    def signing_keys(self) -> dict[str, Any]:
        """Each person's private signing key, opened with their password (the copies are
        sealed with it)."""
        from cmprep.demo import PEOPLE

        svc = self.lab.svc
        return {name: svc.gate.prove(name, self.password, "sign").key for name, _f, _r in PEOPLE}

    def stages(self, protocol: str) -> list[str]:
        """The first step of each stage of PROTOCOL, in order."""
        batch = self.lab.svc.batches.batch(self.made[(protocol, "released")])
        return [stage[0].id for stage in batch.pipeline.stages]

    def make(self, protocol: str, kind: str, n: int) -> str:
        """Record the template of KIND for PROTOCOL (the Nth template); its batch id.

        Technicians take turns (alice, bob), each verified by the other; the value out of
        spec falls at a different step from one template to the next.
        """
        batch_id = f"TPL-{n:03d}"
        lab, svc = self.lab, self.lab.svc
        self.doer, self.checker = ("alice", "bob") if n % 2 else ("bob", "alice")
        lab.tick(5)
        if kind.startswith("stage_"):
            self._run(
                protocol, batch_id, n, stop_before=kind.removeprefix("stage_"), bad=n % 3 == 0
            )
        elif kind == "on_hold":
            self._run(protocol, batch_id, n, stop_before=self._middle(protocol))
            lab.tick(1)
            step = self._middle(protocol)
            svc.quality.open_deviation(batch_id, step, "minor", self.doer, "incubator alarm 02:10")
            svc.batches.hold(batch_id, self.doer, "incubator alarm; waiting for the engineer")
        elif kind == "awaiting_review":
            devs = self._run(protocol, batch_id, n, bad=True)
            self._verify(batch_id)
            for d in devs:
                lab.tick(2)
                svc.quality.investigate(
                    d["deviation_id"], self.doer, "Reading taken late.", impact="None expected."
                )
        elif kind == "rejected":
            devs = self._run(protocol, batch_id, n, bad=True)
            self._verify(batch_id)
            self._close(devs, "rejected")
            lab.tick(1)
            svc.quality.reject(batch_id, "quinn", self.password, "Deviation rejected by QA.")
        else:  # released, released_deviation
            devs = self._run(protocol, batch_id, n, bad=kind == "released_deviation")
            if kind == "released_deviation":
                self._correct(batch_id)
            self._verify(batch_id)
            self._close(devs, "accepted")
            lab.tick(1)
            svc.quality.sign_review(batch_id, "quinn", self.password, "Reviewed by exception.")
            lab.tick(0.5)
            svc.quality.release(batch_id, "quinn", self.password, "Meets specification.")
            if kind == "released_deviation":  # a complaint months later: an addendum
                lab.tick(24 * 30)
                svc.quality.open_complaint(batch_id, "minor", "rita", "turbid vial at the clinic")
        self.made[(protocol, kind)] = batch_id
        return batch_id

    def _middle(self, protocol: str) -> str:
        stages = self.stages(protocol)
        return stages[len(stages) // 2]

    def _run(
        self,
        protocol: str,
        batch_id: str,
        n: int,
        stop_before: str | None = None,
        bad: bool = False,
    ) -> list[dict[str, Any]]:
        """Start and record in stage order (up to the stage of STOP_BEFORE); BAD: one value
        out of spec, at the Nth (wrapping) of the steps whose spec can be missed."""
        from cmprep.demo import HOURS, _instruments, _material_lots, in_spec_value

        svc, lab = self.lab.svc, self.lab
        svc.batches.start(protocol, self.doer, batch_id)
        steps = []
        for stage in svc.batches.batch(batch_id).pipeline.stages:
            if stop_before in [s.id for s in stage]:
                break
            steps.append(next((s for s in stage if s.id == "concentrate"), stage[0]))
        can_miss = [s.id for s in steps if _out_of_spec(s)]
        spoil = can_miss[n % len(can_miss)] if bad and can_miss else None
        opened: list[dict[str, Any]] = []
        for step in steps:
            lab.tick(HOURS.get(step.id, 0.5))
            values = {p.name: in_spec_value(p) for p in step.parameters if p.required}
            if step.id == spoil:
                values.update(_out_of_spec(step))
            out = svc.batches.record(
                batch_id,
                step.id,
                values,
                self.doer,
                lots=_material_lots(step),
                equipment=_instruments(step),
            )
            opened += out.deviations
        return opened

    def _correct(self, batch_id: str) -> None:
        """Correct the first number recorded to its spec's edge: a value re-read from the
        instrument."""
        from cmprep.protocol.models import ParamType

        svc = self.lab.svc
        batch = svc.batches.batch(batch_id)
        for state in batch.steps.values():
            for param in state.step.parameters:
                rng = param.spec.range if param.required and param.spec is not None else None
                edge = rng.min if rng is not None and rng.min is not None else None
                if edge is not None and state.status == "done":
                    value = str(int(edge)) if param.type == ParamType.integer else f"{edge:g}"
                    self.lab.tick(0.3)
                    svc.batches.correct(
                        batch_id,
                        state.step.id,
                        {param.name: value},
                        self.doer,
                        "re-read from the instrument display",
                    )
                    return

    def _verify(self, batch_id: str) -> None:
        svc = self.lab.svc
        for state in svc.batches.batch(batch_id).steps.values():
            if state.needs_verification and not state.verified:
                self.lab.tick(0.2)
                svc.quality.verify_step(batch_id, state.step.id, self.checker, self.password)

    def _close(self, devs: list[dict[str, Any]], decision: str) -> None:
        svc, lab = self.lab.svc, self.lab
        for d in devs:
            lab.tick(3)
            svc.quality.investigate(
                d["deviation_id"], self.doer, "Cause found at the bench.", impact="None expected."
            )
            lab.tick(20)
            svc.quality.close_deviation(
                d["deviation_id"], "quinn", self.password, decision, f"QA decision: {decision}."
            )


def _out_of_spec(step: Any) -> dict[str, str]:
    """One required number of STEP just outside its spec (but within its hard limits,
    which would refuse it), or {} when none can be."""
    from cmprep.protocol.models import ParamType

    for p in step.parameters:
        rng = p.spec.range if p.required and p.spec is not None else None
        if rng is None:
            continue
        whole = p.type == ParamType.integer
        for edge, sign in ((rng.max, 1), (rng.min, -1)):
            if edge is None:
                continue
            value = edge + sign * (1 if whole else max(abs(edge) * 0.05, 0.1))
            lim = p.limits
            if lim is None or (
                (lim.min is None or value >= lim.min) and (lim.max is None or value <= lim.max)
            ):
                return {p.name: str(int(value)) if whole else f"{value:g}"}
    return {}


COUNTERS = {"DEV": "deviation", "CMP": "complaint"}  # id prefix -> the counter numbering it


def _renumbered(unit: Any, ident: str) -> str:
    """A new number for a copied deviation or complaint id, from its own counter."""
    prefix = ident.partition("-")[0]
    return f"{prefix}-{unit.next_number(COUNTERS[prefix]):04d}"


def plan(size: int, stages: dict[str, list[str]], rng: random.Random) -> list[tuple[str, str]]:
    """SIZE (protocol, kind) pairs in the documented mix, in a shuffled order."""
    pairs: list[tuple[str, str]] = []
    for protocol, p_share in PROTOCOLS.items():
        for kind, k_share in KINDS.items():
            count = round(size * p_share * k_share)
            if kind == "stage":
                pairs += [
                    (protocol, f"stage_{stages[protocol][i % len(stages[protocol])]}")
                    for i in range(count)
                ]
            else:
                pairs += [(protocol, kind)] * count
    while len(pairs) < size:
        pairs.append(("cm-standard-serum-free", "released"))
    rng.shuffle(pairs)
    return pairs[:size]


class Copier:
    """Writes a template's events again as a new batch, through the store's unit."""

    def __init__(self, store: Any, keys: dict[str, Any]) -> None:
        self.store = store
        self.keys = keys
        self.events: dict[str, list[Any]] = {}

    def _resealed(self, batch_id: str, new: Any, at: str, written: list[Any]) -> Any:
        """NEW with the signature it carries made again for this copy: the content hash
        recomputed from the copy's log so far, sealed by the signer's key."""
        from cmprep.domain import signatures
        from cmprep.events import GENESIS, Event, NewEvent

        sig = new.payload.get("signature")
        if not sig:
            return new
        draft = Event(
            batch_id,
            len(written) + 1,
            new.type,
            new.actor,
            at,
            new.performed_at,
            new.reason,
            new.payload,
            written[-1].hash if written else GENESIS,
            "",
        )
        content = signatures.expected_content([*written, draft], draft)
        payload = dict(new.payload)
        payload["signature"] = signatures.signature(
            sig["meaning"],
            sig["signer"],
            sig["full_name"],
            sig["role"],
            at,
            sig["subject"],
            str(content),
            self.keys[sig["signer"]],
        )
        return NewEvent(
            new.type, new.actor, payload, reason=new.reason, performed_at=new.performed_at
        )

    def copy(self, template: str, batch_id: str, start: datetime) -> int:
        from cmprep.domain.clock import from_iso, iso
        from cmprep.events import NewEvent
        from cmprep.service.context import project

        events = self.events.setdefault(template, self.store.events(template))
        shift = start - from_iso(events[0].recorded_at)
        shifted: dict[str, str] = {}

        def move(match: re.Match[str]) -> str:
            text = match.group(0)
            if text not in shifted:
                shifted[text] = iso(from_iso(text) + shift)
            return shifted[text]

        devs = sorted(
            {str(e.payload["deviation_id"]) for e in events if "deviation_id" in e.payload}
        )
        with self.store.writing(batch_id, 0) as unit:
            names = {d: _renumbered(unit, d) for d in devs}
            swap = re.compile("|".join(map(re.escape, [template, *names])) or "$^")

            def renamed(text: str) -> str:
                text = swap.sub(
                    lambda m: batch_id if m.group(0) == template else names[m.group(0)], text
                )
                return _ISO.sub(move, text)

            written = []
            for e in events:
                payload = json.loads(renamed(json.dumps(e.payload, ensure_ascii=False)))
                new = NewEvent(
                    e.type,
                    e.actor,
                    payload,
                    performed_at=renamed(e.performed_at) if e.performed_at else None,
                    reason=e.reason,
                )
                at = renamed(e.recorded_at)
                written += unit.append([self._resealed(batch_id, new, at, written)], at)
            project(unit, None, written)
        return len(written)


def generate(
    size: int, out: Path, seed: int = 20261129, say: Callable[[str], None] = print
) -> None:
    for leftover in (out, Path(f"{out}-wal"), Path(f"{out}-shm")):
        leftover.unlink(missing_ok=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    began = time.perf_counter()
    templates = Templates(out)
    n = 0
    for protocol in PROTOCOLS:
        n += 1
        templates.make(protocol, "released", n)
    stages = {p: templates.stages(p) for p in PROTOCOLS}
    for protocol in PROTOCOLS:
        for kind in [k for k in KINDS if k not in ("released", "stage")] + [
            f"stage_{s}" for s in stages[protocol][1:]
        ]:
            n += 1
            templates.make(protocol, kind, n)
    say(f"templates: {n} batches through the service in {time.perf_counter() - began:.0f} s")
    store = templates.lab.svc.store
    store.conn.execute("PRAGMA synchronous=OFF")  # a bench database: speed over durability
    copier = Copier(store, templates.signing_keys())
    rng = random.Random(seed)
    events = 0
    todo = plan(max(size - n, 0), {p: s[1:] for p, s in stages.items()}, rng)
    per_day: dict[str, int] = {}
    for i, (protocol, kind) in enumerate(todo, start=1):
        when = START + SPACING * i
        day = f"{when:%Y%m%d}"
        per_day[day] = per_day.get(day, 0) + 1
        batch_id = f"CM-{day}-{per_day[day]:03d}"
        events += copier.copy(templates.made[(protocol, kind)], batch_id, when)
        if i % 1000 == 0:
            say(f"  {i} of {len(todo)} copies, {time.perf_counter() - began:.0f} s")
    store.conn.execute("PRAGMA synchronous=FULL")
    store.close()
    say(
        f"{out}: {n + len(todo)} batches ({n} recorded by the service, {len(todo)} copies, "
        f"{events} events copied) in {time.perf_counter() - began:.0f} s"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="batches in the database")
    parser.add_argument("--out", type=Path, default=None, help="the database file to write")
    parser.add_argument("--seed", type=int, default=20261129)
    args = parser.parse_args()
    out = args.out or Path("bench-output") / f"bench-{args.size}.db"
    generate(args.size, out, args.seed)
    sys.stdout.flush()


if __name__ == "__main__":
    main()
