"""Site settings: the few choices a lab makes once for everyone (how long a session lives,
how many wrong passwords lock an account, where ledger checkpoints go).

They are events in the "@settings" stream, changed only by an admin who gives their
password, so a shorter timeout or a moved checkpoint folder is as attributable as any entry.
The defaults are site choices of this project, not figures from a regulation: 21 CFR Part 11
asks for controls, not for these numbers.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from cmprep.domain.clock import zone_problem
from cmprep.events import Event

SETTINGS_STREAM = "@settings"
SETTING_CHANGED = "setting_changed"


@dataclass(frozen=True)
class SiteSettings:
    """The site's settings as the @settings stream leaves them; each starts at its documented
    default."""

    idle_minutes: int = 30  # a session unused this long ends
    session_hours: int = 12  # a session ends this long after login, used or not
    lockout_after: int = 5  # wrong passwords in a row that lock an account
    web_idle_minutes: int = 15  # the bench web page signs out after this long untouched
    anchor_dir: str = ""  # where `audit anchor` writes checkpoints (a QA share); "" = none
    timezone: str = "UTC"  # times are shown in this zone (IANA name); stored in UTC always
    # released batches a Westgard baseline (protocol x route x cell source) holds before its
    # rejection rules open deviations; before that, points are charted and 1-2s warned only
    westgard_baseline: int = 20


# what each setting accepts, said in the refusal when a value is not usable
LIMITS: dict[str, tuple[int, int]] = {
    "idle_minutes": (1, 24 * 60),
    "session_hours": (1, 7 * 24),
    "lockout_after": (1, 100),
    "web_idle_minutes": (1, 24 * 60),
    "westgard_baseline": (2, 30),  # up to the 30 released batches a baseline reads
}


def names() -> list[str]:
    return [f.name for f in fields(SiteSettings)]


def setting_problem(name: str, value: str) -> str | None:
    """Why VALUE cannot be given to setting NAME, or None."""
    if name not in names():
        return f"no setting {name!r}; settings are: {', '.join(names())}"
    if name in LIMITS:
        low, high = LIMITS[name]
        if not value.strip().isdigit() or not low <= int(value) <= high:
            return f"{name} must be a whole number from {low} to {high}, not {value!r}"
    elif any(ord(c) < 32 for c in value):
        return f"{name} cannot contain control characters"
    elif name == "timezone":
        return zone_problem(value)
    return None


def fold_settings(events: list[Event]) -> SiteSettings:
    settings = SiteSettings()
    for e in events:
        if e.type == SETTING_CHANGED:
            name, value = e.payload["name"], e.payload["value"]
            changed: dict[str, Any] = {name: int(value) if name in LIMITS else value}
            settings = replace(settings, **changed)
    return settings
