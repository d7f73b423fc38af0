"""The hand-written SQL each set command is timed against: the same rows, straight from the
database with Python's sqlite3 and csv, and nothing else.

    python bench/hand_sql.py DB deviations [--status S]  # deviation list --format csv
    python bench/hand_sql.py DB deviations-json          # deviation list --format json
    python bench/hand_sql.py DB batches [--state S]      # batch list --format csv
    python bench/hand_sql.py DB report [--since TIME]    # the audit report's rows

It is what a person who knows the schema would type; the one thing it shares with cmprep
is the spreadsheet-formula guard on CSV cells, so that both print the same bytes.
"""

from __future__ import annotations

import csv
import sqlite3
import sys

DEVIATIONS = (
    "SELECT deviation_id, batch_id, step, parameter, json_extract(data, '$.value'), "
    "json_extract(data, '$.spec'), severity, status, opened_by, opened_at, "
    "json_extract(data, '$.decision') FROM deviations"
)
DEVIATION_HEADER = (
    "deviation_id,batch_id,step,parameter,value,spec,severity,status,opened_by,opened_at,decision"
)
BATCHES = (
    "SELECT batch_id, protocol_id, protocol_version, state, started_by, started_at, "
    "open_deviations FROM batches"
)
BATCH_HEADER = "batch_id,protocol_id,protocol_version,state,started_by,started_at,open_deviations"
_COUNT = "count(*), min(deviation_id) FROM deviations WHERE opened_at >= ? GROUP BY"
REPORT = (  # (section, SQL): what the audit report counts and lists, for a period start
    ("by_step", f"SELECT step, json_extract(data, '$.kind'), {_COUNT} 1, 2"),
    ("by_protocol", f"SELECT protocol_id, {_COUNT} 1"),
    ("by_severity", f"SELECT severity, {_COUNT} 1"),
    ("by_person", f"SELECT opened_by, {_COUNT} 1"),
    (
        "open",
        "SELECT deviation_id, batch_id, step, severity, status, opened_by, opened_at "
        "FROM deviations WHERE opened_at >= ? AND status <> 'closed' "
        "ORDER BY opened_at, deviation_id",
    ),
    (
        "decided",
        "SELECT batch_id, protocol_id, protocol_version, state, started_at, started_by, "
        "updated_at FROM batches WHERE updated_at >= ? AND state IN ('released', 'rejected') "
        "ORDER BY state, started_at, batch_id",
    ),
    ("started", "SELECT count(*) FROM batches WHERE started_at >= ?"),
)


def safe(value: object) -> object:
    """A text cell starting like a formula gets a quote, unless it is a number."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@"):
        try:
            float(value)
        except ValueError:
            return "'" + value
    return value


def where(options: list[str]) -> tuple[str, list[str]]:
    pairs = dict(zip(options[::2], options[1::2], strict=True))
    conditions = [f"{name.removeprefix('--')} = ?" for name in pairs]
    return (" WHERE " + " AND ".join(conditions) if conditions else ""), list(pairs.values())


def main() -> None:
    db, what, *options = sys.argv[1:]
    conn = sqlite3.connect(db)
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    if what in ("deviations", "batches"):
        sql, header = (
            (DEVIATIONS, DEVIATION_HEADER) if what == "deviations" else (BATCHES, BATCH_HEADER)
        )
        order = (
            " ORDER BY deviation_id" if what == "deviations" else " ORDER BY started_at, batch_id"
        )
        condition, args = where(options)
        out.write(header + "\n")
        writer.writerows(
            [safe(v) for v in row] for row in conn.execute(sql + condition + order, args)
        )
    elif what == "deviations-json":
        first = True
        for (text,) in conn.execute("SELECT json(data) FROM deviations ORDER BY deviation_id"):
            out.write(("[\n  " if first else ",\n  ") + text)
            first = False
        out.write("[]\n" if first else "\n]\n")
    elif what == "report":
        since = options[1] if options[:1] == ["--since"] else ""
        for title, sql in REPORT:
            out.write(f"# {title}\n")
            writer.writerows(conn.execute(sql, (since,)))


if __name__ == "__main__":
    main()
