"""Recruitment-level validation targets (field + Brian2 tables + fibre placement + afferent model).

Sources: shared/reference/nerve_recruitment_discomfort.md §1.2, §3, §4.3 and §6 (S1, S4, G1, R1,
R2). Thresholds are read off amplitude sweeps in one batch call: a class's threshold is the
smallest current that excites ``LEVEL`` (5 %) of it — the first visible twitch for motor units,
first sensation for Aβ, first pricking (pain) for Aδ under the active electrode.

Calibration points (fitted; reproducing them is not evidence): R1 (motor threshold scale and
terminal depth range, models/fibres/motor_pools.json ``r1_fit``) and the afferent anchors (the
discomfort model's, models/discomfort/discomfort.json ``calibration``). Everything else is a
prediction.
"""

import numpy as np
import pytest

from emsim.physiology import discomfort as dsc
from emsim.physiology import field as fld
from emsim.physiology import recruitment as rc
from emsim.physiology.fibre_tables import weiss_fit
from emsim.program.model import Channel

pytestmark = pytest.mark.validation

LEVEL = 0.05
AMPS_MA = np.geomspace(0.5, 200.0, 240)


def channel(site, w=5.0, l=9.0, spacing=3.0):
    return Channel(id="A", site=site, side="left", spacing_cm=spacing, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": w, "length_cm": l},) * 2)


def sweep(site, pulse_width_us, *, shape="monophasic", ch=None, layers=None, frequency_hz=20.0):
    """Recruitment over AMPS_MA for each pulse width: arrays (n_pw, n_amp)."""
    pw = np.asarray(pulse_width_us, float)
    amp, p = np.meshgrid(AMPS_MA, pw)
    s = rc.StimulusSet.from_arrays(amp.ravel(), p.ravel(), frequency_hz, channels=ch or channel(site),
                                   shape=shape, secondary_amplitude_ratio=0.01, interphase_gap_us=0.0)
    r = rc.recruit(s, site, layers=layers)
    shape2 = (pw.size, AMPS_MA.size)
    return {"motor": r.motor_fraction_above[:, 0].reshape(shape2),
            **{k: r.afferent_fraction[k][:, 0].reshape(shape2) for k in ("abeta", "adelta", "c")}}


def threshold_ma(frac):
    """First amplitude (mA) reaching LEVEL, per row (inf if never)."""
    hit = frac >= LEVEL
    return np.where(hit.any(axis=1), AMPS_MA[np.argmax(hit, axis=1)], np.inf)


PWS = [20, 50, 100, 200, 300, 500, 1000]


@pytest.mark.parametrize("site", ["quadriceps", "lumbar_erector_spinae"])
def test_s4_sensory_below_motor_below_c_nociceptor_at_every_width(site):
    """S4 (Alon, Allin & Inbar 1983; 2025 preprint doi 10.21203/rs.3.rs-9232031): transcutaneous
    thresholds are ordered sensory < motor < pain at every pulse width (here 20–1000 µs, the
    table's range). Sensory = Aβ, pain = C nociceptors (Aδ: next test). Tolerance: strict
    ordering of the 5 % thresholds on a 240-point log grid up to 200 mA; a class not reached
    by 200 mA counts as above every class that is."""
    f = sweep(site, PWS)
    sens, mot, c = threshold_ma(f["abeta"]), threshold_ma(f["motor"]), threshold_ma(f["c"])
    assert np.all(sens < mot), (sens, mot)
    both = np.isfinite(mot) | np.isfinite(c)
    assert np.all(mot[both] < c[both]), (mot, c)


@pytest.mark.parametrize("site", ["quadriceps", "lumbar_erector_spinae"])
def test_s4_motor_below_adelta_at_every_width(site):
    """S4 as above with pain = 5 % of Aδ afferents under the active electrode (the discomfort
    calibration puts 5 % of Aδ at the pain threshold, an assumed anchor: this ordering is only as
    good as that anchor). Model at 300 µs: quadriceps motor 25 vs Aδ 36 mA, erector spinae 20
    vs 35 mA."""
    f = sweep(site, PWS)
    mot, pain = threshold_ma(f["motor"]), threshold_ma(f["adelta"])
    both = np.isfinite(mot) | np.isfinite(pain)
    assert np.all(mot[both] < pain[both]), (mot, pain)


@pytest.mark.parametrize("site", ["quadriceps"])
def test_thresholds_fall_with_pulse_width_and_plateau(site):
    """S4 (2025 preprint): thresholds plateau by ~150 µs (sensory) and ~200 µs (motor, pain).
    Tolerance: every class's threshold falls monotonically with width, and the fall from 500
    to 1000 µs is under a third of the fall from 50 to 200 µs."""
    pws = [50, 200, 500, 1000]
    f = sweep(site, pws)
    for name in ("abeta", "motor", "adelta"):
        t = threshold_ma(f[name])
        assert np.all(np.diff(t) <= 0), name
        assert (t[2] - t[3]) < (t[0] - t[1]) / 3, name


def _fat_ratios():
    """Median per-unit threshold ratios (10 mm and 20 mm of fat vs 2 mm) for units 8–12 mm into
    muscle, under the reference's G1 electrode set."""
    disc = Channel(id="A", site="quadriceps", side="left", spacing_cm=8.0 - 5.05, orientation="along_fibres",
                   electrodes=({"shape": "circle", "diameter_cm": 5.05},) * 2)
    s = rc.StimulusSet.from_arrays(20.0, 300.0, 20.0, channels=disc)
    thr = []
    for fat in (0.002, 0.010, 0.020):
        lay = fld.Layers.standard(skin_m=0.0015, fat_m=fat, muscle_m=0.04)
        r = rc.recruit(s, "quadriceps", layers=lay)
        into = r.unit_position_m[:, 2] - (0.0015 + fat)
        thr.append((r.unit_threshold_a[0], (into > 0.008) & (into < 0.012)))
    sel = thr[0][1] & thr[1][1] & thr[2][1]
    assert sel.sum() >= 10
    return (np.median(thr[1][0][sel] / thr[0][0][sel]), np.median(thr[2][0][sel] / thr[0][0][sel]))


def test_fat_thickness_raises_the_motor_threshold():
    """Petrofsky et al. 2008 (Med Eng Phys 30(7)): thicker subcutaneous fat raises the current
    needed for a contraction. Tolerance: the 5 % motor threshold (5×9 cm electrodes, 300 µs)
    rises by more than 10 % per step of fat (2 → 10 → 20 mm)."""
    t = []
    for fat in (0.002, 0.010, 0.020):
        lay = fld.Layers.standard(skin_m=0.0015, fat_m=fat, muscle_m=0.04)
        t.append(threshold_ma(sweep("quadriceps", [300], layers=lay)["motor"])[0])
    assert t[1] > 1.1 * t[0] and t[2] > 1.1 * t[1], t


@pytest.mark.xfail(strict=True, reason="per-unit ratios 1.14 (10 mm) and 1.39 (20 mm) vs the reference's 1.46/2.4 "
                   "(20 mm is outside +-30 %). The reference's numbers are the activating function (second difference "
                   "of Ve over 1 mm nodes) of straight fibres on the axis between two uniform-current discs over a muscle "
                   "half-space; this solver reproduces them (1.45/2.43 isotropic, 1.45/2.37 anisotropic; "
                   "test_field_targets.py). Recruitment drives terminals by E x internode (reference 2.6 'insight'), "
                   "and E along the fibres is less fat-sensitive: its peak on the axis (midway between the electrodes) "
                   "gives 1.33/1.93 (1.33/1.90 with bone below 40 mm of muscle and the hydrogel contact), the ceiling "
                   "for any terminal. The units sit around the motor point under the active electrode, where E is "
                   "24-36 % of its peak and rises only 1.09/1.27 with fat; their most strongly driven terminals spread "
                   "towards the peak (median x -17 mm from the midpoint): 1.14/1.39 (units within 10 mm of the peak "
                   "1.20/1.59). The 5 % motor threshold (set by units ~7 mm into muscle in the gap, ~6 mm beyond the "
                   "active electrode's inner edge) rises 1.26-1.32/1.68-1.78 over fibre seeds 0-2. G1 as written needs passing-axon "
                   "(second-difference) excitation, which the reference itself rules out at 20 mA")
def test_g1_fat_thickness_raises_the_motor_threshold():
    """G1 (reference §2.6/§6, layered model [computed]: two 20 cm² discs 8 cm apart centre to
    centre, skin 1.5 mm): the threshold 10 mm into muscle rises ≈ 1.46× for 10 mm and ≈ 2.4× for
    20 mm of fat relative to 2 mm. Here: the median per-unit threshold ratio of the motor units
    whose terminal lies 8–12 mm into muscle (same seed: same positions relative to the muscle),
    within ±30 % of those factors."""
    r10, r20 = _fat_ratios()
    assert 1.46 * 0.7 <= r10 <= 1.46 * 1.3, r10
    assert 2.4 * 0.7 <= r20 <= 2.4 * 1.3, r20


def test_larger_electrodes_need_less_current_density_for_a_contraction():
    """BMC Sports Sci Med Rehabil 2022, 14:11: 5×5 and 5×9 cm electrodes needed less current
    density than 2×2 cm to reach a visible contraction (quadriceps). Tolerance: the 5 % motor
    threshold divided by electrode area is lower for 5×9 than for 5×5 than for 2×2 cm."""
    dens = []
    for w, l in ((2, 2), (5, 5), (5, 9)):
        t = threshold_ma(sweep("quadriceps", [300], ch=channel("quadriceps", w, l))["motor"])[0]
        dens.append(t / (w * l))
    assert dens[0] > dens[1] > dens[2]


def test_r1_amplitude_recruitment_hmed2018():
    """R1 (Hmed et al. 2018, Comput Biol Med 101:218; parameters via cocofest): normalised
    recruitment λ/λmax = 0.014, 0.074, 0.16, 0.28, 0.45, 0.68, 0.86 at 20, 30, 40, 50, 63, 80,
    100 mA (quadriceps; 5 × 9 cm pair and 300 µs assumed: the set-up is not in the reference).

    Calibration, not prediction: two parameters (motor ``threshold_scale``, the terminals' depth
    range) were fitted to these seven points (models/fibres/motor_pools.json ``r1_fit``; r.m.s.
    error 0.017 over seeds 0–4). Tolerance ±0.15 absolute at every point, fixed before the fit:
    the reference gives no between-subject spread for Hmed's curve (Boërio 2008's I10/I50 and
    I90/I50 are a §7 gap); ±0.15 is about ±10 mA along the steep part of the curve. The default
    fibre sample (seed 0) is checked."""
    target_ma = np.array([20, 30, 40, 50, 63, 80, 100])
    target = np.array([0.014, 0.074, 0.16, 0.28, 0.45, 0.68, 0.86])
    s = rc.StimulusSet.from_arrays(target_ma, 300.0, 30.0, channels=channel("quadriceps"))
    got = rc.recruit(s, "quadriceps").motor_fraction_above[:, 0]
    assert np.all(np.abs(got - target) <= 0.15), got


@pytest.mark.xfail(strict=True, reason="model 0.10/0.29/0.48/0.65 at 200-500 us (at 46 mA, where 131 us just "
                   "starts to recruit) vs Ding 0.30/0.58/0.75/0.85. R1 and R2 conflict in shape, whatever the Adelta "
                   "anchor: Hmed's curve itself (R1, the calibration) with one Weiss chronaxie for every unit, at the "
                   "amplitude where 131 us starts, gives 0.10/0.25/0.39/0.52 for c = 459 us (Mogyoros, S1; worst "
                   "error 0.36), 0.16/0.35/0.51/0.63 for 232 us, 0.05-0.08/0.15-0.20/0.28-0.33/0.43-0.47 for "
                   "0.7-5 ms; only c <= ~100 us (incompatible with S1) comes within 0.15. Ding's exponential is "
                   "concave from its onset, Hmed's tanh convex: R2 needs a recruitment curve steeper near onset than "
                   "Hmed's. A joint minimax fit (terminal depth_fraction [0.7, 1], threshold_scale 0.292) meets both "
                   "within +-0.15 only by using R1's tolerance for that steeper curve, and raises the quadriceps 5 % "
                   "motor threshold to 32 mA at 300 us, above the Adelta pain anchor at 50/100 us (134 vs 112, 73 vs "
                   "66 mA: S4 fails) because Adelta's chronaxie (232 us, Guillen's MRG model) is shorter than the "
                   "motor one. Alon 1983 (selectivity improves at shorter widths) and Gracanin & Trnkoczy 1975 (0.3 ms "
                   "less painful than 1 ms at equal torque) point to a pain chronaxie longer than motor, which would "
                   "keep S4 at short widths, but it removes the model's only route to wider-pulses-hurt-less "
                   "(test_pulse_width_effect_changes_sign_with_electrode_area_and_depth). Ding's SCI set-up (amplitude, "
                   "electrodes, force rather than unit count) is assumed")
def test_r2_pulse_width_recruitment_ding2007():
    """R2 (Ding et al. 2007, Muscle Nerve 36:214): A(PW)/A_max = 0.30, 0.58, 0.75, 0.85 at 200,
    300, 400, 500 µs and zero below 131 µs. The amplitude is chosen where 131 µs just starts to
    recruit (fraction ≤ 2 %); fractions are normalised by the 1000 µs value. Tolerance ±0.15."""
    pws = np.array([131, 200, 300, 400, 500, 1000])
    f = sweep("quadriceps", pws, shape="symmetric_biphasic")["motor"]
    col = np.flatnonzero(f[0] <= 0.02)[-1]
    got = f[1:5, col] / f[5, col]
    assert np.all(np.abs(got - np.array([0.30, 0.58, 0.75, 0.85])) <= 0.15), got


# ----------------------------------------------------------------------------- afferent side

ANCHOR = Channel(id="A", site="lumbar_erector_spinae", side="left", spacing_cm=4.0, orientation="along_fibres",
                 electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 5.0},) * 2)


