"""Per-deficit interval threshold and fatigability flag of the per-pulse cost
(:func:`emsim.physiology.fatigue.deficit_interval_thresholds`,
:func:`emsim.physiology.fatigue.deficit_uses_fatigability`): the kernel against the exact
per-pulse recursion of a pulse-driven deficit, with and without the stepping over identical
pulse intervals and contractions, and against the benchmark's solve_ivp reference."""

from __future__ import annotations

import numpy as np
import pytest

from emsim.physiology.errors import ModelParameterError
from emsim.physiology.muscle import SKIP_TOL, load_muscle, simulate
from tests.physiology.test_muscle_kernel import (_with_deficits, check_against_reference,
                                                 load_bench)

G, TAU, THR = 0.004, 3.0, 0.025


@pytest.fixture(scope="module")
def muscle():
    return load_muscle("quadriceps_ding2003")


def _steps(*parts):
    """One continuous train from (frequency, duration) parts."""
    out, t = [], 0.0
    for f, dur in parts:
        seg = t + np.arange(0.0, dur - 1e-9, 1.0 / f)
        out.append(seg)
        t = seg[-1] + 1.0 / f
    return np.concatenate(out)


def _recursion(p, t_end, phi, tau=TAU):
    """D of a capacity deficit paid per pulse, D ← D + g·φ·w·(1 − D), w = max(0, 1 − Δt/τ)
    (first pulse: w = 0), exact decay e^{−Δt/τ_D} in between."""
    d = 0.0
    for i, t in enumerate(p):
        w = 0.0 if i == 0 else max(0.0, 1.0 - (t - p[i - 1]) / THR)
        d += G * phi * w * (1.0 - d)
        d *= np.exp(-((p[i + 1] if i + 1 < p.size else t_end) - t) / tau)
    return d


# 60 pps (w = 1/3), 40 pps (Δt = τ: w = 0), 100 pps (w = 0.6): a step-down and a step-up
TRAIN = _steps((60.0, 3.0), (40.0, 2.0), (100.0, 2.0))


@pytest.mark.parametrize("skip_tol", [None, SKIP_TOL])
def test_thresholded_cost_without_fatigability_follows_its_recursion(muscle, monkeypatch,
                                                                     skip_tol):
    """A pulse-driven capacity deficit with interval threshold 25 ms and no fatigability
    scaling, whole pool recruited: every cell (S, FR, FF) carries the same deficit, the
    recursion's, to 1e-10 with every interval integrated; with the stepping over identical
    intervals (which must have stepped) within 1e-3 relative, well below what a wrong weight
    would give (the weights are 1/3, 0 and 0.6)."""
    _with_deficits(monkeypatch, [0.0], [G], [0], [TAU], thresholds=[THR],
                   uses_fatigability=[False])
    t_end = TRAIN[-1] + 0.5
    r = simulate(TRAIN, muscle, t_end=t_end, trace=False, skip_tol=skip_tol)
    d = _recursion(TRAIN, t_end, 1.0)
    got = r.deficits[0, :, 0]
    assert got.size == len(muscle.motor_units.classes)
    if skip_tol is None:
        assert np.allclose(got, d, rtol=1e-10, atol=0)
    else:
        assert r.stats["node_steps"] < 0.5 * r.stats["node_steps_without_interval_stepping"]
        assert np.allclose(got, d, rtol=1e-3, atol=0)
    assert r.capacity[0] == pytest.approx(1.0 - d, rel=1e-3)


def test_fatigability_flag_scales_the_pulse_cost_per_class(muscle, monkeypatch):
    """With the flag on, each class pays its fatigability times the cost: per cell, the
    recursion with g·φ_class (every interval integrated)."""
    _with_deficits(monkeypatch, [0.0], [G], [0], [TAU], thresholds=[THR],
                   uses_fatigability=[True])
    t_end = TRAIN[-1] + 0.5
    r = simulate(TRAIN, muscle, t_end=t_end, trace=False, skip_tol=None)
    phi = muscle.motor_units.class_fatigability
    assert np.ptp(phi) > 0.5
    want = [_recursion(TRAIN, t_end, f) for f in phi]
    assert np.allclose(r.deficits[0, :, 0], want, rtol=1e-10, atol=0)


