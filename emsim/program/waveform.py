"""Pulse-shape arithmetic shared by the compiler, the safety validator and the physiology.

All quantities are per unit of the primary-phase amplitude and in SI seconds, so that a
caller multiplies by the amplitude in amperes: ``charge [C] = amplitude [A] * value [s]``.
"""

from __future__ import annotations

import math

from emsim.program.model import AsymmetricBiphasic, KhzBurst, Monophasic, SymmetricBiphasic

__all__ = ["segments", "duration_s", "max_phase_charge_s", "net_charge_s", "square_integral_s",
           "primary_width_s"]

US = 1e-6


def segments(w) -> tuple[tuple[float, float], ...]:
    """The pulse as (duration [s], level relative to the primary amplitude) segments.

    kHz bursts are described per carrier half-cycle with the half-cycle's mean level; use the
    dedicated functions below for their exact charge and r.m.s. values.
    """
    if isinstance(w, SymmetricBiphasic):
        pw = w.pulse_width_us * US
        return ((pw, 1.0), (w.interphase_gap_us * US, 0.0), (pw, -1.0))
    if isinstance(w, AsymmetricBiphasic):
        pw = w.pulse_width_us * US
        r = w.secondary_amplitude_ratio
        return ((pw, 1.0), (w.interphase_gap_us * US, 0.0), (pw / r, -r))
    if isinstance(w, Monophasic):
        b = w.balance
        return ((w.pulse_width_us * US, 1.0), (b.delay_us * US, 0.0), (b.width_us * US, -b.amplitude_ratio))
    if isinstance(w, KhzBurst):
        half = 0.5 / w.carrier_hz
        n_full = int(math.floor(w.burst_duration_ms * 1e-3 / half + 1e-9))
        mean = 2.0 / math.pi if w.carrier_shape == "sine" else 1.0
        segs = [(half, mean if k % 2 == 0 else -mean) for k in range(n_full)]
        rest = w.burst_duration_ms * 1e-3 - n_full * half
        if rest > 1e-12:
            segs.append((rest, 0.0))  # exact partial-cycle charge: see net_charge_s
        return tuple(segs)
    raise TypeError(f"not a waveform: {type(w).__name__}")


def duration_s(w) -> float:
    """Time from the start of the pulse to the end of its last phase."""
    if isinstance(w, KhzBurst):
        return w.burst_duration_ms * 1e-3
    return sum(d for d, _ in segments(w))


def primary_width_s(w) -> float:
    """Width of the first (depolarising) phase; a carrier half-cycle for kHz bursts."""
    if isinstance(w, KhzBurst):
        return 0.5 / w.carrier_hz
    return w.pulse_width_us * US


def max_phase_charge_s(w) -> float:
    """Largest single-phase charge per ampere of primary amplitude."""
    if isinstance(w, KhzBurst):
        half = 0.5 / w.carrier_hz
        return half * (2.0 / math.pi if w.carrier_shape == "sine" else 1.0)
    return max(abs(d * lv) for d, lv in segments(w))


def net_charge_s(w) -> float:
    """Signed net charge of one pulse per ampere (0 for a balanced pulse)."""
    if isinstance(w, KhzBurst):
        f, T = w.carrier_hz, w.burst_duration_ms * 1e-3
        if w.carrier_shape == "sine":
            return (1.0 - math.cos(2.0 * math.pi * f * T)) / (2.0 * math.pi * f)
        half = 0.5 / f
        cycles = math.floor(T * f + 1e-12)
        rest = T - cycles / f
        return min(rest, half) - max(0.0, rest - half)
    return sum(d * lv for d, lv in segments(w))


def square_integral_s(w) -> float:
    """Integral of the squared relative level over one pulse (for r.m.s. current and power)."""
    if isinstance(w, KhzBurst):
        T = w.burst_duration_ms * 1e-3
        return T / 2.0 if w.carrier_shape == "sine" else T
    return sum(d * lv * lv for d, lv in segments(w))
