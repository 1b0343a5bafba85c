"""Hard and soft bounds of the design controls.

Hard bounds are what the program format and the chosen device accept (a slider cannot leave
them); soft bounds are the usual clinical range the slider shows first. The program-format
limits come from :mod:`emsim.program.model`, the device limits from its profile in
``models/devices``; the tighter of the two wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsim.program.device_profile import device_profile

__all__ = ["ChannelLimits", "channel_limits"]

# Program-format limits (emsim.program.model.Stimulation / waveform / AbsoluteAmplitude).
_FORMAT = {"frequency_hz": (0.5, 300.0), "pulse_width_us": (10.0, 1000.0), "amplitude_ma": (0.0, 200.0)}
_SOFT = {"frequency_hz": (1.0, 120.0), "pulse_width_us": (50.0, 500.0), "amplitude_ma": (0.0, 80.0)}


@dataclass(frozen=True)
class ChannelLimits:
    """Hard ``(lo, hi)`` and soft ``(lo, hi)`` bounds per control, with the amplitude step."""

    hard: dict
    soft: dict
    amplitude_step_ma: float
    device: str | None


def _clip(soft, hard):
    lo, hi = max(soft[0], hard[0]), min(soft[1], hard[1])
    return (lo, hi) if lo < hi else hard


def channel_limits(device: str | None) -> ChannelLimits:
    """Bounds for ``device`` (a profile id) or, with ``None``, the program format alone."""
    hard = dict(_FORMAT)
    step = 0.5
    if device:
        prof = device_profile(device)
        hard["amplitude_ma"] = (max(_FORMAT["amplitude_ma"][0], prof.current_ma.min),
                                min(_FORMAT["amplitude_ma"][1], prof.current_ma.max))
        hard["pulse_width_us"] = (max(_FORMAT["pulse_width_us"][0], prof.pulse_width_us.min),
                                  min(_FORMAT["pulse_width_us"][1], prof.pulse_width_us.max))
        # The repetition period of the device bounds the frequency: f = 1 / period.
        hard["frequency_hz"] = (max(_FORMAT["frequency_hz"][0], 1000.0 / prof.period_ms.max),
                                min(_FORMAT["frequency_hz"][1], 1000.0 / prof.period_ms.min))
        step = prof.current_ma.step or step
    soft = {k: _clip(_SOFT[k], hard[k]) for k in hard}
    return ChannelLimits(hard=hard, soft=soft, amplitude_step_ma=step, device=device)
