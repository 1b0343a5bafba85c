"""The device loop shared by the ScienceMode emulators: I/O, timers, latency and faults.

One thread per emulator reads the pseudo-terminal, feeds the protocol's stream decoder,
hands every packet or bad frame to the subclass, runs due timers (delayed acknowledgements,
the device watchdog, the SM2 ``Init`` repetition) and writes replies. All device state is
touched only from this thread or under ``self.lock``, so tests can inject faults from outside.
"""

from __future__ import annotations

import heapq
import itertools
import random
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable

from emsim.devices.emulator._pty import PtyLink
from emsim.devices.emulator.timeline import Timeline
from emsim.errors import DeviceError

__all__ = ["EmulatorBase", "Traffic"]

_TICK_S = 0.002  # loop granularity: bounds how late a timer (e.g. the watchdog) can fire


@dataclass(frozen=True)
class Traffic:
    """One frame on the line as the device saw it.

    ``direction`` is ``rx`` (host → device) or ``tx``; ``item`` the decoded packet or the
    codec's bad-frame item; ``t`` the monotonic time.
    """

    t: float
    direction: str
    raw: bytes
    item: Any


class EmulatorBase:
    """Device side of a framed ScienceMode protocol on a pseudo-terminal.

    Subclasses set :attr:`codec` (the ``sm2`` or ``sm4`` codec module), implement
    :meth:`handle` and :meth:`tick`, and call :meth:`reply` / :meth:`send`.

    Parameters
    ----------
    latency_ms : float or (float, float), optional
        Processing time before an acknowledgement leaves: a constant, or a uniform range
        (default: the subclass's ``default_latency_ms``).
    time_scale : float
        Device seconds per wall second for the recorded pulses (see :class:`Timeline`).
    seed : int
        Seed of the latency draws.
    """

    codec: Any = None
    name = "emulator"
    profile_id = ""

    @property
    def serial_settings(self) -> dict:
        """The device's serial settings (from its profile), for the host to open :attr:`port` with."""
        from emsim.devices.sciencemode._driver import serial_settings

        return serial_settings(self.profile_id)

    default_latency_ms: float | tuple[float, float] = 0.0

    def __init__(self, *, latency_ms: float | tuple[float, float] | None = None, time_scale: float = 1.0,
                 seed: int = 0):
        if latency_ms is None:
            latency_ms = self.default_latency_ms
        if isinstance(latency_ms, (int, float)):
            lo = hi = float(latency_ms)
        else:
            lo, hi = (float(v) for v in latency_ms)
        if not (0 <= lo <= hi <= 10_000):
            raise DeviceError("latency out of range", path="latency_ms", value=latency_ms,
                              allowed="0 to 10000 ms, low <= high")
        if not time_scale > 0:
            raise DeviceError("time_scale must be positive", path="time_scale", value=time_scale,
                              allowed="> 0")
        self._latency = (lo / 1000.0, hi / 1000.0)
        self._rng = random.Random(seed)
        self.link = PtyLink()
        self.port = self.link.path
        self.timeline = Timeline(time_scale=time_scale)
        self.traffic: list[Traffic] = []
        self.rx_bytes = 0
        self.lock = threading.RLock()
        self._decoder = self.codec.StreamDecoder()
        self._timers: list = []
        self._seq = itertools.count()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # fault injection
        self._own_pn = 0
        self._drop_acks = 0
        self._corrupt_tx = 0
        self._stall_until = 0.0
        self.dropped_acks = 0

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> "EmulatorBase":
        """Start the device thread (the device is 'switched on')."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name=f"{self.name}-emulator",
                                            daemon=True)
            self.on_power_up(time.monotonic())
            self._thread.start()
        return self

    def close(self) -> None:
        """Switch the device off: output off, thread stopped, line closed."""
        self._stop.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=2.0)
        with self.lock:
            if self.timeline.stimulating:
                self.timeline.set_output(time.monotonic(), {}, "power_off")
        self.link.close()

    def __enter__(self) -> "EmulatorBase":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    # ------------------------------------------------------------------ fault injection

    def drop_acks(self, n: int = 1) -> None:
        """Process the next ``n`` acknowledged commands but lose their acknowledgements."""
        with self.lock:
            self._drop_acks += int(n)

    def corrupt_next(self, n: int = 1) -> None:
        """Flip one bit in the checksum of the next ``n`` frames the device sends."""
        with self.lock:
            self._corrupt_tx += int(n)

    def stall(self, seconds: float) -> None:
        """The firmware hangs for ``seconds``: received bytes are lost, nothing is answered.

        The output stage keeps its state and the watchdog is not evaluated while stalled.
        """
        with self.lock:
            self._stall_until = time.monotonic() + float(seconds)

    def unplug(self) -> None:
        """Pull the cable. The device keeps running on its own and its watchdog stops it."""
        with self.lock:
            self.timeline.event(time.monotonic(), "unplugged")
            self.link.unplug()

    @property
    def stalled(self) -> bool:
        return time.monotonic() < self._stall_until

    # ------------------------------------------------------------------ for subclasses

    def next_own_pn(self) -> int:
        """Packet number for a packet the device sends on its own (its own counter)."""
        pn = self._own_pn
        self._own_pn = (pn + 1) % (self.codec.MAX_PACKET_NUMBER + 1)
        return pn

    def latency(self) -> float:
        lo, hi = self._latency
        return lo if lo == hi else self._rng.uniform(lo, hi)

    def after(self, delay_s: float, fn: Callable[[float], None]) -> None:
        """Run ``fn(now)`` on the device thread after ``delay_s``."""
        with self.lock:
            heapq.heappush(self._timers, (time.monotonic() + delay_s, next(self._seq), fn))

    def cancel_timers(self) -> None:
        with self.lock:
            self._timers.clear()

    def send(self, message, number: int) -> None:
        """Encode and write one frame now (applies the corrupt-frame fault)."""
        frame = self.codec.encode(message, number)
        with self.lock:
            if self._corrupt_tx:
                self._corrupt_tx -= 1
                b = bytearray(frame)
                # the checksum value byte is always escaped, so flipping a low bit never
                # produces a control byte and the frame still parses as one frame
                b[2] ^= 0x01
                frame = bytes(b)
            self.traffic.append(Traffic(time.monotonic(), "tx", frame, message))
            self.link.write(frame)

    def reply(self, message, number: int) -> None:
        """Send an acknowledgement now, unless the drop-acks fault swallows it."""
        with self.lock:
            if self._drop_acks:
                self._drop_acks -= 1
                self.dropped_acks += 1
                self.timeline.event(time.monotonic(), "ack_dropped", type(message).__name__)
                return
        self.send(message, number)

    def on_power_up(self, now: float) -> None:
        """Called once before the loop starts."""

    def handle(self, item, now: float) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def tick(self, now: float) -> None:
        """Called every loop turn (watchdog, periodic packets)."""

    # ------------------------------------------------------------------ loop

    def _run(self) -> None:
        next_tty_check = 0.0
        while not self._stop.is_set():
            # Input first: after this thread was descheduled, bytes that arrived meanwhile count
            # before the watchdog is evaluated (a real device would have received them in time).
            self._receive()
            now = time.monotonic()
            if now >= next_tty_check:
                self.link.normalise_speed()
                next_tty_check = now + 0.05
            stalled = self.stalled
            with self.lock:
                due = []
                while not stalled and self._timers and self._timers[0][0] <= now:
                    due.append(heapq.heappop(self._timers)[2])
                next_timer = self._timers[0][0] if self._timers else now + _TICK_S
            if not stalled:
                for fn in due:
                    with self.lock:
                        fn(now)
                with self.lock:
                    self.tick(now)
            self.link.wait_readable(min(max(next_timer - time.monotonic(), 0.0), _TICK_S))

    def _receive(self) -> None:
        data = self.link.read()
        if not data:
            return
        t = time.monotonic()
        self.rx_bytes += len(data)
        if self.stalled:
            self.timeline.event(t, "rx_lost_while_stalled", f"{len(data)} bytes")
            return
        for item in self._decoder.feed(data):
            with self.lock:
                self.traffic.append(Traffic(t, "rx", getattr(item, "raw", b""), item))
                self.handle(item, t)
