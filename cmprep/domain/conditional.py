"""Conditional release: fresh CM used before its QC results, under QA's signature.

Why: fresh CM is used within hours of filtration, while sterility, endotoxin and mycoplasma
results take days. A step that hands the product over before the QC steps after it
(``use_before_qc: true``, the fresh-use arm) is recorded only once QA has signed a
conditional release naming the tests still pending. Each pending result then closes its
part of the release (in spec) or, the product being already in use, opens a critical
deviation (out of spec); the record shows the chain: signed, used, each result.

Without a conditional release the use step is refused: QC and release come before use.
Pure: read from a folded batch; the service writes.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from cmprep import events as ev
from cmprep.domain.batch import Batch
from cmprep.domain.validation import Finding, Verdict
from cmprep.protocol.models import Parameter, Severity, Step

MEANING = "conditionally released"  # the signature's meaning
SUBJECT = "conditional release"  # the signature's subject kind


@dataclass(frozen=True)
class PendingTest:
    """One test named by the conditional release, and where its result stands."""

    step: str
    parameter: str
    label: str
    status: str  # pending | in spec | out of spec
    value: str = ""  # as recorded ("" while pending)
    at: str = ""  # when it was recorded
    deviations: list[str] = field(default_factory=list)

    @property
    def ref(self) -> str:
        return f"{self.step}.{self.parameter}"


@dataclass(frozen=True)
class Chain:
    """A batch's conditional release and what followed it."""

    by: str
    at: str
    seq: int
    reason: str
    signature: dict[str, Any]
    use_step: str
    used_by: str | None  # who recorded the use step, once recorded
    used_at: str | None
    tests: list[PendingTest]

    @property
    def status(self) -> str:
        """``open`` (a result still pending), ``failed`` (a result out of spec: a critical
        deviation) or ``closed`` (every pending result in spec)."""
        if any(t.status == "out of spec" for t in self.tests):
            return "failed"
        if any(t.status == "pending" for t in self.tests):
            return "open"
        return "closed"

    def pending(self) -> list[PendingTest]:
        return [t for t in self.tests if t.status == "pending"]


def use_step(steps: list[Step]) -> Step | None:
    """The step that hands the product over before QC, if the protocol has one."""
    return next((s for s in steps if s.use_before_qc), None)


def release_tests(steps: list[Step], use: Step) -> list[tuple[Step, Parameter]]:
    """The release tests after USE (a parameter with a method and a spec): what a
    conditional release must name, since none of their results is known at use."""
    after = [
        s for s in steps[steps.index(use) + 1 :] if not (use.branch and s.branch == use.branch)
    ]
    return [(s, p) for s in after for p in s.parameters if p.method is not None and p.spec]


def chain(batch: Batch) -> Chain | None:
    """The batch's conditional release with the state of each pending test, or None."""
    signed = next((e for e in batch.events if e.type == ev.BATCH_CONDITIONALLY_RELEASED), None)
    if signed is None:
        return None
    use = use_step(batch.protocol.steps)
    entry = batch.steps.get(use.id) if use else None
    used = entry is not None and entry.status == "done"
    tests = []
    for item in signed.payload.get("pending", []):
        step_id, name = str(item["step"]), str(item["parameter"])
        done = batch.steps.get(step_id)
        step = batch.protocol.step(step_id)
        param = step.parameter(name) if step else None
        v = done.values.get(name) if done and done.status == "done" else None
        label = param.label if param else name
        if v is None:
            tests.append(PendingTest(step_id, name, label, "pending"))
            continue
        out = v.verdict == Verdict.out_of_spec.value
        tests.append(
            PendingTest(
                step_id,
                name,
                label,
                "out of spec" if out else "in spec",
                v.display,
                str(done.recorded_at or "") if done else "",
                list(v.deviation_ids),
            )
        )
    return Chain(
        by=signed.actor,
        at=signed.recorded_at,
        seq=signed.seq,
        reason=signed.reason or "",
        signature=dict(signed.payload.get("signature") or {}),
        use_step=use.id if use else "",
        used_by=entry.actor if used and entry else None,
        used_at=entry.performed_at if used and entry else None,
        tests=tests,
    )


def use_problem(batch: Batch, step: Step) -> str | None:
    """Why STEP cannot be recorded yet: it uses the product before QC and no conditional
    release is signed (None: it may be recorded)."""
    if not step.use_before_qc or chain(batch) is not None:
        return None
    later = list(dict.fromkeys(s.id for s, _ in release_tests(batch.protocol.steps, step)))
    return (
        f"{step.title}: the product would be used before its QC results ({', '.join(later)}) "
        f"and its release, and batch {batch.id} has no conditional release. QA signs one "
        "naming the pending tests first; otherwise choose another arm, so that QC and "
        "release come before use"
    )


def escalate(batch: Batch, step: Step, findings: list[Finding]) -> list[Finding]:
    """FINDINGS with each out-of-spec result of a pending test made critical: the product
    it judges is already in use under the conditional release."""
    found = chain(batch)
    if found is None or found.used_by is None:
        return findings
    pending = {t.parameter for t in found.tests if t.step == step.id}
    return [
        replace(
            f,
            severity=Severity.critical,
            message=(
                f"{f.message}; the product is already in use under the conditional release "
                f"signed by {found.by} at {found.at} (used at {found.use_step})"
            ),
        )
        if f.parameter in pending and f.verdict == Verdict.out_of_spec
        else f
        for f in findings
    ]


def describe(found: Chain) -> list[str]:
    """The chain in words, as the record and the status print it, oldest first."""
    names = ", ".join(t.label for t in found.tests)
    who = found.signature.get("full_name") or found.by
    lines = [f"conditionally released by {who} ({found.by}) at {found.at}; pending: {names}"]
    if found.reason:
        lines[0] += f" ({found.reason})"
    if found.used_by:
        lines.append(f"used at {found.use_step} by {found.used_by} at {found.used_at}")
    else:
        lines.append(f"not used yet ({found.use_step} not recorded)")
    for t in found.tests:
        if t.status == "pending":
            lines.append(f"{t.label}: pending")
        elif t.status == "in spec":
            lines.append(f"{t.label} = {t.value} in spec at {t.at}: closed")
        else:
            devs = ", ".join(t.deviations) or "a deviation"
            lines.append(f"{t.label} = {t.value} OUT OF SPEC at {t.at}: critical {devs}")
    lines.append(
        {
            "open": "conditional release open: results pending",
            "closed": "conditional release closed: every pending result in spec",
            "failed": "conditional release failed: a result out of spec opened a critical "
            "deviation",
        }[found.status]
    )
    return lines


__all__ = [
    "MEANING",
    "SUBJECT",
    "Chain",
    "PendingTest",
    "chain",
    "describe",
    "escalate",
    "release_tests",
    "use_problem",
    "use_step",
]
