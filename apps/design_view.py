"""Design tab: per-channel controls, the recruitment curve and the live prediction of the program.

The recruitment-vs-amplitude curve of a channel depends on its electrode pair, waveform,
frequency and the patient, not on its amplitude: moving the amplitude only moves the marker,
and the curve is computed once per combination (cached).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the backend the plot options need)
import numpy as np
import panel as pn
import param
from bokeh.models import ColumnDataSource, Range1d
from bokeh.plotting import figure

from apps.program_text import decimate
from apps.prompt_widgets import prompt_widget
from apps.store import ChannelSettings, WorkbenchStore
from emsim.body.calibration import MOTOR_CRITERION, SENSORY_NRS, TOLERANCE_NRS, calibrate
from emsim.body.patient import loads_patient
from emsim.errors import EmsimError
from emsim.physiology import discomfort as dsc
from emsim.physiology.recruitment import StimulusSet, recruit
from emsim.program.model import Channel

__all__ = ["DesignView", "summary_text", "recruitment_curve", "RecruitmentCurve", "curve_plot", "curve_elements",
           "amplitude_marker", "thresholds_text", "safety_text", "safety_kind",
           "MAX_PLOT_POINTS", "TracePlots",
           "CURVE_INPUTS"]

#: Traces are reduced to at most this many points (their envelope) before they go to the browser.
MAX_PLOT_POINTS = 800
#: Channel settings the recruitment curve depends on (the amplitude only moves its marker).
CURVE_INPUTS = ("site", "side", "electrode", "spacing_cm", "pulse_width_us", "frequency_hz", "waveform",
                "interphase_gap_us", "secondary_amplitude_ratio", "balance_amplitude_ratio", "carrier_hz",
                "burst_duration_ms")
_LABELS = {"frequency_hz": "Frequency (Hz)", "pulse_width_us": "Pulse width (µs)",
           "amplitude_ma": "Amplitude (mA)", "amplitude_mode": "Amplitude as",
           "amplitude_factor": "Amplitude (× motor threshold)", "on_s": "On (s)", "off_s": "Off (s)",
           "ramp_up_s": "Ramp up (s)", "ramp_down_s": "Ramp down (s)", "enabled": "On",
           "waveform": "Waveform", "pattern": "Pulse pattern", "interphase_gap_us": "Inter-phase gap (µs)",
           "secondary_amplitude_ratio": "Secondary / primary amplitude",
           "balance_amplitude_ratio": "Balance / primary amplitude", "carrier_hz": "Carrier (Hz)",
           "burst_duration_ms": "Burst (ms)", "pulses_per_burst": "Pulses per burst",
           "intra_burst_interval_ms": "Interval in burst (ms)", "onset_interval_ms": "Onset interval (ms)",
           "main_s": "Main phase (s)", "warm_up_s": "Warm-up (s)", "warm_up_amplitude_pct": "Warm-up current (% of main)",
           "cool_down_s": "Cool-down (s)", "cool_down_amplitude_pct": "Cool-down current (% of main)"}
_KINDS = {"sensory_threshold": "sensory", "motor_threshold": "motor", "tolerance": "pain (tolerance)"}
_BAND_COLOURS = ("#e8f1fb", "#e6f4e6", "#fdecd9")  # sensory→motor, motor→tolerance, above tolerance
_SWEEP_MA = np.geomspace(0.5, 200.0, 160)
_LINE_COLOURS = ("#1f77b4", "#ff7f0e")
#: Bottom right: the curves rise from the left, so the top right held both and the legend hid them.
_CURVE_LEGEND = {"show_legend": True, "legend_position": "bottom_right"}


# ------------------------------------------------------------------------ recruitment curve

@dataclass(frozen=True)
class RecruitmentCurve:
    """Motor recruitment and discomfort of a steady train over an amplitude sweep.

    ``thresholds`` maps ``sensory_threshold``/``motor_threshold``/``tolerance`` to
    ``(mA, where)``: the patient's measurement (nearest pulse width) when present, else the
    model's prediction (NaN when the sweep never reaches it).
    """

    amplitude_ma: np.ndarray
    motor_pct: np.ndarray
    discomfort_nrs: np.ndarray
    thresholds: dict
    calibrated: bool


def recruitment_curve(chan: ChannelSettings, patient=None) -> RecruitmentCurve:
    """The curve for this channel's electrode pair, waveform and frequency on ``patient``."""
    pj = "" if patient is None else patient.model_dump_json()
    stim = chan.stimulation()
    return _curve(json.dumps(chan.channel()), json.dumps(stim["waveform"]), stim["frequency_hz"], pj)


