"""The compiled muscle kernel (:mod:`emsim.physiology._muscle_kernel`) against slower, simpler
paths: a fine ``solve_ivp`` solution, unmerged cells, one thread, every interval integrated."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from emsim.physiology import _muscle_kernel as kernel
from emsim.physiology import _muscle_solver as solver
from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.muscle import SKIP_TOL, load_muscle, simulate

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def muscle():
    return load_muscle("quadriceps_ding2003")


def load_bench():
    """``benchmarks/bench_muscle.py`` as a module (its ``reference_pool`` is the solve_ivp
    reference of the same equations)."""
    sys.path.insert(0, str(BENCH))
    try:
        spec = importlib.util.spec_from_file_location("bench_muscle", BENCH / "bench_muscle.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
    finally:
        sys.path.remove(str(BENCH))
    return mod


@pytest.fixture(scope="module")
def bench():
    return load_bench()


def _ramp_rows(p, rel):
    """Two rows: a 0.5 s ramp to 0.6 and a ramp to 0.9 (several partly recruited depth groups)."""
    return np.vstack([np.minimum(0.6, 0.6 * rel / 0.5), np.minimum(0.9, 0.9 * rel / 0.5)])


@pytest.mark.slow
def test_ramped_recruitment_matches_solve_ivp(muscle, bench):
    """Per-pulse recruitment ramps (depth groups recruited at different pulses, pulse cost and
    occlusion active): three 2 s on / 2 s off cycles at 50 Hz against the benchmark's fine
    solve_ivp reference of the same equations; force within 0.1 % of the peak, deficits within
    1e-4 (every interval integrated and with the default stepping)."""
    rel = np.tile(np.arange(0.0, 2.0, 1 / 50), 3)
    p = np.concatenate([k * 4.0 + np.arange(0.0, 2.0, 1 / 50) for k in range(3)])
    check_against_reference(bench, muscle, p, _ramp_rows(p, rel))


def check_against_reference(bench, muscle, p, recr):
    """Rows of timing p at per-pulse recruitment ``recr`` vs the benchmark's solve_ivp
    reference, every interval integrated and with the default stepping: force within 0.1 % of
    the peak, deficits within 1e-4. Returns the reference's deficits of each run."""
    out = []
    for skip in (None, SKIP_TOL):
        r = simulate(np.broadcast_to(p, recr.shape), muscle, recruitment=recr, dt=0.005,
                     skip_tol=skip)
        ref, x = bench.reference_pool(p, recr, muscle, r.t)
        assert np.max(np.abs(r.force_n - ref)) < 1e-3 * ref.max()
        assert np.max(np.abs(r.deficits - x)) < 1e-4
        out.append(x)
    return out


def test_merging_cells_does_not_change_results(muscle, monkeypatch):
    """Fully recruited depth groups merged into one cell, never-recruited ones left out: the
    same forces, peaks and deficits as integrating every cell on its own (every interval
    integrated: the stepping's error estimate sees the cells, so its choices may differ)."""
    p = np.concatenate([k * 3.0 + np.arange(0.0, 1.5, 1 / 40) for k in range(4)])
    recr = np.vstack([np.full(p.size, 0.3), np.full(p.size, 0.7), np.full(p.size, 1.0),
                      np.where(np.arange(p.size) % 60 < 20, 0.5, 0.9)])
    rows = np.broadcast_to(p, recr.shape)
    merged = simulate(rows, muscle, recruitment=recr, dt=0.005, skip_tol=None)

    def unmerged(cells, r, B):
        w = cells.per_row(B).weight
        C = w.shape[1]
        # zero-width cells only pad rows with fewer depth groups: integrated with a unit share
        # (they are never recruited, so they stay at zero force) but not mapped to
        return solver.RowCells(act_cell=np.tile(np.arange(C), (B, 1)),
                               act_w=np.where(w > 0, w, 1.0), n_act=np.full(B, C),
                               cell_rep=np.where(w > 0, np.arange(C)[None, :], -1))

    monkeypatch.setattr(solver, "merge_cells", unmerged)
    alone = simulate(rows, muscle, recruitment=recr, dt=0.005, skip_tol=None)
    scale = alone.force_n.max()
    assert np.max(np.abs(merged.force_n - alone.force_n)) < 1e-9 * scale
    assert np.max(np.abs(merged.peak_force_n - alone.peak_force_n)) < 1e-9 * scale
    assert np.max(np.abs(merged.deficits - alone.deficits)) < 1e-12
    assert np.allclose(merged.cell_peak_force_n, alone.cell_peak_force_n, rtol=1e-9, atol=1e-9)


