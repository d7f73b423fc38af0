"""`make demo`: one whole batch of the standard protocol, with one deviation, end to end.

The demo runs on a simulated clock (the service's injected clock) so that the 24-72 h
conditioning window passes in a second; in real use the clock is always the system's.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timedelta, timezone
from pathlib import Path

PROTOCOL = "cm-standard-serum-free"
DEMO_PASSWORD = "demo-password"  # a demo database only; real users choose their own
PEOPLE = [
    ("admin", "Ada Admin", "admin"),
    ("alice", "Alice Archer", "technician"),
    ("bob", "Bob Baker", "technician"),
    ("quinn", "Quinn Quality", "qa"),
]

# (step, values, hours that pass before the step is done)
STEPS: list[tuple[str, dict[str, str], float]] = [
    ("isolation", {"source_tissue": "UC", "donor_id": "UC-D-0193"}, 0),
    (
        "expansion",
        {
            "passage": "3",
            "confluence": "76 %",
            "viability": "94 %",
            "basal_medium": "alpha-MEM",
            "fbs_percent": "10",
        },
        96,
    ),
    ("pbs_wash", {"washes": "3", "pbs_lot": "PBS-24-118"}, 0.5),
    (
        "conditioning",
        {"serum_percent": "0 %", "medium": "serum-free alpha-MEM", "incubator_temp": "37.0 degC"},
        0.25,
    ),
    ("collection", {"volume": "480 mL", "vessels_pooled": "4"}, 48),
    # the deviation: the centrifuge was left on the cell-pelleting programme
    ("spin", {"rcf": "650 x g", "duration": "10 min", "temperature": "4 °C"}, 0.5),
    (
        "filtration",
        {"pore_size": "220 nm", "integrity_test_passed": "yes", "filter_lot": "SFCA-0.22-7731"},
        0.5,
    ),
    (
        "concentrate",
        {
            "mwco": "3 kDa",
            "concentration_factor": "12",
            "final_volume": "40 mL",
            "device_lot": "UF-3K-2291",
        },
        2,
    ),
    (
        "qc",
        {
            "sterility_passed": "yes",
            "endotoxin_passed": "yes",
            "vegf": "0.38 ng/mL",
            "ev_concentration": "2.1e9",
            "qc_report_id": "QC-2026-0412",
        },
        72,
    ),
]


def run_demo(out: Path) -> dict[str, Path]:
    from cmprep.render import render_checklist, render_record, write_output
    from cmprep.service import Service
    from cmprep.store.sqlite import SQLiteStore

    out.mkdir(parents=True, exist_ok=True)
    db = out / "demo.db"
    for leftover in (db, Path(f"{db}-wal"), Path(f"{db}-shm")):
        leftover.unlink(missing_ok=True)
    now = [datetime.now(timezone.utc).replace(microsecond=0) - timedelta(days=10)]
    svc = Service(SQLiteStore(db), clock=lambda: now[0])
    for name, full_name, role in PEOPLE:
        svc.add_user(name, full_name, role, DEMO_PASSWORD, "admin")
    print(
        f"Users: {', '.join(f'{n} ({r})' for n, _, r in PEOPLE)}; demo password {DEMO_PASSWORD!r}"
    )
    batch_id = svc.start_batch(PROTOCOL, "alice", "DEMO-001").batch.id
    print(f"Batch {batch_id} started from {PROTOCOL} by alice (simulated clock).")
    for step, values, hours in STEPS:
        now[0] += timedelta(hours=hours)
        result = svc.record_step(batch_id, step, values, "alice")
        print(f"  recorded {step}")
        for dev in result.deviations:
            print(
                f"    {dev['message']}: deviation {dev['deviation_id']} opened ({dev['severity']})"
            )
    now[0] += timedelta(minutes=20)
    svc.correct(
        batch_id,
        "collection",
        {"volume": "470 mL"},
        "alice",
        "volume re-read from the graduated bottle",
    )
    # second-person verification of the critical steps, then QA's decisions
    for step in ("filtration", "qc"):
        now[0] += timedelta(minutes=5)
        svc.verify_step(batch_id, step, "bob", DEMO_PASSWORD)
        print(f"  {step} verified by bob")
    dev_id = svc.deviations(batch_id=batch_id)[0]["deviation_id"]
    now[0] += timedelta(hours=2)
    svc.investigate(
        dev_id,
        "alice",
        "Centrifuge left on the cell-pelleting programme (650 x g, 10 min). Debris removal is "
        "only more thorough at 650 x g; the 0.22 um filtration that follows is unaffected.",
        impact="No impact on sterility or composition expected; QC results within release spec.",
    )
    now[0] += timedelta(hours=20)
    svc.close_deviation(
        dev_id,
        "quinn",
        DEMO_PASSWORD,
        "accepted",
        "Justification accepted; product quality not affected.",
        capa="CAPA-2026-031: lock centrifuge programmes per SOP",
    )
    print(f"  {dev_id} investigated by alice, accepted by quinn (QA)")
    now[0] += timedelta(hours=1)
    svc.release(batch_id, "quinn", DEMO_PASSWORD, "All deviations closed, verifications complete.")
    print(f"  {batch_id} released by quinn (QA)")
    batch = svc.batch(batch_id)
    qc, head = svc.qc_summary(batch), svc.ledger_head()
    paths = {
        "database": db,
        "batch record (HTML)": write_output(
            render_record(batch, "html", qc=qc, ledger_head=head), out / f"{batch_id}-record.html"
        ),
        "batch record (Markdown)": write_output(
            render_record(batch, "md", qc=qc, ledger_head=head), out / f"{batch_id}-record.md"
        ),
        "SOP checklist (HTML)": write_output(
            render_checklist(batch.protocol, "html"), out / f"{PROTOCOL}-checklist.html"
        ),
    }
    try:
        paths["batch record (PDF)"] = write_output(
            render_record(batch, "pdf", qc=qc, ledger_head=head), out / f"{batch_id}-record.pdf"
        )
    except RuntimeError as err:  # WeasyPrint missing: the demo still stands without PDF
        print(f"  (no PDF: {err})")
    return paths


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="demo-output", type=Path)
    args = parser.parse_args()
    paths = run_demo(args.out)
    print("\nWritten:")
    for what, path in paths.items():
        print(f"  {what:26} {path}")
    print(f"\nTry: CMPREP_DB={paths['database']} .venv/bin/cmprep batch status DEMO-001")
    print(f"     CMPREP_DB={paths['database']} .venv/bin/cmprep audit verify")


if __name__ == "__main__":
    main()
