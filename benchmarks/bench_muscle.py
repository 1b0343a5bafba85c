"""Muscle-model benchmark: 20-minute, 2-channel, 85 Hz, 4 s on / 4 s off sessions with fatigue.

Times :func:`emsim.physiology.muscle.simulate` (``trace=False``, muscle ``quadriceps_ding2003``,
fatigue on) on

* one session of two rows (the two channels), flat recruitment (whole pool) and a variant with
  0.5 s ramps written as per-pulse ``recruitment`` rising 0 → 0.6 and a 0.6 plateau
  (issue 3 targets: ≤ 50 ms);
* a batch of 1 000 rows with the same timing and recruitment levels 0.2 … 1.0 (one row per
  session, as the issue's batch has been counted so far; the recruitment is a full
  rows × pulses array), and the honest form of the issue's batch: 1 000 two-channel sessions
  (2 000 rows, the channels at different levels, so nothing is shared between them; flat
  levels given as broadcast views). Target ≥ 1 000 sessions/s on a 2-core machine;
  ``sessions_per_cpu_s`` ≥ 500 means ≥ 1 000/s on two idle cores. Also a batch of 1 000 rows
  over 10 frequencies (40–85 Hz) × 100 recruitment levels (ten timing groups),

each as wall-clock and CPU time (the machine is shared: ``os.getloadavg()`` is recorded before
and after; CPU time is what the run itself cost), plus the kernels' compile time in a fresh
process with an empty numba cache (cold) and with the cache filled (warm start), and checks each
against a straightforward fine-step ``scipy.integrate.solve_ivp`` solution of
the same equations (:func:`reference_pool`: a plain right-hand side of the pool model, pulses as
jumps, integrated interval by interval between pulses), reporting the speed ratio and the
largest force error relative to the peak force (target ≤ 0.5 %).

Run: ``python benchmarks/bench_muscle.py [--repeats N] [--reference-minutes M]``; results are
appended to ``benchmarks/results/muscle.jsonl``, or to ``--results PATH`` (trial runs, other
machines), or printed only with ``--no-record``. The reference takes minutes per row; by default
it covers the whole 20 minutes (``--reference-minutes`` shortens it, and the record says so).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
from _report import machine, publish  # benchmarks/_report.py (scripts run from this folder)

from emsim.physiology import muscle as mus
from emsim.physiology.fatigue import deficit_uses_economy, economy_factors

FREQ_HZ = 85.0
ON_S, OFF_S = 4.0, 4.0
RAMP_S, PLATEAU = 0.5, 0.6


def session(minutes: float = 20.0):
    """Pulse times of one session, and each pulse's time since its contraction started."""
    n = int(round(minutes * 60 / (ON_S + OFF_S)))
    rel = np.arange(0.0, ON_S, 1.0 / FREQ_HZ)
    return np.concatenate([k * (ON_S + OFF_S) + rel for k in range(n)]), np.tile(rel, n)


FREQS_HZ = np.linspace(40.0, 85.0, 10)


def frequency_batch(rows: int):
    """``rows`` sessions: 10 frequencies × rows/10 recruitment levels, NaN-padded pulse times."""
    per = rows // FREQS_HZ.size
    trains = []
    for f in FREQS_HZ:
        rel = np.arange(0.0, ON_S, 1.0 / f)
        n = int(round(20 * 60 / (ON_S + OFF_S)))
        trains.append(np.concatenate([k * (ON_S + OFF_S) + rel for k in range(n)]))
    width = max(t.size for t in trains)
    pulses = np.full((per * FREQS_HZ.size, width), np.nan)
    recr = np.ones(pulses.shape)
    levels = np.linspace(0.2, 1.0, per)
    for i, t in enumerate(trains):
        pulses[i * per:(i + 1) * per, :t.size] = t
        recr[i * per:(i + 1) * per, :t.size] = levels[:, None]
    return pulses, recr


def ramp_recruitment(rel: np.ndarray) -> np.ndarray:
    return np.minimum(PLATEAU, PLATEAU * rel / RAMP_S)


