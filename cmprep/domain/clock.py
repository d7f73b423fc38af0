"""Time as a batch record holds it: aware UTC, printed ISO 8601 to the second with ``Z``.

One place for reading and writing times, so that every event, every filter and every
record compares the same text. The system time is only ever read through the service's
injected clock (``utc_now`` is its default), never from what a person typed.
"""

from __future__ import annotations

from datetime import datetime, timezone


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


def parse_day_or_time(text: str) -> str:
    """A filter bound typed as a date (``2026-11-01``, midnight UTC) or an ISO time, as the
    stored text it is compared against. ValueError names what was expected."""
    return iso(parse_time(text if "T" in text else text + "T00:00Z"))
