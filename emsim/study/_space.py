"""Parameter spaces of a study: full grids, random and Latin-hypercube samples, virtual cohorts.

Every space turns into a table of rows (``dict`` of equal-length 1-D arrays) that depends only
on the space and the seed, so an interrupted study rebuilds the same rows and resumes.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np

from emsim.study._errors import StudyError

__all__ = ["Parameter", "Grid", "RandomSamples", "LatinHypercube", "Cohort"]


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
    """``n`` independent uniform draws inside each parameter's bounds."""

    parameters: tuple
    n: int

    def __post_init__(self):
        object.__setattr__(self, "parameters", tuple(self.parameters))
        _check_n(self.n)

    def _unit(self, rng) -> np.ndarray:
        return rng.random((self.n, len(self.parameters)))

    def rows(self, seed: int) -> dict[str, np.ndarray]:
        u = self._unit(np.random.default_rng(seed))
        return {p.name: p._scale(u[:, i]) for i, p in enumerate(self.parameters)}

    def spec(self) -> dict:
        return {"kind": type(self).__name__, "n": self.n, "parameters": [p.spec() for p in self.parameters]}


@dataclass(frozen=True)
class LatinHypercube(RandomSamples):
    """``n`` Latin-hypercube samples (McKay, Beckman & Conover 1979; :mod:`scipy.stats.qmc`)."""

    def _unit(self, rng) -> np.ndarray:
        from scipy.stats import qmc

        return qmc.LatinHypercube(d=len(self.parameters), seed=rng).random(self.n)


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
        idx = np.arange(self.n)
        if self.extra is None:
            return {"patient_index": idx}
        grid = self.extra.rows(seed)
        m = len(next(iter(grid.values())))
        out = {"patient_index": np.repeat(idx, m)}
        out.update({k: np.tile(v, self.n) for k, v in grid.items()})
        return out

    def spec(self) -> dict:
        return {"kind": "cohort", "n": self.n, "population": self.population,
                "extra": self.extra.spec() if self.extra is not None else None}
