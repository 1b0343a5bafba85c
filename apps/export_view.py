"""Export tab: the designed program as a file, validated for the chosen patient and device."""

from __future__ import annotations

import io

import panel as pn
import param

from apps.store import WorkbenchStore

__all__ = ["ExportView"]


class ExportView(pn.viewable.Viewer):
    """A download that exists only while the program passes the safety check."""

    store = param.ClassSelector(class_=WorkbenchStore)

    def __init__(self, **params):
        super().__init__(**params)
        self._download = pn.widgets.FileDownload(callback=self._file, filename="emsim_program.json",
                                                 label="Download program (JSON)")

    def _file(self):
        text, _ = self.store.export()
        # The button is disabled while the check fails; this guards a race with a late change.
        return io.StringIO(text or "")

    @param.depends("store.updates", "store.patient", "store.device")
    def _status(self):
        text, report = self.store.export()
        self._download.disabled = text is None
        who = f"patient `{self.store.patient.id}`" if self.store.patient else "no patient (contraindications unchecked)"
        head = f"Validated for device `{self.store.device}` and {who}."
        if report is None:
            return pn.pane.Alert("Nothing to export: every channel is off.", alert_type="warning")
        lines = "\n".join(f"- {ln}" for ln in report.lines())
        if text is None:
            return pn.pane.Alert(f"**Export refused:** the safety check failed. {head}\n\n{lines}", alert_type="danger")
        return pn.pane.Alert(f"Ready to export. {head}\n\n{lines}", alert_type="success")

    def __panel__(self):
        return pn.Column(pn.pane.Markdown("The program holds the designed main phase at its full length, the "
                                          "template's schedule, and provenance with the predicted outcomes."),
                         self._status, self._download, name="Export")
