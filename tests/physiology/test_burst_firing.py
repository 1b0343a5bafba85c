"""Action potentials per kHz burst (emsim.physiology.burst_firing) and their use in the afferent drive.

Tests without a mark read the shipped table only; the regeneration test runs Brian2
(``needs_compiler``, ``slow``).
"""

import dataclasses

import numpy as np
import pytest

from emsim.physiology import burst_firing as bf
from emsim.physiology import cutaneous as cut
from emsim.physiology import discomfort as dsc
from emsim.physiology import recruitment as rc
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.program.model import Channel

SITE = "lumbar_erector_spinae"


def channel():
    return Channel(id="A", site=SITE, side="left", spacing_cm=4.0, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 5.0},) * 2)


def test_shipped_table_covers_the_afferent_and_motor_classes_and_says_how_it_was_made():
    t = bf.load_burst_firing()
    assert {"abeta", "adelta", "c", "motor"} <= set(t.counts)
    assert t.meta["generated_by"] == "python -m emsim.physiology.burst_firing tabulate"
    for v in t.counts.values():
        assert v.shape == (t.carrier_hz.size, t.burst_s.size, t.multiples.size)
        assert np.all(v >= 0)


def test_shipped_spike_times_match_the_counts_and_fall_in_the_burst_or_its_tail():
    """One time per counted action potential, increasing, after the onset and before the burst's
    end plus the simulation's tail (axon.TAIL: a spike may pass the middle node after the burst)."""
    from emsim.physiology.axon import TAIL

    t = bf.load_burst_firing()
    assert set(t.times_s) == set(t.counts)
    for name, times in t.times_s.items():
        n = np.isfinite(times).sum(axis=-1)
        np.testing.assert_array_equal(n, t.counts[name], err_msg=name)
        assert np.all(np.diff(times, axis=-1)[np.isfinite(np.diff(times, axis=-1))] > 0)
        end = t.burst_s[None, :, None, None] + max(TAIL.values())
        assert np.all((times[np.isfinite(times)] > 0)), name
        assert np.all(np.where(np.isfinite(times), times <= end, True)), name


def test_spike_times_pick_the_nearest_burst_and_fill_a_missing_first_time():
    t = dataclasses.replace(bf.load_burst_firing(), carrier_hz=np.array([1000.0]), burst_s=np.array([4e-3]),
                            multiples=np.array([1.03, 2.0]),
                            times_s={"x": np.array([[[[np.nan, np.nan], [1e-3, 3e-3]]]])})
    m, when = t.spike_times("x", np.array([1200.0]), np.array([5e-3]))
    np.testing.assert_array_equal(m[0], [1.0, 2.0])
    np.testing.assert_array_equal(when[0, :, 0], [1e-3, 1e-3])   # count 0 at threshold is noise: next time
    assert np.isnan(when[0, 0, 1]) and when[0, 1, 1] == 3e-3
    with pytest.raises(ModelParameterError):
        t.spike_times("abeta", np.array([1000.0]), np.array([4e-3]))


def test_steps_pick_the_nearest_tabulated_burst_and_count_at_least_one_spike():
    t = dataclasses.replace(bf.load_burst_firing(), carrier_hz=np.array([1000.0, 10000.0]), burst_s=np.array([4e-3]),
                            multiples=np.array([1.03, 2.0, 5.0]),
                            counts={"x": np.array([[[1, 2, 4]], [[0, 2, 1]]], float)})
    m, n = t.steps("x", np.array([1000.0, 9000.0]), np.array([4e-3, 5e-3]))
    np.testing.assert_array_equal(m[0], [1.0, 2.0, 5.0])  # the first grid multiple stands for threshold
    np.testing.assert_array_equal(n, [[1, 2, 4], [1, 2, 1]])  # 0 at threshold is search noise -> 1
    with pytest.raises(ModelParameterError):
        t.steps("abeta", np.array([1000.0]), np.array([4e-3]))


def test_offset_latency_is_the_latest_spike_after_the_tables_own_burst_end():
    """Read from the table, not invented: no tabulated spike passes later than its own burst's end
    plus the class's latency, one passes exactly then, and it is a short time (under axon.TAIL)."""
    from emsim.physiology.axon import TAIL

    t = bf.load_burst_firing()
    for name, times in t.times_s.items():
        lat = t.offset_latency_s(name)
        late = times - t.burst_s[None, :, None, None]
        assert 0 < lat < max(TAIL.values()), name
        assert np.nanmax(late) == pytest.approx(lat, abs=1e-12), name


