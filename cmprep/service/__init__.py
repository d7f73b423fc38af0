"""The one API every shell (CLI, web, scripts) calls: small services by concern over one
shared context.

    app = Services(open_store("cmprep.db"))
    app.sessions.login("alice", password)         # or app.gate.prove(...): nobody is believed
    app.batches.start("cm-standard-serum-free", "alice")
    app.batches.record("CM-20261129-001", "spin", {"rcf": "400 x g"}, "alice")
    app.quality.release("CM-20261129-001", "quinn", password)

Each service is a plain class; they share one ``Context`` (store, clock, protocols) and one
``Gate`` (who may do what). They own transactions; the shells only parse and print.
"""

from __future__ import annotations

from functools import cached_property
from typing import TYPE_CHECKING, Any

from cmprep.store.base import EventStore

if TYPE_CHECKING:
    from pathlib import Path

    from cmprep.domain.batch import Batch
    from cmprep.service.access import Gate
    from cmprep.service.audit import AuditService
    from cmprep.service.batches import BatchService
    from cmprep.service.consistency import ConsistencyService
    from cmprep.service.context import Clock, Context
    from cmprep.service.documents import DocumentService
    from cmprep.service.export import ExportService
    from cmprep.service.lineage import LineageService
    from cmprep.service.materials import MaterialsService
    from cmprep.service.people import PeopleService
    from cmprep.service.protocols import ProtocolService
    from cmprep.service.qc import QCService
    from cmprep.service.quality import QualityService
    from cmprep.service.queries import QueryService
    from cmprep.service.sessions import SessionService
    from cmprep.service.settings import SettingsService


class Services:
    """Every service of cmprep over one store and clock.

    Each service (and the modules it needs) is made the first time it is used: a command
    that only lists rows from the query tables does not load the protocol models, the
    signing code or the renderer, so it answers at the speed of its query.
    """

    def __init__(
        self, store: EventStore, clock: Clock | None = None, protocols_dir: Path | None = None
    ) -> None:
        self.store = store
        self._clock = clock
        self._protocols_dir = protocols_dir

    @cached_property
    def ctx(self) -> Context:
        from cmprep.domain.clock import utc_now
        from cmprep.service.context import Context

        return Context(self.store, self._clock or utc_now, self._protocols_dir)

    def batch(self, batch_id: str) -> Batch:
        """One batch as its events leave it, for a command that only shows it (NotFound if
        there is none): the write services, and the validation, signing and lineage code
        they load, are not made."""
        return self.ctx.batch(batch_id)

    @cached_property
    def gate(self) -> Gate:
        from cmprep.service.access import Gate

        return Gate(self.ctx)

    @cached_property
    def queries(self) -> QueryService:
        from cmprep.service.queries import QueryService

        return QueryService(self.store)

    @cached_property
    def protocols(self) -> ProtocolService:
        from cmprep.service.protocols import ProtocolService

        return ProtocolService(self.ctx, self.gate)

    @cached_property
    def people(self) -> PeopleService:
        from cmprep.service.people import PeopleService

        return PeopleService(self.ctx, self.gate)

    @cached_property
    def sessions(self) -> SessionService:
        from cmprep.service.sessions import SessionService

        return SessionService(self.ctx, self.gate)

    @cached_property
    def settings(self) -> SettingsService:
        from cmprep.service.settings import SettingsService

        return SettingsService(self.ctx, self.gate)

    @cached_property
    def materials(self) -> MaterialsService:
        from cmprep.service.materials import MaterialsService

        return MaterialsService(self.ctx, self.gate)

    @cached_property
    def lineage(self) -> LineageService:
        from cmprep.service.lineage import LineageService

        return LineageService(self.ctx, self.gate, self.materials)

    @cached_property
    def consistency(self) -> ConsistencyService:
        from cmprep.service.consistency import ConsistencyService

        return ConsistencyService(self.ctx)

    @cached_property
    def batches(self) -> BatchService:
        from cmprep.service.batches import BatchService

        return BatchService(self.ctx, self.gate, self.materials, self.consistency)

    @cached_property
    def quality(self) -> QualityService:
        from cmprep.service.quality import QualityService

        return QualityService(self.ctx, self.gate)

    @cached_property
    def qc(self) -> QCService:
        from cmprep.service.qc import QCService

        return QCService(self.ctx, self.batches, self.consistency)

    @cached_property
    def audit(self) -> AuditService:
        from cmprep.service.audit import AuditService

        return AuditService(self.ctx, self.gate)

    @cached_property
    def documents(self) -> DocumentService:
        from cmprep.service.documents import DocumentService

        return DocumentService(self.ctx, lambda: self.qc, lambda: self.audit)

    @cached_property
    def exports(self) -> ExportService:
        from cmprep.service.export import ExportService

        return ExportService(self.ctx, self.gate, self.documents, self.materials, self.lineage)

    def close(self) -> None:
        self.store.close()


def __getattr__(name: str) -> Any:
    """``Outcome`` is imported when asked for, with the write path it belongs to."""
    if name == "Outcome":
        from cmprep.service.context import Outcome

        return Outcome
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["Outcome", "Services"]
