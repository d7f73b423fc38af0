"""How the web page says each hint of the error tree: a sentence, and where there is a page
for it, a button that goes there.

The service says *what* to do next as data (``Hint("resume_batch", batch="CM-1")``); the
command line says it as the next command to type (``cmprep/cli/hints.py``), this page as a
button. A test checks that every kind in ``errors.HINT_KINDS`` has its entry here.
"""

from __future__ import annotations

from dataclasses import dataclass
from urllib.parse import quote

from cmprep.errors import Hint


@dataclass(frozen=True)
class WebHint:
    """A hint as shown: the sentence, and a button (label, address) when a page does it."""

    text: str
    label: str = ""
    href: str = ""


# kind -> (sentence, button label, address); {names} are the hint's ids
WEB_HINTS: dict[str, tuple[str, str, str]] = {
    "needs_person": ("Sign in with your own name and password.", "Sign in", "/login"),
    "first_admin": (
        "This database has no users yet: an admin creates it and its first admin at the "
        "command line.",
        "",
        "",
    ),
    "ask_admin": ("Ask an admin to add you as a user.", "", ""),
    "verify_log": ("The log is damaged: QA checks it with audit verify.", "", ""),
    "start_batch": ("No batches yet.", "Start a batch", "/batches/new"),
    "list_batches": ("Pick a batch from the bench board.", "Bench board", "/"),
    "resume_batch": (
        "Resume batch {batch} first, with a reason.",
        "Open batch {batch}",
        "/batches/{batch}#hold",
    ),
    "correct_value": (
        "To change a value of {step}, correct it with a reason.",
        "Open {step}",
        "/batches/{batch}/steps/{step}",
    ),
    "record_step": ("See what batch {batch} needs next.", "Open batch {batch}", "/batches/{batch}"),
    "conditional_release": (
        "QA must first sign a conditional release of batch {batch} naming the pending QC "
        "tests (or choose another arm, so that QC and release come before use).",
        "Open batch {batch}",
        "/batches/{batch}",
    ),
    "investigate_deviation": (
        "Add the investigation (justification and impact) first.",
        "Investigate {deviation}",
        "/deviations/{deviation}#investigate",
    ),
    "sign_review": (
        "Sign the review of batch {batch} first.",
        "Review batch {batch}",
        "/batches/{batch}/review#sign",
    ),
    "reject_batch": (
        "Only rejection remains for batch {batch}.",
        "Reject batch {batch}",
        "/batches/{batch}/review#reject",
    ),
    "list_deviations": ("Pick a deviation from the list.", "Deviations", "/deviations"),
    "import_protocol": (
        "A reviewer imports the protocol into this database and QA approves it; then it "
        "can be started here.",
        "",
        "",
    ),
    "approve_protocol": (
        "QA approves {protocol} version {version} first.",
        "",
        "",
    ),
    "list_protocols": (
        "Pick one of the approved protocols.",
        "Start a batch",
        "/batches/new",
    ),
    "register_lot": (
        "Lot {lot} is not registered: check the label, or register the lot first.",
        "",
        "",
    ),
    "register_equipment": (
        "Instrument {equipment} is not registered: check the label, or register it first.",
        "",
        "",
    ),
    "name_centrifuge": (
        "Choose the centrifuge used (its registry record has the rotor radius), or enter "
        "the value in x g.",
        "",
        "",
    ),
    "give_reason": ("Give a reason in the reason field.", "", ""),
    "give_output_file": ("Download the document from its page.", "", ""),
    "install_extra": (
        "This needs the optional part {extra} ({package}); ask IT to install it.",
        "",
        "",
    ),
    "check_clock": ("Check this computer's clock before entering anything else.", "", ""),
    "anchor_folder": ("Ledger checkpoints are written at the command line.", "", ""),
    "try_again": (
        "Look at what changed, then try again.",
        "Open batch {batch}",
        "/batches/{batch}",
    ),
    "upgrade": ("Ask IT to upgrade cmprep.", "", ""),
    "init_database": ("An admin creates the database first.", "", ""),
    "log_in": ("Sign in again with your name and password.", "Sign in", "/login"),
    "unlock_account": ("An admin unlocks the account of {name}.", "", ""),
    "other_person": (
        "Sign out first; {name} then signs in with their own password.",
        "Sign out",
        "/logout",
    ),
}


def web_hint(hint: Hint | None) -> WebHint | None:
    """The hint as the page shows it; a sentence whose ids are missing is left out, and so
    is a button whose address would lack one."""
    if hint is None or hint.kind not in WEB_HINTS:
        return None
    text, label, href = WEB_HINTS[hint.kind]
    shown = {k: v for k, v in hint.data.items()}
    linked = {k: quote(v, safe="") for k, v in hint.data.items()}
    try:
        sentence = text.format(**shown)
    except KeyError:
        sentence = ""
    try:
        button, address = label.format(**shown), href.format(**linked)
    except KeyError:
        button, address = "", ""
    if not sentence and not button:
        return None
    return WebHint(sentence, button, address)
