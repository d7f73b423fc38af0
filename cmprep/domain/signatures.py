"""Electronic signatures: who signed, their printed name then, when, what it means, and
a hash of exactly the content signed, all sealed with the signer's Ed25519 key.

The content hash is recomputed from the log whenever a signature is checked, so a
signature cannot be moved to other content, and one whose content later changed (a
correction after a verification) no longer counts. The Ed25519 seal over meaning, signer,
time, subject and content hash is checked against the public key the signer held at that
time (from the @users stream): someone who edits the file and recomputes every hash still
cannot make a seal without the signer's password (see domain/keys.py).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from cmprep import events as ev
from cmprep.digest import sha256_hex
from cmprep.domain.protocols import PROTOCOL_IMPORTED
from cmprep.domain.protocols import content_hash as protocol_hash
from cmprep.events import Event, canonical_json

if TYPE_CHECKING:  # the keys (cryptography) are loaded where a seal is made or checked: a
    # fold reads only the content hashes, and `batch status` must not pay for the library
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    from cmprep.domain.keyring import KeyRing

MEANINGS = (
    "performed",
    "verified",
    "reviewed",
    "approved",
    "released",
    "rejected",
    "authorized",  # an admin's act on a person's account (added, role, reset, unlock)
    "anchored",  # a checkpoint of the ledger written outside the database
    "conditionally released",  # QA lets fresh product be used before its pending QC results
)
# what the Ed25519 seal covers: everything a reader of the signature relies on
SEALED = ("meaning", "signer", "full_name", "role", "signed_at", "subject", "content_hash")

# which events make up the content of each kind of subject
_STEP_EVENTS = (ev.STEP_RECORDED, ev.STEP_SKIPPED, ev.VALUE_CORRECTED)
_DEVIATION_EVENTS = (ev.DEVIATION_OPENED, ev.DEVIATION_INVESTIGATED)


def _digest(items: list[Any]) -> str:
    return sha256_hex(canonical_json(items).encode())


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


def conditional_content(head: str, pending: list[Any]) -> str:
    """What a conditional release covers: the batch as QA saw it (its chain head) and the
    tests it names as pending, so the list cannot be changed under the signature."""
    return _digest([head, pending])


def sealed_text(sig: dict[str, Any]) -> bytes:
    """The exact bytes the Ed25519 seal signs."""
    return canonical_json({k: sig.get(k) for k in SEALED}).encode()


def signature(
    meaning: str,
    signer: str,
    full_name: str,
    role: str,
    signed_at: str,
    subject: dict[str, str],
    content_hash: str,
    private: Ed25519PrivateKey,
) -> dict[str, Any]:
    from cmprep.domain import keys

    if meaning not in MEANINGS:
        raise ValueError(f"unknown signature meaning {meaning!r}")
    sig: dict[str, Any] = {
        "meaning": meaning,
        "signer": signer,
        "full_name": full_name,
        "role": role,
        "signed_at": signed_at,
        "subject": subject,
        "content_hash": content_hash,
        "algorithm": keys.ALGORITHM,
    }
    sig["seal"] = keys.sign(private, sealed_text(sig))
    return sig


def seal_problem(sig: dict[str, Any], ring: KeyRing) -> str | None:
    """Why the Ed25519 seal of SIG does not hold, or None when it does."""
    from cmprep.domain import keys

    signer, at = str(sig.get("signer", "")), str(sig.get("signed_at", ""))
    public = ring.key_at(signer, at)
    if public is None:
        return f"{sig.get('meaning')} signature by {signer!r}: no key was issued to them by {at}"
    if sig.get("algorithm") != keys.ALGORITHM or not isinstance(sig.get("seal"), str):
        return f"{sig.get('meaning')} signature by {signer!r} carries no {keys.ALGORITHM} seal"
    if not keys.is_valid(public, sealed_text(sig), sig["seal"]):
        return (
            f"{sig.get('meaning')} signature by {signer!r} was not made with their key "
            "(forged or altered)"
        )
    return None


def payload_content(payload: dict[str, Any]) -> str:
    """What a signature carried inside an event's own payload covers: the rest of it."""
    return _digest([{k: v for k, v in payload.items() if k != "signature"}])


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
    if subject["kind"] == "conditional release":
        return conditional_content(event.prev_hash, event.payload.get("pending", []))
    if subject["kind"] in ("user", "setting"):
        return payload_content(event.payload)
    if subject["kind"] == "protocol":
        return protocol_content(events, subject["id"], event.seq)
    return None


def protocol_content(events: list[Event], version_ref: str, before_seq: int) -> str | None:
    """The hash of the content imported as ID@VERSION into @protocols before a point,
    recomputed from that content (not taken from the hash stored beside it)."""
    for e in events:
        p = e.payload
        if e.seq >= before_seq or e.type != PROTOCOL_IMPORTED:
            continue
        if f"{p.get('id')}@{p.get('version')}" == version_ref:
            return protocol_hash(p.get("content") or {})
    return None


def check_signatures(events: list[Event], ring: KeyRing, after: int = 0) -> list[tuple[int, str]]:
    """(seq, problem) for every signature whose content hash does not match its content,
    or whose seal was not made with the key its signer held then (RING).

    AFTER: the signatures of events up to that seq are not checked (a signed checkpoint
    vouches for them: the service decides); EVENTS are still the whole stream, as a
    signature's content is recomputed from the events before it."""
    problems = []
    for e in events:
        sig = e.payload.get("signature")
        if not sig or e.seq <= after:
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
        elif problem := seal_problem(sig, ring):
            problems.append((e.seq, problem))
    return problems
