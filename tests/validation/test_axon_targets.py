"""Fibre-level validation targets, checked on the shipped Brian2 threshold table.

Targets and sources are those of shared/reference/nerve_recruitment_discomfort.md §1 and §6
(S1–S6). Each test states its tolerance. The motor chronaxie and the sensory/motor ratio are
*fitted* (models/fibres/fibre_classes.json: ``internode_load_ratio``, ``e_internode_mv``), so S1
is a calibration check; the C-fibre chronaxie, the S2 ratios' shape, the biphasic penalty, the
kHz trends and the recovery cycle are predictions of the models.
"""

import numpy as np
import pytest

from emsim.physiology.fibre_tables import load_table, weiss_fit

pytestmark = pytest.mark.validation


@pytest.fixture(scope="module")
def table():
    return load_table()


def mid(t, name, grid):
    """Values at the class's middle tabulated diameter."""
    return grid[name][t.diameters_m[name].size // 2]


def at_pw(t, values, pw_us):
    return values[list(np.round(t.pulse_width_s * 1e6, 6)).index(pw_us)]


def chronaxie(t, name):
    return weiss_fit(t.pulse_width_s, mid(t, name, t.mono))[1]


def test_s1_sensory_to_motor_chronaxie_ratio(table):
    """S1 (Mogyoros et al. 1996, Brain 119:439): τSD motor 459 ± 126 µs, sensory 665 ± 182 µs;
    ratio ≈ 1.45, tolerance 1.2–1.8 (reference §6). Motor chronaxie within ±1 SD."""
    motor, sensory = chronaxie(table, "motor"), chronaxie(table, "abeta")
    assert 333e-6 <= motor <= 585e-6
    assert 1.2 <= sensory / motor <= 1.8


def test_s2_motor_strength_duration_ratios(table):
    """S2 (computed from S1 with the Weiss law): I(200 µs)/I(1000 µs) = 2.26, range 1.9–2.7;
    I(50 µs)/I(300 µs) = 4.0, range 3.45–4.4 (τSD ± 1 SD)."""
    e = mid(table, "motor", table.mono)
    assert 1.9 <= at_pw(table, e, 200) / at_pw(table, e, 1000) <= 2.7
    assert 3.45 <= at_pw(table, e, 50) / at_pw(table, e, 300) <= 4.4


def test_c_fibre_chronaxie_is_classical(table):
    """Schneider et al. 2023 (J Pain) quote the 'classical' C-fibre chronaxie with rectangular
    pulses as ~2 ms; tolerance 1–4 ms. Prediction of the HH cable (not fitted)."""
    assert 1e-3 <= chronaxie(table, "c") <= 4e-3


@pytest.mark.xfail(strict=True, reason="Guillen 2025's sensory MRG (double cable, 3-D forearm FEM) gives "
                   "232 us for Adelta; emsim's node-only Adelta inherits the sensory resting potential fitted "
                   "to Mogyoros (Abeta) and gives 656 us (middle diameter 2.24 um). The resting potential "
                   "alone cannot reach 232 us: internodal rest -74.7/-80/-85/-88/-89/-89.5 mV gives "
                   "656/460/364/329/320/316 us (saturating at the leak reversal, -90 mV); the chronaxie is set "
                   "by the lumped paranodal load (capacitance ratio 14, leak ratio 20) fitted for motor axons. "
                   "The double cables pass it at 2.24 um (MRG 2002 319 us, Gaines 2018 sensory 308 us; "
                   "tests/physiology/test_axon_mrg.py) but the shipped Adelta table stays on the node cable: on "
                   "either double cable it breaks the discomfort model's Ward & Robertson 1998 check (pain/motor "
                   "ratio must rise from 1 to 10 kHz; MRG 1.55 -> 1.13). Cause: the node cable's lumped nodal "
                   "capacitance makes it a strong low-pass filter, so its 10 kHz / 1 kHz burst-threshold ratio "
                   "(10 ms bursts) is 7.1 (motor) and 8.0 (Adelta), the double cable's only 4.6 (Adelta MRG), 4.4 "
                   "(Adelta Gaines sensory), 4.8 (motor MRG), 3.7 (motor Gaines); Adelta on a double cable against "
                   "motor on the node cable loses ~40 % of the pain threshold at 10 kHz relative to motor. With "
                   "both on Gaines's variants the ratio would rise (4.4/3.7), but Gaines's motor chronaxie "
                   "(165 us at 4.58 um in a uniform field) fails S1/S2")
def test_s3_adelta_chronaxie_guillen(table):
    """S3 (Guillen et al. 2025, Front Pain Res 6:1526277): Aδ MRG chronaxie 232 µs; ±40 %."""
    assert 140e-6 <= chronaxie(table, "adelta") <= 325e-6


def test_long_chronaxie_fibres_gain_most_from_wide_pulses(table):
    """D3 (reference §6, computed from the Weiss law): the C/motor threshold ratio falls as the
    pulse widens (4.0 at 50 µs → 2.1 at 1000 µs with c_C = 2 ms); here: it must fall by ≥ 1.5×."""
    c = mid(table, "c", table.mono) / mid(table, "motor", table.mono)
    assert at_pw(table, c, 50) / at_pw(table, c, 1000) >= 1.5


def test_biphasic_penalty_and_interphase_gap(table):
    """§1.1 (van den Honert & Mortimer 1979 [unverified recollection in the reference]): an
    immediately reversed phase raises the threshold at short widths; a 50–100 µs gap removes most
    of that penalty; at 1 ms the penalty is small. Tolerances: penalty at 50 µs > 1.2×, more than
    half of it gone at a 100 µs gap, < 1.1× at 1000 µs. All myelinated classes."""
    gaps = list(np.round(table.gaps_s * 1e6, 6))
    for name in ("motor", "abeta", "adelta"):
        mono, sym = mid(table, name, table.mono), mid(table, name, table.sym)
        pen0 = at_pw(table, sym[gaps.index(0)], 50) / at_pw(table, mono, 50)
        pen100 = at_pw(table, sym[gaps.index(100)], 50) / at_pw(table, mono, 50)
        assert pen0 > 1.2, name
        assert pen100 - 1 < 0.5 * (pen0 - 1), name
        assert at_pw(table, sym[gaps.index(0)], 1000) / at_pw(table, mono, 1000) < 1.1, name


def test_khz_threshold_rises_with_carrier_frequency(table):
    """§1.1 first-order model (I_th ∝ √(1+(2πfτ)²)) and Ward & Robertson 1998 (thresholds rise
    at high carrier frequencies): at every burst duration the sine-amplitude threshold rises
    monotonically with carrier frequency, by ≥ 1.5× from 2.5 to 10 kHz."""
    f = list(table.carrier_hz)
    for name in table.classes:
        k = mid(table, name, table.khz)
        assert np.all(np.diff(k, axis=0) > 0), name
        assert np.all(k[f.index(10000)] / k[f.index(2500)] >= 1.5), name


@pytest.mark.xfail(strict=True, reason="no cable model here has a utilization time at body temperature, with or "
                   "without the burst's onset advantage (benchmarks/khz_onset_summation.py, session 9). emsim's burst "
                   "is a sine from phase 0, whose unbalanced first half-cycle sets the threshold: 10 ms / 1 ms at "
                   "2.5 kHz is 1.000 (node cable motor 4.58 um), 1.009 (node cable Abeta 8.49 um), 1.000 (MRG 2002 "
                   "motor and Abeta, Gaines 2018 sensory and motor). Removing that advantage (cosine start, or the "
                   "first half-cycle at half amplitude: the charge then swings symmetrically about zero, as a series "
                   "capacitor or a capacitive skin under voltage drive tends to make it) raises every threshold "
                   "(node cable motor 68.4 -> 79.8 V/m) and leaves a summation of 1.7 % (node cable motor), 4.2 % "
                   "(Abeta), 5.8 % (MRG motor, the only one still falling at 4-10 ms), 1.7 % (MRG Abeta), 0.9 % "
                   "(Gaines sensory Abeta); at 10 kHz 2.5/3.4/4.2/3.4 %; a 50 Hz train of 5 bursts gives the single "
                   "burst's thresholds (node cable and MRG motor). Summation grows as gating slows on cooling "
                   "(Bromm: Q10 ~2): cosine start, node cable motor 0.983/0.918/0.842 and Abeta 0.958/0.857/0.760 at "
                   "37/27/20 C (flat from 2-4 ms); Frankenhaeuser-Huxley node under injected current 1.000/0.983/0.793 "
                   "at 37/20/6 C -- 20 % only far below skin temperature, with plateaus at 2-10 ms and no rise "
                   "after them. Ward & Chuen 2009 (Part II, 20 Hz bursts) found utilization times of 20/30/>50 ms "
                   "against 7/>10/>=20 ms at 50 Hz: they scale with the burst period, which a membrane time constant "
                   "cannot do. Missing: an integration over the burst train (perceptual, or repetitive firing near "
                   "threshold), not a cable property. The population-level check at Ward's level (train thresholds "
                   "of first sensation, motor response and pain tolerance vs burst duration at 50 and 20 Hz bursts) is "
                   "tests/validation/test_discomfort_targets.py::test_ward_thresholds_fall_with_burst_duration_to_a_"
                   "utilization_time_that_scales_with_the_period (strict xfail; session 9b)")
def test_s5_utilization_time(table):
    """S5 (Ward & Lucas-Toumbourou 2007): thresholds fall with burst duration up to ≈ 7 ms
    (sensory) and > 10 ms (motor). Tolerance: at 2.5 kHz, the 10 ms threshold is ≥ 20 % below the
    1 ms one for Aβ and motor."""
    f, b = list(table.carrier_hz), list(np.round(table.burst_s * 1e3, 6))
    for name in ("abeta", "motor"):
        k = mid(table, name, table.khz)[f.index(2500)]
        assert k[b.index(10)] <= 0.8 * k[b.index(1)], name


def test_absolute_refractoriness(table):
    """Recovery cycle of myelinated axons: at 0.5 ms after an action potential a second one
    needs ≥ 2× the single-pulse current or cannot be evoked at all (human ARP ≈ 0.5–1 ms at
    37 °C [textbook]); by 10 ms the threshold is back within 25 %. Motor and Aβ."""
    iv = list(np.round(table.pair_interval_s * 1e3, 6))
    for name in ("motor", "abeta"):
        r = table.pair_ratio[name]
        assert r[iv.index(0.5)] >= 2.0, name
        assert r[iv.index(10)] <= 1.25, name


@pytest.mark.xfail(strict=True, reason="the lumped paranodal capacitance (fitted for tau_SD) slows recovery: "
                   "motor 1.12x and Abeta 1.23x at 3 ms, no supernormal period (MRG's double cable has one). "
                   "Measured on the motor terminal (4.6 um), ratio at 3/5/7 ms for lumped (leak, capacitance) "
                   "ratios: (20, 14) 1.12/1.07/1.06, chronaxie 460 us; (4, 2) 0.93/0.92/1.08 -- supernormal, "
                   "then late subnormal, MRG's shape -- but chronaxie 923 us; (8, 5) chronaxie 606 us; (8, 14) "
                   "1.26/1.12/1.12, 994 us; (4, 8) 1.23/1.04/1.11, 1477 us. No lumped pair gives both the human "
                   "tau_SD and supernormality. The MRG 2002 double cable (model='mrg') reproduces the shape -- "
                   "motor 4.58 um: 19.6/8.2/1.44/0.85/0.67/0.63/0.70/0.76/0.85/0.94/1.03/1.08 at "
                   "0.5/0.75/1/1.5/2/3/4/5/7/10/15/20 ms (supernormal from 1.5 ms, deepest -37 % at 3 ms, late "
                   "subnormal from 15 ms; tests/physiology/test_axon_mrg.py) -- but the shipped Abeta table "
                   "cannot move to a double cable without failing S1: Abeta chronaxie (8.49 um) MRG 368 us, "
                   "Gaines 2018 sensory 319 us, against motor (4.58 um) node cable 460 / MRG 367 / Gaines motor 165 us "
                   "(sensory/motor 0.69 / 0.87 / 1.93, the last with the motor chronaxie outside 333-585 us; S1 needs "
                   "1.2-1.8)")
def test_relative_refractory_and_supernormal_period(table):
    """MRG 2002 was built to reproduce the human recovery cycle: relative refractoriness over by
    ≈ 3 ms, then a supernormal period (threshold below single) at ≈ 3–10 ms. Tolerance: ratio
    ≤ 1.1 at 3 ms and < 1 at some interval of 3–10 ms. Motor and Aβ."""
    iv = list(np.round(table.pair_interval_s * 1e3, 6))
    for name in ("motor", "abeta"):
        r = table.pair_ratio[name]
        assert r[iv.index(3)] <= 1.1, name
        assert min(r[iv.index(t)] for t in iv if 3 <= t <= 10) < 1.0, name


def test_high_frequency_following(table):
    """Myelinated axons follow trains up to a few hundred Hz and fail above (refractory period
    ≈ 1–2 ms). Tolerance at 1.5× single threshold, 10 pulses: every pulse followed at ≤ 100 Hz,
    fewer than all at 1000 Hz. All classes (C fibres: ≤ 100 Hz followed too)."""
    rates = list(table.follow_rate_hz)
    for name in table.classes:
        f = table.follow_fraction[name]
        assert f[rates.index(50)] == 1.0 and f[rates.index(100)] == 1.0, name
        assert f[rates.index(1000)] < 1.0, name
