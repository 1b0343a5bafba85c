"""A memo for study scripts' helpers that travels to Dask workers empty.

Study scripts are shipped to workers by value (they are not importable there), and
``functools.lru_cache`` objects cannot be pickled that way. :func:`worker_cache` memoises per
process like ``lru_cache`` and pickles as the bare function; the memo lives in this (importable)
module, keyed by the function's module and name, so every task a worker runs shares it instead
of starting empty.
"""

from __future__ import annotations

import functools
from collections import OrderedDict

__all__ = ["worker_cache"]

_MEMOS: dict[tuple[str, str], OrderedDict] = {}


class _WorkerCache:
    def __init__(self, fn, maxsize: int):
        functools.update_wrapper(self, fn)
        self.fn, self.maxsize = fn, maxsize
        self.memo = _MEMOS.setdefault((fn.__module__, fn.__qualname__), OrderedDict())

    def __call__(self, *args):
        try:
            value = self.memo[args]
            self.memo.move_to_end(args)
            return value
        except KeyError:
            value = self.memo[args] = self.fn(*args)
            if len(self.memo) > self.maxsize:
                self.memo.popitem(last=False)
            return value

    def __reduce__(self):
        return _WorkerCache, (self.fn, self.maxsize)


def worker_cache(maxsize: int = 128):
    """Decorator: memoise a function of hashable positional arguments (least recently used out)."""
    return lambda fn: _WorkerCache(fn, maxsize)
