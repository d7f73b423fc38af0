"""The auditor's questions: every event in words, proof that nothing was changed, where
deviations cluster, and the query tables rebuilt from the log after a repair."""

from __future__ import annotations

from typing import Any

from cmprep import events as ev
from cmprep.domain.audit import Break, describe, report_data, verify
from cmprep.domain.batch import fold
from cmprep.domain.clock import parse_day_or_time
from cmprep.errors import NotFound, Refused
from cmprep.service.context import Context
from cmprep.store.query import BatchFilter, DeviationFilter


class AuditService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def trail(self, stream: str) -> list[dict[str, Any]]:
        """Every event of a batch, or of a system stream (``@users``, ``@security`` ...)."""
        if stream.startswith("@"):
            return [describe(e) for e in self.ctx.store.events(stream)]
        return [describe(e) for e in self.ctx.batch(stream).events]

    def verify(self, batch_id: str | None = None) -> tuple[int, list[Break]]:
        """(events checked, breaks): recompute every chain, head, signature and the ledger."""
        store = self.ctx.store
        streams = {sid: store.events(sid) for sid in store.stream_ids()}
        heads = store.recorded_heads()
        if batch_id and batch_id not in streams and batch_id not in heads:
            raise NotFound(f"no batch {batch_id!r}")
        breaks = verify(streams, heads, store.ledger(), batch_id)
        checked = sum(len(v) for k, v in streams.items() if not batch_id or k == batch_id)
        return checked, breaks

    def ledger_head(self) -> str:
        """The hash of the newest ledger entry: print it, keep it outside, compare it later."""
        entries = self.ctx.store.ledger()
        return entries[-1].hash if entries else ev.GENESIS

    def report(self, since: str | None = None) -> dict[str, Any]:
        """Deviations across batches by step, protocol, severity and person."""
        if since:
            try:
                since = parse_day_or_time(since)
            except ValueError as err:
                raise Refused(f"the start of the period: {err}") from None
        store = self.ctx.store
        return report_data(
            store.deviation_rows(DeviationFilter()),
            store.batch_rows(BatchFilter()),
            self.ctx.clock(),
            since,
        )

    def rebuild_projections(self) -> int:
        """Recompute the query tables from the event log (after an upgrade or a repair)."""
        batches: list[dict[str, Any]] = []
        deviations: list[dict[str, Any]] = []
        for batch_id in self.ctx.store.batch_ids():
            events = self.ctx.store.events(batch_id)
            if not events or events[0].type != ev.BATCH_STARTED:
                continue
            b = fold(events)
            batches.append(b.projection())
            deviations.extend(d.row() for d in b.deviations.values())
        self.ctx.store.replace_projections(batches, deviations)
        return len(batches)
