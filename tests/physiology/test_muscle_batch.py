"""Batch rows of :func:`emsim.physiology.muscle.simulate` do not depend on each other: each row
of a batch gives what it gives alone (its own recruitment depth groups, its own stepping over
contractions and pulse intervals), to floating-point round-off."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsim.physiology.muscle import load_muscle, simulate

REL = 1e-9


@pytest.fixture(scope="module")
def muscle():
    return load_muscle("quadriceps_ding2003")


def _train(freq_hz: float, on_s: float, off_s: float, n: int) -> np.ndarray:
    rel = np.arange(0.0, on_s, 1.0 / freq_hz)
    return np.concatenate([k * (on_s + off_s) + rel for k in range(n)])


def _ramped(p: np.ndarray, on_s: float, off_s: float, top: float) -> np.ndarray:
    rel = np.mod(p, on_s + off_s)
    return np.minimum(top, top * rel / (0.4 * on_s) + 0.05)


def _pad(rows: list[np.ndarray]) -> np.ndarray:
    out = np.full((len(rows), max(r.size for r in rows)), np.nan)
    for i, r in enumerate(rows):
        out[i, :r.size] = r
    return out


def _assert_row_matches(batch, i, alone):
    scale = max(float(np.nanmax(alone.peak_force_n)), 1e-12)
    k = alone.peak_force_n.shape[1]
    assert np.max(np.abs(batch.peak_force_n[i, :k] - alone.peak_force_n[0])) <= REL * scale
    assert np.max(np.abs(batch.fti_ns[i, :k] - alone.fti_ns[0])) \
        <= REL * max(float(np.nanmax(alone.fti_ns)), 1e-12)
    assert abs(batch.capacity[i] - alone.capacity[0]) <= REL
    c = alone.deficits.shape[1]
    assert np.max(np.abs(batch.deficits[i, :c] - alone.deficits[0])) <= REL
    # cells the row does not have (padding for wider rows) stay rested
    assert not np.any(batch.deficits[i, c:])
    if alone.force_n.size:
        assert np.max(np.abs(batch.force_n[i] - alone.force_n[0])) <= REL * scale


def test_mixed_batch_rows_equal_rows_alone(muscle):
    """Rows sharing one timing at different flat recruitment levels, one with ramps, and a row
    at another frequency: each equals the same row simulated alone (envelope and interval
    stepping on, as by default)."""
    p = _train(50.0, 2.0, 2.0, 25)
    q = _train(35.0, 1.5, 2.5, 25)
    recr = np.vstack([np.full(p.size, 0.5), np.full(p.size, 1.0), _ramped(p, 2.0, 2.0, 0.8),
                      np.full(p.size, 0.3)])
    times = _pad([p, p, p, q])
    recr_pad = np.ones(times.shape)
    recr_pad[:3, :p.size] = recr[:3]
    recr_pad[3, :q.size] = 0.3
    batch = simulate(times, muscle, recruitment=recr_pad, dt=0.01, t_end=101.0)
    assert batch.stats["integrated"] < batch.stats["segments"]   # the stepping did run
    for i, (t_row, r_row) in enumerate([(p, recr[0]), (p, recr[1]), (p, recr[2]),
                                        (q, np.full(q.size, 0.3))]):
        alone = simulate(t_row, muscle, recruitment=r_row, dt=0.01, t_end=101.0)
        _assert_row_matches(batch, i, alone)


def test_channel_force_does_not_depend_on_the_other_channel(muscle):
    """Two channels with the same timing: channel 0's force is the same whether channel 1
    recruits 0.2, 0.9 or ramps."""
    p = _train(85.0, 4.0, 4.0, 12)
    base = np.full(p.size, 0.5)
    outs = [simulate(np.vstack([p, p]), muscle, recruitment=np.vstack([base, other]), dt=0.01)
            for other in (np.full(p.size, 0.2), np.full(p.size, 0.9), _ramped(p, 4.0, 4.0, 1.0))]
    alone = simulate(p, muscle, recruitment=base, dt=0.01)
    for out in outs:
        _assert_row_matches(out, 0, alone)


@pytest.mark.slow
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(levels=st.lists(st.floats(0.05, 1.0), min_size=2, max_size=4),
       ramp=st.booleans(), pick=st.integers(0, 3))
def test_any_row_of_a_batch_equals_the_row_alone(muscle, levels, ramp, pick):
    """Property: for random recruitment levels (one row optionally ramped), the picked row of
    the batch equals the row alone."""
    p = _train(60.0, 1.0, 2.0, 30)
    recr = np.vstack([np.full(p.size, v) for v in levels])
    if ramp:
        recr[-1] = _ramped(p, 1.0, 2.0, levels[-1])
    i = pick % len(levels)
    batch = simulate(np.broadcast_to(p, recr.shape), muscle, recruitment=recr, trace=False)
    alone = simulate(p, muscle, recruitment=recr[i], trace=False)
    _assert_row_matches(batch, i, alone)


def test_warm_up_compiles_and_runs():
    """``warm_up`` runs the kernels on a tiny input and reports the time it took; a simulation
    afterwards works."""
    from emsim.physiology.muscle import warm_up

    took = warm_up()
    assert isinstance(took, float) and took > 0.0
    r = simulate(np.arange(10) / 20, fatigue=False, trace=False)
    assert r.peak_force_n[0, 0] > 0.0
