"""The simulated stimulator: executes the compiled, quantised program on a clock.

:class:`SimulatedStimulator` plays both sides of a stimulator link inside the process. The
*host* side is the :class:`~emsim.devices.base.Stimulator` interface (commands, ack
matching, heartbeat); the *device* side walks through the validated
:class:`~emsim.program.compile.PulseTrain` as simulated time passes and delivers each pulse,
scaled by the operator's intensity (raised at most 5 mA per 100 ms, lowered at once) and by
stop/resume ramps, to the listeners and to a record that the physiology reads afterwards.
The pulses come from the one compiler; the simulator never invents its own timing.

Time
----
``elapsed`` (session time) runs from :meth:`start`, pauses included; ``program`` time (the
position in the program) stands still while paused. Simulated time advances ``speed`` times
faster than the clock (``speed=math.inf``: as fast as the CPU allows). With
``threaded=False`` nothing runs in the background: tests move time with :meth:`advance`
(or :meth:`poll` against an injected clock such as :class:`emsim.testing.clock.ManualClock`),
so no test sleeps.

Faults (:meth:`inject_fault`)
-----------------------------
``electrode``    contact loss on a channel → the device reports an electrode error → emergency stop
``device_error`` any other device fault → emergency stop
``drop_acks``    the next ``count`` acknowledgements are lost; the host queries the device
                 instead of resending blindly (reference §5.1 "ack matching")
``host_stall``   the host stops sending keep-alives; after the watchdog time the device stops
                 itself, as a real device does when its controller hangs or is killed

Physiology
----------
``physiology`` is a callable ``f(delivered: DeliveredPulses) -> result``; the default,
:func:`default_physiology`, gives per-channel force with fatigue
(:func:`emsim.physiology.muscle.simulate` when available, else the Ding 2003 model of
:mod:`emsim.physiology.ding`). ``discomfort`` is the same kind of hook for the discomfort
model (none by default). Both run on the delivered pulses, not the programmed ones, so a
stop, a pause or a lowered intensity shows in the predicted traces.

Research use only: emsim has no clinical clearance.
"""

from __future__ import annotations

import json
import math
import threading
import time
from dataclasses import dataclass, field, replace
from typing import Any, Callable

import numpy as np

from emsim.devices.base import Capabilities, DevicePlan, EventKind, Stimulator, StimulatorState
from emsim.errors import DeviceError

__all__ = ["SimulatedStimulator", "DeliveredPulses", "ForceTrace", "default_physiology", "peak_forces",
           "model_name", "FAULTS", "RealClock"]

FAULTS = ("electrode", "device_error", "drop_acks", "host_stall")
# The current shown for a channel is that of its latest pulse if that pulse was this recent
# (covers the gap between pulses down to ~1 Hz), else 0 (an off time).
_AMP_HOLD_S = 1.1
# After a pause the current comes back over this time instead of jumping to the plateau
# [assumed; design choice, like the stop ramp].
RESUME_RAMP_S = 1.0
_EPS = 1e-12
# Raising the intensity is slew-limited to 5 mA per 100 ms (the runtime rule of
# devices_and_safety.md §7, rule 16 [design]); lowering it takes effect at once.
SLEW_UP_MA_PER_S = 50.0


class RealClock:
    """The system monotonic clock."""

    monotonic = staticmethod(time.monotonic)
    sleep = staticmethod(time.sleep)


# --------------------------------------------------------------------------- records

