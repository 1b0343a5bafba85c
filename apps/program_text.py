"""Small presentation helpers shared by the Design, Optimise and Simulate tabs: a program as a table,
and traces thinned (keeping their envelope) before they go to the browser."""

from __future__ import annotations

import numpy as np

from emsim.program.model import RelativeAmplitude

__all__ = ["program_table", "amplitude_text", "decimate", "MAX_PLOT_POINTS"]

#: Traces are thinned to at most this many points before they go to the browser.
MAX_PLOT_POINTS = 3000
_ABBREV = {"motor_threshold": "MT", "sensory_threshold": "ST", "tolerance": "tolerance"}


def amplitude_text(amplitude) -> str:
    """``2.25 × MT`` for a relative amplitude, ``30 mA`` for an absolute one."""
    if isinstance(amplitude, RelativeAmplitude):
        return f"{amplitude.factor:g} × {_ABBREV.get(amplitude.relative_to, amplitude.relative_to)}"
    return f"{amplitude.ma:g} mA"


def program_table(program) -> str:
    """A Markdown table of every phase's stimulation: one row per channel and phase."""
    head = ("| phase | channel | Hz | µs | amplitude | on/off s | ramps s | pattern | waveform |\n"
            "|---|---|---|---|---|---|---|---|---|")
    rows = []
    for ph in program.phases:
        for st in ph.stimulation:
            rows.append(f"| {ph.name} ({ph.duration_s / 60:g} min) | {st.channel} | {st.frequency_hz:.3g} | "
                        f"{st.waveform.pulse_width_us:g} | {amplitude_text(st.amplitude)} | "
                        f"{st.on_s:g} / {st.off_s:g} | {st.ramp_up_s:g} / {st.ramp_down_s:g} | "
                        f"{st.pattern.type} | {st.waveform.shape.replace('_', ' ')} |")
    return "\n".join([head, *rows])


def decimate(t, *ys, max_points: int = MAX_PLOT_POINTS):
    """``t`` and each of ``ys`` at no more than ``max_points`` samples that keep every series' envelope.

    Each series is cut into bins and keeps each bin's minimum and maximum, in time order; the
    series share the union of their kept samples, so they still share one time axis. Every
    k-th sample would miss contraction peaks; these keep every peak and trough (and so the
    fatigue decline) while sending a few hundred points instead of thousands to the browser.

    Returns
    -------
    tuple of arrays
        ``(t, y1, y2, ...)`` at the kept samples.
    """
    t = np.asarray(t)
    n = len(t)
    if n <= max_points or not ys:
        return (t, *(np.asarray(y) for y in ys))
    bins = max(1, max_points // (2 * len(ys)))
    idx = np.unique(np.concatenate([_envelope(np.asarray(y), bins) for y in ys]))
    return (t[idx], *(np.asarray(y)[idx] for y in ys))


def _envelope(y, bins: int):
    """Indices of each bin's minimum and maximum (bins of equal length; the last one padded)."""
    n = len(y)
    size = -(-n // bins)
    padded = np.concatenate([y, np.repeat(y[-1:], size * bins - n)]).reshape(bins, size)
    start = np.arange(bins) * size
    return np.minimum(np.concatenate([start + np.argmin(padded, axis=1), start + np.argmax(padded, axis=1)]), n - 1)
