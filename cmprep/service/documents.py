"""The documents people print and sign: the batch record, the SOP checklist and the
deviation audit report, in HTML, Markdown or PDF.

The service fetches what each document shows and builds its read model
(``cmprep.service.views``); rendering (``cmprep.render``) only formats that model. The
``*_view`` methods are there for callers that want the model itself (a web page, a test).

Each document imports what it needs when it is asked for: the audit report reads only the
query tables, so it must not pay for the protocol models and the batch fold that the
record and the checklist need (about 100 ms of every start, see bench/bench_queries.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from cmprep.domain.clock import iso
from cmprep.service import report

if TYPE_CHECKING:
    from cmprep.render.models import AuditReportView, ChecklistView, RecordView
    from cmprep.service.audit import AuditService
    from cmprep.service.context import Context
    from cmprep.service.qc import QCService


class DocumentService:
    """QC and AUDIT are handed in as makers, called when a document needs them: the audit
    report needs neither (it reads the query tables through ``cmprep.service.report``)."""

    def __init__(
        self, ctx: Context, qc: Callable[[], QCService], audit: Callable[[], AuditService]
    ) -> None:
        self.ctx = ctx
        self._qc = qc
        self._audit = audit

    @property
    def qc(self) -> QCService:
        return self._qc()

    @property
    def audit(self) -> AuditService:
        return self._audit()

    def record_view(self, batch_id: str, generated_at: str | None = None) -> RecordView:
        """The batch record's model: the batch, its QC summary and the ledger head."""
        from cmprep.service import views

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
        from cmprep.service import views

        return views.checklist_view(
            self.ctx.protocol(protocol_ref), generated_at=generated_at or iso(self.ctx.clock())
        )

    def checklist(self, protocol_ref: str, fmt: str = "html") -> str | bytes:
        """The printable SOP checklist of a protocol."""
        from cmprep.render.documents import render_checklist

        return render_checklist(self.checklist_view(protocol_ref), fmt)

    def audit_view(self, since: str | None = None, until: str | None = None) -> AuditReportView:
        """The report's model; the ledger mark is read after its rows, so the report shows
        the log as it stood at that position or before."""
        from cmprep.service.report_view import audit_view

        data = report.report(self.ctx, since, until)
        mark = report.ledger_mark(self.ctx)
        return audit_view(data, ledger_head=mark.hash, ledger_pos=mark.pos)

    def audit_report(
        self, since: str | None = None, fmt: str = "html", until: str | None = None
    ) -> str | bytes:
        """The deviation audit report (Pareto charts, open deviations by age)."""
        from cmprep.render.documents import render_audit_report

        return render_audit_report(self.audit_view(since, until), fmt)

    def audit_report_parts(
        self, since: str | None = None, fmt: str = "html", until: str | None = None
    ) -> Iterator[str]:
        """The report in HTML or Markdown, in parts written as its rows are read (a PDF is
        laid out whole: ``audit_report``). The parts must be taken while this store is open."""
        from cmprep.render.documents import render_audit_report_parts

        return render_audit_report_parts(self.audit_view(since, until), fmt)
