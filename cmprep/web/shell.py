"""What every page shares: the services of one request, who is signed in, the form's
guards, the role check, and every error said as a page.

Each request gets its own ``Services`` over its own store connection and closes it when
the answer is made: a person proven in one request (by the session cookie, or a verifier
by their password) is present in that request only, never in the next person's.

Roles are checked on the server for every route, before the handler runs: a route names
the act it performs (a key of ``PERMISSIONS``), and a person whose role may not perform it
is refused by the Gate itself, which writes the refusal to ``@security``; the page answers
403. The services check again when they write, as they do for the command line.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from cmprep.domain.people import PERMISSIONS
from cmprep.errors import (
    ClockBehind,
    CmprepError,
    ConcurrencyError,
    CorruptLog,
    MissingExtra,
    NotFound,
    Refused,
    StoreError,
)
from cmprep.web.hints import web_hint
from cmprep.web.security import (
    FORM_COOKIE,
    SESSION_COOKIE,
    Once,
    Seal,
    new_form_key,
    origin_problem,
)
from cmprep.web.templating import render

if TYPE_CHECKING:
    from cmprep.service import Services
    from cmprep.service.access import Signer

PUBLIC = "public"  # a route anyone may open (sign in, the static files)
SIGNED_IN = "signed in"  # a route for anyone signed in, whatever their role


class RoleRefused(Exception):
    """The Gate refused the person this act (and logged it); the page answers 403."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass
class Web:
    """What lives as long as the server: how to open the services, the seal of cookies
    and CSRF tokens, and the keys of forms already saved."""

    open_services: Callable[[], Services]
    seal: Seal = field(default_factory=Seal)
    once: Once = field(default_factory=Once)


@dataclass(frozen=True)
class WebRoute:
    """One page or form: its method and path, its handler, and who may use it: PUBLIC,
    SIGNED_IN, or an act of ``PERMISSIONS`` (checked by the Gate, refusals logged)."""

    method: str
    path: str
    handler: Callable[[Req], Response]
    access: str
    passive: bool = False  # a refresh the page makes by itself: not a sign of activity


@dataclass
class Req:
    """One request as a handler sees it."""

    request: Request
    form: dict[str, str]
    app: Services
    web: Web
    user: Signer | None
    token: str | None
    now: datetime
    route: WebRoute
    set_cookies: list[tuple[str, str, bool]] = field(default_factory=list)  # name, value, keep

    # --- reading the request ---------------------------------------------------------------
    def param(self, name: str) -> str:
        return str(self.request.path_params.get(name, ""))

    def arg(self, name: str, default: str = "") -> str:
        return str(self.request.query_params.get(name, default))

    def field(self, name: str) -> str:
        return self.form.get(name, "")

    @property
    def name(self) -> str:
        assert self.user is not None, "a signed-in route"
        return self.user.name

    @property
    def https(self) -> bool:
        return self.request.url.scheme == "https"

    def may(self, act: str) -> bool:
        """Whether the signed-in person's role allows ACT (to show its button; the route
        checks it again when the form is posted)."""
        return self.user is not None and self.user.user.role in PERMISSIONS[act]

    def require(self, name: str, act: str) -> str:
        """NAME (proven in this request) may perform ACT, or the Gate refuses and logs it."""
        user = self.app.gate.user(name)
        if user is not None and user.role not in PERMISSIONS[act]:
            try:
                self.app.gate.person(name, act)
            except Refused as err:
                raise RoleRefused(err.message) from None
        return self.app.gate.person(name, act)

    # --- answering ---------------------------------------------------------------------------
    def csrf(self) -> str:
        binding = self.token or self.request.cookies.get(FORM_COOKIE) or ""
        return self.web.seal.csrf_token(binding) if binding else ""

    def page(self, template: str, status: int = 200, **context: Any) -> HTMLResponse:
        base = {
            "me": self.user.user if self.user else None,
            "csrf": self.csrf(),
            "form_key": new_form_key,
            "may": self.may,
            "now": self.now,
            "path": self.request.url.path,
        }
        return HTMLResponse(render(template, {**base, **context}), status_code=status)

    def redirect(self, url: str) -> RedirectResponse:
        return RedirectResponse(url, status_code=303)

    def once(self, write: Callable[[], Response]) -> Response:
        """Run a form's write once per key: a repeat of a form already saved goes where the
        first went; the first answer of a form that saved nothing is shown as it is."""
        key = self.field("key")
        if not key:
            return write()
        answer: list[Response] = []

        def run() -> str | None:
            response = write()
            answer.append(response)
            if response.status_code == 303:
                return str(response.headers["location"])
            return None

        where, repeat = self.web.once.run(f"{self.name if self.user else ''}|{key}", run)
        if repeat and where is not None:
            return self.redirect(_mark_repeat(where))
        return answer[0] if answer else self.redirect(where or "/")


def _mark_repeat(where: str) -> str:
    return where + ("&" if "?" in where else "?") + "again=1"


_LOCAL = re.compile(r"/(?![/\\])[A-Za-z0-9/_.~%@=&?+-]*")


def local_path(text: str) -> str:
    """A path on this site to go back to after signing in, never another site's: no
    ``//host``, no backslash, no space or control character a browser would drop."""
    return text if _LOCAL.fullmatch(text) else "/"


