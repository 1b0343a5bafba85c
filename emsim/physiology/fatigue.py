r"""Per-unit fatigue and recovery of a stimulated muscle (emsim EMS pool fatigue model).

Why not Ding 2003 alone
-----------------------
Ding 2003 fatigue is driven only by the whole muscle's force and recovers with one 127 s time
constant. It cannot rank frequency against pulse width or duty cycle at matched force, and it
forgets a fatiguing session within minutes, whereas low-frequency fatigue lasts hours to days
(Edwards 1977; Rankin & Stokes 1992: 20 Hz force ~50 % at 1 h, ~75 % at 24 h, ~90 % at 48 h).
This model keeps Ding's three fatigue mechanisms and their published rates, and adds what the
NMES literature says they lack (``docs/literature/muscle_fatigue_effects.md``).

The model (a design, not a published model; every rate is data in ``models/muscles``)
--------------------------------------------------------------------------------------
Each cell ``c`` of the pool (unit class g × recruitment depth group d) carries six
Ding-mechanism deficits (and a high-frequency one, below): a fast and a slow part of each of
the Ding mechanisms — loss of force capacity (A), slowing of relaxation (τ1) and loss of Ca²⁺
sensitivity/release (Km; this is what makes fatigue "low-frequency": at high rates CN saturates
and a higher Km matters little)::

    A_c  = A_rest  · (1 − D_A,fast − D_A,slow)
    τ1_c = τ1_rest · (1 + D_τ,fast + D_τ,slow)
    Km_c = Km_rest · (1 + D_K,fast + D_K,slow)

    dD_j/dt = g_j · s_j · drive_c(t) − D_j / τ_j

with τ_fast the Ding recovery constant (127 s), τ_slow hours, ``s_j`` the share of mechanism j's
drive that goes to its slow part (``1 − s_j`` to the fast part) and ``g_j`` the Ding rate
converted to a relative deficit (``g_A = −α_A/A_rest``, ``g_τ = α_τ1/τ1_rest``,
``g_K = α_Km/Km_rest``, per newton of force). The drive of a cell is its units' own work::

    drive_c(t) = φ_g · [ Ω(t) · F_c(t)/w_c  +  κ · F_ref · Σ_pulses λ_{d,i} δ(t − t_i) ]
    Ω(t)       = 1 − γ + γ · F(t)/F_max

* ``F_c/w_c`` is the force the whole muscle would produce if all its units were in the state of
  cell c (newtons): with one class, full recruitment and κ = γ = 0 this is Ding 2003 exactly.
  Partially recruited muscle spreads nothing to unrecruited units: they stay fresh.
* ``φ_g`` is the class fatigability: the relative fatigue rate of the class's fibre type (S, FR,
  FF after Burke 1973; force-weighted mean 1; :mod:`emsim.physiology.pool`).
* ``κ`` is a per-pulse cost (excitation–contraction coupling and Ca²⁺ pumping scale with the
  number of action potentials, not with force): in seconds of reference force ``F_ref`` per
  pulse. It is what makes frequency fatigue units beyond the force it buys (Binder-Macleod 1995;
  Bickel 2012; Kesar 2006), and what makes doublets cost more than single pulses.
* ``Ω`` raises the drive with the muscle-level force (intramuscular pressure and occlusion, so
  metabolites accumulate): at the same frequency, 50 % MVC fatigues more than 20 % MVC
  (Binder-Macleod 1995) although the recruited units fire alike.

High-frequency fatigue
----------------------
A seventh deficit, on capacity, is paid only per pulse and only by pulses that follow the
previous one within ``hff_interval`` (25 ms, i.e. rates above 40 Hz), weighted
``max(0, 1 − Δt/hff_interval)`` (:func:`deficit_interval_thresholds`), and recovers with
``hff_recovery`` (about a minute)::

    D_H ← D_H + h · max(0, 1 − Δt/Δt_H) · λ_{d,i} · (1 − ΣD_A)     at each recruited pulse
    dD_H/dt = −D_H / τ_H

This is the fast, rate-dependent loss of force at high stimulation rates that recovers within
seconds to a minute once the rate falls (high-frequency fatigue, attributed to impaired
membrane excitation: Jones 1996, Acta Physiol Scand 156:265; Froyd 2013: evoked force recovers
significantly within 1–2 min; Bellemare & Garzaniti 1988, J Appl Physiol 64:1084: force and
M waves lost to propagation failure recover with a half time of about 1 min, which sets
``hff_recovery``). It is what makes a stepwise reduction of frequency during a
fatiguing protocol preserve force (Binder-Macleod & Guerin 1990: 60 → 30 pps gave 46 % more
average force in the last of 30 trains). The deficit's weight grows steeply with the rate, which
a cost linear in the pulse count cannot do without taking the fatigue-resistant units of Burke's
40 Hz test below their published band. Its cost is **not** scaled by the class fatigability:
the excitation failure comes from K⁺ accumulating in the t-tubules and interstitium of the
stimulated volume at a rate set by the firing rate, which every recruited fibre shares
(assumed); scaled by class, the slow class (about half the force) barely takes any and the
step-down effect stays at +10 %.

Known limit of the weight's shape: per second the cost is linear in the rate above
``1/hff_interval``, so 100 Hz pays 1.5 × what 80 Hz pays, where Russ et al. 2002 (J Appl Physiol
92:1978) found no difference in fatigue between 80 and 100 Hz trains at matched force; a
rate dependence saturating above ~80 Hz would need another interval-weight form in the kernel.

Recovery is linear, so a rest interval is one exponential per deficit, exact for any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsim.physiology.errors import ModelParameterError

__all__ = ["FatigueParameters", "FATIGUE_SPEC", "N_DEFICITS", "MECH_CAPACITY", "MECH_TAU1",
           "MECH_KM", "deficit_gains", "deficit_mechanisms", "deficit_time_constants",
           "deficit_interval_thresholds", "deficit_uses_fatigability"]

#: name → (unit in the data file, check, required)
FATIGUE_SPEC: dict[str, tuple[str, str, bool]] = {
    "recovery_fast": ("s", "positive", True),
    "recovery_slow": ("s", "positive", True),
    "slow_share_a": ("1", "nonnegative", True),
    "slow_share_tau1": ("1", "nonnegative", True),
    "slow_share_km": ("1", "nonnegative", True),
    "pulse_cost": ("s", "nonnegative", True),
    "occlusion_gain": ("1", "nonnegative", True),
    "drive_scale": ("1", "positive", True),
    "hff_pulse_cost": ("1", "nonnegative", False),
    "hff_interval": ("s", "positive", False),
    "hff_recovery": ("s", "positive", False),
}

#: Deficit order: A fast, A slow, τ1 fast, τ1 slow, Km fast, Km slow, A high-frequency. The
#: solver takes the number of deficits from the arrays below (:func:`deficit_gains`,
#: :func:`deficit_mechanisms`, :func:`deficit_time_constants`,
#: :func:`deficit_interval_thresholds`, :func:`deficit_uses_fatigability`): a deficit is added
#: by editing this module only.
N_DEFICITS = 7

#: Which Ding parameter a deficit acts on (:func:`deficit_mechanisms`): the deficits of one
#: mechanism add up, ``A = A_rest·(1 − ΣD)`` (force capacity), ``τ1 = τ1_rest·(1 + ΣD)``,
#: ``Km = Km_rest·(1 + ΣD)``.
MECH_CAPACITY, MECH_TAU1, MECH_KM = 0, 1, 2


@dataclass(frozen=True)
class FatigueParameters:
    """Rates of the pool fatigue model (see the module docstring).

    Parameters
    ----------
    recovery_fast : float
        Fast recovery time constant, s (Ding 2003: 127 s).
    recovery_slow : float
        Slow (low-frequency-fatigue) recovery time constant, s.
    slow_share_a, slow_share_tau1, slow_share_km : float
        Share (0–1) of each mechanism's drive that goes to its slow deficit.
    pulse_cost : float
        κ, cost of one recruited pulse in seconds of ``F_ref`` (reference 100 Hz force).
    occlusion_gain : float
        γ (0–1): how much the drive scales with the muscle-level relative force.
    drive_scale : float
        Multiplies every drive of the six Ding-mechanism deficits; calibrates the model to a
        muscle's measured fatigue rate.
    hff_pulse_cost : float
        h, capacity lost per recruited pulse at interval weight 1 (high-frequency fatigue; 0 = off).
    hff_interval : float
        Δt_H, s: pulses closer than this to the previous pulse pay the high-frequency cost,
        weighted ``1 − Δt/Δt_H``.
    hff_recovery : float
        τ_H, recovery time constant of high-frequency fatigue, s.
    """

    recovery_fast: float = 127.0
    recovery_slow: float = 86400.0
    slow_share_a: float = 0.0
    slow_share_tau1: float = 0.0
    slow_share_km: float = 0.0
    pulse_cost: float = 0.0
    occlusion_gain: float = 0.0
    drive_scale: float = 1.0
    hff_pulse_cost: float = 0.0
    hff_interval: float = 0.025
    hff_recovery: float = 86.6

    def __post_init__(self):
        for name in ("slow_share_a", "slow_share_tau1", "slow_share_km", "occlusion_gain"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ModelParameterError(f"fatigue parameter {name} out of range",
                                          path=f"fatigue.{name}", value=v, allowed="0 to 1")
        for name in ("recovery_fast", "recovery_slow", "drive_scale", "hff_interval",
                     "hff_recovery"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ModelParameterError(f"fatigue parameter {name} out of range",
                                          path=f"fatigue.{name}", value=v, allowed="> 0")
        if not (np.isfinite(self.pulse_cost) and self.pulse_cost >= 0):
            raise ModelParameterError("fatigue parameter pulse_cost out of range",
                                      path="fatigue.pulse_cost", value=self.pulse_cost,
                                      allowed="≥ 0 s")
        if not (np.isfinite(self.hff_pulse_cost) and 0 <= self.hff_pulse_cost <= 1):
            raise ModelParameterError("fatigue parameter hff_pulse_cost out of range",
                                      path="fatigue.hff_pulse_cost", value=self.hff_pulse_cost,
                                      allowed="0 to 1 (capacity per pulse)")

    @classmethod
    def ding2003(cls, tau_fat: float) -> "FatigueParameters":
        """Ding 2003 as a special case: one fast component, force drive only."""
        return cls(recovery_fast=tau_fat)


def deficit_gains(ding, fat: FatigueParameters, f_ref: float) -> tuple[np.ndarray, np.ndarray]:
    """Gains of each deficit on the force drive and per recruited pulse.

    Parameters
    ----------
    ding : DingParameters
        Its α values set the force gains.
    fat : FatigueParameters
    f_ref : float
        Reference force F_ref, N (the muscle's rested 100 Hz force): scales the pulse cost κ.

    Returns
    -------
    force_gain : numpy.ndarray, shape (N_DEFICITS,)
        ``g_j · share_j``: deficit added per newton·second of the cell's force drive
        (``φ_g · Ω · F_c/w_c``).
    pulse_gain : numpy.ndarray, shape (N_DEFICITS,)
        Deficit added per recruited pulse, times ``φ_g`` (where
        :func:`deficit_uses_fatigability`) × the cell's firing fraction × its remaining capacity
        × the pulse's interval weight (:func:`deficit_interval_thresholds`): for the Ding
        mechanisms ``force_gain · κ · F_ref`` (the cost of a pulse is κ seconds of reference
        force), for high-frequency fatigue ``h`` (no force drive).
    """
    g_a = -ding.alpha_a / ding.a_rest
    g_t = ding.alpha_tau1 / ding.tau1_rest
    g_k = ding.alpha_km / ding.km_rest
    s = (fat.slow_share_a, fat.slow_share_tau1, fat.slow_share_km)
    out = []
    for g, share in zip((g_a, g_t, g_k), s):
        out += [g * (1 - share), g * share]
    force_gain = fat.drive_scale * np.array(out)
    pulse_gain = force_gain * (fat.pulse_cost * f_ref)
    return np.append(force_gain, 0.0), np.append(pulse_gain, fat.hff_pulse_cost)


def deficit_mechanisms(fat: FatigueParameters) -> np.ndarray:
    """Parameter each deficit acts on (``MECH_CAPACITY``, ``MECH_TAU1``, ``MECH_KM``), int64."""
    return np.array([MECH_CAPACITY, MECH_CAPACITY, MECH_TAU1, MECH_TAU1, MECH_KM, MECH_KM,
                     MECH_CAPACITY], dtype=np.int64)


def deficit_time_constants(fat: FatigueParameters) -> np.ndarray:
    """Recovery time constant per deficit, s."""
    return np.array([fat.recovery_fast, fat.recovery_slow] * 3 + [fat.hff_recovery])


def deficit_interval_thresholds(fat: FatigueParameters) -> np.ndarray:
    """Interval threshold τ_j per deficit, s (0: off).

    With τ_j > 0 each recruited pulse's cost to deficit j is weighted by
    ``w = max(0, 1 − Δt/τ_j)``, Δt the interval since the previous pulse of the same row (the
    first pulse of a row has no previous one: Δt = ∞, w = 0): only pulses closer together than
    τ_j cost, the closer the more (a high-frequency cost). With τ_j = 0 the weight is 1.
    """
    return np.array([0.0] * 6 + [fat.hff_interval])


def deficit_uses_fatigability(fat: FatigueParameters) -> np.ndarray:
    """Per deficit, whether its per-pulse cost is scaled by the unit class's fatigability φ_g
    (bool; the force drive always is)."""
    return np.array([True] * 6 + [False], dtype=np.bool_)
