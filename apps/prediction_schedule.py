"""When the workbench predicts: a preview at once, the full session after it, stale work dropped.

A change asks for a prediction (:meth:`PredictionSchedule.request`). The first change after a
quiet spell starts at once (leading edge); changes that follow it closer than the debounce
time (a dragged slider sends one every ~16 ms) collapse into one prediction that starts when
they stop (trailing edge). Each prediction runs in two stages off the caller's thread: the
quick preview, then (if asked) the whole session. A newer request makes every older stage
stale: one that has not started never starts, one that is running is discarded when it ends
(``evaluate`` has no cancellation hook), and the preview of the newer request never waits
behind a stale full session.

Results are handed to ``publish`` through ``deliver``: by default at once on the worker
thread; the workbench page passes a function that applies them on the server's event loop
in one document update.
"""

from __future__ import annotations

import contextvars
import threading
import time
from typing import Callable

from emsim.errors import EmsimError

__all__ = ["PredictionSchedule", "BUSY_AFTER_S"]

#: A preview still running after this long shows the page's busy spinner.
BUSY_AFTER_S = 0.2


def _at_once(fn: Callable[[], None]) -> None:
    fn()


class PredictionSchedule:
    """Runs the stages of the latest requested prediction and publishes what is still current.

    Parameters
    ----------
    preview, full : callable
        ``() -> prediction`` of the current design; they may raise (the error text is
        published instead).
    wants_full : callable
        ``() -> bool``: whether the full session follows the preview.
    publish : callable
        ``(values: dict, landed: bool) -> None`` applies ``values`` (prediction,
        prediction_error, prediction_stage, busy) to the page's state; ``landed`` says a
        prediction arrived.
    debounce_s : float
        Changes closer together than this collapse into one prediction.
    deliver : callable, optional
        ``(fn) -> None`` runs ``fn`` where the page's state may change (default: right away).
    """

    def __init__(self, preview, full, wants_full, publish, debounce_s: float, deliver=None):
        self._preview, self._full, self._wants_full, self._publish = preview, full, wants_full, publish
        self.debounce_s = debounce_s
        self.deliver = deliver or _at_once
        self._gen = 0
        self._last_request = -float("inf")
        self._lock = threading.Lock()
        self._preview_lock = threading.Lock()
        self._full_lock = threading.Lock()
        self._idle = threading.Event()
        self._idle.set()
        self._timer: threading.Timer | None = None

    def request(self) -> None:
        """Ask for a prediction of the design as it is now; older requests go stale."""
        with self._lock:
            self._gen += 1
            gen = self._gen
            self._idle.clear()
            if self._timer is not None:
                self._timer.cancel()
            now = time.monotonic()
            delay = 0.0 if now - self._last_request >= self.debounce_s else self.debounce_s
            self._last_request = now
            # The worker runs in a copy of the caller's context: a served page's document travels
            # with it, so ``deliver`` can find the page's event loop.
            self._timer = threading.Timer(delay, contextvars.copy_context().run, args=(self._run, gen))
            self._timer.daemon = True
            self._timer.start()

    def wait(self, timeout: float = 60.0) -> bool:
        """Block until the latest request's last stage is published (for tests); False on timeout."""
        return self._idle.wait(timeout)

    def _current(self, gen: int) -> bool:
        return gen == self._gen

    def _send(self, gen: int, values: dict, landed: bool, last: bool) -> None:
        def apply():
            if not self._current(gen):  # a newer request overtook it on its way to the page
                return
            self._publish(values, landed)
            if last:
                self._idle.set()

        self.deliver(apply)

    def _run(self, gen: int) -> None:
        with self._preview_lock:
            if not self._current(gen):
                return
            # The spinner only for a preview that takes a while: announced at once, it was a second
            # message to lay out in the browser just before the prediction's own.
            spinner = threading.Timer(BUSY_AFTER_S, contextvars.copy_context().run,
                                      args=(self._send, gen, {"busy": True}, False, False))
            spinner.daemon = True
            spinner.start()
            pred, err = _attempt(self._preview)
            spinner.cancel()
            if not self._current(gen):
                return
            more = pred is not None and self._wants_full()
            self._send(gen, dict(prediction=pred, prediction_error=err, prediction_stage="preview", busy=more),
                       landed=True, last=not more)
            if not more:
                return
        with self._full_lock:  # a stale full session still running finishes here, then is dropped
            if not self._current(gen):
                return
            pred, err = _attempt(self._full)
            if not self._current(gen):
                return
            self._send(gen, dict(prediction=pred, prediction_error=err, prediction_stage="full", busy=False),
                       landed=True, last=True)


def _attempt(fn):
    try:
        return fn(), ""
    except EmsimError as exc:
        return None, str(exc)
    except Exception as exc:  # noqa: BLE001  (a bug must not leave the page waiting forever)
        return None, f"internal error, please report: {exc!r}"
