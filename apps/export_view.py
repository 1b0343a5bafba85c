"""Export tab: the program, its device-quantised version and a one-page summary, as downloads.

Everything offered is validated for the chosen patient, device and session: while the safety
check fails, the downloads are disabled and the page says why.
"""

from __future__ import annotations

import html
import io
import json

import panel as pn
import param

from apps.store import ExportBundle, WorkbenchStore
from emsim import DISCLAIMER
from emsim.program import loads

__all__ = ["ExportView", "summary_html"]

_OUTCOME_LABELS = {"peak_mvc_pct": "peak force (%MVC)", "mean_mvc_pct": "mean force (%MVC)",
                   "effective_contractions": "effective contractions", "fti_ns": "force-time integral (N·s)",
                   "fatigue_decline_pct": "fatigue: decline to the end of the last contraction (%)",
                   "peak_discomfort_nrs": "peak discomfort (NRS 0-10)", "mean_discomfort_nrs": "mean discomfort (NRS 0-10)",
                   "total_charge_mc": "total charge (mC)", "motor_recruitment_fraction": "motor units recruited (fraction)"}


def _e(x) -> str:
    return html.escape(str(x))


def _waveform_text(w) -> str:
    if w.shape == "khz_burst":
        return f"kHz burst, {w.carrier_hz:g} Hz carrier, {w.burst_duration_ms:g} ms bursts"
    return f"{w.shape.replace('_', ' ')}, {w.pulse_width_us:g} µs"


