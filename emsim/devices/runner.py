"""The session runner behind ``emsim run``: one validated program, one patient, one device.

The runner validates the program for the patient and device *before* it opens the device (so
an unsafe program never produces a byte on the port), then connects, loads, starts, shows the
progress and the live current on one line of standard error, and ends in one of these ways:
the program completes; the operator stops (``s``: ramp down) or emergency-stops (``e`` or
Esc); SIGINT/SIGTERM stop with a ramp (a second signal: emergency stop); the device reports
a fault (emergency stop). The stimulator is used as a context manager, so an unexpected
exception in the runner is an emergency stop as well.

Keyboard (only when standard input is a terminal): space pause/resume, ``+``/``-`` raise or
lower the intensity of the selected channel(s) by one step, ``1``-``9`` select a channel,
``0`` select all, ``s`` stop, ``e`` or Esc emergency stop.

Research use only: emsim has no clinical clearance.
"""

from __future__ import annotations

import math
import os
import select
import signal
import sys
import threading
import time
from dataclasses import dataclass
from typing import Any, TextIO

from emsim.devices.base import Stimulator, StimulatorState
from emsim.errors import DeviceError

__all__ = ["open_stimulator", "SessionRunner", "RunResult", "parse_device_spec", "DEVICE_KINDS",
           "INTENSITY_STEP_MIN_MA"]

DEVICE_KINDS = ("sim", "sciencemode2", "sciencemode4")
# +/- change the intensity by the device's current step, but by at least this much, so that a
# key press on the 0.1 mA simulation envelope is still a noticeable change [assumed].
INTENSITY_STEP_MIN_MA = 1.0
_ACTIVE = (StimulatorState.RUNNING, StimulatorState.PAUSED, StimulatorState.STOPPING)
_DRIVERS = {"sciencemode2": ("emsim.devices.sciencemode.driver_sm2", "ScienceMode2Stimulator"),
            "sciencemode4": ("emsim.devices.sciencemode.driver_sm4", "ScienceMode4Stimulator")}


def parse_device_spec(spec: str) -> tuple[str, str | None]:
    """Split ``sim``, ``sim:PROFILE``, ``sciencemode2:PORT`` or ``sciencemode4:PORT``."""
    kind, _, arg = spec.partition(":")
    if kind not in DEVICE_KINDS:
        raise DeviceError("unknown device", path="--device", value=spec,
                          allowed="sim, sim:PROFILE, sciencemode2:PORT or sciencemode4:PORT")
    if kind != "sim" and not arg:
        raise DeviceError(f"{kind} needs a serial port", path="--device", value=spec,
                          allowed=f"{kind}:PORT, e.g. {kind}:/dev/ttyUSB0 (emsim emulate prints one)")
    return kind, (arg or None)


def open_stimulator(spec: str, *, speed: float = 1.0, audit=None, operator: str | None = None) -> Stimulator:
    """Create (not connect) the stimulator named by ``spec`` (see :func:`parse_device_spec`)."""
    kind, arg = parse_device_spec(spec)
    if kind == "sim":
        from emsim.devices.simulated import SimulatedStimulator

        return SimulatedStimulator(arg or "generic", speed=speed, audit=audit, operator=operator)
    module, cls_name = _DRIVERS[kind]
    try:
        import importlib

        cls = getattr(importlib.import_module(module), cls_name)
    except (ImportError, AttributeError) as exc:
        raise DeviceError(f"the {kind} driver is not available ({exc})", path="device", value=spec) from exc
    if speed != 1.0:
        raise DeviceError("--speed applies to the simulated stimulator only", path="--speed", value=speed,
                          allowed="1 for real devices")
    return cls(arg, audit=audit, operator=operator)


@dataclass(frozen=True)
class RunResult:
    """How a session ended."""

    completed: bool            # the program ran to its end
    state: StimulatorState
    stop_cause: str | None
    last_error: str | None
    signal: int | None         # the signal that stopped the session, if any
    emergency: bool            # ended by an emergency stop (operator, device fault, second signal)
    elapsed_s: float
    program_s: float
    extra: dict


