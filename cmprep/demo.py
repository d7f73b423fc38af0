"""`make demo`: a lab's first half-year in cmprep, end to end, into demo-output/.

- users (admin, two technicians, a reviewer, QA), material lots and instruments;
- the bundled protocols imported by the reviewer and approved by QA (change control);
- 22 released batches of two protocols (standard serum-free and hypoxic UC-MSC-CM), with
  their QC results and the occasional deviation, investigated and closed by QA;
- DEMO-001, the featured batch: an out-of-spec spin (a deviation), lots and instruments
  named at each step, QC imported from a CSV of replicates, second-person verification,
  QA's decision, review and release;
- DEMO-002, a hypoxic batch whose VEGF breaks a Westgard rule against the lab's history;
- the batch record, the SOP checklist, the VEGF control chart, the hypoxic-vs-normoxic
  comparison and the deviation audit report.

The demo runs on a simulated clock (the service's injected clock), so that months pass in
seconds, and it ends at the real time: every document it writes is dated now, as the same
command run afterwards would date it. In real use the clock is always the system's.
"""

from __future__ import annotations

import argparse
import heapq
import random
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

STANDARD = "cm-standard-serum-free"
HYPOXIA = "cm-hypoxia-uc"
DEMO_PASSWORD = "demo-password"  # a demo database only; real users choose their own
PEOPLE = [
    ("admin", "Ada Admin", "admin"),
    ("alice", "Alice Archer", "technician"),
    ("bob", "Bob Baker", "technician"),
    ("rita", "Rita Reviewer", "reviewer"),
    ("quinn", "Quinn Quality", "qa"),
]
LOTS = [  # lot, material, expiry
    ("AMEM-26-031", "alpha-MEM", "2027-06-30"),
    ("FBS-26-0711", "FBS", "2027-03-31"),
    ("PBS-26-118", "PBS", "2027-12-31"),
    ("SFM-26-044", "serum-free alpha-MEM", "2027-05-31"),
    ("FLT-022-7731", "0.22 um PES filter", "2028-01-31"),
    ("UF3K-2291", "3 kDa ultrafiltration device", "2027-09-30"),
]
EQUIPMENT = [  # id, kind, calibration due, rotor radius (cm)
    ("CF-02", "centrifuge", "2027-02-15", 16.5),
    ("INC-01", "incubator", "2027-04-30", None),
    ("HYP-01", "hypoxia chamber", "2027-03-31", None),
    ("BSC-01", "biosafety cabinet", "2027-01-31", None),
]
Plan = Iterator[float]  # acts of one batch, each yielding the hours before the next
# hours that pass before each step (the collection window is 24-72 h after conditioning)
HOURS = {"expansion": 96, "collection": 48, "qc": 48}


def in_spec_value(param: Any) -> str:
    """A plausible in-spec reading for any parameter (the midpoint of its spec): what the
    demo types for a parameter it has no bench figure for (``BENCH``)."""
    from cmprep.protocol.models import ParamType

    if param.type == ParamType.choice:
        return str(param.spec.one_of[0] if param.spec else param.choices[0])
    if param.type == ParamType.yes_no:
        return "yes" if param.spec is None or param.spec.equals else "no"
    if param.type == ParamType.text:
        return f"{param.name.upper().replace('_', '-')}-1"
    if param.type == ParamType.datetime:
        return "2026-01-01T00:00Z"
    rng = param.spec.range if param.spec else param.limits
    if rng is None:
        return "1"
    lo, hi = rng.min, rng.max
    value = (
        (lo + hi) / 2
        if lo is not None and hi is not None
        else (lo + 1 if lo is not None else (hi - 1 if hi >= 1 else hi))
    )
    return str(round(value)) if param.type == ParamType.integer else f"{value:g}"


