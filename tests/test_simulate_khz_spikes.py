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
from emsim.simulate import _channel_motor_fraction, evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS, stim

SITE = "lumbar_erector_spinae"
PATIENT = load_patient(PATIENTS / "lbp_average.json")
AUSSIE = {"shape": "khz_burst", "carrier_hz": 1000, "burst_duration_ms": 4}


def _program(waveform, ma):
    doc = copy.deepcopy(BASE_DOC)
    doc["phases"][0]["duration_s"] = 12
    doc["phases"][0]["stimulation"] = [stim("A", waveform=waveform, amplitude={"ma": ma})]
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
