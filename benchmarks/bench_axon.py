"""Brian2 fibre-model benchmark: network build and run time, and how they scale with fibre count.

For each fibre count N (motor terminals, one 100 µs monophasic pulse, 21 nodes each) it times
the network build (cold = first build in this process, which includes any Cython compilation
not yet in the on-disk cache), one simulation run (one bisection step) and a full threshold
search, plus the full tabulation time recorded in ``models/fibres/thresholds.json``.
``--model mrg`` times the MRG 2002 double cable (221 compartments per fibre; the build includes
settling each new diameter to rest, so the diameters are drawn once and reused).
Run: ``python benchmarks/bench_axon.py [--counts 10,50,200] [--repeats 3] [--cold] [--model node_cable|mrg]``;
results are appended to ``benchmarks/results/axon.jsonl``.
"""

from __future__ import annotations

import argparse
import os
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
    ap.add_argument("--model", default="node_cable", choices=axon.MODELS)
    args = ap.parse_args(argv)
    if args.cold:
        import tempfile

        import brian2
        brian2.prefs.codegen.runtime.cython.cache_dir = tempfile.mkdtemp(prefix="emsim-bench-cython-")
    counts = [int(c) for c in args.counts.split(",")]
    model = args.model
    dt = axon.sample_interval("motor", model)
    samples = [axon.waveform_samples(axon.monophasic(100), dt)]
    rows = {}
    t0 = time.perf_counter()
    axon.fibre_network("motor", np.array([5e-6]), samples, model=model)
    first_build = time.perf_counter() - t0
    for n in counts:
        d = np.exp(np.random.default_rng(0).uniform(np.log(3e-6), np.log(7e-6), n))
        builds, runs, run_cpu = [], [], []
        t0 = time.perf_counter()
        axon.fibre_network("motor", d, samples, model=model)
        first = time.perf_counter() - t0   # includes settling new diameters (double cable)
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            net = axon.fibre_network("motor", d, samples, model=model)
            builds.append(time.perf_counter() - t0)
            t0, c0 = time.perf_counter(), time.process_time()
            net.run(np.full(n, 10.0))
            runs.append(time.perf_counter() - t0)
            run_cpu.append(time.process_time() - c0)
        t0 = time.perf_counter()
        axon.thresholds("motor", d, [axon.monophasic(100)], rtol=0.005, model=model)
        search = time.perf_counter() - t0
        comps = net.cab.shape[1] if model == "mrg" else 21
        rows[str(n)] = {"n_compartments": n * comps, "first_build_s": first, "build_s": statistics.median(builds),
                        "run_s": statistics.median(runs), "run_cpu_s": statistics.median(run_cpu),
                        "simulated_ms": 1e3 * net.duration_s, "threshold_search_s": search,
                        "run_us_per_compartment_step": 1e6 * statistics.median(runs) / (n * comps * net.duration_s / dt)}
    meta = load_table().meta
    label = ("MRG double cable (motor, 21 nodes, 221 compartments, backward Euler)" if model == "mrg"
             else "node-only cable (motor, 21 nodes, explicit Synapses coupling)")
    publish("axon", {"benchmark": f"Brian2 fibre networks: {label}, dt {dt * 1e6:g} us, cython", **machine(),
                     "model": model, "load_avg_1min": os.getloadavg()[0],
                     "cython_cache": "empty (cold)" if args.cold else "warm",
                     "first_build_s_incl_compile_if_cold": first_build, "by_fibre_count": rows,
                     "tabulation_s_per_class": meta.get("timing_s"),
                     "tabulation_total_s": sum(meta.get("timing_s", {}).values())})
    return 0


if __name__ == "__main__":
    sys.exit(main())
