"""A manual clock for tests of timed device code: nothing sleeps, time moves when told to."""

from __future__ import annotations

import threading

__all__ = ["ManualClock"]


class ManualClock:
    """Monotonic clock under test control, with the ``monotonic()``/``sleep()`` pair devices use.

    ``sleep(s)`` advances the clock by ``s`` at once (so code that sleeps runs instantly);
    ``advance(s)`` moves it from the test. Thread-safe.
    """

    def __init__(self, start: float = 0.0):
        self._t = float(start)
        self._lock = threading.Lock()

    def monotonic(self) -> float:
        with self._lock:
            return self._t

    def sleep(self, seconds: float) -> None:
        self.advance(max(0.0, float(seconds)))

    def advance(self, seconds: float) -> float:
        if seconds < 0:
            raise ValueError("a monotonic clock cannot go back")
        with self._lock:
            self._t += float(seconds)
            return self._t
