"""Site settings: read by everyone, changed only by an admin who gives their password now.

Each change is a signed event in "@settings", so who shortened the session timeout or moved
the checkpoint folder, and when, is part of the verified record.
"""

from __future__ import annotations

from cmprep.domain.settings import (
    SETTING_CHANGED,
    SETTINGS_STREAM,
    SiteSettings,
    setting_problem,
)
from cmprep.domain.signatures import payload_content
from cmprep.errors import Refused
from cmprep.events import NewEvent
from cmprep.service.access import Gate, reason_text
from cmprep.service.context import Context


class SettingsService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    def show(self) -> SiteSettings:
        return self.ctx.settings()

    def change(
        self, name: str, value: str, actor: str, password: str | None, reason: str
    ) -> SiteSettings:
        if problem := setting_problem(name, value):
            raise Refused(problem)
        reason = reason_text(reason)
        admin = self.gate.authorize(actor, password, "change settings")
        now = self.ctx.clock()
        payload: dict[str, object] = {"name": name, "value": value.strip()}
        payload["signature"] = self.gate.signature(
            "authorized", admin, now, {"kind": "setting", "id": name}, payload_content(payload)
        )
        event = NewEvent(SETTING_CHANGED, admin.name, payload, reason=reason)
        self.ctx.append_system(SETTINGS_STREAM, lambda _events: [event], now)
        return self.ctx.settings()
