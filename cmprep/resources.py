"""Where the bundled protocols and templates are, installed or in a checkout."""

from __future__ import annotations

from pathlib import Path

_PACKAGE = Path(__file__).resolve().parent


def _data_dir(name: str) -> Path:
    installed = _PACKAGE / "_data" / name  # inside a wheel
    if installed.is_dir():
        return installed
    return _PACKAGE.parent / name  # a source checkout / editable install


def protocols_dir() -> Path:
    return _data_dir("protocols")


def templates_dir() -> Path:
    return _data_dir("templates")
