"""The plain protocol models the engine holds, against the schema that checks the files.

A file is checked once by the schema (pydantic); the engine then holds, stores and reads back
plain dataclasses built from the stored content without pydantic. These tests hold the two
declarations together (same fields, same order, same defaults), hold the content a batch
refers to by hash byte-identical through a round trip, and hold the fold's transition table to
the `transitions` machine's decisions.
"""

from __future__ import annotations

import copy
import dataclasses
import math

import pytest
import yaml

from cmprep.domain import protocols as control
from cmprep.domain.pipeline import ON_HOLD, Cursor, NotAllowed, Pipeline
from cmprep.errors import CorruptLog
from cmprep.protocol import models, schema
from cmprep.protocol.library import protocol_files
from cmprep.protocol.reference import ReferenceRange

PAIRS = [
    (models.Source, schema.Source),
    (models.Range, schema.Range),
    (models.Spec, schema.Spec),
    (models.RouteSpec, schema.RouteSpec),
    (models.Parameter, schema.Parameter),
    (models.Window, schema.Window),
    (models.Step, schema.Step),
    (models.Protocol, schema.Protocol),
]
FILES = protocol_files()


def _default(f: dataclasses.Field) -> object:  # type: ignore[type-arg]
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return None if f.default is dataclasses.MISSING else f.default


@pytest.mark.parametrize("plain,checked", PAIRS, ids=[p[0].__name__ for p in PAIRS])
def test_the_plain_model_declares_the_schemas_fields_in_its_order_with_its_defaults(plain, checked):
    theirs = {
        name: (None if info.is_required() else info.get_default(call_default_factory=True))
        for name, info in checked.model_fields.items()
    }
    ours = {f.name: _default(f) for f in dataclasses.fields(plain)}
    assert list(ours) == list(theirs)
    assert ours == theirs


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_stored_content_goes_round_and_keeps_its_hash(path):
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    dumped = schema.Protocol.model_validate(data).model_dump(mode="json")
    protocol = schema.validate(data)
    assert protocol.to_content() == dumped
    again = models.from_content(copy.deepcopy(dumped))
    assert again == protocol
    assert again.content_hash() == control.content_hash(dumped)
    stored = control.as_stored(protocol)
    assert stored.status == "approved" and stored.content_hash() == control.content_hash(
        stored.to_content()
    )


def test_content_stored_before_a_field_existed_reads_with_its_default():
    data = yaml.safe_load(FILES[0].read_text(encoding="utf-8"))
    content = schema.Protocol.model_validate(data).model_dump(mode="json")
    del content["pooling_across_donors"]
    for step in content["steps"]:
        del step["use_before_qc"]
        for param in step["parameters"]:
            del param["precision"]
    old = models.from_content(content)
    assert old.pooling_across_donors is False
    assert not any(s.use_before_qc for s in old.steps)
    assert all(p.precision is None for s in old.steps for p in s.parameters)


@pytest.mark.parametrize(
    "damage",
    [
        lambda c: c.update(colour="blue"),  # a key this program never wrote
        lambda c: c["steps"][0].update(instructions=None, shade=1),
        lambda c: c["steps"][0]["parameters"][0].update(severity="catastrophic"),
        lambda c: c.pop("title"),
    ],
    ids=["unknown key", "unknown step key", "unknown severity", "missing title"],
)
def test_content_the_program_cannot_read_is_a_damaged_store_even_when_its_hash_matches(damage):
    data = yaml.safe_load(FILES[0].read_text(encoding="utf-8"))
    content = schema.Protocol.model_validate(data).model_dump(mode="json")
    damage(content)
    digest = control.content_hash(content)
    with pytest.raises(CorruptLog, match="not a protocol this program can read"):
        control.compiled(content, digest, "stored protocol x@1.0")


def test_content_that_no_longer_matches_its_hash_is_refused_before_it_is_read():
    data = yaml.safe_load(FILES[0].read_text(encoding="utf-8"))
    content = schema.Protocol.model_validate(data).model_dump(mode="json")
    digest = control.content_hash(content)
    content["steps"][0]["title"] = "edited behind the program's back"
    with pytest.raises(CorruptLog, match="does not match the content hash"):
        control.compiled(content, digest, "stored protocol x@1.0")


