"""The settings of one channel as the Design tab shows them: its electrode pair and its main-phase stimulation.

A :class:`ChannelSettings` holds what the controls hold; :meth:`ChannelSettings.channel` and
:meth:`ChannelSettings.stimulation` turn it into the program format's ``channels`` and
``stimulation`` entries. Bounds and choices are the device's and the format's
(:mod:`apps.limits`).

The amplitude is either a current in mA or, where the patient file holds a motor threshold
measured at the channel's site and side, a multiple of that threshold (the format's relative
amplitude, resolved for the patient by :func:`emsim.program.resolve.resolve_amplitude` exactly
as compiling does). In that mode ``amplitude_ma`` follows the resolved current, so the
recruitment curve's marker and the mA shown stay true.
"""

from __future__ import annotations

import json

import param

from apps.limits import channel_limits
from emsim.body import get_site
from emsim.errors import EmsimError
from emsim.program.model import Electrode, Stimulation
from emsim.program.resolve import resolve_amplitude

__all__ = ["ChannelSettings", "ELECTRODE_OPTIONS", "PLACEMENT_SITES", "SIDES"]

#: Sites of the lower back, glutes and hip flexors a channel may target (models/sites/sites.json).
PLACEMENT_SITES = ("lumbar_erector_spinae", "lumbar_multifidus", "gluteus_maximus", "gluteus_medius",
                   "hip_flexors")
#: Electrode sizes offered (shapes and sizes of emsim.program.model.Electrode; common self-adhesive
#: sizes). Validated at import, so an entry the format refuses fails here and not in a session.
ELECTRODE_OPTIONS = {
    "5 × 9 cm": {"shape": "rectangle", "width_cm": 5, "length_cm": 9},
    "5 × 5 cm": {"shape": "rectangle", "width_cm": 5, "length_cm": 5},
    "5 × 10 cm": {"shape": "rectangle", "width_cm": 5, "length_cm": 10},
    "7.5 × 13 cm": {"shape": "rectangle", "width_cm": 7.5, "length_cm": 13},
    "round 3.2 cm": {"shape": "circle", "diameter_cm": 3.2},
    "round 5 cm": {"shape": "circle", "diameter_cm": 5},
}
for _e in ELECTRODE_OPTIONS.values():
    Electrode.model_validate(_e)
SIDES = ("left", "right", "bilateral")


