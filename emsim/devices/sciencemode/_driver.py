"""What the ScienceMode 2 and ScienceMode 4 drivers share: serial I/O, acknowledgements,
heartbeat, the session executor and the emergency stop.

Layering as recommended in ``devices_and_safety.md`` §5.1: the base class
(:class:`emsim.devices.base.Stimulator`) validates and quantises; :func:`build_schedule` turns
the quantised :class:`~emsim.program.compile.PulseTrain` into the host-side update steps
(ramps, on/off cycles, phase changes); :class:`FramedDriver` runs them over pyserial; the
subclasses say how one step becomes device commands. Rules from §5.1:

* **one outstanding command**: a transaction holds ``_tx_lock`` from write to acknowledgement;
  acknowledgements are matched by packet number *and* the expected acknowledgement command;
* **no blind resend**: a missing, corrupted or refused acknowledgement during delivery is
  followed by a mode/status query and an emergency stop, never by sending the command again
  (only an explicit "busy" answer, which says the command was not executed, is retried);
* **heartbeat**: a thread sends the keep-alive well inside the device watchdog, but only
  while the session executor shows signs of life; a crashed or hung controller therefore
  stops the keep-alive and the device's own watchdog stops stimulation;
* **emergency stop**: the stop command is written at once (not queued behind a transaction),
  resent once if no acknowledgement arrives within 100 ms, the heartbeat is stopped and the
  port closed;
* **audit before the wire**: every frame is recorded (``Stimulator._log_tx``) before it is
  written; replies are recorded when they arrive.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from emsim.devices.base import Capabilities, DevicePlan, EventKind, Stimulator, StimulatorState
from emsim.devices.sciencemode import BadFrame, BadFrameKind
from emsim.errors import DeviceError

__all__ = ["FramedDriver", "Schedule", "build_schedule", "AcknowledgementError", "DeviceFault",
           "serial_settings"]

try:  # POSIX: pyserial lets termios.error through when the port refuses its settings
    import termios
    _TTY_ERRORS: tuple = (termios.error,)
except ImportError:  # pragma: no cover - Windows
    _TTY_ERRORS = ()

ESTOP_ACK_WAIT_S = 0.1       # §5.1: resend the stop once if no ack within ~100 ms
EXECUTOR_MAX_SLEEP_S = 0.02  # the executor wakes at least this often (liveness for the heartbeat)


class AcknowledgementError(DeviceError):
    """A command got no valid acknowledgement (missing, corrupted or for another packet)."""


class DeviceFault(DeviceError):
    """The device refused a command or reported a fault (electrode, compliance, mode ...).

    ``fault_kind`` and ``channel`` (program channel index) are passed on to the error event.
    """

    def __init__(self, message: str, *, fault_kind: str = "device", channel: int | None = None,
                 value=None, allowed: str | None = None):
        self.fault_kind = fault_kind
        self.channel = channel
        super().__init__(message, path="device", value=value, allowed=allowed)


def serial_settings(profile_id: str) -> dict:
    """pyserial keyword arguments for a device, from its profile (``models/devices/*.json``)."""
    from emsim.program.device_profile import device_profile

    s = device_profile(profile_id).serial
    return {"baudrate": int(s["baudrate"]), "bytesize": int(s["bytesize"]), "parity": s["parity"],
            "stopbits": s["stopbits"], "rtscts": bool(s["rtscts"])}


# --------------------------------------------------------------------------- schedule


@dataclass(frozen=True)
class Schedule:
    """Host-side update steps of one session.

    Row ``i`` holds from ``times_s[i]`` (program seconds) until ``times_s[i + 1]``:
    ``block[i, c]`` is the index into ``train.blocks`` of channel ``c`` (−1: channel off) and
    ``amplitude_a[i, c]`` the current to command before the operator's intensity scale.
    ``phase[i]`` is the program phase of the row (−1 after the end).
    """

    times_s: np.ndarray
    block: np.ndarray
    amplitude_a: np.ndarray
    phase: np.ndarray

    def __len__(self) -> int:
        return int(self.times_s.size)

    def row_at(self, program_s: float) -> int:
        return max(0, int(np.searchsorted(self.times_s, program_s, side="right")) - 1)


def _channel_steps(t, amp, blk, period, step_s):
    """(time, block, amplitude) change points of one channel, off = (t, −1, 0)."""
    if t.size == 0:
        return [], [], []
    gap = np.ones(t.size, dtype=bool)
    gap[1:] = (np.diff(t) > 1.5 * period[1:]) | (blk[1:] != blk[:-1])
    starts = np.flatnonzero(gap)
    ends = np.append(starts[1:], t.size)
    out_t, out_b, out_a = [], [], []
    for s, e in zip(starts, ends):
        tw, aw = t[s:e], amp[s:e]
        n_bins = max(1, int(math.ceil((tw[-1] - tw[0]) / step_s + 1e-9)) + 1)
        edges = tw[0] + step_s * np.arange(n_bins)
        idx = np.searchsorted(tw, edges, side="left")
        idx, first = np.unique(idx[idx < tw.size], return_index=True)
        # the lowest current in each step: a host-side ramp never runs ahead of the program
        level = np.minimum.reduceat(aw, idx)
        times = np.maximum(edges[first], tw[idx] - 1e-9) if idx.size else edges[:0]
        times[0] = tw[0]
        keep = np.ones(level.size, dtype=bool)
        keep[1:] = level[1:] != level[:-1]
        out_t.extend(times[keep].tolist())
        out_b.extend([int(blk[s])] * int(keep.sum()))
        out_a.extend(level[keep].tolist())
        # off one period after the window's last pulse, where the next pulse would have been
        out_t.append(float(tw[-1] + period[e - 1]))
        out_b.append(-1)
        out_a.append(0.0)
    return out_t, out_b, out_a


def build_schedule(plan: DevicePlan, step_s: float = 0.1) -> Schedule:
    """Host-side update steps for the quantised train of ``plan``.

    The train is the one compiled source of pulse timing; the schedule only decides when the
    host must tell the device something new: at the start and end of every on-window and,
    during ramps, every ``step_s`` (the reference suggests host ramps in ~100 ms steps,
    ``devices_and_safety.md`` §3.6). Within a step the lowest programmed current is used.

    Parameters
    ----------
    plan : DevicePlan
    step_s : float
        Ramp resolution in program seconds.
    """
    train = plan.train
    blocks = train.blocks
    freq = np.array([b.stimulation.frequency_hz for b in blocks] or [1.0])
    n_ch = len(train.channel_ids)
    per = []
    for c in range(n_ch):
        sl = train.channel_slice(c)
        blk = train.block[sl]
        per.append(_channel_steps(train.t_s[sl], train.amplitude_a[sl], blk,
                                  1.0 / freq[blk] if blk.size else blk, step_s))
    all_t = sorted({0.0, float(train.duration_s)}.union(*[set(p[0]) for p in per]))
    times = np.array([t for t in all_t if t <= train.duration_s], dtype=np.float64)
    block = np.full((times.size, n_ch), -1, dtype=np.int32)
    amp = np.zeros((times.size, n_ch))
    for c, (ct, cb, ca) in enumerate(per):
        if not ct:
            continue
        ct, cb, ca = np.asarray(ct), np.asarray(cb), np.asarray(ca)
        k = np.searchsorted(ct, times, side="right") - 1
        on = k >= 0
        block[on, c] = cb[k[on]]
        amp[on, c] = ca[k[on]]
    block[times >= train.duration_s] = -1
    amp[times >= train.duration_s] = 0.0
    amp[block < 0] = 0.0
    keep = np.ones(times.size, dtype=bool)
    keep[1:] = np.any(block[1:] != block[:-1], axis=1) | np.any(amp[1:] != amp[:-1], axis=1)
    starts = np.array([w[0] for w in plan.phase_windows()])
    phase = np.searchsorted(starts, times, side="right") - 1
    phase[times >= train.duration_s] = -1
    # a phase change is a row even when the output does not change (SM2 re-initialises)
    keep[1:] |= phase[1:] != phase[:-1]
    return Schedule(times[keep], block[keep], amp[keep], phase[keep].astype(np.int32))


# --------------------------------------------------------------------------- driver


class _Pending:
    __slots__ = ("number", "ack", "event", "reply", "failure", "t_sent")

    def __init__(self, number: int, ack: int):
        self.number = number
        self.ack = ack
        self.event = threading.Event()
        self.reply = None
        self.failure: str | None = None
        self.t_sent = 0.0


class FramedDriver(Stimulator):
    """Base of the ScienceMode 2/4 drivers (see the module docstring for the rules).

    Subclasses set the class attributes and implement the ``_dev_*`` methods.

    Parameters
    ----------
    port : str
        Serial port path (``/dev/ttyUSB0``, an emulator's ``/dev/pts/N``) or a pyserial URL.
    audit : AuditLog, optional
    operator : str, optional
    speed : float
        Program seconds per wall second (1 = real time; tests may run faster).
    ack_timeout_s : float, optional
        How long to wait for an acknowledgement (default: the device's documented response time).
    heartbeat_period_s : float, optional
        Keep-alive period (default: 0.4 × the device watchdog, from :class:`Capabilities`).
    ramp_step_s : float
        Host-side ramp resolution in program seconds.
    connect_timeout_s : float
        How long :meth:`connect` waits for the device.
    """

    codec: Any = None
    profile_id = ""
    default_ack_timeout_s = 0.1
    max_packet_number = 255

    def __init__(self, port: str, *, audit=None, operator: str | None = None, speed: float = 1.0,
                 ack_timeout_s: float | None = None, heartbeat_period_s: float | None = None,
                 ramp_step_s: float = 0.1, connect_timeout_s: float = 2.0):
        caps = Capabilities.from_profile(self.profile_id, heartbeat_period_s=heartbeat_period_s)
        super().__init__(caps, audit=audit, operator=operator)
        for name, value in (("speed", speed), ("ramp_step_s", ramp_step_s),
                            ("connect_timeout_s", connect_timeout_s)):
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise DeviceError(f"{name} must be a positive number", path=name, value=value,
                                  allowed="> 0")
        self.port = str(port)
        self.speed = float(speed)
        self.ack_timeout_s = float(ack_timeout_s or self.default_ack_timeout_s)
        self.ramp_step_s = float(ramp_step_s)
        self.connect_timeout_s = float(connect_timeout_s)
        self._serial = None
        self._decoder = None
        self._write_lock = threading.Lock()
        self._tx_lock = threading.RLock()
        self._pending_lock = threading.Lock()
        self._pending: dict[tuple[int, int], _Pending] = {}
        self._pn = 0
        self._reader: threading.Thread | None = None
        self._reader_stop = threading.Event()
        self._hb_thread: threading.Thread | None = None
        self._hb_stop = threading.Event()
        self._exec: threading.Thread | None = None
        self._halt = threading.Event()
        self._fail_lock = threading.Lock()
        self._estop_done = threading.Event()
        self._estop_done.set()
        self._wake = threading.Event()
        self._started = threading.Event()
        self._start_error: BaseException | None = None
        self._exec_tick = 0.0
        self._pause_req = False
        self._paused_applied = threading.Event()
        self._stop_req: float | None = None
        self._schedule: Schedule | None = None
        self._port_lost = False
        self._prepared = False
        # measurements (read by tests and benchmarks/bench_devices.py)
        self.ack_latencies_s: list[float] = []
        self.ack_log: list[tuple[str, float]] = []  # (command, seconds to its acknowledgement)
        self.heartbeat_times: list[float] = []
        self.stray_replies = 0

    # ------------------------------------------------------------------ serial

    def _open_port(self) -> None:
        import serial

        settings = serial_settings(self.profile_id)
        try:
            ser = serial.serial_for_url(self.port, do_not_open=True, timeout=0.02, write_timeout=0.5,
                                        **settings)
            if hasattr(ser, "exclusive"):
                ser.exclusive = True
            ser.open()
        except (serial.SerialException, OSError, ValueError, *_TTY_ERRORS) as exc:
            raise DeviceError(f"cannot open the serial port ({exc})", path="port", value=self.port,
                              allowed="an existing serial port") from exc
        self._serial = ser
        self._decoder = self.codec.StreamDecoder()
        self._port_lost = False
        self._reader_stop.clear()
        self._reader = threading.Thread(target=self._read_loop, name=f"{self.profile_id}-reader",
                                        daemon=True)
        self._reader.start()

    def _close_port(self) -> None:
        self._hb_stop.set()
        self._reader_stop.set()
        ser, self._serial = self._serial, None
        if ser is not None:
            try:
                ser.close()
            except Exception:  # noqa: BLE001 - closing a dead port must not mask the cause
                pass
        me = threading.current_thread()
        for th in (self._reader, self._hb_thread):
            if th is not None and th is not me:
                th.join(timeout=1.0)
        with self._pending_lock:
            for p in self._pending.values():
                p.failure = p.failure or "port closed"
                p.event.set()

    def _next_pn(self) -> int:
        with self._pending_lock:
            pn = self._pn
            self._pn = (self._pn + 1) % (self.max_packet_number + 1)
            return pn

    def _write(self, message, number: int, *, required: bool = True, urgent: bool = False) -> None:
        """Audit, then write one frame (atomic with respect to other writers).

        Unless ``urgent`` (stop commands, the status query after a failure), nothing is
        written once the driver is halted: the halt flag is set before an emergency stop takes
        the write lock, so no delivery command can follow the stop command onto the wire.
        """
        ser = self._serial
        if ser is None:
            raise DeviceError("serial port is closed", path="port", value=self.port,
                              allowed="an open connection (connect first)")
        halted = DeviceError(f"{type(message).__name__} not sent: the driver is stopping", path="device")
        if self._halt.is_set() and not urgent:
            raise halted
        frame = self.codec.encode(message, number)
        self._log_tx(frame, {"type": type(message).__name__, "pn": number, "message": message},
                     required=required)
        try:
            with self._write_lock:
                if self._halt.is_set() and not urgent:
                    raise halted
                ser.write(frame)
        except DeviceError:
            raise
        except Exception as exc:  # noqa: BLE001 - pyserial raises SerialException or OSError
            self._lost(exc)
            raise DeviceError(f"serial write failed ({exc})", path="port", value=self.port) from exc

    def _register(self, number: int, ack: int) -> _Pending:
        p = _Pending(number, ack)
        with self._pending_lock:
            self._pending[(number, ack)] = p
        return p

    def _unregister(self, p: _Pending) -> None:
        with self._pending_lock:
            self._pending.pop((p.number, p.ack), None)

    def _transact(self, message, *, timeout_s: float | None = None, what: str | None = None,
                  urgent: bool = False):
        """Send ``message`` and return its acknowledgement (one outstanding command at a time).

        Raises
        ------
        AcknowledgementError
            No acknowledgement in time, or a corrupted frame arrived instead.
        DeviceError
            The port is closed or failed, or the driver is halted (``urgent`` lets the status
            query and the stop command through).
        """
        ack = int(self.codec.ACK_FOR[self.codec.Command(message.command_number)])
        what = what or type(message).__name__
        timeout = self.ack_timeout_s if timeout_s is None else timeout_s
        with self._tx_lock:
            if self._halt.is_set() and not urgent:
                # after a failure only the status query and the stop may go out
                raise DeviceError(f"{what} not sent: the driver is stopping after a failure", path="device")
            for attempt in range(3):
                pn = self._next_pn()
                p = self._register(pn, ack)
                try:
                    p.t_sent = time.monotonic()
                    self._write(message, pn, urgent=urgent)
                    got = p.event.wait(timeout)
                finally:
                    self._unregister(p)
                if p.failure:
                    raise AcknowledgementError(f"no valid acknowledgement for {what} (packet {pn}): "
                                               f"{p.failure}", path="device", value=what)
                if not got:
                    raise AcknowledgementError(f"no acknowledgement for {what} (packet {pn}) within "
                                               f"{timeout * 1e3:.0f} ms", path="device", value=what)
                latency = time.monotonic() - p.t_sent
                self.ack_latencies_s.append(latency)
                self.ack_log.append((type(message).__name__, latency))
                if self._is_busy(p.reply) and attempt < 2:
                    # the device says it did not execute the command: sending it again is safe
                    time.sleep(0.02)
                    continue
                return p.reply
        raise AssertionError("unreachable")

    # ------------------------------------------------------------------ reader

    def _read_loop(self) -> None:
        ser, dec = self._serial, self._decoder
        while not self._reader_stop.is_set():
            try:
                data = ser.read(ser.in_waiting or 1)
            except Exception as exc:  # noqa: BLE001 - SerialException, OSError, TypeError on close
                if not self._reader_stop.is_set():
                    self._lost(exc)
                return
            if not data:
                continue
            for item in dec.feed(data):
                try:
                    self._on_item(item)
                except Exception as exc:  # noqa: BLE001 - the reader must survive a handler bug
                    self._safe(self._audit, "error", {"where": "reader", "error": repr(exc)})

    def _on_item(self, item) -> None:
        if isinstance(item, BadFrame):
            self._log_rx(item.raw, {"type": "BadFrame", "bad_frame": item.kind.value, "message": item.message})
            if item.kind == BadFrameKind.JUNK:
                return
            with self._pending_lock:
                for p in self._pending.values():
                    p.failure = f"corrupted reply ({item.kind.value}: {item.message})"
                    p.event.set()
            return
        try:
            raw = self.codec.encode(item.message, item.number)
        except Exception:  # noqa: BLE001
            raw = b""
        self._log_rx(raw, {"type": type(item.message).__name__, "pn": item.number, "message": item.message})
        with self._pending_lock:
            p = self._pending.get((item.number, item.command))
        if p is not None:
            p.reply = item.message
            p.event.set()
            return
        if not self._dev_unsolicited(item):
            self.stray_replies += 1

    def _lost(self, exc: BaseException) -> None:
        """The serial line failed (cable pulled, adapter gone)."""
        if self._port_lost:
            return
        self._port_lost = True
        with self._pending_lock:
            for p in self._pending.values():
                p.failure = f"serial connection lost ({exc})"
                p.event.set()
        if self._state in (StimulatorState.DISCONNECTED,):
            return
        self._device_error(f"serial connection lost ({type(exc).__name__}: {exc}); "
                           f"the device's watchdog stops stimulation within "
                           f"{self._caps.watchdog_timeout_s:g} s", kind="connection")

    # ------------------------------------------------------------------ heartbeat

    def _start_heartbeat(self) -> None:
        if self._hb_thread is not None and self._hb_thread.is_alive():
            return
        self._hb_stop.clear()
        self._hb_thread = threading.Thread(target=self._heartbeat_loop, name=f"{self.profile_id}-heartbeat",
                                           daemon=True)
        self._hb_thread.start()

    def _executor_alive(self) -> bool:
        """Is the controller still running? Delivering without a live executor gets no keep-alive."""
        ex = self._exec
        if ex is None or not ex.is_alive():
            return not self._delivering()
        return time.monotonic() - self._exec_tick < 0.5 * self._caps.watchdog_timeout_s

    def _delivering(self) -> bool:
        return self._state in (StimulatorState.RUNNING, StimulatorState.PAUSED, StimulatorState.STOPPING)

    def _heartbeat_loop(self) -> None:
        period = self._caps.heartbeat_period_s
        next_t = time.monotonic() + period
        withheld = False
        while not self._hb_stop.wait(max(0.0, next_t - time.monotonic())):
            next_t += period
            now = time.monotonic()
            if next_t < now:  # fell behind (CPU starvation): do not burst, keep the cadence
                next_t = now + period
            if not self._executor_alive():
                if not withheld:
                    withheld = True
                    self._safe(self._audit, "error", {"where": "heartbeat", "error":
                                                      "session executor not alive: keep-alive withheld, "
                                                      "the device watchdog will stop stimulation"})
                continue
            withheld = False
            try:
                self._dev_keep_alive()
                self.heartbeat_times.append(now)
            except AcknowledgementError as exc:
                if not self._hb_stop.is_set():
                    self._ack_failure(exc)
                return
            except DeviceFault as exc:
                if not self._halt.is_set() and not self._hb_stop.is_set():
                    self._device_error(exc.message, kind=exc.fault_kind, channel=exc.channel)
                return
            except DeviceError as exc:
                if not self._halt.is_set() and not self._hb_stop.is_set():
                    self._device_error(f"keep-alive failed: {exc.one_line()}", kind="heartbeat")
                return

    # ------------------------------------------------------------------ hooks of Stimulator

    def _connect(self) -> None:
        self._await_estop()
        if self._serial is None:
            self._open_port()
        try:
            self._dev_connect()
        except Exception:
            self._close_port()
            raise

    def _load_plan(self, plan: DevicePlan) -> None:
        if len(plan.channel_ids) > self._caps.channels:
            raise DeviceError("too many channels for this device", path="program.channels",
                              value=len(plan.channel_ids), allowed=f"1 to {self._caps.channels}")
        self._dev_check_plan(plan)
        schedule = build_schedule(plan, self.ramp_step_s)
        self._report_quantisation(plan)
        self._await_estop()
        if self._serial is None:  # closed by an emergency stop: reconnect before anything else
            self._open_port()
            self._dev_connect()
        self._halt.clear()
        self._dev_prepare(plan)   # first bytes on the wire: the program has been validated
        self._prepared = True
        self._schedule = schedule
        self._start_heartbeat()

    def _report_quantisation(self, plan: DevicePlan) -> None:
        """Say which settings the device delivers differently (e.g. the SM2 shared base period)."""
        changes = []
        for b in getattr(plan.quantisation, "blocks", ()):
            if abs(b.device_frequency_hz - b.frequency_hz) > 1e-9:
                changes.append(f"{b.channel} phase {b.phase}: {b.frequency_hz:g} Hz runs at "
                               f"{b.device_frequency_hz:.4g} Hz ({100 * b.frequency_error:+.2f} %)")
            if b.pulse_width_us is not None and abs(b.device_pulse_width_us - b.pulse_width_us) > 1e-9:
                changes.append(f"{b.channel} phase {b.phase}: {b.pulse_width_us:g} us becomes "
                               f"{b.device_pulse_width_us:g} us")
        amp = getattr(plan.quantisation, "max_amplitude_error_ma", 0.0)
        if amp > 0:
            changes.append(f"currents rounded to the device step (at most {amp:.3g} mA)")
        if changes:
            self._safe(self._audit, "info", {"quantisation": changes})
            self._emit(EventKind.WARNING, f"{self._caps.device_id} quantisation: " + "; ".join(changes),
                       data={"quantisation": changes})

    def _start(self) -> None:
        self._halt.clear()
        self._started.clear()
        self._start_error = None
        self._pause_req = False
        self._stop_req = None
        self._exec_tick = time.monotonic()
        self._exec = threading.Thread(target=self._execute, name=f"{self.profile_id}-session", daemon=True)
        self._exec.start()
        if not self._started.wait(5.0):
            raise DeviceError("the device did not start in 5 s", path="device", value=self.port)
        if self._start_error is not None:
            raise self._start_error

    def _pause(self) -> None:
        self._paused_applied.clear()
        self._pause_req = True
        self._wake.set()
        if not self._paused_applied.wait(2.0):
            raise DeviceError("the device did not confirm the pause in 2 s", path="device", value=self.port)

    def _resume(self) -> None:
        self._pause_req = False
        self._wake.set()

    def _set_intensity(self, channel: int, amplitude_a: float) -> None:
        self._wake.set()  # the executor re-sends the current step with the new level

    def _stop(self, ramp_s: float) -> bool | None:
        ex = self._exec
        if ex is None or not ex.is_alive():
            self._device_stop()
            return True
        self._stop_req = ramp_s
        self._wake.set()
        return False

    def _emergency_stop(self) -> None:
        self._halt.set()
        self._hb_stop.set()
        self._wake.set()
        if self._serial is None:
            return
        self._estop_done.clear()
        pn = self._next_pn()
        p = self._register(pn, int(self._dev_stop_ack_command()))
        try:
            self._write(self._dev_stop_message(), pn, required=False, urgent=True)
        except Exception:  # noqa: BLE001 - the port may be gone; the device watchdog is the backstop
            pass
        if threading.current_thread() is self._reader:
            # the reader must keep reading to see the acknowledgement: finish elsewhere
            threading.Thread(target=self._finish_emergency_stop, args=(p,), daemon=True).start()
        else:
            self._finish_emergency_stop(p)

    def _finish_emergency_stop(self, p: _Pending) -> None:
        acked = False
        try:
            acked = p.event.wait(ESTOP_ACK_WAIT_S) and self._stop_confirmed(p.reply)
            self._unregister(p)
            if not acked and self._serial is not None:
                # no acknowledgement, or "busy": the stop was not executed, so send it once more
                pn = self._next_pn()
                p = self._register(pn, int(self._dev_stop_ack_command()))
                try:
                    self._write(self._dev_stop_message(), pn, required=False, urgent=True)
                    acked = p.event.wait(ESTOP_ACK_WAIT_S) and self._stop_confirmed(p.reply)
                except Exception:  # noqa: BLE001
                    pass
                self._unregister(p)
            self._safe(self._audit, "info", {"emergency_stop": "stop command acknowledged" if acked else
                                             "no acknowledgement to the stop command (resent once); "
                                             "the device watchdog is the backstop",
                                             "acknowledged": bool(acked)})
        finally:
            self._close_port()
            self._estop_done.set()

    def _await_estop(self) -> None:
        """Let an emergency stop finishing on another thread close the port before reusing it."""
        self._estop_done.wait(4 * ESTOP_ACK_WAIT_S + 1.0)

    def _close(self) -> None:
        self._await_estop()
        self._halt.set()
        self._wake.set()
        ex = self._exec
        if ex is not None and ex is not threading.current_thread():
            ex.join(timeout=2.0)
        if self._serial is not None and not self._port_lost and self._prepared:
            try:
                self._device_stop()
            except DeviceError:
                pass
        self._close_port()

    def _status_extra(self) -> dict:
        return {"port": self.port, "heartbeats": len(self.heartbeat_times)}

    # ------------------------------------------------------------------ the executor

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the session executor to end (program done, stopped or failed)."""
        ex = self._exec
        if ex is None:
            return True
        ex.join(timeout)
        return not ex.is_alive()

    def _commanded(self, row: int, scale: float | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(block, current in A) per channel for a schedule row, after the operator's levels."""
        s = self._schedule
        blk = s.block[row].copy()
        amp = np.zeros(blk.size)
        for c in range(blk.size):
            if blk[c] < 0:
                continue
            a = s.amplitude_a[row, c] * self.intensity_scale(c) * (1.0 if scale is None else scale)
            amp[c] = self._caps.floor_amplitude_a(a)
            # runtime limiter (§5.1 SafetyGate): never above what was validated
            if amp[c] > self._plan.max_amplitude_a[c] + 1e-9:
                raise DeviceError("commanded current above the validated maximum", path=f"channel {c}",
                                  value=amp[c] * 1e3, allowed=f"<= {self._plan.max_amplitude_a[c] * 1e3:g} mA")
        return blk, amp

    def _execute(self) -> None:
        s = self._schedule
        try:
            self._dev_begin(self._plan)
            t0 = time.monotonic()
            paused_total = 0.0
            paused_since: float | None = None
            last = None
            while not self._halt.is_set():
                now = time.monotonic()
                self._exec_tick = now
                if self._stop_req is not None:
                    self._ramp_down(last, self._stop_req)
                    self._device_stop()
                    self._stopped()
                    return
                if self._pause_req:
                    if paused_since is None:
                        paused_since = now
                        self._dev_apply(np.full(len(self._plan.channel_ids), -1), np.zeros(len(self._plan.channel_ids)),
                                        self._phase_of(last))
                        last = None
                        self._progress(now - t0, (paused_since - t0 - paused_total) * self.speed,
                                       [0.0] * len(self._plan.channel_ids))
                    self._paused_applied.set()
                    self._started.set()  # paused before the first step: start() may return
                    self._wake.wait(EXECUTOR_MAX_SLEEP_S)
                    self._wake.clear()
                    continue
                if paused_since is not None:
                    paused_total += now - paused_since
                    paused_since = None
                program_s = (now - t0 - paused_total) * self.speed
                if program_s >= self._plan.duration_s:
                    self._device_stop()
                    self._progress(now - t0, self._plan.duration_s, [0.0] * len(self._plan.channel_ids))
                    self._finished()
                    return
                row = s.row_at(program_s)
                blk, amp = self._commanded(row)
                if last is None or not (np.array_equal(blk, last[1]) and np.array_equal(amp, last[2])
                                        and s.phase[row] == s.phase[last[0]]):
                    self._dev_apply(blk, amp, int(s.phase[row]))
                last = (row, blk, amp)
                self._started.set()
                self._progress(now - t0, program_s, amp.tolist())
                nxt = s.times_s[row + 1] if row + 1 < len(s) else self._plan.duration_s
                sleep = min(EXECUTOR_MAX_SLEEP_S, max(0.0, (nxt - program_s) / self.speed))
                self._wake.wait(sleep)
                self._wake.clear()
        except AcknowledgementError as exc:
            self._start_error = exc
            self._ack_failure(exc)
        except DeviceError as exc:
            self._start_error = exc
            if not self._halt.is_set():
                self._device_error(exc.message if isinstance(exc, DeviceFault) else exc.one_line(),
                                   kind=getattr(exc, "fault_kind", "device"),
                                   channel=getattr(exc, "channel", None))
        except BaseException as exc:  # noqa: BLE001 - a driver bug must still stop the output
            self._start_error = DeviceError(f"driver failure: {type(exc).__name__}: {exc}", path="device")
            self.emergency_stop(f"driver failure: {type(exc).__name__}: {exc}")
        finally:
            # start() waits for this: the first step is on the device, or the failure handled
            self._started.set()

    def _ack_failure(self, exc: AcknowledgementError) -> None:
        """A command went unacknowledged: halt delivery, query the device, emergency stop.

        Never resends the command (§5.1): whether a start was executed is unknown until the
        device has been asked, and the answer does not change the decision to stop.
        """
        with self._fail_lock:
            if self._halt.is_set():
                return  # already stopping (another thread got here first, or an emergency stop)
            self._halt.set()
        self._device_error(f"{exc.message}; {self._query_after_failure()}; the command was not resent, "
                           "stopping", kind="acknowledgement")

    def _query_after_failure(self) -> str:
        try:
            with self._tx_lock:
                return f"device reports {self._dev_query()}"
        except Exception as exc:  # noqa: BLE001
            return f"status query failed too ({exc})"

    def _phase_of(self, last) -> int:
        return int(self._schedule.phase[last[0]]) if last else -1

    def _ramp_down(self, last, ramp_s: float) -> None:
        """Lower every channel linearly to zero over ``ramp_s`` program seconds."""
        if last is None or ramp_s <= 0:
            return
        row = last[0]
        n = max(1, int(math.ceil(ramp_s / self.ramp_step_s)))
        for k in range(1, n + 1):
            if self._halt.is_set():
                return
            self._exec_tick = time.monotonic()
            scale = 1.0 - k / n
            blk, amp = self._commanded(row, scale)
            self._dev_apply(blk, amp, int(self._schedule.phase[row]))
            self._progress(self._elapsed_s, self._program_s, amp.tolist())
            time.sleep(ramp_s / n / self.speed)

    def _stop_confirmed(self, reply) -> bool:
        """Does this acknowledgement say the device is stopped?"""
        if reply is None:
            return False
        try:
            self._dev_check_stop(reply)
        except DeviceError:
            return False
        return True

    def _device_stop(self) -> None:
        """Graceful stop command, acknowledged (already-stopped counts as stopped)."""
        with self._tx_lock:  # the heartbeat must not poll between the stop and its bookkeeping
            reply = self._transact(self._dev_stop_message(), what="stop", urgent=True)
            self._dev_check_stop(reply)

    # ------------------------------------------------------------------ device hooks

    def _dev_connect(self) -> None:
        """Make sure a device answers; write nothing (no program has been validated yet)."""

    def _dev_check_plan(self, plan: DevicePlan) -> None:
        """Refuse programs this driver cannot map onto the device (no I/O)."""

    def _dev_prepare(self, plan: DevicePlan) -> None:
        """Handshake and bring the device to a known idle state (first writes)."""

    def _dev_begin(self, plan: DevicePlan) -> None:
        """Device-level initialisation before the first step."""

    def _dev_apply(self, block: np.ndarray, amplitude_a: np.ndarray, phase: int) -> None:
        raise NotImplementedError

    def _dev_keep_alive(self) -> None:
        raise NotImplementedError

    def _dev_unsolicited(self, packet) -> bool:
        """Handle a packet that answers nothing outstanding; return False if it was ignored."""
        return False

    def _dev_stop_message(self):
        raise NotImplementedError

    def _dev_query(self) -> str:
        """Ask the device for its mode/status; a short description for the error message."""
        raise NotImplementedError

    def _dev_stop_ack_command(self) -> int:
        return int(self.codec.ACK_FOR[self.codec.Command(self._dev_stop_message().command_number)])

    def _dev_check_stop(self, reply) -> None:
        raise NotImplementedError

    def _is_busy(self, reply) -> bool:
        return False
