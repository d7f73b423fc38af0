"""Batch-to-batch consistency: an analyte's history across the lab's released batches,
and the Westgard findings a new value raises against it.

Used when a QC value is recorded (a broken rejection rule opens a deviation) and by the
QC views (the record's summary). The history is read from the QC points projection (one
indexed query, the newest ``HISTORY_POINTS`` released batches), never by folding other
batches: recording a QC step costs the same with 15 or 1,500 released batches.
"""

from __future__ import annotations

from cmprep.domain import westgard
from cmprep.domain.batch import Batch
from cmprep.domain.qc_points import HISTORY_POINTS
from cmprep.domain.validation import Finding, Verdict
from cmprep.protocol.models import Step
from cmprep.service.context import Context
from cmprep.store.query import QCPointFilter

MIN_HISTORY = 5  # released batches needed before Westgard rules are applied (site choice)


class ConsistencyService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def analyte_history(
        self,
        protocol_id: str,
        name: str,
        *,
        released_only: bool = True,
        exclude: str | None = None,
        last: int | None = None,
    ) -> list[tuple[str, float]]:
        """(batch id, value) of an analyte across batches of a protocol, oldest first: the
        newest LAST of them (``HISTORY_POINTS``), released ones only unless told otherwise."""
        where = QCPointFilter(
            protocol_id=protocol_id,
            name=name,
            state="released" if released_only else None,
            exclude_batch=exclude,
            last=last or HISTORY_POINTS,
        )
        return [(str(p["batch_id"]), float(p["value"])) for p in self.ctx.store.qc_points(where)]

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
