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
import json
import os
from collections import deque
from collections.abc import Callable, Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import timedelta
from functools import partial
from itertools import chain, groupby
from pathlib import Path
from typing import Any, NamedTuple

from cmprep import events as ev
from cmprep.domain import anchors, ids, lineage, people, qc_points, uses
from cmprep.domain import traceability as tr
from cmprep.domain.anchors import Checkpoint, CheckpointBreak
from cmprep.domain.audit import (
    Break,
    Problem,
    TableDiff,
    Unprotected,
    Verification,
    check_stream,
    compare_rows,
    compare_search,
    describe,
    emptied_breaks,
    is_signed,
    ledger_breaks,
    lineage_differences,
    missed_searches,
    signature_breaks,
    unledgered_breaks,
)
from cmprep.domain.clock import from_iso, iso
from cmprep.domain.keyring import KeyRing
from cmprep.domain.protocols import PROTOCOLS_STREAM
from cmprep.domain.settings import SETTINGS_STREAM
from cmprep.domain.signatures import seal_problem
from cmprep.errors import ClockBehind, CorruptLog, Hint, NotFound, Refused
from cmprep.events import Event
from cmprep.service import log_parts, report
from cmprep.service.access import Gate
from cmprep.service.context import Context
from cmprep.service.kept_rows import (
    BATCH_SEARCHED,
    BATCH_SEARCHES,
    DEVIATION_SEARCHED,
    DEVIATION_SEARCHES,
    ByStream,
    Kept,
    StreamedRows,
    kept_by_key,
)
from cmprep.service.report import LedgerMark
from cmprep.store.chain import Head, is_system
from cmprep.store.query import (
    ROW,
    DeviationFilter,
    Projected,
    Span,
    register_of,
)

ANCHORS_ENV = "CMPREP_ANCHORS"  # the checkpoint folder of this machine, if set


# The streams beside the batches, each one folded by its own domain module.
SYSTEM_STREAMS = (
    people.USERS_STREAM,
    people.SECURITY_STREAM,
    SETTINGS_STREAM,
    PROTOCOLS_STREAM,
    tr.MATERIALS_STREAM,
    tr.EQUIPMENT_STREAM,
)


