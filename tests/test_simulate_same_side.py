"""Channels on the same site (muscle) and side share one muscle region (emsim._muscle_regions).

The recruitment model puts every channel of a site and side at the same place over the same
units, and the muscle model fires the nested units [0, r] at a pulse recruiting r: two such
channels drive one region, with one fatigue state and one occlusion term Ω. These tests check
that predictions count that region once, and that programs with one channel per muscle and
side are unchanged.
"""

import copy

import numpy as np
import pytest

from emsim._muscle_regions import channel_shares, refractory_interval_s, region_rows
from emsim.body import load_patient
from emsim.errors import ProgramError
from emsim.physiology.fibre_tables import load_table
from emsim.physiology.muscle import load_muscle, simulate
from emsim.physiology.recruitment import recruit
from emsim.program import compile as compile_program, from_dict
from emsim.simulate import _channel_motor_fraction, evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS, channel, stim

SITE = "lumbar_erector_spinae"
PATIENT = load_patient(PATIENTS / "lbp_average.json")


def _program(sides, *, ma=35, mode="simultaneous", offset_s=0.0, duration_s=30, site=SITE, **kw):
    doc = copy.deepcopy(BASE_DOC)
    ids = "ABCD"[:len(sides)]
    doc["channels"] = [channel(c, site, s) for c, s in zip(ids, sides)]
    doc["phases"][0]["duration_s"] = duration_s
    doc["phases"][0]["timing"] = {"mode": mode, "offset_s": offset_s}
    mas = ma if isinstance(ma, (list, tuple)) else [ma] * len(sides)
    doc["phases"][0]["stimulation"] = [stim(c, amplitude={"ma": a}, **kw) for c, a in zip(ids, mas)]
    return from_dict(doc)


@pytest.fixture(scope="module")
def one():
    return evaluate(_program(["left"]), PATIENT)


def test_two_identical_same_side_channels_are_one_channel(one):
    pair = evaluate(_program(["left", "left"]), PATIENT)
    # the same units fire at the same pulses: the region's force is one channel's, not twice it
    np.testing.assert_allclose(pair.total_force_n, one.total_force_n, rtol=1e-12, atol=0)
    for key in ("peak_mvc_pct", "mean_mvc_pct", "effective_contractions", "fti_ns", "fatigue_decline_pct"):
        assert pair.scalars[key] == pytest.approx(one.scalars[key], rel=1e-12), key
    # per channel: half of the force each, the region's capacity and contraction peak
    np.testing.assert_allclose(pair.force_n, np.vstack([one.force_n[0] / 2] * 2), rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pair.capacity, [one.capacity[0]] * 2)
    np.testing.assert_array_equal(pair.channel_peak_mvc_pct, [one.channel_peak_mvc_pct[0]] * 2)
    assert any("same site and side" in n for n in pair.notes)


def test_pulses_closer_than_the_refractory_period_merge(one):
    # B 1 ms after A: the units A fired cannot fire again, so this is the simultaneous pair
    shifted = evaluate(_program(["left", "left"], mode="sequential", offset_s=0.001), PATIENT)
    np.testing.assert_allclose(shifted.total_force_n, one.total_force_n, rtol=1e-12, atol=0)
    assert shifted.scalars["fti_ns"] == pytest.approx(one.scalars["fti_ns"], rel=1e-12)


def test_coincident_pulses_of_unequal_channels_fire_the_larger_set():
    # 20 and 35 mA at the same times: the 35 mA pulse's units include the 20 mA pulse's
    pair = evaluate(_program(["left", "left"], ma=[20, 35]), PATIENT)
    strong = evaluate(_program(["left"], ma=35), PATIENT)
    np.testing.assert_allclose(pair.total_force_n, strong.total_force_n, rtol=1e-12, atol=0)
    # the weaker channel recruits fewer units per pulse, so it carries the smaller share
    on = pair.total_force_n > 0.5 * pair.total_force_n.max()
    assert np.all(pair.force_n[0, on] < pair.force_n[1, on])


def test_a_channel_without_pulses_adds_nothing_to_its_region(one):
    doc = copy.deepcopy(BASE_DOC)
    doc["channels"] = [channel("A"), channel("B")]
    doc["phases"][0]["duration_s"] = 30
    doc["phases"][0]["stimulation"] = [stim("A", amplitude={"ma": 35})]
    pred = evaluate(from_dict(doc), PATIENT)
    np.testing.assert_array_equal(pred.force_n[0], one.force_n[0])
    assert not pred.force_n[1].any() and pred.channel_peak_mvc_pct[1] == 0.0
    np.testing.assert_array_equal(pred.capacity, [one.capacity[0]] * 2)


