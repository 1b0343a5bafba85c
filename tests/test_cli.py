"""The emsim command: exit codes, one-line errors, nothing half-written, the disclaimer."""

import json
import subprocess
import sys

import pytest

from emsim.testing.documents import PATIENTS, PROGRAMS, ROOT
from emsim.cli import main

PARA = ROOT / "models" / "programs" / "paraspinal_strengthening.json"


def run(args, capsys):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_validate_accepts_examples(path, capsys):
    code, out, _ = run(["validate", path, "--patient", PATIENTS / "example_measured.json"], capsys)
    assert code == 0 and "valid" in out


def _bad_file(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


@pytest.mark.parametrize("make,code,words", [
    (lambda d: d / "missing.json", 2, "file not found"),
    (lambda d: _bad_file(d, "m.json", '{"format": '), 2, "malformed JSON"),
    (lambda d: _bad_file(d, "n.json", PARA.read_text().replace('"pulse_width_us": 300', '"pulse_width_us": -300', 1)), 1,
     "pulse_width_us"),
    (lambda d: _bad_file(d, "f.json", PARA.read_text().replace('"frequency_hz": 50', '"frequency_hz": 1000000000', 1)), 1,
     "frequency_hz"),
    (lambda d: _bad_file(d, "s.json", PARA.read_text().replace('"lumbar_erector_spinae"', '"spine"', 1)), 1,
     "channels[0].site"),
    (lambda d: _bad_file(d, "nan.json", PARA.read_text().replace('"frequency_hz": 50', '"frequency_hz": NaN', 1)), 2,
     "NaN"),
])
def test_bad_input_one_line_and_exit_code(tmp_path, capsys, make, code, words):
    got, out, err = run(["validate", make(tmp_path)], capsys)
    assert got == code
    lines = err.strip().splitlines()
    assert lines and all(ln.startswith("emsim: ") for ln in lines)
    assert any(words in ln for ln in lines)
    assert "Traceback" not in err


def test_huge_file_is_refused_before_reading(tmp_path, capsys):
    huge = tmp_path / "huge.json"
    with open(huge, "wb") as fh:
        fh.truncate(1024 ** 3)
    code, _, err = run(["validate", huge], capsys)
    assert code == 2 and "too large" in err


def test_relative_amplitude_without_thresholds_writes_nothing(tmp_path, capsys):
    out = tmp_path / "pulses.csv"
    code, _, err = run(["compile", PARA, "--out", out], capsys)
    assert code == 1 and "needs a patient" in err
    assert not out.exists() and list(tmp_path.iterdir()) == []


def test_unsafe_program_is_not_compiled(tmp_path, capsys):
    out = tmp_path / "pulses.parquet"
    code, _, err = run(["compile", PARA, "--out", out, "--patient", PATIENTS / "example_pacemaker.json"], capsys)
    assert code == 1 and "active_implant" in err
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_compile_writes_pulse_table(tmp_path, capsys, suffix):
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    out = tmp_path / f"pulses{suffix}"
    code, stdout, _ = run(["compile", PARA, "--out", out, "--patient", PATIENTS / "example_measured.json",
                           "--device", "rehastim2"], capsys)
    assert code == 0
    table = pq.read_table(out) if suffix == ".parquet" else pacsv.read_csv(out)
    assert table.num_rows == int(stdout.split(":")[1].split()[0])
    amps = table.column("amplitude_ma").to_pylist()
    assert all(abs(a / 2 - round(a / 2)) < 1e-9 for a in amps)  # RehaStim 2: 2 mA steps


def test_validate_json_report(capsys):
    code, out, _ = run(["validate", PARA, "--patient", PATIENTS / "example_pacemaker.json", "--json"], capsys)
    report = json.loads(out)
    assert code == 1 and report["ok"] is False
    assert [e["rule"] for e in report["safety"]["errors"]] == ["contraindication.active_implant"]


def test_schema_and_version(capsys):
    code, out, _ = run(["schema", "patient"], capsys)
    assert code == 0 and json.loads(out)["title"].startswith("emsim patient")
    code, out, _ = run(["schema", "program"], capsys)
    assert code == 0 and "emsim.program/1" in out
    assert run(["--version"], capsys)[0] == 0


def test_usage_errors_exit_2(capsys):
    assert run(["validate", PARA, "--device", "nope"], capsys)[0] == 2
    assert run(["validate", PARA, "--session", "0"], capsys)[0] == 2
    assert run(["frobnicate"], capsys)[0] == 2


@pytest.mark.parametrize("cmd", [[], ["validate"], ["compile"], ["schema"], ["demo"]])
def test_every_help_says_research_use(cmd):
    out = subprocess.run([sys.executable, "-m", "emsim.cli", *cmd, "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    assert "no clinical clearance" in " ".join(out.stdout.split())


def test_demo_runs(capsys):
    code, out, _ = run(["demo"], capsys)
    assert code == 0 and "no clinical clearance" in out and "passes" in out
