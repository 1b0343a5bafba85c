"""Integration of the motor-unit pool with per-cell fatigue: contractions, stepping, output.

How it is fast
--------------
* **One compiled kernel per contraction.** :func:`emsim.physiology._muscle_kernel.integrate_unit`
  integrates a contraction and the rest after it for every batch row (rows split over the cores):
  CN exactly between nodes, F by RK4 per node step (no step longer than ``max_step``), the six
  fatigue deficits of each cell alongside (per pulse interval, with the fatigue parameters held
  at their predicted mid-interval value; per step in the relaxation tail). The per-pulse
  recursion is sequential; numpy's per-call overhead used to dominate at these array sizes.
* **Identical pulse intervals inside a contraction are stepped over** (in the kernel): once E
  and CN repeat from interval to interval (a constant-rate plateau), the state at interval starts
  is smooth in the interval index, so every m-th interval is integrated, the increments in
  between are interpolated (predictor–corrector, m adapted to ``PLATEAU_TOL · skip_tol``).
* **Cells that behave alike are integrated once per row.** Depth groups a row recruits fully
  at every pulse have the same history (their forces are proportional to their shares), so they
  merge into one cell; depth groups a row never recruits stay rested and silent and are left out.
* **Rests are exact.** Recovery is linear, so a rest of any length is one exponential per
  deficit; force and CN are integrated for ``TAIL`` seconds after the last pulse, then the force
  left decays as F·e^{−t/τ1}, with its integral and the fatigue drive it still causes added in
  closed form.
* **Repeated identical contractions are stepped over** (envelope following, :func:`_march`):
  the fatigue state at the start of contraction k+1 is ``M·x_k + b_k`` with ``M`` the exact
  recovery over one cycle and ``b_k`` what contraction k adds. ``b`` changes slowly from cycle to
  cycle, so the solver integrates every m-th contraction, sums the geometric series exactly for
  the ones in between with ``b`` varying linearly (predictor from the last two integrated
  cycles, corrector from the new one) and adapts m to keep the predictor–corrector difference,
  and the curvature of the (log) peaks and force-time integrals it interpolates for the skipped
  cycles, below ``skip_tol``. Contractions are identical when their node grids and every row's
  per-pulse factors are (compared by 64-bit hashes of the factors,
  :func:`~emsim.physiology._muscle_kernel.block_hashes`).
* **Identical rows** (the channels of a symmetric program) are integrated once.

Accuracy (``tests/physiology/test_muscle_solver.py``, ``test_muscle_kernel.py``,
``tests/validation/test_muscle_pool.py``): against a fine-step ``solve_ivp`` solution of the
same equations, force within 0.1 % of the peak and deficits within 1e-4, with and without the
stepping; the stepping vs integrating everything (4 min of 85 Hz 4 s/4 s, quadriceps): force
trace 0.5 %, per-contraction peaks and force-time integrals 0.1 %, deficits 1e-3 relative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from emsim.physiology import _muscle_kernel as kernel
from emsim.physiology.ding import fill_nodes

#: A rest longer than this separates contractions (force and CN have decayed by then).
GAP = 0.25
#: Part of a rest after the last pulse that is integrated; the rest of it is exact decay (by
#: then CN is < 1e-9 of its peak, so dF/dt = −F/τ1 holds).
TAIL = 0.5
#: Largest node step in the tail (RK4 of dF/dt = −F/τ1 needs h well below 2.7 τ1).
TAIL_STEP = 0.02
TAIL_GROWTH = 1.5
#: Tolerance of the stepping over identical pulse intervals inside a contraction, relative to
#: ``skip_tol`` (the contraction-level tolerance).
PLATEAU_TOL = 0.1


@dataclass
class Cells:
    """The pool's cells (unit class × recruitment depth group), flattened."""

    weight: np.ndarray        # (C,) share of the muscle's force
    time_factor: np.ndarray   # (C,)
    fatigability: np.ndarray  # (C,)
    depth: np.ndarray         # (C,) depth-group index
    edges: np.ndarray         # (D+1,) recruitment edges, 0 first


