"""Study storage benchmark: what storing a study costs per evaluation, by backend and study size.

Backends: ``memory`` (optuna's in-memory storage, not persistent), ``rdb-sqlite`` (optuna's RDB
storage on a SQLite file: the layout emsim used before the journal, still used for databases
that have it), ``journal-sqlite`` and ``journal-postgresql`` (emsim's journal table,
:mod:`emsim.optimise._journal`; PostgreSQL on a throwaway loopback server, skipped when not
installed).

1. End to end: ``optimise()`` with the closed-form surrogate evaluator (so that the storage is
   not drowned by the model) for ``--sizes`` evaluations, median of ``--repeats`` runs, wall
   and CPU time of this process (and, for PostgreSQL, of the server); the storage overhead is
   the difference to ``memory``.
2. At study size: a study of ``--study-sizes`` finished trials (copies of real surrogate
   trials) is built, then (a) opened from scratch (connect, replay or load every trial: what a
   resumed run or a new worker pays once) and (b) one optimiser batch cycle of the storage
   alone is timed (``_Mirror.pull``, lease beat and read, ``_Mirror.push`` of 16 trials with the
   lease record), median of 10 cycles, per evaluation. The RDB layout is built a trial at a time
   as the optimiser writes it, which is slow: ``--rdb-max`` bounds its sizes.

The machine is shared: load averages before and after are recorded, and CPU times next to
wall times. Run: ``python benchmarks/bench_storage.py [--sizes 96,960] [--study-sizes
1000,5000,20000] [--repeats 3]``; results are appended to ``benchmarks/results/optimise.jsonl``
(benchmark ``study storage``).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from _report import machine, publish  # benchmarks/_report.py (scripts run from this folder)
from bench_optimise import _problem

BATCH = 16


def _server_cpu_s(server) -> float | None:
    """CPU seconds of the PostgreSQL server so far (postmaster, its live and its reaped children)."""
    if server is None:
        return None
    import psutil

    pid = int((server.base / "data" / "postmaster.pid").read_text().split()[0])
    p = psutil.Process(pid)
    t = p.cpu_times()
    total = t.user + t.system + t.children_user + t.children_system
    for c in p.children(recursive=True):
        try:
            ct = c.cpu_times()
            total += ct.user + ct.system
        except psutil.NoSuchProcess:
            pass
    return total


class Backends:
    """Fresh, empty databases of each backend; ``url(name)`` gives one."""

    def __init__(self, stack: ExitStack, want: list[str]):
        self.dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="emsim-bench-storage-")))
        self.server = None
        self.names = [n for n in want if n != "journal-postgresql"]
        if "journal-postgresql" in want:
            from emsim.optimise.loopback_postgres import PG_BIN, loopback_postgres

            if PG_BIN:
                self.server = stack.enter_context(loopback_postgres(self.dir / "pg"))
                self.names.append("journal-postgresql")
            else:
                print("PostgreSQL not installed: journal-postgresql skipped", file=sys.stderr)
        self._n = 0

    def url(self, name: str) -> str | None:
        import optuna

        self._n += 1
        if name == "memory":
            return None
        if name == "journal-postgresql":
            return self.server.create_database()
        url = f"sqlite:///{self.dir / f'{self._n}.db'}"
        if name == "rdb-sqlite":
            optuna.storages.RDBStorage(url)  # optuna's tables: the database keeps the RDB layout
        return url


def end_to_end(backends: Backends, sizes: list[int], repeats: int) -> dict:
    from emsim.optimise import optimise
    from emsim.optimise.testing import surrogate_evaluate_batch

    problem = _problem(60.0, surrogate_evaluate_batch)
    out: dict = {}
    for n in sizes:
        for name in backends.names:
            wall, cpu, server = [], [], []
            for _ in range(repeats):
                url = backends.url(name)
                s0, t0, c0 = _server_cpu_s(backends.server), time.perf_counter(), time.process_time()
                optimise(problem, "nsga2", budget=n, seed=0, batch_size=BATCH, storage=url, study_name="bench",
                         predict=False)
                wall.append((time.perf_counter() - t0) / n)
                cpu.append((time.process_time() - c0) / n)
                if name == "journal-postgresql":
                    server.append((_server_cpu_s(backends.server) - s0) / n)
            row = {"wall_ms_per_eval": 1e3 * statistics.median(wall), "cpu_ms_per_eval": 1e3 * statistics.median(cpu)}
            if server:
                row["server_cpu_ms_per_eval"] = 1e3 * statistics.median(server)
            out[f"{name}@{n}"] = row
        base = out[f"memory@{n}"]
        for name in backends.names:
            row = out[f"{name}@{n}"]
            row["storage_wall_ms_per_eval"] = row["wall_ms_per_eval"] - base["wall_ms_per_eval"]
            row["storage_cpu_ms_per_eval"] = row["cpu_ms_per_eval"] - base["cpu_ms_per_eval"]
    return out


def _template_trials(n: int = 64) -> list:
    from emsim.optimise import optimise
    from emsim.optimise.testing import surrogate_evaluate_batch

    result = optimise(_problem(60.0, surrogate_evaluate_batch), "random", budget=n, seed=0, predict=False)
    return result.study.get_trials(deepcopy=True)


def _copies(templates, n: int) -> list:
    """``n`` finished trials cycling through ``templates``, each with its own emsim uid."""
    import optuna

    from emsim.optimise._storage import UID_KEY

    out = []
    for i in range(n):
        t = templates[i % len(templates)]
        out.append(optuna.trial.create_trial(params=t.params, distributions=t.distributions, values=t.values,
                                             user_attrs={**t.user_attrs, UID_KEY: uuid.uuid4().hex},
                                             system_attrs=t.system_attrs))
    return out


def _fill(study, trials) -> None:
    """Store ``trials`` the way the optimiser does: a batch per transaction in the journal, else one by one."""
    add = getattr(study._storage, "add_trials", None)
    for i in range(0, len(trials), BATCH):
        chunk = trials[i:i + BATCH]
        if add is not None:
            add(study._study_id, chunk)
        else:
            study.add_trials(chunk)


def at_size(backends: Backends, sizes: list[int], rdb_max: int, cycles: int = 10) -> dict:
    import optuna

    from emsim.optimise._search import _Mirror
    from emsim.optimise._storage import WorkerLease, open_storage

    templates = _template_trials()
    directions = ["maximize", "minimize", "minimize"]
    out: dict = {}
    for n in sizes:
        for name in backends.names:
            if name == "rdb-sqlite" and n > rdb_max:
                continue
            url = backends.url(name)
            storage = open_storage(url)
            study = optuna.create_study(storage=storage, study_name="bench", directions=directions)
            t0 = time.perf_counter()
            _fill(study, _copies(templates, n))
            fill_s = time.perf_counter() - t0
            row: dict = {"fill_s": fill_s}
            if url is not None:  # (a) a new worker, or a resumed run, opens the study
                opens, open_cpu = [], []
                for _ in range(3):
                    t0, c0 = time.perf_counter(), time.process_time()
                    optuna.load_study(study_name="bench", storage=open_storage(url)).get_trials(deepcopy=False)
                    opens.append(time.perf_counter() - t0)
                    open_cpu.append(time.process_time() - c0)
                row.update(open_s=statistics.median(opens), open_cpu_s=statistics.median(open_cpu))
            # (b) the storage's share of one batch cycle, as optimise()'s loop does it
            mirror = _Mirror(study, optuna.samplers.RandomSampler(seed=0), directions)
            lease = WorkerLease(study)
            mirror.pull()
            walls, cpus = [], []
            for _ in range(cycles):
                numbers = []
                for t in _copies(templates, BATCH):
                    mirror.local.add_trial(t)
                    numbers.append(len(mirror.local.get_trials(deepcopy=False)) - 1)
                t0, c0 = time.perf_counter(), time.process_time()
                mirror.pull()
                lease.others_in_flight()
                lease.beat(in_flight=BATCH)
                mirror.push(numbers, lease.heartbeat(in_flight=0))
                walls.append((time.perf_counter() - t0) / BATCH)
                cpus.append((time.process_time() - c0) / BATCH)
            row.update(cycle_wall_ms_per_eval=1e3 * statistics.median(walls),
                       cycle_cpu_ms_per_eval=1e3 * statistics.median(cpus))
            out[f"{name}@{n}"] = row
            print(name, n, row, file=sys.stderr)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="96,960", help="evaluations of the end-to-end runs (comma-separated)")
    ap.add_argument("--study-sizes", default="1000,5000,20000", help="finished trials in the study, part 2")
    ap.add_argument("--rdb-max", type=int, default=5000, help="largest study built in the RDB layout")
    ap.add_argument("--repeats", type=int, default=3, help="repeats of each end-to-end run (median)")
    ap.add_argument("--backends", default="memory,rdb-sqlite,journal-sqlite,journal-postgresql")
    ap.add_argument("--dry-run", action="store_true", help="print the result, do not append it")
    args = ap.parse_args(argv)
    ints = lambda s: [int(v) for v in s.split(",") if v]  # noqa: E731

    load_before = os.getloadavg()
    t0 = time.perf_counter()
    with ExitStack() as stack:
        backends = Backends(stack, args.backends.split(","))
        row = {"benchmark": "study storage", **machine(), "batch_size": BATCH, "repeats": args.repeats,
               "evaluator": "surrogate (emsim.optimise.testing)", "backends": backends.names}
        row["end_to_end"] = end_to_end(backends, ints(args.sizes), args.repeats) if args.sizes else {}
        row["at_study_size"] = at_size(backends, ints(args.study_sizes), args.rdb_max) if args.study_sizes else {}
    row["load_average"] = {"before": load_before, "after": os.getloadavg()}
    row["bench_s"] = time.perf_counter() - t0
    if args.dry_run:
        print(json.dumps(row, indent=2))
    else:
        publish("optimise", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
