"""What a study declares: its parameter space, batch evaluation, outcomes, figures and references."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import lru_cache
from typing import Callable, Mapping

import numpy as np

from emsim.study._errors import StudyError
from emsim.study._space import _Space

__all__ = ["Study", "Reference", "Plot", "cohort_patients", "pareto_mask", "PLOT_KINDS"]


@dataclass(frozen=True)
class Reference:
    """Published data points a study reproduces, drawn over its figures.

    ``data`` maps column names (the study's parameter/outcome names) to lists; ``error`` names
    an optional column of ± half-widths (SD) of the plotted outcome.
    """

    label: str
    source: str
    evidence: str
    data: Mapping[str, list]
    error: str | None = None


@dataclass(frozen=True)
class Plot:
    """One figure: ``y`` against ``x``, one curve per value of ``by``, one panel per ``facet``.

    ``where`` keeps rows whose column equals the value (e.g. one pulse width of a grid).
    ``kind``: ``"line"`` (curves through the points), ``"scatter"`` (points only), ``"box"``
    (distribution of ``y`` per value of ``x``: median, quartiles, whiskers) or ``"bar"``.
    ``table`` draws from one of the study's derived tables (:attr:`Study.tables`) instead of
    the results. ``shared_axes=False`` gives each facet panel its own axis ranges (panels whose
    ``y`` means different things, e.g. one outcome per panel).
    """

    x: str
    y: str
    by: str | None = None
    facet: str | None = None
    where: Mapping[str, object] = field(default_factory=dict)
    title: str = ""
    logx: bool = False
    logy: bool = False
    references: tuple[str, ...] = ()  # labels of the Reference sets drawn on this figure
    kind: str = "line"
    table: str | None = None
    shared_axes: bool = True

    def __post_init__(self):
        if self.kind not in PLOT_KINDS:
            raise StudyError("unknown plot kind", path="plot.kind", value=self.kind, allowed=", ".join(PLOT_KINDS))


PLOT_KINDS = ("line", "scatter", "box", "bar")


@dataclass(frozen=True)
class Study:
    """A scripted parameter study.

    Parameters
    ----------
    name : str
        Identifier (the script's file stem in ``studies/``).
    title, description : str
    space : Grid, RandomSamples, LatinHypercube or Cohort
    evaluate : callable
        ``evaluate(params) -> outcomes``: ``params`` maps parameter names to 1-D arrays (one
        batch of rows); returns a mapping of every declared outcome to an array of that length.
        Must be a module-level function (it is shipped to Dask workers).
    outcomes : mapping
        Outcome name → unit.
    batch_size : int
        Rows per batch (one checkpoint part each).
    seed : int
        Seed of the space's samples and of the models' random draws.
    quick : bool
        Built at the test-suite size.
    plots, references : sequences of Plot and Reference
    models : sequence of str
        Files below ``models/`` the study uses (hashed into the provenance).
    outcome_labels : mapping, optional
        Human labels of outcomes (and derived columns) for figure axes.
    tables : callable, optional
        ``tables(results) -> {name: DataFrame}``: summaries derived from the finished results
        (front membership, cohort percentiles, sensitivity indices); shown in the report and
        drawn by plots with ``table=name``. The stored results stay as evaluated.
    derived_units : mapping, optional
        Unit of every column the derived tables add.
    then : callable, optional
        ``then(results) -> Study``: a follow-up stage built from this stage's finished results
        (e.g. the cohort run of a design stage's Pareto front). It runs after this stage into
        ``<out>/<name>/<stage name>/`` with the same executor and is reported on the same page.
    """

    name: str
    title: str
    space: _Space
    evaluate: Callable[[dict], Mapping[str, np.ndarray]]
    outcomes: Mapping[str, str]
    description: str = ""
    batch_size: int = 32
    seed: int = 0
    quick: bool = False
    plots: tuple = ()
    references: tuple = ()
    models: tuple = ()
    outcome_labels: Mapping[str, str] = field(default_factory=dict)
    tables: Callable | None = None
    derived_units: Mapping[str, str] = field(default_factory=dict)
    then: Callable | None = None

    def __post_init__(self):
        if isinstance(self.batch_size, bool) or not isinstance(self.batch_size, int) or self.batch_size < 1:
            raise StudyError("batch size must be a positive integer", path="batch_size",
                             value=self.batch_size, allowed=">= 1")
        clash = set(self.outcomes) & {p.name for p in self.space.parameters}
        if clash:
            raise StudyError("outcome names clash with parameter names", path="outcomes",
                             value=sorted(clash), allowed="distinct names")
        known = set(self.outcomes) | {p.name for p in self.space.parameters}
        labels = {r.label for r in self.references}
        for i, p in enumerate(self.plots):
            if p.table is not None:
                if self.tables is None:
                    raise StudyError("plot draws from a derived table but the study derives none",
                                     path=f"plots[{i}].table", value=p.table, allowed="a study with tables=")
                continue  # derived columns exist only after the run; checked when drawn
            for col in (p.x, p.y, p.by, p.facet, *p.where):
                if col is not None and col not in known:
                    raise StudyError("plot refers to an unknown column", path=f"plots[{i}]", value=col,
                                     allowed=", ".join(sorted(known)))
            for r in p.references:
                if r not in labels:
                    raise StudyError("plot refers to an unknown reference", path=f"plots[{i}].references",
                                     value=r, allowed=", ".join(sorted(labels)))

    def units(self) -> dict[str, str]:
        """Unit of every column (parameters and outcomes)."""
        return {**self.space.units(), **dict(self.outcomes), **dict(self.derived_units)}

    def labels(self) -> dict[str, str]:
        out = self.space.labels()
        out.update({k: self.outcome_labels.get(k, k.replace("_", " "))
                    for k in (*self.outcomes, *self.derived_units)})
        return out

    def derived(self, results) -> dict:
        """The derived tables of a finished results table (empty without ``tables``)."""
        return dict(self.tables(results)) if self.tables is not None else {}

    def spec(self) -> dict:
        """Everything that decides the rows and their outcomes (for the resume fingerprint)."""
        return {"name": self.name, "space": self.space.spec(), "outcomes": dict(self.outcomes),
                "batch_size": self.batch_size, "seed": self.seed, "quick": self.quick}


@lru_cache(maxsize=8)
def _cohort(n: int, seed: int, population: str):
    from emsim.body.cohort import cohort

    return tuple(cohort(n, seed, population))


def cohort_patients(indices, seed: int, population: str = "adults_lbp") -> list:
    """The virtual patients at ``indices`` of ``cohort(…, seed, population)`` (patient ``i``
    depends only on ``(seed, i)``, so any batch of indices gives the same patients)."""
    idx = np.asarray(indices, dtype=int)
    # Rounded up to a power of two so successive batches reuse one cached draw.
    need = int(idx.max()) + 1
    pool = _cohort(min(1 << (need - 1).bit_length(), 1_000_000), int(seed), population)
    return [pool[i] for i in idx]


def pareto_mask(values, maximise) -> np.ndarray:
    """Rows of ``values`` (n × m) that no other row dominates.

    ``maximise`` holds one bool per column (True: larger is better). Rows with a NaN are never
    on the front.
    """
    v = np.asarray(values, dtype=float)
    sign = np.where(np.asarray(maximise, dtype=bool), -1.0, 1.0)
    cost = v * sign  # everything minimised
    ok = np.all(np.isfinite(cost), axis=1)
    mask = ok.copy()
    for i in np.flatnonzero(ok):
        others = cost[ok]
        dominated = np.any(np.all(others <= cost[i], axis=1) & np.any(others < cost[i], axis=1))
        mask[i] = not dominated
    return mask