# What a technician reads off at the bench for one batch: ten T175 flasks (175 cm2 each)
# seeded at 4,000 cells/cm2, conditioned in 35 mL each (0.2 mL/cm2) at about 20,000
# cells/cm2, about 340 mL collected; a concentrate of 340 mL into 22 mL (about 15x), or
# 300 vials of 1 mL lyophilised. Figures a protocol does not ask for are not typed.
BENCH: dict[str, dict[str, str]] = {
    "isolation": {"donor_id": "UC-D0417", "source_tissue": "UC"},
    "expansion": {
        "passage": "4",
        "confluence": "76 %",
        "viability": "94 %",
        "basal_medium": "alpha-MEM",
        "fbs_percent": "10 %",
        "seeding_density": "4000 cells/cm2",
    },
    "pbs_wash": {"washes": "2", "pbs_lot": "PBS-26-118"},
    "hypoxia": {
        "o2_percent": "2 %",
        "pre_equilibration": "6 h",
        "hypoxia_duration": "48 h",
        "incubator_id": "HYP-01",
    },
    "priming": {
        "cytokine": "TNF-alpha",
        "concentration": "15 ng/mL",
        "duration": "36 h",
        "cytokine_lot": "TNF-26-0093",
    },
    "conditioning": {
        "serum_percent": "0 %",
        "incubator_temp": "37.0 degC",
        "vessels": "10",
        "vessel_area": "175 cm2",
        "medium_volume": "35 mL",
        "cell_count": "3.5e7 cells",
        "viability_start": "95 %",
    },
    "collection": {
        "volume": "340 mL",
        "vessels_pooled": "10",
        "cell_count": "3.1e7 cells",
        "viability": "91 %",
        "mycoplasma_sampled": "yes",
        "mycoplasma_sample_id": "MYC-{batch}",
    },
    "spin": {"rcf": "400 x g", "duration": "10 min", "temperature": "4 degC"},
    "filtration": {
        "pore_size": "0.22 um",
        "integrity_test_passed": "yes",
        "filter_lot": "FLT-022-7731",
        "filtrate_volume": "332 mL",
    },
    "use_fresh": {
        "hold_time": "2 h",
        "hold_temperature": "4 degC",
        "recipient": "Wound-model study WM-07",
        "final_volume": "330 mL",
        "aliquots": "33",
    },
    "concentrate": {
        "mwco": "3 kDa",
        "final_volume": "22 mL",
        "device_lot": "UF3K-2291",
        "storage_temperature": "-80 degC",
        "aliquots": "22",
    },
    "lyophilise": {
        "shelf_temperature": "-45 degC",
        "residual_moisture": "1.8 %",
        "storage_temperature": "-20 degC",
        "cycle_id": "LYO-{batch}",
        "fill_volume": "1 mL",
        "cake_mass": "18 mg",
        "reconstitution_volume": "1 mL",
        "aliquots": "300",
    },
    "qc": {
        "sterility_passed": "yes",
        "endotoxin": "0.12 EU/mL",
        "mycoplasma_passed": "yes",
        "vegf_blank": "8 pg/mL",
        "qc_report_id": "QC-{batch}",
    },
}
# how long each route's product keeps (site choices in the protocols' help texts)
SHELF_LIFE = {"use_fresh": timedelta(hours=4), "concentrate": timedelta(days=180)}
SHELF_LIFE["lyophilise"] = timedelta(days=365)


def bench_values(step: Any, batch_id: str, now: datetime) -> dict[str, str]:
    """What is typed at STEP of BATCH_ID: the bench figure for each parameter the step
    asks for, else an in-spec reading; never a derived value (computed, not typed)."""
    known = BENCH.get(step.id, {})
    values = {}
    for p in step.parameters:
        if getattr(p, "derived", None):
            continue
        if p.name == "expiry":
            values[p.name] = (now + SHELF_LIFE.get(step.id, timedelta(days=30))).strftime(
                "%Y-%m-%dT%H:%MZ"
            )
        elif p.name in known:
            values[p.name] = known[p.name].format(batch=batch_id)
        elif p.required:
            values[p.name] = in_spec_value(p)
    return values


def _material_lots(step: Any) -> list[str]:
    wanted = {
        "basal medium": "AMEM-26-031",
        "FBS": "FBS-26-0711",
        "PBS": "PBS-26-118",
        "conditioning medium": "SFM-26-044",
        "filter": "FLT-022-7731",
        "ultrafiltration device": "UF3K-2291",
    }
    return [wanted[m] for m in step.materials if m in wanted]


def _instruments(step: Any) -> list[str]:
    wanted = {
        "centrifuge": "CF-02",
        "incubator": "INC-01",
        "hypoxia chamber": "HYP-01",
        "biosafety cabinet": "BSC-01",
    }
    return [wanted[k] for k in step.equipment if k in wanted]


