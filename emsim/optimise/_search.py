"""The front door: ``optimise(problem, method=..., budget=...) → Result``, over optuna ask/tell."""

from __future__ import annotations

import math
import time
import uuid
from dataclasses import dataclass
from typing import Callable

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState

from emsim.errors import OptimiseError
from emsim.optimise._executor import make_executor
from emsim.optimise._problem import CONSTRAINTS, Problem
from emsim.optimise._samplers import METHODS, SETTINGS, check_settings, latin_hypercube, make_sampler
from emsim.optimise._result import REASON_KEY, VALUES_KEY, Result, collect_result
from emsim.optimise._storage import UID_KEY, WorkerLease, open_storage, open_study

__all__ = ["optimise", "Progress", "METHODS", "SETTINGS"]


@dataclass(frozen=True)
class Progress:
    """Passed to ``callback`` after every batch; return ``True`` from the callback to stop."""

    n_complete: int
    budget: int
    n_feasible_batch: int
    n_batch: int
    elapsed_s: float


def _distributions(space) -> dict:
    out = {}
    for v in space.variables:
        if v.categorical:
            out[v.name] = CategoricalDistribution(list(v.choices))
        elif v.frequency_device is not None:
            out[v.name] = FloatDistribution(v.low, v.high)  # snapped to the device's period grid
        else:
            n = round((v.high - v.low) / v.step)
            out[v.name] = FloatDistribution(v.low, v.low + n * v.step, step=v.step) if n > 0 \
                else FloatDistribution(v.low, v.high)
    return out


def optimise(problem: Problem, method: str = "nsga2", *, budget: int, seed: int | None = 0,
             storage: str | None = None, study_name: str | None = None,
             callback: Callable[[Progress], bool | None] | None = None, batch_size: int = 16,
             workers: int = 1, scheduler: str | None = None, resume: bool = False,
             predict: bool = True, spec: dict | None = None, settings: dict | None = None) -> Result:
    """Search the Pareto set of ``problem``.

    Each round asks optuna for a batch of candidates, evaluates the batch at once (here, or
    on Dask), then tells optuna the objective values and the constraint values (optuna's
    ``Trial.set_constraint``; infeasible candidates are dominated by every feasible one).

    Parameters
    ----------
    problem : Problem
    method : {"nsga2", "nsga3", "tpe", "random"}
        optuna's NSGA-II or NSGA-III (population = ``batch_size``), multivariate TPE, or random
        search.
    budget : int
        Completed evaluations the study should hold at the end (a resumed study counts the
        trials it has; several workers share one budget).
    seed : int, optional
        Seed of the sampler; the run is reproducible for one worker and a given study state.
    storage : str, optional
        SQLAlchemy URL (``sqlite:///study.db``, ``postgresql+psycopg://...``); ``None``: in memory.
    study_name : str, optional
        Default ``emsim-<fingerprint prefix>``.
    callback : callable, optional
        Called with a :class:`Progress` after every batch; returning ``True`` stops the search.
    batch_size : int
        Candidates per ask/evaluate/tell round (the most a killed run loses).
    workers, scheduler
        Evaluate batches on a local Dask cluster of ``workers`` processes, or on the cluster
        at ``scheduler``; ``workers=1`` and no scheduler evaluates in this process.
    resume : bool
        Continue (or join) the study of this name; without it an existing name is an error.
    predict : bool
        Re-evaluate the Pareto set to attach full predictions (on by default).
    spec : dict, optional
        JSON-safe specification stored with the study (``emsim optimise`` stores its
        arguments there so that ``--resume`` needs no others; :mod:`emsim.optimise._spec`).
    settings : dict, optional
        Search settings, :data:`SETTINGS` (crossover and mutation of the genetic methods, and
        the first batch of a new study: random or a Latin hypercube).

    Returns
    -------
    Result

    Raises
    ------
    OptimiseError
        Unknown method, bad budget or batch size, a storage that cannot be opened, a study
        of another problem, or nothing feasible at the end; an unknown search setting.
    """
    if method not in METHODS:
        raise OptimiseError("unknown search method", path="method", value=method, allowed=", ".join(METHODS))
    if not isinstance(budget, int) or isinstance(budget, bool) or budget < 1:
        raise OptimiseError("budget must be a whole number >= 1", path="budget", value=budget, allowed=">= 1")
    if not isinstance(batch_size, int) or not 1 <= batch_size <= 10000:
        raise OptimiseError("batch size out of range", path="batch_size", value=batch_size, allowed="1 to 10000")
    if seed is not None and (not isinstance(seed, int) or seed < 0):
        raise OptimiseError("seed must be a whole number >= 0", path="seed", value=seed, allowed=">= 0")
    settings = check_settings(settings)
    t0 = time.perf_counter()
    store = open_storage(storage)
    name = study_name or f"emsim-{problem.fingerprint()[:12]}"
    study = open_study(store, name, problem, sampler=optuna.samplers.RandomSampler(seed=0), resume=resume,
                       spec=spec)
    n_before = len(study.get_trials(deepcopy=False))
    with WorkerLease(study) as lease:
        # The seed also depends on how much of the study exists and how many workers joined
        # before, so a resumed run or a second worker does not replay the same draws.
        seq = np.random.SeedSequence([seed if seed is not None else 0, n_before, lease.n_workers_seen()])
        mirror = _Mirror(study, make_sampler(method, seq, batch_size, budget, settings), problem.directions)
        if settings["initial"] == "lhs" and n_before == 0:
            for params in latin_hypercube(_distributions(problem.space), min(batch_size, budget), seq.spawn(1)[0]):
                mirror.local.enqueue_trial(params)
        executor = make_executor(workers, scheduler)
        try:
            n_evaluated = _loop(problem, study, mirror, lease, executor, budget, batch_size, callback, t0)
        finally:
            executor.close()
    return collect_result(problem, study, method=method, seed=seed, elapsed_s=time.perf_counter() - t0,
                          n_evaluated=n_evaluated, predict=predict)


