"""Study-runner benchmark: the cohort stage of ``studies/lumbar_design.py`` on N virtual patients.

The issue's performance section (the 1 000-patient cohort: one core, a 2-worker local Dask
cluster, scaling per added worker, bounded memory) measured on a sample of the cohort and
projected to 1 000 patients (the cost is linear in patients: one batch per patient, nothing
shared between patients). The study is the cohort stage as the full study runs it: ``--programs``
Latin-hypercube designs of the full study (12, the stage's default front size) plus the WB-EMS
and home-routine references, each evaluated over ``--window-s`` (default 1 200 s, the whole
20-min session), one patient's programs per batch.

Each mode runs in a fresh subprocess and output folder (nothing resumed), with one BLAS/OpenMP
thread per process; every process loads the numba kernels (``muscle.warm_up``, reported as
``warm_up_s``; a compile after a source change) before the clock starts:

* ``local``: in-process, the subprocess pinned to one CPU (``os.sched_setaffinity``): one core.
* ``dask:K``: a local cluster of K single-threaded worker processes (``emsim._dask.local_cluster``,
  as ``--workers K``); wall time with and without starting the cluster, the workers' CPU time
  and peak RSS.

Memory: the peak RSS during the timed run (``VmHWM`` reset before it) of the driver and of the
largest Dask worker at N patients and at ``--memory-patients`` (default N/4); results are streamed to disk batch by
batch, at most 2 batches per worker are in flight and the field cache is byte-budgeted and
cleared between cohort patients, so neither should grow with N.

Run: ``python benchmarks/bench_study.py [--patients 100] [--modes local,dask:1,dask:2]
[--window-s 1200] [--programs 12] [--repeats 1] [--memory-patients 25]``; results are appended
to ``benchmarks/results/study.jsonl``. Time: about (2.2·N + 0.6·memory-patients) CPU-seconds
plus ~15 s start-up per run; ``--patients 200`` takes ~12 min on a quiet 2-core machine.
"""

from __future__ import annotations

import argparse
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


def cohort_study(n_patients: int, window_s: float, n_programs: int):
    """The cohort stage on the first ``n_programs`` designs of the full study plus its references."""
    import inspect

    from emsim.study import load_study

    full = load_study("lumbar_design", options={"window_s": window_s})
    module = inspect.getmodule(full.evaluate)
    designs = [d for d in full.space.parameters[0].values if d not in module.REFERENCES and d not in module.WHOLE]
    return module.cohort_stage(designs[:n_programs] + list(module.REFERENCES), n_patients, window_s, seed=11)


def _usage() -> tuple[float, float]:
    """(peak RSS in MB since the last :func:`_reset_peak`, CPU seconds) of the calling process."""
    ru = resource.getrusage(resource.RUSAGE_SELF)
    peak = ru.ru_maxrss / 1024.0
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            peak = next(int(line.split()[1]) for line in fh if line.startswith("VmHWM:")) / 1024.0
    except (OSError, StopIteration, ValueError):
        pass
    return peak, ru.ru_utime + ru.ru_stime


def _reset_peak() -> None:
    """Start the peak-RSS count afresh (Linux ``clear_refs`` 5), so that a numba compile or the
    imports before the timed run do not count as the study's memory."""
    try:
        with open("/proc/self/clear_refs", "w", encoding="ascii") as fh:
            fh.write("5")
    except OSError:
        pass  # elsewhere the lifetime peak (ru_maxrss) is reported


def _warm() -> float:
    """Load (or, after a source change, compile) the numba kernels: not part of the study's cost."""
    from emsim.physiology.muscle import warm_up

    return warm_up()


def one(mode: str, n_patients: int, window_s: float, n_programs: int) -> dict:
    """One measurement in this (fresh) process."""
    from emsim.study import run

    study = cohort_study(n_patients, window_s, n_programs)
    out = {"mode": mode, "patients": n_patients}
    with tempfile.TemporaryDirectory() as folder:
        if mode == "local":
            os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
            out["warm_up_s"] = _warm()
            _reset_peak()
            cpu0 = _usage()[1]
            t0 = time.perf_counter()
            res = run(study, folder, progress=False)
            out.update(wall_s=time.perf_counter() - t0, cpu_s=_usage()[1] - cpu0)
        else:
            from distributed import Client

            from emsim._dask import local_cluster

            t0 = time.perf_counter()
            cluster = local_cluster(int(mode.split(":")[1]), dashboard_address=":0")
            client = Client(cluster)
            t1 = time.perf_counter()
            out["warm_up_s"] = max(client.run(_warm).values())
            client.run(_reset_peak)
            _reset_peak()
            cpu0 = {addr: c for addr, (_, c) in client.run(_usage).items()}
            t2 = time.perf_counter()
            res = run(study, folder, scheduler=cluster.scheduler_address, progress=False)
            t3 = time.perf_counter()
            workers = client.run(_usage)
            client.close()
            cluster.close()
            out.update(wall_s=t3 - t2 + (t1 - t0), wall_run_s=t3 - t2, cluster_start_s=t1 - t0,
                       cpu_s=sum(c - cpu0[addr] for addr, (_, c) in workers.items()),
                       worker_peak_rss_mb=max(r for r, _ in workers.values()))
    out.update(rows=res.n_rows, batches=res.batches_run, driver_peak_rss_mb=_usage()[0])
    return out


