"""The bench web page: a shell like ``cmprep.cli``, for tablets beside the cabinet.

Server-rendered pages over the same services as the command line: each route parses its
form, calls one service method and renders a template from ``templates/web/``. No rule of
the batch record lives here: the services decide, refuse and write; this package only
proves who is at the tablet (a session cookie resumed through ``SessionService``), guards
the forms (CSRF token, origin check, idempotency key) and says what happened.

Importing this package imports Starlette and Jinja, so the command line imports it only
inside ``cmprep serve``; ``cmprep --help`` never loads it (tested).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cmprep.web.app import create_app


def __getattr__(name: str) -> Any:
    """``create_app`` is imported when asked for, with the web stack it needs."""
    if name == "create_app":
        from cmprep.web.app import create_app

        return create_app
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = ["create_app"]
