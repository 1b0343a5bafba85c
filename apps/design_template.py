"""The program the design starts from, and the way between the design's controls and a program document.

The Design tab edits only what a therapist changes per patient: each channel's electrode pair
and main-phase stimulation, and the session's phase lengths. Everything else (schedule,
timing mode, the warm-up and cool-down frequency and ramps) comes from one template program,
``models/programs/paraspinal_strengthening.json``. :meth:`DesignTemplate.document` builds the
program of a design; :meth:`DesignTemplate.settings_of` goes back from a program to the
controls, and refuses whole a program the controls cannot represent.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from pathlib import Path

from apps.channel_settings import ELECTRODE_OPTIONS, PLACEMENT_SITES, ChannelSettings
from emsim.errors import ProgramError
from emsim.program import dumps, from_dict, load
from emsim.program.model import Channel, Electrode, RelativeAmplitude, Stimulation
from emsim.program.resolve import resolve_amplitude

__all__ = ["DesignTemplate", "TEMPLATE_FILE", "PHASE_LENGTHS"]

TEMPLATE_FILE = Path(__file__).resolve().parent.parent / "models" / "programs" / "paraspinal_strengthening.json"
#: The session's phase settings the design controls (names of WorkbenchStore parameters).
PHASE_LENGTHS = ("main_s", "warm_up_s", "warm_up_amplitude_pct", "cool_down_s", "cool_down_amplitude_pct")


class DesignTemplate:
    """The template program as a document, and the design ↔ program conversions built on it."""

    def __init__(self, path: str | Path = TEMPLATE_FILE):
        self.path = Path(path)
        self.doc = json.loads(dumps(load(self.path)))
        self.phases = {ph["kind"]: ph for ph in self.doc["phases"]}
        self.program = from_dict(self.doc)

    def channels(self) -> list[dict]:
        """The electrode pairs the design can have, in order (a 1-channel design has the first)."""
        return json.loads(json.dumps(self.doc["channels"]))

    def defaults(self, channel_id: str) -> dict:
        """ChannelSettings values of the template's channel ``channel_id``."""
        ch = next(c for c in self.doc["channels"] if c["id"] == channel_id)
        st = next(s for s in self.phases["main"]["stimulation"] if s["channel"] == channel_id)
        return {"site": ch["site"], "side": ch["side"], "spacing_cm": ch["spacing_cm"],
                "frequency_hz": st["frequency_hz"], "pulse_width_us": st["waveform"]["pulse_width_us"],
                "on_s": st["on_s"], "off_s": st["off_s"], "ramp_up_s": st["ramp_up_s"], "ramp_down_s": st["ramp_down_s"]}

    # ------------------------------------------------------------------ design -> program

    def document(self, channels: list[ChannelSettings], lengths: dict, preview_s: float | None = None) -> dict | None:
        """The designed program as a document (``None`` when every channel is off).

        Parameters
        ----------
        channels : list of ChannelSettings
        lengths : dict
            The :data:`PHASE_LENGTHS` values.
        preview_s : float, optional
            Only the first ``preview_s`` of the main phase (the quick preview); ``None`` gives the
            whole session: warm-up, main phase and cool-down as set.
        """
        active = [c for c in channels if c.enabled]
        if not active:
            return None
        doc = json.loads(json.dumps(self.doc))
        doc["name"] = "Program designed in the emsim workbench"
        doc["description"] = "Designed in the emsim workbench. Research use only: no clinical clearance."
        doc["channels"] = [c.channel() for c in channels]
        main = dict(self.phases["main"], stimulation=[c.stimulation() for c in active])
        main_s = float(lengths["main_s"])
        if preview_s is not None:
            doc["phases"] = [dict(main, duration_s=float(min(preview_s, main_s)))]
        else:
            doc["phases"] = [*self._side_phase("warm_up", lengths, active), dict(main, duration_s=main_s),
                             *self._side_phase("cool_down", lengths, active)]
        doc["provenance"] = {"emsim_version": _emsim_version(), "created_by": "emsim workbench user",
                             "created_with": "emsim workbench", "created": _dt.date.today().isoformat(),
                             "model_versions": {}}
        return doc

    def _side_phase(self, kind: str, lengths: dict, active) -> list[dict]:
        """Warm-up or cool-down: the template's phase at the set length and share of each main current."""
        duration = float(lengths[f"{kind}_s"])
        if duration <= 0:
            return []
        share = lengths[f"{kind}_amplitude_pct"] / 100.0
        tmpl = self.phases[kind]
        ramps = next(iter(tmpl["stimulation"]))
        # Short phases shrink their ramps so that ramp up + ramp down still fit the on time.
        up, down = (min(ramps[k], duration / 3.0) for k in ("ramp_up_s", "ramp_down_s"))
        stim = [dict(c.stimulation(), frequency_hz=float(ramps["frequency_hz"]), pattern={"type": "constant"},
                     amplitude=c.amplitude_dict(share), on_s=duration, off_s=0.0,
                     ramp_up_s=up, ramp_down_s=down) for c in active]
        return [dict(tmpl, duration_s=duration, stimulation=stim)]

    # ------------------------------------------------------------------ program -> design

    def settings_of(self, program, current: dict, device: str | None, patient, channel_counts) -> dict:
        """ChannelSettings values per channel id that reproduce ``program``.

        Parameters
        ----------
        program : emsim.program.Program
        current : dict
            The design's present values per channel id (settings the program leaves open keep them).
        device : str or None
        patient : emsim.body.Patient or None
            Resolves relative amplitudes the controls cannot hold as such.
        channel_counts : list of int
            How many channels the design may have.

        Raises
        ------
        ProgramError
            Naming the first setting the controls cannot represent.
        """
        tmpl_ids = [c["id"] for c in self.doc["channels"]]
        ids = [c.id for c in program.channels]
        if ids != tmpl_ids[: len(ids)] or len(ids) not in channel_counts:
            raise ProgramError("the design has other channels", path="channels", value=", ".join(ids),
                               allowed=" or ".join(", ".join(tmpl_ids[:n]) for n in channel_counts))
        mains = [ph for ph in program.phases if ph.kind == "main"]
        if len(mains) != 1:
            raise ProgramError("the design has exactly one main phase", path="phases", value=len(mains), allowed=1)
        tmpl_timing = next(ph for ph in self.program.phases if ph.kind == "main").timing
        if mains[0].timing != tmpl_timing:
            raise ProgramError("the design's channels keep the template's timing", path="phases.main.timing",
                               value=mains[0].timing.mode, allowed=tmpl_timing.mode)
        if program.schedule != self.program.schedule:
            raise ProgramError("the design keeps the template's schedule", path="schedule",
                               value=program.schedule.sessions_per_week, allowed=str(self.path.name))
        stims = {st.channel: st for st in mains[0].stimulation}
        values = {}
        for ch in program.channels:
            v = dict(current.get(ch.id) or {}, channel_id=ch.id, **_placement_values(ch))
            st = stims.get(ch.id)
            if st is not None:
                st = _held_amplitude(st, ch, patient)
            v.update(_stimulation_values(st) if st is not None else {"enabled": False})
            chan = ChannelSettings.for_device(device, patient=patient, **v)
            _same_or_refuse(f"channels[{ch.id}]", ch.model_dump(mode="json", exclude_none=True),
                            Channel.model_validate_json(json.dumps(chan.channel())).model_dump(mode="json", exclude_none=True))
            if st is not None:
                _same_or_refuse(f"phases.main.stimulation[{ch.id}]", st.model_dump(mode="json", exclude_none=True),
                                Stimulation.model_validate_json(json.dumps(chan.stimulation())).model_dump(mode="json",
                                                                                         exclude_none=True))
            values[ch.id] = chan.values()
        return values


