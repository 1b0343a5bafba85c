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
* **Rows do not depend on each other.** Every row has its own recruitment depth groups (edges
  from its own recruitment levels, :func:`emsim.physiology.muscle._cells`; a flat row has one)
  and takes its own steps over contractions: :func:`_march` runs per row as a generator that
  asks for contractions to be integrated, and :func:`_run_rows` integrates the requests of all
  rows for the same contraction in one kernel call. ``simulate(batch)[i]`` equals
  ``simulate(row i)`` to round-off (``tests/physiology/test_muscle_batch.py``), and a channel's
  force does not depend on the other channels of a program.
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
  cycles, below ``skip_tol``. Contractions are identical when their node grids and the row's
  per-pulse factors are (compared by 64-bit hashes of the factors,
  :func:`~emsim.physiology._muscle_kernel.block_hashes`). Each row decides for itself (its own
  m, its own runs of identical contractions).
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
    """The pool's cells (unit class × recruitment depth group), flattened.

    Every row has its own depth-group edges (from its own recruitment levels, so that rows do
    not depend on each other); ``weight`` and ``edges`` may also be given without the row axis
    (the same for all rows).
    """

    weight: np.ndarray        # (B, C) or (C,) share of the muscle's force
    time_factor: np.ndarray   # (C,)
    fatigability: np.ndarray  # (C,)
    depth: np.ndarray         # (C,) depth-group index
    edges: np.ndarray         # (B, D+1) or (D+1,) recruitment edges, 0 first

    def per_row(self, B: int) -> "Cells":
        C, D1 = self.time_factor.size, np.shape(self.edges)[-1]
        return Cells(np.ascontiguousarray(np.broadcast_to(self.weight, (B, C)), dtype=np.float64),
                     self.time_factor, self.fatigability, self.depth,
                     np.ascontiguousarray(np.broadcast_to(self.edges, (B, D1)), dtype=np.float64))

    def take(self, rows) -> "Cells":
        return Cells(self.weight[rows], self.time_factor, self.fatigability, self.depth,
                     self.edges[rows])


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
    never when its lower edge is at or above the row's largest (or it has no width: padding).
    """
    cells = cells.per_row(B)
    edges = cells.edges
    C = cells.time_factor.size
    D = edges.shape[1] - 1
    G = C // D
    rmin = np.broadcast_to(recr.min(axis=1), (B,))   # recr may be compact (1 row)
    rmax = np.broadcast_to(recr.max(axis=1), (B,))
    empty = edges[:, 1:] <= edges[:, :-1]
    full = (edges[:, 1:] <= rmin[:, None]) & ~empty
    never = (edges[:, :-1] >= rmax[:, None]) | empty
    first_full = np.where(full.any(axis=1), full.argmax(axis=1), -1)
    rep_d = np.where(full, first_full[:, None], np.arange(D)[None, :])
    rep_d = np.where(never & ~full, -1, rep_d)                               # (B, D)
    cls = np.arange(C) % G
    rep_c = np.where(rep_d[:, cells.depth] >= 0, rep_d[:, cells.depth] * G + cls[None, :], -1)
    is_rep = rep_c == np.arange(C)[None, :]
    q_of = np.cumsum(is_rep, axis=1) - 1                                     # (B, C)
    cell_rep = np.where(rep_c >= 0, np.take_along_axis(q_of, np.maximum(rep_c, 0), axis=1), -1)
    n_act = is_rep.sum(axis=1)
    Q = max(int(n_act.max()), 1)
    act_cell = np.zeros((B, Q), dtype=np.int64)
    act_w = np.ones((B, Q))
    rows, cols = np.nonzero(is_rep)
    act_cell[rows, q_of[rows, cols]] = cols
    act_w[:] = 0.0
    for c in range(C):
        sel = np.flatnonzero(cell_rep[:, c] >= 0)
        act_w[sel, cell_rep[sel, c]] += cells.weight[sel, c]
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
    """Logarithms of a unit's peak force and force-time integral (``outs``: one row's one
    output; their curvature over the unit index is the relative error of interpolating them);
    ``scale`` keeps silent rows finite."""
    o = outs[0]
    return np.log(np.concatenate([o.peak + 1e-9 * scale[0], o.fti + 1e-9 * scale[1]]))


def _capacity(x: np.ndarray) -> np.ndarray:
    """Remaining force capacity 1 − D_A,fast − D_A,slow of each cell, shape (..., 1)."""
    # np.minimum/maximum: np.clip's dispatch costs more than the arithmetic at these sizes
    return np.minimum(np.maximum(1.0 - x[..., :1] - x[..., 1:2], 1e-12), 1.0)


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
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    return kernel.envelope(f64(M), int(m), f64(x), f64(u0), f64(slope))


class _Writer:
    """Samples segment outputs onto the output times."""

    def __init__(self, t_out: np.ndarray, B: int, want: bool):
        self.t = t_out
        self.want = want and t_out.size > 0
        self.force = np.zeros((B, t_out.size if self.want else 0))

    def write(self, seg: Segment, out: SegmentOutput, start: float, row: int):
        """Write a one-row output ``out`` into row ``row``."""
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
            block = self.force[row:row + 1, lo:hi]
            block[:, inside] = sub
        if (~inside).any():
            d = rel[~inside] - seg.nodes[-1]
            block = self.force[row:row + 1, lo:hi]
            block[:, ~inside] = np.einsum(
                "bc,bct->bt", out.f_end, np.exp(-d[None, None, :] / out.tau1_end[..., None]))


def _march(n: int, run_end, period, account, st: State, model: Model, skip_tol: float | None):
    """Integrate units 0 … n−1 (contractions) of one row in order, stepping over runs of
    identical units (envelope following, see the module docstring); returns the final state.

    A generator: it yields ``(i, state)`` when it needs unit i integrated from ``state`` and
    is sent back ``(outputs, next state)``, so that the caller can integrate the requests of
    many rows in one kernel call while every row takes its own steps (a row's result does not
    depend on the other rows). ``run_end[i]`` is the last unit of the run of units identical
    to unit i that starts there. ``account(i, a, b, th)`` records the outputs of units
    i … i+len(th)−1 as ``(1 − th)·a + th·b`` (interpolated outputs of stepped-over units; ``b``
    is None for an integrated unit).
    """
    i = 0
    while i < n:
        outs, nxt = yield i, st
        account(i, outs, None, None)
        # a run of identical units after this one can be stepped over
        j = int(run_end[i]) if skip_tol is not None and model.fatigue else i
        if j == i:
            st = nxt
            i += 1
            continue
        M = np.exp(-period(i) / model.taus)
        k, x_k, outs_k = i, st.x, outs
        u_k = _per_capacity(nxt.x - M * st.x, st.x)
        u_prev, m_prev, pk_prev = None, 1, None
        scale = np.maximum([outs[0].peak.max(), outs[0].fti.max()], 1e-12)
        m = 1   # the first step has no slope yet: its outputs could not be interpolated
        while k < j:
            m = max(1, min(m, j - k))
            slope = (u_k - u_prev) / m_prev if u_prev is not None else np.zeros_like(u_k)
            x_pred = _envelope(M, m, x_k, u_k, slope)
            # what is left of the force at the next start scales with capacity (it matters only
            # after short rests: a contraction forgets the force it started with)
            f_pred = nxt.f * (_capacity(x_pred) / _capacity(nxt.x))[..., 0]
            outs_m, nxt_m = yield k + m, State(x_pred, f_pred, nxt.e, nxt.cn)
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
            if m > 1:
                account(k + 1, outs_k, outs_m, np.arange(1, m) / m)
            account(k + m, outs_m, None, None)
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

    Every row takes its own steps (its own cells, its own stepping over contractions and
    pulse intervals): a row's result does not depend on the other rows. Rows with identical
    per-pulse factors (the channels of a symmetric program, repeated candidates of a batch)
    are integrated once and copied.
    """
    B = np.shape(afac)[0]
    cells = cells.per_row(B)
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
    g = _run_rows(pulses, *[_take_rows(a, uniq) for a in facs], uniq.size, model,
                  cells.take(uniq), t_out, max_step, want_trace, skip_tol, segs, c_start,
                  [_take_rows(h, uniq) for h in hashes])
    st = g.state
    return GroupResult(force=g.force[inverse], peak=g.peak[inverse],
                       cell_peak=g.cell_peak[inverse], fti=g.fti[inverse],
                       contraction_start=g.contraction_start,
                       state=State(st.x[inverse], st.f[inverse], st.e[inverse], st.cn[inverse]),
                       evaluated=g.evaluated, segments=g.segments, node_steps=g.node_steps,
                       node_steps_full=g.node_steps_full)


