"""Published NMES fatigue effects that the pool fatigue model must reproduce.

Each test simulates the published protocol on ``quadriceps_ding2003`` (the muscle the studies
used, except where stated), cites its source, and states its tolerance. Sources, protocols and
the spread behind each tolerance are in ``docs/literature/muscle_fatigue_effects.md`` (B-numbers
refer to its summary table). Where the model does not reproduce an effect the test is an
``xfail(strict=True)`` with the measured value in the reason, so a fix shows up as XPASS.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emsim.physiology.muscle import load_muscle, simulate

from ._muscle_protocols import decline, ramp, recruitment_for, repeated, sustained, train

pytestmark = pytest.mark.validation

QUAD = load_muscle("quadriceps_ding2003")


def _matched_decline(freq_hz, on_s, period_s, n, level, muscle=QUAD):
    r = recruitment_for(muscle, freq_hz, on_s, level)
    return decline(simulate(repeated(freq_hz, on_s, period_s, n), muscle, recruitment=r, trace=False))


def test_frequency_at_matched_initial_force_bickel2012():
    """B1a. Bickel, Gregory & Azuero 2012 (J Rehabil Res Dev 49(2)): quadriceps, initial torque
    matched at 25 % MVIC; fatigue 25 ± 14 % with low frequency/long pulses vs 50 ± 13 % with high
    frequency. Protocol simulated: 12 vs 60 Hz, 0.3 s trains every 1 s (Binder-Macleod lab
    timing, Kesar 2006), 150 trains, 25 % of F_max.
    Tolerance (from the between-subject SD): low 10–40 %, high 35–65 %, high/low ≥ 1.4."""
    low = _matched_decline(12, 0.3, 1.0, 150, 0.25)
    high = _matched_decline(60, 0.3, 1.0, 150, 0.25)
    assert 0.10 <= low <= 0.40, low
    assert 0.35 <= high <= 0.65, high
    assert high / low >= 1.4, (low, high)


def test_fatigue_rises_with_frequency_at_fixed_force_binder_macleod1995():
    """B1b. Binder-Macleod, Halden & Jungles 1995 (Med Sci Sports Exerc 27:556): at each force
    level, fatigue increased from 20 to 40 to 60 pps. Tolerance: strict ordering; each step at
    least 2 percentage points (the abstract gives no magnitudes)."""
    d = [_matched_decline(f, 0.3, 1.0, 150, 0.2) for f in (20, 40, 60)]
    assert d[0] + 0.02 <= d[1] and d[1] + 0.02 <= d[2], d


def test_higher_intensity_fatigues_more_binder_macleod1995():
    """B1b. Binder-Macleod 1995: at the same frequency, fatigue was greater at 50 % than at 20 %
    MVC. Protocol: 40 pps, 0.3 s every 1 s, 150 trains. Tolerance: ordering, ≥ 1 point."""
    low = _matched_decline(40, 0.3, 1.0, 150, 0.2)
    high = _matched_decline(40, 0.3, 1.0, 150, 0.5)
    assert high >= low + 0.01, (low, high)


def test_absolute_decline_at_half_duty_cycle_bickel2004():
    """B3d. Bickel et al. 2004 (J Rehabil Res Dev 41:33): able-bodied quadriceps, six 200 µs
    pulses 70 ms apart, 180 contractions at 50 % duty cycle: peak torque fell 44 %.
    Recruitment 0.5 assumed (intensity not given). Tolerance ± 15 points (group spread)."""
    n = 6
    on = (n - 1) * 0.070 + 0.070
    p = np.concatenate([k * 2 * on + np.arange(n) * 0.070 for k in range(180)])
    d = decline(simulate(p, QUAD, recruitment=0.5, trace=False))
    assert abs(d - 0.44) <= 0.15, d


@pytest.mark.parametrize("rest_s", [(10, 50), (50, 120)])
def test_shorter_rest_fatigues_more_rankin_stokes1992(rest_s):
    """B3a. Rankin & Stokes 1992 (Clin Rehabil 6:195): 10 contractions of 10 s at 30 % MVC;
    the shorter the rest (10 < 50 < 120 s), the greater the fatigue and the less total work.
    Frequency 35 Hz assumed. Tolerance: ordering of end force and of total FTI."""
    r = recruitment_for(QUAD, 35, 10, 0.3)
    short, long_ = (simulate(repeated(35, 10, 10 + rest, 10), QUAD, recruitment=r, trace=False)
                    for rest in rest_s)
    assert short.peak_force_n[0, -1] < long_.peak_force_n[0, -1]
    assert short.fti_total_ns[0] < long_.fti_total_ns[0]


def test_slow_recovery_of_low_frequency_force_rankin_stokes1992():
    """B7a. Rankin & Stokes 1992: after 10 × 10 s at 30 % MVC, 20 Hz force was ≈ 50 % at 1 h,
    70–80 % at 24 h, ≈ 90 % at 48 h; 50 Hz force 68–80 % at 1 h. Simulated: 35 Hz, 50 s rest,
    2 s test trains. Tolerance: 20 Hz ±15/±12/±10 points at 1/24/48 h; 50 Hz at 1 h 74 ± 12 %,
    and 50 Hz recovered more than 20 Hz at 1 h (low-frequency fatigue)."""
    r = recruitment_for(QUAD, 35, 10, 0.3)
    fatiguing = repeated(35, 10, 60, 10, start=10.0)
    end = fatiguing[-1] + 1.0
    ratio = {}
    for f in (20, 50):
        rows = [train(f, 2.0)] + [np.concatenate([fatiguing, train(f, 2.0, start=end + h * 3600)])
                                  for h in (1, 24, 48)]
        peaks = [simulate(row, QUAD, recruitment=r, trace=False).peak_force_n[0, -1] for row in rows]
        ratio[f] = np.array(peaks[1:]) / peaks[0]
    assert abs(ratio[20][0] - 0.50) <= 0.15, ratio
    assert abs(ratio[20][1] - 0.75) <= 0.12, ratio
    assert abs(ratio[20][2] - 0.90) <= 0.10, ratio
    assert abs(ratio[50][0] - 0.74) <= 0.12, ratio
    assert ratio[50][0] > ratio[20][0]


def test_low_frequency_fatigue_ratio_falls_binder_macleod_mcdermond1992():
    """D4. Binder-Macleod & McDermond 1992 (Phys Ther 72:95): after fatiguing stimulation the
    force fell at all frequencies and more at low ones (the 20:100 Hz ratio falls).
    Protocol: 8 s on / 12 s off at 40 Hz until about half the initial force (25 contractions),
    1 s test trains at 20 and 100 Hz 5 s later. Tolerance: ratio drops by ≥ 0.05."""
    fatiguing = repeated(40, 8, 20, 25)
    t_test = fatiguing[-1] + 5.0
    res = {}
    for f in (20, 100):
        before = simulate(train(f, 1.0), QUAD, recruitment=0.5, trace=False).peak_force_n[0, 0]
        after = simulate(np.concatenate([fatiguing, train(f, 1.0, start=t_test)]), QUAD,
                         recruitment=0.5, trace=False).peak_force_n[0, -1]
        res[f] = (before, after)
    ratio_before = res[20][0] / res[100][0]
    ratio_after = res[20][1] / res[100][1]
    assert res[20][1] < res[20][0] and res[100][1] < res[100][0]
    assert ratio_after <= ratio_before - 0.05, (ratio_before, ratio_after)


def _guerin_gain(per_train=False):
    freqs, fq = [], 60
    for k in range(30):
        if k + 1 in (2, 3, 5, 8, 12, 20):
            fq -= 5
        freqs.append(fq)
    const = repeated(60, 8, 20, 30)
    stepped = np.concatenate([train(f, 8, start=20 * k) for k, f in enumerate(freqs)])
    a = simulate(const, QUAD, recruitment=0.5, trace=False)
    b = simulate(stepped, QUAD, recruitment=0.5, trace=False)
    # the study compared average force: the force-time integral of the train (8 s on, plus the
    # same short relaxation tail in both arms) is its average force times 8 s
    gains = b.fti_ns[0] / a.fti_ns[0] - 1.0
    return (gains[-1], gains) if per_train else gains[-1]


def test_stepwise_frequency_reduction_preserves_force_binder_macleod_guerin1990():
    """B4a. Binder-Macleod & Guerin 1990 (Phys Ther 70:619): 30 trains of 8 s on / 12 s off;
    reducing 60 → 30 pps in 5-pps steps at trains 2, 3, 5, 8, 12, 20 gave 46 % more force in the
    last train than constant 60 pps. The abstract compares average force per train, so the test
    compares the trains' force-time integrals (both 8 s). Tolerance: +20 to +75 %.

    Partly fitted: the high-frequency-fatigue cost (``fatigue.hff_pulse_cost``) was chosen by
    hand on this protocol (model +37 %; without that deficit +4 %) under the limit of
    :func:`test_frequency_at_matched_initial_force_bickel2012`. Its rate threshold (25 ms) is
    assumed (Jones 1996), its recovery (86.6 s) extrapolated from the ~1 min half time of
    propagation failure after a sustained MVC (Bellemare & Garzaniti 1988); neither is fitted. The
    independent checks are the separation from the fifth train on (Guerin: significant from
    contraction 5), the recovery test and the within-train fade tests below."""
    gain, per_train = _guerin_gain(per_train=True)
    assert 0.20 <= gain <= 0.75, gain
    # the arms are identical at train 1 and must have separated by train 5 (Guerin: p < .05
    # from the 5th contraction), by at least 5 % of average force
    assert per_train[0] == pytest.approx(0.0, abs=1e-9) and per_train[4] >= 0.05, per_train


def _doublet_gain(fatigued: bool, muscle=QUAD):
    n, ipi = 6, 0.070
    cft = np.arange(n) * ipi
    vft = np.concatenate([[0.0], 0.005 + np.arange(n - 1) * ipi])
    pre = (np.concatenate([k * 0.84 + cft for k in range(180)]) if fatigued else np.zeros(0))
    start = pre[-1] + 1.0 if fatigued else 0.0
    out = []
    for test in (cft, vft):
        p = np.concatenate([pre, start + test])
        out.append(simulate(p, muscle, recruitment=0.5, trace=False).fti_ns[0, -1])
    return out[1] / out[0] - 1.0


def test_doublet_augmentation_larger_when_fatigued_binder_macleod1998():
    """B5b. Binder-Macleod et al. 1998 (J Neurophysiol 79:1858) and Binder-Macleod & Lee 1996:
    the catch-like augmentation of an initial doublet is larger in fatigued than in rested
    muscle. Protocol of Bickel et al. 2004 (six pulses 70 ms apart; VFT with the first two 5 ms
    apart; fatigued after 180 such contractions at 50 % duty cycle). Tolerance: ordering."""
    assert _doublet_gain(True) > _doublet_gain(False)


def test_doublet_augments_torque_time_integral_in_fatigued_muscle_bickel2004():
    """B5a. Bickel et al. 2004 (J Rehabil Res Dev 41:33): in fatigued able-bodied quadriceps an
    initial 5 ms doublet raised the torque–time integral by 18 % over the constant train.
    Tolerance: 8–30 %.

    Fitted: the catch-like gain's rate ``fatigue.catch_gain`` (1.4, a gain on calcium
    sensitivity, Km/(1 + G)) was chosen by hand on this protocol with its saturation 2 (model
    +18.2 % fatigued, +10.3 % rested; +17.2 % fatigued while the economy of sustained
    activation was on; without the gain −10.6 %: the Ding core's own catch-like
    effect lasts τc = 20 ms and the VFT is 65 ms shorter; with saturation 0.5 at most +2.9 %).
    The saturation, interval (10 ms, standing out from its neighbour by 2×) and decay (1 s) are
    assumed (Burke, Rudomin & Zajac 1970; Binder-Macleod & Lee 1996). The independent checks are
    the ordering test above and the fused-tetanus bound of tests/physiology/test_muscle_catch.py
    (Binder-Macleod et al. 1998)."""
    assert 0.08 <= _doublet_gain(True) <= 0.30


@pytest.mark.xfail(strict=True, reason="model: the type-I-poor variant (type I area 0.10, the "
                   "SCI stand-in of test_fewer_type_I_fibres_fatigue_more_bickel2004) gets +20.0 % "
                   "fatigued, more than able-bodied muscle (+18.2 %); published +6 % (chronic SCI). "
                   "The fatigued gain is carried by the Km (low-frequency fatigue) deficits (without "
                   "them +6.4 %, measured with the economy on: +18.6 vs +17.2 % then), and the SCI "
                   "stand-in, like Bickel's SCI muscles, fatigues more (0.45 vs 0.39), so it gains more. "
                   "Rejected as unsourced or contradicted: SCI "
                   "fatigue without a Km component (+5.7 % at a refitted 0.67 decline; paralysed "
                   "muscle shows low-frequency fatigue and doublets help it most then), a faster "
                   "stand-in (+21.6 %), the Ding 2007 SCI set (+27.0 %, decline 0.04), fibre-type "
                   "weights (docs/literature/muscle_fatigue_effects.md, sessions 8b and 9). Session 9c: "
                   "Bickel's methods could not be read; every protocol reading the abstract allows "
                   "(intensity 0.3-1.0, period 0.70-1.0 s, test 0.84-60 s later, VFT definition) gives "
                   "+19.5 to +28.1 %, and only CFT/VFT interleaved <1 s apart drops it (+1.2 %), "
                   "taking able-bodied with it (+0.1 %) through the assumed 1 s catch decay")
def test_doublet_gain_small_in_fast_sci_muscle_bickel2004():
    """B5a. Bickel et al. 2004: in fatigued chronic SCI quadriceps (fast, type II) the initial
    5 ms doublet raised the torque–time integral by only 6 % (acute SCI 0 %), against 18 % in
    able-bodied muscle. Simulated: the able-bodied protocol on the model muscle with its type I
    area fraction cut from 0.45 to 0.10 (assumed for chronic SCI). Tolerance: 0–12 %."""
    fast = dataclasses.replace(QUAD, pool=dataclasses.replace(QUAD.pool, type1_area_fraction=0.10))
    gain = _doublet_gain(True, fast)
    assert 0.0 <= gain <= 0.12, gain


def _sdss_and_single_fatigue(m):
    """Sayenko 2014's protocol on muscle ``m``: (fatigue index one electrode, four in rotation).

    2 min, 1 s on / 1 s off at matched initial force (20 % of F_max); one electrode at 40 Hz, or
    four quarter-size regions each fed by its own channel at 10 Hz, 25 ms apart (40 Hz
    composite). Each region is a row of the model: rows do not share the muscle-level occlusion
    Ω (each row sees only its own force, a quarter of the muscle's)."""
    r_ses = recruitment_for(m, 40, 1.0, 0.2)
    ses = simulate(repeated(40, 1.0, 2.0, 60), m, recruitment=r_ses, trace=False)
    rows = [repeated(10, 1.0, 2.0, 60, start=k * 0.025) for k in range(4)]
    unit = simulate(np.stack(rows), m, recruitment=0.25, fatigue=False, dt=1e-3)
    r_sub = min(0.25, 0.25 * 0.2 * m.max_force / unit.force_n[:, :1200].sum(axis=0).max())
    sdss = simulate(np.stack(rows), m, recruitment=r_sub, dt=2e-3)
    total = sdss.force_n.sum(axis=0)
    t = sdss.t
    first = total[(t >= 0) & (t < 1.3)].max()
    last = total[(t >= 118) & (t < 119.3)].max()
    return ses.fatigue_index[0], last / first


@pytest.mark.xfail(strict=True, reason="model with its muscle-level occlusion (quadriceps, gamma 1): fatigue index "
                                       "one electrode 0.543, four in rotation 0.794, ratio 1.46 < 1.5, and that with "
                                       "each quarter region's occlusion computed from its own force only (a quarter "
                                       "of the muscle's), which favours rotation; one occlusion over the four rows, "
                                       "emulated (session 11), gives 0.744, ratio 1.37. Without occlusion the ratio "
                                       "is 1.61 (the per-unit firing-rate effect alone, test below). The program "
                                       "format has no electrode position along a muscle, so emsim.simulate cannot "
                                       "place four electrodes over one muscle's disjoint regions at all (channels on "
                                       "one site and side share units)")
def test_spatially_distributed_stimulation_fatigues_less_sayenko2014():
    """B6a. Sayenko et al. 2014 (Eur J Appl Physiol 114:793) and Nguyen et al. 2011: four
    electrodes in rotation (40 Hz composite, 10 Hz per sub-pool) fatigue far less than one
    electrode at 40 Hz at matched initial torque; fatigue index ratio ≥ 1.5 (the SCI case 3.3×).
    Simulated with the quadriceps parameters as shipped (:func:`_sdss_and_single_fatigue`)."""
    fi_ses, fi_sdss = _sdss_and_single_fatigue(QUAD)
    assert fi_sdss / fi_ses >= 1.5, (fi_ses, fi_sdss)


def test_spatially_distributed_stimulation_per_unit_rate_alone_sayenko2014():
    """B6a, the mechanism Sayenko 2014 give for it (each sub-pool fires at a quarter of the
    rate): with the muscle-level occlusion off in both arms (so that the rows' unshared Ω
    plays no part), rotation fatigues at least 1.5× less (fatigue index ratio). Not the
    published comparison: that is the strict xfail above, with occlusion on. Model 1.61."""
    m = dataclasses.replace(QUAD, fatigue=dataclasses.replace(QUAD.fatigue, occlusion_gain=0.0))
    fi_ses, fi_sdss = _sdss_and_single_fatigue(m)
    assert fi_sdss / fi_ses >= 1.5, (fi_ses, fi_sdss)


def test_unit_classes_in_the_burke_fatigue_test_burke1973():
    """B8a. Burke et al. 1973 (J Physiol 234:723): 40 Hz, 330 ms trains once a second for
    2 min; fatigue index (force at 2 min / initial) < 0.25 for FF units and > 0.75 for S units,
    FR in between or above. Simulated on a small recruited fraction (single units: little
    muscle-level occlusion). Tolerance: the class thresholds; ordering S > FR > FF.

    Partly fitted: the class fatigue rates (``pool.fatigability_*``, S:FR:FF = 1:3:10) were
    chosen by hand with ``fatigue.drive_scale`` (fitted to Bickel 2004) so that S ends above
    0.75 and FF below 0.25 with its decline spread over the 2 min; ``fatigue.pulse_cost`` was
    refitted with this test as a constraint (session 5). Model S 0.86, FR 0.57, FF 0.20: FR
    sits below Burke's FR band (> 0.75), in Goslow's intermediate band. The independent check
    is :func:`test_fewer_type_I_fibres_fatigue_more_bickel2004`."""
    p = np.concatenate([k + np.arange(0, 0.33, 1 / 40) for k in range(120)])
    r = simulate(p, QUAD, recruitment=0.05, trace=False)
    fi = r.cell_peak_force_n[0, -1] / r.cell_peak_force_n[0, 0]
    names = [c["unit_class"] for c in r.cells]
    s, fr, ff = (fi[names.index(n)] for n in ("S", "FR", "FF"))
    assert s > 0.75, fi
    assert ff < 0.25, fi
    assert s > fr > ff, fi


def test_fewer_type_I_fibres_fatigue_more_bickel2004():
    """B8b. Bickel et al. 2004 (J Rehabil Res Dev 41:33): under the same protocol (180
    contractions, six pulses 70 ms apart, 50 % duty cycle) quadriceps of chronic SCI, which
    shift to fast type II fibres (review PMC4693289), declined 67 % against 44 % in able-bodied
    muscle. Not fitted: the model muscle with its type I area fraction cut from 0.45 to 0.10
    (assumed for chronic SCI; everything else unchanged) must decline more. Tolerance: at least
    5 points more (the able-bodied/SCI difference was 23 points; model +5.6 points (0.39 →
    0.45); +6.4 (0.44 → 0.50) while the economy of sustained activation was on; the continuous
    Potvin spread this replaced gave +0.4, because a force-weighted mean of 1 hides fibre type)."""
    n = 6
    p = np.concatenate([k * 2 * n * 0.070 + np.arange(n) * 0.070 for k in range(180)])
    fast = dataclasses.replace(QUAD, pool=dataclasses.replace(QUAD.pool, type1_area_fraction=0.10))
    ab, sci = (decline(simulate(p, m, recruitment=0.5, trace=False)) for m in (QUAD, fast))
    assert sci >= ab + 0.05, (ab, sci)


def test_erector_spinae_twitch_endurance_mccully2019():
    """B9a. McCully et al. 2019 (lumbar erector spinae, electrically evoked twitches in three
    consecutive 3-min stages at 2, 4 and 6 Hz): endurance index 0.70 / 0.33 / 0.19 at the end of
    each stage, the erector spinae less enduring than vastus lateralis. The index is taken as the
    peak rate of force rise (the study measured acceleration) of the last 5 twitches of a stage
    over the first 5 of the protocol. Tolerance ±0.15 / ±0.10 / ±0.08 (the study's spread), and
    the quadriceps parameter set more enduring at every stage."""
    def index(muscle):
        parts, stages, t0 = [], [], 0.0
        for f in (2, 4, 6):
            parts.append(t0 + np.arange(0, 180 - 1e-9, 1.0 / f))
            stages.append((t0, t0 + 180, f))
            t0 += 180
        p = np.concatenate(parts)
        r = simulate(p, muscle, dt=1e-3)
        rate = np.gradient(r.force_n[0], r.t)
        peaks = []
        for a, b, f in stages:
            idx = np.searchsorted(r.t, p[(p >= a) & (p < b)])
            w = int(round(1.0 / f / 1e-3))
            peaks.append(np.array([rate[i:i + w].max() for i in idx]))
        ref = peaks[0][:5].mean()
        return np.array([pk[-5:].mean() / ref for pk in peaks])

    es = index(load_muscle("lumbar_erector_spinae"))
    quad = index(QUAD)
    assert np.all(np.abs(es - [0.70, 0.33, 0.19]) <= [0.15, 0.10, 0.08]), es
    assert np.all(quad > es), (quad, es)


def test_high_frequency_fatigue_recovers_within_minutes():
    """B7b. Froyd, Millet & Noakes 2013 (J Physiol 591:1339): evoked knee-extensor force recovers
    significantly within the first 1–2 min after a fatiguing bout; Jones 1996: high-frequency
    fatigue recovers within seconds to a minute. Protocol: 10 trains of 8 s at 60 Hz every 20 s
    (recruitment 0.5), 1 s test trains at 60 Hz 3 s and 120 s after the bout. Tolerance (the
    abstracts give no size; "significant" taken as): the 2-min test recovers at least 10 % of
    the rested force over the 3-s test, and at least a fifth of what was lost."""
    bout = repeated(60, 8, 20, 10)
    end = bout[-1]
    rested = simulate(train(60, 1.0), QUAD, recruitment=0.5, trace=False).peak_force_n[0, 0]
    early, late = (simulate(np.concatenate([bout, train(60, 1.0, start=end + d)]), QUAD,
                            recruitment=0.5, trace=False).peak_force_n[0, -1] for d in (3.0, 120.0))
    assert late - early >= 0.10 * rested, (rested, early, late)
    assert late - early >= 0.2 * (rested - early), (rested, early, late)


# --- Within-train fade and sustained stimulation (B10). Few studies publish the force course of a
# single rested train at 40-100 Hz; these are the ones whose numbers were read (abstracts). ---


def test_sustained_high_rate_loses_more_force_than_an_mvc_bigland_ritchie1979():
    """B10a. Bigland-Ritchie, Jones & Woods 1979 (Exp Neurol 64:414): maximal ulnar-nerve
    stimulation of adductor pollicis; during continuous 50 and 80 Hz stimulation force was lost
    faster than in a sustained MVC, and a rate reduced progressively from 80 to 20 Hz lost force
    like the MVC. A 60 s MVC loses 30–50 % (Bigland-Ritchie et al. 1982, J Physiol 330:265).
    Simulated: 60 s of continuous 50, 80 and 80 → 20 Hz at full recruitment (quadriceps
    parameters; no adductor pollicis set). Tolerance: at 50 and 80 Hz the force at 60 s is below
    0.70 of the first second (more loss than the smallest MVC loss), and the reduced rate keeps a
    larger force-time integral than constant 80 Hz ("muscle wisdom", Marsden et al. 1983)."""
    res = {name: sustained(simulate(p, QUAD, recruitment=1.0, dt=2e-3), 60.0)
           for name, p in (("50", np.arange(0, 60, 1 / 50)), ("80", np.arange(0, 60, 1 / 80)),
                           ("80-20", ramp(80, 20, 60.0)))}
    assert res["50"][1] < 0.70 and res["80"][1] < 0.70, res
    assert res["80-20"][0] > res["80"][0], res


@pytest.mark.xfail(strict=True, reason="model: force at 60 s of an 80 -> 20 Hz ramp 0.23 of the "
                   "first second (published: like a 60 s MVC, 0.50-0.70). The Ding-mechanism "
                   "deficits are driven by force x time, so a sustained full-recruitment "
                   "contraction fatigues far more than the intermittent protocols they were "
                   "fitted to (Bickel 2004, Bickel 2012); see also Fuglevand & Keen 2003 below")
def test_progressively_reduced_rate_loses_force_like_an_mvc_bigland_ritchie1979():
    """B10b. Bigland-Ritchie, Jones & Woods 1979: maximal nerve stimulation at a rate reduced
    progressively from 80 to 20 Hz lost force like a sustained MVC, which loses 30–50 % in 60 s
    (Bigland-Ritchie et al. 1982). Simulated: linear 80 → 20 Hz ramp over 60 s, full recruitment.
    Tolerance: force at 60 s 0.50–0.70 of the first second, ± 0.10 (the ramp's exact time course
    and the MVC duration were not read)."""
    _, end = sustained(simulate(ramp(80, 20, 60.0), QUAD, recruitment=1.0, dt=2e-3), 60.0)
    assert 0.40 <= end <= 0.80, end


def _fuglevand_keen():
    const = sustained(simulate(np.arange(0, 60, 1 / 30), QUAD, recruitment=1.0, dt=2e-3), 60.0)
    falling = sustained(simulate(ramp(30, 15, 60.0), QUAD, recruitment=1.0, dt=2e-3), 60.0)
    return const[0], falling[0]


def test_declining_rate_lowers_the_endurance_index_fuglevand_keen2003():
    """B10c. Fuglevand & Keen 2003 (J Physiol 549:865): supramaximal ulnar-nerve stimulation of
    adductor pollicis for 60 s; endurance index (force-time integral over first-second force ×
    60 s) 0.90 ± 0.13 at a constant 30 Hz, 0.76 ± 0.16 with the rate falling from 30 to 15 Hz: at
    physiological rates, slowing the rate does not preserve force. Tolerance: ordering."""
    const, falling = _fuglevand_keen()
    assert const > falling, (const, falling)


@pytest.mark.xfail(strict=True, reason="model (quadriceps parameters, full recruitment): endurance "
                   "index 0.58 at a constant 30 Hz, 0.55 for 30 -> 15 Hz (published 0.90 and 0.76). "
                   "No high-frequency fatigue at 30 Hz: the force-driven Ding-mechanism deficits "
                   "overshoot under continuous stimulation. The adductor pollicis (about 80 % type I) "
                   "is more fatigue resistant than the quadriceps, but the pool's class rates are "
                   "normalised to a force-weighted mean of 1, so the type I fraction hardly moves "
                   "the whole-muscle rate (0.58 at 80 % type I)")
def test_endurance_index_of_sustained_30_hz_stimulation_fuglevand_keen2003():
    """B10c. Fuglevand & Keen 2003: endurance index 0.90 ± 0.13 (constant 30 Hz) and
    0.76 ± 0.16 (30 → 15 Hz) over 60 s. Tolerance: mean ± 1 SD."""
    const, falling = _fuglevand_keen()
    assert 0.77 <= const <= 1.0 and 0.60 <= falling <= 0.92, (const, falling)


def test_80_and_100_hz_at_matched_force_fatigue_alike_russ2002():
    """B10d. Russ, Vandenborne, Walter, Elliott & Binder-Macleod 2002 (J Appl Physiol 92:1978):
    medial gastrocnemius, 150 trains at 80 or 100 Hz with equal initial force; 600 more pulses
    (23.5 %) at 100 Hz gave similar rates and amounts of fatigue. Trains of 200 ms (17 vs 21
    pulses, derived from those two numbers), one per second (assumed, Binder-Macleod laboratory
    timing), initial peak 30 % of F_max (assumed); quadriceps parameters. Tolerance: the two
    declines within 5 points.

    Not independent: the per-pulse costs' rate cap (``fatigue.pulse_rate_cap``, 12.5 ms: above
    80 Hz extra pulses cost nothing more per second) comes from this study (its fatigue result
    and its 31P-NMR finding of equal ATP turnover at 80 and 100 Hz); the 80 Hz onset is assumed.
    Model 0.666 vs 0.664 (without the cap 0.666 vs 0.728, the high-frequency weight being linear
    in the rate)."""
    d = {}
    for f in (80, 100):
        one = np.arange(0, 0.2 + 1e-9, 1 / f)
        r = 0.3 * QUAD.max_force / simulate(one, QUAD, fatigue=False, trace=False).peak_force_n[0, 0]
        d[f] = decline(simulate(np.concatenate([k + one for k in range(150)]), QUAD,
                                recruitment=r, trace=False))
    assert abs(d[100] - d[80]) <= 0.05, d


def _russ_2002b():
    rows = []
    for f in (20, 40, 80):
        for on in (0.3, 0.6, 1.2):
            res = simulate(repeated(f, on, 2.0, 150), QUAD, recruitment=0.5, trace=False)
            rows.append((res.peak_force_n[0, 0], res.fti_ns[0, 0], decline(res)))
    peak, fti, d = np.array(rows).T
    return np.corrcoef(peak, d)[0, 1] ** 2, np.corrcoef(fti, d)[0, 1] ** 2


def test_fatigue_follows_peak_force_more_than_fti_russ2002():
    """B10e. Russ, Vandenborne & Binder-Macleod 2002 (J Appl Physiol 93:469): medial
    gastrocnemius, 150 trains of 20, 40 or 80 Hz lasting 300, 600 or 1 200 ms; fatigue correlated
    with the initial peak force (r² 0.74–0.85), not with the initial or total force-time
    integral. Simulated: all nine combinations, one train every 2 s, recruitment 0.5 (the same
    intensity; both assumed). Tolerance: r² with peak force above r² with the first train's FTI."""
    r2_peak, r2_fti = _russ_2002b()
    assert r2_peak > r2_fti, (r2_peak, r2_fti)


@pytest.mark.xfail(strict=True, reason="model: r2 with initial peak force 0.68, with FTI 0.55 "
                   "(published 0.74-0.85 and no correlation): the Ding-mechanism deficits are driven "
                   "by force x time, so 1 200 ms trains fatigue far more than 300 ms trains of the "
                   "same peak (20 Hz: 0.55 vs 0.31)")
def test_fatigue_correlates_with_peak_force_russ2002():
    """B10e. Russ, Vandenborne & Binder-Macleod 2002: r² between fatigue and initial peak force
    0.74–0.85. Protocol as above. Tolerance: r² ≥ 0.74."""
    r2_peak, _ = _russ_2002b()
    assert r2_peak >= 0.74, r2_peak
