"""The catch-like gain (:mod:`emsim.physiology.fatigue`, mechanism ``MECH_GAIN``): a saturating,
decaying potentiation of calcium sensitivity (``Km = Km_rest·(1 + ΣX_Km)/(1 + G)``) set by pulse
intervals below ``catch_interval`` that stand out from their neighbour, not scaled by capacity.
The kernel against its exact per-pulse recursion, its bound for doublet-pattern programs, no
gain from constant trains at any rate, no force above the fused tetanus (Binder-Macleod et al.
1998), its action without fatigue, and the benchmark's solve_ivp reference."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emsim.physiology import fatigue as fat
from emsim.physiology.muscle import SKIP_TOL, load_muscle, simulate
from tests.physiology.test_muscle_kernel import check_against_reference, load_bench

CATCH = fat.N_DEFICITS - 1   # index of the catch-like gain


@pytest.fixture(scope="module")
def muscle():
    return load_muscle("quadriceps_ding2003")


def _without_catch(m):
    return dataclasses.replace(m, fatigue=dataclasses.replace(m.fatigue, catch_gain=0.0))


def _stands_out(p, i):
    """Whether pulse i's interval is at most half its neighbour: the next interval of the train,
    or the previous one for a train's last pulse (a rest > 0.25 s ends a train; a neighbour
    interval into a train's first pulse is ∞)."""
    def interval(k):
        return p[k] - p[k - 1] if 0 < k < p.size and p[k] - p[k - 1] <= 0.25 else np.inf
    nb = interval(i + 1) if i + 1 < p.size and p[i + 1] - p[i] <= 0.25 else interval(i - 1)
    return p[i] - p[i - 1] <= 0.5 * nb


def _recursion(p, t_end, f, firing=1.0):
    """The gain after each pulse: X ← X + min(1, u·w·λ)·(S − X), w = max(0, 1 − Δt/Δt_C) where
    the interval stands out (:func:`_stands_out`), else 0 (first pulse w = 0), exact decay
    e^{−Δt/τ_C} in between; its value at ``t_end``."""
    x = 0.0
    for i, t in enumerate(p):
        w = 0.0 if i == 0 or not _stands_out(p, i) else \
            max(0.0, 1.0 - (t - p[i - 1]) / f.catch_interval)
        x += min(1.0, f.catch_gain * w * firing) * (f.catch_saturation - x)
        x *= np.exp(-((p[i + 1] if i + 1 < p.size else t_end) - t) / f.catch_decay)
    return x


def _vft(start=0.0, first_ipi=0.005):
    """Bickel 2004's six-pulse train, 70 ms apart, the first interval ``first_ipi``."""
    return start + np.concatenate([[0.0], first_ipi + np.arange(5) * 0.070])


def test_catch_deficit_follows_the_data(muscle):
    f = muscle.fatigue
    g, pg = fat.deficit_gains(muscle.ding, f, muscle.max_force)
    assert fat.deficit_mechanisms(f)[CATCH] == fat.MECH_GAIN
    assert g[CATCH] == 0.0 and pg[CATCH] == f.catch_gain > 0
    assert fat.deficit_time_constants(f)[CATCH] == f.catch_decay
    assert fat.deficit_interval_thresholds(f)[CATCH] == f.catch_interval
    assert fat.deficit_saturation_levels(f)[CATCH] == f.catch_saturation > 0
    assert not fat.deficit_uses_fatigability(f)[CATCH]
    # only the catch-like gain saturates
    assert np.all(fat.deficit_saturation_levels(f)[:CATCH] == 0)


