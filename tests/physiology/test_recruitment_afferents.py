"""recruit's afferent side is the discomfort model's afferent computation (emsim.physiology.cutaneous)."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from emsim.body import load_patient
from emsim.physiology import cutaneous as cut
from emsim.physiology import discomfort as dsc
from emsim.physiology import field as fld
from emsim.physiology import recruitment as rc
from emsim.physiology.errors import PhysiologyInputError
from emsim.program import compile, from_dict
from emsim.program.model import Channel
from emsim.testing.documents import BASE_DOC, PATIENTS, channel as channel_doc, stim

SITE = "lumbar_erector_spinae"
CLASSES = ("abeta", "adelta", "c")


def channel(w=5.0, l=5.0, spacing=3.0, side="left", cid="A"):
    return Channel(id=cid, site=SITE, side=side, spacing_cm=spacing, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": w, "length_cm": l},) * 2)


def two_channel_train(patient):
    doc = {**BASE_DOC,
           "channels": [channel_doc("A", side="left"), channel_doc("B", side="right", w=4, l=4)],
           "phases": [{**BASE_DOC["phases"][0], "duration_s": 12,
                       "stimulation": [stim("A", amplitude={"ma": 30}),
                                       stim("B", amplitude={"ma": 18},
                                            waveform={"shape": "monophasic", "pulse_width_us": 150,
                                                      "balance": {"delay_us": 100, "width_us": 1500,
                                                                  "amplitude_ratio": 0.1}})]}]}
    return compile(from_dict(doc), patient)


def test_train_afferents_equal_what_simulate_feeds_discomfort():
    """recruit's afferent fraction per pulse is
    ``cutaneous_activation(skin current density, delivered current, first-phase width,
    Person.from_patient(patient), waveform=the pulse's waveform)``; for pulsed waveforms (channel
    A biphasic, B monophasic) that is the width-only call (the calibrated Weiss law)."""
    patient = load_patient(PATIENTS / "lbp_average.json")
    train = two_channel_train(patient)
    rec = rc.recruit(train, SITE, patient)
    person = dsc.Person.from_patient(patient)
    for k in range(len(train.channel_ids)):
        sl = train.channel_slice(k)
        rows = np.flatnonzero(rec.channel == k)
        key = np.round(np.stack([train.amplitude_a[sl], train.width_s[sl], train.block[sl]]), 9)
        uniq, inverse = np.unique(key, axis=1, return_inverse=True)
        contact = rec.fields[k].skin_current_density()
        wave = rc.waveform_parameters([train.blocks[int(b)].waveform for b in uniq[2]])
        act = dsc.cutaneous_activation(contact, uniq[0], uniq[1], person=person, waveform=wave)
        plain = dsc.cutaneous_activation(contact, uniq[0], uniq[1], person=person)
        for name in CLASSES:
            want = act[name][inverse.ravel()]
            np.testing.assert_allclose(rec.afferent_fraction[name][rows, 2 * k:2 * k + 2], want, atol=1e-9)
            np.testing.assert_array_equal(act[name], plain[name])
            other = np.delete(np.arange(len(rec.electrodes)), [2 * k, 2 * k + 1])
            assert np.all(rec.afferent_fraction[name][np.ix_(rows, other)] == 0.0)
    assert rec.cutaneous_threshold_scale == (person.cutaneous_threshold_scale,) * 2
    # the ramps and the 30 mA plateau excite Abeta well beyond first sensation, not all of it
    assert 0.05 < rec.afferent_fraction["abeta"].max() < 1.0


def test_recruitment_fed_to_discomfort_gives_the_directly_computed_nrs():
    patient = load_patient(PATIENTS / "lbp_average.json")
    doc = {**BASE_DOC, "phases": [{**BASE_DOC["phases"][0], "duration_s": 8}]}
    train = compile(from_dict(doc), patient)
    rec = rc.recruit(train, SITE, patient)
    person = dsc.Person.from_patient(patient)
    act = dsc.cutaneous_activation(rec.fields[0].skin_current_density(), train.amplitude_a, train.width_s,
                                   person=person)
    direct = dsc.predict(dsc.AfferentDrive.from_pulses(train.t_s, act, [rec.electrode_area_m2[0]]))
    via = dsc.predict(dsc.AfferentDrive(times_s=rec.times_s, afferent=rec.afferent,
                                        electrode_area_m2=rec.electrode_area_m2))
    np.testing.assert_allclose(via.nrs, direct.nrs, atol=1e-9)
    assert via.peak[0] > 0.5


def test_batch_afferents_equal_cutaneous_activation_per_channel():
    chans = [channel(), channel(w=2, l=2, cid="S")]
    amp = np.array([4.0, 8.0, 15.0, 30.0, 60.0, 8.0, 15.0])
    pw = np.array([100.0, 250.0, 250.0, 500.0, 1000.0, 250.0, 50.0])
    ci = np.array([0, 0, 0, 0, 0, 1, 1])
    s = rc.StimulusSet.from_arrays(amp, pw, 50.0, channels=chans, channel_index=ci)
    person = dsc.Person(cutaneous_threshold_scale=0.8)
    rec = rc.recruit(s, SITE, person=person)
    for c in (0, 1):
        rows = ci == c
        act = dsc.cutaneous_activation(rec.fields[c].skin_current_density(), amp[rows] * 1e-3, pw[rows] * 1e-6,
                                       person=person, waveform={k: v[rows] for k, v in s.waveform.items()})
        for name in CLASSES:
            np.testing.assert_allclose(rec.afferent_fraction[name][rows, 2 * c:2 * c + 2], act[name], atol=1e-12)
            assert np.all(rec.afferent_fraction[name][rows][:, [2 * (1 - c), 2 * (1 - c) + 1]] == 0.0)
    # the same current spread over 2 x 2 cm excites more Abeta than over 5 x 5 cm
    assert rec.afferent_fraction["abeta"][5, 2] > rec.afferent_fraction["abeta"][1, 0]


def test_afferent_thresholds_are_where_the_fraction_reaches_the_sensation_level():
    s = rc.StimulusSet.from_arrays(10.0, [50.0, 250.0, 1000.0], 50.0, channels=channel())
    rec = rc.recruit(s, SITE, person=dsc.Person())
    contact = rec.fields[0].skin_current_density()
    for name in CLASSES:
        thr = rec.afferent_threshold_a[name]                       # (S, E)
        assert thr.shape == (3, 2) and np.all(np.isfinite(thr))
        assert np.all(np.diff(thr[:, 0]) < 0)                      # longer pulses, lower thresholds
        for s_i, pw in enumerate((50e-6, 250e-6, 1000e-6)):
            at = cut.activation(contact, thr[s_i], pw)[name]       # (E, E): row = electrode's threshold
            np.testing.assert_allclose(np.diag(at), cut.SENSATION_LEVEL, rtol=1e-6)


def test_sex_and_person_scale_the_afferent_thresholds():
    s = rc.StimulusSet.from_arrays(10.0, 250.0, 50.0, channels=channel())
    lay = fld.Layers.for_site(SITE)  # same tissue for both: only the person differs
    male = rc.recruit(s, SITE, load_patient(PATIENTS / "lbp_average.json"), person=dsc.Person(), layers=lay)
    female = rc.recruit(s, SITE, load_patient(PATIENTS / "example_measured.json"), layers=lay)
    ratio = female.afferent_threshold_a["abeta"] / male.afferent_threshold_a["abeta"]
    np.testing.assert_allclose(ratio, dsc.DiscomfortParameters.load().female_threshold_scale, rtol=1e-9)
    per_channel = rc.recruit(s, SITE, person={"A": dsc.Person(cutaneous_threshold_scale=2.0)})
    np.testing.assert_allclose(per_channel.afferent_threshold_a["c"], 2.0 * male.afferent_threshold_a["c"],
                               rtol=1e-9)


def test_motor_gain_acts_on_motor_units_only():
    s = rc.StimulusSet.from_arrays([20.0, 40.0], 300.0, 40.0, channels=channel())
    base = rc.recruit(s, SITE)
    gained = rc.recruit(s, SITE, motor_gain={"A": 2.0})
    np.testing.assert_allclose(gained.unit_threshold_a, base.unit_threshold_a / 2.0)
    for name in CLASSES:
        np.testing.assert_array_equal(gained.afferent_fraction[name], base.afferent_fraction[name])
    assert gained.motor_fraction_above[0, 0] >= base.motor_fraction_above[1, 0] - 1e-12


@pytest.mark.parametrize("kw, path", [
    ({"motor_gain": 0.0}, "motor_gain"),
    ({"motor_gain": {"B": 1.0}}, "motor_gain.A"),
    ({"person": SimpleNamespace(cutaneous_threshold_scale=-1.0)}, "person.cutaneous_threshold_scale"),
    ({"person": {"B": dsc.Person()}}, "person.A"),
])
def test_bad_person_factors_are_typed_errors(kw, path):
    s = rc.StimulusSet.from_arrays(10.0, channels=channel())
    with pytest.raises(PhysiologyInputError) as e:
        rc.recruit(s, SITE, **kw)
    assert e.value.path == path


def test_threshold_level_must_be_a_fraction():
    contact = rc.recruit(rc.StimulusSet.from_arrays(10.0, channels=channel()), SITE).fields[0].skin_current_density()
    with pytest.raises(PhysiologyInputError) as e:
        cut.threshold_current(contact, 250e-6, level=1.0)
    assert e.value.path == "level" and not math.isnan(e.value.value)


def test_motor_gain_equals_scaling_the_current_the_motor_units_see():
    """What emsim.simulate does today (recruit a train whose amplitudes are multiplied by the
    patient's motor gain) gives the same motor fractions as recruit(train, motor_gain=...), which
    also keeps the afferents on the delivered current."""
    import dataclasses

    patient = load_patient(PATIENTS / "lbp_average.json")
    train = two_channel_train(patient)
    gain = np.where(np.arange(train.t_s.size) < train.channel_slice(0).stop, 1.3, 0.8)
    scaled = rc.recruit(dataclasses.replace(train, amplitude_a=train.amplitude_a * gain), SITE, patient)
    direct = rc.recruit(train, SITE, patient, motor_gain={"A": 1.3, "B": 0.8})
    np.testing.assert_allclose(direct.motor_fraction, scaled.motor_fraction, atol=1e-12)
    np.testing.assert_allclose(direct.motor_fraction_above, scaled.motor_fraction_above, atol=1e-12)
    assert not np.allclose(direct.afferent_fraction["abeta"], scaled.afferent_fraction["abeta"])


def test_activation_is_the_area_weighted_log_normal_over_the_skin_pixels():
    """The module formula, pixel by pixel: Σ area·Φ((ln(I·J_px) − ln J_th)/σ)/Σ area. The fast path
    bins ln J (256 bins) and tabulates the response; both errors stay below 1e-5 (measured 3e-6)."""
    from scipy.special import ndtr

    contact = rc.recruit(rc.StimulusSet.from_arrays(10.0, channels=channel()), SITE).fields[0].skin_current_density()
    current = np.geomspace(1e-3, 0.1, 25)
    got = cut.activation(contact, current, 300e-6)
    for name, c in cut.class_parameters().items():
        log_th = np.log(c.rheobase_j_a_per_m2 * (1.0 + c.chronaxie_s / 300e-6))
        for e in range(2):
            j, area = contact.samples(e)
            z = (np.log(current[:, None] * j[None, :]) - log_th) / c.sigma_ln
            want = (ndtr(z) * area).sum(axis=1) / area.sum()
            np.testing.assert_allclose(got[name][:, e], want, atol=1e-5)
        assert got[name][-1].min() > got[name][0].max()


def test_clear_cache_forgets_geometries_and_field_solutions_and_changes_nothing():
    """A cohort clears the caches between patients: memory only, not results."""
    patient = load_patient(PATIENTS / "lbp_average.json")
    train = two_channel_train(patient)
    first = rc.recruit(train, SITE, patient)
    assert len(rc._GEOM_CACHE) > 0 and fld.cache_info()["solutions"] > 0
    rc.clear_cache()
    assert len(rc._GEOM_CACHE) == 0 and fld.cache_info()["solutions"] == 0
    again = rc.recruit(train, SITE, patient)
    assert np.array_equal(first.motor_fraction, again.motor_fraction)
    for k in first.afferent_fraction:
        assert np.array_equal(first.afferent_fraction[k], again.afferent_fraction[k])
