"""Records that travel: the .eln archive (RO-Crate 1.1 as the ELN consortium reads it,
signed, checkable without cmprep), and the long CSV/XLSX table for a LIMS."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from conftest import GOOD, PASSWORD, STANDARD, present, run_to

from cmprep.cli import Shell, main
from cmprep.domain import archive
from cmprep.errors import NotFound, Refused
from cmprep.protocol.models import Protocol
from cmprep.service import Services
from cmprep.service.export import table, verify_file

LOTS = [("PBS-26-118", "PBS", "2027-12-31"), ("FLT-022-7731", "0.22 um PES filter", "2028-01-31")]
# the checks of roc-validator's ro-crate-1.1 profile that fetch the JSON-LD context over the
# network; the tests run offline, so these two alone are skipped
NETWORK_CHECKS = ["ro-crate-1.1_3.1", "ro-crate-1.1_3.2"]


def demo_batch(svc: Services, clock, batch_id: str = "B1") -> None:
    """A batch like the demo's: lots and instruments named, an out-of-spec spin (a
    deviation, investigated and closed), second-person verifications, QA review, release."""
    for lot, material, expiry in LOTS:
        svc.materials.register_lot(lot, material, expiry, "alice")
    svc.materials.register_equipment(
        "CF-02", "centrifuge", "2027-02-15", "alice", rotor_radius_cm=16.5
    )
    svc.materials.register_equipment("BSC-01", "biosafety cabinet", "2027-01-31", "alice")
    svc.batches.start(STANDARD, "alice", batch_id)
    run_to(svc, clock, batch_id, "pbs_wash")
    clock.advance(hours=1)
    svc.batches.record(batch_id, "pbs_wash", GOOD["pbs_wash"], "alice", lots=["PBS-26-118"])
    run_to(svc, clock, batch_id, "spin")
    clock.advance(hours=1)
    out = svc.batches.record(
        batch_id, "spin", {**GOOD["spin"], "rcf": "1950 rpm"}, "alice", equipment=["CF-02"]
    )
    clock.advance(hours=1)
    svc.batches.record(
        batch_id, "filtration", GOOD["filtration"], "alice",
        lots=["FLT-022-7731"], equipment=["BSC-01"],
    )  # fmt: skip
    run_to(svc, clock, batch_id)
    for step in ("filtration", "qc"):
        clock.advance(hours=0.2)
        svc.quality.verify_step(batch_id, step, "bob", PASSWORD)
    for dev in out.deviations:
        clock.advance(hours=1)
        svc.quality.investigate(
            dev["deviation_id"], "alice", "Rotor mix-up; =cmd|' /C calc'!A0",
            impact="No impact on product quality expected.",
        )  # fmt: skip
        clock.advance(hours=1)
        svc.quality.close_deviation(
            dev["deviation_id"], "quinn", PASSWORD, "accepted", "Justification accepted."
        )
    clock.advance(hours=1)
    svc.quality.sign_review(batch_id, "quinn", PASSWORD, "Reviewed by exception.")
    clock.advance(hours=0.5)
    svc.quality.release(batch_id, "quinn", PASSWORD, "Meets specification.")


@pytest.fixture
def batch(svc, clock):
    demo_batch(svc, clock)
    return svc.batches.batch("B1")


@pytest.fixture
def eln(svc, batch, tmp_path) -> Path:
    """The batch exported as a signed archive (without the PDF: one test makes that)."""
    made = svc.exports.eln("B1", signer="rita", folder="B1-export", pdf=False)
    path = tmp_path / "B1-export.eln"
    path.write_bytes(made.data)
    return path


def _files(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        return {n.split("/", 1)[1]: z.read(n) for n in z.namelist()}


def _metadata(path: Path) -> dict:
    return json.loads(_files(path)[archive.METADATA])


def _graph(meta: dict) -> dict[str, dict]:
    return {node["@id"]: node for node in meta["@graph"]}


def _ids(value) -> list[str]:
    return [v["@id"] for v in (value if isinstance(value, list) else [value])]


def _rewrite(path: Path, change) -> Path:
    """A copy of the archive with CHANGE(name, data) applied to each member (None: drop)."""
    out = path.with_name("changed-" + path.name)
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            data = change(info.filename.split("/", 1)[1], src.read(info))
            if data is not None:
                dst.writestr(info, data)
    return out


def _flip(data: bytes, at: int | None = None) -> bytes:
    at = len(data) // 2 if at is None else at
    return data[:at] + bytes([data[at] ^ 0x01]) + data[at + 1 :]


# --- the archive's shape ---------------------------------------------------------------
def test_the_archive_is_one_folder_holding_the_crate(eln):
    with zipfile.ZipFile(eln) as z:
        names = z.namelist()
    assert {n.split("/", 1)[0] for n in names} == {"B1-export"}
    inner = {n.split("/", 1)[1] for n in names}
    assert {
        "ro-crate-metadata.json",
        "ro-crate-metadata.json.minisig",
        "minisign.pub",
        "verify_eln.py",
        "B1/record.html",
        "B1/events.jsonl",
        f"B1/protocol-{STANDARD}-2.0.yaml",
        "B1/qc.csv",
        "B1/deviations.csv",
        "B1/lineage.json",
        "B1/flow.svg",
    } <= inner


def test_metadata_has_every_field_the_eln_format_asks_for(eln, batch):
    meta = _metadata(eln)
    assert meta["@context"] == "https://w3id.org/ro/crate/1.1/context"
    nodes = _graph(meta)
    descriptor = nodes["ro-crate-metadata.json"]
    assert descriptor["conformsTo"] == {"@id": "https://w3id.org/ro/crate/1.1"}
    assert descriptor["version"] and descriptor["about"] == {"@id": "./"}
    publisher = nodes[descriptor["sdPublisher"]["@id"]]
    assert publisher["@type"] == "Organization" and publisher["name"].startswith("cmprep")

    root = nodes["./"]
    assert "./B1/" in _ids(root["hasPart"])
    dataset = nodes["./B1/"]
    assert dataset["@type"] == "Dataset" and dataset["name"] == "Batch record B1"
    assert isinstance(dataset["keywords"], str) and STANDARD in dataset["keywords"]
    assert (
        set(dataset["author"]) == {"@id"} and nodes[dataset["author"]["@id"]]["@type"] == "Person"
    )

    files = _files(eln)
    described = [n for n in meta["@graph"] if n["@type"] == "File"]
    assert {n["@id"] for n in described} >= {
        f"./B1/{x}" for x in ("record.html", "events.jsonl", "qc.csv")
    }
    for node in described:
        data = files[node["@id"].removeprefix("./")]
        assert node["name"] == node["@id"].rsplit("/", 1)[-1]
        assert node["encodingFormat"]
        assert node["contentSize"] == str(len(data))  # a string of bytes, no unit
        assert node["sha256"] == hashlib.sha256(data).hexdigest()
        assert set(node["author"]) == {"@id"} and nodes[node["author"]["@id"]]["@type"] == "Person"
        part_of = _ids(dataset["hasPart"]) + _ids(root["hasPart"])
        assert node["@id"] in part_of


def test_one_person_per_signer_and_mentions_for_lots_and_instruments(eln, batch):
    nodes = _graph(_metadata(eln))
    persons = [n for n in nodes.values() if n["@type"] == "Person"]
    signers = {
        e.payload["signature"]["signer"] for e in batch.events if e.payload.get("signature")
    } | {"rita"}  # the exporter signs the archive
    names = [p["identifier"] for p in persons]
    assert len(names) == len(set(names))
    assert signers <= set(names)
    quinn = next(p for p in persons if p["identifier"] == "quinn")
    assert quinn["name"] == "Quinn Quality" and quinn["familyName"] == "Quality"
    assert "released" in quinn["description"]

    mentioned = {nodes[i]["identifier"]: nodes[i] for i in _ids(nodes["./B1/"]["mentions"])}
    assert set(mentioned) == {"PBS-26-118", "FLT-022-7731", "CF-02", "BSC-01"}
    assert mentioned["PBS-26-118"]["@type"] == "Product"
    assert mentioned["CF-02"]["@type"] == "IndividualProduct"
    assert "spin" in mentioned["CF-02"]["description"]


def test_the_protocol_yaml_is_the_version_the_batch_started_from(eln, batch):
    text = _files(eln)[f"B1/protocol-{STANDARD}-2.0.yaml"].decode()
    assert batch.protocol_hash in text.splitlines()[1]
    assert Protocol(**yaml.safe_load(text)).content_hash() == batch.protocol_hash


def test_lineage_lists_the_lots_and_instruments_used(eln, svc):
    lineage = json.loads(_files(eln)["B1/lineage.json"])
    lots = {x["lot"]: x for x in lineage["lots"]}
    assert lots["PBS-26-118"]["registered"]["material"] == "PBS"
    assert lots["PBS-26-118"]["used"][0]["step"] == "pbs_wash"
    assert {x["id"] for x in lineage["instruments"]} == {"CF-02", "BSC-01"}


def test_no_lineage_file_when_the_batch_named_no_lot(svc, clock):
    svc.batches.start(STANDARD, "alice", "PLAIN")
    run_to(svc, clock, "PLAIN", "spin")
    made = svc.exports.eln("PLAIN", pdf=False)
    assert "PLAIN/lineage.json" not in made.files and made.signed_by is None


def test_the_record_is_there_as_pdf_where_weasyprint_is(svc, batch):
    pytest.importorskip("weasyprint")
    made = svc.exports.eln("B1", signer="rita")
    pdf = next(p for p in made.files if p.endswith("record.pdf"))
    with zipfile.ZipFile(io.BytesIO(made.data)) as z:
        assert z.read(f"B1/{pdf}").startswith(b"%PDF")


# --- roc-validator ------------------------------------------------------------------------
CONTEXT_URL = "https://w3id.org/ro/crate/1.1/context"
# A stand-in for the RO-Crate 1.1 JSON-LD context, written for this test: the mappings the
# terms of this crate need (the schema.org vocabulary; File is schema:MediaObject;
# conformsTo is dcterms:conformsTo). Offline, the validator cannot fetch the real context,
# and without one it cannot turn the metadata into RDF, so none of its SHACL checks would run
# (a crate without a name or license would pass). With this one they all run; only the two
# checks of the context itself (NETWORK_CHECKS) are skipped, as they would judge the stand-in.
STAND_IN_CONTEXT = {
    "@context": {
        "@vocab": "http://schema.org/",
        "File": "http://schema.org/MediaObject",
        "conformsTo": "http://purl.org/dc/terms/conformsTo",
    }
}
# RECOMMENDED checks the archive does not meet, and why: cmprep and the exporting site have
# no web address of their own to give their Organization entities.
NOT_MET = {"ro-crate-1.1_31.2"}


def _seed_context(cache: Path) -> None:
    """Put the stand-in context in the validator's HTTP cache, as if it had been fetched."""
    import requests
    from requests.adapters import BaseAdapter
    from requests_cache import CachedSession
    from urllib3 import HTTPResponse

    body = json.dumps(STAND_IN_CONTEXT).encode()

    class Local(BaseAdapter):
        def send(self, request, **_kwargs):
            response = requests.Response()
            response.status_code, response._content = 200, body
            response.headers["Content-Type"] = "application/ld+json"
            response.url, response.request, response.encoding = request.url, request, "utf-8"
            response.raw = HTTPResponse(
                body=io.BytesIO(body), status=200, preload_content=False, request_url=request.url
            )
            return response

        def close(self):
            pass

    session = CachedSession(cache_name=str(cache), backend="sqlite", expire_after=-1)
    session.mount("https://", Local())
    session.get(CONTEXT_URL)
    session.close()


