"""Secretome QC: results typed in or imported from a CSV (replicates averaged, their CV
kept), control-chart data by analyte, and group comparisons.

A CSV import is one service call: parse the file, merge the other values of the step, and
record the step, so every shell (the command line, the web page, the demo) does it alike.
"""

from __future__ import annotations

import csv
import io
import statistics
from collections import Counter
from collections.abc import Iterator
from dataclasses import replace
from typing import Any

from cmprep.domain import westgard
from cmprep.domain.batch import Batch
from cmprep.domain.qc_points import TREND_POINTS, analyte_key
from cmprep.domain.routes import compare, routed, strength
from cmprep.domain.text import control_problem, printable
from cmprep.errors import Refused
from cmprep.protocol import units
from cmprep.protocol.models import Parameter, Step
from cmprep.protocol.reference import load_all, short_citation
from cmprep.render.models import CompareRow, CompareView, QCStratum, QCSummaryRow, TrendView
from cmprep.service.batches import BatchService, step_of
from cmprep.service.consistency import ConsistencyService
from cmprep.service.context import Context, Outcome
from cmprep.store.query import QCPointFilter

MAX_CSV_BYTES = 1024 * 1024
CSV_COLUMNS = ("analyte", "value", "unit", "method", "replicate")
GROUPS = ("protocol", "source", "preconditioning", "route")  # what `compare` groups by


