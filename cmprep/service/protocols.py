"""The master protocols a batch can start from: the bundled library, or a YAML file."""

from __future__ import annotations

from cmprep.protocol.models import Protocol
from cmprep.service.context import Context


class ProtocolService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def list(self) -> list[Protocol]:
        return self.ctx.protocols()

    def get(self, ref: str) -> Protocol:
        """A bundled protocol by id, or a protocol file by path; NotFound names both."""
        return self.ctx.protocol(ref)
