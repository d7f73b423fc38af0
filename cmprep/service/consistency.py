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
from cmprep.domain.qc_points import HISTORY_POINTS, cell_source
from cmprep.domain.routes import route_of
from cmprep.domain.validation import Finding, Verdict
from cmprep.protocol.models import Step
from cmprep.service.context import Context
from cmprep.store.query import QCPointFilter

MIN_HISTORY = 2  # released batches needed to estimate an SD: a chart and 1-2s warnings
# The rejection rules wait for the site's ``westgard_baseline`` released batches (20 unless
# set): with 5, an in-control batch breaks one falsely about 5 % of the time per analyte.


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
        route: str | None = None,
        source: str | None = None,
    ) -> list[tuple[str, float]]:
        """(batch id, value) of an analyte across batches of a protocol (of one downstream
        route and cell source when given: a baseline's stratum), oldest first: the newest
        LAST of them (``HISTORY_POINTS``), released ones only unless told otherwise."""
        where = QCPointFilter(
            protocol_id=protocol_id,
            name=name,
            route=route,
            source=source,
            state="released" if released_only else None,
            exclude_batch=exclude,
            last=last or HISTORY_POINTS,
        )
        return [(str(p["batch_id"]), float(p["value"])) for p in self.ctx.store.qc_points(where)]

    def baseline_history(self, batch: Batch, name: str) -> list[float]:
        """The released values of analyte NAME that BATCH is judged against: the newest of
        its protocol x downstream route x cell source, itself excluded (one query)."""
        return [
            v
            for _, v in self.analyte_history(
                batch.protocol.id,
                name,
                exclude=batch.id,
                route=route_of(batch),
                source=cell_source(batch),
            )
        ]

    def westgard_findings(self, batch: Batch, step: Step, findings: list[Finding]) -> list[Finding]:
        """A deviation finding, raised by the rule, for each Westgard rejection rule a new
        value breaks once the baseline holds the site's minimum of released batches; before
        that, and for a point past 2 SD, a warning that opens nothing."""
        extra: list[Finding] = []
        trended = [
            (f, p, f.value)
            for f in findings
            if (p := step.parameter(f.parameter)) is not None
            and p.trend
            and isinstance(f.value, float)
        ]
        if not trended:  # most steps: no site setting to read, nothing to query
            return extra
        minimum = self.ctx.settings().westgard_baseline
        for f, param, value in trended:
            assert isinstance(value, float)  # as filtered above; for the type checker
            history = self.baseline_history(batch, param.name)
            if len(history) < MIN_HISTORY:
                continue
            try:
                mean, sd = westgard.baseline(history)
            except ValueError:
                continue
            unit = param.unit or ""
            against = (
                f"against {len(history)} released batches "
                f"(mean {mean:.4g}, SD {sd:.3g} {unit})".rstrip()
            )
            route = route_of(batch) or "none"
            stratum = f"{batch.protocol.id}, route {route}, {cell_source(batch)}"
            rejections = (
                westgard.new_point_violations(history, value, mean, sd, unit=unit)
                if len(history) >= minimum
                else []
            )
            for v in rejections:
                extra.append(
                    Finding(
                        f"{param.name}:westgard:{v.rule}",
                        Verdict.out_of_spec,
                        f"{param.label} {f.display}: Westgard {v.rule} {against}, {stratum}",
                        value=f.value,
                        display=f.display,
                        spec=f"Westgard {v.rule}",
                        severity=batch.protocol.trend_severity,
                        raised_by=westgard.opener(v.rule),
                    )
                )
            warned = westgard.evaluate([*history, value], mean, sd, unit=unit)
            if not rejections and any(v.rule == "1-2s" and v.index == len(history) for v in warned):
                waits = (
                    f"; rejection rules apply from {minimum} released batches"
                    if len(history) < minimum
                    else ""
                )
                extra.append(
                    Finding(
                        f"{param.name}:westgard:1-2s",
                        Verdict.alert,
                        f"{param.label} {f.display}: Westgard 1-2s warning {against}, "
                        f"{stratum}{waits}",
                        value=f.value,
                        display=f.display,
                        spec="Westgard 1-2s",
                    )
                )
        return extra