@pytest.mark.parametrize("skip_tol", [None, SKIP_TOL])
def test_doublets_set_the_gain_by_its_recursion(muscle, skip_tol):
    """Two VFTs and a third doublet inside the second (5 ms: weight 0.5), then a 4 ms doublet,
    whole depth group recruited: every cell (S, FR, FF, however fatigued) carries the gain of
    the recursion, to 1e-12 with every interval integrated and 1e-3 relative with the default
    stepping; a second doublet moves the gain towards S, not past it."""
    p = np.concatenate([_vft(), _vft(0.6), [0.955, 0.959]])
    t_end = 2.0
    r = simulate(p, muscle, recruitment=0.7, t_end=t_end, trace=False, skip_tol=skip_tol)
    want = _recursion(p, t_end, muscle.fatigue)
    got = r.deficits[0, :, CATCH]
    assert got.size == len(muscle.motor_units.classes)
    assert np.allclose(got, want, rtol=1e-12 if skip_tol is None else 1e-3, atol=0)
    assert want > 0.1


def test_a_doublet_pattern_program_stays_bounded(muscle, monkeypatch):
    """Doublets 2 ms apart every 50 ms for 2 s (weight 0.8: u·w > 1, clipped to 1): each
    doublet sets the gain to S exactly, so at the end it is S·e^{−Δt/τ_C}; without fatigue the
    force never exceeds that of the same program on the muscle without the gain and with
    Km_rest/(1 + S), the most the gain can lower Km (F rises with s = CN/(Km + CN)), and the
    gain buys at least half of that bound's extra peak force. With the saturation taken away
    (linear increments) the same program would take the gain past S."""
    f = muscle.fatigue
    p = np.sort(np.concatenate([np.arange(0.0, 2.0, 0.05), np.arange(0.0, 2.0, 0.05) + 0.002]))
    t_end = p[-1] + 0.5
    r = simulate(p, muscle, t_end=t_end, dt=1e-3)
    assert np.allclose(r.deficits[0, :, CATCH],
                       f.catch_saturation * np.exp(-(t_end - p[-1]) / f.catch_decay), rtol=1e-12)
    with_gain = simulate(p, muscle, fatigue=False, t_end=t_end, dt=1e-3)
    plain = simulate(p, _without_catch(muscle), fatigue=False, t_end=t_end, dt=1e-3)
    # R0 = Km_rest + offset (Ding 2003) stays that of the muscle: the gain does not change it
    d = muscle.ding
    km_low = d.km_rest / (1.0 + f.catch_saturation)
    low_km = dataclasses.replace(_without_catch(muscle), ding=dataclasses.replace(
        d, km_rest=km_low, r0_km_offset=d.r0_km_offset + d.km_rest - km_low))
    bound = simulate(p, low_km, fatigue=False, t_end=t_end, dt=1e-3)
    assert np.all(with_gain.force_n <= bound.force_n * (1.0 + 1e-6) + 1e-9)
    extra, most = (with_gain.peak_force_n[0, 0] - plain.peak_force_n[0, 0],
                   bound.peak_force_n[0, 0] - plain.peak_force_n[0, 0])
    assert most > 0 and extra >= 0.5 * most, (extra, most)
    from emsim.physiology import muscle as mus

    monkeypatch.setattr(mus, "deficit_saturation_levels", lambda ff: np.zeros(fat.N_DEFICITS))
    linear = simulate(p, muscle, t_end=t_end, trace=False)
    assert linear.deficits[0, 0, CATCH] > 2 * f.catch_saturation