@dataclass(frozen=True, eq=False)
class DeliveredPulses:
    """The pulses a (simulated) device actually delivered, in delivery order.

    Attributes
    ----------
    t_s : ndarray
        Session time of each pulse (from start, pauses included), s.
    channel : ndarray of int32
        Index into ``channel_ids``.
    width_s, amplitude_a : ndarray
        Primary-phase width (s) and peak current (A) as delivered.
    source : ndarray of int64
        Index of the programmed pulse in ``plan.train`` that this pulse delivered.
    duration_s : float
        Session time covered by the record.
    shift_s : ndarray, shape (k, 2)
        How program time maps to session time: from program position ``shift_s[i, 0]`` on,
        session time is program time plus ``shift_s[i, 1]`` (the pauses so far); one row per
        resume and one for the moment of the record (an ongoing pause). Empty: no pause.
    """

    plan: DevicePlan
    t_s: np.ndarray
    channel: np.ndarray
    width_s: np.ndarray
    amplitude_a: np.ndarray
    source: np.ndarray
    duration_s: float
    shift_s: np.ndarray = field(default_factory=lambda: np.zeros((0, 2)))

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return self.plan.channel_ids

    @property
    def n_pulses(self) -> int:
        return int(self.t_s.size)

    def channel_pulses(self, channel: int | str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(t_s, width_s, amplitude_a)`` of one channel, in time order."""
        c = self.plan.channel_index(channel)
        m = self.channel == c
        return self.t_s[m], self.width_s[m], self.amplitude_a[m]

    def as_pulse_train(self):
        """The delivered pulses as a :class:`~emsim.program.compile.PulseTrain` (session time axis).

        Blocks and waveforms are those of the validated train; pulse times are shifted by any
        pauses and amplitudes are the delivered ones. Each block's window (``start_s``,
        ``first_cycle_s``, ``end_s``) moves by the pauses before it and stretches by those inside
        it, so it still holds the pulses delivered for it (a pause on a block boundary belongs to
        the later block); a stop ends it early at the end of delivery (``duration_s``), and a
        block never reached is empty there. The prediction picks its main-phase contractions by
        these windows, so a paused session's last contractions still count.
        """
        train = self.plan.train
        order = np.lexsort((self.t_s, self.channel))
        ch = self.channel[order]
        ptr = np.searchsorted(ch, np.arange(len(train.channel_ids) + 1), side="left").astype(np.int64)
        block = train.block[self.source[order]] if self.n_pulses else np.zeros(0, np.int32)
        duration = max(self.duration_s, 0.0)
        blocks = []
        for k, b in enumerate(train.blocks):  # keep each block's [first, stop) consistent
            idx = np.flatnonzero(block == k)
            first = int(idx[0]) if idx.size else int(ptr[b.channel])
            blocks.append(replace(b, first=first, stop=first + int(idx.size),
                                  start_s=self._session_time(b.start_s, duration),
                                  first_cycle_s=self._session_time(b.first_cycle_s, duration),
                                  end_s=self._session_time(b.end_s, duration)))
        return replace(train, t_s=self.t_s[order], width_s=self.width_s[order],
                       amplitude_a=self.amplitude_a[order], block=block.astype(np.int32),
                       channel_ptr=ptr, blocks=tuple(blocks), duration_s=max(self.duration_s, 0.0),
                       notes=train.notes + ("delivered by the simulated stimulator",))

    def _session_time(self, program_s: float, end_s: float) -> float:
        """Session time of program position ``program_s``: shifted by the pauses strictly before
        it, no later than ``end_s`` (the end of delivery)."""
        k = int(np.searchsorted(self.shift_s[:, 0], program_s, side="left"))
        return min(program_s + (float(self.shift_s[k - 1, 1]) if k else 0.0), end_s)


@dataclass(frozen=True, eq=False)
class ForceTrace:
    """Force per channel over session time (the default physiology's result)."""

    t_s: np.ndarray
    force_n: np.ndarray          # shape (n_channels, n_t)
    channel_ids: tuple[str, ...]
    model: str


def default_physiology(delivered: DeliveredPulses, *, dt_s: float = 0.01) -> Any:
    """Force, fatigue and discomfort of the delivered pulses for the loaded patient.

    The whole prediction of :func:`emsim.simulate.predict_train` (each channel's site muscle,
    recruitment calibrated to the patient's thresholds, discomfort), sampled every ``dt_s``;
    a :class:`ForceTrace` of zeros when nothing was delivered.
    """
    t = np.arange(0.0, max(delivered.duration_s, dt_s) + dt_s / 2, dt_s)
    force = np.zeros((len(delivered.channel_ids), t.size))
    if delivered.n_pulses == 0:  # stopped before the first pulse: a resting muscle
        return ForceTrace(t_s=t, force_n=force, channel_ids=delivered.channel_ids, model="none (no pulses)")
    return predict_delivered(delivered, patient=getattr(delivered.plan, "patient", None), dt_s=dt_s)


def predict_delivered(delivered: DeliveredPulses, patient=None, *, dt_s: float = 0.01):
    """Whole prediction (force per channel with each site's muscle, fatigue, discomfort) of the
    delivered pulses, through :func:`emsim.simulate.predict_train`."""
    from emsim.simulate import predict_train

    return predict_train(delivered.as_pulse_train(), patient, dt=dt_s)


def peak_forces(result: Any, channel_ids: tuple[str, ...]) -> dict[str, float]:
    """Peak force per channel (N) of a physiology result (:class:`ForceTrace` or a muscle ``ForceResult``)."""
    force = np.atleast_2d(np.asarray(result.force_n, dtype=np.float64))
    return {cid: float(np.nanmax(force[c], initial=0.0)) for c, cid in enumerate(channel_ids) if c < force.shape[0]}


def model_name(result: Any) -> str:
    """Short name of the model behind a physiology result."""
    name = getattr(result, "model", None)
    if isinstance(name, str):
        return name
    if hasattr(result, "scalars") and hasattr(result, "evidence"):
        return f"emsim.simulate: muscle pool per site, recruitment, discomfort; weakest evidence {result.evidence}"
    muscle = getattr(result, "muscle", None)
    return f"muscle pool, {getattr(muscle, 'name', '?')}" if muscle is not None else type(result).__name__


@dataclass
class _Fault:
    at_s: float
    kind: str
    channel: int | None = None
    message: str = ""
    duration_s: float | None = None


# --------------------------------------------------------------------------- the simulator

class SimulatedStimulator(Stimulator):
    """A stimulator that delivers the validated program to a simulation instead of a person.

    Parameters
    ----------
    device : str
        Device profile whose envelope the simulation uses: ``generic`` (default), ``rehastim2``
        or ``p24`` — the program is validated and quantised for that device.
    speed : float
        Simulated seconds per clock second (``math.inf``: as fast as possible).
    clock : object, optional
        ``monotonic()`` and ``sleep(s)``; default the system clock.
    threaded : bool
        Run the device in a background thread (default). ``False``: time moves only through
        :meth:`advance` / :meth:`poll` (for tests).
    physiology, discomfort : callable, optional
        ``f(DeliveredPulses) -> result``; see :func:`default_physiology`. ``physiology=None``
        switches the physiology off.
    chunk_s : float
        Largest simulated step delivered at once.
    tick_s : float
        Clock time between steps of the background thread.
    audit, operator
        See :class:`~emsim.devices.base.Stimulator`.
    """

    def __init__(self, device: str = "generic", *, speed: float = 1.0, clock=None, threaded: bool = True,
                 physiology: Callable[[DeliveredPulses], Any] | None = default_physiology,
                 discomfort: Callable[[DeliveredPulses], Any] | None = None, chunk_s: float = 0.1,
                 tick_s: float = 0.02, audit=None, operator: str | None = None,
                 resume_ramp_s: float = RESUME_RAMP_S):
        try:
            speed = float(speed)
        except (TypeError, ValueError):
            speed = math.nan
        if not speed > 0:
            raise DeviceError("speed must be a positive number", path="speed", value=speed,
                              allowed="> 0 (inf: as fast as possible)")
        super().__init__(Capabilities.from_profile(device), audit=audit, operator=operator)
        self.speed = speed
        self.clock = clock or RealClock()
        self.threaded = threaded
        self.physiology = physiology
        self.discomfort = discomfort
        self.chunk_s = float(chunk_s)
        self.tick_s = float(tick_s)
        self.resume_ramp_s = float(resume_ramp_s)
        self.device_commands: list[str] = []   # every command the device received, in order
        self._dev = threading.RLock()          # the device side's state below
        self._dev_state = "off"                # off, idle, running, paused, stopping, stopped, fault
        self._thread: threading.Thread | None = None
        self._halt = threading.Event()         # tells the background thread to end
        self._idle = threading.Event()         # set whenever the device is not delivering
        self._idle.set()
        self._faults: list[_Fault] = []
        self._drop_acks = 0
        self._stall: tuple[float, float] | None = None   # host stall window (start, end)
        self._reset_session(None)

    # ------------------------------------------------------------------ fault injection
    def inject_fault(self, kind: str, *, at_s: float | None = None, channel: int | str | None = None,
                     count: int = 1, duration_s: float | None = None, message: str | None = None) -> None:
        """Schedule a fault at session time ``at_s`` (default: now). See the module docstring."""
        if kind not in FAULTS:
            raise DeviceError("unknown fault", path="kind", value=kind, allowed=", ".join(FAULTS))
        with self._dev:
            at = self._T if at_s is None else float(at_s)
            if kind == "drop_acks":
                self._drop_acks += int(count)
                return
            c = None
            if kind == "electrode":
                if self._plan_dev is None:
                    raise DeviceError("load a program before injecting an electrode fault", path="state")
                c = self._plan_dev.channel_index(0 if channel is None else channel)
            text = message or {"electrode": "electrode contact lost (impedance out of range)",
                               "device_error": "internal device fault",
                               "host_stall": "host stalled"}[kind]
            self._faults.append(_Fault(at, kind, c, text, duration_s))
            self._faults.sort(key=lambda f: f.at_s)

    # ------------------------------------------------------------------ time
    def advance(self, dt_s: float) -> None:
        """Move simulated time forward by ``dt_s`` seconds (threaded=False mode, or on top of the thread)."""
        self._tick(float(dt_s))

    def poll(self) -> None:
        """Advance by the clock time since the last poll times ``speed`` (threaded=False mode)."""
        now = self.clock.monotonic()
        dt = (now - self._last_clock) * (self.speed if math.isfinite(self.speed) else 1.0)
        self._last_clock = now
        self._tick(dt)

    def run_to_end(self, max_s: float | None = None) -> None:
        """Advance (threaded=False) until the device stops delivering or ``max_s`` more seconds pass."""
        limit = self._T + (max_s if max_s is not None else (self._plan_dev.duration_s if self._plan_dev else 0) + 3600)
        while self._dev_state in ("running", "paused", "stopping") and self._T < limit:
            self._tick(min(10.0, limit - self._T))

    def wait(self, timeout: float | None = None) -> bool:
        """Wait (threaded mode) until the device has stopped delivering; True if it has."""
        return self._idle.wait(timeout)

    # ------------------------------------------------------------------ results
    def delivered(self) -> DeliveredPulses:
        """Everything delivered in the current session so far."""
        with self._dev:
            parts = self._out
            plan = self._plan_dev
            T = self._T

            def cat(k, dtype):
                return np.concatenate([p[k] for p in parts]).astype(dtype, copy=False) if parts else np.zeros(0, dtype)

            if plan is None:
                raise DeviceError("no program loaded", path="state")
            return DeliveredPulses(plan=plan, t_s=cat(0, np.float64), channel=cat(1, np.int32),
                                   width_s=cat(2, np.float64), amplitude_a=cat(3, np.float64),
                                   source=cat(4, np.int64), duration_s=T,
                                   shift_s=np.array(self._shifts + [(self._P, T - self._P)]).reshape(-1, 2))

    def physiology_result(self) -> Any:
        """The physiology hook's result for the pulses delivered so far (cached once stopped)."""
        if self.physiology is None:
            return None
        if self._physio_cache is not None and self._dev_state not in ("running", "paused", "stopping"):
            return self._physio_cache
        result = self.physiology(self.delivered())
        if self._dev_state not in ("running", "paused", "stopping"):
            self._physio_cache = result
        return result

    def discomfort_result(self) -> Any:
        """The discomfort hook's result (None until a discomfort model is attached)."""
        return None if self.discomfort is None else self.discomfort(self.delivered())

    # ------------------------------------------------------------------ hooks (host side)
    def _connect(self) -> None:
        self._command("connect", expect="idle")

    def _load_plan(self, plan: DevicePlan) -> None:
        if len(plan.channel_ids) > self.capabilities.channels:
            raise DeviceError("more channels than the device has", path="channels",
                              value=len(plan.channel_ids), allowed=f"at most {self.capabilities.channels}")
        self._join_thread()
        self._command("load", expect="idle", program_hash=plan.program_hash, n_pulses=plan.train.n_pulses)
        with self._dev:
            self._reset_session(plan)

    def _start(self) -> None:
        self._command("start", expect="running")
        if self.threaded:
            self._halt.clear()
            self._thread = threading.Thread(target=self._loop, name="emsim-simulated-device", daemon=True)
            self._thread.start()

    def _pause(self) -> None:
        self._command("pause", expect="paused")

    def _resume(self) -> None:
        self._command("resume", expect="running")

    def _set_intensity(self, channel: int, amplitude_a: float) -> None:
        self._command("set_intensity", expect=None, channel=channel, amplitude_ma=amplitude_a * 1e3)

    def _stop(self, ramp_s: float) -> bool:
        self._command("stop", expect=None, ramp_s=ramp_s)
        if not self.threaded:
            return self._dev_state not in ("running", "paused", "stopping")
        wall = ramp_s / self.speed if math.isfinite(self.speed) else 0.0
        if not self._idle.wait(wall + 5.0):
            raise DeviceError("the device did not finish its stop ramp in time", path="device")
        return True

    def _emergency_stop(self) -> None:
        # Straight to the output stage under the device lock: nothing queues in front of it,
        # and once this returns no further pulse is delivered. Not subject to dropped acks:
        # a real driver resends the stop once and then relies on the device watchdog.
        with self._dev:
            self.device_commands.append("emergency_stop")
            if self._dev_state in ("running", "paused", "stopping", "idle"):
                self._output_off("stopped")
        self._halt.set()
        self._safe(self._log_tx, b'{"cmd":"emergency_stop"}', {"command": "emergency_stop"}, required=False)

    def _close(self) -> None:
        self._halt.set()
        self._join_thread()
        with self._dev:
            self._dev_state = "off"

    def _status_extra(self) -> dict:
        with self._dev:
            return {"speed": self.speed, "delivered_pulses": self._n_out, "simulated": True}

    # ------------------------------------------------------------------ host ↔ device link
    def _command(self, name: str, *, expect: str | None, **fields) -> dict:
        """Send one command, wait for its ack; on a lost ack query the device, never resend."""
        decoded = {"command": name, **fields}
        self._log_tx(json.dumps(decoded, sort_keys=True).encode(), decoded)
        ack = self._exchange(name, fields)
        if ack is None:
            self._audit("info", {"ack_missing": name, "action": "query device state (no blind resend)"})
            q = self._exchange("query", {})
            if q is None:
                raise DeviceError(f"no acknowledgement for {name} and no reply to the status query",
                                  path="device", value=name)
            if expect is not None and q["state"] != expect:
                raise DeviceError(f"no acknowledgement for {name}; the device reports state {q['state']}",
                                  path="device", value=q["state"], allowed=expect)
            ack = {"ack": name, "result": "ok (confirmed by query)", "state": q["state"]}
        if ack.get("result", "ok").startswith("error"):
            raise DeviceError(f"the device refused {name}: {ack['result']}", path="device", value=fields or None)
        return ack

    def _exchange(self, name: str, fields: dict) -> dict | None:
        with self._dev:
            self.device_commands.append(name)
            ack = self._device_handle(name, fields)
            lost = self._drop_acks > 0
            if lost:
                self._drop_acks -= 1
        if lost:
            return None
        self._log_rx(json.dumps(ack, sort_keys=True).encode(), ack)
        return ack

    # ------------------------------------------------------------------ device side
    def _device_handle(self, name: str, f: dict) -> dict:
        """The device's reaction to one command (called with the device lock held)."""
        st = self._dev_state
        ok = {"ack": name, "result": "ok"}
        if name == "query":
            return {"ack": "query", "result": "ok", "state": st}
        if name == "connect":
            self._dev_state = "idle"
        elif name == "load":
            if st in ("running", "paused", "stopping"):
                return {**ok, "result": "error: busy"}
            self._dev_state = "idle"
        elif name == "start":
            if st != "idle" or self._plan_dev is None:
                return {**ok, "result": f"error: wrong mode ({st})"}
            self._dev_state = "running"
            self._idle.clear()
            self._last_hb = self._T
        elif name == "pause":
            if st != "running":
                return {**ok, "result": f"error: wrong mode ({st})"}
            self._dev_state = "paused"
            self._last_amp[:] = 0.0  # output off while paused
        elif name == "resume":
            if st != "paused":
                return {**ok, "result": f"error: wrong mode ({st})"}
            self._dev_state = "running"
            self._resume_at = self._T
            self._shifts.append((self._P, self._T - self._P))  # the program resumes this much later
        elif name == "set_intensity":
            c = int(f["channel"])
            if not 0 <= f["amplitude_ma"] <= self.capabilities.amplitude_ma.max:
                return {**ok, "result": "error: parameter out of range"}
            m = self._plan_dev.max_amplitude_a[c]
            self._scale[c] = min(1.0, f["amplitude_ma"] * 1e-3 / m) if m > 0 else 0.0
            self._scale_now[c] = min(self._scale_now[c], self._scale[c])
        elif name == "stop":
            if st == "running":
                self._dev_state = "stopping"
                self._stop_at, self._stop_ramp = self._T, float(f["ramp_s"])
                if self._stop_ramp <= 0:
                    self._output_off("stopped")
            elif st in ("paused", "stopping"):
                self._output_off("stopped")
        return {**ok, "state": self._dev_state}

    def _reset_session(self, plan: DevicePlan | None) -> None:
        self._plan_dev = plan
        self._T = 0.0          # session time
        self._P = 0.0          # program position
        self._last_clock = self.clock.monotonic()
        self._last_hb = 0.0
        self._out: list[tuple] = []
        self._n_out = 0
        self._physio_cache = None
        self._resume_at: float | None = None
        self._shifts: list[tuple[float, float]] = []  # (program position, session - program time) per resume
        self._stop_at: float | None = None
        self._stop_ramp = 0.0
        self._faults = []
        self._stall = None
        if plan is None:
            self._order = np.zeros(0, np.int64)
            self._t_sorted = np.zeros(0)
            self._chan_of = np.zeros(0, np.int32)
            self._scale = np.zeros(0)
            self._scale_now = np.zeros(0)
            self._slew = np.zeros(0)
            self._last_amp = np.zeros(0)
            self._last_t = np.zeros(0)
        else:
            tr = plan.train
            n_ch = len(tr.channel_ids)
            self._chan_of = np.repeat(np.arange(n_ch, dtype=np.int32), np.diff(tr.channel_ptr))
            self._order = np.argsort(tr.t_s, kind="stable")
            self._t_sorted = tr.t_s[self._order]
            self._scale = np.ones(n_ch)      # operator target, as a fraction of the validated max
            self._scale_now = np.ones(n_ch)  # what the output stage applies (slew-limited upwards)
            self._slew = np.array([SLEW_UP_MA_PER_S * 1e-3 / m if m > 0 else 1e12 for m in plan.max_amplitude_a])
            self._last_amp = np.zeros(n_ch)
            self._last_t = np.full(n_ch, -np.inf)
        self._cursor = 0

    def _output_off(self, state: str) -> None:
        self._dev_state = state
        self._last_amp[:] = 0.0
        self._idle.set()

    def _loop(self) -> None:
        last = self.clock.monotonic()
        fast = not math.isfinite(self.speed)
        while not self._halt.is_set():
            if fast and self._dev_state in ("running", "stopping"):
                self._tick(self.chunk_s * 50)
                continue
            self.clock.sleep(self.tick_s)
            now = self.clock.monotonic()
            dt = (now - last) * (1.0 if fast else self.speed)
            last = now
            self._tick(dt)
            if self._dev_state not in ("running", "paused", "stopping"):
                break

    def _join_thread(self) -> None:
        t = self._thread
        if t is not None and t is not threading.current_thread():
            self._halt.set()
            t.join(timeout=5.0)
        self._thread = None

    def _tick(self, dt: float) -> None:
        """Advance the device by ``dt`` simulated seconds, then report what happened."""
        callbacks: list[tuple] = []
        with self._dev:
            self._advance(dt, callbacks)
            amps = np.where(self._T - self._last_t <= _AMP_HOLD_S, self._last_amp, 0.0)
            progress = (self._T, self._P, amps.tolist())
        # Outside the device lock: the base class and listeners may take their own locks.
        if self._plan_dev is not None and self.state not in (StimulatorState.DISCONNECTED,):
            self._progress(*progress)
        for cb in callbacks:
            cb[0](*cb[1:])

    def _advance(self, dt: float, callbacks: list) -> None:
        if self._dev_state not in ("running", "paused", "stopping"):
            return  # session time runs from start to the end of delivery only
        end = self._T + max(0.0, dt)
        plan = self._plan_dev
        while self._T < end - _EPS:
            st = self._dev_state
            if st not in ("running", "paused", "stopping"):
                break
            step = min(end - self._T, self.chunk_s)
            if self._faults:
                step = min(step, max(0.0, self._faults[0].at_s - self._T))
            if st in ("running", "stopping", "paused") and self._stall is not None and self._stall[1] > self._T:
                # land exactly on the watchdog deadline (and on the end of the stall)
                deadline = self._last_hb + self.capabilities.watchdog_timeout_s
                step = min(step, max(0.0, min(deadline, self._stall[1]) - self._T))
            if st == "running" and plan is not None:
                step = min(step, max(0.0, plan.duration_s - self._P))
            if st == "stopping":
                step = min(step, max(0.0, self._stop_at + self._stop_ramp - self._T))
            if st in ("running", "stopping"):
                self._deliver(step, callbacks)
                self._P += step
                self._scale_now = np.minimum(self._scale, self._scale_now + self._slew * step)
            self._T += step
            self._fire_faults(callbacks)
            st = self._dev_state
            if st in ("running", "paused", "stopping"):
                stalled = self._stall is not None and self._stall[0] <= self._T < self._stall[1]
                if not stalled:
                    self._last_hb = self._T
                elif self._T - self._last_hb >= self.capabilities.watchdog_timeout_s - _EPS:
                    self._output_off("fault")
                    callbacks.append((self._report, f"no keep-alive from the host for {self._T - self._last_hb:.2f} s:"
                                      f" the device watchdog ({self.capabilities.watchdog_timeout_s:g} s) stopped"
                                      " stimulation", None, "watchdog"))
                    return
            if st == "stopping" and self._T >= self._stop_at + self._stop_ramp - _EPS:
                self._output_off("stopped")
                callbacks.append((self._stopped,))
                return
            if st == "running" and plan is not None and self._P >= plan.duration_s - _EPS:
                self._output_off("stopped")
                callbacks.append((self._finished,))
                return
            if step <= 0 and not self._faults:
                break  # nothing can move (e.g. zero-length program): avoid spinning

    def _fire_faults(self, callbacks: list) -> None:
        while self._faults and self._faults[0].at_s <= self._T + _EPS:
            f = self._faults.pop(0)
            if f.kind == "host_stall":
                self._stall = (f.at_s, math.inf if f.duration_s is None else f.at_s + f.duration_s)
                continue
            if self._dev_state not in ("running", "paused", "stopping"):
                continue  # a fault while idle stops nothing; the device reports it on the next start
            self._output_off("fault")
            kind = "electrode" if f.kind == "electrode" else "device"
            callbacks.append((self._report, f.message, f.channel, kind))

    def _report(self, message: str, channel: int | None, kind: str) -> None:
        self._device_error(message, channel=channel, kind=kind)

    def _deliver(self, step: float, callbacks: list) -> None:
        """Deliver the programmed pulses in [P, P + step) at session times from T."""
        hi = int(np.searchsorted(self._t_sorted, self._P + step - _EPS, side="left"))
        lo = self._cursor
        if hi <= lo:
            return
        self._cursor = hi
        idx = self._order[lo:hi]
        tr = self._plan_dev.train
        ch = self._chan_of[idx]
        t = self._T + (tr.t_s[idx] - self._P)
        # Scale at each pulse's time: down at once, up no faster than the slew limit.
        scale = np.minimum(self._scale[ch], self._scale_now[ch] + self._slew[ch] * (t - self._T))
        amp = tr.amplitude_a[idx] * scale
        if self._resume_at is not None:
            if self.resume_ramp_s > 0:
                amp = amp * np.clip((t - self._resume_at) / self.resume_ramp_s, 0.0, 1.0)
            if t[-1] >= self._resume_at + self.resume_ramp_s:
                self._resume_at = None
        if self._dev_state == "stopping" and self._stop_ramp > 0:
            amp = amp * np.clip(1.0 - (t - self._stop_at) / self._stop_ramp, 0.0, 1.0)
        amp = self.capabilities.floor_amplitude_a(amp)
        keep = amp > 0
        if not keep.all():
            idx, ch, t, amp = idx[keep], ch[keep], t[keep], amp[keep]
        if idx.size == 0:
            return
        width = tr.width_s[idx]
        self._out.append((t, ch, width, amp, idx))
        self._n_out += int(idx.size)
        self._last_amp[ch] = amp  # fancy assignment: the last pulse of each channel wins
        self._last_t[ch] = t
        if self._listeners:
            callbacks.append((self._emit, EventKind.PULSES, f"{idx.size} pulses", None,
                              {"t_s": t, "channel": ch, "width_s": width, "amplitude_a": amp,
                               "channel_ids": tr.channel_ids}))
