"""What evaluate takes from the patient file beyond thresholds: a measured MVC and a stored calibration."""

import copy
import json

import pytest

from emsim.body import load_patient, loads_patient
from emsim.body.calibration import calibrate, with_calibration
from emsim.body.patient import dumps_patient
from emsim.cli import main
from emsim.program import from_dict, save
from emsim.simulate import MVC_DENOMINATOR, SCALAR_KEYS, evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS

SITE = "lumbar_erector_spinae"
MEASURED = load_patient(PATIENTS / "example_measured.json")


def _program(ma=30.0, duration_s=30):
    doc = copy.deepcopy(BASE_DOC)
    doc["phases"][0]["stimulation"][0]["amplitude"] = {"ma": ma}
    doc["phases"][0]["duration_s"] = duration_s
    return from_dict(doc)


def _edit(patient, **fields):
    data = patient.model_dump(mode="json", exclude_none=True)
    data.update(fields)
    return loads_patient(json.dumps(data))


def test_measured_mvc_is_reported_beside_not_divided_into_the_prediction(tmp_path, capsys):
    program = _program()
    base = load_patient(PATIENTS / "lbp_average.json")
    with_mvc = _edit(base, mvc=[{"site": SITE, "side": "bilateral", "torque_nm": 160.0,
                                 "method": "isokinetic_dynamometer", "date": "2026-10-01"}])
    a, b = evaluate(program, base, trace=False), evaluate(program, with_mvc, trace=False)
    assert a.scalars == b.scalars  # the denominator is the model's maximum evoked force either way
    assert a.measured_mvc == {} and b.measured_mvc["A"]["value"] == 160.0 and b.measured_mvc["A"]["unit"] == "N·m"
    assert any("no MVC measured" in n for n in a.notes)
    note = next(n for n in b.notes if n.startswith("%MVC"))
    assert "maximum evoked force" in note and "160 N·m" in note and "not used as the denominator" in note
    # the --json top level is unchanged; the measured value sits with its channel
    path = tmp_path / "p.json"
    save(program, path)
    pfile = tmp_path / "patient.json"
    pfile.write_text(dumps_patient(with_mvc))
    assert main(["evaluate", str(path), "--patient", str(pfile), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == set(SCALAR_KEYS) | {"safety", "evidence", "program", "patient", "session", "channels", "notes"}
    assert out["channels"]["A"]["mvc_denominator"] == MVC_DENOMINATOR
    assert out["channels"]["A"]["measured_mvc"]["method"] == "isokinetic_dynamometer"


@pytest.mark.slow
def test_stored_calibration_is_used_while_the_thresholds_match():
    program = _program(ma=35.0)
    cal = calibrate(MEASURED, SITE, "left", channel=program.channels[0])
    stored = with_calibration(MEASURED, [cal], [program.channels[0]])
    fresh = evaluate(program, MEASURED, trace=False)
    used = evaluate(program, stored, trace=False)
    assert any("calibration stored in the patient file" in n for n in used.notes)
    # fitted with the program's own electrodes, the stored factors are the ones evaluate would fit
    for key in SCALAR_KEYS:
        assert used.scalars[key] == pytest.approx(fresh.scalars[key], rel=1e-9), key
    # ... and they really are read from the file: a different stored gain changes the prediction
    data = stored.model_dump(mode="json", exclude_none=True)
    data["calibration"][0]["motor_gain"] *= 1.5
    stronger = evaluate(program, loads_patient(json.dumps(data)), trace=False)
    assert stronger.scalars["peak_mvc_pct"] > used.scalars["peak_mvc_pct"]
    # thresholds changed since the calibration: it is fitted again, and the notes say so
    thresholds = [dict(t, amplitude_ma=t["amplitude_ma"] * 1.2) if t["side"] == "left" else t
                  for t in data["thresholds"]]
    changed = loads_patient(json.dumps(dict(data, thresholds=thresholds)))
    again = evaluate(program, changed, trace=False)
    assert any("fitted to other thresholds" in n and "fitted again" in n for n in again.notes)
    plain = evaluate(program, _edit(changed, calibration=[]), trace=False)
    assert again.scalars == plain.scalars