def test_merge_cells_groups_by_recruitment_history():
    """A row recruiting 0.5 of the pool everywhere: the depth groups up to 0.5 merge, those
    above are left out; a row ramping through the groups keeps each group it passes."""
    cells = solver.Cells(weight=np.repeat([0.25, 0.25, 0.25, 0.25], 2) * np.tile([0.5, 0.5], 4),
                         time_factor=np.ones(8), fatigability=np.ones(8),
                         depth=np.repeat(np.arange(4), 2), edges=np.array([0, 0.25, 0.5, 0.75, 1.0]))
    recr = np.array([[0.5, 0.5, 0.5], [0.1, 0.6, 1.0]])
    rc = solver.merge_cells(cells, recr, 2)
    assert rc.n_act.tolist() == [2, 8]
    assert rc.cell_rep[0].tolist() == [0, 1, 0, 1, -1, -1, -1, -1]
    assert np.allclose(rc.act_w[0, :2], [0.25, 0.25])
    assert rc.cell_rep[1].tolist() == list(range(8))


def test_rows_split_over_threads_match_one_thread(muscle, monkeypatch):
    """Rows integrated in blocks on several threads give bit-identical results to one thread."""
    p = np.concatenate([k * 2.0 + np.arange(0.0, 1.0, 1 / 60) for k in range(5)])
    recr = np.repeat(np.linspace(0.2, 1.0, 12)[:, None], p.size, axis=1)
    rows = np.broadcast_to(p, recr.shape)
    monkeypatch.setattr(kernel, "MIN_ROWS_PER_THREAD", 1)
    monkeypatch.setattr(kernel, "_threads", lambda: 3)
    split = simulate(rows, muscle, recruitment=recr, dt=0.01)
    monkeypatch.setattr(kernel, "MIN_ROWS_PER_THREAD", 10 ** 9)
    one = simulate(rows, muscle, recruitment=recr, dt=0.01)
    assert np.array_equal(split.force_n, one.force_n)
    assert np.array_equal(split.deficits, one.deficits)


def test_interval_stepping_in_a_long_continuous_train(muscle, monkeypatch):
    """A 60 s continuous 40 Hz train (one contraction): stepping over identical intervals vs
    integrating all 2 400 of them; force within 0.2 % of the peak, force-time integral 0.1 %,
    deficits 1e-3 relative, at a fraction of the node steps."""
    p = np.arange(0.0, 60.0, 1 / 40)
    fast = simulate(p, muscle, dt=0.01)
    monkeypatch.setattr(solver, "PLATEAU_TOL", 0.0)
    full = simulate(p, muscle, dt=0.01)
    assert fast.stats["node_steps"] < 0.3 * full.stats["node_steps"]
    peak = full.force_n.max()
    assert np.max(np.abs(fast.force_n - full.force_n)) < 2e-3 * peak
    assert abs(fast.fti_total_ns[0] - full.fti_total_ns[0]) < 1e-3 * full.fti_total_ns[0]
    # relative, with a floor at round-off for a deficit that stays zero (a high-frequency
    # deficit whose interval threshold equals this train's 25 ms interval)
    assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)


