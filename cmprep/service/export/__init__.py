"""Records that leave cmprep: a batch as an ``.eln`` archive (the ELN file format of
TheELNConsortium: a zipped RO-Crate 1.1), signed by the person exporting it; and the
values of one batch or of all as one long table (CSV or XLSX) for a LIMS.

Exporting reads; it writes nothing to the log. One batch's export reads that batch's
events and a few small system streams (the people, the lots and instruments), never the
history of other batches; exporting every batch reads them one after the other.

The archive is checkable without cmprep: ``verify_file`` here, and the short script
shipped inside each archive (``verify_eln.py``), check the signature of its manifest, each
file against the manifest and the hash chain of its events (``cmprep.domain.archive``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from decimal import Decimal
from importlib import metadata as package_metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

import yaml

from cmprep.domain import archive, keys
from cmprep.domain.batch import Batch
from cmprep.domain.clock import iso
from cmprep.domain.ids import is_usable
from cmprep.errors import Hint, MissingExtra, NotFound, Refused
from cmprep.service.context import Context
from cmprep.service.export import crate, table
from cmprep.store.query import BatchFilter

if TYPE_CHECKING:
    from cmprep.service.access import Gate, Signer
    from cmprep.service.documents import DocumentService
    from cmprep.service.lineage import LineageService
    from cmprep.service.materials import MaterialsService
    from cmprep.service.models import QCSummaryRow

FORMATS = ("eln", "csv", "xlsx")
VERIFY_SCRIPT = "verify_eln.py"
QC_COLUMNS = (
    "step", "name", "label", "method", "value", "number", "verdict", "spec", "reference",
    "reference_source", "note", "replicates_n", "replicates_cv_percent", "replicate_values",
    "deviations", "seq", "event_hash",
)  # fmt: skip
DEVIATION_COLUMNS = (
    "deviation_id", "step", "parameter", "value", "spec", "severity", "status", "kind",
    "message", "opened_by", "opened_at", "investigated_by", "justification", "closed_by",
    "closed_at", "decision", "capa", "addendum", "seq", "event_hash",
)  # fmt: skip


@dataclass(frozen=True)
class Archive:
    """An exported ``.eln``: its bytes, its root folder and what it holds."""

    data: bytes
    folder: str
    files: list[str]  # paths inside the root folder, the manifest first
    signed_by: str | None  # the exporting person's user name; None: unsigned
    fingerprint: str | None  # of their public key, as recorded when it was issued


def _version() -> str:
    try:
        return package_metadata.version("cmprep")
    except package_metadata.PackageNotFoundError:  # a bare checkout
        return "0"


def _csv(columns: tuple[str, ...], rows: list[dict[str, Any]]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows([table.cell_safe(_cell(r.get(c))) for c in columns] for r in rows)
    return out.getvalue().encode()


def _cell(value: Any) -> Any:
    if isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return "" if value is None else value


class ExportService:
    def __init__(
        self,
        ctx: Context,
        gate: Gate,
        documents: DocumentService,
        materials: MaterialsService,
        lineage: LineageService | None = None,
    ) -> None:
        self.ctx = ctx
        self.gate = gate
        self.documents = documents
        self.materials = materials
        self.lineage = lineage

    # --- the .eln archive --------------------------------------------------------------------
    def eln(
        self,
        batch_id: str,
        *,
        signer: str | None = None,
        folder: str | None = None,
        pdf: bool = True,
    ) -> Archive:
        """The batch as an ``.eln`` archive, signed by SIGNER when given.

        SIGNER must be proven present in this process (a live session or their password):
        their signing key signs the manifest. FOLDER names the archive's root folder (the
        ELN format asks for the archive's name; the batch id when it is not a usable id).
        PDF adds the record as PDF where WeasyPrint is installed.
        """
        who = self._signer(signer) if signer is not None else None
        batch = self.ctx.batch(batch_id)
        now = self.ctx.clock()
        created = iso(now)
        folder = folder if folder and is_usable(folder) else batch.id
        parts = self._parts(batch, created, pdf)
        users = self.gate.users()
        meta = crate.metadata(
            batch,
            parts,
            users,
            folder=batch.id,
            created=created,
            exporter=who.name if who else None,
            version=_version(),
            site=self.ctx.store.database_id(),
        )
        meta_bytes = (json.dumps(meta, indent=2, ensure_ascii=False) + "\n").encode()
        files: dict[str, bytes] = {archive.METADATA: meta_bytes}
        fingerprint = None
        if who is not None:
            fingerprint = keys.fingerprint(who.user.public_key)
            files[archive.SIGNATURE] = archive.sign_file(
                who.key, meta_bytes, self._trusted(who, now, fingerprint)
            ).encode()
            files[archive.PUBLIC_KEY] = archive.public_key_file(who.user.public_key).encode()
        files.update({p.path: p.data for p in parts})
        return Archive(
            data=_zip(folder, files, now),
            folder=folder,
            files=list(files),
            signed_by=who.name if who else None,
            fingerprint=fingerprint,
        )

    def _signer(self, name: str) -> Signer:
        """The exporting person, proven in this process, with their signing key open."""
        signer = self.gate.present.get(name.strip().casefold())
        if signer is None:
            raise Refused(
                f"{name} has not proven who they are (no live session and no password "
                "given), so the archive cannot carry their signature; nothing was written",
                hint=Hint("log_in"),
            )
        return signer

    @staticmethod
    def _trusted(who: Signer, now: datetime, fingerprint: str) -> str:
        u = who.user
        return (
            f"timestamp:{int(now.timestamp())} file:{archive.METADATA} signer:{u.name} "
            f"({u.full_name}, {u.role.value}) key:{fingerprint} signed:{iso(now)}"
        )

    def _parts(self, batch: Batch, created: str, pdf: bool) -> list[crate.Part]:
        """Every file of the batch's Dataset, in the order the archive lists them."""
        from cmprep.render.documents import render_record
        from cmprep.render.flow import flow_svg
        from cmprep.render.output import to_pdf
        from cmprep.service.views import record_view

        mark = self.documents.audit.ledger_mark()
        qc = self.documents.qc.summary(batch)
        view = record_view(
            batch,
            qc=qc,
            ledger_head=mark.hash,
            ledger_pos=mark.pos,
            generated_at=created,
        )
        html = str(render_record(view, "html"))
        d = f"{batch.id}/"
        p = batch.protocol
        parts = [
            crate.Part(d + "record.html", html.encode(), "text/html", "The batch record"),
        ]
        if pdf:
            with contextlib.suppress(MissingExtra):  # no WeasyPrint: the HTML is the record
                pdf_bytes = to_pdf(html)
                parts.append(
                    crate.Part(d + "record.pdf", pdf_bytes, "application/pdf", "The batch record")
                )
        events = "".join(archive.event_line(e) + "\n" for e in batch.events)
        parts += [
            crate.Part(
                d + archive.EVENTS,
                events.encode(),
                "application/x-ndjson",
                f"Every event of the batch as stored, one JSON object a line, each with the "
                f"SHA-256 chain hash; {batch.seq} events, head {batch.head_hash}",
            ),
            crate.Part(
                d + f"protocol-{p.id}-{p.version}.yaml",
                self._protocol_yaml(batch).encode(),
                "application/yaml",
                f"The protocol version the batch started from (content hash {batch.protocol_hash})",
            ),
            crate.Part(
                d + "flow.svg",
                flow_svg(p).encode(),
                "image/svg+xml",
                "The protocol as a flow diagram",
            ),
            crate.Part(
                d + "qc.csv",
                _csv(QC_COLUMNS, self._qc_rows(batch, qc)),
                "text/csv",
                "Quality control results of the batch",
            ),
            crate.Part(
                d + "deviations.csv",
                _csv(DEVIATION_COLUMNS, self._deviation_rows(batch)),
                "text/csv",
                "Deviations of the batch, with their investigation and closure",
            ),
        ]
        lineage = self._lineage(batch)
        if lineage is not None:
            parts.append(
                crate.Part(
                    d + "lineage.json",
                    (json.dumps(lineage, indent=2, ensure_ascii=False) + "\n").encode(),
                    "application/json",
                    "The material lots and instruments the batch used, as registered",
                )
            )
        script = Path(__file__).with_name(VERIFY_SCRIPT).read_bytes()
        parts.append(
            crate.Part(
                VERIFY_SCRIPT,
                script,
                "text/x-python",
                "Checks this archive without cmprep: python3 verify_eln.py ARCHIVE.eln",
                in_dataset=False,
            )
        )
        return parts

    @staticmethod
    def _protocol_yaml(batch: Batch) -> str:
        p = batch.protocol
        head = (
            f"# {p.id} version {p.version}: the protocol batch {batch.id} started from\n"
            f"# content hash (SHA-256 of its canonical JSON): {batch.protocol_hash}\n"
        )
        body = yaml.safe_dump(p.to_content(), sort_keys=False, allow_unicode=True, width=100)
        return head + body

    @staticmethod
    def _qc_rows(batch: Batch, summary: list[QCSummaryRow]) -> list[dict[str, Any]]:
        rows = []
        for r in summary:
            entry = batch.steps[r.step]
            rep = r.replicates or {}
            rows.append(
                {
                    **r.to_json(),
                    "replicates_n": rep.get("n"),
                    "replicates_cv_percent": rep.get("cv_percent"),
                    "replicate_values": rep.get("values"),
                    "seq": entry.seq,
                    "event_hash": batch.events[entry.seq - 1].hash if entry.seq else "",
                }
            )
        return rows

    @staticmethod
    def _deviation_rows(batch: Batch) -> list[dict[str, Any]]:
        rows = []
        for d in batch.deviations.values():
            inv = d.investigation or {}
            rows.append(
                {
                    **d.row(),
                    "justification": inv.get("justification"),
                    "capa": (d.closure or {}).get("capa"),
                    "addendum": "yes" if d.addendum else "no",
                    "seq": d.seq,
                    "event_hash": batch.events[d.seq - 1].hash,
                }
            )
        return rows

    def _lineage(self, batch: Batch) -> dict[str, Any] | None:
        """The lots and instruments the batch's steps named, with their registration
        records and where in this batch each was used; None when it named none."""
        used_lots: dict[str, list[dict[str, Any]]] = {}
        used_instruments: dict[str, list[dict[str, Any]]] = {}
        for entry in batch.steps.values():
            use = {"step": entry.step.id, "at": entry.performed_at, "by": entry.actor}
            for lot in entry.lots:
                used_lots.setdefault(str(lot.get("lot")), []).append({**use, "as_recorded": lot})
            for item in entry.equipment:
                used_instruments.setdefault(str(item.get("id")), []).append(
                    {**use, "as_recorded": item}
                )
        made, trees = self._trees(batch, list(used_lots))
        if not used_lots and not used_instruments and not made and not trees:
            return None
        lots = {lot: found for lot in used_lots if (found := self.materials.lot_named(lot))}
        instruments = self.materials.instruments() if used_instruments else {}
        return {
            "batch": batch.id,
            "made_in_this_batch": made,
            "trees": trees,
            "lots": [
                {
                    "lot": lot,
                    "registered": lots[lot].row() if lot in lots else None,
                    "used": uses,
                }
                for lot, uses in used_lots.items()
            ],
            "instruments": [
                {
                    "id": ident,
                    "registered": instruments[ident].row() if ident in instruments else None,
                    "used": uses,
                }
                for ident, uses in used_instruments.items()
            ],
        }

    def _trees(
        self, batch: Batch, used: list[str]
    ) -> tuple[list[dict[str, Any]], dict[str, dict[str, Any]]]:
        """The materials made in BATCH, and the lineage tree of each material it used (up:
        what it was made from) or made (up and down: what was made from it), where
        materials have lineage; ([], {}) when none has."""
        if self.lineage is None:
            return [], {}
        made = self.lineage.made_in(batch.id)  # read by the batch, not every material
        own = [m.lot for m in made]
        known = self.lineage.known()
        trees: dict[str, dict[str, Any]] = {}
        for lot in dict.fromkeys([*used, *own]):
            if lot not in own and known.named(lot) is None:
                continue
            directions = ("up", "down") if lot in own else ("up",)
            found = {d: asdict(self.lineage.trace(lot, d)) for d in directions}
            if any(view["edges"] for view in found.values()):
                trees[lot] = found
        return [_plain(m.row()) for m in made], trees

    # --- the long table ---------------------------------------------------------------------
    def rows(self, batch_id: str | None, since: str | None = None) -> Iterator[tuple[str, ...]]:
        """The long table's rows: of one batch (its events only), or of every batch (None)
        written to since SINCE, batch after batch."""
        if batch_id is not None:
            yield from table.batch_rows(self.ctx.batch(batch_id), since)
            return
        where = BatchFilter(updated_since=since) if since else None
        ids = [str(r[0]) for r in self.ctx.store.batch_table(where, ("batch_id",))]
        for ident in ids:  # the ids first: no cursor stays open while batches are read
            yield from table.batch_rows(self.ctx.batch(ident), since)

    def write_table(
        self, fmt: str, output: str | None, batch_id: str | None, since: str | None = None
    ) -> int:
        """The long table as CSV (to OUTPUT, or standard output when None) or XLSX (to
        OUTPUT); how many rows. Written whole or not at all."""
        if fmt not in ("csv", "xlsx"):
            raise Refused(f"no table format {fmt!r}; use csv or xlsx")
        if batch_id is not None:
            self.ctx.batch(batch_id)  # a batch that does not exist: NotFound before a file
        rows = self.rows(batch_id, since)
        if fmt == "xlsx":
            if not output:
                raise Refused(
                    "an XLSX table must be written to a file; name one",
                    hint=Hint("give_output_file"),
                )
            return table.atomic_file(output, lambda path: table.write_xlsx(rows, path))
        if not output:
            return table.write_csv(rows, sys.stdout)

        def to_csv(path: Path) -> int:
            with path.open("w", encoding="utf-8", newline="") as handle:
                return table.write_csv(rows, handle)

        return table.atomic_file(output, to_csv)


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """A material's row as JSON can hold it (its decimal amounts as text)."""
    return {k: str(v) if isinstance(v, Decimal) else v for k, v in row.items()}


