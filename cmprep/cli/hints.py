"""How the command line says each hint of the error tree: the next command to type.

The service says *what* to do next as data (``Hint("resume_batch", batch="CM-1")``); this
is the only place that knows it is ``cmprep batch resume CM-1 --reason ...``. A web page
has its own table of the same kinds.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from cmprep.errors import CmprepError, Hint

HINTS: dict[str, str] = {
    "needs_person": "Log in with `cmprep login --as NAME`, or give --as NAME with "
    "--password-stdin.",
    "first_admin": "Create the database and its first admin with `cmprep init --admin NAME "
    "--full-name '...'`.",
    "ask_admin": "An admin adds people with `cmprep user add`.",
    "start_batch": "Start one with `cmprep batch start PROTOCOL`.",
    "list_batches": "List them with `cmprep batch list`.",
    "resume_batch": "Resume it with `cmprep batch resume {batch} --reason ...`.",
    "correct_value": "Correct a value with `cmprep batch correct {batch} {step} NAME=VALUE "
    "--reason ...`.",
    "record_step": "See what it needs with `cmprep batch status {batch}`.",
    "investigate_deviation": "Add it with `cmprep deviation investigate {deviation} --reason ...`.",
    "list_deviations": "List them with `cmprep deviation list`.",
    "import_protocol": "Import the file with `cmprep protocol import FILE`; QA then approves "
    "it with `cmprep protocol approve ID --version V`.",
    "approve_protocol": "QA approves it with `cmprep protocol approve {protocol} "
    "--version {version}`.",
    "list_protocols": "List the stored versions with `cmprep protocol list`.",
    "sign_review": "Sign the review with `cmprep batch review {batch} --sign COMMENT`.",
    "reject_batch": "Only rejection remains: `cmprep batch reject {batch} --reason ...`.",
    "conditional_release": "QA signs a conditional release naming the pending tests: "
    "`cmprep qc conditional-release {batch} --reason ... --as QA-NAME`; or record another "
    "arm, so that QC and release come before use.",
    "register_lot": "Register it with `cmprep materials add {lot} --material ... "
    "--expiry YYYY-MM-DD`.",
    "register_equipment": "Register it with `cmprep equipment add {equipment} --kind ... "
    "--calibration-due YYYY-MM-DD`.",
    "name_centrifuge": "Name the centrifuge with --equipment ID (its registry record has the "
    "rotor radius; `cmprep equipment list` shows it), or enter the value in x g.",
    "give_reason": "Give it with --reason TEXT.",
    "give_output_file": "Give a file with -o FILE.",
    "install_extra": "Install it with: pip install 'cmprep[{extra}]'.",
    "check_clock": "Check the computer's clock before entering anything else.",
    "anchor_folder": "Give an existing folder on another disk or share than the database "
    "with --to DIR, or set CMPREP_ANCHORS.",
    "try_again": "Check `cmprep batch status {batch}` and try again.",
    "upgrade": "Upgrade cmprep.",
    "verify_log": "Find what is damaged with `cmprep audit verify`.",
    "init_database": "Create it with `cmprep init --db {path} --admin NAME --full-name '...'`.",
    "log_in": "Log in with `cmprep login --as NAME`, or give --password-stdin with this command.",
    "other_person": "Log out first (`cmprep logout`), or give {name}'s own password with "
    "--password-stdin.",
    "unlock_account": "An admin unlocks it with `cmprep user unlock {name} --reason ...`.",
}


# Guided mode (`cmprep batch run`) asks questions: there a hint is the answer to give, not a
# flag to type. A kind not listed here is said as above.
GUIDED: dict[str, str] = {
    "name_centrifuge": 'Enter the value in x g; or, to give rpm, answer no at "Save?" and, '
    "at the centrifuge question, name a centrifuge whose registry record has its rotor "
    "radius (`cmprep equipment list` shows them).",
    "register_lot": "Register lot {lot} at another terminal (`cmprep materials add`), then "
    "type it again; or press Enter if none was used.",
    "register_equipment": "Register {equipment} at another terminal (`cmprep equipment add`), "
    "then type it again; or press Enter if none was used.",
}


def hint_text(hint: Hint, *, guided: bool = False) -> str:
    """The sentence for a hint (GUIDED: as guided mode says it); a kind this shell does not
    know says nothing more."""
    template = (GUIDED.get(hint.kind) if guided else None) or HINTS.get(hint.kind, "")
    try:
        return template.format(**hint.data)
    except KeyError:  # a hint without the id its sentence names: the generic part only
        return template.split(" with `")[0] + "." if " with `" in template else ""


def say(err: CmprepError, *, guided: bool = False) -> str:
    """The error's message, every problem on its own line, then what to do next (GUIDED:
    in guided mode's words)."""
    text = str(err)
    if err.hint is not None and (extra := hint_text(err.hint, guided=guided)):
        text += ("\n" if err.problems else " ") + extra
    return text
