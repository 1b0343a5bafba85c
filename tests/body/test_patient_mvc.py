"""The patient file's measured MVC: schema bounds and typed errors naming the field."""

import json

import pytest

from emsim.body import loads_patient
from emsim.errors import PatientError
from emsim.testing.documents import PATIENTS

BASE = json.loads((PATIENTS / "lbp_average.json").read_text())


def _with(*mvc):
    return json.dumps(dict(BASE, mvc=list(mvc)))


def _mvc(**over):
    return {"site": "lumbar_erector_spinae", "side": "bilateral", "torque_nm": 180.0,
            "method": "isokinetic_dynamometer", "date": "2026-10-01", **over}


def test_torque_or_force_per_site_and_side():
    p = loads_patient(_with(_mvc(), _mvc(side="left", torque_nm=None, force_n=420.0, method="load_cell")))
    assert p.mvc_for("lumbar_erector_spinae", "left").value == (420.0, "N")
    # a bilateral measurement serves a side without its own
    assert p.mvc_for("lumbar_erector_spinae", "right").value == (180.0, "N·m")
    assert p.mvc_for("gluteus_maximus", "left") is None
    assert "mvc" in json.dumps(p.model_dump(mode="json"))


@pytest.mark.parametrize("entry, path, words", [
    (_mvc(force_n=400.0), "$.mvc[0]", "exactly one of torque_nm and force_n"),
    (_mvc(torque_nm=None), "$.mvc[0]", "exactly one of torque_nm and force_n"),
    (_mvc(torque_nm=-3.0), "$.mvc[0].torque_nm", "more than 0"),
    (_mvc(torque_nm=5000.0), "$.mvc[0].torque_nm", "2000 N·m"),
    (_mvc(torque_nm="180 Nm"), "torque_nm", ""),
    (_mvc(method="guess"), "method", ""),
    (_mvc(date="1/10/2026"), "date", ""),
    (_mvc(units="N"), "units", ""),
])
def test_bad_mvc_is_a_typed_error_naming_the_field(entry, path, words):
    with pytest.raises(PatientError) as info:
        loads_patient(_with(entry))
    text = " ".join(p.one_line() for p in (getattr(info.value, "problems", None) or [info.value]))
    assert path in text and words in text


def test_the_same_site_and_side_twice_is_refused():
    with pytest.raises(PatientError, match="MVC given twice"):
        loads_patient(_with(_mvc(), _mvc(torque_nm=150.0)))
