"""Search settings compared at fixed evaluation counts (not wall time).

The issue's target is a front after a 60 s search whose hypervolume is >= 95 % of a run 10x
longer. On a shared machine wall time is noise, so this script compares search settings by
the number of evaluations instead: each setting runs ``--ref`` evaluations (default 18 000,
what the 10x reference reached on the quiet 2-core machine) from ``--seeds`` seeds, and the
hypervolume of its front after the first ``--short`` evaluations (default 3 552, the quiet
60 s search) and at a few other counts is reported

* against the same setting's reference: the prefix of seed ``i``'s run against the whole run
  of seed ``i+1`` (the benchmark's pairing: the reference is another seed), median over seeds;
* against the best front known: the union of every run's final front in this invocation.

Problem, objectives, scale and reference point are those of ``bench_optimise.py``.
Run: ``python benchmarks/bench_optimise_settings.py [--settings nsga2-p16 nsga2-p32-lhs]
[--evaluator surrogate] [--cache DIR]``; one JSON line per setting is appended to
``benchmarks/results/optimise.jsonl`` (benchmark "optimise settings at fixed evaluations").
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from _report import machine, publish
from bench_optimise import _problem, hypervolume

#: Named settings: optimise() keywords. The population of the genetic methods is the batch size.
SETTINGS = {
    "nsga2-p16": {"method": "nsga2", "batch_size": 16},
    "nsga2-p16-lhs": {"method": "nsga2", "batch_size": 16, "settings": {"initial": "lhs"}},
    "nsga2-p32-lhs": {"method": "nsga2", "batch_size": 32, "settings": {"initial": "lhs"}},
    "nsga2-p64-lhs": {"method": "nsga2", "batch_size": 64, "settings": {"initial": "lhs"}},
    "nsga2-p32-sbx-lhs": {"method": "nsga2", "batch_size": 32,
                          "settings": {"initial": "lhs", "crossover": "sbx", "mutation": "polynomial"}},
    "nsga3-p32-lhs": {"method": "nsga3", "batch_size": 32, "settings": {"initial": "lhs"}},
    "random": {"method": "random", "batch_size": 16},
}
SCALE = np.array([100.0, 10.0, 100.0])


def _run(name: str, seed: int, budget: int, session_s: float, surrogate: bool, cache: str | None = None):
    """One search of ``budget`` evaluations: objective values in evaluation order, feasibility, times.

    With ``cache`` (a folder) the run is stored there and read back by a later invocation with
    the same arguments instead of being run again (long reference runs survive an interruption).
    """
    path = Path(cache) / f"{name}-{seed}-{budget}-{session_s:g}-{'surrogate' if surrogate else 'real'}.npz" \
        if cache else None
    if path is not None and path.exists():
        d = np.load(path)
        return name, seed, d["values"], d["feasible"], float(d["wall"]), float(d["cpu"])
    from emsim.optimise import optimise
    from emsim.optimise.testing import surrogate_evaluate_batch

    problem = _problem(session_s, surrogate_evaluate_batch if surrogate else None)
    if not surrogate:
        problem.predict([problem.space.template])  # warm caches outside the timing
    t, c = time.perf_counter(), time.process_time()
    result = optimise(problem, budget=budget, seed=seed, predict=False, **SETTINGS[name])
    wall, cpu = time.perf_counter() - t, time.process_time() - c
    trials = sorted(result.study.get_trials(deepcopy=False), key=lambda tr: tr.number)
    values = np.array([tr.values for tr in trials], dtype=float)
    feasible = np.array([all(v <= 0 for v in tr.constraints.values()) for tr in trials])
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        np.savez(path, values=values, feasible=feasible, wall=wall, cpu=cpu)
    return name, seed, values, feasible, wall, cpu


def _front(values, feasible, n):
    """Feasible points among the first ``n`` evaluations (dominated ones do not change the HV)."""
    return values[:n][feasible[:n]]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--settings", nargs="+", default=list(SETTINGS), choices=list(SETTINGS))
    ap.add_argument("--short", type=int, default=3552, help="evaluations of the short search (default 3552)")
    ap.add_argument("--ref", type=int, default=18000, help="evaluations of the reference (default 18000)")
    ap.add_argument("--checkpoints", type=int, nargs="*", default=[500, 1000, 2000, 7000],
                    help="further evaluation counts to report the HV at")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=os.cpu_count() or 1, help="searches run in parallel")
    ap.add_argument("--session-s", type=float, default=60.0)
    ap.add_argument("--evaluator", choices=("real", "surrogate"), default="real")
    ap.add_argument("--cache", help="folder keeping each run's evaluations (reused when run again)")
    args = ap.parse_args(argv)
    if args.seeds < 2:
        ap.error("--seeds must be >= 2 (the reference is another seed's run)")

    problem = _problem(args.session_s)
    directions, worst = problem.directions, np.array([o.worst for o in problem.objectives])
    jobs = [(name, 1000 + s, args.ref, args.session_s, args.evaluator == "surrogate", args.cache)
            for name in args.settings for s in range(args.seeds)]
    runs: dict = {}
    with ProcessPoolExecutor(max_workers=args.jobs) as pool:
        for name, seed, values, feasible, wall, cpu in pool.map(_run, *zip(*jobs)):
            runs.setdefault(name, []).append((seed, values, feasible, wall, cpu))
            print(f"{name} seed {seed}: {len(values)} evaluations, {wall:.0f} s wall, {cpu:.0f} s CPU", flush=True)

    def hv(points):
        return hypervolume(points, directions, worst, SCALE)

    best = hv(np.vstack([_front(v, f, len(v)) for rs in runs.values() for _, v, f, _, _ in rs]))
    counts = sorted({args.short, args.ref, *[c for c in args.checkpoints if c < args.ref]})
    for name, rs in runs.items():
        k = len(rs)
        ratios = []
        for i in range(k):
            _, v, f, _, _ = rs[i]
            short = _front(v, f, args.short)
            _, rv, rf, _, _ = rs[(i + 1) % k]
            ref = hv(np.vstack([_front(rv, rf, args.ref), short]))
            ratios.append(hv(short) / ref if ref > 0 else None)
        curve = {str(c): statistics.median(hv(_front(v, f, c)) / best for _, v, f, _, _ in rs)
                 for c in counts}
        row = {"benchmark": "optimise settings at fixed evaluations", **machine(), "setting": name,
               "options": SETTINGS[name], "evaluator": args.evaluator, "session_s": args.session_s,
               "short_evaluations": args.short, "reference_evaluations": args.ref, "seeds": [s for s, *_ in rs],
               "hypervolume_ratio_median": statistics.median(r for r in ratios if r is not None),
               "hypervolume_ratios": ratios, "hv_vs_best_known_median_at": curve,
               "wall_s_per_run": [w for *_, w, _ in rs], "cpu_s_per_run": [c for *_, c in rs],
               "load_average": os.getloadavg()[0]}
        publish("optimise", row)
    return 0


if __name__ == "__main__":
    sys.exit(main())
