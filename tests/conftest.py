"""Shared fixtures: a service on a fresh SQLite file with a clock the test moves."""

from __future__ import annotations

import inspect
import sqlite3
import tracemalloc
from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from cmprep.service import Services
from cmprep.store.sqlite import SQLiteStore

REPO = Path(__file__).resolve().parent.parent
STANDARD = "cm-standard-serum-free"

# values that pass every spec of the standard protocol, step by step
GOOD = {
    "isolation": {"source_tissue": "UC", "donor_id": "D-1"},
    "expansion": {
        "passage": "3",
        "confluence": "75",
        "viability": "95",
        "basal_medium": "DMEM",
        "fbs_percent": "10",
        "seeding_density": "4000",
    },
    "pbs_wash": {"washes": "3", "pbs_lot": "PBS-1"},
    "conditioning": {
        "serum_percent": "0",
        "medium": "serum-free DMEM",
        "incubator_temp": "37",
        "vessels": "14",
        "vessel_area": "175",
        "medium_volume": "36 mL",
        "cell_count": "4.9e7",
        "viability_start": "95",
    },
    "collection": {
        "volume": "500 mL",
        "vessels_pooled": "4",
        "cell_count": "4.5e7",
        "viability": "92",
        "mycoplasma_sampled": "yes",
        "mycoplasma_sample_id": "MY-1",
    },
    "spin": {"rcf": "400 x g", "duration": "10 min", "temperature": "4"},
    "filtration": {
        "pore_size": "0.22 um",
        "integrity_test_passed": "yes",
        "filter_lot": "F-1",
        "filtrate_volume": "490 mL",
    },
    "use_fresh": {
        "hold_time": "1 h",
        "hold_temperature": "4",
        "recipient": "study 7",
        "final_volume": "480 mL",
        "container": "sterile PETG bottle",
        "aliquots": "4",
        "expiry": "2026-11-05T12:00Z",
    },
    "concentrate": {  # 500 mL collected / 40 mL: a concentration factor of 12.5
        "mwco": "3 kDa",
        "final_volume": "40 mL",
        "device_lot": "UF-1",
        "storage_temperature": "-80",
        "container": "sterile cryovial",
        "aliquots": "20",
        "expiry": "2027-11-01T00:00Z",
    },
    "lyophilise": {
        "shelf_temperature": "-45",
        "residual_moisture": "2",
        "storage_temperature": "-80",
        "cycle_id": "LY-1",
        "fill_volume": "2 mL",
        "cake_mass": "40 mg",
        "reconstitution_volume": "2 mL",
        "container": "glass lyophilisation vial (stoppered and crimped)",
        "aliquots": "240",
        "expiry": "2028-11-01T00:00Z",
    },
    "qc": {
        "sterility_passed": "yes",
        "endotoxin": "0.1 EU/mL",
        "mycoplasma_passed": "yes",
        "vegf": "250 pg/mL",
        "vegf_blank": "5 pg/mL",
        "qc_report_id": "QC-1",
    },
}


class Clock:
    """A clock the test advances; the service never reads the real time in tests."""

    def __init__(self) -> None:
        self.now = datetime(2026, 11, 2, 8, 0, tzinfo=timezone.utc)

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **kwargs: float) -> None:
        self.now += timedelta(**kwargs)


PASSWORD = "correct horse battery"
PEOPLE = [  # (name, full name, role); the admin comes first
    ("root", "Ada Admin", "admin"),
    ("alice", "Alice Archer", "technician"),
    ("bob", "Bob Baker", "technician"),
    ("rita", "Rita Reviewer", "reviewer"),
    ("quinn", "Quinn Quality", "qa"),
    ("quentin", "Quentin Quality", "qa"),
]


def seed_people(svc: Services) -> Services:
    """Add everyone (root first, then root adds the others with root's password) and prove
    them all present in this service, as if each had logged in."""
    for name, full, role in PEOPLE:
        svc.people.add(name, full, role, PASSWORD, "root", PASSWORD)
    return present(svc)


def present(svc: Services) -> Services:
    """Prove every test person in this service (their passwords open their keys), so a
    test can act as several people in turn, as several logged-in terminals would."""
    for name, _full, _role in PEOPLE:
        user = svc.gate.user(name)
        if user is not None and user.active and not user.locked:  # only who can log in
            svc.gate.prove(name, PASSWORD, "log in")
    return svc


def approve_file(svc: Services, path: str | Path) -> str:
    """Put a protocol file under control as a lab would: rita (reviewer) imports it, quinn
    (QA) approves it with PASSWORD. Returns ``ID@VERSION``, what a batch starts from."""
    stored = svc.protocols.import_file(str(path), "rita")
    svc.protocols.approve(stored.id, stored.version, "quinn", PASSWORD)
    return stored.ref


def approve_bundled(svc: Services) -> Services:
    """Import and approve every bundled protocol, so batches can start from their ids."""
    from cmprep.protocol.library import protocol_files

    for path in protocol_files():
        approve_file(svc, path)
    return svc