def _shipped_times(name, carrier_hz, burst_s):
    """The shipped table's spike times at a tabulated (carrier, burst) cell, (M, K)."""
    t = bf.load_burst_firing()
    return t.times_s[name][list(t.carrier_hz).index(carrier_hz), list(t.burst_s).index(burst_s)]


def test_a_burst_between_the_tabulated_durations_keeps_no_spike_after_its_end():
    """A 6.5 ms burst reads the 10 ms table but gets no action potential after 6.5 ms plus the
    offset latency (before: motor spikes at 7.9 and 11 ms, after its own burst had ended); the
    spikes it keeps are the 10 ms burst's up to then, and the counts are the kept times."""
    t = bf.load_burst_firing()
    for name in t.times_s:
        end = 6.5e-3 + t.offset_latency_s(name)
        for car in t.carrier_hz:
            m, when = t.spike_times(name, np.array([car]), np.array([6.5e-3]))
            ref = _shipped_times(name, car, 10e-3)
            for k in range(m.shape[1]):
                got = when[0, k][np.isfinite(when[0, k])]
                want = ref[k][np.isfinite(ref[k]) & (ref[k] <= end)]
                if want.size == 0:   # search noise at threshold: the first time of the next multiple
                    want = ref[min(k + 1, ref.shape[0] - 1), :1]
                np.testing.assert_array_equal(got, want, err_msg=f"{name} {car} Hz, multiple {k}")
            _, n = t.steps(name, np.array([car]), np.array([6.5e-3]))
            np.testing.assert_array_equal(n[0], np.maximum(np.isfinite(when[0]).sum(axis=-1), 1))
    _, when = t.spike_times("motor", np.array([1000.0]), np.array([6.5e-3]))
    assert np.nanmax(when) <= 6.5e-3 + t.offset_latency_s("motor")
    assert np.nanmax(_shipped_times("motor", 1000.0, 10e-3)) > 6.5e-3 + t.offset_latency_s("motor")  # it bites


def test_the_tabulated_burst_durations_read_the_table_unchanged():
    """4 and 10 ms bursts keep every tabulated spike and count (validation numbers do not move)."""
    t = bf.load_burst_firing()
    for name in t.times_s:
        for car in t.carrier_hz:
            for burst in t.burst_s:
                _, when = t.spike_times(name, np.array([car]), np.array([burst]))
                ref = _shipped_times(name, car, burst)
                np.testing.assert_array_equal(np.isfinite(when[0, 1:]), np.isfinite(ref[1:]))
                _, n = t.steps(name, np.array([car]), np.array([burst]))
                counts = t.counts[name][list(t.carrier_hz).index(car), list(t.burst_s).index(burst)]
                np.testing.assert_array_equal(n[0], np.maximum(counts, 1.0))


def test_a_burst_shorter_than_the_shortest_tabulated_keeps_its_first_spike():
    """Below 4 ms the 4 ms table is read: the first action potential always stays (whether the
    fibre fires is the threshold table's decision for the actual burst), later ones only up to
    the burst's end plus the offset latency; the shortest allowed burst (0.25 ms) fires once."""
    t = bf.load_burst_firing()
    for name in t.times_s:
        for burst in (0.25e-3, 1e-3, 2.5e-3):
            _, when = t.spike_times(name, t.carrier_hz, np.full(t.carrier_hz.size, burst))
            assert np.all(np.isfinite(when[..., 0])), name
            later = when[..., 1:]
            assert np.all(later[np.isfinite(later)] <= burst + t.offset_latency_s(name)), name
        _, n = t.steps(name, t.carrier_hz, np.full(t.carrier_hz.size, 0.25e-3))
        assert np.all(n == 1.0), name


def test_recruitment_reads_only_the_spikes_a_6_5_ms_burst_evokes():
    """Motor units' extra action potentials and the afferents' spike factor of a strong 6.5 ms
    1 kHz burst stay within what the 10 ms table shows up to 6.5 ms plus the offset latency; a
    10 ms burst at the same current exceeds it (so the limit is what separates them)."""
    t = bf.load_burst_firing()
    out = {}
    for burst_ms in (6.5, 10.0):
        s = rc.StimulusSet.from_arrays(np.array([120.0]), channels=channel(), shape="khz_burst", carrier_hz=1000.0,
                                       burst_duration_ms=burst_ms)
        out[burst_ms] = rc.recruit(s, SITE, person=dsc.Person())
    delay, frac = out[6.5].motor_extra_spikes
    assert np.nanmax(delay) <= 6.5e-3 + t.offset_latency_s("motor")  # after each unit's first AP: a lower bound
    assert out[10.0].motor_extra_spikes[0].shape[-1] > delay.shape[-1]
    for name in ("abeta", "adelta"):
        ref = _shipped_times(name, 1000.0, 10e-3)
        kept_max = np.max(np.sum(ref <= 6.5e-3 + t.offset_latency_s(name), axis=-1))
        assert np.max(out[6.5].afferent_spikes[name]) <= kept_max, name
        assert np.max(out[10.0].afferent_spikes[name]) > kept_max, name