def _unit_ids(segs: list[Segment], rfac: np.ndarray) -> np.ndarray:
    """Per contraction, an id shared by the contractions with the same node grid, period and R
    factors (the row-independent part of being identical)."""
    ids: dict[bytes, int] = {}
    # node times are rounded: cycles built from ``k·period + pattern`` differ in the last bits
    return np.array([ids.setdefault(b"".join([np.round(s.nodes, 9).tobytes(),
                                              np.round(np.float64(s.period), 9).tobytes(),
                                              np.round(rfac[s.pulse_index], 12).tobytes()]),
                                    len(ids)) for s in segs], dtype=np.int64)


def _run_rows(pulses: np.ndarray, afac: np.ndarray, lam: np.ndarray, recr: np.ndarray, B: int,
              model: Model, cells: Cells, t_out: np.ndarray, max_step: float, want_trace: bool,
              skip_tol: float | None, segs: list[Segment], c_start: np.ndarray,
              hashes: list) -> GroupResult:
    C, D = cells.time_factor.size, cells.edges.shape[1] - 1
    writer = _Writer(t_out, B, want_trace)
    rc = merge_cells(cells, recr, B)
    K = c_start.size
    peak = np.zeros((B, K))
    cell_peak = np.zeros((B, K, C))
    fti = np.zeros((B, K))
    rfac = 1.0 + (model.r0 - 1.0) * np.exp(-np.diff(pulses, prepend=-np.inf) / model.tau_c)
    uid = _unit_ids(segs, rfac)
    # per row and contraction: the hashes of the row's own factors
    row_hash = np.stack([np.broadcast_to(h, (B, K)) for h in hashes], axis=2)
    evaluated = np.zeros(B, dtype=np.int64)
    node_steps, all_steps = [0], [0]
    grids: dict[int, _Grid] = {}
    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    depth = np.ascontiguousarray(cells.depth, dtype=np.int64)
    tfac, fatig = f64(cells.time_factor), f64(cells.fatigability)
    per_row_cells = (rc.act_cell, f64(rc.act_w), rc.n_act, rc.cell_rep, f64(cells.weight),
                     f64(cells.edges))
    tol = 0.0 if skip_tol is None else float(skip_tol) * PLATEAU_TOL
    want_nodes = bool(want_trace and writer.want)
    gains, taus = f64(model.gains), f64(model.taus)
    rfac64 = f64(rfac)

    def run_unit(i: int, rows: np.ndarray, states: list[State]):
        """Unit i for the given rows from their states: per row, ([output], next state)."""
        sg = segs[i]
        grid = grids.get(int(uid[i]))
        if grid is None:
            grid = grids[int(uid[i])] = _Grid(sg, model, rfac)
        prm = (model.a_rest, model.tau1, model.tau2, model.km, model.tau_c, model.pulse_cost,
               1.0 - model.occlusion, model.occlusion / model.f_max, grid.rem, tol)
        everyone = rows.size == B
        act_cell, act_w, n_act, cell_rep, weight, edges = [a if everyone else a[rows]
                                                           for a in per_row_cells]
        cell_args = (act_cell, act_w, n_act, cell_rep, depth, tfac, fatig, weight, edges)
        if len(states) == 1:
            s0 = states[0]
            x, f, e, cn = s0.x, s0.f, s0.e, s0.cn
        else:
            x, f, e, cn = (np.concatenate([getattr(s, k) for s in states])
                           for k in ("x", "f", "e", "cn"))
        res = kernel.integrate_unit(
            grid.tables, (rfac64, afac, lam, recr, rows),
            int(sg.pulse_index[0]), cell_args, prm, gains, taus, bool(model.fatigue),
            (f64(x), f64(f), f64(e), f64(cn)), want_nodes)
        pk, area, cpk, f_end, t1_end, x1, f1, e1, cn1, fn, dfn, n_steps = res
        evaluated[rows] += 1
        node_steps[0] += int(n_steps.sum())
        all_steps[0] += (sg.nodes.size - 1) * n_steps.size
        out = []
        for k in range(rows.size):
            sl = slice(k, k + 1)
            out.append(([SegmentOutput(force=fn[sl], dforce=dfn[sl], fti=area[sl], peak=pk[sl],
                                       cell_peak=cpk[sl], f_end=f_end[sl], tau1_end=t1_end[sl])],
                        State(x1[sl], f1[sl], e1[sl], cn1[sl])))
        return out

    def accountant(r: int):
        def account(i, outs_a, outs_b, th):
            a = outs_a[0]
            if outs_b is None:
                peak[r, i], fti[r, i] = a.peak[0], a.fti[0]
                cell_peak[r, i] = a.cell_peak[0]
                writer.write(segs[i], a, segs[i].start, r)
                return
            b = outs_b[0]
            hi = i + th.size
            peak[r, i:hi] = (1 - th) * a.peak[0] + th * b.peak[0]
            fti[r, i:hi] = (1 - th) * a.fti[0] + th * b.fti[0]
            cell_peak[r, i:hi] = (1 - th)[:, None] * a.cell_peak[0] + th[:, None] * b.cell_peak[0]
            if writer.want:
                for q, w in enumerate(th):
                    mix = lambda u, v: (1 - w) * u + w * v  # noqa: E731
                    writer.write(segs[i + q], SegmentOutput(
                        force=mix(a.force, b.force), dforce=mix(a.dforce, b.dforce), fti=None,
                        peak=None, cell_peak=None, f_end=mix(a.f_end, b.f_end),
                        tau1_end=mix(a.tau1_end, b.tau1_end)), segs[i + q].start, r)
        return account

    # per row, the last unit of the run of identical units starting at each unit: the same node
    # grid, period and R factors, and the same hashes of the row's own factors
    same_next = (uid[1:] == uid[:-1])[None, :] & np.all(row_hash[:, 1:] == row_hash[:, :-1], axis=2)
    idx = np.arange(K)
    stops = np.where(np.concatenate([~same_next, np.ones((B, 1), bool)], axis=1), idx, K - 1)
    run_end = np.minimum.accumulate(stops[:, ::-1], axis=1)[:, ::-1]

    x = np.zeros((B, C, 6))
    f = np.zeros((B, C))
    e = np.zeros((B, D))
    cn = np.zeros((B, D))
    gens = [_march(len(segs), run_end[r], lambda i: segs[i].period, accountant(r),
                   State(x[r:r + 1], f[r:r + 1], e[r:r + 1], cn[r:r + 1]), model, skip_tol)
            for r in range(B)]
    pending: dict[int, tuple[int, State]] = {r: next(g) for r, g in enumerate(gens)}
    while pending:
        by_unit: dict[int, list[int]] = {}
        for r, (i, _) in pending.items():
            by_unit.setdefault(i, []).append(r)
        for i in sorted(by_unit):
            rs = by_unit[i]
            outs = run_unit(i, np.array(rs, dtype=np.int64), [pending[r][1] for r in rs])
            for r, res in zip(rs, outs):
                try:
                    pending[r] = gens[r].send(res)
                except StopIteration as stop:
                    del pending[r]
                    st = stop.value
                    x[r], f[r], e[r], cn[r] = st.x[0], st.f[0], st.e[0], st.cn[0]
    return GroupResult(force=writer.force, peak=peak, cell_peak=cell_peak, fti=fti,
                       contraction_start=c_start, state=State(x, f, e, cn),
                       evaluated=int(evaluated.max()) if B else 0,
                       node_steps=node_steps[0], node_steps_full=all_steps[0],
                       segments=len(segs))