def test_block_hashes_tell_rows_and_units_apart():
    """One changed value changes the hash of its row and unit only; a factor constant along
    the pulses (one column) hashes per row value and unit length, without a pass over the
    pulses."""
    a = np.tile(np.linspace(0.1, 1.0, 10), (3, 1))
    first, stop = np.array([0, 5]), np.array([5, 10])
    h = kernel.block_hashes(a.view(np.uint64), first, stop)
    assert h[0, 0] == h[1, 0] == h[2, 0] and h[0, 1] == h[1, 1]
    b = a.copy()
    b[1, 7] = np.nextafter(b[1, 7], 2.0)
    hb = kernel.block_hashes(b.view(np.uint64), first, stop)
    assert hb[1, 1] != h[1, 1] and hb[1, 0] == h[1, 0] and hb[0, 1] == h[0, 1]
    col = np.array([[0.7], [0.7], [0.8]])
    hc = kernel.block_hashes(col.view(np.uint64), first, np.array([5, 9]))
    assert hc[0, 0] == hc[1, 0] and hc[0, 1] == hc[1, 1]
    assert hc[2, 0] != hc[0, 0] and hc[0, 0] != hc[0, 1]   # other value; other unit length


def test_equal_rows_shares_only_rows_that_compare_equal():
    """Rows are grouped by their hashes but shared only after comparison: equal rows share a
    group, a faked hash collision (equal keys, different rows) makes every row its own group,
    and one row shared by all (a broadcast factor) is one group."""
    a = np.array([[1.0, 2.0], [3.0, 4.0], [1.0, 2.0], [5.0, 6.0]])
    keys = np.array([[7], [8], [7], [9]], dtype=np.uint64)
    first, label = solver._equal_rows(keys, [a])
    assert np.array_equal(a[first[label]], a) and label[0] == label[2] and first.size == 3
    collided = np.array([[7], [7], [7], [9]], dtype=np.uint64)
    for k in (collided, np.array([[1], [2], [3], [4]], dtype=np.uint64)):
        first, label = solver._equal_rows(k, [a])
        assert np.array_equal(first, np.arange(4)) and np.array_equal(label, np.arange(4))
    first, label = solver._equal_rows(np.zeros((3, 1), dtype=np.uint64), [a[:1]])
    assert np.array_equal(first, [0]) and np.array_equal(label, [0, 0, 0])


def test_compiled_checks_still_name_the_bad_value(muscle):
    """Large float arrays take the compiled checks; a bad value still gets the typed error with
    its index."""
    p = np.tile(np.arange(0.0, 1.0, 0.01), (4, 1))
    p[2, 30] = p[2, 29]
    with pytest.raises(PhysiologyInputError) as err:
        simulate(p, muscle, trace=False)
    assert "pulse_times[2, 30]" in str(err.value)
    good = np.tile(np.arange(0.0, 1.0, 0.01), (4, 1))
    recr = np.full(good.shape, 0.5)
    recr[3, 10] = 1.5
    with pytest.raises(PhysiologyInputError) as err:
        simulate(good, muscle, recruitment=recr, trace=False)
    assert "recruitment[3, 10]" in str(err.value)
    assert simulate(good, muscle, recruitment=np.full(good.shape, 0.5), trace=False).peak_force_n.shape == (4, 1)