class Lab:
    def __init__(self, db: Path, start: datetime):
        from cmprep.service import Services
        from cmprep.store.sqlite import SQLiteStore

        self.now = start
        self.svc = Services(SQLiteStore(db, create=True), clock=lambda: self.now)
        self.rng = random.Random(20261129)

    def tick(self, hours: float) -> None:
        self.now += timedelta(hours=hours)

    def run_batch(
        self,
        protocol: str,
        batch_id: str,
        qc: dict[str, str],
        overrides: dict[str, dict[str, str]] | None = None,
        record_qc: Callable[[Any], Any] | None = None,
        arm: str = "concentrate",
    ) -> list[dict[str, Any]]:
        """Every step in order with bench values (or the overrides); returns deviations."""
        opened: list[dict[str, Any]] = []
        self.run(self.batch_plan(protocol, batch_id, qc, opened, overrides, record_qc, arm))
        return opened

    def verify_and_release(
        self, batch_id: str, deviations: list[dict[str, Any]], why: str = ""
    ) -> None:
        self.run(self.release_plan(batch_id, deviations, why))

    def run(self, plan: Plan) -> None:
        """A plan carried out alone: each wait passes on the clock, then its next act."""
        for hours in plan:
            self.tick(hours)

    def run_together(self, plans: list[Plan], every_hours: float) -> None:
        """Plans carried out side by side, one started every EVERY_HOURS, as a lab runs
        several batches at once: whichever is due next acts next, on one clock."""
        start = self.now
        due = [(start + timedelta(hours=every_hours * n), n) for n in range(len(plans))]
        heapq.heapify(due)
        while due:
            when, n = heapq.heappop(due)
            self.now = max(self.now, when)
            hours = next(plans[n], None)
            if hours is not None:
                heapq.heappush(due, (self.now + timedelta(hours=hours), n))

    def batch_plan(
        self,
        protocol: str,
        batch_id: str,
        qc: dict[str, str],
        opened: list[dict[str, Any]],
        overrides: dict[str, dict[str, str]] | None = None,
        record_qc: Callable[[Any], Any] | None = None,
        arm: str = "concentrate",
    ) -> Plan:
        """A batch recorded step by step (the deviations it opens added to OPENED); yields
        the hours before each next act."""
        svc, overrides = self.svc, overrides or {}
        svc.batches.start(protocol, "alice", batch_id)
        for stage in svc.batches.batch(batch_id).pipeline.stages:
            step = next((s for s in stage if s.id == arm), stage[0])
            yield HOURS.get(step.id, 0.5)
            if getattr(step, "use_before_qc", False):  # fresh use before QC: QA signs first
                yield from self.verify_plan(batch_id)
                svc.quality.conditional_release(
                    batch_id,
                    "quinn",
                    DEMO_PASSWORD,
                    "Fresh CM for wound-model study WM-07 (day 0); release tests pending.",
                )
                yield 0.2
            values = bench_values(step, batch_id, self.now)
            values.update(qc if step.id == "qc" else {})
            values.update(overrides.get(step.id, {}))
            if step.id == "qc" and record_qc is not None:
                out = record_qc(step)
            else:
                out = svc.batches.record(
                    batch_id,
                    step.id,
                    values,
                    "alice",
                    lots=_material_lots(step),
                    equipment=_instruments(step),
                )
            opened += out.deviations

    def release_plan(self, batch_id: str, deviations: list[dict[str, Any]], why: str = "") -> Plan:
        """Second-person checks, each deviation investigated and closed, review, release."""
        svc = self.svc
        yield from self.verify_plan(batch_id)
        for dev in deviations:
            yield 3
            svc.quality.investigate(
                dev["deviation_id"],
                "alice",
                why or "Cause identified at the bench; see the batch notes.",
                impact="No impact on product quality expected.",
            )
            yield 20
            svc.quality.close_deviation(
                dev["deviation_id"],
                "quinn",
                DEMO_PASSWORD,
                "accepted",
                "Justification accepted; no impact on the product.",
            )
        yield 1
        svc.quality.sign_review(
            batch_id, "quinn", DEMO_PASSWORD, "Record reviewed by exception; all deviations closed."
        )
        yield 0.5
        svc.quality.release(batch_id, "quinn", DEMO_PASSWORD, "Meets specification.")

    def verify_plan(self, batch_id: str) -> Plan:
        """Bob checks each step that needs a second person and has not had one yet."""
        for entry in self.svc.batches.batch(batch_id).missing_verifications():
            yield 0.2
            self.svc.quality.verify_step(batch_id, entry.step.id, "bob", DEMO_PASSWORD)

    def history_plan(self, protocol: str, batch_id: str, qc: dict[str, str], **how: Any) -> Plan:
        """A batch of the lab's history, from start to release."""
        opened: list[dict[str, Any]] = []
        yield from self.batch_plan(protocol, batch_id, qc, opened, **how)
        yield from self.release_plan(batch_id, opened)


