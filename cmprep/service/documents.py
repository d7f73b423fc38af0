"""The documents people print and sign: the batch record, the SOP checklist and the
deviation audit report, in HTML, Markdown or PDF.

The service fetches what each document shows and builds its read model
(``cmprep.service.views``); rendering (``cmprep.render``) only formats that model. The
``*_view`` methods are there for callers that want the model itself (a web page, a test).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from cmprep.domain.clock import iso
from cmprep.service import views
from cmprep.service.audit import AuditService
from cmprep.service.context import Context
from cmprep.service.qc import QCService

if TYPE_CHECKING:
    from cmprep.render.models import AuditReportView, ChecklistView, RecordView


class DocumentService:
    def __init__(self, ctx: Context, qc: QCService, audit: AuditService) -> None:
        self.ctx = ctx
        self.qc = qc
        self.audit = audit

    def record_view(self, batch_id: str, generated_at: str | None = None) -> RecordView:
        """The batch record's model: the batch, its QC summary and the ledger head."""
        batch = self.ctx.batch(batch_id)
        mark = self.audit.ledger_mark()
        return views.record_view(
            batch,
            qc=self.qc.summary(batch),
            ledger_head=mark.hash,
            ledger_pos=mark.pos,
            generated_at=generated_at or iso(self.ctx.clock()),
        )

    def record(self, batch_id: str, fmt: str = "html") -> str | bytes:
        """The batch record a QA reviewer reads and signs (bytes for ``pdf``)."""
        from cmprep.render.documents import render_record

        return render_record(self.record_view(batch_id), fmt)

    def checklist_view(self, protocol_ref: str, generated_at: str | None = None) -> ChecklistView:
        return views.checklist_view(
            self.ctx.protocol(protocol_ref), generated_at=generated_at or iso(self.ctx.clock())
        )

    def checklist(self, protocol_ref: str, fmt: str = "html") -> str | bytes:
        """The printable SOP checklist of a protocol."""
        from cmprep.render.documents import render_checklist

        return render_checklist(self.checklist_view(protocol_ref), fmt)

    def audit_view(self, since: str | None = None) -> AuditReportView:
        """The report's model; the ledger mark is read after its rows, so the report shows
        the log as it stood at that position or before."""
        data = self.audit.report(since)
        mark = self.audit.ledger_mark()
        return views.audit_view(data, ledger_head=mark.hash, ledger_pos=mark.pos)

    def audit_report(self, since: str | None = None, fmt: str = "html") -> str | bytes:
        """The deviation audit report (Pareto charts, open deviations by age)."""
        from cmprep.render.documents import render_audit_report

        return render_audit_report(self.audit_view(since), fmt)
