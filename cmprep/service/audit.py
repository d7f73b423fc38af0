"""The auditor's questions: every event in words, proof that nothing was changed, where
deviations cluster, and the query tables rebuilt from the log after a repair.

Proof that nothing was changed has four parts. The log's own checks (chains, heads,
signatures, the ledger) show an edit someone did not cover up. Signed checkpoints of the
ledger kept outside the database show one covered up by cutting the log short or by
recomputing every hash. The query tables, rebuilt from the log and compared, show an edit
of what lists and reports read. And the database's append-only rules must still be there.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from cmprep import events as ev
from cmprep.domain import anchors, people
from cmprep.domain.anchors import Checkpoint, CheckpointBreak
from cmprep.domain.audit import (
    Break,
    Problem,
    TableDiff,
    Unprotected,
    Verification,
    compare_rows,
    compare_search,
    describe,
    report_data,
    verify,
)
from cmprep.domain.batch import fold
from cmprep.domain.clock import from_iso, iso, parse_day_or_time
from cmprep.domain.signatures import seal_problem
from cmprep.errors import ClockBehind, CorruptLog, Hint, NotFound, Refused
from cmprep.service.access import Gate
from cmprep.service.context import Context
from cmprep.store.query import BatchFilter, DeviationFilter

ANCHORS_ENV = "CMPREP_ANCHORS"  # the checkpoint folder of this machine, if set


@dataclass(frozen=True)
class LedgerMark:
    """Where the ledger stood: its position (number of events) and the hash there."""

    pos: int
    hash: str


class AuditService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate  # the services' one gate: who is proven present lives there

    def trail(self, stream: str) -> list[dict[str, Any]]:
        """Every event of a batch, or of a system stream (``@users``, ``@security`` ...)."""
        if stream.startswith("@"):
            return [describe(e) for e in self.ctx.store.events(stream)]
        return [describe(e) for e in self.ctx.batch(stream).events]

    # --- verification ----------------------------------------------------------------------
    def verify(self, batch_id: str | None = None, anchors_dir: str | None = None) -> Verification:
        """(events checked, problems, checkpoints checked, their folder).

        Problems, in this order: breaks of the log (every chain, head, signature and the
        ledger recomputed), protections of the log that are gone, query-table rows that
        differ from the log, and checkpoints the ledger no longer extends. Checkpoints are
        read from ANCHORS_DIR, else from the folder ``anchors_folder`` names, if any.
        """
        store = self.ctx.store
        streams = {sid: store.events(sid) for sid in store.stream_ids()}
        heads = store.recorded_heads()
        if batch_id and batch_id not in streams and batch_id not in heads:
            raise NotFound(f"no batch {batch_id!r}")
        folder = self.anchors_folder(anchors_dir)
        if folder is not None and not folder.is_dir():
            raise NotFound(
                f"the checkpoint folder {folder} does not exist or is not a folder (is the "
                "share mounted?); nothing was checked"
            )
        ledger = store.ledger()
        problems: list[Problem] = list(verify(streams, heads, ledger, batch_id))
        problems += [Unprotected(p) for p in store.missing_protections()]
        problems += [d for d in self.table_differences() if not batch_id or d.stream == batch_id]
        checkpoints = 0
        if folder is not None:
            found, checkpoints = self.check_checkpoints(folder, streams, ledger)
            problems += found
        checked = sum(len(v) for k, v in streams.items() if not batch_id or k == batch_id)
        return Verification(checked, problems, checkpoints, str(folder) if folder else None)

    def ledger_head(self) -> str:
        """The hash of the newest ledger entry: print it, keep it outside, compare it later."""
        return self.ledger_mark().hash

    def ledger_mark(self) -> LedgerMark:
        """The ledger's position and head hash now: what a record or report was made from."""
        entries = self.ctx.store.ledger()
        return (
            LedgerMark(entries[-1].pos, entries[-1].hash) if entries else LedgerMark(0, ev.GENESIS)
        )

    # --- the query tables ------------------------------------------------------------------
    def _rebuilt(
        self, strict: bool
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[TableDiff]]:
        """Batch and deviation rows folded from the log, as the write path makes them.

        STRICT: a batch whose log does not replay raises (a rebuild must not drop it);
        otherwise it is returned as a finding and left out.
        """
        batches: list[dict[str, Any]] = []
        deviations: list[dict[str, Any]] = []
        unreadable: list[TableDiff] = []
        for batch_id in self.ctx.store.batch_ids():
            events = self.ctx.store.events(batch_id)
            if not events or events[0].type != ev.BATCH_STARTED:
                continue
            try:
                b = fold(events)
            except CorruptLog as err:
                if strict:
                    raise
                unreadable.append(
                    TableDiff("batches", batch_id, batch_id, f"cannot be rebuilt: {err.message}")
                )
                continue
            batches.append(b.projection())
            deviations.extend(d.row() for d in b.deviations.values())
        return batches, deviations, unreadable

    def table_differences(self) -> list[TableDiff]:
        """Every query-table row that is not what the log says: missing, extra, a changed
        column (as read back), or a column that makes a search find the wrong rows."""
        batches, deviations, found = self._rebuilt(strict=False)
        store = self.ctx.store
        stored_batches = store.batch_rows(BatchFilter())
        stored_devs = store.deviation_rows(DeviationFilter())
        found += compare_rows("batches", "batch_id", batches, stored_batches)
        found += compare_rows("deviations", "deviation_id", deviations, stored_devs)
        found += self._search_differences(batches, deviations)
        return found

    def _search_differences(
        self, batches: list[dict[str, Any]], deviations: list[dict[str, Any]]
    ) -> list[TableDiff]:
        """Ask the store each search a list or report can make, for every value the log
        holds, and compare what it finds with what the log says it should."""
        store = self.ctx.store
        found: list[TableDiff] = []
        batch_of = {str(r["batch_id"]): str(r["batch_id"]) for r in batches}
        for column in ("protocol_id", "state"):
            for value in sorted({r[column] for r in batches if r.get(column)}):
                expected = {str(r["batch_id"]) for r in batches if r.get(column) == value}
                got = {str(r["batch_id"]) for r in store.batch_rows(BatchFilter(**{column: value}))}
                found += compare_search("batches", f"{column} = {value!r}", expected, got, batch_of)
        batch_of = {str(r["deviation_id"]): str(r["batch_id"]) for r in deviations}
        for column in ("batch_id", "protocol_id", "step", "severity", "status", "opened_by"):
            for value in sorted({r[column] for r in deviations if r.get(column)}):
                expected = {str(r["deviation_id"]) for r in deviations if r.get(column) == value}
                rows = store.deviation_rows(DeviationFilter(**{column: value}))
                got = {str(r["deviation_id"]) for r in rows}
                found += compare_search(
                    "deviations", f"{column} = {value!r}", expected, got, batch_of
                )
        for r in deviations:  # each deviation's id and opening time, to the second
            ident, opened = str(r["deviation_id"]), str(r["opened_at"])
            second = DeviationFilter(deviation_id=ident, since=opened, until=_next_second(opened))
            got = {str(x["deviation_id"]) for x in store.deviation_rows(second)}
            search = f"deviation_id = {ident!r}, opened at {opened}"
            found += compare_search("deviations", search, {ident}, got, batch_of)
        return found

    def rebuild_projections(self) -> int:
        """Recompute the query tables from the event log (after an upgrade or a repair)."""
        batches, deviations, _ = self._rebuilt(strict=True)
        self.ctx.store.replace_projections(batches, deviations)
        return len(batches)

    # --- checkpoints of the ledger -----------------------------------------------------------
    def anchors_folder(self, given: str | None) -> Path | None:
        """Where checkpoints are written and read: the folder given, else this machine's
        CMPREP_ANCHORS, else the site setting; None when none is set.

        The one place that chooses, so a new source (a setting per database) changes this
        function only.
        """
        chosen = (given or os.environ.get(ANCHORS_ENV) or self.ctx.settings().anchor_dir).strip()
        return Path(chosen).expanduser() if chosen else None

    def anchor(
        self, actor: str, password: str | None, to: str | None = None
    ) -> tuple[Path, Checkpoint]:
        """Sign the ledger's head into a new checkpoint file outside the database.

        Refused, with nothing signed: when no folder is set or it does not exist (an
        unmounted share must not turn into a local folder), when the log already has a
        break (a checkpoint would vouch for it), and when the clock is behind the log.
        """
        name = self.gate.person(actor, "anchor")
        folder = self.anchors_folder(to)
        if folder is None:
            raise Refused(
                "no folder for ledger checkpoints is set; nothing was signed",
                hint=Hint("anchor_folder"),
            )
        if not folder.is_dir():
            raise NotFound(
                f"the checkpoint folder {folder} does not exist or is not a folder (is the "
                "share mounted?); nothing was signed",
                hint=Hint("anchor_folder"),
            )
        store = self.ctx.store
        streams = {sid: store.events(sid) for sid in store.stream_ids()}
        ledger = store.ledger()
        breaks = verify(streams, store.recorded_heads(), ledger)
        if breaks:
            raise Refused(
                f"the log has {len(breaks)} break(s); a checkpoint would vouch for it, so "
                "nothing was signed",
                [str(b) for b in breaks],
            )
        if not ledger:
            raise Refused("the ledger is empty: there is nothing to anchor yet")
        head = ledger[-1]
        now = self.ctx.clock()
        newest = streams[head.stream][-1].recorded_at
        if iso(now) < newest:
            raise ClockBehind(
                f"the system clock ({iso(now)}) is earlier than the newest entry of the log "
                f"({newest}); nothing was signed",
                hint=Hint("check_clock"),
            )
        signer = self.gate.authenticate(name, password, anchors.MEANING)
        signature = self.gate.signature(
            anchors.MEANING, signer, now, anchors.subject(head.pos), head.hash
        )
        cp = Checkpoint(head.pos, head.hash, iso(now), name, signature)
        return _write_new(folder / cp.file_name, cp.text()), cp

    def check_checkpoints(
        self, folder: Path, streams: dict[str, list[ev.Event]], ledger: list[ev.LedgerEntry]
    ) -> tuple[list[CheckpointBreak], int]:
        """(problems, checkpoints read) of every checkpoint file in FOLDER, oldest first."""
        ring = people.key_ring(streams.get(people.USERS_STREAM, []))
        found: list[CheckpointBreak] = []
        files = sorted(p for p in folder.iterdir() if anchors.is_checkpoint_name(p.name))
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                found.append(CheckpointBreak(path.name, f"cannot be read: {err}"))
                continue
            found += anchors.check(path.name, text, ledger, lambda s: seal_problem(s, ring))
        return found, len(files)

    # --- the report --------------------------------------------------------------------------
    def report(self, since: str | None = None) -> dict[str, Any]:
        """Deviations across batches by step, protocol, severity and person."""
        if since:
            try:
                since = parse_day_or_time(since)
            except ValueError as err:
                raise Refused(f"the start of the period: {err}") from None
        store = self.ctx.store
        return report_data(
            store.deviation_rows(DeviationFilter()),
            store.batch_rows(BatchFilter()),
            self.ctx.clock(),
            since,
        )


def _next_second(moment: str) -> str:
    """The stored time one second after MOMENT (times are kept to the second)."""
    return iso(from_iso(moment) + timedelta(seconds=1))


def _write_new(path: Path, text: str) -> Path:
    """Write TEXT to PATH whole or not at all, never replacing a file already there.

    The text goes to a temporary file first, flushed to disk, and is then linked under
    its name: a reader sees the whole checkpoint or none, and a link fails where a rename
    would silently replace an older checkpoint. Where the filesystem has no links (some
    shares), the file is created exclusively instead.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "x", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise Refused(f"a checkpoint {path.name} already exists; nothing was written") from None
    except OSError:  # no hard links here: exclusive creation still never replaces a file
        try:
            with open(path, "x", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
        except FileExistsError:
            raise Refused(f"a checkpoint {path.name} already exists; nothing was written") from None
    finally:
        tmp.unlink(missing_ok=True)
    with contextlib.suppress(OSError):  # make the new name durable too, where possible
        fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return path


__all__ = ["ANCHORS_ENV", "AuditService", "Break", "LedgerMark", "Verification"]
