"""Brian2 fibre models (emsim.physiology.axon) and the threshold-table loader (fibre_tables).

Tests without a mark never compile Brian2 code; the ones that do are marked needs_compiler
(and slow). The regeneration test rebuilds the reduced grid (``GRID_SMALL``) and compares it
with the shipped table point by point.
"""

import math

import numpy as np
import pytest

from emsim.physiology import axon, fibre_tables
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.program import waveform as wf


@pytest.mark.parametrize("w", [axon.monophasic(200), axon.symmetric(100, 50), axon.asymmetric(300, 0.25, 20),
                               axon.khz(2500, 4.0), axon.khz(4000, 2.0, "rectangular")])
def test_waveform_samples_keep_charge_and_duration(w):
    dt = 1e-6
    s = axon.waveform_samples(w, dt)
    assert s.size * dt == pytest.approx(wf.duration_s(w), abs=1.5 * dt)
    assert np.sum(s) * dt == pytest.approx(wf.net_charge_s(w), abs=2 * dt)
    assert np.max(np.abs(s)) == pytest.approx(1.0, abs=1e-3)


def test_search_finds_a_stub_threshold_and_reports_unexcitable_as_inf():
    true = np.array([0.5, 3.0, 40.0, 1e9])
    calls = []

    def run(a):
        calls.append(a.copy())
        return a >= true

    got = axon.threshold_search(run, np.ones(4), rtol=0.005)
    assert np.all(np.abs(got[:3] / true[:3] - 1) < 0.006)
    assert math.isinf(got[3])
    assert len(calls) < 30


def test_unstable_time_step_is_refused():
    pytest.importorskip("brian2")
    from emsim.physiology import _axon_brian as engine
    b = axon._batch("motor", np.array([5e-6]), [0])
    with pytest.raises(ValueError, match="unstable"):
        engine.build(b.model, b.rows, b.gext, b.gax, b.rest, np.zeros((10, 1)), dt_s=200e-6, duration_s=1e-3)


def test_unknown_class_is_a_typed_error():
    with pytest.raises(PhysiologyInputError) as e:
        axon.thresholds("gamma", [5e-6], [axon.monophasic(100)])
    assert e.value.path == "fibre_class"


@pytest.mark.parametrize("samples", [[], [np.ones((2, 3))], [np.array([0.0, np.nan])]])
def test_bad_sampled_waveforms_are_a_typed_error(samples):
    with pytest.raises(PhysiologyInputError) as err:
        axon.sampled_thresholds("motor", [5e-6], samples)
    assert err.value.path == "samples"


@pytest.mark.parametrize("wave_index", [[1], [0, 0], [-1]])
def test_fibre_network_needs_one_valid_waveform_index_per_fibre(wave_index):
    with pytest.raises(PhysiologyInputError) as err:
        axon.fibre_network("motor", [5e-6], [np.ones(100)], wave_index)
    assert err.value.path == "wave_index"


@pytest.mark.needs_compiler
@pytest.mark.slow
def test_fibre_network_fires_above_the_searched_threshold_only():
    """The public network is the one :func:`axon.sampled_thresholds` searches: a fibre at 0.98
    of the threshold it finds (bracket 0.5 %) stays silent, at 1.02 it fires; a second
    waveform column (zero) never fires."""
    pytest.importorskip("brian2")
    dt = axon.sample_interval("motor")
    pulse = axon.waveform_samples(axon.monophasic(100), dt)
    th = axon.sampled_thresholds("motor", [5e-6], [pulse])[0, 0]
    net = axon.fibre_network("motor", [5e-6] * 3, [pulse, np.zeros(pulse.size)], [0, 0, 1])
    counts = net.run([0.98 * th, 1.02 * th, 10 * th])
    assert counts[0] == 0 and counts[1] >= 1 and counts[2] == 0
    assert net.n_fibres == 3 and net.duration_s > pulse.size * dt


def test_mrg_geometry_interpolates_and_extrapolates_by_ratio():
    node, ax, dx = fibre_tables.mrg_geometry(np.array([10e-6, 2.85e-6]))
    assert dx[0] == pytest.approx(1150e-6)
    assert ax[0] == pytest.approx(6.9e-6)
    assert dx[1] == pytest.approx(500e-6 / 2)  # half of the 5.7 um fibre, same ratio


def test_truncated_normal_diameters_stay_in_range():
    c = fibre_tables.fibre_classes()["adelta"]
    d = c.sample_diameters(5000, np.random.default_rng(1))
    assert d.min() >= c.diameter_min_m and d.max() <= c.diameter_max_m
    assert abs(np.mean(d) - c.diameter_mean_m) < 0.1 * c.diameter_mean_m


def test_shipped_table_has_every_class_and_its_metadata():
    t = fibre_tables.load_table()
    assert set(t.classes) == set(fibre_tables.CLASS_NAMES)
    assert t.meta["generated_by"] == "python -m emsim.physiology.axon tabulate"
    assert "emsim_version" in t.meta and t.meta["grid"]["pulse_width_us"]
    for c in t.classes:
        assert np.all(np.isfinite(t.mono[c])) and np.all(t.mono[c] > 0)
        # thresholds fall with pulse width and with diameter (larger fibres are easier)
        assert np.all(np.diff(t.mono[c], axis=1) < 0)
        assert np.all(np.diff(t.mono[c], axis=0) < 0)