def test_spike_weighted_fraction_sums_the_counts_over_fibres():
    """Fibres with thresholds uniformly spread over [1, 10] mA at I = 8 mA (F(I/m) = clip((8/m −
    1)/9)): 1 AP below 2x threshold, 3 from 2x, then 1 again from 4x (onset then block). Fibres at
    ≥ 4x: F(2) = 1/9; at 2–4x: F(4) − F(2) = 2/9; at 1–2x: F(8) − F(4) = 4/9."""
    m = np.array([[1.0, 2.0, 4.0]])
    n = np.array([[1.0, 3.0, 1.0]])
    frac = lambda scale: np.clip((8.0 / scale - 1.0) / 9.0, 0, 1)  # noqa: E731
    got = bf.spike_weighted_fraction(frac, (m, n))
    assert got[0] == pytest.approx((4 * 1 + 2 * 3 + 1 * 1) / 9.0)


def test_pulses_fire_once_and_low_carriers_fire_more_often_than_high_ones():
    """A pulsed waveform fires each active afferent once. At the same multiple of threshold a
    1 kHz burst of 4 ms (four cycles, each a 0.5 ms phase) fires afferents at least as often as a
    10 kHz burst (Ward & Robertson 2001: a fibre cannot follow a high carrier cycle by cycle)."""
    s = rc.StimulusSet.from_arrays(np.array([60.0, 60.0, 60.0]), 300.0, 50.0, channels=channel(),
                                   shape=np.array(["symmetric_biphasic", "khz_burst", "khz_burst"]),
                                   carrier_hz=np.array([2500.0, 1000.0, 10000.0]), burst_duration_ms=4.0)
    r = rc.recruit(s, SITE, person=dsc.Person())
    for name in ("abeta", "adelta"):
        sp = r.afferent_spikes[name]
        assert np.all(sp[0] == 1.0)
        assert np.all(sp >= 1.0)
    t = bf.load_burst_firing()
    _, n1 = t.steps("abeta", np.array([1000.0]), np.array([4e-3]))
    _, n10 = t.steps("abeta", np.array([10000.0]), np.array([4e-3]))
    assert np.all(n1 >= n10)


def test_spike_factor_raises_the_discomfort_of_a_burst_and_is_checked():
    s = rc.StimulusSet.from_arrays(np.array([40.0]), channels=channel(), shape="khz_burst", carrier_hz=1000.0,
                                   burst_duration_ms=4.0)
    r = rc.recruit(s, SITE, person=dsc.Person())
    with_spikes = dsc.predict(r).peak[0]
    drive = dsc.AfferentDrive(times_s=r.times_s, afferent=r.afferent, electrode_area_m2=r.electrode_area_m2,
                              force_fraction=r.force_fraction, steady_rate_hz=1.0 / r.interval_s)
    without = dsc.predict(drive).peak[0]
    if max(np.max(v) for v in r.afferent_spikes.values()) > 1.0:
        assert with_spikes > without
    else:
        assert with_spikes == pytest.approx(without)
    bad = {k: np.full(v.shape, 0.5) for k, v in r.afferent.items()}
    with pytest.raises(PhysiologyInputError, match="spike_factor"):
        dsc.AfferentDrive(times_s=r.times_s, afferent=r.afferent, electrode_area_m2=r.electrode_area_m2,
                          spike_factor=bad)


def test_pulsed_programs_carry_no_spike_factor():
    s = rc.StimulusSet.from_arrays(np.array([30.0]), 300.0, 50.0, channels=channel())
    assert rc.recruit(s, SITE).spike_factor is None
    sc = rc.recruit(s, SITE).fields[0].skin_current_density()
    w = s.waveform
    out = cut.burst_spikes(sc, s.amplitude_a, w, threshold_multiplier=cut.waveform_multiplier(w))
    assert all(np.all(v == 1.0) for v in out.values())


