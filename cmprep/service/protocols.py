"""Controlled master protocols: import a protocol file into the database as a draft, have
QA approve it with a signature, retire it; and read a file or a stored version.

Only a version approved here can start a batch (``Context.protocol``): a file on a disk
can be edited after QA read it, a version in the "@protocols" stream cannot without
breaking its hash chain. Each write is decided against the stream as it is (see
``Context.append_system``), so two people importing the same version at once give one
import and one refusal, and two approving it give one signature.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

from cmprep.domain import protocols as control
from cmprep.domain.protocols import DRAFT, RETIRED, StoredProtocol
from cmprep.errors import Hint, NotFound, Refused
from cmprep.events import Event, NewEvent
from cmprep.protocol import library
from cmprep.protocol.loader import load_file, parse_text
from cmprep.protocol.models import Protocol
from cmprep.service.access import Gate, reason_text
from cmprep.service.context import Context

if TYPE_CHECKING:
    from cmprep.render.models import ChecklistView


@dataclass(frozen=True)
class ProtocolDoc:
    """A protocol to look at, and where it stands.

    ``protocol`` has the status it has in this database (a stored draft, or a file that is
    not imported, reads "draft"); ``content_hash`` is the hash of the content as stored, or
    as an import would store it: what QA signs and what a batch names its protocol by.
    """

    protocol: Protocol
    content_hash: str
    stored: StoredProtocol | None  # None: a file, not (necessarily) in the database
    source: str  # "ID@VERSION" when stored, else the file's path


class ProtocolService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate

    # --- reading --------------------------------------------------------------------------
    def versions(self) -> list[StoredProtocol]:
        """Every version stored in this database, by id then version."""
        return sorted(
            self.ctx.protocols().values(), key=lambda s: (s.id, control.version_key(s.version))
        )

    def stored(self, protocol_id: str, version: str | None = None) -> StoredProtocol:
        """One stored version (``ID@VERSION`` or an id and a version), or for a bare id its
        newest approved version."""
        text = control.ref(protocol_id, version) if version else protocol_id
        return control.find(self.ctx.protocols(), text)

    def get(self, ref: str) -> Protocol:
        """A protocol to look at: a file by path, a stored version (``ID``, ``ID@VERSION``),
        or a bundled file not imported yet. Not for starting a batch (``Context.protocol``)."""
        return self.doc(ref).protocol

    def doc(self, ref: str) -> ProtocolDoc:
        """As ``get``, with the content hash and the stored version's record."""
        if library.is_file(ref):
            return self._file_doc(ref)
        try:
            found = self.stored(ref)
        except NotFound as err:
            if ref in self.bundled_ids():  # a bundled file, looked at before its import
                return self._file_doc(ref)
            if "@" in ref:
                raise
            bundled = ", ".join(self.bundled_ids()) or "none"
            raise NotFound(
                f"{err.message}; bundled protocol files: {bundled}", hint=err.hint
            ) from None
        return ProtocolDoc(found.protocol(), found.content_hash, found, found.ref)

    def check(self, ref: str) -> ProtocolDoc:
        """Validate a file, or a stored version again with every check of the loader (after
        an upgrade its rules may be stricter) and against its content hash. ProtocolError
        lists every problem."""
        if library.is_file(ref):
            return self._file_doc(ref)  # the loader's checks
        try:
            found = self.stored(ref)
        except NotFound:
            return self.doc(ref)  # a bundled file not imported yet, or NotFound naming all
        import yaml

        text = yaml.safe_dump(found.content, sort_keys=False, allow_unicode=True)
        parse_text(text, f"{found.ref} (stored)")
        return ProtocolDoc(found.protocol(), found.content_hash, found, found.ref)

    def checklist_view(self, ref: str, generated_at: str | None = None) -> ChecklistView:
        """The SOP checklist of a file or a stored version; a draft's says it must not be
        used for a batch."""
        from cmprep.service.views import checklist_view

        doc = self.doc(ref)
        view = checklist_view(doc.protocol, generated_at=generated_at)
        return replace(view, protocol_hash=doc.content_hash)

    def checklist(self, ref: str, fmt: str = "html") -> str | bytes:
        from cmprep.render.documents import render_checklist

        return render_checklist(self.checklist_view(ref), fmt)

    def bundled_ids(self) -> list[str]:
        return [p.stem for p in library.protocol_files(self.ctx.protocols_dir)]

    def _file(self, ref: str) -> tuple[Path, Protocol]:
        try:
            path = library.find_file(ref, self.ctx.protocols_dir)
        except LookupError as err:
            raise NotFound(str(err), hint=Hint("import_protocol")) from None
        return path, load_file(path)

    def _file_doc(self, ref: str) -> ProtocolDoc:
        path, model = self._file(ref)
        stored = control.as_stored(model)
        draft = stored.with_status(DRAFT)
        return ProtocolDoc(draft, stored.content_hash(), None, str(path))

    # --- writing --------------------------------------------------------------------------
    def import_file(self, ref: str, actor: str) -> StoredProtocol:
        """Store the protocol of a file (or a bundled one, by id) as a draft. The file's own
        ``status`` is ignored: only QA's approval here makes a version usable.

        The same id and version with other content is refused (a changed protocol is a new
        version); the same content again is refused as already imported."""
        actor = self.gate.person(actor, "import protocol")
        path, model = self._file(ref)
        stored = control.as_stored(model)
        key, digest = control.ref(stored.id, stored.version), stored.content_hash()
        payload = {
            "id": stored.id,
            "version": stored.version,
            "content": stored.to_content(),
            "content_hash": digest,
            "source": path.name,
        }

        def decide(events: list[Event]) -> list[NewEvent]:
            same = control.fold_protocols(events).get(key)
            if same is not None and same.content_hash != digest:
                raise Refused(
                    f"{key} is already in this database ({same.status}, imported by "
                    f"{same.imported_by} at {same.imported_at}) with different content; "
                    "a changed protocol needs a new version number; nothing was written",
                    hint=Hint("list_protocols"),
                )
            if same is not None:
                hint = Hint("approve_protocol", protocol=same.id, version=same.version)
                raise Refused(
                    f"{key} is already imported with this same content; it is {same.status} "
                    f"(imported by {same.imported_by} at {same.imported_at}); "
                    "nothing was written",
                    hint=hint if same.status == DRAFT else Hint("list_protocols"),
                )
            return [NewEvent(control.PROTOCOL_IMPORTED, actor, payload)]

        self.ctx.append_system(control.PROTOCOLS_STREAM, decide)
        return self.stored(stored.id, stored.version)

    def approve(
        self, protocol_id: str, version: str, actor: str, password: str | None
    ) -> StoredProtocol:
        """QA's approval: a signature ("approved") over the content hash of the version, by
        someone other than the person who imported it."""
        actor = self.gate.person(actor, "approve protocol")
        target = self.stored(protocol_id, version)
        key = target.ref
        _still_draft(target, "approved")
        if target.imported_by.casefold() == actor.casefold():
            self.gate.refuse(
                actor,
                "approve protocol",
                f"{actor} imported {key}; its approval needs a second person, "
                "QA who did not import it; nothing was signed",
            )
        target.protocol()  # content that fails its checks is never signed
        signer = self.gate.authenticate(actor, password, "approved")
        now = self.ctx.clock()
        subject = {"kind": "protocol", "id": key}
        sig = self.gate.signature("approved", signer, now, subject, target.content_hash)
        payload = {
            "id": target.id,
            "version": target.version,
            "content_hash": target.content_hash,
            "signature": sig,
        }

        def decide(events: list[Event]) -> list[NewEvent]:
            _still_draft(control.fold_protocols(events)[key], "approved")
            return [NewEvent(control.PROTOCOL_APPROVED, actor, payload)]

        self.ctx.append_system(control.PROTOCOLS_STREAM, decide, now=now)
        return self.stored(protocol_id, version)

    def retire(self, protocol_id: str, version: str, actor: str, reason: str) -> StoredProtocol:
        """No new batch starts from this version; batches already started from it go on
        following it (they name it by content hash, and it stays stored)."""
        actor, reason = self.gate.person(actor, "retire protocol"), reason_text(reason)
        key = self.stored(protocol_id, version).ref
        payload = {"id": protocol_id, "version": version}

        def decide(events: list[Event]) -> list[NewEvent]:
            now = control.fold_protocols(events)[key]
            if now.status == RETIRED:
                raise Refused(
                    f"{key} is already retired (by {now.retired_by} at {now.retired_at}); "
                    "nothing was written"
                )
            return [NewEvent(control.PROTOCOL_RETIRED, actor, payload, reason=reason)]

        self.ctx.append_system(control.PROTOCOLS_STREAM, decide)
        return self.stored(protocol_id, version)


def _still_draft(stored: StoredProtocol, act: str) -> None:
    """Only a draft can be approved; say what it is instead."""
    if stored.status == DRAFT:
        return
    if stored.status == RETIRED:
        raise Refused(
            f"{stored.ref} is retired (by {stored.retired_by} at {stored.retired_at}) and "
            f"cannot be {act}; import a new version; nothing was written",
            hint=Hint("import_protocol"),
        )
    raise Refused(
        f"{stored.ref} is already approved (by {stored.approved_by} at {stored.approved_at}); "
        "nothing was written"
    )
