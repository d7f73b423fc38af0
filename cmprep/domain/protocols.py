"""Controlled master protocols: which versions this database holds, who imported and who
approved each, and which one a batch may start from.

A protocol file on a disk can be edited by anyone (a spin spec widened to 800 x g) while it
still says ``status: approved``; so a batch never starts from a file. A version is imported
into the "@protocols" stream (hash-chained like a batch) as a draft, QA approves it with a
signature over its content hash, and a retired version starts no new batch. The status is
the stream's, never the file's.

The stored content is the validated model with its ``status`` field set to "approved".
A batch refers to the version it starts from by that content's hash (its first event
carries ``protocol_hash``, and the id and version for people), never by a copy: the
content is stored here once. So the content hash QA signs is exactly the
``protocol_hash`` of every batch started from that version, and the same file imported
with ``status: draft`` or ``status: approved`` is the same content.

A version is parsed and its machine built once per process and content hash
(``compiled``): the hash names the content, so what was built from it serves every
batch and every database that refers to that hash. Content that no longer hashes to the
hash it was stored under is refused (CorruptLog), never folded.

Pure: the fold and the lookups read events; the service decides and writes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from cmprep.digest import sha256_once
from cmprep.domain.pipeline import Pipeline
from cmprep.errors import CorruptLog, Hint, NotFound, Refused
from cmprep.events import Event, canonical_json
from cmprep.protocol.models import Protocol, from_content

PROTOCOLS_STREAM = "@protocols"

PROTOCOL_IMPORTED = "protocol_imported"
PROTOCOL_APPROVED = "protocol_approved"
PROTOCOL_RETIRED = "protocol_retired"
PROTOCOL_EVENTS = (PROTOCOL_IMPORTED, PROTOCOL_APPROVED, PROTOCOL_RETIRED)

DRAFT, APPROVED, RETIRED = "draft", "approved", "retired"
STORED_STATUS = APPROVED  # the status field of every stored content (see the module text)


def as_stored(protocol: Protocol) -> Protocol:
    """The protocol as it is stored and copied by a batch: the file's status left out."""
    return protocol.with_status(STORED_STATUS)


def content_hash(content: dict[str, Any]) -> str:
    """SHA-256 of stored content; the same as ``Protocol.content_hash`` of its model. One
    document: a status checks its protocol's hash without loading OpenSSL for it."""
    return sha256_once(canonical_json(content).encode())


def ref(protocol_id: str, version: str) -> str:
    """``cm-standard-serum-free@1.0``: one stored version, in one word."""
    return f"{protocol_id}@{version}"


def split_ref(text: str) -> tuple[str, str | None]:
    """``ID@VERSION`` as (id, version); a bare id as (id, None)."""
    protocol_id, _, version = text.strip().partition("@")
    return protocol_id.strip(), (version.strip() or None)


def version_key(version: str) -> tuple[int, ...]:
    """Versions in numeric order: 1.10 comes after 1.9."""
    try:
        return tuple(int(part) for part in version.split("."))
    except ValueError:  # not written by this program's loader; sorts first
        return (-1,)


@dataclass
class StoredProtocol:
    """One protocol version held in this database, and where it stands."""

    id: str
    version: str
    title: str
    content: dict[str, Any]
    content_hash: str
    source: str  # the file it was imported from, as named then
    imported_by: str
    imported_at: str
    status: str = DRAFT
    approved_by: str | None = None
    approved_at: str | None = None
    retired_by: str | None = None
    retired_at: str | None = None
    retired_reason: str | None = None

    @property
    def ref(self) -> str:
        return ref(self.id, self.version)

    def protocol(self) -> Protocol:
        """The stored model, checked against its hash and built (once per process:
        ``compiled``); its ``status`` is the stream's (a draft reads "draft", so its
        checklist says it must not be used).

        Content that no longer matches its hash, or that this program cannot read, was not
        written by it: CorruptLog, never a batch started from it."""
        return self.compiled().protocol.with_status(self.status)

    def compiled(self) -> Compiled:
        """The stored content parsed and its machine built, as every batch started from
        this version folds with (the status is the content's, "approved")."""
        return compiled(self.content, self.content_hash, f"stored protocol {self.ref}")

    def row(self) -> dict[str, Any]:
        return {
            "protocol": self.id,
            "version": self.version,
            "status": self.status,
            "title": self.title,
            "hash": self.content_hash,
            "source": self.source,
            "imported_by": self.imported_by,
            "imported_at": self.imported_at,
            "approved_by": self.approved_by,
            "approved_at": self.approved_at,
            "retired_by": self.retired_by,
            "retired_at": self.retired_at,
            "retired_reason": self.retired_reason,
        }


@dataclass(frozen=True)
class Compiled:
    """One protocol version ready to fold batches: its content checked against its hash,
    parsed into the (frozen) model and its machine built. Shared by every batch that
    refers to the hash, so it is built once per process, not once per fold."""

    content_hash: str
    protocol: Protocol
    pipeline: Pipeline


# What a fold asks for the protocol a batch refers to: the compiled version with that
# content hash, or None when there is none. It raises CorruptLog for stored content that
# no longer matches its hash.
Resolver = Callable[[str], "Compiled | None"]

_COMPILED: dict[str, Compiled] = {}  # by content hash: what was built in this process
COMPILED_KEPT = 64  # at most this many versions are kept built (a lab uses a handful)


