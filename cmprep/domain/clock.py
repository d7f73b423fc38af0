"""Time as a batch record holds it: aware UTC, printed ISO 8601 to the second with ``Z``.

One place for reading and writing times, so that every event, every filter and every
record compares the same text. The system time is only ever read through the service's
injected clock (``utc_now`` is its default), never from what a person typed.
"""

from __future__ import annotations

import re
from datetime import date, datetime, timezone


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime) -> str:
    """``2026-11-29T08:30:00Z``: the text stored and compared everywhere."""
    return moment.astimezone(timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def from_iso(text: str) -> datetime:
    """The aware datetime of a time this program wrote (``...Z``)."""
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def parse_time(text: str) -> datetime:
    """An ISO date-time typed by a person; naive times are refused because a batch record
    needs its zone."""
    raw = text.strip()
    if raw.endswith(("Z", "z")):
        raw = raw[:-1] + "+00:00"
    try:
        moment = datetime.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date-time; expected ISO 8601 with a zone, "
            "e.g. 2026-11-29T09:30+01:00 or 2026-11-29T08:30Z"
        ) from None
    if moment.tzinfo is None:
        raise ValueError(f"{text!r} has no time zone; add one, e.g. {raw}Z (UTC) or {raw}+01:00")
    try:
        return moment.astimezone(timezone.utc)
    except OverflowError:
        raise ValueError(f"{text!r} is outside the dates a batch record can hold") from None


def parse_day_or_time(text: str, zone: str = "UTC") -> str:
    """A filter bound typed as a date (``2026-11-01``: its midnight in ZONE, the site's
    time zone, as the people who type it live by it) or an ISO time, as the stored UTC
    text it is compared against. ValueError names what was expected."""
    raw = text.strip()
    if re.match(r"\d{4}-\d{2}-\d{2}[Tt ]", raw):  # a date with a time of day
        return iso(parse_time(raw))
    try:
        day = date.fromisoformat(raw)
    except ValueError:
        raise ValueError(
            f"{text!r} is not a date; expected YYYY-MM-DD (e.g. 2026-10-01), or an ISO time "
            "with its zone (e.g. 2026-10-01T08:00Z)"
        ) from None
    if zone == "UTC":
        return iso(datetime(day.year, day.month, day.day, tzinfo=timezone.utc))
    from zoneinfo import ZoneInfo

    midnight = datetime(day.year, day.month, day.day, tzinfo=ZoneInfo(zone))
    return iso(midnight.astimezone(timezone.utc))


def zone_problem(name: str) -> str | None:
    """Why NAME is not a time zone this computer knows (an IANA name such as
    ``Europe/Zurich``, or ``UTC``), or None."""
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        return f"{name!r} is not a time zone; give an IANA name such as Europe/Zurich, or UTC"
    return None


def local(text: str | None, zone: str = "UTC") -> str:
    """A stored time as a person reads it: in the site's time zone, with its offset
    (``2026-11-29 09:30:00 +01:00``). Only what is shown changes: the data and the trail
    keep UTC, so every record compares the same text. Text that is not a time is given
    back as it is; an unknown zone shows UTC."""
    if not text:
        return ""
    try:
        moment = from_iso(text)
    except ValueError:
        return text
    if moment.tzinfo is None:
        return text
    if not zone or zone == "UTC":  # the default: no time zone database to load
        there = moment.astimezone(timezone.utc)
    else:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            there = moment.astimezone(ZoneInfo(zone))
        except (ZoneInfoNotFoundError, ValueError):
            there = moment.astimezone(timezone.utc)
    offset = there.strftime("%z")  # +0100
    return there.strftime("%Y-%m-%d %H:%M:%S ") + offset[:3] + ":" + offset[3:]
