"""The force at the end of each contraction's plateau (``ForceResult.end_force_n``).

What it is (:class:`emsim.physiology.muscle.ForceResult`): the largest force from the
contraction's last fully driving pulse to the end of its relaxation. Checked here: it is that
maximum of the force trace (every interval integrated, a fine trace); the stepping over
identical contractions and pulse intervals keeps it within the house targets of integrating
everything (1e-3 of the row's peak, as the per-contraction peaks,
``tests/physiology/test_muscle_accuracy.py``); it matches the benchmark's fine ``solve_ivp``
reference of the same equations within 1e-3 of the peak; a ramp-down does not lower it; it
shows the fatigue inside a long contraction that the peak does not.
"""

from __future__ import annotations

import numpy as np
import pytest

from emsim.physiology.muscle import load_muscle, simulate
from tests.physiology.test_muscle_accuracy import LEVELS, _doublet_onset, _onoff, _random_pattern, _session
from tests.physiology.test_muscle_kernel import load_bench


@pytest.fixture(scope="module")
def lumbar():
    return load_muscle("lumbar_erector_spinae")


def _ramped(minutes: float = 20.0):
    """50 Hz, 6 s on / 4 s off, recruitment rising over the first 1 s and falling over the last
    1 s of each train (a program's ramps); returns the pulse times and the ramp shape (0-1)."""
    rel = np.arange(0.0, 6.0 - 1e-9, 0.02)
    shape = np.clip(np.minimum(rel + 0.02, 6.0 - rel) / 1.0, 0.0, 1.0)
    n = int(round(minutes * 60 / 10.0))
    return _session(rel, 10.0, minutes), np.tile(shape, n)


def _extra_spikes(minutes: float = 20.0):
    """50 Hz bursts, 4 s on / 4 s off, each followed 4 ms later by a weaker extra action
    potential (0.3 of the burst's recruitment: a kHz burst's doublets); shape per pulse."""
    rel = np.sort(np.concatenate([np.arange(0.0, 4.0 - 1e-9, 0.02), np.arange(0.004, 4.0, 0.02)]))
    shape = np.where(np.isclose(np.mod(rel, 0.02), 0.004), 0.3, 1.0)
    n = int(round(minutes * 60 / 8.0))
    return _session(rel, 8.0, minutes), np.tile(shape, n)


def _flat(p):
    return p, np.ones(p.size)


TRAINS = {
    "50 Hz 4 s/4 s": lambda minutes=20.0: _flat(_onoff(50.0, 4.0, 4.0, minutes)),
    "8 Hz unfused": lambda minutes=20.0: _flat(_onoff(8.0, 4.0, 4.0, minutes)),
    "variable frequency": lambda minutes=20.0: _flat(_random_pattern(minutes)),
    "doublet onset": lambda minutes=20.0: _flat(_doublet_onset(minutes)),
    "ramped": _ramped,
    "extra spikes": _extra_spikes,
}


def _rows(p, shape):
    """Three rows (recruitment levels ``LEVELS``) of one pulse timing."""
    recr = np.array(LEVELS)[:, None] * shape[None, :]
    return np.broadcast_to(p, recr.shape), recr


def _last_full(p, drive, starts):
    """Per contraction (``starts``), the time of its last pulse with a drive within 0.1 % of the
    contraction's strongest (the definition, written out independently of the kernel)."""
    k = np.searchsorted(starts, p, side="right") - 1
    out = np.empty(starts.size)
    for c in range(starts.size):
        d = drive[k == c]
        out[c] = p[k == c][np.flatnonzero(d >= d.max() * (1.0 - 1e-3))[-1]]
    return out


@pytest.mark.parametrize("name", list(TRAINS))
def test_end_force_is_the_largest_force_after_the_last_full_pulse(lumbar, name):
    """Every interval integrated, trace every 0.2 ms, one minute: each contraction's end force
    is the trace's maximum from its last fully driving pulse to the next contraction, within
    2e-4 of the row's peak (the trace samples the cubic Hermite interpolant between nodes,
    whose maximum lies between samples; the end force takes it where the total force's slope
    turns from rising to falling within a node step)."""
    p, shape = TRAINS[name](1.0)
    rows, recr = _rows(p, shape)
    r = simulate(rows, lumbar, recruitment=recr, skip_tol=None, dt=2e-4)
    starts = r.contraction_start_s[0]
    ends = np.append(starts[1:], np.inf)
    for b in range(rows.shape[0]):
        t_full = _last_full(p, recr[b], starts)
        top = np.nanmax(r.peak_force_n[b])
        for c in range(starts.size):
            sel = (r.t >= t_full[c] - 1e-12) & (r.t < ends[c])
            trace_max = r.force_n[b, sel].max()
            assert abs(r.end_force_n[b, c] - trace_max) < 2e-4 * top


