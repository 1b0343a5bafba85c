"""The workbench's data: patient, placement, device, the program being designed, its prediction.

One :class:`WorkbenchStore` per browser session. Views read it and set its parameters; it
calls the public emsim API (``loads_patient``, ``calibrate``, ``from_dict``, ``check``,
``evaluate``, ``compile``, ``quantise``), so data flows one way: program → prediction → UI.

Predictions run off the UI thread in two stages (the full session in a worker process): a short preview of the main phase lands
first, then (optionally) the whole session. A newer change makes every older stage stale: a
stale stage that has not started never starts, one that is running is discarded when it ends
(``evaluate`` has no cancellation hook), and the preview of the newer change never waits
behind a stale full session. Results are cached by their inputs, so returning to an earlier
design costs nothing.
"""

from __future__ import annotations

import contextvars
import datetime as _dt
import json
import math
import multiprocessing
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import param

from apps.limits import channel_limits
from emsim.body import get_site, load_patient, loads_patient
from emsim.body.calibration import calibrate
from emsim.body.patient import contraindication_items, dumps_patient
from emsim.body.resolved_program import resolve_program
from emsim.errors import EmsimError, InputFileError, PatientError, ProgramError
from emsim.program import compile as compile_program
from emsim.program import dumps, from_dict, load
from emsim.program.device_profile import device_ids
from emsim.program.model import Channel, Electrode, RelativeAmplitude, Stimulation
from emsim.program.quantise import quantise
from emsim.safety import check
from emsim.simulate import evaluate

__all__ = ["ChannelSettings", "WorkbenchStore", "ExportBundle", "PATIENT_DIR", "TEMPLATE_FILE",
           "MAX_UPLOAD_BYTES", "PREVIEW_CHOICES_S", "DEBOUNCE_S", "ELECTRODE_OPTIONS", "PLACEMENT_SITES"]

_ROOT = Path(__file__).resolve().parent.parent
PATIENT_DIR = _ROOT / "models" / "patients"
TEMPLATE_FILE = _ROOT / "models" / "programs" / "paraspinal_strengthening.json"
#: Patient files are a few kB; anything far larger is not a patient file.
MAX_UPLOAD_BYTES = 256 * 1024
#: Lengths of the main phase to predict or play (the Optimise and Simulate tabs offer all three).
PREVIEW_CHOICES_S = {"quick preview (60 s)": 60.0, "2 min": 120.0, "full main phase (20 min)": 1200.0}
#: The Design tab's preview, which lands first; the full session follows if asked for.
_QUICK_PREVIEWS = ["quick preview (60 s)", "2 min"]
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
_SIDES = ("left", "right", "bilateral")
_EVAL_CACHE_SIZE = 16
#: Quiet time after the last change before a prediction starts: a dragged slider (an event every ~16 ms)
#: asks once, not per step; short, because the preview itself now takes tens of ms.
DEBOUNCE_S = 0.06