def test_threshold_off_weights_every_pulse_fully(muscle, monkeypatch):
    """Threshold 0 is today's cost: weight 1 for every pulse, the first one included."""
    _with_deficits(monkeypatch, [0.0], [G], [0], [TAU], thresholds=[0.0],
                   uses_fatigability=[False])
    t_end = TRAIN[-1] + 0.5
    r = simulate(TRAIN, muscle, t_end=t_end, trace=False, skip_tol=None)
    d = 0.0
    for i, t in enumerate(TRAIN):
        d += G * (1.0 - d)
        d *= np.exp(-((TRAIN[i + 1] if i + 1 < TRAIN.size else t_end) - t) / TAU)
    assert np.allclose(r.deficits[0, :, 0], d, rtol=1e-10, atol=0)


def test_repeated_contractions_are_stepped_over_with_the_weights(muscle, monkeypatch):
    """100 cycles of 1 s at 60 pps, 0.5 s at 30 pps (free: Δt > τ), 2 s rest: stepping over
    contractions and intervals (default tolerance) vs the recursion, 1e-3 relative; the first
    pulse of each contraction follows a 2 s rest (w = 0)."""
    _with_deficits(monkeypatch, [0.0], [G], [0], [30.0], thresholds=[THR],
                   uses_fatigability=[False])
    cyc = _steps((60.0, 1.0), (30.0, 0.5))
    p = np.concatenate([k * 3.5 + cyc for k in range(100)])
    t_end = p[-1] + 1.0
    r = simulate(p, muscle, t_end=t_end, trace=False)
    assert r.stats["integrated"] < 0.5 * r.stats["segments"]
    d = _recursion(p, t_end, 1.0, tau=30.0)
    assert np.allclose(r.deficits[0, :, 0], d, rtol=1e-3, atol=0)


@pytest.mark.slow
def test_thresholded_deficit_with_the_model_matches_solve_ivp(muscle, monkeypatch):
    """The model's deficits plus one more paid per pulse with threshold 25 ms and no
    fatigability, a partly recruited ramp and a flat row, 60 → 30 pps step-down: force within
    0.1 % of the peak and deficits within 1e-4 of the benchmark's fine solve_ivp reference
    (every interval integrated and with the default stepping)."""
    from emsim.physiology import fatigue as fat

    bench = load_bench()
    g, pg = fat.deficit_gains(muscle.ding, muscle.fatigue, muscle.max_force)
    mech = fat.deficit_mechanisms(muscle.fatigue)
    tau = fat.deficit_time_constants(muscle.fatigue)
    _with_deficits(monkeypatch, np.append(g, 0.0), np.append(pg, 0.02), np.append(mech, 0),
                   np.append(tau, 20.0),
                   thresholds=np.append(fat.deficit_interval_thresholds(muscle.fatigue), THR),
                   uses_fatigability=np.append(fat.deficit_uses_fatigability(muscle.fatigue),
                                               False),
                   saturation=np.append(fat.deficit_saturation_levels(muscle.fatigue), 0.0),
                   rate_cap=np.append(fat.deficit_rate_cap_intervals(muscle.fatigue), 0.0))
    cyc = _steps((60.0, 1.0), (30.0, 1.0))
    p = np.concatenate([k * 4.0 + cyc for k in range(2)])
    rel = np.mod(p, 4.0)
    recr = np.vstack([np.minimum(0.8, 0.8 * rel / 0.4 + 0.05), np.full(p.size, 0.7)])
    for x in check_against_reference(bench, muscle, p, recr):
        assert np.max(x[..., -1]) > 1e-3   # the thresholded deficit was paid


@pytest.mark.parametrize("thr, flags", [([-0.01], [True]), ([np.nan], [True]),
                                        ([0.0, 0.0], [True]), ([0.0], [True, False])])