class _Keyboard:
    """Unbuffered key reading from a terminal on standard input (restored on exit)."""

    def __init__(self, stream):
        import termios
        import tty

        self._fd = stream.fileno()
        self._saved = termios.tcgetattr(self._fd)
        tty.setcbreak(self._fd)

    def keys(self) -> list[str]:
        out: list[str] = []
        while select.select([self._fd], [], [], 0)[0]:
            data = os.read(self._fd, 64)
            if not data:
                break
            text = data.decode("utf-8", "replace")
            i = 0
            while i < len(text):
                ch = text[i]
                if ch == "\x1b" and i + 1 < len(text) and text[i + 1] in "[O":
                    i += 3  # an arrow or function key sequence, not a lone Esc
                    continue
                out.append(ch)
                i += 1
        return out

    def close(self) -> None:
        import termios

        termios.tcsetattr(self._fd, termios.TCSADRAIN, self._saved)


class SessionRunner:
    """Runs one session on a stimulator; see the module docstring.

    Parameters
    ----------
    stimulator : Stimulator
        Not yet connected.
    program, patient
        The program and the patient it is delivered to.
    session : int
        Session number (progression and first-session caps).
    out : text stream
        Where the progress line goes (standard error).
    keyboard : bool, optional
        Read keys from standard input; default: when standard input is a terminal.
    refresh_s : float
        Display and key-polling period (wall clock).
    """

    def __init__(self, stimulator: Stimulator, program, patient, *, session: int = 1, out: TextIO | None = None,
                 keyboard: bool | None = None, refresh_s: float = 0.1, stdin=None):
        self.stim = stimulator
        self.program = program
        self.patient = patient
        self.session = session
        self.out = out if out is not None else sys.stderr
        self.stdin = stdin if stdin is not None else sys.stdin
        self.keyboard = self._isatty(self.stdin) if keyboard is None else keyboard
        self.refresh_s = refresh_s
        self._signal: int | None = None
        self._signals = 0
        self._selected: int | None = None     # None = all channels
        self._tty_out = self._isatty(self.out)
        self._last_report = -1.0
        self._last_phase: Any = None
        self._line_len = 0

    @staticmethod
    def _isatty(stream) -> bool:
        try:
            return bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            return False

    # ------------------------------------------------------------------ signals
    def _on_signal(self, signum, frame) -> None:
        # Keep the handler tiny: the loop does the stopping. A second signal is an emergency stop
        # right here, from the handler, because the operator asked twice.
        self._signals += 1
        self._signal = signum
        if self._signals >= 2:
            self.stim.emergency_stop(f"second signal {signal.Signals(signum).name} while stopping")

    def _install_signals(self) -> dict:
        saved = {}
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                saved[sig] = signal.signal(sig, self._on_signal)
        return saved

    # ------------------------------------------------------------------ run
    def run(self) -> RunResult:
        """Validate, connect, load, start and supervise the session until it ends.

        Raises
        ------
        SafetyViolation, ProgramError, PatientError
            Before the device is opened: nothing was sent.
        DeviceError
            The device could not be opened, refused the program or failed.
        """
        stim = self.stim
        # Before connect: an unsafe or unrepresentable program never reaches the port.
        stim.validate(self.program, self.patient, session=self.session)
        saved = self._install_signals()
        kb = None
        try:
            with stim:
                stim.load(self.program, self.patient, session=self.session)
                if self.keyboard:
                    try:
                        kb = _Keyboard(self.stdin)
                    except Exception:  # not a real terminal after all: run without keys
                        kb = None
                    self._print_line("keys: space pause/resume, +/- intensity, 1-9 channel, 0 all, "
                                     "s stop, e/Esc EMERGENCY STOP")
                if self._signal is not None:  # asked to stop before anything was delivered
                    self._print_line(f"{signal.Signals(self._signal).name} received before the start: not started")
                    stim.note(f"not started: {signal.Signals(self._signal).name} received before the start")
                else:
                    stim.start()
                    self._supervise(kb)
        finally:
            if kb is not None:
                kb.close()
            for sig, handler in saved.items():
                signal.signal(sig, handler)
            self._end_line()
        st = stim.status()
        return RunResult(completed=st.stop_cause == "program completed", state=st.state, stop_cause=st.stop_cause,
                         last_error=st.last_error, signal=self._signal, emergency=stim.emergency_stopped,
                         elapsed_s=st.elapsed_s,
                         program_s=st.program_s, extra=st.extra)

    def _supervise(self, kb) -> None:
        stim = self.stim
        stopping_for_signal = False
        while stim.state in _ACTIVE:
            if self._signal is not None and not stopping_for_signal:
                stopping_for_signal = True
                name = signal.Signals(self._signal).name
                self._print_line(f"{name} received: stopping (ramp down); send it again for an emergency stop")
                stim.stop(cause=f"{name} received")  # blocks through the ramp; a 2nd signal e-stops
                continue
            if kb is not None:
                for key in kb.keys():
                    self._key(key)
            self._display()
            time.sleep(self.refresh_s)
        self._display(final=True)

    # ------------------------------------------------------------------ keys
    def _key(self, key: str) -> None:
        stim = self.stim
        try:
            if key in ("e", "E", "\x1b"):
                stim.emergency_stop("operator emergency stop (keyboard)")
            elif key in ("s", "S"):
                stim.stop()
            elif key == " ":
                if stim.state is StimulatorState.RUNNING:
                    stim.pause()
                elif stim.state is StimulatorState.PAUSED:
                    stim.resume()
            elif key in ("+", "=", "-", "_"):
                self._step_intensity(+1 if key in ("+", "=") else -1)
            elif key.isdigit():
                n = int(key)
                plan = stim.plan
                if n == 0:
                    self._selected = None
                elif plan is not None and n <= len(plan.channel_ids):
                    self._selected = n - 1
        except DeviceError as exc:  # e.g. intensity above the validated maximum: say so, keep running
            self._print_line(f"refused: {exc.one_line()}")

    def _step_intensity(self, direction: int) -> None:
        stim = self.stim
        plan = stim.plan
        if plan is None:
            return
        step = max(stim.capabilities.amplitude_ma.step, INTENSITY_STEP_MIN_MA)
        channels = range(len(plan.channel_ids)) if self._selected is None else [self._selected]
        for c in channels:
            level = stim.level_a(c) * 1e3
            max_ma = plan.max_amplitude_a[c] * 1e3
            target = level + direction * step
            if direction > 0 and level >= max_ma - 1e-9:
                self._print_line(f"{plan.channel_ids[c]} is at its validated maximum {max_ma:g} mA")
                continue
            stim.set_intensity(c, min(max(target, 0.0), max_ma))

    # ------------------------------------------------------------------ display
    def _display(self, final: bool = False) -> None:
        st = self.stim.status()
        line = self._status_line(st)
        if self._tty_out:
            pad = max(0, self._line_len - len(line))
            self.out.write("\r" + line + " " * pad)
            self._line_len = len(line)
            self.out.flush()
            return
        # Not a terminal: one line per phase change and per 10 % of the program.
        decile = math.floor(st.progress * 10)
        if final or st.phase != self._last_phase or decile != self._last_report:
            self._last_phase = st.phase
            self._last_report = decile
            self.out.write(line + "\n")
            self.out.flush()

    @staticmethod
    def _status_line(st) -> str:
        def mmss(s):
            s = max(0.0, s)
            return f"{int(s // 60):02d}:{int(s % 60):02d}"

        chans = "  ".join(f"{c.id} {c.amplitude_ma:5.1f} mA (level {c.level_ma:.1f}/{c.max_ma:.1f})"
                          for c in st.channels)
        phase = f"{st.phase_name}" + (f" cycle {st.cycle + 1}" if st.cycle is not None else "") if st.phase_name else "-"
        return (f"[{mmss(st.program_s)} / {mmss(st.duration_s)} {100 * st.progress:5.1f}%] {st.state.value:<8} "
                f"{phase}  {chans}")

    def _print_line(self, text: str) -> None:
        self._end_line()
        self.out.write(f"emsim: {text}\n")
        self.out.flush()

    def _end_line(self) -> None:
        if self._tty_out and self._line_len:
            self.out.write("\n")
            self.out.flush()
            self._line_len = 0
