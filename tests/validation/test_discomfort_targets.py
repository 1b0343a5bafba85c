"""Discomfort model: calibration points and the published comparisons it does (or does not) reproduce.

Sources: ``shared/reference/nerve_recruitment_discomfort.md`` §1.2, §4.1–4.5, §6 D1–D3, S6, and the
abstracts cited per test. The model (emsim.physiology.discomfort) is a synthesis (§4.5), so the tests
fall in two groups:

* **Calibration points** (fitted; ``models/discomfort/discomfort.json`` → ``calibration``): they
  must hold to the stated tolerance, but reproducing them is not evidence.
* **Reproduced comparisons** (not fitted): directions or ratios from published studies, with the
  model set up as stated in each test. Where the model fails a published result the test is a
  strict xfail with the reason.

Motor recruitment is not part of this module; "equal contraction" comparisons use a stand-in that
is stated in each test: the peak field along the fibres per ampere at the motor target (from
emsim.physiology.field) times the Weiss factor of human motor axons (τSD = 459 µs, Mogyoros 1996),
i.e. equal ``E·I/(1 + c_motor/PW)``. When emsim.physiology.recruitment exists these comparisons
should be rerun through it.
"""

import math
from types import SimpleNamespace

import numpy as np
import pytest

from emsim.physiology.discomfort import (
    AfferentDrive, DiscomfortParameters, Person, cutaneous_activation, predict,
)
from emsim.physiology import cutaneous as cut
from emsim.physiology.field import Electrode, Electrodes, Gel, Layers, solve

pytestmark = pytest.mark.validation

P = DiscomfortParameters.load()
C_MOTOR = 459e-6  # Mogyoros 1996, human median motor axons
X = np.linspace(-0.15, 0.15, 601)

_sol = {}


def solution(layers, el, gel=None):
    key = (layers, el, gel)
    if key not in _sol:
        _sol[key] = solve(layers, el, gel=gel)
    return _sol[key]


def steady_nrs(sc, el, current, pw, f=50.0, dur=1.0, person=None):
    """NRS at the end of a steady train (cutaneous drive only)."""
    current = np.atleast_1d(np.asarray(current, dtype=float))
    fr = cutaneous_activation(sc, current, pw, person=person)
    t = np.arange(0.0, dur, 1.0 / f)
    aff = {k: np.repeat(v[:, :, None], t.size, axis=2) for k, v in fr.items()}
    d = predict(AfferentDrive(times_s=np.broadcast_to(t, (current.size, t.size)), afferent=aff,
                              electrode_area_m2=[[e.area_m2 for e in el.electrodes]]))
    return d.nrs[:, -1], fr


def motor_field(sol, layers, depth, y=0.0):
    """Peak field along the fibres (V/m per A) at ``depth`` into muscle, ``y`` across the fibres."""
    return float(np.abs(sol.electric_field(X, y, layers.top_of("muscle") + depth)[..., 0]).max())


# ----------------------------------------------------------------------------- calibration points

LUMBAR = Layers.for_site("lumbar_erector_spinae")
REF_EL = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.04)
CURRENTS = np.geomspace(0.5e-3, 0.3, 400)


@pytest.fixture(scope="module")
def reference_curve():
    sc = solution(LUMBAR, REF_EL).skin_current_density()
    nrs, fr = steady_nrs(sc, REF_EL, CURRENTS, 250e-6)
    abeta = fr["abeta"].mean(-1)
    sens = math.exp(np.interp(0.05, abeta, np.log(CURRENTS)))
    return sc, nrs, fr, sens


def crossing(nrs, level):
    return math.exp(np.interp(level, nrs, np.log(CURRENTS)))


def test_calibration_thresholds(reference_curve):
    """Calibration (assumed anchor, models/discomfort/discomfort.json): 5 x 5 cm pair, lumbar,
    250 µs, 50 Hz: sensation threshold (5 % Aβ) 8 mA, NRS 3 at 3.5 x, NRS 8 at 7 x. Tolerance 3 %."""
    _, nrs, _, sens = reference_curve
    assert sens == pytest.approx(0.008, rel=0.03)
    assert crossing(nrs, 3.0) / sens == pytest.approx(3.5, rel=0.03)
    assert crossing(nrs, 8.0) / sens == pytest.approx(7.0, rel=0.03)


def test_calibration_unpleasantness_exponent(reference_curve):
    """Calibration (D2; "Scales of unpleasantness of electrical stimulation", abstract): exponent
    1.81 for 50 Hz at 2–10 x sensation threshold. Log-log slope of NRS vs current, tolerance ±0.1."""
    _, nrs, _, sens = reference_curve
    m = (CURRENTS >= 2 * sens) & (CURRENTS <= 10 * sens)
    slope = np.polyfit(np.log(CURRENTS[m]), np.log(nrs[m]), 1)[0]
    assert slope == pytest.approx(1.81, abs=0.1)


# ----------------------------------------------------------------------------- reproduced comparisons

def test_steep_exponent_over_a_wide_range_from_threshold(reference_curve):
    """D2 / §4.2 (Stevens: electric shock exponent 3.5; "a steep exponent (≈2–3.5) fits a wide range
    of intensities"): slope of NRS vs current from 1.2 to 4 x sensation threshold within [2, 3.5].
    Not fitted."""
    _, nrs, _, sens = reference_curve
    m = (CURRENTS >= 1.2 * sens) & (CURRENTS <= 4 * sens)
    slope = np.polyfit(np.log(CURRENTS[m]), np.log(nrs[m]), 1)[0]
    assert 2.0 <= slope <= 3.5


def test_ordering_sensory_pain_tolerance_at_every_pulse_width():
    """S4 (Alon 1983; 2025 preprint): sensory < pain thresholds at every pulse width 50–1000 µs,
    and the sensation threshold falls with pulse width (Weiss law). Not fitted (only 250 µs was)."""
    sc = solution(LUMBAR, REF_EL).skin_current_density()
    sens_prev = math.inf
    for pw in (50e-6, 100e-6, 200e-6, 500e-6, 1000e-6):
        nrs, fr = steady_nrs(sc, REF_EL, CURRENTS, pw)
        sens = math.exp(np.interp(0.05, fr["abeta"].mean(-1), np.log(CURRENTS)))
        pain = crossing(nrs, 3.0)
        assert sens < pain < crossing(nrs, 8.0)
        assert sens < sens_prev
        sens_prev = sens