class ChannelSettings(param.Parameterized):
    """One channel: its electrode pair and what it does in the main phase.

    Bounds and the waveform/pattern choices are set per device by :meth:`for_device`.
    """

    channel_id = param.String(default="ES-L", constant=True)
    # placement
    site = param.Selector(default="lumbar_erector_spinae", objects=list(PLACEMENT_SITES))
    side = param.Selector(default="left", objects=list(_SIDES))
    electrode = param.Selector(default="5 × 9 cm", objects=list(ELECTRODE_OPTIONS), doc="size of both electrodes")
    spacing_cm = param.Number(default=4.0, bounds=(0.5, 60.0), softbounds=(2.0, 15.0), step=0.5,
                              doc="edge-to-edge distance between the electrodes, cm")
    # main phase
    enabled = param.Boolean(default=True, doc="deliver stimulation on this channel")
    frequency_hz = param.Number(default=50.0, bounds=(0.5, 300.0), softbounds=(1.0, 120.0),
                                doc="pulse (or burst) repetition rate, Hz")
    pulse_width_us = param.Number(default=300.0, bounds=(10.0, 1000.0), softbounds=(50.0, 500.0), step=10.0,
                                  doc="width of each (primary) phase, µs")
    amplitude_ma = param.Number(default=30.0, bounds=(0.0, 200.0), softbounds=(0.0, 80.0), step=0.5,
                                doc="peak current, mA")
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

    PLACEMENT = ("site", "side", "electrode", "spacing_cm")
    TIMING = ("enabled", "frequency_hz", "pulse_width_us", "amplitude_ma", "on_s", "off_s", "ramp_up_s",
              "ramp_down_s")
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
    def for_device(cls, device: str | None, **values) -> "ChannelSettings":
        """Settings whose hard bounds and choices are the device's and the program format's."""
        lim = channel_limits(device)
        obj = cls(**{k: v for k, v in values.items() if k == "channel_id"})
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
        obj.param.update(**{k: _clip(obj, k, v) for k, v in values.items() if k != "channel_id"})
        return obj

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
                "pattern": self.pattern_dict(), "amplitude": {"ma": float(self.amplitude_ma)},
                "on_s": float(self.on_s), "off_s": float(self.off_s), "ramp_up_s": float(self.ramp_up_s),
                "ramp_down_s": float(self.ramp_down_s)}

    def values(self) -> dict:
        return {k: getattr(self, k) for k in ("channel_id",) + self.CONTROLS}


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
    """The ChannelSettings values of one stimulation block (absolute amplitude)."""
    wave, pattern = st.waveform, st.pattern
    v = {"enabled": True, "frequency_hz": st.frequency_hz, "amplitude_ma": st.amplitude.ma, "on_s": st.on_s,
         "off_s": st.off_s, "ramp_up_s": st.ramp_up_s, "ramp_down_s": st.ramp_down_s, "waveform": wave.shape,
         "pattern": pattern.type}
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


def _fixed(p) -> bool:
    bounds = getattr(p, "bounds", None)
    return bounds is not None and bounds[0] == bounds[1]


def _clip(obj, name, value):
    bounds = getattr(obj.param[name], "bounds", None)
    if bounds is None:
        return value
    return min(max(value, bounds[0]), bounds[1])


@dataclass(frozen=True)
class ExportBundle:
    """Everything the Export tab offers for one design, validated for its patient and device.

    ``program_text`` and ``quantised_text`` are ``None`` when the safety check has errors.
    """

    program_text: str | None
    safety: object
    quantised_text: str | None = None
    quantisation: object = None
    prediction: object = None


