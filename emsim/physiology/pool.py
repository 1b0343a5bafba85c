r"""The motor-unit pool of a stimulated muscle and its reduction to unit classes.

Why a pool
----------
Electrical stimulation recruits motor units non-selectively, in a spatially fixed and
temporally synchronous way: the units under the electrodes fire at every pulse, the others
rest (Bickel, Gregory & Dean 2011, Eur J Appl Physiol 111:2399; Gregory & Bickel 2005, Phys Ther
85:358). Fatigue therefore concentrates in the recruited subset, and which units a program
recruits (fatigable or resistant, already tired or fresh) changes what the next contraction can
do. The Ding force core treats the muscle as one unit; the pool splits it.

The units
---------
``n_units`` units follow Fuglevand, Winter & Patla 1993 (J Neurophysiol 70:2470), as
implemented by Potvin & Fuglevand 2017 (PLoS Comput Biol 13:e1005581)::

    P_i = exp(i · ln(RP) / n)                  peak twitch force, RP-fold range (RP = 100)
    T_i = T_L · (1 / P_i)^(1/c),  c = ln(RP) / ln(RT)     contraction time, RT-fold range (RT = 3)

Big units are fast, small units slow; fatigability follows the unit's fibre type (below).
Under electrical stimulation the recruitment order is set by position, not size (Marion 2013
background; Clamann 1993, Phys Ther 73:830), so a recruited fraction ``r`` of the pool holds, in
expectation, the fraction ``r`` of every class's force. That is what the muscle model uses.

Fatigability by fibre type
--------------------------
Burke et al. 1973 (J Physiol 234:723) and Garnett et al. 1979 (J Physiol 287:33, human medial
gastrocnemius) found three unit types, not a continuum of fatigability: S and FR units keep
their force in the 2-min, 40 Hz unit fatigue test (fatigue index FI > 0.75, S about 1), FF
units lose most of it (FI < 0.25). Potvin & Fuglevand's continuous 180-fold spread (PLoS
Comput Biol 2017, 13:e1005581), averaged over a class, makes the slow class as fatigable as a
third of the fast ones. So each unit takes the relative fatigue rate of its type
(``fatigability_s``, ``fatigability_fr``, ``fatigability_ff``): the slowest units up to the
type I fibre-area fraction are S, the rest of the force is split equally into FR and then FF
(the largest units; the equal split is assumed, as for the classes). The rates are normalised to
a force-weighted mean of 1, so the whole-muscle fatigue calibration (``fatigue.drive_scale``)
keeps its meaning. A file without the three rates
falls back to the continuous spread ``φ_i = exp(i · ln(RF) / n)`` with ``fatigability_range``.

Reduction to classes
--------------------
Units are grouped into ``n_classes`` classes by contraction time: the slowest units up to the
muscle's type I fibre-area fraction form class ``S``; the rest is split into equal-force classes
(``FR``, ``FF`` for three classes). Each class keeps the force share, the force-weighted mean
contraction time and fatigability of its units, both normalised to the pool's force-weighted mean,
so that a pool of one class is exactly the Ding core. The class time factor scales the Ding
force time constants τ1 and τ2 (and divides A, which keeps each class's fused force): slow
classes fuse at lower rates, as Fuglevand's rate–force gain does for slow units. With the
defaults, the rested, fully recruited pool stays within ~2 % of the Ding core's force
(``tests/validation/test_muscle_pool.py``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsim.physiology.errors import ModelParameterError

__all__ = ["PoolParameters", "UnitClass", "MotorUnitPool", "build_pool"]

#: name → (unit in the data file, check, required)
POOL_SPEC: dict[str, tuple[str, str, bool]] = {
    "n_units": ("1", "positive", True),
    "twitch_force_range": ("1", "positive", True),
    "contraction_time_range": ("1", "positive", True),
    "longest_contraction_time": ("s", "positive", True),
    "fatigability_range": ("1", "positive", False),
    "fatigability_s": ("1", "positive", False),
    "fatigability_fr": ("1", "positive", False),
    "fatigability_ff": ("1", "positive", False),
    "type1_area_fraction": ("1", "nonnegative", True),
    "n_classes": ("1", "positive", True),
}


@dataclass(frozen=True)
class PoolParameters:
    """Parameters of the motor-unit pool (see the module docstring for the equations).

    Parameters
    ----------
    n_units : int
        Number of motor units (Fuglevand 1993: 120).
    twitch_force_range : float
        Ratio of the largest to the smallest twitch force, RP (Fuglevand 1993: 100).
    contraction_time_range : float
        Ratio of the longest to the shortest contraction time, RT (Fuglevand 1993: 3).
    longest_contraction_time : float
        T_L, contraction time of the smallest unit, s (Fuglevand 1993: 0.090).
    fatigability_range : float
        Ratio of the most to the least fatigable unit's fatigue rate (Potvin 2017: 180); used
        only without the fibre-type rates.
    fatigability_s, fatigability_fr, fatigability_ff : float or None
        Relative fatigue rate of S, FR and FF units (any scale: normalised to a force-weighted
        mean of 1). All three or none.
    type1_area_fraction : float
        Fraction of the muscle's cross-section that is type I fibre (0–1); sets class S.
    n_classes : int
        Number of classes the units are reduced to (1 reproduces the Ding core exactly).
    """

    n_units: int = 120
    twitch_force_range: float = 100.0
    contraction_time_range: float = 3.0
    longest_contraction_time: float = 0.090
    fatigability_range: float = 180.0
    type1_area_fraction: float = 0.5
    n_classes: int = 3
    fatigability_s: float | None = None
    fatigability_fr: float | None = None
    fatigability_ff: float | None = None

    def __post_init__(self):
        checks = [
            ("n_units", self.n_units >= 1 and float(self.n_units).is_integer(), "an integer ≥ 1"),
            ("twitch_force_range", self.twitch_force_range >= 1, "≥ 1"),
            ("contraction_time_range", self.contraction_time_range >= 1, "≥ 1"),
            ("longest_contraction_time", self.longest_contraction_time > 0, "> 0 s"),
            ("fatigability_range", self.fatigability_range >= 1, "≥ 1"),
            ("type1_area_fraction", 0 <= self.type1_area_fraction < 1, "0 ≤ value < 1"),
            ("n_classes", 1 <= self.n_classes <= 12 and float(self.n_classes).is_integer(),
             "an integer from 1 to 12"),
        ]
        for name, ok, allowed in checks:
            if not ok:
                raise ModelParameterError(f"pool parameter {name} out of range", path=f"pool.{name}",
                                          value=getattr(self, name), allowed=allowed)
        by_type = [self.fatigability_s, self.fatigability_fr, self.fatigability_ff]
        if any(v is not None for v in by_type):
            for name, v in zip(("fatigability_s", "fatigability_fr", "fatigability_ff"), by_type):
                if v is None or not (np.isfinite(v) and v > 0):
                    raise ModelParameterError(
                        "fibre-type fatigabilities need all three of S, FR and FF, each > 0",
                        path=f"pool.{name}", value=v, allowed="> 0 (all three or none)")
        if self.n_classes > self.n_units:
            raise ModelParameterError("more classes than motor units", path="pool.n_classes",
                                      value=self.n_classes, allowed=f"≤ n_units ({self.n_units})")


@dataclass(frozen=True)
class UnitClass:
    """One class of motor units after reduction.

    Attributes
    ----------
    name : str
        ``S``, ``FR``, ``FF`` for three classes; ``all`` for one; ``C1``… otherwise.
    force_share : float
        Fraction of the pool's tetanic force (classes sum to 1).
    n_units : int
        Units in the class.
    time_factor : float
        Force-weighted mean contraction time relative to the pool's (scales τ1 and τ2).
    fatigability : float
        Force-weighted mean fatigability relative to the pool's (multiplies the fatigue drive).
    contraction_time : float
        Force-weighted mean twitch contraction time of the class's units, s.
    """

    name: str
    force_share: float
    n_units: int
    time_factor: float
    fatigability: float
    contraction_time: float


@dataclass(frozen=True)
class MotorUnitPool:
    """The units (arrays, rank order) and their classes.

    Attributes
    ----------
    twitch_force : numpy.ndarray
        Relative peak twitch force per unit (sums to 1).
    contraction_time : numpy.ndarray
        Contraction time per unit, s.
    fatigability : numpy.ndarray
        Relative fatigability per unit (force-weighted mean 1).
    unit_class : numpy.ndarray
        Class index of each unit.
    classes : tuple of UnitClass
    """

    twitch_force: np.ndarray
    contraction_time: np.ndarray
    fatigability: np.ndarray
    unit_class: np.ndarray
    classes: tuple[UnitClass, ...]

    @property
    def force_share(self) -> np.ndarray:
        return np.array([c.force_share for c in self.classes])

    @property
    def time_factor(self) -> np.ndarray:
        return np.array([c.time_factor for c in self.classes])

    @property
    def class_fatigability(self) -> np.ndarray:
        return np.array([c.fatigability for c in self.classes])


def _class_names(n: int) -> list[str]:
    if n == 1:
        return ["all"]
    if n == 2:
        return ["S", "F"]
    if n == 3:
        return ["S", "FR", "FF"]
    return [f"C{k + 1}" for k in range(n)]


def build_pool(params: PoolParameters) -> MotorUnitPool:
    """Generate the units and reduce them to classes (deterministic: no random draws)."""
    n = int(params.n_units)
    i = np.arange(1, n + 1)
    size = np.exp(i * np.log(params.twitch_force_range) / n)
    if params.contraction_time_range > 1 and params.twitch_force_range > 1:
        c = np.log(params.twitch_force_range) / np.log(params.contraction_time_range)
        ct = params.longest_contraction_time * (1.0 / size) ** (1.0 / c)
    else:
        ct = np.full(n, params.longest_contraction_time)
    force = size / size.sum()
    cum = np.cumsum(force)  # units in rank order: slow and small first
    # A unit belongs to the first class (or type) whose cumulative-force edge its midpoint has
    # not passed.
    mid = cum - 0.5 * force
    if params.fatigability_s is not None:
        s_share = params.type1_area_fraction
        fibre_type = np.searchsorted([s_share, s_share + 0.5 * (1 - s_share)], mid, side="right")
        fat = np.array([params.fatigability_s, params.fatigability_fr,
                        params.fatigability_ff])[fibre_type]
    else:
        fat = np.exp(i * np.log(params.fatigability_range) / n)
    fat = fat / np.sum(force * fat)

    k = int(params.n_classes)
    if k == 1:
        edges = np.array([1.0])
    else:
        s_share = params.type1_area_fraction
        edges = np.concatenate([[s_share], s_share + (1 - s_share) * np.arange(1, k) / (k - 1)])
    unit_class = np.minimum(np.searchsorted(edges, mid, side="right"), k - 1)
    mean_ct = np.sum(force * ct)
    classes = []
    for j, name in enumerate(_class_names(k)):
        sel = unit_class == j
        if not sel.any():
            raise ModelParameterError(
                "a motor-unit class is empty; use fewer classes or more units",
                path="pool.n_classes", value=k, allowed=f"at most the number of distinct groups")
        w = force[sel].sum()
        ct_j = np.sum(force[sel] * ct[sel]) / w
        classes.append(UnitClass(name=name, force_share=float(w), n_units=int(sel.sum()),
                                 time_factor=float(ct_j / mean_ct),
                                 fatigability=float(np.sum(force[sel] * fat[sel]) / w),
                                 contraction_time=float(ct_j)))
    return MotorUnitPool(twitch_force=force, contraction_time=ct, fatigability=fat,
                         unit_class=unit_class, classes=tuple(classes))