def lineage_of_demo_001(lab: Lab) -> None:
    """DEMO-001's materials from donor to aliquot: a pseudonymous donor (eligibility and
    consent on file), a cell-bank vial, the culture, the harvest, the filtrate and the
    concentrate, split into 22 vials of 1 mL; each released by QA before the next is made
    from it, the product last (everything upstream released)."""
    lin = lab.svc.lineage
    lin.register_donor("UC-D0417", "ELIG-2026-017", "ICF-2026-017", "alice")
    Made = list[tuple[str, Any]]
    steps: list[tuple[Made, Made, str, str, str | None, int | None]] = [
        # inputs drawn, outputs made, kind, unit, step, passage
        ([("UC-D0417", None)], [("CB-D0417-P2-03", 1)], "cell-bank vial", "vial", None, 2),
        ([("CB-D0417-P2-03", 1)], [("CUL-DEMO-001", 10)], "culture", "flask", "expansion", 3),
        ([("CUL-DEMO-001", 10)], [("HRV-DEMO-001", 340)], "CM harvest", "mL", "collection", None),
        ([("HRV-DEMO-001", 340)], [("FLT-DEMO-001", 332)], "filtrate", "mL", "filtration", None),
        ([("FLT-DEMO-001", 332)], [("CON-DEMO-001", 22)], "concentrate", "mL", "concentrate", None),
    ]
    lin.release("UC-D0417", "quinn")
    for inputs, outputs, kind, unit, step, passage in steps:
        lab.tick(0.1)
        lin.derive(
            inputs,
            outputs,
            kind,
            unit,
            "alice",
            passage=passage,
            batch_id="DEMO-001" if step else None,
            step=step,
            expiry=(lab.now + SHELF_LIFE["concentrate"]).strftime("%Y-%m-%d")
            if kind == "concentrate"
            else None,
        )
        lin.release(outputs[0][0], "quinn")
    lin.split("CON-DEMO-001", 22, 1, "alice", batch_id="DEMO-001", step="concentrate")
    for n in range(1, 23):
        lin.release(f"CON-DEMO-001-{n:02d}", "quinn")
    print(
        "DEMO-001 lineage: donor UC-D0417 -> vial -> culture -> harvest -> filtrate -> "
        "concentrate -> 22 aliquots of 1 mL, each released"
    )


def approve_protocols(lab: Lab) -> None:
    """The bundled protocols under change control, as a lab puts its own there: rita
    (reviewer) imports each file as a draft, quinn (QA) approves it with a signature. Only
    then can a batch start from it."""
    from cmprep.protocol.library import protocol_files

    refs = []
    for path in protocol_files():
        stored = lab.svc.protocols.import_file(str(path), "rita")
        lab.tick(0.5)
        lab.svc.protocols.approve(stored.id, stored.version, "quinn", DEMO_PASSWORD)
        refs.append(stored.ref)
    print(f"Protocols: {', '.join(refs)} imported by rita, approved by quinn (QA)")


# how much more concentrated each route's product is than the conditioned medium itself
ROUTE_FACTOR = {"use_fresh": 1.0, "concentrate": 340 / 22, "lyophilise": 1.0}


def _qc_values(rng: random.Random, hypoxic: bool, arm: str = "use_fresh") -> dict[str, str]:
    """Secretome results around the review's typical ranges (hypoxia raises VEGF), as
    measured on the route's product: a concentrate reads about 15 times higher."""
    k = ROUTE_FACTOR.get(arm, 1.0)
    vegf = rng.gauss(460 if hypoxic else 300, 30) * k
    return {
        "vegf": f"{vegf:.0f} pg/mL",
        "il6": f"{rng.gauss(280, 40) * k:.0f} pg/mL",
        "fgf2": f"{rng.gauss(520, 60) * k:.0f} pg/mL",
        "ev_concentration": f"{rng.gauss(2.6e7, 2.5e6) * k:.3g} particles/mL",
    }


HISTORY = 44  # released batches before the featured ones: 22 hypoxic, 22 standard
# a few history batches with a deviation, so the audit report has something to show
HISTORY_DEVIATIONS = {
    3: ("spin", {"rcf": "520 x g"}),
    8: ("conditioning", {"incubator_temp": "38.1 degC"}),
    9: ("spin", {"rcf": "540 x g"}),
    13: ("expansion", {"confluence": "83 %"}),
    17: ("spin", {"duration": "15 min"}),
}