class _Mirror:
    """This worker's in-memory copy of the shared study, where the sampler asks and is told.

    Each batch of finished trials goes to the shared storage at once: one transaction in the
    journal layout (a trial per transaction in the RDB layout, which has no batched write).
    Trials other workers finished are pulled in before every batch; the shared study only ever
    grows by finished trials, so the ones looked at before are not looked at again.
    """

    def __init__(self, shared, sampler, directions):
        self.shared = shared
        self.local = optuna.create_study(directions=list(directions), sampler=sampler)
        self._known: set[str] = set()
        self._n_seen = 0
        self._unfinished: list[int] = []
        self.n_complete = 0

    def pull(self) -> int:
        """Add the trials other workers finished; returns the completed trials in the shared study."""
        trials = self.shared.get_trials(deepcopy=False)
        unfinished = []
        for i in [*self._unfinished, *range(self._n_seen, len(trials))]:
            t = trials[i]
            if not t.state.is_finished():  # not written by emsim: look at it again next time
                unfinished.append(i)
                continue
            self.n_complete += t.state == TrialState.COMPLETE
            uid = t.user_attrs.get(UID_KEY) or f"shared-{t._trial_id}"
            if uid not in self._known and t.state in (TrialState.COMPLETE, TrialState.FAIL):
                self._known.add(uid)
                self.local.add_trial(t)
        self._n_seen, self._unfinished = len(trials), unfinished
        return self.n_complete

    def push(self, trial_numbers: list[int], user_attrs: dict) -> None:
        """Store the finished local trials ``trial_numbers``, then set the study's ``user_attrs``."""
        local = self.local.get_trials(deepcopy=False)
        frozen = [local[n] for n in trial_numbers]
        add_trials = getattr(self.shared._storage, "add_trials", None)
        if add_trials is not None:
            add_trials(self.shared._study_id, frozen, user_attrs)
        else:
            for t in frozen:
                self.shared.add_trial(t)
            for key, value in user_attrs.items():
                self.shared.set_user_attr(key, value)
        self._known.update(t.user_attrs[UID_KEY] for t in frozen)


def _loop(problem, study, mirror, lease, executor, budget, batch_size, callback, t0) -> int:
    dists = _distributions(problem.space)
    n_evaluated = 0
    while True:
        if lease.error is not None:
            raise OptimiseError(f"storage lost during the search ({type(lease.error).__name__})", path="storage")
        n_done = mirror.pull()
        if n_done >= budget:
            return n_evaluated
        n_ask = min(batch_size, budget - n_done - lease.others_in_flight())
        if n_ask <= 0:  # the rest is in flight on other workers: wait for them (or for their lease to lapse)
            time.sleep(lease.interval_s)
            continue
        lease.beat(in_flight=n_ask)
        asked = [mirror.local.ask(dists) for _ in range(n_ask)]
        evaluations = executor.evaluate(problem, [dict(t.params) for t in asked])
        n_feasible = 0
        for trial, ev in zip(asked, evaluations):
            for key in CONSTRAINTS:
                trial.set_constraint(key, ev.constraints[key])
            trial.set_user_attr(UID_KEY, uuid.uuid4().hex)
            trial.set_user_attr(VALUES_KEY, ev.outcomes if _finite(ev.outcomes) else {})
            if ev.reason:
                trial.set_user_attr(REASON_KEY, ev.reason[:500])
            mirror.local.tell(trial, list(ev.values))
            n_feasible += ev.feasible
        mirror.push([t.number for t in asked], lease.heartbeat(in_flight=0))
        n_evaluated += len(asked)
        if callback is not None:
            done = n_done + len(asked)
            if callback(Progress(done, budget, n_feasible, len(asked), time.perf_counter() - t0)):
                return n_evaluated


def _finite(d: dict) -> bool:
    return all(isinstance(v, (int, float)) and math.isfinite(v) for v in d.values())
