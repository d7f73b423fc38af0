"""The documents people print and sign: the batch record, the SOP checklist and the
deviation audit report, in HTML, Markdown or PDF.

The service gathers what each document shows; rendering (cmprep.render) only formats it.
"""

from __future__ import annotations

from cmprep.service.audit import AuditService
from cmprep.service.context import Context
from cmprep.service.qc import QCService


class DocumentService:
    def __init__(self, ctx: Context, qc: QCService, audit: AuditService) -> None:
        self.ctx = ctx
        self.qc = qc
        self.audit = audit

    def record(self, batch_id: str, fmt: str = "html") -> str | bytes:
        """The batch record a QA reviewer reads and signs (bytes for ``pdf``)."""
        from cmprep.render import render_record

        batch = self.ctx.batch(batch_id)
        return render_record(
            batch, fmt, qc=self.qc.summary(batch), ledger_head=self.audit.ledger_head()
        )

    def checklist(self, protocol_ref: str, fmt: str = "html") -> str | bytes:
        """The printable SOP checklist of a protocol."""
        from cmprep.render import render_checklist

        return render_checklist(self.ctx.protocol(protocol_ref), fmt)

    def audit_report(self, since: str | None = None, fmt: str = "html") -> str | bytes:
        """The deviation audit report (Pareto charts, open deviations by age)."""
        from cmprep.render import render_audit_report

        return render_audit_report(self.audit.report(since), fmt)