class AuditService:
    def __init__(self, ctx: Context, gate: Gate) -> None:
        self.ctx = ctx
        self.gate = gate  # the services' one gate: who is proven present lives there

    def trail(self, stream: str) -> list[dict[str, Any]]:
        """Every event of a batch, or of a system stream (``@users``, ``@security`` ...),
        either named in any case; an unknown one is NotFound naming those there are."""
        if stream.startswith("@"):
            name = ids.same(stream, SYSTEM_STREAMS)
            if name is None:
                raise NotFound(
                    f"no stream {stream!r}{ids.suggestion(stream, SYSTEM_STREAMS)}; the "
                    f"system streams are {', '.join(SYSTEM_STREAMS)}, and a batch is named "
                    "by its id"
                )
            return [describe(e) for e in self.ctx.store.events(name)]
        return [describe(e) for e in self.ctx.batch(stream).events]

    # --- verification ----------------------------------------------------------------------
    def verify(
        self, batch_id: str | None = None, anchors_dir: str | None = None, all_seals: bool = False
    ) -> Verification:
        """(events checked, problems, checkpoints checked, their folder, signed events a
        checkpoint vouched for, that checkpoint's file).

        Problems, in this order: breaks of the log (every chain, head, signature and the
        ledger recomputed), protections of the log that are gone, query-table rows that
        differ from the log, and checkpoints the ledger no longer extends. Checkpoints are
        read from ANCHORS_DIR, else from the folder ``anchors_folder`` names, if any.

        The seals (Ed25519) are most of the cost of a verification. Those of events
        committed up to the newest checkpoint that holds are not checked again, unless
        ALL_SEALS: when that checkpoint was signed every seal up to it was checked (``anchor``
        refuses a log with a break), and its signed ledger hash, which this verification
        finds recomputed from the same events, proves those events unchanged since. A log
        with any break vouches for nothing: it is then read again with every seal checked.
        With BATCH_ID every seal of that batch is checked (the ledger is not recomputed
        whole, so the checkpoint cannot vouch for it).

        That checkpoint's list of batches (``anchors.Vouched``) spares the fold of each
        batch whose head (seq and hash) and query-table rows (their digest) are what it
        recorded: its rows were then found equal to its log's fold, and the same chain
        folds to the same rows. Any other batch is folded and compared. ALL_SEALS, or
        BATCH_ID, trusts no checkpoint for this either.

        The log is read once as a stream (see ``_check_log``): memory stays that of one
        stream's events, and with BATCH_ID only that batch's events and ledger entries
        (and the entry before each) are read.
        """
        store = self.ctx.store
        if batch_id and store.head(batch_id) is None and not store.emptied_streams(batch_id):
            raise NotFound(f"no batch {batch_id!r}")
        folder = self.anchors_folder(anchors_dir)
        if folder is not None and not folder.is_dir():
            raise NotFound(
                f"the checkpoint folder {folder} does not exist or is not a folder (is the "
                "share mounted?); nothing was checked"
            )
        checked = self.check_checkpoints(folder) if folder is not None else None
        trusted = checked.trusted if checked and not (all_seals or batch_id) else None
        vouching = checked.tables if checked and trusted else None
        log = self._check_log(
            batch_id, tables=True, trust=trusted.position if trusted else 0, vouching=vouching
        )
        if log.breaks and trusted:  # a broken log vouches for nothing: every seal again
            trusted, log = None, self._check_log(batch_id, tables=True)
        problems: list[Problem] = list(log.breaks)
        problems += [Unprotected(p) for p in store.missing_protections()]
        problems += log.tables
        if checked:
            problems += checked.breaks
        return Verification(
            log.events,
            problems,
            checked.count if checked else 0,
            str(folder) if folder else None,
            vouched=log.vouched,
            vouched_by=trusted.file_name if trusted else None,
            tables_vouched=log.tables_vouched,
            tables_folded=log.tables_folded,
            parts=log.parts,
        )

    def _check_log(
        self,
        only: str | None,
        tables: bool,
        trust: int = 0,
        vouching: anchors.VouchedTables | None = None,
        collect: anchors.VouchedTables | None = None,
    ) -> _LogCheck:
        """Every stream's chain, recorded head and signatures, the global ledger, and (with
        TABLES) each batch's query-table rows, from one read of the log.

        Streams come from the store in order, one at a time, and each is done with before
        the next is read; the ledger then passes by position with nothing kept but the last
        hash. ONLY: that stream alone, and its ledger entries each linked to the entry
        before it. TRUST: the ledger position up to which a checkpoint vouches for the
        seals (0: none); a stream wholly before it is not even parsed for its signatures.
        VOUCHING: the batches whose tables that checkpoint vouches for; COLLECT: where to
        note each batch whose rows are found equal to its log's fold (what ``anchor``
        signs).

        Every read is made at one moment where the store can give one (``one_moment``: on
        PostgreSQL, every connection and every part's process reads one snapshot), so a
        batch written while a verification of a live server runs is checked as it stood.
        """
        with self.ctx.store.one_moment():
            return self._check_log_at_once(only, tables, trust, vouching, collect)

    def _check_log_at_once(
        self,
        only: str | None,
        tables: bool,
        trust: int,
        vouching: anchors.VouchedTables | None,
        collect: anchors.VouchedTables | None,
    ) -> _LogCheck:
        store = self.ctx.store
        users = store.events(people.USERS_STREAM)
        found = _LogCheck(
            ring=people.key_ring(users),
            trust=trust,
            uses=store.uses_indexed(),
            vouching=vouching,
            collect=collect,
        )
        tail = store.ledger_tail() if only is None else None
        spans = log_parts.spans(store, tail.pos) if tail is not None else [None]
        # the spans after the first each in a process of its own (``log_parts``), started
        # before this one checks the first span and walks the ledger
        children = [
            log_parts.Forked(partial(self._part, span, tables, users, found)) for span in spans[1:]
        ]
        try:
            self._check_streams(found, only, spans[0], tables, users)
            breaks = emptied_breaks(store.emptied_streams(only))
            breaks += ledger_breaks(store.iter_ledger(only), self._hash_at if only else None)
            breaks += unledgered_breaks(store.unledgered(only))
            diffs: list[TableDiff] = []
            if tables and only is None:  # rows of batches the log does not have at all
                for batch_id in store.unlogged_batches():
                    diffs += self._batch_tables(batch_id, [], found.uses)[0]
                diffs += lineage_differences(self._logged_edges(), store.iter_lineage_edges())
                diffs += self._register_tables()
            for span, child in zip(spans[1:], children, strict=True):
                # what a child found, in the order of the spans; one that failed: here
                found.add(child.result() or self._part(span, tables, users, found, here=True))
        finally:
            for child in children:
                child.stop()
        found.parts = len(spans)
        found.breaks += breaks
        found.tables += diffs
        return found

    def _check_streams(
        self,
        found: _LogCheck,
        only: str | None,
        span: Span | None,
        tables: bool,
        users: list[Event],
    ) -> None:
        """Each stream of the log (ONLY, or those within SPAN), one at a time, each done
        with before the next is read: its chain, head and seals, and (with TABLES) its
        batch's query-table rows, noted in FOUND."""
        store = self.ctx.store
        # each table read once beside the log, not four reads a batch (StreamedRows), and
        # how far the checkpoint vouches for each stream, not one read a stream
        streamed = StreamedRows(store, found.uses, span) if tables and not only else None
        trust = found.trust
        through = ByStream(store.iter_ledgered_through(trust, span)) if trust and not only else None
        log = store.iter_events(only) if span is None else store.iter_events(span=span)
        for stream, group in groupby(log, key=_stream_of):
            rows = iter(group)
            first, head = next(rows)
            stored = chain([first], (r for r, _ in rows))
            taken = streamed.take(stream) if streamed is not None else None
            vouched = through.take(stream) if through is not None else []
            upto = int(vouched[0][0]) if vouched else None
            if is_system(stream):
                self._check_system(stream, stored, head, users, found, upto)
            else:
                self._check_batch(stream, list(stored), head, tables, found, taken, upto)
            if tables and is_system(stream):  # no batch here: any row under its id is extra
                found.tables += self._batch_tables(stream, [], found.uses)[0]

    def _part(
        self,
        span: Span | None,
        tables: bool,
        users: list[Event],
        like: _LogCheck,
        here: bool = False,
    ) -> _Part:
        """The streams within SPAN checked as ``_check_streams`` does, for a verification
        made in parts (LIKE: what every part shares). In a forked child (not HERE) through
        a store of its own: the parent's connection is kept open, untouched, until the
        child ends, so nothing of it is closed under the parent."""
        parents = self.ctx.store
        if not here:
            self.ctx.store = parents.reopened()
        found = _LogCheck(
            ring=like.ring,
            trust=like.trust,
            uses=like.uses,
            vouching=like.vouching,
            collect=anchors.VouchedTables() if like.collect is not None else None,
        )
        try:
            self._check_streams(found, None, span, tables, users)
        finally:
            if not here:  # the parent's store back in place: never collected (and closed)
                self.ctx.store.close()
                self.ctx.store = parents
        return _Part(
            found.events,
            found.vouched,
            found.breaks,
            found.tables,
            found.tables_vouched,
            found.tables_folded,
            found.collect,
        )

    def _register_tables(self) -> list[TableDiff]:
        """The lots, instruments and materials registers (what a step naming one, or a
        write to its stream, reads) against what their streams give; a table an upgraded
        database has not filled yet is not compared. Each stream is read once, and only
        the events a register folds are parsed."""
        found: list[TableDiff] = []
        registers: list[tuple[str, str, Collection[str], Callable[[list[Event]], list[Any]]]] = [
            ("lot", tr.MATERIALS_STREAM, {tr.LOT_REGISTERED},
             lambda es: [x.row() for x in tr.fold_lots(es).values()]),
            ("material", lineage.MATERIALS_STREAM, {tr.LOT_REGISTERED, *lineage.LINEAGE_EVENTS},
             lambda es: [x.stored() for x in lineage.fold_materials(es).values()]),
            ("instrument", tr.EQUIPMENT_STREAM, tr.EQUIPMENT_TYPES,
             lambda es: [x.row() for x in tr.fold_equipment(es).values()]),
        ]  # fmt: skip
        store = self.ctx.store
        whole = [r for r in registers if store.register_whole(r[0])]
        for stream in dict.fromkeys(r[1] for r in whole):
            mine = [r for r in whole if r[1] == stream]
            wanted = set().union(*(r[2] for r in mine))
            events = []
            for stored, _ in store.iter_events(stream):
                if stored.type in wanted:
                    try:
                        events.append(stored.event())
                    except ValueError:  # the log's checks name its break
                        continue
            for kind, _stream, types, fold in mine:
                try:
                    logged = fold([e for e in events if e.type in types])
                except (KeyError, TypeError, ArithmeticError):  # an event cmprep did not write
                    continue
                table, key = register_of(kind)
                diffs = compare_rows(table, key, logged, store.registered_rows(kind))
                found += [replace(d, stream=stream) for d in diffs]
        return found

    def _logged_edges(self) -> Iterator[dict[str, Any]]:
        """The lineage edges the ``@materials`` log gives, derivation by derivation as it
        is read. A derivation that cannot be read gives none (the log's checks name it)."""
        for stored, _ in self.ctx.store.iter_events(lineage.MATERIALS_STREAM):
            if stored.type != lineage.MATERIAL_DERIVED:
                continue
            try:
                yield from lineage.edges([stored.event()])
            except (ValueError, KeyError, TypeError):  # a payload cmprep did not write
                continue

    def _check_batch(
        self,
        stream: str,
        stored: list[ev.StoredEvent],
        head: Head | None,
        tables: bool,
        found: _LogCheck,
        taken: Kept | None = None,
        upto: int | None = None,
    ) -> None:
        """One batch, its events kept while it is checked: its signatures and its fold
        read all of them. They are parsed only when something reads them: the fold (for
        the query tables) or a signature. TAKEN: its rows as streamed beside the log, if
        they were; read again by key when their digest is not the one vouched for. UPTO:
        how far the trusted checkpoint vouches for its seals, if read beside the log."""
        check = check_stream(stream, stored, head)
        found.events += check.events
        found.breaks += check.breaks
        signed = [r.seq for r in stored if is_signed(r)] if check.whole else []
        after = self._vouched(stream, signed, found, upto)
        unchecked = bool(signed) and after < signed[-1]
        intact = check.whole and not check.breaks and head is not None
        kept, fold = None, tables
        vouching = found.vouching if tables and intact else None
        known = vouching.get(stream) if vouching is not None else None
        if known is not None and head is not None and (known.seq, known.head) == head:
            kept = taken
            same = kept is not None and kept.digest() == known.digest
            if not same:  # not streamed, or not as vouched for: as read by its key
                kept = kept_by_key(self.ctx.store, stream, found.uses)
                same = kept.digest() == known.digest
            if same:  # the rows the checkpoint found equal, unchanged
                fold = False
                found.tables_vouched += 1
                if found.collect is not None:
                    found.collect.add(stream, known)
        events = _parsed(stored) if fold or unchecked else []
        if unchecked and events:
            found.breaks += signature_breaks(stream, events, found.ring, after)
        if fold:
            kept = kept or taken
            streamed = taken is not None and kept is taken
            diffs, kept = self._batch_tables(stream, events, found.uses, kept, streamed)
            found.tables += diffs
            found.tables_folded += 1
            if found.collect is not None and intact and events and head and not diffs:
                found.collect.add(stream, anchors.Vouched(*head, kept.digest()))

    def _check_system(
        self,
        stream: str,
        stored: Iterable[ev.StoredEvent],
        head: Head | None,
        users: list[ev.Event],
        found: _LogCheck,
        upto: int | None = None,
    ) -> None:
        """One system stream, checked as its events pass (``@security`` grows with every
        refusal); read again, parsed, only when one of its events is signed."""
        read = _Signed(stored)
        check = check_stream(stream, read, head)
        found.events += check.events
        found.breaks += check.breaks
        after = self._vouched(stream, read.signed, found, upto) if check.whole else 0
        if check.whole and read.signed and after < read.signed[-1]:
            store = self.ctx.store
            events = (
                users
                if stream == people.USERS_STREAM
                else [r.event() for r, _ in store.iter_events(stream)]
            )
            found.breaks += signature_breaks(stream, events, found.ring, after)

    def _vouched(
        self, stream: str, signed: list[int], found: _LogCheck, upto: int | None = None
    ) -> int:
        """The seq up to which STREAM's seals are vouched for by the checkpoint FOUND
        trusts (0: none), counting the signed events (SIGNED: their seqs) it covers. UPTO:
        that seq as read beside the log; else (the stream had no entry there) asked."""
        if not signed or not found.trust:
            return 0
        after = upto if upto is not None else self.ctx.store.ledgered_through(stream, found.trust)
        found.vouched += sum(1 for seq in signed if seq <= after)
        return after

    def _hash_at(self, pos: int) -> str | None:
        entry = self.ctx.store.ledger_at(pos)
        return entry.hash if entry else None

    def ledger_head(self) -> str:
        """The hash of the newest ledger entry: print it, keep it outside, compare it later."""
        return self.ledger_mark().hash

    def ledger_mark(self) -> LedgerMark:
        """The ledger's position and head hash now (``cmprep.service.report``)."""
        return report.ledger_mark(self.ctx)

    # --- the query tables ------------------------------------------------------------------
    def table_differences(self) -> list[TableDiff]:
        """Every query-table row that is not what the log says: missing, extra, a changed
        column (as read back), or a column that makes a search find the wrong rows.
        Compared batch by batch as the log is read (``_batch_tables``)."""
        return self._check_log(None, tables=True).tables

    def _deviations_kept(
        self, where: DeviationFilter
    ) -> list[tuple[dict[str, Any], dict[str, Any]]]:
        return _parsed_rows(
            DEVIATION_SEARCHED, self.ctx.store.deviation_table(where, (*DEVIATION_SEARCHED, ROW))
        )

    def _batch_tables(
        self,
        batch_id: str,
        events: list[ev.Event] | None,
        kept_uses: bool = False,
        kept: Kept | None = None,
        streamed: bool = False,
    ) -> tuple[list[TableDiff], Kept]:
        """BATCH_ID's query-table rows (KEPT, else read by key) against the rows its
        EVENTS fold to ([]: the log has no batch there, so every row is extra; None: an
        event of it cannot be read), and the rows compared. Rows STREAMED beside the log
        that differ are read again by key and compared again: only what the rows kept
        under the batch's key differ in is said."""
        kept = kept or kept_by_key(self.ctx.store, batch_id, kept_uses)
        if events is None:
            return [
                TableDiff(
                    "batches", batch_id, batch_id, "cannot be rebuilt: an event cannot be read"
                )
            ], kept
        batches: list[dict[str, Any]] = []
        deviations: list[dict[str, Any]] = []
        points: list[dict[str, Any]] = []
        used: list[dict[str, Any]] = []
        if events and events[0].type == ev.BATCH_STARTED:
            try:
                b = self.ctx.fold(events)
            except CorruptLog as err:
                problem = f"cannot be rebuilt: {err.message}"
                return [TableDiff("batches", batch_id, batch_id, problem)], kept
            batches, deviations, points = [b.projection()], _deviation_rows(b), qc_points.points(b)
            used = uses.lot_uses(b)
        found = self._compared(batch_id, kept, kept_uses, batches, deviations, points, used)
        if found and streamed:
            kept = kept_by_key(self.ctx.store, batch_id, kept_uses)
            found = self._compared(batch_id, kept, kept_uses, batches, deviations, points, used)
        return found, kept

    def _compared(
        self,
        batch_id: str,
        kept: Kept,
        kept_uses: bool,
        batches: list[dict[str, Any]],
        deviations: list[dict[str, Any]],
        points: list[dict[str, Any]],
        used: list[dict[str, Any]],
    ) -> list[TableDiff]:
        """KEPT, BATCH_ID's rows, against those its log folds to."""
        kept_batches = _parsed_rows(BATCH_SEARCHED, kept.batches)
        found = compare_rows("batches", "batch_id", batches, [row for _, row in kept_batches])
        for want in batches:
            have = kept_batches[0][0] if kept_batches else None
            found += missed_searches("batches", batch_id, batch_id, want, have, BATCH_SEARCHES)
        kept_deviations = _parsed_rows(DEVIATION_SEARCHED, kept.deviations)
        found += self._deviation_tables(batch_id, deviations, kept_deviations)
        found += compare_rows(  # flat rows: a column edited is the row edited
            "qc_points", "point", _keyed(points), _keyed(kept.points)
        )
        if kept_uses:
            found += compare_rows("lot_uses", "use", _use_keyed(used), _use_keyed(kept.uses))
        return found

    def _deviation_tables(
        self,
        batch_id: str,
        deviations: list[dict[str, Any]],
        kept: list[tuple[dict[str, Any], dict[str, Any]]],
    ) -> list[TableDiff]:
        """The deviation rows kept under BATCH_ID against DEVIATIONS, those its log has.

        A row is read by its batch's column, and one the log has but that column does not
        find is read by its id: it is then a row whose batch was changed in the table.
        A row kept under the batch that the log gives another batch is said as a search
        that finds it; its own batch compares the rest of it.
        """
        ids = {str(columns["deviation_id"]) for columns, _ in kept}
        for d in deviations:
            if str(d["deviation_id"]) not in ids:
                kept += self._deviations_kept(DeviationFilter(deviation_id=str(d["deviation_id"])))
        logged = {str(d["deviation_id"]) for d in deviations}
        found: list[TableDiff] = []
        mine = []
        for _, row in kept:
            ident = str(row.get("deviation_id"))
            if ident not in logged and row.get("batch_id") not in (batch_id, None):
                search = f"batch_id = {batch_id!r}"
                found += compare_search("deviations", search, set(), {ident}, {ident: batch_id})
            else:
                mine.append(row)
        found = compare_rows("deviations", "deviation_id", deviations, mine) + found
        by_id = {str(columns["deviation_id"]): columns for columns, _ in kept}
        for d in deviations:
            ident, opened = str(d["deviation_id"]), str(d["opened_at"])
            have = by_id.get(ident)
            found += missed_searches("deviations", ident, batch_id, d, have, DEVIATION_SEARCHES)
            at = str(have.get("opened_at")) if have else ""
            if not opened <= at < _next_second(opened):  # each id and opening time, to the second
                search = f"deviation_id = {ident!r}, opened at {opened}"
                found += compare_search("deviations", search, {ident}, set(), {ident: batch_id})
        return found

    def rebuild_projections(self) -> int:
        """Recompute the query tables from the event log (after an upgrade or a repair):
        the number of batches. Each batch is folded as the store writes the one before, so
        memory is that of one batch; a log that does not replay raises CorruptLog and
        nothing is written."""
        written = self.ctx.store.replace_projections(self._projected())
        materials = self.ctx.store.events(lineage.MATERIALS_STREAM)
        self.ctx.store.replace_lineage_edges(lineage.edges(materials))  # the material graph
        lots = tr.fold_lots(materials).values()
        self.ctx.store.replace_registered("lot", [lot.row() for lot in lots])
        made = lineage.fold_materials(materials).values()
        self.ctx.store.replace_registered("material", [m.stored() for m in made])
        instruments = tr.fold_equipment(self.ctx.store.events(tr.EQUIPMENT_STREAM)).values()
        self.ctx.store.replace_registered("instrument", [i.row() for i in instruments])
        return written

    def _projected(self) -> Iterator[Projected]:
        """Every batch's query rows as its log folds to, one batch at a time."""
        store = self.ctx.store
        for batch_id in store.batch_ids():
            events = store.events(batch_id)
            if events and events[0].type == ev.BATCH_STARTED:
                b = self.ctx.fold(events)
                rows = (b.projection(), _deviation_rows(b), qc_points.points(b))
                yield Projected(*rows, uses.lot_uses(b))

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
        break (a checkpoint would vouch for it), when a checkpoint already in the folder
        fails (the new one would launder a rewrite), and when the clock is behind the log.
        The seals before the newest checkpoint that holds are vouched for by it, as in
        ``verify``.

        The password is checked first: a mistyped one is said at once, not after the whole
        log was read (minutes, for years of batches), and the memory its key derivation
        takes (scrypt) is given back before the log's check takes its own.
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
        signer = self.gate.authenticate(name, password, anchors.MEANING)
        store = self.ctx.store
        head = store.ledger_tail()  # read first: what is signed below was checked below
        checked = self.check_checkpoints(folder)
        trusted = checked.trusted
        log = self._check_log(
            None,
            tables=True,
            trust=trusted.position if trusted else 0,
            vouching=checked.tables,
            collect=anchors.VouchedTables(),
        )
        if log.breaks and trusted:  # every seal checked again, so every break is named
            log = self._check_log(None, tables=True, collect=anchors.VouchedTables())
        breaks = log.breaks
        if breaks:
            raise Refused(
                f"the log has {len(breaks)} break(s); a checkpoint would vouch for it, so "
                "nothing was signed",
                [str(b) for b in breaks],
            )
        if checked.breaks:  # a new checkpoint would launder a log rewritten since an old one
            raise Refused(
                f"{len(checked.breaks)} problem(s) with the checkpoints already in {folder}; "
                "a new one would vouch for a log that no longer extends them, so nothing was "
                "signed",
                [str(b) for b in checked.breaks],
            )
        if head is None:
            raise Refused("the ledger is empty: there is nothing to anchor yet")
        now = self.ctx.clock()
        last = deque((r.recorded_at for r, _ in store.iter_events(head.stream)), 1)
        newest = last[0] if last else ""  # the stream's newest event: the one the head names
        if iso(now) < newest:
            raise ClockBehind(
                f"the system clock ({iso(now)}) is earlier than the newest entry of the log "
                f"({newest}); nothing was signed",
                hint=Hint("check_clock"),
            )
        signature = self.gate.signature(
            anchors.MEANING, signer, now, anchors.subject(head.pos), head.hash
        )
        cp = Checkpoint(head.pos, head.hash, iso(now), name, signature)
        listed = log.collect or anchors.VouchedTables()
        digest = anchors.tables_sha256(listed.lines())
        tables = {
            "file": cp.tables_file_name,
            "sha256": digest,
            "batches": len(listed),
            "signature": self.gate.signature(
                anchors.MEANING, signer, now, anchors.tables_subject(head.pos), digest
            ),
        }
        cp = replace(cp, tables=tables)
        if (folder / cp.file_name).exists():  # said by the checkpoint's name, not its list's
            raise Refused(f"a checkpoint {cp.file_name} already exists; nothing was written")
        _write_new(folder / cp.tables_file_name, listed.lines())  # first: a checkpoint never
        return _write_new(folder / cp.file_name, [cp.text()]), cp  # names a list not written

    def check_checkpoints(self, folder: Path) -> _Checkpoints:
        """The problems of every checkpoint file in FOLDER (oldest first), how many were
        read, and the newest that holds: well formed, its seal made with its signer's
        key, and the ledger entry at its position still carrying its hash.

        Each is checked against the ledger entry at its position and the ledger's tail,
        read alone: two reads per checkpoint, whatever the length of the ledger.
        """
        store = self.ctx.store
        ring = people.key_ring(store.events(people.USERS_STREAM))
        tail = store.ledger_tail()
        found: list[CheckpointBreak] = []
        trusted: Checkpoint | None = None
        files = sorted(p for p in folder.iterdir() if anchors.is_checkpoint_name(p.name))
        for path in files:
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as err:
                found.append(CheckpointBreak(path.name, f"cannot be read: {err}"))
                continue
            cp, _ = anchors.parse(text)
            at = store.ledger_at(cp.position) if cp else None
            # the entries the check reads: the one at its position and the last, in order
            entries = sorted({e.pos: e for e in (at, tail) if e}.values(), key=lambda e: e.pos)
            problems = anchors.check(path.name, text, entries, lambda s: seal_problem(s, ring))
            found += problems
            if cp and not problems and (trusted is None or cp.position >= trusted.position):
                trusted = cp
        vouching, broken = self._vouched_tables(folder, trusted, ring)
        return _Checkpoints(found + broken, len(files), trusted, vouching)

    def _vouched_tables(
        self, folder: Path, cp: Checkpoint | None, ring: KeyRing
    ) -> tuple[anchors.VouchedTables | None, list[CheckpointBreak]]:
        """The batches whose query tables CP (the newest checkpoint that holds) vouches
        for, read from its list beside it once its hash and second signature hold; none,
        and why, when they do not (the folder was tampered with: the tables are then all
        compared with the log). Only this checkpoint's list is read: older ones are not
        used, and reading each would cost more with every checkpoint taken."""
        if cp is None or cp.tables is None:
            return None, []
        path = folder / cp.tables_file_name
        try:
            with open(path, encoding="utf-8", newline="") as f:
                digest: str | None = anchors.tables_sha256(f)  # read as it passes
        except (OSError, UnicodeDecodeError):
            digest = None
        problems = anchors.tables_problems(cp, digest)
        sig = cp.tables.get("signature")
        if not problems and isinstance(sig, dict) and (bad := seal_problem(sig, ring)):
            problems.append(f"its table list's signature: {bad}")
        if not problems:
            try:
                with open(path, encoding="utf-8", newline="") as f:
                    return anchors.VouchedTables.read(f), []
            except (OSError, UnicodeDecodeError, ValueError) as err:
                problems.append(f"its table list {cp.tables_file_name}: {err}")
        return None, [CheckpointBreak(cp.file_name, p) for p in problems]

    # --- the report --------------------------------------------------------------------------
    def report(self, since: str | None = None, until: str | None = None) -> dict[str, Any]:
        """The deviation audit report's figures (``cmprep.service.report``)."""
        return report.report(self.ctx, since, until)


