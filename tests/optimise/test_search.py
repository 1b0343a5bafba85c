"""Problem and optimise(): constraints, objectives, robust mode, storage and resume (surrogate evaluator).

The surrogate (emsim.optimise.testing) is a closed-form caricature used only to exercise the
search machinery quickly; tests/optimise/test_cli.py runs the real model end to end.
"""

import sqlite3

import numpy as np
import pytest

from emsim.errors import OptimiseError
from emsim.optimise import Problem, optimise
from emsim.optimise.testing import surrogate_evaluate_batch


def _vector(problem, **over):
    x = problem.space.from_program(problem.space.template)
    x.update(over)
    return x


def test_unknown_objective_and_statistic(measured_patient):
    with pytest.raises(OptimiseError, match="unknown objective"):
        Problem(measured_patient, objectives=["mean_mvc_pct", "happiness"], evaluator=surrogate_evaluate_batch)
    for bad in ("median-ish", "p", "p0", "p101"):
        with pytest.raises(OptimiseError, match="unknown cohort statistic"):
            Problem(measured_patient, statistic=bad, evaluator=surrogate_evaluate_batch)
    assert Problem(measured_patient, statistic="p90", evaluator=surrogate_evaluate_batch).statistic == 90.0
    with pytest.raises(OptimiseError, match="unknown search method"):
        optimise(Problem(measured_patient, evaluator=surrogate_evaluate_batch), "anneal", budget=4)


def test_unsafe_candidate_is_infeasible_not_evaluated(cheap_problem):
    calls = []

    def spy(programs, patients, **kw):
        calls.append(len(programs))
        return surrogate_evaluate_batch(programs, patients, **kw)

    cheap_problem.evaluator = spy
    safe = _vector(cheap_problem)
    # 8 ms doublets do not fit the RehaStim 2's 10 ms period at 100 Hz
    unsafe = _vector(cheap_problem, **{"frequency_hz": 100.0, "ES-L.pattern": "doublets"})
    ev = cheap_problem.evaluate([safe, unsafe])
    assert ev[0].constraints["safety_errors"] == 0
    assert ev[1].constraints["safety_errors"] > 0 and not ev[1].feasible
    assert "device_multiplex" in ev[1].reason
    assert ev[1].values == tuple(o.worst for o in cheap_problem.objectives)
    assert calls == [1]  # one vectorised call, for the safe candidate only


def test_pareto_is_feasible_and_non_dominated(cheap_problem):
    result = optimise(cheap_problem, "nsga2", budget=96, seed=3, batch_size=16)
    assert result.n_complete == 96 and result.pareto
    front = result.front()
    sign = np.array([-1 if d == "maximize" else 1 for d in cheap_problem.directions])
    f = front * sign
    for i in range(len(f)):
        assert not np.any(np.all(f <= f[i], axis=1) & np.any(f < f[i], axis=1))
    for c in result.pareto:
        assert c.prediction.safety.ok
        assert c.prediction.scalars["peak_discomfort_nrs"] <= cheap_problem.max_discomfort_nrs
        # the stored values are the ones a fresh evaluation of the program gives
        for name, v in c.values.items():
            assert c.prediction.scalars[name] == pytest.approx(v, rel=1e-12)
        assert cheap_problem.space.from_program(c.program) == c.vector


@pytest.mark.parametrize("method", ["nsga2", "tpe", "random"])
def test_same_seed_same_front(cheap_problem, method):
    a = optimise(cheap_problem, method, budget=40, seed=7, batch_size=8, predict=False)
    b = optimise(cheap_problem, method, budget=40, seed=7, batch_size=8, predict=False)
    assert [c.vector for c in a.pareto] == [c.vector for c in b.pareto]


def test_infeasible_constraints_are_reported(measured_patient):
    problem = Problem(measured_patient, evaluator=surrogate_evaluate_batch, max_discomfort_nrs=0.0)
    with pytest.raises(OptimiseError, match="infeasible constraints: none of 32"):
        optimise(problem, "random", budget=32, seed=0, batch_size=16)


def test_fixed_session_longer_than_allowed_is_refused_up_front(measured_patient):
    with pytest.raises(OptimiseError, match="session length is fixed"):
        Problem(measured_patient, evaluator=surrogate_evaluate_batch, max_session_min=10)


def test_session_length_constraint_when_duration_varies(measured_patient):
    from emsim.optimise import DesignSpace, lumbar_template

    space = DesignSpace.from_template(lumbar_template(measured_patient), device="rehastim2",
                                      fields=("frequency_hz", "pulse_width_us", "amplitude", "duration_s"))
    problem = Problem(measured_patient, space, evaluator=surrogate_evaluate_batch, max_session_min=15)
    result = optimise(problem, "random", budget=48, seed=1, batch_size=16)
    assert all(c.program.duration_s <= 15 * 60 for c in result.pareto)
    trials = result.study.get_trials()
    assert any(t.constraints["session_length_s"] > 0 for t in trials)  # the constraint did bite


