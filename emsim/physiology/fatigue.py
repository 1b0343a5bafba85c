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
Ding-mechanism deficits (and a high-frequency one and a catch-like gain, below): a fast and a
slow part of each of the Ding mechanisms — loss of force capacity (A), slowing of relaxation
(τ1) and loss of Ca²⁺ sensitivity/release (Km; this is what makes fatigue "low-frequency": at high rates CN saturates
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
previous one within ``hff_interval`` (25 ms, i.e. rates above 40 Hz), weighted by w_H, rising
from 0 at 40 Hz to 1 at 80 Hz (:func:`deficit_interval_thresholds`; above 80 Hz the rate cap
below), and recovers with
``hff_recovery`` (about a minute)::

    D_H ← D_H + h · w_H(Δt) · λ_{d,i} · (1 − ΣD_A)     at each recruited pulse
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

Rate cap of the per-pulse costs
-------------------------------
Above the rate ``1/pulse_rate_cap`` (80 Hz) extra pulses add no cost per unit time: a pulse
closer than Δt_R to the previous one costs Δt/Δt_R of a pulse (the Ding-mechanism pulse cost κ
and high-frequency fatigue; :func:`deficit_rate_cap_intervals`). The high-frequency weight is
then ``clip((Δt_H − Δt)/(Δt_H − Δt_R), 0, 1)`` (from 0 at 40 Hz to 1 at 80 Hz) times
``min(1, Δt/Δt_R)``. Russ et al. 2002 (J Appl Physiol 92:1978): 80 and 100 Hz trains at equal
initial force gave similar fatigue despite 23.5 % more pulses, and equal ATP turnover (³¹P-NMR);
the 80 Hz onset is assumed (the cost still grows from 20 to 60 Hz: Binder-Macleod 1995,
Bickel 2012).

Catch-like gain
---------------
An eighth state is not fatigue but a potentiation of calcium sensitivity (mechanism
``MECH_GAIN``, ``Km = Km_rest·(1 + ΣD_Km)/(1 + G)``): a pulse closer than ``catch_interval``
(10 ms) to the previous one, with that interval at most half its neighbour (the next interval of
the train, or the previous one for a train's last pulse), moves G a fraction ``min(1, u·w·λ)``
of the way to ``catch_saturation`` S, ``w = 1 − Δt/catch_interval``, and G decays with
``catch_decay`` (1 s) in between::

    G ← G + min(1, u·w·λ_{d,i})·(S − G)     at each recruited pulse that stands out;
    dG/dt = −G/τ_C

so 0 ≤ G ≤ S for any pulse pattern (doublet-pattern programs stay bounded). Its increment is not
scaled by capacity or class fatigability, and it runs also with ``fatigue=False``. This is the
catch-like property: one interval much shorter than the others causes a marked, long-lasting
enhancement of tension (Burke, Rudomin & Zajac 1970, Science 168:122), attributed to enhanced
stiffness, which transmits internally generated force better, and to more Ca²⁺ release
(Parmiggiani & Stein 1981, J Gen Physiol 78:295; Binder-Macleod & Lee 1996, J Appl Physiol
80:2051). The Ding core has only the brief part (the R_i term, gone within τc = 20 ms).
Acting on Km, the gain adds force where CN is not saturated and none above the fused tetanus
(F → A·(τ1 + τ2) as CN ≫ Km): catch-like trains beat constant trains at low rates
(Binder-Macleod et al. 1998, J Neurophysiol 79:1858), a 20 Hz doublet train stays within 1 % of
the constant 100 Hz peak, and constant trains never set it at any rate (the standing-out rule;
its factor ½ is assumed, ``_muscle_solver.CATCH_CONTRAST``). A former form that multiplied A and
was set by every interval below 10 ms gave constant 110–200 Hz trains ×1.5 force and 20 Hz
doublets 192 N against 142 N at a constant 80 Hz (session 6 review). ``catch_gain`` u = 1.4 is
fitted to Bickel et al. 2004 (initial 5 ms doublet: +18 % torque–time integral in fatigued
quadriceps; model +18.2 %, rested +10.3 %) with S = 2 (Km down to a third at most; S = 0.5 could
give at most +2.9 %); S, 10 ms, ½ and 1 s are assumed. Known limit: the gain is the same in every
fibre type, whereas Burke found the catch property in slow units and Bickel's fast SCI muscle
gained only 6 %.

Economy of sustained (fused) activation
---------------------------------------
The Ding-mechanism drives (the force drive and the per-pulse cost) of every deficit except the
slow Km one (low-frequency fatigue, :func:`deficit_uses_economy`) are multiplied by a factor
R ∈ [R_f, 1] that depends on the pulse timing and on how much of the muscle each pulse
activates. Each pulse interval Δt has a fusion weight
``w = a·clip((Δt_U − Δt)/(Δt_U − Δt_F), 0, 1)`` (1 at intervals up to
``economy_fused_interval`` Δt_F = 50 ms, 0 from ``economy_unfused_interval`` Δt_U = 150 ms on,
so twitch trains below ~7 Hz and rests have w = 0; a ∈ [0, 1] the activation of the pulse that
starts the interval, its recruitment relative to the row's largest times the amplitude factor
λ, so pulses that recruit nothing count as rest); over the interval R relaxes to R_f with
``economy_onset`` τ_d in proportion to w and back to 1 with ``economy_recovery`` τ_r in
proportion to 1 − w::

    dR/dt = −w·(R − R_f)/τ_d + (1 − w)·(1 − R)/τ_r        (exact over each interval)
    R_1 = 1;  pulse i's cost and the force drive up to the next pulse are weighted by R_i

(:func:`economy_factors`). A contraction held for seconds at a fused rate costs R_f (0.1) of
what its first second costs, while short trains with rests of a second or so, and unfused
twitch trains, pay the full drive. Why: fatigue under stimulation tracks the cost of
*attaining* force more than of maintaining it. Continuous stimulation of the quadriceps kept its
force while intermittent stimulation at the same initial force lost half of it, with a higher
ATP cost per unit work that rose with time during intermittent and fell with time during
continuous stimulation (Chasiotis, Bergström & Hultman 1987, J Appl Physiol 63:167, occluded,
20 Hz); shorter contractions of the same total duration fatigued faster (Bergström & Hultman
1988, J Appl Physiol 65:1500); fatigue followed initial peak force, not the force–time
integral (Russ, Vandenborne & Binder-Macleod 2002, J Appl Physiol 93:469); supramaximal 30 Hz
nerve stimulation for 60 s kept an endurance index of 0.90 (Fuglevand & Keen 2003, J Physiol
549:865). The weights' shape (an exponential approach, an onset of ~2 s, a floor, the fusion
interval band) is a design choice, fitted, not measured. It is off (R ≡ 1) with
``economy_floor`` = 1, the default, and in Ding 2003.

Recovery is linear, so a rest interval is one exponential per deficit, exact for any length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsim.physiology._jit import jit
from emsim.physiology.errors import ModelParameterError

__all__ = ["FatigueParameters", "FATIGUE_SPEC", "N_DEFICITS", "MECH_CAPACITY", "MECH_TAU1",
           "MECH_KM", "MECH_GAIN", "deficit_gains", "deficit_mechanisms", "deficit_time_constants",
           "deficit_interval_thresholds", "deficit_rate_cap_intervals",
           "deficit_uses_fatigability", "deficit_saturation_levels", "deficit_uses_economy",
           "economy_factors"]

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
    "pulse_rate_cap": ("s", "nonnegative", False),
    "catch_gain": ("1", "nonnegative", False),
    "catch_saturation": ("1", "positive", False),
    "catch_interval": ("s", "positive", False),
    "catch_decay": ("s", "positive", False),
    "economy_floor": ("1", "positive", False),
    "economy_onset": ("s", "positive", False),
    "economy_recovery": ("s", "positive", False),
    "economy_fused_interval": ("s", "positive", False),
    "economy_unfused_interval": ("s", "positive", False),
}

