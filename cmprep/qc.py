"""Secretome QC and traceability on the service facade (a mixin).

- material lots and instruments: register, record calibrations, check them when a step
  names them (expired lot / overdue calibration -> deviation), where-used for recalls;
- QC results: typed in, or imported from a CSV with replicates averaged and their CV kept;
- batch-to-batch consistency: Levey-Jennings data and Westgard rules from the lab's own
  released batches; a rejection rule broken by a new batch opens a deviation.
"""

from __future__ import annotations

import csv
import io
import math
import re
import statistics
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from cmprep import traceability as tr
from cmprep.events import NewEvent
from cmprep.protocol import units
from cmprep.protocol.models import Parameter, Step
from cmprep.validation import Finding, Verdict

if TYPE_CHECKING:
    from cmprep.batch import Batch

MIN_HISTORY = 5  # released batches needed before Westgard rules are applied (site choice)
MAX_CSV_BYTES = 1024 * 1024
CSV_COLUMNS = ("analyte", "value", "unit", "method", "replicate")


class QCMixin:
    # --- registries -------------------------------------------------------------------
    def lots(self) -> dict[str, tr.Lot]:
        return tr.fold_lots(self.store.events(tr.MATERIALS_STREAM))

    def instruments(self) -> dict[str, tr.Instrument]:
        return tr.fold_equipment(self.store.events(tr.EQUIPMENT_STREAM))

    def register_lot(
        self, lot: str, material: str, expiry: str, actor: str, supplier: str | None = None
    ) -> tr.Lot:
        from cmprep.service import _ID, Refused

        actor = self._person(actor, "register materials")
        if not _ID.match(lot):
            raise Refused(f"lot number {lot!r} is not usable: letters, digits, '.', '_' or '-'")
        if not material or not material.strip():
            raise Refused("give the material (--material), e.g. FBS or PBS")
        try:
            expiry = tr.parse_date(expiry, "expiry")
        except ValueError as err:
            raise Refused(str(err)) from None
        if lot in self.lots():
            raise Refused(f"lot {lot} is already registered")
        payload = {"lot": lot, "material": material.strip(), "expiry": expiry, "supplier": supplier}
        self._append_system(tr.MATERIALS_STREAM, NewEvent(tr.LOT_REGISTERED, actor, payload))
        return self.lots()[lot]

    def register_equipment(
        self,
        ident: str,
        kind: str,
        calibration_due: str,
        actor: str,
        rotor_radius_cm: float | None = None,
    ) -> tr.Instrument:
        from cmprep.service import _ID, Refused

        actor = self._person(actor, "register equipment")
        if not _ID.match(ident):
            raise Refused(f"equipment id {ident!r} is not usable: letters, digits, '.', '_' or '-'")
        if not kind or not kind.strip():
            raise Refused("give the kind of instrument (--kind), e.g. centrifuge")
        try:
            due = tr.parse_date(calibration_due, "calibration due date")
        except ValueError as err:
            raise Refused(str(err)) from None
        if rotor_radius_cm is not None and not (
            0 < rotor_radius_cm <= 100 and math.isfinite(rotor_radius_cm)
        ):
            raise Refused(f"rotor radius {rotor_radius_cm} cm is impossible; expected 0-100 cm")
        if ident in self.instruments():
            raise Refused(f"equipment {ident} is already registered")
        payload = {
            "id": ident,
            "kind": kind.strip(),
            "calibration_due": due,
            "rotor_radius_cm": rotor_radius_cm,
        }
        self._append_system(tr.EQUIPMENT_STREAM, NewEvent(tr.EQUIPMENT_REGISTERED, actor, payload))
        return self.instruments()[ident]

    def record_calibration(
        self, ident: str, next_due: str, actor: str, certificate: str | None = None
    ) -> tr.Instrument:
        from cmprep.service import NotFound, Refused

        actor = self._person(actor, "register equipment")
        if ident not in self.instruments():
            raise NotFound(f"no equipment {ident!r}; register it with `cmprep equipment add`")
        try:
            due = tr.parse_date(next_due, "next calibration due date")
        except ValueError as err:
            raise Refused(str(err)) from None
        payload = {"id": ident, "calibration_due": due, "certificate": certificate}
        self._append_system(tr.EQUIPMENT_STREAM, NewEvent(tr.CALIBRATION_RECORDED, actor, payload))
        return self.instruments()[ident]

    def _append_system(self, stream: str, event: NewEvent) -> None:
        from cmprep.service import iso

        head = self.store.head(stream)
        with self.store.writing(stream, head[0] if head else 0) as unit:
            unit.append([event], iso(self.clock()))

    def where_used(self, lot: str) -> list[dict[str, Any]]:
        """Every batch and step that named this lot: the list a recall starts from."""
        rows = []
        for batch_id in self.store.batch_ids():
            for e in self.store.events(batch_id):
                for used in e.payload.get("lots", []) if e.type == "step_recorded" else []:
                    if used["lot"] == lot:
                        rows.append(
                            {
                                "lot": lot,
                                "material": used["material"],
                                "batch_id": batch_id,
                                "step": e.payload["step"],
                                "used_at": e.performed_at or e.recorded_at,
                                "by": e.actor,
                            }
                        )
        return rows

    def _traceability(
        self, batch: Batch, step: Step, lots: list[str], equipment: list[str], used_at: datetime
    ) -> tuple[list[Finding], dict[str, Any], float | None]:
        """Findings (refusals for unknown items, deviations for expired / overdue ones), the
        payload snapshot of what was used, and the rotor radius of a named centrifuge."""
        findings: list[Finding] = []
        payload: dict[str, Any] = {}
        severity = batch.protocol.traceability_severity
        day: date = used_at.date()
        known_lots = self.lots() if lots else {}
        snapshot = []
        for lot in dict.fromkeys(lots):
            item = known_lots.get(lot)
            if item is None:
                findings.append(
                    Finding(
                        f"lot:{lot}",
                        Verdict.refused,
                        f"no lot {lot!r}; register it first with "
                        f"`cmprep materials add {lot} --material ... --expiry YYYY-MM-DD`",
                    )
                )
                continue
            snapshot.append({"lot": lot, "material": item.material, "expiry": item.expiry})
            if tr.expired(item, day):
                findings.append(
                    Finding(
                        f"lot:{lot}",
                        Verdict.out_of_spec,
                        f"Lot {lot} ({item.material}) expired on {item.expiry} "
                        f"and was used on {day.isoformat()}",
                        value=lot,
                        display=f"{lot} (expired {item.expiry})",
                        spec=f"not expired on {day.isoformat()}",
                        severity=severity,
                    )
                )
        if snapshot:
            payload["lots"] = snapshot
        radius = None
        known = self.instruments() if equipment else {}
        used = []
        for ident in dict.fromkeys(equipment):
            inst = known.get(ident)
            if inst is None:
                findings.append(
                    Finding(
                        f"equipment:{ident}",
                        Verdict.refused,
                        f"no equipment {ident!r}; register it first with "
                        f"`cmprep equipment add {ident} --kind ... --calibration-due YYYY-MM-DD`",
                    )
                )
                continue
            used.append(
                {
                    "id": ident,
                    "kind": inst.kind,
                    "calibration_due": inst.calibration_due,
                    "rotor_radius_cm": inst.rotor_radius_cm,
                }
            )
            if inst.rotor_radius_cm is not None and radius is None:
                radius = inst.rotor_radius_cm
            if tr.overdue(inst, day):
                findings.append(
                    Finding(
                        f"equipment:{ident}",
                        Verdict.out_of_spec,
                        f"{inst.kind.capitalize()} {ident} was due for calibration on "
                        f"{inst.calibration_due} and was used on {day.isoformat()}",
                        value=ident,
                        display=f"{ident} (calibration due {inst.calibration_due})",
                        spec=f"calibrated (due after {day.isoformat()})",
                        severity=severity,
                    )
                )
        if used:
            payload["equipment"] = used
        return findings, payload, radius

    # --- QC results ---------------------------------------------------------------------
    def parse_qc_csv(
        self, step: Step, text: str, filename: str
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """Entries (mean of replicates, in the protocol's unit) and the replicate details,
        or Refused naming every bad line: a malformed file is refused whole."""
        from cmprep.service import Refused

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
                f"{filename}, line 1: {'; '.join(parts)}; expected: {','.join(CSV_COLUMNS)}"
            )
        reader.fieldnames = header
        by_key = {key: p for p in step.parameters if p.is_numeric for key in _keys(p)}
        problems: list[str] = []
        values: dict[str, list[float]] = {}
        seen: set[tuple[str, int]] = set()
        rows = 0
        for row in reader:
            line = reader.line_num
            rows += 1
            if None in row or any(v is None for v in row.values()):
                problems.append(f"line {line}: expected {len(CSV_COLUMNS)} fields")
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

    # --- consistency ------------------------------------------------------------------
    def analyte_history(
        self, protocol_id: str, name: str, *, released_only: bool = True, exclude: str | None = None
    ) -> list[tuple[str, float]]:
        """(batch id, value) of an analyte across batches of a protocol, oldest first."""
        from cmprep.batch import fold

        out = []
        rows = self.store.batch_rows(
            protocol_id=protocol_id, state="released" if released_only else None
        )
        for row in rows:
            if row["batch_id"] == exclude:
                continue
            b = fold(self.store.events(row["batch_id"]))
            for entry in b.steps.values():
                v = entry.values.get(name)
                if (
                    v is not None
                    and isinstance(v.value, (int, float))
                    and not isinstance(v.value, bool)
                ):
                    out.append((b.id, float(v.value)))
        return out

    def _westgard_findings(
        self, batch: Batch, step: Step, findings: list[Finding]
    ) -> list[Finding]:
        from cmprep import westgard

        extra = []
        for f in findings:
            param = step.parameter(f.parameter)
            if param is None or not param.trend or not isinstance(f.value, float):
                continue
            history = [
                v for _, v in self.analyte_history(batch.protocol.id, param.name, exclude=batch.id)
            ]
            if len(history) < MIN_HISTORY:
                continue
            try:
                mean, sd = westgard.baseline(history)
            except ValueError:
                continue
            for v in westgard.new_point_violations(
                history, f.value, mean, sd, unit=param.unit or ""
            ):
                extra.append(
                    Finding(
                        f"{param.name}:westgard:{v.rule}",
                        Verdict.out_of_spec,
                        f"{param.label} {f.display}: Westgard {v.rule} "
                        f"against {len(history)} released batches "
                        f"(mean {mean:.4g}, SD {sd:.3g} {param.unit or ''})".rstrip(),
                        value=f.value,
                        display=f.display,
                        spec=f"Westgard {v.rule}",
                        severity=batch.protocol.trend_severity,
                    )
                )
        return extra

    def trend(
        self, analyte: str, protocol_id: str | None = None, since: str | None = None
    ) -> dict[str, Any]:
        """Levey-Jennings data of an analyte: every batch's value, the baseline from
        released batches, and the Westgard violations."""
        from cmprep import westgard
        from cmprep.batch import fold
        from cmprep.service import Refused

        points: list[tuple[str, float, str]] = []  # label, value, state
        label = unit = None
        for row in self.store.batch_rows(protocol_id=protocol_id):
            if since and row["started_at"] < since:
                continue
            b = fold(self.store.events(row["batch_id"]))
            for entry in b.steps.values():
                param = _match(entry.step.parameters, analyte)
                v = entry.values.get(param.name) if param else None
                if (
                    v is not None
                    and isinstance(v.value, (int, float))
                    and not isinstance(v.value, bool)
                ):
                    if unit is None:
                        label, unit = param.label, param.unit or ""
                    value = (
                        units.convert(float(v.value), param.unit, unit)
                        if param.unit and unit
                        else float(v.value)
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
        return {
            "analyte": analyte,
            "label": label,
            "unit": unit,
            "points": points,
            "mean": mean,
            "sd": sd,
            "baseline_count": len(released),
            "violations": violations,
        }

    def compare(
        self, by: str, analytes: list[str] | None = None, *, released_only: bool = True
    ) -> dict[str, Any]:
        """The secretome of groups of batches side by side: by protocol, cell source or
        preconditioning."""
        from cmprep.batch import fold
        from cmprep.service import Refused

        if by not in ("protocol", "source", "preconditioning"):
            raise Refused(f"--by {by!r}: expected protocol, source or preconditioning")
        table: dict[str, dict[str, list[float]]] = {}
        unit_of: dict[str, str] = {}
        for row in self.store.batch_rows(state="released" if released_only else None):
            b = fold(self.store.events(row["batch_id"]))
            group = _group(b, by)
            for entry in b.steps.values():
                for name, v in entry.values.items():
                    param = entry.step.parameter(name)
                    if param is None or param.method is None or not param.is_numeric:
                        continue
                    key = param.reference or param.name
                    if analytes and key not in analytes and name not in analytes:
                        continue
                    if not isinstance(v.value, (int, float)) or isinstance(v.value, bool):
                        continue
                    unit_of.setdefault(key, param.unit or "")
                    value = (
                        units.convert(float(v.value), param.unit, unit_of[key])
                        if param.unit and unit_of[key]
                        else float(v.value)
                    )
                    table.setdefault(key, {}).setdefault(group, []).append(value)
        if not table:
            raise Refused(
                "no QC results in "
                + ("released batches" if released_only else "any batch")
                + " to compare"
            )
        return {"by": by, "units": unit_of, "table": table}

    def qc_summary(self, batch: Batch) -> list[dict[str, Any]]:
        """The batch record's QC section: each analyte with its value, release spec,
        literature reference range (with citation), replicates, and the lab's history
        (released batches of the same protocol) for a small trend chart."""
        from cmprep import westgard
        from cmprep.protocol.reference import load_all, short_citation

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
                        for _, x in self.analyte_history(
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
                    {
                        "step": entry.step.id,
                        "name": param.name,
                        "label": param.label,
                        "method": param.method.value,
                        "value": v.display if v else "",
                        "number": v.value if v and isinstance(v.value, float) else None,
                        "verdict": v.verdict if v else "",
                        "spec": param.spec.describe(param.unit) if param.spec else "",
                        "reference": ref[0].describe() if ref else "",
                        "reference_source": short_citation(ref[1]) if ref else "",
                        "note": v.note if v else "",
                        "replicates": v.replicates if v else None,
                        "deviations": v.deviation_ids if v else [],
                        "trend": param.trend,
                        "history": history,
                        "history_mean": mean,
                        "history_sd": sd,
                    }
                )
        return rows

    if TYPE_CHECKING:
        store: Any
        clock: Any

        def _person(self, actor: str | None, action: str) -> str: ...


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
