"""Brian2 fibre-model benchmark: network build and run time, and how they scale with fibre count.

For each fibre count N (motor terminals, one 100 µs monophasic pulse, 21 nodes each) it times
the network build (cold = first build in this process, which includes any Cython compilation
not yet in the on-disk cache), one simulation run (one bisection step) and a full threshold
search, plus the full tabulation time recorded in ``models/fibres/thresholds.json``.
Run: ``python benchmarks/bench_axon.py [--counts 10,50,200] [--repeats 3] [--cold]``; results are appended
to ``benchmarks/results/axon.jsonl``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from _report import machine, publish
from emsim.physiology import axon
from emsim.physiology.fibre_tables import load_table


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--counts", default="10,50,200")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--cold", action="store_true", help="use an empty Cython cache (measures compilation)")
    args = ap.parse_args(argv)
    if args.cold:
        import tempfile

        import brian2
        brian2.prefs.codegen.runtime.cython.cache_dir = tempfile.mkdtemp(prefix="emsim-bench-cython-")
    counts = [int(c) for c in args.counts.split(",")]
    dt = axon.DT["mrg_node"]
    waves = axon._wave_matrix([axon.waveform_samples(axon.monophasic(100), dt)], dt)
    rows = {}
    t0 = time.perf_counter()
    axon._network("motor", np.array([5e-6]), [0], waves)
    first_build = time.perf_counter() - t0
    for n in counts:
        d = np.exp(np.random.default_rng(0).uniform(np.log(3e-6), np.log(7e-6), n))
        builds, runs, searches = [], [], []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            net = axon._network("motor", d, np.zeros(n, int), waves)
            builds.append(time.perf_counter() - t0)
            t0 = time.perf_counter()
            net.run(np.full(n, 10.0))
            runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        axon.thresholds("motor", d, [axon.monophasic(100)], rtol=0.005)
        searches.append(time.perf_counter() - t0)
        rows[str(n)] = {"n_rows": n * 21, "build_s": statistics.median(builds), "run_s": statistics.median(runs),
                        "simulated_ms": 1e3 * net.duration_s, "threshold_search_s": searches[0],
                        "run_us_per_row_step": 1e6 * statistics.median(runs) / (n * 21 * net.duration_s / dt)}
    meta = load_table().meta
    publish("axon", {"benchmark": "Brian2 fibre networks (motor, 21 nodes, dt 1 us, cython)", **machine(),
                     "cython_cache": "empty (cold)" if args.cold else "warm",
                     "first_build_s_incl_compile_if_cold": first_build, "by_fibre_count": rows,
                     "tabulation_s_per_class": meta.get("timing_s"),
                     "tabulation_total_s": sum(meta.get("timing_s", {}).values())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
