"""Compiled kernels of the muscle model: whole sessions of many rows, and input hashing.

Why compiled
------------
The per-pulse recursion of the pool model (CN jumps, force, the deficits of each cell) is
sequential in time, and the arrays of one step are tiny (a few cells per row): numpy's per-call
overhead, not arithmetic, used to dominate (``_muscle_solver`` notes, issue 3). A numba kernel
runs the recursion, and the stepping logic around it (:func:`march`: a row never returns to
Python), as plain loops, batch rows split over the threads (:func:`_over_rows`), and its
wheels need no compiler on the user's machine. Compiled code is cached next to this file (``cache=True``); where
that directory is not writable, numba uses its user-wide cache directory, and where no cache
location is writable at all the kernels are compiled in memory at each start (with a warning).
The row loop (:func:`_march_row`) allocates every array a row needs once; the functions it calls
per contraction and interval allocate nothing and are compiled without numba's reference
counting (``_nrt=False``): each array unpacked from an argument tuple otherwise costs an
incref/decref call pair, which summed to ~25 % of a batch's CPU time (issue 3, session 7).

The equations are those of :mod:`emsim.physiology.fatigue` (see :func:`march`):

* CN exactly between nodes: ``E ← E·e^{−h/τc}``, ``CN ← (CN + E·h)·e^{−h/τc}``;
* F by one RK4 step of ``dF/dt = A·s − F/(τ1 + τ2·s)``, ``s = CN/(Km + CN)``, per node step
  (no step longer than the solver's ``max_step``), with A, τ1 and Km held over a pulse interval
  at their value at its predicted midpoint (the state after the pulse plus half the previous
  interval's drift: second order; the deficits move by < 1e-3 relative over an interval);
* the deficits alongside (as many as :mod:`emsim.physiology.fatigue` defines, each with a gain
  on the force drive, a gain per recruited pulse and the parameter it acts on): exact decay over
  the interval plus the trapezoid integral of the force drive, and the per-pulse cost at each
  pulse (weighted per deficit by the pulse's interval weight and, where the deficit says so,
  the class fatigability; scaled by the remaining capacity except for the catch-like gain
  (mechanism 3, dividing Km); linear, or
  saturating at a level per deficit), as in the ``solve_ivp`` reference of
  ``benchmarks/bench_muscle.py``; in the relaxation tail after the last pulse (where the drive
  falls fast) they and the parameters are updated at every node step.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emsim.physiology._jit import jit
from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.fatigue import MECH_CAPACITY, MECH_GAIN


#: Relative change of E and CN from one interval start to the next below which stepping over a
#: run of identical intervals may start. E and CN are linear and set exactly at the intervals a
#: step lands on (:func:`_ecn_ahead`), so this only decides when the intervals' force maps are
#: smooth enough to try: their transient from the approach of E and CN decays by e^{−Δ/τc} per
#: interval, and a step tried earlier fails and costs an interval.
PERIODIC_TOL = 1e-3
#: Floor of the remaining capacity that scales the error of capacity deficits in the stepping
#: over contractions (:func:`_march_row`): a cell with less capacity adds < 2 % of its share.
CAP_SCALE_FLOOR = 0.02
#: Largest force multiplier g of an interval the closed-form stepping uses (it divides by 1 − g).
G_MAX = 1.0 - 1e-9

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@jit(error_model="numpy", nogil=True, inline="always")
def _mix(h, v):
    # FNV-1a over the 64-bit word, then a multiply-xorshift so nearby floats spread out
    h = (h ^ v) * _FNV_PRIME
    return h ^ (h >> np.uint64(29))


#: Rows per thread below which a unit runs on the calling thread only.
MIN_ROWS_PER_THREAD = 4
#: Most threads the row pool uses (more cores than this gain nothing at batch sizes of 10⁴).
MAX_THREADS = 64
_POOL = None
_POOL_SIZE = 0
#: Threads set by :func:`set_num_threads`; None: :func:`default_threads`.
_N_THREADS = None


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads: it would wait forever
    global _POOL, _POOL_SIZE
    _POOL, _POOL_SIZE = None, 0


os.register_at_fork(after_in_child=_forget_pool)


def default_threads() -> int:
    """The cores this process may run on (``os.sched_getaffinity``, which honours taskset,
    cgroup cpusets and Dask's worker pinning, unlike ``os.cpu_count``), capped by
    ``OMP_NUM_THREADS`` or ``NUMBA_NUM_THREADS`` when set (the usual way to tell a worker
    process how many threads it may use)."""
    try:
        n = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):   # not available on macOS / Windows
        n = os.cpu_count() or 1
    for var in ("OMP_NUM_THREADS", "NUMBA_NUM_THREADS"):
        try:
            cap = int(os.environ.get(var, ""))
        except ValueError:
            continue
        if cap >= 1:
            n = min(n, cap)
    return max(1, min(n, MAX_THREADS))


def set_num_threads(n) -> None:
    """Threads the kernels split batch rows over (None: back to :func:`default_threads`)."""
    global _N_THREADS
    if n is not None and (isinstance(n, bool) or not isinstance(n, (int, np.integer))
                          or not 1 <= n <= MAX_THREADS):
        raise PhysiologyInputError("number of threads out of range", path="n", value=n,
                                   allowed=f"an integer from 1 to {MAX_THREADS}, or None")
    _N_THREADS = None if n is None else int(n)


def _threads() -> int:
    return _N_THREADS if _N_THREADS is not None else default_threads()


def _over_rows(fn, B, args):
    """``fn(lo, hi, *args)`` over row blocks, one per core (the kernels release the GIL).

    A thread pool rather than numba's ``prange``: with the OpenMP layer each parallel launch
    cost ~16 ms on a loaded 2-core machine (spinning workers), the workqueue layer is not
    thread-safe (the workbench and Dask call in from threads) and TBB is not a dependency.
    """
    global _POOL, _POOL_SIZE
    n = min(_threads(), B // MIN_ROWS_PER_THREAD)
    if n <= 1:
        fn(0, B, *args)
        return
    if _POOL is None or _POOL_SIZE < n:
        # a larger thread count was set: the old pool finishes its work and goes
        if _POOL is not None:
            _POOL.shutdown(wait=False)
        _POOL = ThreadPoolExecutor(max_workers=n, thread_name_prefix="emsim-muscle")
        _POOL_SIZE = n
    cuts = np.linspace(0, B, n + 1).astype(np.int64)
    futures = [_POOL.submit(fn, int(cuts[i]), int(cuts[i + 1]), *args) for i in range(n)]
    for fut in futures:
        fut.result()


@jit(error_model="numpy", nogil=True, inline="always")
def _at(a, b, i):
    """``a[b, i]`` of a per-pulse factor stored compactly: shape (1 or B, 1 or P)."""
    return a[b if a.shape[0] > 1 else 0, i if a.shape[1] > 1 else 0]


@jit(error_model="numpy", nogil=True)
def _hash_block(lo, hi, bits, first, stop, out):
    for b in range(lo, hi):
        if bits.shape[1] == 1:
            # a factor constant along the pulses: each unit's pulses are its one value, so the
            # value and the unit's pulse count say all (no pass over the pulses)
            v = _mix(_FNV_OFFSET, _at(bits, b, 0))
            for u in range(first.size):
                out[b, u] = _mix(v, np.uint64(stop[u] - first[u]))
            continue
        for u in range(first.size):
            # four interleaved lanes (the mixing is a serial multiply chain), then combined
            h0 = _FNV_OFFSET
            h1 = _FNV_OFFSET ^ np.uint64(1)
            h2 = _FNV_OFFSET ^ np.uint64(2)
            h3 = _FNV_OFFSET ^ np.uint64(3)
            i = first[u]
            while i + 4 <= stop[u]:
                h0 = _mix(h0, _at(bits, b, i))
                h1 = _mix(h1, _at(bits, b, i + 1))
                h2 = _mix(h2, _at(bits, b, i + 2))
                h3 = _mix(h3, _at(bits, b, i + 3))
                i += 4
            while i < stop[u]:
                h0 = _mix(h0, _at(bits, b, i))
                i += 1
            out[b, u] = _mix(_mix(_mix(h0, h1), h2), h3)


def block_hashes(bits: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """64-bit hash of each row's pulses ``first[u]:stop[u]`` per unit u, shape (B, U).

    ``bits`` is the uint64 view of a compact per-pulse factor (see :func:`_at`) with B rows.
    Row keys and unit keys both derive from this one pass over the data; a factor constant
    along the pulses (one column) hashes its value and each unit's pulse count, so hashes are
    comparable between rows of one array, not between its compact and full forms.
    """
    out = np.empty((bits.shape[0], first.size), dtype=np.uint64)
    _over_rows(_hash_block, bits.shape[0], (bits, first, stop, out))
    return out


@jit(error_model="numpy", nogil=True)
def fold_hashes(h):
    """Hash along the last axis of a (R, K) uint64 array, shape (R,)."""
    out = np.empty(h.shape[0], dtype=np.uint64)
    for r in range(h.shape[0]):
        v = _FNV_OFFSET
        for k in range(h.shape[1]):
            v = _mix(v, h[r, k])
        out[r] = v
    return out


@jit(error_model="numpy", nogil=True)
def _pulses_ok_block(lo, hi, t, ok):
    for b in range(lo, hi):
        seen_nan = False
        prev = -np.inf
        for i in range(t.shape[1]):
            v = t[b, i]
            if np.isnan(v):
                seen_nan = True
            elif seen_nan or np.isinf(v) or not v > prev:
                ok[b] = False
                break
            else:
                prev = v


def pulses_ok(t: np.ndarray) -> bool:
    """True when every row of ``t`` is finite, strictly increasing, then NaN-padded (one pass:
    the caller's checker, which names the first problem, runs only when this fails)."""
    ok = np.ones(t.shape[0], dtype=np.bool_)
    _over_rows(_pulses_ok_block, t.shape[0], (t, ok))
    return bool(ok.all())


@jit(error_model="numpy", nogil=True)
def _values_ok_block(lo, hi, x, t, positive, top, ok):
    P = max(x.shape[1], t.shape[1])
    for b in range(lo, hi):
        for i in range(P):
            if np.isnan(_at(t, b, i)):
                continue
            v = _at(x, b, i)
            if not (np.isfinite(v) and (v > 0.0 if positive else v >= 0.0) and v <= top):
                ok[b] = False
                break


def values_ok(x: np.ndarray, t: np.ndarray, positive: bool, top: float = np.inf) -> bool:
    """True when ``x`` is finite, positive (or non-negative) and ≤ ``top`` at every pulse of
    ``t``; both may be compact (one row and/or one column standing for all, see
    :func:`_at`)."""
    B = max(x.shape[0], t.shape[0])
    ok = np.ones(B, dtype=np.bool_)
    _over_rows(_values_ok_block, B, (x, t, positive, float(top), ok))
    return bool(ok.all())


@jit(error_model="numpy", nogil=True)
def pulse_weight_table(pulses, thr, cap, catch, contrast, gap, floor):
    """The per-pulse cost weights of :func:`emsim.physiology._muscle_solver.pulse_weights`
    (see there), (P, n), in one pass: the numpy form built a dozen (P, n) temporaries, 5 ms of
    a 19 ms single session whose kernel takes ~1 ms (issue 3, session 8)."""
    P, n = pulses.size, thr.size
    out = np.empty((P, n))
    inf = np.inf
    for i in range(P):
        dt = pulses[i] - pulses[i - 1] if i > 0 else inf
        # a catch-like interval stands out from its next (or, ending a train, previous) one
        nxt = pulses[i + 1] - pulses[i] if i + 1 < P else inf
        prev = pulses[i - 1] - pulses[i - 2] if i > 1 else inf
        stands_out = dt <= contrast * (prev if nxt > gap else nxt)
        for j in range(n):
            w = 1.0
            if thr[j] > 0.0:
                w = min(max((thr[j] - max(dt, cap[j])) / (thr[j] - cap[j]), 0.0), 1.0)
            if cap[j] > 0.0:
                w *= min(1.0, dt / cap[j])
            if catch[j] and not stands_out:
                w = 0.0
            out[i, j] = 0.0 if w < floor else w
    return out


@jit(error_model="numpy", nogil=True, inline="always")
def _round_to(x, scale):
    # numpy's round(x, decimals) for decimals ≥ 0 (scale = 10**decimals, exact): the same bits
    return np.rint(x * scale) / scale


@jit(error_model="numpy", nogil=True)
def alike_contractions(grid, period, rfac, pw, cols, first, stop, uid, near):
    """Which contractions can be integrated alike, from what all rows of a pulse timing share.

    Contraction k spans pulses ``first[k]:stop[k]``; its keys are its node grid ``grid[k]``, its
    ``period`` and, per pulse, the R factor ``rfac`` (P,) and the cost weights ``pw[:, cols]``
    (``pw`` (P, n), or (1, n) when the weights are the same at every pulse and say nothing).
    Writes

    * ``uid`` (K,): an id per distinct (grid, period rounded to 1e-9 s, keys rounded to 1e-12),
      numbered in order of first appearance (cycles built from ``k·period + pattern`` differ in
      the last bits: rounding lets them share an id). Grouped by a 64-bit hash of those values,
      confirmed by comparing their bits;
    * ``near`` (K−1,): contraction k+1 has k's grid, its period within 1e-9 (relative above 1 s)
      and every key within 1e-9 of k's — a tolerance, not the rounded values: pulse times past
      1024 s lose a bit, and a rounding boundary between two equal keys would break a run.

    One pass in compiled code: the Python form rounded and stacked a (P, 1 + n) key table and
    built a byte key per contraction, ~5 ms of a ~17 ms single session (issue 3, session 9).
    """
    K, P = grid.size, rfac.size
    m = 1 + (cols.size if pw.shape[0] > 1 else 0)
    keys = np.empty(P * m)
    for i in range(P):
        keys[i * m] = _round_to(rfac[i], 1e12)
        for c in range(m - 1):
            keys[i * m + 1 + c] = _round_to(pw[i, cols[c]], 1e12)
    bits = keys.view(np.uint64)
    per = np.empty(K)
    for k in range(K):
        per[k] = _round_to(period[k], 1e9)
    per_bits = per.view(np.uint64)
    h = np.empty(K, dtype=np.uint64)
    for k in range(K):
        # four interleaved lanes (the mixing is a serial multiply chain), then combined
        h0 = _mix(_mix(_FNV_OFFSET, np.uint64(grid[k])), per_bits[k])
        h1 = _FNV_OFFSET ^ np.uint64(1)
        h2 = _FNV_OFFSET ^ np.uint64(2)
        h3 = _FNV_OFFSET ^ np.uint64(3)
        j, end = first[k] * m, stop[k] * m
        while j + 4 <= end:
            h0 = _mix(h0, bits[j])
            h1 = _mix(h1, bits[j + 1])
            h2 = _mix(h2, bits[j + 2])
            h3 = _mix(h3, bits[j + 3])
            j += 4
        while j < end:
            h0 = _mix(h0, bits[j])
            j += 1
        h[k] = _mix(_mix(_mix(h0, h1), h2), h3)
    reps = np.empty(K, dtype=np.int64)
    n_ids = 0
    for k in range(K):
        u = 0
        while u < n_ids:
            q = reps[u]
            if (h[q] == h[k] and grid[q] == grid[k] and per_bits[q] == per_bits[k]
                    and stop[q] - first[q] == stop[k] - first[k]):
                same = True
                for j in range((stop[k] - first[k]) * m):
                    if bits[first[q] * m + j] != bits[first[k] * m + j]:
                        same = False
                        break
                if same:
                    break
            u += 1
        if u == n_ids:
            reps[n_ids] = k
            n_ids += 1
        uid[k] = u
    for k in range(K - 1):
        if uid[k] == uid[k + 1]:
            # the same grid, period and keys rounded to 1e-9 s and 1e-12: within the tolerance
            near[k] = True
            continue
        ok = (grid[k] == grid[k + 1]
              and abs(period[k] - period[k + 1]) <= 1e-9 * max(1.0, period[k]))
        j = 0
        while ok and j < stop[k] - first[k]:
            a, b = first[k] + j, first[k + 1] + j
            ok = abs(rfac[a] - rfac[b]) <= 1e-9
            for c in range(m - 1):
                ok = ok and abs(pw[a, cols[c]] - pw[b, cols[c]]) <= 1e-9
            j += 1
        near[k] = ok


@jit(error_model="numpy", nogil=True)
def recruitment_levels(r):
    """Per row, which levels ``round(r, 3)`` of the positive recruitment values occur:
    (rows, 1001) bool over 0.000 … 1.000 (``r`` is in 0–1)."""
    seen = np.zeros((r.shape[0], 1001), dtype=np.bool_)
    for b in range(r.shape[0]):
        for i in range(r.shape[1]):
            v = r[b, i]
            if v > 0.0:
                seen[b, int(np.rint(v * 1000.0))] = True
    return seen


@jit(error_model="numpy", nogil=True, inline="always")
def _mech_sum(X, q, mech, k):
    """Sum of cell q's deficits that act on mechanism k (0: capacity, 1: τ1, 2: Km)."""
    v = 0.0
    for j in range(mech.size):
        if mech[j] == k:
            v += X[q, j]
    return v


#: Pulse interval, s, above which an interval updates the fatigue parameters at every node
#: step instead of holding their predicted midpoint value. In an unfused train (below ~16 Hz)
#: each interval is a whole twitch: the force drive comes early in it, so the parameters' drift
#: is far from linear, and the held value, predicted from the previous interval's drift, misses
#: most in a contraction's first intervals (fast-fatiguing units). 20-minute 8 Hz lumbar
#: sessions against the solve_ivp reference: force error 4-8.5e-4 of the peak held,
#: 2.2-2.5e-4 per step (at 20 Hz, held: 7e-5).
PER_STEP_INTERVAL = 0.06


#: Relative change of 1 + gain over a pulse interval, from the decay of the catch-like gain
#: (mechanism 3, dividing Km), above which the interval updates Km at every node step instead
#: of holding its midpoint value (a freshly set gain decays by ~5 % per 50 ms: held, the force
#: is off by ~0.2 %).
GAIN_STEP_TOL = 1e-4


@jit(error_model="numpy", nogil=True, inline="always")
def _gain_moves(X, mech, idec, na):
    """Whether the catch-like gain of any cell changes Km by more than ``GAIN_STEP_TOL``
    (relative) over an interval whose deficit decay factors are ``idec``."""
    for q in range(na):
        g = 0.0
        dg = 0.0
        for j in range(mech.size):
            if mech[j] == MECH_GAIN:
                g += X[q, j]
                dg += X[q, j] * (1.0 - idec[j])
        if dg > GAIN_STEP_TOL * (1.0 + g):
            return True
    return False


@jit(error_model="numpy", nogil=True, inline="always")
def _apply_pulse(b, gi, rows, edges, width, tau_c, E, LD, X, phg, dep, na, defs, has_pulse,
                 fatigue):
    """Pulse ``gi`` of row b: E jumps per depth group by its firing fraction; each cell pays the
    per-pulse cost by its remaining capacity. Returns the pulse's A factor."""
    rfac, afac, lam, recr, ridx = rows
    gb = ridx[b]
    r = _at(recr, gb, gi)
    lm = _at(lam, gb, gi)
    for d in range(E.size):
        # zero-width groups pad rows with fewer depth groups than the batch's widest row
        v = (r - edges[d]) / width[d] if width[d] > 0.0 else 0.0
        v = 0.0 if v < 0.0 else (1.0 if v > 1.0 else v)
        LD[d] = v * lm
        E[d] += LD[d] * rfac[gi] / tau_c
    if fatigue and has_pulse > 0.0:
        pgains, mech, pw, use_fat, sat = defs[1], defs[2], defs[4], defs[5], defs[6]
        # the pulse's interval weight per deficit (the table has one row when every deficit's
        # threshold is off: all weights 1)
        wrow = gi if pw.shape[0] > 1 else 0
        for q in range(na):
            cap = 1.0 - _mech_sum(X, q, mech, 0)
            cap = 0.0 if cap < 0.0 else (1.0 if cap > 1.0 else cap)
            amt = phg[q] * LD[dep[q]] * cap
            bare = LD[dep[q]] * cap
            for j in range(mech.size):
                if mech[j] == MECH_GAIN:
                    # the catch-like gain is not fatigue: a fatigued cell sets it alike
                    v = pgains[j] * ((phg[q] if use_fat[j] else 1.0) * LD[dep[q]] * pw[wrow, j])
                else:
                    v = pgains[j] * ((amt if use_fat[j] else bare) * pw[wrow, j])
                if sat[j] > 0.0:
                    # a fraction of the way to the saturation level: 0 ≤ X ≤ S for any pattern
                    v = (v if v < 1.0 else 1.0) * (sat[j] - X[q, j])
                X[q, j] += v
    return _at(afac, gb, gi)


@jit(error_model="numpy", nogil=True, inline="always")
def _hermite_max(f0, d0, f1, d1, h):
    """Largest value of the cubic Hermite interpolant of a node step from the force and its
    slope at both ends (``d0 > 0 > d1``: one maximum inside the step).

    A contraction's peak between nodes: the ODE gives dF/dt exactly at each node, and a twitch
    peaks in the relaxation tail, where node steps grow to 20 ms (``TAIL_STEP``); the largest
    node value there was 0.6-1.1 % of the peak low (issue 3, session 10).
    """
    m0 = d0 * h
    m1 = d1 * h
    df = f1 - f0
    c2 = 3.0 * df - 2.0 * m0 - m1
    c3 = m0 + m1 - 2.0 * df
    # p'(u) = m0 + 2·c2·u + 3·c3·u², positive at 0 and negative at 1: one root in (0, 1),
    # taken in the form without cancellation
    disc = c2 * c2 - 3.0 * c3 * m0
    disc = 0.0 if disc < 0.0 else disc
    qd = -(c2 + (np.sqrt(disc) if c2 >= 0.0 else -np.sqrt(disc)))
    u = m0 / qd if qd != 0.0 else 0.5
    if not 0.0 < u < 1.0:
        u = qd / (3.0 * c3) if c3 != 0.0 else 0.5
    u = 0.0 if u < 0.0 else (1.0 if u > 1.0 else u)
    return f0 + u * (m0 + u * (c2 + u * c3))


@jit(error_model="numpy", nogil=True, fastmath=True, inline="always")
def _interval(b, i, grid, rows, p0, prm, defs, fatigue, want_nodes, cw, st, ws, fnod, dfnod,
              tangent):
    """Integrate interval i of a unit for row b (pulse i, then the node steps to pulse i+1 or,
    for the last pulse, to the end of the tail). Updates the state ``st`` in place; returns the
    interval's force-time integral and peak total force, and leaves each cell's peak in
    ``ws[5]`` and, with ``tangent``, ∂F_end/∂F_start of each cell in ``ws[13]`` (the force
    equation is linear in F, so this is the interval's multiplier of a change of start force);
    with both ``tangent`` and ``want_nodes``, that multiplier at each node of the interval and
    its time derivative in ``ws[14]`` (2, cells, node offset in the interval).
    Peaks inside a node step (where dF/dt turns from rising to falling) are the maximum of the
    step's cubic Hermite interpolant (:func:`_hermite_max`), the curve the force trace samples.

    The fatigue parameters (A, τ1, Km) are held over the interval at their predicted midpoint
    value (the state after the pulse plus half the previous interval's drift); the deficits
    take the exact decay over the interval plus the integral of the force drive. In the
    relaxation tail, in intervals longer than ``PER_STEP_INTERVAL`` and where the catch-like
    gain moves, deficits and parameters are updated at every node step instead.
    """
    h_step, dc, dch, pulse_node, idec, igm, same_prev, ilen, sdec, sgm, grid_run_end = grid
    a_rest, tau1_rest, tau2, km_rest, tau_c, has_pulse, occl_a, occl_b, tol = prm
    W, aw, t1c, t2c, phg, dep, edges, width = cw
    mech = defs[2]
    nd = mech.size
    F, X, E, CN, dXc = st
    a, t1, km, s0, b0, cpk, I, Xs, Fn, CM, CE, LD, xm, gt, gq = ws
    na = F.size
    D = E.size
    n_p = pulse_node.size
    N = h_step.size + 1
    k0 = pulse_node[i]
    k1 = pulse_node[i + 1] if i + 1 < n_p else N - 1
    afac_cur = _apply_pulse(b, p0 + i, rows, edges, width, tau_c, E, LD, X, phg, dep, na, defs,
                            has_pulse, fatigue)
    ratio = 0.0
    if i > 0 and ilen[i - 1] > 0.0:
        ratio = 0.5 * ilen[i] / ilen[i - 1]
    # in the relaxation tail the force, and so the drive, falls within the interval: the
    # deficits and parameters are updated at every step there instead; so too where the gain
    # (catch-like, decaying in about a second) moves Km within the interval
    per_step = fatigue and (i + 1 == n_p or ilen[i] > PER_STEP_INTERVAL
                            or _gain_moves(X, mech, idec[i], na))
    if per_step:
        # the first step's parameters at its predicted midpoint (the previous interval's drift)
        ratio = 0.5 * h_step[k0] / ilen[i - 1] if i > 0 and ilen[i - 1] > 0.0 and k0 < k1 \
            else 0.0
    for q in range(na):
        x0 = 0.0
        x1 = 0.0
        x2 = 0.0
        x3 = 0.0
        for j in range(nd):
            Xs[q, j] = X[q, j]
            v = X[q, j] + ratio * dXc[q, j]
            mj = mech[j]
            if mj == 0:
                x0 += v
            elif mj == 1:
                x1 += v
            elif mj == 2:
                x2 += v
            else:
                # the catch-like gain only decays between pulses: its midpoint value is exact (of
                # the first node step where Km is updated per step)
                x3 += X[q, j] * np.sqrt((sdec[k0, j] if k0 < k1 else 1.0) if per_step
                                        else idec[i, j])
        cap = 1.0 - x0
        a[q] = aw[q] * afac_cur * (cap if cap > 0.0 else 0.0)
        t1[q] = t1c[q] * (1.0 + x1)
        # the catch-like gain raises calcium sensitivity: it adds force where CN is not
        # saturated and none above the fused tetanus (F → A·(τ1 + τ2) as CN ≫ Km)
        km[q] = km_rest * (1.0 + x2) / (1.0 + x3)
        gt[q] = 1.0
        c0 = CN[dep[q]]
        den1 = km[q] + c0
        r = 1.0 / (den1 * (t1[q] * den1 + t2c[q] * c0))
        s0[q] = c0 * (t1[q] * den1 + t2c[q] * c0) * r
        b0[q] = den1 * den1 * r
        I[q] = 0.0
        cpk[q] = F[q]
    ftot0 = 0.0
    for q in range(na):
        ftot0 += F[q]
    pk = ftot0
    area = 0.0
    sl1tot = 0.0
    for k in range(k0, k1):
        h = h_step[k]
        hh = 0.5 * h
        h6 = h * (1.0 / 6.0)
        h12 = h * h * (1.0 / 12.0)
        for d in range(D):
            CM[d] = (CN[d] + E[d] * hh) * dch[k]
            CE[d] = (CN[d] + E[d] * h) * dc[k]
        ftot1 = 0.0
        sl0tot = 0.0
        sl1tot = 0.0
        if want_nodes and tangent:
            for q in range(na):
                gq[0, q, k - k0] = gt[q]
                gq[1, q, k - k0] = -b0[q] * gt[q]
        for q in range(na):
            dq = dep[q]
            kq = km[q]
            t1q = t1[q]
            t2q = t2c[q]
            cm = CM[dq]
            c1 = CE[dq]
            # s = c/(Km + c) and b = 1/(τ1 + τ2·s) at the midpoint and the end of the step,
            # with one division for both (divisions dominate the step's cost)
            dm1 = kq + cm
            dm2 = t1q * dm1 + t2q * cm
            de1 = kq + c1
            de2 = t1q * de1 + t2q * c1
            pm = dm1 * dm2
            pe = de1 * de2
            inv = 1.0 / (pm * pe)
            r = pe * inv
            sm = cm * dm2 * r
            bm = dm1 * dm1 * r
            r = pm * inv
            s1 = c1 * de2 * r
            b1 = de1 * de1 * r
            aq = a[q]
            F0 = F[q]
            k1_ = aq * s0[q] - b0[q] * F0
            k2_ = aq * sm - bm * (F0 + hh * k1_)
            k3_ = aq * sm - bm * (F0 + hh * k2_)
            k4_ = aq * s1 - b1 * (F0 + h * k3_)
            F1 = F0 + h6 * (k1_ + 2.0 * k2_ + 2.0 * k3_ + k4_)
            sl1 = aq * s1 - b1 * F1
            if tangent:
                # the same RK4 step of the homogeneous equation dg/dt = −b·g
                g0 = gt[q]
                l1 = -b0[q] * g0
                l2 = -bm * (g0 + hh * l1)
                l3 = -bm * (g0 + hh * l2)
                l4 = -b1 * (g0 + h * l3)
                gt[q] = g0 + h6 * (l1 + 2.0 * l2 + 2.0 * l3 + l4)
            # trapezoid plus the Hermite end-slope correction
            area += hh * (F0 + F1) + h12 * (k1_ - sl1)
            s0[q] = s1
            b0[q] = b1
            Fn[q] = F1
            if F1 > cpk[q]:
                cpk[q] = F1
            if k1_ > 0.0 and sl1 < 0.0:
                # the cell peaks inside the step
                v = _hermite_max(F0, k1_, F1, sl1, h)
                if v > cpk[q]:
                    cpk[q] = v
            ftot1 += F1
            sl0tot += k1_
            sl1tot += sl1
        if want_nodes:
            fnod[k] = ftot0
            dfnod[k] = sl0tot
        if sl0tot > 0.0 and sl1tot < 0.0:
            v = _hermite_max(ftot0, sl0tot, ftot1, sl1tot, h)
            if v > pk:
                pk = v
        om0 = occl_a + occl_b * ftot0
        om1 = occl_a + occl_b * ftot1
        for q in range(na):
            I[q] += hh * (om0 * F[q] + om1 * Fn[q])
            F[q] = Fn[q]
        if per_step:
            for q in range(na):
                dr = phg[q] / W[q] * I[q]
                I[q] = 0.0
                x0 = 0.0
                x1 = 0.0
                x2 = 0.0
                x3 = 0.0
                kn = k + 1 if k + 1 < k1 else k
                hr = 0.5 * h_step[kn] / h
                for j in range(nd):
                    xo = X[q, j]
                    X[q, j] = X[q, j] * sdec[k, j] + sgm[k, j] * dr
                    # held over the next step at its predicted midpoint value (this step's
                    # drift; exact for the catch-like gain, which only decays)
                    v = X[q, j] + hr * (X[q, j] - xo)
                    mj = mech[j]
                    if mj == 0:
                        x0 += v
                    elif mj == 1:
                        x1 += v
                    elif mj == 2:
                        x2 += v
                    else:
                        x3 += X[q, j] * np.sqrt(sdec[kn, j])
                cap = 1.0 - x0
                a[q] = aw[q] * afac_cur * (cap if cap > 0.0 else 0.0)
                t1[q] = t1c[q] * (1.0 + x1)
                km[q] = km_rest * (1.0 + x2) / (1.0 + x3)
                c0 = CE[dep[q]]
                den1 = km[q] + c0
                r = 1.0 / (den1 * (t1[q] * den1 + t2c[q] * c0))
                s0[q] = c0 * (t1[q] * den1 + t2c[q] * c0) * r
                b0[q] = den1 * den1 * r
        for d in range(D):
            E[d] = E[d] * dc[k]
            CN[d] = CE[d]
        ftot0 = ftot1
        if ftot1 > pk:
            pk = ftot1
    if want_nodes and k1 == N - 1:
        fnod[N - 1] = ftot0
        dfnod[N - 1] = sl1tot
    if fatigue and not per_step:
        for q in range(na):
            dr = phg[q] / W[q] * I[q]
            for j in range(nd):
                X[q, j] = X[q, j] * idec[i, j] + igm[i, j] * dr
                dXc[q, j] = X[q, j] - Xs[q, j]
    elif per_step:
        # the drift the next interval's midpoint prediction uses
        for q in range(na):
            for j in range(nd):
                dXc[q, j] = X[q, j] - Xs[q, j]
    return area, pk


@jit(error_model="numpy", nogil=True, inline="always")
def _pack(S, F, X):
    """S[q] = (F[q], X[q, 0…]): a cell's state as one row."""
    for q in range(F.size):
        S[q, 0] = F[q]
        for j in range(X.shape[1]):
            S[q, j + 1] = X[q, j]


@jit(error_model="numpy", nogil=True, inline="always")
def _steps_of(pulse_node, i, last):
    return (pulse_node[i + 1] if i + 1 < pulse_node.size else last) - pulse_node[i]


@jit(error_model="numpy", nogil=True, inline="always")
def _sum_weights(x0, x1, x2, m, w):
    """``w[k] = Σ_{r=1}^{m−1} L_k(r)``: weights that sum a quadratic through the values at
    x0, x1, x2 over the integers 1 … m−1 (with x0 = x1, the line through x1 and x2: w[0] = 0).
    """
    n0 = m - 1.0
    s1 = (m - 1.0) * m * 0.5
    s2 = (m - 1.0) * m * (2.0 * m - 1.0) / 6.0
    if x0 == x1:
        w[0] = 0.0
        w[1] = (s1 - x2 * n0) / (x1 - x2)
        w[2] = (s1 - x1 * n0) / (x2 - x1)
        return
    w[0] = (s2 - (x1 + x2) * s1 + x1 * x2 * n0) / ((x0 - x1) * (x0 - x2))
    w[1] = (s2 - (x0 + x2) * s1 + x0 * x2 * n0) / ((x1 - x0) * (x1 - x2))
    w[2] = (s2 - (x0 + x1) * s1 + x0 * x1 * n0) / ((x2 - x0) * (x2 - x1))


@jit(error_model="numpy", nogil=True, inline="always")
def _ecn_ahead(E1, CN1, J, rho, dt, n, E, CN):
    """E and CN n identical intervals after (E1, CN1), exactly: each interval maps
    ``E → ρ·(E + J)``, ``CN → ρ·(CN + Δ·(E + J))``, whose deviations from the fixed point
    (E*, CN*) decay as ``e → ρ·e``, ``c → ρ·(c + Δ·e)``."""
    rn = rho ** n
    for d in range(E.size):
        es = rho * J[d] / (1.0 - rho)
        cs = rho * dt * J[d] / ((1.0 - rho) * (1.0 - rho))
        e1 = E1[d] - es
        E[d] = es + rn * e1
        CN[d] = cs + rn * (CN1[d] - cs + n * dt * e1)


@jit(error_model="numpy", nogil=True, inline="always")
def _geometric_sum(d0, ratio, gap, m):
    """``Σ_{r=1}^{m−1} d0·ρ^r`` with ``ρ^gap = ratio``, ``0 < ratio < 1``: the increments of a
    state whose map over identical intervals is affine (``x → a·x + b``: increments
    ``d_{r+1} = a·d_r``), summed over the intervals a step skips."""
    lr = np.log(ratio) / gap
    return d0 * np.exp(lr) * np.expm1((m - 1.0) * lr) / np.expm1(lr)


@jit(error_model="numpy", nogil=True, inline="always")
def _is_geometric(mj, d_old, d_new):
    """Whether a deficit's skipped increments are summed as a geometric sequence: the
    catch-like gain (mechanism 3: no force drive, so its map over identical intervals is affine
    and its increments geometric; as quadratics it ended 2.2e-3 relative off after 20 minutes
    of doublet-onset trains) whose increments decay from ``d_old`` to ``d_new``."""
    return mj == MECH_GAIN and d_old != 0.0 and 0.0 < d_new / d_old < 1.0


@jit(error_model="numpy", nogil=True, inline="always")
def _skipped_increments(wc, mj, d1, d2, dm, m):
    """Corrected sum of a deficit's skipped increments (relative to the step's start): the
    quadratic through d1, d2 and the new increment dm, or the geometric sequence through d2 and
    dm (:func:`_is_geometric`)."""
    if _is_geometric(mj, d2, dm):
        return _geometric_sum(d2, dm / d2, float(m), m)
    return wc[0] * d1 + wc[1] * d2 + wc[2] * dm


@jit(error_model="numpy", nogil=True, inline="always")
def _coef(x0, y0, x1, y1, x2, y2):
    """(c0, c1, c2) of the quadratic c0 + c1·r + c2·r² through (x0, y0), (x1, y1), (x2, y2)
    (with x0 = x1, the line through the last two points)."""
    if x0 == x1:
        s = (y2 - y1) / (x2 - x1)
        return y1 - s * x1, s, 0.0
    w0 = y0 / ((x0 - x1) * (x0 - x2))
    w1 = y1 / ((x1 - x0) * (x1 - x2))
    w2 = y2 / ((x2 - x0) * (x2 - x1))
    return (w0 * x1 * x2 + w1 * x0 * x2 + w2 * x0 * x1,
            -(w0 * (x1 + x2) + w1 * (x0 + x2) + w2 * (x0 + x1)), w0 + w1 + w2)


@jit(error_model="numpy", nogil=True, inline="always")
def _force_run(x0, g0, s0, x1, g1, s1, x2, g2, s2, m, f1, cf, q):
    """A cell's force over a step: ``cf[q]`` = (g, p0, p1, p2, e) such that the force at the
    start of interval r (r = 1 … m, interval 1 the first skipped one, starting at ``f1``) is
    ``p0 + p1·r + p2·r² + g^{r−1}·e``; returns it at r = m.

    Each interval maps ``F ← g·F + (1 − g)·F*`` exactly (the force equation is linear in F;
    g = ∂F_end/∂F_start). The quasi-steady force F* and g of the run's intervals are the
    quadratics through (x0, g0, s0), (x1, g1, s1), (x2, g2, s2) (x0 = x1: lines); g
    is held at its value mid-step (it drifts slowly and acts only on the decaying deviation
    from the particular solution, which follows F* with its lag), so the recursion is summed
    in closed form.
    """
    a0, a1, a2 = _coef(x0, g0, x1, g1, x2, g2)
    r = 0.5 * m
    g = a0 + r * (a1 + r * a2)
    g = 0.0 if g < 0.0 else (G_MAX if g > G_MAX else g)
    s0, s1, s2 = _coef(x0, s0, x1, s1, x2, s2)
    u = 1.0 / (1.0 - g)
    # the particular solution P(r + 1) = g·P(r) + (1 − g)·F*(r)
    p2 = s2
    p1 = s1 - 2.0 * p2 * u
    p0 = s0 - (p1 + p2) * u
    e = f1 - (p0 + p1 + p2)
    gn = g ** (m - 1)
    cf[q, 0] = g
    cf[q, 1] = p0
    cf[q, 2] = p1
    cf[q, 3] = p2
    cf[q, 4] = e
    cf[q, 5] = gn
    return p0 + m * (p1 + m * p2) + gn * e


@jit(error_model="numpy", nogil=True, inline="always")
def _force_at(cf, q, r, gr):
    """The force at the start of interval r of a step, g^{r−1} = ``gr`` (see
    :func:`_force_run`)."""
    return cf[q, 1] + r * (cf[q, 2] + r * cf[q, 3]) + gr * cf[q, 4]


@jit(error_model="numpy", nogil=True, inline="always")
def _force_sum(cf, q, m):
    """Sum of the force at the starts of intervals 1 … m−1 of a step (see :func:`_force_run`)."""
    n = m - 1.0
    s1 = (m - 1.0) * m * 0.5
    s2 = (m - 1.0) * m * (2.0 * m - 1.0) / 6.0
    return cf[q, 1] * n + cf[q, 2] * s1 + cf[q, 3] * s2 \
        + cf[q, 4] * (1.0 - cf[q, 5]) / (1.0 - cf[q, 0])


@jit(error_model="numpy", nogil=True, inline="always")
def _copy_rest(dXc, E, CN, dXc2, E2, CN2):
    """(dXc2, E2, CN2) ← (dXc, E, CN): the rest of a row's state besides F and X (copied
    element-wise: slice assignments would cost array views in the stepping loop)."""
    for q in range(dXc.shape[0]):
        for j in range(dXc.shape[1]):
            dXc2[q, j] = dXc[q, j]
    for d in range(E.size):
        E2[d] = E[d]
        CN2[d] = CN[d]


@jit(error_model="numpy", nogil=True, inline="always")
def _push(hist, dh0, dh1, dh2, F, X, S0, pos, a, pk, gh, gt, ilen):
    """Append an integrated interval to the stepping history, dropping the oldest: its
    increment from ``S0`` to (F, X), the residuals of its force-time integral and peak, its
    position and start force (``hist`` rows 0–3), and its force map g, F* and start force per
    cell (``gh``)."""
    for q in range(F.size):
        for j in range(X.shape[1] + 1):
            dh0[q, j] = dh1[q, j]
            dh1[q, j] = dh2[q, j]
            dh2[q, j] = (F[q] if j == 0 else X[q, j - 1]) - S0[q, j]
    for k in range(2):
        for r in range(4):
            hist[r, k] = hist[r, k + 1]
    # the integral and peak less what the start force carries into them (its deviation from
    # the quasi-steady force decays by g over the interval; for the peak, the start force
    # itself fits best): the residuals are smooth in the interval index even while the force
    # still approaches its plateau
    fs = 0.0
    fw = 0.0
    for q in range(F.size):
        fs += S0[q, 0]
        fw += 0.5 * (1.0 + gt[q]) * S0[q, 0]
    hist[0, 2] = a - ilen * fw
    hist[1, 2] = pk - fs
    hist[2, 2] = pos
    hist[3, 2] = fs
    # the force map of the interval, F_end = g·F_start + (1 − g)·F*
    for q in range(F.size):
        for k in range(2):
            gh[0, k, q] = gh[0, k + 1, q]
            gh[1, k, q] = gh[1, k + 1, q]
            gh[2, k, q] = gh[2, k + 1, q]
        gh[2, 2, q] = S0[q, 0]
        g = gt[q] if gt[q] < G_MAX else G_MAX
        gh[0, 2, q] = g
        gh[1, 2, q] = (F[q] - g * S0[q, 0]) / (1.0 - g)


#: A pulse drives its contraction fully when its drive (recruitment × amplitude factor ×
#: pulse-duration factor) is within this fraction of the contraction's strongest: the plateau,
#: not a ramp. Recruitment comes in steps of 1e-3 of the pool (``recruitment_levels``), so on a
#: plateau the drives are equal and a ramp's pulses differ by more.
FULL_DRIVE_TOL = 1e-3


@jit(error_model="numpy", nogil=True, inline="always")
def _last_full_pulse(gb, p0, n_p, afac, lam, recr):
    """Index, in its contraction, of the last pulse that drives the contraction fully
    (``FULL_DRIVE_TOL``): where the plateau ends and a ramp-down, if any, begins."""
    top = 0.0
    for i in range(n_p):
        v = _at(recr, gb, p0 + i) * _at(lam, gb, p0 + i) * _at(afac, gb, p0 + i)
        top = v if v > top else top
    for i in range(n_p - 1, -1, -1):
        if _at(recr, gb, p0 + i) * _at(lam, gb, p0 + i) * _at(afac, gb, p0 + i) \
                >= top * (1.0 - FULL_DRIVE_TOL):
            return i
    return n_p - 1


# no reference counting (module docstring): the inlined interval alone unpacks ~50 arrays
@jit(error_model="numpy", nogil=True, fastmath=True, _nrt=False)
def _contraction(b, grid, rem, rows, p0, prm, defs, fatigue, want_nodes, cw, st, ws, sbuf,
                 fnod, dfnod, cpk_all, fend, t1end):
    """Integrate one contraction of row b and the rest after it, in place: ``st`` =
    (F, X, E, CN, dXc) of the row's integrated cells holds the state at the contraction's
    start and, on return, at the next one's. Returns the force-time integral, the peak force,
    the node steps integrated and the end-of-plateau force (the largest total force from the
    start of the last pulse that drives the contraction fully, :func:`_last_full_pulse`, to the
    end of the contraction: the ripple or twitch peak of the plateau's last pulse, with what any
    weaker pulses after it add before the force falls); leaves each cell's peak in ``cpk_all``, its force and τ1 at the
    last node in ``fend``/``t1end`` and, with ``want_nodes``, the force and its slope at the
    nodes in ``fnod``/``dfnod``.

    Runs of identical intervals (a constant-rate plateau, once E and CN repeat from pulse to
    pulse) are stepped over by envelope following: the kernel integrates every m-th interval,
    predicts the state at its start from the last integrated ones, corrects the prediction
    with the newly integrated interval and adapts m to keep the difference below ``tol``. The
    deficits' per-interval increments are smooth in the interval index (quadratics). The force
    is not while it still approaches its plateau, but each interval maps it exactly as
    ``F ← g·F + (1 − g)·F*`` (the equation is linear in F; g = ∂F_end/∂F_start is integrated
    alongside), and g and the quasi-steady force F* are smooth: the force is carried through
    the skipped intervals' maps in closed form (:func:`_force_run`). The skipped intervals'
    force-time integrals, peaks and node values are interpolated as residuals from their start
    forces.
    """
    h_step, dc, dch, pulse_node, idec, igm, same_prev, ilen, sdec, sgm, grid_run_end = grid
    a_rest, tau1_rest, tau2, km_rest, tau_c, has_pulse, occl_a, occl_b, tol = prm
    gains, mech, taus = defs[0], defs[2], defs[3]
    nd = mech.size
    W, aw, t1c, t2c, phg, dep, redges, width = cw
    F, X, E, CN, dXc = st
    rfac, afac, lam, recr, ridx = rows
    run_buf, buf, dXc_now, ebuf, hist, wp, wc, gh, cf = sbuf
    gt = ws[13]
    gq = ws[14]
    gb = ridx[b]
    na = F.size
    D = E.size
    n_p = pulse_node.size
    cpk_iv = ws[5]
    n_steps = 0
    ftot = 0.0
    for q in range(na):
        ftot += F[q]
        cpk_all[q] = F[q]
        for j in range(nd):
            dXc[q, j] = 0.0
    pk = ftot
    pe = 0.0
    area = 0.0

    # last interval of the run of identical intervals that starts at each interval (this row;
    # for factors constant over the pulses, the grid's own)
    full = n_p - 1
    if afac.shape[1] == 1 and lam.shape[1] == 1 and recr.shape[1] == 1:
        run_end = grid_run_end
    else:
        # no run of identical intervals passes it (the next pulse drives less), so the
        # intervals from it on are all integrated or all stepped over by steps starting there
        full = _last_full_pulse(gb, p0, n_p, afac, lam, recr)
        run_end = run_buf[:n_p]
        run_end[n_p - 1] = n_p - 1
        for i in range(n_p - 2, -1, -1):
            g0 = p0 + i
            same = same_prev[i + 1] and _at(recr, gb, g0 + 1) == _at(recr, gb, g0) \
                and _at(lam, gb, g0 + 1) == _at(lam, gb, g0) \
                and _at(afac, gb, g0 + 1) == _at(afac, gb, g0)
            run_end[i] = run_end[i + 1] if same else i
    stepping = tol > 0.0 and fatigue
    # per cell (F, deficits): the state at the start of the last integrated interval, at the
    # start of the next, the predicted start of a step's target interval, and the increments of
    # the last three integrated intervals of the run (oldest first) with their positions, force-
    # time integrals and peaks
    S0, S_now, S_pred, dh0, dh1, dh2 = buf[0], buf[1], buf[2], buf[3], buf[4], buf[5]
    E0, CN0, E_now, CN_now, J = ebuf[0], ebuf[1], ebuf[2], ebuf[3], ebuf[4]
    n_hist = 0
    m_try = 2
    rho = 0.5
    tang = False
    i = 0
    while i < n_p:
        _pack(S0, F, X)
        for d in range(D):
            E0[d] = E[d]
            CN0[d] = CN[d]
        a_i, pk_i = _interval(b, i, grid, rows, p0, prm, defs, fatigue, want_nodes, cw, st, ws,
                              fnod, dfnod, tang)
        n_steps += _steps_of(pulse_node, i, h_step.size)
        area += a_i
        if pk_i > pk:
            pk = pk_i
        if i >= full and pk_i > pe:
            pe = pk_i
        for q in range(na):
            if cpk_iv[q] > cpk_all[q]:
                cpk_all[q] = cpk_iv[q]
        # E and CN repeat from interval to interval once the plateau has settled
        periodic = stepping and run_end[i] >= i + 2
        if periodic:
            for d in range(D):
                if abs(E[d] - E0[d]) > PERIODIC_TOL * (abs(E[d]) + 1e-300) \
                        or abs(CN[d] - CN0[d]) > PERIODIC_TOL * (abs(CN[d]) + 1e-300):
                    periodic = False
        if not periodic or not tang:
            # the force map (g) is integrated from the interval after the first periodic one
            tang = periodic
            n_hist = 0
            i += 1
            continue
        # the jump of E at each pulse of the run: E_end = ρ·(E_start + J)
        rho = np.exp(-ilen[i] / tau_c)
        for d in range(D):
            J[d] = E[d] / rho - E0[d]
        _push(hist, dh0, dh1, dh2, F, X, S0, i, a_i, pk_i, gh, gt, ilen[i])
        n_hist = min(n_hist + 1, 3)
        if n_hist < 2:
            i += 1
            continue
        # step over intervals i+1 … i+m−1 and integrate interval i+m
        while True:
            m = min(m_try, run_end[i] - i)
            if m < 2:
                break
            _pack(S_now, F, X)
            _copy_rest(dXc, E, CN, dXc_now, E_now, CN_now)
            fscale = pk if pk > 1e-12 else 1e-12
            # positions of the history's intervals relative to i
            xa = hist[2, 0] - i
            xb = hist[2, 1] - i
            # predictor: the increments extrapolated from the history (quadratic once there
            # are three points), summed over the skipped intervals
            if n_hist >= 3:
                _sum_weights(xa, xb, 0.0, m, wp)
            else:
                _sum_weights(xb, xb, 0.0, m, wp)
            x0 = xa if n_hist >= 3 else xb
            for q in range(na):
                for j in range(1, nd + 1):
                    if _is_geometric(mech[j - 1], dh1[q, j], dh2[q, j]):
                        v = _geometric_sum(dh2[q, j], dh2[q, j] / dh1[q, j], -xb, m)
                    else:
                        v = wp[0] * dh0[q, j] + wp[1] * dh1[q, j] + wp[2] * dh2[q, j]
                    S_pred[q, j] = S_now[q, j] + v
                # the force through the maps of the skipped intervals, g and F* extrapolated
                S_pred[q, 0] = _force_run(x0, gh[0, 0, q], gh[1, 0, q], xb, gh[0, 1, q],
                                          gh[1, 1, q], 0.0, gh[0, 2, q], gh[1, 2, q], m,
                                          S_now[q, 0], cf, q)
                F[q] = S_pred[q, 0]
                for j in range(nd):
                    X[q, j] = S_pred[q, j + 1]
            _ecn_ahead(E_now, CN_now, J, rho, ilen[i], m - 1, E, CN)
            a_m, pk_m = _interval(b, i + m, grid, rows, p0, prm, defs, fatigue, want_nodes, cw,
                                  st, ws, fnod, dfnod, True)
            n_steps += _steps_of(pulse_node, i + m, h_step.size)
            # corrector: the quadratics through the last two points and the new one (the new
            # interval was integrated from the predicted start; its force map does not depend
            # on the start force, its deficit increments hardly)
            _sum_weights(xb, 0.0, float(m), m, wc)
            err = 0.0
            # the force: the maps of the skipped intervals with g and F* interpolated through
            # the new interval's; the predicted start force, total and weighted by what it
            # carries into the interval's integral
            fw_m = 0.0
            fs_m = 0.0
            for q in range(na):
                gm = gt[q] if gt[q] < G_MAX else G_MAX
                fc = _force_run(xb, gh[0, 1, q], gh[1, 1, q], 0.0, gh[0, 2, q],
                                gh[1, 2, q], float(m), gm, (F[q] - gm * S_pred[q, 0]) / (1.0 - gm),
                                m, S_now[q, 0], cf, q)
                S0[q, 0] = fc
                fw_m += 0.5 * (1.0 + gt[q]) * S_pred[q, 0]
                fs_m += S_pred[q, 0]
                v = abs(fc - S_pred[q, 0]) / fscale
                err = v if v > err else err
            for q in range(na):
                for j in range(1, nd + 1):
                    dm = X[q, j - 1] - S_pred[q, j]
                    pred = S_pred[q, j] - S_now[q, j]
                    corr = _skipped_increments(wc, mech[j - 1], dh1[q, j], dh2[q, j], dm, m)
                    scale = 1.0 + abs(S_now[q, j] + corr)
                    v = abs(corr - pred) / scale
                    err = v if v > err else err
            if err > tol:
                for q in range(na):
                    F[q] = S_now[q, 0]
                    for j in range(nd):
                        X[q, j] = S_now[q, j + 1]
                _copy_rest(dXc_now, E_now, CN_now, dXc, E, CN)
                if m > 2:
                    m_try = max(2, m // 2)
                    continue
                # not smooth enough to skip even one interval: integrate the next one
                m_try = 2
                break
            # accept: the corrected start of interval i+m plus its increment; the skipped
            # intervals' integrals and peaks from the same quadratic, their nodes interpolated
            for q in range(na):
                if cpk_iv[q] > cpk_all[q]:
                    cpk_all[q] = cpk_iv[q]
                # S0[q, 0] holds the corrected start force (the corrector above)
                F[q] = F[q] + gt[q] * (S0[q, 0] - S_pred[q, 0])
                for j in range(1, nd + 1):
                    dm = X[q, j - 1] - S_pred[q, j]
                    pred = S_pred[q, j] - S_now[q, j]
                    corr = _skipped_increments(wc, mech[j - 1], dh1[q, j], dh2[q, j], dm, m)
                    S0[q, j] = S_now[q, j] + corr
                    X[q, j - 1] = S0[q, j] + dm
            # the new interval's integral and peak at its corrected start
            dw = 0.0
            ds = 0.0
            for q in range(na):
                dw += 0.5 * (1.0 + gt[q]) * (S0[q, 0] - S_pred[q, 0])
                ds += S0[q, 0] - S_pred[q, 0]
            res_a = a_m - ilen[i] * fw_m
            res_p = pk_m - fs_m
            a_m += ilen[i] * dw
            pk_m += ds
            area += wc[0] * hist[0, 1] + wc[1] * hist[0, 2] + wc[2] * res_a + a_m
            for q in range(na):
                area += ilen[i] * 0.5 * (1.0 + cf[q, 0]) * _force_sum(cf, q, float(m))
            # the skipped intervals' peaks: their start forces plus the quadratic of the
            # residuals, at both ends and where the quadratic part peaks
            c0, c1, c2 = _coef(xb, hist[1, 1], 0.0, hist[1, 2], float(m), res_p)
            r0, r1, r2 = c0, c1, c2
            for q in range(na):
                c1 += cf[q, 2]
                c2 += cf[q, 3]
            rv = -c1 / (2.0 * c2) if c2 < 0.0 else 1.0
            rv = 1.0 if rv < 1.0 else (m - 1.0 if rv > m - 1.0 else rv)
            for r in (1.0, m - 1.0, np.floor(rv), np.ceil(rv)):
                v = r0 + r * (r1 + r * r2)
                for q in range(na):
                    if r == 1.0:
                        gr = 1.0
                    elif r == m - 1.0:
                        gr = cf[q, 5] / cf[q, 0] if cf[q, 0] > 0.0 else 0.0
                    else:
                        gr = cf[q, 0] ** (r - 1.0)
                    v += _force_at(cf, q, r, gr)
                pk = v if v > pk else pk
                if i >= full and v > pe:
                    pe = v
            if pk_m > pk:
                pk = pk_m
            if i + m >= full and pk_m > pe:
                pe = pk_m
            if want_nodes:
                # node values of the skipped intervals: the quadratic through the same nodes of
                # the last two integrated intervals and the new one, each shifted by what the
                # difference of its cells' start forces from the skipped interval's carries to
                # the node (∂F(t)/∂F_start, ``gq``, of the new interval): in an unfused train
                # a start force's deviation decays to g ≈ 0.2 within the interval, and held
                # (shifted alike at every node) it put the 12 Hz trace 2.1e-3 of the peak off
                ip = int(hist[2, 1])
                kp, ka, kb = pulse_node[ip], pulse_node[i], pulse_node[i + m]
                n_sub = pulse_node[i + 1] - ka
                # the new interval's nodes from its corrected start
                for o in range(_steps_of(pulse_node, i + m, h_step.size)):
                    for q in range(na):
                        fnod[kb + o] += gq[0, q, o] * (S0[q, 0] - S_pred[q, 0])
                        dfnod[kb + o] += gq[1, q, o] * (S0[q, 0] - S_pred[q, 0])
                x0 = xb
                xm_ = float(m)
                for qq in range(1, m):
                    r = float(qq)
                    l0 = r * (r - xm_) / (x0 * (x0 - xm_))
                    l1 = (r - x0) * (r - xm_) / (x0 * xm_)
                    l2 = (r - x0) * r / ((xm_ - x0) * xm_)
                    base = pulse_node[i + qq]
                    for q in range(na):
                        # the cell's start force less the interpolated ones (into ``cf``'s
                        # column of g^{m−1}, which the peaks above were the last to use)
                        cf[q, 5] = _force_at(cf, q, r, cf[q, 0] ** (r - 1.0)) - (
                            l0 * gh[2, 1, q] + l1 * gh[2, 2, q] + l2 * S0[q, 0])
                    for o in range(n_sub):
                        vf = l0 * fnod[kp + o] + l1 * fnod[ka + o] + l2 * fnod[kb + o]
                        vd = l0 * dfnod[kp + o] + l1 * dfnod[ka + o] + l2 * dfnod[kb + o]
                        for q in range(na):
                            vf += gq[0, q, o] * cf[q, 5]
                            vd += gq[1, q, o] * cf[q, 5]
                        fnod[base + o] = vf
                        dfnod[base + o] = vd
            _push(hist, dh0, dh1, dh2, F, X, S0, i + m, a_m, pk_m, gh, gt, ilen[i])
            n_hist = 3
            i = i + m
            # the error of a quadratic corrector grows as m⁴
            if err < 1e-12:
                grow = 2.0
            else:
                grow = min(2.0, max(0.5, 0.9 * (tol / err) ** 0.25))
            m_try = max(2, int(m * grow))
            if run_end[i] < i + 2:
                break
        i += 1

    # rest after the last node: exact decay of every state
    dcr = np.exp(-rem / tau_c)
    for d in range(D):
        CN[d] = (CN[d] + E[d] * rem) * dcr
        E[d] = E[d] * dcr
    ftot = 0.0
    for q in range(na):
        ftot += F[q]
    for q in range(na):
        t1 = t1c[q] * (1.0 + _mech_sum(X, q, mech, 1))
        if rem > 0.0:
            # what is left of the force decays as F·e^{−t/τ1} (CN ≈ 0 by then): its integral,
            # and the fatigue drive it still causes (early in the rest, hence then decayed)
            j1 = F[q] * t1 * -np.expm1(-rem / t1)
            area += j1
            if fatigue:
                j2 = F[q] * ftot * 0.5 * t1 * -np.expm1(-2.0 * rem / t1)
                dr = phg[q] / W[q] * (occl_a * j1 + occl_b * j2)
                # the gains of the contraction's last pulse (its economy factor, when set)
                gl = p0 + pulse_node.size - 1 if gains.shape[0] > 1 else 0
                for j in range(nd):
                    X[q, j] += gains[gl, j] * dr
    for q in range(na):
        t1 = t1c[q] * (1.0 + _mech_sum(X, q, mech, 1))
        fend[q] = F[q]
        t1end[q] = t1
        F[q] = F[q] * np.exp(-rem / t1)
        for j in range(nd):
            X[q, j] = X[q, j] * np.exp(-rem / taus[j])
    return area, pk, n_steps, pe


@jit(error_model="numpy", nogil=True, inline="always")
def _capacity(X, q, mech):
    """Remaining force capacity of cell q, clipped to [1e-12, 1] (the contraction stepping)."""
    cap = 1.0 - _mech_sum(X, q, mech, 0)
    return 1e-12 if cap < 1e-12 else (1.0 if cap > 1.0 else cap)


@jit(error_model="numpy", nogil=True, _nrt=False)
def _envelope(M, m, x, u0, slope, mech, out):
    """``out`` = x after m cycles of ``x ← M·x + (u0 + j·slope)·capacity(x)``, j = 0 … m−1
    (per integrated cell; without the capacity factor for gains on A, mechanism 3)."""
    for q in range(x.shape[0]):
        for j in range(x.shape[1]):
            out[q, j] = x[q, j]
    for r in range(m):
        for q in range(x.shape[0]):
            cap = _capacity(out, q, mech)
            for j in range(x.shape[1]):
                # the catch-like gain (mechanism 3) is set alike in fatigued and fresh cells
                c = 1.0 if mech[j] == MECH_GAIN else cap
                out[q, j] = M[j] * out[q, j] + (u0[q, j] + r * slope[q, j]) * c


@jit(error_model="numpy", nogil=True, _nrt=False)
def _per_capacity(xn, M, x, mech, out):
    """A cycle's deficit increments per unit of the capacity it started with.

    Every deficit is driven by the cell's force and pulses, and both scale with the cell's
    capacity (except the catch-like gain, mechanism 3: its increments are taken as they are),
    which the cycle itself depletes multiplicatively: ``b ≈ u · capacity(x)`` with
    ``u`` a smooth function of the slower states. Extrapolating ``u`` instead of ``b`` makes
    this strong, fast feedback (a fatigued cell's capacity regulates itself within a few
    cycles) implicit in the envelope recursion, so long runs of cycles can be stepped over
    without the period-2 wobble of an explicit extrapolation of ``b``.
    """
    for q in range(x.shape[0]):
        cap = _capacity(x, q, mech)
        for j in range(x.shape[1]):
            c = 1.0 if mech[j] == MECH_GAIN else cap
            out[q, j] = (xn[q, j] - M[j] * x[q, j]) / c


@jit(error_model="numpy", nogil=True, _nrt=False)
def _seg_grid(g, tabs):
    """Views of grid g's tables (see :func:`march`)."""
    (n_off, p_off, n_nodes, n_pulses, rem, nodes, h, dc, dch, sdec, sgm, pn, idec, igm, same,
     ilen, run_end) = tabs
    o, N, po, P = n_off[g], n_nodes[g], p_off[g], n_pulses[g]
    return ((h[o:o + N - 1], dc[o:o + N - 1], dch[o:o + N - 1], pn[po:po + P], idec[po:po + P],
             igm[po:po + P], same[po:po + P], ilen[po:po + P], sdec[o:o + N - 1],
             sgm[o:o + N - 1], run_end[po:po + P]), rem[g], nodes[o:o + N])


@jit(error_model="numpy", nogil=True, inline="always")
def _between(a, b, th, qc):
    """A stepped-over contraction's output between those of two integrated ones, ``th`` of the
    way from ``a`` to ``b``: geometric, plus the log-space correction ``qc`` (the quadratic
    term); linear when either is not positive."""
    if a > 0.0 and b > 0.0:
        return np.exp((1.0 - th) * np.log(a) + th * np.log(b) + qc)
    return (1.0 - th) * a + th * b


@jit(error_model="numpy", nogil=True, _nrt=False)
def _record(b, k, sa, sb, th, qc, o, segs, tabs, cells, na, outs):
    """Contraction k's outputs: those of slot ``sa`` (an integrated contraction) or, with
    ``th > 0``, those of one stepped over, between ``sa`` and ``sb`` (:func:`_between`; ``qc``
    the log-space quadratic terms of its peak, force-time integral and end-of-plateau force); its force samples when
    a trace is wanted.

    Peaks and integrals are interpolated in log space because fatigue makes them fall nearly
    geometrically from contraction to contraction: the envelope stepping bounds their
    curvature in log space (:func:`_march_row`), and a linear interpolation would add the
    squared log slope to that curvature (a bias of one sign: the skipped contractions came out
    too strong, 2–3e-3 of their integral on 20-minute lumbar sessions)."""
    o_pk, o_ft, o_cpk, o_fe, o_t1, o_fn, o_dfn, o_pe = o
    seg_g, seg_p0, seg_start, m_seg, run_end, t_lo, t_hi, t_out = segs
    act_cell, act_w, n_act, cell_rep, depth, tfac, fatig, weight, edges = cells
    peak, fti, cell_peak, x_out, f_out, e_out, cn_out, force, n_eval, n_steps, n_full, pend = outs
    wa = 1.0 - th
    if th == 0.0:
        peak[b, k] = o_pk[sa]
        fti[b, k] = o_ft[sa]
        pend[b, k] = o_pe[sa]
    else:
        peak[b, k] = _between(o_pk[sa], o_pk[sb], th, qc[0])
        fti[b, k] = _between(o_ft[sa], o_ft[sb], th, qc[1])
        pend[b, k] = _between(o_pe[sa], o_pe[sb], th, qc[2])
    for c in range(cell_rep.shape[1]):
        q = cell_rep[b, c]
        if q < 0:
            continue
        share = weight[b, c] / act_w[b, q]
        if th == 0.0:
            cell_peak[b, k, c] = o_cpk[sa, q] * share
        else:
            cell_peak[b, k, c] = _between(o_cpk[sa, q], o_cpk[sb, q], th, 0.0) * share
    lo, hi = t_lo[k], t_hi[k]
    if force.shape[1] == 0 or lo >= hi:
        return
    # the samples of a stepped-over contraction are interpolated linearly between the two
    # integrated ones, then scaled to its interpolated force-time integral
    fs = 1.0
    if th != 0.0:
        lin = wa * o_ft[sa] + th * o_ft[sb]
        fs = fti[b, k] / lin if lin > 0.0 else 1.0
    nodes = _seg_grid(seg_g[k], tabs)[2]
    N = nodes.size
    last = nodes[N - 1]
    fa, dfa, fb, dfb = o_fn[sa], o_dfn[sa], o_fn[sb], o_dfn[sb]
    start = seg_start[k]
    kk = 0
    for s in range(lo, hi):
        rel = t_out[s] - start
        if rel <= last:
            while kk < N - 2 and nodes[kk + 1] <= rel:
                kk += 1
            h = nodes[kk + 1] - nodes[kk]
            u = (rel - nodes[kk]) / h
            if th == 0.0:
                f0, d0, f1, d1 = fa[kk], dfa[kk], fa[kk + 1], dfa[kk + 1]
            else:
                f0 = wa * fa[kk] + th * fb[kk]
                d0 = wa * dfa[kk] + th * dfb[kk]
                f1 = wa * fa[kk + 1] + th * fb[kk + 1]
                d1 = wa * dfa[kk + 1] + th * dfb[kk + 1]
            # cubic Hermite from the force and its derivative at both nodes (4th order)
            v = 1.0 - u
            force[b, s] = fs * (f0 * (1.0 + 2.0 * u) * v * v + d0 * h * u * v * v
                                + f1 * u * u * (3.0 - 2.0 * u) + d1 * h * u * u * (u - 1.0))
        else:
            # after the integrated tail the force left decays as F·e^{−t/τ1} per cell
            d = rel - last
            tot = 0.0
            for q in range(na):
                if th == 0.0:
                    tot += o_fe[sa, q] * np.exp(-d / o_t1[sa, q])
                else:
                    tot += (wa * o_fe[sa, q] + th * o_fe[sb, q]) \
                        * np.exp(-d / (wa * o_t1[sa, q] + th * o_t1[sb, q]))
            force[b, s] = fs * tot


@jit(error_model="numpy", nogil=True, _nrt=False)
def _run(b, k, slot, tabs, segs, rows, prm, defs, fatigue, trace, work, outs):
    """Integrate contraction k of row b from the row's state into output slot ``slot``."""
    cw, st, ws, sbuf, o = work
    grid, rem, nodes = _seg_grid(segs[0][k], tabs)
    area, pk, ns, pe = _contraction(b, grid, rem, rows, segs[1][k], prm, defs, fatigue, trace, cw, st,
                                ws, sbuf, o[5][slot], o[6][slot], o[2][slot], o[3][slot],
                                o[4][slot])
    o[0][slot] = pk
    o[1][slot] = area
    o[7][slot] = pe
    n_eval, n_steps, n_full = outs[8], outs[9], outs[10]
    n_eval[b] += 1
    n_steps[b] += ns
    n_full[b] += nodes.size - 1


@jit(error_model="numpy", nogil=True, inline="always")
def _copy_state(F, X, E, CN, F2, X2, E2, CN2):
    """(F2, X2, E2, CN2) ← (F, X, E, CN)."""
    for q in range(F.size):
        F2[q] = F[q]
        for j in range(X.shape[1]):
            X2[q, j] = X[q, j]
    for d in range(E.size):
        E2[d] = E[d]
        CN2[d] = CN[d]


@jit(error_model="numpy", nogil=True)
def _march_row(b, tabs, segs, rows, cells, prm, defs, fatigue, skip_tol, outs):
    """Every contraction of row b in order, stepping over runs of identical contractions by
    envelope following (see :func:`march`)."""
    act_cell, act_w, n_act, cell_rep, depth, tfac, fatig, weight, edges = cells
    a_rest, tau1_rest, tau2, km_rest, tau_c, has_pulse, occl_a, occl_b, tol = prm
    mech = defs[2]
    nd = mech.size
    seg_g, seg_p0, seg_start, m_seg, run_end, t_lo, t_hi, t_out = segs
    peak, fti, cell_peak, x_out, f_out, e_out, cn_out, force, n_eval, n_steps, n_full, pend = outs
    n_nodes, n_pulses = tabs[2], tabs[3]
    trace = force.shape[1] > 0
    K = seg_g.size
    D = edges.shape[1] - 1
    redges = edges[b]
    width = np.empty(D)
    for d in range(D):
        width[d] = redges[d + 1] - redges[d]
    na = n_act[b]
    W = np.empty(na)
    aw = np.empty(na)
    t1c = np.empty(na)
    t2c = np.empty(na)
    phg = np.empty(na)
    dep = np.empty(na, dtype=np.int64)
    for q in range(na):
        c = act_cell[b, q]
        W[q] = act_w[b, q]
        aw[q] = a_rest * W[q] / tfac[c]
        t1c[q] = tau1_rest * tfac[c]
        t2c[q] = tau2 * tfac[c]
        phg[q] = fatig[c]
        dep[q] = depth[c]
    cw = (W, aw, t1c, t2c, phg, dep, redges, width)
    F = np.zeros(na)
    X = np.zeros((na, nd))
    E = np.zeros(D)
    CN = np.zeros(D)
    st = (F, X, E, CN, np.zeros((na, nd)))
    ws = (np.empty(na), np.empty(na), np.empty(na), np.empty(na), np.empty(na), np.zeros(na),
          np.zeros(na), np.zeros((na, nd)), np.zeros(na), np.empty(D), np.empty(D), np.zeros(D),
          np.zeros(3), np.ones(na), np.zeros((2, na, n_nodes.max() if trace else 1)))
    # scratch of the interval stepping: run ends, per-cell states, their copies, and the
    # history (integral and peak residuals, position, start force; force maps) of the last
    # three integrated intervals
    sbuf = (np.empty(max(1, n_pulses.max()), dtype=np.int64), np.zeros((6, na, nd + 1)),
            np.zeros((na, nd)), np.zeros((5, D)), np.zeros((4, 3)), np.zeros(3), np.zeros(3),
            np.zeros((3, 3, na)), np.zeros((na, 6)))
    nn = n_nodes.max() if trace else 0
    o = (np.zeros(2), np.zeros(2), np.zeros((2, na)), np.zeros((2, na)), np.ones((2, na)),
         np.zeros((2, nn)), np.zeros((2, nn)), np.zeros(2))
    o_pk, o_ft, o_pe = o[0], o[1], o[7]
    sc = np.zeros((8, na, nd))
    x_k, u_k, u_prev, u_m, x_pred, x_corr, slope, nX = (sc[0], sc[1], sc[2], sc[3], sc[4],
                                                       sc[5], sc[6], sc[7])
    nF = np.zeros(na)
    # the start force per unit of capacity at the start of the contraction after the last
    # integrated one (``uf_now``), after the one before (``uf_prev``), and its slope
    uf_now = np.zeros(na)
    uf_prev = np.zeros(na)
    uf_slope = np.zeros(na)
    uf_pred = np.zeros(na)
    nE = np.zeros(D)
    nCN = np.zeros(D)
    # log peak, force-time integral and end-of-plateau force of the integrated units
    pk_k = np.zeros(3)
    pk_m = np.zeros(3)
    pk_prev = np.zeros(3)
    c2 = np.zeros(3)
    qc = np.zeros(3)
    work = (cw, st, ws, sbuf, o)
    stepping = skip_tol > 0.0 and fatigue
    sa, sb = 0, 1
    i = 0
    while i < K:
        for q in range(na):
            for j in range(nd):
                x_k[q, j] = X[q, j]
        _run(b, i, sa, tabs, segs, rows, prm, defs, fatigue, trace, work, outs)
        _record(b, i, sa, sb, 0.0, qc, o, segs, tabs, cells, na, outs)
        j_end = run_end[b, i] if stepping else i
        if j_end == i:
            i += 1
            continue
        M = m_seg[i]
        # the state after unit i (``nxt``)
        _copy_state(F, X, E, CN, nF, nX, nE, nCN)
        _per_capacity(nX, M, x_k, mech, u_k)
        for q in range(na):
            uf_now[q] = nF[q] / _capacity(nX, q, mech)
        have_prev = False
        m_prev = 1
        scale0 = max(o_pk[sa], 1e-12)
        scale1 = max(o_ft[sa], 1e-12)
        m = 1   # the first step has no slope yet: its outputs could not be interpolated
        k = i
        while k < j_end:
            m = max(1, min(m, j_end - k))
            for q in range(na):
                for j in range(nd):
                    slope[q, j] = (u_k[q, j] - u_prev[q, j]) / m_prev if have_prev else 0.0
            _envelope(M, m, x_k, u_k, slope, mech, x_pred)
            # what is left of the force at the next start scales with capacity and, per unit of
            # capacity, is extrapolated linearly, not below 0 (it matters only after short
            # rests, where τ1's slowing moves it too: 0.26 s rests on lumbar sessions, held per
            # capacity, started the integrated contraction 4 % low, 5e-3 of the peak; after
            # longer rests a contraction forgets the force it started with)
            for q in range(na):
                uf_slope[q] = (uf_now[q] - uf_prev[q]) / m_prev if have_prev else 0.0
                uf_pred[q] = max(0.0, uf_now[q] + (m - 1) * uf_slope[q])
                F[q] = _capacity(x_pred, q, mech) * uf_pred[q]
                for j in range(nd):
                    X[q, j] = x_pred[q, j]
            for d in range(D):
                E[d] = nE[d]
                CN[d] = nCN[d]
            _run(b, k + m, sb, tabs, segs, rows, prm, defs, fatigue, trace, work, outs)
            _per_capacity(X, M, x_pred, mech, u_m)
            for q in range(na):
                for j in range(nd):
                    slope[q, j] = (u_m[q, j] - u_k[q, j]) / m
            _envelope(M, m, x_k, u_k, slope, mech, x_corr)
            err = 0.0
            for q in range(na):
                # relative to what each deficit scales: 1 + x for τ1 and Km, the remaining
                # capacity for capacity deficits (a heavily fatigued cell, capacity 0.06 on
                # 20-minute lumbar sessions, amplifies their error 1/capacity-fold in force)
                cap = _capacity(x_corr, q, mech)
                cap = CAP_SCALE_FLOOR if cap < CAP_SCALE_FLOOR else cap
                for j in range(nd):
                    sc_j = cap if mech[j] == MECH_CAPACITY else 1.0 + abs(x_corr[q, j])
                    v = abs(x_corr[q, j] - x_pred[q, j]) / sc_j
                    err = v if v > err else err
            # the start force: predicted vs interpolated between the starts after the last
            # integrated contraction and after the new one (relative to the run's first peak,
            # as the force trace's target is)
            if m > 1:
                v = 0.0
                for q in range(na):
                    uf_new = F[q] / _capacity(X, q, mech)
                    v += _capacity(x_corr, q, mech) * abs(
                        uf_now[q] + (uf_new - uf_now[q]) * (m - 1) / m - uf_pred[q])
                v /= scale0
                err = v if v > err else err
            # skipped units' outputs are interpolated: their curvature must be small too
            pk_k[0] = np.log(o_pk[sa] + 1e-9 * scale0)
            pk_k[1] = np.log(o_ft[sa] + 1e-9 * scale1)
            pk_m[0] = np.log(o_pk[sb] + 1e-9 * scale0)
            pk_m[1] = np.log(o_ft[sb] + 1e-9 * scale1)
            pk_k[2] = np.log(o_pe[sa] + 1e-9 * scale0)
            pk_m[2] = np.log(o_pe[sb] + 1e-9 * scale0)
            curv = -1.0
            if have_prev:
                # largest gap between linear and quadratic interpolation through the last
                # three evaluated units: the error of the interpolated peaks and integrals
                curv = 0.0
                for r in range(3):
                    c2[r] = ((pk_m[r] - pk_k[r]) / m - (pk_k[r] - pk_prev[r]) / m_prev) \
                        / (m + m_prev)
                    # the end-of-plateau force is interpolated alike but does not steer the
                    # steps: it falls like the peaks (20-minute lumbar sessions, stepped vs
                    # integrating everything: 2-6e-5 of the peak), and steps the peaks and
                    # integrals accept keep every other output as it was
                    v = abs(c2[r]) if r < 2 else 0.0
                    curv = v if v > curv else curv
                if m > 1:
                    err = max(err, curv * m * m / 4)
            if err > skip_tol and m > 1:
                m = max(1, m // 2)
                continue
            for r in range(1, m):
                # the quadratic through the last three integrated units, in log space
                for u in range(3):
                    qc[u] = c2[u] * r * (r - m) if have_prev else 0.0
                _record(b, k + r, sa, sb, r / m, qc, o, segs, tabs, cells, na, outs)
            _record(b, k + m, sb, sa, 0.0, qc, o, segs, tabs, cells, na, outs)
            for q in range(na):
                for j in range(nd):
                    u_prev[q, j] = u_k[q, j]
                    u_k[q, j] = u_m[q, j]
                    x_k[q, j] = x_corr[q, j]
            for r in range(3):
                pk_prev[r] = pk_k[r]
            have_prev = True
            m_prev = m
            k += m
            sa, sb = sb, sa
            for q in range(na):
                cap = _capacity(x_corr, q, mech)
                nF[q] = F[q]
                for j in range(nd):
                    nX[q, j] = M[j] * x_corr[q, j] + u_k[q, j] * (1.0 if mech[j] == MECH_GAIN else cap)
                uf_prev[q] = uf_now[q]
                uf_now[q] = nF[q] / _capacity(nX, q, mech)
            for d in range(D):
                nE[d] = E[d]
                nCN[d] = CN[d]
            if err < 1e-12:
                grow = 2.0
            else:
                grow = min(2.0, max(0.5, 0.9 * (skip_tol / err) ** (1.0 / 3.0)))
            m = max(1, int(m * grow))
            if curv > 0.0:
                # a step whose interpolated outputs would fail the curvature test is not tried
                # (inside a contraction the force envelope is curved: each failed try costs a
                # unit's integration)
                m = max(1, min(m, int(2.0 * np.sqrt(0.8 * skip_tol / curv))))
        _copy_state(nF, nX, nE, nCN, F, X, E, CN)
        i = j_end + 1
    for c in range(cell_rep.shape[1]):
        q = cell_rep[b, c]
        if q < 0:
            continue
        f_out[b, c] = F[q] * weight[b, c] / W[q]
        for j in range(nd):
            x_out[b, c, j] = X[q, j]
    for d in range(D):
        e_out[b, d] = E[d]
        cn_out[b, d] = CN[d]


@jit(error_model="numpy", nogil=True)
def _march_rows(lo, hi, tabs, segs, rows, cells, prm, defs, fatigue, skip_tol, outs):
    for b in range(lo, hi):
        _march_row(b, tabs, segs, rows, cells, prm, defs, fatigue, skip_tol, outs)


def march(tabs, segs, rows, cells, prm, defs, fatigue, skip_tol, outs):
    """Integrate every contraction of every row (rows split over the threads), writing ``outs``.

    Parameters
    ----------
    tabs : tuple
        The node grids of the distinct contractions, concatenated: ``(node offset, pulse
        offset, nodes, pulses, rest after the last node)`` per grid, then the node times, the
        node steps h, e^{−h/τc}, e^{−h/2τc}, the deficit decay e^{−h/τ_j} and gain
        g_j·e^{−h/2τ_j} per node step (used in the tail), the node of each pulse, per pulse
        interval (pulse i to i+1, the last one to the end of the tail) the deficit decay and
        gain over it, whether its node pattern and R factor equal the previous interval's, its
        length, and the last interval of the run of such intervals that starts at it.
    segs : tuple
        Per contraction k: its grid, its first pulse, its start time, the recovery e^{−T_k/τ_j}
        over its period (K, n); per row the last contraction of the run of identical
        contractions that starts at k (B, K); the output samples each contraction owns
        (``t_lo``, ``t_hi``) and the sample times.
    rows : tuple
        ``(rfac, afac, lam, recr, ridx)``: R_i per pulse (P,), per-row pulse factors stored
        compactly (1 or B', 1 or P) and the row of those factors each integrated row reads.
    cells : tuple
        ``(act_cell, act_w, n_act, cell_rep, depth, tfac, fatig, weight, edges)``: per row the
        cells integrated (one per set of cells that behave identically: fully recruited depth
        groups merge, never-recruited ones are left out), their merged force shares, their
        number, and the integrated cell of every cell (−1: never recruited, stays rested and
        silent); per cell its depth group, time factor and fatigability; per row each cell's
        share (B, C) and the row's own depth-group edges (B, D+1).
    prm : tuple of float
        ``(A_rest, τ1_rest, τ2, Km_rest, τc, 1 if any pulse gain else 0, 1 − γ, γ/F_max,
        interval-stepping tolerance)``; a tolerance of 0 integrates every interval.
    defs : tuple
        ``(force_gain, pulse_gain, mechanism, tau, pulse_weight, pulse_fatigability,
        saturation)``: the deficits' gains on the force drive and per recruited pulse, the
        parameter each acts on (0: A capacity, 1: τ1, 2: Km, 3: a catch-like gain on calcium
        sensitivity, ``Km = Km_rest·(1 + ΣX_Km)/(1 + ΣX_gain)``, whose per-pulse increment is
        not scaled by capacity) and their recovery time constants, each (n,); the weight
        of each pulse's cost per deficit, (P, n), or (1, n) when every weight is 1
        (:func:`emsim.physiology._muscle_solver.pulse_weights`); whether the per-pulse cost of
        each deficit scales with the class fatigability, bool (n,); the saturation level of
        each deficit (n,): 0 adds the per-pulse increment k = gain·weight·firing as it is,
        S > 0 moves the deficit a fraction min(1, k) of the way to S
        (:mod:`emsim.physiology.fatigue`).
    skip_tol : float
        Tolerance of the stepping over identical contractions; 0 integrates every one.
    outs : tuple
        Written: ``peak, fti`` (B, K), ``cell_peak`` (B, K, C), the state at the end ``x``
        (B, C, n), ``f`` (B, C), ``e, cn`` (B, D), the force at the sample times (B, T) or
        (B, 0), per row the contractions and node steps integrated and the node steps
        they would have cost without interval stepping (B,), and the end-of-plateau force of
        each contraction (B, K; see :func:`_contraction`).
    """
    _over_rows(_march_rows, outs[0].shape[0],
               (tabs, segs, rows, cells, prm, defs, fatigue, skip_tol, outs))
