"""Discomfort model (emsim.physiology.discomfort): mechanics, invariants and bad input."""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from emsim.physiology.discomfort import (
    AFFERENT_CLASSES, AfferentDrive, DiscomfortParameters, Person, _leaky_sum, _train_duration,
    cutaneous_activation,
    nrs_from_drive, predict,
)
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.physiology.field import Electrodes, Gel, Layers, solve

P = DiscomfortParameters.load()


@pytest.fixture(scope="module")
def contact():
    lay = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.04)
    return el, solve(lay, el).skin_current_density()


def train(f=50.0, dur=1.0, rows=1):
    t = np.arange(0.0, dur, 1.0 / f)
    return np.broadcast_to(t, (rows, t.size)).copy()


def drive_from(fr, t, el):
    aff = {k: np.repeat(v[:, :, None], t.shape[-1], axis=2) for k, v in fr.items()}
    return AfferentDrive(times_s=t, afferent=aff, electrode_area_m2=[[e.area_m2 for e in el.electrodes]])


# ----------------------------------------------------------------------------- parameters

def test_parameters_load_with_every_class():
    assert set(P.classes) == set(AFFERENT_CLASSES)
    # The chronaxies order the classes as the reference does: Adelta < Abeta < C.
    assert P.classes["adelta"].chronaxie_s < P.classes["abeta"].chronaxie_s < P.classes["c"].chronaxie_s


def test_bad_parameter_file_raises(tmp_path, monkeypatch):
    import json
    from emsim import _data
    from emsim.physiology import discomfort as mod
    src = _data.models_dir() / "discomfort" / "discomfort.json"
    doc = json.loads(src.read_text())
    del doc["classes"]["c"]["weight"]
    (tmp_path / "discomfort").mkdir()
    (tmp_path / "discomfort" / "bad.json").write_text(json.dumps(doc))
    monkeypatch.setenv("EMSIM_MODELS_DIR", str(tmp_path))
    _data.load_data.cache_clear()
    mod._load_parameters.cache_clear()
    try:
        with pytest.raises(ModelParameterError) as exc:
            DiscomfortParameters.load("discomfort/bad.json")
        assert "classes.c" in exc.value.path
    finally:
        monkeypatch.delenv("EMSIM_MODELS_DIR")
        _data.load_data.cache_clear()
        mod._load_parameters.cache_clear()


# ----------------------------------------------------------------------------- cutaneous activation

def test_activation_monotonic_in_current_and_bounded(contact):
    el, sc = contact
    current = np.geomspace(1e-3, 0.2, 40)
    fr = cutaneous_activation(sc, current, 250e-6)
    for name in AFFERENT_CLASSES:
        a = fr[name]
        assert a.shape == (40, 2)
        assert np.all((a >= 0) & (a <= 1))
        assert np.all(np.diff(a, axis=0) >= -1e-12)
    assert np.all(cutaneous_activation(sc, 0.0, 250e-6)["abeta"] == 0)
    # Classes recruit in threshold order at a moderate current.
    mid = cutaneous_activation(sc, 0.03, 250e-6)
    assert mid["abeta"][0] > mid["adelta"][0] > mid["c"][0]


def test_wider_pulses_lower_thresholds_most_for_long_chronaxie(contact):
    """Weiss law per class: at equal current, going from 100 to 1000 us raises C (c = 2 ms)
    activation relatively more than Adelta (c = 0.23 ms)."""
    _, sc = contact
    narrow = cutaneous_activation(sc, 0.06, 100e-6)
    wide = cutaneous_activation(sc, 0.06, 1000e-6)
    for name in AFFERENT_CLASSES:
        assert np.all(wide[name] >= narrow[name])
    # Threshold multipliers: C falls 21/3 = 7x, Adelta 3.32/1.23 = 2.7x.
    c, d = P.classes["c"].chronaxie_s, P.classes["adelta"].chronaxie_s
    assert (1 + c / 100e-6) / (1 + c / 1e-3) > (1 + d / 100e-6) / (1 + d / 1e-3)


def test_threshold_multiplier_overrides_weiss(contact):
    _, sc = contact
    weiss = cutaneous_activation(sc, 0.03, 250e-6)
    mult = {k: 1 + c.chronaxie_s / 250e-6 for k, c in P.classes.items()}
    same = cutaneous_activation(sc, 0.03, 250e-6, threshold_multiplier=mult)
    for k in AFFERENT_CLASSES:
        assert np.allclose(same[k], weiss[k])
    harder = cutaneous_activation(sc, 0.03, 250e-6, threshold_multiplier={"abeta": 2 * mult["abeta"]})
    assert np.all(harder["abeta"] < weiss["abeta"])