def reference_pool(pulses, recruitment, muscle, t_eval, cells=None, rtol=1e-9, atol=1e-9):
    """Fine-step ``solve_ivp`` solution of the pool model (the equations of
    :mod:`emsim.physiology.fatigue`), for rows sharing one pulse timing.

    State per row: E and CN per recruitment depth group, and per cell the force F and the
    deficits. Pulse i makes E_d jump by λ_{d,i} R_i / τc and every deficit j of cell c take its
    increment k = pulse gain (g_j · κF_ref for the six Ding-mechanism deficits) · w_{i,j} · φ_c ·
    λ_{c,i} · capacity_c (w the pulse's interval weight, φ_c left out for deficits whose pulse
    cost does not scale with fatigability, capacity left out for the catch-like gain), added as
    it is or, for a deficit with a saturation level S_j, as X ← X + min(1, k)·(S_j − X). A is
    ``A_rest · (1 − ΣX_capacity)``, Km is ``Km_rest · (1 + ΣX_Km) / (1 + ΣX_gain)``; the
    catch-like gain's weight is 0 unless its interval is at most half the next one of the train
    (the previous one for a train's last pulse). Where the muscle's economy of sustained
    activation is on (:func:`emsim.physiology.fatigue.economy_factors`), the factor R_i of pulse
    i multiplies its cost and the force drive until the next pulse, in the Ding-mechanism
    deficits; each row's factors take its pulses' recruitment relative to its largest as the
    activation (the solver's ``economy_activation`` without an amplitude factor). Between pulses the RHS is smooth
    and DOP853 integrates it, one pulse interval at a time. Returns the total force of each row
    at ``t_eval`` (shape ``(rows, len(t_eval))``) and the deficits at the end.
    """
    from scipy.integrate import solve_ivp

    recruitment = np.atleast_2d(recruitment)
    B = recruitment.shape[0]
    if cells is None:
        cells = mus._cells(muscle, recruitment)
    cells = cells.per_row(B)   # every row has its own depth-group edges
    model = mus._model(muscle, True)
    C, D = cells.time_factor.size, cells.edges.shape[1] - 1
    width = np.diff(cells.edges, axis=1)
    # zero-width groups only pad rows with fewer groups: never recruited
    lam_d = np.clip((recruitment[:, None, :] - cells.edges[:, :-1, None])
                    / np.where(width > 0, width, np.inf)[:, :, None], 0.0, 1.0)   # (B, D, P)
    rfac = 1.0 + (model.r0 - 1.0) * np.exp(-np.diff(pulses, prepend=-np.inf) / model.tau_c)
    # weight of each pulse's cost per deficit: clip((τ_j − Δt)/(τ_j − τ_R,j), 0, 1), 1 where
    # τ_j = 0; times Δt/τ_R,j below the rate-cap interval τ_R,j (when it is set)
    thr, cap = model.thresholds, model.rate_cap
    gap = np.diff(pulses, prepend=-np.inf)[:, None]
    pw = np.where(thr > 0, np.clip((thr - np.maximum(gap, cap)) / np.where(thr > 0, thr - cap, 1.0),
                                   0.0, 1.0), 1.0)
    pw = np.where(cap > 0, pw * np.minimum(1.0, gap / np.where(cap > 0, cap, 1.0)), pw)
    # the catch-like gain only where the interval is at most half its neighbour: the next
    # interval, or the previous one at the end of a train (a rest longer than GAP)
    dt = gap[:, 0]
    nxt = np.append(dt[1:], np.inf)
    nb = np.where(nxt > 0.25, np.concatenate([[np.inf], dt[:-1]]), nxt)
    pw = np.where(model.mech[None, :] == 3, pw * (dt <= 0.5 * nb)[:, None], pw)
    pw = np.where(pw < 1e-9, 0.0, pw)   # intervals at the threshold, up to rounding
    # economy of sustained activation: R_i weights pulse i's cost and the force drive until the
    # next pulse, in the deficits it applies to (1 everywhere when it is off); per row, each
    # interval's fusion weight times the activation of the pulse that starts it (its
    # recruitment relative to the row's largest)
    top = recruitment.max(axis=1, keepdims=True)
    act = np.where(top > 0, recruitment / np.where(top > 0, top, 1.0), 0.0)
    mask = deficit_uses_economy(muscle.fatigue)[None, :]
    hold = np.ones((B, pulses.size, model.mech.size))
    for b in range(B):
        r_econ = economy_factors(pulses, muscle.fatigue, act[b])
        if r_econ is not None:
            hold[b] = np.where(mask, r_econ[:, None], 1.0)
    pw = pw[None] * hold                                                    # (B, P, n)
    tf, phi_g, dep = cells.time_factor, cells.fatigability, cells.depth
    w = np.where(cells.weight > 0, cells.weight, 1e-300)   # padded cells stay at F = 0
    g, g_pulse, mech = model.gains, model.pulse_gains, model.mech
    nd = mech.size
    n_e = 2 * D

    def unpack(y):
        y = y.reshape(B, -1)
        e, cn = y[:, :D], y[:, D:n_e]
        f = y[:, n_e:n_e + C]
        x = y[:, n_e + C:].reshape(B, C, nd)
        return e, cn, f, x

    def rhs(_t, y):
        e, cn, f, x = unpack(y)
        a = model.a_rest * w / tf * np.maximum(0.0, 1.0 - x[..., mech == 0].sum(axis=-1))
        t1 = model.tau1 * tf * (1.0 + x[..., mech == 1].sum(axis=-1))
        km = (model.km * (1.0 + x[..., mech == 2].sum(axis=-1))
              / (1.0 + x[..., mech == 3].sum(axis=-1)))
        c = cn[:, dep]
        s = c / (km + c)
        df = a * s - f / (t1 + model.tau2 * tf * s)
        omega = 1.0 - model.occlusion + model.occlusion * f.sum(axis=1, keepdims=True) / model.f_max
        load = phi_g * omega * f / w
        dx = g * hold_now[0][:, None, :] * load[..., None] - x / model.taus
        return np.concatenate([-e / model.tau_c, e - cn / model.tau_c, df, dx.reshape(B, -1)],
                              axis=1).ravel()

    y = np.zeros((B, n_e + C + nd * C))
    out = np.zeros((B, t_eval.size))
    bounds = np.append(pulses, max(t_eval[-1], pulses[-1]))
    hold_now = [hold[:, 0]]
    for i in range(pulses.size):
        hold_now[0] = hold[:, i]
        y[:, :D] += lam_d[:, :, i] * rfac[i] / model.tau_c
        x = y[:, n_e + C:].reshape(B, C, nd)
        cap = np.clip(1.0 - x[..., mech == 0].sum(axis=-1), 0.0, 1.0)
        # per deficit: the pulse's interval weight, and the class fatigability where it counts
        phi = np.where(model.pulse_fatigability[None, :], phi_g[:, None], 1.0)   # (C, n)
        capj = np.where(mech == 3, 1.0, cap[..., None])   # the catch-like gain ignores capacity
        k = g_pulse * pw[:, i][:, None, :] * phi * lam_d[:, dep, i][..., None] * capj
        sat = model.saturation
        x += np.where(sat > 0, np.minimum(k, 1.0) * (sat - x), k)
        t_a, t_b = bounds[i], bounds[i + 1]
        last = i == pulses.size - 1
        lo = np.searchsorted(t_eval, t_a, side="left")
        hi = np.searchsorted(t_eval, t_b, side="right" if last else "left")
        if t_b <= t_a:
            continue
        sel = t_eval[lo:hi]
        want = sel if sel.size and sel[-1] == t_b else np.append(sel, t_b)
        sol = solve_ivp(rhs, (t_a, t_b), y.ravel(), method="DOP853", rtol=rtol, atol=atol,
                        t_eval=want)
        if not sol.success:  # pragma: no cover
            raise RuntimeError(sol.message)
        ys = sol.y.reshape(B, -1, want.size)
        out[:, lo:hi] = ys[:, n_e:n_e + C, :sel.size].sum(axis=1)
        y = ys[..., -1]
    return out, unpack(y.ravel())[3]


