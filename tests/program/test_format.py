"""Loading, canonical saving and the schema of emsim.program/1."""

import json
import os

import jsonschema
import pytest

from emsim.testing.documents import PROGRAMS, as_json, channel, stim
from emsim.errors import ProgramError
from emsim.program import dumps, load, loads, program_schema, save


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_examples_load_and_are_canonical(path):
    program = load(path)
    assert dumps(program) == path.read_text(encoding="utf-8")


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_save_load_save_is_byte_identical(path, tmp_path):
    first = tmp_path / "a.json"
    save(load(path), first)
    second = tmp_path / "b.json"
    save(load(first), second)
    assert first.read_bytes() == second.read_bytes()


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_examples_match_the_published_schema(path):
    jsonschema.Draft202012Validator.check_schema(program_schema())
    jsonschema.validate(json.loads(path.read_text()), program_schema())


def test_schema_rejects_what_the_loader_rejects(base_doc):
    base_doc["phases"][0]["stimulation"][0]["frequency_hz"] = 1e9
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(base_doc, program_schema())
    with pytest.raises(ProgramError):
        loads(as_json(base_doc))


def _set(doc, path, value):
    obj = doc
    for key in path[:-1]:
        obj = obj[key]
    obj[path[-1]] = value


S0 = ("phases", 0, "stimulation", 0)

BAD = [
    # (id, mutation path, value, expected JSON path fragment, expected words)
    ("negative pulse width", S0 + ("waveform", "pulse_width_us"), -5, "waveform.pulse_width_us", "10 to 1000 µs"),
    ("frequency 1e9", S0 + ("frequency_hz",), 1e9, "frequency_hz", "0.5 to 300 Hz"),
    ("unit in a string", S0 + ("frequency_hz",), "50 Hz", "frequency_hz", "without units"),
    ("bool as number", S0 + ("on_s",), True, "on_s", "number"),
    ("unknown site", ("channels", 0, "site"), "lumbar", "channels[0].site", "lumbar_erector_spinae"),
    ("unknown field", S0 + ("pulse_width",), 300, "stimulation[0].pulse_width", "unknown field"),
    ("unknown waveform", S0 + ("waveform",), {"shape": "triangle"}, "waveform", "symmetric_biphasic"),
    ("bad side", ("channels", 0, "side"), "middle", "channels[0].side", "left"),
    ("ramps longer than on", S0 + ("ramp_up_s",), 4.5, "ramp_up_s", "on_s"),
    ("unknown channel", S0 + ("channel",), "B", "stimulation[0].channel", "A"),
    ("pulse longer than period", S0 + ("waveform",), {"shape": "monophasic", "pulse_width_us": 300, "balance": {
        "delay_us": 0, "width_us": 30000, "amplitude_ratio": 0.01}}, "frequency_hz", "µs pulse"),
    ("on longer than phase", S0 + ("on_s",), 100, "on_s", "phase"),
    ("tolerance factor", S0 + ("amplitude",), {"relative_to": "tolerance", "factor": 1.5}, "amplitude.factor", "<= 1"),
    ("doublets overlap", S0 + ("pattern",), {"type": "doublets", "pulses_per_burst": 4, "intra_burst_interval_ms": 8},
     "intra_burst_interval_ms", "pulse period"),
    ("wrong format", ("format",), "emsim.program/2", "$.format", "emsim.program/1"),
    ("spacing impossible", ("schedule", "min_days_between_sessions"), 5, "sessions_per_week", "<="),
    ("too many channels", ("channels",), [channel(f"C{i}") for i in range(17)], "$.channels", "16"),
    ("empty name", ("name",), "", "$.name", "at least 1"),
    ("rectangle without width", ("channels", 0, "electrodes", 0), {"shape": "rectangle", "length_cm": 5},
     "electrodes[0].width_cm", "width_cm"),
    ("offset outside sequential", ("phases", 0, "timing", "offset_s"), 2, "timing.offset_s", "sequential"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_bad_programs_name_path_value_and_range(base_doc, case):
    _, path, value, where, words = case
    _set(base_doc, path, value)
    with pytest.raises(ProgramError) as info:
        loads(as_json(base_doc))
    lines = [p.one_line() for p in info.value.problems]
    assert any(where in line and words in line for line in lines), lines
    assert all("\n" not in line for line in lines)


def test_alternating_needs_equal_cycles(base_doc):
    ph = base_doc["phases"][0]
    base_doc["channels"].append(channel("B", side="right"))
    ph["timing"]["mode"] = "alternating"
    ph["stimulation"].append(stim("B", off_s=10))
    with pytest.raises(ProgramError, match="share on_s and off_s"):
        loads(as_json(base_doc))


@pytest.mark.parametrize("text,words", [
    ("{\"format\": ", "malformed JSON"),
    ("[1, 2]", "JSON object"),
    ('{"format": "emsim.program/1", "format": "x"}', "duplicate key"),
    ('{"a": NaN}', "NaN"),
    ("[" * 100000 + "]" * 100000, "deep"),
    ("", "malformed JSON"),
])
def test_malformed_documents(text, words):
    with pytest.raises(ProgramError, match=words):
        loads(text)


def test_missing_and_huge_files(tmp_path):
    with pytest.raises(ProgramError, match="not found"):
        load(tmp_path / "nope.json")
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:  # sparse: 1 GB on paper, nothing on disk
        fh.truncate(1024 ** 3)
    with pytest.raises(ProgramError, match="too large"):
        load(huge)
    assert os.path.getsize(huge) == 1024 ** 3


def test_failed_save_leaves_existing_file(tmp_path, base_doc):
    from emsim.program import from_dict

    target = tmp_path / "p.json"
    target.write_text("old")
    program = from_dict(base_doc)
    bad = program.model_copy(update={"name": "x" * 5})  # valid copy: save succeeds
    save(bad, target)
    assert target.read_text().startswith("{")
    inconsistent = program.model_copy(update={"channels": ()})
    with pytest.raises(ProgramError):
        save(inconsistent, target)
    assert json.loads(target.read_text())["name"] == "xxxxx"
