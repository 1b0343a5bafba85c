"""Hard and soft bounds of the design controls, and the waveforms and patterns on offer.

Hard bounds are what the program format and the chosen device accept (a slider cannot leave
them); soft bounds are the usual clinical range the slider shows first. The program-format
limits come from :mod:`emsim.program.model`, the device limits from its profile in
``models/devices``; the tighter of the two wins. The same holds for the choices: a waveform
or pulse pattern is offered only when both the format and the device have it.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsim.program.device_profile import device_profile

__all__ = ["ChannelLimits", "channel_limits", "FORMAT_WAVEFORMS", "FORMAT_PATTERNS"]

# Program-format limits (emsim.program.model.Stimulation / waveform / AbsoluteAmplitude / DoubletPattern).
_FORMAT = {"frequency_hz": (0.5, 300.0), "pulse_width_us": (10.0, 1000.0), "amplitude_ma": (0.0, 200.0),
           "intra_burst_interval_ms": (2.0, 100.0), "interphase_gap_us": (0.0, 1000.0)}
_SOFT = {"frequency_hz": (1.0, 120.0), "pulse_width_us": (50.0, 500.0), "amplitude_ma": (0.0, 80.0),
         "intra_burst_interval_ms": (4.0, 10.0), "interphase_gap_us": (0.0, 200.0)}
#: In the order the workbench lists them (emsim.program.model.Waveform / Pattern).
FORMAT_WAVEFORMS = ("symmetric_biphasic", "asymmetric_biphasic", "monophasic", "khz_burst")
FORMAT_PATTERNS = ("constant", "doublets", "variable_frequency")
_FORMAT_MAX_PULSES_PER_BURST = 4


@dataclass(frozen=True)
class ChannelLimits:
    """Hard ``(lo, hi)`` and soft ``(lo, hi)`` bounds per control, the amplitude step and the choices."""

    hard: dict
    soft: dict
    amplitude_step_ma: float
    device: str | None
    waveforms: tuple = FORMAT_WAVEFORMS
    patterns: tuple = FORMAT_PATTERNS
    max_pulses_per_burst: int = _FORMAT_MAX_PULSES_PER_BURST


def _clip(soft, hard):
    lo, hi = max(soft[0], hard[0]), min(soft[1], hard[1])
    return (lo, hi) if lo < hi else hard


def _narrow(fmt, rng):
    return (max(fmt[0], rng.min), min(fmt[1], rng.max))


def channel_limits(device: str | None) -> ChannelLimits:
    """Bounds for ``device`` (a profile id) or, with ``None``, the program format alone."""
    hard = dict(_FORMAT)
    step = 0.5
    if not device:
        soft = {k: _clip(_SOFT[k], hard[k]) for k in hard}
        return ChannelLimits(hard=hard, soft=soft, amplitude_step_ma=step, device=None)
    prof = device_profile(device)
    hard["amplitude_ma"] = _narrow(_FORMAT["amplitude_ma"], prof.current_ma)
    hard["pulse_width_us"] = _narrow(_FORMAT["pulse_width_us"], prof.pulse_width_us)
    hard["intra_burst_interval_ms"] = _narrow(_FORMAT["intra_burst_interval_ms"], prof.intra_burst_interval_ms)
    hard["interphase_gap_us"] = _narrow(_FORMAT["interphase_gap_us"], prof.interphase_gap_us)
    # The repetition period of the device bounds the frequency: f = 1 / period.
    hard["frequency_hz"] = (max(_FORMAT["frequency_hz"][0], 1000.0 / prof.period_ms.max),
                            min(_FORMAT["frequency_hz"][1], 1000.0 / prof.period_ms.min))
    step = prof.current_ma.step or step
    soft = {k: _clip(_SOFT[k], hard[k]) for k in hard}
    return ChannelLimits(hard=hard, soft=soft, amplitude_step_ma=step, device=device,
                         waveforms=tuple(w for w in FORMAT_WAVEFORMS if w in prof.waveforms),
                         patterns=tuple(p for p in FORMAT_PATTERNS if p in prof.patterns),
                         max_pulses_per_burst=min(_FORMAT_MAX_PULSES_PER_BURST, prof.max_pulses_per_burst))
