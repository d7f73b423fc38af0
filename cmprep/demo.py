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
seconds; in real use the clock is always the system's.
"""

from __future__ import annotations

import argparse
import random
from collections.abc import Callable
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
# hours that pass before each step (the collection window is 24-72 h after conditioning)
HOURS = {"expansion": 96, "collection": 48, "qc": 48}


def in_spec_value(param: Any) -> str:
    """A plausible in-spec reading for any parameter (the midpoint of its spec)."""
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
        else (lo + 1 if lo is not None else hi - 1)
    )
    return str(round(value)) if param.type == ParamType.integer else f"{value:g}"


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
        """Every step in order with in-spec values (or the overrides); returns deviations."""
        svc, overrides = self.svc, overrides or {}
        svc.batches.start(protocol, "alice", batch_id)
        opened: list[dict[str, Any]] = []
        for stage in svc.batches.batch(batch_id).pipeline.stages:
            step = next((s for s in stage if s.id == arm), stage[0])
            self.tick(HOURS.get(step.id, 0.5))
            values = {p.name: in_spec_value(p) for p in step.parameters if p.required}
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
        return opened

    def verify_and_release(
        self, batch_id: str, deviations: list[dict[str, Any]], why: str = ""
    ) -> None:
        svc = self.svc
        for step in ("filtration", "qc"):
            self.tick(0.2)
            svc.quality.verify_step(batch_id, step, "bob", DEMO_PASSWORD)
        for dev in deviations:
            self.tick(3)
            svc.quality.investigate(
                dev["deviation_id"],
                "alice",
                why or "Cause identified at the bench; see the batch notes.",
                impact="No impact on product quality expected.",
            )
            self.tick(20)
            svc.quality.close_deviation(
                dev["deviation_id"],
                "quinn",
                DEMO_PASSWORD,
                "accepted",
                "Justification accepted; no impact on the product.",
            )
        self.tick(1)
        svc.quality.sign_review(
            batch_id, "quinn", DEMO_PASSWORD, "Record reviewed by exception; all deviations closed."
        )
        self.tick(0.5)
        svc.quality.release(batch_id, "quinn", DEMO_PASSWORD, "Meets specification.")


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


def _qc_values(rng: random.Random, hypoxic: bool) -> dict[str, str]:
    """Secretome results around the review's typical ranges; hypoxia raises VEGF."""
    vegf = rng.gauss(460 if hypoxic else 300, 30)
    return {
        "vegf": f"{vegf:.0f} pg/mL",
        "il6": f"{rng.gauss(280, 40):.0f} pg/mL",
        "fgf2": f"{rng.gauss(520, 60):.0f} pg/mL",
        "ev_yield": f"{rng.gauss(2.7e8, 2.5e7):.3g} particles/10^6 cells",
    }


# a few history batches with a deviation, so the audit report has something to show
HISTORY_DEVIATIONS = {
    3: ("spin", {"rcf": "520 x g"}),
    6: ("conditioning", {"incubator_temp": "38.1 degC"}),
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
    lab = Lab(db, datetime.now(timezone.utc).replace(microsecond=0, second=0) - timedelta(days=260))
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

    # half a year of released batches, alternating protocols
    for n in range(22):
        hypoxic = n % 2 == 1
        protocol = HYPOXIA if hypoxic else STANDARD
        batch_id = f"{'HYP' if hypoxic else 'STD'}-{n + 1:03d}"
        step, change = HISTORY_DEVIATIONS.get(n, (None, {}))
        devs = lab.run_batch(
            protocol,
            batch_id,
            _qc_values(lab.rng, hypoxic),
            {step: change} if step else None,
            arm=("use_fresh", "concentrate", "lyophilise")[n % 3],
        )
        lab.verify_and_release(batch_id, devs)
        lab.tick(24)
    print("History: 22 batches of two protocols released (11 standard, 11 hypoxic)")

    # DEMO-001: the featured batch
    csv_path = out / "DEMO-001-elisa.csv"
    csv_path.write_text(
        "analyte,value,unit,method,replicate\n"
        "VEGF,0.318,ng/mL,ELISA,1\nVEGF,305,pg/mL,ELISA,2\nVEGF,297,pg/mL,ELISA,3\n"
        "IL-6,262,pg/mL,ELISA,1\nIL-6,251,pg/mL,ELISA,2\n"
        "IL-8,1240,pg/mL,ELISA,1\nIL-8,1190,pg/mL,ELISA,2\n"
        "fgf2,540,pg/mL,ELISA,1\nev_yield,2.6e8,particles/10^6 cells,NTA,1\n",
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
        {"volume": "470 mL"},
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

    # DEMO-002: a hypoxic batch whose VEGF is far above the lab's own history
    qc = {**_qc_values(lab.rng, True), "vegf": "640 pg/mL"}
    devs = lab.run_batch(HYPOXIA, "DEMO-002", qc)
    for d in devs:
        print(f"DEMO-002: {d['message']}: deviation {d['deviation_id']} opened ({d['severity']})")

    if lab.now > datetime.now(timezone.utc):  # the simulation must not run into the future
        raise RuntimeError("the demo's simulated clock passed the real time; start it earlier")
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
    trend = svc.qc.trend("vegf", HYPOXIA)
    lj = trend_chart(trend, f"VEGF, {HYPOXIA}")
    save("VEGF control chart (SVG)", lj, "vegf-trend.svg")
    cmp = svc.qc.compare("preconditioning", ["vegf"])
    cmp_svg = compare_svg(
        cmp.table["vegf"],
        unit=cmp.units["vegf"],
        title="VEGF: hypoxic vs normoxic (released batches)",
    )
    save("VEGF by preconditioning (SVG)", cmp_svg, "vegf-by-preconditioning.svg")
    try:
        save(
            "batch record (PDF)",
            render_record(record, "pdf"),
            "DEMO-001-record.pdf",
        )
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
