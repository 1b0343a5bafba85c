"""Accuracy of the muscle model's stepping on realistic 20-minute sessions (issue 3, item 5).

The house targets of the stepping (over identical contractions and identical pulse intervals)
against integrating every interval of every contraction: force trace within 2e-3 of the peak,
per-contraction peaks within 1e-3 of the peak, per-contraction and session force-time
integrals within 1e-3 relative, deficits within 1e-3 relative. ``test_muscle_solver`` checks
them on 4 minutes of quadriceps; here they are checked where they used to fail: 20-minute
lumbar erector spinae sessions (its drive scale 2.3 leaves the slow class at ~6-10 % capacity,
which amplifies deficit errors in force) and slow or irregular trains.
"""

from __future__ import annotations

import numpy as np
import pytest

from emsim.physiology.muscle import SKIP_TOL, load_muscle, simulate
from tests.physiology.test_muscle_kernel import load_bench

LEVELS = (0.3, 0.6, 1.0)


@pytest.fixture(scope="module")
def lumbar():
    return load_muscle("lumbar_erector_spinae")


def _session(rel: np.ndarray, period: float, minutes: float = 20.0) -> np.ndarray:
    # built as k·period + pattern, like a compiled program
    n = int(round(minutes * 60 / period))
    return np.concatenate([k * period + rel for k in range(n)])


def _onoff(freq_hz: float, on_s: float, off_s: float, minutes: float = 20.0) -> np.ndarray:
    return _session(np.arange(0.0, on_s - 1e-9, 1.0 / freq_hz), on_s + off_s, minutes)


def _random_pattern(minutes: float = 20.0) -> np.ndarray:
    """A variable-frequency train: intervals drawn from 12.5-50 ms (20-80 Hz) for 4 s, the same
    pattern in every 4 s on / 4 s off cycle (a compiled program repeats its cycle)."""
    rel = np.concatenate([[0.0], np.cumsum(np.random.default_rng(3).uniform(0.0125, 0.05, 400))])
    return _session(rel[rel < 4.0], 8.0, minutes)


def _doublet_onset(minutes: float = 20.0) -> np.ndarray:
    """20 Hz 5 s on / 5 s off, each train opened by a 5 ms doublet."""
    rel = np.concatenate([[0.0, 0.005], 0.005 + np.arange(0.05, 5.0 - 1e-9, 0.05)])
    return _session(rel, 10.0, minutes)


def _stepping_vs_everything(muscle, p):
    recr = np.repeat(np.array(LEVELS)[:, None], p.size, axis=1)
    rows = np.broadcast_to(p, recr.shape)
    fast = simulate(rows, muscle, recruitment=recr, dt=0.005)
    full = simulate(rows, muscle, recruitment=recr, dt=0.005, skip_tol=None)
    assert fast.stats["integrated"] < full.stats["integrated"]
    return fast, full


def _assert_house_targets(fast, full, deficits=True):
    peak = np.nanmax(full.peak_force_n, axis=1, keepdims=True)
    assert np.all(np.max(np.abs(fast.force_n - full.force_n), axis=1) < 2e-3 * peak[:, 0])
    assert np.all(np.abs(fast.peak_force_n - full.peak_force_n) < 1e-3 * peak)
    assert np.max(np.abs(fast.fti_ns - full.fti_ns) / full.fti_ns) < 1e-3
    assert np.all(np.abs(fast.fti_total_ns - full.fti_total_ns) < 1e-3 * full.fti_total_ns)
    if deficits:
        # relative, with a floor at round-off for a deficit that stays zero
        assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)


@pytest.mark.parametrize("freq_hz", [35.0, 50.0, 85.0])
def test_lumbar_20_min_4s_4s_meets_the_house_targets(lumbar, freq_hz):
    """20 minutes of 4 s on / 4 s off at 35, 50 and 85 Hz, recruitment 0.3, 0.6 and 1.0, lumbar
    erector spinae: the stepping within the house targets of integrating everything. Before
    the skipped contractions' outputs were interpolated in log space and the capacity deficits'
    error taken relative to the capacity left, the 50 and 85 Hz sessions missed them (session
    force-time integral 1.3-1.4e-3, per contraction 3.4-3.5e-3; now < 1e-4 and < 2e-4)."""
    fast, full = _stepping_vs_everything(lumbar, _onoff(freq_hz, 4.0, 4.0))
    _assert_house_targets(fast, full)


