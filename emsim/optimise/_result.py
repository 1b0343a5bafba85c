"""What a search returns: the Pareto set as Programs with their predictions, and the study."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
from optuna.trial import TrialState

from emsim.errors import OptimiseError

__all__ = ["Candidate", "Result", "pareto_mask", "collect_result"]

VALUES_KEY = "emsim.outcomes"
REASON_KEY = "emsim.reason"


@dataclass
class Candidate:
    """One member of the Pareto set.

    Attributes
    ----------
    trial_number : int
    vector : dict
    program : Program
    values : dict
        Objective name → value (cohort statistic).
    predictions : list
        One :class:`~emsim.simulate.Prediction` per patient, evaluated anew from ``program``.
    """

    trial_number: int
    vector: dict
    program: Any
    values: dict
    predictions: list = field(default_factory=list)

    @property
    def prediction(self):
        """The prediction for the first (or only) patient."""
        return self.predictions[0]


@dataclass
class Result:
    """The outcome of :func:`emsim.optimise.optimise`.

    Attributes
    ----------
    pareto : list of Candidate
        Feasible, non-dominated, distinct programs, best first by the first objective.
    problem : Problem
    study : optuna.Study
        The study (its storage holds every trial).
    method : str
    seed : int or None
    n_complete, n_feasible, n_failed : int
        Trial counts in the study at the end.
    elapsed_s : float
        Wall time of this call.
    n_evaluated : int
        Candidates this call evaluated.
    """

    pareto: list
    problem: Any
    study: Any
    method: str
    seed: int | None
    n_complete: int
    n_feasible: int
    n_failed: int
    elapsed_s: float
    n_evaluated: int

    @property
    def programs(self) -> list:
        return [c.program for c in self.pareto]

    @property
    def predictions(self) -> list:
        return [c.prediction for c in self.pareto]

    def front(self) -> np.ndarray:
        """Objective values of the Pareto set, shape ``(n, n_objectives)``."""
        names = self.problem.objective_names
        return np.array([[c.values[n] for n in names] for c in self.pareto], dtype=float)


def pareto_mask(values: np.ndarray, directions) -> np.ndarray:
    """Non-dominated rows of ``values`` (``directions``: "maximize"/"minimize" per column)."""
    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    f = np.asarray(values, dtype=float) * sign
    n = f.shape[0]
    keep = np.ones(n, dtype=bool)
    for i in range(n):
        if not keep[i]:
            continue
        dominated = np.all(f <= f[i], axis=1) & np.any(f < f[i], axis=1)
        if dominated.any():
            keep[i] = False
    return keep


def collect_result(problem, study, *, method, seed, elapsed_s, n_evaluated, predict: bool = True) -> Result:
    """Build the :class:`Result` from every trial in ``study``.

    Raises
    ------
    OptimiseError
        No trial is feasible (the constraints cannot be met within the budget).
    """
    trials = study.get_trials(deepcopy=False)
    complete = [t for t in trials if t.state == TrialState.COMPLETE]
    failed = sum(1 for t in trials if t.state == TrialState.FAIL)
    feasible = [t for t in complete if all(v <= 0.0 for v in t.constraints.values())]
    if not feasible:
        reasons: dict[str, int] = {}
        for t in complete:
            r = str(t.user_attrs.get(REASON_KEY, "")).split(" $", 1)[0][:90] or "?"
            reasons[r] = reasons.get(r, 0) + 1
        top = "; ".join(f"{n} x {r}" for r, n in sorted(reasons.items(), key=lambda kv: -kv[1])[:3])
        raise OptimiseError(f"infeasible constraints: none of {len(complete)} evaluated programs is feasible "
                            f"(most common reasons: {top or 'none evaluated'})", path="constraints",
                            value=len(complete), allowed="looser limits (max discomfort, session length), "
                            "other bounds or a larger budget")
    values = np.array([t.values for t in feasible], dtype=float)
    mask = pareto_mask(values, problem.directions)
    seen, chosen = set(), []
    for t, m in zip(feasible, mask):
        vector = problem.space.snap(t.params)
        key = tuple(sorted((k, repr(v)) for k, v in vector.items()))
        if m and key not in seen:
            seen.add(key)
            chosen.append((t, vector))
    first = problem.objectives[0]
    chosen.sort(key=lambda tv: (-tv[0].values[0] if first.direction == "maximize" else tv[0].values[0],
                                tv[0].number))
    pareto = [Candidate(t.number, vector, problem.space.to_program(vector),
                        dict(zip(problem.objective_names, t.values))) for t, vector in chosen]
    if predict and pareto:
        for c, preds in zip(pareto, problem.predict([c.program for c in pareto])):
            c.predictions = preds
    return Result(pareto=pareto, problem=problem, study=study, method=method, seed=seed,
                  n_complete=len(complete), n_feasible=len(feasible), n_failed=failed,
                  elapsed_s=elapsed_s, n_evaluated=n_evaluated)
