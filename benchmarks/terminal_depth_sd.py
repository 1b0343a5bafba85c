"""Chronaxie of the fast path's motor terminals vs depth under R2's electrodes, and R2 itself (issue 4).

R2 (Ding et al. 2007 pulse-width recruitment) is a strict xfail. One proposed cause: recruit gives
every unit the uniform-field strength–duration curve of its diameter, whereas chronaxie grows with
the electrode–fibre distance (Grill & Mortimer 1996; Rattay et al. 2012). This probe measures, in
R2's set-up (quadriceps, average build, 5 × 9 cm pair 3 cm apart along the fibres):

* ``sd``: monophasic (50–1000 µs, Weiss fit) and symmetric-biphasic (131–1000 µs) thresholds of
  the tabulated node-cable terminal placed at sampled units' terminals (threshold quantiles of the
  seed-0 sample) and under the active electrode's centre at 3/10/20/30 mm into muscle
  (:func:`emsim.physiology._axon_geometry.terminal_thresholds`), against the uniform-field table;
* ``--units N``: every one of N random units' symmetric-biphasic thresholds from that cable in its
  own field (× the class's ``threshold_scale``), and R1/R2 scored on that sample with the test's
  rule (amplitude where 131 µs recruits ≤ 2 %, fractions over the 1000 µs one) next to the same
  units' fast-path thresholds;
* ``laws``: no Brian2 — each unit's fast-path thresholds rescaled by a Weiss chronaxie law
  ``c(unit)`` with its 300 µs threshold kept (R1 unchanged): chronaxie rising with the unit's
  distance to the nearer electrode as the shipped node cable's passing-fibre chronaxie does
  (docs/literature/axon_models.md §6.2: 398/507/657/777 µs at 3/5/10/20 mm, power law beyond), as
  is and rescaled so the first-recruited unit keeps 459 µs; and chronaxie ordered by the unit's
  300 µs threshold rank both ways.

Run: ``python benchmarks/terminal_depth_sd.py [--units 400] [--chunk 100]``; appends one JSON line
to ``benchmarks/results/terminal_depth_sd.jsonl``. Cost on 2 shared cores: ``sd`` ~90 s, 100
units ~200 s. Discussion: docs/literature/recruitment.md "Session 9d". The field is the one
:func:`emsim.physiology.recruitment.recruit` solves for the channel (``field.solve`` of the site's
layers and the channel's electrodes, cached); the terminal cable is the investigation helper
:mod:`emsim.physiology._axon_geometry`.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np

from _report import machine, publish
from emsim.physiology import _axon_geometry as geo
from emsim.physiology import field as fld
from emsim.physiology import recruitment as rc
from emsim.physiology.axon import monophasic, symmetric
from emsim.physiology.fibre_tables import fibre_classes, load_table, weiss_fit
from emsim.program.model import Channel

MONO_US = np.array([50.0, 100.0, 200.0, 500.0, 1000.0])
SYM_US = np.array([131.0, 200.0, 300.0, 400.0, 500.0, 1000.0])
DING = np.array([0.30, 0.58, 0.75, 0.85])
HMED_MA = np.array([20.0, 30.0, 40.0, 50.0, 63.0, 80.0, 100.0])
AMPS_MA = np.geomspace(0.5, 200.0, 240)          # tests/validation/test_recruitment_targets.py
CHANNEL = Channel(id="A", site="quadriceps", side="left", spacing_cm=3.0, orientation="along_fibres",
                  electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 9.0},) * 2)
ELECTRODES = fld.Electrodes.from_channel(CHANNEL)
PASSING_MM, PASSING_US = np.array([3.0, 5.0, 10.0, 20.0]), np.array([398.0, 507.0, 657.0, 777.0])


def setup():
    s = rc.StimulusSet.from_arrays(30.0, SYM_US, 20.0, channels=CHANNEL, shape="symmetric_biphasic")
    r = rc.recruit(s, "quadriceps")
    layers = fld.Layers.for_site("quadriceps", side="left")
    return r, fld.solve(layers, ELECTRODES), layers.top_of("muscle")


def r2(thr_a):
    """R2 by the validation test's rule on thresholds (U, 6 widths of SYM_US), and R1 at 300 µs."""
    frac = (thr_a.T[:, None, :] * 1e3 <= AMPS_MA[None, :, None]).mean(axis=2)      # (pw, amp)
    col = np.flatnonzero(frac[0] <= 0.02)[-1]
    got = frac[1:5, col] / frac[5, col]
    r1 = (thr_a[:, 2:3] * 1e3 <= HMED_MA[None]).mean(axis=0)
    return {"amplitude_ma": round(float(AMPS_MA[col]), 2), "r2": np.round(got, 3).tolist(),
            "r2_worst_error": round(float(np.abs(got - DING).max()), 3), "r1_300us": np.round(r1, 3).tolist()}


