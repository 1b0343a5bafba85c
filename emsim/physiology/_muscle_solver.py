"""Integration of the motor-unit pool with per-cell fatigue: contractions, stepping, output.

How it is fast
--------------
* **One compiled call per pulse timing.** :func:`emsim.physiology._muscle_kernel.march` runs
  every row's whole session in compiled code (rows split over the threads, see
  :func:`emsim.physiology.muscle.set_num_threads`): which contraction to integrate, the
  stepping over contractions, exact rests and the outputs. Python only prepares the tables
  shared by all rows (node grids, interval tables, runs of identical contractions).
* **A contraction** is integrated with CN exact between nodes, F by RK4 per node step (no
  step longer than ``max_step``), and the fatigue deficits of each cell alongside (per pulse
  interval, with the fatigue parameters held at their predicted mid-interval value; per step in
  the relaxation tail).
* **Identical pulse intervals inside a contraction are stepped over.** Once E and CN have
  nearly settled (a constant-rate plateau), every m-th interval is integrated (m adapted to
  ``PLATEAU_TOL · skip_tol``); E and CN are linear and are set exactly at the interval a step
  lands on. The deficits' increments in between are summed from quadratics through the last
  integrated ones (predictor from three past intervals, corrector through two and the new
  one). The force is carried through the skipped intervals exactly: each interval maps it as
  F ← g·F + (1 − g)·F* (linear in F; g = ∂F_end/∂F_start is integrated alongside), with g and
  the quasi-steady force F* quadratic in the interval index, summed in closed form, so the
  force's approach to its plateau (g ≈ 0.9 per interval at 85 Hz) does not limit the step.
* **Rows do not depend on each other.** Every row has its own recruitment depth groups (edges
  from its own recruitment levels, :func:`emsim.physiology.muscle._cells`; a flat row has one)
  and takes its own steps over contractions and intervals. ``simulate(batch)[i]`` equals
  ``simulate(row i)`` to round-off (``tests/physiology/test_muscle_batch.py``), and a channel's
  force does not depend on the other channels of a program.
* **Cells that behave alike are integrated once per row.** Depth groups a row recruits fully
  at every pulse have the same history (their forces are proportional to their shares), so they
  merge into one cell; depth groups a row never recruits stay rested and silent and are left out.
* **Rests are exact.** Recovery is linear, so a rest of any length is one exponential per
  deficit; force and CN are integrated for ``TAIL_TAU_C`` τc (at most ``TAIL``) after the last
  pulse, then the force left decays as F·e^{−t/τ1}, with its integral and the fatigue drive it
  still causes added in closed form.
* **Repeated identical contractions are stepped over** (envelope following): the fatigue state
  at the start of contraction k+1 is ``M·x_k + b_k`` with ``M`` the exact recovery over one
  cycle and ``b_k`` what contraction k adds. ``b`` changes slowly from cycle to cycle, so every
  m-th contraction is integrated, the geometric series is summed exactly for the ones in between
  with ``b`` varying linearly (predictor from the last two integrated cycles, corrector from the
  new one), and m is adapted to keep the predictor–corrector difference (relative to 1 + x
  for τ1 and Km deficits, to the capacity left for capacity deficits: a heavily fatigued
  cell's force is that small remainder), and the curvature of the log peaks and force-time
  integrals, below ``skip_tol``. The skipped cycles' peaks and integrals are interpolated in
  log space, quadratic through the last three integrated cycles (they fall nearly
  geometrically; a linear interpolation overestimated them by 2–3e-3 on lumbar sessions);
  their end-of-plateau forces alike (``ForceResult.end_force_n``; they do not steer m).
  The force left at the start of the contraction stepped to (after rests of less than ~0.5 s
  it is ~10 % of the peak) is extrapolated linearly per unit of capacity, and its difference
  from the value interpolated once the contraction is integrated, relative to the run's first
  peak, joins the step error. Contractions are identical when their node grids and the row's
  per-pulse factors are (compared by 64-bit hashes of the factors,
  :func:`~emsim.physiology._muscle_kernel.block_hashes`; periods, R factors and per-pulse cost
  weights to 1e-9). Each row
  decides for itself.
* **Identical rows** (the channels of a symmetric program) are integrated once.

Accuracy (``tests/physiology/test_muscle_solver.py``, ``test_muscle_kernel.py``,
``tests/validation/test_muscle_pool.py``): against a fine-step ``solve_ivp`` solution of the
same equations, force within 0.1 % of the peak and deficits within 1e-4, with and without the
stepping; the stepping vs integrating everything (4 min of 85 Hz 4 s/4 s, quadriceps): force
trace 0.5 %, per-contraction peaks and force-time integrals 0.1 %, deficits 1e-3 relative.
``tests/physiology/test_muscle_accuracy.py`` checks the same targets on 20-minute lumbar
sessions (35/50/85 Hz 4 s/4 s, unfused 8 Hz, a variable-frequency train, doublet-onset
trains; measured over every muscle file and ten programs: session force-time integrals
within 7e-5, per contraction 2.3e-4, force trace 1.9e-3 of the peak at worst, 8 Hz in the
Ding 2007 set 3.6e-3) and 8 Hz and variable-frequency trains against ``solve_ivp``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

import numpy as np

from emsim.physiology import _muscle_kernel as kernel
from emsim.physiology.ding import fill_nodes

#: A rest longer than this separates contractions (force and CN have decayed by then).
GAP = 0.25
#: Part of a rest after the last pulse that is integrated, at most; the rest of it is exact decay.
TAIL = 0.5
#: The tail integrated, in τc: CN = (CN₀ + E₀·t)·e^{−t/τc} with E₀ ≈ CN₀/τc on a plateau, so
#: after 15 τc CN is < 16·e^{−15} ≈ 5e-6 of its plateau value and the force it still drives is
#: < 1e-5 of the peak; from there dF/dt = −F/τ1 holds.
TAIL_TAU_C = 15.0
#: Largest node step in the tail (RK4 of dF/dt = −F/τ1 needs h well below 2.7 τ1).
TAIL_STEP = 0.02
TAIL_GROWTH = 1.5
#: Pulse weights below this are 0 (:func:`pulse_weights`).
WEIGHT_FLOOR = 1e-9
#: A catch-like interval is at most this fraction of its neighbour interval
#: (:func:`pulse_weights`). Assumed: Burke, Rudomin & Zajac 1970 (Science 168:122) define the
#: catch property by "one stimulus interval much shorter than the others"; ½ makes a 5 ms
#: doublet in a 20 Hz train (45 ms neighbours) count and no constant-rate train.
CATCH_CONTRAST = 0.5
#: Tolerance of the stepping over identical pulse intervals inside a contraction, relative to
#: ``skip_tol`` (the contraction-level tolerance).
PLATEAU_TOL = 0.05


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
    gains: np.ndarray         # (n,) deficit gains on the force drive
    pulse_gains: np.ndarray   # (n,) deficit gains per recruited pulse
    mech: np.ndarray          # (n,) int: parameter each deficit acts on (fatigue.MECH_*)
    taus: np.ndarray          # (n,)
    occlusion: float          # γ
    f_max: float              # N
    fatigue: bool
    # (n,) interval threshold τ_j of each deficit's per-pulse cost, s (0: off), and whether
    # that cost scales with the class fatigability (fatigue.deficit_interval_thresholds, …)
    thresholds: np.ndarray | None = None
    pulse_fatigability: np.ndarray | None = None
    # (n,) interval below which a pulse's cost per unit time is capped (0: off) and saturation
    # level of each deficit (0: none) (fatigue.deficit_rate_cap_intervals,
    # deficit_saturation_levels)
    rate_cap: np.ndarray | None = None
    saturation: np.ndarray | None = None
    # economy of sustained activation: the factors of a pulse timing (fatigue.economy_factors;
    # None: off) and (n,) which deficits they weight (fatigue.deficit_uses_economy)
    economy: Callable[[np.ndarray], np.ndarray | None] | None = None
    economy_mask: np.ndarray | None = None

    def __post_init__(self):
        n = self.mech.size
        if self.thresholds is None:
            self.thresholds = np.zeros(n)
        if self.pulse_fatigability is None:
            self.pulse_fatigability = np.ones(n, dtype=np.bool_)
        if self.rate_cap is None:
            self.rate_cap = np.zeros(n)
        if self.saturation is None:
            self.saturation = np.zeros(n)
        if self.economy_mask is None:
            self.economy_mask = np.zeros(n, dtype=np.bool_)

    @property
    def economy_on(self) -> bool:
        """Whether the economy factor can differ from 1 (it is off with ``economy_floor`` = 1)."""
        return (self.economy is not None and bool(np.any(self.economy_mask))
                and self.economy(np.zeros(1)) is not None)

    def drive_weights(self, pulses: np.ndarray,
                      activation: np.ndarray | None = None) -> np.ndarray | None:
        """Per pulse and deficit, the economy factor that weights the pulse's cost and the force
        drive until the next pulse, shape (P, n); None when every factor is 1.

        ``activation`` (P,) is how much of the muscle each pulse activates (see
        :func:`economy_activation`); None: fully, at every pulse."""
        if not self.economy_on:
            return None
        r = self.economy(pulses, activation=activation)
        return np.where(self.economy_mask[None, :], r[:, None], 1.0)

    def for_kernel(self, pw: np.ndarray) -> tuple[np.ndarray, np.ndarray, bool]:
        """Force gains, pulse gains and fatigue flag the kernel runs with for pulse weights
        ``pw``.

        The catch-like gain (``fatigue.MECH_GAIN``, on Km) is not fatigue: without
        fatigue it still runs, alone (every other deficit's gains zero), when this timing sets
        it (a pulse with a positive weight for it); otherwise the kernel runs without deficits.
        """
        if self.fatigue:
            return self.gains, self.pulse_gains, True
        gain = (self.mech == 3) & (self.pulse_gains != 0.0)
        if not np.any(gain & np.any(pw > 0.0, axis=0)):
            return self.gains, self.pulse_gains, False
        return np.zeros_like(self.gains), np.where(gain, self.pulse_gains, 0.0), True


def economy_activation(recr: np.ndarray, lam: np.ndarray) -> np.ndarray:
    """Per row and pulse, the activation that scales an interval's fusion weight in the economy
    factor (:func:`emsim.physiology.fatigue.economy_factors`): the pulse's recruitment relative
    to the row's largest, times the amplitude factor λ, clipped to [0, 1]; compact (rows 1 or B,
    columns 1 or P). A row that recruits nothing has activation 0.

    Relative to the row's largest because the factor is one per row (shared by its depth
    groups): a flat row at any recruitment holds its whole recruited pool, a ramp's first pulses
    recruit little of it.
    """
    top = recr.max(axis=1, keepdims=True)
    rel = np.divide(recr, top, out=np.zeros(np.broadcast_shapes(recr.shape, top.shape)),
                    where=top > 0.0)
    return compact(np.clip(rel * lam, 0.0, 1.0))


@dataclass
class Segment:
    """One contraction (a burst of pulses) and the rest after it."""

    start: float
    nodes: np.ndarray         # (N,) times from start; node 0 is the first pulse
    pulse_node: np.ndarray    # (p,) node index of each pulse
    first: int                # index of its first pulse in the row's pulse arrays
    stop: int                 # one past its last pulse
    period: float             # start of next contraction − start
    grid: int = 0             # contractions with the same grid id share nodes and pulse_node

    @property
    def pulse_index(self) -> np.ndarray:
        """(p,) index of its pulses in the row's pulse arrays."""
        return np.arange(self.first, self.stop)


