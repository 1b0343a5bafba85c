"""Objectives by name, and how a cohort's outcomes are reduced to one number."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import numpy as np

from emsim.errors import OptimiseError

__all__ = ["Objective", "OBJECTIVES", "DEFAULT_OBJECTIVES", "objectives_by_name", "aggregate"]


@dataclass(frozen=True)
class Objective:
    """One outcome of :attr:`emsim.simulate.Prediction.scalars` and its direction.

    ``worst`` is the value an unevaluated (infeasible) candidate reports, so that it can
    never look attractive even to a sampler that ignores constraints.
    """

    name: str
    direction: str  # "maximize" | "minimize" (optuna's spelling)
    worst: float
    label: str


OBJECTIVES: dict[str, Objective] = {o.name: o for o in (
    Objective("mean_mvc_pct", "maximize", 0.0, "mean evoked contraction (%MVC)"),
    Objective("effective_contractions", "maximize", 0.0, "effective contractions"),
    Objective("fti_ns", "maximize", 0.0, "force-time integral (N s)"),
    Objective("peak_discomfort_nrs", "minimize", 10.0, "peak discomfort (NRS)"),
    Objective("mean_discomfort_nrs", "minimize", 10.0, "mean discomfort (NRS)"),
    Objective("fatigue_decline_pct", "minimize", 100.0, "fatigue (% decline)"),
)}
#: Contraction dose, discomfort and fatigue: the three the issue asks to trade off.
DEFAULT_OBJECTIVES = ("mean_mvc_pct", "peak_discomfort_nrs", "fatigue_decline_pct")


def objectives_by_name(names: Sequence[str] | str) -> tuple[Objective, ...]:
    """Look objectives up by name (a comma-separated string works too).

    Raises
    ------
    OptimiseError
        An unknown, repeated or missing objective.
    """
    if isinstance(names, str):
        names = [n.strip() for n in names.split(",") if n.strip()]
    names = list(names)
    if not names:
        raise OptimiseError("at least one objective is needed", path="objectives", value=names,
                            allowed=", ".join(OBJECTIVES))
    out = []
    for n in names:
        if n not in OBJECTIVES:
            raise OptimiseError("unknown objective", path="objectives", value=n, allowed=", ".join(OBJECTIVES))
        if n in [o.name for o in out]:
            raise OptimiseError("objective given twice", path="objectives", value=n, allowed="each once")
        out.append(OBJECTIVES[n])
    return tuple(out)


def check_statistic(statistic) -> str | float:
    """``"mean"``, ``"worst"`` or a percentile in (0, 100] (a number, or ``"p90"`` for 90)."""
    if statistic in ("mean", "worst"):
        return statistic
    number = statistic[1:] if isinstance(statistic, str) and statistic[:1] in ("p", "P") else statistic
    try:
        q = float(number)
    except (TypeError, ValueError):
        q = float("nan")
    if not 0.0 < q <= 100.0:
        raise OptimiseError("unknown cohort statistic", path="statistic", value=statistic,
                            allowed="'mean', 'worst' or a percentile in (0, 100] such as 'p90'")
    return q


def aggregate(values: np.ndarray, direction: str, statistic) -> float:
    """Reduce one outcome over a cohort.

    ``statistic`` is ``"mean"``, ``"worst"``, or a percentile *q* counted from the bad end:
    the value that *q* % of the cohort do no better than (``q = 10`` is the outcome of the
    worst-served tenth; for a maximised outcome the 10th percentile, for a minimised one the
    90th).
    """
    v = np.asarray(values, dtype=float)
    if v.size == 1:
        return float(v[0])
    if statistic == "mean":
        return float(np.mean(v))
    if statistic == "worst":
        return float(np.min(v) if direction == "maximize" else np.max(v))
    q = float(statistic)
    return float(np.percentile(v, q if direction == "maximize" else 100.0 - q))