@pytest.mark.parametrize("name", list(TRAINS))
def test_end_force_stepped_within_1e_3_of_integrating_everything(lumbar, name):
    """20-minute lumbar erector spinae sessions at three levels: the default stepping over
    identical contractions and pulse intervals keeps each contraction's end force within 1e-3
    of the row's peak of integrating everything (the house target of the per-contraction
    peaks), the stepped-over contractions (interpolated) included."""
    rows, recr = _rows(*TRAINS[name]())
    fast = simulate(rows, lumbar, recruitment=recr, trace=False)
    full = simulate(rows, lumbar, recruitment=recr, trace=False, skip_tol=None)
    assert fast.stats["integrated"] < full.stats["integrated"]
    top = np.nanmax(full.peak_force_n, axis=1, keepdims=True)
    assert np.all(np.abs(fast.end_force_n - full.end_force_n) < 1e-3 * top)


_REFERENCE_TRAINS = ["8 Hz unfused", "variable frequency", "ramped", "extra spikes"]


@pytest.mark.slow
@pytest.mark.parametrize("name", _REFERENCE_TRAINS)
def test_end_force_matches_solve_ivp(lumbar, name):
    """Two minutes at three levels against the benchmark's fine ``solve_ivp`` reference of the
    same equations (``benchmarks/bench_muscle.py`` ``reference_pool``), sampled every 0.05 ms
    from each contraction's last fully driving pulse for 0.3 s: the end force, integrated
    everywhere and with the default stepping, within 1e-3 of the row's peak (the reference's
    target for the force trace)."""
    p, shape = TRAINS[name](2.0)
    rows, recr = _rows(p, shape)
    fast = simulate(rows, lumbar, recruitment=recr, trace=False)
    full = simulate(rows, lumbar, recruitment=recr, trace=False, skip_tol=None)
    starts = full.contraction_start_s[0]
    t_full = _last_full(p, recr[0], starts)
    ends = np.append(starts[1:], p[-1] + 1.0)
    windows = [np.arange(a, min(a + 0.3, e), 5e-5) for a, e in zip(t_full, ends)]
    ref, _ = load_bench().reference_pool(p, recr, lumbar, np.concatenate(windows))
    cut = np.cumsum([w.size for w in windows])[:-1]
    want = np.stack([np.array([seg.max() for seg in np.split(row, cut)]) for row in ref])
    top = np.nanmax(full.peak_force_n, axis=1, keepdims=True)
    assert np.all(np.abs(full.end_force_n - want) < 1e-3 * top)
    assert np.all(np.abs(fast.end_force_n - want) < 1e-3 * top)


def test_a_ramp_down_is_not_fatigue(lumbar):
    """The same 6 s, 50 Hz contraction with and without a 1 s ramp-down after it (recruitment
    falling to 0): the end force is that of the plateau (within 1e-3 relative), while the force
    at the contraction's last pulse falls with the ramp."""
    plateau = np.arange(0.0, 6.0 - 1e-9, 0.02)
    down = 6.0 + np.arange(0.0, 1.0 - 1e-9, 0.02)
    p = np.concatenate([plateau, down])
    recr = np.concatenate([np.full(plateau.size, 0.6), 0.6 * (1.0 - (down - 5.98) / 1.0)])
    with_ramp = simulate(p, lumbar, recruitment=recr, dt=1e-3)
    without = simulate(plateau, lumbar, recruitment=0.6, dt=1e-3)
    assert with_ramp.end_force_n[0, 0] == pytest.approx(without.end_force_n[0, 0], rel=1e-3)
    last = np.searchsorted(with_ramp.t, p[-1])
    assert with_ramp.force_n[0, last] < 0.5 * with_ramp.end_force_n[0, 0]


def test_a_long_contraction_shows_its_fatigue_at_the_end_not_at_the_peak(lumbar):
    """Ten minutes of continuous 30 Hz (one contraction): the end force is far below the peak
    (the fatigue inside the contraction), and with trace=False (the optimiser's mode) it is the
    same as with the trace."""
    p = np.arange(0.0, 600.0, 1.0 / 30.0)
    r = simulate(p, lumbar, recruitment=0.6, trace=False)
    assert r.end_force_n.shape == r.peak_force_n.shape == (1, 1)
    assert r.end_force_n[0, 0] < 0.5 * r.peak_force_n[0, 0]
    assert simulate(p, lumbar, recruitment=0.6, dt=0.01).end_force_n[0, 0] == r.end_force_n[0, 0]


def test_end_force_is_nan_padded_like_the_peaks(lumbar):
    """Rows with fewer contractions than the batch's widest: NaN in the same places as the
    peaks; a single twitch's end force is its peak (its only pulse is its last full one)."""
    p = np.full((2, 3), np.nan)
    p[0] = [0.0, 1.0, 2.0]
    p[1, 0] = 0.0
    r = simulate(p, lumbar, recruitment=0.5, trace=False)
    assert np.array_equal(np.isnan(r.end_force_n), np.isnan(r.peak_force_n))
    assert r.end_force_n[1, 0] == r.peak_force_n[1, 0]