@pytest.mark.parametrize("level", [1.0, 2.0, 4.0])
def test_equal_sensation_follows_i2t(level):
    """§4.1 (J-STAGE jsmbe1963 15(5):315, triceps): for pulse widths below 1 ms and inter-pulse
    intervals of 50–100 ms, equal sensation when I²·T is constant, i.e. I ∝ T^−0.5. Model:
    equal-NRS contours (NRS 1, 2, 4) for 15 Hz trains, 50–1000 µs, reference pair; log-log
    slope of current against pulse width −0.5 ± 0.1 (±0.1 ≈ ±25 % in current over the 20-fold
    width range; the source states the law without an interval). Not fitted."""
    sc = solution(LUMBAR, REF_EL).skin_current_density()
    pws = np.array([50e-6, 100e-6, 200e-6, 400e-6, 700e-6, 1000e-6])
    cur = []
    for pw in pws:
        nrs, _ = steady_nrs(sc, REF_EL, CURRENTS, pw, f=15.0, dur=2.0)
        cur.append(math.exp(np.interp(level, nrs, np.log(CURRENTS))))
    assert np.polyfit(np.log(pws), np.log(cur), 1)[0] == pytest.approx(-0.5, abs=0.1)


def test_d3_c_to_motor_threshold_ratio_falls_with_pulse_width():
    """D3 [computed] (Weiss law, equal rheobases): C/motor threshold ratio 4.0 at 50 µs → 2.1 at
    1000 µs with c_C = 2 ms and c_motor = 0.459 ms. Tolerance 2 %."""
    c = P.classes["c"].chronaxie_s
    assert P.classes["c"].rheobase_j_a_per_m2 == pytest.approx(P.classes["adelta"].rheobase_j_a_per_m2)
    ratio = lambda pw: (1 + c / pw) / (1 + C_MOTOR / pw)  # noqa: E731
    assert ratio(50e-6) == pytest.approx(4.0, abs=0.05)
    assert ratio(1000e-6) == pytest.approx(2.1, abs=0.05)


def test_s6_one_ms_rectangles_barely_engage_c_fibres_at_motor_level():
    """S6 (Schneider 2023): rectangular 1 ms pulses barely engage C fibres at motor-level currents.
    Motor level: the reference pair at the current giving the motor drive of 30 mA at 250 µs
    (stand-in, see module docstring). C fraction < 1 %, Aβ well above."""
    sc = solution(LUMBAR, REF_EL).skin_current_density()
    current = 0.030 * (1 + C_MOTOR / 1e-3) / (1 + C_MOTOR / 250e-6)
    fr = cutaneous_activation(sc, current, 1e-3)
    assert fr["c"].max() < 0.01
    assert fr["abeta"].min() > 0.3


def test_electrode_size_at_visible_contraction():
    """BMC Sports Sci Med Rehabil 2022;14:11: 5 x 5 and 5 x 9 cm electrodes were more comfortable
    than 2 x 2 cm and needed less current density for a visible contraction. Model: lumbar layers,
    pairs 4 cm apart along the fibres, equal motor drive 10 mm into muscle (stand-in), 250 µs 50 Hz."""
    ref_drive = motor_field(solution(LUMBAR, REF_EL, Gel.uniform()), LUMBAR, 0.01) * 0.030
    res = {}
    for length, width in ((0.02, 0.02), (0.05, 0.05), (0.09, 0.05)):
        el = Electrodes.pair("rectangle", length_m=length, width_m=width, spacing_m=0.04)
        sol = solution(LUMBAR, el)
        current = ref_drive / motor_field(sol, LUMBAR, 0.01)
        nrs, _ = steady_nrs(sol.skin_current_density(), el, current, 250e-6)
        res[(length, width)] = (nrs[0], current / el.electrodes[0].area_m2)
    small, square, long_ = res[(0.02, 0.02)], res[(0.05, 0.05)], res[(0.09, 0.05)]
    assert small[0] > square[0] and small[0] > long_[0]
    assert small[1] > square[1] > long_[1]


def test_placement_relative_to_motor_point_can_outweigh_size():
    """Lyons et al. 2004 (Med Eng Phys 26:873; 19.63 vs 38.48 cm²): placement dominated size — the
    smaller electrodes in the best placement were the most comfortable. Model: circles of those
    areas 3 cm apart along the fibres on lumbar layers; motor target 10 mm into muscle on the pair's
    axis (well placed) or 4 cm across the fibres from it (poorly placed); equal motor drive."""
    small = Electrodes.pair("circle", diameter_m=2 * math.sqrt(19.63e-4 / math.pi), spacing_m=0.03)
    large = Electrodes.pair("circle", diameter_m=2 * math.sqrt(38.48e-4 / math.pi), spacing_m=0.03)
    target = 15.0  # V/m at the target (≈ 20–25 mA well placed): same contraction for every arrangement

    def nrs(el, y):
        sol = solution(LUMBAR, el)
        current = target / motor_field(sol, LUMBAR, 0.01, y)
        return steady_nrs(sol.skin_current_density(), el, current, 250e-6)[0][0]

    assert nrs(large, 0.0) < nrs(small, 0.0)  # same placement: larger is gentler
    assert nrs(small, 0.0) < nrs(large, 0.04)  # good placement of the small beats poor of the large


# ----------------------------------------------------------------------------- person factors
# Sources and numbers: docs/literature/person_factors.md.

MAFFIULETTI_MT_MA = 0.017        # quadriceps motor threshold (Hmed 2018, R1) [assumed for both sexes]
MAFFIULETTI_SUPRA_MA = 0.035     # men's current at 10 % force (R1 curve) [assumed]
MAFFIULETTI_FEMALE_SUPRA = 0.83  # women reached 10 % MVC with 17 % less current (Maffiuletti 2008)


@pytest.fixture(scope="module")
def maffiuletti():
    """NRS of men and women (``Person.from_patient``) in Maffiuletti 2008's two conditions: each sex
    at its own measured current. Model set-up [assumed]: quadriceps layers (average build), 5 x 9 cm
    pair 4 cm apart, 250 µs 50 Hz, cutaneous drive only (1 s trains)."""
    lay = Layers.for_site("quadriceps")
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.04)
    sc = solution(lay, el).skin_current_density()
    female = Person.from_patient(SimpleNamespace(sex="female"))
    male, _ = steady_nrs(sc, el, [MAFFIULETTI_MT_MA, MAFFIULETTI_SUPRA_MA], 250e-6)
    women, _ = steady_nrs(sc, el, [MAFFIULETTI_MT_MA, MAFFIULETTI_FEMALE_SUPRA * MAFFIULETTI_SUPRA_MA], 250e-6,
                          person=female)
    return women / male