@lru_cache(maxsize=64)
def _curve(channel_json: str, waveform_json: str, frequency_hz: float, patient_json: str) -> RecruitmentCurve:
    channel = Channel.model_validate_json(channel_json)
    wave = json.loads(waveform_json)
    patient = loads_patient(patient_json) if patient_json else None
    kw = {k: wave[k] for k in ("interphase_gap_us", "secondary_amplitude_ratio", "carrier_hz",
                               "burst_duration_ms") if k in wave}
    ss = StimulusSet.from_arrays(_SWEEP_MA, wave.get("pulse_width_us", 300.0), frequency_hz, channels=[channel],
                                 shape=wave["shape"], **kw)
    rec = recruit(ss, channel.site, patient, side=channel.side)
    cal = calibrate(patient, channel.site, channel.side) if patient is not None else None
    person = (dsc.Person(cutaneous_threshold_scale=cal.cutaneous_scale, sensitivity=cal.sensitivity)
              if cal is not None and cal.calibrated else dsc.Person.from_patient(patient))
    counts = np.bincount(rec.unit_muscle, minlength=len(rec.muscles)).astype(float)
    motor = rec.motor_fraction_above @ (counts / counts.sum())
    nrs = np.nanmax(dsc.predict(rec, person=dsc.Person(sensitivity=person.sensitivity)).nrs, axis=1)
    # Person factors as evaluate applies them: the motor units see gain × I; cutaneous thresholds
    # scale with the threshold scale, so the skin at I responds as the neutral skin at I / scale.
    gain = cal.motor_gain if cal is not None else 1.0
    amps = _SWEEP_MA[_SWEEP_MA <= 200.0 / max(gain, 1.0)]
    motor_pct = 100.0 * np.interp(np.log(amps * gain), np.log(_SWEEP_MA), np.maximum.accumulate(motor))
    nrs_at = np.interp(np.log(amps / person.cutaneous_threshold_scale), np.log(_SWEEP_MA),
                       np.maximum.accumulate(np.nan_to_num(nrs)))
    predicted = {"sensory_threshold": _crossing(amps, nrs_at, SENSORY_NRS),
                 "motor_threshold": _crossing(amps, motor_pct, 100.0 * MOTOR_CRITERION),
                 "tolerance": _crossing(amps, nrs_at, TOLERANCE_NRS)}
    thresholds = {k: (v, "predicted") for k, v in predicted.items()}
    pw = wave.get("pulse_width_us")
    for kind in thresholds:
        measured = [] if patient is None else patient.thresholds_for(channel.site, channel.side, kind)
        if measured and pw is not None:
            t = min(measured, key=lambda m: abs(m.pulse_width_us - pw))
            thresholds[kind] = (t.amplitude_ma, f"measured at {t.pulse_width_us:g} µs")
    return RecruitmentCurve(amps, motor_pct, nrs_at, thresholds, bool(cal is not None and cal.calibrated))


def _crossing(x, y, level) -> float:
    above = np.flatnonzero(y >= level)
    return float(x[above[0]]) if above.size else float("nan")