@dataclass
class Model:
    tau_c: float
    a_rest: float
    tau1: float
    tau2: float
    km: float
    r0: float
    gains: np.ndarray         # (6,)
    taus: np.ndarray          # (6,)
    pulse_cost: float         # κ · F_ref, N·s per pulse
    occlusion: float          # γ
    f_max: float              # N
    fatigue: bool


@dataclass
class Segment:
    """One contraction (a burst of pulses) and the rest after it."""

    start: float
    nodes: np.ndarray         # (N,) times from start; node 0 is the first pulse
    pulse_node: np.ndarray    # (p,) node index of each pulse
    pulse_index: np.ndarray   # (p,) index into the row's pulse arrays
    period: float             # start of next contraction − start
    contraction: int
    last: bool = False


def segment_train(pulses: np.ndarray, t_end: float, max_step: float) -> tuple[list[Segment], np.ndarray]:
    """Split one pulse timing into contractions; returns them and their start times."""
    if pulses.size == 0:
        return [], np.zeros(0)
    breaks = np.flatnonzero(np.diff(pulses) > GAP) + 1
    c_first = np.concatenate([[0], breaks])
    c_last = np.concatenate([breaks, [pulses.size]])
    segs: list[Segment] = []
    for ci, (a, b) in enumerate(zip(c_first, c_last)):
        start = pulses[a]
        nxt = pulses[b] if b < pulses.size else max(t_end, pulses[-1])
        rel = pulses[a:b] - start
        end_rel = rel[-1] + min(nxt - pulses[b - 1], TAIL)
        nodes = _nodes(rel, end_rel, max_step)
        segs.append(Segment(start=float(start), nodes=nodes, pulse_node=np.searchsorted(nodes, rel),
                            pulse_index=np.arange(a, b), period=float(nxt - start), contraction=ci))
    segs[-1].last = True
    return segs, pulses[c_first]


def _nodes(rel: np.ndarray, end_rel: float, max_step: float) -> np.ndarray:
    """Pulse times with fill points (no step above ``max_step``), then a graded relaxation tail."""
    last = rel[-1]
    nodes = fill_nodes(rel, max_step)
    if end_rel > last:
        steps, h, tot = [], max_step, 0.0
        while tot + h < end_rel - last - 1e-12:
            steps.append(h)
            tot += h
            h = min(h * TAIL_GROWTH, TAIL_STEP)
        steps.append(end_rel - last - tot)
        nodes = np.concatenate([nodes, last + np.cumsum(steps)])
    return nodes


@dataclass
class State:
    """What carries from one contraction to the next, per row."""

    x: np.ndarray    # (B, C, 6) deficits
    f: np.ndarray    # (B, C) force per cell, N
    e: np.ndarray    # (B, D) auxiliary E of the exact CN update, 1/s
    cn: np.ndarray   # (B, D)

    def copy(self) -> "State":
        return State(self.x.copy(), self.f.copy(), self.e.copy(), self.cn.copy())


@dataclass
class SegmentOutput:
    force: np.ndarray      # (B, N) total force at the nodes (B, 0) without a trace
    dforce: np.ndarray     # (B, N) its time derivative (cubic Hermite sampling between nodes)
    fti: np.ndarray        # (B,) force-time integral over the contraction and its rest, N·s
    peak: np.ndarray       # (B,)
    cell_peak: np.ndarray  # (B, C) peak force of each cell
    f_end: np.ndarray      # (B, C) cell forces at the last node
    tau1_end: np.ndarray   # (B, C) τ1 at the last node (decay of the untracked rest)


@dataclass
class RowCells:
    """Per row: which cells are integrated (merged) and how every cell maps to them."""

    act_cell: np.ndarray   # (B, Q) representative cell of each integrated cell
    act_w: np.ndarray      # (B, Q) merged force share
    n_act: np.ndarray      # (B,)
    cell_rep: np.ndarray   # (B, C) integrated cell of each cell, −1 if never recruited


