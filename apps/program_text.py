"""Small presentation helpers shared by the Optimise and Simulate tabs: a program as a table, and
traces thinned before they go to the browser."""

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


def decimate(t, y, max_points: int = MAX_PLOT_POINTS):
    """Every k-th sample so that at most ``max_points`` remain (first sample kept)."""
    step = max(1, int(np.ceil(len(t) / max_points)))
    return t[::step], y[::step]