def curve_elements(curve: RecruitmentCurve, title: str, max_ma: float | None = None):
    """Recruitment and discomfort vs amplitude with the threshold bands (no amplitude marker)."""
    x = "amplitude (mA)"
    y = "motor units recruited (%)"
    xlim = (0, max_ma or float(curve.amplitude_ma[-1]))
    motor = hv.Curve((curve.amplitude_ma, curve.motor_pct), x, y,
                     label="motor recruitment").opts(color="navy", ylim=(0, 100), xlim=xlim)
    nrs = hv.Curve((curve.amplitude_ma, curve.discomfort_nrs), x, "discomfort (NRS 0-10)",
                   label="discomfort").opts(color="firebrick", ylim=(0, 10), line_dash="dashed")
    th = [curve.thresholds[k][0] for k in _KINDS]
    edges = [v for v in th] + [float(curve.amplitude_ma[-1])]
    # the annotations carry the motor axis's dimensions so that they add no third y axis
    bands = [hv.VSpan(lo, hi, kdims=[x, y]).opts(color=c, alpha=0.5) for lo, hi, c in zip(edges[:-1], edges[1:], _BAND_COLOURS)
             if np.isfinite(lo) and np.isfinite(hi) and hi > lo]
    lines = [hv.VLine(v, kdims=[x, y]).opts(color="grey", line_width=1) for v in th if np.isfinite(v)]
    # the curves first: the overlay takes its axis labels from its first element
    return hv.Overlay([motor, nrs, *bands, *lines]).opts(
        multi_y=True, title=title, width=440, height=260, **_CURVE_LEGEND)


def amplitude_marker(amplitude_ma: float):
    return hv.VLine(float(amplitude_ma), kdims=["amplitude (mA)", "motor units recruited (%)"]).opts(
        color="black", line_width=2)


def curve_plot(curve: RecruitmentCurve, amplitude_ma: float, title: str):
    """The curve with the current amplitude marked (one static figure)."""
    return curve_elements(curve, title) * amplitude_marker(amplitude_ma)


def thresholds_text(curve: RecruitmentCurve) -> str:
    parts = [f"{_KINDS[k]} {v:.0f} mA ({where})" if np.isfinite(v) else f"{_KINDS[k]}: not reached ({where})"
             for k, (v, where) in curve.thresholds.items()]
    note = "" if curve.calibrated else " Population model: nothing measured here for this patient."
    return "Thresholds: " + "; ".join(parts) + "." + note


# ------------------------------------------------------------------------ prediction text


def summary_text(store: WorkbenchStore) -> str:
    """One paragraph on the latest prediction (the page and the browser test read it)."""
    if store.prediction_error:
        return f"**Prediction not possible:** {store.prediction_error}"
    pred = store.prediction
    if pred is None:
        return "No prediction yet (switch a channel on)." if not store.busy else "Predicting…"
    s = pred.scalars
    if store.prediction_stage == "full":
        what = f"full session {pred.session}, {pred.program.duration_s / 60:.0f} min"
    else:
        what = f"preview: first {pred.program.duration_s:.0f} s of the main phase, session {pred.session}"
    more = ""
    if store.busy:  # said in words: a spinner's class change made the browser lay out the whole page again
        more = " Full session on its way…" if store.prediction_stage == "preview" else " Updating for the latest change…"
    safety = "safety check passed" if pred.safety.ok else f"**{len(pred.safety.errors)} safety error(s)**"
    return (f"Prediction #{store.updates} ({what}): peak {s['peak_mvc_pct']:.1f} %MVC, "
            f"mean {s['mean_mvc_pct']:.1f} %MVC, {s['effective_contractions']} effective contractions, fatigue "
            f"decline {s['fatigue_decline_pct']:.0f} %, peak discomfort {s['peak_discomfort_nrs']:.1f}/10 NRS; "
            f"{safety}. Evidence: {pred.evidence}. Patient: {getattr(pred.patient, 'id', None) or 'none'}.{more}")


def safety_text(pred) -> str:
    """The safety report of a prediction as Markdown."""
    if pred is None:
        return "Safety report: no prediction yet."
    lines = pred.safety.lines()
    if not lines:
        return "Safety report: no errors or warnings."
    return "**Safety report**\n\n" + "\n".join(f"- {ln}" for ln in lines)


def safety_kind(pred) -> str:
    if pred is None:
        return "light"
    return "danger" if not pred.safety.ok else ("warning" if pred.safety.lines() else "success")


