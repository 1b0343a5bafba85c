"""The one stimulator interface that the simulated stimulator and every real driver implement.

The public methods of :class:`Stimulator` are *template methods*: they do the safety work
(validation for this device and patient, quantisation, the per-channel intensity limit, the
state machine, the audit trail, the emergency-stop guarantees) and only then call a small
protected hook that a subclass implements (``_connect``, ``_load_plan``, ``_start`` ...).
A subclass therefore cannot deliver an unvalidated program or exceed the validated
intensity, because it never sees the program before the checks have passed.

Layering follows ``shared/reference/devices_and_safety.md`` §5.1: program → safety gate →
driver → codec → transport. Research use only: emsim has no clinical clearance.

State machine::

    DISCONNECTED --connect--> CONNECTED --load--> LOADED --start--> RUNNING <--pause/resume--> PAUSED
    RUNNING/PAUSED --stop--> STOPPING --(ramp done)--> STOPPED --load--> LOADED ...
    any --emergency_stop--> STOPPED          any --device error--> ERROR (connect again to clear)
    any --close--> DISCONNECTED

Hooks a subclass implements (all run *after* the base-class checks)
-------------------------------------------------------------------
``_connect()``                 open the port / handshake
``_load_plan(plan)``           take a :class:`DevicePlan` (validated, quantised); no output yet
``_start()``, ``_pause()``, ``_resume()``
``_set_intensity(c, amplitude_a)``  new plateau intensity of channel index ``c`` (≤ validated max)
``_stop(ramp_s) -> bool | None``  ramp down then stop; return ``False`` if the stop completes later
                               (the subclass then calls :meth:`Stimulator._stopped`)
``_emergency_stop()``          stop output *now*; must be safe from any thread and idempotent
``_close()``                   release the port
``_status_extra() -> dict``    optional device-specific status fields

Calls a subclass makes back into the base class
-----------------------------------------------
``_progress(elapsed_s, program_s, amplitudes_a)``  live position and delivered amplitudes
``_finished()``                the program ran to its end; the device has stopped
``_stopped(cause)``            an asynchronous :meth:`Stimulator.stop` completed
``_device_error(message, channel=None, kind="device")``  device/electrode fault → emergency stop
``_emit(kind, message, channel=None, data=None)``       send an event to the listeners
``_log_tx(frame, decoded)`` / ``_log_rx(frame, decoded)``  audit a serial frame; ``_log_tx``
                               commits *before* it returns, so call it before writing the bytes
"""

from __future__ import annotations

import enum
import hashlib
import math
import threading
import time
import traceback
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from emsim.errors import DeviceError, EmsimError, SafetyViolation
from emsim.program.device_profile import DeviceProfile, Range, device_profile

__all__ = [
    "Capabilities", "StimulatorState", "ChannelStatus", "Status", "DeviceEvent", "EventKind",
    "DevicePlan", "Stimulator", "program_hash", "DEFAULT_STOP_RAMP_S",
]

# A graceful stop lowers the current to zero over this time unless the caller gives one:
# long enough to avoid the abrupt release the programmed ramps exist to prevent, short
# enough that "stop" still feels immediate to the operator [assumed; design choice].
DEFAULT_STOP_RAMP_S = 1.0
# Fraction of the device watchdog at which the host sends a keep-alive: the reference
# recommends 0.5-0.8 s for the 1.2 s ScienceMode 2 watchdog and 0.5-1 s for the 2 s
# ScienceMode 4 timeout (devices_and_safety.md §1.4, §5.1); 0.4 x gives 0.48 s and 0.8 s.
HEARTBEAT_FRACTION = 0.4
_AMP_TOL_A = 1e-9  # 1 nA: float noise when comparing a requested current with the validated max


def program_hash(program) -> str:
    """SHA-256 (hex) of the canonical JSON of ``program`` (:func:`emsim.program.io.dumps`)."""
    from emsim.program.io import dumps

    return hashlib.sha256(dumps(program).encode("utf-8")).hexdigest()


# --------------------------------------------------------------------------- capabilities

