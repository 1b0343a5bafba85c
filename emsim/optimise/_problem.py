"""The optimisation problem: decision vectors in, objectives and constraints out, by the batch.

Like pymoo's ``Problem``, it knows nothing about the search: it evaluates a whole batch of
candidates at once (one call of the evaluator over every candidate × patient pair) and
reports objective values plus constraint values (feasible when every constraint is <= 0,
optuna's convention). An unsafe or malformed candidate is *infeasible*; it is never
evaluated or "penalised into" the front.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence

import numpy as np

from emsim.errors import EmsimError, OptimiseError, PatientError, ProgramError
from emsim.optimise._objectives import (DEFAULT_OBJECTIVES, Objective, aggregate, check_statistic,
                                        objectives_by_name)
from emsim.optimise._space import DesignSpace
from emsim.optimise._template import lumbar_template
from emsim.program.device_profile import device_profile
from emsim.program.model import RelativeAmplitude

__all__ = ["Problem", "Evaluation", "CONSTRAINTS"]

#: Constraint names, in the order they are stored on every trial (<= 0 is feasible).
CONSTRAINTS = ("program_valid", "session_length_s", "safety_errors", "discomfort_nrs")


@dataclass
class Evaluation:
    """The outcome of one candidate.

    Attributes
    ----------
    vector : dict
        The snapped decision vector.
    values : tuple of float
        Objective values (cohort statistic); the objectives' ``worst`` when not evaluated.
    constraints : dict
        :data:`CONSTRAINTS` → value, feasible when all are <= 0.
    outcomes : dict
        Every scalar outcome reduced over the cohort (empty when not evaluated).
    reason : str
        Why it is infeasible (empty when feasible).
    """

    vector: dict
    values: tuple[float, ...]
    constraints: dict[str, float]
    outcomes: dict = field(default_factory=dict)
    reason: str = ""

    @property
    def feasible(self) -> bool:
        return all(v <= 0.0 for v in self.constraints.values())

    def to_attrs(self) -> dict:
        """JSON-safe summary stored with the trial."""
        return {"outcomes": self.outcomes, "reason": self.reason}


def _default_evaluator():
    from emsim.simulate import evaluate_batch

    return evaluate_batch


class Problem:
    """Protocol design for one patient, or robustly for a list of patients (a virtual cohort).

    Parameters
    ----------
    patients : Patient or sequence of Patient
        One patient, or a cohort: objectives are then the cohort ``statistic`` of each outcome.
    space : DesignSpace, optional
        Default: :func:`lumbar_template` for the patients with :data:`DEFAULT_FIELDS
        <emsim.optimise._space.DEFAULT_FIELDS>` on the device's grid.
    objectives : sequence of str or str
        Names from :data:`~emsim.optimise.OBJECTIVES` (default: mean %MVC, peak discomfort,
        fatigue decline).
    device : str or None
        Device profile (default ``rehastim2``): safety envelope and quantisation.
    session : int
        Session number the programs are evaluated (and safety-checked) for.
    max_discomfort_nrs : float, optional
        Most discomfort the patient tolerates (peak NRS, cohort statistic): a constraint.
    max_session_min : float, optional
        Longest session allowed: a constraint.
    statistic : {"mean", "worst"} or float
        Cohort reduction (see :func:`emsim.optimise._objectives.aggregate`).
    evaluator : callable, optional
        ``evaluator(programs, patients, device=, session=, trace=False) -> list[Prediction]``
        (default :func:`emsim.simulate.evaluate_batch`); inject a cheap one to test the search.

    Raises
    ------
    OptimiseError
        Unknown objective or statistic, contradictory limits, a cohort that cannot resolve
        the template's relative amplitudes.
    """

    def __init__(self, patients, space: DesignSpace | None = None, *,
                 objectives: Sequence[str] | str = DEFAULT_OBJECTIVES, device: str | None = "rehastim2",
                 session: int = 1, max_discomfort_nrs: float | None = None,
                 max_session_min: float | None = None, statistic="mean",
                 evaluator: Callable | None = None):
        self.patients = tuple(patients) if isinstance(patients, (list, tuple)) else (patients,)
        if not self.patients or any(p is None for p in self.patients):
            raise OptimiseError("at least one patient is needed", path="patients", value=len(self.patients),
                                allowed="one Patient or a list of them")
        self.objectives: tuple[Objective, ...] = objectives_by_name(objectives)
        self.device = device
        if device is not None:
            device_profile(device)  # unknown id → DeviceError now, not per candidate
        if not isinstance(session, int) or session < 1:
            raise OptimiseError("session numbers start at 1", path="session", value=session, allowed=">= 1")
        self.session = session
        self.statistic = check_statistic(statistic)
        if max_discomfort_nrs is not None and not 0.0 <= float(max_discomfort_nrs) <= 10.0:
            raise OptimiseError("maximum discomfort outside the NRS", path="max_discomfort_nrs",
                                value=max_discomfort_nrs, allowed="0 to 10")
        self.max_discomfort_nrs = None if max_discomfort_nrs is None else float(max_discomfort_nrs)
        if max_session_min is not None and not float(max_session_min) > 0.0:
            raise OptimiseError("maximum session length must be positive", path="max_session_min",
                                value=max_session_min, allowed="> 0 min")
        self.max_session_s = None if max_session_min is None else 60.0 * float(max_session_min)
        if space is None:
            ref = self.patients[0] if all(_has_motor_thresholds(p) for p in self.patients) else None
            space = DesignSpace.from_template(lumbar_template(ref), device=device)
        self.space = space
        self.evaluator = evaluator if evaluator is not None else _default_evaluator()
        self._check_setup()

    # ------------------------------------------------------------------ set-up checks

    def _check_setup(self) -> None:
        t = self.space.template
        for st in (s for ph in t.phases for s in ph.stimulation):
            if not isinstance(st.amplitude, RelativeAmplitude):
                continue
            ch = t.channel(st.channel)
            for p in self.patients:
                if not p.thresholds_for(ch.site, ch.side, st.amplitude.relative_to):
                    raise OptimiseError(
                        f"patient {p.id!r} has no {st.amplitude.relative_to} at {ch.site} ({ch.side}) for the "
                        "template's relative amplitude", path="patients", value=p.id,
                        allowed="patients with that threshold measured, or an absolute-amplitude template")
        if self.max_session_s is not None and "duration_s" not in {v.field for v in self.space.variables}:
            if t.duration_s > self.max_session_s + 1e-9:
                raise OptimiseError("infeasible constraints: the session length is fixed above the maximum",
                                    path="max_session_min", value=self.max_session_s / 60.0,
                                    allowed=f">= {t.duration_s / 60.0:g} min, or vary duration_s")

    # ------------------------------------------------------------------ description

    @property
    def directions(self) -> tuple[str, ...]:
        return tuple(o.direction for o in self.objectives)

    @property
    def objective_names(self) -> tuple[str, ...]:
        return tuple(o.name for o in self.objectives)

    def describe(self) -> dict:
        """Everything that defines the problem, JSON-safe (the basis of :meth:`fingerprint`)."""
        ev = self.evaluator
        return {
            "template": self.space.template.model_dump(mode="json", exclude_none=True,
                                                       exclude={"name", "description", "provenance"}),
            "space": self.space.describe(),
            "objectives": [[o.name, o.direction] for o in self.objectives],
            "device": self.device, "session": self.session, "statistic": self.statistic,
            "max_discomfort_nrs": self.max_discomfort_nrs, "max_session_s": self.max_session_s,
            "patients": [_digest(p.model_dump(mode="json", exclude_none=True)) for p in self.patients],
            "evaluator": f"{getattr(ev, '__module__', '?')}.{getattr(ev, '__qualname__', type(ev).__name__)}",
        }

    def fingerprint(self) -> str:
        """A digest of :meth:`describe`: two problems with the same fingerprint are the same search."""
        return _digest(self.describe())

    # ------------------------------------------------------------------ evaluation

    def evaluate(self, vectors: Sequence[Mapping[str, Any]]) -> list[Evaluation]:
        """Evaluate a batch of decision vectors (one evaluator call for the whole batch)."""
        from emsim.safety import check

        n_con = {k: 0.0 for k in CONSTRAINTS}
        worst = tuple(o.worst for o in self.objectives)
        out: list[Evaluation] = []
        todo: list[tuple[int, Any]] = []
        for x in vectors:
            x = self.space.snap(x)
            try:
                program = self.space.to_program(x)
            except ProgramError as exc:
                out.append(Evaluation(x, worst, dict(n_con, program_valid=1.0),
                                      reason=f"format: {exc.one_line()}"))
                continue
            con = dict(n_con)
            if self.max_session_s is not None:
                con["session_length_s"] = program.duration_s - self.max_session_s
            n_err, first = 0, ""
            for p in self.patients:
                try:
                    report = check(program, p, self.device, session=self.session)
                except EmsimError as exc:
                    n_err, first = n_err + 1, exc.one_line()
                    continue
                n_err += len(report.errors)
                if report.errors and not first:
                    first = report.errors[0].line()
            con["safety_errors"] = float(n_err)
            ev = Evaluation(x, worst, con, reason=f"safety: {first}" if n_err else "")
            if con["session_length_s"] > 0:
                ev.reason = ev.reason or f"session {program.duration_s / 60:g} min > {self.max_session_s / 60:g} min"
            out.append(ev)
            if ev.feasible:
                todo.append((len(out) - 1, program))
        if todo:
            self._evaluate_feasible(out, todo)
        return out

    def _evaluate_feasible(self, out: list[Evaluation], todo) -> None:
        n_p = len(self.patients)
        programs = [prog for _, prog in todo for _ in range(n_p)]
        patients = [p for _ in todo for p in self.patients]
        try:
            preds = self.evaluator(programs, patients, device=self.device, session=self.session, trace=False)
        except PatientError as exc:
            raise OptimiseError(f"the evaluator refused the patients: {exc.one_line()}", path="patients") from exc
        for k, (i, _) in enumerate(todo):
            group = preds[k * n_p:(k + 1) * n_p]
            ev = out[i]
            keys = group[0].scalars.keys()
            ev.outcomes = {}
            for key in keys:
                direction = "minimize"
                if key in {o.name for o in self.objectives}:
                    direction = next(o.direction for o in self.objectives if o.name == key)
                elif key in ("mean_mvc_pct", "peak_mvc_pct", "effective_contractions", "fti_ns",
                             "motor_recruitment_fraction"):
                    direction = "maximize"
                ev.outcomes[key] = aggregate(np.array([g.scalars[key] for g in group], dtype=float),
                                             direction, self.statistic)
            ev.values = tuple(ev.outcomes[o.name] for o in self.objectives)
            if any(not math.isfinite(v) for v in ev.values):
                ev.values = tuple(o.worst for o in self.objectives)
                ev.constraints["program_valid"] = 1.0
                ev.reason = "prediction not finite"
            n_unsafe = sum(len(g.safety.errors) for g in group)
            if n_unsafe:
                ev.constraints["safety_errors"] = float(n_unsafe)
                ev.reason = "safety: " + group[0].safety.errors[0].line() if group[0].safety.errors else "safety"
            if self.max_discomfort_nrs is not None:
                peak = aggregate(np.array([g.scalars["peak_discomfort_nrs"] for g in group]), "minimize",
                                 self.statistic)
                ev.constraints["discomfort_nrs"] = peak - self.max_discomfort_nrs
                if peak > self.max_discomfort_nrs:
                    ev.reason = ev.reason or f"discomfort {peak:.2f} > {self.max_discomfort_nrs:g} NRS"

    def predict(self, programs: Sequence, *, trace: bool = False) -> list[list]:
        """Predictions of each program for every patient (``[program][patient]``)."""
        n_p = len(self.patients)
        flat = self.evaluator([p for p in programs for _ in range(n_p)],
                              [q for _ in programs for q in self.patients],
                              device=self.device, session=self.session, trace=trace)
        return [flat[k * n_p:(k + 1) * n_p] for k in range(len(programs))]


def _has_motor_thresholds(patient) -> bool:
    return bool(patient.thresholds_for("lumbar_erector_spinae", "left", "motor_threshold")
                and patient.thresholds_for("lumbar_erector_spinae", "right", "motor_threshold"))


def _digest(data) -> str:
    text = json.dumps(data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()