# One thread per process everywhere: Dask workers set these themselves, and without them the
# "one core" local run would borrow the second core through threaded BLAS / FFT.
ONE_THREAD = {k: "1" for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")}


def measure(mode: str, n_patients: int, args) -> dict:
    cmd = [sys.executable, __file__, "--one", mode, "--patients", str(n_patients), "--window-s",
           str(args.window_s), "--programs", str(args.programs)]
    done = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
    if done.returncode != 0:
        raise SystemExit(f"bench_study: {mode} with {n_patients} patients failed:\n{done.stderr[-3000:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps(result), file=sys.stderr)  # progress: one line per finished run
    return result


def _modes(text: str) -> list[str]:
    modes = [m.strip() for m in text.split(",") if m.strip()]
    for m in modes:
        if m != "local" and not (m.startswith("dask:") and m[5:].isdigit() and int(m[5:]) >= 1):
            raise SystemExit(f"bench_study: unknown mode {m!r} (allowed: local, dask:K with K >= 1)")
    return modes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--patients", type=int, default=100, help="virtual patients per timed run")
    ap.add_argument("--modes", default="local,dask:1,dask:2", help="comma-separated: local, dask:K")
    ap.add_argument("--window-s", type=float, default=1200.0, help="evaluated session window per program, s")
    ap.add_argument("--programs", type=int, default=12, help="sampled designs (plus the 2 references)")
    ap.add_argument("--repeats", type=int, default=1)
    ap.add_argument("--memory-patients", type=int, default=None,
                    help="smaller cohort for the memory comparison (default patients/4; 0: skip)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.one:
        print(json.dumps(one(args.one, args.patients, args.window_s, args.programs)))
        return 0
    modes = _modes(args.modes)
    load_before = os.getloadavg()[0]  # the cores may be shared: a loaded machine caps the speed-up
    runs = {mode: [measure(mode, args.patients, args) for _ in range(args.repeats)] for mode in modes}
    small = max(4, args.patients // 4) if args.memory_patients is None else args.memory_patients
    memory_runs = {mode: measure(mode, small, args) for mode in modes if small and mode != "dask:1"} \
        if small and small < args.patients else {}
    load_after = os.getloadavg()[0]
    med = {mode: {k: statistics.median(r[k] for r in rs) for k in rs[0] if isinstance(rs[0][k], (int, float))}
           for mode, rs in runs.items()}
    wall = {m: v["wall_s"] for m, v in med.items()}
    dask = sorted((int(m[5:]), m) for m in modes if m.startswith("dask:"))
    scaling = {f"{a}->{b} workers": med[ma].get("wall_run_s", wall[ma]) / med[mb].get("wall_run_s", wall[mb])
               for (a, ma), (b, mb) in zip(dask, dask[1:])}
    rows = runs[modes[0]][0]["rows"]
    memory = {f"{m}@{args.patients}": {k: med[m][k] for k in ("driver_peak_rss_mb", "worker_peak_rss_mb") if k in med[m]}
              for m in modes}
    memory.update({f"{m}@{small}": {k: r[k] for k in ("driver_peak_rss_mb", "worker_peak_rss_mb") if k in r}
                   for m, r in memory_runs.items()})
    publish("study", {
        "benchmark": f"lumbar_design cohort stage: {rows // args.patients} programs x {args.patients} patients, "
                     f"{args.window_s:g} s window", **machine(), "repeats": args.repeats,
        "patients": args.patients, "rows": rows, "wall_s": wall,
        "wall_run_s": {m: v["wall_run_s"] for m, v in med.items() if "wall_run_s" in v},
        "cpu_s": {m: v["cpu_s"] for m, v in med.items()},
        "per_patient_s": {m: w / args.patients for m, w in wall.items()},
        "speedup_vs_local": {m: wall["local"] / w for m, w in wall.items()} if "local" in wall else {},
        "scaling_per_added_worker": scaling,
        "projected_1000_patients_min": {m: 1000 * w / args.patients / 60 for m, w in wall.items()},
        "peak_rss_mb": memory, "load_avg_1min": {"before": load_before, "after": load_after},
        "note": "local = one process pinned to one CPU; dask:k = LocalCluster of k single-threaded worker processes "
                "without the nanny's MALLOC_TRIM_THRESHOLD_, one muscle-kernel thread each; kernels loaded before "
                "timing; wall_s includes starting the cluster, wall_run_s does not; cpu_s is the driver's (local) or the workers' (dask) CPU time; projections are linear "
                "in patients from wall_s",
    })
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