def test_robust_mode_reduces_over_the_cohort(measured_patient):
    from emsim.body import load_patient
    from emsim.testing.documents import PATIENTS

    cohort = [measured_patient, load_patient(PATIENTS / "example_pacemaker.json")]
    cohort[1] = cohort[1].model_copy(update={"id": "second", "contraindications": measured_patient.contraindications})
    problem = Problem(cohort, evaluator=surrogate_evaluate_batch, statistic="worst")
    x = _vector(problem)
    ev = problem.evaluate([x])[0]
    per = [p.scalars for p in surrogate_evaluate_batch([problem.space.to_program(x)] * 2, cohort,
                                                       device="rehastim2")]
    assert ev.outcomes["mean_mvc_pct"] == min(s["mean_mvc_pct"] for s in per)
    assert ev.outcomes["peak_discomfort_nrs"] == max(s["peak_discomfort_nrs"] for s in per)
    mean = Problem(cohort, evaluator=surrogate_evaluate_batch, statistic="mean").evaluate([x])[0]
    assert mean.outcomes["mean_mvc_pct"] == pytest.approx(np.mean([s["mean_mvc_pct"] for s in per]))


def test_cohort_without_thresholds_for_relative_template_is_refused(measured_patient):
    from emsim.body import load_patient
    from emsim.optimise import DesignSpace, lumbar_template
    from emsim.testing.documents import PATIENTS

    lean = load_patient(PATIENTS / "lbp_lean.json")
    space = DesignSpace.from_template(lumbar_template(measured_patient), device="rehastim2")
    with pytest.raises(OptimiseError, match="no motor_threshold"):
        Problem([measured_patient, lean], space, evaluator=surrogate_evaluate_batch)
    # without a space the template falls back to absolute amplitudes for such a cohort
    p = Problem([measured_patient, lean], evaluator=surrogate_evaluate_batch)
    assert "ES-L.amplitude_ma" in p.space.names


# --------------------------------------------------------------------------- storage


def test_resume_counts_and_refuses_other_problems(cheap_problem, tmp_path, measured_patient):
    url = f"sqlite:///{tmp_path / 'study.db'}"
    first = optimise(cheap_problem, "nsga2", budget=32, seed=1, batch_size=16, storage=url, study_name="s")
    assert first.n_complete == 32
    with pytest.raises(OptimiseError, match="exists already"):
        optimise(cheap_problem, "nsga2", budget=48, seed=1, storage=url, study_name="s")
    more = optimise(cheap_problem, "nsga2", budget=48, seed=1, batch_size=16, storage=url, study_name="s",
                    resume=True)
    assert more.n_complete == 48 and more.n_evaluated == 16
    other = Problem(measured_patient, evaluator=surrogate_evaluate_batch, max_discomfort_nrs=5.0)
    with pytest.raises(OptimiseError, match="different problem"):
        optimise(other, "nsga2", budget=64, storage=url, study_name="s", resume=True)
    # the refused attempts changed nothing
    again = optimise(cheap_problem, "nsga2", budget=48, storage=url, study_name="s", resume=True, predict=False)
    assert again.n_complete == 48 and again.n_evaluated == 0
    con = sqlite3.connect(tmp_path / "study.db")
    assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    con.close()


@pytest.mark.parametrize("url", ["nonsense", "sqlite:////nonexistent-dir/x/y.db", "postgresql+psycopg://u@127.0.0.1:1/db"])
def test_storage_that_cannot_be_opened(cheap_problem, url):
    with pytest.raises(OptimiseError, match="storage") as info:
        optimise(cheap_problem, budget=4, storage=url, study_name="s")
    assert info.value.path == "storage"


def test_callback_sees_progress_and_can_stop(cheap_problem):
    seen = []

    def cb(p):
        seen.append(p.n_complete)
        return p.n_complete >= 24

    result = optimise(cheap_problem, "random", budget=100, seed=0, batch_size=8, callback=cb, predict=False)
    assert seen == [8, 16, 24] and result.n_complete == 24


@pytest.mark.slow
def test_dask_local_cluster_gives_the_same_front(cheap_problem):
    local = optimise(cheap_problem, "nsga2", budget=48, seed=5, batch_size=16, predict=False)
    dask = optimise(cheap_problem, "nsga2", budget=48, seed=5, batch_size=16, workers=2, predict=False)
    assert [c.vector for c in dask.pareto] == [c.vector for c in local.pareto]
    assert [c.values for c in dask.pareto] == [c.values for c in local.pareto]