def test_the_gain_acts_without_fatigue_and_only_where_intervals_are_short(muscle):
    """``fatigue=False``: a VFT still gets its catch-like gain (the rest of the model stays
    rested: capacity 1, every other deficit 0) and gives a larger force-time integral than the
    same VFT without the gain and than the constant train; a train without intervals below
    ``catch_interval`` (100 Hz) or without one that stands out (a constant 200 Hz train) gives
    bit for bit the force of the muscle without the gain."""
    vft = simulate(_vft(), muscle, recruitment=0.5, fatigue=False, trace=False)
    bare = simulate(_vft(), _without_catch(muscle), recruitment=0.5, fatigue=False, trace=False)
    cft = simulate(_vft(first_ipi=0.070), muscle, recruitment=0.5, fatigue=False, trace=False)
    assert vft.fti_ns[0, 0] > 1.1 * bare.fti_ns[0, 0]
    assert vft.fti_ns[0, 0] > cft.fti_ns[0, 0]
    assert vft.deficits[0, :, CATCH].min() > 0
    assert not np.any(np.delete(vft.deficits, CATCH, axis=2)) and vft.capacity[0] == 1.0
    for hz in (100, 200):
        p = np.arange(0.0, 1.0, 1 / hz)   # 10 ms: weight 0; 5 ms: no neighbour twice as long
        a = simulate(p, muscle, recruitment=0.5, fatigue=False, dt=1e-3)
        b = simulate(p, _without_catch(muscle), recruitment=0.5, fatigue=False, dt=1e-3)
        assert np.array_equal(a.force_n, b.force_n) and not np.any(a.deficits)


@pytest.mark.parametrize("hz", [80, 99, 100, 101, 110, 150, 200, 300])
def test_constant_trains_get_no_gain_at_any_rate(muscle, hz):
    """Review finding (session 6): with every interval below 10 ms setting the gain, constant
    trains above 100 Hz gave ×1.47–1.50 peak force (101 Hz +24 % for no extra fatigue). A
    constant train has no interval much shorter than the others (Burke, Rudomin & Zajac 1970),
    so from 80 to 300 Hz (the program format's limit), 0.5 s at recruitment 0.5, rested and
    fatigued, its peak force with the gain is within 1 % of the peak without it, and the gain
    is 0."""
    p = np.arange(0.0, 0.5, 1 / hz)
    for fatigue in (False, True):
        a = simulate(p, muscle, recruitment=0.5, fatigue=fatigue, trace=False)
        b = simulate(p, _without_catch(muscle), recruitment=0.5, fatigue=fatigue, trace=False)
        assert a.peak_force_n[0, 0] <= 1.01 * b.peak_force_n[0, 0]
        assert np.all(a.deficits[0, :, CATCH] == 0.0)


def test_doublet_trains_stay_below_the_fused_tetanus_binder_macleod1998(muscle):
    """Binder-Macleod et al. 1998 (J Neurophysiol 79:1858): catch-like trains beat constant
    trains at low rates (≤ 20 pps), not above a fused tetanus. A 20 Hz doublet train (5 ms
    doublets, 0.5 s, recruitment 0.5, rested) gains from the catch-like gain but its peak stays
    ≤ 1.05 × the constant 100 Hz peak (the review measured 192 N vs 142 N at constant 80 Hz with
    the former gain on A). Tolerance: 5 %, for the doublets' extra pulse per period."""
    one = np.sort(np.concatenate([np.arange(0.0, 0.5, 0.05), np.arange(0.0, 0.5, 0.05) + 0.005]))
    dbl = simulate(one, muscle, recruitment=0.5, fatigue=False, trace=False).peak_force_n[0, 0]
    bare = simulate(one, _without_catch(muscle), recruitment=0.5, fatigue=False,
                    trace=False).peak_force_n[0, 0]
    fused = simulate(np.arange(0.0, 0.5, 0.01), muscle, recruitment=0.5, fatigue=False,
                     trace=False).peak_force_n[0, 0]
    assert dbl > 1.02 * bare
    assert dbl <= 1.05 * fused, dbl / fused