@dataclass
class _LogCheck:
    """What one read of the log found: events read, breaks, query-table differences (and
    the key ring the signatures are checked with)."""

    ring: KeyRing
    trust: int = 0  # the ledger position up to which a checkpoint vouches for the seals
    events: int = 0
    vouched: int = 0  # signed events whose seals were not checked again
    uses: bool = False  # whether the lot uses are kept (compared batch by batch)
    breaks: list[Break] = field(default_factory=list)
    tables: list[TableDiff] = field(default_factory=list)
    vouching: anchors.VouchedTables | None = None  # whose tables the checkpoint vouches for
    collect: anchors.VouchedTables | None = None  # what an anchor will vouch for
    tables_vouched: int = 0  # batches not folded: their head and rows as vouched for
    tables_folded: int = 0  # batches folded and compared
    parts: int = 1  # the processes the streams were checked in (``log_parts``)

    def add(self, part: _Part) -> None:
        """What a part of the log found (``AuditService._part``), after what this has."""
        self.events += part.events
        self.vouched += part.vouched
        self.breaks += part.breaks
        self.tables += part.tables
        self.tables_vouched += part.tables_vouched
        self.tables_folded += part.tables_folded
        if self.collect is not None and part.collect is not None:
            self.collect.extend(part.collect)


