"""The web pages' Jinja environment: ``templates/web/``, autoescaped, strict.

Autoescape is on for every template and nothing a person typed is ever marked safe: a
batch id, a note, a reason or a value reaches the page as text. Undefined names fail
loudly (StrictUndefined) instead of printing an empty cell. Addresses are built with the
``seg`` filter, which quotes one path segment entirely (``/`` included).
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any
from urllib.parse import quote, urlencode

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from cmprep.render.documents import format_time
from cmprep.resources import templates_dir


def seg(value: Any) -> str:
    """One path segment, every reserved character quoted."""
    return quote(str(value), safe="")


def query(params: dict[str, Any]) -> str:
    return urlencode({k: v for k, v in params.items() if v not in (None, "")})


def words(value: Any) -> str:
    """A state or verdict as words: ``awaiting_review`` -> ``awaiting review``."""
    return str(value or "").replace("_", " ")


@lru_cache(maxsize=2)
def environment(directory: str | None = None) -> Environment:
    env = Environment(
        loader=FileSystemLoader(directory or str(templates_dir() / "web")),
        autoescape=True,
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["seg"] = seg
    env.filters["when"] = format_time
    env.filters["words"] = words
    env.filters["query"] = query
    return env


def render(name: str, context: dict[str, Any]) -> str:
    return environment().get_template(name).render(**context)