@pytest.mark.parametrize("train", ["8 Hz unfused", "variable frequency"])
def test_lumbar_20_min_slow_and_irregular_trains_meet_the_house_targets(lumbar, train):
    """An unfused 8 Hz train and a variable-frequency train (20-80 Hz intervals), 4 s on /
    4 s off for 20 minutes, lumbar erector spinae at three levels: stepping vs integrating
    everything within the house targets."""
    p = _onoff(8.0, 4.0, 4.0) if train == "8 Hz unfused" else _random_pattern()
    fast, full = _stepping_vs_everything(lumbar, p)
    _assert_house_targets(fast, full)


def test_lumbar_20_min_doublet_onset_trains_force_and_integrals(lumbar):
    """Doublet-onset 20 Hz trains (5 s on / 5 s off, 20 minutes): force, peaks and force-time
    integrals within the house targets; the deficits other than the catch-like gain within
    1e-3 relative (the gain: :func:`test_catch_gain_after_doublet_trains_within_1e-3`)."""
    fast, full = _stepping_vs_everything(lumbar, _doublet_onset())
    _assert_house_targets(fast, full, deficits=False)
    d_fast, d_full = fast.deficits[..., :-1], full.deficits[..., :-1]
    assert np.all(np.abs(d_fast - d_full) <= 1e-3 * d_full + 1e-12)


def test_catch_gain_after_doublet_trains_within_1e_3(lumbar):
    """The catch-like gain (last deficit) after 20 minutes of doublet-onset trains: within
    1e-3 relative of integrating everything."""
    fast, full = _stepping_vs_everything(lumbar, _doublet_onset())
    assert np.all(np.abs(fast.deficits[..., -1] - full.deficits[..., -1])
                  <= 1e-3 * full.deficits[..., -1] + 1e-12)


def _against_reference(muscle, train, skip_tol):
    """Two minutes of the train (4 s on / 4 s off) at three levels: the force trace and the
    deficits of ``simulate`` and of the benchmark's fine solve_ivp reference (computed once per
    train)."""
    if train not in _REFERENCE:
        p = _onoff(8.0, 4.0, 4.0, 2.0) if train == "8 Hz unfused" else _random_pattern(2.0)
        recr = np.repeat(np.array(LEVELS)[:, None], p.size, axis=1)
        t = np.arange(0.0, p[-1] + 1.0 + 0.0025, 0.005)
        _REFERENCE[train] = (p, recr, *load_bench().reference_pool(p, recr, muscle, t))
    p, recr, ref, x = _REFERENCE[train]
    r = simulate(np.broadcast_to(p, recr.shape), muscle, recruitment=recr, dt=0.005,
                 skip_tol=skip_tol)
    assert r.force_n.shape == ref.shape
    return r, ref, x


_REFERENCE: dict = {}
TRAINS = ["8 Hz unfused", "variable frequency"]


@pytest.mark.slow
@pytest.mark.parametrize("train", TRAINS)
def test_slow_and_irregular_trains_integrated_everywhere_match_solve_ivp(lumbar, train):
    """Two minutes of the unfused 8 Hz and of the variable-frequency train, lumbar erector
    spinae at 0.3, 0.6 and 1.0 recruitment, every interval integrated, against the
    benchmark's fine solve_ivp reference of the same equations: force within 0.1 % of the
    peak, deficits within 1e-4 (the targets of ``check_against_reference``). At 8 Hz this
    needs the fatigue parameters updated per node step in long intervals
    (``_muscle_kernel.PER_STEP_INTERVAL``); held per interval, the deficits were 1.5e-4 off."""
    r, ref, x = _against_reference(lumbar, train, None)
    assert np.max(np.abs(r.force_n - ref)) < 1e-3 * ref.max()
    assert np.max(np.abs(r.deficits - x)) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("train", TRAINS)
def test_slow_and_irregular_trains_stepped_keep_deficits_and_force_within_0_5_pct(lumbar, train):
    """The same trains with the default stepping against solve_ivp: deficits within 1e-4 and
    force within 0.5 % of the peak (the issue's target)."""
    r, ref, x = _against_reference(lumbar, train, SKIP_TOL)
    assert np.max(np.abs(r.force_n - ref)) < 5e-3 * ref.max()
    assert np.max(np.abs(r.deficits - x)) < 1e-4


@pytest.mark.slow
@pytest.mark.parametrize("train", TRAINS)
def test_slow_and_irregular_trains_stepped_force_within_0_1_pct(lumbar, train):
    """The default stepping's force trace against solve_ivp within 0.1 % of the peak."""
    r, ref, _ = _against_reference(lumbar, train, SKIP_TOL)
    assert np.max(np.abs(r.force_n - ref)) < 1e-3 * ref.max()