@dataclass(frozen=True)
class Capabilities:
    """What a stimulator can deliver, in the human units of the program format.

    Built from the device profile (``models/devices/*.json``) so that the safety validator,
    quantisation and the driver agree on one envelope per device.

    Attributes
    ----------
    device_id : str
        Profile id used for validation (``rehastim2``, ``p24``, ``generic``).
    channels : int
    amplitude_ma, pulse_width_us : Range
        Representable current and (primary-phase) pulse width.
    frequency_hz : tuple of float
        Lowest and highest pulse frequency (from the period range).
    period_ms : Range
        Representable pulse period (frequency steps are steps of the period).
    shared_frequency : bool
        One base period for all channels (ScienceMode 2).
    watchdog_timeout_s : float
        The device stops stimulating when it hears nothing from the host for this long.
    heartbeat_period_s : float
        How often the host sends a keep-alive (well inside the watchdog).
    """

    device_id: str
    name: str
    protocol: str
    channels: int
    amplitude_ma: Range
    pulse_width_us: Range
    frequency_hz: tuple[float, float]
    period_ms: Range
    shared_frequency: bool
    watchdog_timeout_s: float
    heartbeat_period_s: float
    emergency_stop_input: bool = False

    @classmethod
    def from_profile(cls, profile: DeviceProfile | str, *,
                     heartbeat_period_s: float | None = None) -> "Capabilities":
        """Capabilities of the device described by ``profile`` (an id or a :class:`DeviceProfile`)."""
        p = device_profile(profile) if isinstance(profile, str) else profile
        hb = HEARTBEAT_FRACTION * p.watchdog_s if heartbeat_period_s is None else float(heartbeat_period_s)
        if not 0 < hb < p.watchdog_s:
            raise DeviceError("heartbeat period must be positive and shorter than the watchdog",
                              path="heartbeat_period_s", value=hb, allowed=f"0 < x < {p.watchdog_s:g} s")
        return cls(device_id=p.id, name=p.name, protocol=p.protocol, channels=p.channels,
                   amplitude_ma=p.current_ma, pulse_width_us=p.pulse_width_us,
                   frequency_hz=(1000.0 / p.period_ms.max, 1000.0 / p.period_ms.min),
                   period_ms=p.period_ms, shared_frequency=p.shared_period,
                   watchdog_timeout_s=p.watchdog_s, heartbeat_period_s=hb,
                   emergency_stop_input=p.emergency_stop_input)

    def floor_amplitude_a(self, amplitude_a):
        """Largest representable current not above ``amplitude_a`` (A; scalar or array).

        Rounding *down* means a scaled or ramped current never exceeds what was validated.
        """
        step = self.amplitude_ma.step * 1e-3
        a = np.floor(np.asarray(amplitude_a, dtype=np.float64) / step + 1e-6) * step
        a = np.clip(a, 0.0, self.amplitude_ma.max * 1e-3)
        return float(a) if np.ndim(a) == 0 else a


# --------------------------------------------------------------------------- state, status, events

class StimulatorState(str, enum.Enum):
    DISCONNECTED = "disconnected"
    CONNECTED = "connected"
    LOADED = "loaded"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    ERROR = "error"

    def __str__(self) -> str:
        return self.value


_ACTIVE = (StimulatorState.RUNNING, StimulatorState.PAUSED, StimulatorState.STOPPING)


@dataclass(frozen=True)
class ChannelStatus:
    """One channel: the current being delivered now, the operator's level and the validated max."""

    id: str
    amplitude_ma: float     # amplitude of the most recent pulse (0 between pulses' on-windows)
    level_ma: float         # operator intensity: the plateau the program's peak is scaled to
    max_ma: float           # validated maximum for this program, patient and device


@dataclass(frozen=True)
class Status:
    """A snapshot of a stimulator (see :meth:`Stimulator.status`)."""

    state: StimulatorState
    device_id: str
    elapsed_s: float = 0.0          # session time since start (pauses included)
    program_s: float = 0.0          # position in the program (pauses excluded)
    duration_s: float = 0.0         # programmed session length
    phase: int | None = None
    phase_name: str | None = None
    cycle: int | None = None        # on/off cycle number within the phase (first channel)
    channels: tuple[ChannelStatus, ...] = ()
    last_error: str | None = None
    stop_cause: str | None = None
    extra: dict = field(default_factory=dict)

    @property
    def progress(self) -> float:
        return min(1.0, self.program_s / self.duration_s) if self.duration_s > 0 else 0.0

    def to_dict(self) -> dict:
        return {"state": self.state.value, "device": self.device_id, "elapsed_s": self.elapsed_s,
                "program_s": self.program_s, "duration_s": self.duration_s, "phase": self.phase,
                "phase_name": self.phase_name, "cycle": self.cycle,
                "channels": [vars(c) for c in self.channels], "last_error": self.last_error,
                "stop_cause": self.stop_cause, **self.extra}


