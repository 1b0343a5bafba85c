"""The workbench's data: patient, device, the program being designed, and its prediction.

One :class:`WorkbenchStore` per browser session. Views read it and set its parameters; it
calls the public emsim API (``load_patient``, ``calibrate``, ``from_dict``, ``check``,
``evaluate``) and never the physiology modules, so data flows one way: program → prediction →
UI. Predictions run off the UI thread with a debounce, because ``evaluate`` takes about 1 s
for a two-minute preview and several seconds for a 20-minute session on this machine.
"""

from __future__ import annotations

import datetime as _dt
import json
import threading
from pathlib import Path

import param

from apps.limits import channel_limits
from emsim.body import load_patient, loads_patient
from emsim.body.calibration import calibrate
from emsim.body.patient import contraindication_items
from emsim.errors import EmsimError, InputFileError, PatientError
from emsim.program import dumps, from_dict, load
from emsim.program.device_profile import device_ids
from emsim.safety import check
from emsim.simulate import evaluate

__all__ = ["ChannelSettings", "WorkbenchStore", "PATIENT_DIR", "TEMPLATE_FILE", "MAX_UPLOAD_BYTES",
           "PREVIEW_CHOICES_S"]

_ROOT = Path(__file__).resolve().parent.parent
PATIENT_DIR = _ROOT / "models" / "patients"
TEMPLATE_FILE = _ROOT / "models" / "programs" / "paraspinal_strengthening.json"
#: Patient files are a few kB; anything far larger is not a patient file.
MAX_UPLOAD_BYTES = 256 * 1024
#: Session lengths offered for the live prediction; 1200 s is the template's full main phase.
PREVIEW_CHOICES_S = {"quick preview (60 s)": 60.0, "2 min": 120.0, "full main phase (20 min)": 1200.0}


class ChannelSettings(param.Parameterized):
    """What one channel does in the main phase; bounds are set per device by :meth:`for_device`."""

    channel_id = param.String(default="ES-L", constant=True)
    enabled = param.Boolean(default=True, doc="deliver stimulation on this channel")
    frequency_hz = param.Number(default=50.0, bounds=(0.5, 300.0), softbounds=(1.0, 120.0),
                                doc="pulse repetition rate, Hz")
    pulse_width_us = param.Number(default=300.0, bounds=(10.0, 1000.0), softbounds=(50.0, 500.0), step=10.0,
                                  doc="width of each phase, µs")
    amplitude_ma = param.Number(default=30.0, bounds=(0.0, 200.0), softbounds=(0.0, 80.0), step=0.5,
                                doc="peak current, mA")
    on_s = param.Number(default=10.0, bounds=(0.1, 7200.0), softbounds=(1.0, 30.0), step=0.5,
                        doc="delivery time per cycle, ramps included, s")
    off_s = param.Number(default=20.0, bounds=(0.0, 3600.0), softbounds=(0.0, 60.0), step=0.5,
                         doc="pause per cycle, s")
    ramp_up_s = param.Number(default=2.0, bounds=(0.0, 60.0), softbounds=(0.0, 5.0), step=0.5, doc="s")
    ramp_down_s = param.Number(default=2.0, bounds=(0.0, 60.0), softbounds=(0.0, 5.0), step=0.5, doc="s")

    CONTROLS = ("enabled", "frequency_hz", "pulse_width_us", "amplitude_ma", "on_s", "off_s",
                "ramp_up_s", "ramp_down_s")

    @classmethod
    def for_device(cls, device: str | None, **values) -> "ChannelSettings":
        """Settings whose hard bounds are the device's and the program format's limits."""
        lim = channel_limits(device)
        obj = cls(**{k: v for k, v in values.items() if k == "channel_id"})
        for name, hard in lim.hard.items():
            p = obj.param[name]
            p.bounds, p.softbounds = hard, lim.soft[name]
        obj.param["amplitude_ma"].step = lim.amplitude_step_ma
        # Values outside the new device's range are clipped to it, never rejected silently later.
        obj.param.update(**{k: _clip(obj, k, v) for k, v in values.items() if k != "channel_id"})
        return obj

    def stimulation(self, template: dict) -> dict:
        """The ``stimulation`` entry of the program for this channel, from the template's entry."""
        out = json.loads(json.dumps(template))
        out["channel"] = self.channel_id
        out["waveform"]["pulse_width_us"] = float(self.pulse_width_us)
        out.update(frequency_hz=float(self.frequency_hz), amplitude={"ma": float(self.amplitude_ma)},
                   on_s=float(self.on_s), off_s=float(self.off_s), ramp_up_s=float(self.ramp_up_s),
                   ramp_down_s=float(self.ramp_down_s))
        return out

    def values(self) -> dict:
        return {k: getattr(self, k) for k in ("channel_id",) + self.CONTROLS}


