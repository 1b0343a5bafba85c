"""Study-runner benchmark: the cohort stage of ``studies/lumbar_design.py`` on N virtual patients.

Times the same cohort study (programs × patients, one patient's programs per batch) run
locally in one process, on a local Dask cluster of 1 worker and of 2 workers (scaling per added
worker = time with k workers / time with k + 1), each in a fresh subprocess and a fresh output
folder (nothing resumed, no warm caches), every process limited to one BLAS/OpenMP thread.
Memory: the peak RSS of the driver process
(``resource.getrusage``) for two cohort sizes — with results streamed to disk batch by batch
and at most 2 batches per worker in flight, the Dask driver's peak should not grow with the
cohort. Run: ``python benchmarks/bench_study.py [--patients 100] [--repeats 1]``; results are
appended to ``benchmarks/results/study.jsonl``.
"""

from __future__ import annotations

import argparse
import inspect
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _report import machine, publish  # noqa: E402

DESIGNS = ("50 Hz 300 µs 45 mA 10/20 s r2",)  # the template's settings at 45 mA; plus the two references


def cohort_study(n_patients: int, window_s: float):
    from emsim.study import load_study

    module = inspect.getmodule(load_study("lumbar_design", quick=True).evaluate)
    return module.cohort_stage(list(DESIGNS) + list(module.REFERENCES), n_patients, window_s, seed=11)


def one(mode: str, n_patients: int, window_s: float) -> dict:
    """One measurement in this (fresh) process: wall time, rows, peak RSS of this process."""
    from emsim.study import run

    study = cohort_study(n_patients, window_s)
    workers = None if mode == "local" else int(mode.split(":")[1])
    with tempfile.TemporaryDirectory() as out:
        t0 = time.perf_counter()
        res = run(study, out, workers=workers, progress=False)
        wall = time.perf_counter() - t0
    return {"mode": mode, "patients": n_patients, "rows": res.n_rows, "batches": res.batches_run, "wall_s": wall,
            "driver_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0}


# One thread per process everywhere: Dask workers set these themselves, and without them the
# "one core" local run would borrow the second core through threaded BLAS / FFT.
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def measure(mode: str, n_patients: int, window_s: float) -> dict:
    cmd = [sys.executable, __file__, "--one", mode, "--patients", str(n_patients), "--window-s", str(window_s)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, **ONE_THREAD})
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--patients", type=int, default=100)
    ap.add_argument("--window-s", type=float, default=30.0, help="evaluated session window per program, s")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.patients, args.window_s)))
        return 0
    load_before = os.getloadavg()[0]  # the cores are shared: a loaded machine caps the 2-worker speed-up
    runs = {mode: [measure(mode, args.patients, args.window_s) for _ in range(args.repeats)]
            for mode in ("local", "dask:1", "dask:2")}
    load_after = os.getloadavg()[0]
    wall = {mode: statistics.median(r["wall_s"] for r in rs) for mode, rs in runs.items()}
    small = max(10, args.patients // 4)
    memory = {f"{mode}@{n}": measure(mode, n, args.window_s)["driver_peak_rss_mb"]
              for mode in ("local", "dask:2") for n in (small, args.patients)}
    rows = runs["local"][0]["rows"]
    publish("study", {
        "benchmark": f"lumbar_design cohort stage: {rows // args.patients} programs x {args.patients} patients, "
                     f"{args.window_s:g} s window", **machine(), "repeats": args.repeats,
        "patients": args.patients, "rows": rows,
        "wall_s": wall, "per_patient_s": {m: w / args.patients for m, w in wall.items()},
        "speedup_vs_local": {m: wall["local"] / w for m, w in wall.items()},
        "scaling_1_to_2_workers": wall["dask:1"] / wall["dask:2"],
        "projected_1000_patients_h": {m: 1000 * w / args.patients / 3600 for m, w in wall.items()},
        "driver_peak_rss_mb": memory, "load_avg_1min": {"before": load_before, "after": load_after},
        "note": "2 cores shared with other work; dask:k = LocalCluster of k single-threaded worker processes "
                "(without the nanny's MALLOC_TRIM_THRESHOLD_ since this entry's date); wall times include "
                "starting the cluster",
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
