"""The bench board's rows: each batch under way, its step due and where that step's time
window stands now, in words and in a colour.

Nothing is decided here: the window (after which step, how long) is the protocol's, and
whether a time falls inside it is the protocol model's ``Range.contains``; the board only
says it relative to the clock on the wall ("due in 5 h", "window open", "overdue by 2 h").
The colour always comes with the words, so it is never the only signal.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from cmprep.domain.batch import Batch
from cmprep.domain.clock import from_iso
from cmprep.protocol import units

# colour of a timing, as a CSS class the stylesheet colours (and prints as words)
WAITING, OPEN, CLOSING, OVERDUE, HELD, READY = (
    "waiting",
    "open",
    "closing",
    "overdue",
    "held",
    "ready",
)
CLOSING_SOON = timedelta(hours=2)  # a window that closes this soon is shown amber


@dataclass(frozen=True)
class Timing:
    """Where a step due stands in time: words and a colour class."""

    words: str  # "due in 5 h", "window open, closes in 20 h", "overdue by 2 h"
    tone: str  # WAITING | OPEN | CLOSING | OVERDUE | HELD | READY
    detail: str = ""  # "conditioning started 2026-11-02 14:02 UTC; collect between +24 h and +72 h"


@dataclass(frozen=True)
class DueLine:
    """A step due on the bench board, with its window in words."""

    step: str
    title: str
    timing: Timing


@dataclass(frozen=True)
class BoardRow:
    """One batch under way on the bench board."""

    batch: str
    protocol: str
    state: str
    started_at: str
    started_by: str
    open_deviations: int
    due: list[DueLine] = field(default_factory=list)
    missing_verifications: list[str] = field(default_factory=list)
    held: bool = False
    stage: str = ""  # where the batch stands, looking through a hold


def span(delta: timedelta) -> str:
    """A duration as a person says it at the bench: "45 min", "5 h", "42 h", "4 d 3 h"."""
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 60:
        return f"{minutes} min"
    hours, rest = divmod(minutes, 60)
    if hours < 72:  # windows are set in hours: "closes in 42 h" reads as the SOP does
        return f"{hours} h" if rest < 5 or hours >= 10 else f"{hours} h {rest} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if hours else f"{days} d"


def clock_text(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def timing(batch: Batch, step_id: str, now: datetime) -> Timing:
    """Where step STEP_ID of BATCH stands now against its window, if it has one."""
    if batch.on_hold:
        return Timing("on hold", HELD)
    step = batch.protocol.step(step_id)
    window = step.window if step else None
    if window is None:
        return Timing("due now", READY)
    started = batch.steps[window.after].performed_at
    if not started:
        return Timing("due now", READY)
    start = from_iso(started)
    low = window.range.min
    high = window.range.max
    bounds = (
        " and ".join(f"+{b:g} {window.unit}" for b in (low, high) if b is not None) or "any time"
    )
    word = "between" if low is not None and high is not None else "at"
    detail = f"{window.after} done {clock_text(start)}; {step_id} {word} {bounds}"
    elapsed = units.convert((now - start).total_seconds(), "s", window.unit)
    if window.range.contains(elapsed):
        if high is None:
            return Timing("window open", OPEN, detail)
        left = start + _delta(high, window.unit) - now
        tone = CLOSING if left <= CLOSING_SOON else OPEN
        return Timing(f"window open, closes in {span(left)}", tone, detail)
    if low is not None and elapsed < low:
        return Timing(f"due in {span(start + _delta(low, window.unit) - now)}", WAITING, detail)
    assert high is not None  # outside the range and not before it: after its end
    return Timing(f"overdue by {span(now - start - _delta(high, window.unit))}", OVERDUE, detail)


def _delta(amount: float, unit: str) -> timedelta:
    return timedelta(seconds=units.convert(amount, unit, "s"))


def row(batch: Batch, now: datetime) -> BoardRow:
    """One batch under way as the board shows it."""
    due = [] if batch.is_final else batch.due()
    return BoardRow(
        batch=batch.id,
        protocol=f"{batch.protocol.id} v{batch.protocol.version}",
        state=batch.state,
        started_at=batch.started_at,
        started_by=batch.started_by,
        open_deviations=len(batch.open_deviations()),
        due=[DueLine(s.id, s.title, timing(batch, s.id, now)) for s in due],
        missing_verifications=[e.step.id for e in batch.missing_verifications()],
        held=batch.on_hold,
        stage=batch.active_state,
    )


def order(rows: Iterable[BoardRow]) -> list[BoardRow]:
    """Most urgent first: overdue, closing, open, due now, waiting, held."""
    rank = {OVERDUE: 0, CLOSING: 1, OPEN: 2, READY: 3, WAITING: 4, HELD: 5}

    def key(r: BoardRow) -> tuple[int, str]:
        tones = [d.timing.tone for d in r.due] or [HELD if r.held else READY]
        return min(rank.get(t, 9) for t in tones), r.started_at

    return sorted(rows, key=key)