def test_afferent_thresholds_sit_at_the_discomfort_calibration_anchors():
    """Calibration anchors of the afferent model (models/discomfort/discomfort.json
    ``calibration``; assumed typical clinical orders of magnitude — the reference has no published
    absolute transcutaneous thresholds, §7): 5 × 5 cm pair 4 cm apart over the average lumbar
    erector spinae, 250 µs, 50 Hz, a man: first sensation (5 % of Aβ) at 8 mA, 5 % of Aδ at the
    pain threshold 3.5 × 8 = 28 mA. recruit's afferent thresholds must sit there (tolerance 3 %,
    the discomfort calibration test's), under both electrodes."""
    s = rc.StimulusSet.from_arrays(10.0, 250.0, 50.0, channels=ANCHOR)
    r = rc.recruit(s, "lumbar_erector_spinae", person=dsc.Person())
    np.testing.assert_allclose(r.afferent_threshold_a["abeta"][0] * 1e3, 8.0, rtol=0.03)
    np.testing.assert_allclose(r.afferent_threshold_a["adelta"][0] * 1e3, 28.0, rtol=0.03)


def test_s1_sensory_chronaxie_and_its_ratio_to_motor():
    """S1 (Mogyoros et al. 1996, Brain 119:439): human sensory τSD 665 ± 182 µs, motor 459 ± 126 µs;
    the sensory/motor ratio should be ≈ 1.45 (tolerance 1.2–1.8, the reference's). Here: Weiss fits
    (linear charge law) of recruit's first-sensation threshold (5 % of Aβ) and first-twitch
    threshold (5 % of the motor pool) over 50–1000 µs monophasic pulses on the calibration anchor's
    electrodes. Tolerance: sensory τSD within ±1 SD of Mogyoros's mean, ratio within 1.2–1.8."""
    pws = np.array([50.0, 100.0, 200.0, 300.0, 500.0, 1000.0])
    f = sweep("lumbar_erector_spinae", pws, ch=ANCHOR)
    r = rc.recruit(rc.StimulusSet.from_arrays(10.0, pws, 20.0, channels=ANCHOR, shape="monophasic",
                                              secondary_amplitude_ratio=0.01), "lumbar_erector_spinae")
    _, c_sens = weiss_fit(pws * 1e-6, r.afferent_threshold_a["abeta"][:, 0])
    _, c_mot = weiss_fit(pws * 1e-6, threshold_ma(f["motor"]))
    assert 665e-6 - 182e-6 <= c_sens <= 665e-6 + 182e-6, c_sens
    assert 1.2 <= c_sens / c_mot <= 1.8, (c_sens, c_mot)