def test_person_threshold_scale_increases_activation(contact):
    _, sc = contact
    base = cutaneous_activation(sc, 0.02, 250e-6)
    sensitive = cutaneous_activation(sc, 0.02, 250e-6, person=Person(cutaneous_threshold_scale=0.6))
    assert np.all(sensitive["adelta"] > base["adelta"])
    female = Person.from_patient(SimpleNamespace(sex="female"))
    assert female.cutaneous_threshold_scale == pytest.approx(P.female_threshold_scale)
    assert Person.from_patient(SimpleNamespace(sex="male")).cutaneous_threshold_scale == 1.0


def test_edge_concentration_raises_activation(contact):
    """At equal current, an equipotential electrode's edge peaks activate more endings."""
    lay = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.04)
    uniform = solve(lay, el, gel=Gel.uniform()).skin_current_density()
    metal = solve(lay, el, gel=Gel.metal()).skin_current_density()
    a_u = cutaneous_activation(uniform, 0.03, 250e-6)["adelta"]
    a_m = cutaneous_activation(metal, 0.03, 250e-6)["adelta"]
    assert np.all(a_m > a_u)


# ----------------------------------------------------------------------------- temporal integration

def _direct(t, x, tau):
    out = np.full_like(x, np.nan)
    for p in range(t.size):
        if np.isfinite(t[p]):
            m = np.isfinite(t[: p + 1])
            out[p] = np.sum(x[: p + 1][m] * np.exp(-(t[p] - t[: p + 1][m]) / tau))
    return out


def test_leaky_sum_matches_direct_sum_with_gaps_and_padding():
    rng = np.random.default_rng(3)
    t = np.cumsum(rng.exponential(0.02, 300))
    t[100:] += 120.0  # a gap far longer than 500 integration times
    x = rng.uniform(0, 1, 300)
    t2 = t.copy()
    t2[250:] = np.nan
    got = _leaky_sum(np.vstack([t, t2]), np.vstack([x, x]), 0.1)
    assert np.allclose(got[0], _direct(t, x, 0.1), rtol=1e-10)
    assert np.allclose(got[1, :250], _direct(t2, x, 0.1)[:250], rtol=1e-10)



def test_leaky_sum_shares_times_over_a_leading_axis_and_holds_over_nan_pulses():
    """Several quantities (leading axis) over the same pulses; a NaN time inside a row adds
    nothing and keeps the sum, and leading NaNs give 0."""
    rng = np.random.default_rng(4)
    t = np.cumsum(rng.exponential(0.05, (2, 200)), axis=1)
    t[0, [0, 1, 50, 51, 120]] = np.nan
    t[1, 150:] = np.nan
    x = rng.uniform(0, 1, (3, 2, 200))
    got = _leaky_sum(t, x, 0.1)
    assert got.shape == x.shape
    for k in range(3):
        for b in range(2):
            want = _direct(t[b], x[k, b], 0.1)
            held = np.isnan(want)  # NaN pulse: the last sum carries over, 0 before any pulse
            for p in np.flatnonzero(held):
                want[p] = want[p - 1] if p else 0.0
            np.testing.assert_allclose(got[k, b], np.nan_to_num(want), rtol=1e-10, atol=1e-300)


def test_train_duration_restarts_after_the_reset_gap_and_skips_padding():
    t = np.array([[0.0, 0.02, 0.04, 5.0, 5.02, np.nan, 5.06, np.nan],
                  [np.nan, 1.0, 1.5, 1.6, 10.0, 10.1, np.nan, np.nan]])
    valid = np.isfinite(t)
    got = _train_duration(t, valid, np.array([[0.02], [0.1]]), reset_gap_s=1.0)
    # a train starts at a row's first pulse, after a gap > 1 s, and after padding (no previous pulse)
    onset = np.array([[0.0, 0.0, 0.0, 5.0, 5.0, np.nan, 5.06, np.nan],
                      [np.nan, 1.0, 1.0, 1.0, 10.0, 10.0, np.nan, np.nan]])
    np.testing.assert_allclose(got, t - onset + np.array([[0.02], [0.1]]), rtol=0, atol=1e-15)
    assert np.array_equal(np.isnan(got), ~valid)

# ----------------------------------------------------------------------------- prediction

def test_predict_shapes_and_summaries(contact):
    el, sc = contact
    fr = cutaneous_activation(sc, np.array([0.01, 0.03, 0.06]), 250e-6)
    d = predict(drive_from(fr, train(rows=3), el))
    assert d.nrs.shape == (3, 50) and d.peak.shape == (3,) and d.mean.shape == (3,)
    assert np.all(np.diff(d.peak) > 0)
    assert np.all((d.nrs >= 0) & (d.nrs <= 10))
    assert np.all(d.mean <= d.peak + 1e-12)
    assert set(d.components) == set(AFFERENT_CLASSES)


