"""Edge cases of the muscle model's stepping over contractions (issue 3, review of the
log-space interpolation, the capacity-relative step error and the per-step parameters of long
pulse intervals).

The targets are the house targets of ``test_muscle_accuracy`` (stepping vs integrating every
contraction and interval: force trace within 2e-3 of the peak, peaks within 1e-3 of the peak,
force-time integrals within 1e-3, deficits within 1e-3 relative), on what those sessions do not
cover: short rests between contractions (the force left at the next start), contractions that
recruit nothing or produce no force (outputs of zero, where the interpolation falls back from
log space), heavily fatigued muscle (capacity near the step error's floor), slow and irregular
trains (intervals over ``PER_STEP_INTERVAL``), and the trace of stepped-over contractions against
their reported integrals and peaks.
"""

from __future__ import annotations

import numpy as np
import pytest

from emsim.physiology.muscle import load_muscle, simulate
from tests.physiology.test_muscle_accuracy import (
    LEVELS,
    _assert_house_targets,
    _onoff,
    _session,
    _stepping_vs_everything,
)


@pytest.fixture(scope="module")
def lumbar():
    return load_muscle("lumbar_erector_spinae")


def _assert_targets_of_the_largest(fast, full):
    """The house targets with the integrals' errors relative to each row's largest contraction:
    a contraction that recruits nothing has an integral of ~0 (the force left from the last
    one), whose relative error means nothing."""
    assert np.all(np.isfinite(fast.force_n)) and np.all(np.isfinite(fast.fti_ns))
    assert np.all(fast.force_n >= 0.0)
    peak = np.nanmax(full.peak_force_n, axis=1, keepdims=True)
    assert np.all(np.max(np.abs(fast.force_n - full.force_n), axis=1) < 2e-3 * peak[:, 0])
    assert np.all(np.abs(fast.peak_force_n - full.peak_force_n) < 1e-3 * peak)
    top = np.nanmax(full.fti_ns, axis=1, keepdims=True)
    assert np.all(np.abs(fast.fti_ns - full.fti_ns) < 1e-3 * top)
    assert np.all(np.abs(fast.fti_total_ns - full.fti_total_ns) < 1e-3 * full.fti_total_ns)
    assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)


@pytest.mark.parametrize("muscle", ["lumbar_erector_spinae", "quadriceps_ding2003"])
@pytest.mark.parametrize("off_s", [0.26, 0.3])
def test_short_rests_between_contractions_meet_the_house_targets(muscle, off_s):
    """1 s of 50 Hz with rests just over the 0.25 s that end a contraction, 5 minutes, at 0.3,
    0.6 and 1.0 recruitment: 12 % of the peak is left at each start and rises and falls with
    τ1's slowing. Before the start force of a contraction stepped to was extrapolated per unit
    of capacity (it was held, scaled by capacity only), lumbar sessions missed the targets:
    force trace 5.4e-3 of the peak (the integrated contraction started 4 % low), per-contraction
    integrals 2.0e-3 (now 4.6e-4 and 1.2e-4 at 0.8 recruitment)."""
    fast, full = _stepping_vs_everything(load_muscle(muscle), _onoff(50.0, 1.0, off_s, 5.0))
    _assert_house_targets(fast, full)


@pytest.mark.parametrize("off_s", [0.26, 4.0])
def test_blocks_that_recruit_nothing(lumbar, off_s):
    """Blocks of contractions at recruitment 0 inside 5 minutes of 1 s 50 Hz contractions (a
    block of 40 and one of 3): their outputs are the force left over (≈ 0, where the log-space
    interpolation falls back to linear), finite and never negative; the session within the
    house targets, integrals relative to the largest contraction."""
    rel = np.arange(0.0, 1.0 - 1e-9, 0.02)
    n = int(round(300.0 / (1.0 + off_s)))
    recr = np.repeat(np.array(LEVELS)[:, None, None], n, axis=1) * np.ones(rel.size)
    recr[:, 20:60] = 0.0
    recr[:, 70:73] = 0.0
    recr = recr.reshape(len(LEVELS), -1)
    p = np.broadcast_to(_session(rel, 1.0 + off_s, n * (1.0 + off_s) / 60.0), recr.shape)
    fast = simulate(p, lumbar, recruitment=recr, dt=0.005)
    full = simulate(p, lumbar, recruitment=recr, dt=0.005, skip_tol=None)
    assert fast.stats["integrated"] < full.stats["integrated"]
    _assert_targets_of_the_largest(fast, full)
    # the blocks produce (almost) nothing in both
    top = np.nanmax(full.fti_ns, axis=1, keepdims=True)
    assert np.all(fast.fti_ns[:, 22:60] < 1e-3 * top)


