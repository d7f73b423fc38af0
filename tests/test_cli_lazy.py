"""Start-up: `cmprep --help` imports no noun's module, yet lists every command with the
help the command itself would give; a command's module is imported when it runs or shows
its own help."""

from __future__ import annotations

import os
import subprocess
import sys

import click
import pytest
from click.testing import CliRunner

from cmprep.cli import COMMANDS, Lazy, main

NOUN_MODULES = sorted(
    {entry.target.partition(":")[0] for entry in COMMANDS.values()} - {"cmprep.cli"}
)


def _imported_after(*args: str) -> set[str]:
    """The cmprep modules a fresh interpreter has imported after running `cmprep ARGS`."""
    code = (
        "import sys; from cmprep.cli import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit: pass\n"
        "print('MODULES', sorted(m for m in sys.modules if m.startswith('cmprep')))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    return set(eval(out.split("MODULES", 1)[1]))  # a printed list of names


def test_the_top_level_help_imports_no_command_module():
    imported = _imported_after("--help")
    assert imported == {"cmprep", "cmprep.cli"}, imported


def test_a_nouns_help_imports_that_noun_and_not_the_others():
    imported = _imported_after("deviation", "--help")
    assert "cmprep.cli.deviation" in imported
    assert not {"cmprep.cli.qc", "cmprep.cli.protocol", "cmprep.cli.user"} & imported
    assert "cmprep.service.batches" not in imported  # nor the services behind other nouns


def test_the_help_lists_every_command_but_the_hidden_alias():
    out = CliRunner().invoke(main, ["--help"]).output
    listed = [line.split()[0] for line in out.split("Commands:")[1].splitlines() if line.strip()]
    assert listed == sorted(n for n, e in COMMANDS.items() if not e.hidden)
    assert "record" not in listed
    assert "  deviation  Deviations: open, investigate, close (QA), show and list them.\n" in out


def test_the_table_knows_every_command_and_only_those():
    for name, entry in COMMANDS.items():
        command = entry.load()
        assert isinstance(command, click.Command)
        assert command.hidden == entry.hidden, name
    assert set(main.commands) == set(COMMANDS)


@pytest.mark.parametrize("name", sorted(COMMANDS))
@pytest.mark.parametrize("width", [30, 45, 60, 80, 200])
def test_the_tables_help_is_shortened_exactly_as_the_commands_own(name, width):
    """What `cmprep --help` prints from the table is what click prints from the command,
    at any terminal width: the table cannot drift from the docstrings unseen."""
    entry = COMMANDS[name]
    assert entry.stub(name).get_short_help_str(width) == entry.load().get_short_help_str(width)


def test_main_commands_is_a_mapping_that_loads_on_lookup():
    assert "batch" in main.commands and "nonsense" not in main.commands
    assert len(main.commands) == len(COMMANDS)
    assert main.commands["batch"].name == "batch"
    with pytest.raises(KeyError):
        main.commands["nonsense"]
    assert main.commands.get("nonsense") is None


def test_the_hidden_record_alias_still_renders_the_record_document():
    record = main.commands["record"]
    doc = main.commands["batch"].commands["record-doc"]  # type: ignore[attr-defined]
    assert record.hidden and record.callback is doc.callback
    assert [p.name for p in record.params] == [p.name for p in doc.params]
    out = CliRunner().invoke(main, ["record", "--help"], prog_name="cmprep").output
    assert out.startswith("Usage: cmprep record [OPTIONS] BATCH")


def test_a_misspelt_command_is_answered_with_the_near_one():
    result = CliRunner().invoke(main, ["bach", "list"])
    assert result.exit_code == 2
    assert "No such command 'bach'" in result.output and "Did you mean 'batch'?" in result.output


def test_a_wrong_table_entry_is_a_clear_error():
    with pytest.raises(TypeError, match="not a click command"):
        Lazy("cmprep.cli:COMMANDS", "x").load()


# --- read paths over the query tables load no protocol machinery -----------------------------
HEAVY = ("pydantic", "transitions", "yaml", "cmprep.protocol.models", "cmprep.domain.batch")
# standard modules a list has no use for, each several milliseconds of a start on a slow
# machine: hashlib loads OpenSSL, pathlib brings urllib and ipaddress, zoneinfo sysconfig
STDLIB_UNUSED = ("hashlib", "pathlib", "zoneinfo")


def _modules_after(db: str, *args: str) -> set[str]:
    """Every module a fresh interpreter has imported after `cmprep ARGS` on DB."""
    code = (
        "import sys; from cmprep.cli import main\n"
        f"try:\n    main({list(args)!r})\nexcept SystemExit: pass\n"
        "print('MODULES', sorted(sys.modules))"
    )
    env = {**os.environ, "CMPREP_DB": db}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, env=env
    ).stdout
    return set(eval(out.split("MODULES", 1)[1]))


