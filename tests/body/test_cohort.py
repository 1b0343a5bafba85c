"""emsim.body.cohort: reproducible virtual patients from the distributions in models/cohorts."""

import numpy as np
import pytest

from emsim.body import cohort, populations
from emsim.body.patient import dumps_patient, loads_patient
from emsim.errors import PatientError


def test_reproducible_and_extendable():
    a = cohort(50, seed=3)
    b = cohort(80, seed=3)
    assert [dumps_patient(p) for p in a] == [dumps_patient(p) for p in b[:50]]
    assert dumps_patient(cohort(50, seed=4)[0]) != dumps_patient(a[0])


def test_every_patient_is_a_valid_patient_file():
    for p in cohort(20, seed=1):
        assert loads_patient(dumps_patient(p)) == p


def test_distributions_match_the_data_file():
    c = cohort(2000, seed=11)
    female = np.mean([p.sex == "female" for p in c])
    bmi = np.array([p.bmi for p in c])
    fat = np.array([p.fat_thickness[0].value_mm for p in c])
    assert abs(female - 0.57) < 0.04
    assert abs(np.median(bmi) - 26.5) < 0.8
    # thicker fat with higher BMI, as the build anchors say
    assert np.corrcoef(bmi, np.log(fat))[0, 1] > 0.4
    assert np.all((fat >= 2.0) & (fat <= 60.0))


@pytest.mark.parametrize("kwargs, path", [
    (dict(n=0, seed=1), "n"), (dict(n=5, seed=-1), "seed"),
    (dict(n=5, seed=1, population="martians"), "population"),
])
def test_bad_input(kwargs, path):
    with pytest.raises(PatientError) as info:
        cohort(**kwargs)
    assert info.value.path == path


def test_populations_listed():
    assert "adults_lbp" in populations()