def segment_train(pulses: np.ndarray, t_end: float, max_step: float,
                  tail: float = TAIL) -> tuple[list[Segment], np.ndarray]:
    """Split one pulse timing into contractions; returns them and their start times (each
    integrated up to ``tail`` after its last pulse).

    Contractions whose pulse pattern and integrated tail agree to 1 ns share one node grid
    (cycles of a program built as ``k·period + pattern`` differ in the last bits).
    """
    if pulses.size == 0:
        return [], np.zeros(0)
    breaks = np.flatnonzero(np.diff(pulses) > GAP) + 1
    c_first = np.concatenate([[0], breaks])
    c_last = np.concatenate([breaks, [pulses.size]])
    starts = pulses[c_first]
    nxt = np.append(pulses[breaks], max(t_end, pulses[-1]))
    n = c_last - c_first
    rel = pulses - np.repeat(starts, n)
    end_rel = rel[c_last - 1] + np.minimum(nxt - pulses[c_last - 1], tail)
    key_rel = np.round(rel, 9)
    key_end = np.round(end_rel, 9)
    # a contraction whose keys equal the previous one's bit for bit (every cycle of a program,
    # mostly) takes its grid without a byte key: one vectorised comparison for all of them
    same_prev = np.zeros(starts.size, dtype=np.bool_)
    if starts.size > 1:
        bits = key_rel.view(np.uint64)
        back = np.repeat(np.concatenate([[0], n[:-1]]), n)
        at = np.arange(bits.size)
        alike = np.logical_and.reduceat(bits == bits[np.maximum(at - back, 0)], c_first)
        end_bits = key_end.view(np.uint64)
        same_prev[1:] = (n[1:] == n[:-1]) & (end_bits[1:] == end_bits[:-1]) & alike[1:]
    grids: dict[bytes, tuple[int, np.ndarray, np.ndarray]] = {}
    segs: list[Segment] = []
    g = None
    period = (nxt - starts).tolist()
    for ci, (t0, a, b) in enumerate(zip(starts.tolist(), c_first.tolist(), c_last.tolist())):
        if not same_prev[ci]:
            key = key_rel[a:b].tobytes() + key_end[ci].tobytes()
            g = grids.get(key)
            if g is None:
                nodes = _nodes(rel[a:b], end_rel[ci], max_step)
                g = grids[key] = (len(grids), nodes, np.searchsorted(nodes, rel[a:b]))
        segs.append(Segment(t0, g[1], g[2], a, b, period[ci], g[0]))
    return segs, starts


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

    x: np.ndarray    # (B, C, n) deficits
    f: np.ndarray    # (B, C) force per cell, N
    e: np.ndarray    # (B, D) auxiliary E of the exact CN update, 1/s
    cn: np.ndarray   # (B, D)


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
    end_force: np.ndarray    # (B, K) end-of-plateau force (_muscle_kernel._contraction)
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


