"""`emsim calibrate --out`: the patient file with its calibration section, and programs resolved to mA."""

import copy
import json

import numpy as np
import pytest

from emsim.body import load_patient
from emsim.cli import main
from emsim.program import compile as compile_program, from_dict, load, save
from emsim.simulate import evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS

PATIENT = PATIENTS / "example_measured.json"


def _relative_program(tmp_path, factor=1.3, relative_to="motor_threshold", pulse_width_us=250, electrode_cm=5):
    doc = copy.deepcopy(BASE_DOC)
    for e in doc["channels"][0]["electrodes"]:
        e.update(width_cm=electrode_cm, length_cm=electrode_cm)
    st = doc["phases"][0]["stimulation"][0]
    st["amplitude"] = {"relative_to": relative_to, "factor": factor}
    st["waveform"]["pulse_width_us"] = pulse_width_us  # not the measured 300 µs: the Weiss-law path
    doc["phases"][0]["duration_s"] = 20
    path = tmp_path / "relative.json"
    save(from_dict(doc), path)
    return path


def test_calibrate_out_writes_the_patient_with_its_calibration(tmp_path, capsys):
    out = tmp_path / "calibrated.json"
    assert main(["calibrate", str(PATIENT), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    written = load_patient(out)
    original = load_patient(PATIENT)
    assert written.model_dump(exclude={"calibration"}) == original.model_dump(exclude={"calibration"})
    assert {(c.site, c.side) for c in written.calibration} == {("lumbar_erector_spinae", "left"),
                                                                 ("lumbar_erector_spinae", "right")}
    for entry, fitted in zip(written.calibration, report["calibrations"]):
        assert entry.motor_gain == fitted["motor_gain"] and entry.sensitivity == fitted["sensitivity"]
        lo, hi = entry.motor_gain_range
        assert lo < entry.motor_gain < hi
        assert set(entry.thresholds) == set(original.thresholds_for_any(entry.site, entry.side))
        assert entry.emsim_version and entry.date and "cm apart" in entry.electrodes
    assert not list(tmp_path.glob(".emsim-*"))  # the atomic write left no temporary file
    # calibrating the calibrated file again replaces the section, it does not add to it
    again = tmp_path / "again.json"
    assert main(["calibrate", str(out), "--out", str(again)]) == 0
    assert len(load_patient(again).calibration) == 2


def test_calibrate_out_refuses_bad_targets_and_writes_nothing(tmp_path, capsys):
    assert main(["calibrate", str(PATIENT), "--out", str(tmp_path / "nope" / "x.json")]) == 2
    assert main(["calibrate", str(PATIENT), "--out", str(tmp_path / "x.txt")]) == 2
    assert main(["calibrate", str(PATIENTS / "lbp_lean.json"), "--out", str(tmp_path / "x.json")]) == 1
    assert "nothing to calibrate" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_program_resolved_to_ma_compiles_and_evaluates_identically(tmp_path, capsys):
    src = _relative_program(tmp_path)
    out = tmp_path / "resolved.json"
    assert main(["calibrate", str(PATIENT), "--program", str(src), "--out", str(out), "--device", "rehastim2"]) == 0
    assert "Weiss law" in capsys.readouterr().out
    resolved, original = load(out), load(src)
    amp = resolved.phases[0].stimulation[0].amplitude
    assert not hasattr(amp, "relative_to") and amp.ma > 0
    assert resolved.provenance.created_by == "emsim calibrate" and "example-measured" in resolved.description
    patient = load_patient(PATIENT)
    a, b = compile_program(original, patient), compile_program(resolved, None)  # no patient needed any more
    assert np.array_equal(a.t_s, b.t_s) and np.allclose(a.amplitude_a, b.amplitude_a, rtol=1e-12, atol=0)
    assert main(["validate", str(out), "--device", "rehastim2"]) == 0
    ea, eb = evaluate(original, patient, trace=False), evaluate(resolved, patient, trace=False)
    for key, value in ea.scalars.items():
        assert eb.scalars[key] == pytest.approx(value, rel=1e-9), key


def test_a_resolved_program_that_fails_the_safety_check_is_not_written(tmp_path, capsys):
    # 5 x motor threshold (120 mA) under 2 x 2 cm electrodes: far above 2 mA/cm² r.m.s.
    src = _relative_program(tmp_path, factor=5.0, pulse_width_us=300, electrode_cm=2)
    out = tmp_path / "resolved.json"
    assert main(["calibrate", str(PATIENT), "--program", str(src), "--out", str(out), "--device", "rehastim2"]) == 1
    err = capsys.readouterr().err
    assert "fails the safety check" in err and "current_density" in err
    assert not out.exists()


def test_relative_program_for_a_patient_without_thresholds(tmp_path, capsys):
    src = _relative_program(tmp_path)
    out = tmp_path / "resolved.json"
    assert main(["calibrate", str(PATIENTS / "lbp_lean.json"), "--program", str(src), "--out", str(out)]) == 1
    assert "no motor_threshold measured" in capsys.readouterr().err and not out.exists()
