"""The bench web application: every route with who may use it, and the Starlette app.

``ROUTES`` is the one table of pages and forms; each names the act it performs (a key of
``PERMISSIONS``, checked by the Gate on the server before the handler runs, a refusal
logged to ``@security`` and answered 403), or ``SIGNED_IN`` for pages anyone signed in may
read, or ``PUBLIC``. The route tests walk this table for every role.

Handlers are plain functions run in Starlette's thread pool, each request with its own
services (``shell.run``); forms are read here, before, because reading them is async.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cmprep.web import bench, documents, qa
from cmprep.web.security import Once, Seal, security_headers
from cmprep.web.shell import PUBLIC, SIGNED_IN, Web, WebRoute, run

if TYPE_CHECKING:
    from cmprep.service import Services

STATIC = Path(__file__).resolve().parent / "static"
MAX_FORM_FIELDS = 400  # the largest step has a few dozen fields

ROUTES: list[WebRoute] = [
    WebRoute("GET", "/login", bench.sign_in_page, PUBLIC),
    WebRoute("POST", "/login", bench.sign_in, PUBLIC),
    WebRoute("GET", "/logout", bench.sign_out_page, SIGNED_IN),
    WebRoute("POST", "/logout", bench.sign_out, SIGNED_IN),
    # the bench
    WebRoute("GET", "/", bench.board_page, SIGNED_IN),
    WebRoute("GET", "/board", bench.board_page, SIGNED_IN, passive=True),  # self-refresh
    WebRoute("GET", "/board/live", bench.board_live, SIGNED_IN, passive=True),
    WebRoute("GET", "/batches/new", bench.new_batch_page, "start"),
    WebRoute("POST", "/batches/new", bench.start_batch, "start"),
    WebRoute("GET", "/batches/{batch}", bench.batch_page, SIGNED_IN),
    WebRoute("GET", "/batches/{batch}/steps/{step}", bench.step_page, SIGNED_IN),
    WebRoute("POST", "/batches/{batch}/steps/{step}", bench.record_step, "record"),
    WebRoute("POST", "/batches/{batch}/steps/{step}/check", bench.check_step, "record"),
    WebRoute("POST", "/batches/{batch}/steps/{step}/skip", bench.skip_step, "skip"),
    WebRoute("POST", "/batches/{batch}/hold", bench.hold, "hold"),
    WebRoute("POST", "/batches/{batch}/resume", bench.resume, "resume"),
    # the verifier proves themself with their own password; the Gate checks their role
    WebRoute("GET", "/batches/{batch}/steps/{step}/verify", bench.verify_page, SIGNED_IN),
    WebRoute("POST", "/batches/{batch}/steps/{step}/verify", bench.verify, SIGNED_IN),
    # QA
    WebRoute("GET", "/batches/{batch}/review", qa.review_page, "review"),
    WebRoute("POST", "/batches/{batch}/review", qa.sign_review, "review"),
    WebRoute("POST", "/batches/{batch}/release", qa.release, "release"),
    WebRoute("POST", "/batches/{batch}/reject", qa.reject, "reject"),
    WebRoute("POST", "/batches/{batch}/deviations", qa.open_deviation, "open deviation"),
    WebRoute("GET", "/deviations", qa.deviations_page, SIGNED_IN),
    WebRoute("GET", "/deviations/{deviation}", qa.deviation_page, SIGNED_IN),
    WebRoute("POST", "/deviations/{deviation}/investigate", qa.investigate, "investigate"),
    WebRoute("POST", "/deviations/{deviation}/close", qa.close_deviation, "close deviation"),
    # documents and charts
    WebRoute("GET", "/batches/{batch}/record", documents.record_page, SIGNED_IN),
    WebRoute("GET", "/batches/{batch}/record.pdf", documents.record_pdf, SIGNED_IN),
    WebRoute("GET", "/batches/{batch}/trail", documents.trail_page, SIGNED_IN),
    WebRoute("GET", "/protocols/{protocol}/checklist", documents.checklist_page, SIGNED_IN),
    WebRoute("GET", "/protocols/{protocol}/checklist.pdf", documents.checklist_pdf, SIGNED_IN),
    WebRoute("GET", "/audit/report", documents.report_page, SIGNED_IN),
    WebRoute("GET", "/audit/report.pdf", documents.report_pdf, SIGNED_IN),
    WebRoute("GET", "/qc", documents.qc_page, SIGNED_IN),
    WebRoute("GET", "/qc/trend.svg", documents.trend_svg, SIGNED_IN),
    WebRoute("GET", "/qc/compare.svg", documents.compare_svg, SIGNED_IN),
]


def _endpoint(web: Web, route: WebRoute) -> Callable[[Request], object]:
    async def endpoint(request: Request) -> Response:
        form: dict[str, str] = {}
        if request.method == "POST":
            async with request.form(max_files=0, max_fields=MAX_FORM_FIELDS) as data:
                for name, value in data.multi_items():
                    if isinstance(value, str):
                        form[name] = value
        return await run_in_threadpool(run, web, route, request, form)

    return endpoint


class SecurityHeaders:
    """Adds the security headers to every answer that has not set its own (the static
    files, Starlette's own 404 and 405 included)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        https = scope.get("scheme") == "https"

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                have = {k.decode().lower() for k, _ in message.get("headers", [])}
                extra = [
                    (k.lower().encode(), v.encode())
                    for k, v in security_headers(https).items()
                    if k.lower() not in have
                ]
                if scope.get("path", "").startswith("/static/"):
                    extra = [(k, v) for k, v in extra if k != b"cache-control"]
                message["headers"] = [*message.get("headers", []), *extra]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def create_app(open_services: Callable[[], Services], *, secret: bytes | None = None) -> Starlette:
    """The bench web page over the services OPEN_SERVICES makes (one per request).

    SECRET seals the cookies and CSRF tokens; by default a new random one per process.
    """
    web = Web(open_services, Seal(secret), Once())
    routes: list[BaseRoute] = [
        Route(r.path, _endpoint(web, r), methods=[r.method], name=f"{r.method} {r.path}")
        for r in ROUTES
    ]
    routes.append(Mount("/static", StaticFiles(directory=STATIC), name="static"))
    app = Starlette(routes=routes, middleware=[Middleware(SecurityHeaders)])
    app.state.web = web
    return app