def _take_rows(a: np.ndarray, rows: np.ndarray) -> np.ndarray:
    return a[rows] if a.shape[0] > 1 else a


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
    segs, c_start = segment_train(pulses, t_end, max_step, min(TAIL, TAIL_TAU_C * model.tau_c))
    first = np.array([s.first for s in segs], dtype=np.int64)
    stop = np.array([s.stop for s in segs], dtype=np.int64)
    hashes = [kernel.block_hashes(a.view(np.uint64), first, stop) for a in facs]
    keys = np.stack([np.broadcast_to(kernel.fold_hashes(h), (B,)) for h in hashes], axis=1)
    uniq, inverse = _equal_rows(keys, facs)
    run = _run_by_activation if model.economy_on else _run_rows
    if uniq.size == B:
        return run(pulses, *facs, B, model, cells, t_out, max_step, want_trace, skip_tol,
                   segs, c_start, hashes)
    g = run(pulses, *[_take_rows(a, uniq) for a in facs], uniq.size, model,
            cells.take(uniq), t_out, max_step, want_trace, skip_tol, segs, c_start,
            [_take_rows(h, uniq) for h in hashes])
    return _expand(g, inverse)


def _equal_rows(keys: np.ndarray, arrays: list[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """Rows that are equal in every array of ``arrays`` (each (B, …), or one row shared by
    all), grouped by their ``keys`` (B, k) (64-bit hashes of those arrays): the first row of
    each group and the group of each row.

    A hash match is confirmed by comparison before rows are shared (arrays of one row, shared
    by all, need none); if any fails (a hash collision), or no two rows are equal, every row is
    its own group (``arange(B)`` twice).
    """
    B = keys.shape[0]
    _, first, label = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    label = label.ravel()
    if first.size < B:
        dup = np.flatnonzero(first[label] != np.arange(B))
        if all(np.array_equal(a[r], a[first[label[r]]]) for a in arrays if a.shape[0] > 1
               for r in dup):
            return first, label
    return np.arange(B), np.arange(B)


def _expand(g: GroupResult, inverse: np.ndarray) -> GroupResult:
    """Row ``r`` of the result is row ``inverse[r]`` of ``g``."""
    st = g.state
    return GroupResult(force=g.force[inverse], peak=g.peak[inverse],
                       cell_peak=g.cell_peak[inverse], fti=g.fti[inverse],
                       end_force=g.end_force[inverse], contraction_start=g.contraction_start,
                       state=State(st.x[inverse], st.f[inverse], st.e[inverse], st.cn[inverse]),
                       evaluated=g.evaluated, segments=g.segments, node_steps=g.node_steps,
                       node_steps_full=g.node_steps_full)


def _run_by_activation(pulses: np.ndarray, afac: np.ndarray, lam: np.ndarray, recr: np.ndarray,
                       B: int, model: Model, cells: Cells, t_out: np.ndarray, max_step: float,
                       want_trace: bool, skip_tol: float | None, segs: list[Segment],
                       c_start: np.ndarray, hashes: list) -> GroupResult:
    """:func:`_run_rows` with the economy on: the kernel's interval tables hold one row's
    economy factors, so rows are run in groups of equal activation
    (:func:`economy_activation`; grouped by :func:`_equal_rows`)."""
    act = economy_activation(recr, lam)
    if act.shape[0] == 1:
        return _run_rows(pulses, afac, lam, recr, B, model, cells, t_out, max_step, want_trace,
                         skip_tol, segs, c_start, hashes, act[0])
    whole = kernel.block_hashes(act.view(np.uint64), np.zeros(1, dtype=np.int64),
                                np.array([act.shape[1]], dtype=np.int64))
    first, label = _equal_rows(whole, [act])
    parts = []
    for u, r0 in enumerate(first):
        rows = np.flatnonzero(label == u)
        parts.append((rows, _run_rows(pulses, *[_take_rows(a, rows) for a in (afac, lam, recr)],
                                      rows.size, model, cells.take(rows), t_out, max_step,
                                      want_trace, skip_tol, segs, c_start,
                                      [_take_rows(h, rows) for h in hashes], act[r0])))
    if len(parts) == 1:
        return parts[0][1]
    g0 = parts[0][1]
    order = np.concatenate([rows for rows, _ in parts])
    inverse = np.empty(B, dtype=np.int64)
    inverse[order] = np.arange(B)
    cat = lambda f: np.concatenate([f(g) for _, g in parts])  # noqa: E731
    g = GroupResult(force=cat(lambda g: g.force), peak=cat(lambda g: g.peak),
                    cell_peak=cat(lambda g: g.cell_peak), fti=cat(lambda g: g.fti),
                    end_force=cat(lambda g: g.end_force),
                    contraction_start=g0.contraction_start,
                    state=State(cat(lambda g: g.state.x), cat(lambda g: g.state.f),
                                cat(lambda g: g.state.e), cat(lambda g: g.state.cn)),
                    evaluated=max(g.evaluated for _, g in parts), segments=g0.segments,
                    node_steps=sum(g.node_steps for _, g in parts),
                    node_steps_full=sum(g.node_steps_full for _, g in parts))
    return _expand(g, inverse)


def pulse_weights(pulses: np.ndarray, thresholds: np.ndarray,
                  rate_cap: np.ndarray | None = None,
                  catch: np.ndarray | None = None) -> np.ndarray:
    """Weight of each pulse's cost per deficit; shape (P, n), or (1, n) of ones when every
    weight is 1.

    Δt is the interval since the previous pulse (the first pulse: Δt = ∞), τ_j the deficit's
    interval threshold (0: off) and τ_R,j its rate-cap interval (``rate_cap``; 0: off). With
    τ_j > 0 the weight is ``clip((τ_j − Δt)/(τ_j − τ_R,j), 0, 1)`` (``max(0, 1 − Δt/τ_j)`` without
    a cap; the first pulse 0), else 1; pulses closer than τ_R,j are then weighted by Δt/τ_R,j
    more, so that their cost per unit time is that of the rate 1/τ_R,j.

    For a catch-like deficit (``catch``, bool (n,)) the weight is kept only where the interval
    stands out: ``Δt ≤ CATCH_CONTRAST · Δt_n``, Δt_n the next interval of the train, or the
    previous one for the last pulse of a train (a rest longer than ``GAP`` ends a train; a
    neighbour that is the train's first pulse counts as Δt = ∞). A constant-rate train never
    sets it, at any rate; a doublet, triplet or one short interval in a slower train does.
    """
    thr = np.asarray(thresholds, dtype=np.float64)
    cap = np.zeros_like(thr) if rate_cap is None else np.asarray(rate_cap, dtype=np.float64)
    if not np.any(thr > 0.0) and not np.any(cap > 0.0):
        return np.ones((1, thr.size))
    flags = np.zeros(thr.size, dtype=np.bool_) if catch is None else np.asarray(catch, dtype=np.bool_)
    # a pulse at the threshold interval costs nothing, up to the rounding of compiled pulse
    # times (a 100 Hz train's intervals are 10 ms ± 1 ulp): weights below WEIGHT_FLOOR are 0
    return kernel.pulse_weight_table(np.ascontiguousarray(pulses, dtype=np.float64), thr,
                                     np.ascontiguousarray(cap), flags, CATCH_CONTRAST, GAP,
                                     WEIGHT_FLOOR)


def _key_columns(model: Model, economy: bool) -> np.ndarray:
    """The columns of the pulse weights that can differ from each other (the others repeat
    one of them): one per distinct interval threshold, rate cap, catch-like flag and, with the
    economy on (``economy``), economy flag of the deficits. :func:`pulse_weights` and
    :meth:`Model.drive_weights` compute a deficit's column from these alone."""
    spec = np.column_stack([model.thresholds, model.rate_cap, model.mech == 3]
                           + ([model.economy_mask] if economy else []))
    return np.unique(spec, axis=0, return_index=True)[1].astype(np.int64)


def _pulse_keys(rfac: np.ndarray, pw: np.ndarray, cols: np.ndarray,
                idx: np.ndarray) -> np.ndarray:
    """What must agree pulse by pulse for two pulse intervals to be integrated alike, for the
    pulses ``idx``, (p, k): the R factor and, when the pulse costs are weighted, the weights
    (columns ``cols``, :func:`_key_columns`)."""
    return rfac[idx, None] if pw.shape[0] == 1 else np.column_stack([rfac[idx], pw[idx][:, cols]])


def _grid_tables(seg: Segment, model: Model, economy: bool) -> dict:
    """What every contraction on ``seg``'s node grid shares, whatever its pulse keys: the node
    steps and intervals, the decays over them, and which intervals repeat the previous one's
    node steps (the pulse keys decide the rest, :func:`_pack_grids`). ``economy``: also the
    interval each node step belongs to (its drive weight is the interval's)."""
    nodes = seg.nodes
    h = np.append(np.diff(nodes), 0.0)   # one pad value: node and step tables share offsets
    pn = seg.pulse_node.astype(np.int64)
    ends = np.append(pn[1:], nodes.size - 1)
    ilen = nodes[ends] - nodes[pn]
    n_sub = ends - pn
    steps_alike = None
    if pn.size > 2:
        # each step of an interval equals the step n_sub before it (the last interval carries
        # the tail and never repeats)
        hr = np.round(h[:-1], 12)
        back = np.repeat(n_sub, n_sub)
        k = np.arange(hr.size)
        step_same = (k >= back) & (hr == hr[np.maximum(k - back, 0)])
        all_same = np.logical_and.reduceat(np.append(step_same, True), pn)
        steps_alike = (n_sub[1:-1] == n_sub[:-2]) & all_same[1:-1]
    taus = model.taus
    return dict(
        nodes=nodes, h=h, pn=pn, ilen=ilen, steps_alike=steps_alike,
        # node step k belongs to the interval of the last pulse at or before it
        iv=(np.maximum(np.searchsorted(pn, np.arange(nodes.size), side="right") - 1, 0)
            if economy else None),
        dc=np.exp(-h / model.tau_c), dch=np.exp(-0.5 * h / model.tau_c),
        sdec=np.exp(-h[:, None] / taus[None, :]), shalf=np.exp(-0.5 * h[:, None] / taus[None, :]),
        idec=np.exp(-ilen[:, None] / taus[None, :]),
        ihalf=np.exp(-0.5 * ilen[:, None] / taus[None, :]))


def _pack_grids(segs: list[Segment], uid: np.ndarray, model: Model, rfac: np.ndarray,
                pw: np.ndarray, cols: np.ndarray, hold: np.ndarray | None = None) -> tuple:
    """The kernel's step and interval tables of every distinct contraction unit (``uid``),
    concatenated (the ``tabs`` of :func:`emsim.physiology._muscle_kernel.march`; shared by all
    rows). ``rfac``, ``pw`` and ``cols`` are the pulse keys of the interval stepping
    (:func:`_pulse_keys`).

    Units on one node grid (cycles whose R factors or cost weights differ in the last digits)
    share the grid's tables (:func:`_grid_tables`, computed once per grid): without the economy
    their node offsets point at one copy of the node-step tables; only the interval tables
    (which intervals repeat, runs of them) are per unit.

    ``hold`` (P, n), the drive weights of :meth:`Model.drive_weights`, scales each interval's
    and node step's force-drive gains by the weight of the pulse that starts the interval
    (contractions share a unit only when their pulse keys, which include these weights, agree;
    every unit then has its own node-step block); None (the economy is off): the gains are
    used as they are.
    """
    first = {}
    for k, u in enumerate(uid):
        first.setdefault(int(u), k)
    gains = model.gains[None, :]
    grids: dict[int, dict] = {}
    units = []
    for u in range(len(first)):
        seg = segs[first[u]]
        g = grids.get(seg.grid)
        if g is None:
            g = grids[seg.grid] = _grid_tables(seg, model, hold is not None)
        same = np.zeros(g["pn"].size, dtype=np.bool_)
        if g["steps_alike"] is not None:
            # an interval repeats the previous one when its node steps and pulse keys (R
            # factor, cost weights) do: then each of its steps equals the step n_sub before
            # it. Keys are compared to 1e-9, not rounded: pulse times of later cycles lose
            # bits, and a rounding boundary between two equal keys would break the run
            r = _pulse_keys(rfac, pw, cols, seg.pulse_index)
            same[1:-1] = g["steps_alike"] & np.all(np.abs(r[1:-1] - r[:-2]) <= 1e-9, axis=1)
        # the last interval of the run of identical intervals that starts at each interval
        idx = np.arange(same.size)
        stops = np.where(np.append(~same[1:], True), idx, same.size - 1)
        run_end = np.minimum.accumulate(stops[::-1])[::-1]
        hw = None if hold is None else hold[seg.pulse_index]
        units.append((g, same, run_end, float(seg.period - g["nodes"][-1]), hw))
    # node-step blocks: one per grid without the economy, else one per unit (its drive weights)
    blocks = list(grids.values()) if hold is None else [g for g, *_ in units]
    n_block = np.array([g["nodes"].size for g in blocks], dtype=np.int64)
    block_off = np.concatenate([[0], np.cumsum(n_block)[:-1]]).astype(np.int64)
    if hold is None:
        at = {id(g): i for i, g in enumerate(blocks)}
        n_off = block_off[[at[id(g)] for g, *_ in units]]
        step_gains = np.concatenate([gains * g["shalf"] for g in blocks])
    else:
        n_off = block_off
        step_gains = np.concatenate([gains * hw[g["iv"]] * g["shalf"] for g, _, _, _, hw in units])
    n_pulses = np.array([g["pn"].size for g, *_ in units], dtype=np.int64)
    cat = lambda key, of=blocks: np.concatenate([g[key] for g in of])  # noqa: E731
    per_unit = [g for g, *_ in units]
    interval_gains = np.concatenate([gains * g["ihalf"] if hw is None else gains * hw * g["ihalf"]
                                     for g, _, _, _, hw in units])
    return (n_off, np.concatenate([[0], np.cumsum(n_pulses)[:-1]]).astype(np.int64),
            np.array([g["nodes"].size for g in per_unit], dtype=np.int64), n_pulses,
            np.array([u[3] for u in units]), cat("nodes"), cat("h"), cat("dc"), cat("dch"),
            cat("sdec"), step_gains, cat("pn", per_unit), cat("idec", per_unit), interval_gains,
            np.concatenate([u[1] for u in units]), cat("ilen", per_unit),
            np.concatenate([u[2] for u in units]).astype(np.int64))


def _run_rows(pulses: np.ndarray, afac: np.ndarray, lam: np.ndarray, recr: np.ndarray, B: int,
              model: Model, cells: Cells, t_out: np.ndarray, max_step: float, want_trace: bool,
              skip_tol: float | None, segs: list[Segment], c_start: np.ndarray,
              hashes: list, activation: np.ndarray | None = None) -> GroupResult:
    """Integrate ``B`` rows of one pulse timing in one compiled call; ``activation`` (1 or P,),
    the rows' shared economy activation (:func:`economy_activation`; None: economy off)."""
    C, D = cells.time_factor.size, cells.edges.shape[1] - 1
    nd = model.mech.size
    rc = merge_cells(cells, recr, B)
    K = c_start.size
    rfac = 1.0 + (model.r0 - 1.0) * np.exp(-np.diff(pulses, prepend=-np.inf) / model.tau_c)
    pw = pulse_weights(pulses, model.thresholds, model.rate_cap, model.mech == 3)
    # the interval stepping inside a contraction needs only the force map to repeat: the
    # deficits' increments of skipped intervals are interpolated, so the economy factor (smooth
    # in time) is left out of the keys that decide it
    pw_step = pw
    hold = model.drive_weights(pulses, activation)
    if hold is not None:
        # the economy factor weights each pulse's cost as it weights the drive after it
        pw = np.ascontiguousarray(pw * hold)
    gains, pulse_gains, fatigue = model.for_kernel(pw)
    first = np.array([s.first for s in segs], dtype=np.int64)
    stop = np.array([s.stop for s in segs], dtype=np.int64)
    periods = np.array([s.period for s in segs])
    # the units (contractions integrated alike) and which ones are near the next: the
    # row-independent part of being identical
    uid = np.empty(K, dtype=np.int64)
    near = np.zeros(max(K - 1, 0), dtype=bool)
    step_cols = _key_columns(model, False)
    kernel.alike_contractions(np.array([s.grid for s in segs], dtype=np.int64), periods, rfac,
                              pw, step_cols if hold is None else _key_columns(model, True),
                              first, stop, uid, near)
    # per row, the last unit of the run of identical units starting at each unit: near the
    # next, and the same hashes of the row's own factors
    row_hash = np.stack([np.broadcast_to(h, (B, K)) for h in hashes], axis=2)
    same_next = near[None, :] & np.all(row_hash[:, 1:] == row_hash[:, :-1], axis=2)
    idx = np.arange(K)
    stops = np.where(np.concatenate([~same_next, np.ones((B, 1), bool)], axis=1), idx, K - 1)
    run_end = np.ascontiguousarray(np.minimum.accumulate(stops[:, ::-1], axis=1)[:, ::-1])

    f64 = lambda a: np.ascontiguousarray(a, dtype=np.float64)  # noqa: E731
    want = bool(want_trace and t_out.size > 0)
    starts = np.array([s.start for s in segs])
    ends = np.array([s.start + s.period for s in segs])
    t_lo = np.searchsorted(t_out, starts, side="left").astype(np.int64)
    # the last contraction owns the final sample too
    t_hi = np.append(np.searchsorted(t_out, ends[:-1], side="left"), t_out.size).astype(np.int64)
    seg_tabs = (uid, first, f64(starts),
                f64(np.exp(-periods[:, None] / model.taus[None, :])), run_end.astype(np.int64),
                t_lo, t_hi, f64(t_out))
    cell_args = (rc.act_cell, f64(rc.act_w), rc.n_act, rc.cell_rep,
                 np.ascontiguousarray(cells.depth, dtype=np.int64), f64(cells.time_factor),
                 f64(cells.fatigability), f64(cells.weight), f64(cells.edges))
    tol = 0.0 if skip_tol is None else float(skip_tol) * PLATEAU_TOL
    prm = (model.a_rest, model.tau1, model.tau2, model.km, model.tau_c,
           float(np.any(pulse_gains != 0.0)), 1.0 - model.occlusion,
           model.occlusion / model.f_max, tol)
    # the force-drive gains per pulse (economy factor of the contraction's last pulse) for the
    # drive of the force left after the integrated relaxation tail
    defs = (f64(gains[None, :] if hold is None else gains[None, :] * hold), f64(pulse_gains),
            np.ascontiguousarray(model.mech, dtype=np.int64), f64(model.taus), pw,
            np.ascontiguousarray(model.pulse_fatigability, dtype=np.bool_),
            f64(model.saturation))
    outs = (np.zeros((B, K)), np.zeros((B, K)), np.zeros((B, K, C)), np.zeros((B, C, nd)),
            np.zeros((B, C)), np.zeros((B, D)), np.zeros((B, D)),
            np.zeros((B, t_out.size if want else 0)), np.zeros(B, dtype=np.int64),
            np.zeros(B, dtype=np.int64), np.zeros(B, dtype=np.int64), np.zeros((B, K)))
    grid_model = model if gains is model.gains else replace(model, gains=gains)
    kernel.march(_pack_grids(segs, uid, grid_model, rfac, pw_step, step_cols, hold), seg_tabs,
                 (f64(rfac), afac, lam, recr, np.arange(B, dtype=np.int64)), cell_args, prm, defs,
                 fatigue, 0.0 if skip_tol is None else float(skip_tol), outs)
    peak, fti, cell_peak, x, f, e, cn, force, n_eval, n_steps, n_full, end = outs
    return GroupResult(force=force, peak=peak,
                       cell_peak=cell_peak, fti=fti, end_force=end, contraction_start=c_start,
                       state=State(x, f, e, cn), evaluated=int(n_eval.max()) if B else 0,
                       node_steps=int(n_steps.sum()), node_steps_full=int(n_full.sum()),
                       segments=len(segs))
