"""What guards every page: the session cookie, the CSRF token, the origin check, the
security headers, and the one-time key that makes a double tap save once.

The session token itself comes from ``SessionService.login``; the database keeps only its
hash. The cookie carries the token and the time of the person's last action at this
tablet, sealed with an HMAC under a secret of this server process, so the page can sign a
person out after the site's ``web_idle_minutes`` without a write per request. A restart
of the server makes a new secret: everyone signs in again, which is the safe direction.

Everything here is standard library; Starlette types appear only in annotations.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

SESSION_COOKIE = "cmprep_session"
FORM_COOKIE = "cmprep_form"  # binds the sign-in form's CSRF token before there is a session

# No inline script anywhere: every script and stylesheet is a file under /static/.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


def security_headers(https: bool, style_hashes: tuple[str, ...] = ()) -> dict[str, str]:
    """The headers of every answer. A printed document (record, checklist, report) carries
    its print stylesheet inline, so its page allows exactly that style block by hash."""
    csp = CSP
    if style_hashes:
        allowed = " ".join(f"'sha256-{h}'" for h in style_hashes)
        csp = csp.replace("style-src 'self'", f"style-src 'self' {allowed}")
    headers = {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY",
        "Referrer-Policy": "same-origin",  # "no-referrer" would make Origin "null"
        "X-Content-Type-Options": "nosniff",
        "Permissions-Policy": "camera=(), microphone=(), geolocation=(), payment=()",
        "Cross-Origin-Opener-Policy": "same-origin",
        "Cache-Control": "no-store",
    }
    if https:
        headers["Strict-Transport-Security"] = "max-age=31536000"
    return headers


def style_hash(css: str) -> str:
    """The CSP hash of one inline style block (base64 SHA-256 of its exact text)."""
    import base64

    return base64.b64encode(hashlib.sha256(css.encode("utf-8")).digest()).decode()


@dataclass(frozen=True)
class CookieSession:
    """What the session cookie holds: the token and the last action (epoch seconds)."""

    token: str
    last_action: int


class Seal:
    """HMAC under this server's secret: seals cookies and makes CSRF tokens."""

    def __init__(self, secret: bytes | None = None) -> None:
        self.secret = secret or secrets.token_bytes(32)

    def _mac(self, purpose: str, text: str) -> str:
        return hmac.new(self.secret, f"{purpose}|{text}".encode(), hashlib.sha256).hexdigest()

    # --- the session cookie ------------------------------------------------------------------
    def session_cookie(self, token: str, last_action: int) -> str:
        body = f"{token}.{last_action}"
        return f"{body}.{self._mac('session', body)}"

    def open_session_cookie(self, value: str | None) -> CookieSession | None:
        """The cookie's content if its seal holds, else None (forged, or an old secret)."""
        if not value or value.count(".") != 2:
            return None
        token, last, mac = value.split(".")
        if not hmac.compare_digest(mac, self._mac("session", f"{token}.{last}")):
            return None
        if not last.isdigit():
            return None
        return CookieSession(token, int(last))

    # --- CSRF ----------------------------------------------------------------------------------
    def csrf_token(self, binding: str) -> str:
        """The token every form of this session (or of this sign-in form) carries."""
        return self._mac("csrf", binding)

    def csrf_ok(self, binding: str | None, given: str | None) -> bool:
        if not binding or not given:
            return False
        return hmac.compare_digest(self.csrf_token(binding), given)


def origin_problem(headers: Mapping[str, str], own_origin: str) -> str | None:
    """Why a form post may come from another site, or None.

    A browser sends ``Origin`` on every POST and ``Sec-Fetch-Site`` on every request; a
    cross-site form fails either. A client that sends neither (a script, the test client)
    still needs the CSRF token, which another site cannot read.
    """
    origin = headers.get("origin")
    if origin is not None and origin != "null" and origin.rstrip("/") != own_origin:
        return f"the form came from {origin}, not from this site"
    if origin == "null":
        return "the form came from a page without an origin"
    site = headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return f"the form came from another site ({site})"
    return None


def new_form_key() -> str:
    """A fresh idempotency key for one form as it is shown."""
    return secrets.token_hex(16)


class Once:
    """Each form's key runs its write once in this process: a double tap or a retried post
    waits for the first and is answered with where the first went.

    Only writes that succeeded are remembered (a refused form may be sent again with the
    same key once corrected). Keys are kept per person, the newest ``size``. The services
    keep their own record of keys for starting, recording and skipping, so a retry that
    reaches another server process is still saved once.
    """

    def __init__(self, size: int = 4096) -> None:
        self.size = size
        self._lock = threading.Lock()
        self._done: OrderedDict[str, str] = OrderedDict()  # key -> where the first went
        self._running: dict[str, threading.Event] = {}

    def run(self, key: str, write: Callable[[], str | None]) -> tuple[str | None, bool]:
        """(where to go, whether this was a repeat). WRITE returns where to go after a
        successful write, or None when it wrote nothing."""
        while True:
            with self._lock:
                if key in self._done:
                    self._done.move_to_end(key)
                    return self._done[key], True
                running = self._running.get(key)
                if running is None:
                    running = self._running[key] = threading.Event()
                    break
            running.wait(timeout=60)
        try:
            where = write()
        finally:
            with self._lock:
                del self._running[key]
                running.set()
        if where is not None:
            with self._lock:
                self._done[key] = where
                while len(self._done) > self.size:
                    self._done.popitem(last=False)
        return where, False