def _nice_above(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 × 10^k that is at least ``value`` (10 for nothing to show)."""
    if not np.isfinite(value) or value <= 0:
        return 10.0
    k = np.floor(np.log10(value))
    for m in (1.0, 2.0, 2.5, 5.0, 10.0):
        if m * 10 ** k >= value:
            return float(m * 10 ** k)
    return float(10 ** (k + 1))


class TracePlots:
    """Force (per channel) and discomfort over the session, as Bokeh figures updated in place.

    A prediction only replaces the columns of the figures' data sources: a HoloViews DynamicMap
    ran its whole plotting pipeline per prediction, about 0.1 s of each slider update. The axes
    are set here, not found by the browser: the time axis spans the prediction, the force axis
    the next "nice" value above the peak. Successive previews then keep their axes, and the
    browser only repaints the lines instead of laying out every plot on the page again (with
    ranges fitted to the data in the browser, each update's new tick labels did that).
    """

    def __init__(self, channel_ids):
        tools = "pan,wheel_zoom,box_zoom,reset,save"
        self.force = figure(title="Force (fatigue shows as the decline of the peaks)", height=260,
                            sizing_mode="stretch_width", x_axis_label="time (min)", y_axis_label="force (%MVC)",
                            tools=tools, x_range=Range1d(0.0, 1.0), y_range=Range1d(0.0, 10.0))
        self.sources = {}
        for cid, colour in zip(channel_ids, _LINE_COLOURS):
            # named, so that the latency benchmark can see in the browser when new data arrived
            self.sources[cid] = ColumnDataSource({"t": [], "y": []}, name=f"emsim-force-{cid}")
            self.force.line("t", "y", source=self.sources[cid], color=colour, legend_label=cid, line_width=1.5)
        self.force.legend.location = "top_right"
        self.discomfort = figure(title="Discomfort", height=220, sizing_mode="stretch_width",
                                 x_range=self.force.x_range, y_range=Range1d(0.0, 10.0),
                                 x_axis_label="time (min)", y_axis_label="discomfort (NRS 0-10)", tools=tools)
        self.nrs = ColumnDataSource({"t": [], "y": []}, name="emsim-discomfort")
        self.discomfort.line("t", "y", source=self.nrs, color="firebrick", line_width=1.5)

    def data(self, pred) -> tuple[dict, dict]:
        """The (decimated) columns for ``pred``: per channel id, and of the discomfort; empty without one."""
        empty = {"t": np.array([]), "y": np.array([])}
        force = {cid: empty for cid in self.sources}
        if pred is None:
            return force, empty
        t_min = pred.t_s / 60.0
        for i, cid in enumerate(pred.channel_ids):
            if cid in force:
                force[cid] = dict(zip(("t", "y"), decimate(t_min, pred.mvc_pct[i], max_points=MAX_PLOT_POINTS)))
        nrs = empty if pred.discomfort_nrs is None else dict(
            zip(("t", "y"), decimate(t_min, pred.discomfort_nrs, max_points=MAX_PLOT_POINTS)))
        return force, nrs

    @staticmethod
    def axes(force: dict) -> tuple[float, float]:
        """End of the time axis (min) and of the force axis (%MVC) for these columns."""
        t_end = max((float(c["t"][-1]) for c in force.values() if len(c["t"])), default=1.0)
        peak = max((float(np.nanmax(c["y"])) for c in force.values() if len(c["y"])), default=0.0)
        return max(t_end, 1e-3), _nice_above(1.05 * peak)

    def show(self, pred) -> None:
        """Draw ``pred`` (on a served page, on the server's event loop, which holds the document lock)."""
        force, nrs = self.data(pred)
        t_end, y_end = self.axes(force)

        def push():
            for cid, cols in force.items():
                self.sources[cid].data = cols
            self.nrs.data = nrs
            # Bokeh sends a range only when its value changed
            self.force.x_range.end = t_end
            self.force.y_range.end = y_end

        pn.state.execute(push)


class DesignView(pn.viewable.Viewer):
    """Channel controls generated from the :class:`ChannelSettings` declarations, and the prediction."""

    store = param.ClassSelector(class_=WorkbenchStore)

    def _controls(self, chan: ChannelSettings, *_):
        names = chan.active_controls()
        widgets = {k: {"type": prompt_widget(pn.Param.widget_type(chan.param[k])), "label": _LABELS.get(k, k),
                       "css_classes": [f"emsim-{k}-{chan.channel_id}"]} for k in names}
        return pn.Param(chan, parameters=names, widgets=widgets,
                        show_name=False, name=chan.channel_id, width=300)

    def _curve_or_error(self, chan: ChannelSettings):
        try:
            return recruitment_curve(chan, self.store.patient), ""
        except EmsimError as exc:
            return None, f"Recruitment curve not available: {exc}"

    def _curve_figure(self, chan: ChannelSettings, *_):
        curve, err = self._curve_or_error(chan)
        title = f"{chan.channel_id}: recruitment vs amplitude"
        if curve is None:
            return hv.Curve([]).opts(title=err[:80])
        return curve_elements(curve, title, chan.param["amplitude_ma"].bounds[1])

    def _curve_text(self, chan: ChannelSettings, *_):
        curve, err = self._curve_or_error(chan)
        return thresholds_text(curve) if curve is not None else err

    def _recruitment(self, chan: ChannelSettings):
        """Curve and bands redraw when their inputs change; the amplitude marker moves on its own."""
        inputs = [self.store.param.patient, *[chan.param[n] for n in CURVE_INPUTS]]
        curve = hv.DynamicMap(pn.bind(self._curve_figure, chan, *inputs))
        marker = hv.DynamicMap(pn.bind(amplitude_marker, chan.param.amplitude_ma))
        text = pn.pane.Markdown(pn.bind(self._curve_text, chan, *inputs), width=440, css_classes=["emsim-thresholds"])
        # plot options of an overlay of DynamicMaps come from the outer overlay: the legend's too
        return pn.Column(pn.pane.HoloViews((curve * marker).opts(multi_y=True, **_CURVE_LEGEND)), text)

    @param.depends("store.channels", "store.placement_version")
    def _channel_panel(self):
        cols = []
        for c in self.store.channels:
            # the amplitude control changes with the mode, and the mode is offered per patient and site
            controls = pn.bind(self._controls, c, c.param.waveform, c.param.pattern, c.param.amplitude_mode,
                               c.param.patient)
            curve = self._recruitment(c)
            cols.append(pn.Column(f"#### Channel {c.channel_id} ({c.site.replace('_', ' ')}, {c.side})",
                                  pn.Row(controls, curve)))
        return pn.Column(*cols)

    # The text panes below keep their model and change only its text: a replaced model makes Bokeh
    # walk the references of the whole (large) document, which cost seconds per update under load.
    def _summary(self):
        s = self.store
        text = pn.bind(lambda *_: summary_text(s), s.param.prediction, s.param.prediction_error, s.param.busy)
        return pn.pane.Markdown(text, css_classes=["emsim-prediction"], sizing_mode="stretch_width")

    def _plots(self):
        traces = TracePlots([c["id"] for c in self.store.template_channels()])
        self.store.param.watch(lambda e: traces.show(e.new), "prediction")
        traces.show(self.store.prediction)
        return pn.Column(pn.pane.Bokeh(traces.force, sizing_mode="stretch_width"),
                         pn.pane.Bokeh(traces.discomfort, sizing_mode="stretch_width"), sizing_mode="stretch_width")

    def _safety(self):
        p = self.store.param.prediction
        return pn.pane.Alert(pn.bind(safety_text, p), alert_type=pn.bind(safety_kind, p), css_classes=["emsim-safety"])

    def __panel__(self):
        s = self.store
        settings = pn.Row(pn.widgets.Select.from_param(s.param.device, label="Device", width=150),
                          pn.widgets.RadioButtonGroup.from_param(s.param.n_channels, label="Channels"),
                          pn.widgets.Select.from_param(s.param.preview, label="Preview first", width=200),
                          pn.widgets.Checkbox.from_param(s.param.full_session, label="then the full session"),
                          pn.widgets.IntInput.from_param(s.param.session, label="Session number", width=120))
        phases = pn.Param(s, parameters=list(WorkbenchStore.PHASES), show_name=False, default_layout=pn.Row,
                          widgets={k: {"label": _LABELS[k], "width": 170} for k in WorkbenchStore.PHASES})
        return pn.Column(settings, pn.pane.Markdown("**Phases** (warm-up and cool-down at the template's "
                                                    "frequency and a share of each channel's current)"),
                         phases, self._channel_panel, self._summary(),
                         self._plots(), self._safety(), name="Design", sizing_mode="stretch_width")

