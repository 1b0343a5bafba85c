"""Patient & placement tab: the patient file (load, create, edit, save) and the electrode pairs.

Patient files stay on the user's machine: they come from the shipped examples, an upload or
a new blank file, and leave only as a download. Nothing is written on the server.
"""

from __future__ import annotations

import io

import holoviews as hv
import panel as pn
import param

from apps.body_diagram import diagram, region_at
from apps.prompt_widgets import prompt_widget
from apps.store import MAX_UPLOAD_BYTES, PLACEMENT_SITES, ChannelSettings, WorkbenchStore
from emsim.body import get_site
from emsim.program.model import THRESHOLD_KINDS

__all__ = ["PatientView", "NO_PATIENT", "ANSWERS"]

NO_PATIENT = "(no patient)"
#: Questionnaire answer labels and the values the patient file stores.
ANSWERS = {"not asked": None, "no": False, "yes": True}
_PLACEMENT_LABELS = {"site": "Site", "side": "Side", "electrode": "Electrode size", "spacing_cm": "Spacing (cm)"}


class PatientView(pn.viewable.Viewer):
    """Patient file, questionnaire, thresholds, calibration and the placement of the pairs."""

    store = param.ClassSelector(class_=WorkbenchStore)
    patient_file = param.Selector(default=NO_PATIENT, objects=[NO_PATIENT], label="Patient file")
    active_channel = param.Selector(default=None, objects=[], label="Channel to place")

    def __init__(self, **params):
        super().__init__(**params)
        self._files = self.store.patient_files()
        self.param.patient_file.objects = [NO_PATIENT, *self._files]
        # This FileInput has no size cap of its own; the store refuses files above MAX_UPLOAD_BYTES
        # (and the server's websocket message limit caps what reaches it at all).
        self._upload = pn.widgets.FileInput(accept=".json", multiple=False, label="Upload a patient file")
        self._upload.param.watch(self._uploaded, "value")
        self._new_id = pn.widgets.TextInput(label="New patient id", placeholder="e.g. P-0001", width=180)
        self._new = pn.widgets.Button(label="New patient", color="primary", width=120)
        self._new.on_click(lambda _: self.store.new_patient(self._new_id.value.strip()))
        self._save = pn.widgets.FileDownload(callback=self._patient_file, filename="patient.json",
                                             label="Save patient file (download)", disabled=True)
        self._threshold_form = _ThresholdForm(store=self.store)
        self._fat_form = _FatForm(store=self.store)
        self._sync_channels()
        self._save_state()
        self._tap = hv.streams.Tap(x=None, y=None)
        self._tap.param.watch(lambda *_: self.place_at(self._tap.x, self._tap.y), ["x", "y"])

    # ------------------------------------------------------------------ patient file

    @param.depends("patient_file", watch=True)
    def _picked(self) -> None:
        if self.patient_file != NO_PATIENT:
            self.store.load_patient_file(self._files[self.patient_file])

    def _uploaded(self, event) -> None:
        if event.new:
            self.store.load_patient_bytes(event.new, self._upload.filename or "upload")

    def _patient_file(self):
        return io.StringIO(self.store.patient_json())

    @param.depends("store.patient", watch=True)
    def _save_state(self) -> None:
        p = self.store.patient
        self._save.disabled = p is None
        self._save.filename = f"{p.id}.json" if p is not None else "patient.json"

    @param.depends("store.patient", "store.patient_error")
    def _summary(self):
        s = self.store
        lines = []
        if s.patient_error:
            lines.append(f"**Refused:** {s.patient_error}")
        p = s.patient
        if p is None:
            lines.append("No patient loaded. Pick a file, upload one (JSON, at most "
                         f"{MAX_UPLOAD_BYTES // 1024} kB) or start a new one. Patient files stay on this "
                         "machine: save them with the download button.")
            return pn.pane.Markdown("\n\n".join(lines), css_classes=["emsim-patient-summary"])
        bmi = f", BMI {p.bmi:.1f}" if p.bmi else ""
        lines.append(f"### Patient `{p.id}` ({s.patient_source})\n"
                     f"{p.sex or 'sex not given'}, {p.age_years or '?'} years{bmi}; "
                     f"{p.history.sessions_completed} sessions completed.")
        fat = ", ".join(f"{f.site} {f.side}: {f.value_mm:g} mm ({f.method})" for f in p.fat_thickness)
        lines.append(f"**Fat thickness:** {fat or 'not measured (model default used)'}")
        return pn.pane.Markdown("\n\n".join(lines), css_classes=["emsim-patient-summary"])

    # ------------------------------------------------------------------ questionnaire

    @param.depends("store.patient")
    def _questionnaire(self):
        if self.store.patient is None:
            return pn.pane.Markdown("")
        rows = []
        for item in self.store.questionnaire():
            tag = "**BLOCKING** (absolute)" if item["blocking"] else "caution (relative)"
            value = next(k for k, v in ANSWERS.items() if v is item["answer"])
            widget = pn.widgets.RadioButtonGroup(options=list(ANSWERS), value=value, width=210,
                                                 color="danger" if item["blocking"] else "default")
            widget.param.watch(lambda e, i=item["id"]: self.store.set_answer(i, ANSWERS[e.new]), "value")
            rows.append(pn.Row(widget, pn.pane.Markdown(f"{item['question']} — {tag}", width=640, margin=(0, 10))))
        return pn.Card(*rows, title="Contraindication questionnaire (every item of the catalogue)",
                       collapsed=False, css_classes=["emsim-questionnaire"])

    @param.depends("store.patient")
    def _contraindications(self):
        found = self.store.contraindications()
        if self.store.patient is None:
            return pn.pane.Markdown("")
        if not found:
            return pn.pane.Alert("No contraindication answered 'yes' in the questionnaire.", alert_type="success")
        rows = [f"- {'**BLOCKING** (absolute)' if f['blocking'] else 'caution (relative)'}: "
                f"{f['question']} — {f['where']} (source: {f['source']})" for f in found]
        kind = "danger" if any(f["blocking"] for f in found) else "warning"
        title = ("Stimulation is blocked for this patient" if kind == "danger"
                 else "Relative contraindications: proceed only with clinical judgement")
        return pn.pane.Alert(f"**{title}**\n\n" + "\n".join(rows), alert_type=kind)

    # ------------------------------------------------------------------ thresholds and calibration

    @param.depends("store.patient")
    def _thresholds(self):
        p = self.store.patient
        if p is None:
            return pn.pane.Markdown("")
        if not p.thresholds:
            return pn.pane.Markdown("**Measured thresholds:** none. The design uses absolute currents and the "
                                    "model's population thresholds.")
        rows = ["| # | site | side | kind | pulse width (µs) | frequency (Hz) | current (mA) |",
                "|---|---|---|---|---|---|---|"]
        rows += [f"| {i} | {t.site} | {t.side} | {t.kind} | {t.pulse_width_us:g} | {t.frequency_hz:g} | "
                 f"{t.amplitude_ma:g} |" for i, t in enumerate(p.thresholds)]
        return pn.pane.Markdown("**Measured thresholds**\n\n" + "\n".join(rows), css_classes=["emsim-thresholds-table"])

    @param.depends("store.patient", "store.placement_version", "store.n_channels")
    def _calibration(self):
        if self.store.patient is None:
            return pn.pane.Markdown("")
        rows = ["| site | side | motor gain | cutaneous scale | sensitivity |", "|---|---|---|---|---|"]
        for c in self.store.calibrations():
            if "error" in c:
                rows.append(f"| {c['site']} | {c['side']} | {c['error']} | | |")
                continue
            rows.append(f"| {c['site']} | {c['side']} | {_factor(c, 'motor_gain')} | "
                        f"{_factor(c, 'cutaneous_scale')} | {_factor(c, 'sensitivity')} |")
        return pn.pane.Markdown("**Calibration** (person factors fitted to the measured thresholds, 95 % range; "
                                "1 = population model, nothing measured)\n\n" + "\n".join(rows))

    # ------------------------------------------------------------------ placement

    @param.depends("store.channels", watch=True)
    def _sync_channels(self) -> None:
        ids = [c.channel_id for c in self.store.channels]
        self.param.active_channel.objects = ids
        if self.active_channel not in ids:
            self.active_channel = ids[0] if ids else None

    def channel(self, channel_id: str | None = None) -> ChannelSettings | None:
        cid = channel_id or self.active_channel
        return next((c for c in self.store.channels if c.channel_id == cid), None)

    def place_at(self, x: float | None, y: float | None) -> bool:
        """A click on the diagram: move the selected channel's pair to the region there."""
        hit = region_at(x, y)
        chan = self.channel()
        if hit is None or chan is None:
            return False
        site, side = hit
        # keep a bilateral placement bilateral when the site allows it
        side = "bilateral" if chan.side == "bilateral" and chan.site == site else side
        chan.param.update(site=site, side=side)
        return True

    @param.depends("active_channel", "store.placement_version", "store.channels")
    def _diagram(self, x=None, y=None):
        # x, y: the Tap stream's last click (handled by its watcher, not here)
        return diagram({c.channel_id: (c.site, c.side) for c in self.store.channels}, self.active_channel)

    @param.depends("store.channels")
    def _placement_controls(self):
        cols = []
        for c in self.store.channels:
            cols.append(pn.Column(f"**{c.channel_id}**", pn.Param(
                c, parameters=list(ChannelSettings.PLACEMENT), show_name=False, width=240,
                widgets={k: {"label": v, "css_classes": [f"emsim-{k}-{c.channel_id}"]}
                         for k, v in _PLACEMENT_LABELS.items()})))
        return pn.Row(*cols)

    def __panel__(self):
        # The stream is one of the map's own streams: set as its source afterwards, the rendered
        # plot never subscribed to the browser's tap events, so a real click did nothing.
        dmap = hv.DynamicMap(self._diagram, streams=[self._tap])
        sites = ", ".join(get_site(s).name.split(" (")[0] for s in PLACEMENT_SITES)
        return pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.patient_file, width=220), self._upload,
                   self._new_id, self._new, self._save),
            self._summary, self._contraindications, self._questionnaire,
            pn.Row(self._thresholds, pn.Column(self._threshold_form, self._fat_form)),
            pn.panel(self._calibration, loading_indicator=True),
            pn.pane.Markdown(f"### Electrode placement\nSites: {sites}. Pick the channel, then click its region "
                             "on the diagram or choose site and side below."),
            pn.Row(prompt_widget(pn.widgets.RadioButtonGroup).from_param(self.param.active_channel)),
            pn.Row(pn.pane.HoloViews(dmap), self._placement_controls),
            name="Patient & placement")