def test_sex_difference_in_pain_at_motor_threshold(maffiuletti):
    """Maffiuletti et al. 2008 (Ann Neurol 63:507; quadriceps, 20 men / 20 women; abstract): VAS pain
    at motor threshold +112 % in women (ratio 2.12, p < 0.01); motor threshold itself did not differ,
    so both sexes get the same current here. Tolerance ±0.5 on the ratio (no SDs in the abstract).
    Not independent: the female threshold scale (0.78, the 254-subject TENS study's sensory ratio)
    was preferred to Maffiuletti's own −43 % (0.57 gives 5.0) after this comparison was computed.
    Model: 2.11 (2.0–2.55 for an assumed motor threshold of 12–27 mA)."""
    assert abs(maffiuletti[0] - 2.12) <= 0.5, maffiuletti


def test_sex_difference_in_pain_shrinks_at_the_supramotor_threshold(maffiuletti):
    """Maffiuletti et al. 2008 (as above): at the supramotor threshold (10 % MVC) — reached by the
    women with 17 % less current — the VAS difference was +36 % (ratio 1.36, p > 0.05), smaller
    than at motor threshold. Checks: the ratio lies in [1.0, 1.8] (n.s., so no difference is
    admissible; +0.44 above the published value, as the motor-threshold test) and below the
    motor-threshold ratio. Independent of the scale choice. Model: 1.22 (0.57 gave 3.3; at equal
    currents, which Maffiuletti did not use, 0.78 gives 2.26)."""
    assert 1.0 <= maffiuletti[1] <= 1.8, maffiuletti
    assert maffiuletti[1] < maffiuletti[0], maffiuletti


@pytest.mark.xfail(strict=True, reason="model women/men sensory threshold 0.78 (the 254-subject TENS study's 8.78/11.20 "
                                       "mA) vs Maffiuletti 2008's 0.57 (-43 %, n = 40); with 0.57 the model's NRS "
                                       "ratios are 5.0 at motor threshold and 3.3 at supramotor vs Maffiuletti's VAS "
                                       "2.12 and 1.36: one threshold scale for every afferent class cannot give both "
                                       "(docs/literature/person_factors.md)")
def test_womens_sensory_threshold_is_43_percent_lower_maffiuletti2008():
    """Maffiuletti et al. 2008 (quadriceps, abstract): sensory threshold 43 % lower in women
    (ratio 0.57). Tolerance ±0.1. The other published ratio, 0.78 (upper limb TENS, 205 women /
    49 men, abstract), is the one the model uses."""
    lay = Layers.for_site("quadriceps")
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.04)
    sc = solution(lay, el).skin_current_density()
    female = Person.from_patient(SimpleNamespace(sex="female"))
    th = {who: cut.threshold_current(sc, np.array([250e-6]), classes=P.classes,
                                     threshold_scale=p.cutaneous_threshold_scale)["abeta"][0, 0]
          for who, p in (("women", female), ("men", Person()))}
    assert abs(th["women"] / th["men"] - 0.57) <= 0.1, th


def test_sensory_threshold_does_not_rise_with_fat():
    """Maffiuletti et al. 2008 (the lowest sensory thresholds in the subjects with the largest
    skinfolds) and the 254-subject TENS study (women: −0.25 ± 0.07 mA per % body fat, p < 0.001;
    abstracts): more subcutaneous fat goes with a lower, not a higher, sensory threshold. Model:
    quadriceps-like layers with 4 / 8.8 / 13.2 / 30 mm fat, 5 x 9 cm pair 3 cm apart, 300 µs; the
    Aβ sensation threshold must fall (weakly) with fat: 12.73 / 12.65 / 12.58 / 12.43 mA (−2.4 %
    over 4 → 30 mm; the published slope per mm of fat is not known — body fat % was measured)."""
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.03)
    th = []
    for fat in (0.004, 0.0088, 0.0132, 0.03):
        sc = solution(Layers.standard(skin_m=0.0015, fat_m=fat, muscle_m=0.045), el).skin_current_density()
        th.append(cut.threshold_current(sc, np.array([300e-6]), classes=P.classes)["abeta"][0, 0])
    assert np.all(np.diff(th) <= 0.0), th
    assert th[-1] < th[0], th


def test_resistive_interface_lowers_predicted_pain():
    """G3 (Panescu, Webster & Stratbucker 1994: less potential pain with high-resistivity
    electrolytes, from more uniform current density): at equal current every low-resistivity
    interface (metal, saline sponge, gel without the skin barrier) gives a higher NRS than the
    default hydrogel-on-skin, which gives at least the NRS of a still more resistive layer.
    5 x 5 cm pair, lumbar, 30 mA (about the motor-level current), 250 µs. (Near tolerance, 40 mA,
    the model's interfaces converge: most Aδ under the whole electrode are then active.)"""
    def nrs(gel):
        sc = solution(LUMBAR, REF_EL, gel).skin_current_density()
        return steady_nrs(sc, REF_EL, 0.03, 250e-6)[0][0]

    default = nrs(Gel.load("hydrogel"))
    for low in (Gel.metal(), Gel.load("saline_sponge"), Gel.load("hydrogel_gel_only")):
        assert nrs(low) > default + 0.5
    assert default >= nrs(Gel(3000.0, 0.001, "resistive"))


def test_pulse_width_effect_changes_sign_with_electrode_area_and_depth():
    """§1.2 / §4.4 / D3: published comparisons disagree on whether wider pulses hurt more at equal
    torque (e.g. Gracanin & Trnkoczy 1975, Arch Phys Med Rehabil 56:243 [verified: abstract; author
    names unverified]: 0.3 ms less painful than 1.0 ms at equal ankle torque); the model must let
    area, depth and pulse width decide. Equal motor drive (stand-in), 300 vs 1000 µs, lumbar layers:
    a small (2 x 2 cm) pair over a deep target (15 mm into muscle) — C fibres engaged — hurts more
    with 1 ms (as Gracanin); a 5 x 5 cm pair over a 15 mm target — Aδ-dominated — hurts less with
    1 ms."""
    ref_drive = motor_field(solution(LUMBAR, REF_EL, Gel.uniform()), LUMBAR, 0.01) * 0.030 / (1 + C_MOTOR / 250e-6)

    def delta(side, depth):
        el = Electrodes.pair("rectangle", length_m=side, width_m=side, spacing_m=0.04)
        sol = solution(LUMBAR, el)
        e = motor_field(sol, LUMBAR, depth)
        n = [steady_nrs(sol.skin_current_density(), el, ref_drive * (1 + C_MOTOR / pw) / e, pw)[0][0]
             for pw in (300e-6, 1000e-6)]
        return n[1] - n[0]

    assert delta(0.02, 0.015) > 0.1
    assert delta(0.05, 0.015) < -0.1