#: Deficit order: A fast, A slow, τ1 fast, τ1 slow, Km fast, Km slow, A high-frequency,
#: catch-like gain on Km (a potentiation, mechanism ``MECH_GAIN``). The solver takes the number
#: of deficits from the arrays below (:func:`deficit_gains`, :func:`deficit_mechanisms`,
#: :func:`deficit_time_constants`, :func:`deficit_interval_thresholds`,
#: :func:`deficit_rate_cap_intervals`, :func:`deficit_uses_fatigability`,
#: :func:`deficit_saturation_levels`): a deficit is added by editing this module only.
N_DEFICITS = 8

#: Which Ding parameter a deficit acts on (:func:`deficit_mechanisms`): the deficits of one
#: mechanism add up, ``A = A_rest·(1 − ΣD_cap)·(1 + ΣD_gain)`` (force capacity and the
#: catch-like gain, which is not itself scaled by capacity), ``τ1 = τ1_rest·(1 + ΣD)``,
#: ``Km = Km_rest·(1 + ΣD)``.
MECH_CAPACITY, MECH_TAU1, MECH_KM, MECH_GAIN = 0, 1, 2, 3


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
    pulse_rate_cap : float
        Δt_R, s (0 ≤ Δt_R < Δt_H; 0 = off): above the rate 1/Δt_R extra pulses add no
        per-pulse cost per unit time — a pulse closer than Δt_R to the previous one costs
        ``Δt/Δt_R`` of a pulse (:func:`deficit_rate_cap_intervals`; Russ et al. 2002: 80 and
        100 Hz trains at matched force gave the same fatigue and ATP turnover). Applies to the
        Ding-mechanism pulse cost and to high-frequency fatigue, not to the catch-like gain.
    catch_gain : float
        u, rate of the catch-like gain per recruited pulse at interval weight 1 (0 = off): each
        pulse moves the gain a fraction ``min(1, u·w·λ)`` of the way to ``catch_saturation``.
    catch_saturation : float
        S, most the catch-like gain can raise calcium sensitivity
        (Km ≥ Km_rest·(1 + ΣD_Km)/(1 + S)).
    catch_interval : float
        Δt_C, s: pulses closer than this to the previous pulse set the catch-like gain,
        weighted ``1 − Δt/Δt_C``, where the interval is at most half its neighbour
        (:func:`emsim.physiology._muscle_solver.pulse_weights`).
    catch_decay : float
        τ_C, decay time constant of the catch-like gain, s.
    economy_floor : float
        R_f (0 < R_f ≤ 1; 1 = off): the factor on the Ding-mechanism drives that a contraction
        held at a fused rate approaches (:func:`economy_factors`).
    economy_onset : float
        τ_d, s: how fast the factor falls to R_f during fused stimulation.
    economy_recovery : float
        τ_r, s: how fast it returns to 1 during rests and unfused (twitch) stimulation.
    economy_fused_interval, economy_unfused_interval : float
        Δt_F < Δt_U, s: pulse intervals up to Δt_F count as fused (weight 1), from Δt_U on as
        unfused (weight 0), linear in between.
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
    pulse_rate_cap: float = 0.0
    catch_gain: float = 0.0
    catch_saturation: float = 0.5
    catch_interval: float = 0.010
    catch_decay: float = 1.0
    economy_floor: float = 1.0
    economy_onset: float = 2.0
    economy_recovery: float = 0.5
    economy_fused_interval: float = 0.05
    economy_unfused_interval: float = 0.15

    def __post_init__(self):
        for name in ("slow_share_a", "slow_share_tau1", "slow_share_km", "occlusion_gain"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ModelParameterError(f"fatigue parameter {name} out of range",
                                          path=f"fatigue.{name}", value=v, allowed="0 to 1")
        for name in ("recovery_fast", "recovery_slow", "drive_scale", "hff_interval",
                     "hff_recovery", "catch_saturation", "catch_interval", "catch_decay"):
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
        if not (np.isfinite(self.pulse_rate_cap) and 0 <= self.pulse_rate_cap < self.hff_interval):
            raise ModelParameterError("fatigue parameter pulse_rate_cap out of range",
                                      path="fatigue.pulse_rate_cap", value=self.pulse_rate_cap,
                                      allowed=f"0 ≤ value < hff_interval ({self.hff_interval} s)")
        if not (np.isfinite(self.economy_floor) and 0 < self.economy_floor <= 1):
            raise ModelParameterError("fatigue parameter economy_floor out of range",
                                      path="fatigue.economy_floor", value=self.economy_floor,
                                      allowed="0 < value ≤ 1 (1: off)")
        for name in ("economy_onset", "economy_recovery", "economy_fused_interval"):
            v = getattr(self, name)
            if not (np.isfinite(v) and v > 0):
                raise ModelParameterError(f"fatigue parameter {name} out of range",
                                          path=f"fatigue.{name}", value=v, allowed="> 0 s")
        if not (np.isfinite(self.economy_unfused_interval)
                and self.economy_unfused_interval > self.economy_fused_interval):
            raise ModelParameterError("fatigue parameter economy_unfused_interval out of range",
                                      path="fatigue.economy_unfused_interval",
                                      value=self.economy_unfused_interval,
                                      allowed=f"> economy_fused_interval "
                                              f"({self.economy_fused_interval} s)")
        if not (np.isfinite(self.catch_gain) and self.catch_gain >= 0):
            raise ModelParameterError("fatigue parameter catch_gain out of range",
                                      path="fatigue.catch_gain", value=self.catch_gain,
                                      allowed="≥ 0")

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
    return (np.append(force_gain, [0.0, 0.0]),
            np.append(pulse_gain, [fat.hff_pulse_cost, fat.catch_gain]))


def deficit_mechanisms(fat: FatigueParameters) -> np.ndarray:
    """Parameter each deficit acts on (``MECH_CAPACITY``, ``MECH_TAU1``, ``MECH_KM``,
    ``MECH_GAIN``), int64."""
    return np.array([MECH_CAPACITY, MECH_CAPACITY, MECH_TAU1, MECH_TAU1, MECH_KM, MECH_KM,
                     MECH_CAPACITY, MECH_GAIN], dtype=np.int64)


def deficit_time_constants(fat: FatigueParameters) -> np.ndarray:
    """Recovery (decay) time constant per deficit, s."""
    return np.array([fat.recovery_fast, fat.recovery_slow] * 3
                    + [fat.hff_recovery, fat.catch_decay])


def deficit_interval_thresholds(fat: FatigueParameters) -> np.ndarray:
    """Interval threshold τ_j per deficit, s (0: off).

    With τ_j > 0 each recruited pulse's cost to deficit j is weighted by
    ``w = max(0, 1 − Δt/τ_j)``, Δt the interval since the previous pulse of the same row (the
    first pulse of a row has no previous one: Δt = ∞, w = 0): only pulses closer together than
    τ_j cost, the closer the more (a high-frequency cost). With τ_j = 0 the weight is 1.
    """
    return np.array([0.0] * 6 + [fat.hff_interval, fat.catch_interval])


def deficit_rate_cap_intervals(fat: FatigueParameters) -> np.ndarray:
    """Interval τ_R,j below which a pulse's cost is cut to ``Δt/τ_R,j`` of a pulse, per
    deficit, s (0: off).

    The cost per unit time of pulses closer than τ_R,j is that of the rate 1/τ_R,j: extra
    pulses above it cost nothing more (Russ et al. 2002). With an interval threshold τ_j the
    weight rises linearly from 0 at Δt = τ_j to 1 at Δt = τ_R,j,
    ``clip((τ_j − Δt)/(τ_j − τ_R,j), 0, 1)``, and falls as Δt/τ_R,j below
    (:func:`emsim.physiology._muscle_solver.pulse_weights`). Not for the catch-like gain (a
    doublet is what sets it).
    """
    return np.array([fat.pulse_rate_cap] * 7 + [0.0])


def deficit_uses_fatigability(fat: FatigueParameters) -> np.ndarray:
    """Per deficit, whether its per-pulse cost is scaled by the unit class's fatigability φ_g
    (bool; the force drive always is)."""
    return np.array([True] * 6 + [False, False], dtype=np.bool_)


def deficit_saturation_levels(fat: FatigueParameters) -> np.ndarray:
    """Saturation level S_j per deficit (0: none, the deficit's per-pulse increment is linear).

    With S_j > 0 each recruited pulse moves the deficit a fraction
    ``k = min(1, pulse_gain_j · w · λ)`` of the way to S_j, ``X ← X + k·(S_j − X)``, so
    0 ≤ X ≤ S_j for any pulse pattern (the catch-like gain: at most ``catch_saturation``).
    """
    return np.array([0.0] * 7 + [fat.catch_saturation])


def deficit_uses_economy(fat: FatigueParameters) -> np.ndarray:
    """Per deficit, whether its drives (force and per pulse) are weighted by the economy factor
    of :func:`economy_factors` (bool): the fast and slow capacity and relaxation deficits and
    the fast Km deficit. Not the slow Km deficit (low-frequency fatigue, which follows the time
    spent activated: Rankin & Stokes 1992 found it after ten 10 s contractions), nor
    high-frequency fatigue (an excitation failure set by the rate) nor the catch-like gain."""
    return np.array([True] * 5 + [False, False, False], dtype=np.bool_)


@jit(error_model="numpy", nogil=True)
def _economy_recursion(pulses, activation, floor, onset, recovery, fused, unfused, out):
    r = 1.0
    for i in range(pulses.size):
        if i == 0:
            r = 1.0
        else:
            dt = pulses[i] - pulses[i - 1]
            w = (unfused - dt) / (unfused - fused)
            w = 0.0 if w < 0.0 else (1.0 if w > 1.0 else w)
            # an interval is held only as far as the pulse that starts it activates the muscle
            a = activation[i - 1]
            w *= 0.0 if a < 0.0 else (1.0 if a > 1.0 else a)
            k = w / onset + (1.0 - w) / recovery
            r_inf = (w * floor / onset + (1.0 - w) / recovery) / k
            r = r_inf + (r - r_inf) * np.exp(-k * dt)
        out[i] = r


def economy_factors(pulses: np.ndarray, fat: FatigueParameters,
                    activation: np.ndarray | None = None) -> np.ndarray | None:
    """Economy factor R_i of each pulse of one timing (see the module docstring), or None when
    the economy is off (``economy_floor`` = 1).

    Parameters
    ----------
    pulses : numpy.ndarray, shape (P,)
        Sorted pulse times, s.
    fat : FatigueParameters
    activation : numpy.ndarray, shape (P,), optional
        How much of the muscle each pulse activates, 0–1 (clipped): the solver passes the
        pulse's recruitment relative to the row's largest, times the amplitude factor λ
        (:func:`emsim.physiology.muscle.simulate`). None: 1 at every pulse.

    Returns
    -------
    numpy.ndarray, shape (P,), or None
        R_1 = 1; R_i = R_∞ + (R_{i−1} − R_∞)·e^{−k·Δt_i} with the interval's fusion weight
        w = a_{i−1}·clip((Δt_U − Δt_i)/(Δt_U − Δt_F), 0, 1) (a_{i−1} the activation of the
        pulse that starts the interval, so a pulse that recruits nothing leaves its interval a
        rest: a ramp's sub-threshold start or a lead-in at recruitment 0 earns no economy),
        k = w/τ_d + (1 − w)/τ_r and R_∞ = (w·R_f/τ_d + (1 − w)/τ_r)/k: the exact solution of
        dR/dt = −w·(R − R_f)/τ_d + (1 − w)·(1 − R)/τ_r over the interval. Pulse i's per-pulse
        cost and the force drive until pulse i+1 (for a contraction's last pulse, until the next
        contraction) are multiplied by R_i in the deficits of :func:`deficit_uses_economy`.
    """
    if fat.economy_floor >= 1.0:
        return None
    pulses = np.ascontiguousarray(pulses, dtype=np.float64)
    act = (np.ones(pulses.size) if activation is None
           else np.ascontiguousarray(np.broadcast_to(activation, pulses.shape), dtype=np.float64))
    out = np.empty(pulses.size)
    _economy_recursion(pulses, act, float(fat.economy_floor),
                       float(fat.economy_onset), float(fat.economy_recovery),
                       float(fat.economy_fused_interval), float(fat.economy_unfused_interval), out)
    return out