class EventKind:
    """Event kinds sent to listeners (plain strings, so drivers may add their own)."""

    STATE = "state"              # message = new state
    PULSES = "pulses"            # data = dict of arrays t_s, channel, width_s, amplitude_a
    PROGRESS = "progress"
    INTENSITY = "intensity"
    ERROR = "error"              # device or electrode error (followed by an emergency stop)
    STOP = "stop"                # message = cause
    FINISHED = "finished"
    WARNING = "warning"


@dataclass(frozen=True)
class DeviceEvent:
    """Something that happened on a stimulator; ``t_monotonic`` is :func:`time.monotonic`."""

    kind: str
    message: str = ""
    channel: str | None = None
    t_monotonic: float = field(default_factory=time.monotonic)
    data: Any = None


# --------------------------------------------------------------------------- the plan

@dataclass(frozen=True, eq=False)
class DevicePlan:
    """A program validated for one patient and device, compiled and quantised: what hooks receive.

    Attributes
    ----------
    train : PulseTrain
        The quantised session (device frequencies, widths and current steps); its ``blocks``
        carry the snapped stimulation settings per channel and phase.
    max_amplitude_a : tuple of float
        Per channel, the highest current of the validated train: the operator may lower the
        intensity and raise it back, never above this.
    """

    program: Any
    patient: Any
    session: int
    device_id: str
    program_hash: str
    patient_id: str | None
    train: Any
    quantisation: Any
    safety: Any
    max_amplitude_a: tuple[float, ...]

    @property
    def channel_ids(self) -> tuple[str, ...]:
        return self.train.channel_ids

    @property
    def duration_s(self) -> float:
        return float(self.train.duration_s)

    def channel_index(self, channel: int | str) -> int:
        """Index of ``channel`` (an id or an index); :class:`DeviceError` if there is none."""
        ids = self.channel_ids
        if isinstance(channel, (int, np.integer)) and not isinstance(channel, bool) and 0 <= channel < len(ids):
            return int(channel)
        if isinstance(channel, str) and channel in ids:
            return ids.index(channel)
        raise DeviceError("unknown channel", path="channel", value=channel,
                          allowed=", ".join(ids) + f" or 0 to {len(ids) - 1}")

    def phase_windows(self) -> list[tuple[float, float]]:
        out: dict[int, tuple[float, float]] = {}
        for b in self.train.blocks:
            out.setdefault(b.phase, (b.start_s, b.end_s))
        # Phases without stimulation have no block; rebuild them from the program durations.
        starts, t = [], 0.0
        scale = self.duration_s / max(sum(ph.duration_s for ph in self.program.phases), 1e-12)
        for p, ph in enumerate(self.program.phases):
            starts.append(out.get(p, (t, t + ph.duration_s * scale)))
            t += ph.duration_s * scale
        return starts

    def phase_at(self, program_s: float) -> int | None:
        for p, (a, b) in enumerate(self.phase_windows()):
            if a <= program_s < b:
                return p
        return None

    def cycle_at(self, program_s: float) -> int | None:
        """On/off cycle number (0-based) of the first stimulated channel in the current phase."""
        for b in self.train.blocks:
            if b.start_s <= program_s < b.end_s:
                st = b.stimulation
                return max(0, int(math.floor((program_s - b.first_cycle_s) / (st.on_s + st.off_s))))
        return None


# --------------------------------------------------------------------------- the interface

Listener = Callable[[DeviceEvent], None]