def compiled(content: dict[str, Any], digest: str, what: str) -> Compiled:
    """CONTENT (a stored version, or the copy an older batch carries) built into the plain
    model and its machine's table, if it still hashes to DIGEST; once per process and hash.
    The schema checked it when it was imported; the hash proves it is that content.

    The hash is checked every time content is handed in (a hash is cheap, a parse is
    not): content edited behind the program's back is refused as CorruptLog naming WHAT,
    even when the right content for DIGEST was built before."""
    if content_hash(content) != digest:
        raise CorruptLog(
            f"{what} does not match the content hash it was stored with; "
            "run an audit verify and restore the database from a backup"
        )
    found = _COMPILED.get(digest)
    if found is None:
        try:  # checked when it was imported, protected by its hash since: no second schema
            model = from_content(content)
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            raise CorruptLog(
                f"{what} is not a protocol this program can read; "
                "run an audit verify and restore the database from a backup",
                [f"{type(err).__name__}: {err}"],
            ) from None
        found = Compiled(digest, model, Pipeline(model))
        if len(_COMPILED) >= COMPILED_KEPT:
            _COMPILED.clear()
        _COMPILED[digest] = found
    return found


def known(digest: str) -> Compiled | None:
    """The version with that content hash if this process has built it already, else
    None: the resolver of a fold given none (the hash names the content, so a version
    built from any database's copy of it is the same)."""
    return _COMPILED.get(digest)


def fold_protocols(events: list[Event]) -> dict[str, StoredProtocol]:
    """Every stored version by ``ID@VERSION``, as the @protocols stream leaves it."""
    stored: dict[str, StoredProtocol] = {}
    for e in events:
        p = e.payload
        if e.type == PROTOCOL_IMPORTED:
            content = p["content"]
            stored[ref(p["id"], p["version"])] = StoredProtocol(
                id=p["id"],
                version=p["version"],
                title=str(content.get("title", "")),
                content=content,
                content_hash=p["content_hash"],
                source=p.get("source", ""),
                imported_by=e.actor,
                imported_at=e.recorded_at,
            )
            continue
        found = stored.get(ref(p.get("id", ""), p.get("version", "")))
        if found is None:
            continue
        if e.type == PROTOCOL_APPROVED:
            found.status, found.approved_by, found.approved_at = APPROVED, e.actor, e.recorded_at
        elif e.type == PROTOCOL_RETIRED:
            found.status, found.retired_by, found.retired_at = RETIRED, e.actor, e.recorded_at
            found.retired_reason = e.reason
    return stored


def versions(stored: dict[str, StoredProtocol], protocol_id: str) -> list[StoredProtocol]:
    """The stored versions of one protocol, oldest first."""
    return sorted(
        (s for s in stored.values() if s.id == protocol_id), key=lambda s: version_key(s.version)
    )


def _listing(found: list[StoredProtocol]) -> str:
    return ", ".join(f"{s.version} ({s.status})" for s in found)


def find(stored: dict[str, StoredProtocol], text: str) -> StoredProtocol:
    """The version ``ID@VERSION`` names, or for a bare ``ID`` its newest approved version
    (its newest version of any status when none is approved): what a person looks at."""
    protocol_id, version = split_ref(text)
    found = versions(stored, protocol_id)
    if not found:
        known = sorted({s.id for s in stored.values()})
        listing = f"stored protocols: {', '.join(known)}" if known else "none is stored yet"
        raise NotFound(
            f"no protocol {protocol_id!r} in this database; {listing}",
            hint=Hint("import_protocol"),
        )
    if version is None:
        approved = [s for s in found if s.status == APPROVED]
        return (approved or found)[-1]
    match = stored.get(ref(protocol_id, version))
    if match is None:
        raise NotFound(
            f"no version {version} of {protocol_id} in this database; "
            f"stored versions: {_listing(found)}",
            hint=Hint("list_protocols"),
        )
    return match


def for_batch(stored: dict[str, StoredProtocol], text: str) -> StoredProtocol:
    """The approved version a new batch starts from: ``ID`` (its newest approved version)
    or ``ID@VERSION``. A draft or a retired version is refused, saying what to do."""
    chosen = find(stored, text)
    if chosen.status == APPROVED:
        return chosen
    if chosen.status == RETIRED:
        why = f" ({chosen.retired_reason})" if chosen.retired_reason else ""
        newer = [s for s in versions(stored, chosen.id) if s.status == APPROVED]
        others = f"; approved: {', '.join(s.ref for s in newer)}" if newer else ""
        raise Refused(
            f"protocol {chosen.ref} was retired by {chosen.retired_by} at "
            f"{chosen.retired_at}{why}; no new batch can start from it{others}",
            hint=Hint("list_protocols"),
        )
    whole = "" if "@" in text else f"{chosen.id} has no approved version; "
    raise Refused(
        f"{whole}protocol {chosen.ref} is a draft (imported by {chosen.imported_by}); "
        "only a version QA approved can start a batch",
        hint=Hint("approve_protocol", protocol=chosen.id, version=chosen.version),
    )


__all__ = [
    "APPROVED",
    "COMPILED_KEPT",
    "DRAFT",
    "PROTOCOLS_STREAM",
    "PROTOCOL_APPROVED",
    "PROTOCOL_EVENTS",
    "PROTOCOL_IMPORTED",
    "PROTOCOL_RETIRED",
    "RETIRED",
    "Compiled",
    "Resolver",
    "StoredProtocol",
    "as_stored",
    "compiled",
    "content_hash",
    "find",
    "fold_protocols",
    "for_batch",
    "known",
    "ref",
    "split_ref",
    "version_key",
]
