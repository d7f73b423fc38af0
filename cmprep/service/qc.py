"""Secretome QC: results typed in or imported from a CSV (replicates averaged, their CV
kept), control-chart data by analyte, and group comparisons.

A CSV import is one service call: parse the file, merge the other values of the step, and
record the step, so every shell (the command line, the web page, the demo) does it alike.
"""

from __future__ import annotations

import csv
import io
import re
import statistics
from collections.abc import Iterator
from typing import Any

from cmprep.domain import westgard
from cmprep.domain.batch import Batch, fold
from cmprep.domain.numbers import usable_number
from cmprep.domain.text import control_problem, printable
from cmprep.errors import Refused
from cmprep.protocol import units
from cmprep.protocol.models import Parameter, Step
from cmprep.protocol.reference import load_all, short_citation
from cmprep.render.models import CompareRow, CompareView, QCSummaryRow, TrendView
from cmprep.service.batches import BatchService, step_of
from cmprep.service.consistency import ConsistencyService
from cmprep.service.context import Context, Outcome
from cmprep.store.query import BatchFilter

MAX_CSV_BYTES = 1024 * 1024
CSV_COLUMNS = ("analyte", "value", "unit", "method", "replicate")


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
            param = by_key.get(_norm(analyte))
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
    def trend(
        self, analyte: str, protocol_id: str | None = None, since: str | None = None
    ) -> TrendView:
        """Levey-Jennings data of an analyte: every batch's value, the baseline from
        released batches, and the Westgard violations."""

        points: list[tuple[str, float, str]] = []  # label, value, state
        label = unit = None
        for row in self.ctx.store.batch_rows(BatchFilter(protocol_id=protocol_id)):
            if since and row["started_at"] < since:
                continue
            b = fold(self.ctx.store.events(row["batch_id"]))
            for entry in b.steps.values():
                param = _match(entry.step.parameters, analyte)
                v = entry.values.get(param.name) if param else None
                if param and v is not None and (number := usable_number(v.value)) is not None:
                    if unit is None:
                        label, unit = param.label, param.unit or ""
                    value = (
                        units.convert(number, param.unit, unit) if param.unit and unit else number
                    )
                    points.append((b.id, value, b.state))
        if not points:
            raise Refused(
                f"no batch has a value for {analyte!r}"
                + (f" in protocol {protocol_id}" if protocol_id else "")
            )
        released = [v for _, v, s in points if s == "released"]
        if len(released) < 2:
            raise Refused(
                f"{len(released)} released batch(es) with {analyte}; "
                "a control chart needs at least 2 (better 20)"
            )
        mean, sd = westgard.baseline(released)
        labels = [p[0] for p in points]
        violations = westgard.evaluate(
            [p[1] for p in points], mean, sd, labels=labels, unit=unit or ""
        )
        return TrendView(
            analyte=analyte,
            label=label or analyte,
            unit=unit or "",
            points=points,
            mean=mean,
            sd=sd,
            baseline_count=len(released),
            violations=list(violations),
        )

    def compare(
        self, by: str, analytes: list[str] | None = None, *, released_only: bool = True
    ) -> CompareView:
        """The secretome of groups of batches side by side: by protocol, cell source or
        preconditioning."""
        if by not in ("protocol", "source", "preconditioning"):
            raise Refused(f"group by {by!r}: expected protocol, source or preconditioning")
        table: dict[str, dict[str, list[float]]] = {}
        unit_of: dict[str, str] = {}
        for row in self.ctx.store.batch_rows(
            BatchFilter(state="released" if released_only else None)
        ):
            b = fold(self.ctx.store.events(row["batch_id"]))
            group = _group(b, by)
            for entry in b.steps.values():
                for name, v in entry.values.items():
                    param = entry.step.parameter(name)
                    if param is None or param.method is None or not param.is_numeric:
                        continue
                    key = param.reference or param.name
                    if analytes and key not in analytes and name not in analytes:
                        continue
                    number = usable_number(v.value)
                    if number is None:
                        continue
                    unit_of.setdefault(key, param.unit or "")
                    value = (
                        units.convert(number, param.unit, unit_of[key])
                        if param.unit and unit_of[key]
                        else number
                    )
                    table.setdefault(key, {}).setdefault(group, []).append(value)
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
        literature reference range (with citation), replicates, and the lab's history
        (released batches of the same protocol) for a small trend chart."""

        refs = load_all()
        rows = []
        for entry in batch.steps.values():
            for param in entry.step.parameters:
                if param.method is None:
                    continue
                v = entry.values.get(param.name)
                ref = refs.get(param.reference) if param.reference else None
                history = (
                    [
                        x
                        for _, x in self.consistency.analyte_history(
                            batch.protocol.id, param.name, exclude=batch.id
                        )
                    ]
                    if param.is_numeric
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
                        number=v.value if v and isinstance(v.value, float) else None,
                        verdict=v.verdict if v else "",
                        spec=param.spec.describe(param.unit) if param.spec else "",
                        reference=ref[0].describe() if ref else "",
                        reference_source=short_citation(ref[1]) if ref else "",
                        note=v.note if v else "",
                        replicates=v.replicates if v else None,
                        deviations=list(v.deviation_ids) if v else [],
                        trend=param.trend,
                        history=history,
                        history_mean=mean,
                        history_sd=sd,
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


def _norm(text: str) -> str:
    """'IL-6', 'il6', 'IL 6' and 'IL-6 (ELISA)' all name the same analyte."""
    return re.sub(r"[^a-z0-9]", "", text.split("(")[0].lower())


def _keys(p: Parameter) -> set[str]:
    return {k for k in (_norm(p.name), _norm(p.reference or ""), _norm(p.label)) if k}


def _match(params: list[Parameter], analyte: str) -> Parameter | None:
    key = _norm(analyte)
    return next((p for p in params if key in _keys(p)), None)


def _group(batch: Batch, by: str) -> str:
    if by == "protocol":
        return batch.protocol.id
    if by == "source":
        iso_step = batch.steps.get("isolation")
        v = iso_step.values.get("source_tissue") if iso_step else None
        return str(v.value) if v else "unknown"
    done = [
        s.step.id
        for s in batch.steps.values()
        if s.status == "done" and s.step.id in ("hypoxia", "priming", "spheroid_formation")
    ]
    return "+".join(done) if done else "none"
