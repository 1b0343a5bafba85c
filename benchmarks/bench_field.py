"""Field benchmark: one solve, evaluation at N points, and a batch of 1 000 electrode configurations.

Set-up: average-build lumbar erector spinae layers (models/sites/layers.json), 5 x 9 cm
rectangular pair 4 cm apart along the fibres, default hydrogel contact, default grid.

* ``solve``: median wall time of :func:`emsim.physiology.field.solve` — cold (kernel cache
  cleared) and warm (kernels of this layer stack and grid cached), for the default hydrogel
  contact and for ``Gel.uniform()``.
* ``evaluate``: E-field at N points on straight fibres at 10 depths (exact planes), and at N
  points with random depths (interpolated planes): first call (planes computed) and repeat
  call (planes cached).
* ``batch``: 1 000 random pairs from a catalogue of 6 footprints x spacing 2–8 cm x two
  orientations, ``solve_batch(..., superpose=True)`` then E along the fibres at 200 motor-terminal
  points per configuration; plus the exact path (``superpose=False``) on 20 configurations.

Run: ``python benchmarks/bench_field.py [--repeats N]``; appends to
``benchmarks/results/field.jsonl``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time

import numpy as np

from _report import machine, publish  # benchmarks/_report.py (scripts run from this folder)
from emsim.physiology import field as fld
from emsim.physiology.field import Electrodes, Gel, Layers, solve, solve_batch


def timed(fn, repeats):
    times = []
    out = None
    for _ in range(repeats):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def catalogue():
    shapes = [dict(shape="rectangle", length_m=0.04, width_m=0.04), dict(shape="rectangle", length_m=0.05, width_m=0.05),
              dict(shape="rectangle", length_m=0.09, width_m=0.05), dict(shape="rectangle", length_m=0.10, width_m=0.05),
              dict(shape="circle", diameter_m=0.032), dict(shape="circle", diameter_m=0.05)]
    return shapes


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    layers = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.04)
    result = {"benchmark": "field", **machine(), "repeats": args.repeats}

    # ---- one solve
    def cold(gel):
        fld._kernel.cache_clear()
        return solve(layers, el, gel=gel, cache=False)
    for name, gel in (("hydrogel", Gel.load()), ("uniform", Gel.uniform())):
        t_cold, sol = timed(lambda: cold(gel), args.repeats)
        t_warm, _ = timed(lambda: solve(layers, el, gel=gel, cache=False), args.repeats)
        solve(layers, el, gel=gel)
        t_hit, _ = timed(lambda: solve(layers, el, gel=gel), args.repeats)
        result[f"solve_{name}_cache_hit_s"] = t_hit
        result[f"solve_{name}_cold_s"] = t_cold
        result[f"solve_{name}_warm_s"] = t_warm
        result[f"solve_{name}_cg_iterations"] = sol.cg_iterations
    result["grid_n"] = sol.n
    result["grid_dx_m"] = sol.dx

    # ---- evaluation at N points
    top = layers.top_of("muscle")
    rng = np.random.default_rng(0)
    evals = {}
    for n_pts in (1_000, 10_000, 100_000):
        per_depth = n_pts // 10
        x = np.tile(np.linspace(-0.12, 0.12, per_depth), 10)
        z = np.repeat(top + np.linspace(0.002, 0.03, 10), per_depth)
        y = np.zeros_like(x)
        fresh = solve(layers, el, cache=False)
        t0 = time.perf_counter(); fresh.electric_field(x, y, z); first = time.perf_counter() - t0
        again, _ = timed(lambda: fresh.electric_field(x, y, z), args.repeats)
        xr, yr = rng.uniform(-0.12, 0.12, n_pts), rng.uniform(-0.03, 0.03, n_pts)
        zr = top + rng.uniform(0.0, 0.03, n_pts)
        fresh = solve(layers, el, cache=False)
        t0 = time.perf_counter(); fresh.electric_field(xr, yr, zr); first_r = time.perf_counter() - t0
        again_r, _ = timed(lambda: fresh.electric_field(xr, yr, zr), args.repeats)
        evals[str(n_pts)] = {"fibres_10_depths_first_s": first, "fibres_10_depths_cached_s": again,
                             "random_depths_first_s": first_r, "random_depths_cached_s": again_r}
    result["evaluate_E"] = evals
    sol = solve(layers, el)
    t_plane, _ = timed(lambda: sol._raw(0, top + 0.01, "dx", 2), args.repeats)
    result["one_fine_plane_s"] = t_plane

    # ---- batch of 1000 configurations
    shapes = catalogue()
    configs = []
    for _ in range(1000):
        shp = shapes[rng.integers(len(shapes))]
        configs.append(Electrodes.pair(spacing_m=float(rng.uniform(0.02, 0.08)),
                                       orientation=("along_fibres", "across_fibres")[rng.integers(2)], **shp))
    xm = np.tile(np.linspace(-0.06, 0.06, 20), 10)
    zm = np.repeat(top + np.linspace(0.002, 0.03, 10), 20)
    ym = np.zeros_like(xm)
    for name, gel in (("uniform", Gel.uniform()), ("hydrogel", Gel.load())):
        t0 = time.perf_counter()
        batch = solve_batch(layers, configs, gel=gel)
        t_build = time.perf_counter() - t0
        t0 = time.perf_counter()
        e = batch.electric_field(xm, ym, zm)[..., 0]
        t_eval = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch.electric_field(xm, ym, zm)
        t_eval2 = time.perf_counter() - t0
        t0 = time.perf_counter()
        batch.electric_field_along(xm, ym, zm, "x")
        t_eval3 = time.perf_counter() - t0
        t0 = time.perf_counter()
        again = solve_batch(layers, configs, gel=gel)  # monopoles come from the cache
        again.electric_field_along(xm, ym, zm, "x")
        t_again = time.perf_counter() - t0
        result[f"batch1000_{name}"] = {"build_s": t_build, "evaluate_200_points_first_s": t_eval,
                                       "evaluate_200_points_cached_s": t_eval2,
                                       "evaluate_Ex_only_cached_s": t_eval3,
                                       "second_batch_call_build_plus_Ex_s": t_again,
                                       "distinct_footprints": len({(c.electrodes[0].shape, c.electrodes[0].length_m,
                                                                    c.electrodes[0].diameter_m, c.electrodes[0].angle_rad)
                                                                   for c in configs}),
                                       "max_abs_E_v_per_m_per_a": float(np.abs(e).max())}
    t0 = time.perf_counter()
    exact = solve_batch(layers, configs[:20], superpose=False)
    exact.electric_field(xm, ym, zm)
    result["exact_20_configs_s"] = time.perf_counter() - t0
    publish("field", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
