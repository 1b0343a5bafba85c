"""``numba.njit`` for emsim's sequential kernels (muscle model, discomfort sums).

Kernels are cached on disk (``cache=True``) so a new process starts in well under a second.
Where numba finds no writable cache location it raises at decoration; the kernels are then
compiled in memory at each start, with one warning per process.
"""

from __future__ import annotations

import warnings

__all__ = ["jit"]

_UNCACHED: list[str] = []


def jit(**options):
    """``numba.njit(cache=True, **options)``, falling back to an uncached compile."""
    import numba

    def wrap(fn):
        try:
            return numba.njit(cache=True, **options)(fn)
        except RuntimeError as exc:  # no writable cache location
            if not _UNCACHED:
                warnings.warn(f"emsim's kernels are compiled in memory at each start (a few seconds): "
                              f"numba found no writable cache location ({exc})", RuntimeWarning, stacklevel=2)
            _UNCACHED.append(fn.__name__)
            return numba.njit(cache=False, **options)(fn)
    return wrap
