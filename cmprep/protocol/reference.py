"""Literature reference ranges for QC analytes: information with a citation, never a spec.

The review's typical MSC-CM composition ships as data (protocols/reference/*.json). A
result outside a reference range is flagged so a reviewer sees it, with the source; only
the protocol's own release spec can open a deviation.

JSON, not YAML like the protocols: a batch's status shows a concentrate's results beside
these ranges, and must not load a YAML parser to do it. The file's words for its reader go
in ``about`` (the file) and ``note`` (an analyte).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, fields
from functools import cache
from pathlib import Path
from typing import Any

from cmprep.protocol import units
from cmprep.protocol.models import Method, Source
from cmprep.resources import protocols_dir

_ID = re.compile(r"^[a-z][a-z0-9_]*$")


@dataclass(frozen=True, kw_only=True)
class ReferenceRange:
    """One analyte's literature range (or approximate value), in its canonical unit.

    A plain dataclass checked by ``read``: the ranges ship with cmprep and are read by
    commands that only show a batch (a concentrate's result beside the literature), which
    must not import pydantic for them."""

    id: str
    label: str
    unit: str
    min: float | None = None
    max: float | None = None
    approx: float | None = None
    method: Method | None = None
    note: str | None = None  # words for the file's reader; never shown

    @classmethod
    def read(cls, data: dict[str, Any], where: str) -> ReferenceRange:
        """DATA from a reference file, checked: ValueError naming WHERE and what is wrong."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        missing = sorted({"id", "label", "unit"} - set(data))
        if unknown or missing:
            raise ValueError(f"{where}: unknown keys {unknown}, missing keys {missing}")
        if not isinstance(data["id"], str) or not _ID.match(data["id"]):
            raise ValueError(f"{where}: id {data['id']!r} is not a lower-case name")
        numbers: dict[str, float | None] = {}
        for key in ("min", "max", "approx"):
            value = data.get(key)
            if value is None:
                numbers[key] = None
                continue
            try:  # a number written as text ("2.8e8", as YAML 1.1 reads it) is still one
                numbers[key] = float(value) if not isinstance(value, bool) else None
            except (TypeError, ValueError):
                numbers[key] = None
            if numbers[key] is None or numbers[key] != numbers[key]:  # not one, or NaN
                raise ValueError(f"{where}: {key} must be a number, not {value!r}")
        lo, hi, approx = numbers["min"], numbers["max"], numbers["approx"]
        if (lo is None or hi is None) and approx is None:
            raise ValueError(f"{where}: a reference range gives min and max, or approx")
        if lo is not None and hi is not None and lo > hi:
            raise ValueError(f"{where}: min is above max")
        method = data.get("method")
        return cls(
            id=data["id"],
            label=str(data["label"]),
            unit=units.canonical(str(data["unit"])),
            min=lo,
            max=hi,
            approx=approx,
            method=Method(method) if method is not None else None,
            note=str(data["note"]) if data.get("note") is not None else None,
        )

    def describe(self) -> str:
        if self.approx is not None:
            return f"~{self.approx:.3g} {self.unit}"
        return f"{self.min:g}-{self.max:g} {self.unit}"


@cache
def load_all(directory: Path | None = None) -> dict[str, tuple[ReferenceRange, Source]]:
    """Every reference range by analyte id, with the source that gives it."""
    import json

    found: dict[str, tuple[ReferenceRange, Source]] = {}
    for path in sorted((directory or protocols_dir() / "reference").glob("*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except ValueError as err:
            raise ValueError(f"{path.name}: not JSON ({err})") from None
        if not isinstance(data, dict) or set(data) - {"about"} != {"source", "analytes"}:
            raise ValueError(f"{path.name}: a reference file has source: and analytes:")
        source = Source(**data["source"])
        for n, item in enumerate(data["analytes"]):
            rng = ReferenceRange.read(item, f"{path.name}, analytes[{n}]")
            found[rng.id] = (rng, source)
    return found


def short_citation(source: Source) -> str:
    """'Nasiri et al. 2026' from a full citation; the source id if it cannot tell."""
    author = re.match(r"\s*([A-Z][A-Za-z'\-]+)", source.citation)
    year = re.search(r"\b(19|20)\d{2}\b", source.citation)
    if not author or not year:
        return source.id
    return f"{author.group(1)} et al. {year.group(0)}"


def flag(reference_id: str, value: float, unit: str | None) -> str | None:
    """The information note for a value outside its reference range, else None."""
    entry = load_all().get(reference_id)
    if entry is None or unit is None:
        return None
    rng, source = entry
    if rng.min is None or rng.max is None:
        return None
    try:
        in_ref_unit = units.convert(value, unit, rng.unit)
    except units.UnitError:
        return None
    if rng.min <= in_ref_unit <= rng.max:
        return None
    side = "below" if in_ref_unit < rng.min else "above"
    return (
        f"{rng.label} {in_ref_unit:.4g} {rng.unit} is {side} the literature reference range "
        f"{rng.describe()} ({short_citation(source)}); information only"
    )
