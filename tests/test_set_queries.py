"""Lists and the audit report read the query tables as sets: filters and counts in the
store, only the columns shown, rows streamed. What a person sees stays what it was: each
output is compared with the one made the old way, from whole rows in Python."""

from __future__ import annotations

import contextlib
import csv
import io
import json
import sys
import tracemalloc
from collections.abc import Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from cmprep.cli import Shell, main
from cmprep.cli.batch import LIST_COLUMNS as BATCH_COLUMNS
from cmprep.cli.common import stream_table, table
from cmprep.cli.deviation import LIST_COLUMNS as DEVIATION_COLUMNS
from cmprep.domain.report import DECIDED_COLUMNS, report_data
from cmprep.errors import Refused
from cmprep.service import Services
from cmprep.store.query import BatchFilter, DeviationFilter
from cmprep.store.sqlite import SQLiteStore

NOW = datetime(2026, 11, 29, 12, 0, tzinfo=timezone.utc)


def _batch(n: int, state: str, started: str, updated: str, protocol: str = "cm-a") -> dict:
    return {
        "batch_id": f"B{n:03d}",
        "protocol_id": protocol,
        "protocol_version": "1.0",
        "protocol_hash": "ab" * 32,
        "state": state,
        "started_at": started,
        "started_by": ("alice", "bob")[n % 2],
        "updated_at": updated,
        "head_seq": 5,
        "open_deviations": n % 3,
        "due": ["spin"],
    }


def _deviation(n: int, **over: Any) -> dict:
    row = {
        "deviation_id": f"DEV-{n:04d}",
        "batch_id": f"B{n % 7:03d}",
        "protocol_id": ("cm-a", "cm-b")[n % 2],
        "step": ("spin", "expansion", "qc", "")[n % 4],
        "parameter": ("rcf", None, "vegf", None)[n % 4],
        "value": ("650", "", "=HYPERLINK(1)", "")[n % 4],
        "spec": ("300-500", "", ">= 50", "")[n % 4],
        "severity": ("major", "minor", "critical")[n % 3],
        "status": ("open", "investigated", "closed", "closed")[n % 4],
        "kind": ("automatic", "manual", "automatic", "complaint")[n % 4],
        "message": "out of spec \x1b[31m red",
        "opened_by": ("alice", "bob", "rita")[n % 3],
        "opened_at": f"2026-{1 + n % 11:02d}-{1 + n % 27:02d}T08:00:00Z",
        "decision": ("accepted", "rejected")[n % 2] if n % 4 >= 2 else None,
        "addendum": n % 4 == 3,
    }
    return {**row, **over}


@pytest.fixture
def store(tmp_path: Path) -> Iterator[SQLiteStore]:
    s = SQLiteStore(tmp_path / "sets.db", create=True)
    with s.writing("__rows__", 0) as unit:
        for n in range(1, 41):
            unit.put_deviation(_deviation(n))
        unit.put_deviation(_deviation(41, step="spin", value="\x07bell", opened_by="zed"))
        for n, state in enumerate(["released", "rejected", "released", "qc", "on_hold"] * 3):
            started = f"2026-{1 + n % 11:02d}-03T08:00:00Z"
            unit.put_batch(_batch(n, state, started, f"2026-{1 + n % 11:02d}-20T08:00:00Z"))
    yield s
    s.close()


def _run(store: SQLiteStore, *args: str) -> str:
    result = CliRunner().invoke(
        main, [*args, "--db", str(store.path)], obj=Shell(lambda db: Services(store))
    )
    assert result.exit_code == 0, result.output
    return result.output


def _old(rows: list[dict[str, Any]], cols: list[str], fmt: str) -> str:
    """What the lists printed before: ``table`` over whole rows."""
    with CliRunner().isolation() as (out, _err, _):
        table(rows, cols, fmt)
        sys.stdout.flush()
        return out.getvalue().decode()


# --- the lists ------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "args,where",
    [
        ((), DeviationFilter()),
        (("--status", "open"), DeviationFilter(status="open")),
        (("--severity", "major", "--since", "2026-03-01"), None),
        (("--person", "nobody"), DeviationFilter(opened_by="nobody")),
    ],
)
@pytest.mark.parametrize("fmt", ["table", "csv"])
def test_deviation_list_prints_what_it_printed_from_whole_rows(store, args, where, fmt):
    where = where or DeviationFilter(severity="major", since="2026-03-01T00:00:00Z")
    shown = _run(store, "deviation", "list", *args, "--format", fmt)
    assert shown == _old(store.deviation_rows(where), DEVIATION_COLUMNS, fmt)


def test_deviation_list_escapes_control_characters_and_spreadsheet_formulas(store):
    shown = _run(store, "deviation", "list", "--person", "zed")
    assert "\\x07bell" in shown and "\x07" not in shown
    rows = list(csv.DictReader(io.StringIO(_run(store, "deviation", "list", "--format", "csv"))))
    assert {r["value"] for r in rows} >= {"'=HYPERLINK(1)", "650", ""}


def test_deviation_list_as_json_gives_every_field_of_each_row(store):
    data = json.loads(_run(store, "deviation", "list", "--status", "closed", "--format", "json"))
    assert data == store.deviation_rows(DeviationFilter(status="closed"))
    assert data[0]["message"] == "out of spec \x1b[31m red"  # JSON escapes it, as before
    assert json.loads(_run(store, "deviation", "list", "--person", "x", "--format", "json")) == []


@pytest.mark.parametrize("fmt", ["table", "csv"])
@pytest.mark.parametrize("args", [(), ("--state", "released")])
def test_batch_list_prints_what_it_printed_from_whole_rows(store, fmt, args):
    where = BatchFilter(state="released") if args[1:] == ("released",) else BatchFilter()
    shown = _run(store, "batch", "list", *args, "--format", fmt)
    assert shown == _old(store.batch_rows(where), BATCH_COLUMNS, fmt)