class _Part(NamedTuple):
    """What one part of the log found, as a forked child sends it back (no key ring, no
    checkpoint list: the parent has both)."""

    events: int
    vouched: int
    breaks: list[Break]
    tables: list[TableDiff]
    tables_vouched: int
    tables_folded: int
    collect: anchors.VouchedTables | None


@dataclass
class _Checkpoints:
    """What the checkpoint folder held: the problems of its files, how many were read,
    and the newest one that holds (its position is as far as the ledger is vouched for)."""

    breaks: list[CheckpointBreak]
    count: int
    trusted: Checkpoint | None
    tables: anchors.VouchedTables | None = None  # the batches whose tables it vouches for


class _Signed:
    """Stored events passing through, noting the seqs of those that are signed."""

    def __init__(self, rows: Iterable[ev.StoredEvent]) -> None:
        self.rows = rows
        self.signed: list[int] = []

    def __iter__(self) -> Iterator[ev.StoredEvent]:
        for row in self.rows:
            if is_signed(row):
                self.signed.append(row.seq)
            yield row


def _stream_of(row: tuple[ev.StoredEvent, Head | None]) -> str:
    return row[0].batch_id


def _parsed(stored: list[ev.StoredEvent]) -> list[ev.Event] | None:
    """The events parsed, or None when one of them cannot be (its payload is not JSON:
    its hash has already failed)."""
    try:
        return [r.event() for r in stored]
    except ValueError:
        return None