def test_magnitude_exponent_falls_with_duration(reference_curve):
    """D2 (Bar-Ilan, "Electrocutaneous psychophysical input–output functions and temporal integration",
    abstract): magnitude-estimation exponent 1.4 → 0.93 as duration rises from 100 ms to 6.4 s.
    Check: exponent over 2–10 x threshold for a 6.4 s train at least 20 % below a 100 ms train's.

    Calibration, not prediction: the partial-integration slope (models/discomfort/discomfort.json
    ``temporal.partial_integration_slope``) was fitted to Bar-Ilan's ratio 0.66 (model 0.66).
    Not fitted: the magnitude at a fixed current grows with duration (Bar-Ilan: the power
    function's constant rises with duration), checked at 3 x threshold."""
    sc, _, _, sens = reference_curve
    cur = np.geomspace(2 * sens, 10 * sens, 30)
    slopes = []
    for dur in (0.1, 6.4):
        nrs, _ = steady_nrs(sc, REF_EL, cur, 250e-6, dur=dur)
        slopes.append(np.polyfit(np.log(cur), np.log(nrs), 1)[0])
    assert slopes[1] < 0.8 * slopes[0]
    mid = [steady_nrs(sc, REF_EL, 3 * sens, 250e-6, dur=dur)[0][0] for dur in (0.1, 1.0, 6.4)]
    assert mid[0] < mid[1] < mid[2], mid


# ----------------------------------------------------------------------------- kHz carriers
# Through emsim.physiology.recruitment: motor units and afferents both take a kHz burst's
# thresholds from the Brian2 fibre tables (models/fibres/thresholds: carriers 1, 2.5, 5, 10,
# 20 kHz, log-interpolated between), afferents relative to the calibration pulse
# (emsim.physiology.cutaneous.waveform_multiplier), each active afferent firing the Brian2 burst-firing
# table's action potentials per burst (emsim.physiology.cutaneous.burst_spikes, counted by the
# discomfort model like pulses). 5 x 5 cm pair 4 cm apart, average lumbar
# erector spinae (left), a man; 50 Hz bursts.

KHZ_SITE = "lumbar_erector_spinae"
KHZ_AMPS_MA = np.geomspace(1.0, 200.0, 240)


def khz_sweep(carrier_hz, burst_ms, frequency_hz=50.0):
    """(motor fraction of the pool, Aβ fraction, NRS) over KHZ_AMPS_MA for one carrier."""
    from emsim.physiology.recruitment import StimulusSet, recruit
    from emsim.program.model import Channel

    ch = Channel(id="A", site=KHZ_SITE, side="left", spacing_cm=4.0, orientation="along_fibres",
                 electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 5.0},) * 2)
    s = StimulusSet.from_arrays(KHZ_AMPS_MA, channels=ch, frequency_hz=frequency_hz, shape="khz_burst",
                                carrier_hz=carrier_hz, burst_duration_ms=burst_ms)
    rec = recruit(s, KHZ_SITE, person=Person())
    return (np.maximum.accumulate(rec.force_fraction[:, 0]), rec.afferent_fraction["abeta"].max(axis=1),
            np.maximum.accumulate(predict(rec).peak))


def first_crossing_ma(y, level):
    """Current (mA) where rising ``y`` reaches ``level`` (log-interpolated; inf if never)."""
    return math.exp(np.interp(level, y, np.log(KHZ_AMPS_MA))) if y[-1] >= level else math.inf


D1_CARRIERS_HZ = (1000.0, 2500.0, 4000.0, 5000.0, 10000.0)


@pytest.mark.xfail(strict=True, reason="NRS at 20 % of the ES pool (4 ms bursts at 50 Hz) is 3.63/3.07/3.01/2.97/2.87 "
                                       "at 1/2.5/4/5/10 kHz (currents 23/48/73/90/168 mA): discomfort falls from "
                                       "1 to 2.5 kHz and then by < 0.2 NRS more, lowest at 10 kHz; no rise above "
                                       "5 kHz. Motor and afferent thresholds follow the Brian2 tables (afferent/motor "
                                       "ratios rise slowly with carrier: Abeta, Adelta 0.96 -> 1.07 relative to 250 us "
                                       "pulses, C 0.85 -> 1.66 from 1 to 10 kHz). Burst summation is now in "
                                       "(models/fibres/burst_firing.json, Brian2): at 1 kHz Abeta/Adelta fire twice per "
                                       "4 ms burst from 1.5x threshold, at 2.5-10 kHz once (twice only at 1.5-2x, then "
                                       "onset-and-block); it raised every carrier by 0.05-0.11 NRS, 1 kHz most "
                                       "(before: 3.52/3.01/2.95/2.91/2.82). What would make high carriers hurt is "
                                       "missing: no skin heating/impedance term is fed (discomfort's hotspot term exists, "
                                       "assumed, but Joule heating at 2 mA/cm2 r.m.s. in 0.2 S/m skin is ~2 mW/cm3, too "
                                       "small to justify it), and Ward measured at maximal tolerated torque, not at a "
                                       "matched contraction. At tolerance the model is mirror-imaged too: motor fraction at "
                                       "NRS 8 (5 x 5 cm) 0.61/0.68/0.68/0.69 at 1/2.5/4/5 kHz (10 kHz never reaches NRS 8 "
                                       "below 200 mA), rising with carrier where Ward 2004 (maximal torque at 1 kHz, falling "
                                       "above 2.5 kHz) and Schiller 2018 (1 kHz BMAC 38.2 vs 2.5 kHz 32.0 % MVC) find it "
                                       "falls. Giving Adelta the motor table's carrier response flattens the NRS to "
                                       "3.38/3.31/3.32/3.31/3.30 (no minimum): no afferent-membrane difference in the "
                                       "present tables produces D1 (docs/literature/khz_discomfort.md). Nor can an integration "
                                       "over the burst train (session 9b): every carrier here has the same burst duration "
                                       "and rate, so a duty-driven effect scales them alike (afferents firing through the "
                                       "burst at 300-1500 Hz: NRS 3.71/3.14/3.08/3.04/2.94 to 4.67/4.03/3.95/3.90/3.78, "
                                       "still lowest at 10 kHz)")