def merge_cells(cells: Cells, recr: np.ndarray, B: int) -> RowCells:
    """Merge, per row, the cells that behave identically (see the module docstring).

    A depth group is recruited fully at every pulse of a row when its upper edge is at or below
    the row's smallest recruitment (then its firing fraction is exactly 1 at every pulse), and
    never when its lower edge is at or above the row's largest.
    """
    edges = cells.edges
    D = edges.size - 1
    G = cells.weight.size // D
    rmin = np.broadcast_to(recr.min(axis=1), (B,))   # recr may be compact (1 row)
    rmax = np.broadcast_to(recr.max(axis=1), (B,))
    full = edges[None, 1:] <= rmin[:, None]
    never = edges[None, :-1] >= rmax[:, None]
    first_full = np.where(full.any(axis=1), full.argmax(axis=1), -1)
    rep_d = np.where(full, first_full[:, None], np.arange(D)[None, :])
    rep_d = np.where(never & ~full, -1, rep_d)                               # (B, D)
    cls = np.arange(cells.weight.size) % G
    rep_c = np.where(rep_d[:, cells.depth] >= 0, rep_d[:, cells.depth] * G + cls[None, :], -1)
    is_rep = rep_c == np.arange(cells.weight.size)[None, :]
    q_of = np.cumsum(is_rep, axis=1) - 1                                     # (B, C)
    cell_rep = np.where(rep_c >= 0, np.take_along_axis(q_of, np.maximum(rep_c, 0), axis=1), -1)
    n_act = is_rep.sum(axis=1)
    Q = max(int(n_act.max()), 1)
    act_cell = np.zeros((B, Q), dtype=np.int64)
    act_w = np.ones((B, Q))
    rows, cols = np.nonzero(is_rep)
    act_cell[rows, q_of[rows, cols]] = cols
    act_w[:] = 0.0
    for c in range(cells.weight.size):
        sel = cell_rep[:, c] >= 0
        act_w[np.flatnonzero(sel), cell_rep[sel, c]] += cells.weight[c]
    act_w[act_w == 0.0] = 1.0   # padding slots (never read)
    return RowCells(act_cell=act_cell, act_w=act_w, n_act=n_act.astype(np.int64),
                    cell_rep=cell_rep.astype(np.int64))


@dataclass
class GroupResult:
    force: np.ndarray        # (B, T) or (B, 0)
    peak: np.ndarray         # (B, K) per contraction
    cell_peak: np.ndarray    # (B, K, C)
    fti: np.ndarray          # (B, K)
    contraction_start: np.ndarray  # (K,)
    state: State             # at t_end
    evaluated: int           # contractions integrated
    segments: int            # contractions in all
    node_steps: int = 0      # node steps integrated (summed over rows)
    node_steps_full: int = 0  # node steps of the integrated contractions without interval stepping


def compact(a: np.ndarray) -> np.ndarray:
    """A per-pulse factor (B, P) as the kernel stores it: (1 or B, 1 or P), C-contiguous float64.

    Constant factors (broadcast views, e.g. no pulse-duration term) stay one value instead of a
    batch × pulses array.
    """
    a = np.asarray(a, dtype=np.float64)
    if a.ndim == 2 and a.size and a.strides[1] == 0:
        a = a[:, :1]
    if a.ndim == 2 and a.size and a.strides[0] == 0:
        a = a[:1]
    return np.ascontiguousarray(a)


def _row(a: np.ndarray, r: int) -> np.ndarray:
    return a[r if a.shape[0] > 1 else 0]


def _take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return a[rows] if a.shape[0] > 1 else a