def test_batch_rows_are_independent(contact):
    el, sc = contact
    fr = cutaneous_activation(sc, np.array([0.02, 0.05]), 250e-6)
    both = predict(drive_from(fr, train(rows=2), el))
    single = predict(drive_from({k: v[1:] for k, v in fr.items()}, train(rows=1), el))
    assert np.allclose(both.nrs[1], single.nrs[0])


def test_rate_factor_is_the_temporal_summation_power_law():
    """Steady trains with equal per-pulse activation: drive ratio = (f/f0)^q (reference §4.5)."""
    out = {}
    for f in (25.0, 50.0, 100.0):
        t = train(f, 2.0)
        a = np.full((1, 1, t.shape[1]), 0.5)
        d = predict(AfferentDrive(times_s=t, afferent={"adelta": a}, electrode_area_m2=[[P.reference_area_m2]]))
        out[f] = d.components["adelta"][0, -1]
    q = P.rate_exponent
    assert out[100.0] / out[50.0] == pytest.approx(2 ** q, rel=0.03)
    assert out[25.0] / out[50.0] == pytest.approx(0.5 ** q, rel=0.03)


def test_discomfort_builds_up_and_decays_within_the_integration_window():
    t = np.concatenate([np.arange(0, 1, 0.02), 3.0 + np.arange(0, 0.1, 0.02)])[None]
    a = np.full((1, 1, t.shape[1]), 0.3)
    d = predict(AfferentDrive(times_s=t, afferent={"adelta": a}, electrode_area_m2=[[P.reference_area_m2]]))
    nrs = d.nrs[0]
    assert nrs[0] < nrs[10] < nrs[49] + 1e-12  # temporal summation over the first pulses
    assert nrs[50] < nrs[49]  # after a 2 s pause the window has emptied


def test_contraction_and_hotspot_terms_add():
    t = train()
    a = np.full((1, 1, t.shape[1]), 0.1)
    base = AfferentDrive(times_s=t, afferent={"adelta": a}, electrode_area_m2=[[P.reference_area_m2]])
    d0 = predict(base)
    d1 = predict(base, force_fraction=np.full(t.shape, 0.5))
    d2 = predict(base, force_fraction=np.full(t.shape, 0.9))
    d3 = predict(base, hotspot_j_rms_a_per_m2=np.full(t.shape, 40.0))
    assert d0.peak[0] < d1.peak[0] < d2.peak[0]
    assert d3.peak[0] > d0.peak[0]
    assert d1.components["contraction"][0, 0] == pytest.approx(P.contraction_weight * 0.5 ** P.contraction_exponent)


def test_sensitivity_scales_the_drive():
    t = train()
    a = np.full((1, 1, t.shape[1]), 0.2)
    drv = AfferentDrive(times_s=t, afferent={"adelta": a}, electrode_area_m2=[[P.reference_area_m2]])
    u = predict(drv).components["adelta"][0, -1]
    assert predict(drv, person=Person(sensitivity=2.0)).nrs[0, -1] == pytest.approx(
        nrs_from_drive(2.0 * u, P.transfer_exponent))


def test_nan_padded_rows(contact):
    el, sc = contact
    fr = cutaneous_activation(sc, np.array([0.03, 0.03]), 250e-6)
    t = train(rows=2)
    t[1, 25:] = np.nan
    d = predict(drive_from(fr, t, el))
    assert np.all(np.isnan(d.nrs[1, 25:]))
    assert np.allclose(d.nrs[1, :25], d.nrs[0, :25])
    assert np.isfinite(d.mean).all()


def test_duck_typed_recruitment_is_converted(contact):
    el, sc = contact
    fr = cutaneous_activation(sc, np.array([0.03]), 250e-6)
    drv = drive_from(fr, train(), el)
    rec = SimpleNamespace(pulse_times_s=drv.times_s, afferent=drv.afferent, electrode_area_m2=drv.electrode_area_m2,
                          motor_fraction=np.full(drv.times_s.shape, 0.4))
    d = predict(rec)
    assert "contraction" in d.components
    wrapped = SimpleNamespace(to_afferent_drive=lambda: drv)
    assert np.allclose(predict(wrapped).nrs, predict(drv).nrs)


# ----------------------------------------------------------------------------- bad input

