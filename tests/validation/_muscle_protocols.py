"""Protocol builders for the muscle literature-effect tests (pulse times in seconds)."""

from __future__ import annotations

import numpy as np

from emsim.physiology.muscle import simulate


def train(freq_hz: float, on_s: float, start: float = 0.0, doublet_s: float | None = None) -> np.ndarray:
    """One constant-frequency burst; with ``doublet_s`` an extra pulse that many s after the first."""
    p = start + np.arange(0.0, on_s - 1e-9, 1.0 / freq_hz)
    if doublet_s is not None:
        p = np.sort(np.append(p, start + doublet_s))
    return p


def repeated(freq_hz: float, on_s: float, period_s: float, n: int, start: float = 0.0) -> np.ndarray:
    one = train(freq_hz, on_s)
    return np.concatenate([start + k * period_s + one for k in range(n)])


def recruitment_for(muscle, freq_hz: float, on_s: float, fraction_of_max: float) -> float:
    """Recruited fraction whose rested first-burst peak is ``fraction_of_max`` of F_max.

    A rested pool's force is linear in the recruited fraction, so one full-pool run suffices.
    """
    full = simulate(train(freq_hz, on_s), muscle, fatigue=False, trace=False).peak_force_n[0, 0]
    r = fraction_of_max * muscle.max_force / full
    if not 0 < r <= 1:
        raise ValueError(f"{fraction_of_max:.0%} of F_max is out of reach at {freq_hz} Hz")
    return float(r)


def decline(result) -> float:
    """1 − last/first contraction peak (0 = no fatigue)."""
    return float(1.0 - result.fatigue_index[0])


def ramp(f_start_hz: float, f_end_hz: float, dur_s: float) -> np.ndarray:
    """Continuous stimulation whose rate changes linearly from ``f_start_hz`` to ``f_end_hz``."""
    times, t = [], 0.0
    while t < dur_s:
        times.append(t)
        t += 1.0 / (f_start_hz + (f_end_hz - f_start_hz) * t / dur_s)
    return np.array(times)


def sustained(result, dur_s: float) -> tuple[float, float]:
    """Endurance index and end force of one sustained contraction (trace needed).

    Endurance index: force-time integral over ``dur_s`` divided by the first-second peak times
    ``dur_s`` (Fuglevand & Keen 2003); end force: peak of the last second over the same peak.
    """
    f, t = result.force_n[0], result.t
    ref = f[t <= 1.0].max()
    inside = t <= dur_s
    return (float(np.trapezoid(f[inside], t[inside]) / (ref * dur_s)),
            float(f[(t > dur_s - 1.0) & inside].max() / ref))