class WorkbenchStore(param.Parameterized):
    """Patient, device and program design of one session, and the prediction of that program."""

    patient = param.Parameter(default=None, doc="emsim.body.Patient or None")
    patient_source = param.String(default="", doc="file the patient came from")
    patient_error = param.String(default="", doc="why the last patient file or edit was refused")
    device = param.Selector(default="rehastim2", objects=list(device_ids()))
    n_channels = param.Selector(default=2, objects=[1, 2], doc="1 or 2 channels")
    preview = param.Selector(default="quick preview (60 s)", objects=_QUICK_PREVIEWS)
    full_session = param.Boolean(default=True, doc="after the preview, predict the whole session")
    channels = param.List(default=[], item_type=ChannelSettings)
    placement_version = param.Integer(default=0, doc="bumped when a channel's electrode pair changes")
    session = param.Integer(default=1, bounds=(1, 200), softbounds=(1, 12),
                            doc="session of the schedule to predict (the first ones run shorter and weaker)")
    warm_up_s = param.Number(default=180.0, bounds=(0.0, 1800.0), softbounds=(0.0, 600.0), step=30.0,
                             doc="warm-up before the main phase, s (0: none)")
    warm_up_amplitude_pct = param.Number(default=67.0, bounds=(5.0, 100.0), step=1.0,
                                         doc="warm-up current as % of each channel's main current")
    cool_down_s = param.Number(default=120.0, bounds=(0.0, 1800.0), softbounds=(0.0, 600.0), step=30.0,
                               doc="cool-down after the main phase, s (0: none)")
    cool_down_amplitude_pct = param.Number(default=40.0, bounds=(5.0, 100.0), step=1.0,
                                           doc="cool-down current as % of each channel's main current")
    main_s = param.Number(default=1200.0, bounds=(1.0, 7200.0), softbounds=(60.0, 2400.0), step=60.0,
                          doc="main phase length, s")

    program_error = param.String(default="", doc="why the last program given to apply_program was refused")

    prediction = param.Parameter(default=None, doc="latest emsim.simulate.Prediction")
    prediction_stage = param.Selector(default="preview", objects=["preview", "full"])
    prediction_error = param.String(default="")
    busy = param.Boolean(default=False, doc="a prediction is running")
    updates = param.Integer(default=0, doc="predictions landed so far (the page shows it)")

    PHASES = ("main_s", "warm_up_s", "warm_up_amplitude_pct", "cool_down_s", "cool_down_amplitude_pct")

    def __init__(self, debounce_s: float = DEBOUNCE_S, auto_predict: bool = True, **params):
        super().__init__(**params)
        self._template = json.loads(dumps(load(TEMPLATE_FILE)))
        self._phase_tmpl = {ph["kind"]: ph for ph in self._template["phases"]}
        self._debounce_s = debounce_s
        self._auto = auto_predict
        self._gen = 0
        self._preview_lock = threading.Lock()
        self._full_lock = threading.Lock()
        self._cache_lock = threading.Lock()
        self._cache: OrderedDict = OrderedDict()
        self._idle = threading.Event()
        self._idle.set()
        self._timer: threading.Timer | None = None
        self._applying = False
        self._rebuild_channels()

    # ------------------------------------------------------------------ patient

    def patient_files(self) -> dict[str, Path]:
        return {p.stem: p for p in sorted(PATIENT_DIR.glob("*.json"))}

    def load_patient_file(self, path: str | Path) -> bool:
        """Load a patient file; on a refused file keep the previous patient and say why."""
        try:
            patient = load_patient(path)
        except EmsimError as exc:
            self.patient_error = str(exc)
            return False
        self._set_patient(patient, str(Path(path).name))
        return True

    def load_patient_bytes(self, data: bytes, filename: str = "upload") -> bool:
        """Load an uploaded patient file: size-limited, then validated like any other input."""
        if len(data) > MAX_UPLOAD_BYTES:
            err = InputFileError("patient file too large", path=filename, value=f"{len(data)} bytes",
                                 allowed=f"<= {MAX_UPLOAD_BYTES} bytes")
            self.patient_error = str(err)
            return False
        try:
            patient = loads_patient(data)
        except EmsimError as exc:
            self.patient_error = str(exc)
            return False
        self._set_patient(patient, filename)
        return True

    def new_patient(self, patient_id: str) -> bool:
        """Start a new patient file: only the id, every questionnaire item still unanswered."""
        return self._replace_patient({"format": "emsim.patient/1", "id": patient_id}, source="new (not saved yet)")

    def edit_patient(self, **fields) -> bool:
        """Change top-level fields of the patient; the result is validated like a loaded file.

        A refused edit keeps the previous patient and says why in :attr:`patient_error`.
        """
        if self.patient is None:
            self.patient_error = str(PatientError("no patient to edit", path="patient", value=None,
                                                  allowed="load or create a patient first"))
            return False
        doc = self._patient_doc()
        doc.update(fields)
        return self._replace_patient(doc, source=self.patient_source)

    def set_answer(self, item_id: str, answer: bool | None) -> bool:
        """Answer one questionnaire item: ``True`` (yes), ``False`` (no) or ``None`` (not asked)."""
        if self.patient is None:
            return self.edit_patient()
        answers = dict(self._patient_doc().get("contraindications", {}))
        if answer is None:
            answers.pop(item_id, None)
        else:
            answers[item_id] = answer
        return self.edit_patient(contraindications=answers)

    def add_threshold(self, site: str, side: str, kind: str, pulse_width_us: float, frequency_hz: float,
                      amplitude_ma: float) -> bool:
        """Record a measured threshold (it replaces one of the same site, side, kind and pulse width)."""
        if self.patient is None:
            return self.edit_patient()
        keep = [t for t in self._patient_doc().get("thresholds", [])
                if (t["site"], t["side"], t["kind"], t["pulse_width_us"]) != (site, side, kind, pulse_width_us)]
        keep.append({"site": site, "side": side, "kind": kind, "pulse_width_us": pulse_width_us,
                     "frequency_hz": frequency_hz, "amplitude_ma": amplitude_ma})
        return self.edit_patient(thresholds=keep)

    def remove_threshold(self, index: int) -> bool:
        if self.patient is None:
            return self.edit_patient()
        rows = list(self._patient_doc().get("thresholds", []))
        if not 0 <= index < len(rows):
            self.patient_error = str(PatientError("no such threshold", path="thresholds", value=index,
                                                  allowed=f"0 .. {len(rows) - 1}" if rows else "none recorded"))
            return False
        del rows[index]
        return self.edit_patient(thresholds=rows)

    def set_fat(self, site: str, side: str, value_mm: float, method: str = "ultrasound") -> bool:
        """Set the fat thickness over one site and side (replacing an earlier value there)."""
        if self.patient is None:
            return self.edit_patient()
        keep = [f for f in self._patient_doc().get("fat_thickness", []) if (f["site"], f["side"]) != (site, side)]
        keep.append({"site": site, "side": side, "method": method, "value_mm": value_mm})
        return self.edit_patient(fat_thickness=keep)

    def patient_json(self) -> str:
        """The patient file as the user downloads it (validated: it is the loaded/edited patient)."""
        return "" if self.patient is None else dumps_patient(self.patient)

    def _patient_doc(self) -> dict:
        return json.loads(dumps_patient(self.patient))

    def _replace_patient(self, doc: dict, source: str) -> bool:
        try:
            patient = loads_patient(json.dumps(doc))
        except EmsimError as exc:
            self.patient_error = str(exc)
            return False
        self._set_patient(patient, source)
        return True

    def _set_patient(self, patient, source: str) -> None:
        self.patient_error = ""
        self.param.update(patient=patient, patient_source=source)

    def questionnaire(self) -> list[dict]:
        """Every questionnaire item with this patient's answer (``None``: not asked), blocking first."""
        answers = self.patient.contraindications.model_dump() if self.patient is not None else {}
        rows = [dict(item, answer=answers.get(item["id"]), blocking=item["severity"] == "absolute")
                for item in contraindication_items()]
        return sorted(rows, key=lambda r: not r["blocking"])

    def contraindications(self) -> list[dict]:
        """Questionnaire items answered "yes" (patient-wide and site-local), blocking first."""
        if self.patient is None:
            return []
        items = {i["id"]: i for i in contraindication_items()}
        answers = self.patient.contraindications.model_dump()
        found = [dict(items[k], where="patient") for k, v in answers.items() if v]
        found += [dict(items[c.condition], where=f"{c.site} ({c.side})") for c in self.patient.local_conditions]
        for f in found:
            f["blocking"] = f["severity"] == "absolute"
        return sorted(found, key=lambda f: not f["blocking"])

    def calibrations(self) -> list[dict]:
        """Person factors per channel site and side (neutral where nothing was measured)."""
        if self.patient is None:
            return []
        rows = []
        for place in dict.fromkeys((c.site, c.side) for c in self.channels):
            try:
                cal = calibrate(self.patient, *place)
            except PatientError as exc:
                rows.append({"site": place[0], "side": place[1], "error": str(exc)})
                continue
            rows.append(cal.to_dict())
        return rows

    # ------------------------------------------------------------------ program

    @param.depends("device", "n_channels", watch=True)
    def _rebuild_channels(self) -> None:
        if not self._applying:
            self._make_channels({c.channel_id: c.values() for c in self.channels})

    def _make_channels(self, old: dict) -> None:
        main = {s["channel"]: s for s in self._phase_tmpl["main"]["stimulation"]}
        chans = []
        for ch in self._template["channels"][: self.n_channels]:
            tmpl = main[ch["id"]]
            values = dict(old.get(ch["id"]) or {}) or {"site": ch["site"], "side": ch["side"], "spacing_cm": ch["spacing_cm"],
                                            "frequency_hz": tmpl["frequency_hz"],
                                            "pulse_width_us": tmpl["waveform"]["pulse_width_us"],
                                            "on_s": tmpl["on_s"], "off_s": tmpl["off_s"],
                                            "ramp_up_s": tmpl["ramp_up_s"], "ramp_down_s": tmpl["ramp_down_s"]}
            values["channel_id"] = ch["id"]
            chan = ChannelSettings.for_device(self.device, **values)
            chan.param.watch(lambda *_: self.request_prediction(), list(ChannelSettings.CONTROLS))
            chan.param.watch(self._placement_changed, list(ChannelSettings.PLACEMENT))
            chans.append(chan)
        self.channels = chans

    def template_channels(self) -> list[dict]:
        """The electrode pairs the design can have, in order (a 1-channel design has the first)."""
        return json.loads(json.dumps(self._template["channels"]))

    def _placement_changed(self, *_events) -> None:
        self.placement_version += 1

    def apply_program(self, program) -> bool:
        """Take the channels and main-phase stimulation of ``program`` into the design.

        Relative amplitudes are resolved to mA for the store's patient exactly as compiling does
        (:func:`emsim.body.resolved_program.resolve_program`). The session's phase lengths
        (warm-up, main phase, cool-down) stay as set: a program from the optimiser was scored on
        a shortened main phase, which says nothing about how long the session should be.

        A program the design controls cannot represent (more channels than the design has,
        other channel ids, several main phases, another schedule or timing, an electrode size
        not on offer, a value outside the device's range, a waveform or pattern detail the
        controls lack) is refused whole: the design stays as it was and :attr:`program_error`
        says why.

        Returns
        -------
        bool
            ``True`` when the design now holds the program.
        """
        try:
            values = self._values_of(program)
        except EmsimError as exc:
            self.program_error = str(exc)
            return False
        self.program_error = ""
        self._applying = True
        try:
            self.n_channels = len(values)
        finally:
            self._applying = False
        self._make_channels(values)
        return True

    def _values_of(self, program) -> dict:
        """Channel settings per channel id that reproduce ``program``; ProgramError if none do."""
        tmpl_ids = [c["id"] for c in self._template["channels"]]
        ids = [c.id for c in program.channels]
        if ids != tmpl_ids[: len(ids)] or len(ids) not in self.param.n_channels.objects:
            raise ProgramError("the design has other channels", path="channels", value=", ".join(ids),
                               allowed=" or ".join(", ".join(tmpl_ids[:n]) for n in self.param.n_channels.objects))
        mains = [ph for ph in program.phases if ph.kind == "main"]
        if len(mains) != 1:
            raise ProgramError("the design has exactly one main phase", path="phases", value=len(mains), allowed=1)
        template = from_dict(self._template)
        tmpl_timing = next(ph for ph in template.phases if ph.kind == "main").timing
        if mains[0].timing != tmpl_timing:
            raise ProgramError("the design's channels keep the template's timing", path="phases.main.timing",
                               value=mains[0].timing.mode, allowed=tmpl_timing.mode)
        if program.schedule != template.schedule:
            raise ProgramError("the design keeps the template's schedule", path="schedule",
                               value=program.schedule.sessions_per_week, allowed=str(TEMPLATE_FILE.name))
        if any(isinstance(st.amplitude, RelativeAmplitude) for st in mains[0].stimulation):
            if self.patient is None:
                raise ProgramError("relative amplitudes need a patient with measured thresholds",
                                   path="phases.main.stimulation.amplitude", value="relative",
                                   allowed="mA, or load the patient first")
            program = resolve_program(program, self.patient)[0]
            mains = [ph for ph in program.phases if ph.kind == "main"]
        stims = {st.channel: st for st in mains[0].stimulation}
        current = {c.channel_id: c.values() for c in self.channels}
        values = {}
        for ch in program.channels:
            v = dict(current.get(ch.id) or {}, channel_id=ch.id, **_placement_values(ch))
            st = stims.get(ch.id)
            v.update(_stimulation_values(st) if st is not None else {"enabled": False})
            chan = ChannelSettings.for_device(self.device, **v)
            _same_or_refuse(f"channels[{ch.id}]", ch.model_dump(mode="json", exclude_none=True),
                            Channel.model_validate_json(json.dumps(chan.channel())).model_dump(mode="json", exclude_none=True))
            if st is not None:
                _same_or_refuse(f"phases.main.stimulation[{ch.id}]", st.model_dump(mode="json", exclude_none=True),
                                Stimulation.model_validate_json(json.dumps(chan.stimulation())).model_dump(mode="json",
                                                                                          exclude_none=True))
            values[ch.id] = chan.values()
        return values

    def program_dict(self, preview_s: float | None = None) -> dict | None:
        """The designed program as a document.

        Parameters
        ----------
        preview_s : float, optional
            Only the first ``preview_s`` of the main phase (the quick preview); ``None`` gives the
            whole session: warm-up, main phase and cool-down as set.
        """
        active = [c for c in self.channels if c.enabled]
        if not active:
            return None
        doc = json.loads(json.dumps(self._template))
        doc["name"] = "Program designed in the emsim workbench"
        doc["description"] = "Designed in the emsim workbench. Research use only: no clinical clearance."
        doc["channels"] = [c.channel() for c in self.channels]
        main = dict(self._phase_tmpl["main"], stimulation=[c.stimulation() for c in active])
        if preview_s is not None:
            doc["phases"] = [dict(main, duration_s=float(min(preview_s, self.main_s)))]
        else:
            doc["phases"] = [*self._side_phase("warm_up", active), dict(main, duration_s=float(self.main_s)),
                             *self._side_phase("cool_down", active)]
        doc["provenance"] = {"emsim_version": _emsim_version(), "created_by": "emsim workbench user",
                             "created_with": "emsim workbench", "created": _dt.date.today().isoformat(),
                             "model_versions": {}}
        return doc

    def _side_phase(self, kind: str, active) -> list[dict]:
        """Warm-up or cool-down: the template's phase at the set length and share of each main current."""
        duration = float(getattr(self, f"{kind}_s"))
        if duration <= 0:
            return []
        share = getattr(self, f"{kind}_amplitude_pct") / 100.0
        tmpl = self._phase_tmpl[kind]
        ramps = next(iter(tmpl["stimulation"]))
        # Short phases shrink their ramps so that ramp up + ramp down still fit the on time.
        up, down = (min(ramps[k], duration / 3.0) for k in ("ramp_up_s", "ramp_down_s"))
        stim = [dict(c.stimulation(), frequency_hz=float(ramps["frequency_hz"]), pattern={"type": "constant"},
                     amplitude={"ma": float(c.amplitude_ma) * share}, on_s=duration, off_s=0.0,
                     ramp_up_s=up, ramp_down_s=down) for c in active]
        return [dict(tmpl, duration_s=duration, stimulation=stim)]

    def program(self, preview_s: float | None = None):
        doc = self.program_dict(preview_s)
        return None if doc is None else from_dict(doc)

    # ------------------------------------------------------------------ prediction

    @param.depends("patient", "preview", "full_session", "channels", "session", "device", *PHASES, watch=True)
    def _inputs_changed(self) -> None:
        self.request_prediction()

    def request_prediction(self) -> None:
        """Ask for a new prediction; rapid requests collapse into one (debounce), older ones go stale."""
        if not self._auto:
            return
        self._gen += 1
        gen = self._gen
        self._idle.clear()
        if self._timer is not None:
            self._timer.cancel()
        # The worker runs in a copy of the caller's context: a served page's document travels with
        # it, so the views update through the server's event loop instead of from a foreign thread
        # (whose changes reached the browser only with the next unrelated event).
        self._timer = threading.Timer(self._debounce_s, contextvars.copy_context().run, args=(self._run, gen))
        self._timer.daemon = True
        self._timer.start()

    def predict_now(self):
        """The quick preview of the current design, synchronously (tests and the CLI use this)."""
        return self._evaluate(self.program_dict(PREVIEW_CHOICES_S[self.preview]))

    def predict_full(self, elsewhere: bool = False):
        """The whole session of the current design, synchronously.

        With ``elsewhere`` it runs in the workbench's worker process: a long evaluation there
        does not hold this process's interpreter lock, so the page stays responsive and a
        preview can run at the same time on the other core.
        """
        return self._evaluate(self.program_dict(), elsewhere=elsewhere)

    def _evaluate(self, doc: dict | None, elsewhere: bool = False):
        """``evaluate`` of a program document, cached by everything the prediction depends on."""
        if doc is None:
            return None
        body = {k: v for k, v in doc.items() if k != "provenance"}
        key = (json.dumps(body, sort_keys=True), self.patient_json(), self.device, self.session)
        with self._cache_lock:
            if key in self._cache:
                self._cache.move_to_end(key)
                return self._cache[key]
        if elsewhere:
            kind, value = _worker().submit(_evaluate_document, json.dumps(doc), self.patient_json(), self.device,
                                           self.session).result()
            if kind == "error":
                raise EmsimError(value)
            pred = value
        else:
            pred = evaluate(from_dict(doc), self.patient, device=self.device, session=self.session)
        with self._cache_lock:
            self._cache[key] = pred
            while len(self._cache) > _EVAL_CACHE_SIZE:
                self._cache.popitem(last=False)
        return pred

    def _attempt(self, fn):
        try:
            return fn(), ""
        except EmsimError as exc:
            return None, str(exc)
        except Exception as exc:  # noqa: BLE001  (a bug must not leave the page waiting forever)
            return None, f"internal error, please report: {exc!r}"

    def _run(self, gen: int) -> None:
        with self._preview_lock:
            if gen != self._gen:
                return
            self.busy = True
            pred, err = self._attempt(self.predict_now)
            if gen != self._gen:
                return
            more = self.full_session and pred is not None
            self.param.update(prediction=pred, prediction_error=err, prediction_stage="preview",
                              updates=self.updates + 1, busy=more)
            if not more:
                self._idle.set()
                return
        with self._full_lock:  # a stale full session still running finishes here, then is dropped
            if gen != self._gen:
                return
            pred, err = self._attempt(lambda: self.predict_full(elsewhere=True))
            if gen != self._gen:
                return
            self.param.update(prediction=pred, prediction_error=err, prediction_stage="full",
                              updates=self.updates + 1, busy=False)
            self._idle.set()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until no prediction is pending (for tests); False on timeout."""
        return self._idle.wait(timeout)

    # ------------------------------------------------------------------ export

    def export(self) -> tuple[str | None, object]:
        """The whole program validated for patient, device and session.

        Returns
        -------
        (text, report)
            ``text`` is the program JSON, or ``None`` when the safety check has errors; with the
            latest prediction in its provenance when that prediction is of this very session.
        """
        doc = self.program_dict()
        if doc is None:
            return None, None
        report = check(from_dict(doc), self.patient, self.device, session=self.session)
        if not report.ok:
            return None, report
        pred = self.prediction
        if pred is not None and self.prediction_stage == "full" and _same_design(pred.program, from_dict(doc)):
            _add_outcomes(doc, pred)
        return dumps(from_dict(doc)), report

    def export_bundle(self, predict: bool = True) -> ExportBundle:
        """Program, device-quantised program with its report, and the session's prediction.

        Parameters
        ----------
        predict : bool
            Predict the whole session if no matching prediction exists yet (cached); with
            ``False`` the outcomes are left out unless already predicted.
        """
        doc = self.program_dict()
        if doc is None:
            return ExportBundle(None, None)
        program = from_dict(doc)
        report = check(program, self.patient, self.device, session=self.session)
        if not report.ok:
            return ExportBundle(None, report)
        pred = self.prediction if self.prediction_stage == "full" else None
        if pred is None or not _same_design(pred.program, program):
            pred = self._evaluate(doc) if predict else None
        if pred is not None:
            _add_outcomes(doc, pred)
        program = from_dict(doc)
        train = compile_program(program, self.patient, session=self.session)
        qtrain, qreport = quantise(train, self.device)
        qdoc = json.loads(dumps(qtrain.program))
        qdoc["provenance"]["created_with"] = f"emsim workbench, quantised for {self.device} (emsim.program.quantise)"
        return ExportBundle(dumps(program), report, dumps(from_dict(qdoc)), qreport, pred)


_WORKER = None
_WORKER_LOCK = threading.Lock()


def _worker() -> ProcessPoolExecutor:
    """One worker process per server for full sessions (spawned: safe next to the server's threads)."""
    global _WORKER
    with _WORKER_LOCK:
        if _WORKER is None:
            _WORKER = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                          initializer=_exit_with_parent, initargs=(os.getpid(),))
        return _WORKER


