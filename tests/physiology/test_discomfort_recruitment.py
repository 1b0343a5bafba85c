"""A Recruitment as the discomfort model's input: the conversion (time order, distinct-row tables,
caching) must give exactly what the per-pulse arrays give."""

import numpy as np
import pytest

from emsim.body import load_patient
from emsim.physiology import discomfort as dsc
from emsim.physiology import recruitment as rc
from emsim.program import compile, from_dict
from emsim.testing.documents import BASE_DOC, PATIENTS, channel, stim

SITE = "lumbar_erector_spinae"


@pytest.fixture(scope="module")
def two_channel():
    """Two channels with different amplitudes and rates: pulses interleave in time."""
    patient = load_patient(PATIENTS / "lbp_average.json")
    doc = {**BASE_DOC,
           "channels": [channel("A", side="left"), channel("B", side="right", w=4, l=4)],
           "phases": [{**BASE_DOC["phases"][0], "duration_s": 12,
                       "stimulation": [stim("A", amplitude={"ma": 30}),
                                       stim("B", amplitude={"ma": 18}, frequency_hz=35)]}]}
    train = compile(from_dict(doc), patient)
    return train, rc.recruit(train, SITE, patient)


def test_conversion_is_the_time_sorted_per_pulse_arrays(two_channel):
    _, rec = two_channel
    order = np.argsort(rec.t_s, kind="stable")
    assert not np.array_equal(order, np.arange(order.size))  # the channels really interleave
    np.testing.assert_array_equal(rec.times_s, rec.t_s[order][None])
    for name, v in rec.afferent_fraction.items():
        np.testing.assert_array_equal(rec.afferent[name], v[order].T[None])
    counts = np.bincount(rec.unit_muscle, minlength=len(rec.muscles)).astype(float)
    np.testing.assert_allclose(rec.force_fraction, (rec.motor_fraction @ (counts / counts.sum()))[order][None],
                               rtol=1e-14, atol=0)
    by_hand = dsc.AfferentDrive(times_s=rec.t_s[order][None],
                                afferent={k: v[order].T[None] for k, v in rec.afferent_fraction.items()},
                                electrode_area_m2=rec.electrode_area_m2,
                                force_fraction=(rec.motor_fraction @ (counts / counts.sum()))[order][None])
    a, b = dsc.predict(rec), dsc.predict(by_hand)
    np.testing.assert_allclose(a.nrs, b.nrs, rtol=1e-12, atol=0)
    np.testing.assert_allclose(a.mean, b.mean, rtol=1e-12, atol=0)


def test_channel_afferent_is_the_channel_slice_of_the_per_pulse_arrays(two_channel):
    train, rec = two_channel
    for k in range(len(train.channel_ids)):
        rows = rec.channel == k
        got = rec.channel_afferent(k)
        assert set(got) == set(rec.afferent_fraction)
        for name, v in rec.afferent_fraction.items():
            np.testing.assert_array_equal(got[name], v[rows][:, 2 * k:2 * k + 2].T[None])


def test_converted_arrays_are_cached_and_read_only(two_channel):
    _, rec = two_channel
    assert rec.afferent is rec.afferent and rec.times_s is rec.times_s
    for arr in (rec.times_s, rec.force_fraction, rec.motor_fraction, rec.afferent["abeta"],
                rec.afferent_fraction["abeta"]):
        with pytest.raises(ValueError):
            arr[(0,) * arr.ndim] = 0.5


def test_batch_recruitment_converts_to_one_steady_row_per_candidate(two_channel):
    train, _ = two_channel
    patient = load_patient(PATIENTS / "lbp_average.json")
    chans = train.program.channels
    batch = rc.StimulusSet.from_arrays([10.0, 30.0, 30.0], [200.0, 300.0, 300.0], [20.0, 50.0, 50.0],
                                       channels=chans, channel_index=[0, 0, 1])
    rec = rc.recruit(batch, SITE, patient)
    for name, v in rec.afferent_fraction.items():
        np.testing.assert_array_equal(rec.afferent[name], v[:, :, None])
    d = dsc.predict(rec)
    assert d.nrs.shape == (3, 1)
    assert d.nrs[1, 0] > d.nrs[0, 0]  # more current, wider pulses, faster: more discomfort