def test_d1_khz_carrier_least_discomfort_near_4khz():
    """D1 (Ward, Robertson & Ioannou 2004, Med Eng Phys 26:569, wrist extensors: fewest discomfort
    reports at 4 kHz with 20–25 % duty; Modesto 2022: 2.5–5 kHz lower discomfort). Model: 4 ms
    bursts at 50 Hz (20 % duty), the current recruiting 20 % of the erector spinae pool at each
    carrier (matched contraction; Ward compared at maximal evoked torque, which is not modelled),
    NRS with the contraction term. Tolerance: the least NRS of the carriers lies at 2.5–5 kHz."""
    nrs = []
    for f in D1_CARRIERS_HZ:
        motor, _, n = khz_sweep(f, 4.0)
        i = first_crossing_ma(motor, 0.20)
        nrs.append(np.interp(math.log(i), np.log(KHZ_AMPS_MA), n))
    best = D1_CARRIERS_HZ[int(np.argmin(nrs))]
    assert 2500.0 <= best <= 5000.0, nrs


def ward1998_thresholds(carrier_hz):
    """Sensory (5 % of Aβ), motor (2 % of the pool) and pain (NRS 3) thresholds (mA), 10 ms bursts."""
    motor, abeta, nrs = khz_sweep(carrier_hz, 10.0)
    return first_crossing_ma(abeta, 0.05), first_crossing_ma(motor, 0.02), first_crossing_ma(nrs, 3.0)


def test_pain_to_motor_threshold_ratio_rises_from_1_to_10khz():
    """Ward & Robertson 1998 (Arch Phys Med Rehabil 79:273; 1–35 kHz modulated at 50 Hz): the
    pain/motor threshold ratio peaks at ~10 kHz, i.e. rises from 1 kHz towards 10 kHz. (Their
    thresholds are voltages; at one frequency the skin impedance cancels in a ratio.) Model:
    10 ms bursts at 50 Hz; tolerance: ratio at 10 kHz ≥ 5 % above the 1 kHz ratio (model 1.53 →
    1.70). Not fitted."""
    lo, hi = (ward1998_thresholds(f) for f in (1000.0, 10000.0))
    assert hi[2] / hi[1] >= 1.05 * (lo[2] / lo[1]), (lo, hi)


@pytest.mark.xfail(strict=True, reason="pain/sensory ratio 3.23 at 1 kHz, 3.22 at 2.5 kHz, 3.21 at 4 kHz, "
                                       "3.19 at 10 kHz (3.30/3.22/3.21/3.19 before burst summation): slightly falling, "
                                       "because the Brian2 Abeta and Adelta share one membrane (same resting "
                                       "potential; S3) and so one carrier response; Ward's rise needs pain fibres "
                                       "with a longer effective time constant than Abeta -- or is a voltage effect: "
                                       "Ward's thresholds were voltages, and a skin impedance that falls with current "
                                       "(stratum-corneum breakdown) at low carriers but is capacitive (linear) at high "
                                       "ones raises the voltage ratio with carrier at a constant current ratio; no "
                                       "published parameters of that impedance were found to test it "
                                       "(docs/literature/khz_discomfort.md). An integration over the burst train cannot "
                                       "move it either (both carriers use 10 ms bursts at 50 Hz, one duty): with "
                                       "afferents firing through the burst at 300-1500 Hz the ratio is 3.10 -> 3.05 to "
                                       "2.81 -> 2.77 (session 9b)")
def test_pain_to_sensory_threshold_ratio_rises_with_carrier():
    """Ward & Robertson 1998: the pain/sensory threshold ratio rises systematically with carrier
    frequency. Model as above; tolerance: ratio at 10 kHz ≥ 10 % above the 1 kHz ratio. Not fitted."""
    lo, hi = (ward1998_thresholds(f) for f in (1000.0, 10000.0))
    assert hi[2] / hi[0] >= 1.10 * (lo[2] / lo[0]), (lo, hi)


def test_single_electrode_set_with_unequal_sizes_puts_discomfort_under_the_small_one():
    """§4.3 / BMC 2022 mechanism: with a small and a large electrode in one channel the cutaneous
    drive concentrates under the small one (higher current density)."""
    el = Electrodes((Electrode("rectangle", -0.04, 0.0, length_m=0.03, width_m=0.03, weight=1.0),
                     Electrode("rectangle", 0.045, 0.0, length_m=0.09, width_m=0.05, weight=-1.0)))
    sc = solution(LUMBAR, el).skin_current_density()
    fr = cutaneous_activation(sc, 0.03, 250e-6)
    assert fr["adelta"][0] > 5 * fr["adelta"][1]


