"""Numerical paths of :mod:`emsim.physiology._muscle_solver` against slower, simpler ones."""

from __future__ import annotations

import numpy as np
import pytest

from emsim.physiology import _muscle_solver as solver
from emsim.physiology.muscle import load_muscle, simulate


def _session(cycles, on_s=1.0, off_s=3.0, freq_hz=40.0):
    # built as k·period + pattern, like a compiled program: cycle times differ in the last bits
    return np.concatenate([k * (on_s + off_s) + np.arange(0.0, on_s, 1.0 / freq_hz)
                           for k in range(cycles)])


@pytest.fixture(scope="module")
def muscle():
    return load_muscle("quadriceps_ding2003")


def test_identical_cycles_are_recognised_despite_rounding(muscle):
    """Cycles of ``k·period + pattern`` are stepped over (their node times differ in the last
    bits, which used to make every cycle look different)."""
    p = _session(100)
    r = simulate(p, muscle, trace=False)
    assert r.stats["integrated"] < 0.6 * r.stats["segments"]


def test_envelope_stepping_matches_full_integration(muscle):
    """Envelope stepping (capacity-scaled increments, interpolated outputs) vs integrating every
    contraction: peaks within 0.2 % of the first peak, deficits within 1e-3 (skip_tol 1e-3)."""
    p = _session(100)
    full = simulate(p, muscle, trace=False, skip_tol=None)
    fast = simulate(p, muscle, trace=False)
    assert fast.stats["integrated"] < full.stats["integrated"]
    scale = full.peak_force_n[0, 0]
    assert np.max(np.abs(fast.peak_force_n - full.peak_force_n)) < 2e-3 * scale
    assert np.max(np.abs(fast.fti_ns - full.fti_ns) / full.fti_ns) < 2e-3
    assert np.max(np.abs(fast.deficits - full.deficits)) < 1e-3


def test_chunk_boundaries_do_not_change_the_result(muscle, monkeypatch):
    """A long contraction integrated in chunks equals the same contraction in one segment: the
    pulse at a chunk start pays its cost by capacity like every other pulse (it used to be
    charged in full, which over-fatigued strongly fatigued cells)."""
    p = np.concatenate([np.arange(0.0, 6.0, 1 / 85), 14.0 + np.arange(0.0, 6.0, 1 / 85)])
    chunked = simulate(p, muscle, trace=False, skip_tol=None)
    monkeypatch.setattr(solver, "CHUNK", 100.0)
    whole = simulate(p, muscle, trace=False, skip_tol=None)
    assert chunked.stats["segments"] > whole.stats["segments"]
    assert np.max(np.abs(chunked.deficits - whole.deficits) / whole.deficits) < 2e-4
    assert np.max(np.abs(chunked.peak_force_n - whole.peak_force_n)) < 1e-3 * whole.peak_force_n.max()


def test_picard_tolerance_is_below_the_force_error_that_matters(muscle, monkeypatch):
    """The looser waveform-relaxation tolerance (1e-6) changes forces by far less than 1e-4."""
    p = np.arange(0.0, 4.0, 1 / 85)
    loose = simulate(p, muscle, dt=0.01)
    monkeypatch.setattr(solver, "PICARD_TOL", 1e-10)
    tight = simulate(p, muscle, dt=0.01)
    assert np.max(np.abs(loose.force_n - tight.force_n)) < 1e-4 * tight.force_n.max()


@pytest.mark.slow
def test_pool_matches_a_fine_solve_ivp_reference(muscle):
    """Against the benchmark's solve_ivp reference of the same equations (three 4 s on / 4 s
    off cycles at 85 Hz, whole pool): force within 0.1 % of the peak, deficits within 1e-4."""
    import importlib.util
    import sys
    from pathlib import Path

    bench_dir = Path(__file__).resolve().parents[2] / "benchmarks"
    sys.path.insert(0, str(bench_dir))
    try:
        spec = importlib.util.spec_from_file_location("bench_muscle", bench_dir / "bench_muscle.py")
        bench = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(bench)
    finally:
        sys.path.remove(str(bench_dir))
    p, _ = bench.session(0.4)
    r = simulate(p, muscle, dt=0.005)
    ref, x = bench.reference_pool(p, np.ones((1, p.size)), muscle, r.t)
    assert np.max(np.abs(r.force_n - ref)) < 1e-3 * ref.max()
    assert np.max(np.abs(r.deficits - x)) < 1e-4