def _median_time(fn, repeats):
    """Median wall time and median CPU time (all threads) of ``repeats`` calls after a warm-up."""
    fn()  # warm-up (imports, parameter files, compiled kernels)
    times, cpu = [], []
    for _ in range(repeats):
        t0, c0 = time.perf_counter(), time.process_time()
        fn()
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    return statistics.median(times), times, statistics.median(cpu)


_START = """
import time
t0 = time.perf_counter()
import numpy as np
from emsim.physiology.muscle import simulate
p = np.concatenate([k * 8.0 + np.arange(0.0, 4.0, 1 / 85) for k in range(3)])
simulate(np.vstack([p, p]), trace=False)
simulate(np.vstack([p, p]), recruitment=np.vstack([np.full(p.size, 0.5), np.ones(p.size)]), trace=False)
simulate(np.vstack([p, p]), trace=True, dt=0.01)
print(time.perf_counter() - t0)
"""


def start_times() -> dict:
    """Import plus first calls (flat, batch, trace) in a new process: with an empty numba cache
    (compiles every kernel) and again with the cache that run filled."""
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "NUMBA_CACHE_DIR": cache}
        for name in ("cold_compile_s", "warm_cache_s"):
            res = subprocess.run([sys.executable, "-c", _START], env=env, capture_output=True,
                                 text=True, check=True)
            out[name] = float(res.stdout.split()[-1])
    return out