class QCService:
    def __init__(
        self, ctx: Context, batches: BatchService, consistency: ConsistencyService
    ) -> None:
        self.ctx = ctx
        self.batches = batches
        self.consistency = consistency

    def import_csv(
        self,
        batch_id: str,
        data: bytes | str,
        filename: str,
        actor: str,
        *,
        step_id: str = "qc",
        others: dict[str, str] | None = None,
        note: str | None = None,
        at: str | None = None,
    ) -> Outcome:
        """Record a QC step from a CSV of results; ``others`` are the step's other values.
        A malformed file, or a value given both in the file and in ``others``, is refused
        whole and nothing is recorded."""
        batch = self.ctx.batch(batch_id)
        step = step_of(batch, step_id)
        if isinstance(data, bytes):
            try:
                data = data.decode("utf-8")
            except UnicodeDecodeError:
                raise Refused(f"{filename} is not UTF-8 text; save it as CSV UTF-8") from None
        entries, replicates = self.parse_csv(step, data, filename)
        others = others or {}
        clash = sorted(set(entries) & set(others))
        if clash:
            raise Refused(f"{', '.join(clash)} given both in {filename} and as a value")
        return self.batches.record(
            batch_id,
            step_id,
            {**entries, **others},
            actor,
            note=note,
            at=at,
            replicates=replicates,
        )

    def parse_csv(
        self, step: Step, text: str, filename: str
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Entries (mean of replicates, in the protocol's unit) and the replicate details,
        or Refused naming every bad line: a malformed file is refused whole."""
        if len(text.encode()) > MAX_CSV_BYTES:
            raise Refused(
                f"{filename} is over {MAX_CSV_BYTES // 1024} KiB; a QC results file is a few lines"
            )
        reader = csv.DictReader(io.StringIO(text.lstrip("\ufeff")))
        header = [h.strip().lower() for h in (reader.fieldnames or [])]
        if not header:
            raise Refused(f"{filename} is empty; expected a header line: {','.join(CSV_COLUMNS)}")
        missing = [c for c in CSV_COLUMNS if c not in header]
        extra = [c for c in header if c not in CSV_COLUMNS]
        if missing or extra:
            parts = ([f"missing column(s) {', '.join(missing)}"] if missing else []) + (
                [f"unknown column(s) {', '.join(extra)}"] if extra else []
            )
            raise Refused(
                f"{filename}, line 1: {printable('; '.join(parts))}; "
                f"expected: {','.join(CSV_COLUMNS)}"
            )
        reader.fieldnames = header
        by_key = {key: p for p in step.parameters if p.is_numeric for key in _keys(p)}
        problems: list[str] = []
        values: dict[str, list[float]] = {}
        seen: set[tuple[str, int]] = set()
        rows = 0
        for row in _rows(reader, problems):
            line = reader.line_num
            rows += 1
            if None in row or any(v is None for v in row.values()):
                problems.append(f"line {line}: expected {len(CSV_COLUMNS)} fields")
                continue
            controls = [
                f"line {line}, column {column}: {problem}"
                for column in CSV_COLUMNS
                if (problem := control_problem(row[column], "the text"))
            ]
            if controls:
                problems.extend(controls)
                continue
            analyte = row["analyte"].strip()
            param = by_key.get(analyte_key(analyte))
            if param is None:
                names = ", ".join(p.name for p in step.parameters if p.is_numeric)
                problems.append(
                    f"line {line}: step {step.id} has no analyte {analyte!r}; known: {names}"
                )
                continue
            method = row["method"].strip()
            if param.method is not None and method.lower() != param.method.value.lower():
                problems.append(
                    f"line {line}: {param.label} is measured by {param.method.value}, "
                    f"not {method!r}"
                )
                continue
            try:
                replicate = int(row["replicate"].strip())
                if replicate < 1:
                    raise ValueError
            except ValueError:
                problems.append(
                    f"line {line}: replicate {row['replicate']!r} is not a whole number from 1"
                )
                continue
            if (param.name, replicate) in seen:
                problems.append(f"line {line}: {param.label} replicate {replicate} appears twice")
                continue
            seen.add((param.name, replicate))
            number = units.leading_number(row["value"])
            if number is not None and number < 0 and not units.can_be_negative(param.unit):
                problems.append(
                    f"line {line}, column value: {param.label} {row['value'].strip()!r} is "
                    "negative; a measured amount cannot be below zero"
                )
                continue
            try:
                value = units.parse_quantity(
                    f"{row['value'].strip()} {row['unit'].strip()}".strip(), param.unit
                )
            except units.UnitError as err:
                problems.append(f"line {line}: {param.label}: {err}")
                continue
            values.setdefault(param.name, []).append(value)
        if rows == 0:
            problems.append(f"{filename} has a header but no results")
        if problems:
            raise Refused(f"{filename} was not imported; nothing was recorded.", problems)
        entries, details = {}, {}
        for name, vals in values.items():
            param = step.parameter(name)
            assert param is not None  # values are keyed by this step's parameter names
            mean = statistics.fmean(vals)
            cv = statistics.stdev(vals) / mean * 100 if len(vals) > 1 and mean else None
            entries[name] = f"{mean:.6g} {param.unit}" if param.unit else f"{mean:.6g}"
            details[name] = {
                "values": vals,
                "unit": param.unit,
                "n": len(vals),
                "cv_percent": round(cv, 1) if cv is not None else None,
            }
        return entries, details

    # --- consistency views ---
    def known_analytes(self) -> dict[str, str]:
        """Every QC analyte of the protocols in this database: its key -> the name it is
        best known by (the parameter's name), for a refusal to list."""
        found: dict[str, str] = {}
        for stored in self.ctx.protocols().values():
            for step in stored.content.get("steps", []):
                for p in step.get("parameters", []):
                    numeric = p.get("type", "number") in ("number", "integer", "duration")
                    if not numeric or not (p.get("method") or p.get("trend")):
                        continue
                    for text in (p.get("name"), p.get("reference"), p.get("label")):
                        if text and (key := analyte_key(str(text))):
                            found.setdefault(key, str(p["name"]))
        return found

    def trend(
        self,
        analyte: str,
        protocol_id: str | None = None,
        since: str | None = None,
        *,
        route: str | None = None,
        source: str | None = None,
    ) -> TrendView:
        """Levey-Jennings data of an analyte in one baseline stratum (protocol x downstream
        route x cell source): the newest ``TREND_POINTS`` batches' values (one query of the
        QC points), the baseline from the released ones among them, and the Westgard
        findings. A stratum left unnamed is the one the points have; points of several are
        refused, naming each (a chart mixing protocols or routes would flag what is only
        their difference). Before the site's minimum of released batches, only 1-2s
        warnings are shown."""
        found = self._newest(analyte, protocol_id, since, route, source)
        strata = _strata(found)
        if len(strata) > 1:
            raise Refused(
                f"{analyte} is measured in {len(strata)} baselines (protocol, route, cell "
                "source); a control chart shows one, so name its protocol, route and cell "
                "source:",
                [f"{s.words()}: {s.batches} batch(es)" for s in strata],
            )
        protocol, route_taken, cells = strata[0].protocol, strata[0].route, strata[0].source
        label, unit = str(found[0]["label"]), str(found[0]["unit"])
        points = [
            (str(p["batch_id"]), _in_unit(p, unit), str(p["state"])) for p in found
        ]  # label, value, state
        released = [v for _, v, s in points if s == "released"]
        if len(released) < 2:
            raise Refused(
                f"{len(released)} released batch(es) with {analyte} in {protocol}, route "
                f"{route_taken or 'none'}, cell source {cells}; a control chart needs at "
                "least 2 (rejection rules: the site's minimum)"
            )
        mean, sd = westgard.baseline(released)
        labels = [p[0] for p in points]
        violations = westgard.evaluate([p[1] for p in points], mean, sd, labels=labels, unit=unit)
        minimum = self.ctx.settings().westgard_baseline
        if len(released) < minimum:  # plotted and warned only: no rule applies yet
            violations = [v for v in violations if not v.rejection]
        return TrendView(
            analyte=analyte,
            label=label,
            unit=unit,
            points=points,
            mean=mean,
            sd=sd,
            baseline_count=len(released),
            violations=list(violations),
            stratum=f"{protocol}, route {route_taken or 'none'}, cell source {cells}",
            rules_from=minimum,
        )

    def strata(
        self,
        analyte: str,
        protocol_id: str | None = None,
        *,
        route: str | None = None,
        source: str | None = None,
    ) -> list[QCStratum]:
        """The baselines the newest ``TREND_POINTS`` values of ANALYTE fall in (of the
        protocol, route and cell source named), each with its number of batches: what a
        control chart picks one of. Refused as ``trend`` is for an unknown analyte or no
        value."""
        return _strata(self._newest(analyte, protocol_id, None, route, source))

    def _newest(
        self,
        analyte: str,
        protocol_id: str | None,
        since: str | None,
        route: str | None,
        source: str | None,
    ) -> list[dict[str, Any]]:
        """The newest ``TREND_POINTS`` QC points of ANALYTE in what is named (one indexed
        query); Refused naming the known analytes, or what has no value."""
        key = analyte_key(analyte)
        known = self.known_analytes()
        if key not in known:
            names = ", ".join(sorted(set(known.values()))) or "none (no protocol measures one)"
            raise Refused(f"unknown analyte {analyte!r}; known analytes: {names}")
        where = QCPointFilter(
            protocol_id=protocol_id, key=key, since=since, route=route, source=source
        )
        found = self.ctx.store.qc_points(replace(where, last=TREND_POINTS))
        if not found:
            raise Refused(
                f"no batch has a value for {analyte!r}"
                + (f" in protocol {protocol_id}" if protocol_id else "")
                + (f" on route {route}" if route else "")
                + (f" from cell source {source}" if source else "")
            )
        return found

    def compare(
        self, by: str, analytes: list[str] | None = None, *, released_only: bool = True
    ) -> CompareView:
        """The secretome of groups of batches side by side: by protocol, cell source,
        preconditioning or downstream route (as measured: a concentrate's pg/mL are its own).
        A report over the lab's whole history, read in one query of the QC points (one row
        per measured analyte, no batch folded)."""
        if by not in GROUPS:
            raise Refused(f"group by {by!r}: expected {', '.join(GROUPS[:-1])} or {GROUPS[-1]}")
        table: dict[str, dict[str, list[float]]] = {}
        unit_of: dict[str, str] = {}
        where = QCPointFilter(
            state="released" if released_only else None, analytes=tuple(analytes or ())
        )
        for p in self.ctx.store.qc_points(where):
            if p["method"] is None:  # trended but not an assay: not part of the secretome
                continue
            key = str(p["analyte"])
            unit_of.setdefault(key, str(p["unit"]))
            group = str(p["protocol_id"] if by == "protocol" else p[by] or "none")
            table.setdefault(key, {}).setdefault(group, []).append(_in_unit(p, unit_of[key]))
        if not table:
            raise Refused(
                "no QC results in "
                + ("released batches" if released_only else "any batch")
                + " to compare"
            )
        rows = []
        for analyte, groups in table.items():
            for group, vals in sorted(groups.items()):
                sd = statistics.stdev(vals) if len(vals) > 1 else None
                rows.append(
                    CompareRow(
                        analyte=analyte,
                        group=group,
                        n=len(vals),
                        mean=f"{statistics.fmean(vals):.4g}",
                        sd=f"{sd:.3g}" if sd is not None else "",
                        unit=unit_of[analyte],
                        by=by,
                    )
                )
        return CompareView(by=by, units=unit_of, table=table, rows=rows)

    def summary(self, batch: Batch) -> list[QCSummaryRow]:
        """The batch record's QC section: each analyte with its value, release spec,
        literature reference range (with citation), replicates, and for a trended analyte
        the lab's history (the newest ``HISTORY_POINTS`` released batches of the same
        protocol, one query of the QC points each) for a small trend chart."""

        refs = load_all()
        rows = []
        how = strength(batch)
        for entry in batch.steps.values():
            for param in entry.step.parameters:
                if param.method is None:
                    continue
                spec = routed(param, how.route).spec  # the route's release spec
                v = entry.values.get(param.name)
                ref = refs.get(param.reference) if param.reference else None
                number = v.value if v and isinstance(v.value, float) else None
                seen = compare(param, number, how) if number is not None else None
                history = (
                    self.consistency.baseline_history(batch, param.name)
                    if param.is_numeric and param.trend  # only a trend is charted
                    else []
                )
                mean = sd = None
                if len(history) >= 2:
                    try:
                        mean, sd = westgard.baseline(history)
                    except ValueError:
                        mean = sd = None
                rows.append(
                    QCSummaryRow(
                        step=entry.step.id,
                        name=param.name,
                        label=param.label,
                        method=param.method.value,
                        value=v.display if v else "",
                        number=number,
                        verdict=v.verdict if v else "",
                        spec=spec.describe(param.unit) if spec else "",
                        reference=ref[0].describe() if ref else "",
                        reference_source=short_citation(ref[1]) if ref else "",
                        # compared as the record now stands (a corrected factor counts)
                        note=(seen.note if seen else v.note) if v else "",
                        replicates=v.replicates if v else None,
                        deviations=list(v.deviation_ids) if v else [],
                        trend=param.trend,
                        history=history,
                        history_mean=mean,
                        history_sd=sd,
                        equivalent=seen.text if seen else "",
                        route=how.route,
                    )
                )
        return rows


def _rows(reader: csv.DictReader[str], problems: list[str]) -> Iterator[dict[str, Any]]:
    """The rows of a CSV; a line the csv module cannot read (a field over its size limit,
    a stray carriage return) becomes a problem naming the line, and ends the reading: what
    follows an unreadable line cannot be trusted to start where it seems to."""
    try:
        yield from reader
    except csv.Error as err:
        line = reader.reader.line_num  # the DictReader's own count stops at the last good row
        if "field larger than field limit" in str(err):
            problems.append(
                f"line {line}: a field is over {csv.field_size_limit()} characters; "
                "a QC result is a few characters (is this the right file?)"
            )
        else:
            problems.append(f"line {line}: not readable as CSV ({printable(str(err))})")


def _keys(p: Parameter) -> set[str]:
    """The keys a CSV line may name the analyte by: its name, reference or label."""
    return {
        k for k in (analyte_key(p.name), analyte_key(p.reference or ""), analyte_key(p.label)) if k
    }


def _in_unit(point: dict[str, Any], unit: str) -> float:
    """A QC point's value in UNIT (the first point's unit: a chart has one axis)."""
    value, own = float(point["value"]), str(point["unit"])
    return units.convert(value, own, unit) if own and unit else value


def _strata(found: list[dict[str, Any]]) -> list[QCStratum]:
    """The baselines (protocol x route x cell source) of FOUND, each with its number of
    points, in order."""
    counted = Counter(
        (str(p["protocol_id"]), str(p["route"] or ""), str(p["source"])) for p in found
    )
    return [QCStratum(p, r, c, n) for (p, r, c), n in sorted(counted.items())]