def summary_html(bundle: ExportBundle, patient=None, device: str | None = None) -> str:
    """The one-page HTML summary for the patient record (every value escaped; no scripts)."""
    program = loads(bundle.program_text)
    pred = bundle.prediction
    rows = []
    for ph in program.phases:
        for st in ph.stimulation:
            ch = program.channel(st.channel)
            rows.append([ph.name, f"{ph.duration_s / 60:g} min", st.channel, f"{ch.site.replace('_', ' ')} ({ch.side})",
                         _waveform_text(st.waveform), f"{st.frequency_hz:g} Hz", st.pattern.type,
                         f"{st.amplitude.ma:g} mA", f"{st.on_s:g} s / {st.off_s:g} s",
                         f"{st.ramp_up_s:g} s / {st.ramp_down_s:g} s"])
    head = ["phase", "length", "channel", "site", "waveform", "frequency", "pattern", "current", "on / off", "ramps"]
    table = "".join(f"<th>{_e(h)}</th>" for h in head)
    table = f"<table><tr>{table}</tr>" + "".join(
        "<tr>" + "".join(f"<td>{_e(c)}</td>" for c in r) + "</tr>" for r in rows) + "</table>"
    if pred is not None:
        outcomes = "".join(f"<tr><td>{_e(label)}</td><td>{_e(_fmt(pred.scalars[k]))}</td></tr>"
                           for k, label in _OUTCOME_LABELS.items() if k in pred.scalars)
        evidence = (f"<p><b>Evidence level of the prediction: {_e(pred.evidence)}</b> (the weakest among the model "
                    "parameters used; lumbar parameters are largely extrapolated from limb data).</p>")
        outcomes = f"{evidence}<table>{outcomes}</table>"
    else:
        outcomes = "<p>No prediction available.</p>"
    safety = bundle.safety
    findings = "".join(f"<li>{_e(line)}</li>" for line in safety.lines()) or "<li>no errors or warnings</li>"
    q = bundle.quantisation
    quant = "" if q is None else (f"<p>Device-quantised for {_e(q.device)}: largest amplitude change "
                                  f"{q.max_amplitude_error_ma:.2g} mA, largest width change {q.max_width_error_us:.2g} µs; "
                                  f"{'no problems' if q.ok else _e('; '.join(q.problems))}.</p>")
    sched = program.schedule
    who = _e(getattr(patient, "id", None) or "no patient (contraindications not checked)")
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>emsim program summary</title>
<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto;font-size:11pt}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #999;padding:2px 6px;text-align:left}}
.disclaimer{{border:2px solid #b00;padding:.5em;font-weight:bold;color:#b00}}</style></head><body>
<p class="disclaimer">Research use, no clinical clearance. {_e(DISCLAIMER)}</p>
<h1>{_e(program.name)}</h1>
<p>Patient: {who}. Device: {_e(device or 'not chosen')}. Session {safety.session}. Schedule: {sched.sessions_per_week:g} sessions a week for {sched.weeks} weeks.
Created with {_e(program.provenance.created_with)}, emsim {_e(program.provenance.emsim_version)}, {_e(program.provenance.created or '')}.</p>
<h2>Program</h2>{table}
<h2>Predicted outcomes (session {safety.session})</h2>{outcomes}
<h2>Safety report</h2><p>{'Passed' if safety.ok else 'FAILED'} for device {_e(safety.device)} and patient {_e(safety.patient)}.</p><ul>{findings}</ul>
{quant}
<p class="disclaimer">Predictions come from models, not from measurements on this patient. Research use, no clinical clearance.</p>
</body></html>
"""


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


class ExportView(pn.viewable.Viewer):
    """Downloads that exist only while the program passes the safety check."""

    store = param.ClassSelector(class_=WorkbenchStore)

    def __init__(self, **params):
        super().__init__(**params)
        self._program = pn.widgets.FileDownload(callback=lambda: self._file("program"), filename="emsim_program.json",
                                                label="Download program (JSON)", css_classes=["emsim-dl-program"])
        self._quantised = pn.widgets.FileDownload(callback=lambda: self._file("quantised"),
                                                  filename="emsim_program_quantised.json",
                                                  label="Download device-quantised program (JSON)",
                                                  css_classes=["emsim-dl-quantised"])
        self._report = pn.widgets.FileDownload(callback=lambda: self._file("report"), filename="quantisation_report.json",
                                               label="Download quantisation report (JSON)",
                                               css_classes=["emsim-dl-report"])
        self._summary = pn.widgets.FileDownload(callback=lambda: self._file("summary"), filename="emsim_summary.html",
                                                label="Download one-page summary (HTML)", css_classes=["emsim-dl-summary"])
        self._buttons = (self._program, self._quantised, self._report, self._summary)

    def file_text(self, what: str) -> str:
        """The text of one download (``program``, ``quantised``, ``report`` or ``summary``); "" if refused."""
        b = self.store.export_bundle()
        if b.program_text is None:  # the buttons are disabled then; this guards a race with a late change
            return ""
        if what == "program":
            return b.program_text
        if what == "quantised":
            return b.quantised_text
        if what == "report":
            return json.dumps(b.quantisation.to_dict(), indent=2) + "\n"
        return summary_html(b, self.store.patient, self.store.device)

    def _file(self, what: str):
        return io.StringIO(self.file_text(what))

    def status(self) -> tuple[str, str]:
        """(Markdown, alert type) of the export check; disables the downloads while it fails."""
        if self.store.busy:  # checked once the prediction of the new design has landed, not per keystroke
            for w in self._buttons:
                w.disabled = True
            return "Checking the changed design…", "info"
        b = self.store.export_bundle(predict=False)
        for w in self._buttons:
            w.disabled = b.program_text is None
        s = self.store
        who = f"patient `{s.patient.id}`" if s.patient else "no patient (contraindications unchecked)"
        head = f"Validated for device `{s.device}`, {who}, session {s.session}."
        if b.safety is None:
            return "Nothing to export: every channel is off.", "warning"
        lines = "\n".join(f"- {ln}" for ln in b.safety.lines())
        if b.program_text is None:
            return f"**Export refused:** the safety check failed. {head}\n\n{lines}", "danger"
        q = b.quantisation
        quant = (f"Quantised for `{q.device}`: {len(q.blocks)} blocks, largest amplitude change "
                 f"{q.max_amplitude_error_ma:.2g} mA, largest width change {q.max_width_error_us:.2g} µs; "
                 + ("no problems." if q.ok else "**problems:** " + "; ".join(q.problems)))
        outcomes = ("Predicted outcomes of the full session included" if b.prediction is not None
                    else "Predicted outcomes are computed on download (the full session is not predicted yet)")
        return f"Ready to export. {head} {outcomes}.\n\n{quant}\n\n{lines}", "success"

    def _status_pane(self):
        # One Alert whose text and colour change in place (a new model per update is expensive).
        s = self.store
        deps = (s.param.updates, s.param.patient, s.param.device, s.param.session, s.param.busy)
        pane = pn.pane.Alert(css_classes=["emsim-export-status"])

        def refresh(*_):
            text, kind = self.status()
            pane.param.update(object=text, alert_type=kind)

        refresh()
        for dep in deps:
            dep.owner.param.watch(refresh, dep.name)
        return pane

    def __panel__(self):
        return pn.Column(pn.pane.Markdown("The program holds the warm-up, the designed main phase and the cool-down "
                                          "at full length, the template's schedule, and provenance with the predicted "
                                          "outcomes. The summary is one page for the patient record."),
                         self._status_pane(), pn.Row(*self._buttons), name="Export")
