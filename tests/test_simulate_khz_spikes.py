"""kHz bursts drive the muscle with every action potential a burst evokes (emsim.simulate).

A 1 kHz, 4 ms burst fires strongly driven motor units twice (the Brian2 burst-firing table's
motor class, :attr:`emsim.physiology.recruitment.Recruitment.motor_extra_spikes`); the
prediction must feed those doublets to the muscle model, and pulsed programs must be unchanged.
"""

import copy

import numpy as np
import pytest

from emsim.body import load_patient
from emsim.physiology.muscle import load_muscle, simulate
from emsim.physiology.recruitment import recruit
from emsim.program import compile as compile_program, from_dict
from emsim._muscle_regions import refractory_interval_s
from emsim.simulate import _channel_motor_fraction, evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS, stim

SITE = "lumbar_erector_spinae"
PATIENT = load_patient(PATIENTS / "lbp_average.json")
AUSSIE = {"shape": "khz_burst", "carrier_hz": 1000, "burst_duration_ms": 4}


def _program(waveform, ma, frequency_hz=50):
    doc = copy.deepcopy(BASE_DOC)
    doc["phases"][0]["duration_s"] = 12
    doc["phases"][0]["stimulation"] = [stim("A", waveform=waveform, amplitude={"ma": ma},
                                            frequency_hz=frequency_hz)]
    return from_dict(doc)


def _rows(program):
    train = compile_program(program, PATIENT)
    rec = recruit(train, SITE, PATIENT)
    return train, _channel_motor_fraction(rec, train, program, SITE)[0]


@pytest.fixture(scope="module")
def aussie():
    return _program(AUSSIE, 90)


def test_strong_1_khz_bursts_add_a_second_action_potential_per_burst(aussie):
    train, (times, frac) = _rows(aussie)
    bursts = train.t_s[train.channel_slice(0)]
    assert times.size > bursts.size
    assert np.all(np.diff(times) > 0)
    extra = ~np.isin(times, bursts)
    # each extra action potential follows its burst's onset by 2-5 ms (the table's doublet) and
    # fires at most the units the onset fired
    k = np.searchsorted(bursts, times[extra], side="right") - 1
    delay = times[extra] - bursts[k]
    assert np.all((delay > 2e-3) & (delay < 5e-3)), delay
    onset = dict(zip(times[~extra], frac[~extra]))
    assert np.all(frac[extra] <= np.array([onset[bursts[i]] for i in k]) + 1e-12)
    assert frac[extra].max() > 0.1


def test_prediction_includes_the_doublets(aussie):
    train, (times, frac) = _rows(aussie)
    onset_only = np.isin(times, train.t_s[train.channel_slice(0)])
    m = load_muscle(SITE)
    without = simulate(times[onset_only], m, recruitment=frac[onset_only], t_end=float(train.duration_s))
    pred = evaluate(aussie, PATIENT)
    np.testing.assert_allclose(pred.scalars["peak_mvc_pct"],
                               100 * np.nanmax(simulate(times, m, recruitment=frac,
                                                        t_end=float(train.duration_s)).peak_force_n)
                               / m.max_force, rtol=1e-9)
    # the doublets raise the evoked force (Brian2 motor table: +8-11 % at tolerance,
    # docs/literature/khz_discomfort.md section 7)
    assert pred.scalars["peak_mvc_pct"] > 1.03 * 100 * np.nanmax(without.peak_force_n) / m.max_force


def test_pulsed_programs_drive_the_muscle_with_their_own_pulses():
    prog = _program({"shape": "symmetric_biphasic", "pulse_width_us": 300, "interphase_gap_us": 100}, 40)
    train, (times, _) = _rows(prog)
    np.testing.assert_array_equal(times, train.t_s[train.channel_slice(0)])


@pytest.mark.parametrize("burst_ms, frequency_hz", [(4, 240), (6.5, 150), (9.5, 100)])
def test_extra_spikes_never_crowd_the_next_burst(burst_ms, frequency_hz):
    """At high burst rates the table's delays (an isolated 4 or 10 ms burst) reach the next burst:
    1 kHz, 4 ms at 240 Hz put a doublet 0.8 ms before every next onset, 6.5 ms at 150 Hz (read
    from the 10 ms table) put a burst's 4th action potential after the next onset, 1 us from that
    burst's own doublet. The next onset fires the same first-recruited units, which cannot fire
    twice within the refractory period: each burst's extra action potentials come at least that
    long before the next burst."""
    prog = _program({"shape": "khz_burst", "carrier_hz": 1000, "burst_duration_ms": burst_ms}, 60,
                    frequency_hz)
    train = compile_program(prog, PATIENT)
    rec = recruit(train, SITE, PATIENT)
    times, _ = _channel_motor_fraction(rec, train, prog, SITE)[0]
    delay = rec.motor_extra_spikes[0]
    bursts = train.t_s[train.channel_slice(0)]
    assert times.size > bursts.size  # strongly driven units still fire extra action potentials
    assert np.all(np.diff(times) > 0)
    # between two onsets only the first burst's own extra action potentials, none of them
    # within the refractory period of the second onset
    k = np.searchsorted(bursts, times, side="right") - 1
    extra = times > bursts[k]
    after = times[extra] - bursts[k[extra]]
    own = np.isclose(after[:, None], delay[k[extra]], rtol=0, atol=1e-9).any(axis=1)
    assert np.all(own)
    nxt = k[extra] + 1 < bursts.size
    assert np.all(bursts[k[extra][nxt] + 1] - times[extra][nxt] >= refractory_interval_s() - 1e-12)