# --- errors as pages ---------------------------------------------------------------------------
ERROR_STATUS: list[tuple[type[CmprepError], int, str]] = [
    (NotFound, 404, "Not found"),
    (ConcurrencyError, 409, "This changed meanwhile"),
    (ClockBehind, 409, "Check the clock"),
    (StoreError, 503, "The database cannot be used"),
    (MissingExtra, 501, "Not installed here"),
    (CorruptLog, 500, "The records fail their checks"),
    (Refused, 422, "Not done"),
]


def error_page(r: Req, err: CmprepError, back: str = "") -> Response:
    status, title = next(
        ((s, t) for cls, s, t in ERROR_STATUS if isinstance(err, cls)), (400, "Not done")
    )
    return r.page(
        "error.html",
        status,
        title=title,
        message=err.message,
        problems=err.problems,
        hint=web_hint(err.hint),
        back=back,
    )


def refused_page(r: Req, message: str) -> Response:
    return r.page(
        "error.html",
        403,
        title="Not allowed",
        message=message,
        problems=[],
        hint=None,
        back="/",
    )


def run(web: Web, route: WebRoute, request: Request, form: Mapping[str, str]) -> Response:
    """Answer one request: open its services, find who is signed in, check the form's
    guards and the route's role, run the handler, and close the services."""
    try:
        app = web.open_services()
    except CmprepError as err:  # no database there, a damaged file: said, not a traceback
        return bare_error(err)
    try:
        return _answer(web, route, request, dict(form), app)
    except CmprepError as err:  # met before a handler ran: the user records, the sessions
        return bare_error(err)
    finally:
        app.close()


def bare_error(err: CmprepError) -> Response:
    """An error met before anyone could be signed in, as a page of its own."""
    status, title = next(
        ((s, t) for cls, s, t in ERROR_STATUS if isinstance(err, cls)), (400, "Not done")
    )
    context = {
        "me": None,
        "csrf": "",
        "form_key": new_form_key,
        "may": lambda act: False,
        "now": None,
        "path": "",
        "title": title,
        "message": err.message,
        "problems": err.problems,
        "hint": web_hint(err.hint),
        "back": "/",
    }
    return HTMLResponse(render("error.html", context), status_code=status)


def _answer(
    web: Web, route: WebRoute, request: Request, form: dict[str, str], app: Services
) -> Response:
    now = app.ctx.clock()
    r = Req(request, form, app, web, None, None, now, route)
    if request.method == "POST" and (problem := origin_problem(request.headers, _origin(request))):
        return refused_page(r, f"Nothing was saved: {problem}.")
    ended = _sign_in_from_cookie(r)
    if route.access != PUBLIC and r.user is None:
        return _to_sign_in(r, ended)
    if request.method == "POST" and not web.seal.csrf_ok(
        r.token or request.cookies.get(FORM_COOKIE), form.get("csrf")
    ):
        return refused_page(
            r,
            "This form has expired or did not come from this page; nothing was saved. "
            "Open the page again and repeat the entry.",
        )
    try:
        if route.access not in (PUBLIC, SIGNED_IN):
            r.require(r.name, route.access)
        response = route.handler(r)
    except RoleRefused as err:
        response = refused_page(r, err.message)
    except CmprepError as err:
        response = error_page(r, err)
    if r.user is not None and r.token is not None and not route.passive:
        r.set_cookies.append((SESSION_COOKIE, web.seal.session_cookie(r.token, _epoch(now)), True))
    return _with_cookies(r, response)


def _epoch(moment: datetime) -> int:
    return int(moment.timestamp())


def _origin(request: Request) -> str:
    url = request.url
    default = {"http": 80, "https": 443}.get(url.scheme)
    port = f":{url.port}" if url.port and url.port != default else ""
    return f"{url.scheme}://{url.hostname}{port}"


def _sign_in_from_cookie(r: Req) -> str:
    """Resume the session the cookie names, if its seal holds and the person was active
    within the site's web idle time; else why it ended: "idle", "ended" ("" for none)."""
    cookie = r.web.seal.open_session_cookie(r.request.cookies.get(SESSION_COOKIE))
    if cookie is None:
        if r.request.cookies.get(SESSION_COOKIE):
            r.set_cookies.append((SESSION_COOKIE, "", False))
            return "ended"
        return ""
    idle = r.app.settings.show().web_idle_minutes
    if _epoch(r.now) - cookie.last_action > idle * 60:
        r.app.sessions.logout(cookie.token)
        r.set_cookies.append((SESSION_COOKIE, "", False))
        return "idle"
    try:
        r.user = r.app.sessions.resume(cookie.token)
    except Refused:
        r.set_cookies.append((SESSION_COOKIE, "", False))
        return "ended"
    r.token = cookie.token
    return ""


def _to_sign_in(r: Req, ended: str) -> Response:
    if r.route.passive:
        response: Response = json_answer({"signed_in": False, "ended": ended}, 401)
    else:
        target = r.request.url.path
        if r.request.method == "GET" and r.request.url.query:
            target += "?" + r.request.url.query
        params = {"next": target} if target != "/" else {}
        if ended:
            params["ended"] = ended
        url = "/login" + ("?" + urlencode(params) if params else "")
        response = RedirectResponse(url, status_code=303)
    return _with_cookies(r, response)


def _with_cookies(r: Req, response: Response) -> Response:
    for name, value, keep in r.set_cookies:
        if keep:
            response.set_cookie(
                name, value, httponly=True, samesite="strict", secure=r.https, path="/"
            )
        else:
            response.delete_cookie(name, path="/", httponly=True, samesite="strict", secure=r.https)
    return response


def json_answer(data: Any, status: int = 200) -> Response:
    return Response(json.dumps(data), status_code=status, media_type="application/json")