@pytest.mark.needs_compiler
@pytest.mark.slow
def test_regenerated_small_table_matches_the_shipped_one():
    """One command regenerates the table (python -m emsim.physiology.burst_firing tabulate); the
    reduced grid's entries equal the shipped table's at the same grid points (spike counts are
    integers: exact, except a count may differ by one where the multiple sits at a firing step)."""
    small = bf.tabulate(bf.GRID_SMALL)
    shipped = bf.load_burst_firing()
    for name, block in small["counts"].items():
        ref = np.asarray(shipped.counts[name])
        for i, f in enumerate(small["carrier_hz"]):
            fi = list(shipped.carrier_hz).index(f)
            for k, b in enumerate(small["burst_ms"]):
                bi = list(np.round(shipped.burst_s * 1e3, 6)).index(b)
                for j, m in enumerate(small["multiples"]):
                    mi = list(shipped.multiples).index(m)
                    assert abs(block[i][k][j] - ref[fi, bi, mi]) <= 1, (name, f, b, m)
                    # where the counts agree the times do too, to 0.1 ms (the threshold search's
                    # tolerance moves the drive, and so the spike times, slightly)
                    got = small["spike_times_ms"][name][i][k][j]
                    if len(got) == block[i][k][j] == ref[fi, bi, mi]:
                        want = shipped.times_s[name][fi, bi, mi][:len(got)] * 1e3
                        np.testing.assert_allclose(got, want, atol=0.1, err_msg=f"{name} {f} {b} {m}")


def test_channel_spike_factor_matches_the_per_pulse_table():
    s = rc.StimulusSet.from_arrays(np.array([30.0, 60.0]), channels=channel(), shape="khz_burst", carrier_hz=1000.0,
                                   burst_duration_ms=4.0)
    r = rc.recruit(s, SITE, person=dsc.Person())
    ch = r.channel_spike_factor(0)
    for name, v in r.afferent_spikes.items():
        np.testing.assert_array_equal(ch[name][0], v.T)


# ------------------------------------------------------------------------ motor units in kHz bursts

def test_pulses_and_high_carriers_give_no_extra_motor_spikes():
    """Pulsed rows carry no extra action potentials (K = 0); at 10 kHz (4 ms) the motor table fires
    a unit at most as often as at 1 kHz at every multiple (onset then block)."""
    s = rc.StimulusSet.from_arrays(np.array([60.0]), 300.0, 50.0, channels=channel())
    delay, frac = rc.recruit(s, SITE).motor_extra_spikes
    assert delay.shape == (1, 0) and frac.shape[:2] == (1, 0)
    t = bf.load_burst_firing()
    _, n1 = t.steps("motor", np.array([1000.0]), np.array([4e-3]))
    _, n10 = t.steps("motor", np.array([10000.0]), np.array([4e-3]))
    assert np.all(n1 >= n10)


def test_motor_extra_spikes_follow_the_table_at_each_units_drive():
    """Independent recount: a unit at drive I/I_th in [m_k, m_k+1) of the motor table fires n_k
    action potentials; the fraction of each pool firing a 2nd one is the count of such units with
    n_k >= 2 over the pool size (the onset fires every unit above threshold here: 50 Hz bursts leave
    20 ms to recover), and its delay lies between the unit's first and the burst's end plus tail."""
    amps = np.array([20.0, 40.0, 80.0])
    s = rc.StimulusSet.from_arrays(amps, channels=channel(), shape="khz_burst", carrier_hz=1000.0,
                                   burst_duration_ms=4.0)
    r = rc.recruit(s, SITE, person=dsc.Person())
    delay, frac = r.motor_extra_spikes
    m, n = bf.load_burst_firing().steps("motor", np.array([1000.0]), np.array([4e-3]))
    for row, a in enumerate(amps):
        drive = a * 1e-3 / r.unit_threshold_a[row]
        k = np.searchsorted(m[0], drive, side="right") - 1
        twice = (k >= 0) & (n[0][np.maximum(k, 0)] >= 2)
        for j in range(len(r.muscles)):
            pool = r.unit_muscle == j
            want = twice[pool].mean() * r.motor_fraction[row, j] / max(r.motor_fraction_above[row, j], 1e-12)
            assert frac[row, 0, j] == pytest.approx(want)
            assert frac[row, 0, j] <= r.motor_fraction[row, j] + 1e-12
        if twice.any():
            assert 0.5e-3 < delay[row, 0] < 4e-3 + 1.5e-3
    assert frac[-1, 0].sum() > 0   # 80 mA drives units well above 1.25 x


def test_with_extra_spikes_interleaves_and_drops_empty_spikes():
    t, f = rc.with_extra_spikes([0.0, 0.02], [0.5, 0.6], [[2e-3, np.nan], [2e-3, 5e-3]], [[0.3, 0.0], [0.4, 0.0]])
    np.testing.assert_allclose(t, [0.0, 0.002, 0.02, 0.022])
    np.testing.assert_allclose(f, [0.5, 0.3, 0.6, 0.4])