def _khz_channel(w_cm, l_cm):
    from emsim.program.model import Channel

    return Channel(id="A", site=KHZ_SITE, side="left", spacing_cm=4.0, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": w_cm, "length_cm": l_cm},) * 2)


def sweep_to_nrs(shape, w_cm, l_cm, level, **kw):
    """(recruitment over KHZ_AMPS_MA, current in mA where the NRS first reaches ``level``; inf if never)."""
    from emsim.physiology.recruitment import StimulusSet, recruit

    s = StimulusSet.from_arrays(KHZ_AMPS_MA, channels=_khz_channel(w_cm, l_cm), frequency_hz=50.0, shape=shape, **kw)
    rec = recruit(s, KHZ_SITE, person=Person())
    return rec, first_crossing_ma(np.maximum.accumulate(predict(rec).peak), level)


def motor_at_nrs(shape, w_cm, l_cm, level=5.0, **kw):
    """Motor fraction of the ES pool (recruitment) where the NRS first reaches ``level``, 50 Hz, a man."""
    rec, i = sweep_to_nrs(shape, w_cm, l_cm, level, **kw)
    motor = np.maximum.accumulate(rec.force_fraction[:, 0])
    return float(np.interp(math.log(i), np.log(KHZ_AMPS_MA), motor)) if math.isfinite(i) else float(motor[-1])


#: Length of the steady 50 Hz train whose peak force stands for the evoked torque (s): the rested
#: muscle model reaches its plateau within a few hundred ms at 50 Hz.
FORCE_TRAIN_S = 1.0


def force_at_nrs(shape, w_cm, l_cm, level=5.0, extra_spikes=True, **kw):
    """Evoked force of the ES region (fraction of its maximal force; torque stand-in) where the NRS
    first reaches ``level`` (at the sweep's 200 mA cap if it never does), 50 Hz, a man.

    Peak of a rested 1 s train in the muscle model (``lumbar_erector_spinae``, fatigue off), each
    burst recruiting the pool's motor fraction at its first action potential plus the units that
    fire again within the burst (Brian2 burst-firing table, motor class:
    ``Recruitment.force_extra_spikes``), at their delays; ``extra_spikes=False``: the first action
    potential only (the motor fraction's force)."""
    from emsim.physiology.muscle import simulate
    from emsim.physiology.recruitment import StimulusSet, recruit, with_extra_spikes

    _, i = sweep_to_nrs(shape, w_cm, l_cm, level, **kw)
    amp = i if math.isfinite(i) else float(KHZ_AMPS_MA[-1])
    s = StimulusSet.from_arrays([amp], channels=_khz_channel(w_cm, l_cm), frequency_hz=50.0, shape=shape, **kw)
    rec = recruit(s, KHZ_SITE, person=Person())
    delay, extra = rec.force_extra_spikes
    extra = extra if extra_spikes else np.zeros_like(extra)
    onsets = np.arange(0.0, FORCE_TRAIN_S, 1.0 / 50.0)
    n = onsets.size
    times, frac = with_extra_spikes(onsets, np.full(n, rec.force_fraction[0, 0]), np.repeat(delay[0], n, axis=0),
                                    np.repeat(extra[0], n, axis=0))
    res = simulate(times, KHZ_MUSCLE, fatigue=False, recruitment=frac)
    return float(res.force_n.max()) / res.muscle.max_force


KHZ_MUSCLE = "lumbar_erector_spinae"


#: Tolerance stand-in for "maximal tolerated intensity" (the calibration's tolerance anchor, NRS 8).
TOLERANCE_NRS = 8.0


# R3 (reference §6; Ward, Robertson & Ioannou 2004, Med Eng Phys 26:569, abstract [verified] in
# docs/literature/khz_discomfort.md): with 50 Hz bursts at 20 % duty, the maximal electrically
# induced torque is similar at low carriers (largest at 1 kHz) and falls markedly above 2.5 kHz.
# Model for both halves: evoked force of the lumbar ES region (torque stand-in, force_at_nrs: motor
# units fire once or, at 1 kHz, twice per burst as the Brian2 burst-firing table says) at the
# model's tolerance anchor (NRS 8), 5 x 5 cm pair, 4 ms bursts at 50 Hz (20 % duty), a man. Not fitted.

def test_r3_tolerated_khz_torque_at_1khz_not_below_2_5khz_ward2004():
    """R3 (Ward, Robertson & Ioannou 2004, Med Eng Phys 26:569; model in the comment above), low
    carriers: torque largest at 1 kHz. Tolerance (the abstract gives no magnitude): the 1 kHz force
    not below the 2.5 kHz force by more than 5 %. The motor fraction alone fails it (0.605 vs 0.677, 11 % below); the force passes
    because at 1 kHz the more strongly driven units fire a doublet ~2.6 ms apart in each 4 ms burst
    (Brian2 motor table: twice from 1.25 × threshold; at 2.5 kHz once), which the muscle model sums
    (session 11: 0.608 vs 0.626, 3 % below). Fragile: the doublets add 8.4 % to the 1 kHz force, of
    which ~3.4 points come from the muscle model's catch-like gain (extrapolated from Bickel 2004);
    without it 0.589 (6 % below: fails). This check needs a doublet gain ≥ 6.0 %, the Vaz check
    (:func:`test_short_khz_bursts_match_pulsed_current_at_tolerance`) ≤ 9.2 % at 5 × 5 cm."""
    lo, mid = (force_at_nrs("khz_burst", 5.0, 5.0, level=TOLERANCE_NRS, carrier_hz=f, burst_duration_ms=4.0)
               for f in (1000.0, 2500.0))
    assert lo >= 0.95 * mid, (lo, mid)


@pytest.mark.xfail(strict=True, reason="force at NRS 8 (5 x 5 cm, 4 ms bursts at 50 Hz, fraction of the region's "
                                       "maximal force) 0.608/0.626/0.633/0.642 at 1/2.5/4/5 kHz: it keeps rising above "
                                       "2.5 kHz, where Ward 2004 finds it falls markedly. 10 kHz gives 0.29 only because "
                                       "NRS 8 is not reached below the sweep's 200 mA cap (that leg passes for that "
                                       "reason, not from a modelled fall). The Brian2 motor table has no dropout: every "
                                       "motor unit fires at least its onset action potential per burst at every carrier "
                                       "and drive (table to 5 x, session-11 probe to 12 x threshold) (2.5-10 kHz: once, then block, sometimes a spike at "
                                       "the burst's end), so a high carrier costs current, not force "
                                       "(docs/literature/khz_discomfort.md section 7); the D1 strict xfail records the "
                                       "same mirror image in the discomfort")
def test_r3_tolerated_khz_torque_falls_above_2_5_khz_ward2004():
    """R3 (Ward, Robertson & Ioannou 2004, Med Eng Phys 26:569; model in the comment above), high
    carriers: torque falls markedly above 2.5 kHz. Tolerance ("markedly" taken as ≥ 10 %): the force at each of 4, 5 and 10 kHz
    at least 10 % below both the 1 and the 2.5 kHz force. (Before session 11 this test checked 10 kHz
    only, with the motor fraction, and passed that leg solely through the 200 mA cap; 4 and 5 kHz are
    above 2.5 kHz too and do reach NRS 8.)"""
    got = {f: force_at_nrs("khz_burst", 5.0, 5.0, level=TOLERANCE_NRS, carrier_hz=f, burst_duration_ms=4.0)
           for f in (1000.0, 2500.0, 4000.0, 5000.0, 10000.0)}
    low = min(got[1000.0], got[2500.0])
    assert all(got[f] <= 0.9 * low for f in (4000.0, 5000.0, 10000.0)), got


def test_short_khz_bursts_match_pulsed_current_at_tolerance():
    """Vaz et al. 2015 (Muscle Nerve 51:76, quadriceps, 21 women; abstract [verified]): at comparable
    discomfort (maximal tolerated intensity) the evoked torque was Aussie current 71.7 % MVC, 200 µs
    pulsed current 70.1 %, 500 µs pulsed 76.9 %; Dantas et al. 2021 (Braz J Phys Ther 25:593,
    abstract [verified]): kHz AC and pulsed current of the same phase duration gave similar torque
    and discomfort, 500 µs more torque than 200 µs. Aussie current = 1 kHz carrier in 4 ms bursts
    [unverified recollection: Ward's definition]. Model: lumbar ES, 5 × 9 and 5 × 5 cm pairs 4 cm
    apart, 50 Hz, a man; evoked force of the region (torque stand-in, :func:`force_at_nrs`, with the
    1 kHz bursts' motor doublets) where the NRS first reaches 8 (the model's tolerance anchor).
    Tolerance: Aussie / 200 µs pulses in [0.8, 1.25] around the published 1.02 (no difference: Vaz,
    Dantas), and 500 µs > 200 µs (published 1.10). Not fitted. Session 11: 1.18 / 1.24 (5 × 9 /
    5 × 5 cm; the motor fraction gave 1.07 / 1.13, the doublets add 8–11 % to the Aussie force; 1.14 /
    1.20 without the muscle model's catch-like gain), close to the upper bound at 5 × 5 cm. Sensitive to the level: with the motor fraction (review, session 6)
    Aussie/200 µs is 1.11/1.47 at NRS 3, 1.12/1.25 at NRS 5, 1.02/1.00 at NRS 9; with the force 1.20/1.35
    at NRS 5 — near saturation every ratio tends to 1, so this passes at the published "maximal
    tolerated" level, not at sub-maximal ones."""
    for w, l in ((5.0, 9.0), (5.0, 5.0)):
        pc200 = force_at_nrs("symmetric_biphasic", w, l, TOLERANCE_NRS, pulse_width_us=200.0)
        pc500 = force_at_nrs("symmetric_biphasic", w, l, TOLERANCE_NRS, pulse_width_us=500.0)
        aussie = force_at_nrs("khz_burst", w, l, TOLERANCE_NRS, carrier_hz=1000.0, burst_duration_ms=4.0)
        assert 0.8 <= aussie / pc200 <= 1.25, (w, l, aussie, pc200)
        assert pc500 > pc200, (w, l, pc500, pc200)


@pytest.mark.xfail(strict=True, reason="pulsed/kHz force ratios are all below 1: 300 us pulses / 2.5 kHz 4 ms "
                                       "bursts at NRS 5 0.96 (5 x 9 cm) and 0.88 (5 x 5 cm); 200 us pulses / Russian "
                                       "current (2.5 kHz, 10 ms bursts) at NRS 8 0.88 and 0.75 (Vaz 2015: 1.38); with the "
                                       "motor fraction instead of the force 0.95/0.90 and 0.90/0.77. Session 11: the "
                                       "Brian2 motor table gives no dropout; at 2.5 kHz a motor unit fires once per 4 ms "
                                       "burst and in 10 ms bursts sometimes again at the burst's end (16-26 % of the pool "
                                       "at NRS 8), which adds force to the Russian arm (the wrong way). The "
                                       "model has no burst-duration penalty: the Brian2 thresholds barely change from 4 to "
                                       "10 ms (S5 strict xfail) and afferents fire once per 2.5 kHz burst at >= 2x "
                                       "threshold (burst_firing table), so a Russian burst loads afferents and motor units "
                                       "like a 4 ms burst. Swapping Adelta's carrier response for the motor table's moves "
                                       "the 4 ms ratios only to 0.97/0.98: the tables' carrier responses differ by <= 3 % "
                                       "between classes. Ward 2001/2004 attribute the long-burst deficit to motor-fibre "
                                       "dropout (torque side, not the discomfort model) and Ward 2007 to the pain "
                                       "classes' longer utilization time (>= 20 ms vs > 10 ms motor; magnitudes not in "
                                       "the abstract): docs/literature/khz_discomfort.md. Session 9b: afferents firing "
                                       "repetitively through the burst (train-level integration, motor units still once "
                                       "per burst, the most favourable case) move the ratios to 0.96/0.92 and 0.94/0.91 "
                                       "at 300 Hz (about the most the model's recovery cycle allows near threshold), "
                                       "1.024/1.048 and 0.998/1.055 at 800 Hz, 1.045/1.081 and 1.004/1.089 at 1 kHz: "
                                       "the 4 ms check passes from ~650 Hz (1.007/1.019), the Russian one from ~1 kHz; "
                                       "both stay far from the published 1.33-1.38 "
                                       "(benchmarks/khz_train_integration.py)")
@pytest.mark.parametrize("protocol", ["pc300_vs_2.5khz_4ms_at_nrs5", "pc200_vs_russian_at_nrs8"])
def test_pulsed_current_gives_at_least_the_khz_contraction_at_equal_discomfort(protocol):
    """Published: at equal discomfort kHz AC is no better than pulsed current — burst-modulated pulsed
    current gave ~1/3 more force than burst-modulated AC at VAS 5/10 (PMID 29308952; reference §4.4);
    Russian current (2.5 kHz; 10 ms bursts at 50 Hz [unverified recollection: Kots's definition,
    Ward & Shkuratova 2002]) 50.8 % MVC vs 200 µs pulsed 70.1 % at comparable discomfort (Vaz et al.
    2015, Muscle Nerve 51:76, ratio 1.38); 2.5 kHz BMAC 32.0 vs 1 kHz burst-modulated pulses 42.2 %
    at maximal tolerance (Schiller et al. 2018, JOSPT, ratio 1.32). (Short 1 kHz bursts match pulsed
    current: :func:`test_short_khz_bursts_match_pulsed_current_at_tolerance`.) Model: lumbar ES,
    5 × 9 and 5 × 5 cm pairs 4 cm apart, 50 Hz, a man; evoked force of the region (torque stand-in,
    :func:`force_at_nrs`, with the bursts' extra motor action potentials) (a) where the NRS first reaches 5, 300 µs symmetric biphasic vs 2.5 kHz sine in 4 ms bursts
    (PMID 29308952's VAS 5), (b) where it reaches 8 (tolerance), 200 µs pulses vs Russian current
    (Vaz 2015). Tolerance: every ratio pulsed/kHz in [1.0, 2.0] — kHz no better, at most 1.5 × the
    largest published ratio. Each protocol is its own strict xfail, so either one turning into a
    pass shows. Not fitted."""
    for w, l in ((5.0, 9.0), (5.0, 5.0)):
        if protocol == "pc300_vs_2.5khz_4ms_at_nrs5":
            pulsed = force_at_nrs("symmetric_biphasic", w, l, pulse_width_us=300.0)
            khz = force_at_nrs("khz_burst", w, l, carrier_hz=2500.0, burst_duration_ms=4.0)
        else:
            pulsed = force_at_nrs("symmetric_biphasic", w, l, TOLERANCE_NRS, pulse_width_us=200.0)
            khz = force_at_nrs("khz_burst", w, l, TOLERANCE_NRS, carrier_hz=2500.0, burst_duration_ms=10.0)
        assert 1.0 <= pulsed / khz <= 2.0, (protocol, w, l, pulsed, khz)


# ----------------------------------------------------------------------------- kHz burst trains (Ward)
# Ward's burst-duration series, at the level where he measured: thresholds of a TRAIN of bursts
# (first sensation, motor response, pain tolerance), not of one fibre (S5 in test_axon_targets).

#: Burst durations (ms) of the two series: 50 Hz bursts up to continuous (20 ms; Ward &
#: Lucas-Toumbourou 2007) and 20 Hz bursts up to continuous (50 ms; Ward & Chuen 2009).
WARD_BURSTS_MS = {50.0: (1.0, 2.0, 4.0, 7.0, 10.0, 20.0), 20.0: (1.0, 2.0, 4.0, 10.0, 20.0, 30.0, 50.0)}
#: Published utilization times as windows (ms) of the tested durations: 50 Hz ≈ 7 / > 10 / ≥ 20 ms,
#: 20 Hz ≈ 20 / ≈ 30 / > 50 ms (sensory / motor / pain tolerance; abstracts).
WARD_UTILIZATION_MS = {50.0: {"sensory": (4.0, 10.0), "motor": (10.0, 20.0), "pain_tolerance": (20.0, 20.0)},
                       20.0: {"sensory": (10.0, 30.0), "motor": (20.0, 50.0), "pain_tolerance": (50.0, 50.0)}}


def ward_train_thresholds(frequency_hz, carrier_hz):
    """Sensory (5 % of Aβ), motor (2 % of the pool) and pain-tolerance (NRS 8) thresholds (mA) over
    ``WARD_BURSTS_MS[frequency_hz]``."""
    rows = []
    for b in WARD_BURSTS_MS[frequency_hz]:
        motor, abeta, nrs = khz_sweep(carrier_hz, b, frequency_hz)
        rows.append((first_crossing_ma(abeta, 0.05), first_crossing_ma(motor, 0.02),
                     first_crossing_ma(nrs, TOLERANCE_NRS)))
    return dict(zip(("sensory", "motor", "pain_tolerance"), np.array(rows).T))


@pytest.mark.xfail(strict=True, reason="the model's train thresholds do not fall with burst duration at all: 50 Hz "
                                       "bursts, 1 kHz, 1/2/4/7/10/20 ms: sensory 6.41/6.75/6.75/6.75/6.75/6.75 mA, motor "
                                       "14.30 throughout, pain tolerance 39.7/41.1/40.2/40.0/39.8/39.8; 4 kHz: 22.9, 44.3, "
                                       "133.9-135.9 (lowest at 4 ms); 20 Hz bursts the same (tolerance 42.5-44.2 at 1 kHz, "
                                       "143.6-146.4 at 4 kHz; bursts other than 4 and 10 ms keep only the burst-firing "
                                       "table's spikes up to their own end). Afferents and motor units take a burst's threshold from "
                                       "the Brian2 tables (no summation beyond 1-2 ms: S5; the table ends at 20 ms, "
                                       "longer bursts are clamped to it) and fire once per burst near threshold "
                                       "(burst_firing table). A train-level integration (afferents firing repetitively "
                                       "through the burst at r Hz, counted by the discomfort model's temporal summation, "
                                       "capped at Ward's utilization fraction of the period) gives the pain-tolerance "
                                       "fall (1 -> 20 ms at 50 Hz, 1 kHz: -9 % at r = 300 Hz, -16 % at 800 Hz) but needs "
                                       "the caps fitted to these very numbers, leaves the motor series flat and the "
                                       "5 %-of-Abeta sensory criterion unchanged; near threshold the model's own recovery "
                                       "cycle allows r <= ~100-300 Hz (benchmarks/khz_train_integration.py, "
                                       "docs/literature/khz_discomfort.md section 'Session 9b')")
def test_ward_thresholds_fall_with_burst_duration_to_a_utilization_time_that_scales_with_the_period():
    """Ward & Lucas-Toumbourou 2007 (Arch Phys Med Rehabil 88:1036; 26 adults, 50 Hz bursts) and
    Ward & Chuen 2009 (Arch Phys Med Rehabil 90:1619; 20 adults, 20 Hz bursts), 1 and 4 kHz sine
    AC, abstracts [verified]: sensory, motor and pain-tolerance thresholds (voltages) fall with
    burst duration to a minimum, the utilization time: ≈ 7 / > 10 / ≥ 20 ms at 50 Hz, ≈ 20 / ≈ 30
    / > 50 ms at 20 Hz. Model: lumbar ES, 5 × 5 cm pair 4 cm apart, a man; first sensation 5 % of
    Aβ (the calibration criterion), motor threshold 2 % of the pool, pain tolerance NRS 8; currents,
    not voltages (at one carrier the skin impedance is nearly the same for every burst duration).
    Tolerances: (a) at each carrier and burst rate every threshold falls by ≥ 5 % from 1 ms to its
    minimum (the abstracts give no magnitudes; 5 % is taken as the smallest fall that could be
    called a minimum), (b) the utilization time — the shortest burst within 1 % of the minimum —
    lies in the window of tested durations around the published value (WARD_UTILIZATION_MS; the
    thresholds' rise beyond it is not checked: no magnitudes). Not fitted."""
    for fb, windows in WARD_UTILIZATION_MS.items():
        bursts = np.array(WARD_BURSTS_MS[fb])
        for carrier in (1000.0, 4000.0):
            th = ward_train_thresholds(fb, carrier)
            for name, (lo, hi) in windows.items():
                t = th[name]
                assert t.min() <= 0.95 * t[0], (fb, carrier, name, t)
                u = bursts[int(np.flatnonzero(t <= 1.01 * t.min())[0])]
                assert lo <= u <= hi, (fb, carrier, name, u, t)