def _validate(crate_dir: Path, severity: str = "REQUIRED"):
    services = pytest.importorskip("rocrate_validator.services")
    from rocrate_validator.models import Severity

    cache = crate_dir.parent / "http-cache"
    _seed_context(cache)
    settings = services.ValidationSettings(
        rocrate_uri=str(crate_dir),
        profile_identifier="ro-crate-1.1",
        requirement_severity=Severity[severity],
        offline=True,  # no network: only the cache above answers
        cache_path=cache,
        skip_checks=NETWORK_CHECKS,
    )
    result = services.validate(settings)
    # the validator keeps its warnings to print after pytest's closing line at exit; the
    # result above holds what matters
    from rocrate_validator.utils import log as validator_log

    stream = vars(validator_log)["__log_stream__"]
    stream.seek(0)
    stream.truncate()
    return result


def _extract(path: Path) -> Path:
    target = path.parent / "extracted"
    with zipfile.ZipFile(path) as z:
        z.extractall(target)
    (root,) = target.iterdir()
    return root  # the crate is the archive's one folder, not the zip as a whole


def _ran(result) -> set[str]:
    return {
        c.identifier
        for c in result.statistics.checks
        if result.get_check_result(c) is not None and c.identifier not in NETWORK_CHECKS
    }


def test_the_archive_passes_roc_validator(eln):
    result = _validate(_extract(eln))
    issues = [f"{i.check.identifier}: {i.message}" for i in result.get_issues()]
    assert result.passed(), issues
    ran = _ran(result)
    # the SHACL checks ran too: the descriptor, the root entity's name, license, date
    assert {"ro-crate-1.1_5.3", "ro-crate-1.1_8.1", "ro-crate-1.1_8.3", "ro-crate-1.1_16.1"} <= ran
    assert len(ran) >= 30