class Stimulator(ABC):
    """Abstract stimulator: template methods with safety checks around device-specific hooks.

    Parameters
    ----------
    capabilities : Capabilities
    audit : emsim.devices.audit.AuditLog, optional
        Every state change, operator action, validator decision, stop cause and (through the
        drivers) every serial frame is written to it.
    operator : str, optional
        Recorded in the audit log with each session.
    """

    def __init__(self, capabilities: Capabilities, *, audit=None, operator: str | None = None):
        self._caps = capabilities
        self.audit = audit
        self.operator = operator
        self._lock = threading.RLock()       # guards the fields below; held only briefly
        self._op_lock = threading.RLock()    # serialises operator commands (not emergency_stop)
        self._state = StimulatorState.DISCONNECTED
        self._plan: DevicePlan | None = None
        self._level_a: list[float] = []
        self._amp_a: list[float] = []
        self._elapsed_s = 0.0
        self._program_s = 0.0
        self._last_error: str | None = None
        self._stop_cause: str | None = None
        self._stop_request = "operator stop"
        self._estopped = threading.Event()   # set by emergency_stop until the next load/start
        self._listeners: list[Listener] = []

    # ------------------------------------------------------------------ read-only views
    @property
    def capabilities(self) -> Capabilities:
        return self._caps

    @property
    def state(self) -> StimulatorState:
        return self._state

    @property
    def plan(self) -> DevicePlan | None:
        return self._plan

    @property
    def emergency_stopped(self) -> bool:
        """True from an emergency stop until the next :meth:`load`."""
        return self._estopped.is_set()

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(event)`` for every :class:`DeviceEvent` (from the emitting thread)."""
        with self._lock:
            self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        with self._lock:
            if callback in self._listeners:
                self._listeners.remove(callback)

    def note(self, message: str, **fields) -> None:
        """Write an operator note (an ``operator`` record) to the audit log, if one is attached."""
        self._operator("note", message=message, **fields)

    def status(self) -> Status:
        """A consistent snapshot; safe from any thread."""
        with self._lock:
            plan = self._plan
            channels = ()
            phase = cycle = name = None
            if plan is not None:
                channels = tuple(ChannelStatus(cid, self._amp_a[c] * 1e3, self._level_a[c] * 1e3,
                                               plan.max_amplitude_a[c] * 1e3)
                                 for c, cid in enumerate(plan.channel_ids))
                phase = plan.phase_at(self._program_s)
                name = plan.program.phases[phase].name if phase is not None else None
                cycle = plan.cycle_at(self._program_s)
            snapshot = dict(state=self._state, device_id=self._caps.device_id, elapsed_s=self._elapsed_s,
                            program_s=self._program_s, duration_s=plan.duration_s if plan else 0.0,
                            phase=phase, phase_name=name, cycle=cycle, channels=channels,
                            last_error=self._last_error, stop_cause=self._stop_cause)
        try:  # outside the lock: a driver's own lock must never nest inside ours
            extra = dict(self._status_extra())
        except Exception:  # status must never fail because of a driver detail
            extra = {}
        return Status(**snapshot, extra=extra)

    # ------------------------------------------------------------------ template methods
    def connect(self) -> None:
        """Open the connection to the device (handshake); also clears an ERROR state. No-op when connected."""
        with self._op_lock:
            if self._state is StimulatorState.CONNECTED:
                return
            self._require(StimulatorState.DISCONNECTED, StimulatorState.ERROR, action="connect")
            self._operator("connect")
            try:
                self._connect()
            except Exception as exc:
                self._fail_op("connect", exc)
            with self._lock:
                self._last_error = None
            self._set_state(StimulatorState.CONNECTED)

    def validate(self, program, patient, *, session: int = 1, today=None) -> DevicePlan:
        """Check, compile and quantise ``program`` for ``patient`` on this device, without any device I/O.

        Works in any state (call it before :meth:`connect` so that an unsafe program is refused
        before a single byte reaches the port). Every decision is written to the audit log.
        :meth:`load` calls it again, so nothing reaches a device without passing it.

        Raises
        ------
        SafetyViolation
            The program is not safe for this patient on this device.
        DeviceError
            The device cannot represent the program.
        ProgramError, PatientError
            The program or patient cannot be resolved.
        """
        from emsim.program.compile import compile as compile_program
        from emsim.program.quantise import quantise
        from emsim.safety import require_safe

        phash = self._audit_session(program, patient, session)
        pid = getattr(patient, "id", None)
        dev = self._caps.device_id
        try:
            kwargs = {"session": session} if today is None else {"session": session, "today": today}
            report = require_safe(program, patient, dev, **kwargs)
        except SafetyViolation as exc:
            self._audit("validator", {"ok": False, "device": dev, "patient": pid, "program_hash": phash,
                                      "errors": [f.line() for f in exc.report.errors]})
            self._emit(EventKind.ERROR, f"refused: {exc.one_line()}")
            raise
        except EmsimError as exc:
            self._audit("validator", {"ok": False, "device": dev, "patient": pid, "program_hash": phash,
                                      "errors": [exc.one_line()]})
            raise
        train = compile_program(program, patient, session=session)
        qtrain, qreport = quantise(train, dev)
        if not qreport.ok:
            self._audit("validator", {"ok": False, "device": dev, "patient": pid, "program_hash": phash,
                                      "errors": list(qreport.problems)})
            raise DeviceError(f"the device cannot represent this program: {qreport.problems[0]}",
                              path="device", value=dev, allowed="a program within the device's steps and ranges")
        maxima = tuple(float(np.max(qtrain.amplitude_a[qtrain.channel_slice(c)], initial=0.0))
                       for c in range(len(qtrain.channel_ids)))
        limit_a = self._caps.amplitude_ma.max * 1e-3
        for cid, m in zip(qtrain.channel_ids, maxima):
            if m > limit_a + _AMP_TOL_A:  # the validator should have caught it: belt and braces
                raise DeviceError("validated amplitude above the device maximum", path=f"channel {cid}",
                                  value=m * 1e3, allowed=self._caps.amplitude_ma.text("mA"))
        self._audit("validator", {"ok": True, "device": dev, "patient": pid, "program_hash": phash,
                                  "warnings": [f.line() for f in report.warnings],
                                  "max_amplitude_ma": {c: round(m * 1e3, 6) for c, m in zip(qtrain.channel_ids, maxima)},
                                  "n_pulses": qtrain.n_pulses, "duration_s": qtrain.duration_s,
                                  "quantisation": qreport.to_dict()})
        return DevicePlan(program=program, patient=patient, session=session, device_id=dev, program_hash=phash,
                          patient_id=pid, train=qtrain, quantisation=qreport, safety=report, max_amplitude_a=maxima)

    def load(self, program, patient, *, session: int = 1, today=None) -> DevicePlan:
        """Validate ``program`` for ``patient`` on this device, quantise it and hand it to the device.

        Nothing is sent to the device unless :meth:`validate` passes: the safety check
        (:func:`emsim.safety.require_safe`) and a faithful quantisation
        (:func:`emsim.program.quantise.quantise` reports no problem).

        Raises
        ------
        SafetyViolation
            The program is not safe for this patient on this device (nothing was delivered).
        DeviceError
            Wrong state, or the device cannot represent the program.
        ProgramError, PatientError
            The program or patient cannot be resolved.
        """
        with self._op_lock:
            self._require(StimulatorState.CONNECTED, StimulatorState.LOADED, StimulatorState.STOPPED,
                          action="load a program")
            phash = self._audit_session(program, patient, session)
            self._operator("load", program_hash=phash, patient_id=getattr(patient, "id", None), session=session)
            plan = self.validate(program, patient, session=session, today=today)
            try:
                self._load_plan(plan)
            except Exception as exc:
                self._fail_op("load", exc)
            with self._lock:
                self._plan = plan
                self._level_a = list(plan.max_amplitude_a)
                self._amp_a = [0.0] * len(plan.max_amplitude_a)
                self._elapsed_s = self._program_s = 0.0
                self._stop_cause = None
                self._estopped.clear()
            self._set_state(StimulatorState.LOADED)
            return plan

    def start(self) -> None:
        """Start delivering the loaded program from its beginning."""
        with self._op_lock:
            if self._state is not StimulatorState.LOADED or self._plan is None:
                raise DeviceError("cannot start: no validated program loaded", path="state",
                                  value=self._state.value, allowed="loaded (call load first)")
            self._operator("start")
            # RUNNING before the hook: a fast device may finish (or fail) before the hook returns,
            # and its completion must find the state it ends.
            if not self._transition(StimulatorState.RUNNING, StimulatorState.LOADED):
                raise DeviceError("cannot start after an emergency stop; load the program again", path="state",
                                  value=self._state.value, allowed="loaded")
            try:
                self._start()
            except Exception as exc:
                self._fail_op("start", exc)

    def pause(self) -> None:
        """Suspend output at the current program position; :meth:`resume` continues from there."""
        with self._op_lock:
            self._require(StimulatorState.RUNNING, action="pause")
            self._operator("pause")
            try:
                self._pause()
            except Exception as exc:
                self._fail_op("pause", exc)
            self._transition(StimulatorState.PAUSED, StimulatorState.RUNNING)

    def resume(self) -> None:
        with self._op_lock:
            self._require(StimulatorState.PAUSED, action="resume")
            self._operator("resume")
            if not self._transition(StimulatorState.RUNNING, StimulatorState.PAUSED):
                return
            try:
                self._resume()
            except Exception as exc:
                self._fail_op("resume", exc)

    def set_intensity(self, channel: int | str, amplitude_ma: float) -> float:
        """Set a channel's intensity (the plateau current) in mA; returns the value applied.

        The program's shape (phases, ramps) is kept and scaled so that its peak on this channel
        is ``amplitude_ma``. The value is rounded *down* to the device's current step.

        Raises
        ------
        DeviceError
            No program loaded, unknown channel, or ``amplitude_ma`` above the validated
            maximum for this channel (or negative / not a number).
        """
        with self._op_lock:
            self._require(StimulatorState.LOADED, StimulatorState.RUNNING, StimulatorState.PAUSED,
                          action="set the intensity")
            plan = self._plan
            c = plan.channel_index(channel)
            cid = plan.channel_ids[c]
            max_ma = plan.max_amplitude_a[c] * 1e3
            try:
                value = float(amplitude_ma)
            except (TypeError, ValueError):
                value = math.nan
            if not (math.isfinite(value) and value >= 0.0) or value > max_ma + _AMP_TOL_A * 1e3:
                self._audit("operator", {"action": "set_intensity", "channel": cid, "amplitude_ma": amplitude_ma,
                                         "refused": True, "max_ma": round(max_ma, 6)})
                raise DeviceError(f"intensity above the validated maximum refused on channel {cid}",
                                  path=f"channel {cid}", value=amplitude_ma,
                                  allowed=f"0 to {max_ma:g} mA (validated for this program and patient)")
            applied_a = min(self._caps.floor_amplitude_a(value * 1e-3), plan.max_amplitude_a[c])
            self._operator("set_intensity", channel=cid, amplitude_ma=value, applied_ma=round(applied_a * 1e3, 6))
            try:
                self._set_intensity(c, applied_a)
            except Exception as exc:
                self._fail_op("set_intensity", exc)
            with self._lock:
                self._level_a[c] = applied_a
            self._emit(EventKind.INTENSITY, f"{cid} {applied_a * 1e3:g} mA", channel=cid,
                       data={"amplitude_ma": applied_a * 1e3, "max_ma": max_ma})
            return applied_a * 1e3

    def stop(self, ramp_s: float | None = None, *, cause: str = "operator stop") -> None:
        """Ramp the current down over ``ramp_s`` (default 1 s), then stop. No-op when not delivering.

        ``cause`` is recorded as the stop cause (for example "SIGTERM received").
        """
        ramp = DEFAULT_STOP_RAMP_S if ramp_s is None else float(ramp_s)
        if not (math.isfinite(ramp) and ramp >= 0):
            raise DeviceError("stop ramp must be a non-negative number of seconds", path="ramp_s",
                              value=ramp_s, allowed=">= 0 s")
        with self._op_lock:
            if self._state not in (StimulatorState.RUNNING, StimulatorState.PAUSED):
                return
            self._operator("stop", ramp_s=ramp, cause=cause)
            with self._lock:
                self._stop_request = cause
            if not self._transition(StimulatorState.STOPPING, StimulatorState.RUNNING, StimulatorState.PAUSED):
                return  # an emergency stop got there first
            try:
                done = self._stop(ramp)
            except Exception as exc:
                self._fail_op("stop", exc)
            if done is not False:
                self._stopped()

    def emergency_stop(self, cause: str = "emergency stop") -> None:
        """Stop all output at once. Idempotent, thread-safe, never raises, works from any thread.

        Does not wait for an operator command in progress (it does not take the operator lock).
        The first call after a load calls the device hook; later calls only record their cause.
        """
        self._estop(cause, StimulatorState.STOPPED)

    def _estop(self, cause: str, final: StimulatorState) -> None:
        try:
            with self._lock:
                first = not self._estopped.is_set()
                self._estopped.set()  # from here on no conditional transition can re-arm output
                # After a graceful end (completed or stopped) the press stops nothing that runs: the
                # end keeps its cause and the press is logged as an operator action of its own.
                ended = self._stop_cause if self._state not in _ACTIVE else None
            if first:
                try:
                    self._emergency_stop()
                except BaseException as exc:  # noqa: BLE001 - an emergency stop must never raise
                    self._safe(self._audit, "error", {"where": "emergency_stop hook",
                                                      "error": f"{type(exc).__name__}: {exc}"})
                with self._lock:
                    if ended is None:
                        self._stop_cause = cause
                    self._amp_a = [0.0] * len(self._amp_a)
            if first and ended is not None:
                self._safe(self._operator, "emergency_stop", cause=cause, after_end=ended)
            else:
                self._safe(self._audit, "stop_cause", {"cause": cause, "emergency": True, "repeat": not first})
            if first and ended is None:
                self._safe(self._emit, EventKind.STOP, cause)
            if final is StimulatorState.ERROR or (
                    first and self._state not in (StimulatorState.DISCONNECTED, StimulatorState.ERROR)):
                self._safe(self._set_state, final)
        except BaseException:  # noqa: BLE001 - last line of defence: never raise from here
            pass

    def close(self) -> None:
        """Stop (emergency stop if delivering) and release the device."""
        with self._op_lock:
            if self._state in _ACTIVE:
                self.emergency_stop("closed while delivering")
            if self._state is StimulatorState.DISCONNECTED:
                return
            self._operator("close")
            try:
                self._close()
            finally:
                self._set_state(StimulatorState.DISCONNECTED)

    def __enter__(self) -> "Stimulator":
        if self._state is StimulatorState.DISCONNECTED:
            self.connect()
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.emergency_stop(f"exception in the controlling code: {exc_type.__name__}: {exc}")
        elif self._state in _ACTIVE:
            try:
                self.stop()
            except BaseException as stop_exc:  # noqa: BLE001 - leaving must stop whatever happens
                self.emergency_stop(f"stop on exit failed: {stop_exc}")
        if self._state in _ACTIVE:
            self.emergency_stop("context exit while still delivering")
        try:
            self.close()
        except Exception:
            self.emergency_stop("close failed on context exit")
            if exc_type is None:
                raise

    # ------------------------------------------------------------------ hooks
    @abstractmethod
    def _connect(self) -> None: ...

    @abstractmethod
    def _load_plan(self, plan: DevicePlan) -> None: ...

    @abstractmethod
    def _start(self) -> None: ...

    @abstractmethod
    def _pause(self) -> None: ...

    @abstractmethod
    def _resume(self) -> None: ...

    @abstractmethod
    def _set_intensity(self, channel: int, amplitude_a: float) -> None: ...

    @abstractmethod
    def _stop(self, ramp_s: float) -> bool | None: ...

    @abstractmethod
    def _emergency_stop(self) -> None: ...

    def _close(self) -> None:
        """Release the device (default: nothing to release)."""

    def _status_extra(self) -> dict:
        return {}

    # ------------------------------------------------------------------ calls for subclasses
    def level_a(self, channel: int) -> float:
        """Operator intensity (plateau current, A) of channel index ``channel``."""
        return self._level_a[channel]

    def intensity_scale(self, channel: int) -> float:
        """Factor that maps the program's currents on ``channel`` to the operator's level (≤ 1)."""
        m = self._plan.max_amplitude_a[channel] if self._plan else 0.0
        return min(1.0, self._level_a[channel] / m) if m > 0 else 0.0

    def _progress(self, elapsed_s: float, program_s: float, amplitudes_a=None) -> None:
        with self._lock:
            self._elapsed_s = float(elapsed_s)
            self._program_s = float(program_s)
            if amplitudes_a is not None:
                for c, a in enumerate(amplitudes_a):
                    self._amp_a[c] = float(a)

    def _finished(self) -> None:
        """The program ran to its end and the device has stopped."""
        self._end_gracefully(_ACTIVE, "program completed", EventKind.FINISHED)

    def _stopped(self, cause: str | None = None) -> None:
        """A graceful stop has completed (ramp down done, device stopped); cause defaults to the request's."""
        self._end_gracefully((StimulatorState.STOPPING,), cause, EventKind.STOP)

    def _end_gracefully(self, from_states, cause: str | None, event: str) -> None:
        # Check and change the state in one step: the device thread and the operator's thread
        # may both report the same end, and it must be recorded once.
        with self._lock:
            if self._estopped.is_set() or self._state not in from_states:
                return
            cause = cause or self._stop_request
            old, self._state = self._state, StimulatorState.STOPPED
            self._stop_cause = cause
            self._amp_a = [0.0] * len(self._amp_a)
        self._safe(self._audit, "stop_cause", {"cause": cause, "emergency": False})
        self._safe(self._emit, event, cause)
        self._safe(self._record_state, old, StimulatorState.STOPPED)

    def _device_error(self, message: str, *, channel: str | int | None = None, kind: str = "device") -> None:
        """The device reported a fault (electrode, watchdog, lost connection ...): emergency stop.

        Ends in state ERROR (connect again to clear it). Never raises; safe from a reader or
        heartbeat thread.
        """
        text = f"{kind} error: {message}"
        try:
            cid = channel
            if isinstance(channel, (int, np.integer)) and self._plan is not None:
                cid = self._plan.channel_ids[int(channel)]
            text = f"{kind} error{' on channel ' + str(cid) if cid is not None else ''}: {message}"
            with self._lock:
                self._last_error = text
            self._safe(self._audit, "error", {"kind": kind, "channel": cid, "message": message})
            self._safe(self._emit, EventKind.ERROR, text, channel=None if cid is None else str(cid),
                       data={"kind": kind})
        finally:
            self._estop(text, StimulatorState.ERROR)

    def _emit(self, kind: str, message: str = "", channel: str | None = None, data: Any = None) -> None:
        with self._lock:
            listeners = list(self._listeners)
        if not listeners:
            return
        event = DeviceEvent(kind=kind, message=message, channel=channel, data=data)
        for cb in listeners:
            try:
                cb(event)
            except Exception:  # a broken listener must not break delivery or stopping
                self._safe(self._audit, "error", {"where": "listener", "error": traceback.format_exc(limit=3)})

    def _log_tx(self, frame: bytes, decoded: Any = None, *, required: bool = True) -> None:
        """Audit a frame about to be sent; returns only after it is committed.

        Raises :class:`DeviceError` if the record cannot be written and ``required`` (then the
        frame must not be sent). Emergency-stop paths pass ``required=False``.
        """
        if self.audit is None:
            return
        try:
            self.audit.tx(frame, decoded)
        except Exception as exc:
            if required:
                raise DeviceError(f"audit log write failed; command not sent ({exc})", path="audit") from exc

    def _log_rx(self, frame: bytes, decoded: Any = None) -> None:
        if self.audit is not None:
            self._safe(self.audit.rx, frame, decoded)

    # ------------------------------------------------------------------ internals
    def _require(self, *states: StimulatorState, action: str) -> None:
        if self._state not in states:
            raise DeviceError(f"cannot {action} in state {self._state.value}", path="state",
                              value=self._state.value, allowed=", ".join(s.value for s in states))

    def _transition(self, state: StimulatorState, *from_states: StimulatorState) -> bool:
        """Change state only from ``from_states`` and only if no emergency stop has happened."""
        with self._lock:
            if self._estopped.is_set() or self._state not in from_states:
                return False
            old, self._state = self._state, state
        self._record_state(old, state)
        return True

    def _set_state(self, state: StimulatorState) -> None:
        with self._lock:
            old = self._state
            if old is state:
                return
            self._state = state
        self._record_state(old, state)

    def _record_state(self, old: StimulatorState, state: StimulatorState) -> None:
        self._safe(self._audit, "state", {"from": old.value, "to": state.value})
        self._emit(EventKind.STATE, state.value)

    def _operator(self, action: str, **fields) -> None:
        self._audit("operator", {"action": action, **fields})

    def _audit(self, kind: str, decoded: Any) -> None:
        """Write one audit record; an operator action whose record cannot be written is refused."""
        if self.audit is None:
            return
        try:
            self.audit.record(kind, decoded)
        except Exception as exc:
            raise DeviceError(f"audit log write failed ({type(exc).__name__}: {exc})", path="audit") from exc

    def _audit_session(self, program, patient, session: int) -> str:
        """Open (or continue) the audit session of this program and patient; returns the program hash."""
        phash = program_hash(program)
        if self.audit is not None:
            try:
                self.audit.begin_session(program_hash=phash, patient_id=getattr(patient, "id", None),
                                         device=self._caps.device_id, operator=self.operator,
                                         program_name=getattr(program, "name", None), session_number=session)
            except Exception as exc:
                raise DeviceError(f"audit log write failed ({type(exc).__name__}: {exc})", path="audit") from exc
        return phash

    def _fail_op(self, action: str, exc: Exception) -> None:
        """A hook failed: record it, stop output if anything may be live, raise a DeviceError."""
        self._safe(self._audit, "error", {"where": action, "error": f"{type(exc).__name__}: {exc}"})
        if action not in ("connect", "load"):  # after start began, output may be live: stop it
            self.emergency_stop(f"{action} failed: {type(exc).__name__}: {exc}")
        if isinstance(exc, EmsimError):
            raise exc
        raise DeviceError(f"{action} failed: {type(exc).__name__}: {exc}", path="device",
                          value=self._caps.device_id) from exc

    @staticmethod
    def _safe(fn, *args, **kwargs) -> None:
        try:
            fn(*args, **kwargs)
        except Exception:
            pass