@pytest.mark.parametrize("case", ["recruitment 0", "pulse width below PD0"])
def test_sessions_without_force(case):
    """20 minutes of 50 Hz 4 s / 4 s that make no force: every output exactly 0 with and
    without the stepping, nothing NaN; below the Ding 2007 pulse-duration threshold the pulses
    still cost (the deficits grow) and the stepping keeps them within 1e-3 relative."""
    p = _onoff(50.0, 4.0, 4.0)
    if case == "recruitment 0":
        kw = dict(muscle="lumbar_erector_spinae", recruitment=0.0)
    else:
        kw = dict(muscle="quadriceps_ding2007", pulse_width_us=100.0)
    fast = simulate(p, dt=0.01, **kw)
    full = simulate(p, dt=0.01, skip_tol=None, **kw)
    for r in (fast, full):
        assert np.all(r.force_n == 0.0) and np.all(r.peak_force_n == 0.0)
        assert np.all(r.fti_ns == 0.0) and np.all(np.isfinite(r.deficits))
    assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)
    if case == "pulse width below PD0":
        assert fast.deficits.max() > 0.0


def test_ramps_from_zero_meet_the_house_targets(lumbar):
    """20 minutes of 50 Hz 4 s / 4 s, each contraction ramped from recruitment 0 over 0.5 s
    (the first pulse recruits nothing), at three levels: within the house targets."""
    p = _onoff(50.0, 4.0, 4.0)
    ramp = np.clip(np.arange(200) / 25.0, 0.0, 1.0)
    recr = np.stack([np.tile(ramp * s, p.size // 200) for s in (0.05, 0.3, 1.0)])
    rows = np.broadcast_to(p, recr.shape)
    fast = simulate(rows, lumbar, recruitment=recr, dt=0.005)
    full = simulate(rows, lumbar, recruitment=recr, dt=0.005, skip_tol=None)
    assert fast.stats["integrated"] < full.stats["integrated"]
    _assert_house_targets(fast, full)


def _near_exhaustion(lumbar):
    # 60 minutes of 100 Hz, 10 s on / 1 s off, the whole pool: the slow class ends at ~1 % of
    # its capacity, below the step error's floor (CAP_SCALE_FLOOR, 0.02)
    p = _onoff(100.0, 10.0, 1.0, 60.0)
    fast = simulate(p, lumbar, recruitment=1.0, trace=False)
    full = simulate(p, lumbar, recruitment=1.0, trace=False, skip_tol=None)
    return fast, full


def test_muscle_driven_near_zero_capacity_meets_the_targets_at_bounded_cost(lumbar):
    """A muscle driven to ~1 % capacity: deficits, peaks and integrals within the house targets
    of integrating everything; the stepping's tries (rejected ones cost an integration each)
    stay below 1.5 per contraction (measured 407 integrations for 327 contractions, 1.24)."""
    fast, full = _near_exhaustion(lumbar)
    assert fast.capacity[0] < 0.02
    peak = np.nanmax(full.peak_force_n)
    assert np.all(np.abs(fast.peak_force_n - full.peak_force_n) < 1e-3 * peak)
    assert np.max(np.abs(fast.fti_ns - full.fti_ns) / full.fti_ns) < 1e-3
    assert np.all(np.abs(fast.fti_total_ns - full.fti_total_ns) < 1e-3 * full.fti_total_ns)
    assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)
    assert fast.stats["integrated"] <= 1.5 * fast.stats["segments"]


@pytest.mark.xfail(strict=True, reason="near exhaustion the capacity-relative error (floor "
                   "0.02) rejects most steps of 2 contractions, and the step size grows back to "
                   "2 after each accepted single step (its error estimate is 0): 407 "
                   "integrations for 327 contractions (114 rejected tries of 2; 268 before the "
                   "capacity-relative error, which then missed the targets by up to 7e-3). The "
                   "rejections come from one cell at 1.1 % capacity, below the floor: a "
                   "capacity deficit off by 3.7e-3 (of 0.21) is 0.18 of the floor; the error is "
                   "per cell, not weighted by the cell's share of the force. Backing off after a "
                   "failed step of 2 only got to 335. A force-weighted error cannot relax it "
                   "(session 10): at the end the three cells hold 0.91 / 0.07 / 0.02 of the "
                   "force at 2.0 / 0.53 / 0.17 % capacity, so the cell at the floor carries the "
                   "force, and a capacity deficit off by 3.7e-3 at ~1-2 % capacity is a force "
                   "error of ~20-35 % in the predicted state: the rejections are honest")
def test_stepping_near_exhaustion_integrates_fewer_contractions_than_there_are(lumbar):
    """The same session: the stepping integrates fewer contractions than integrating all."""
    fast, full = _near_exhaustion(lumbar)
    assert fast.stats["integrated"] < full.stats["integrated"]


@pytest.mark.parametrize("train", ["5 Hz", "irregular 8-33 Hz"])
def test_long_pulse_intervals_meet_the_house_targets(lumbar, train):
    """Intervals over ``PER_STEP_INTERVAL`` (60 ms): 5 Hz 4 s / 4 s, and a 4 s cycle of
    intervals drawn from 30-120 ms (per-step and held intervals mixed within a contraction),
    20 minutes at three levels: within the house targets."""
    if train == "5 Hz":
        p = _onoff(5.0, 4.0, 4.0)
    else:
        rel = np.concatenate([[0.0], np.cumsum(
            np.random.default_rng(1).uniform(0.03, 0.12, 200))])
        p = _session(rel[rel < 4.0], 8.0)
    fast, full = _stepping_vs_everything(lumbar, p)
    _assert_house_targets(fast, full)


def test_12_hz_force_trace_within_2e_3(lumbar):
    """20 minutes of 12 Hz 4 s / 4 s at three levels: force trace within 2e-3 of the peak."""
    fast, full = _stepping_vs_everything(lumbar, _onoff(12.0, 4.0, 4.0))
    peak = np.nanmax(full.peak_force_n, axis=1)
    assert np.all(np.max(np.abs(fast.force_n - full.force_n), axis=1) < 2e-3 * peak)


def test_sparse_twitches_are_cheap_and_meet_the_house_targets(lumbar):
    """1 Hz twitches for 10 minutes (each its own contraction) at three levels: within the
    house targets, and at most a tenth of the twitches integrated (measured 23 of 600)."""
    fast, full = _stepping_vs_everything(lumbar, np.arange(0.0, 600.0, 1.0))
    _assert_house_targets(fast, full)
    assert fast.stats["integrated"] <= 60


def _per_contraction(r, b):
    # rectangle sums and maxima of the trace over the samples each contraction owns
    t = r.t
    idx = np.searchsorted(t, r.contraction_start_s[b] - 1e-9)
    ends = np.append(idx[1:], t.size)
    dt = t[1] - t[0]
    area = np.array([r.force_n[b, i:j].sum() * dt for i, j in zip(idx, ends)])
    top = np.array([r.force_n[b, i:j].max() for i, j in zip(idx, ends)])
    return area, top


def test_stepped_trace_agrees_with_the_reported_integrals_and_peaks(lumbar):
    """20 minutes of lumbar 50 Hz 4 s / 4 s at three levels, 1 ms samples, stepping on (most
    contractions stepped over, their samples interpolated and scaled to their interpolated
    integral): each contraction's trace sums to its reported force-time integral within
    1e-4 relative (measured 6e-6 integrating everything) and peaks within 1e-3 of the session
    peak of its reported peak."""
    p = _onoff(50.0, 4.0, 4.0)
    recr = np.repeat(np.array(LEVELS)[:, None], p.size, axis=1)
    r = simulate(np.broadcast_to(p, recr.shape), lumbar, recruitment=recr, dt=0.001)
    assert r.stats["integrated"] < 0.5 * r.stats["segments"]
    for b in range(recr.shape[0]):
        area, top = _per_contraction(r, b)
        assert np.max(np.abs(area / r.fti_ns[b] - 1.0)) < 1e-4
        assert np.max(np.abs(top - r.peak_force_n[b])) < 1e-3 * np.max(r.peak_force_n[b])


def test_twitch_peaks_agree_with_the_trace(lumbar):
    """1 Hz twitches for 10 minutes at 0.6 recruitment, 1 ms samples: each contraction's reported
    peak within 1e-3 of the session peak of the trace's maximum."""
    r = simulate(np.arange(0.0, 600.0, 1.0), lumbar, recruitment=0.6, dt=0.001,
                 skip_tol=None)
    _, top = _per_contraction(r, 0)
    assert np.max(np.abs(top - r.peak_force_n[0])) < 1e-3 * np.max(r.peak_force_n[0])
