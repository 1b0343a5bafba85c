"""emsim.simulate.evaluate and `emsim evaluate`: outcomes, safety, evidence, bad input."""

import copy
import json

import numpy as np
import pytest

from emsim.body import load_patient
from emsim.cli import main
from emsim.errors import EmsimError
from emsim.program import from_dict, save
from emsim.simulate import SCALAR_KEYS, evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS

REQUIRED = set(SCALAR_KEYS) | {"safety", "evidence"}


def _program(**stim):
    doc = copy.deepcopy(BASE_DOC)
    doc["phases"][0]["stimulation"][0].update(stim)
    return from_dict(doc)


def test_outcomes_of_a_short_absolute_program():
    pred = evaluate(_program(amplitude={"ma": 30}), load_patient(PATIENTS / "lbp_average.json"))
    out = pred.to_dict()
    assert REQUIRED <= set(out)
    assert out["safety"]["ok"] is True
    assert out["evidence"] in ("assumed", "extrapolated", "fitted", "measured")
    assert 0 < out["peak_mvc_pct"] <= 100
    assert 0 <= out["peak_discomfort_nrs"] <= 10
    assert 0 < out["motor_recruitment_fraction"] <= 1
    assert out["total_charge_mc"] > 0
    assert pred.force_n.shape == (1, pred.t_s.size)


def test_more_current_more_contraction_and_discomfort():
    pt = load_patient(PATIENTS / "lbp_average.json")
    low = evaluate(_program(amplitude={"ma": 20}), pt, trace=False).scalars
    high = evaluate(_program(amplitude={"ma": 45}), pt, trace=False).scalars
    assert high["peak_mvc_pct"] > low["peak_mvc_pct"]
    assert high["peak_discomfort_nrs"] > low["peak_discomfort_nrs"]
    assert high["motor_recruitment_fraction"] >= low["motor_recruitment_fraction"]


def test_more_fat_less_contraction_at_the_same_current():
    prog = _program(amplitude={"ma": 35})
    lean = evaluate(prog, load_patient(PATIENTS / "lbp_lean.json"), trace=False).scalars
    fat = evaluate(prog, load_patient(PATIENTS / "lbp_high_fat.json"), trace=False).scalars
    assert fat["peak_mvc_pct"] < lean["peak_mvc_pct"]


def test_relative_amplitude_without_thresholds_is_a_typed_error():
    prog = _program(amplitude={"relative_to": "motor_threshold", "factor": 1.2})
    with pytest.raises(EmsimError) as info:
        evaluate(prog, load_patient(PATIENTS / "lbp_average.json"))
    assert "motor_threshold" in info.value.message and "amplitude" in info.value.path


def test_cli_json_and_series(tmp_path, capsys):
    prog = _program(amplitude={"ma": 30})
    path = tmp_path / "p.json"
    save(prog, path)
    series = tmp_path / "s.csv"
    code = main(["evaluate", str(path), "--patient", str(PATIENTS / "lbp_average.json"), "--json",
                 "--series", str(series)])
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert REQUIRED <= set(out)
    header = series.read_text().splitlines()[0]
    assert "t_s" in header and "discomfort_nrs" in header


def test_cli_unsafe_patient_exits_1(tmp_path, capsys):
    prog = _program(amplitude={"ma": 30})
    path = tmp_path / "p.json"
    save(prog, path)
    code = main(["evaluate", str(path), "--patient", str(PATIENTS / "example_pacemaker.json"), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 1 and out["safety"]["ok"] is False and out["safety"]["errors"]


def test_cli_bad_series_path_is_a_usage_error(tmp_path, capsys):
    prog = _program(amplitude={"ma": 30})
    path = tmp_path / "p.json"
    save(prog, path)
    assert main(["evaluate", str(path), "--series", str(tmp_path / "x.txt")]) == 2
    assert "usage error" in capsys.readouterr().err