def test_bad_inputs_raise_typed_errors():
    t = train()
    ok = np.full((1, 1, t.shape[1]), 0.2)
    with pytest.raises(PhysiologyInputError) as exc:
        AfferentDrive(times_s=t, afferent={"adelta": ok * 6}, electrode_area_m2=[[0.0025]])
    assert exc.value.path == "afferent.adelta"
    with pytest.raises(PhysiologyInputError) as exc:
        AfferentDrive(times_s=t, afferent={"gamma": ok}, electrode_area_m2=[[0.0025]])
    assert exc.value.path == "afferent.gamma"
    with pytest.raises(PhysiologyInputError) as exc:
        AfferentDrive(times_s=t, afferent={"adelta": ok[..., :10]}, electrode_area_m2=[[0.0025]])
    assert exc.value.path == "afferent.adelta"
    with pytest.raises(PhysiologyInputError) as exc:
        AfferentDrive(times_s=t, afferent={"adelta": ok}, electrode_area_m2=[[0.0]])
    assert exc.value.path == "electrode_area_m2"
    with pytest.raises(PhysiologyInputError) as exc:
        predict(SimpleNamespace(afferent={"adelta": ok}))
    assert exc.value.path == "recruitment"
    with pytest.raises(PhysiologyInputError):
        Person(sensitivity=0.0)


def test_bad_activation_arguments(contact):
    _, sc = contact
    with pytest.raises(PhysiologyInputError) as exc:
        cutaneous_activation(sc, -0.01, 250e-6)
    assert exc.value.path == "current_a"
    with pytest.raises(PhysiologyInputError) as exc:
        cutaneous_activation(sc, 0.01, 0.0)
    assert exc.value.path == "pulse_width_s"
    assert math.isfinite(float(cutaneous_activation(sc, 0.01, 1e-3)["c"].sum()))


def test_from_pulses_builds_a_time_series_from_per_pulse_currents(contact):
    """A ramp of pulse currents → per-pulse activation → rising NRS trace."""
    el, sc = contact
    t = np.arange(0.0, 2.0, 0.02)
    current = np.linspace(0.005, 0.05, t.size)
    act = cutaneous_activation(sc, current, 250e-6)  # (P, E)
    drv = AfferentDrive.from_pulses(t, act, [[e.area_m2 for e in el.electrodes]])
    assert drv.afferent["adelta"].shape == (1, 2, t.size)
    d = predict(drv)
    assert np.all(np.diff(d.nrs[0, 5:]) >= -1e-9)
    assert d.peak[0] == pytest.approx(d.nrs[0, -1])


def test_steady_rate_rows_equal_the_end_of_a_long_train(contact):
    """Candidate batches: one pulse per row with a steady rate = the steady state of that train,
    at the reference duration of the partial-integration term (a 3 s reference here, so that the
    leaky pulse count has settled)."""
    el, sc = contact
    fr = cutaneous_activation(sc, np.array([0.02, 0.04]), 250e-6)
    area = [[e.area_m2 for e in el.electrodes]]
    params = DiscomfortParameters.load().replace(reference_duration_s=3.0)
    steady = predict(AfferentDrive(times_s=np.zeros((2, 1)), afferent={k: v[:, :, None] for k, v in fr.items()},
                                   electrode_area_m2=area, steady_rate_hz=[30.0, 80.0]), params=params)
    for row, f in enumerate((30.0, 80.0)):
        long = predict(drive_from({k: v[row:row + 1] for k, v in fr.items()}, train(f, 3.0), el), params=params)
        assert steady.nrs[row, 0] == pytest.approx(long.nrs[0, -1], rel=1e-6)
    # A batch Recruitment (times all zero, interval_s = 1/f) is recognised.
    rec = SimpleNamespace(times_s=np.zeros((2, 1)), afferent={k: v[:, :, None] for k, v in fr.items()},
                          electrode_area_m2=np.broadcast_to(np.asarray(area), (2, 2)), interval_s=np.array([1 / 30, 1 / 80]))
    assert np.allclose(predict(rec).nrs, steady.nrs)


def test_partial_integration_grows_with_train_time_and_restarts_after_an_off_time(contact):
    """Bar-Ilan partial integration: at a constant current the NRS keeps rising over a long burst
    (beyond the leaky count's ~0.1 s), and a second burst after an off-time longer than
    ``train_reset_gap_s`` starts again from the beginning."""
    el, sc = contact
    on = np.arange(0.0, 2.0, 0.02)
    t = np.concatenate([on, on + 3.0])[None, :]
    act = cutaneous_activation(sc, np.full(t.shape[1], 0.025), 250e-6)
    d = predict(AfferentDrive.from_pulses(t[0], act, [[e.area_m2 for e in el.electrodes]]))
    first, second = d.nrs[0, :on.size], d.nrs[0, on.size:]
    assert first[-1] > first[on.size // 2] > first[10]
    np.testing.assert_allclose(second, first, rtol=1e-3)
    flat = predict(AfferentDrive.from_pulses(t[0], act, [[e.area_m2 for e in el.electrodes]]),
                   params=P.replace(partial_integration_slope=0.0))
    # without it only the leaky count (tau 0.1 s, settled to e^-10 after 1 s) changes the level
    assert flat.nrs[0, on.size - 1] == pytest.approx(flat.nrs[0, on.size // 2], rel=1e-4)