def _exit_with_parent(parent_pid: int) -> None:
    """In the worker: leave when the server is gone (a terminated server cannot shut its pool down)."""

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(1.0)
        os._exit(0)

    threading.Thread(target=watch, daemon=True).start()


def _evaluate_document(doc_json: str, patient_json: str, device: str, session: int):
    """``evaluate`` in the worker process; user errors come back as text (exceptions may not pickle)."""
    try:
        patient = loads_patient(patient_json) if patient_json else None
        return "ok", evaluate(from_dict(json.loads(doc_json)), patient, device=device, session=session)
    except EmsimError as exc:
        return "error", str(exc)


def _add_outcomes(doc: dict, pred) -> None:
    outcomes = {k: _scalar(v) for k, v in pred.scalars.items()}
    outcomes.update(evidence=pred.evidence, session=pred.session, patient=getattr(pred.patient, "id", None))
    doc["provenance"]["predicted_outcomes"] = outcomes


def _same_design(a, b) -> bool:
    """Same program apart from provenance."""
    return a.model_dump(exclude={"provenance"}) == b.model_dump(exclude={"provenance"})


def _scalar(v):
    return round(float(v), 6) if isinstance(v, float) or hasattr(v, "dtype") else v


def _emsim_version() -> str:
    import emsim

    return getattr(emsim, "__version__", "0.1.0")