def _unit_signatures(segs: list[Segment], hashes: list, rfac: np.ndarray) -> list[bytes]:
    """Per contraction: its node grid, period and R factors, and the hash of every row's factors."""
    per_unit = np.stack([kernel.fold_hashes(np.ascontiguousarray(h.T)) for h in hashes], axis=1)
    # node times are rounded: cycles built from ``k·period + pattern`` differ in the last bits
    return [b"".join([np.round(s.nodes, 9).tobytes(), np.round(np.float64(s.period), 9).tobytes(),
                      per_unit[u].tobytes(), np.round(rfac[s.pulse_index], 12).tobytes()])
            for u, s in enumerate(segs)]


class _Grid:
    """Per node grid: the kernel's step and interval tables (shared by all rows)."""

    def __init__(self, seg: Segment, model: Model, rfac: np.ndarray):
        h = np.diff(seg.nodes)
        pn = seg.pulse_node.astype(np.int64)
        ends = np.append(pn[1:], seg.nodes.size - 1)
        ilen = seg.nodes[ends] - seg.nodes[pn]
        n_sub = ends - pn
        same = np.zeros(pn.size, dtype=np.bool_)
        if pn.size > 2:
            # an interval repeats the previous one when its node steps and R factor do
            # (the last interval carries the tail and never repeats)
            r = np.round(rfac[seg.pulse_index], 12)
            hr = np.round(h, 12)
            for i in range(1, pn.size - 1):
                same[i] = (n_sub[i] == n_sub[i - 1] and r[i] == r[i - 1]
                           and np.array_equal(hr[pn[i]:ends[i]], hr[pn[i - 1]:ends[i - 1]]))
        self.tables = (h, np.exp(-h / model.tau_c), np.exp(-0.5 * h / model.tau_c), pn,
                       np.ascontiguousarray(np.exp(-ilen[:, None] / model.taus[None, :])),
                       np.ascontiguousarray(model.gains[None, :]
                                            * np.exp(-0.5 * ilen[:, None] / model.taus[None, :])),
                       same, ilen,
                       np.ascontiguousarray(np.exp(-h[:, None] / model.taus[None, :])),
                       np.ascontiguousarray(model.gains[None, :]
                                            * np.exp(-0.5 * h[:, None] / model.taus[None, :])))
        self.rem = float(seg.period - seg.nodes[-1])


def _cycle_metric(outs: list, scale: np.ndarray) -> np.ndarray:
    """Logarithms of a unit's peak force and force-time integral per row (their curvature over
    the unit index is the relative error of interpolating them); ``scale`` keeps silent rows
    finite."""
    return np.log(np.concatenate([np.max([o.peak for o in outs], axis=0) + 1e-9 * scale[0],
                                  np.sum([o.fti for o in outs], axis=0) + 1e-9 * scale[1]]))


def _capacity(x: np.ndarray) -> np.ndarray:
    """Remaining force capacity 1 − D_A,fast − D_A,slow of each cell, shape (..., 1)."""
    return np.clip(1.0 - x[..., :1] - x[..., 1:2], 1e-12, 1.0)


def _per_capacity(b: np.ndarray, x: np.ndarray) -> np.ndarray:
    """A cycle's deficit increments per unit of the capacity it started with.

    Every deficit is driven by the cell's force and pulses, and both scale with the cell's
    capacity, which the cycle itself depletes multiplicatively: ``b ≈ u · capacity(x)`` with
    ``u`` a smooth function of the slower states. Extrapolating ``u`` instead of ``b`` makes
    this strong, fast feedback (a fatigued cell's capacity regulates itself within a few
    cycles) implicit in the envelope recursion, so long runs of cycles can be stepped over
    without the period-2 wobble of an explicit extrapolation of ``b``.
    """
    return b / _capacity(x)