# --- the fold's table is the machine's decisions ----------------------------------------------
@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_the_replay_table_moves_as_the_machine_decides_for_every_state_and_trigger(path):
    pipeline = Pipeline(schema.validate(yaml.safe_load(path.read_text(encoding="utf-8"))))
    states = list(pipeline.machine.states)
    triggers = [t for t in pipeline.machine.events]
    assert "hold" in triggers and "resume" in triggers and "release" in triggers
    checked = 0
    for state in states:
        for held_from in [None, *states]:
            cursor = Cursor(state, held_from)
            for trigger in triggers:
                machine = pipeline._destination(cursor, trigger)
                assert pipeline.replayed(cursor, trigger) == machine, (state, held_from, trigger)
                moved = Cursor(state, held_from)
                if machine is None:
                    with pytest.raises(NotAllowed):
                        pipeline.fire(moved, trigger)
                else:
                    pipeline.fire(moved, trigger)
                    assert moved.state == machine
                    if trigger == "hold":
                        assert moved.state == ON_HOLD and moved.held_from == state
                checked += 1
    assert checked == len(states) * (len(states) + 1) * len(triggers)


def test_a_trigger_the_protocol_does_not_have_is_not_allowed():
    pipeline = Pipeline(schema.validate(yaml.safe_load(FILES[0].read_text(encoding="utf-8"))))
    with pytest.raises(NotAllowed, match="no trigger 'record_nothing'"):
        pipeline.fire(Cursor(pipeline.initial), "record_nothing")


# --- reference ranges, read without pydantic --------------------------------------------------
GOOD_RANGE = {"id": "vegf", "label": "VEGF", "unit": "pg/mL", "min": 100, "max": 500}


@pytest.mark.parametrize(
    "change,expected",
    [
        ({"colour": "red"}, "unknown keys \\['colour'\\]"),
        ({"label": None, "unit": None}, None),
        ({"id": "VEGF!"}, "is not a lower-case name"),
        ({"min": 600}, "min is above max"),
        ({"min": "lots"}, "min must be a number, not 'lots'"),
        ({"max": True}, "max must be a number"),
        ({"max": math.nan}, "max must be a number"),
        ({"min": None, "max": None}, "gives min and max, or approx"),
        ({"method": "divination"}, "is not a valid Method"),
    ],
)
def test_a_reference_range_that_is_not_one_is_refused_naming_the_place(change, expected):
    data = {**GOOD_RANGE, **change}
    if expected is None:  # keys missing altogether
        data = {k: v for k, v in data.items() if v is not None}
        expected = "missing keys \\['label', 'unit'\\]"
    with pytest.raises(ValueError, match=expected):
        ReferenceRange.read(data, "secretome.json, analytes[0]")


def test_a_reference_range_reads_numbers_written_as_yaml_text_and_canonical_units():
    rng = ReferenceRange.read(
        {"id": "ev_yield", "label": "EVs", "unit": "particles/10^6 cells", "approx": "2.8e8"},
        "here",
    )
    assert rng.approx == 2.8e8 and rng.describe() == "~2.8e+08 particles/10^6 cells"
    assert ReferenceRange.read(GOOD_RANGE, "here").min == 100.0


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("{not json", "lab.json: not JSON"),
        ('{"source": {"id": "x", "citation": "X"}}', "lab.json: a reference file has source"),
        (
            '{"source": {"id": "x", "citation": "X"}, "analytes": [{"id": "v", "label": "V", '
            '"unit": "pg/mL", "min": 1, "max": 2, "colour": "red"}]}',
            r"lab.json, analytes\[0\]: unknown keys \['colour'\]",
        ),
    ],
)
def test_a_reference_file_that_is_not_one_is_refused_naming_the_file(tmp_path, text, expected):
    from cmprep.protocol.reference import load_all

    (tmp_path / "lab.json").write_text(text, encoding="utf-8")
    with pytest.raises(ValueError, match=expected):
        load_all(tmp_path)


def test_a_reference_file_keeps_words_for_its_reader(tmp_path):
    from cmprep.protocol.reference import load_all

    (tmp_path / "lab.json").write_text(
        '{"about": "why", "source": {"id": "x", "citation": "Doe J. 2024"}, "analytes": '
        '[{"id": "v", "label": "V", "unit": "pg/mL", "min": 1, "max": 2, "note": "how"}]}',
        encoding="utf-8",
    )
    rng, source = load_all(tmp_path)["v"]
    assert (rng.min, rng.max, rng.note, source.id) == (1.0, 2.0, "how", "x")
