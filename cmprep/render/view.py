"""What every read model shares: JSON by ``to_json()`` and read access by key.

Apart from the read models themselves (``cmprep.render.models``, ``cmprep.render.status``)
so that a command building one model loads only that model's classes: creating a dataclass
costs a fraction of a millisecond, and the sixty of them are a sixth of a `batch status`.
"""

from __future__ import annotations

import dataclasses
from typing import Any

# the metadata of a field a screen reads but the JSON answer leaves out (never promised)
SCREEN_ONLY = {"json": False}


def json_text(data: Any) -> str:
    """DATA as every command's JSON answer prints it: indented, non-ASCII text as it is,
    anything JSON has no type for as its text."""
    import json

    return json.dumps(data, indent=2, ensure_ascii=False, default=str)


def plain(obj: Any) -> Any:
    """``obj`` as JSON-ready data: dataclasses (views and domain records alike) as dicts
    of their JSON fields, sequences as lists, mappings with their values converted."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        if isinstance(obj, View):
            return obj.to_json()
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj)}
    if isinstance(obj, dict):
        return {k: plain(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [plain(v) for v in obj]
    return obj


class View:
    """What every read model has: JSON by ``to_json()`` and read access by key."""

    def to_json(self) -> dict[str, Any]:
        return {
            f.name: plain(getattr(self, f.name))
            for f in dataclasses.fields(self)  # type: ignore[arg-type]
            if f.metadata.get("json", True)
        }

    def __getitem__(self, key: str) -> Any:
        """Transitional: ``view["x"]`` is ``view.x``, for callers of the old dict answers."""
        if key not in {f.name for f in dataclasses.fields(self)}:  # type: ignore[arg-type]
            raise KeyError(key)
        return getattr(self, key)


# --- batch status (`batch status --format json`) ---------------------------------------------
