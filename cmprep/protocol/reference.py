"""Literature reference ranges for QC analytes: information with a citation, never a spec.

The review's typical MSC-CM composition ships as data (protocols/reference/*.yaml). A
result outside a reference range is flagged so a reviewer sees it, with the source; only
the protocol's own release spec can open a deviation.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cmprep.protocol import units
from cmprep.protocol.models import Method, Source
from cmprep.resources import protocols_dir


class ReferenceRange(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(pattern=r"^[a-z][a-z0-9_]*$")
    label: str
    unit: str
    min: float | None = None
    max: float | None = None
    approx: float | None = None
    method: Method | None = None

    @field_validator("unit")
    @classmethod
    def _unit(cls, value: str) -> str:
        return units.canonical(value)

    @model_validator(mode="after")
    def _shape(self) -> ReferenceRange:
        if (self.min is None or self.max is None) and self.approx is None:
            raise ValueError("a reference range gives min and max, or approx")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError("min is above max")
        return self

    def describe(self) -> str:
        if self.approx is not None:
            return f"~{self.approx:.3g} {self.unit}"
        return f"{self.min:g}-{self.max:g} {self.unit}"


class ReferenceSet(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    source: Source
    analytes: list[ReferenceRange]


@cache
def load_all(directory: Path | None = None) -> dict[str, tuple[ReferenceRange, Source]]:
    """Every reference range by analyte id, with the source that gives it."""
    found: dict[str, tuple[ReferenceRange, Source]] = {}
    for path in sorted((directory or protocols_dir() / "reference").glob("*.yaml")):
        data = ReferenceSet.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
        for rng in data.analytes:
            found[rng.id] = (rng, data.source)
    return found


def short_citation(source: Source) -> str:
    """'Nasiri et al. 2026' from a full citation; the source id if it cannot tell."""
    import re

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