def _parsed_rows(
    columns: Sequence[str], rows: Iterable[Sequence[Any]]
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """(the columns searched, the row) of each query-table row read as COLUMNS then its
    JSON text."""
    return [(dict(zip(columns, r[:-1], strict=True)), json.loads(r[-1])) for r in rows]


def _deviation_rows(batch: Any) -> list[dict[str, Any]]:
    return [d.row() for d in batch.deviations.values()]


def _use_keyed(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Lot uses with the key a finding names them by: ``BATCH/STEP/LOT``."""
    return [{**r, "use": f"{r['batch_id']}/{r['step']}/{r['lot']}"} for r in rows]


def _keyed(points: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """QC points with the key a finding names them by: ``BATCH/STEP/NAME``."""
    return [{**p, "point": f"{p['batch_id']}/{p['step']}/{p['name']}"} for p in points]


def _next_second(moment: str) -> str:
    """The stored time one second after MOMENT (times are kept to the second)."""
    return iso(from_iso(moment) + timedelta(seconds=1))


def _write_new(path: Path, text: Iterable[str]) -> Path:
    """Write TEXT (its parts in order) to PATH whole or not at all, never replacing a file
    already there.

    The text goes to a temporary file first, flushed to disk, and is then linked under
    its name: a reader sees the whole checkpoint or none, and a link fails where a rename
    would silently replace an older checkpoint. Where the filesystem has no links (some
    shares), the file is created exclusively instead.
    """
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "x", encoding="utf-8", newline="") as f:
        f.writelines(text)
        f.flush()
        os.fsync(f.fileno())
    try:
        os.link(tmp, path)
    except FileExistsError:
        raise Refused(f"a checkpoint {path.name} already exists; nothing was written") from None
    except OSError:  # no hard links here: exclusive creation still never replaces a file
        try:
            with (
                open(path, "x", encoding="utf-8", newline="") as f,
                open(tmp, encoding="utf-8", newline="") as done,
            ):
                f.writelines(done)
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