def _zip(folder: str, files: dict[str, bytes], now: datetime) -> bytes:
    """The archive: one root folder holding every file, deflated, dated NOW."""
    stamp = (now.year, now.month, now.day, now.hour, now.minute, now.second)
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as z:
        for path, data in files.items():
            info = zipfile.ZipInfo(f"{folder}/{path}", date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            z.writestr(info, data)
    return out.getvalue()


def read_archive(path: str | Path) -> tuple[str, dict[str, bytes], list[tuple[str, str]]]:
    """(root folder, files by path inside it, problems) of an ``.eln`` file.

    A file whose stored bytes no longer match their CRC (a changed byte in a compressed
    file) is a problem named by its path, not a crash."""
    try:
        z = zipfile.ZipFile(path)
    except FileNotFoundError:
        raise NotFound(f"no file {path}") from None
    except (zipfile.BadZipFile, OSError) as err:
        raise Refused(f"{path} is not a readable .eln (zip) archive: {err}") from None
    with z:
        names = [n for n in z.namelist() if not n.endswith("/")]
        roots = {n.split("/", 1)[0] for n in names}
        if len(roots) != 1 or any("/" not in n for n in names):
            raise Refused(
                f"{path}: an .eln archive holds exactly one folder at its root; found "
                f"{', '.join(sorted(roots)) or 'nothing'}"
            )
        root = roots.pop()
        files, problems = {}, []
        for name in names:
            inner = name.split("/", 1)[1]
            try:
                files[inner] = z.read(name)
            except (zipfile.BadZipFile, zlib.error, OSError) as err:  # a changed byte
                problems.append((inner, f"cannot be read ({err})"))
    return root, files, problems


def verify_file(path: str | Path) -> archive.ArchiveCheck:
    """Check an ``.eln`` archive: its signature, every file against the manifest, and the
    hash chain of its events. Needs no database."""
    root, files, problems = read_archive(path)
    check = archive.check_archive(root, files)
    check.problems[:0] = problems
    return check


__all__ = ["FORMATS", "Archive", "ExportService", "read_archive", "verify_file"]