class ChannelSettings(param.Parameterized):
    """One channel: its electrode pair and what it does in the main phase.

    Bounds and the waveform/pattern choices are set per device by :meth:`for_device`.
    """

    channel_id = param.String(default="ES-L", constant=True)
    # placement
    site = param.Selector(default="lumbar_erector_spinae", objects=list(PLACEMENT_SITES))
    side = param.Selector(default="left", objects=list(SIDES))
    electrode = param.Selector(default="5 × 9 cm", objects=list(ELECTRODE_OPTIONS), doc="size of both electrodes")
    spacing_cm = param.Number(default=4.0, bounds=(0.5, 60.0), softbounds=(2.0, 15.0), step=0.5,
                              doc="edge-to-edge distance between the electrodes, cm")
    # main phase
    enabled = param.Boolean(default=True, doc="deliver stimulation on this channel")
    frequency_hz = param.Number(default=50.0, bounds=(0.5, 300.0), softbounds=(1.0, 120.0),
                                doc="pulse (or burst) repetition rate, Hz")
    pulse_width_us = param.Number(default=300.0, bounds=(10.0, 1000.0), softbounds=(50.0, 500.0), step=10.0,
                                  doc="width of each (primary) phase, µs")
    amplitude_mode = param.Selector(default="mA", objects=["mA"],
                                    doc="a current, or a multiple of the motor threshold measured at this site")
    amplitude_ma = param.Number(default=30.0, bounds=(0.0, 200.0), softbounds=(0.0, 80.0), step=0.5,
                                doc="peak current, mA")
    # the format's relative amplitude: 0 < factor <= 5 (emsim.program.model.RelativeAmplitude)
    amplitude_factor = param.Number(default=1.5, bounds=(0.05, 5.0), softbounds=(0.5, 3.0), step=0.05,
                                    doc="peak current as a multiple of the measured motor threshold")
    patient = param.Parameter(default=None, precedence=-1,
                              doc="the patient whose measured thresholds a relative amplitude refers to")
    on_s = param.Number(default=10.0, bounds=(0.1, 7200.0), softbounds=(1.0, 30.0), step=0.5,
                        doc="delivery time per cycle, ramps included, s")
    off_s = param.Number(default=20.0, bounds=(0.0, 3600.0), softbounds=(0.0, 60.0), step=0.5,
                         doc="pause per cycle, s")
    ramp_up_s = param.Number(default=2.0, bounds=(0.0, 60.0), softbounds=(0.0, 5.0), step=0.5, doc="s")
    ramp_down_s = param.Number(default=2.0, bounds=(0.0, 60.0), softbounds=(0.0, 5.0), step=0.5, doc="s")
    # waveform (emsim.program.model waveforms)
    waveform = param.Selector(default="symmetric_biphasic", objects=["symmetric_biphasic"])
    interphase_gap_us = param.Number(default=100.0, bounds=(0.0, 1000.0), softbounds=(0.0, 200.0), step=10.0)
    secondary_amplitude_ratio = param.Number(default=0.5, bounds=(0.1, 1.0), step=0.05,
                                             doc="asymmetric: secondary / primary amplitude")
    balance_amplitude_ratio = param.Number(default=0.25, bounds=(0.05, 1.0), step=0.05,
                                           doc="monophasic: balance / primary amplitude (its width balances the charge)")
    carrier_hz = param.Number(default=2500.0, bounds=(1000.0, 20000.0), softbounds=(1000.0, 10000.0), step=100.0)
    burst_duration_ms = param.Number(default=4.0, bounds=(0.25, 100.0), softbounds=(1.0, 10.0), step=0.25)
    # pattern
    pattern = param.Selector(default="constant", objects=["constant"])
    pulses_per_burst = param.Integer(default=2, bounds=(2, 4), doc="doublets: 2, triplets: 3")
    intra_burst_interval_ms = param.Number(default=8.0, bounds=(2.0, 100.0), softbounds=(4.0, 10.0), step=0.5)
    onset_interval_ms = param.Number(default=5.0, bounds=(2.0, 1000.0), softbounds=(2.0, 20.0), step=0.5,
                                     doc="variable frequency: the short interval that opens each on time")

    _device_patterns = ["constant"]
    _loading = False

    ABSOLUTE, RELATIVE = "mA", "× motor threshold"

    PLACEMENT = ("site", "side", "electrode", "spacing_cm")
    TIMING = ("enabled", "frequency_hz", "pulse_width_us", "amplitude_mode", "amplitude_ma", "amplitude_factor",
              "on_s", "off_s", "ramp_up_s", "ramp_down_s")
    WAVEFORM_EXTRAS = {"symmetric_biphasic": ("interphase_gap_us",),
                       "asymmetric_biphasic": ("interphase_gap_us", "secondary_amplitude_ratio"),
                       "monophasic": ("balance_amplitude_ratio",),
                       "khz_burst": ("carrier_hz", "burst_duration_ms")}
    PATTERN_EXTRAS = {"constant": (), "doublets": ("pulses_per_burst", "intra_burst_interval_ms"),
                      "variable_frequency": ("onset_interval_ms",)}
    #: Every setting that changes the program (a change asks for a new prediction).
    CONTROLS = PLACEMENT + TIMING + ("waveform", "pattern") + tuple(
        dict.fromkeys(n for extras in (*WAVEFORM_EXTRAS.values(), *PATTERN_EXTRAS.values()) for n in extras))

    @classmethod
    def for_device(cls, device: str | None, patient=None, **values) -> "ChannelSettings":
        """Settings whose hard bounds and choices are the device's and the program format's.

        ``patient`` decides whether the amplitude may be relative to a measured motor threshold;
        without one at the (new) site, a relative amplitude becomes its last current in mA.
        """
        lim = channel_limits(device)
        obj = cls(patient=patient, **{k: v for k, v in values.items() if k == "channel_id"})
        for name, hard in lim.hard.items():
            p = obj.param[name]
            p.bounds, p.softbounds = hard, lim.soft[name]
        obj.param["amplitude_ma"].step = lim.amplitude_step_ma
        obj.param["waveform"].objects = list(lim.waveforms)
        obj.param["pattern"].objects = list(lim.patterns)
        obj._device_patterns = list(lim.patterns)
        obj.param["pulses_per_burst"].bounds = (2, lim.max_pulses_per_burst)
        # Values outside the new device's range are clipped to it, never rejected silently later;
        # a waveform or pattern the device lacks falls back to its first one.
        for key, choices in (("waveform", lim.waveforms), ("pattern", lim.patterns)):
            if key in values and values[key] not in choices:
                values[key] = choices[0]
        if values.get("amplitude_mode") not in (None, *obj.param["amplitude_mode"].objects):
            values["amplitude_mode"] = cls.ABSOLUTE
        obj._loading = True  # the given factor and current stand; no conversion between the modes
        try:
            obj.param.update(**{k: _clip(obj, k, v) for k, v in values.items() if k != "channel_id"})
        finally:
            obj._loading = False
        obj._follow_threshold()
        return obj

    @staticmethod
    def threshold_held(patient, site: str, side: str) -> bool:
        """Whether ``patient`` has a motor threshold measured at ``site`` and ``side``."""
        return patient is not None and bool(patient.thresholds_for(site, side, "motor_threshold"))

    @param.depends("patient", "site", "side", watch=True, on_init=True)
    def _amplitude_modes(self) -> None:
        relative = self.threshold_held(self.patient, self.site, self.side)
        modes = [self.ABSOLUTE, self.RELATIVE] if relative else [self.ABSOLUTE]
        self.param["amplitude_mode"].objects = modes
        if self.amplitude_mode not in modes:
            self.amplitude_mode = self.ABSOLUTE  # amplitude_ma still holds the last resolved current
        self._follow_threshold()

    @param.depends("amplitude_mode", watch=True)
    def _mode_switched(self) -> None:
        # Switching to the relative mode keeps the current: the factor that gives today's mA.
        if self.amplitude_mode == self.RELATIVE and not self._loading:
            base = self._resolved_ma(1.0)
            if base:
                self.amplitude_factor = _clip(self, "amplitude_factor", round(self.amplitude_ma / base, 2))
        self._follow_threshold()

    @param.depends("amplitude_factor", "pulse_width_us", "waveform", "carrier_hz", "burst_duration_ms", watch=True)
    def _follow_threshold(self) -> None:
        """In the relative mode ``amplitude_ma`` is the current the factor means for the patient."""
        if self.amplitude_mode == self.RELATIVE and not self._loading:
            ma = self._resolved_ma(float(self.amplitude_factor))
            if ma is not None:
                self.amplitude_ma = _clip(self, "amplitude_ma", ma)

    def _resolved_ma(self, factor: float) -> float | None:
        stim = dict(self.stimulation(), amplitude={"relative_to": "motor_threshold", "factor": factor})
        try:
            return resolve_amplitude(Stimulation.model_validate_json(json.dumps(stim)), self.site, self.side,
                                     self.patient).ma
        except EmsimError:
            return None

    def amplitude_dict(self, share: float = 1.0) -> dict:
        """The ``amplitude`` entry at ``share`` of the main current (the warm-up and cool-down use less)."""
        if self.amplitude_mode == self.RELATIVE:
            return {"relative_to": "motor_threshold", "factor": float(self.amplitude_factor) * share}
        return {"ma": float(self.amplitude_ma) * share}

    @param.depends("site", watch=True, on_init=True)
    def _sides_of_site(self) -> None:
        sides = list(get_site(self.site).sides)
        self.param["side"].objects = sides
        if self.side not in sides:
            self.side = sides[0]

    @param.depends("waveform", watch=True)
    def _patterns_of_waveform(self) -> None:
        # The format gives kHz bursts the constant pattern only (their rate is the burst rate).
        patterns = ["constant"] if self.waveform == "khz_burst" else list(self._device_patterns)
        self.param["pattern"].objects = patterns
        if self.pattern not in patterns:
            self.pattern = patterns[0]

    def active_controls(self) -> list[str]:
        """The main-phase controls that apply to the chosen waveform and pattern, in display order."""
        names = [*self.TIMING, "waveform", *self.WAVEFORM_EXTRAS[self.waveform], "pattern",
                 *self.PATTERN_EXTRAS[self.pattern]]
        # one amplitude control: the current, or the factor; the choice only when both are possible
        names.remove("amplitude_factor" if self.amplitude_mode == self.ABSOLUTE else "amplitude_ma")
        if len(self.param["amplitude_mode"].objects) < 2:
            names.remove("amplitude_mode")
        # A setting the device fixes (e.g. RehaStim 2's 100 µs inter-phase gap) is no control.
        return [n for n in names if not _fixed(self.param[n])]

    def electrode_dict(self) -> dict:
        return dict(ELECTRODE_OPTIONS[self.electrode])

    def channel(self) -> dict:
        """The ``channels`` entry of the program for this electrode pair."""
        return {"id": self.channel_id, "site": self.site, "side": self.side,
                "electrodes": [self.electrode_dict(), self.electrode_dict()],
                "spacing_cm": float(self.spacing_cm), "orientation": "along_fibres"}

    def waveform_dict(self) -> dict:
        pw = float(self.pulse_width_us)
        if self.waveform == "symmetric_biphasic":
            return {"shape": self.waveform, "pulse_width_us": pw, "interphase_gap_us": float(self.interphase_gap_us)}
        if self.waveform == "asymmetric_biphasic":
            return {"shape": self.waveform, "pulse_width_us": pw, "interphase_gap_us": float(self.interphase_gap_us),
                    "secondary_amplitude_ratio": float(self.secondary_amplitude_ratio)}
        if self.waveform == "monophasic":
            ratio = float(self.balance_amplitude_ratio)
            return {"shape": self.waveform, "pulse_width_us": pw,
                    "balance": {"delay_us": 0.0, "width_us": pw / ratio, "amplitude_ratio": ratio}}
        return {"shape": "khz_burst", "carrier_hz": float(self.carrier_hz),
                "burst_duration_ms": float(self.burst_duration_ms), "carrier_shape": "sine"}

    def pattern_dict(self) -> dict:
        if self.pattern == "doublets":
            return {"type": "doublets", "pulses_per_burst": int(self.pulses_per_burst),
                    "intra_burst_interval_ms": float(self.intra_burst_interval_ms)}
        if self.pattern == "variable_frequency":
            return {"type": "variable_frequency", "onset_intervals_ms": [float(self.onset_interval_ms)]}
        return {"type": "constant"}

    def stimulation(self) -> dict:
        """The ``stimulation`` entry of the main phase for this channel."""
        return {"channel": self.channel_id, "waveform": self.waveform_dict(), "frequency_hz": float(self.frequency_hz),
                "pattern": self.pattern_dict(), "amplitude": self.amplitude_dict(),
                "on_s": float(self.on_s), "off_s": float(self.off_s), "ramp_up_s": float(self.ramp_up_s),
                "ramp_down_s": float(self.ramp_down_s)}

    def values(self) -> dict:
        return {k: getattr(self, k) for k in ("channel_id",) + self.CONTROLS}


def _fixed(p) -> bool:
    bounds = getattr(p, "bounds", None)
    return bounds is not None and bounds[0] == bounds[1]


def _clip(obj, name, value):
    bounds = getattr(obj.param[name], "bounds", None)
    if bounds is None:
        return value
    return min(max(value, bounds[0]), bounds[1])

