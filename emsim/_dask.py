"""Dask clusters for emsim's batch work (studies and the optimiser), set up for array code.

The nanny's default ``MALLOC_TRIM_THRESHOLD_=65536`` switches off glibc's adaptive mmap
threshold, so every numpy temporary over 128 KiB is mmap'd and page-faulted afresh: the field
solver's FFT/array work ran 2–2.5× slower (CPU time) in a worker than in a plain process
(measured with ``benchmarks/bench_study.py``). Local clusters leave it unset; workers someone
else started are checked and warned about.
"""

from __future__ import annotations

import os
import warnings

from distributed import WorkerPlugin

__all__ = ["MALLOC_TRIM", "MuscleThreads", "local_cluster", "warn_malloc_trim"]

MALLOC_TRIM = "MALLOC_TRIM_THRESHOLD_"


class MuscleThreads(WorkerPlugin):
    """Dask worker plugin: the muscle kernels' row threads per worker (default 1).

    The kernels split batch rows over as many threads as the process may use cores; Dask
    already runs one task per worker thread on every core, so two workers on two cores would
    each start two kernel threads and only add switching. Results do not depend on it.
    """

    name = "emsim-muscle-threads"

    def __init__(self, threads: int = 1):
        self.threads = threads

    def setup(self, worker=None):
        from emsim.physiology.muscle import set_num_threads

        set_num_threads(self.threads)


def local_cluster(workers: int, **kwargs):
    """A ``distributed.LocalCluster`` of ``workers`` single-threaded processes without the
    nanny's malloc-trim setting (a variable the user exported still applies), each running
    the muscle kernels on one thread (:class:`MuscleThreads`)."""
    import dask
    from distributed import LocalCluster

    kwargs = {"threads_per_worker": 1, "processes": True, "silence_logs": 40,
              "plugins": {MuscleThreads(1)}, **kwargs}
    with dask.config.set({f"distributed.nanny.pre-spawn-environ.{MALLOC_TRIM}": None}):
        return LocalCluster(n_workers=workers, **kwargs)


def warn_malloc_trim(client) -> None:
    """Warn when a cluster's workers run with the nanny's malloc-trim setting (only the
    cluster's owner can change it, before the workers start)."""
    try:
        found = client.run(os.environ.get, MALLOC_TRIM)
    except (OSError, TimeoutError, RuntimeError):
        return  # a diagnosis only: the run itself reports a broken cluster
    slow = sorted(addr for addr, value in found.items() if value is not None)
    if slow:
        warnings.warn(f"{len(slow)} Dask worker(s) run with {MALLOC_TRIM} set, which slows emsim's array work "
                      f"2-2.5x; start them with the Dask config distributed.nanny.pre-spawn-environ."
                      f"{MALLOC_TRIM}: null (see README)", RuntimeWarning, stacklevel=3)
