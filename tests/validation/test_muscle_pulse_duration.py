"""Pulse duration against frequency as the way to reach a force: Kesar & Binder-Macleod 2006.

Issue 3 names published experiments on pulse duration among the benchmarks of the fatigue
model; docs/literature/muscle_fatigue_effects.md §1.2 and its table (B2a) hold the protocol.
Kesar & Binder-Macleod 2006 (Exp Physiol 91:967; abstract and methods text [verified] there):
three fatiguing protocols on able-bodied quadriceps, matched for the same initial peak force
(20 % MVIC, 300 ms trains): P1 600 µs at 11.5 Hz, P2 150 µs at 30 Hz, P3 131 µs at 60 Hz.
Fatigue is the decline of the 60 Hz test force.

In emsim a pulse's duration acts on the muscle only through the recruited fraction (what
:func:`emsim.physiology.recruitment.recruit` computes; quadriceps_ding2003 has no pulse-duration
term), so each protocol is simulated as its frequency with the recruited fraction that gives
20 % of F_max on the first train; "tested at 600 µs" means tested with P1's fraction. Assumed
(not read): one 300 ms train per second, 150 trains (the Binder-Macleod laboratory timing the
B1a test uses), test trains of 300 ms 5 s before and after.
"""

from __future__ import annotations

import numpy as np
import pytest

from emsim.physiology.muscle import load_muscle, simulate

from ._muscle_protocols import decline, recruitment_for, repeated, train

pytestmark = pytest.mark.validation

QUAD = load_muscle("quadriceps_ding2003")
PROTOCOLS_HZ = {"P1": 11.5, "P2": 30.0, "P3": 60.0}


def _levels():
    return {k: recruitment_for(QUAD, f, 0.3, 0.20) for k, f in PROTOCOLS_HZ.items()}


def _test_force_decline(freq_hz: float, level: float, test_level: float) -> float:
    """1 − post/pre peak of a 300 ms 60 Hz test train at ``test_level`` around the protocol."""
    pre = train(60.0, 0.3)
    work = 5.0 + repeated(freq_hz, 0.3, 1.0, 150)
    post = work[-1] + 5.0 + train(60.0, 0.3)
    recr = np.concatenate([np.full(pre.size, test_level), np.full(work.size, level),
                           np.full(post.size, test_level)])
    peaks = simulate(np.concatenate([pre, work, post]), QUAD, recruitment=recr,
                     trace=False).peak_force_n[0]
    peaks = peaks[~np.isnan(peaks)]
    return float(1.0 - peaks[-1] / peaks[0])


def test_low_frequency_long_pulses_fatigue_least_kesar2006():
    """Kesar & Binder-Macleod 2006: P1 (600 µs, 11.5 Hz) had the smallest decline in peak force
    across the fatiguing trains and, tested at each protocol's own pulse duration, the least
    fatigue of the 60 Hz test force. Tolerance: ordering, P1 below P2 and P3 by at least 2
    points on both measures (the abstract gives no magnitudes). Model: train decline 0.28 /
    0.39 / 0.63, 60 Hz test 0.21 / 0.35 / 0.60."""
    lv = _levels()
    trains = {k: decline(simulate(repeated(f, 0.3, 1.0, 150), QUAD, recruitment=lv[k],
                                  trace=False)) for k, f in PROTOCOLS_HZ.items()}
    tests = {k: _test_force_decline(f, lv[k], lv[k]) for k, f in PROTOCOLS_HZ.items()}
    for got in (trains, tests):
        assert got["P1"] + 0.02 <= min(got["P2"], got["P3"]), (trains, tests)


@pytest.mark.xfail(strict=True, reason="model, 60 Hz test at P1's recruited fraction (0.35): fatigue "
                                       "P1 0.212, P2 0.250, P3 0.384 -- P1 least, where Kesar found P2 "
                                       "(the abstract gives no magnitudes); not investigated further "
                                       "(audit session 10)")
def test_same_units_tested_at_600us_fatigue_least_after_30_hz_kesar2006():
    """Kesar & Binder-Macleod 2006: tested on the same motor-unit population (600 µs test
    trains), P2 (30 Hz) showed the least fatigue. Tolerance: P2's 60 Hz test-force decline below
    P1's and P3's (ordering; no magnitudes in the abstract)."""
    lv = _levels()
    got = {k: _test_force_decline(f, lv[k], lv["P1"]) for k, f in PROTOCOLS_HZ.items()}
    assert got["P2"] < min(got["P1"], got["P3"]), got
