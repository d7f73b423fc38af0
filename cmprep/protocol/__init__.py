"""Protocols: the master recipes, as validated data.

Names are imported on first use so that `cmprep.protocol.units` alone stays instant
(the models pull in pydantic, the loader PyYAML).
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_LAZY = {
    "Problem": "cmprep.protocol.loader",
    "ProtocolError": "cmprep.protocol.loader",
    "load_file": "cmprep.protocol.loader",
    "parse_text": "cmprep.protocol.loader",
    "SITE_CHOICE": "cmprep.protocol.models",
    "ParamType": "cmprep.protocol.models",
    "Parameter": "cmprep.protocol.models",
    "Protocol": "cmprep.protocol.models",
    "Severity": "cmprep.protocol.models",
    "Step": "cmprep.protocol.models",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmprep.protocol' has no attribute {name!r}")
