"""Optimiser benchmark: a 2-channel lumbar search (15 decision variables, 3 objectives).

Reports, with the real model (``emsim.simulate.evaluate``) on the example patient:

1. NSGA-II for ``--seconds`` of wall time (default 60): front size, evaluations, and the
   hypervolume of its Pareto front relative to a reference run ``--factor`` (default 10)
   times longer (same problem, another seed);
2. the same search with batches evaluated on a 2-worker local Dask cluster (speed-up in
   evaluations per second);
3. per-evaluation overhead of the search library and of the storage (SQLite file), next to
   the evaluation time itself (measured with the surrogate evaluator, so only the machinery
   is timed, over ``--repeats`` runs, median).

The main phase is shortened to ``--session-s`` (default 60 s) so that a front fits in the
time limit; the evaluation cost grows with the number of pulses.
Run: ``python benchmarks/bench_optimise.py [--seconds 60] [--factor 10]``; results are appended
to ``benchmarks/results/optimise.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from emsim import __version__

ROOT = Path(__file__).resolve().parent.parent


def _problem(session_s, evaluator=None):
    from emsim.body import load_patient
    from emsim.optimise import DesignSpace, Problem, lumbar_template

    patient = load_patient(ROOT / "models" / "patients" / "example_measured.json")
    space = DesignSpace.from_template(lumbar_template(patient, duration_s=session_s), device="rehastim2")
    return Problem(patient, space, evaluator=evaluator)


def hypervolume(front: np.ndarray, directions, ref: np.ndarray, scale: np.ndarray) -> float:
    """Hypervolume of a front (all objectives turned into minimisation and scaled) w.r.t. ``ref``."""
    from optuna._hypervolume import compute_hypervolume  # private, but the maintained WFG implementation

    sign = np.array([-1.0 if d == "maximize" else 1.0 for d in directions])
    f = front * sign / scale
    r = ref * sign / scale
    f = f[np.all(f < r, axis=1)]
    return float(compute_hypervolume(f, r)) if len(f) else 0.0


def timed_search(problem, seconds, seed, workers=1, batch_size=16):
    from emsim.optimise import optimise

    t0 = time.perf_counter()
    result = optimise(problem, "nsga2", budget=10**6, seed=seed, batch_size=batch_size, workers=workers,
                      callback=lambda p: time.perf_counter() - t0 > seconds, predict=False)
    return result, time.perf_counter() - t0


def overhead(repeats: int, n: int = 96):
    """Seconds per evaluation spent in optuna (in memory) and in the SQLite storage, surrogate model."""
    from emsim.optimise import optimise
    from emsim.optimise.testing import surrogate_evaluate_batch

    problem = _problem(60.0, surrogate_evaluate_batch)
    eval_s, mem_s, db_s = [], [], []
    vectors = [problem.space.from_program(problem.space.template)] * n
    for _ in range(repeats):
        t = time.perf_counter()
        problem.evaluate(vectors)
        eval_s.append((time.perf_counter() - t) / n)
        t = time.perf_counter()
        optimise(problem, "nsga2", budget=n, seed=0, predict=False)
        mem_s.append((time.perf_counter() - t) / n)
        with tempfile.TemporaryDirectory() as d:
            t = time.perf_counter()
            optimise(problem, "nsga2", budget=n, seed=0, predict=False, storage=f"sqlite:///{d}/s.db",
                     study_name="bench")
            db_s.append((time.perf_counter() - t) / n)
    ev, mem, db = (statistics.median(x) for x in (eval_s, mem_s, db_s))
    return {"surrogate_eval_s": ev, "search_library_s_per_eval": mem - ev, "sqlite_storage_s_per_eval": db - mem}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--factor", type=float, default=10.0)
    ap.add_argument("--session-s", type=float, default=60.0)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--skip-dask", action="store_true")
    args = ap.parse_args(argv)

    problem = _problem(args.session_s)
    t = time.perf_counter()
    problem.predict([problem.space.template])  # warm caches (fibre tables, muscle parameters)
    warm = time.perf_counter() - t
    t = time.perf_counter()
    problem.predict([problem.space.template])
    eval_s = time.perf_counter() - t

    short, short_s = timed_search(problem, args.seconds, seed=1)
    ref, ref_s = timed_search(problem, args.seconds * args.factor, seed=2)
    directions = problem.directions
    worst = np.array([o.worst for o in problem.objectives])
    scale = np.array([100.0, 10.0, 100.0])
    hv_short = hypervolume(short.front(), directions, worst, scale)
    hv_ref = hypervolume(np.vstack([ref.front(), short.front()]), directions, worst, scale)
    row = {"bench": "optimise", "emsim": __version__, "cpu_count": os.cpu_count(), "machine": platform.machine(),
           "python": sys.version.split()[0], "session_s": args.session_s, "n_variables": len(problem.space.names),
           "n_objectives": len(directions), "real_eval_s": eval_s, "first_eval_s": warm,
           "search_s": short_s, "search_evaluations": short.n_complete, "search_feasible": short.n_feasible,
           "front_size": len(short.pareto), "reference_s": ref_s, "reference_evaluations": ref.n_complete,
           "hypervolume_ratio": hv_short / hv_ref if hv_ref > 0 else None}
    if not args.skip_dask:
        dask, dask_s = timed_search(problem, args.seconds, seed=1, workers=2)
        row.update(dask_search_s=dask_s, dask_evaluations=dask.n_complete,
                   dask_speedup_evals_per_s=(dask.n_complete / dask_s) / (short.n_complete / short_s),
                   dask_hypervolume_ratio=hypervolume(dask.front(), directions, worst, scale) / hv_ref
                   if hv_ref > 0 else None)
    row.update(overhead(args.repeats))
    print(json.dumps(row, indent=2))
    out = ROOT / "benchmarks" / "results" / "optimise.jsonl"
    out.parent.mkdir(exist_ok=True)
    with out.open("a") as fh:
        fh.write(json.dumps(row) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