def _held_amplitude(st, ch, patient):
    """``st`` as the controls can hold it: × motor threshold where the patient has one, else mA.

    Other relative amplitudes are resolved for the patient exactly as compiling does
    (:func:`emsim.program.resolve.resolve_amplitude`).
    """
    amp = st.amplitude
    if not isinstance(amp, RelativeAmplitude):
        return st
    if amp.relative_to == "motor_threshold" and ChannelSettings.threshold_held(patient, ch.site, ch.side):
        return st
    if patient is None:
        raise ProgramError("relative amplitudes need a patient with measured thresholds",
                           path="phases.main.stimulation.amplitude", value="relative",
                           allowed="mA, or load the patient first")
    ma = resolve_amplitude(st, ch.site, ch.side, patient, path=f"phases.main.stimulation[{ch.id}]").ma
    return Stimulation.model_validate_json(json.dumps(dict(st.model_dump(mode="json", exclude_none=True),
                                                           amplitude={"ma": ma})))


def _placement_values(ch) -> dict:
    size = next((k for k, e in ELECTRODE_OPTIONS.items() if Electrode.model_validate_json(json.dumps(e)) == ch.electrodes[0]), None)
    if size is None or ch.electrodes[1] != ch.electrodes[0]:
        raise ProgramError("electrode size not on offer in the design", path=f"channels[{ch.id}].electrodes",
                           value=ch.electrodes[0].model_dump(exclude_none=True), allowed=", ".join(ELECTRODE_OPTIONS))
    if ch.site not in PLACEMENT_SITES:
        raise ProgramError("site not on the body diagram", path=f"channels[{ch.id}].site", value=ch.site,
                           allowed=", ".join(PLACEMENT_SITES))
    return {"site": ch.site, "side": ch.side, "electrode": size, "spacing_cm": ch.spacing_cm}


