"""Run a study in batches, locally or on Dask distributed, with checkpoints and a progress bar."""

from __future__ import annotations

import dataclasses
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Mapping

import numpy as np

from emsim.study._errors import StudyError
from emsim.study._provenance import fingerprint, provenance
from emsim.study._storage import Layout, check_writable

__all__ = ["RunResult", "run", "evaluate_batch", "stages"]


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
    stages: tuple = ()  # RunResults of the follow-up stages (Study.then), in order


def evaluate_batch(fn, params: Mapping[str, np.ndarray], outcomes: tuple, start: int,
                   fresh_patients: bool = False) -> dict:
    """One batch: the parameter columns, the row numbers and every declared outcome (columns).

    ``fresh_patients``: the batch's patients are never seen again (a cohort: batches hold whole
    patients), so the field solutions cached for them are dropped afterwards instead of
    crowding out ones that will be used again.
    """
    n = len(next(iter(params.values())))
    try:
        got = fn(dict(params))
    finally:
        if fresh_patients:
            from emsim.physiology.recruitment import clear_cache

            clear_cache()
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
    from distributed import Client

    from emsim._dask import MuscleThreads, local_cluster, warn_malloc_trim

    if scheduler is not None:
        try:
            client = Client(scheduler, timeout="5s")
        except (OSError, TimeoutError, ValueError) as exc:
            raise StudyError("cannot reach the Dask scheduler", path="--scheduler", value=scheduler,
                             allowed=f"a running scheduler address such as tcp://host:8786 ({exc})") from None
        warn_malloc_trim(client)
        # Each Dask worker thread runs one batch at a time: its muscle kernels get one thread.
        client.register_plugin(MuscleThreads(1))
        return client
    if isinstance(workers, bool) or not isinstance(workers, int) or not 1 <= workers <= 1024:
        raise StudyError("worker count out of range", path="--workers", value=workers, allowed="1 to 1024")
    cluster = local_cluster(workers, dashboard_address=":0")  # any free port: never clash
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


def _submit_bounded(client, study, todo, outcomes, layout, bar, window: int) -> None:
    """Keep at most ``window`` batches in flight: each finished batch goes to disk and its
    result is released before the next is submitted, so the driver's memory does not grow with
    the number of rows (the batch parameters are sliced lazily from the row table)."""
    from distributed import as_completed

    _ship_by_value(study.evaluate)
    pending = iter(todo)

    def submit(item):
        i, start, params = item
        fut = client.submit(evaluate_batch, study.evaluate, params, outcomes, start, _is_cohort(study),
                            pure=False)
        return fut, i

    index = {}
    first = [submit(item) for _, item in zip(range(window), pending)]  # range first: zip must not drop an item
    index.update({f.key: i for f, i in first})
    queue = as_completed([f for f, _ in first])
    for fut in queue:
        layout.write_part(index.pop(fut.key), fut.result())
        fut.release()
        bar.update(1)
        nxt = next(pending, None)
        if nxt is not None:
            f, i = submit(nxt)
            index[f.key] = i
            queue.add(f)


def _is_cohort(study) -> bool:
    from emsim.study._space import Cohort

    return isinstance(study.space, Cohort)


def _window(client) -> int:
    return 2 * max(1, len(client.scheduler_info().get("workers", {})))


def _run_stage(study, out: Path, client, executor: str, progress: bool) -> RunResult:
    layout = Layout(Path(out), study.name)
    check_writable(layout.dir)
    fp = fingerprint(study.spec())
    done = layout.finished()
    if done is not None and done.get("fingerprint") == fp:
        return RunResult(layout.dir, layout.results, layout.provenance,
                         layout.netcdf if layout.netcdf.is_file() else None, int(done["n_rows"]), 0, 0)
    rows = study.space.rows(study.seed)
    batches = _batches(rows, study.batch_size)
    finished = layout.start(fp)
    todo = [b for b in batches if b[0] not in finished]
    outcomes = tuple(study.outcomes)
    with _progress(len(batches), len(batches) - len(todo), study.name, progress) as bar:
        if client is None:
            for i, start, params in todo:
                layout.write_part(i, evaluate_batch(study.evaluate, params, outcomes, start, _is_cohort(study)))
                bar.update(1)
        else:
            _submit_bounded(client, study, todo, outcomes, layout, bar, _window(client))
    n_rows = layout.merge(len(batches))
    prov = provenance(study, n_rows, executor=executor)
    netcdf = None
    if study.space.gridded:
        layout.write_netcdf([p.name for p in study.space.parameters], study.units(), prov)
        netcdf = layout.netcdf
    layout.finish(prov)
    return RunResult(layout.dir, layout.results, layout.provenance, netcdf, n_rows,
                     len(todo), len(batches) - len(todo))


def stages(study, out: str | Path):
    """``(study, folder)`` of each stage whose predecessor has finished in ``out`` (the first
    stage always; a ``then`` stage once the stage before it has results)."""
    import pandas as pd

    folder = Path(out)
    while study is not None:
        yield study, folder
        layout = Layout(folder, study.name)
        if study.then is None or layout.finished() is None:
            return
        folder, study = layout.dir, study.then(pd.read_parquet(layout.results))


def run(study, out: str | Path, *, workers: int | None = None, scheduler: str | None = None,
        progress: bool = True) -> RunResult:
    """Evaluate every row of ``study`` and write ``<out>/<name>/results.parquet`` + provenance.

    Each finished batch is checkpointed; rerunning after an interruption evaluates only the
    missing batches. A run that already finished with the same spec is not repeated. On Dask,
    at most two batches per worker are in flight at any time. A study with a ``then`` stage
    runs that stage next, into ``<out>/<name>/<stage name>/``; the result lists it in ``stages``.

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
    EmsimError
        A model refused a row's parameters (e.g. a value outside its valid range); the
        finished batches stay checkpointed, no results are presented as complete.
    """
    if workers is not None and scheduler is not None:
        raise StudyError("give either workers or scheduler, not both", path="--workers", has_value=False,
                         allowed="--workers K or --scheduler ADDR")
    check_writable(Path(out) / study.name)
    client = _client(workers, scheduler)  # before touching files: a bad scheduler changes nothing
    executor = "local" if client is None else (f"dask:{scheduler}" if scheduler else f"dask:local:{workers}")
    results = []
    try:
        for stage, folder in stages(study, out):
            results.append(_run_stage(stage, folder, client, executor, progress))
    finally:
        if client is not None:
            cluster = client.cluster
            client.close()
            if cluster is not None and workers is not None:
                cluster.close()
    first = results[0]
    return dataclasses.replace(first, stages=tuple(results[1:]))
