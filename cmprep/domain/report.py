"""The deviation audit report's figures: Pareto charts by step, protocol, severity and
person, the deviations still open by age, and the batches decided in the period.

Apart from ``cmprep.domain.audit`` (the log's checks, which need the signatures, the keys
and the protocols): the report is made from the query tables' counts alone, and a start of
``cmprep audit report`` must import only what it uses.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from cmprep.domain.westgard import is_opener

# One group of deviations as the store counts them: the values of the columns grouped by,
# how many deviations, and the smallest deviation id among them.
Counted = tuple[tuple[Any, ...], int, str]

# what each Pareto chart counts deviations by (the store's columns and fields)
REPORT_COUNTS: dict[str, tuple[str, ...]] = {
    "by_step": ("step", "kind"),
    "by_protocol": ("protocol_id",),
    "by_severity": ("severity",),
    "by_person": ("opened_by",),
}
# what the report shows of an open deviation, and of a released or rejected batch
OPEN_COLUMNS = (
    "deviation_id",
    "batch_id",
    "step",
    "severity",
    "status",
    "opened_by",
    "opened_at",
)
DECIDED_COLUMNS = (
    "batch_id",
    "protocol_id",
    "protocol_version",
    "state",
    "started_at",
    "started_by",
    "updated_at",
)


def category(chart: str, values: tuple[Any, ...]) -> str:
    """The name a chart gives a group: a deviation without a step (a complaint) is
    counted under its kind, in brackets."""
    if chart == "by_step":
        step, kind = values
        return str(step or f"({kind or 'no step'})")
    if chart == "by_person" and is_opener(str(values[0])):
        return f"(system: {values[0]})"  # raised by a rule, apart from the people
    return str(values[0])


def pareto(chart: str, groups: Iterable[Counted]) -> list[dict[str, Any]]:
    """Categories by count, with the cumulative share: the few causes of most deviations.

    Categories of equal count keep the order of their first deviation (by id), as a list
    of the deviations would show them.
    """
    merged: dict[str, list[Any]] = {}
    for values, count, first in groups:
        seen = merged.setdefault(category(chart, values), [0, first])
        seen[0] += count
        seen[1] = min(seen[1], first)
    ranked = sorted(merged.items(), key=lambda item: (-item[1][0], item[1][1]))
    total = sum(count for count, _ in merged.values()) or 1
    rows, running = [], 0
    for name, (count, _first) in ranked:
        running += count
        rows.append({"name": name, "count": count, "cumulative": round(100 * running / total, 1)})
    return rows


def age_days(opened_at: str, now: datetime) -> float:
    """Days from OPENED_AT (stored UTC text) to NOW, to a tenth."""
    opened = datetime.fromisoformat(opened_at.replace("Z", "+00:00"))
    return round((now - opened).total_seconds() / 86400, 1)


def open_by_age(rows: Iterable[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
    """Deviations not closed (given by id), each with its age in days, oldest first."""
    return oldest_first([{**d, "age_days": age_days(d["opened_at"], now)} for d in rows])


def open_rows_by_age(
    rows: Iterable[Sequence[Any]], columns: Sequence[str], now: datetime
) -> list[dict[str, Any]]:
    """As ``open_by_age``, from ROWS as the store streams them (values of COLUMNS, one of
    them ``opened_at``): each row made a dict once, its age added to it."""
    at = list(columns).index("opened_at")
    aged = []
    for row in rows:
        d = dict(zip(columns, row, strict=True))
        d["age_days"] = age_days(row[at], now)
        aged.append(d)
    return oldest_first(aged)


def oldest_first(aged: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """AGED (by id) sorted oldest first, in place; equal ages keep the order of their ids."""
    aged.sort(key=lambda d: -d["age_days"])
    return aged


def report_summary(
    counts: Mapping[str, Iterable[Counted]],
    open_rows: list[dict[str, Any]],
    decided: Mapping[str, Iterable[dict[str, Any]]],
    started: int,
    now: datetime,
    since: str | None,
    decided_counts: Mapping[str, int] | None = None,
) -> dict[str, Any]:
    """What the audit report shows, from what the store counted and listed: COUNTS by
    chart (``REPORT_COUNTS``), the deviations of the period not closed with their ages,
    oldest first (``open_by_age``), the batches released and rejected in it by state (in
    the list's order; given as the store streams them, with DECIDED_COUNTS, or as lists),
    and how many started in it. Rendering only formats it."""
    charts = {chart: pareto(chart, counts.get(chart, [])) for chart in REPORT_COUNTS}
    released, rejected = decided.get("released", []), decided.get("rejected", [])
    if decided_counts is None:  # lists, counted here
        released, rejected = list(released), list(rejected)
        decided_counts = {"released": len(released), "rejected": len(rejected)}
    return {
        "since": since,
        "generated_at": now.isoformat(timespec="seconds").replace("+00:00", "Z"),
        "total": sum(r["count"] for r in charts["by_severity"]),
        **charts,
        "open": open_rows,
        "released": released,
        "rejected": rejected,
        "released_count": decided_counts.get("released", 0),
        "rejected_count": decided_counts.get("rejected", 0),
        "batches": started,
    }


def counted(rows: Iterable[Mapping[str, Any]], columns: tuple[str, ...]) -> list[Counted]:
    """ROWS grouped as the store's ``deviation_counts`` groups them."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        seen = groups.setdefault(tuple(r.get(c) for c in columns), [0, str(r["deviation_id"])])
        seen[0] += 1
        seen[1] = min(seen[1], str(r["deviation_id"]))
    return [(values, count, first) for values, (count, first) in groups.items()]


def report_data(
    deviations: list[dict[str, Any]],
    batches: list[dict[str, Any]],
    now: datetime,
    since: str | None,
) -> dict[str, Any]:
    """The audit report from whole rows (a test, a script): as ``report_summary`` makes it
    from the store's counts."""
    devs = sorted(
        (d for d in deviations if not since or d["opened_at"] >= since),
        key=lambda d: str(d["deviation_id"]),
    )
    return report_summary(
        {chart: counted(devs, columns) for chart, columns in REPORT_COUNTS.items()},
        open_by_age([d for d in devs if d["status"] != "closed"], now),
        {
            state: [
                b
                for b in batches
                if b["state"] == state and (not since or b["updated_at"] >= since)
            ]
            for state in ("released", "rejected")
        },
        len([b for b in batches if not since or b["started_at"] >= since]),
        now,
        since,
    )
