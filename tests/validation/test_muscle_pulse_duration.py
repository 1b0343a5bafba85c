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


def _peaks_around(test: np.ndarray, freq_hz: float, level: float, test_level: float,
                  start_s: float) -> np.ndarray:
    """Contraction peaks of ``test`` (test trains, pulse times from 0), the protocol at
    ``level`` from ``start_s`` on, and ``test`` again 5 s after the protocol's last pulse; the
    test trains at ``test_level``."""
    work = start_s + repeated(freq_hz, 0.3, 1.0, 150)
    post = work[-1] + 5.0 + test
    recr = np.concatenate([np.full(test.size, test_level), np.full(work.size, level),
                           np.full(post.size, test_level)])
    peaks = simulate(np.concatenate([test, work, post]), QUAD, recruitment=recr,
                     trace=False).peak_force_n[0]
    return peaks[~np.isnan(peaks)]


def _test_force_decline(freq_hz: float, level: float, test_level: float) -> float:
    """1 − post/pre peak of a 300 ms 60 Hz test train at ``test_level`` around the protocol."""
    peaks = _peaks_around(train(60.0, 0.3), freq_hz, level, test_level, 5.0)
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


def _lff_ratio(freq_hz: float, level: float, test_level: float) -> float:
    """20:60 Hz peak ratio after the protocol over the ratio before (1 = no low-frequency
    fatigue); 300 ms test trains at ``test_level``, 2 s apart, 5 s before and after."""
    peaks = _peaks_around(np.concatenate([train(20.0, 0.3), 2.0 + train(60.0, 0.3)]),
                          freq_hz, level, test_level, 7.0)
    return float((peaks[-2] / peaks[-1]) / (peaks[0] / peaks[1]))


def test_low_frequency_fatigue_least_after_p1_and_alike_at_600us_kesar2006():
    """Kesar & Binder-Macleod 2006 (abstract): tested at each protocol's own pulse duration, P1
    produced the least low-frequency fatigue (the 20:60 Hz peak-force ratio fell least); tested
    at 600 µs (the same units), LFF did not differ between protocols. Tolerance: P1's
    post/pre 20:60 ratio above P2's and P3's at their own fractions; at P1's fraction the
    spread over the three protocols below half the P1–P3 difference at their own fractions
    (the abstract gives no magnitudes, only "no differences"). Model: own 0.939 / 0.911 /
    0.880, at P1's fraction 0.939 / 0.942 / 0.947."""
    lv = _levels()
    own = {k: _lff_ratio(f, lv[k], lv[k]) for k, f in PROTOCOLS_HZ.items()}
    same = {k: _lff_ratio(f, lv[k], lv["P1"]) for k, f in PROTOCOLS_HZ.items()}
    assert own["P1"] > max(own["P2"], own["P3"]), own
    spread = max(same.values()) - min(same.values())
    assert spread < 0.5 * (own["P1"] - own["P3"]), (own, same)


@pytest.mark.xfail(strict=True, reason=(
    "diagnosed, not fixable by a fatigue term (session 11; docs/literature/"
    "muscle_fatigue_effects.md 'Session 11'): the same-unit decline is P2's own decline diluted "
    "by the fresh units P1's fraction adds, 0.347 x r2/r1 (0.251/0.352 = 0.71) = 0.25 > P1 0.21. "
    "P2 wins only if r2/r1 < 0.61 (= own-PD decline P1/P2, 0.211/0.347). r2/r1 comes from the "
    "Ding 2003 core's per-unit force of 300 ms trains (11.5 Hz 0.57 F_max, 30 Hz 0.80; twitch "
    "0.32, high for human quadriceps); the per-unit ratio 1.64 from the per-pulse cost, which "
    "carries 78 % of P1's decline at 20 % MVIC (occlusion factor ~0.2 on the force drive). "
    "occlusion_gain 0 passes (0.441/0.410/0.458) but breaks Binder-Macleod 1995"))
def test_same_units_tested_at_600us_fatigue_least_after_30_hz_kesar2006():
    """Kesar & Binder-Macleod 2006: tested on the same motor-unit population (600 µs test
    trains), P2 (30 Hz) showed the least fatigue. Tolerance: P2's 60 Hz test-force decline below
    P1's and P3's (ordering; no magnitudes in the abstract)."""
    lv = _levels()
    got = {k: _test_force_decline(f, lv[k], lv["P1"]) for k, f in PROTOCOLS_HZ.items()}
    assert got["P2"] < min(got["P1"], got["P3"]), got