def run_demo(out: Path) -> dict[str, Path]:
    from cmprep.errors import MissingExtra
    from cmprep.render import render_audit_report, render_checklist, render_record, write_output
    from cmprep.render.charts import compare_svg, svg_to_png, trend_chart

    out.mkdir(parents=True, exist_ok=True)
    db = out / "demo.db"
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    lab = Lab(db, datetime.now(timezone.utc).replace(microsecond=0, second=0) - timedelta(days=215))
    svc = lab.svc
    for name, full_name, role in PEOPLE:
        svc.people.add(name, full_name, role, DEMO_PASSWORD, "admin", DEMO_PASSWORD)
    for name, _full_name, _role in PEOPLE:  # each person proves themself, as at login
        svc.gate.prove(name, DEMO_PASSWORD, "log in")
    print(
        f"Users: {', '.join(f'{n} ({r})' for n, _, r in PEOPLE)}; demo password {DEMO_PASSWORD!r}"
    )
    approve_protocols(lab)
    for lot, material, expiry in LOTS:
        svc.materials.register_lot(lot, material, expiry, "alice")
    for ident, kind, due, radius in EQUIPMENT:
        svc.materials.register_equipment(ident, kind, due, "alice", rotor_radius_cm=radius)
    print(f"Lots: {len(LOTS)}; instruments: {len(EQUIPMENT)} (centrifuge CF-02, rotor 16.5 cm)")

    # half a year of released batches, alternating protocols: the hypoxic concentrate is the
    # lab's main product (its Westgard baseline reaches the site's 20 batches); the standard
    # medium goes each of the three ways
    plans = []
    for n in range(HISTORY):
        hypoxic = n % 2 == 1
        protocol = HYPOXIA if hypoxic else STANDARD
        batch_id = f"{'HYP' if hypoxic else 'STD'}-{n + 1:03d}"
        step, change = HISTORY_DEVIATIONS.get(n, (None, {}))
        arm = "concentrate" if hypoxic else ("use_fresh", "concentrate", "lyophilise")[n // 2 % 3]
        qc = _qc_values(lab.rng, hypoxic, arm)
        overrides = {step: change} if step else None
        plans.append(lab.history_plan(protocol, batch_id, qc, overrides=overrides, arm=arm))
    # a new batch every four days; each takes about nine, so two or three are in progress
    lab.run_together(plans, every_hours=96)
    print(
        f"History: {HISTORY} batches released ({HISTORY // 2} standard, fresh, concentrated or "
        f"lyophilised; {HISTORY // 2} hypoxic, concentrated)"
    )

    # DEMO-001: the featured batch
    csv_path = out / "DEMO-001-elisa.csv"
    csv_path.write_text(
        "analyte,value,unit,method,replicate\n"
        "VEGF,4.71,ng/mL,ELISA,1\nVEGF,4580,pg/mL,ELISA,2\nVEGF,4490,pg/mL,ELISA,3\n"
        "IL-6,3960,pg/mL,ELISA,1\nIL-6,3810,pg/mL,ELISA,2\n"
        "IL-8,18400,pg/mL,ELISA,1\nIL-8,17900,pg/mL,ELISA,2\n"
        "fgf2,8100,pg/mL,ELISA,1\nev_concentration,3.9e8,particles/mL,NTA,1\n",
        encoding="utf-8",
    )

    def import_qc(step: Any) -> Any:
        in_file, _ = svc.qc.parse_csv(step, csv_path.read_text(encoding="utf-8"), csv_path.name)
        others = {
            p.name: in_spec_value(p)
            for p in step.parameters
            if p.required and p.name not in in_file
        }
        return svc.qc.import_csv(
            "DEMO-001", csv_path.read_bytes(), csv_path.name, "alice", others=others
        )

    # the deviation: the centrifuge was left on the cell-pelleting programme (1950 rpm)
    devs = lab.run_batch(
        STANDARD, "DEMO-001", {}, {"spin": {"rcf": "1950 rpm"}}, record_qc=import_qc
    )
    for d in devs:
        print(f"DEMO-001: {d['message']}: deviation {d['deviation_id']} opened ({d['severity']})")
    lab.tick(0.3)
    svc.batches.correct(
        "DEMO-001",
        "collection",
        {"volume": "345 mL"},
        "alice",
        "volume re-read from the graduated bottle",
    )
    lab.verify_and_release(
        "DEMO-001",
        devs,
        "Centrifuge left on the cell-pelleting programme (1950 rpm = 701 x g with rotor CF-02). "
        "Debris removal is only more thorough; the 0.22 um filtration that follows is unaffected.",
    )
    print("DEMO-001: verified by bob, deviation accepted, reviewed and released by quinn (QA)")
    lineage_of_demo_001(lab)

    # DEMO-002: a hypoxic batch whose VEGF is far above the lab's own history
    qc = {**_qc_values(lab.rng, True, "concentrate"), "vegf": "9640 pg/mL"}
    devs = lab.run_batch(HYPOXIA, "DEMO-002", qc)
    for d in devs:
        print(f"DEMO-002: {d['message']}: deviation {d['deviation_id']} opened ({d['severity']})")

    if lab.now > datetime.now(timezone.utc):  # the simulation must not run into the future
        raise RuntimeError("the demo's simulated clock passed the real time; start it earlier")
    # one clock: the half-year ends now, so the documents below are dated as the same
    # commands would date them afterwards (`cmprep batch record-doc`, `audit report`)
    lab.now = datetime.now(timezone.utc).replace(microsecond=0)
    record = svc.documents.record_view("DEMO-001")
    paths: dict[str, Path] = {"database": db}

    def save(label: str, content: str | bytes, name: str) -> None:
        paths[label] = write_output(content, out / name)

    save(
        "batch record (HTML)",
        render_record(record, "html"),
        "DEMO-001-record.html",
    )
    save(
        "batch record (Markdown)",
        render_record(record, "md"),
        "DEMO-001-record.md",
    )
    save(
        "SOP checklist (HTML)",
        render_checklist(svc.documents.checklist_view(STANDARD), "html"),
        f"{STANDARD}-checklist.html",
    )
    save(
        "audit report (HTML)",
        render_audit_report(svc.documents.audit_view(), "html"),
        "audit-report.html",
    )
    trend = svc.qc.trend("vegf", HYPOXIA, route="concentrate")
    lj = trend_chart(trend, f"VEGF, {HYPOXIA}")
    save("VEGF control chart (SVG)", lj, "vegf-trend.svg")
    cmp = svc.qc.compare("preconditioning", ["vegf"])
    cmp_svg = compare_svg(
        cmp.table["vegf"],
        unit=cmp.units["vegf"],
        title="VEGF: hypoxic vs normoxic (released batches)",
    )
    save("VEGF by preconditioning (SVG)", cmp_svg, "vegf-by-preconditioning.svg")
    from cmprep.render.lineage import lineage_svg

    save(
        "DEMO-001 lineage (SVG)",
        lineage_svg(svc.lineage.trace("UC-D0417", "down")),
        "DEMO-001-lineage.svg",
    )
    # the record as it travels: an .eln archive (RO-Crate) signed by QA
    archive = svc.exports.eln("DEMO-001", signer="quinn", pdf=False)
    save("DEMO-001 archive (.eln, signed)", archive.data, "DEMO-001.eln")
    try:
        save(
            "batch record (PDF)",
            render_record(record, "pdf"),
            "DEMO-001-record.pdf",
        )
        _sheet, labels = svc.lineage.print_labels("CON-DEMO-001-01", 2, "alice")
        save("labels of CON-DEMO-001-01 (PDF)", labels, "CON-DEMO-001-01-labels.pdf")
        svc.lineage.print_labels("CON-DEMO-001-01", 1, "alice", reason="label smeared")
        save("VEGF control chart (PNG)", svg_to_png(lj), "vegf-trend.png")
        save("VEGF by preconditioning (PNG)", svg_to_png(cmp_svg), "vegf-by-preconditioning.png")
    except MissingExtra as err:  # WeasyPrint or cairosvg missing: the demo still stands
        print(f"  (PDF/PNG skipped: {err})")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", type=Path)
    args = parser.parse_args()
    paths = run_demo(args.out)
    print("\nWritten:")
    for what, path in paths.items():
        print(f"  {what:30} {path}")
    db = paths["database"]
    print(f"\nTry: CMPREP_DB={db} .venv/bin/cmprep batch status DEMO-001")
    print(f"     CMPREP_DB={db} .venv/bin/cmprep qc trend vegf --protocol {HYPOXIA}")
    print(f"     CMPREP_DB={db} .venv/bin/cmprep qc compare --by preconditioning --analyte vegf")
    print(f"     CMPREP_DB={db} .venv/bin/cmprep audit verify")
    print(f"     CMPREP_DB={db} .venv/bin/cmprep protocol list")


if __name__ == "__main__":
    main()
