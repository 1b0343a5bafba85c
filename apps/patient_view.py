"""Patient & placement tab: load a patient file, see contraindications, thresholds and calibration."""

from __future__ import annotations

import panel as pn
import param

from apps.store import MAX_UPLOAD_BYTES, WorkbenchStore

__all__ = ["PatientView", "NO_PATIENT"]

NO_PATIENT = "(no patient)"


class PatientView(pn.viewable.Viewer):
    """Choose a shipped patient or upload one; everything shown comes from the store."""

    store = param.ClassSelector(class_=WorkbenchStore)
    patient_file = param.Selector(default=NO_PATIENT, objects=[NO_PATIENT], label="Patient file")

    def __init__(self, **params):
        super().__init__(**params)
        self._files = self.store.patient_files()
        self.param.patient_file.objects = [NO_PATIENT, *self._files]
        # This FileInput has no size cap of its own; the store refuses files above MAX_UPLOAD_BYTES
        # (and the server's websocket message limit caps what reaches it at all).
        self._upload = pn.widgets.FileInput(accept=".json", multiple=False, label="Upload a patient file")
        self._upload.param.watch(self._uploaded, "value")

    @param.depends("patient_file", watch=True)
    def _picked(self) -> None:
        if self.patient_file != NO_PATIENT:
            self.store.load_patient_file(self._files[self.patient_file])

    def _uploaded(self, event) -> None:
        if event.new:
            self.store.load_patient_bytes(event.new, self._upload.filename or "upload")

    @param.depends("store.patient", "store.patient_error")
    def _summary(self):
        s = self.store
        lines = []
        if s.patient_error:
            lines.append(f"**Patient file refused:** {s.patient_error}")
        p = s.patient
        if p is None:
            lines.append("No patient loaded. Pick a file above or upload one (JSON, "
                         f"at most {MAX_UPLOAD_BYTES // 1024} kB; it stays on this machine).")
            return pn.pane.Markdown("\n\n".join(lines))
        bmi = f", BMI {p.bmi:.1f}" if p.bmi else ""
        lines.append(f"### Patient `{p.id}` ({s.patient_source})\n"
                     f"{p.sex or 'sex not given'}, {p.age_years or '?'} years{bmi}; "
                     f"{p.history.sessions_completed} sessions completed.")
        fat = ", ".join(f"{f.site} {f.side}: {f.value_mm:g} mm ({f.method})" for f in p.fat_thickness)
        lines.append(f"**Fat thickness:** {fat or 'not measured (model default used)'}")
        return pn.pane.Markdown("\n\n".join(lines), css_classes=["emsim-patient-summary"])

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

    @param.depends("store.patient")
    def _thresholds(self):
        p = self.store.patient
        if p is None:
            return pn.pane.Markdown("")
        if not p.thresholds:
            return pn.pane.Markdown("**Measured thresholds:** none. Relative amplitudes cannot be resolved; "
                                    "the design uses absolute currents and the model's population thresholds.")
        rows = ["| site | side | kind | pulse width (µs) | frequency (Hz) | current (mA) |", "|---|---|---|---|---|---|"]
        rows += [f"| {t.site} | {t.side} | {t.kind} | {t.pulse_width_us:g} | {t.frequency_hz:g} | {t.amplitude_ma:g} |"
                 for t in p.thresholds]
        return pn.pane.Markdown("**Measured thresholds**\n\n" + "\n".join(rows))

    @param.depends("store.patient", "store.n_channels")
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

    def __panel__(self):
        return pn.Column(
            pn.Row(pn.widgets.Select.from_param(self.param.patient_file, width=260), self._upload),
            self._summary, self._contraindications, self._thresholds,
            pn.panel(self._calibration, loading_indicator=True),
            pn.pane.Markdown("Electrode placement: the template's pairs (5 × 9 cm, 4 cm apart, along the "
                             "fibres) over the left and right lumbar erector spinae."),
            name="Patient & placement")


def _factor(c: dict, key: str) -> str:
    rng = c.get(f"{key}_range")
    return f"{c[key]:.2f}" + (f" ({rng[0]:.2f}–{rng[1]:.2f})" if rng else "")
