"""Protocol files: the bundled ones, found by id, and any YAML file, found by its path.

A file is what QA checks before importing it; only a version imported into the database
and approved there can start a batch (see ``cmprep.domain.protocols``).
"""

from __future__ import annotations

from pathlib import Path

from cmprep.protocol.loader import ProtocolError, load_file
from cmprep.protocol.models import Protocol
from cmprep.resources import protocols_dir


def protocol_files(directory: Path | None = None) -> list[Path]:
    return sorted((directory or protocols_dir()).glob("*.yaml"))


def bundled(directory: Path | None = None) -> list[Protocol]:
    return [load_file(p) for p in protocol_files(directory)]


def is_file(ref: str) -> bool:
    """Whether REF names a file (a path, or a name ending in .yaml/.yml) rather than an id."""
    return ref.endswith((".yaml", ".yml")) or "/" in ref or "\\" in ref or Path(ref).is_file()


def find_file(ref: str, directory: Path | None = None) -> Path:
    """The file REF names: a path, or the bundled file of a protocol id."""
    if is_file(ref):
        return Path(ref)
    for path in protocol_files(directory):
        if path.stem == ref:
            return path
    for path in protocol_files(directory):  # a file whose name is not its id
        if load_file(path).id == ref:
            return path
    known = ", ".join(p.stem for p in protocol_files(directory)) or "none"
    raise LookupError(f"no protocol file {ref!r}; bundled protocols: {known}")


def find(ref: str, directory: Path | None = None) -> Protocol:
    """A protocol by bundled id, or by the path of a YAML file."""
    return load_file(find_file(ref, directory))


__all__ = ["ProtocolError", "bundled", "find", "find_file", "is_file", "protocol_files"]