class _ThresholdForm(pn.viewable.Viewer):
    """Add a measured threshold, or remove one by its row number."""

    store = param.ClassSelector(class_=WorkbenchStore)
    site = param.Selector(default=PLACEMENT_SITES[0], objects=list(PLACEMENT_SITES))
    side = param.Selector(default="left", objects=["left", "right", "bilateral"])
    kind = param.Selector(default="motor_threshold", objects=list(THRESHOLD_KINDS))
    pulse_width_us = param.Number(default=300.0, bounds=(10.0, 1000.0), label="Pulse width (µs)")
    frequency_hz = param.Number(default=50.0, bounds=(0.5, 300.0), label="Frequency (Hz)")
    amplitude_ma = param.Number(default=20.0, bounds=(0.1, 200.0), label="Current (mA)")
    add = param.Event(label="Add threshold")
    remove_row = param.Integer(default=0, bounds=(0, 255), label="Row #")
    remove = param.Event(label="Remove row")

    @param.depends("add", watch=True)
    def _add(self) -> None:
        self.store.add_threshold(self.site, self.side, self.kind, self.pulse_width_us, self.frequency_hz,
                                 self.amplitude_ma)

    @param.depends("remove", watch=True)
    def _remove(self) -> None:
        self.store.remove_threshold(self.remove_row)

    def __panel__(self):
        return pn.Card(pn.Param(self, parameters=["site", "side", "kind", "pulse_width_us", "frequency_hz",
                                                  "amplitude_ma", "add", "remove_row", "remove"],
                                show_name=False, width=260,
                                widgets={"pulse_width_us": pn.widgets.FloatInput, "frequency_hz": pn.widgets.FloatInput,
                                         "amplitude_ma": pn.widgets.FloatInput, "remove_row": pn.widgets.IntInput}),
                       title="Measured thresholds: add / remove", collapsed=True)


class _FatForm(pn.viewable.Viewer):
    """Set the subcutaneous fat thickness over a site."""

    store = param.ClassSelector(class_=WorkbenchStore)
    site = param.Selector(default=PLACEMENT_SITES[0], objects=list(PLACEMENT_SITES))
    side = param.Selector(default="left", objects=["left", "right", "bilateral"])
    method = param.Selector(default="ultrasound", objects=["ultrasound", "skinfold"])
    value_mm = param.Number(default=15.0, bounds=(0.1, 150.0), label="Thickness (mm)")
    set_fat = param.Event(label="Set fat thickness")

    @param.depends("set_fat", watch=True)
    def _set(self) -> None:
        self.store.set_fat(self.site, self.side, self.value_mm, self.method)

    def __panel__(self):
        return pn.Card(pn.Param(self, parameters=["site", "side", "method", "value_mm", "set_fat"], show_name=False,
                                width=260, widgets={"value_mm": pn.widgets.FloatInput}),
                       title="Fat thickness", collapsed=True)


def _factor(c: dict, key: str) -> str:
    rng = c.get(f"{key}_range")
    return f"{c[key]:.2f}" + (f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng else "")
