"""Simulate tab: play a program on the simulated stimulator, faster than real time, with the audit log.

The program goes through :meth:`SimulatedStimulator.load <emsim.devices.base.Stimulator.load>`,
which validates it for the patient and the device (``require_safe`` and a faithful
quantisation) before the device sees it, exactly as a real stimulator would; a refused program
is shown with the validator's reasons and nothing plays. Every operator action, state change,
validator decision and stop cause goes to an audit log (:class:`emsim.devices.AuditLog`, a
SQLite file in a private temporary folder on this machine), and the page shows that log.

While the session runs, a monitor thread reads the stimulator's status and its delivered
pulses; the force (%MVC) and discomfort are predicted from the pulses *actually delivered*
(pauses, intensity changes and stops included) with the simulator's own physiology hook.
"""

from __future__ import annotations

import math
import tempfile
import threading
import time
from pathlib import Path

import holoviews as hv
import holoviews.plotting.bokeh  # noqa: F401  (registers the backend the plot options need)
import numpy as np
import panel as pn
import param

from apps.optimise_view import OptimiseView
from apps.program_text import decimate, program_table
from apps.store import PREVIEW_CHOICES_S, WorkbenchStore
from emsim.devices import AuditLog, StimulatorState
from emsim.devices.audit import format_session, read_events, read_sessions
from emsim.devices.runner import INTENSITY_STEP_MIN_MA
from emsim.devices.simulated import SimulatedStimulator, default_physiology
from emsim.errors import EmsimError

__all__ = ["SimulateView", "SPEEDS", "SOURCES", "delivered_envelope"]

SPEEDS = {"real time (1×)": 1.0, "10×": 10.0, "30×": 30.0, "60×": 60.0, "as fast as possible": math.inf}
SOURCES = ("designed program (Design tab)", "chosen Pareto program (Optimise tab)")
_ACTIVE = (StimulatorState.RUNNING, StimulatorState.PAUSED, StimulatorState.STOPPING)
#: Status and audit text refresh this often (clock time); the traces less often, and the physiology
#: of the delivered pulses (whose cost grows with the session) at most every few seconds and at the
#: end. Updates are kept cheap so that the server stays free for the operator's buttons.
_TICK_S = 1.0
_TRACE_EVERY_S = 2.0
_PHYSIOLOGY_EVERY_S = 6.0
_AUDIT_LINES = 40


