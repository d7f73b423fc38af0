"""QA's pages: review by exception, the deviation lifecycle (investigate, decide with a
signature, CAPA), and release or rejection with the password given again.

A signature covers the batch as the signer saw it: each signing form carries the batch's
last event as it was shown, and if the batch has changed since, nothing is signed and the
page says what is new (the services sign the batch as it is at that moment, so the person
must have seen that). The password is asked for every signature, whatever the session.
"""

from __future__ import annotations

from typing import Any

from starlette.responses import Response

from cmprep.domain.audit import describe
from cmprep.domain.batch import Batch
from cmprep.errors import Refused
from cmprep.store.query import DeviationFilter
from cmprep.web.bench import MEANING_TEXT, _said
from cmprep.web.shell import Req
from cmprep.web.templating import seg

SEVERITIES = ("minor", "major", "critical")
STATUSES = ("open", "investigated", "closed")


def _changed_since(r: Req, batch: Batch) -> list[dict[str, Any]] | None:
    """The events after the one the form was shown with, or None when nothing changed."""
    seq = r.field("seq")
    shown = int(seq) if seq.isdigit() else -1
    if shown == batch.seq:
        return None
    return [describe(e) for e in batch.events if e.seq > shown]


# --- review, release, reject --------------------------------------------------------------------
def review_page(
    r: Req,
    message: str = "",
    status: int = 200,
    changed: list[dict[str, Any]] | None = None,
    typed: dict[str, str] | None = None,
) -> Response:
    batch = r.app.batches.batch(r.param("batch"))
    report = r.app.quality.review_report(batch.id)
    return r.page(
        "review.html",
        status,
        batch=batch,
        report=report,
        message=message,
        changed=changed or [],
        typed=typed or {},
        meanings=MEANING_TEXT,
        signed=r.arg("done"),
    )


def _sign(r: Req, act: str) -> Response:
    typed = {k: r.field(k) for k in ("comment", "reason")}
    password = r.field("password")

    def write() -> Response:
        batch = r.app.batches.batch(r.param("batch"))
        changed = _changed_since(r, batch)
        if changed is not None:
            return review_page(
                r,
                "This batch changed since you opened this page; nothing was signed. Read "
                "what is new, then sign again.",
                409,
                changed,
                typed,
            )
        try:
            if act == "review":
                r.app.quality.sign_review(batch.id, r.name, password, r.field("comment"))
            elif act == "release":
                r.app.quality.release(batch.id, r.name, password, r.field("reason") or None)
            else:
                r.app.quality.reject(batch.id, r.name, password, r.field("reason"))
        except Refused as err:
            return review_page(r, _said(err), 422, None, typed)
        page = "review" if act == "review" else "record"
        return r.redirect(f"/batches/{seg(batch.id)}/{page}?done={act}")

    return r.once(write)


def sign_review(r: Req) -> Response:
    return _sign(r, "review")


def release(r: Req) -> Response:
    return _sign(r, "release")


def reject(r: Req) -> Response:
    return _sign(r, "reject")


# --- deviations --------------------------------------------------------------------------------
def deviations_page(r: Req) -> Response:
    which = r.arg("status", "open")
    where = (
        DeviationFilter(not_status="closed")
        if which == "open"
        else DeviationFilter(status=which if which in STATUSES else None)
    )
    rows = r.app.quality.deviations(where)
    return r.page("deviations.html", rows=rows, which=which, choices=("open", "closed", "all"))


def deviation_page(
    r: Req,
    message: str = "",
    status: int = 200,
    changed: list[dict[str, Any]] | None = None,
) -> Response:
    batch, dev = r.app.quality.deviation(r.param("deviation"))
    view = r.app.quality.deviation_view(dev.id)
    return r.page(
        "deviation.html",
        status,
        dev=view,
        batch=batch,
        message=message,
        changed=changed or [],
        typed=dict(r.form),
        severities=SEVERITIES,
        meanings=MEANING_TEXT,
        done=r.arg("done"),
    )


def investigate(r: Req) -> Response:
    _batch, dev = r.app.quality.deviation(r.param("deviation"))

    def write() -> Response:
        try:
            r.app.quality.investigate(
                dev.id, r.name, r.field("justification"), r.field("impact") or None
            )
        except Refused as err:
            return deviation_page(r, _said(err), 422)
        return r.redirect(f"/deviations/{seg(dev.id)}?done=investigated")

    return r.once(write)


def close_deviation(r: Req) -> Response:
    def write() -> Response:
        batch, dev = r.app.quality.deviation(r.param("deviation"))
        changed = _changed_since(r, batch)
        if changed is not None:
            return deviation_page(
                r,
                "This batch changed since you opened this page; nothing was signed. Read "
                "what is new, then decide again.",
                409,
                changed,
            )
        severity = r.field("severity") or None
        try:
            r.app.quality.close_deviation(
                dev.id,
                r.name,
                r.field("password"),
                r.field("decision"),
                r.field("reason"),
                capa=r.field("capa") or None,
                severity=severity if severity != dev.severity else None,
                severity_reason=r.field("severity_reason") or None,
            )
        except Refused as err:
            return deviation_page(r, _said(err), 422)
        return r.redirect(f"/deviations/{seg(dev.id)}?done=closed")

    return r.once(write)


def open_deviation(r: Req) -> Response:
    batch = r.app.batches.batch(r.param("batch"))

    def write() -> Response:
        out = r.app.quality.open_deviation(
            batch.id, r.field("step"), r.field("severity") or "major", r.name, r.field("reason")
        )
        return r.redirect(f"/deviations/{seg(out.deviations[0]['deviation_id'])}?done=opened")

    return r.once(write)
