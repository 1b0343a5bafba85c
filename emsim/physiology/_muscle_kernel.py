"""Compiled kernels of the muscle model: one contraction of many rows, and input hashing.

Why compiled
------------
The per-pulse recursion of the pool model (CN jumps, force, six deficits per cell) is
sequential in time, and the arrays of one step are tiny (a few cells per row): numpy's per-call
overhead, not arithmetic, used to dominate (``_muscle_solver`` notes, issue 3). A numba kernel
runs the recursion as plain loops, batch rows split over the cores (:func:`_over_rows`), and its
wheels need no compiler on the user's machine. Compiled code is cached next to this file (``cache=True``); where
that directory is not writable, numba uses its user-wide cache directory, and where no cache
location is writable at all the kernels are compiled in memory at each start (with a warning).

The equations are those of :mod:`emsim.physiology.fatigue` (see :func:`integrate_unit`):

* CN exactly between nodes: ``E ← E·e^{−h/τc}``, ``CN ← (CN + E·h)·e^{−h/τc}``;
* F by one RK4 step of ``dF/dt = A·s − F/(τ1 + τ2·s)``, ``s = CN/(Km + CN)``, per node step
  (no step longer than the solver's ``max_step``), with A, τ1 and Km held over a pulse interval
  at their value at its predicted midpoint (the state after the pulse plus half the previous
  interval's drift: second order; the deficits move by < 1e-3 relative over an interval);
* the six deficits alongside: exact decay over the interval plus the trapezoid integral of the
  force drive, and the per-pulse cost at each pulse, as in the ``solve_ivp`` reference of
  ``benchmarks/bench_muscle.py``; in the relaxation tail after the last pulse (where the drive
  falls fast) they and the parameters are updated at every node step.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from emsim.physiology._jit import jit


#: Relative change of E and CN from one interval start to the next below which a run of
#: identical intervals counts as periodic (then stepping over intervals may start); a residual
#: of this size shifts the periodic force by about as much, far below the stepping tolerance.
PERIODIC_TOL = 1e-6

_FNV_OFFSET = np.uint64(0xCBF29CE484222325)
_FNV_PRIME = np.uint64(0x100000001B3)


@jit(nogil=True, inline="always")
def _mix(h, v):
    # FNV-1a over the 64-bit word, then a multiply-xorshift so nearby floats spread out
    h = (h ^ v) * _FNV_PRIME
    return h ^ (h >> np.uint64(29))


#: Rows per thread below which a unit runs on the calling thread only.
MIN_ROWS_PER_THREAD = 4
_POOL = None


def _forget_pool() -> None:
    # a forked child inherits the pool object but not its threads: it would wait forever
    global _POOL
    _POOL = None


os.register_at_fork(after_in_child=_forget_pool)


def _threads() -> int:
    return max(1, min(os.cpu_count() or 1, 32))


def _over_rows(fn, B, args):
    """``fn(lo, hi, *args)`` over row blocks, one per core (the kernels release the GIL).

    A thread pool rather than numba's ``prange``: with the OpenMP layer each parallel launch
    cost ~16 ms on a loaded 2-core machine (spinning workers), the workqueue layer is not
    thread-safe (the workbench and Dask call in from threads) and TBB is not a dependency.
    """
    global _POOL
    n = min(_threads(), B // MIN_ROWS_PER_THREAD)
    if n <= 1:
        fn(0, B, *args)
        return
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_threads(), thread_name_prefix="emsim-muscle")
    cuts = np.linspace(0, B, n + 1).astype(np.int64)
    futures = [_POOL.submit(fn, int(cuts[i]), int(cuts[i + 1]), *args) for i in range(n)]
    for fut in futures:
        fut.result()


@jit(nogil=True, inline="always")
def _at(a, b, i):
    """``a[b, i]`` of a per-pulse factor stored compactly: shape (1 or B, 1 or P)."""
    return a[b if a.shape[0] > 1 else 0, i if a.shape[1] > 1 else 0]


@jit(nogil=True)
def _hash_block(lo, hi, bits, first, stop, out):
    for b in range(lo, hi):
        for u in range(first.size):
            h = _FNV_OFFSET
            for i in range(first[u], stop[u]):
                h = _mix(h, _at(bits, b, i))
            out[b, u] = h


def block_hashes(bits: np.ndarray, first: np.ndarray, stop: np.ndarray) -> np.ndarray:
    """64-bit hash of each row's pulses ``first[u]:stop[u]`` per unit u, shape (B, U).

    ``bits`` is the uint64 view of a compact per-pulse factor (see :func:`_at`) with B rows.
    Row keys and unit keys both derive from this one pass over the data.
    """
    out = np.empty((bits.shape[0], first.size), dtype=np.uint64)
    _over_rows(_hash_block, bits.shape[0], (bits, first, stop, out))
    return out


@jit(nogil=True)
def fold_hashes(h):
    """Hash along the last axis of a (R, K) uint64 array, shape (R,)."""
    out = np.empty(h.shape[0], dtype=np.uint64)
    for r in range(h.shape[0]):
        v = _FNV_OFFSET
        for k in range(h.shape[1]):
            v = _mix(v, h[r, k])
        out[r] = v
    return out


@jit(nogil=True)
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


@jit(nogil=True)
def _values_ok_block(lo, hi, x, t, positive, top, ok):
    for b in range(lo, hi):
        for i in range(t.shape[1]):
            if np.isnan(t[b, i]):
                continue
            v = x[b, i]
            if not (np.isfinite(v) and (v > 0.0 if positive else v >= 0.0) and v <= top):
                ok[b] = False
                break


def values_ok(x: np.ndarray, t: np.ndarray, positive: bool, top: float = np.inf) -> bool:
    """True when ``x`` is finite, positive (or non-negative) and ≤ ``top`` at every pulse of
    ``t``."""
    ok = np.ones(t.shape[0], dtype=np.bool_)
    _over_rows(_values_ok_block, t.shape[0], (x, t, positive, float(top), ok))
    return bool(ok.all())


@jit(nogil=True)
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


@jit(nogil=True, inline="always")
def _apply_pulse(b, gi, rows, edges, width, tau_c, E, LD, X, phg, dep, na, gains, pulse_cost,
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
    if fatigue and pulse_cost > 0.0:
        for q in range(na):
            cap = 1.0 - X[q, 0] - X[q, 1]
            cap = 0.0 if cap < 0.0 else (1.0 if cap > 1.0 else cap)
            amt = phg[q] * pulse_cost * LD[dep[q]] * cap
            for j in range(6):
                X[q, j] += gains[j] * amt
    return _at(afac, gb, gi)


@jit(nogil=True, fastmath=True, inline="always")
def _interval(b, i, grid, rows, p0, prm, gains, fatigue, want_nodes, cw, st, ws, force_nodes,
              dforce_nodes):
    """Integrate interval i of a unit for row b (pulse i, then the node steps to pulse i+1 or,
    for the last pulse, to the end of the tail). Updates the state ``st`` in place; returns the
    interval's force-time integral and peak total force, and leaves each cell's peak in
    ``ws[5]``.

    The fatigue parameters (A, τ1, Km) are held over the interval at their predicted midpoint
    value (the state after the pulse plus half the previous interval's drift); the deficits
    take the exact decay over the interval plus the integral of the force drive.
    """
    h_step, dc, dch, pulse_node, idec, igm, same_prev, ilen, sdec, sgm = grid
    a_rest, tau1_rest, tau2, km_rest, tau_c, pulse_cost, occl_a, occl_b, rem, tol = prm
    W, aw, t1c, t2c, phg, dep, edges, width = cw
    F, X, E, CN, dXc = st
    a, t1, km, s0, b0, cpk, I, Xs, Fn, CM, CE, LD = ws
    na = F.size
    D = E.size
    n_p = pulse_node.size
    N = h_step.size + 1
    k0 = pulse_node[i]
    k1 = pulse_node[i + 1] if i + 1 < n_p else N - 1
    afac_cur = _apply_pulse(b, p0 + i, rows, edges, width, tau_c, E, LD, X, phg, dep, na, gains,
                            pulse_cost, fatigue)
    ratio = 0.0
    if i > 0 and ilen[i - 1] > 0.0:
        ratio = 0.5 * ilen[i] / ilen[i - 1]
    # in the relaxation tail the force, and so the drive, falls within the interval: the
    # deficits and parameters are updated at every step there instead
    per_step = i + 1 == n_p and fatigue
    if per_step:
        ratio = 0.0
    for q in range(na):
        for j in range(6):
            Xs[q, j] = X[q, j]
        xm0 = X[q, 0] + ratio * dXc[q, 0] + X[q, 1] + ratio * dXc[q, 1]
        xm1 = X[q, 2] + ratio * dXc[q, 2] + X[q, 3] + ratio * dXc[q, 3]
        xm2 = X[q, 4] + ratio * dXc[q, 4] + X[q, 5] + ratio * dXc[q, 5]
        cap = 1.0 - xm0
        a[q] = aw[q] * afac_cur * (cap if cap > 0.0 else 0.0)
        t1[q] = t1c[q] * (1.0 + xm1)
        km[q] = km_rest * (1.0 + xm2)
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
        for d in range(D):
            CM[d] = (CN[d] + E[d] * hh) * dch[k]
            CE[d] = (CN[d] + E[d] * h) * dc[k]
        ftot1 = 0.0
        sl0tot = 0.0
        sl1tot = 0.0
        for q in range(na):
            dq = dep[q]
            kq = km[q]
            t1q = t1[q]
            t2q = t2c[q]
            cm = CM[dq]
            c1 = CE[dq]
            # s = c/(Km + c) and b = 1/(τ1 + τ2·s) with one division each point
            den1 = kq + cm
            den2 = t1q * den1 + t2q * cm
            r = 1.0 / (den1 * den2)
            sm = cm * den2 * r
            bm = den1 * den1 * r
            den1 = kq + c1
            den2 = t1q * den1 + t2q * c1
            r = 1.0 / (den1 * den2)
            s1 = c1 * den2 * r
            b1 = den1 * den1 * r
            aq = a[q]
            F0 = F[q]
            k1_ = aq * s0[q] - b0[q] * F0
            k2_ = aq * sm - bm * (F0 + hh * k1_)
            k3_ = aq * sm - bm * (F0 + hh * k2_)
            k4_ = aq * s1 - b1 * (F0 + h * k3_)
            F1 = F0 + h / 6.0 * (k1_ + 2.0 * k2_ + 2.0 * k3_ + k4_)
            sl1 = aq * s1 - b1 * F1
            # trapezoid plus the Hermite end-slope correction
            area += hh * (F0 + F1) + h * h / 12.0 * (k1_ - sl1)
            s0[q] = s1
            b0[q] = b1
            Fn[q] = F1
            if F1 > cpk[q]:
                cpk[q] = F1
            ftot1 += F1
            sl0tot += k1_
            sl1tot += sl1
        if want_nodes:
            force_nodes[b, k] = ftot0
            dforce_nodes[b, k] = sl0tot
        om0 = occl_a + occl_b * ftot0
        om1 = occl_a + occl_b * ftot1
        for q in range(na):
            I[q] += hh * (om0 * F[q] + om1 * Fn[q])
            F[q] = Fn[q]
        if per_step:
            for q in range(na):
                dr = phg[q] / W[q] * I[q]
                I[q] = 0.0
                for j in range(6):
                    X[q, j] = X[q, j] * sdec[k, j] + sgm[k, j] * dr
                cap = 1.0 - X[q, 0] - X[q, 1]
                a[q] = aw[q] * afac_cur * (cap if cap > 0.0 else 0.0)
                t1[q] = t1c[q] * (1.0 + X[q, 2] + X[q, 3])
                km[q] = km_rest * (1.0 + X[q, 4] + X[q, 5])
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
        force_nodes[b, N - 1] = ftot0
        dforce_nodes[b, N - 1] = sl1tot
    if fatigue and not per_step:
        for q in range(na):
            dr = phg[q] / W[q] * I[q]
            for j in range(6):
                X[q, j] = X[q, j] * idec[i, j] + igm[i, j] * dr
                dXc[q, j] = X[q, j] - Xs[q, j]
    return area, pk


@jit(nogil=True, inline="always")
def _pack(S, F, X):
    """S[q] = (F[q], X[q, 0…5]): a cell's state as one row."""
    for q in range(F.size):
        S[q, 0] = F[q]
        for j in range(6):
            S[q, j + 1] = X[q, j]


@jit(nogil=True, inline="always")
def _steps_of(pulse_node, i, last):
    return (pulse_node[i + 1] if i + 1 < pulse_node.size else last) - pulse_node[i]


@jit(nogil=True)
def _unit_row(b, grid, rows, p0, cells, prm, gains, taus, fatigue, state, want_nodes, outs):
    """Row b of :func:`integrate_unit`, written into ``outs``.

    Runs of identical intervals (a constant-rate plateau, once E and CN repeat from pulse to
    pulse) are stepped over by envelope following: the state (F and deficits per cell) at
    interval starts is smooth in the interval index, so the kernel integrates every m-th
    interval, extrapolates the per-interval increment linearly (predictor), corrects it with
    the newly integrated one and adapts m to keep the difference below ``tol``; the skipped
    intervals' force-time integrals and node values are interpolated.
    """
    h_step, dc, dch, pulse_node, idec, igm, same_prev, ilen, sdec, sgm = grid
    act_cell, act_w, n_act, cell_rep, depth, tfac, fatig, weight, edges = cells
    a_rest, tau1_rest, tau2, km_rest, tau_c, pulse_cost, occl_a, occl_b, rem, tol = prm
    x, f, e, cn = state
    (peak, fti, cell_peak, f_end, tau1_end, x_next, f_next, e_next, cn_next, force_nodes,
     dforce_nodes, n_steps) = outs
    rfac, afac, lam, recr, ridx = rows
    gb = ridx[b]
    C = f.shape[1]
    D = e.shape[1]
    n_p = pulse_node.size
    redges = edges[b]
    width = np.empty(D)
    for d in range(D):
        width[d] = redges[d + 1] - redges[d]
    na = n_act[b]
    F = np.zeros(na)
    X = np.zeros((na, 6))
    dXc = np.zeros((na, 6))
    W = np.empty(na)
    aw = np.empty(na)
    t1c = np.empty(na)
    t2c = np.empty(na)
    phg = np.empty(na)
    dep = np.empty(na, dtype=np.int64)
    cpk_all = np.zeros(na)
    for q in range(na):
        c = act_cell[b, q]
        W[q] = act_w[b, q]
        aw[q] = a_rest * W[q] / tfac[c]
        t1c[q] = tau1_rest * tfac[c]
        t2c[q] = tau2 * tfac[c]
        phg[q] = fatig[c]
        dep[q] = depth[c]
        for j in range(6):
            X[q, j] = x[b, c, j]
    for c in range(C):
        q = cell_rep[b, c]
        if q >= 0:
            F[q] += f[b, c]
    E = np.empty(D)
    CN = np.empty(D)
    for d in range(D):
        E[d] = e[b, d]
        CN[d] = cn[b, d]
    cw = (W, aw, t1c, t2c, phg, dep, redges, width)
    st = (F, X, E, CN, dXc)
    ws = (np.empty(na), np.empty(na), np.empty(na), np.empty(na), np.empty(na), np.zeros(na),
          np.zeros(na), np.zeros((na, 6)), np.zeros(na), np.empty(D), np.empty(D), np.zeros(D))
    cpk_iv = ws[5]
    ftot = 0.0
    for q in range(na):
        ftot += F[q]
        cpk_all[q] = F[q]
    pk = ftot
    area = 0.0

    # last interval of the run of identical intervals that starts at each interval (this row)
    run_end = np.empty(n_p, dtype=np.int64)
    run_end[n_p - 1] = n_p - 1
    for i in range(n_p - 2, -1, -1):
        g0 = p0 + i
        same = same_prev[i + 1] and _at(recr, gb, g0 + 1) == _at(recr, gb, g0) \
            and _at(lam, gb, g0 + 1) == _at(lam, gb, g0) \
            and _at(afac, gb, g0 + 1) == _at(afac, gb, g0)
        run_end[i] = run_end[i + 1] if same else i
    stepping = tol > 0.0 and fatigue
    # per cell (F, six deficits): state at the start of the last integrated interval, its
    # increment, the increment before, the state a step starts from
    buf = np.zeros((4, na, 7))
    S0, d_i, d_prev, S_now = buf[0], buf[1], buf[2], buf[3]
    dXc_now = np.zeros((na, 6))
    ebuf = np.empty((4, D))
    E0, CN0, E_now, CN_now = ebuf[0], ebuf[1], ebuf[2], ebuf[3]
    have_prev = False
    m_prev = 1
    m_try = 2
    a_i = 0.0
    i = 0
    while i < n_p:
        _pack(S0, F, X)
        E0[:] = E
        CN0[:] = CN
        a_i, pk_i = _interval(b, i, grid, rows, p0, prm, gains, fatigue, want_nodes, cw, st, ws,
                              force_nodes, dforce_nodes)
        n_steps[b] += _steps_of(pulse_node, i, h_step.size)
        area += a_i
        if pk_i > pk:
            pk = pk_i
        for q in range(na):
            if cpk_iv[q] > cpk_all[q]:
                cpk_all[q] = cpk_iv[q]
            d_i[q, 0] = F[q] - S0[q, 0]
            for j in range(6):
                d_i[q, j + 1] = X[q, j] - S0[q, j + 1]
        # E and CN repeat from interval to interval once the plateau has settled
        periodic = stepping and run_end[i] >= i + 2
        if periodic:
            for d in range(D):
                if abs(E[d] - E0[d]) > PERIODIC_TOL * (abs(E[d]) + 1e-300) \
                        or abs(CN[d] - CN0[d]) > PERIODIC_TOL * (abs(CN[d]) + 1e-300):
                    periodic = False
        if not periodic:
            have_prev = False
            i += 1
            continue
        if not have_prev:
            for q in range(na):
                for j in range(7):
                    d_prev[q, j] = d_i[q, j]
            have_prev = True
            m_prev = 1
            i += 1
            continue
        # step over intervals i+1 … i+m−1 and integrate interval i+m
        i_next = i + 1
        while True:
            m = min(m_try, run_end[i] - i)
            if m < 2:
                break
            _pack(S_now, F, X)
            dXc_now[:] = dXc
            E_now[:] = E
            CN_now[:] = CN
            fscale = pk if pk > 1e-12 else 1e-12
            for q in range(na):
                F[q] = S_now[q, 0] + (m - 1) * d_i[q, 0] \
                    + (d_i[q, 0] - d_prev[q, 0]) / m_prev * (m - 1) * m * 0.5
                for j in range(6):
                    X[q, j] = S_now[q, j + 1] + (m - 1) * d_i[q, j + 1] \
                        + (d_i[q, j + 1] - d_prev[q, j + 1]) / m_prev * (m - 1) * m * 0.5
            _pack(S0, F, X)
            E[:] = E0
            CN[:] = CN0
            a_m, pk_m = _interval(b, i + m, grid, rows, p0, prm, gains, fatigue, want_nodes, cw,
                                  st, ws, force_nodes, dforce_nodes)
            n_steps[b] += _steps_of(pulse_node, i + m, h_step.size)
            err = 0.0
            for q in range(na):
                dm0 = F[q] - S0[q, 0]
                corr = S_now[q, 0] + (m - 1) * d_i[q, 0] + (dm0 - d_i[q, 0]) * (m - 1) * 0.5
                v = abs(corr - S0[q, 0]) / fscale
                err = v if v > err else err
                for j in range(6):
                    dmj = X[q, j] - S0[q, j + 1]
                    corr = S_now[q, j + 1] + (m - 1) * d_i[q, j + 1] \
                        + (dmj - d_i[q, j + 1]) * (m - 1) * 0.5
                    v = abs(corr - S0[q, j + 1]) / (1.0 + abs(corr))
                    err = v if v > err else err
            if err > tol:
                for q in range(na):
                    F[q] = S_now[q, 0]
                    for j in range(6):
                        X[q, j] = S_now[q, j + 1]
                dXc[:] = dXc_now
                E[:] = E_now
                CN[:] = CN_now
                if m > 2:
                    m_try = max(2, m // 2)
                    continue
                # not smooth enough to skip even one interval: integrate the next one
                m_try = 2
                break
            # accept: the corrected state, the skipped intervals interpolated
            for q in range(na):
                dm0 = F[q] - S0[q, 0]
                corr = S_now[q, 0] + (m - 1) * d_i[q, 0] + (dm0 - d_i[q, 0]) * (m - 1) * 0.5
                F[q] = corr + dm0
                d_prev[q, 0] = d_i[q, 0]
                d_i[q, 0] = dm0
                for j in range(6):
                    dmj = X[q, j] - S0[q, j + 1]
                    corr = S_now[q, j + 1] + (m - 1) * d_i[q, j + 1] \
                        + (dmj - d_i[q, j + 1]) * (m - 1) * 0.5
                    X[q, j] = corr + dmj
                    d_prev[q, j + 1] = d_i[q, j + 1]
                    d_i[q, j + 1] = dmj
                if cpk_iv[q] > cpk_all[q]:
                    cpk_all[q] = cpk_iv[q]
            area += (m - 1) * a_i + (a_m - a_i) * (m - 1) * 0.5 + a_m
            if pk_m > pk:
                pk = pk_m
            if want_nodes:
                ka, kb = pulse_node[i], pulse_node[i + m]
                n_sub = pulse_node[i + 1] - ka
                for qq in range(1, m):
                    th = qq / m
                    base = pulse_node[i + qq]
                    for o in range(n_sub):
                        force_nodes[b, base + o] = (1 - th) * force_nodes[b, ka + o] \
                            + th * force_nodes[b, kb + o]
                        dforce_nodes[b, base + o] = (1 - th) * dforce_nodes[b, ka + o] \
                            + th * dforce_nodes[b, kb + o]
            a_i = a_m
            m_prev = m
            i = i + m
            i_next = i + 1
            if err < 1e-12:
                grow = 2.0
            else:
                grow = min(2.0, max(0.5, 0.9 * (tol / err) ** (1.0 / 3.0)))
            m_try = max(2, int(m * grow))
            if run_end[i] < i + 2:
                break
        i = i_next
        have_prev = False

    # rest after the last node: exact decay of every state
    dcr = np.exp(-rem / tau_c)
    for d in range(D):
        e_next[b, d] = E[d] * dcr
        cn_next[b, d] = (CN[d] + E[d] * rem) * dcr
    ftot = 0.0
    for q in range(na):
        ftot += F[q]
    for q in range(na):
        t1 = t1c[q] * (1.0 + X[q, 2] + X[q, 3])
        if rem > 0.0:
            # what is left of the force decays as F·e^{−t/τ1} (CN ≈ 0 by then): its integral,
            # and the fatigue drive it still causes (early in the rest, hence then decayed)
            j1 = F[q] * t1 * -np.expm1(-rem / t1)
            area += j1
            if fatigue:
                j2 = F[q] * ftot * 0.5 * t1 * -np.expm1(-2.0 * rem / t1)
                dr = phg[q] / W[q] * (occl_a * j1 + occl_b * j2)
                for j in range(6):
                    X[q, j] += gains[j] * dr
    peak[b] = pk
    fti[b] = area
    for c in range(C):
        q = cell_rep[b, c]
        if q < 0:
            tau1_end[b, c] = tau1_rest * tfac[c]
            continue
        t1 = t1c[q] * (1.0 + X[q, 2] + X[q, 3])
        share = weight[b, c] / W[q]
        cell_peak[b, c] = cpk_all[q] * share
        f_end[b, c] = F[q] * share
        tau1_end[b, c] = t1
        f_next[b, c] = F[q] * share * np.exp(-rem / t1)
        for j in range(6):
            x_next[b, c, j] = X[q, j] * np.exp(-rem / taus[j])


@jit(nogil=True)
def envelope(M, m, x, u0, slope):
    """``x`` (R, C, 6) after m cycles of ``x ← M·x + (u0 + j·slope)·capacity(x)``, j = 0 … m−1,
    with capacity = clip(1 − x₀ − x₁, 1e-12, 1) per cell (the solver's contraction stepping)."""
    out = x.copy()
    for q in range(m):
        for r in range(out.shape[0]):
            for c in range(out.shape[1]):
                cap = 1.0 - out[r, c, 0] - out[r, c, 1]
                cap = 1e-12 if cap < 1e-12 else (1.0 if cap > 1.0 else cap)
                for j in range(6):
                    out[r, c, j] = M[j] * out[r, c, j] + (u0[r, c, j] + q * slope[r, c, j]) * cap
    return out


def _outputs(B, C, D, N, want_nodes):
    nn = N if want_nodes else 0
    return (np.zeros(B), np.zeros(B), np.zeros((B, C)), np.zeros((B, C)), np.zeros((B, C)),
            np.zeros((B, C, 6)), np.zeros((B, C)), np.zeros((B, D)), np.zeros((B, D)),
            np.zeros((B, nn)), np.zeros((B, nn)), np.zeros(B, dtype=np.int64))


@jit(nogil=True)
def _unit_rows(lo, hi, grid, rows, p0, cells, prm, gains, taus, fatigue, state, want_nodes, outs):
    for b in range(lo, hi):
        _unit_row(b, grid, rows, p0, cells, prm, gains, taus, fatigue, state, want_nodes, outs)


def integrate_unit(grid, rows, p0, cells, prm, gains, taus, fatigue, state, want_nodes):
    """Integrate one unit (a contraction and the rest after it) for every row.

    Parameters
    ----------
    grid : tuple
        ``(h, dc, dch, pulse_node, idec, igm, same_prev, ilen, sdec, sgm)``: node steps (N−1,),
        s, and their e^{−h/τc}, e^{−h/2τc}; the node of each of the unit's p pulses; per interval
        (pulse i to pulse i+1, the last one to the end of the tail) the deficit decay
        e^{−Δ/τ_j} and gain g_j·e^{−Δ/2τ_j} (p, 6), whether its node pattern and R factor equal
        the previous interval's (p,), and its length Δ (p,); the same decay and gain per node
        step (N−1, 6), used in the tail.
    rows : tuple
        ``(rfac, afac, lam, recr, ridx)``: R_i per pulse (P,), per-row pulse factors (B', P)
        and, per integrated row b, its row ``ridx[b]`` of those factors (so a subset of rows is
        integrated without copying the factors); the unit's pulses are ``p0 … p0+p−1``.
    cells : tuple
        ``(act_cell, act_w, n_act, cell_rep, depth, tfac, fatig, weight, edges)``: per row the
        cells integrated (one per set of cells that behave identically: fully recruited depth
        groups merge, never-recruited ones are left out), their merged force shares, their
        number, and the integrated cell of every cell (−1: never recruited, stays rested and
        silent); per cell its depth group, time factor and fatigability; per row each cell's
        share (B, C) and the row's own depth-group edges (B, D+1) (zero-width groups pad rows
        with fewer groups than the widest row).
    prm : tuple of float
        ``(A_rest, τ1_rest, τ2, Km_rest, τc, pulse cost, 1 − γ, γ/F_max, rest after the last
        node, plateau tolerance)``; a tolerance of 0 integrates every interval.
    gains, taus : (6,) deficit gains and recovery time constants.
    state : tuple
        ``(x, f, e, cn)`` at the unit start, (B, C, 6), (B, C), (B, D), (B, D).

    Returns
    -------
    tuple
        ``peak, fti`` (B,); ``cell_peak, f_end, tau1_end`` (B, C); the next unit's start state
        ``x, f, e, cn``; force and its slope at the nodes (B, N) when ``want_nodes``, else
        (B, 0); node steps integrated per row (B,).
    """
    f = state[1]
    outs = _outputs(f.shape[0], f.shape[1], state[2].shape[1], grid[0].size + 1, want_nodes)
    _over_rows(_unit_rows, f.shape[0],
               (grid, rows, p0, cells, prm, gains, taus, fatigue, state, want_nodes, outs))
    return outs