def test_the_recommended_checks_pass_but_the_organization_urls(eln):
    result = _validate(_extract(eln), "RECOMMENDED")
    failed = {i.check.identifier for i in result.get_issues()}
    assert failed <= NOT_MET, [f"{i.check.identifier}: {i.message}" for i in result.get_issues()]


def test_the_validator_sees_a_removed_payload_file(eln):
    root = _extract(eln)
    (root / "B1" / "qc.csv").unlink()
    result = _validate(root)
    assert not result.passed()
    assert any("qc.csv" in str(i.message) for i in result.get_issues())


def test_the_validator_really_checks_the_metadata(eln):
    """Not a validator that passes anything: a root entity without its license fails."""
    root = _extract(eln)
    path = root / "ro-crate-metadata.json"
    meta = json.loads(path.read_text())
    for node in meta["@graph"]:
        if node["@id"] == "./":
            del node["license"]
    path.write_text(json.dumps(meta))
    result = _validate(root)
    assert not result.passed()
    assert "ro-crate-1.1_8.3" in {i.check.identifier for i in result.get_issues()}


# --- round trip ---------------------------------------------------------------------------
def test_every_value_deviation_and_signature_is_in_the_events_and_qc_csv(eln, batch):
    files = _files(eln)
    lines = [json.loads(x) for x in files["B1/events.jsonl"].decode().splitlines()]
    assert [x["hash"] for x in lines] == [e.hash for e in batch.events]
    assert archive.chain_problems(files["B1/events.jsonl"].decode()) == []
    recorded = {}
    for x in lines:
        if x["type"] == "step_recorded":
            for name, v in x["payload"]["values"].items():
                recorded[(x["payload"]["step"], name)] = v["display"]
    for entry in batch.steps.values():
        for name, value in entry.values.items():
            assert recorded[(entry.step.id, name)] == value.display
    opened = {x["payload"]["deviation_id"] for x in lines if x["type"] == "deviation_opened"}
    assert opened == set(batch.deviations) and opened
    seals = {x["payload"]["signature"]["seal"] for x in lines if "signature" in x["payload"]}
    record_seals = {
        e.payload["signature"]["seal"] for e in batch.events if e.payload.get("signature")
    }
    assert seals == record_seals and len(seals) >= 5  # verifications, closure, review, release

    qc = list(csv.DictReader(io.StringIO(files["B1/qc.csv"].decode())))
    qc_step = batch.steps["qc"]
    assert {r["name"]: r["value"] for r in qc if r["value"]} == {  # "": not measured
        n: v.display for n, v in qc_step.values.items() if qc_step.step.parameter(n).method
    }
    assert {r["event_hash"] for r in qc} == {batch.events[qc_step.seq - 1].hash}

    devs = list(csv.DictReader(io.StringIO(files["B1/deviations.csv"].decode())))
    assert {d["deviation_id"] for d in devs} == set(batch.deviations)
    # the justification starts with text a spreadsheet would run: it is escaped
    assert all(not d["justification"].startswith("=") for d in devs)


