"""The bundled protocols, found by id."""

from __future__ import annotations

from pathlib import Path

from cmprep.protocol.loader import ProtocolError, load_file
from cmprep.protocol.models import Protocol
from cmprep.resources import protocols_dir


def protocol_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or protocols_dir()).glob("*.yaml"))


def bundled(directory: Path | None = None) -> list[Protocol]:
    return [load_file(p) for p in protocol_files(directory)]


def find(ref: str, directory: Path | None = None) -> Protocol:
    """A protocol by bundled id, or by the path of a YAML file."""
    path = Path(ref)
    if ref.endswith((".yaml", ".yml")) or path.is_file():
        return load_file(path)
    for proto in bundled(directory):
        if proto.id == ref:
            return proto
    known = ", ".join(p.id for p in bundled(directory)) or "none"
    raise LookupError(f"no protocol {ref!r}; bundled protocols: {known}")


__all__ = ["ProtocolError", "bundled", "find", "protocol_files"]
