"""What an emulated stimulator would have delivered: its on/off timeline and its pulses.

The emulator records every change of its output stage as a :class:`Segment` (constant
settings between two monotonic instants) plus discrete :class:`TimelineEvent` items
(watchdog expiry, errors, stops). Pulses are generated from the segments on request, so
recording costs nothing per pulse and a sped-up session still yields the pulses the device
would have produced: wall-clock durations are multiplied by ``time_scale`` to give device
time, while each channel's pulse period stays physical.
"""

from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field

import numpy as np

__all__ = ["ChannelOutput", "Segment", "TimelineEvent", "Timeline"]


@dataclass(frozen=True)
class ChannelOutput:
    """Output of one channel while a segment lasts.

    Attributes
    ----------
    period_s : float
        Time between pulse groups (device time).
    pulse_width_us : float
        Width of the primary phase.
    current_ma : float
        Peak current of the primary phase.
    pulses_per_group : int
        1 single, 2 doublet, 3 triplet.
    group_interval_s : float
        Spacing of the pulses inside a group.
    ramp_pulses : int
        Pulses of linearly rising current after the channel is (re)enabled (SM4 mid level).
    """

    period_s: float
    pulse_width_us: float
    current_ma: float
    pulses_per_group: int = 1
    group_interval_s: float = 0.0
    ramp_pulses: int = 0


@dataclass
class Segment:
    """Constant output between ``start`` and ``end`` (monotonic seconds; ``end`` None = ongoing)."""

    start: float
    end: float | None
    channels: dict[int, ChannelOutput]

    @property
    def active(self) -> bool:
        return any(c.current_ma > 0 for c in self.channels.values())


@dataclass(frozen=True)
class TimelineEvent:
    """Something the device did: ``kind`` is e.g. ``start``, ``update``, ``stop``, ``watchdog``."""

    t: float
    kind: str
    detail: str = ""


@dataclass
class Timeline:
    """Thread-safe record of an emulated device's output.

    Parameters
    ----------
    time_scale : float
        Device seconds per wall-clock second (1 = real time). Only the recorded output is
        scaled; the device's watchdog always runs in real time.
    """

    time_scale: float = 1.0
    origin: float = field(default_factory=time.monotonic)
    segments: list[Segment] = field(default_factory=list)
    events: list[TimelineEvent] = field(default_factory=list)
    single_pulses: list[tuple[float, int, float, float]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ recording

    def set_output(self, t: float, channels: dict[int, ChannelOutput], kind: str,
                   detail: str = "") -> None:
        """Close the running segment at ``t`` and, if ``channels`` is not empty, open a new one.

        A channel that keeps its period across the change keeps its pulse phase: an update of
        current or width applies from the next pulse, it does not restart the pulse clock.
        """
        with self._lock:
            if self.segments and self.segments[-1].end is None:
                self.segments[-1].end = t
            if channels:
                self.segments.append(Segment(t, None, dict(channels)))
            self.events.append(TimelineEvent(t, kind, detail))

    def event(self, t: float, kind: str, detail: str = "") -> None:
        with self._lock:
            self.events.append(TimelineEvent(t, kind, detail))

    def single_pulse(self, t: float, channel: int, width_us: float, current_ma: float) -> None:
        with self._lock:
            self.single_pulses.append((t, channel, width_us, current_ma))
            self.events.append(TimelineEvent(t, "single_pulse", f"channel {channel}"))

    # ------------------------------------------------------------------ queries

    @property
    def stimulating(self) -> bool:
        """True while the output stage delivers current on some channel."""
        with self._lock:
            return bool(self.segments) and self.segments[-1].end is None and self.segments[-1].active

    def on_intervals(self) -> list[tuple[float, float | None]]:
        """Merged monotonic intervals with current on some channel (``None`` = still on)."""
        with self._lock:
            segs = [(s.start, s.end) for s in self.segments if s.active]
        out: list[list] = []
        for a, b in segs:
            if out and out[-1][1] is not None and abs(out[-1][1] - a) < 1e-12:
                out[-1][1] = b
            else:
                out.append([a, b])
        return [(a, b) for a, b in out]

    def last_off(self) -> float | None:
        """Monotonic time at which stimulation last stopped (None if never, or still on)."""
        iv = self.on_intervals()
        return iv[-1][1] if iv else None

    def events_of(self, kind: str) -> list[TimelineEvent]:
        with self._lock:
            return [e for e in self.events if e.kind == kind]

    def device_time(self, t: float) -> float:
        """Device seconds since the timeline origin for a monotonic instant."""
        return (t - self.origin) * self.time_scale

    def pulses(self) -> dict[str, np.ndarray]:
        """Every pulse the device would have delivered, sorted by time.

        Returns
        -------
        dict
            ``t_s`` (device seconds from the timeline origin), ``channel``,
            ``pulse_width_us`` and ``current_ma``, one entry per pulse.
        """
        with self._lock:
            segs = list(self.segments)
            singles = list(self.single_pulses)
            now = time.monotonic()
        t_parts, ch_parts, w_parts, a_parts = [], [], [], []
        phase: dict[int, tuple[ChannelOutput, float]] = {}  # channel -> (settings, next pulse time)
        for seg in segs:
            t0 = self.device_time(seg.start)
            t1 = self.device_time(seg.end if seg.end is not None else now)
            for ch, out in seg.channels.items():
                if out.current_ma <= 0 or out.period_s <= 0:
                    phase.pop(ch, None)
                    continue
                prev = phase.get(ch)
                # a running channel keeps its pulse clock when only current or width change
                same_clock = (prev is not None and prev[0].period_s == out.period_s
                              and prev[0].pulses_per_group == out.pulses_per_group
                              and prev[1] >= t0 - 1e-12)
                first = prev[1] if same_clock else t0
                n = max(0, math.ceil((t1 - first) / out.period_s - 1e-9))
                base = first + out.period_s * np.arange(n)
                phase[ch] = (out, first + out.period_s * n)
                k = out.pulses_per_group
                tt = (base[:, None] + out.group_interval_s * np.arange(k)[None, :]).ravel()
                tt = tt[tt < t1]
                amp = np.full(tt.size, float(out.current_ma))
                if out.ramp_pulses and not same_clock:
                    r = min(out.ramp_pulses, amp.size)
                    amp[:r] *= (np.arange(1, r + 1) / (out.ramp_pulses + 1))
                t_parts.append(tt)
                ch_parts.append(np.full(tt.size, ch, dtype=np.int16))
                w_parts.append(np.full(tt.size, float(out.pulse_width_us)))
                a_parts.append(amp)
            for ch in list(phase):
                if ch not in seg.channels:
                    del phase[ch]
        for t, ch, w, a in singles:
            t_parts.append(np.array([self.device_time(t)]))
            ch_parts.append(np.array([ch], dtype=np.int16))
            w_parts.append(np.array([float(w)]))
            a_parts.append(np.array([float(a)]))
        if not t_parts:
            z = np.zeros(0)
            return {"t_s": z, "channel": np.zeros(0, dtype=np.int16), "pulse_width_us": z,
                    "current_ma": z}
        t = np.concatenate(t_parts)
        order = np.argsort(t, kind="stable")
        return {"t_s": t[order], "channel": np.concatenate(ch_parts)[order],
                "pulse_width_us": np.concatenate(w_parts)[order],
                "current_ma": np.concatenate(a_parts)[order]}
