"""Program and patient classes built directly in Python give emsim's typed errors.

Documents read from JSON are validated by pydantic's core and translated to ``ProgramError``
/ ``PatientError`` with document paths (tests/program/test_format.py); a class built in Python
with bad values must say the same thing, with the path starting at the class built, and never
leak pydantic's ``ValidationError``.
"""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from emsim.body.patient import FatThickness, Patient
from emsim.errors import PatientError, ProgramError
from emsim.program import io
from emsim.program.model import Channel, Electrode, SymmetricBiphasic
from emsim._data import models_dir

ELECTRODE = Electrode(shape="rectangle", width_cm=5, length_cm=5)


@pytest.mark.parametrize("build, path, value", [
    (lambda: Electrode(shape="rectangle", width_cm=0, length_cm=5), "Electrode.width_cm", 0),
    (lambda: Electrode(shape="circle", diameter_cm=-1), "Electrode.diameter_cm", -1),
    (lambda: Channel(id="A", site="lumbar_erector_spinae", side="left", spacing_cm=0.1,
                     electrodes=(ELECTRODE, ELECTRODE)), "Channel.spacing_cm", 0.1),
    (lambda: Channel(id="A", site="lumbar_erector_spinae", side="left", spacing_cm=4,
                     electrodes=({"shape": "rectangle", "width_cm": 0, "length_cm": 5}, ELECTRODE)),
     "Channel.electrodes[0].width_cm", 0),
    (lambda: SymmetricBiphasic(shape="symmetric_biphasic", pulse_width_us=5000, interphase_gap_us=0),
     "SymmetricBiphasic.pulse_width_us", 5000),
])
def test_bad_values_raise_program_error_naming_field_value_and_range(build, path, value):
    with pytest.raises(ProgramError) as exc:
        build()
    err = exc.value
    assert err.path == path
    assert err.value == value
    assert err.allowed and "to" in err.allowed
    assert not isinstance(err, ValidationError)
    assert err.__context__ is None  # no pydantic traceback chained to the typed error


def test_missing_and_unknown_fields_are_named():
    with pytest.raises(ProgramError, match=r"Channel\.spacing_cm: required field is missing"):
        Channel(id="A", site="lumbar_erector_spinae", side="left", electrodes=(ELECTRODE, ELECTRODE))
    with pytest.raises(ProgramError, match=r"unknown field 'puls_width_us'"):
        SymmetricBiphasic(shape="symmetric_biphasic", pulse_width_us=200, interphase_gap_us=0,
                          puls_width_us=200)


def test_every_problem_is_attached():
    with pytest.raises(ProgramError) as exc:
        Electrode(shape="rectangle", width_cm=0, length_cm=99)
    assert [p.path for p in exc.value.problems] == ["Electrode.width_cm", "Electrode.length_cm"]


def test_patient_classes_raise_patient_error():
    with pytest.raises(PatientError) as exc:
        FatThickness(site="lumbar_erector_spinae", side="left", value_mm=-3.0, method="ultrasound")
    assert exc.value.path.startswith("FatThickness.")
    with pytest.raises(PatientError, match=r"^Patient\."):
        Patient(id="x")


def test_good_values_build_and_compare_equal_to_the_document_path():
    ch = Channel(id="A", site="lumbar_erector_spinae", side="left", spacing_cm=4,
                 electrodes=(ELECTRODE, ELECTRODE))
    assert ch == Channel.model_validate_json(ch.model_dump_json())


def test_documents_keep_their_paths_and_strict_json_rules():
    """The typed __init__ is for Python construction only: nested objects of a JSON document are
    still validated by pydantic's core (arrays read as tuples, paths from the document root).
    This fails if a pydantic release starts calling the override for nested models."""
    data = json.loads((models_dir() / "programs" / "paraspinal_strengthening.json").read_text())
    assert io.from_dict(data).channels[1].electrodes[0].width_cm == 5
    data["channels"][1]["electrodes"][0]["width_cm"] = 0
    with pytest.raises(ProgramError) as exc:
        io.from_dict(data)
    assert exc.value.path == "$.channels[1].electrodes[0].width_cm"


def test_a_list_for_an_array_field_says_tuple_not_array():
    """Built in Python, a strict tuple field refuses a list; "expected an array (got [...])" would
    contradict itself, so the message names the tuple."""
    with pytest.raises(ProgramError) as exc:
        Channel(id="A", site="lumbar_erector_spinae", side="left", spacing_cm=4, electrodes=[ELECTRODE, ELECTRODE])
    assert exc.value.path == "Channel.electrodes"
    assert "expected a tuple, not a list" in str(exc.value)


def test_an_array_item_out_of_range_names_its_bound():
    """Items of an array have no field of their own: the bound comes from pydantic's context
    (not pydantic's sentence pasted as the allowed range), in Python and in documents."""
    from emsim.testing.documents import BASE_DOC, stim
    from emsim.program.model import Stimulation

    with pytest.raises(ProgramError) as exc:
        Stimulation(**stim(pattern={"type": "variable_frequency", "onset_intervals_ms": (1.0, 5.0)}))
    assert exc.value.path == "Stimulation.pattern.onset_intervals_ms[0]"
    assert exc.value.allowed == ">= 2 ms"
    doc = json.loads(json.dumps(BASE_DOC))
    doc["phases"][0]["stimulation"] = [stim(pattern={"type": "variable_frequency", "onset_intervals_ms": [5, 1]})]
    with pytest.raises(ProgramError) as exc:
        io.from_dict(doc)
    assert exc.value.path == "$.phases[0].stimulation[0].pattern.onset_intervals_ms[1]"
    assert exc.value.allowed == ">= 2 ms"
