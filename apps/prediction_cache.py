"""Predictions kept by their inputs, so that returning to an earlier design costs nothing."""

from __future__ import annotations

import threading
from collections import OrderedDict

__all__ = ["PredictionCache"]


class PredictionCache:
    """A small thread-safe least-recently-used map from inputs to predictions.

    Parameters
    ----------
    size : int
        Predictions kept; a 25-minute session's traces are a few MB, so a handful is enough to
        step back and forth between designs.
    """

    def __init__(self, size: int = 16):
        self.size = size
        self._lock = threading.Lock()
        self._items: OrderedDict = OrderedDict()

    def get(self, key):
        """The prediction stored under ``key`` (now the most recent), or ``None``."""
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key]

    def put(self, key, prediction) -> None:
        with self._lock:
            self._items[key] = prediction
            self._items.move_to_end(key)
            while len(self._items) > self.size:
                self._items.popitem(last=False)

    def __len__(self) -> int:
        return len(self._items)
