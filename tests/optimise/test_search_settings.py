"""Search settings (method, crossover, mutation, first batch) and how a batch is split over workers.

The surrogate evaluator (emsim.optimise.testing) stands in for the model: these tests check
the search machinery, not predictions.
"""

import os

import numpy as np
import pytest
from optuna.distributions import CategoricalDistribution

from emsim.errors import OptimiseError
from emsim.optimise import optimise
from emsim.optimise._executor import merge_chunks, split_evenly
from emsim.optimise._search import _distributions, latin_hypercube
from emsim.optimise.testing import surrogate_evaluate_batch


@pytest.mark.parametrize("bad, path", [({"crossover": "one-point"}, "settings.crossover"),
                                       ({"initial": "sobol"}, "settings.initial"),
                                       ({"population": 8}, "settings.population")])
def test_unknown_setting_is_refused(cheap_problem, bad, path):
    with pytest.raises(OptimiseError) as info:
        optimise(cheap_problem, budget=4, settings=bad)
    assert info.value.path == path


@pytest.mark.parametrize("settings", [{"crossover": "sbx", "mutation": "polynomial"}, {"crossover": "blx"},
                                      {"initial": "lhs"}])
@pytest.mark.parametrize("method", ["nsga2", "nsga3"])
def test_genetic_settings_run_and_are_reproducible(cheap_problem, method, settings):
    a = optimise(cheap_problem, method, budget=48, seed=4, batch_size=16, settings=settings, predict=False)
    b = optimise(cheap_problem, method, budget=48, seed=4, batch_size=16, settings=settings, predict=False)
    assert a.n_complete == 48 and a.pareto
    assert [c.vector for c in a.pareto] == [c.vector for c in b.pareto]


def test_latin_hypercube_fills_every_stratum(cheap_problem):
    dists = _distributions(cheap_problem.space)
    n = 16
    design = latin_hypercube(dists, n, np.random.SeedSequence(3))
    assert len(design) == n
    for name, d in dists.items():
        values = [p[name] for p in design]
        if isinstance(d, CategoricalDistribution):
            assert set(values) <= set(d.choices)
            continue
        assert all(d.low <= v <= d.high for v in values)
        if d.step is None:  # one point in each of the n equal strata of the range
            strata = np.floor((np.array(values) - d.low) / (d.high - d.low) * n).astype(int)
            assert sorted(strata) == list(range(n))
        else:  # on the grid, and the i-th smallest grid point inside the i-th stratum
            g = (np.array(values) - d.low) / d.step
            assert np.allclose(g, np.round(g))
            m = round((d.high - d.low) / d.step) + 1
            for i, gi in enumerate(sorted(np.round(g).astype(int))):
                assert i * m // n <= gi <= -(-(i + 1) * m // n) - 1


def test_first_batch_of_a_new_study_is_the_latin_hypercube(cheap_problem, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    first = optimise(cheap_problem, budget=16, seed=2, batch_size=16, settings={"initial": "lhs"}, storage=url,
                     study_name="s", predict=False)
    freq = cheap_problem.space.names.index("frequency_hz")
    name = cheap_problem.space.names[freq]
    d = _distributions(cheap_problem.space)[name]
    values = np.array([t.params[name] for t in first.study.get_trials()])
    strata = np.floor((values - d.low) / (d.high - d.low) * 16).astype(int)
    assert sorted(strata) == list(range(16))
    # a resumed study goes on with the method's own offspring, not a second design
    more = optimise(cheap_problem, budget=32, seed=2, batch_size=16, settings={"initial": "lhs"}, storage=url,
                    study_name="s", resume=True, predict=False)
    assert more.n_complete == 32 and more.n_evaluated == 16


@pytest.mark.parametrize("n, k", [(16, 2), (7, 2), (5, 3), (1, 2), (3, 5)])
def test_split_and_merge_keep_the_order(n, k):
    items = list(range(n))
    chunks = split_evenly(items, k)
    assert len(chunks) == min(n, k) and max(map(len, chunks)) - min(map(len, chunks)) <= 1
    assert merge_chunks(chunks, n) == items


def pid_evaluate_batch(programs, patients, **kwargs):
    """The surrogate, plus the id of the process that evaluated each program."""
    preds = surrogate_evaluate_batch(programs, patients, **kwargs)
    for p in preds:
        p.scalars["worker_pid"] = float(os.getpid())
    return preds


@pytest.mark.slow
def test_dask_batch_is_shared_by_both_workers(measured_patient):
    from emsim.optimise import Problem
    from emsim.optimise._executor import DaskExecutor

    problem = Problem(measured_patient, evaluator=pid_evaluate_batch)
    x = problem.space.from_program(problem.space.template)
    executor = DaskExecutor(2)
    try:
        for _ in range(3):  # every batch, not only the first
            evs = executor.evaluate(problem, [x] * 8)
            assert all(ev.feasible for ev in evs)
            pids = [ev.outcomes["worker_pid"] for ev in evs]
            assert len(set(pids)) == 2 and os.getpid() not in pids
            assert pids[0::2] == [pids[0]] * 4 and pids[1::2] == [pids[1]] * 4  # interleaved chunks
    finally:
        executor.close()


@pytest.mark.parametrize("method", ["nsga2", "nsga3"])
def test_incremental_generations_search_like_optuna(cheap_problem, monkeypatch, method):
    """The incremental bookkeeping gives optuna's own generations and parents: same trials."""
    import optuna

    from emsim.optimise import _samplers

    def run():
        r = optimise(cheap_problem, method, budget=96, seed=6, batch_size=8, predict=False)
        trials = sorted(r.study.get_trials(deepcopy=False), key=lambda t: t.number)
        return [(t.params, t.system_attrs.get(f"{'NSGAII' if method == 'nsga2' else 'NSGAIII'}Sampler:generation"))
                for t in trials]

    ours = run()
    monkeypatch.setattr(_samplers, "_NSGAII", optuna.samplers.NSGAIISampler)
    monkeypatch.setattr(_samplers, "_NSGAIII", optuna.samplers.NSGAIIISampler)
    theirs = run()
    assert ours == theirs
    assert max(g for _, g in ours) >= 10  # many generations were bred, not only the first
