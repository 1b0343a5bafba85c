"""Parameter spaces: sizes, reproducibility, Latin-hypercube stratification, bad input."""

import numpy as np
import pytest

from emsim.study import Cohort, Grid, LatinHypercube, Parameter, RandomSamples, StudyError


def test_grid_is_the_full_product():
    g = Grid(Parameter("a", "", (1, 2, 3)), Parameter("b", "", ("x", "y")), Parameter("c", "", (0.5, 1, 2, 4)))
    rows = g.rows(0)
    assert all(len(v) == 24 for v in rows.values())
    assert len(set(zip(rows["a"], rows["b"], rows["c"]))) == 24


def test_latin_hypercube_has_one_sample_per_stratum_and_is_seeded():
    s = LatinHypercube((Parameter("f", "Hz", low=10, high=100), Parameter("pw", "us", low=50, high=500, log=True)), n=20)
    a, b, c = s.rows(3), s.rows(3), s.rows(4)
    assert len(a["f"]) == 20 and np.array_equal(a["f"], b["f"]) and not np.array_equal(a["f"], c["f"])
    strata = np.floor((a["f"] - 10) / 90 * 20).astype(int)
    assert sorted(strata) == list(range(20))
    log_strata = np.floor(np.log(a["pw"] / 50) / np.log(10) * 20).astype(int)
    assert sorted(log_strata) == list(range(20))


def test_random_samples_stay_in_bounds():
    r = RandomSamples((Parameter("x", "", low=-1, high=2),), n=500).rows(0)["x"]
    assert r.min() >= -1 and r.max() <= 2 and r.std() > 0.5


def test_cohort_crossed_with_grid():
    rows = Cohort(5, extra=Grid(Parameter("f", "Hz", (20, 50)))).rows(0)
    assert list(rows["patient_index"]) == [0, 0, 1, 1, 2, 2, 3, 3, 4, 4]
    assert list(rows["f"]) == [20, 50] * 5


@pytest.mark.parametrize("make", [lambda: Parameter("x", low=2, high=1),
                                  lambda: Parameter("x", low=0, high=1, log=True),
                                  lambda: Grid(Parameter("x")),
                                  lambda: LatinHypercube((Parameter("x", low=0, high=1),), n=0)])
def test_bad_spaces_raise_study_error(make):
    with pytest.raises(StudyError):
        make()