@pytest.fixture(autouse=True)
def fast_scrypt(monkeypatch: pytest.MonkeyPatch) -> None:
    """Cheaper password hashes in tests only; the stored hash names its own cost."""
    from cmprep.domain import people

    monkeypatch.setattr(people, "SCRYPT_N", 2**8)


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "test.db"


# Service tests that also run on PostgreSQL (a real throwaway server, tests/pgserver.py):
# in these modules every test taking `svc` runs once per backend, except a test that takes
# `db_path` or `tmp_path` itself (it edits the SQLite file behind the store's back) or runs
# the command line on that file (`cli`).
BOTH_BACKENDS = {
    "test_batches",
    "test_quality",
    "test_release_rules",
    "test_people",
    "test_traceability",
    "test_protocol_control",
    "test_end_to_end",
    "test_lineage",
    "test_qc_route",
    "test_conditional_release",
    "test_derived",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend_name" not in metafunc.fixturenames:
        return
    own = set(inspect.signature(metafunc.function).parameters)
    names = ["sqlite"]
    sqlite_file = own & {"db_path", "tmp_path"} or "cli" in metafunc.fixturenames
    if metafunc.module.__name__ in BOTH_BACKENDS and not sqlite_file:
        names.append("postgresql")
    metafunc.parametrize("backend_name", names)


@pytest.fixture
def svc(db_path: Path, clock: Clock, backend_name: str) -> Services:
    if backend_name == "postgresql":
        from pgserver import cluster, psycopg_or_skip

        from cmprep.store import open_store

        psycopg_or_skip()
        store = open_store(cluster().new_database(), create=True)
    else:
        store = SQLiteStore(db_path, create=True)
    yield approve_bundled(seed_people(Services(store, clock=clock)))
    store.close()


def whole_reads(svc: Services) -> list[str]:
    """The streams whose whole log the store is asked for from now on (``events``): a test
    that a command reads rows by key, not a stream, asserts its stream is not among them."""
    asked: list[str] = []
    real = svc.store.events

    def events(stream: str) -> list[Any]:
        asked.append(stream)
        return real(stream)

    svc.store.events = events  # type: ignore[method-assign]
    return asked


def run_to(
    svc: Services,
    clock: Clock,
    batch_id: str,
    stop_before: str | None = None,
    arm: str = "concentrate",
) -> None:
    """Record the standard protocol's steps with good values, up to (not incl.) a step."""
    batch = svc.batches.batch(batch_id)
    for stage in batch.pipeline.stages:
        if stop_before in [s.id for s in stage]:
            return
        step = next((s for s in stage if s.id == arm), stage[0])
        if batch.steps[step.id].status in ("done", "skipped", "not taken"):
            continue  # already there: run_to may be called again later on the same batch
        clock.advance(hours=48 if step.id == "collection" else 0.5)
        svc.batches.record(batch_id, step.id, GOOD[step.id], "alice")


def edit_tables(path: str | Path, *statements: str) -> None:
    """Run STATEMENTS on the query tables of the SQLite file at PATH behind cmprep's back
    (one transaction, committed): what verification must then name."""
    conn = sqlite3.connect(path)
    try:
        for statement in statements:
            conn.execute(statement)
        conn.commit()
    finally:
        conn.close()


def forger_connect(path: str | Path) -> sqlite3.Connection:
    """A connection to a cmprep SQLite file as a forger who knows its format opens it: SQL can
    read a packed payload's text with ``unpacked(payload)`` and pack text with
    ``packed(text)`` (``cmprep/store/packing.py``), so a test changes what a value says, not
    bytes of a packing no reader could unpack."""
    from cmprep.store.packing import pack, unpack

    conn = sqlite3.connect(path)
    conn.create_function("unpacked", 1, unpack, deterministic=True)
    conn.create_function("packed", 1, pack, deterministic=True)
    return conn


def cli_lab(
    db_path: Path, monkeypatch: pytest.MonkeyPatch, clock: Clock, protocol_file: Path
) -> tuple[Services, str, Any]:
    """A lab on a file database with PROTOCOL_FILE approved, and the command line's Shell
    over it as alice at the bench: each command opens the file anew, people present, on
    the test's clock. Returns (services, the approved protocol's id, the shell)."""
    from cmprep.cli import Shell
    from cmprep.store import open_store

    monkeypatch.setenv("CMPREP_DB", str(db_path))
    monkeypatch.setenv("CMPREP_USER", "alice")
    shell = Shell(lambda db: present(Services(open_store(db), clock=clock)))
    svc = seed_people(Services(open_store(str(db_path), create=True), clock=clock))
    return svc, approve_file(svc, protocol_file), shell


def cli_run(shell: Any, *args: str, given: str | None = None) -> Any:
    """`cmprep ARGS` through SHELL, with GIVEN on standard input; exceptions not caught."""
    from click.testing import CliRunner

    from cmprep.cli import main

    return CliRunner().invoke(main, list(args), obj=shell, input=given, catch_exceptions=False)


def traced_peak(run: Callable[[], Any]) -> tuple[Any, int]:
    """(what RUN returns, the most memory Python held at once while it ran): how the
    scale tests hold memory flat as history grows, without timing anything."""
    tracemalloc.start()
    try:
        result = run()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    return result, peak