def test_bad_threshold_arrays_are_typed_errors(muscle, monkeypatch, thr, flags):
    """Negative or NaN thresholds, or arrays not one value per deficit: ModelParameterError
    naming the array."""
    from emsim.physiology import muscle as mus

    _with_deficits(monkeypatch, [0.0], [G], [0], [TAU])
    monkeypatch.setattr(mus, "deficit_interval_thresholds", lambda f: np.asarray(thr, float))
    monkeypatch.setattr(mus, "deficit_uses_fatigability", lambda f: np.asarray(flags, bool))
    with pytest.raises(ModelParameterError) as err:
        simulate(TRAIN, muscle, trace=False)
    assert err.value.path.startswith("deficit_")


def test_pulse_weights_with_a_rate_cap():
    """Rate cap τ_R = 12.5 ms: without a threshold the weight is 1 down to τ_R and Δt/τ_R
    below it (a 100 Hz pulse 0.8, a 4 ms doublet 0.32; the first pulse 1); with the 25 ms
    threshold it ramps 0 → 1 between 40 and 80 Hz and falls as Δt/τ_R above; a weight at the
    threshold up to rounding (a 40 Hz interval one ulp short) is 0."""
    from emsim.physiology._muscle_solver import pulse_weights

    p = np.array([0.0, 0.0125, 0.0225, 0.0265, 0.0465, 0.0715])
    w = pulse_weights(p, np.array([0.0, 0.025]), np.array([0.0125, 0.0125]))
    gaps = np.diff(p)   # 12.5, 10, 4, 20, 25 ms
    assert np.allclose(w[:, 0], [1.0, *np.minimum(1.0, gaps / 0.0125)], rtol=1e-12)
    ramp = np.clip((0.025 - np.maximum(gaps, 0.0125)) / 0.0125, 0.0, 1.0)
    assert np.allclose(w[:, 1], [0.0, *(ramp * np.minimum(1.0, gaps / 0.0125))], rtol=1e-12)
    assert w[4, 1] == pytest.approx(0.4) and w[5, 1] == 0.0
    near = pulse_weights(np.array([0.0, np.nextafter(0.025, 0.0)]), np.array([0.025]))
    assert near[1, 0] == 0.0


def _weights_numpy(pulses, thr, cap, catch):
    """The array form of the weights (as written before the compiled table): the reference."""
    from emsim.physiology._muscle_solver import CATCH_CONTRAST, GAP, WEIGHT_FLOOR

    gap = np.diff(pulses, prepend=-np.inf)[:, None]
    on = thr > 0.0
    w = np.clip((thr - np.maximum(gap, cap)) / np.where(on, thr - cap, 1.0), 0.0, 1.0)
    w = np.where(on, w, 1.0)
    capped = cap > 0.0
    w = w * np.where(capped, np.minimum(1.0, gap / np.where(capped, cap, 1.0)), 1.0)
    dt = gap[:, 0]
    nxt = np.append(dt[1:], np.inf)
    prev = np.concatenate([[np.inf], dt[:-1]])
    stands_out = dt <= CATCH_CONTRAST * np.where(nxt > GAP, prev, nxt)
    w = np.where(catch[None, :] & ~stands_out[:, None], 0.0, w)
    return np.where(w < WEIGHT_FLOOR, 0.0, w)


@pytest.mark.parametrize("seed", range(4))
def test_compiled_pulse_weights_match_the_array_form(seed):
    """Doublets, triplets, rests, variable rates, thresholds with and without a rate cap and
    catch-like deficits: the compiled table equals the array form exactly."""
    from emsim.physiology._muscle_solver import pulse_weights

    rng = np.random.default_rng(seed)
    gaps = rng.choice([0.004, 0.005, 0.01, 0.0125, 0.025, 0.05, 0.07, 0.3, 2.0], size=400)
    free = rng.random(400) < 0.3
    gaps[free] = rng.uniform(0.003, 0.1, size=int(free.sum()))
    p = np.cumsum(gaps)
    thr = np.array([0.0, 0.025, 0.1, 0.0, 0.025, 0.05])
    cap = np.array([0.0, 0.0125, 0.0, 0.0125, 0.0, 0.0])
    catch = np.array([False, False, False, False, True, True])
    assert np.array_equal(pulse_weights(p, thr, cap, catch), _weights_numpy(p, thr, cap, catch))
    assert np.array_equal(pulse_weights(p, thr, cap), _weights_numpy(p, thr, cap, np.zeros(6, bool)))