@pytest.mark.slow
def test_kernels_compile_in_memory_without_a_writable_cache():
    """Where numba finds no writable cache location it raises at decoration; the kernels are
    then compiled in memory, with one warning, and give the same force."""
    code = textwrap.dedent("""
        import warnings
        from numba.core import caching
        def deny(self):
            raise PermissionError("read-only (test)")
        caching._CacheLocator.ensure_cache_path = deny
        import numpy as np
        with warnings.catch_warnings(record=True) as w:
            warnings.simplefilter("always")
            from emsim.physiology.muscle import simulate
            r = simulate(np.arange(34) / 33, fatigue=False)
        msgs = [str(x.message) for x in w if "compiled in memory" in str(x.message)]
        print(len(msgs), repr(float(r.peak_force_n[0, 0])))
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr
    n_warn, peak = out.stdout.split()
    assert n_warn == "1"
    assert float(peak) == pytest.approx(simulate(np.arange(34) / 33, fatigue=False).peak_force_n[0, 0],
                                        rel=1e-12)


@pytest.mark.parametrize("max_step", [0.0, -1e-3, 0.05, float("nan")])
def test_node_step_out_of_range_is_a_typed_error(muscle, max_step):
    """RK4 of the force is only stable for steps well below τ1: max_step is checked."""
    with pytest.raises(PhysiologyInputError) as err:
        simulate(np.arange(10) / 20, muscle, max_step=max_step)
    assert err.value.path == "max_step"


def _batch_peak(_=None):
    p = np.arange(0.0, 1.0, 1 / 40)
    recr = np.repeat(np.linspace(0.3, 1.0, 16)[:, None], p.size, axis=1)
    return simulate(np.broadcast_to(p, recr.shape), "quadriceps_ding2003", recruitment=recr,
                    trace=False).peak_force_n


def test_thread_pool_survives_fork():
    """A process forked after the row pool started (multiprocessing, Dask's process workers)
    gets a fresh pool instead of waiting on threads it does not have."""
    import multiprocessing

    here = _batch_peak()
    with multiprocessing.get_context("fork").Pool(1) as pool:
        there = pool.apply_async(_batch_peak).get(timeout=300)
    assert np.array_equal(here, there)


def _with_deficits(monkeypatch, force_gain, pulse_gain, mech, tau, thresholds=None,
                   uses_fatigability=None, saturation=None, rate_cap=None):
    """Make :func:`emsim.physiology.muscle.simulate` use these deficit arrays (what a new
    deficit in :mod:`emsim.physiology.fatigue` would supply); interval thresholds, saturation
    levels and rate-cap intervals default to 0 (off) and the fatigability flags to True, as
    in fatigue.py."""
    from emsim.physiology import muscle as mus

    n = len(mech)
    thr = np.zeros(n) if thresholds is None else np.asarray(thresholds, float)
    fat = np.ones(n, bool) if uses_fatigability is None else np.asarray(uses_fatigability, bool)
    sat = np.zeros(n) if saturation is None else np.asarray(saturation, float)
    cap = np.zeros(n) if rate_cap is None else np.asarray(rate_cap, float)
    monkeypatch.setattr(mus, "deficit_saturation_levels", lambda f: sat)
    monkeypatch.setattr(mus, "deficit_rate_cap_intervals", lambda f: cap)
    monkeypatch.setattr(mus, "deficit_gains", lambda d, f, f_ref: (np.asarray(force_gain, float),
                                                                   np.asarray(pulse_gain, float)))
    monkeypatch.setattr(mus, "deficit_mechanisms", lambda f: np.asarray(mech, dtype=np.int64))
    monkeypatch.setattr(mus, "deficit_time_constants", lambda f: np.asarray(tau, float))
    monkeypatch.setattr(mus, "deficit_interval_thresholds", lambda f: thr)
    monkeypatch.setattr(mus, "deficit_uses_fatigability", lambda f: fat)


def test_deficit_count_comes_from_the_fatigue_arrays(muscle, monkeypatch):
    """One more deficit with no gain changes nothing (the model's deficits keep their values
    within 1e-12) and stays zero: the kernel and solver take the number of deficits from the
    arrays."""
    from emsim.physiology import fatigue as fat

    p = np.concatenate([k * 3.0 + np.arange(0.0, 1.5, 1 / 50) for k in range(20)])
    recr = np.vstack([np.full(p.size, 0.6), np.minimum(1.0, np.mod(p, 3.0) / 0.5 + 0.1)])
    rows = np.broadcast_to(p, recr.shape)
    base = simulate(rows, muscle, recruitment=recr, dt=0.01)
    f = muscle.fatigue
    g, pg = fat.deficit_gains(muscle.ding, f, muscle.max_force)
    mech = fat.deficit_mechanisms(f)
    tau = fat.deficit_time_constants(f)
    thr = fat.deficit_interval_thresholds(f)
    use_fat = fat.deficit_uses_fatigability(f)
    sat = fat.deficit_saturation_levels(f)
    cap = fat.deficit_rate_cap_intervals(f)
    n = fat.N_DEFICITS
    assert g.size == pg.size == mech.size == tau.size == thr.size == use_fat.size == n
    assert sat.size == cap.size == n
    driven = g != 0.0   # the Ding mechanisms: a pulse costs κ seconds of reference force
    assert np.allclose(pg[driven], g[driven] * f.pulse_cost * muscle.max_force, rtol=1e-15)
    _with_deficits(monkeypatch, np.append(g, 0.0), np.append(pg, 0.0), np.append(mech, 1),
                   np.append(tau, 5.0), thresholds=np.append(thr, 0.0),
                   uses_fatigability=np.append(use_fat, True), saturation=np.append(sat, 0.0),
                   rate_cap=np.append(cap, 0.0))
    more = simulate(rows, muscle, recruitment=recr, dt=0.01)
    assert more.deficits.shape[-1] == n + 1 and not np.any(more.deficits[..., n])
    scale = base.force_n.max()
    assert np.max(np.abs(more.force_n - base.force_n)) < 1e-12 * scale
    assert np.max(np.abs(more.deficits[..., :n] - base.deficits)) < 1e-12
    assert np.max(np.abs(more.capacity - base.capacity)) < 1e-12


def test_a_pulse_driven_capacity_deficit_follows_its_recursion(muscle, monkeypatch):
    """One deficit acting on capacity, driven only per pulse (no force gain), in a one-class
    pool fully recruited: after each pulse D ← D + g·(1 − D), between pulses exact decay, so
    at the end D = recursion · e^{−(t_end − t_last)/τ}; the force falls by the capacity lost."""
    import dataclasses

    one = dataclasses.replace(muscle, pool=dataclasses.replace(muscle.pool, n_classes=1))
    g, tau = 0.01, 2.0
    _with_deficits(monkeypatch, [0.0], [g], [0], [tau])
    p = np.arange(0.0, 1.0, 1 / 40)
    t_end = 3.0
    r = simulate(p, one, t_end=t_end, trace=False, skip_tol=None)
    d = 0.0
    for i, t in enumerate(p):
        d = d + g * (1.0 - d)
        if i + 1 < p.size:
            d *= np.exp(-(p[i + 1] - t) / tau)
    d *= np.exp(-(t_end - p[-1]) / tau)
    assert r.deficits[0, 0, 0] == pytest.approx(d, rel=1e-10)
    assert r.capacity[0] == pytest.approx(1.0 - d, rel=1e-10)
    _with_deficits(monkeypatch, [0.0], [0.0], [0], [tau])
    fresh = simulate(p, one, t_end=t_end, trace=False, skip_tol=None)
    assert r.peak_force_n[0, 0] < fresh.peak_force_n[0, 0]


def test_thread_count_is_settable_and_defaults_to_the_affinity(monkeypatch):
    """``set_num_threads`` sets the row threads (results unchanged, typed error for bad
    values); the default is the process's CPU affinity, capped by OMP_NUM_THREADS /
    NUMBA_NUM_THREADS."""
    import os

    from emsim.physiology import muscle as mus

    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv("NUMBA_NUM_THREADS", raising=False)
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2}, raising=False)
    try:
        mus.set_num_threads(None)
        assert mus.get_num_threads() == 3
        monkeypatch.setenv("NUMBA_NUM_THREADS", "2")
        assert mus.get_num_threads() == 2
        monkeypatch.setenv("OMP_NUM_THREADS", "1")
        assert mus.get_num_threads() == 1
        monkeypatch.setenv("OMP_NUM_THREADS", "not a number")
        assert mus.get_num_threads() == 2
        for bad in (0, -1, 2.5, "2", True, kernel.MAX_THREADS + 1):
            with pytest.raises(PhysiologyInputError) as err:
                mus.set_num_threads(bad)
            assert err.value.path == "n"
        monkeypatch.setattr(kernel, "MIN_ROWS_PER_THREAD", 1)
        mus.set_num_threads(1)
        assert mus.get_num_threads() == 1
        one = _batch_peak()
        mus.set_num_threads(3)
        assert mus.get_num_threads() == 3
        assert np.array_equal(_batch_peak(), one)
    finally:
        mus.set_num_threads(None)


def _alike_by_bytes(segs, rfac, pw):
    """The contraction ids and near-next flags as first written (session 8): byte keys of the
    rounded (P, 1 + n) key table per contraction, and a tolerance loop in Python."""
    pkey = rfac[:, None] if pw.shape[0] == 1 else np.column_stack([rfac, pw])
    r = np.round(pkey, 12)
    periods = np.round(np.array([s.period for s in segs]), 9)
    ids = {}
    uid = [ids.setdefault(b"".join([np.int64(s.grid).tobytes(), periods[k].tobytes(),
                                    r[s.pulse_index[0]:s.pulse_index[-1] + 1].tobytes()]),
                          len(ids)) for k, s in enumerate(segs)]
    near = [a.grid == b.grid and abs(a.period - b.period) <= 1e-9 * max(1.0, a.period)
            and np.max(np.abs(pkey[a.pulse_index] - pkey[b.pulse_index])) <= 1e-9
            for a, b in zip(segs[:-1], segs[1:])]
    return np.array(uid), np.array(near, dtype=bool)


@pytest.mark.parametrize("kind", ["85 Hz 4/4", "doublet onset", "variable", "8 Hz", "irregular"])
def test_alike_contractions_match_the_byte_keys(muscle, kind):
    """The compiled contraction ids and near-next flags equal the byte-key form's on cycles
    whose pulse times lose bits past 1024 s (2 400 s sessions), doublets, variable-frequency
    and irregular trains, with the weight columns reduced to the distinct ones."""
    rng = np.random.default_rng(3)
    rel = {"85 Hz 4/4": np.arange(0.0, 4.0, 1 / 85),
           "doublet onset": np.concatenate([[0.0, 0.005], 0.005 + np.arange(1, 60) / 20.0]),
           "variable": np.cumsum(1.0 / np.linspace(20, 80, 150)) - 1.0 / 20,
           "8 Hz": np.arange(0.0, 5.0, 1 / 8)}.get(kind)
    if rel is None:
        p = np.cumsum(rng.choice([0.01, 0.0125, 0.05, 0.3, 2.0], size=3000))
    else:
        p = np.concatenate([k * 8.0 + rel for k in range(300)])
    from emsim.physiology.muscle import _model

    model = _model(muscle, True)
    segs, _ = solver.segment_train(p, p[-1] + 1.0, 2.5e-3)
    rfac = 1.0 + (model.r0 - 1.0) * np.exp(-np.diff(p, prepend=-np.inf) / model.tau_c)
    pw = solver.pulse_weights(p, model.thresholds, model.rate_cap, model.mech == 3)
    uid = np.empty(len(segs), dtype=np.int64)
    near = np.zeros(len(segs) - 1, dtype=bool)
    kernel.alike_contractions(np.array([s.grid for s in segs], dtype=np.int64),
                              np.array([s.period for s in segs]), rfac, pw,
                              solver._key_columns(model, False),
                              np.array([s.pulse_index[0] for s in segs], dtype=np.int64),
                              np.array([s.pulse_index[-1] + 1 for s in segs], dtype=np.int64),
                              uid, near)
    ref_uid, ref_near = _alike_by_bytes(segs, rfac, pw)
    assert np.array_equal(uid, ref_uid) and np.array_equal(near, ref_near)
    assert 1 < uid.max() + 1 < len(segs) and near.any()   # some ids are shared, not all