# --- verification without cmprep ----------------------------------------------------------
def test_a_fresh_archive_verifies(eln):
    check = verify_file(eln)
    assert check.ok, check.problems
    assert check.events == 27 or check.events > 10
    assert "signer:rita (Rita Reviewer, reviewer)" in check.signed_by


def _members(path: Path) -> list[str]:
    with zipfile.ZipFile(path) as z:
        return [n.split("/", 1)[1] for n in z.namelist()]


def test_a_changed_byte_in_any_file_fails_naming_it(eln):
    for name in _members(eln):
        changed = _rewrite(eln, lambda n, d, name=name: _flip(d) if n == name else d)
        check = verify_file(changed)
        assert not check.ok, name
        named = {path for path, _ in check.problems}
        if name == archive.PUBLIC_KEY:  # a changed key no longer matches the signature
            assert named & {archive.PUBLIC_KEY, archive.SIGNATURE}, check.problems
        else:
            assert name in named, (name, check.problems)


def test_a_changed_byte_anywhere_in_the_signature_files_fails(eln):
    for name in (archive.SIGNATURE, archive.PUBLIC_KEY):
        size = len(_files(eln)[name])
        for at in range(size):
            changed = _rewrite(eln, lambda n, d, at=at, name=name: _flip(d, at) if n == name else d)
            assert not verify_file(changed).ok, (name, at)