def _stimulation_values(st) -> dict:
    """The ChannelSettings values of one stimulation block."""
    wave, pattern = st.waveform, st.pattern
    v = {"enabled": True, "frequency_hz": st.frequency_hz, "on_s": st.on_s, "off_s": st.off_s,
         "ramp_up_s": st.ramp_up_s, "ramp_down_s": st.ramp_down_s, "waveform": wave.shape, "pattern": pattern.type}
    if isinstance(st.amplitude, RelativeAmplitude):
        v.update(amplitude_mode=ChannelSettings.RELATIVE, amplitude_factor=st.amplitude.factor)
    else:
        v.update(amplitude_mode=ChannelSettings.ABSOLUTE, amplitude_ma=st.amplitude.ma)
    for name in ("pulse_width_us", "interphase_gap_us", "secondary_amplitude_ratio", "carrier_hz",
                 "burst_duration_ms"):
        if getattr(wave, name, None) is not None:
            v[name] = getattr(wave, name)
    if wave.shape == "monophasic":
        v["balance_amplitude_ratio"] = wave.balance.amplitude_ratio
    if pattern.type == "doublets":
        v.update(pulses_per_burst=pattern.pulses_per_burst, intra_burst_interval_ms=pattern.intra_burst_interval_ms)
    if pattern.type == "variable_frequency" and pattern.onset_intervals_ms:
        v["onset_interval_ms"] = pattern.onset_intervals_ms[0]
    return v


def _same_or_refuse(path: str, wanted, got) -> None:
    """ProgramError naming the first place where the controls' version ``got`` differs from ``wanted``."""
    if isinstance(wanted, dict) and isinstance(got, dict):
        for key in dict.fromkeys([*wanted, *got]):
            _same_or_refuse(f"{path}.{key}", wanted.get(key), got.get(key))
        return
    if isinstance(wanted, list) and isinstance(got, list) and len(wanted) == len(got):
        for k, (a, b) in enumerate(zip(wanted, got)):
            _same_or_refuse(f"{path}[{k}]", a, b)
        return
    if isinstance(wanted, (int, float)) and isinstance(got, (int, float)) and not isinstance(wanted, bool):
        if math.isclose(wanted, got, rel_tol=1e-9, abs_tol=1e-12):
            return
    elif wanted == got:
        return
    raise ProgramError("the design controls cannot represent this setting (outside the device's range or "
                       "not offered)", path=path, value=wanted, allowed=f"the design would make it {got}")


def _emsim_version() -> str:
    import emsim

    return getattr(emsim, "__version__", "0.1.0")