def test_table_interpolation_reproduces_grid_points_and_is_monotone_between():
    t = fibre_tables.load_table()
    pw = t.pulse_width_s
    par = {"kind": np.zeros(pw.size, int), "pulse_width_s": pw, "gap_s": np.zeros(pw.size),
           "ratio": np.zeros(pw.size), "carrier_hz": np.zeros(pw.size), "burst_s": np.zeros(pw.size)}
    got = t.waveform_factor("motor", par)
    np.testing.assert_allclose(got, t.mono["motor"].T, rtol=1e-12)
    mid = np.sqrt(pw[:-1] * pw[1:])
    par2 = dict(par, kind=np.zeros(mid.size, int), pulse_width_s=mid, gap_s=np.zeros(mid.size),
                ratio=np.zeros(mid.size), carrier_hz=np.zeros(mid.size), burst_s=np.zeros(mid.size))
    between = t.waveform_factor("motor", par2)
    assert np.all(between < got[:-1]) and np.all(between > got[1:])


def test_missing_table_is_a_typed_error(tmp_path):
    with pytest.raises(ModelParameterError, match="tabulate"):
        fibre_tables.load_table(tmp_path / "nothing")


def test_recovery_ratio_is_infinite_inside_the_absolute_refractory_period():
    t = fibre_tables.load_table()
    r = t.recovery_ratio("motor", np.array([1e-5, 0.02]))
    assert math.isinf(r[0])
    assert r[1] == pytest.approx(1.0, abs=0.2)


@pytest.mark.needs_compiler
@pytest.mark.slow
def test_resting_fibres_stay_silent_and_threshold_scales_inversely_with_diameter():
    pytest.importorskip("brian2")
    e = axon.thresholds("motor", [3.5e-6, 7e-6], [axon.monophasic(100)], rtol=0.01)[:, 0]
    ratio = e[0] / e[1]
    assert 1.5 < ratio < 3.0  # node spacing ∝ diameter: E·Δx drive at roughly equal depolarisation
    from emsim.physiology import _axon_brian as engine
    for name in fibre_tables.CLASS_NAMES:  # no stimulus, no action potential (stable rest)
        b = axon._batch(name, np.array([fibre_tables.fibre_classes()[name].diameter_mean_m]), [0])
        net = engine.build(b.model, b.rows, b.gext, b.gax, b.rest, np.zeros((10, 1)),
                           dt_s=axon.DT[b.model], duration_s=5e-3)
        assert net.run([0.0])[0] == 0, name


@pytest.mark.needs_compiler
@pytest.mark.slow
# motor: the myelinated node cable (GRID_SMALL's class); c: the other engine (unmyelinated HH),
# ~30 s CPU. Abeta and Adelta share the node cable with motor (measured in session 10: their
# reduced grids match the shipped table within 0.21 %).
@pytest.mark.parametrize("classes", [("motor",), ("c",)], ids=["motor", "c"])
def test_regenerated_small_table_matches_the_shipped_one(tmp_path, classes):
    """GRID_SMALL shares its points with GRID_FULL; thresholds agree within 3 % (two bisection
    tolerances of 1 % and 0.5 % plus slack), recovery ratios within 5 %, following exactly."""
    pytest.importorskip("brian2")
    g = dict(axon.GRID_SMALL, classes=list(classes))
    small = axon.tabulate(g)
    small.save(tmp_path / "small")
    small = fibre_tables.load_table(tmp_path / "small")
    full = fibre_tables.load_table()
    def at(grid, values):
        return [list(np.round(grid, 6)).index(round(float(v), 6)) for v in values]

    ipw = at(full.pulse_width_s * 1e6, g["pulse_width_us"])
    igap = at(full.gaps_s * 1e6, g["gap_us"])
    irat = at(full.ratios, g["ratios"])
    ifr = at(full.carrier_hz, g["carrier_hz"])
    ibu = at(full.burst_s * 1e3, g["burst_ms"])
    ipi = at(full.pair_interval_s * 1e3, g["pair_interval_ms"])
    ifo = at(full.follow_rate_hz, g["follow_rate_hz"])
    for c in g["classes"]:
        mid = full.diameters_m[c].size // 2
        assert small.diameters_m[c][0] == pytest.approx(full.diameters_m[c][mid], rel=1e-12)
        np.testing.assert_allclose(small.mono[c][0], full.mono[c][mid, ipw], rtol=0.03)
        np.testing.assert_allclose(small.sym[c][0], full.sym[c][mid][np.ix_(igap, ipw)], rtol=0.03)
        np.testing.assert_allclose(small.asym[c][0], full.asym[c][mid][np.ix_(irat, ipw)], rtol=0.03)
        np.testing.assert_allclose(small.khz[c][0], full.khz[c][mid][np.ix_(ifr, ibu)], rtol=0.03)
        np.testing.assert_allclose(small.pair_ratio[c], full.pair_ratio[c][ipi], rtol=0.05)
        np.testing.assert_array_equal(small.follow_fraction[c], full.follow_fraction[c][ifo])


@pytest.mark.needs_compiler
@pytest.mark.slow
def test_strong_khz_bursts_give_an_onset_response_then_block():
    """kHz conduction block: a 20 ms, 10 kHz burst near threshold makes the motor terminal fire
    repetitively; at 12× threshold only the onset (and offset) responses pass the middle node."""
    pytest.importorskip("brian2")
    m, counts = axon.khz_block("motor", 4.58e-6, carrier_hz=10000, burst_ms=20, multiples=(1.5, 12))
    assert counts[0] >= 3
    assert counts[1] <= 2
