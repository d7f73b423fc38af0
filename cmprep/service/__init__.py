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

from pathlib import Path

from cmprep.domain.clock import utc_now
from cmprep.service.access import Gate
from cmprep.service.audit import AuditService
from cmprep.service.batches import BatchService
from cmprep.service.consistency import ConsistencyService
from cmprep.service.context import Clock, Context, Outcome
from cmprep.service.documents import DocumentService
from cmprep.service.materials import MaterialsService
from cmprep.service.people import PeopleService
from cmprep.service.protocols import ProtocolService
from cmprep.service.qc import QCService
from cmprep.service.quality import QualityService
from cmprep.service.sessions import SessionService
from cmprep.service.settings import SettingsService
from cmprep.store.base import EventStore


class Services:
    """Every service of cmprep over one store and clock."""

    def __init__(
        self, store: EventStore, clock: Clock = utc_now, protocols_dir: Path | None = None
    ) -> None:
        self.ctx = Context(store, clock, protocols_dir)
        self.gate = Gate(self.ctx)
        self.protocols = ProtocolService(self.ctx, self.gate)
        self.people = PeopleService(self.ctx, self.gate)
        self.sessions = SessionService(self.ctx, self.gate)
        self.settings = SettingsService(self.ctx, self.gate)
        self.materials = MaterialsService(self.ctx, self.gate)
        self.consistency = ConsistencyService(self.ctx)
        self.batches = BatchService(self.ctx, self.gate, self.materials, self.consistency)
        self.quality = QualityService(self.ctx, self.gate)
        self.qc = QCService(self.ctx, self.batches, self.consistency)
        self.audit = AuditService(self.ctx, self.gate)
        self.documents = DocumentService(self.ctx, self.qc, self.audit)

    @property
    def store(self) -> EventStore:
        return self.ctx.store

    def close(self) -> None:
        self.ctx.store.close()


__all__ = ["Outcome", "Services"]
