"""The bench: signing in and out, the bench board, starting a batch, the batch page, the
step page (record, skip, late entry, branch arms), hold and resume, and second-person
verification on the same tablet.

Each handler parses its form, calls one service method and answers with a page or a
redirect; the services decide and refuse. A refused form is shown again with what was
typed (never a password) and the reason beside each field.
"""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

from starlette.responses import Response

from cmprep.domain.audit import describe
from cmprep.domain.batch import Batch
from cmprep.domain.pipeline import AWAITING_REVIEW, FINAL
from cmprep.errors import ConcurrencyError, NotFound, Refused
from cmprep.protocol.models import Step
from cmprep.web import board
from cmprep.web.forms import (
    Judgement,
    StepForm,
    default_late_time,
    judge,
    note_for,
    performed_text,
    read_step_form,
)
from cmprep.web.hints import web_hint
from cmprep.web.security import FORM_COOKIE, SESSION_COOKIE
from cmprep.web.shell import Req, json_answer, local_path
from cmprep.web.templating import seg

# what each signature means, said on the page before the password is asked for
MEANING_TEXT = {
    "performed": "I performed this step and the entries are what I observed.",
    "verified": "I, a second person, checked the step's entries against the bench and its "
    "documents, and they are correct.",
    "reviewed": "I reviewed the batch record, every exception in it, and found it complete.",
    "approved": "I accept this deviation with the investigation and CAPA shown.",
    "rejected": "I reject: the deviation (or the batch) does not meet the requirements.",
    "released": "I release this batch: it meets its specification and the record is complete.",
}

ENDED = {
    "idle": "You were signed out after {minutes} min without using this page.",
    "ended": "Your session has ended; sign in again.",
    "out": "You have signed out.",
}


# --- signing in and out -----------------------------------------------------------------------
def sign_in_page(r: Req) -> Response:
    if r.user is not None:
        return r.redirect(local_path(r.arg("next", "/")))
    return _sign_in_form(r, "", "", 200)


def _sign_in_form(r: Req, name: str, message: str, status: int) -> Response:
    binding = r.request.cookies.get(FORM_COOKIE) or secrets.token_urlsafe(24)
    r.set_cookies.append((FORM_COOKIE, binding, True))
    ended = ENDED.get(r.arg("ended"), "")
    if ended:
        ended = ended.format(minutes=r.app.settings.show().web_idle_minutes)
    return r.page(
        "login.html",
        status,
        csrf=r.web.seal.csrf_token(binding),
        name=name,
        message=message,
        ended=ended,
        next=local_path(r.arg("next", "/")),
    )


def sign_in(r: Req) -> Response:
    name, password = r.field("name").strip(), r.field("password")
    try:
        _signer, token = r.app.sessions.login(name, password)
    except Refused as err:
        hint = web_hint(err.hint)
        text = err.message + (f" {hint.text}" if hint and hint.text else "")
        return _sign_in_form(r, name, text, 401)
    if r.token:  # someone else's session on this tablet ends first
        r.app.sessions.logout(r.token)
    r.token = token
    r.user = r.app.sessions.resume(token)
    return r.redirect(local_path(r.field("next") or "/"))


def sign_out_page(r: Req) -> Response:
    return r.page("logout.html")


def sign_out(r: Req) -> Response:
    if r.token:
        r.app.sessions.logout(r.token)
    r.token, r.user = None, None
    r.set_cookies.append((SESSION_COOKIE, "", False))
    return r.redirect("/login?ended=out")


# --- the bench board ----------------------------------------------------------------------------
BOARD_COLUMNS = ("batch_id", "state")


def board_rows(r: Req) -> tuple[list[board.BoardRow], list[board.BoardRow]]:
    """Batches under way (most urgent first) and those waiting for QA, each folded; the
    released and rejected ones are skipped from the query table without being read."""
    working: list[board.BoardRow] = []
    waiting: list[board.BoardRow] = []
    for batch_id, state in r.app.queries.batches(None, BOARD_COLUMNS):
        if state in FINAL:
            continue
        shown = board.row(r.app.batches.batch(batch_id), r.now)
        (waiting if state == AWAITING_REVIEW else working).append(shown)
    return board.order(working), waiting


def board_page(r: Req) -> Response:
    working, waiting = board_rows(r)
    return r.page("board.html", working=working, waiting=waiting)


def board_live(r: Req) -> Response:
    """The board's list alone, for the page's script to swap in; 304 when unchanged."""
    working, waiting = board_rows(r)
    response = r.page("board_rows.html", working=working, waiting=waiting)
    tag = '"' + hashlib.sha256(bytes(response.body)).hexdigest()[:32] + '"'
    if r.request.headers.get("if-none-match") == tag:
        return Response(status_code=304, headers={"ETag": tag})
    response.headers["ETag"] = tag
    return response