def test_with_extra_spikes_leaves_out_spikes_that_reach_the_next_burst():
    """The table's delays are an isolated burst's: at a high burst rate a late one can fall within
    the refractory period before (or after) the next burst, whose onset fires the same units."""
    onsets, first = [0.0, 0.005, 0.010, 0.030], [0.5, 0.0, 0.6, 0.6]
    d = [[2e-3, 4e-3], [np.nan, np.nan], [2e-3, 19e-3], [2e-3, 9e-3]]
    x = [[0.3, 0.2], [0.0, 0.0], [0.4, 0.3], [0.4, 0.3]]
    # pulse 0: 4 ms after it is 1 ms before pulse 1, but pulse 1 recruits nothing: kept; pulse 2:
    # 29 ms is 1 ms before pulse 3 (refractory) -> out; the last pulse has no next burst
    t, f = rc.with_extra_spikes(onsets, first, d, x, refractory_s=2e-3)
    np.testing.assert_allclose(t, [0.0, 0.002, 0.004, 0.005, 0.010, 0.012, 0.030, 0.032, 0.039])
    np.testing.assert_allclose(f, [0.5, 0.3, 0.2, 0.0, 0.6, 0.4, 0.6, 0.4, 0.3])
    # without a refractory period only spikes at or after the next burst's onset go
    d[2][1] = 25e-3
    t, _ = rc.with_extra_spikes(onsets, first, d, x)
    np.testing.assert_allclose(t, [0.0, 0.002, 0.004, 0.005, 0.010, 0.012, 0.030, 0.032, 0.039])
    d[2][1] = 19e-3
    t, _ = rc.with_extra_spikes(onsets, first, d, x)
    assert 0.029 in np.round(t, 9) and np.all(np.diff(t) > 0)

def test_motor_doublets_raise_the_force_of_a_1khz_burst_train():
    """The muscle model sums a doublet (catch-like): the force with the extra action potentials is
    above the force of the same bursts' first action potentials alone, and below what it would be
    if every unit firing twice doubled its force (at 50 Hz the muscle is near fusion, so a second
    action potential 2-3 ms later adds only part of a unit's force)."""
    from emsim.physiology.muscle import simulate

    s = rc.StimulusSet.from_arrays(np.array([60.0]), channels=channel(), shape="khz_burst", carrier_hz=1000.0,
                                   burst_duration_ms=4.0)
    r = rc.recruit(s, SITE, person=dsc.Person())
    delay, extra = r.force_extra_spikes
    onsets = np.arange(0.0, 1.0, 0.02)
    first = np.full(onsets.size, r.force_fraction[0, 0])
    d, x = np.repeat(delay[0], onsets.size, axis=0), np.repeat(extra[0], onsets.size, axis=0)
    assert x.max() > 0
    peak = []
    for k in (0.0, 1.0):
        times, frac = rc.with_extra_spikes(onsets, first, d, x * k)
        peak.append(simulate(times, "lumbar_erector_spinae", fatigue=False, recruitment=frac).force_n.max())
    assert peak[1] > peak[0]
    assert peak[1] < peak[0] * (1 + x.max() / first[0])


def test_force_extra_spikes_of_a_compiled_khz_program_follow_its_pulses():
    """Train path: one row per pulse in time order (the layout of force_fraction), extra fractions
    never above the pooled first-spike fraction, and more of them on the plateau than early in the
    ramp (higher current drives more units past 1.25 x threshold)."""
    from emsim.program import compile, from_dict
    from emsim.testing.documents import BASE_DOC

    st = {**BASE_DOC["phases"][0]["stimulation"][0], "amplitude": {"ma": 60},
          "waveform": {"shape": "khz_burst", "carrier_hz": 1000, "burst_duration_ms": 4}}
    doc = {**BASE_DOC, "phases": [{**BASE_DOC["phases"][0], "duration_s": 5, "stimulation": [st]}]}
    r = rc.recruit(compile(from_dict(doc)), SITE, person=dsc.Person())
    delay, extra = r.force_extra_spikes
    assert delay.shape[:2] == extra.shape[:2] == r.times_s.shape and extra.shape[2] >= 1
    assert np.all(extra[..., 0] <= r.force_fraction + 1e-12)
    first, plateau = np.flatnonzero(r.force_fraction[0] > 0)[0], int(np.argmax(r.force_fraction[0]))
    assert extra[0, plateau, 0] > extra[0, first, 0]