def test_batch_list_of_an_unknown_protocol_is_an_error_not_an_empty_list(store):
    result = CliRunner().invoke(
        main,
        ["batch", "list", "--protocol", "none", "--db", str(store.path)],
        obj=Shell(lambda db: Services(store)),
    )
    assert result.exit_code == 1 and "no protocol 'none'" in result.output


def test_batch_list_as_json_gives_every_field_of_each_row(store):
    data = json.loads(_run(store, "batch", "list", "--format", "json"))
    assert data == store.batch_rows(BatchFilter())
    assert data[0]["due"] == ["spin"]


def test_an_empty_list_says_none():
    empty: list[tuple[Any, ...]] = []
    with CliRunner().isolation() as (out, _err, _):
        stream_table(lambda columns: iter(empty), ["a", "b"], "table")
        stream_table(lambda columns: iter(empty), ["a", "b"], "json")
        stream_table(lambda columns: iter(empty), ["a", "b"], "csv")
        sys.stdout.flush()
        assert out.getvalue().decode() == "(none)\n[]\na,b\n"


class _Sink:
    """A standard output that keeps nothing: only the list's own memory is measured."""

    def write(self, text: str) -> int:
        return len(text)


def _peak_listing(tmp_path: Path, n: int, fmt: str) -> int:
    """Peak Python memory while listing N deviations in FMT."""
    s = SQLiteStore(tmp_path / f"many-{n}.db", create=True)
    with s.writing("__rows__", 0) as unit:
        for i in range(1, n + 1):
            unit.put_deviation(_deviation(i))
    tracemalloc.start()
    try:
        with contextlib.redirect_stdout(_Sink()):  # type: ignore[type-var]
            stream_table(
                lambda columns: s.deviation_table(DeviationFilter(), columns),
                DEVIATION_COLUMNS,
                fmt,
            )
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
        s.close()


@pytest.mark.parametrize("fmt", ["csv", "json", "table"])
def test_listing_ten_times_the_rows_takes_no_more_memory(tmp_path, fmt):
    small, large = _peak_listing(tmp_path, 300, fmt), _peak_listing(tmp_path, 3000, fmt)
    assert large < 1.5 * small + 64 * 1024, (small, large)


# --- the audit report -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "since", [None, "2026-03-01", "2026-06-15T08:00:00Z", "2026-10-02", "2030-01-01"]
)
def test_the_report_counted_by_the_store_is_the_report_from_whole_rows(store, since):
    app = Services(store, clock=lambda: NOW)
    got = app.audit.report(since)
    want = report_data(store.deviation_rows(), store.batch_rows(), NOW, got["since"])
    for key in ("since", "generated_at", "total", "batches"):
        assert got[key] == want[key], key
    for key in ("by_step", "by_protocol", "by_severity", "by_person"):
        assert got[key] == want[key], key
    assert [(d["deviation_id"], d["age_days"]) for d in got["open"]] == [
        (d["deviation_id"], d["age_days"]) for d in want["open"]
    ]
    for d, w in zip(got["open"], want["open"], strict=True):
        assert d == {k: w[k] for k in d}
    for key in ("released", "rejected"):  # streamed from the store, counted by it
        assert list(got[key]) == [{k: b[k] for k in DECIDED_COLUMNS} for b in want[key]]
        assert got[f"{key}_count"] == want[f"{key}_count"] == len(want[key])


def test_the_report_names_a_deviation_without_a_step_by_its_kind(store):
    steps = {r["name"] for r in Services(store, clock=lambda: NOW).audit.report()["by_step"]}
    assert steps == {"spin", "expansion", "qc", "(complaint)"}


def test_categories_of_equal_count_keep_the_order_of_their_first_deviation(tmp_path):
    s = SQLiteStore(tmp_path / "ties.db", create=True)
    with s.writing("__rows__", 0) as unit:
        for n, step in enumerate(["qc", "spin", "spin", "qc", "expansion"], start=1):
            unit.put_deviation(_deviation(n, step=step))
    report = Services(s, clock=lambda: NOW).audit.report()
    assert [(r["name"], r["count"]) for r in report["by_step"]] == [
        ("qc", 2),
        ("spin", 2),
        ("expansion", 1),
    ]
    s.close()


def test_the_report_reads_no_whole_row(store, monkeypatch):
    """Counted and listed by the store: the old readers of every row are not called."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("the report read every row")

    monkeypatch.setattr(store, "deviation_rows", refuse)
    monkeypatch.setattr(store, "batch_rows", refuse)
    report = Services(store, clock=lambda: NOW).audit.report("2026-03-01")
    assert report["total"] > 0


def test_a_bad_period_is_refused_with_what_is_expected(store):
    result = CliRunner().invoke(
        main,
        ["audit", "report", "--since", "last week", "--db", str(store.path)],
        obj=Shell(lambda db: Services(store)),
    )
    assert result.exit_code == 2
    assert "'last week' is not a date; expected YYYY-MM-DD" in result.output
    with pytest.raises(Refused, match="the start of the period"):
        Services(store).audit.report("last week")


def test_the_report_document_shows_the_counts_and_rows(store):
    md = _run(store, "audit", "report", "--format", "md")
    report = Services(store, clock=lambda: NOW).audit.report()
    assert f"| Deviations | **{report['total']}** ({len(report['open'])} not closed) |" in md
    assert "| 1 | spin |" in md
    assert "(complaint)" in md
    assert click.unstyle(md) == md
