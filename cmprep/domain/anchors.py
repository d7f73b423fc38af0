"""Ledger checkpoints kept outside the database: what one holds, and whether the ledger
still extends it.

Why: every check inside the database can be satisfied by someone who can edit the file.
Cut off the newest events together with their heads and ledger rows, or change a value and
recompute every hash after it, and the log is again one consistent chain. What such a
person cannot reach is a copy of the ledger's head kept elsewhere (a QA share, write-once
media), signed by the person who took it. A checkpoint is that copy: the ledger's position
(its number of events) and the hash of the entry there. The ledger of an honest log only
grows, so the entry at that position must still be there with that hash. If it is missing,
entries were removed; if it has another hash, something up to it was rewritten.

Pure: it takes the checkpoint's text and the ledger entries; the service reads and writes
the files.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

from cmprep.events import LedgerEntry

FORMAT = "cmprep ledger checkpoint 1"  # what the file says it is, so another JSON is not taken
MEANING = "anchored"  # the signature's meaning
PREFIX, SUFFIX = "ledger-", ".json"
_HASH = re.compile(r"[0-9a-f]{64}")
_NAME = re.compile(r"ledger-(\d{12})-(\d{8}T\d{6}Z)\.json")

# why a signature does not hold (its seal, its signer), or None; given by the service
SignatureCheck = Callable[[dict[str, Any]], str | None]


def subject(position: int) -> dict[str, str]:
    """What an anchoring signature is about: the ledger at one position."""
    return {"kind": "ledger", "id": str(position)}


def short(ledger_hash: str) -> str:
    """The short form of a ledger hash printed on records and reports."""
    return ledger_hash[:16]


@dataclass(frozen=True)
class Checkpoint:
    """The ledger's head at one position, signed by the person who took it."""

    position: int  # the ledger's number of entries (events) when taken
    ledger_hash: str  # the hash of the ledger entry at that position
    anchored_at: str  # the service clock, ISO UTC
    anchored_by: str  # user name; the signature carries the printed name and role
    signature: dict[str, Any]

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "position": self.position,
            "ledger_hash": self.ledger_hash,
            "anchored_at": self.anchored_at,
            "anchored_by": self.anchored_by,
            "signature": self.signature,
        }

    def text(self) -> str:
        """The file's content: indented JSON, so a person can read it and compare it."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @property
    def file_name(self) -> str:
        """``ledger-000000000057-20261102T080000Z.json``: sorting the names sorts the
        checkpoints by position; the time tells two checkpoints at one position apart."""
        stamp = self.anchored_at.replace("-", "").replace(":", "")
        return f"{PREFIX}{self.position:012d}-{stamp}{SUFFIX}"


def is_checkpoint_name(name: str) -> bool:
    """A file the folder's checks read; anything else there (notes, temporary files being
    written, hidden files) is left alone."""
    return name.startswith(PREFIX) and name.endswith(SUFFIX)


@dataclass(frozen=True)
class CheckpointBreak:
    """A checkpoint the ledger no longer extends, or one that cannot be trusted itself."""

    file: str
    problem: str
    label: ClassVar[str] = "BROKEN"

    def __str__(self) -> str:
        return f"checkpoint {self.file}: {self.problem}"


def parse(text: str) -> tuple[Checkpoint | None, list[str]]:
    """The checkpoint in TEXT, or None and every reason it is not a usable one."""
    try:
        data = json.loads(text)
    except ValueError:
        return None, ["is not readable JSON (damaged or not a checkpoint)"]
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        return None, [f"is not a cmprep ledger checkpoint (no format {FORMAT!r})"]
    problems = []
    position, ledger_hash = data.get("position"), data.get("ledger_hash")
    if not isinstance(position, int) or isinstance(position, bool) or position < 1:
        problems.append(f"position must be a whole number from 1, not {position!r}")
    if not isinstance(ledger_hash, str) or not _HASH.fullmatch(ledger_hash):
        problems.append("ledger_hash must be 64 hexadecimal digits")
    for key in ("anchored_at", "anchored_by"):
        if not isinstance(data.get(key), str) or not data[key]:
            problems.append(f"{key} is missing")
    if not isinstance(data.get("signature"), dict):
        problems.append("it carries no signature")
    if problems or not isinstance(position, int) or not isinstance(ledger_hash, str):
        return None, problems
    return (
        Checkpoint(
            position=position,
            ledger_hash=ledger_hash,
            anchored_at=data["anchored_at"],
            anchored_by=data["anchored_by"],
            signature=data["signature"],
        ),
        [],
    )


def signature_problems(cp: Checkpoint) -> list[str]:
    """Whether the signature is the one this checkpoint needs: meaning "anchored", about
    the ledger at this position, over this hash, by the person and at the time it names.
    (Whether it was made with that person's key is the service's SignatureCheck.)"""
    sig, problems = cp.signature, []
    if sig.get("meaning") != MEANING:
        problems.append(f"the signature means {sig.get('meaning')!r}, not {MEANING!r}")
    if sig.get("subject") != subject(cp.position):
        problems.append(f"the signature is not about the ledger at position {cp.position}")
    if sig.get("content_hash") != cp.ledger_hash:
        problems.append("the signature covers another ledger hash than the one recorded")
    if sig.get("signer") != cp.anchored_by:
        problems.append(
            f"the signature names {sig.get('signer')!r}, the checkpoint {cp.anchored_by!r}"
        )
    if sig.get("signed_at") != cp.anchored_at:
        problems.append("the signature time differs from the checkpoint's time")
    return problems


def _entry_at(ledger: Sequence[LedgerEntry], position: int) -> LedgerEntry | None:
    """The entry at POSITION: directly where a gapless ledger has it, else by search (a
    ledger with gaps is broken, and verification says so on its own)."""
    if 0 < position <= len(ledger) and ledger[position - 1].pos == position:
        return ledger[position - 1]
    return next((e for e in ledger if e.pos == position), None)


def check(
    file: str,
    text: str,
    ledger: Sequence[LedgerEntry],
    signature_check: SignatureCheck | None = None,
) -> list[CheckpointBreak]:
    """Every reason the checkpoint in FILE (its TEXT) fails against LEDGER: its shape, its
    name, its signature, and whether the ledger still has its entry with its hash."""
    cp, problems = parse(text)
    if cp is None:
        return [CheckpointBreak(file, p) for p in problems]
    named = _NAME.fullmatch(file)
    if named and int(named.group(1)) != cp.position:
        problems.append(
            f"its name says position {int(named.group(1))} but it records {cp.position} "
            "(renamed or edited)"
        )
    problems += signature_problems(cp)
    if signature_check is not None and (sig_problem := signature_check(cp.signature)):
        problems.append(sig_problem)
    entry = _entry_at(ledger, cp.position)
    last = ledger[-1].pos if ledger else 0
    if entry is None:
        problems.append(
            f"the ledger ends at position {last}, but on {cp.anchored_at} {cp.anchored_by} "
            f"anchored position {cp.position} ({short(cp.ledger_hash)}): "
            "entries were removed since"
        )
    elif entry.hash != cp.ledger_hash:
        problems.append(
            f"the ledger entry at position {cp.position} is {short(entry.hash)}, but "
            f"{cp.anchored_by} anchored {short(cp.ledger_hash)} on {cp.anchored_at}: "
            "the log up to it was rewritten"
        )
    return [CheckpointBreak(file, p) for p in problems]


__all__ = [
    "FORMAT",
    "MEANING",
    "Checkpoint",
    "CheckpointBreak",
    "SignatureCheck",
    "check",
    "is_checkpoint_name",
    "parse",
    "short",
    "signature_problems",
    "subject",
]
