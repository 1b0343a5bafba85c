"""Design tab: per-channel controls and the live prediction of the designed program."""

from __future__ import annotations

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the backend the plot options need)
import numpy as np
import panel as pn
import param

from apps.store import ChannelSettings, WorkbenchStore

__all__ = ["DesignView", "summary_text", "MAX_PLOT_POINTS"]

#: Traces are decimated to at most this many points before they go to the browser.
MAX_PLOT_POINTS = 3000
_LABELS = {"frequency_hz": "Frequency (Hz)", "pulse_width_us": "Pulse width (µs)",
           "amplitude_ma": "Amplitude (mA)", "on_s": "On (s)", "off_s": "Off (s)",
           "ramp_up_s": "Ramp up (s)", "ramp_down_s": "Ramp down (s)", "enabled": "On"}


def summary_text(store: WorkbenchStore) -> str:
    """One paragraph on the latest prediction (the page and the browser test read it)."""
    if store.prediction_error:
        return f"**Prediction not possible:** {store.prediction_error}"
    pred = store.prediction
    if pred is None:
        return "No prediction yet (switch a channel on)." if not store.busy else "Predicting…"
    s = pred.scalars
    safety = "safety check passed" if pred.safety.ok else f"**{len(pred.safety.errors)} safety error(s)**"
    return (f"Prediction #{store.updates} (session {pred.session}): peak {s['peak_mvc_pct']:.1f} %MVC, mean {s['mean_mvc_pct']:.1f} %MVC, "
            f"{s['effective_contractions']} effective contractions, fatigue decline "
            f"{s['fatigue_decline_pct']:.0f} %, peak discomfort {s['peak_discomfort_nrs']:.1f}/10 NRS; {safety}. "
            f"Evidence: {pred.evidence}. Patient: {getattr(pred.patient, 'id', None) or 'none'}.")


def _decimate(t, y):
    step = max(1, int(np.ceil(len(t) / MAX_PLOT_POINTS)))
    return t[::step], y[::step]


class DesignView(pn.viewable.Viewer):
    """Channel controls generated from the :class:`ChannelSettings` declarations, and the prediction."""

    store = param.ClassSelector(class_=WorkbenchStore)

    def _controls(self, chan: ChannelSettings):
        widgets = {k: {"label": v} for k, v in _LABELS.items()}
        return pn.Param(chan, parameters=list(ChannelSettings.CONTROLS), widgets=widgets, show_name=False,
                        name=chan.channel_id, width=300)

    @param.depends("store.channels")
    def _channel_panel(self):
        return pn.Row(*[pn.Column(f"#### Channel {c.channel_id}", self._controls(c)) for c in self.store.channels])

    @param.depends("store.prediction", "store.prediction_error", "store.busy")
    def _summary(self):
        return pn.pane.Markdown(summary_text(self.store), css_classes=["emsim-prediction"], sizing_mode="stretch_width")

    @param.depends("store.prediction")
    def _plots(self):
        pred = self.store.prediction
        if pred is None:
            return pn.pane.Markdown("")
        t_min = pred.t_s / 60.0
        force = [hv.Curve(_decimate(t_min, pred.mvc_pct[i]), "time (min)", "force (%MVC)", label=cid)
                 for i, cid in enumerate(pred.channel_ids)]
        plots = [hv.Overlay(force).opts(title="Force", width=900, height=260, show_legend=True)]
        if pred.discomfort_nrs is not None:
            plots.append(hv.Curve(_decimate(t_min, pred.discomfort_nrs), "time (min)", "discomfort (NRS 0-10)")
                         .opts(title="Discomfort", width=900, height=220, ylim=(0, 10), color="firebrick"))
        return pn.Column(*[pn.pane.HoloViews(p, sizing_mode="stretch_width") for p in plots],
                         sizing_mode="stretch_width")

    @param.depends("store.prediction")
    def _safety(self):
        pred = self.store.prediction
        if pred is None:
            return pn.pane.Markdown("")
        lines = pred.safety.lines()
        if not lines:
            return pn.pane.Alert("Safety report: no errors or warnings.", alert_type="success")
        kind = "danger" if not pred.safety.ok else "warning"
        return pn.pane.Alert("**Safety report**\n\n" + "\n".join(f"- {ln}" for ln in lines), alert_type=kind)

    def __panel__(self):
        s = self.store
        settings = pn.Row(pn.widgets.Select.from_param(s.param.device, label="Device", width=150),
                          pn.widgets.RadioButtonGroup.from_param(s.param.n_channels, label="Channels"),
                          pn.widgets.Select.from_param(s.param.preview, label="Predicted length", width=220),
                          pn.widgets.IntInput.from_param(s.param.session, label="Session number", width=120))
        busy = pn.indicators.LoadingSpinner(value=s.param.busy, size=24)
        return pn.Column(settings, self._channel_panel, pn.Row(busy, self._summary, sizing_mode="stretch_width"),
                         self._plots, self._safety, name="Design", sizing_mode="stretch_width")
