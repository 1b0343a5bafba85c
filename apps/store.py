"""The workbench's data: patient, placement, device, the program being designed, its prediction.

One :class:`WorkbenchStore` per browser session. Views read it and set its parameters; it
calls the public emsim API (``loads_patient``, ``calibrate``, ``from_dict``, ``check``,
``evaluate``, ``compile``, ``quantise``), so data flows one way: program → prediction → UI.
The pieces it is built from live in their own modules: the channel controls
(:mod:`apps.channel_settings`), the template and the design ↔ program conversion
(:mod:`apps.design_template`), when predictions run (:mod:`apps.prediction_schedule`), where
whole sessions run (:mod:`apps.prediction_worker`), the cache (:mod:`apps.prediction_cache`)
and the export (:mod:`apps.export_bundle`).
"""

from __future__ import annotations

import json
from pathlib import Path

import param

from apps.channel_settings import ELECTRODE_OPTIONS, PLACEMENT_SITES, ChannelSettings
from apps.design_template import PHASE_LENGTHS, TEMPLATE_FILE, DesignTemplate
from apps.export_bundle import ExportBundle, build_export, same_design, with_outcomes
from apps.prediction_cache import PredictionCache
from apps.prediction_schedule import PredictionSchedule
from apps.prediction_worker import evaluate_elsewhere
from emsim.body import load_patient, loads_patient
from emsim.body.calibration import calibrate
from emsim.body.patient import contraindication_items, dumps_patient
from emsim.errors import EmsimError, InputFileError, PatientError
from emsim.program import dumps, from_dict
from emsim.program.device_profile import device_ids
from emsim.safety import check
from emsim.simulate import evaluate

__all__ = ["ChannelSettings", "WorkbenchStore", "ExportBundle", "PATIENT_DIR", "TEMPLATE_FILE",
           "MAX_UPLOAD_BYTES", "PREVIEW_CHOICES_S", "DEBOUNCE_S", "ELECTRODE_OPTIONS", "PLACEMENT_SITES"]

