"""Batch-to-batch consistency: an analyte's history across the lab's released batches,
and the Westgard findings a new value raises against it.

Used when a QC value is recorded (a broken rejection rule opens a deviation) and by the
QC views (trend, record summary).
"""

from __future__ import annotations

from cmprep.domain import westgard
from cmprep.domain.batch import Batch, fold
from cmprep.domain.numbers import usable_number
from cmprep.domain.validation import Finding, Verdict
from cmprep.protocol.models import Step
from cmprep.service.context import Context
from cmprep.store.query import BatchFilter

MIN_HISTORY = 5  # released batches needed before Westgard rules are applied (site choice)


class ConsistencyService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def analyte_history(
        self, protocol_id: str, name: str, *, released_only: bool = True, exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """(batch id, value) of an analyte across batches of a protocol, oldest first."""
        out = []
        where = BatchFilter(protocol_id=protocol_id, state="released" if released_only else None)
        for row in self.ctx.store.batch_rows(where):
            if row["batch_id"] == exclude:
                continue
            b = fold(self.ctx.store.events(row["batch_id"]))
            for entry in b.steps.values():
                v = entry.values.get(name)
                if v is not None and (number := usable_number(v.value)) is not None:
                    out.append((b.id, number))
        return out

    def westgard_findings(self, batch: Batch, step: Step, findings: list[Finding]) -> list[Finding]:
        """A deviation finding for each Westgard rejection rule a new value breaks."""
        extra = []
        for f in findings:
            param = step.parameter(f.parameter)
            if param is None or not param.trend or not isinstance(f.value, float):
                continue
            history = [
                v for _, v in self.analyte_history(batch.protocol.id, param.name, exclude=batch.id)
            ]
            if len(history) < MIN_HISTORY:
                continue
            try:
                mean, sd = westgard.baseline(history)
            except ValueError:
                continue
            for v in westgard.new_point_violations(
                history, f.value, mean, sd, unit=param.unit or ""
            ):
                extra.append(
                    Finding(
                        f"{param.name}:westgard:{v.rule}",
                        Verdict.out_of_spec,
                        f"{param.label} {f.display}: Westgard {v.rule} "
                        f"against {len(history)} released batches "
                        f"(mean {mean:.4g}, SD {sd:.3g} {param.unit or ''})".rstrip(),
                        value=f.value,
                        display=f.display,
                        spec=f"Westgard {v.rule}",
                        severity=batch.protocol.trend_severity,
                    )
                )
        return extra