@pytest.mark.parametrize(
    "args",
    [
        ("audit", "report", "--format", "md"),
        ("batch", "list", "--format", "csv"),
        ("batch", "list", "--state", "Released", "--format", "csv"),
        ("deviation", "list", "--format", "csv"),
    ],
)
def test_commands_that_read_only_the_query_tables_import_no_protocol_models(db_path, args):
    """The protocol models (pydantic), the state machine (transitions), the YAML loader and
    the fold are about 100 ms of a start: a list or the audit report never needs them."""
    from conftest import approve_bundled, seed_people

    from cmprep.service import Services
    from cmprep.store.sqlite import SQLiteStore

    svc = approve_bundled(seed_people(Services(SQLiteStore(db_path, create=True))))
    svc.batches.start("cm-standard-serum-free", "alice", "B1")
    svc.close()
    loaded = _modules_after(str(db_path), *args)
    assert "cmprep.store.sqlite" in loaded  # it did read the database
    assert not {m for m in loaded if m.split(".")[0] in HEAVY or m in HEAVY}
    if args[0] != "audit":  # the report's Jinja imports them itself
        assert not loaded & set(STDLIB_UNUSED)


def test_the_renderers_site_choice_is_the_protocols():
    from cmprep.protocol.models import SITE_CHOICE
    from cmprep.render.documents import SITE_CHOICE as RENDERED

    assert RENDERED == SITE_CHOICE


def test_the_fixed_states_a_list_knows_without_the_pipeline_are_the_pipelines():
    from cmprep.domain.pipeline import AWAITING_REVIEW, FINAL, ON_HOLD
    from cmprep.service.queries import FIXED_STATES

    assert (AWAITING_REVIEW, ON_HOLD, *FINAL) == FIXED_STATES


# --- batch status folds the stored protocol without the schema or the machine ----------------
STATUS_HEAVY = ("pydantic", "transitions", "yaml", "cryptography", "jinja2")
SCHEMA = ("cmprep.protocol.schema", "cmprep.protocol.loader")
NOT_YET = (
    "cmprep.domain.conditional",
    "cmprep.domain.validation",
    "cmprep.protocol.expressions",
    "cmprep.protocol.units",
)


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_batch_status_reads_the_stored_protocol_without_pydantic_yaml_or_the_machine(db_path, fmt):
    """The stored protocol is hash-protected and was checked when QA imported it: showing a
    batch builds it into plain dataclasses and replays the machine's table, so none of the
    schema (pydantic), the YAML loader, the `transitions` machine or the signature keys is
    imported by the command a technician runs most."""
    from conftest import GOOD, approve_bundled, seed_people

    from cmprep.service import Services
    from cmprep.store.sqlite import SQLiteStore

    svc = approve_bundled(seed_people(Services(SQLiteStore(db_path, create=True))))
    svc.batches.start("cm-standard-serum-free", "alice", "B1")
    svc.batches.record("B1", "isolation", GOOD["isolation"], "alice")
    svc.close()
    loaded = _modules_after(str(db_path), "batch", "status", "B1", "--format", fmt)
    assert "cmprep.domain.batch" in loaded  # it did fold the batch
    assert not {m for m in loaded if m.split(".")[0] in STATUS_HEAVY}
    # the stored protocol's hash is checked without OpenSSL (digest.sha256_once), no path
    # is built, and a site on UTC, the default, loads no time zone database
    assert not loaded & {"hashlib", "pathlib", "zoneinfo"}
    assert not loaded & set(SCHEMA)
    # no conditional release and no downstream arm yet: neither rules nor units are loaded
    assert not loaded & set(NOT_YET)


def test_status_of_a_concentrate_compares_with_the_literature_without_yaml(db_path, clock):
    """A concentrate's QC results are shown per unconcentrated CM beside the review's
    reference ranges, which ship as JSON: the status of such a batch, with a value outside
    its range, still loads no YAML parser (it did, from a YAML reference file)."""
    from conftest import GOOD, approve_bundled, run_to, seed_people

    from cmprep.service import Services
    from cmprep.store.sqlite import SQLiteStore

    svc = approve_bundled(seed_people(Services(SQLiteStore(db_path, create=True), clock)))
    svc.batches.start("cm-standard-serum-free", "alice", "C1")
    run_to(svc, clock, "C1", stop_before="qc")
    clock.advance(hours=1)
    svc.batches.record("C1", "qc", {**GOOD["qc"], "vegf": "9000 pg/mL"}, "alice")
    svc.close()
    out = subprocess.run(
        [sys.executable, "-m", "cmprep", "batch", "status", "C1"],
        capture_output=True,
        text=True,
        env={**os.environ, "CMPREP_DB": str(db_path)},
        check=True,
    ).stdout
    assert "above the literature reference range 100-500 pg/mL (Nasiri et al. 2026)" in out
    loaded = _modules_after(str(db_path), "batch", "status", "C1")
    assert "cmprep.protocol.reference" in loaded  # it did compare
    assert not {m for m in loaded if m.split(".")[0] in STATUS_HEAVY}
