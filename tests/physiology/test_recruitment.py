"""Fast recruitment (emsim.physiology.recruitment): batch and train paths, bad input."""

import math

import numpy as np
import pytest

from emsim.physiology import field as fld
from emsim.physiology import recruitment as rc
from emsim.physiology.errors import PhysiologyInputError
from emsim.program import compile, from_dict
from emsim.program.model import Channel
from emsim.testing.documents import BASE_DOC

SITE = "lumbar_erector_spinae"


def channel(w=5.0, l=9.0, spacing=3.0, side="left", cid="A"):
    return Channel(id=cid, site=SITE, side=side, spacing_cm=spacing, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": w, "length_cm": l},) * 2)


@pytest.fixture(scope="module")
def sweep():
    amps = np.linspace(2, 120, 60)
    s = rc.StimulusSet.from_arrays(amps, 300.0, 40.0, channels=channel())
    return amps, rc.recruit(s, SITE)


def test_motor_and_afferent_fractions_rise_with_amplitude(sweep):
    amps, r = sweep
    assert r.motor_fraction.shape == (amps.size, 1)
    assert np.all(np.diff(r.motor_fraction_above[:, 0]) >= 0)
    assert r.motor_fraction_above[0, 0] == 0.0 and r.motor_fraction_above[-1, 0] > 0.5
    for name in ("abeta", "adelta", "c"):
        f = r.afferent_fraction[name]
        assert f.shape == (amps.size, 2)
        assert np.all(np.diff(f, axis=0) >= 0)


def test_unit_thresholds_explain_the_fractions(sweep):
    amps, r = sweep
    for row in (10, 30, 50):
        mask = r.recruited_units(row)
        assert mask.mean() == pytest.approx(r.motor_fraction_above[row, 0])
        thr = r.unit_threshold_for_row(row)
        assert np.all(thr[mask] <= r.amplitude_a[row]) and np.all(thr[~mask] > r.amplitude_a[row])


def test_recruitment_order_follows_distance_not_diameter(sweep):
    """Spatially fixed, non-selective order (Gregory & Bickel 2005): thresholds track the field
    at the terminal (its distance to the electrodes) more than the fibre diameter."""
    _, r = sweep
    thr = r.unit_threshold_a[0]
    rank = lambda a: np.argsort(np.argsort(a))  # noqa: E731
    rho_field = np.corrcoef(rank(thr), rank(-r.unit_field_v_per_m))[0, 1]
    rho_diam = np.corrcoef(rank(thr), rank(-r.unit_diameter_m))[0, 1]
    rho_depth = np.corrcoef(rank(thr), rank(r.unit_position_m[:, 2]))[0, 1]
    assert rho_field > 0.8 and rho_field > abs(rho_diam)
    assert rho_depth > 0.3  # deeper terminals have higher thresholds


def test_wider_pulses_recruit_more_at_equal_current():
    s = rc.StimulusSet.from_arrays(40.0, [50, 100, 200, 400, 1000], 40.0, channels=channel(), shape="monophasic",
                                   secondary_amplitude_ratio=0.01)
    r = rc.recruit(s, SITE)
    assert np.all(np.diff(r.motor_fraction_above[:, 0]) >= 0)
    assert r.motor_fraction_above[-1, 0] > r.motor_fraction_above[0, 0]


def test_high_rates_lose_units_to_refractoriness():
    s = rc.StimulusSet.from_arrays(60.0, 200.0, [20.0, 1000.0], channels=channel())
    r = rc.recruit(s, SITE)
    above, eff = r.motor_fraction_above[:, 0], r.motor_fraction[:, 0]
    assert above[0] == pytest.approx(above[1])
    assert eff[0] == pytest.approx(above[0], rel=0.1)
    assert eff[1] < eff[0] and eff[1] < above[1]


def test_following_fraction_limits():
    thr = np.linspace(1, 2, 101)
    amps = np.array([1.5, 1.5])
    iv = np.array([math.inf, 0.01])
    f, a = rc._following_fraction(thr, amps, iv, lambda dt: np.ones_like(dt))
    assert f[0] == a[0] and f[1] == pytest.approx(a[1])
    f, a = rc._following_fraction(thr, amps, iv, lambda dt: np.full_like(dt, np.inf))
    assert f[0] == a[0] and f[1] == pytest.approx(a[1] / (rc.N_FOLLOW_TERMS + 1))


def test_same_seed_same_units_other_seed_other_units():
    s = rc.StimulusSet.from_arrays(30.0, 300.0, 40.0, channels=channel())
    a = rc.recruit(s, SITE, seed=3).unit_threshold_a
    b = rc.recruit(s, SITE, seed=3).unit_threshold_a
    c = rc.recruit(s, SITE, seed=4).unit_threshold_a
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_thicker_fat_raises_motor_thresholds():
    s = rc.StimulusSet.from_arrays(30.0, 300.0, 40.0, channels=channel())
    med = []
    for fat in (0.005, 0.02):
        lay = fld.Layers.standard(skin_m=0.002, fat_m=fat, muscle_m=0.035)
        med.append(np.median(rc.recruit(s, SITE, layers=lay).unit_threshold_a))
    assert med[1] > 1.3 * med[0]


def test_pulse_train_rows_follow_the_compiled_pulses():
    doc = {**BASE_DOC, "phases": [{**BASE_DOC["phases"][0], "duration_s": 10}]}
    train = compile(from_dict(doc))
    r = rc.recruit(train, SITE)
    assert r.n_rows == train.n_pulses
    np.testing.assert_array_equal(r.amplitude_a, train.amplitude_a)
    assert math.isinf(r.interval_s[0])
    # the ramp (1 s at 50 Hz) raises the recruited fraction pulse by pulse
    ramp = r.motor_fraction_above[:50, 0]
    assert np.all(np.diff(ramp) >= 0) and ramp[-1] > ramp[0]
    assert r.muscles == ("erector_spinae:left",)
    assert len(r.fields) == 1 and r.electrodes == (("A", 0), ("A", 1))


def test_two_sides_are_two_pools():
    chans = [channel(side="left", cid="L"), channel(side="right", cid="R")]
    s = rc.StimulusSet.from_arrays([80.0, 80.0], 300.0, 40.0, channels=chans, channel_index=[0, 1])
    r = rc.recruit(s, SITE)
    assert r.muscles == ("erector_spinae:left", "erector_spinae:right")
    assert r.motor_fraction_above[0, 0] > 0 and r.motor_fraction_above[0, 1] == 0
    assert r.motor_fraction_above[1, 1] > 0 and r.motor_fraction_above[1, 0] == 0
    assert np.all(r.afferent_fraction["abeta"][0, 2:] == 0)


@pytest.mark.parametrize("kw, path", [
    ({"amplitude_ma": -1.0}, "amplitude_ma[0]"),
    ({"amplitude_ma": 10.0, "frequency_hz": 0.0}, "frequency_hz[0]"),
    ({"amplitude_ma": 10.0, "shape": "triangle"}, "shape[0]"),
    ({"amplitude_ma": 10.0, "pulse_width_us": 5000.0}, "pulse_width_us[0]"),
    ({"amplitude_ma": 10.0, "channel_index": 3}, "channel_index"),
])
def test_bad_stimuli_are_typed_errors_naming_the_field(kw, path):
    with pytest.raises(PhysiologyInputError) as e:
        rc.StimulusSet.from_arrays(channels=channel(), **kw)
    assert e.value.path == path


def test_unknown_site_and_wrong_input_type():
    s = rc.StimulusSet.from_arrays(10.0, channels=channel())
    with pytest.raises(PhysiologyInputError) as e:
        rc.recruit(s, "elbow")
    assert e.value.path == "site"
    with pytest.raises(PhysiologyInputError) as e:
        rc.recruit({"amplitude_ma": 10}, SITE)
    assert e.value.path == "train_or_params"


@pytest.mark.parametrize("waveform", [
    {"shape": "khz_burst", "carrier_hz": 2500, "burst_duration_ms": 4},
    {"shape": "asymmetric_biphasic", "pulse_width_us": 200, "interphase_gap_us": 50, "secondary_amplitude_ratio": 0.25},
    {"shape": "monophasic", "pulse_width_us": 300, "balance": {"delay_us": 100, "width_us": 3000, "amplitude_ratio": 0.1}},
])
def test_every_waveform_shape_goes_through_the_train_path(waveform):
    st = {**BASE_DOC["phases"][0]["stimulation"][0], "waveform": waveform}
    doc = {**BASE_DOC, "phases": [{**BASE_DOC["phases"][0], "duration_s": 5, "stimulation": [st]}]}
    r = rc.recruit(compile(from_dict(doc)), SITE)
    for f in [r.motor_fraction, *r.afferent_fraction.values()]:
        assert np.all((f >= 0) & (f <= 1))
    assert np.all(np.isfinite(r.unit_threshold_a)) and np.all(r.unit_threshold_a > 0)
    drive = r.times_s, r.afferent, r.electrode_area_m2, r.force_fraction  # discomfort's input fields
    assert drive[0].shape == (1, r.n_rows) and drive[1]["abeta"].shape == (1, 2, r.n_rows)
    assert np.all(np.diff(drive[0][0]) >= 0)


def test_discomfort_model_accepts_a_recruitment():
    """Interface contract with emsim.physiology.discomfort (duck-typed AfferentDrive fields)."""
    dc = pytest.importorskip("emsim.physiology.discomfort")
    doc = {**BASE_DOC, "phases": [{**BASE_DOC["phases"][0], "duration_s": 10}]}
    r = rc.recruit(compile(from_dict(doc)), SITE)
    d = dc.predict(r)
    assert np.all(np.isfinite(d.peak)) and np.all((d.peak >= 0) & (d.peak <= 10))


def test_motor_point_offset_defaults_to_the_site_data_and_moving_away_raises_thresholds():
    s = rc.StimulusSet.from_arrays(30.0, 300.0, 40.0, channels=channel())
    along, across = rc.motor_point_offset(SITE)
    default = rc.recruit(s, SITE).unit_threshold_a
    explicit = rc.recruit(s, SITE, motor_point_offset_m=(along, across)).unit_threshold_a
    np.testing.assert_array_equal(default, explicit)
    # the same units, their territories 4 cm across the fibres from the active electrode
    away = rc.recruit(s, SITE, motor_point_offset_m=(along, across + 0.04)).unit_threshold_a
    assert np.median(away) > 1.1 * np.median(default)
    # a scalar is the along-fibre offset
    np.testing.assert_array_equal(rc.recruit(s, SITE, motor_point_offset_m=0.01).unit_threshold_a,
                                  rc.recruit(s, SITE, motor_point_offset_m=(0.01, 0.0)).unit_threshold_a)


def test_motor_point_offsets_exist_for_every_pool_site_with_an_evidence_level():
    from emsim._data import load_data
    points = load_data(rc.MOTOR_POINTS_FILE)["sites"]
    for site in load_data(rc.POOLS_FILE)["sites"]:
        assert site in points, site
        assert points[site]["evidence"] in ("measured", "fitted", "extrapolated", "assumed")
        assert points[site]["source"] in load_data(rc.MOTOR_POINTS_FILE)["sources"]


@pytest.mark.parametrize("bad", [math.nan, (0.0, math.inf), (1.0, 2.0, 3.0), "near", True])
def test_bad_motor_point_offset_is_a_typed_error(bad):
    s = rc.StimulusSet.from_arrays(10.0, channels=channel())
    with pytest.raises(PhysiologyInputError) as e:
        rc.recruit(s, SITE, motor_point_offset_m=bad)
    assert e.value.path == "motor_point_offset_m"


# ----------------------------------------------------------------------------- passing parent axons

def _passing_pair():
    s = rc.StimulusSet.from_arrays(30.0, 300.0, 40.0, channels=channel())
    return rc.recruit(s, SITE), rc.recruit(s, SITE, excitation="terminal_or_passing")


def test_passing_axons_are_off_by_default_and_only_ever_lower_a_threshold():
    term, both = _passing_pair()
    assert term.unit_passing_field_v_per_m is None
    p = both.unit_passing_field_v_per_m
    assert p.shape == term.unit_field_v_per_m.shape and np.all(p > 0)
    # the same units (same seed, separate generator for the parent axons)
    np.testing.assert_array_equal(both.unit_field_v_per_m, term.unit_field_v_per_m)
    assert np.all(both.unit_threshold_a <= term.unit_threshold_a)
    # a unit's threshold changes exactly where its parent axon is driven harder than its terminal
    wins = p > term.unit_field_v_per_m
    changed = both.unit_threshold_a[0] < term.unit_threshold_a[0]
    np.testing.assert_array_equal(changed, wins)


def test_passing_drive_is_the_second_difference_over_the_parent_node_spacing():
    """In a field whose potential is a parabola along x, φ = a·x², every node sees the same
    second difference 2a·Δx_p²; the terminal-equivalent drive is that over the terminal's Δx."""
    from emsim.physiology.fibre_tables import mrg_geometry

    class Parabola:
        half_width_m = 0.2

        @staticmethod
        def potential(x, y, z):
            return 3.0 * np.asarray(x) ** 2

    e = fld.Electrodes.from_channel(channel())
    defaults, _ = rc._pool_spec(SITE)
    centres = np.array([[0.0, 0.01], [0.01, 0.02]])
    d_t = np.array([5e-6, 4e-6])
    got = rc._passing_drive(Parabola(), e, centres, d_t, defaults, np.random.default_rng(0))
    spec = defaults["parent_axon_diameter_um"]
    d_p = np.clip(np.random.default_rng(0).normal(spec["mean"], spec["sd"], 2), spec["min"], spec["max"]) * 1e-6
    want = 2 * 3.0 * mrg_geometry(d_p)[2] ** 2 / mrg_geometry(d_t)[2]
    np.testing.assert_allclose(got, want, rtol=1e-9)


def test_unknown_excitation_is_a_typed_error():
    s = rc.StimulusSet.from_arrays(10.0, channels=channel())
    with pytest.raises(PhysiologyInputError) as e:
        rc.recruit(s, SITE, excitation="passing")
    assert e.value.path == "excitation"