def test_motor_point_placement_gobbo2011():
    """Gobbo et al. 2011 (Eur J Appl Physiol 111:2451; tibialis anterior and vastus lateralis):
    with the cathode over the main motor point (MP mode) the evoked torque was higher and the
    stimulation more comfortable than with electrodes after common reference charts (RC mode).
    Set-up [assumed; the abstract gives no distances]: quadriceps, 5 × 9 cm pair 3 cm apart,
    300 µs 50 Hz; MP mode = motor point under the active electrode's centre (offset 0,
    models/sites/motor_points.json), RC mode = active electrode 4 cm along the fibres from the
    motor point, away from the second electrode. Tolerance (direction only, no published
    magnitude): MP mode needs less current for 5 % and for 20 % of the motor units, and its
    predicted NRS (emsim.physiology.discomfort.predict on the recruitment) at 20 % of the units
    is lower."""
    amps = np.geomspace(5.0, 200.0, 200)
    s = rc.StimulusSet.from_arrays(amps, 300.0, 50.0, channels=channel("quadriceps"))
    out = []
    for offset in ((0.0, 0.0), (-0.04, 0.0)):
        r = rc.recruit(s, "quadriceps", motor_point_offset_m=offset)
        f = r.motor_fraction_above[:, 0]
        assert f[-1] >= 0.2
        k5, k20 = np.argmax(f >= 0.05), np.argmax(f >= 0.2)
        out.append((amps[k5], amps[k20], dsc.predict(r).peak[k20]))
    (mp5, mp20, mp_nrs), (rc5, rc20, rc_nrs) = out
    assert mp5 < rc5 and mp20 < rc20, out
    assert mp_nrs < rc_nrs, out