def test_left_and_right_channels_are_unchanged():
    both = evaluate(_program(["left", "right"], ma=[35, 30]), PATIENT)
    for k, (side, ma) in enumerate((("left", 35), ("right", 30))):
        alone = evaluate(_program([side], ma=ma), PATIENT)
        np.testing.assert_array_equal(both.force_n[k], alone.force_n[0])
        assert both.capacity[k] == alone.capacity[0]
        assert both.channel_peak_mvc_pct[k] == alone.channel_peak_mvc_pct[0]
    np.testing.assert_array_equal(both.total_force_n, both.force_n.sum(axis=0))


def _fractions(program):
    train = compile_program(program, PATIENT)
    rec = recruit(train, SITE, PATIENT)
    rows = _channel_motor_fraction(rec, train, program, SITE)
    return train, [rows[c][0] for c in range(len(program.channels))], \
        [rows[c][1] for c in range(len(program.channels))]


def test_interleaved_same_side_channels_fatigue_like_one_train_at_the_combined_rate():
    # B 10 ms after A at 50 Hz each: the shared units fire at 100 Hz
    prog = _program(["left", "left"], mode="sequential", offset_s=0.01)
    pair = evaluate(prog, PATIENT)
    train, times, fracs = _fractions(prog)
    t = np.concatenate(times)
    order = np.argsort(t, kind="stable")
    union = simulate(t[order], load_muscle(SITE), recruitment=np.concatenate(fracs)[order],
                     t_end=train.duration_s)
    np.testing.assert_allclose(pair.total_force_n, union.force_n[0], rtol=1e-12, atol=1e-12)
    np.testing.assert_array_equal(pair.capacity, [union.capacity[0]] * 2)
    # more pulses on the same units: more fatigue than either channel alone, and not twice the force
    alone = evaluate(_program(["left"]), PATIENT)
    assert pair.capacity[0] < alone.capacity[0]
    assert pair.total_force_n.max() < 1.5 * alone.total_force_n.max()


def test_alternating_same_side_channels_hand_the_force_over():
    pair = evaluate(_program(["left", "left"], mode="alternating", ramp_up_s=0, ramp_down_s=0), PATIENT)
    t = pair.t_s
    np.testing.assert_allclose(pair.force_n.sum(axis=0), pair.total_force_n, rtol=1e-12)
    # A stimulates in [0, 5) s, B in [5, 10) s: each carries the force while it stimulates
    a_on = (t > 1.0) & (t < 4.5)
    b_on = (t > 6.0) & (t < 9.5)
    assert np.all(pair.force_n[0, a_on] == pair.total_force_n[a_on])
    assert np.all(pair.force_n[1, b_on] == pair.total_force_n[b_on])
    assert pair.total_force_n[a_on].min() > 0 and pair.total_force_n[b_on].min() > 0
    # the units never rest: more fatigue than one channel with its rests
    alone = evaluate(_program(["left"], ramp_up_s=0, ramp_down_s=0), PATIENT)
    assert pair.capacity[0] < alone.capacity[0]


@pytest.mark.parametrize("ma", [60, 100])
def test_a_same_side_pair_never_exceeds_the_pool(ma):
    pair = evaluate(_program(["left", "left"], ma=ma, mode="sequential", offset_s=0.01, duration_s=10), PATIENT)
    region_max = load_muscle(SITE).max_force
    assert pair.scalars["motor_recruitment_fraction"] > 0.85  # the pool nearly fully recruited
    # 100 Hz is the reference tetanus of the region's maximum evoked force
    assert pair.scalars["peak_mvc_pct"] <= 100.0
    assert pair.total_force_n.max() <= region_max
    assert pair.mvc_pct.sum(axis=0).max() <= 100.0


def test_shared_occlusion_uses_the_regions_force(one):
    # Ω = 1 − γ + γ·F/F_max of the region: with two identical channels it is one channel's
    # (0.44 of the pool), not that of two rows at 0.44 each; the region fatigues exactly like one
    # channel, as each of the opposite-side regions does
    pair = evaluate(_program(["left", "left"]), PATIENT)
    assert load_muscle(SITE).fatigue.occlusion_gain > 0  # Ω acts in this muscle
    assert pair.capacity[0] == one.capacity[0]
    assert pair.scalars["fatigue_decline_pct"] == pytest.approx(one.scalars["fatigue_decline_pct"], rel=1e-12)