def _clip(obj, name, value):
    bounds = getattr(obj.param[name], "bounds", None)
    if bounds is None:
        return value
    return min(max(value, bounds[0]), bounds[1])


class WorkbenchStore(param.Parameterized):
    """Patient, device and program design of one session, and the prediction of that program."""

    patient = param.Parameter(default=None, doc="emsim.body.Patient or None")
    patient_source = param.String(default="", doc="file the patient came from")
    patient_error = param.String(default="", doc="why the last patient file was refused")
    device = param.Selector(default="rehastim2", objects=list(device_ids()))
    n_channels = param.Selector(default=2, objects=[1, 2], doc="1 or 2 lumbar channels")
    preview = param.Selector(default="quick preview (60 s)", objects=list(PREVIEW_CHOICES_S))
    channels = param.List(default=[], item_type=ChannelSettings)
    session = param.Integer(default=1, bounds=(1, 200), softbounds=(1, 12),
                            doc="session of the schedule to predict (the first ones run shorter and weaker)")

    prediction = param.Parameter(default=None, doc="latest emsim.simulate.Prediction")
    prediction_error = param.String(default="")
    busy = param.Boolean(default=False, doc="a prediction is running")
    updates = param.Integer(default=0, doc="predictions landed so far (the page shows it)")

    def __init__(self, debounce_s: float = 0.15, auto_predict: bool = True, **params):
        super().__init__(**params)
        self._template = json.loads(dumps(load(TEMPLATE_FILE)))
        self._main = next(ph for ph in self._template["phases"] if ph["kind"] == "main")
        self._debounce_s = debounce_s
        self._auto = auto_predict
        self._gen = 0
        self._eval_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._timer: threading.Timer | None = None
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

    def _set_patient(self, patient, source: str) -> None:
        self.patient_error = ""
        self.param.update(patient=patient, patient_source=source)

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
        for ch in self._template["channels"][: self.n_channels]:
            try:
                cal = calibrate(self.patient, ch["site"], ch["side"])
            except PatientError as exc:
                rows.append({"site": ch["site"], "side": ch["side"], "error": str(exc)})
                continue
            rows.append(cal.to_dict())
        return rows

    # ------------------------------------------------------------------ program

    @param.depends("device", "n_channels", watch=True)
    def _rebuild_channels(self) -> None:
        old = {c.channel_id: c.values() for c in self.channels}
        chans = []
        for ch in self._template["channels"][: self.n_channels]:
            tmpl = next(s for s in self._main["stimulation"] if s["channel"] == ch["id"])
            values = old.get(ch["id"]) or {"frequency_hz": tmpl["frequency_hz"],
                                            "pulse_width_us": tmpl["waveform"]["pulse_width_us"],
                                            "on_s": tmpl["on_s"], "off_s": tmpl["off_s"],
                                            "ramp_up_s": tmpl["ramp_up_s"], "ramp_down_s": tmpl["ramp_down_s"]}
            values["channel_id"] = ch["id"]
            chan = ChannelSettings.for_device(self.device, **values)
            chan.param.watch(lambda *_: self.request_prediction(), list(ChannelSettings.CONTROLS))
            chans.append(chan)
        self.channels = chans

    def program_dict(self, duration_s: float | None = None) -> dict | None:
        """The designed program as a document: the template's channels and schedule, one main phase."""
        active = [c for c in self.channels if c.enabled]
        if not active:
            return None
        doc = json.loads(json.dumps(self._template))
        ids = {c.channel_id for c in self.channels}
        doc["name"] = "Lumbar program designed in the emsim workbench"
        doc["channels"] = [ch for ch in doc["channels"] if ch["id"] in ids]
        main = json.loads(json.dumps(self._main))
        tmpl = {s["channel"]: s for s in main["stimulation"]}
        main["stimulation"] = [c.stimulation(tmpl[c.channel_id]) for c in active]
        main["duration_s"] = float(duration_s or self._main["duration_s"])
        doc["phases"] = [main]
        doc["provenance"] = {"emsim_version": _emsim_version(), "created_by": "emsim workbench user",
                             "created_with": "emsim workbench", "created": _dt.date.today().isoformat(),
                             "model_versions": {}}
        return doc

    def program(self, duration_s: float | None = None):
        doc = self.program_dict(duration_s)
        return None if doc is None else from_dict(doc)

    # ------------------------------------------------------------------ prediction

    @param.depends("patient", "preview", "channels", "session", "device", watch=True)
    def _inputs_changed(self) -> None:
        self.request_prediction()

    def request_prediction(self) -> None:
        """Ask for a new prediction; rapid requests collapse into one (debounce)."""
        if not self._auto:
            return
        self._gen += 1
        gen = self._gen
        self._idle.clear()
        if self._timer is not None:
            self._timer.cancel()
        self._timer = threading.Timer(self._debounce_s, self._run, args=(gen,))
        self._timer.daemon = True
        self._timer.start()

    def predict_now(self):
        """Evaluate the current design synchronously (the tests and the CLI use this)."""
        program = self.program(PREVIEW_CHOICES_S[self.preview])
        if program is None:
            return None
        return evaluate(program, self.patient, device=self.device, session=self.session)

    def _run(self, gen: int) -> None:
        with self._eval_lock:
            if gen != self._gen:
                return
            self.busy = True
            try:
                pred, err = self.predict_now(), ""
            except EmsimError as exc:
                pred, err = None, str(exc)
            if gen == self._gen:
                self.param.update(prediction=pred, prediction_error=err, updates=self.updates + 1, busy=False)
                self._idle.set()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until no prediction is pending (for tests); False on timeout."""
        return self._idle.wait(timeout)

    # ------------------------------------------------------------------ export

    def export(self) -> tuple[str | None, object]:
        """The full program (main phase as designed) validated for patient and device.

        Returns
        -------
        (text, report)
            ``text`` is the program JSON, or ``None`` when the safety check has errors.
        """
        doc = self.program_dict()
        if doc is None:
            return None, None
        program = from_dict(doc)
        report = check(program, self.patient, self.device, session=self.session)
        if not report.ok:
            return None, report
        pred = self.prediction
        if pred is not None and pred.program is not None and _same_design(pred.program, program):
            doc["provenance"]["predicted_outcomes"] = {k: _scalar(v) for k, v in pred.scalars.items()}
        return dumps(from_dict(doc)), report


def _same_design(a, b) -> bool:
    """Same stimulation settings (the preview differs from the export in duration only)."""
    sa = [s.model_dump() for ph in a.phases for s in ph.stimulation]
    sb = [s.model_dump() for ph in b.phases for s in ph.stimulation]
    return sa == sb and a.phases[0].duration_s == b.phases[0].duration_s


def _scalar(v):
    return round(float(v), 6) if isinstance(v, float) or hasattr(v, "dtype") else v


def _emsim_version() -> str:
    import emsim

    return getattr(emsim, "__version__", "0.1.0")
