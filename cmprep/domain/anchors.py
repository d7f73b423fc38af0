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

A checkpoint may also vouch for the query tables (``tables``): a file beside it lists, for
each batch whose rows ``audit anchor`` found equal to what its log folds to, the batch's
head then (seq and hash) and a digest of those rows; the checkpoint records that file's
SHA-256 under a second signature of the same person. A later verification that finds a
batch's head and rows unchanged need not fold its log again: folding every batch is most
of what comparing the tables costs. A changed row, a batch written since, a rewritten event
(its head hash moves) or an edited list all fall back to the full comparison.

Pure: it takes the checkpoint's text and the ledger entries; the service reads and writes
the files.
"""

from __future__ import annotations

import hashlib
import json
import re
import struct
from array import array
from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

from cmprep.events import LedgerEntry

FORMAT = "cmprep ledger checkpoint 1"  # what the file says it is, so another JSON is not taken
MEANING = "anchored"  # the signature's meaning
PREFIX, SUFFIX = "ledger-", ".json"
TABLES_SUFFIX = ".tables"  # the batches whose query tables a checkpoint vouches for
_HASH = re.compile(r"[0-9a-f]{64}")
_DIGEST = re.compile(r"[0-9a-f]{32}")
_NAME = re.compile(r"ledger-(\d{12})-(\d{8}T\d{6}Z)\.json")

# why a signature does not hold (its seal, its signer), or None; given by the service
SignatureCheck = Callable[[dict[str, Any]], str | None]


def subject(position: int) -> dict[str, str]:
    """What an anchoring signature is about: the ledger at one position."""
    return {"kind": "ledger", "id": str(position)}


def tables_subject(position: int) -> dict[str, str]:
    """What the second signature of a checkpoint is about: the query tables of the batches
    its list names, as the ledger at POSITION left them."""
    return {"kind": "query tables", "id": str(position)}


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
    # the list of batches whose query tables it vouches for: {"file", "sha256", "batches",
    # "signature"}; None in a checkpoint that vouches for none (and in older ones)
    tables: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out = {
            "format": FORMAT,
            "position": self.position,
            "ledger_hash": self.ledger_hash,
            "anchored_at": self.anchored_at,
            "anchored_by": self.anchored_by,
            "signature": self.signature,
        }
        return out | ({"tables": self.tables} if self.tables is not None else {})

    def text(self) -> str:
        """The file's content: indented JSON, so a person can read it and compare it."""
        return json.dumps(self.to_json(), indent=2, sort_keys=True, ensure_ascii=False) + "\n"

    @property
    def file_name(self) -> str:
        """``ledger-000000000057-20261102T080000Z.json``: sorting the names sorts the
        checkpoints by position; the time tells two checkpoints at one position apart."""
        stamp = self.anchored_at.replace("-", "").replace(":", "")
        return f"{PREFIX}{self.position:012d}-{stamp}{SUFFIX}"

    @property
    def tables_file_name(self) -> str:
        """The list of vouched batches beside it: its own name with ``.tables``."""
        return self.file_name.removesuffix(SUFFIX) + TABLES_SUFFIX


class Vouched(NamedTuple):
    """A batch whose query-table rows ``audit anchor`` found equal to its log's fold: its
    head then, and the digest of those rows."""

    seq: int
    head: str  # the hash of the batch's event at SEQ
    digest: str  # ``rows_digest`` of its rows (32 hexadecimal digits)


_ENTRY = struct.Struct(">Q32s16s")  # seq, head, digest: one batch's entry, packed


def _key(batch_id: str) -> int:
    """The 64-bit key a batch's entry is filed under (the list is sorted by it, so that
    it is read into two flat arrays and searched by bisection)."""
    return int.from_bytes(hashlib.blake2b(batch_id.encode("utf-8"), digest_size=8).digest(), "big")