def test_bilateral_alone_is_a_region_and_beside_one_side_a_typed_error():
    alone = evaluate(_program(["bilateral"]), PATIENT)
    assert 0 < alone.scalars["peak_mvc_pct"] <= 100
    two = evaluate(_program(["bilateral", "bilateral"]), PATIENT)
    np.testing.assert_allclose(two.total_force_n, alone.total_force_n, rtol=1e-12)
    with pytest.raises(ProgramError) as info:
        evaluate(_program(["left", "bilateral"]), PATIENT)
    assert info.value.path == "$.channels[0].side" and info.value.value == "left"
    assert "bilateral" in info.value.message


# ------------------------------------------------------------------ the row builder itself

def test_refractory_interval_comes_from_the_motor_recovery_table():
    table = load_table()
    dt = refractory_interval_s()
    assert np.isinf(table.recovery_ratio("motor", 0.999 * dt))
    assert np.isfinite(table.recovery_ratio("motor", dt))
    assert dt in table.pair_interval_s


def test_region_rows_merge_only_pulses_of_different_channels():
    a_t, a_r = np.array([0.0, 0.02, 0.04]), np.array([0.2, 0.3, 0.4])
    b_t, b_r = np.array([0.0005, 0.025, 0.0401]), np.array([0.5, 0.1, 0.1])
    t, r = region_rows([a_t, b_t], [a_r, b_r], 0.002)
    np.testing.assert_array_equal(t, [0.0, 0.02, 0.025, 0.04])
    np.testing.assert_array_equal(r, [0.5, 0.3, 0.1, 0.4])
    # a run chaining one channel's two pulses (A 0 and 3 ms, B 1.5 ms between them) keeps both
    t, r = region_rows([np.array([0.0, 0.003]), np.array([0.0015])], [np.array([0.2, 0.2]), np.array([0.6])],
                       0.002)
    np.testing.assert_array_equal(t, [0.0, 0.003])
    np.testing.assert_array_equal(r, [0.6, 0.2])
    # three channels 1.5 ms apart: the third is 3 ms after the first and fires again
    t, r = region_rows([np.array([0.0]), np.array([0.0015]), np.array([0.003])],
                       [np.array([0.2]), np.array([0.4]), np.array([0.3])], 0.002)
    np.testing.assert_array_equal(t, [0.0, 0.003])
    np.testing.assert_array_equal(r, [0.4, 0.3])
    # one channel: its own row, unchanged (the same arrays)
    t, r = region_rows([a_t], [a_r], 0.002)
    assert t is a_t and r is a_r


def test_channel_shares_sum_to_one_and_hold_through_rests():
    t_out = np.linspace(0, 3, 301)
    a_t = np.arange(0, 1, 0.02)
    b_t = np.arange(0, 1, 0.02) + 0.01
    # a window of 0.235 s before the last pulse (0.99 s) holds 12 pulses of each channel
    shares = channel_shares(t_out, [a_t, b_t], [np.full(a_t.size, 0.3), np.full(b_t.size, 0.1)], 0.235)
    np.testing.assert_allclose(shares.sum(axis=0), 1.0)
    late = t_out > 1.0  # relaxing, then resting: the split of the last stimulation (3 : 1) held
    np.testing.assert_allclose(shares[:, late], np.broadcast_to([[0.75], [0.25]], (2, late.sum())), rtol=1e-12)


def test_a_warm_up_only_channel_adds_nothing_to_the_regions_main_phase_outcomes():
    """The fatigue decline and mean %MVC are main-phase outcomes. A channel that stimulates only in
    the warm-up, beside one that carries the main phase on the same units, must not widen the
    region's main-phase window to the whole session (its 45 mA warm-up contractions made the
    decline 66 % instead of 23 %): the pair is the one channel doing both phases."""
    def doc(channels, warm, main):
        d = copy.deepcopy(BASE_DOC)
        d["channels"] = [channel(c, SITE, "left") for c in channels]
        d["phases"] = [{"name": "w", "kind": "warm_up", "duration_s": 20, "timing": {"mode": "simultaneous"},
                        "stimulation": [stim(warm, amplitude={"ma": 45})]},
                       {"name": "m", "kind": "main", "duration_s": 40, "timing": {"mode": "simultaneous"},
                        "stimulation": [stim(main, amplitude={"ma": 35})]}]
        return from_dict(d)

    pair = evaluate(doc("AB", "A", "B"), PATIENT, trace=False)
    single = evaluate(doc("A", "A", "A"), PATIENT, trace=False)
    for key in ("peak_mvc_pct", "fatigue_decline_pct", "mean_mvc_pct", "effective_contractions"):
        assert pair.scalars[key] == pytest.approx(single.scalars[key], rel=1e-12), key
