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


def test_latin_hypercube_crossed_with_a_grid():
    s = LatinHypercube((Parameter("f", "Hz", low=10, high=100),), n=4, extra=Grid(Parameter("a", "", ("x", "y", "z"))))
    rows = s.rows(1)
    assert len(rows["f"]) == 12 and list(rows["a"][:3]) == ["x", "y", "z"]
    assert len(set(rows["f"])) == 4 and np.all(rows["f"][:3] == rows["f"][0])
    assert [p.name for p in s.parameters] == ["f", "a"]


def test_morris_trajectories_move_one_factor_per_step():
    from emsim.study import MorrisTrajectories

    m = MorrisTrajectories((Parameter("a", "", low=0, high=10), Parameter("b", "", low=1, high=100, log=True),
                            Parameter("c", "", low=-1, high=1)), r=5)
    u = m.unit_points(3)
    assert u.shape == (5, 4, 3)
    steps = np.abs(np.diff(u, axis=1))
    assert np.all((steps > 1e-12).sum(axis=2) == 1)  # exactly one factor per step
    assert np.allclose(steps.sum(axis=2), m.delta)  # by Δ = 2/3 on 4 levels
    assert np.all(np.sort(np.argmax(steps, axis=2), axis=1) == np.arange(3))  # every factor once
    assert u.min() >= 0 and u.max() <= 1
    rows = m.rows(3)
    assert len(rows["a"]) == 20 and list(rows["step"][:4]) == [0, 1, 2, 3]


def test_elementary_effects_recover_a_linear_model():
    """y = 3a + 0·b + 2c² (on unit ranges): μ*(a) = 3 exactly with σ = 0, μ*(b) = 0, and c's
    effects vary with where they are taken (σ > 0)."""
    import pandas as pd

    from emsim.study import MorrisTrajectories, elementary_effects

    m = MorrisTrajectories((Parameter("a", "", low=0, high=1), Parameter("b", "", low=0, high=1),
                            Parameter("c", "", low=0, high=1)), r=12)
    df = pd.DataFrame(m.rows(0))
    df["y"] = 3 * df["a"] + 2 * df["c"] ** 2
    eff = elementary_effects(df, m, ("y",)).set_index("factor")
    assert eff.loc["a", "mu_star"] == pytest.approx(3.0) and eff.loc["a", "sigma"] == pytest.approx(0.0, abs=1e-9)
    assert eff.loc["b", "mu_star"] == pytest.approx(0.0)
    assert eff.loc["c", "sigma"] > 0 and (eff["n_effects"] == 12).all()


def test_pareto_mask_keeps_only_non_dominated_rows():
    from emsim.study import pareto_mask

    v = np.array([[10, 2.0], [8, 1.0], [9, 3.0], [10, 2.0], [5, 5.0], [np.nan, 0.0]])
    # maximise column 0, minimise column 1
    assert list(pareto_mask(v, [True, False])) == [True, True, False, True, False, False]


def test_bad_morris_levels_raise_study_error():
    from emsim.study import MorrisTrajectories

    with pytest.raises(StudyError):
        MorrisTrajectories((Parameter("a", "", low=0, high=1),), r=2, levels=3)