def _doublet_cycles_stepped_and_full(muscle):
    """60 cycles of a 0.5 s doublet train at 20 Hz (doublets 5 ms apart) with 1.5 s rests,
    with the catch-like gain and without it: per muscle, the largest relative error of the
    stepping's per-contraction peaks and force-time integrals, and (stepped, full) gains at
    the end; asserts the stepping steps and keeps deficits within 1e-3 relative."""
    one = np.sort(np.concatenate([np.arange(0.0, 0.5, 0.05), np.arange(0.0, 0.5, 0.05) + 0.005]))
    p = np.concatenate([k * 2.0 + one for k in range(60)])
    errs, gains = [], []
    for m in (muscle, _without_catch(muscle)):
        fast = simulate(p, m, recruitment=0.6, trace=False)
        full = simulate(p, m, recruitment=0.6, trace=False, skip_tol=None)
        assert fast.stats["integrated"] < 0.6 * full.stats["integrated"]
        assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)
        errs.append([np.max(np.abs(fast.peak_force_n / full.peak_force_n - 1.0)),
                     np.max(np.abs(fast.fti_ns / full.fti_ns - 1.0))])
        gains.append((fast.deficits[0, :, CATCH], full.deficits[0, :, CATCH]))
    return np.array(errs), gains


def test_repeated_doublet_contractions_are_stepped_over(muscle):
    """60 cycles of a 0.5 s doublet train at 20 Hz (doublets 5 ms apart) with 1.5 s rests: the
    stepping over contractions (which must step) vs integrating every one. Deficits within 1e-3
    relative (the gain carried between contractions is not scaled by capacity); the
    interpolated per-contraction peaks and force-time integrals within 3e-4 relative with and
    without the gain (1.37e-4 and 1.02e-4 since they are interpolated in log space; ~1.2e-3
    either way before; the bound is ~2x the measured error so a refactor that loses the
    log-space interpolation fails here)."""
    errs, gains = _doublet_cycles_stepped_and_full(muscle)
    # the gain carried to the end of the session (1.5 s after the last doublet): set by the
    # catch model, stepped over alike, absent without it
    assert np.all(gains[0][1] > 0.05) and np.all(gains[0][0] > 0.05)
    assert not np.any(gains[1][0]) and not np.any(gains[1][1])
    assert np.all(errs < 3e-4), errs


@pytest.mark.xfail(strict=True, reason="since the skipped contractions' outputs are "
                   "interpolated in log space the stepping's own error on this protocol fell "
                   "from ~1.2e-3 to 1.0e-4; with the gain it is 1.37e-4. Not the gain's "
                   "numerics (session 10): these doublet trains have no runs of identical "
                   "intervals (no interval stepping), the gain is periodic from the 3rd "
                   "contraction, and both errors sit at contraction 7, the first stepped over: "
                   "the log-space quadratic through the exact outputs of contractions 5, 6 and "
                   "8 misses contraction 7 by 1.54e-4 with the gain and 1.13e-4 without (its "
                   "cubic term: with the gain the force is 12 % higher and fatigue faster)")
def test_catch_gain_adds_little_to_the_stepping_error(muscle):
    """The same protocol: with the gain, the stepping's per-contraction errors no more than
    10 % above those without it."""
    errs, _ = _doublet_cycles_stepped_and_full(muscle)
    assert np.all(errs[0] <= 1.1 * errs[1]), errs


@pytest.mark.slow
def test_catch_gain_matches_solve_ivp(muscle):
    """Three 1 s on / 1 s off cycles of doublets 4 ms apart every 50 ms, then a VFT, a ramped
    and a flat row (pulse costs, high-frequency fatigue and occlusion active): force within
    0.1 % of the peak and deficits within 1e-4 of the benchmark's fine solve_ivp reference,
    every interval integrated and with the default stepping."""
    one = np.sort(np.concatenate([np.arange(0.0, 1.0, 0.05), np.arange(0.0, 1.0, 0.05) + 0.004]))
    p = np.concatenate([one, 2 + one, 4 + one, _vft(6.0)])
    rel = np.mod(p, 2.0)
    recr = np.vstack([np.minimum(0.8, 0.8 * rel / 0.4 + 0.05), np.full(p.size, 0.7)])
    for x in check_against_reference(load_bench(), muscle, p, recr):
        assert np.max(x[..., CATCH]) > 0.1   # the gain was set
