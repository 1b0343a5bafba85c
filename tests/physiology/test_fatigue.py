"""The pool fatigue model's deficit definitions (emsim.physiology.fatigue)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emsim.physiology import fatigue as fat
from emsim.physiology.errors import ModelParameterError
from emsim.physiology.muscle import load_muscle, simulate

QUAD = load_muscle("quadriceps_ding2003")
HFF = 6   # index of the high-frequency-fatigue deficit


def _without_hff(m):
    return dataclasses.replace(m, fatigue=dataclasses.replace(m.fatigue, hff_pulse_cost=0.0))


def test_deficit_arrays_agree_and_the_high_frequency_deficit_follows_the_data():
    f = QUAD.fatigue
    g, pg = fat.deficit_gains(QUAD.ding, f, QUAD.max_force)
    arrays = (g, pg, fat.deficit_mechanisms(f), fat.deficit_time_constants(f),
              fat.deficit_interval_thresholds(f), fat.deficit_uses_fatigability(f))
    assert all(a.shape == (fat.N_DEFICITS,) for a in arrays)
    assert g[HFF] == 0.0 and pg[HFF] == f.hff_pulse_cost > 0
    assert fat.deficit_mechanisms(f)[HFF] == fat.MECH_CAPACITY
    assert fat.deficit_time_constants(f)[HFF] == f.hff_recovery
    assert fat.deficit_interval_thresholds(f)[HFF] == f.hff_interval
    assert not fat.deficit_uses_fatigability(f)[HFF]
    # the six Ding-mechanism deficits keep their rate-free interval weights and class scaling
    assert np.all(fat.deficit_interval_thresholds(f)[:HFF] == 0)
    assert np.all(fat.deficit_uses_fatigability(f)[:HFF])


@pytest.mark.parametrize("name, value", [("hff_pulse_cost", -0.1), ("hff_pulse_cost", 1.5),
                                         ("hff_interval", 0.0), ("hff_recovery", np.inf),
                                         ("pulse_rate_cap", 0.025), ("pulse_rate_cap", -0.001),
                                         ("catch_gain", -1.0), ("catch_gain", np.nan),
                                         ("catch_saturation", 0.0), ("catch_interval", 0.0),
                                         ("catch_decay", np.inf)])
def test_bad_high_frequency_parameters_raise(name, value):
    with pytest.raises(ModelParameterError) as exc:
        fat.FatigueParameters(**{name: value})
    assert name in exc.value.path


def test_ding2003_special_case_has_no_high_frequency_fatigue():
    f = fat.FatigueParameters.ding2003(127.0)
    _, pg = fat.deficit_gains(QUAD.ding, f, 300.0)
    assert pg[HFF] == 0.0


def test_rates_up_to_40_hz_pay_no_high_frequency_cost():
    """Intervals ≥ 25 ms have weight 0: a 33 Hz protocol is the same with or without the
    deficit, while a 60 Hz one loses force to it."""
    low = np.concatenate([k * 2.0 + np.arange(0, 1.0, 1 / 33) for k in range(20)])
    a = simulate(low, QUAD, recruitment=0.5, trace=False)
    b = simulate(low, _without_hff(QUAD), recruitment=0.5, trace=False)
    assert np.max(np.abs(a.deficits[..., HFF])) < 1e-12
    assert np.allclose(a.peak_force_n, b.peak_force_n, rtol=1e-12)
    high = np.concatenate([k * 2.0 + np.arange(0, 1.0, 1 / 60) for k in range(20)])
    c = simulate(high, QUAD, recruitment=0.5, trace=False)
    d = simulate(high, _without_hff(QUAD), recruitment=0.5, trace=False)
    assert np.all(c.deficits[0, :, HFF] > 0)
    assert c.peak_force_n[0, -1] < d.peak_force_n[0, -1]


def test_high_frequency_deficit_recovers_with_its_time_constant():
    """After the last pulse only exact decay acts: the deficit left after a rest of T is the one
    at the end of the train times e^{−T/τ_H}."""
    p = np.arange(0.0, 2.0, 1 / 80)
    short = simulate(p, QUAD, recruitment=0.5, trace=False, t_end=p[-1] + 1.0)
    long_ = simulate(p, QUAD, recruitment=0.5, trace=False, t_end=p[-1] + 31.0)
    ratio = long_.deficits[0, :, HFF] / short.deficits[0, :, HFF]
    assert np.allclose(ratio, np.exp(-30.0 / QUAD.fatigue.hff_recovery), rtol=1e-9)


def test_high_frequency_cost_per_second_saturates_at_the_rate_cap():
    """The weight clip((Δt_H − Δt)/(Δt_H − Δt_R), 0, 1)·min(1, Δt/Δt_R) (Δt_H = 25 ms,
    Δt_R = 12.5 ms) rises from 0 at 40 Hz to 1 at 80 Hz, and above 80 Hz a second costs what
    80 Hz costs (Russ 2002): 100 Hz pays 99·0.8 where 80 Hz pays 79·1 (without the cap it
    paid 1.5 ×), 60 Hz 59·2/3. Checked on one rested second with the other deficits' drive and
    the HFF cost made tiny, so that the capacity factor stays ≈ 1 and only the weights (and 1 s
    of recovery, < 0.1 % apart) set the ratios."""
    f = QUAD.fatigue
    assert (f.hff_interval, f.pulse_rate_cap) == (0.025, 0.0125)
    m = dataclasses.replace(QUAD, fatigue=dataclasses.replace(
        f, drive_scale=1e-9, pulse_cost=0.0, hff_pulse_cost=1e-5))
    d = {}
    for rate in (60, 80, 100):
        p = np.arange(0.0, 1.0 - 1e-9, 1 / rate)
        r = simulate(p, m, recruitment=0.5, trace=False, t_end=p[-1] + 1e-3)
        d[rate] = r.deficits[0, 0, HFF]
    assert d[100] / d[80] == pytest.approx(99 * 0.8 / 79, rel=2e-3)
    assert d[60] / d[80] == pytest.approx(59 * (25 - 50 / 3) / 12.5 / 79, rel=2e-3)