def _check(name, recruitment_rows, muscle, pulses, minutes):
    """Force error of ``simulate`` (trace, every 5 ms) against the solve_ivp reference."""
    dt = 0.005
    t_end = pulses[-1] + 1.0
    t = np.arange(0.0, t_end + 0.5 * dt, dt)
    t0 = time.perf_counter()
    ref, _ = reference_pool(pulses, recruitment_rows, muscle, t)
    t_ref = time.perf_counter() - t0
    res = mus.simulate(np.broadcast_to(pulses, recruitment_rows.shape), muscle,
                       recruitment=recruitment_rows, dt=dt, t_end=float(t[-1]))
    err = np.abs(res.force_n - ref)
    return {"case": name, "reference_minutes": minutes, "reference_rows": int(ref.shape[0]),
            "reference_s": t_ref, "max_force_error_n": float(err.max()),
            "max_force_error_pct_of_peak": float(100 * err.max() / ref.max()),
            "peak_n": float(ref.max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=None,
                    help="row threads (default: the process's cores, see set_num_threads)")
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--reference-minutes", type=float, default=20.0)
    ap.add_argument("--no-reference", action="store_true")
    ap.add_argument("--no-start", action="store_true", help="skip the compile-time runs")
    ap.add_argument("--results", default=None, metavar="PATH",
                    help="JSON-lines file the result is appended to (default: "
                         "benchmarks/results/muscle.jsonl)")
    ap.add_argument("--no-record", action="store_true",
                    help="print the result only, append it to no file (trial runs)")
    args = ap.parse_args(argv)
    mus.set_num_threads(args.threads)
    muscle = mus.load_muscle("quadriceps_ding2003")
    pulses, rel = session(20.0)
    two = np.vstack([pulses, pulses])
    ramp = np.vstack([ramp_recruitment(rel)] * 2)
    levels = np.linspace(0.2, 1.0, args.batch)
    batch_recr = np.repeat(levels[:, None], pulses.size, axis=1)
    batch_pulses = np.broadcast_to(pulses, batch_recr.shape)

    runs = {
        "single_flat": lambda: mus.simulate(two, muscle, trace=False),
        "single_ramp": lambda: mus.simulate(two, muscle, recruitment=ramp, trace=False),
    }
    result = {"benchmark": "muscle 20 min x 2 ch x 85 Hz, 4 s on / 4 s off, fatigue",
              **machine(), "shared_cpu": "other engineers' jobs run on the same cores",
              "loadavg_before": os.getloadavg(), "repeats": args.repeats,
              "n_pulses_per_row": int(pulses.size), "max_step_s": mus.MAX_STEP,
              "skip_tol": mus.SKIP_TOL, "threads": mus.get_num_threads()}
    if not args.no_start:
        result["start"] = start_times()
    for name, fn in runs.items():
        med, times, cpu = _median_time(fn, args.repeats)
        stats = fn().stats
        result[name] = {"median_s": med, "min_s": min(times), "max_s": max(times),
                        "median_cpu_s": cpu, "target_s": 0.05, **stats}
    b_rep = max(1, args.repeats // 2)
    batch_fn = lambda: mus.simulate(batch_pulses, muscle, recruitment=batch_recr, trace=False)  # noqa: E731
    med, times, cpu = _median_time(batch_fn, b_rep)
    result["batch"] = {"rows": args.batch, "median_s": med, "min_s": min(times),
                       "rows_per_s": args.batch / med, "rows_per_cpu_s": args.batch / cpu,
                       "sessions_per_s": args.batch / med, "median_cpu_s": cpu,
                       "sessions_per_cpu_s": args.batch / cpu,
                       "session_is": "one row (one channel)",
                       "two_channel_sessions_per_s": args.batch / med / 2,
                       "two_channel_sessions_per_cpu_s": args.batch / cpu / 2,
                       "target_sessions_per_s": 1000, **batch_fn().stats}
    # 1 000 two-channel sessions: channel 2 at 0.7 × channel 1's level (never identical rows)
    lv2 = np.concatenate([levels, 0.7 * levels])
    two_recr = np.broadcast_to(lv2[:, None], (lv2.size, pulses.size))
    two_fn = lambda: mus.simulate(np.broadcast_to(pulses, two_recr.shape), muscle,  # noqa: E731
                                  recruitment=two_recr, trace=False)
    med, times, cpu = _median_time(two_fn, b_rep)
    result["batch_two_channel"] = {
        "sessions": args.batch, "rows": int(lv2.size), "median_s": med, "min_s": min(times),
        "sessions_per_s": args.batch / med, "median_cpu_s": cpu,
        "sessions_per_cpu_s": args.batch / cpu, "rows_per_s": lv2.size / med,
        "target_sessions_per_s": 1000, **two_fn().stats}
    freq_pulses, freq_recr = frequency_batch(args.batch)
    freq_fn = lambda: mus.simulate(freq_pulses, muscle, recruitment=freq_recr, trace=False)  # noqa: E731
    med, times, cpu = _median_time(freq_fn, b_rep)
    result["batch_frequencies"] = {
        "rows": int(freq_pulses.shape[0]), "frequencies_hz": FREQS_HZ.tolist(), "median_s": med,
        "min_s": min(times), "sessions_per_s": freq_pulses.shape[0] / med, "median_cpu_s": cpu,
        "sessions_per_cpu_s": freq_pulses.shape[0] / cpu, **freq_fn().stats}
    result["loadavg_after_timing"] = os.getloadavg()
    if not args.no_reference:
        p_ref, rel_ref = session(args.reference_minutes)
        checks = [
            _check("single_flat", np.ones((1, p_ref.size)), muscle, p_ref,
                   args.reference_minutes),
            _check("single_ramp", ramp_recruitment(rel_ref)[None], muscle, p_ref,
                   args.reference_minutes),
        ]
        # three batch rows in one call (partially recruited depth groups included)
        pick = levels[[0, levels.size // 2, -1]]
        checks.append(_check("batch", np.repeat(pick[:, None], p_ref.size, axis=1), muscle,
                             p_ref, args.reference_minutes))
        scale = 20.0 / args.reference_minutes
        for c in checks:
            # a single session is two rows (channels); a "batch" session is one row
            ref_per_row = c["reference_s"] / c["reference_rows"] * scale
            if c["case"] == "batch":
                ours = result["batch"]["median_s"] / args.batch   # wall time per session
                c["speed_ratio_vs_reference"] = ref_per_row / ours
            else:
                c["speed_ratio_vs_reference"] = 2 * ref_per_row / result[c["case"]]["median_s"]
        result["reference"] = checks
    publish("muscle", result, out=args.results, record=not args.no_record)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