def test_removed_added_and_unsigned_files_fail(eln, svc):
    gone = _rewrite(eln, lambda n, d: None if n == "B1/qc.csv" else d)
    assert ("B1/qc.csv", "named in the manifest but missing from the archive") in verify_file(
        gone
    ).problems
    with zipfile.ZipFile(gone, "a") as z:
        z.writestr("B1-export/B1/extra.txt", b"slipped in")
    assert any(p == "B1/extra.txt" for p, _ in verify_file(gone).problems)
    unsigned = _rewrite(eln, lambda n, d: None if n == archive.SIGNATURE else d)
    assert archive.SIGNATURE in {p for p, _ in verify_file(unsigned).problems}


def test_an_edited_event_whose_manifest_entry_was_updated_still_fails(eln):
    """Someone who edits an event and rewrites the manifest's hash of it breaks the
    signature; the chain check names the line even in an unsigned copy."""
    files = _files(eln)
    lines = files["B1/events.jsonl"].decode().splitlines()
    event = json.loads(lines[5])
    event["actor"] = "mallory"
    lines[5] = json.dumps(event, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    text = ("\n".join(lines) + "\n").encode()
    meta = json.loads(files[archive.METADATA])
    for node in meta["@graph"]:
        if node["@id"] == "./B1/events.jsonl":
            node["sha256"], node["contentSize"] = hashlib.sha256(text).hexdigest(), str(len(text))
    new_meta = json.dumps(meta).encode()
    forged = _rewrite(
        eln,
        lambda n, d: text if n == "B1/events.jsonl" else new_meta if n == archive.METADATA else d,
    )
    problems = verify_file(forged).problems
    assert (
        archive.METADATA,
        f"changed after it was signed ({archive.SIGNATURE} does not match it)",
    ) in problems
    assert any(p == "B1/events.jsonl" and "line 6" in why for p, why in problems)


def _script(eln: Path, tmp_path: Path) -> Path:
    script = tmp_path / "verify_eln.py"
    script.write_bytes(_files(eln)["verify_eln.py"])
    return script


def _run_script(script: Path, path: Path) -> subprocess.CompletedProcess[str]:
    # -I: isolated, so cmprep cannot be imported; only the standard library and cryptography
    return subprocess.run(
        [sys.executable, "-I", str(script), str(path)],
        capture_output=True,
        text=True,
        cwd=script.parent,
    )


def test_the_shipped_script_needs_no_cmprep_and_checks_everything(eln, tmp_path):
    script = _script(eln, tmp_path)
    text = script.read_text()
    imports = {
        line.split()[1].split(".")[0]
        for line in text.splitlines()
        if line.startswith(("import ", "from "))
    }
    assert imports <= {
        "base64",
        "hashlib",
        "json",
        "sys",
        "zipfile",
        "zlib",
        "urllib",
        "cryptography",
    }
    ok = _run_script(script, eln)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "OK" in ok.stdout and "signer:rita" in ok.stdout
    for name in _members(eln):
        changed = _rewrite(eln, lambda n, d, name=name: _flip(d) if n == name else d)
        bad = _run_script(script, changed)
        assert bad.returncode == 1, name
        shown = name if name not in (archive.SIGNATURE, archive.PUBLIC_KEY) else "minisig"
        assert shown in bad.stdout, (name, bad.stdout)


def test_unsigned_archives_fail_the_shipped_script_too(svc, batch, tmp_path):
    path = tmp_path / "B1.eln"
    path.write_bytes(svc.exports.eln("B1", pdf=False).data)
    result = _run_script(_script(path, tmp_path), path)
    assert result.returncode == 1 and "missing" in result.stdout


def test_signing_needs_the_person_proven(svc, batch, db_path, clock):
    fresh = Services(svc.store, clock=clock)  # nobody proven in this process
    with pytest.raises(Refused, match="has not proven who they are"):
        fresh.exports.eln("B1", signer="rita", pdf=False)
    with pytest.raises(NotFound):
        svc.exports.eln("NOPE", pdf=False)


# --- the long table -------------------------------------------------------------------------
INJECTIONS = ["=1+1", "+SUM(A1)", "-2+3", "@cmd", "\tTAB", "\rCR", "=cmd|' /C calc'!A0"]


@pytest.mark.parametrize("payload", INJECTIONS)
def test_formula_injection_is_escaped(payload):
    assert table.cell_safe(payload) == "'" + payload
    assert table.cell_safe("-45") == "-45" and table.cell_safe(12.5) == 12.5


def test_the_csv_has_one_row_per_value_with_its_event(svc, batch, tmp_path):
    path = tmp_path / "b1.csv"
    count = svc.exports.write_table("csv", str(path), "B1")
    rows = list(csv.DictReader(path.open(encoding="utf-8")))
    assert len(rows) == count and list(rows[0]) == list(table.COLUMNS)
    by = {(r["step"], r["parameter"]): r for r in rows}
    spin = by[("spin", "rcf")]
    assert spin["verdict"] == "out of spec" and spin["unit"] == "x g" and spin["who"] == "alice"
    event = batch.events[int(spin["seq"]) - 1]
    assert spin["event_hash"] == event.hash and spin["event"] == "step_recorded"
    assert by[("collection", "time_since_conditioning")]["unit"] == "h"
    assert by[("", "decision")]["value"] == "released"
    for entry in batch.steps.values():
        for name in entry.values:
            assert (entry.step.id, name) in by


def test_values_that_look_like_formulas_are_escaped_in_csv_and_xlsx(svc, clock, tmp_path):
    pytest.importorskip("openpyxl")
    svc.batches.start(STANDARD, "alice", "INJ")
    run_to(svc, clock, "INJ", "expansion")
    clock.advance(hours=1)
    svc.batches.record("INJ", "expansion", GOOD["expansion"], "alice")
    clock.advance(hours=1)
    svc.batches.record(
        "INJ", "pbs_wash", {**GOOD["pbs_wash"], "pbs_lot": '=HYPERLINK("x")'}, "alice"
    )
    csv_path, xlsx_path = tmp_path / "inj.csv", tmp_path / "inj.xlsx"
    svc.exports.write_table("csv", str(csv_path), "INJ")
    svc.exports.write_table("xlsx", str(xlsx_path), "INJ")
    rows = list(csv.DictReader(csv_path.open(encoding="utf-8")))
    lot = next(r for r in rows if r["parameter"] == "pbs_lot")
    assert lot["value"] == '\'=HYPERLINK("x")'
    import openpyxl

    sheet = openpyxl.load_workbook(xlsx_path).active
    cells = [c.value for row in sheet.iter_rows() for c in row]
    assert '\'=HYPERLINK("x")' in cells
    assert not any(isinstance(c, str) and c.startswith("=") for c in cells)


def test_the_xlsx_has_the_same_rows_as_the_csv(svc, batch, clock, tmp_path):
    openpyxl = pytest.importorskip("openpyxl")
    svc.batches.start(STANDARD, "alice", "B2")
    run_to(svc, clock, "B2", "spin")
    csv_path, xlsx_path = tmp_path / "all.csv", tmp_path / "all.xlsx"
    n_csv = svc.exports.write_table("csv", str(csv_path), None)
    n_xlsx = svc.exports.write_table("xlsx", str(xlsx_path), None)
    assert n_csv == n_xlsx > 0
    from_csv = list(csv.reader(csv_path.open(encoding="utf-8")))
    sheet = openpyxl.load_workbook(xlsx_path).active
    from_xlsx = [list(r) for r in sheet.iter_rows(values_only=True)]
    assert len(from_csv) == len(from_xlsx) == n_csv + 1
    assert {r[0] for r in from_csv[1:]} == {"B1", "B2"}
    for a, b in zip(from_csv, from_xlsx, strict=True):
        for x, y in zip(a, b, strict=True):
            if isinstance(y, float | int):  # a number stays a number in the sheet
                assert float(x) == y
            else:
                assert x == (y or "")


def test_one_batch_reads_only_its_own_events(svc, batch, clock, monkeypatch):
    svc.batches.start(STANDARD, "alice", "OTHER")
    run_to(svc, clock, "OTHER", "spin")
    read: list[str] = []
    events = svc.store.events
    monkeypatch.setattr(svc.store, "events", lambda s: read.append(s) or events(s))
    rows = list(svc.exports.rows("B1"))
    assert rows and {r[0] for r in rows} == {"B1"}
    assert "OTHER" not in read


def test_since_keeps_what_was_entered_since(svc, batch, clock):
    clock.advance(hours=1)
    svc.batches.start(STANDARD, "alice", "LATER")
    since = svc.batches.batch("LATER").started_at
    run_to(svc, clock, "LATER", "spin")
    rows = list(svc.exports.rows(None, since))
    assert rows and {r[0] for r in rows} == {"LATER"}
    assert all(r[7] >= since for r in rows)


def test_table_errors_are_refusals(svc, batch, tmp_path):
    with pytest.raises(NotFound):
        svc.exports.write_table("csv", str(tmp_path / "x.csv"), "NOPE")
    assert not (tmp_path / "x.csv").exists()
    with pytest.raises(Refused, match="file"):
        svc.exports.write_table("xlsx", None, "B1")


# --- the command line ---------------------------------------------------------------------
@pytest.fixture
def cli(svc, clock, db_path, monkeypatch):
    monkeypatch.delenv("CMPREP_USER", raising=False)
    monkeypatch.setenv("CMPREP_DB", str(db_path))
    shell = Shell(lambda db: present(Services(svc.store, clock=clock)))
    runner = CliRunner()

    def invoke(*args: str, input: str | None = None):
        return runner.invoke(main, list(args), input=input, obj=shell)

    return invoke


def test_cli_exports_verifies_and_names_a_changed_file(cli, batch, tmp_path):
    target = tmp_path / "B1.eln"
    out = cli("export", "B1", "--format", "eln", "-o", str(target), "--as", "rita")
    assert out.exit_code == 0, out.output
    assert "signed by rita" in out.output
    assert {n.split("/", 1)[0] for n in zipfile.ZipFile(target).namelist()} == {"B1"}
    ok = cli("export", "verify", str(target))
    assert ok.exit_code == 0 and "OK:" in ok.output, ok.output
    bad = _rewrite(target, lambda n, d: _flip(d) if n == "B1/qc.csv" else d)
    failed = cli("export", "verify", str(bad))
    assert failed.exit_code == 1 and "B1/qc.csv" in failed.output


def test_cli_eln_needs_a_signer_or_unsigned(cli, batch, tmp_path, monkeypatch):
    monkeypatch.setenv("CMPREP_SESSIONS", str(tmp_path / "sessions"))
    out = cli("export", "B1", "--format", "eln", "-o", str(tmp_path / "x.eln"))
    assert out.exit_code == 1 and "Nobody is logged in" in out.output
    out = cli("export", "B1", "--format", "eln", "-o", str(tmp_path / "x.eln"), "--unsigned")
    assert out.exit_code == 0 and "unsigned" in out.output
    out = cli("export", "B1", "--format", "eln")
    assert out.exit_code == 2 and "-o FILE" in out.output
    out = cli("export", "--all", "--format", "eln", "-o", str(tmp_path / "all.eln"))
    assert out.exit_code == 2 and "one batch" in out.output
    out = cli("export", "B1", "--format", "eln", "-o", str(tmp_path / "y.eln"), "--as", "rita")
    assert out.exit_code == 0 and "signed by rita" in out.output  # proven in this process


def test_cli_tables(cli, batch, tmp_path):
    out = cli("export", "B1", "--format", "csv")
    assert out.exit_code == 0 and out.output.startswith(",".join(table.COLUMNS))
    target = tmp_path / "all.xlsx"
    out = cli("export", "--all", "--since", "2026-11-01", "--format", "xlsx", "-o", str(target))
    assert out.exit_code == 0 and "row(s) written" in out.output and target.exists()
    assert cli("export", "B1", "--all", "--format", "csv").exit_code == 2
    assert cli("export", "--format", "csv").exit_code == 2
    missing = cli("export", "verify", str(tmp_path / "nope.eln"))
    assert missing.exit_code == 1 and "no file" in missing.output


def test_lineage_of_materials_made_in_the_batch(svc, clock):
    from cmprep.domain import lineage as ln

    lin = svc.lineage
    lin.register_donor("D-0001", "ELIG-1", "ICF-1", "alice")
    lin.release("D-0001", "quinn")
    lin.derive([("D-0001", None)], [("V1-01", 1)], ln.VIAL, "vial", "alice", passage=2)
    lin.release("V1-01", "quinn")
    svc.batches.start(STANDARD, "alice", "LIN")
    lin.derive(
        [("V1-01", 1)],
        [("H1", "500")],
        ln.HARVEST,
        "mL",
        "alice",
        batch_id="LIN",
        step="collection",
    )
    made = svc.exports.eln("LIN", pdf=False)
    with zipfile.ZipFile(io.BytesIO(made.data)) as z:
        lineage = json.loads(z.read("LIN/LIN/lineage.json"))
    assert [m["lot"] for m in lineage["made_in_this_batch"]] == ["H1"]
    up = lineage["trees"]["H1"]["up"]
    assert {(e["parent"], e["child"]) for e in up["edges"]} == {
        ("D-0001", "V1-01"),
        ("V1-01", "H1"),
    }


def test_export_on_postgresql(clock, tmp_path):
    """The same archive and table from a PostgreSQL database (the store's contract only)."""
    from conftest import approve_bundled, seed_people
    from pgserver import cluster, psycopg_or_skip

    from cmprep.store import open_store

    psycopg_or_skip()
    store = open_store(cluster().new_database(), create=True)
    try:
        pg = approve_bundled(seed_people(Services(store, clock=clock)))
        demo_batch(pg, clock)
        path = tmp_path / "B1.eln"
        path.write_bytes(pg.exports.eln("B1", signer="rita", pdf=False).data)
        assert verify_file(path).ok
        rows = list(pg.exports.rows(None, "2026-11-01"))
        assert {r[0] for r in rows} == {"B1"} and ("B1", "spin", "rcf") in {r[:3] for r in rows}
    finally:
        store.close()


def test_a_changed_byte_of_the_zip_itself_names_the_file(eln, tmp_path):
    """A byte changed inside a member's compressed data (not rewritten by a zip tool): its
    CRC or its compression breaks, and the check names the member, in cmprep and the script."""
    raw = eln.read_bytes()
    with zipfile.ZipFile(eln) as z:
        infos = [i for i in z.infolist() if i.compress_size > 8]
    script = _script(eln, tmp_path)
    for info in infos:
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        broken = tmp_path / "broken.eln"
        broken.write_bytes(_flip(raw, start + info.compress_size // 2))
        name = info.filename.split("/", 1)[1]
        assert name in {p for p, _ in verify_file(broken).problems}, name
        assert name in _run_script(script, broken).stdout, name