PATIENT_DIR = Path(__file__).resolve().parent.parent / "models" / "patients"
#: Patient files are a few kB; anything far larger is not a patient file.
MAX_UPLOAD_BYTES = 256 * 1024
#: Lengths of the main phase to predict or play (the Optimise and Simulate tabs offer all three).
PREVIEW_CHOICES_S = {"quick preview (60 s)": 60.0, "2 min": 120.0, "full main phase (20 min)": 1200.0}
#: The Design tab's preview, which lands first; the full session follows if asked for.
_QUICK_PREVIEWS = ["quick preview (60 s)", "2 min"]
#: Changes closer together than this (a dragged slider sends one every ~16 ms) collapse into one
#: prediction; the first change after a quiet spell starts at once.
DEBOUNCE_S = 0.06


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

    PHASES = PHASE_LENGTHS

    def __init__(self, debounce_s: float = DEBOUNCE_S, auto_predict: bool = True, **params):
        super().__init__(**params)
        self._template = DesignTemplate(TEMPLATE_FILE)
        self._auto = auto_predict
        self._cache = PredictionCache()
        self._patient_json = "" if self.patient is None else dumps_patient(self.patient)
        self._applying = False
        self._schedule = PredictionSchedule(preview=self.predict_now, full=lambda: self.predict_full(elsewhere=True),
                                            wants_full=lambda: self.full_session, publish=self._publish,
                                            debounce_s=debounce_s)
        self._rebuild_channels()

    @property
    def deliver(self):
        """Where predictions are applied: ``(fn) -> None``; the page sets one that uses its event loop."""
        return self._schedule.deliver

    @deliver.setter
    def deliver(self, fn) -> None:
        self._schedule.deliver = fn

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
        return self._patient_json

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
        # serialised once here: every prediction's cache key needs it
        self._patient_json = "" if patient is None else dumps_patient(patient)
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

    @param.depends("patient", watch=True)
    def _patient_to_channels(self) -> None:
        for c in self.channels:
            c.patient = self.patient

    def _make_channels(self, old: dict) -> None:
        chans = []
        for ch in self._template.channels()[: self.n_channels]:
            values = dict(old.get(ch["id"]) or {}) or self._template.defaults(ch["id"])
            values["channel_id"] = ch["id"]
            chan = ChannelSettings.for_device(self.device, patient=self.patient, **values)
            chan.param.watch(self._channel_changed, list(ChannelSettings.CONTROLS))
            chan.param.watch(self._placement_changed, list(ChannelSettings.PLACEMENT))
            chans.append(chan)
        self.channels = chans

    def _channel_changed(self, *events) -> None:
        # In the relative mode the current follows the factor: the program did not change with it.
        chan = events[0].obj
        if chan.amplitude_mode == ChannelSettings.RELATIVE and all(e.name == "amplitude_ma" for e in events):
            return
        self.request_prediction()

    def template_channels(self) -> list[dict]:
        """The electrode pairs the design can have, in order (a 1-channel design has the first)."""
        return self._template.channels()

    def _placement_changed(self, *_events) -> None:
        self.placement_version += 1

    def apply_program(self, program) -> bool:
        """Take the channels and main-phase stimulation of ``program`` into the design.

        Amplitudes relative to the motor threshold stay relative where the patient has that
        threshold at the channel's site; other relative amplitudes are resolved to mA for the
        store's patient exactly as compiling does
        (:func:`emsim.program.resolve.resolve_amplitude`). The session's phase lengths
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
            values = self._template.settings_of(program, {c.channel_id: c.values() for c in self.channels},
                                                self.device, self.patient, self.param.n_channels.objects)
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

    def program_dict(self, preview_s: float | None = None) -> dict | None:
        """The designed program as a document.

        Parameters
        ----------
        preview_s : float, optional
            Only the first ``preview_s`` of the main phase (the quick preview); ``None`` gives the
            whole session: warm-up, main phase and cool-down as set.
        """
        return self._template.document(self.channels, {k: getattr(self, k) for k in PHASE_LENGTHS}, preview_s)

    def program(self, preview_s: float | None = None):
        doc = self.program_dict(preview_s)
        return None if doc is None else from_dict(doc)

    # ------------------------------------------------------------------ prediction

    @param.depends("patient", "preview", "full_session", "channels", "session", "device", *PHASE_LENGTHS, watch=True)
    def _inputs_changed(self) -> None:
        self.request_prediction()

    def request_prediction(self) -> None:
        """Ask for a new prediction (see :class:`apps.prediction_schedule.PredictionSchedule`)."""
        if self._auto:
            self._schedule.request()

    def _publish(self, values: dict, landed: bool) -> None:
        self.param.update(**values, **({"updates": self.updates + 1} if landed else {}))

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
        patient_json = self.patient_json()
        key = (json.dumps(body, sort_keys=True), patient_json, self.device, self.session)
        pred = self._cache.get(key)
        if pred is None:
            if elsewhere:
                pred = evaluate_elsewhere(doc, patient_json, self.device, self.session)
            else:
                pred = evaluate(from_dict(doc), self.patient, device=self.device, session=self.session)
            self._cache.put(key, pred)
        return pred

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until no prediction is pending (for tests); False on timeout."""
        return self._schedule.wait(timeout)

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
        if pred is not None and self.prediction_stage == "full" and same_design(pred.program, from_dict(doc)):
            doc = with_outcomes(doc, pred)
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
        pred = self.prediction if self.prediction_stage == "full" else None
        if doc is not None and predict and (pred is None or not same_design(pred.program, from_dict(doc))):
            if check(from_dict(doc), self.patient, self.device, session=self.session).ok:
                pred = self._evaluate(doc)
        return build_export(doc, self.patient, self.device, self.session, prediction=pred)