# --- starting a batch --------------------------------------------------------------------------
def new_batch_page(r: Req, message: str = "", status: int = 200) -> Response:
    approved = [p for p in r.app.protocols.versions() if p.status == "approved"]
    return r.page(
        "new_batch.html",
        status,
        protocols=approved,
        chosen=r.field("protocol"),
        batch_id=r.field("batch_id"),
        message=message,
    )


def start_batch(r: Req) -> Response:
    ref = r.field("protocol")
    if not ref:
        return new_batch_page(r, "Choose the protocol to start from.", 422)

    def write() -> Response:
        try:
            out = r.app.batches.start(
                ref, r.name, r.field("batch_id").strip() or None, key=r.field("key") or None
            )
        except Refused as err:
            return new_batch_page(r, _said(err), 422)
        return r.redirect(f"/batches/{seg(out.batch.id)}?started=1")

    return r.once(write)


def _said(err: Refused) -> str:
    hint = web_hint(err.hint)
    extra = " ".join(err.problems)
    return " ".join(x for x in (err.message, extra, hint.text if hint else "") if x)


# --- the batch page ---------------------------------------------------------------------------
def _batch(r: Req) -> Batch:
    return r.app.batches.batch(r.param("batch"))


def _step(batch: Batch, step_id: str) -> Step:
    step = batch.protocol.step(step_id)
    if step is None:
        raise NotFound(f"protocol {batch.protocol.id} has no step {step_id!r}")
    return step


def batch_page(r: Req) -> Response:
    batch = _batch(r)
    saved = batch.steps.get(r.arg("saved")) if r.arg("saved") else None
    opened = [d for d in batch.deviations.values() if saved and d.step == saved.step.id]
    return r.page(
        "batch.html",
        batch=batch,
        due=[board.DueLine(s.id, s.title, board.timing(batch, s.id, r.now)) for s in _due(batch)],
        saved=saved,
        opened=opened,
        flash=r.arg("done"),
        again=bool(r.arg("again")),
        final=batch.is_final,
    )


def _due(batch: Batch) -> list[Step]:
    return [] if batch.is_final or batch.on_hold else batch.due()


# --- the step page -----------------------------------------------------------------------------
def step_page(r: Req) -> Response:
    batch = _batch(r)
    step = _step(batch, r.param("step"))
    return _step_form(r, batch, step, StepForm(seq=batch.seq), Judgement(), status=200)


def _step_form(
    r: Req,
    batch: Batch,
    step: Step,
    typed: StepForm,
    judged: Judgement,
    *,
    status: int,
    message: str = "",
    problems: list[str] | None = None,
    changed: list[dict[str, Any]] | None = None,
    ask_keep: bool = False,
) -> Response:
    due = _due(batch)
    entry = batch.steps[step.id]
    return r.page(
        "step.html",
        status,
        batch=batch,
        step=step,
        entry=entry,
        is_due=step in due,
        arms=[s for s in due if s.branch] if step.branch else [],
        timing=board.timing(batch, step.id, r.now),
        typed=typed,
        marks=judged.marks,
        notes=judged.notes,
        message=message,
        problems=problems or [],
        changed=changed or [],
        ask_keep=ask_keep,
        kept=judged.kept_labels(step),
        late_default=typed.at or default_late_time(batch, r.now),
        seq=typed.seq if changed is None else batch.seq,
        number=_number(batch, step),
    )


def _number(batch: Batch, step: Step) -> str:
    from cmprep.service.views import step_numbers

    return step_numbers(batch.protocol).get(step.id, "")


def check_step(r: Req) -> Response:
    """Each field judged as it is typed (the page's script posts the form here)."""
    batch = _batch(r)
    step = _step(batch, r.param("step"))
    judged = judge(r.app, batch, step, read_step_form(step, r.form), r.now)
    return json_answer(
        {
            "marks": {
                k: {"verdict": m.verdict, "message": m.message} for k, m in judged.marks.items()
            },
            "refused": judged.refused,
            "out_of_spec": judged.kept_labels(step),
            "notes": judged.notes,
        }
    )


def record_step(r: Req) -> Response:
    batch = _batch(r)
    step = _step(batch, r.param("step"))
    typed = read_step_form(step, r.form)
    return r.once(lambda: _record(r, batch, step, typed))


