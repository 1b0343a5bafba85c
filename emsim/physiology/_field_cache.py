"""One byte budget for what the field solver caches: layer kernels and depth planes.

The solver keeps, per tissue stack and grid, the layer kernel (admittances and depth factors
on the wavenumber grid, ~10–50 MB at the default grid), and per
:class:`~emsim.physiology.field.FieldSolution` the depth planes it has computed (spline
coefficients and image corrections, up to 64 MB per solution). Counted in entries (32 kernels,
64 MB of planes per solution, solutions kept alive by the recruitment model's geometry cache),
that grew to ~1.7 GB per process in a cohort run, where no patient's stack is ever used again.
Here both sit in one least-recently-used store with a process-wide byte budget
(``EMSIM_FIELD_CACHE_MB``, default 256 MB; per-solution cap unchanged). An evicted entry is
recomputed on demand, bit for bit the same, so the budget changes speed, never results. A
solution's planes leave the store when the solution is garbage collected.
"""

from __future__ import annotations

import itertools
import os
import threading
import weakref
from collections import OrderedDict

from emsim.errors import EmsimError

__all__ = ["PlaneStore", "PLANES", "DEFAULT_BUDGET_BYTES", "budget_from_env"]

DEFAULT_BUDGET_BYTES = 256 * 2 ** 20
ENV_VAR = "EMSIM_FIELD_CACHE_MB"


def _check_budget(nbytes, path: str) -> int:
    if isinstance(nbytes, bool) or not isinstance(nbytes, (int, float)) or not 0 <= nbytes < 2 ** 50:
        raise EmsimError("field cache budget out of range", path=path, value=nbytes, allowed="0 to 2**50 bytes")
    return int(nbytes)


def budget_from_env() -> int:
    """The budget in bytes from ``EMSIM_FIELD_CACHE_MB`` (MB), else the default."""
    raw = os.environ.get(ENV_VAR)
    if raw is None or raw.strip() == "":
        return DEFAULT_BUDGET_BYTES
    try:
        mb = float(raw)
    except ValueError:
        raise EmsimError("field cache budget must be a number of MB", path=ENV_VAR, value=raw,
                         allowed="0 to 1e9 MB") from None
    return _check_budget(mb * 2 ** 20, ENV_VAR)


class PlaneStore:
    """Least-recently-used arrays of many owners under one byte budget and a per-owner cap.

    Owners are registered with :meth:`owner` (a small token object; the store holds no
    reference to the owner itself) and forgotten when the owner is collected.
    """

    def __init__(self, budget_bytes: int):
        self.budget = _check_budget(budget_bytes, "budget_bytes")
        self._entries: OrderedDict = OrderedDict()  # (token, key) -> array
        self._owned: dict[int, OrderedDict] = {}  # token -> OrderedDict key -> nbytes
        self._bytes = 0
        self._tokens = itertools.count()
        self._lock = threading.Lock()  # the workbench and Dask threads share the store
        self._collected: list[int] = []  # tokens of collected owners, dropped under the lock
        self.hits = self.misses = self.evictions = 0

    # -------------------------------------------------------------- owners
    def owner(self, obj) -> int:
        """A token for ``obj``'s planes; they are dropped when ``obj`` is collected."""
        with self._lock:
            token = next(self._tokens)
            self._owned[token] = OrderedDict()
        # A finaliser may run inside a locked section (garbage collection): it only records.
        weakref.finalize(obj, self._collected.append, token)
        return token

    def _drop_collected(self) -> None:
        while self._collected:
            token = self._collected.pop()
            for key, nbytes in self._owned.pop(token, {}).items():
                del self._entries[(token, key)]
                self._bytes -= nbytes

    def _evict_oldest(self) -> None:
        (tok, old), _ = self._entries.popitem(last=False)
        self._bytes -= self._owned[tok].pop(old)
        self.evictions += 1

    # -------------------------------------------------------------- planes
    def get(self, token: int, key, make, owner_cap: int, nbytes=None):
        """The cached value of ``(token, key)``, else ``make()`` stored under the budgets.

        ``nbytes(value)`` gives a value's size (default: an array's ``nbytes``).
        """
        full = (token, key)
        with self._lock:
            self._drop_collected()
            hit = self._entries.get(full)
            if hit is not None:
                self._entries.move_to_end(full)
                self._owned[token].move_to_end(key)
                self.hits += 1
                return hit
            self.misses += 1
        arr = make()  # outside the lock: planes take milliseconds and may be asked in parallel
        with self._lock:
            owned = self._owned.get(token)
            if owned is None or full in self._entries:  # owner gone, or another thread stored it
                return self._entries.get(full, arr)
            size = arr.nbytes if nbytes is None else int(nbytes(arr))
            self._entries[full] = arr
            owned[key] = size
            self._bytes += size
            owned_bytes = sum(owned.values())
            # The newest plane always stays: a caller is about to read it.
            while owned_bytes > owner_cap and len(owned) > 1:
                old, nbytes = owned.popitem(last=False)
                del self._entries[(token, old)]
                self._bytes -= nbytes
                owned_bytes -= nbytes
                self.evictions += 1
            while self._bytes > self.budget and len(self._entries) > 1:
                self._evict_oldest()
        return arr

    def owner_bytes(self, token: int) -> int:
        with self._lock:
            return sum(self._owned.get(token, {}).values())

    def set_budget(self, nbytes) -> None:
        """Change the budget (bytes), evicting the least recently used planes to meet it."""
        budget = _check_budget(nbytes, "budget_bytes")
        with self._lock:
            self.budget = budget
            self._drop_collected()
            while self._bytes > self.budget and self._entries:
                self._evict_oldest()

    def clear(self) -> None:
        """Drop every plane (owners stay registered and refill on demand)."""
        with self._lock:
            self._drop_collected()
            self._entries.clear()
            for owned in self._owned.values():
                owned.clear()
            self._bytes = 0

    def info(self) -> dict:
        with self._lock:
            self._drop_collected()
            return {"bytes": self._bytes, "budget_bytes": self.budget, "planes": len(self._entries),
                    "owners": sum(1 for o in self._owned.values() if o), "hits": self.hits,
                    "misses": self.misses, "evictions": self.evictions}


#: The process's store (field solutions and the single-electrode solutions of solve_batch).
PLANES = PlaneStore(budget_from_env())