def delivered_envelope(delivered, bin_s: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Peak delivered current per channel in time bins: ``(t_s, amplitude_ma[channel, bin])``.

    Pulses come at tens of Hz; the browser gets at most about 2000 bins per channel.
    """
    n_ch = len(delivered.channel_ids)
    dur = max(delivered.duration_s, 1e-9)
    bin_s = bin_s or max(0.1, dur / 2000.0)
    n_bins = max(1, int(np.ceil(dur / bin_s)))
    out = np.zeros((n_ch, n_bins))
    if delivered.n_pulses:
        k = np.minimum((delivered.t_s / bin_s).astype(np.int64), n_bins - 1)
        np.maximum.at(out, (delivered.channel, k), delivered.amplitude_a * 1e3)
    return (np.arange(n_bins) + 0.5) * bin_s, out


class SimulateView(pn.viewable.Viewer):
    """Start, pause/resume, intensity up/down, stop and emergency stop of a simulated session."""

    store = param.ClassSelector(class_=WorkbenchStore)
    optimise = param.ClassSelector(class_=OptimiseView, default=None, allow_None=True)

    source = param.Selector(default=SOURCES[0], objects=list(SOURCES))
    length = param.Selector(default="quick preview (60 s)", objects=list(PREVIEW_CHOICES_S),
                            doc="length of the designed program's main phase")
    speed = param.Selector(default="30×", objects=list(SPEEDS))

    start = param.Event(label="Start")
    pause = param.Event(label="Pause / resume")
    intensity_up = param.Event(label="Intensity +")
    intensity_down = param.Event(label="Intensity −")
    stop = param.Event(label="Stop (ramp down)")
    estop = param.Event(label="EMERGENCY STOP")

    running = param.Boolean(default=False, doc="a session is delivering (running, paused or stopping)")
    state_text = param.String(default="State: idle (nothing loaded).")
    message = param.String(default="")
    audit_text = param.String(default="")
    session_version = param.Integer(default=0, doc="bumped when a session starts (the plots are rebuilt)")

    def __init__(self, **params):
        super().__init__(**params)
        self.sim: SimulatedStimulator | None = None
        self.audit_path: Path | None = None  # created with the first session, in a private temporary folder
        self._audit: AuditLog | None = None
        self._halt = threading.Event()
        self._idle = threading.Event()
        self._idle.set()
        self._live = None           # (t_s, amplitude_ma) envelope of the delivered pulses
        self._physiology = None     # Prediction of the delivered pulses
        self._lock = threading.Lock()
        # the live plots receive new data through pipes: only the data travels, not new plots
        self._pipes = {k: hv.streams.Pipe(data=None) for k in ("current", "force", "discomfort")}
        if pn.state.curdoc is not None:
            pn.state.on_session_destroyed(lambda ctx: self.emergency_stop("browser session closed"))

    # ------------------------------------------------------------------ program

    def program(self):
        """The program to play (designed or chosen), or None with :attr:`message` saying why."""
        if self.source == SOURCES[1]:
            prog = self.optimise.chosen if self.optimise is not None else None
            if prog is None:
                self.message = "No chosen program yet: pick a Pareto member and press 'Use this program'."
            return prog
        prog = self.store.program(PREVIEW_CHOICES_S[self.length])
        if prog is None:
            self.message = "Nothing to play: every channel of the design is off."
        return prog

    # ------------------------------------------------------------------ operator actions

    @param.depends("start", watch=True)
    def _start_pressed(self) -> None:
        self.start_session()

    def start_session(self) -> bool:
        """Validate and load the program on a fresh simulated stimulator and start it."""
        if self.running:
            return False
        self.message = ""
        program = self.program()
        if program is None:
            return False
        if self._audit is None:
            self.audit_path = Path(tempfile.mkdtemp(prefix="emsim-workbench-audit-")) / "simulated_sessions.sqlite3"
            self._audit = AuditLog(self.audit_path, operator="workbench user")
        if self.sim is not None:
            self.sim.close()  # the previous session's stimulator, kept until now so its status stays shown
        sim = SimulatedStimulator(self.store.device, speed=SPEEDS[self.speed], audit=self._audit, physiology=None)
        sim.connect()
        try:
            # load() runs the validator for this patient and device; nothing bypasses it
            sim.load(program, self.store.patient, session=int(self.store.session))
        except EmsimError as exc:
            sim.close()
            self.message = f"**Refused by the validator, nothing delivered:** {exc}"
            self._refresh_text(sim)
            return False
        with self._lock:
            self._live = self._physiology = None
        self.sim = sim
        self._halt.clear()
        self._idle.clear()
        sim.start()
        self.param.update(running=True, session_version=self.session_version + 1)
        threading.Thread(target=self._monitor, args=(sim,), daemon=True, name="emsim-sim-monitor").start()
        return True

    @param.depends("pause", watch=True)
    def toggle_pause(self) -> None:
        sim = self.sim
        self._guard(lambda: sim.pause() if sim.state is StimulatorState.RUNNING else
                    sim.resume() if sim.state is StimulatorState.PAUSED else None)

    @param.depends("intensity_up", watch=True)
    def raise_intensity(self) -> None:
        self._step_intensity(+1)

    @param.depends("intensity_down", watch=True)
    def lower_intensity(self) -> None:
        self._step_intensity(-1)

    def _step_intensity(self, sign: int) -> None:
        sim = self.sim
        if sim is None or sim.plan is None:
            return
        step = max(sim.capabilities.amplitude_ma.step, INTENSITY_STEP_MIN_MA)

        def apply():
            for ch in sim.status().channels:
                sim.set_intensity(ch.id, min(ch.max_ma, max(0.0, ch.level_ma + sign * step)))
        self._guard(apply)

    @param.depends("stop", watch=True)
    def graceful_stop(self) -> None:
        sim = self.sim
        self._guard(lambda: sim.stop(cause="operator stop in the workbench"))

    @param.depends("estop", watch=True)
    def _estop_pressed(self) -> None:
        self.emergency_stop("emergency stop button in the workbench")

    def emergency_stop(self, cause: str) -> None:
        """Stop all output now (the stimulator's own e-stop: idempotent, never raises)."""
        sim = self.sim
        if sim is not None:
            sim.emergency_stop(cause)
            self._refresh_text(sim)

    def _guard(self, action) -> None:
        if self.sim is None:
            return
        try:
            action()
        except EmsimError as exc:
            self.message = f"**Refused:** {exc}"
        self._refresh_text(self.sim)

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the session and its last refresh are over (tests); False on timeout."""
        return self._idle.wait(timeout)

    # ------------------------------------------------------------------ monitoring

    def _monitor(self, sim: SimulatedStimulator) -> None:
        last_trace = last_physiology = time.monotonic()
        physiology_every = _PHYSIOLOGY_EVERY_S
        try:
            while sim.state in _ACTIVE and not self._halt.is_set():
                self._refresh_text(sim)
                now = time.monotonic()
                if now - last_physiology >= physiology_every:
                    cost = self._refresh_traces(sim, physiology=True)
                    last_trace = last_physiology = time.monotonic()
                    physiology_every = max(_PHYSIOLOGY_EVERY_S, 5.0 * cost)
                elif now - last_trace >= _TRACE_EVERY_S:
                    self._refresh_traces(sim, physiology=False)
                    last_trace = time.monotonic()
                self._halt.wait(_TICK_S)
        finally:
            self._refresh_traces(sim, physiology=True)
            self.running = False
            self._refresh_text(sim)
            self._idle.set()

    def _refresh_traces(self, sim: SimulatedStimulator, *, physiology: bool) -> float:
        """Send the delivered-current envelope (and, if asked, the physiology) to the plots; returns
        the physiology's cost in seconds."""
        try:
            delivered = sim.delivered()
        except EmsimError:
            return 0.0
        t, amp = delivered_envelope(delivered)
        ids = delivered.channel_ids
        with self._lock:
            self._live = (t, amp)
        self._pipes["current"].send({"t": t, "ys": dict(zip(ids, amp))})
        if not physiology or not delivered.n_pulses:
            return 0.0
        t0 = time.monotonic()
        try:
            pred = default_physiology(delivered, dt_s=max(0.01, delivered.duration_s / 2000.0))
        except EmsimError as exc:
            self.message = f"Prediction of the delivered pulses not possible: {exc}"
            return time.monotonic() - t0
        with self._lock:
            self._physiology = pred
        if hasattr(pred, "mvc_pct"):
            t_d, *forces = decimate(pred.t_s, *pred.mvc_pct)
            self._pipes["force"].send({"t": t_d, "ys": dict(zip(pred.channel_ids, forces)), "evidence": pred.evidence})
            if pred.discomfort_nrs is not None:
                t_n, nrs = decimate(pred.t_s, pred.discomfort_nrs)
                self._pipes["discomfort"].send({"t": t_n, "ys": {"worst site": nrs}})
        return time.monotonic() - t0

    def _refresh_text(self, sim: SimulatedStimulator) -> None:
        st = sim.status()
        chans = "; ".join(f"{c.id} {c.amplitude_ma:.1f} mA now (level {c.level_ma:.1f} of max {c.max_ma:.1f} mA)"
                          for c in st.channels)
        cause = f" — stop cause: {st.stop_cause}" if st.stop_cause else ""
        self.state_text = (f"State: {st.state.value}{cause}. Program {st.program_s:.1f} of {st.duration_s:.0f} s "
                           f"(session time {st.elapsed_s:.1f} s). {chans}")
        self.audit_text = self.audit_lines()

    def audit_lines(self, limit: int = _AUDIT_LINES) -> str:
        """The current audit session as readable lines (the last ``limit`` events)."""
        if self._audit is None or self._audit.session_id is None:
            return ""
        sessions = {s["id"]: s for s in read_sessions(self.audit_path)}
        session = sessions.get(self._audit.session_id)
        if session is None:
            return ""
        events = read_events(self.audit_path, self._audit.session_id)
        # the simulator's internal command frames are in the file; the page shows what the operator needs
        shown = [e for e in events if e["kind"] not in ("tx", "rx")]
        lines = format_session(session, shown)
        head, body = lines[:5], lines[5:]
        skipped = max(0, len(body) - limit)
        return "\n".join(head + ([f"  ({skipped} earlier events not shown)"] if skipped else []) + body[-limit:]
                         + [f"  ({len(events) - len(shown)} device frames in the file)"])

    # ------------------------------------------------------------------ views

    def _live_plot(self, kind: str, ids, ylabel: str, title: str, **opts):
        """A DynamicMap fed by the ``kind`` pipe: one curve per entry of ``ids``."""

        def element(data):
            t = data["t"] if data else np.zeros(0)
            ys = data["ys"] if data else {}
            curves = {cid: hv.Curve((t, ys.get(cid, np.zeros(len(t)))), "session time (s)", ylabel)
                      for cid in ids}
            return hv.NdOverlay(curves, kdims="channel")

        # framewise: the axes follow the data as it grows (the first frame is empty)
        return hv.DynamicMap(element, streams=[self._pipes[kind]]).opts(
            hv.opts.NdOverlay(title=title, width=900, height=200, framewise=True, **opts),
            hv.opts.Curve(framewise=True))

    @param.depends("session_version")
    def _plots(self):
        sim = self.sim
        if sim is None or sim.plan is None:
            return pn.pane.Markdown("Live traces appear here while a session plays.")
        ids = sim.plan.channel_ids
        for pipe in self._pipes.values():
            pipe.event(data=None)  # the new session starts with empty plots
        return pn.Column(
            pn.pane.HoloViews(self._live_plot("current", ids, "delivered current (mA)",
                                              "Delivered pulses (peak current)")),
            pn.pane.HoloViews(self._live_plot("force", ids, "force (%MVC)",
                                              "Force of the delivered pulses (updated every few seconds)")),
            pn.pane.HoloViews(self._live_plot("discomfort", ["worst site"], "discomfort (NRS 0-10)",
                                              "Discomfort of the delivered pulses", ylim=(0, 10))))

    @param.depends("state_text", "message")
    def _state(self):
        parts = [pn.pane.Markdown(self.state_text, css_classes=["emsim-sim-state"], sizing_mode="stretch_width")]
        if self.message:
            parts.append(pn.pane.Alert(self.message, alert_type="danger", css_classes=["emsim-sim-message"]))
        return pn.Column(*parts, sizing_mode="stretch_width")

    @param.depends("audit_text")
    def _audit_view(self):
        text = self.audit_text or "(no session yet)"
        return pn.Column(f"#### Audit log (`{self.audit_path or 'created with the first session'}`)",
                         pn.pane.Str(text, css_classes=["emsim-audit"], styles={"font-size": "11px"}),
                         sizing_mode="stretch_width")

    @param.depends("source", "length", "store.channels", "optimise.chosen")
    def _program_view(self):
        prog = self.program() if self.source == SOURCES[1] or self.store.channels else None
        if prog is None:
            return pn.pane.Markdown("")
        return pn.pane.Markdown(program_table(prog), sizing_mode="stretch_width")

    def __panel__(self):
        p = self.param
        busy = p.running
        settings = pn.Row(pn.widgets.Select.from_param(p.source, name="Program", width=280, disabled=busy,
                                                       css_classes=["emsim-source"]),
                          pn.widgets.Select.from_param(p.length, name="Length (designed program)", width=220,
                                                       disabled=busy),
                          pn.widgets.Select.from_param(p.speed, name="Speed", width=180, disabled=busy,
                                                       css_classes=["emsim-speed"]))
        buttons = pn.Row(
            pn.widgets.Button.from_param(p.start, color="primary", disabled=busy),
            pn.widgets.Button.from_param(p.pause, disabled=busy.rx.not_()),
            pn.widgets.Button.from_param(p.intensity_down, disabled=busy.rx.not_()),
            pn.widgets.Button.from_param(p.intensity_up, disabled=busy.rx.not_()),
            pn.widgets.Button.from_param(p.stop, color="warning", disabled=busy.rx.not_()),
            # never disabled: an emergency stop must always be possible
            pn.widgets.Button.from_param(p.estop, color="danger", css_classes=["emsim-estop"]))
        note = pn.pane.Markdown("The program is validated for the patient and device before it plays (the same "
                                "validator as a real stimulator). Simulated stimulator: nothing reaches a person.")
        return pn.Column(settings, note, self._program_view, buttons, self._state, self._plots, self._audit_view,
                         name="Simulate", sizing_mode="stretch_width")