class VouchedTables:
    """The batches a checkpoint vouches for, kept flat: an array of 64-bit keys and one
    bytes buffer of packed entries, 64 bytes a batch (a dict of tuples and strings would
    be about 360), so that a lab of 164,000 batches verifies in constant memory.

    The list file is one line per batch, ``KEY BATCH SEQ HEAD DIGEST`` (tab-separated;
    ids never hold a tab or a line break: ``domain.ids``), sorted by key."""

    def __init__(self) -> None:
        self.keys = array("Q")
        self.entries = bytearray()
        # the ids, kept while entries are added, for writing: their UTF-8 bytes one after
        # another and where each ends (a list of strings would be about 60 bytes a batch)
        self.names: bytearray | None = bytearray()
        self.ends = array("Q")

    def __len__(self) -> int:
        return len(self.keys)

    def add(self, batch_id: str, vouched: Vouched) -> None:
        """Note BATCH_ID's entry (in any order; ``lines`` sorts them)."""
        self.keys.append(_key(batch_id))
        self.entries += _ENTRY.pack(
            vouched.seq, bytes.fromhex(vouched.head), bytes.fromhex(vouched.digest)
        )
        if self.names is not None:
            self.names += batch_id.encode("utf-8")
            self.ends.append(len(self.names))

    def extend(self, other: VouchedTables) -> None:
        """OTHER's entries after these (what a part of the log checked in another process
        found, ``service.log_parts``)."""
        self.keys.extend(other.keys)
        self.entries += other.entries
        if self.names is not None and other.names is not None:
            start = len(self.names)
            self.names += other.names
            self.ends.extend(start + end for end in other.ends)

    def get(self, batch_id: str) -> Vouched | None:
        k = _key(batch_id)
        i = bisect_left(self.keys, k)
        if i == len(self.keys) or self.keys[i] != k:
            return None
        seq, head, digest = _ENTRY.unpack_from(self.entries, i * _ENTRY.size)
        return Vouched(seq, head.hex(), digest.hex())

    def lines(self) -> Iterator[str]:
        """The list file's lines, sorted by key."""
        names, ends = self.names or bytearray(), self.ends
        for i in sorted(range(len(self.keys)), key=self.keys.__getitem__):
            seq, head, digest = _ENTRY.unpack_from(self.entries, i * _ENTRY.size)
            name = names[ends[i - 1] if i else 0 : ends[i]].decode("utf-8")
            yield f"{self.keys[i]:016x}\t{name}\t{seq}\t{head.hex()}\t{digest.hex()}\n"

    @classmethod
    def read(cls, lines: Iterable[str]) -> VouchedTables:
        """The list in LINES (as ``lines`` wrote them); ValueError naming the first line
        that is not one, or out of order."""
        found = cls()
        found.names = None  # a list read back is only searched
        last = -1
        for n, line in enumerate(lines, 1):
            parts = line.rstrip("\n").split("\t")
            if (
                len(parts) != 5
                or not parts[2].isdigit()
                or not _HASH.fullmatch(parts[3])
                or not _DIGEST.fullmatch(parts[4])
                or parts[0] != f"{_key(parts[1]):016x}"
            ):
                raise ValueError(f"line {n} is not KEY, BATCH, SEQ, HEAD and DIGEST")
            key = int(parts[0], 16)
            if key < last:
                raise ValueError(f"line {n} is out of order")
            last = key
            found.add(parts[1], Vouched(int(parts[2]), parts[3], parts[4]))
        return found


def tables_sha256(lines: Iterable[str]) -> str:
    """The SHA-256 of a list file's text, given as its lines."""
    h = hashlib.sha256()
    for line in lines:
        h.update(line.encode("utf-8"))
    return h.hexdigest()


def tables_problems(cp: Checkpoint, digest: str | None) -> list[str]:
    """Why CP's list of vouched batches (DIGEST: its file's SHA-256; None: it cannot be read)
    cannot be trusted, beyond its signer's key (the service's SignatureCheck): the file it
    names, its SHA-256, and a second signature about the query tables at its position,
    over that hash, by the checkpoint's person at its time."""
    t = cp.tables
    if t is None:
        return []
    found = t.get("signature")
    sig: dict[str, Any] = found if isinstance(found, dict) else {}
    problems = []
    if t.get("file") != cp.tables_file_name:
        problems.append(f"its table list is named {t.get('file')!r}, not {cp.tables_file_name!r}")
    if digest is None:
        problems.append(f"its table list {cp.tables_file_name} cannot be read")
    elif digest != t.get("sha256"):
        problems.append(
            f"its table list {cp.tables_file_name} was changed since it was signed (its "
            "SHA-256 is not the one recorded)"
        )
    if (
        sig.get("meaning") != MEANING
        or sig.get("subject") != tables_subject(cp.position)
        or sig.get("content_hash") != t.get("sha256")
        or sig.get("signer") != cp.anchored_by
        or sig.get("signed_at") != cp.anchored_at
    ):
        problems.append("its table list's signature is not the one it needs")
    return problems


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
    tables = data.get("tables")
    if tables is not None and not (
        isinstance(tables, dict) and isinstance(tables.get("signature"), dict)
    ):
        problems.append("its tables entry is not a signed table list")
    if problems or not isinstance(position, int) or not isinstance(ledger_hash, str):
        return None, problems
    return (
        Checkpoint(
            position=position,
            ledger_hash=ledger_hash,
            anchored_at=data["anchored_at"],
            anchored_by=data["anchored_by"],
            signature=data["signature"],
            tables=tables,
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
    "TABLES_SUFFIX",
    "Checkpoint",
    "CheckpointBreak",
    "SignatureCheck",
    "Vouched",
    "VouchedTables",
    "check",
    "is_checkpoint_name",
    "parse",
    "short",
    "signature_problems",
    "subject",
    "tables_problems",
    "tables_sha256",
    "tables_subject",
]
