"""Electronic signatures: who signed, their printed name then, when, what it means, and
a hash of exactly the content signed.

The content hash is recomputed from the log whenever a signature is checked, so a
signature cannot be moved to other content, and one whose content later changed (a
correction after a verification) no longer counts.
"""

from __future__ import annotations

import hashlib
from typing import Any

from cmprep import events as ev
from cmprep.events import Event, canonical_json

MEANINGS = ("performed", "verified", "reviewed", "approved", "released", "rejected")

# which events make up the content of each kind of subject
_STEP_EVENTS = (ev.STEP_RECORDED, ev.STEP_SKIPPED, ev.VALUE_CORRECTED)
_DEVIATION_EVENTS = (ev.DEVIATION_OPENED, ev.DEVIATION_INVESTIGATED)


def _digest(items: list[Any]) -> str:
    return hashlib.sha256(canonical_json(items).encode()).hexdigest()


def performed_content(
    step_id: str, values: dict[str, Any], performed_at: str | None, actor: str
) -> str:
    """What a 'performed' signature inside a step_recorded event covers."""
    return _digest([step_id, values, performed_at, actor])


def step_content(events: list[Event], step_id: str, before_seq: int | None = None) -> str:
    """The hashes of every event that wrote this step's values, up to a point in the log."""
    return _digest(
        [
            e.hash
            for e in events
            if e.type in _STEP_EVENTS
            and e.payload.get("step") == step_id
            and (before_seq is None or e.seq < before_seq)
        ]
    )


def deviation_content(events: list[Event], deviation_id: str, before_seq: int | None = None) -> str:
    return _digest(
        [
            e.hash
            for e in events
            if e.type in _DEVIATION_EVENTS
            and e.payload.get("deviation_id") == deviation_id
            and (before_seq is None or e.seq < before_seq)
        ]
    )


def signature(
    meaning: str,
    signer: str,
    full_name: str,
    role: str,
    signed_at: str,
    subject: dict[str, str],
    content_hash: str,
) -> dict[str, Any]:
    assert meaning in MEANINGS
    return {
        "meaning": meaning,
        "signer": signer,
        "full_name": full_name,
        "role": role,
        "signed_at": signed_at,
        "subject": subject,
        "content_hash": content_hash,
    }


def expected_content(events: list[Event], event: Event) -> str | None:
    """The content hash a signature carried by `event` must have, recomputed from the log."""
    sig = event.payload.get("signature")
    if not sig:
        return None
    subject = sig["subject"]
    if subject["kind"] == "step" and sig["meaning"] == "performed":
        p = event.payload
        return performed_content(p["step"], p.get("values", {}), event.performed_at, event.actor)
    if subject["kind"] == "step":
        return step_content(events, subject["id"], event.seq)
    if subject["kind"] == "deviation":
        return deviation_content(events, subject["id"], event.seq)
    if subject["kind"] == "batch":
        return event.prev_hash
    return None


def check_signatures(events: list[Event]) -> list[tuple[int, str]]:
    """(seq, problem) for every signature whose content hash does not match its content."""
    problems = []
    for e in events:
        sig = e.payload.get("signature")
        if not sig:
            continue
        if sig.get("signer") != e.actor:
            problems.append(
                (
                    e.seq,
                    f"signature names {sig.get('signer')!r} "
                    f"but the event was written by {e.actor!r}",
                )
            )
            continue
        if sig.get("signed_at") != e.recorded_at:
            problems.append((e.seq, "signature time differs from the time the event was written"))
            continue
        expected = expected_content(events, e)
        if expected != sig.get("content_hash"):
            problems.append(
                (e.seq, f"{sig.get('meaning')} signature does not match the content it signs")
            )
    return problems
