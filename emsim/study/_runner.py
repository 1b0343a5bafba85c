"""Run a study in batches, locally or on Dask distributed, with checkpoints and a progress bar."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from emsim.study._errors import StudyError
from emsim.study._provenance import fingerprint, provenance
from emsim.study._storage import Layout, check_writable

__all__ = ["RunResult", "run", "evaluate_batch"]


@dataclass(frozen=True)
class RunResult:
    """Where a finished study's files are and how much work this call did."""

    folder: Path
    results: Path
    provenance: Path
    netcdf: Path | None
    n_rows: int
    batches_run: int
    batches_resumed: int


def evaluate_batch(fn, params: Mapping[str, np.ndarray], outcomes: tuple, start: int) -> dict:
    """One batch: the parameter columns, the row numbers and every declared outcome (columns)."""
    n = len(next(iter(params.values())))
    got = fn(dict(params))
    missing = [k for k in outcomes if k not in got]
    if missing:
        raise StudyError("the study's evaluate function did not return every outcome", path="outcomes",
                         value=missing, allowed=", ".join(outcomes))
    cols = {"row": np.arange(start, start + n)}
    cols.update({k: np.asarray(v) for k, v in params.items()})
    for k in outcomes:
        v = np.asarray(got[k], dtype=float)
        if v.shape != (n,):
            raise StudyError("an outcome has the wrong shape", path=k, value=v.shape, allowed=f"({n},)")
        cols[k] = v
    return cols


def _batches(rows: dict, size: int):
    n = len(next(iter(rows.values())))
    return [(i, s, {k: v[s:s + size] for k, v in rows.items()}) for i, s in enumerate(range(0, n, size))]


def _progress(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(total=total, initial=initial, desc=name, unit="batch", file=sys.stderr,
                disable=not enabled, dynamic_ncols=True)


def _client(workers: int | None, scheduler: str | None):
    """A Dask client on a fresh local cluster or on a running scheduler (None: run locally)."""
    if workers is None and scheduler is None:
        return None
    from distributed import Client, LocalCluster

    if scheduler is not None:
        try:
            return Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise StudyError("cannot reach the Dask scheduler", path="--scheduler", value=scheduler,
                             allowed=f"a running scheduler address such as tcp://host:8786 ({exc})") from None
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
        raise StudyError("worker count out of range", path="--workers", value=workers, allowed="1 to 1024")
    cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                           dashboard_address=None, silence_logs=40)
    return Client(cluster)


def _ship_by_value(fn) -> None:
    # Study scripts are not importable on workers: send their code along with the function.
    import cloudpickle

    module = sys.modules.get(getattr(fn, "__module__", ""), None)
    if module is not None and not module.__name__.startswith("emsim."):
        try:
            cloudpickle.register_pickle_by_value(module)
        except ValueError:
            pass


def run(study, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
        progress: bool = True) -> RunResult:
    """Evaluate every row of ``study`` and write ``<out>/<name>/results.parquet`` + provenance.

    Each finished batch is checkpointed; rerunning after an interruption evaluates only the
    missing batches. A run that already finished with the same spec is not repeated.

    Parameters
    ----------
    study : Study
    out : path
        Output folder (created).
    workers : int, optional
        Run on a local Dask cluster of this many single-threaded worker processes.
    scheduler : str, optional
        Run on the Dask scheduler at this address (``tcp://host:8786``).
    progress : bool
        Show a progress bar on stderr.

    Raises
    ------
    StudyError
        Unwritable folder, unreachable scheduler, both ``workers`` and ``scheduler``, an
        evaluate function that returns the wrong outcomes.
    """
    if workers is not None and scheduler is not None:
        raise StudyError("give either workers or scheduler, not both", path="--workers", has_value=False,
                         allowed="--workers K or --scheduler ADDR")
    layout = Layout(Path(out), study.name)
    check_writable(layout.dir)
    fp = fingerprint(study.spec())
    done = layout.finished()
    if done is not None and done.get("fingerprint") == fp:
        return RunResult(layout.dir, layout.results, layout.provenance,
                         layout.netcdf if layout.netcdf.is_file() else None, int(done["n_rows"]), 0, 0)
    rows = study.space.rows(study.seed)
    batches = _batches(rows, study.batch_size)
    client = _client(workers, scheduler)  # before touching files: a bad scheduler changes nothing
    executor = "local" if client is None else (f"dask:{scheduler}" if scheduler else f"dask:local:{workers}")
    try:
        finished = layout.start(fp)
        todo = [b for b in batches if b[0] not in finished]
        outcomes = tuple(study.outcomes)
        with _progress(len(batches), len(batches) - len(todo), study.name, progress) as bar:
            if client is None:
                for i, start, params in todo:
                    layout.write_part(i, evaluate_batch(study.evaluate, params, outcomes, start))
                    bar.update(1)
            else:
                from distributed import as_completed

                _ship_by_value(study.evaluate)
                futures = {client.submit(evaluate_batch, study.evaluate, params, outcomes, start,
                                         pure=False): i for i, start, params in todo}
                for fut in as_completed(futures):
                    layout.write_part(futures[fut], fut.result())
                    fut.release()  # results stream to disk; nothing accumulates in memory
                    bar.update(1)
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None and workers is not None:
                cluster.close()
    n_rows = layout.merge(len(batches))
    prov = provenance(study, n_rows, executor=executor)
    netcdf = None
    if study.space.gridded:
        layout.write_netcdf([p.name for p in study.space.parameters], study.units(), prov)
        netcdf = layout.netcdf
    layout.finish(prov)
    return RunResult(layout.dir, layout.results, layout.provenance, netcdf, n_rows,
                     len(todo), len(batches) - len(todo))
