"""Parameter spaces of a study: full grids, random and Latin-hypercube samples, virtual cohorts.

Every space turns into a table of rows (``dict`` of equal-length 1-D arrays) that depends only
on the space and the seed, so an interrupted study rebuilds the same rows and resumes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from emsim.study._errors import StudyError

__all__ = ["Parameter", "Grid", "RandomSamples", "LatinHypercube", "Cohort", "MorrisTrajectories"]


@dataclass(frozen=True)
class Parameter:
    """One varied quantity, in human units at the edge (unit given separately, e.g. ``"Hz"``).

    Either ``values`` (grids; numbers or labels) or ``low``/``high`` (sampled spaces; ``log``
    samples uniformly in log space).
    """

    name: str
    unit: str = ""
    values: tuple = ()
    low: float | None = None
    high: float | None = None
    log: bool = False
    label: str = ""

    def __post_init__(self):
        object.__setattr__(self, "values", tuple(self.values))
        if self.low is not None and self.high is not None:
            if not (np.isfinite(self.low) and np.isfinite(self.high) and self.low < self.high):
                raise StudyError("bounds must be finite with low < high", path=f"{self.name}",
                                 value=(self.low, self.high), allowed="low < high")
            if self.log and self.low <= 0:
                raise StudyError("log-sampled bounds must be positive", path=f"{self.name}.low",
                                 value=self.low, allowed="> 0")

    def spec(self) -> dict:
        return {"name": self.name, "unit": self.unit, "values": list(self.values), "low": self.low,
                "high": self.high, "log": self.log}

    def _scale(self, u: np.ndarray) -> np.ndarray:
        if self.low is None or self.high is None:
            raise StudyError("a sampled parameter needs low and high bounds", path=self.name,
                             has_value=False, allowed="low < high")
        if self.log:
            return np.exp(np.log(self.low) + u * (np.log(self.high) - np.log(self.low)))
        return self.low + u * (self.high - self.low)


class _Space:
    gridded = False

    def rows(self, seed: int) -> dict[str, np.ndarray]:  # pragma: no cover - interface
        raise NotImplementedError

    def spec(self) -> dict:  # pragma: no cover - interface
        raise NotImplementedError

    def units(self) -> dict[str, str]:
        return {p.name: p.unit for p in self.parameters}

    def labels(self) -> dict[str, str]:
        return {p.name: p.label or p.name.replace("_", " ") for p in self.parameters}


def _cross(rows: dict[str, np.ndarray], extra: "Grid | None", seed: int) -> dict[str, np.ndarray]:
    """Every row of ``rows`` repeated once per row of the grid ``extra`` (grid varies fastest)."""
    if extra is None:
        return rows
    grid = extra.rows(seed)
    m = len(next(iter(grid.values())))
    n = len(next(iter(rows.values())))
    out = {k: np.repeat(v, m) for k, v in rows.items()}
    out.update({k: np.tile(v, n) for k, v in grid.items()})
    return out


def _extra_spec(extra) -> dict | None:
    return extra.spec() if extra is not None else None


def _check_n(n) -> int:
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 10_000_000:
        raise StudyError("sample size out of range", path="n", value=n, allowed="1 to 10000000")
    return int(n)


@dataclass(frozen=True)
class Grid(_Space):
    """Full factorial grid over parameters with ``values`` (the first varies slowest)."""

    parameters: tuple = ()
    gridded = True

    def __init__(self, *parameters: Parameter):
        for p in parameters:
            if not p.values:
                raise StudyError("a grid parameter needs values", path=p.name, has_value=False,
                                 allowed="a non-empty list")
        object.__setattr__(self, "parameters", tuple(parameters))

    def rows(self, seed: int) -> dict[str, np.ndarray]:
        combos = list(itertools.product(*(p.values for p in self.parameters)))
        return {p.name: np.array([c[i] for c in combos]) for i, p in enumerate(self.parameters)}

    def spec(self) -> dict:
        return {"kind": "grid", "parameters": [p.spec() for p in self.parameters]}


@dataclass(frozen=True)
class RandomSamples(_Space):
    """``n`` independent uniform draws inside each parameter's bounds.

    ``extra`` is an optional :class:`Grid` crossed with every sample (e.g. patient archetypes).
    """

    sampled: tuple
    n: int
    extra: Grid | None = None
    parameters: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "sampled", tuple(self.sampled))
        _check_n(self.n)
        extra = self.extra.parameters if self.extra is not None else ()
        object.__setattr__(self, "parameters", self.sampled + tuple(extra))

    def _unit(self, rng) -> np.ndarray:
        return rng.random((self.n, len(self.sampled)))

    def rows(self, seed: int) -> dict[str, np.ndarray]:
        u = self._unit(np.random.default_rng(seed))
        return _cross({p.name: p._scale(u[:, i]) for i, p in enumerate(self.sampled)}, self.extra, seed)

    def spec(self) -> dict:
        return {"kind": type(self).__name__, "n": self.n, "parameters": [p.spec() for p in self.sampled],
                "extra": _extra_spec(self.extra)}


@dataclass(frozen=True)
class LatinHypercube(RandomSamples):
    """``n`` Latin-hypercube samples (McKay, Beckman & Conover 1979; :mod:`scipy.stats.qmc`)."""

    def _unit(self, rng) -> np.ndarray:
        from scipy.stats import qmc

        return qmc.LatinHypercube(d=len(self.sampled), seed=rng).random(self.n)


@dataclass(frozen=True)
class Cohort(_Space):
    """``n`` virtual patients of a population (:func:`emsim.body.cohort.cohort`), one row each.

    Rows hold ``patient_index``; :func:`emsim.study.cohort_patients` turns them into patients.
    ``extra`` is an optional :class:`Grid` crossed with every patient.
    """

    n: int
    population: str = "adults_lbp"
    extra: Grid | None = None
    parameters: tuple = field(default=())

    def __post_init__(self):
        _check_n(self.n)
        extra = self.extra.parameters if self.extra is not None else ()
        object.__setattr__(self, "parameters", (Parameter("patient_index", ""),) + tuple(extra))

    def rows(self, seed: int) -> dict[str, np.ndarray]:
        return _cross({"patient_index": np.arange(self.n)}, self.extra, seed)

    def spec(self) -> dict:
        return {"kind": "cohort", "n": self.n, "population": self.population, "extra": _extra_spec(self.extra)}


@dataclass(frozen=True)
class MorrisTrajectories(_Space):
    """``r`` one-at-a-time trajectories of Morris's elementary-effects screening.

    Morris (1991, Technometrics 33:161) with the |EE| mean μ* of Campolongo, Cariboni &
    Saltelli (2007, Environ Model Softw 22:1509): on a ``levels``-level grid of the unit
    hypercube with step Δ = levels / (2 (levels − 1)), each trajectory starts at a random grid
    point and moves every factor once, in random order, by +Δ (or −Δ where +Δ would leave the
    cube). Rows are the ``r·(k + 1)`` points, with ``trajectory`` and ``step`` columns;
    :func:`elementary_effects` turns the evaluated rows into μ*, μ and σ per factor. ``extra``
    is an optional :class:`Grid` crossed with every point (e.g. a constant setting).
    """

    sampled: tuple
    r: int
    levels: int = 4
    extra: Grid | None = None
    parameters: tuple = field(default=())

    def __post_init__(self):
        object.__setattr__(self, "sampled", tuple(self.sampled))
        _check_n(self.r)
        if len(self.sampled) < 1:
            raise StudyError("Morris screening needs at least one factor", path="parameters", value=0,
                             allowed=">= 1")
        if isinstance(self.levels, bool) or not isinstance(self.levels, int) or self.levels < 2 \
                or self.levels % 2:
            raise StudyError("Morris levels must be an even integer >= 2", path="levels", value=self.levels,
                             allowed="2, 4, 6, ...")
        extra = self.extra.parameters if self.extra is not None else ()
        object.__setattr__(self, "parameters", (Parameter("trajectory", ""), Parameter("step", ""))
                           + self.sampled + tuple(extra))

    @property
    def delta(self) -> float:
        return self.levels / (2.0 * (self.levels - 1))

    def unit_points(self, seed: int) -> np.ndarray:
        """The trajectories on the unit hypercube, shape ``(r, k + 1, k)``."""
        rng = np.random.default_rng(seed)
        k, p = len(self.sampled), self.levels
        out = np.empty((self.r, k + 1, k))
        for t in range(self.r):
            x = rng.integers(0, p, k) / (p - 1)
            out[t, 0] = x
            for j, i in enumerate(rng.permutation(k)):
                x = x.copy()
                x[i] = x[i] + self.delta if x[i] + self.delta <= 1 + 1e-12 else x[i] - self.delta
                out[t, j + 1] = x
        return out

    def rows(self, seed: int) -> dict[str, np.ndarray]:
        u = self.unit_points(seed)
        r, steps, k = u.shape
        flat = u.reshape(-1, k)
        out = {"trajectory": np.repeat(np.arange(r), steps), "step": np.tile(np.arange(steps), r)}
        out.update({p.name: p._scale(np.clip(flat[:, i], 0.0, 1.0)) for i, p in enumerate(self.sampled)})
        return _cross(out, self.extra, seed)

    def spec(self) -> dict:
        return {"kind": "morris", "r": self.r, "levels": self.levels,
                "parameters": [p.spec() for p in self.sampled], "extra": _extra_spec(self.extra)}


def elementary_effects(df, space: MorrisTrajectories, outcomes) -> "pandas.DataFrame":
    """μ* (mean |EE|), μ and σ of the elementary effects of every factor on every outcome.

    Effects are per unit of the scaled factor range (the whole range = 1), so factors with
    different units compare directly; μ* carries the outcome's unit.
    """
    import pandas as pd

    names = [p.name for p in space.sampled]
    lookup = {p.name: p for p in space.sampled}
    records = []
    for _, traj in df.sort_values(["trajectory", "step"]).groupby("trajectory", sort=True):
        pts = traj[names].to_numpy(float)
        unit = np.column_stack([_unscale(lookup[n], pts[:, i]) for i, n in enumerate(names)])
        for j in range(1, len(traj)):
            moved = np.flatnonzero(np.abs(unit[j] - unit[j - 1]) > 1e-9)
            if moved.size != 1:
                continue
            i = int(moved[0])
            du = unit[j, i] - unit[j - 1, i]
            for o in outcomes:
                y = traj[o].to_numpy(float)
                records.append({"factor": names[i], "outcome": o, "ee": (y[j] - y[j - 1]) / du})
    ee = pd.DataFrame(records, columns=["factor", "outcome", "ee"])
    g = ee.groupby(["outcome", "factor"], sort=True)["ee"]
    out = pd.DataFrame({"mu_star": g.apply(lambda v: float(np.mean(np.abs(v)))), "mu": g.mean(),
                        "sigma": g.std(ddof=1).fillna(0.0), "n_effects": g.size()}).reset_index()
    return out


def _unscale(p: Parameter, v: np.ndarray) -> np.ndarray:
    if p.log:
        return (np.log(v) - np.log(p.low)) / (np.log(p.high) - np.log(p.low))
    return (v - p.low) / (p.high - p.low)
