"""The workbench page: disclaimer and evidence header over the Patient, Design, Optimise, Simulate,
Export and Studies tabs.

``panel serve apps/app.py`` works; ``emsim workbench`` (:mod:`apps.cli`) is the usual way.
"""

from __future__ import annotations

import holoviews as hv
import panel as pn
import param

from apps import DISCLAIMER
from apps.design_view import DesignView
from apps.export_view import ExportView
from apps.optimise_view import OptimiseView
from apps.patient_view import PatientView
from apps.simulate_view import SimulateView
from apps.store import WorkbenchStore
from apps.studies_view import StudiesView

__all__ = ["Workbench", "create_app", "evidence_text", "on_page_loop", "PAGE_TITLE"]

#: The browser tab says it too: the disclaimer is visible before any script runs.
PAGE_TITLE = f"emsim workbench · {DISCLAIMER}"

_EVIDENCE_NOTE = {
    "measured": "parameters measured on people",
    "fitted": "parameters fitted to published data",
    "extrapolated": "lumbar parameters extrapolated from limb data",
    "assumed": "some parameters are assumed, not measured",
}


class Workbench(pn.viewable.Viewer):
    """One session's workbench: a store and the views over it."""

    store = param.ClassSelector(class_=WorkbenchStore)

    def __init__(self, **params):
        params.setdefault("store", WorkbenchStore())
        super().__init__(**params)
        self.store.deliver = on_page_loop
        self.patient_view = PatientView(store=self.store)
        self.design_view = DesignView(store=self.store)
        self.export_view = ExportView(store=self.store)
        self.optimise_view = OptimiseView(store=self.store)
        self.simulate_view = SimulateView(store=self.store, optimise=self.optimise_view)
        self.studies_view = StudiesView()

    def _evidence(self):
        # One pane whose text changes in place: a new pane per prediction made Bokeh walk the
        # references of the whole document on every update.
        return pn.pane.Markdown(pn.bind(evidence_text, self.store.param.prediction), css_classes=["emsim-evidence"])

    def __panel__(self):
        header = pn.Column(
            pn.pane.Markdown("## emsim workbench"),
            pn.pane.Alert(DISCLAIMER, alert_type="warning", css_classes=["emsim-disclaimer"]),
            self._evidence(), sizing_mode="stretch_width")
        # dynamic: only the shown tab is rendered and kept up to date; the others render when opened
        tabs = pn.Tabs(("Patient & placement", self.patient_view), ("Design", self.design_view),
                       ("Optimise", self.optimise_view), ("Simulate", self.simulate_view),
                       ("Export", self.export_view), ("Studies", self.studies_view),
                       dynamic=True, sizing_mode="stretch_width")
        return pn.Column(header, tabs, sizing_mode="stretch_width")


def on_page_loop(fn) -> None:
    """Run ``fn`` on the served page's event loop with its document held (at once when not served).

    A prediction changes the summary, the header, the safety report, the spinner and the trace
    plots. Applied from the worker thread, each of them became its own message to the browser,
    and the browser laid the page out once per message; applied here, they leave as one.
    """
    doc = pn.state.curdoc
    if doc is None or doc.session_context is None:
        fn()
        return

    def apply():
        with pn.io.hold(doc):
            fn()

    try:
        pn.state.execute(apply, schedule=True)
    except Exception:  # noqa: BLE001  (the session is gone: nobody is left to show it to)
        pass


def evidence_text(pred) -> str:
    """The header's line on how well founded the latest prediction is."""
    if pred is None:
        return "Evidence level of the prediction: (no prediction yet)"
    return f"Evidence level of the prediction: **{pred.evidence}** — {_EVIDENCE_NOTE.get(pred.evidence, '')}"


def create_app():
    """A fresh workbench for one browser session (the server calls this per session)."""
    pn.extension(notifications=False)
    hv.extension("bokeh", logo=False)
    return pn.panel(Workbench(), sizing_mode="stretch_width")


if pn.state.served:
    create_app().servable(title=PAGE_TITLE)
