"""Strength–duration of passing double-cable axons vs electrode distance (issue 4, check S1).

Computes monophasic (and with ``--biphasic`` symmetric biphasic) strength–duration curves of
the MRG 2002 and Gaines 2018 motor/sensory cables and of the shipped node cable (motor, Aβ)
for a straight axon passing under a point source (3, 5, 10, 20 mm; 20 mm isotropic ≈ 10 mm in
muscle with σ_l/σ_t = 4, see :mod:`emsim.physiology._axon_geometry`) and under a 5 mm-radius
surface disc (3 and 5 mm deep), fits the Weiss law over 50–1000 µs, and reports chronaxie,
rheobase and the sensory/motor chronaxie ratio of the Gaines and node-cable pairs against
Mogyoros 1996 (motor 459 ± 126 µs, ratio 1.45). Discussion: docs/literature/axon_models.md §6.

Run: ``python benchmarks/axon_geometry_sd.py [--quick] [--biphasic] [--models ...]``; appends
one JSON line to ``benchmarks/results/axon_geometry.jsonl``. One simulation process, the grid
run sequentially: ~15 min for the three double cables and ~3 min for the node-cable pair on 2
shared cores (``--quick``: ~4 min).
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _report import machine, publish
from emsim.physiology import _axon_geometry as g
from emsim.physiology.axon import monophasic, symmetric
from emsim.physiology.fibre_tables import weiss_fit

PWS_US = (50, 100, 200, 500, 1000)
MODELS = ("gaines_motor", "gaines_sensory", "mrg", "node_cable_motor", "node_cable_abeta")
PAIRS = {"gaines": ("gaines_sensory", "gaines_motor"), "node_cable": ("node_cable_abeta", "node_cable_motor")}


def run_model(model, diam, src, waves, rtol):
    """Thresholds (A) of ``model``: a double cable, or the shipped node cable of a class."""
    if model.startswith("node_cable_"):
        return g.node_cable_thresholds(model.removeprefix("node_cable_"), diam, src, waves, rtol=rtol)
    return g.thresholds(model, diam, src, waves, rtol=rtol)


def sources(quick: bool):
    point = (3e-3, 5e-3, 10e-3) if quick else (3e-3, 5e-3, 10e-3, 20e-3)
    out = {f"point {h * 1e3:g} mm": g.point_source(h) for h in point}
    if not quick:
        out.update({f"disc r5 mm, {h * 1e3:g} mm deep": g.disc_source(h, 5e-3) for h in (3e-3, 5e-3)})
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--quick", action="store_true", help="one diameter, point sources 3/5/10 mm")
    ap.add_argument("--biphasic", action="store_true", help="symmetric biphasic (no gap) instead of monophasic")
    ap.add_argument("--rtol", type=float, default=0.01)
    ap.add_argument("--models", nargs="+", choices=MODELS, default=MODELS)
    args = ap.parse_args(argv)
    diam = (10e-6,) if args.quick else (10e-6, 12e-6)
    src = sources(args.quick)
    shape = symmetric if args.biphasic else monophasic
    res, wall = {}, {}
    for model in args.models:
        t0 = time.perf_counter()
        th = run_model(model, diam, list(src.values()), [shape(p) for p in PWS_US], args.rtol)
        wall[model] = time.perf_counter() - t0
        res[model] = {}
        for j, name in enumerate(src):
            for i, d in enumerate(diam):
                rh, c = weiss_fit(np.asarray(PWS_US) * 1e-6, th[i, j])
                res[model][f"{name}, {d * 1e6:g} um"] = {"threshold_ma": [round(float(x) * 1e3, 4) for x in th[i, j]],
                                                         "rheobase_ma": round(rh * 1e3, 4),
                                                         "chronaxie_us": round(c * 1e6, 1)}
        print(model, f"{wall[model]:.0f} s", flush=True)
    ratio = {pair: {k: round(res[sens][k]["chronaxie_us"] / res[mot][k]["chronaxie_us"], 3) for k in res[mot]}
             for pair, (sens, mot) in PAIRS.items() if sens in res and mot in res}
    publish("axon_geometry", {"benchmark": "passing-axon strength-duration vs geometry", **machine(),
                              "waveform": "symmetric_biphasic" if args.biphasic else "monophasic",
                              "pulse_widths_us": PWS_US, "sigma_s_per_m": g.SIGMA_S_PER_M, "rtol": args.rtol,
                              "results": res, "sensory_motor_chronaxie_ratio": ratio,
                              "wall_s_per_model": {k: round(v, 1) for k, v in wall.items()}})
    return 0


if __name__ == "__main__":
    sys.exit(main())
