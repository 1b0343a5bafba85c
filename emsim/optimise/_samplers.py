"""The search methods: optuna samplers, their settings, and a space-filling first batch."""

from __future__ import annotations

import warnings

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution
from optuna.trial import TrialState

from emsim.errors import OptimiseError

__all__ = ["METHODS", "SETTINGS", "check_settings", "make_sampler", "latin_hypercube"]

METHODS = ("nsga2", "nsga3", "tpe", "random")
#: Search settings and their allowed values (``optimise(settings={...})``); the first is the default.
SETTINGS = {
    "crossover": ("uniform", "sbx", "blx"),   # genetic methods: optuna's Uniform/SBX/BLX-alpha crossover
    "mutation": ("uniform", "polynomial"),    # genetic methods: redraw a gene, or Deb's polynomial mutation
    "initial": ("random", "lhs"),             # first batch of a new study: random, or a Latin hypercube
}


class _IncrementalGenerations:
    """optuna's genetic samplers with their generation bookkeeping kept up as trials finish.

    optuna 5's ``BaseGASampler.get_trial_generation`` scans every completed trial of the study
    at each ``ask`` and ``get_parent_population`` every trial, so the search library's cost per
    evaluation grows with the study: measured with the surrogate evaluator, 2.2 ms of CPU per
    evaluation over the first 96 trials, 7.2 ms over 1 500 and 11 ms over 4 000 (profile: most
    of it in those two scans). Here the finished prefix of the study is read once and summed
    up; only the trials after it (the batch being asked) are looked at again. The result is
    the same generation and the same parents (same order) as optuna's own methods, so a seed
    gives the same search either way (tested).
    """

    def _generation_state(self, study) -> dict:
        cache = self.__dict__.setdefault("_emsim_generations", {})
        state = cache.get(id(study._storage), {}).get(study._study_id)
        if state is None:
            state = {"n": 0, "max": 0, "count": 0, "parents": {}}
            cache.setdefault(id(study._storage), {})[study._study_id] = state
        return state

    def get_trial_generation(self, study, trial):
        generation = trial.system_attrs.get(self._get_generation_key(), None)
        if generation is not None:
            return generation
        key = self._get_generation_key()
        state = self._generation_state(study)
        trials = study._storage.get_all_trials(study._study_id, deepcopy=False)
        n = state["n"]
        while n < len(trials) and trials[n].state.is_finished():  # a finished trial never changes
            if trials[n].state == TrialState.COMPLETE:
                state["max"], state["count"] = _tally(state["max"], state["count"], trials[n].system_attrs.get(key, -1))
            n += 1
        state["n"] = n
        best, count = state["max"], state["count"]
        for t in trials[n:]:  # unfinished trials and whatever finished after them
            if t.state == TrialState.COMPLETE:
                best, count = _tally(best, count, t.system_attrs.get(key, -1))
        generation = best if count < self._population_size else best + 1
        study._storage.set_trial_system_attr(trial._trial_id, key, generation)
        return generation

    def get_parent_population(self, study, generation):
        parents = self._generation_state(study)["parents"]
        if generation in parents:
            return list(parents[generation])
        population = super().get_parent_population(study, generation)
        # optuna returns the cached parents in study order after the first call
        parents[generation] = sorted(population, key=lambda t: t.number)
        return population


def _tally(best: int, count: int, generation: int) -> tuple[int, int]:
    if generation > best:
        return generation, 1
    return best, count + (generation == best)


class _NSGAII(_IncrementalGenerations, optuna.samplers.NSGAIISampler):
    pass


class _NSGAIII(_IncrementalGenerations, optuna.samplers.NSGAIIISampler):
    pass


# optuna names the attributes it stores after the sampler class (set when a subclass is made):
# keep optuna's names, so that studies written before and optuna's own tools read the same ones
for _cls in (_NSGAII, _NSGAIII):
    _base = _cls.__mro__[2]
    _cls._GENERATION_KEY, _cls._PARENT_CACHE_KEY_PREFIX = _base._GENERATION_KEY, _base._PARENT_CACHE_KEY_PREFIX


def check_settings(settings: dict | None) -> dict:
    out = {k: v[0] for k, v in SETTINGS.items()}
    for key, value in (settings or {}).items():
        if key not in SETTINGS:
            raise OptimiseError("unknown search setting", path=f"settings.{key}", value=key,
                                allowed=", ".join(SETTINGS))
        if value not in SETTINGS[key]:
            raise OptimiseError("unknown value of a search setting", path=f"settings.{key}", value=value,
                                allowed=", ".join(SETTINGS[key]))
        out[key] = value
    return out


def _genetic_operators(settings: dict) -> dict:
    from optuna.samplers.nsgaii import BLXAlphaCrossover, PolynomialMutation, SBXCrossover, UniformCrossover

    crossover = {"uniform": UniformCrossover, "sbx": SBXCrossover, "blx": BLXAlphaCrossover}[settings["crossover"]]
    with warnings.catch_warnings():  # optuna marks these "experimental": interface, not results
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return {"crossover": crossover(),
                "mutation": PolynomialMutation() if settings["mutation"] == "polynomial" else None}


def make_sampler(method: str, seed_seq: np.random.SeedSequence, batch_size: int, budget: int, settings: dict):
    seed = int(seed_seq.generate_state(1, dtype=np.uint32)[0])
    if method == "nsga2":
        return _NSGAII(population_size=max(2, batch_size), seed=seed, **_genetic_operators(settings))
    if method == "nsga3":
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
            return _NSGAIII(population_size=max(2, batch_size), seed=seed, **_genetic_operators(settings))
    if method == "tpe":
        return optuna.samplers.TPESampler(seed=seed, multivariate=True, constant_liar=True,
                                          n_startup_trials=max(batch_size, min(20, budget // 5)))
    return optuna.samplers.RandomSampler(seed=seed)


def latin_hypercube(dists: dict, n: int, seed_seq: np.random.SeedSequence) -> list[dict]:
    """``n`` parameter sets spread over ``dists`` by a Latin hypercube (McKay et al. 1979).

    Every variable's range is cut into ``n`` equal strata and each stratum is used once, so a
    first generation covers each variable's whole range, which ``n`` independent random draws
    need not do. Stepped and categorical variables take the grid point or choice the uniform
    coordinate falls on.
    """
    from scipy.stats import qmc

    u = qmc.LatinHypercube(d=len(dists), seed=np.random.default_rng(seed_seq)).random(n)
    out = []
    for row in u:
        params = {}
        for x, (name, d) in zip(row, dists.items()):
            if isinstance(d, CategoricalDistribution):
                params[name] = d.choices[min(int(x * len(d.choices)), len(d.choices) - 1)]
            elif d.step is not None:
                k = round((d.high - d.low) / d.step)
                params[name] = float(np.round(d.low + min(int(x * (k + 1)), k) * d.step, 12))
            else:
                params[name] = float(d.low + x * (d.high - d.low))
        out.append(params)
    return out