def test_plateau_is_cut_into_identical_chunks():
    """After the rise, a constant-rate contraction is cut into chunks of equal pulse count whose
    node patterns match (so runs of them can be stepped over); a short remainder is merged."""
    p = np.arange(0.0, 4.0, 1 / 85)
    segs, starts = solver.segment_train(p, float(p[-1] + 1.0), 2.5e-3)
    assert starts.size == 1 and len(segs) > 3
    assert segs[1].start - segs[0].start == pytest.approx(solver.RISE, abs=1 / 85)
    counts = [s.pulse_index.size for s in segs[1:-1]]
    assert len(set(counts)) == 1
    assert segs[-1].pulse_index.size >= counts[0] // 2
    assert all(np.allclose(s.nodes, segs[1].nodes) for s in segs[1:-1])
    assert sum(s.pulse_index.size for s in segs) == p.size


def test_plateau_compression_matches_full_integration(muscle):
    """Stepping over plateau chunks (inside contractions) and over contractions vs integrating
    every chunk of every contraction, 4 min of 85 Hz 4 s on / 4 s off: force trace within 0.5 %
    of the peak, per-contraction peaks and force-time integrals within 0.1 %, deficits within
    1e-3 relative (the targets of issue 3, item 5)."""
    p = np.concatenate([k * 8.0 + np.arange(0.0, 4.0, 1 / 85) for k in range(30)])
    full = simulate(p, muscle, dt=0.005, skip_tol=None)
    fast = simulate(p, muscle, dt=0.005)
    assert fast.stats["integrated"] < 0.8 * full.stats["integrated"]
    peak = full.peak_force_n.max()
    assert np.max(np.abs(fast.force_n - full.force_n)) < 5e-3 * peak
    assert np.max(np.abs(fast.peak_force_n - full.peak_force_n)) < 1e-3 * peak
    assert np.max(np.abs(fast.fti_ns - full.fti_ns) / full.fti_ns) < 1e-3
    assert np.max(np.abs(fast.deficits - full.deficits) / full.deficits) < 1e-3


def test_plateau_steps_carry_force_by_the_affine_chunk_map():
    """``_carry_force`` is m applications of the chunk's affine force map F ← Φ·F + (1 − Φ)·F*."""
    rng = np.random.default_rng(3)
    phi, f, fix = rng.uniform(0.05, 0.95, (3, 2, 4))
    expect = f.copy()
    for _ in range(7):
        expect = phi * expect + (1 - phi) * fix
    assert np.allclose(solver._carry_force(phi, f, fix, 7), expect, rtol=1e-13)
    assert np.allclose(solver._carry_force(phi, f, fix, 0), f)


def test_identical_rows_are_integrated_once(muscle):
    """Rows with identical pulse factors (symmetric channels) share one integration and get the
    same result as when integrated alone; a different row in the same call is unaffected."""
    p = np.arange(0.0, 2.0, 1 / 50)
    rows = np.vstack([p, p, p])
    recr = np.vstack([np.full(p.size, 0.7), np.full(p.size, 0.7), np.full(p.size, 0.4)])
    both = simulate(rows, muscle, recruitment=recr, dt=0.01)
    one = simulate(p, muscle, recruitment=0.7, dt=0.01)
    other = simulate(p, muscle, recruitment=0.4, dt=0.01)
    assert np.array_equal(both.force_n[0], both.force_n[1])
    assert np.allclose(both.peak_force_n[0], one.peak_force_n[0], rtol=1e-9)
    assert np.allclose(both.peak_force_n[2], other.peak_force_n[0], rtol=1e-9)
    assert both.peak_force_n[2, 0] < both.peak_force_n[0, 0]