def sd_part(r, sol, top):
    thr = r.unit_threshold_a[2]
    order = np.argsort(thr)
    qs = (0.0, 0.01, 0.03, 0.05, 0.1, 0.2, 0.3, 0.5, 0.7, 0.9)
    idx = [order[int(q * (order.size - 1))] for q in qs]
    x0 = ELECTRODES.electrodes[0].x_m
    pts = [tuple(r.unit_position_m[i]) for i in idx] + [(x0, 0.0, top + z * 1e-3) for z in (3, 10, 20, 30)]
    dia = [float(r.unit_diameter_m[i]) for i in idx] + [5e-6] * 4
    names = [f"unit q{q:g}" for q in qs] + [f"axis {z} mm" for z in (3, 10, 20, 30)]
    waves = [monophasic(p) for p in MONO_US] + [symmetric(p) for p in SYM_US]
    th = geo.terminal_thresholds("motor", dia, pts, sol.potential, waves)
    tab = load_table()
    sym_q = {"kind": np.ones(SYM_US.size, int), "pulse_width_s": SYM_US * 1e-6, "gap_s": np.zeros(SYM_US.size),
             "ratio": np.ones(SYM_US.size), "carrier_hz": np.zeros(SYM_US.size), "burst_s": np.zeros(SYM_US.size)}
    tab_sym = tab.waveform_factor("motor", sym_q)                 # (6, n_d): the ratio barely depends on d
    out = {"table_sym_threshold_over_1000us": np.round(tab_sym[:, 0] / tab_sym[-1, 0], 3).tolist()}
    for k, name in enumerate(names):
        c = weiss_fit(MONO_US * 1e-6, th[k, :5])[1]
        c_tab = tab.strength_duration("motor", dia[k])[1]
        sym = th[k, 5:] / th[k, -1]
        out[name] = {"depth_into_muscle_mm": round((pts[k][2] - top) * 1e3, 1), "diameter_um": round(dia[k] * 1e6, 2),
                     "chronaxie_us": round(c * 1e6, 1), "table_chronaxie_us": round(c_tab * 1e6, 1),
                     "sym_threshold_over_1000us": np.round(sym, 3).tolist()}
        if k < len(qs):
            out[name]["fast_path_threshold_300us_ma"] = round(float(thr[idx[k]]) * 1e3, 2)
        print(name, out[name], flush=True)
    return out


def units_part(r, sol, n_units, chunk):
    scale = fibre_classes()["motor"].threshold_scale
    sel = np.sort(np.random.default_rng(11).choice(r.unit_diameter_m.size, n_units, replace=False))
    waves = [symmetric(p) for p in SYM_US]
    cable = np.vstack([geo.terminal_thresholds("motor", r.unit_diameter_m[sel[lo:lo + chunk]],
                                               r.unit_position_m[sel[lo:lo + chunk]], sol.potential, waves) * scale
                       for lo in range(0, n_units, chunk)])
    table = r.unit_threshold_a[:, sel].T
    ratio = cable / table
    return {"n_units": n_units, "fast_path": r2(table), "cable": r2(cable),
            "cable_over_fast_path_median": np.round(np.median(ratio, axis=0), 3).tolist(),
            "cable_over_fast_path_p5_p95": np.round(np.quantile(ratio, [0.05, 0.95], axis=0), 3).tolist()}


def laws_part(r):
    thr = r.unit_threshold_a.T                                   # (U, 6)
    c0 = 459.0

    def score(c):
        w = lambda pw, cc: 1.0 + cc / pw                          # noqa: E731  Weiss multiplier
        h = (w(SYM_US[None], c[:, None]) / w(300.0, c[:, None])) / (w(SYM_US[None], c0) / w(300.0, c0))
        return r2(thr * h)

    pos = r.unit_position_m

    def dist(e):
        dx = np.maximum(np.abs(pos[:, 0] - e.x_m) - e.length_m / 2, 0.0)
        dy = np.maximum(np.abs(pos[:, 1] - e.y_m) - e.width_m / 2, 0.0)
        return np.sqrt(dx ** 2 + dy ** 2 + pos[:, 2] ** 2) * 1e3
    el = ELECTRODES.electrodes
    h = np.minimum(dist(el[0]), dist(el[1]))
    slope = np.log(PASSING_US[-1] / PASSING_US[-2]) / np.log(PASSING_MM[-1] / PASSING_MM[-2])
    c_pass = np.where(h > PASSING_MM[-1], PASSING_US[-1] * (h / PASSING_MM[-1]) ** slope,
                      np.exp(np.interp(np.log(h), np.log(PASSING_MM), np.log(PASSING_US))))
    onset = int(np.argmin(thr[:, 0]))
    rank = np.argsort(np.argsort(thr[:, 2])) / (thr.shape[0] - 1)
    return {"one chronaxie (459 us)": score(np.full(thr.shape[0], c0)),
            "passing-fibre distance law": {**score(c_pass), "chronaxie_us_p5_p50_p95":
                                           np.round(np.quantile(c_pass, [0.05, 0.5, 0.95]), 0).tolist()},
            "passing law, first unit at 459 us": score(c_pass * c0 / c_pass[onset]),
            "rank: 200 -> 900 us (late units longer)": score(200.0 * 4.5 ** rank),
            "rank: 900 -> 200 us (late units shorter)": score(900.0 / 4.5 ** rank),
            "unit_distance_mm_p5_p50_p95": np.round(np.quantile(h, [0.05, 0.5, 0.95]), 1).tolist()}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--units", type=int, default=0, help="units for the per-unit cable R1/R2 (0: skip)")
    ap.add_argument("--chunk", type=int, default=100)
    ap.add_argument("--no-sd", action="store_true", help="skip the sampled strength-duration curves")
    args = ap.parse_args(argv)
    r, sol, top = setup()
    res, wall = {"laws": laws_part(r)}, {}
    print(res["laws"], flush=True)
    if not args.no_sd:
        t0 = time.perf_counter()
        res["sd"] = sd_part(r, sol, top)
        wall["sd"] = round(time.perf_counter() - t0, 1)
    if args.units:
        t0 = time.perf_counter()
        res["units"] = units_part(r, sol, args.units, args.chunk)
        wall["units"] = round(time.perf_counter() - t0, 1)
    publish("terminal_depth_sd", {"benchmark": "motor terminal chronaxie vs depth and R2 (issue 4)", **machine(),
                                  "setup": "quadriceps average build, 5x9 cm pair 3 cm apart, seed 0",
                                  "results": res, "wall_s": wall})
    return 0


if __name__ == "__main__":
    sys.exit(main())