def _record(r: Req, batch: Batch, step: Step, typed: StepForm) -> Response:
    judged = judge(r.app, batch, step, typed, r.now)
    problems = list(judged.refused)
    if typed.late and not typed.at:
        problems.append("a late entry needs the time the step was done")
    if typed.late and not typed.late_reason:
        problems.append("a late entry needs its reason")
    if typed.sign and not r.field("password"):
        problems.append("signing as performed needs your password")
    if problems:
        return _step_form(
            r,
            batch,
            step,
            typed,
            judged,
            status=422,
            message="Nothing was saved.",
            problems=problems,
        )
    if judged.out_of_spec and not (typed.keep and typed.keep_reason):
        return _step_form(
            r,
            batch,
            step,
            typed,
            judged,
            status=422,
            ask_keep=True,
            message="Out of specification: nothing was saved yet. Correct the value, or keep "
            "it and open a deviation, with a reason.",
        )
    try:
        out = r.app.batches.record(
            batch.id,
            step.id,
            typed.values,
            r.name,
            note=note_for(step, typed, judged.kept_labels(step) if judged.out_of_spec else []),
            at=performed_text(typed),
            password=r.field("password") if typed.sign else None,
            key=typed.key or None,
            lots=[x for x in typed.lots if x],
            equipment=[x for x in typed.equipment if x],
        )
    except (Refused, ConcurrencyError) as err:
        return _changed_or_refused(r, batch.id, step, typed, judged, err)
    again = "&again=1" if out.duplicate else ""
    return r.redirect(f"/batches/{seg(batch.id)}?saved={seg(step.id)}{again}")


def _changed_or_refused(
    r: Req, batch_id: str, step: Step, typed: StepForm, judged: Judgement, err: Exception
) -> Response:
    """Refused: if the batch changed since the form was shown, say what is new and keep
    what was typed; otherwise say why, beside what was typed."""
    fresh = r.app.batches.batch(batch_id)
    message = getattr(err, "message", str(err))
    problems = list(getattr(err, "problems", []))
    if fresh.seq != typed.seq:
        new = [describe(e) for e in fresh.events if e.seq > typed.seq]
        return _step_form(
            r,
            fresh,
            step,
            typed,
            judged,
            status=409,
            message="This batch changed while you were typing; nothing was saved. Here is "
            "what is new; what you typed is kept below.",
            problems=[message, *problems],
            changed=new,
        )
    return _step_form(r, fresh, step, typed, judged, status=422, message=message, problems=problems)


def skip_step(r: Req) -> Response:
    batch = _batch(r)
    step = _step(batch, r.param("step"))

    def write() -> Response:
        try:
            r.app.batches.skip(
                batch.id, step.id, r.name, r.field("reason"), key=r.field("key") or None
            )
        except Refused as err:
            typed = StepForm(seq=_seq(r, batch))
            return _changed_or_refused(r, batch.id, step, typed, Judgement(), err)
        return r.redirect(f"/batches/{seg(batch.id)}?done=skipped")

    return r.once(write)


def _seq(r: Req, batch: Batch) -> int:
    seq = r.field("seq")
    return int(seq) if seq.isdigit() else batch.seq


def hold(r: Req) -> Response:
    return _hold_or_resume(r, "hold")


def resume(r: Req) -> Response:
    return _hold_or_resume(r, "resume")


def _hold_or_resume(r: Req, act: str) -> Response:
    batch = _batch(r)

    def write() -> Response:
        do = r.app.batches.hold if act == "hold" else r.app.batches.resume
        do(batch.id, r.name, r.field("reason"))
        return r.redirect(f"/batches/{seg(batch.id)}?done={'held' if act == 'hold' else 'resumed'}")

    return r.once(write)


# --- second-person verification ----------------------------------------------------------------
def verify_page(r: Req, message: str = "", status: int = 200, verifier: str = "") -> Response:
    batch = _batch(r)
    step = _step(batch, r.param("step"))
    return r.page(
        "verify.html",
        status,
        batch=batch,
        step=step,
        entry=batch.steps[step.id],
        meaning=MEANING_TEXT["verified"],
        message=message,
        verifier=verifier,
    )


def verify(r: Req) -> Response:
    """The verifier proves themself with their own name and password (the tablet's session
    stays its owner's); the service then checks their role and independence and signs."""
    batch = _batch(r)
    step = _step(batch, r.param("step"))
    verifier, password = r.field("verifier").strip(), r.field("password")

    def write() -> Response:
        try:
            signer = r.app.gate.prove(verifier, password, "verify")
        except Refused as err:
            return verify_page(r, _said(err), 401, verifier)
        r.require(signer.name, "verify")
        try:
            r.app.quality.verify_step(batch.id, step.id, signer.name, password)
        except Refused as err:
            return verify_page(r, _said(err), 422, verifier)
        return r.redirect(f"/batches/{seg(batch.id)}?done=verified")

    return r.once(write)