def _envelope(M: np.ndarray, m: int, x: np.ndarray, u0: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """``x`` after m cycles of ``x ← M·x + (u0 + j·slope)·capacity(x)`` (j = 0 … m−1)."""
    for q in range(m):
        x = M * x + (u0 + q * slope) * _capacity(x)
    return x


class _Writer:
    """Samples segment outputs onto the output times."""

    def __init__(self, t_out: np.ndarray, B: int, want: bool):
        self.t = t_out
        self.want = want and t_out.size > 0
        self.force = np.zeros((B, t_out.size if self.want else 0))

    def write(self, seg: Segment, out: SegmentOutput, start: float):
        if not self.want:
            return
        lo = np.searchsorted(self.t, start, side="left")
        # the last segment owns the final sample too
        hi = self.t.size if seg.last else np.searchsorted(self.t, start + seg.period, side="left")
        if lo == hi:
            return
        rel = self.t[lo:hi] - start
        inside = rel <= seg.nodes[-1]
        if inside.any():
            k = np.clip(np.searchsorted(seg.nodes, rel[inside], side="right") - 1, 0,
                        seg.nodes.size - 2)
            h = seg.nodes[k + 1] - seg.nodes[k]
            th = (rel[inside] - seg.nodes[k]) / h
            # cubic Hermite from the force and its derivative at both nodes (4th order)
            h00 = (1 + 2 * th) * (1 - th) ** 2
            h10 = th * (1 - th) ** 2
            h01 = th * th * (3 - 2 * th)
            h11 = th * th * (th - 1)
            sub = (out.force[:, k] * h00 + out.dforce[:, k] * (h10 * h)
                   + out.force[:, k + 1] * h01 + out.dforce[:, k + 1] * (h11 * h))
            block = self.force[:, lo:hi]
            block[:, inside] = sub
            self.force[:, lo:hi] = block
        if (~inside).any():
            d = rel[~inside] - seg.nodes[-1]
            block = self.force[:, lo:hi]
            block[:, ~inside] = np.einsum(
                "bc,bct->bt", out.f_end, np.exp(-d[None, None, :] / out.tau1_end[..., None]))
            self.force[:, lo:hi] = block


def _blend(a: SegmentOutput, b: SegmentOutput, th: float) -> SegmentOutput:
    mix = lambda u, v: (1 - th) * u + th * v  # noqa: E731
    return SegmentOutput(force=mix(a.force, b.force), dforce=mix(a.dforce, b.dforce), fti=mix(a.fti, b.fti),
                         peak=mix(a.peak, b.peak), cell_peak=mix(a.cell_peak, b.cell_peak),
                         f_end=mix(a.f_end, b.f_end),
                         tau1_end=mix(a.tau1_end, b.tau1_end))


def _march(n: int, sig, period, run_unit, account, st: State, model: Model,
           skip_tol: float | None) -> State:
    """Integrate units 0 … n−1 (contractions) in order, stepping over runs of
    identical units (envelope following, see the module docstring); returns the final state.

    ``run_unit(i, state) → (outputs, next state)`` integrates unit i; ``account(i, outputs)``
    records them (interpolated outputs for stepped-over units).
    """
    i = 0
    while i < n:
        outs, nxt = run_unit(i, st)
        account(i, outs)
        # a run of identical units after this one can be stepped over
        j = i
        while skip_tol is not None and model.fatigue and j + 1 < n and sig(j + 1) == sig(i):
            j += 1
        if j == i:
            st = nxt
            i += 1
            continue
        M = np.exp(-period(i) / model.taus)
        k, x_k, outs_k = i, st.x, outs
        u_k = _per_capacity(nxt.x - M * st.x, st.x)
        u_prev, m_prev, pk_prev = None, 1, None
        scale = np.maximum([np.max([o.peak for o in outs]), np.max([o.fti for o in outs])],
                           1e-12)
        m = 1   # the first step has no slope yet: its outputs could not be interpolated
        while k < j:
            m = max(1, min(m, j - k))
            slope = (u_k - u_prev) / m_prev if u_prev is not None else np.zeros_like(u_k)
            x_pred = _envelope(M, m, x_k, u_k, slope)
            # what is left of the force at the next start scales with capacity (it matters only
            # after short rests: a contraction forgets the force it started with)
            f_pred = nxt.f * (_capacity(x_pred) / _capacity(nxt.x))[..., 0]
            outs_m, nxt_m = run_unit(k + m, State(x_pred, f_pred, nxt.e, nxt.cn))
            u_m = _per_capacity(nxt_m.x - M * x_pred, x_pred)
            x_corr = _envelope(M, m, x_k, u_k, (u_m - u_k) / m)
            err = float(np.max(np.abs(x_corr - x_pred) / (1.0 + np.abs(x_corr))))
            # skipped units' outputs are interpolated: their curvature must be small too
            pk_k, pk_m = _cycle_metric(outs_k, scale), _cycle_metric(outs_m, scale)
            curv = None
            if pk_prev is not None:
                # largest gap between linear and quadratic interpolation through the last
                # three evaluated units: the error of the interpolated peaks and integrals
                curv = float(np.max(np.abs(((pk_m - pk_k) / m - (pk_k - pk_prev) / m_prev)
                                           / (m + m_prev))))
                if m > 1:
                    err = max(err, curv * m * m / 4)
            if err > skip_tol and m > 1:
                m = max(1, m // 2)
                continue
            for q in range(1, m):
                account(k + q, [_blend(a, b, q / m) for a, b in zip(outs_k, outs_m)])
            account(k + m, outs_m)
            u_prev, m_prev, pk_prev = u_k, m, pk_k
            k, x_k, outs_k, u_k = k + m, x_corr, outs_m, u_m
            nxt = State(M * x_corr + u_m * _capacity(x_corr), nxt_m.f, nxt_m.e, nxt_m.cn)
            grow = 2.0 if err < 1e-12 else min(2.0, max(0.5, 0.9 * (skip_tol / err) ** (1 / 3)))
            m = max(1, int(m * grow))
            if curv is not None and curv > 0:
                # a step whose interpolated outputs would fail the curvature test is not tried
                # (inside a contraction the force envelope is curved: each failed try costs a
                # unit's integration)
                m = max(1, min(m, int(2.0 * np.sqrt(0.8 * skip_tol / curv))))
        st = nxt
        i = j + 1
    return st


def run_group(pulses: np.ndarray, afac: np.ndarray, lam: np.ndarray, recr: np.ndarray,
              model: Model, cells: Cells, t_out: np.ndarray, t_end: float, max_step: float,
              want_trace: bool, skip_tol: float | None) -> GroupResult:
    """Simulate rows that share one pulse timing (per-row pulse factors (B, P) may differ; they
    may be broadcast views).

    Rows with identical per-pulse factors (the channels of a symmetric program, repeated
    candidates of a batch) are integrated once and copied.
    """
    B = np.shape(afac)[0]
    facs = [compact(a) for a in (afac, lam, recr)]
    segs, c_start = segment_train(pulses, t_end, max_step)
    first = np.array([s.pulse_index[0] for s in segs], dtype=np.int64)
    stop = np.array([s.pulse_index[-1] + 1 for s in segs], dtype=np.int64)
    hashes = [kernel.block_hashes(a.view(np.uint64), first, stop) for a in facs]
    keys = np.stack([np.broadcast_to(kernel.fold_hashes(h), (B,)) for h in hashes], axis=1)
    _, uniq, inverse = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    inverse = inverse.ravel()
    dup = np.flatnonzero(uniq[inverse] != np.arange(B))
    # a hash match is confirmed before rows are shared
    if uniq.size == B or not all(np.array_equal(_row(a, r), _row(a, uniq[inverse[r]]))
                                 for a in facs for r in dup):
        uniq, inverse = np.arange(B), np.arange(B)
    if uniq.size == B:
        return _run_rows(pulses, *facs, B, model, cells, t_out, max_step, want_trace, skip_tol,
                         segs, c_start, hashes)
    g = _run_rows(pulses, *[_take_rows(a, uniq) for a in facs], uniq.size, model, cells, t_out,
                  max_step, want_trace, skip_tol, segs, c_start,
                  [_take_rows(h, uniq) for h in hashes])
    st = g.state
    return GroupResult(force=g.force[inverse], peak=g.peak[inverse],
                       cell_peak=g.cell_peak[inverse], fti=g.fti[inverse],
                       contraction_start=g.contraction_start,
                       state=State(st.x[inverse], st.f[inverse], st.e[inverse], st.cn[inverse]),
                       evaluated=g.evaluated, segments=g.segments, node_steps=g.node_steps,
                       node_steps_full=g.node_steps_full)


def _run_rows(pulses: np.ndarray, afac: np.ndarray, lam: np.ndarray, recr: np.ndarray, B: int,
              model: Model, cells: Cells, t_out: np.ndarray, max_step: float, want_trace: bool,
              skip_tol: float | None, segs: list[Segment], c_start: np.ndarray,
              hashes: list) -> GroupResult:
    C, D = cells.weight.size, cells.edges.size - 1
    writer = _Writer(t_out, B, want_trace)
    rc = merge_cells(cells, recr, B)
    st = State(np.zeros((B, C, 6)), np.zeros((B, C)), np.zeros((B, D)), np.zeros((B, D)))
    K = c_start.size
    peak = np.zeros((B, K))
    cell_peak = np.zeros((B, K, C))
    fti = np.zeros((B, K))
    rfac = 1.0 + (model.r0 - 1.0) * np.exp(-np.diff(pulses, prepend=-np.inf) / model.tau_c)
    sigs = _unit_signatures(segs, hashes, rfac)
    evaluated = [0]
    node_steps, all_steps = [0], [0]
    grids: dict[bytes, _Grid] = {}
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    cell_args = (rc.act_cell, f64(rc.act_w), rc.n_act, rc.cell_rep,
                 np.ascontiguousarray(cells.depth, dtype=np.int64), f64(cells.time_factor),
                 f64(cells.fatigability), f64(cells.weight), f64(cells.edges))
    rows = (f64(rfac), afac, lam, recr)
    tol = 0.0 if skip_tol is None else float(skip_tol) * PLATEAU_TOL
    want_nodes = bool(want_trace and writer.want)

    def run_unit(i: int, state: State):
        sg = segs[i]
        key = sigs[i]
        grid = grids.get(key)
        if grid is None:
            grid = _Grid(sg, model, rfac)
            if len(grids) > 256:
                grids.clear()
            grids[key] = grid
        prm = (model.a_rest, model.tau1, model.tau2, model.km, model.tau_c, model.pulse_cost,
               1.0 - model.occlusion, model.occlusion / model.f_max, grid.rem, tol)
        res = kernel.integrate_unit(
            grid.tables, rows, int(sg.pulse_index[0]), cell_args, prm, f64(model.gains),
            f64(model.taus), bool(model.fatigue),
            (f64(state.x), f64(state.f), f64(state.e), f64(state.cn)), want_nodes)
        pk, area, cpk, f_end, t1_end, x1, f1, e1, cn1, fn, dfn, n_steps = res
        evaluated[0] += 1
        node_steps[0] += int(n_steps.sum())
        all_steps[0] += (sg.nodes.size - 1) * n_steps.size
        out = SegmentOutput(force=fn, dforce=dfn, fti=area, peak=pk, cell_peak=cpk, f_end=f_end,
                            tau1_end=t1_end)
        return [out], State(x1, f1, e1, cn1)

    def account(i, outs):
        sg, out = segs[i], outs[0]
        peak[:, i] = out.peak
        cell_peak[:, i] = out.cell_peak
        fti[:, i] = out.fti
        writer.write(sg, out, sg.start)

    st = _march(len(segs), lambda i: sigs[i], lambda i: segs[i].period, run_unit, account, st,
                model, skip_tol)
    return GroupResult(force=writer.force, peak=peak, cell_peak=cell_peak, fti=fti,
                       contraction_start=c_start, state=st, evaluated=evaluated[0],
                       node_steps=node_steps[0], node_steps_full=all_steps[0],
                       segments=len(segs))
