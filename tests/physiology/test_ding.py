"""Unit tests of the Ding-family force core (emsim.physiology.ding)."""

import json
import math
from dataclasses import FrozenInstanceError

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsim.errors import EmsimError
from emsim.physiology.ding import (
    EVIDENCE_LEVELS, DingParameters, _linear_scan, _linear_scan_dense, ding_force,
    ding_force_batch, ding_force_reference,
)
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError

D2003 = DingParameters()
D2007 = DingParameters.load("quadriceps_ding2007")


def irregular_train(seed=0, n=40, doublets=True):
    """Pulse times with varied intervals (5 ms doublets up to 200 ms gaps)."""
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0.005, 0.02, 0.03, 0.05, 0.2], size=n) if doublets else rng.uniform(0.01, 0.1, n)
    return np.cumsum(gaps) - gaps[0]


def brute_force_cn(t, pulses, params, lam=None):
    """CN from its closed form: Σ λ_i R_i ((t − t_i)/τc) exp(−(t − t_i)/τc) over all past pulses."""
    tc = params.tau_c
    lam = np.ones(pulses.size) if lam is None else lam
    r = 1.0 + (params.r0_rest - 1.0) * np.exp(-np.diff(pulses, prepend=-np.inf) / tc)
    dt = t[:, None] - pulses[None, :]
    past = dt >= 0
    x = np.where(past, dt, 0.0) / tc
    return np.sum(np.where(past, lam * r * x * np.exp(-x), 0.0), axis=1)


# --- exact CN update ---------------------------------------------------------------------------

@pytest.mark.parametrize("params", [D2003, D2007], ids=["ding2003", "ding2007"])
def test_exact_cn_matches_brute_force_sum_of_all_past_pulses(params):
    pulses = irregular_train(1, n=60)
    amp = np.random.default_rng(2).uniform(0.02, 0.1, pulses.size)
    lam = D2003.amplitude_factor(amp) if params is D2003 else None
    t = np.linspace(-0.05, pulses[-1] + 0.3, 3001)
    res = ding_force(pulses, t, params, return_states=True,
                     amplitude=amp if params is D2003 else None,
                     pulse_width=np.full(pulses.size, 400e-6) if params is D2007 else None)
    expected = brute_force_cn(t, pulses, params, lam)
    np.testing.assert_allclose(res.cn, expected, rtol=1e-11, atol=1e-13)


def test_exact_cn_has_no_truncation_over_a_long_train():
    # 3000 pulses: a truncated sum (cocofest keeps 20) would differ; the carried state does not.
    pulses = np.arange(3000) / 50.0
    t = np.array([10.0, 30.005, 59.99, 60.5])
    res = ding_force(pulses, t, return_states=True)
    np.testing.assert_allclose(res.cn, brute_force_cn(t, pulses, D2003), rtol=1e-11)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.floats(0.002, 0.3), min_size=1, max_size=25), st.floats(0.0, 0.5))
def test_exact_cn_property(gaps, t_first):
    pulses = t_first + np.cumsum(gaps)
    t = np.linspace(0.0, pulses[-1] + 0.1, 257)
    res = ding_force(pulses, t, return_states=True)
    np.testing.assert_allclose(res.cn, brute_force_cn(t, pulses, D2003), rtol=1e-10, atol=1e-13)


# --- force accuracy ----------------------------------------------------------------------------

@pytest.mark.parametrize("kind", ["ding2003", "ding2003_fatigue", "ding2007_fatigue", "hmed_fatigue"])
def test_force_matches_solve_ivp_reference(kind):
    pulses = irregular_train(3, n=50)
    t = np.linspace(0.0, pulses[-1] + 0.2, 801)
    rng = np.random.default_rng(4)
    kw = {}
    if kind.startswith("ding2007"):
        kw = dict(params=D2007, pulse_width=rng.uniform(150e-6, 600e-6, pulses.size))
    if kind.startswith("hmed"):
        kw = dict(amplitude=rng.uniform(0.0, 0.12, pulses.size))
    kw["fatigue"] = kind.endswith("fatigue")
    res = ding_force(pulses, t, return_states=True, **kw)
    ref = ding_force_reference(pulses, t, **kw)
    peak = ref.force.max()
    # 1 ms RK4 steps: error ≈ 1e-5 of peak at worst (module docstring); 1e-4 leaves margin.
    assert np.max(np.abs(res.force - ref.force)) < 1e-4 * peak
    if kw["fatigue"]:
        for name in ("a", "tau1", "km"):
            np.testing.assert_allclose(getattr(res, name), getattr(ref, name), rtol=1e-6)


def test_force_error_falls_with_max_step():
    pulses = irregular_train(5, n=30)
    t = np.linspace(0.0, pulses[-1] + 0.2, 401)
    ref = ding_force_reference(pulses, t, D2007, pulse_width=500e-6).force
    errs = [np.max(np.abs(ding_force(pulses, t, D2007, pulse_width=500e-6, max_step=h).force - ref))
            for h in (2e-3, 1e-3, 5e-4)]
    assert errs[0] > errs[1] > errs[2]
    assert errs[1] / errs[2] > 8  # fourth order: ≈ 16 per halving


def test_force_is_linear_in_a_without_fatigue():
    pulses = irregular_train(6)
    t = np.linspace(0, 2, 201)
    f1 = ding_force(pulses, t).force
    f2 = ding_force(pulses, t, D2003.replace(a_rest=2 * D2003.a_rest)).force
    np.testing.assert_allclose(f2, 2 * f1, rtol=1e-12, atol=1e-12)


def test_pulses_before_first_output_time_count():
    pulses = np.arange(10) / 20.0
    full = ding_force(pulses, np.linspace(0, 1, 101)).force
    late = ding_force(pulses, np.linspace(0.5, 1, 51)).force
    np.testing.assert_allclose(late, full[50:], rtol=1e-12)


def test_output_times_before_the_first_pulse_are_zero():
    res = ding_force([0.2, 0.25], np.linspace(0, 0.3, 31))
    assert np.all(res.force[:21] == 0.0)
    assert res.force[-1] > 0


def test_fatigue_lowers_force_over_a_long_protocol_and_recovers():
    # 33 Hz, 1 s on / 1 s off, 120 s, then 5 min rest: A falls, Km and τ1 rise, then recover.
    pulses = np.concatenate([2 * k + np.arange(33) / 33 for k in range(60)])
    t = np.array([0.99, 118.99, 420.0])
    res = ding_force(pulses, t, fatigue=True, return_states=True)
    assert res.force[1] < 0.8 * res.force[0]
    assert res.a[1] < res.a[0] < D2003.a_rest + 1e-9
    assert res.km[1] > res.km[0] and res.tau1[1] > res.tau1[0]
    recovered = (res.a[2] - res.a[1]) / (D2003.a_rest - res.a[1])
    assert recovered == pytest.approx(1 - math.exp(-(420.0 - 119.0) / D2003.tau_fat), abs=0.02)


def test_sub_threshold_pulses_give_no_force():
    t = np.linspace(0, 0.5, 51)
    assert np.all(ding_force([0.0, 0.05], t, amplitude=[0.010, 0.015]).force == 0.0)
    assert np.all(ding_force([0.0, 0.05], t, D2007, pulse_width=[100e-6, 131e-6]).force == 0.0)


def test_inputs_the_parameter_set_does_not_use_are_ignored():
    pulses = irregular_train(7)
    t = np.linspace(0, 1, 51)
    base = ding_force(pulses, t).force
    np.testing.assert_array_equal(ding_force(pulses, t, pulse_width=300e-6).force, base)
    no_amp = D2007
    f07 = ding_force(pulses, t, no_amp, pulse_width=300e-6).force
    np.testing.assert_array_equal(ding_force(pulses, t, no_amp, pulse_width=300e-6,
                                             amplitude=0.001).force, f07)


# --- batch form --------------------------------------------------------------------------------

@pytest.mark.parametrize("fatigue", [False, True])
def test_batch_equals_looping_single_calls(fatigue):
    trains = [irregular_train(10, 12), irregular_train(11, 30), np.array([0.3]),
              np.array([]), np.arange(40) / 40.0]
    width = max(len(p) for p in trains)
    padded = np.full((len(trains), width), np.nan)
    widths = np.full_like(padded, np.nan)
    amps = np.full_like(padded, np.nan)
    rng = np.random.default_rng(12)
    for i, p in enumerate(trains):
        padded[i, :p.size] = p
        widths[i, :p.size] = rng.uniform(200e-6, 600e-6, p.size)
        amps[i, :p.size] = rng.uniform(0.02, 0.1, p.size)
    t = np.linspace(-0.1, 1.5, 321)
    for params, kw in [(D2003, dict(amplitude=amps)), (D2007, dict(pulse_width=widths))]:
        batch = ding_force_batch(padded, t, params, fatigue=fatigue, return_states=True, **kw)
        assert batch.force.shape == (len(trains), t.size)
        for i, p in enumerate(trains):
            one_kw = {k: v[i, :p.size] for k, v in kw.items()}
            one = ding_force(p, t, params, fatigue=fatigue, return_states=True, **one_kw)
            np.testing.assert_allclose(batch.force[i], one.force, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(batch.cn[i], one.cn, rtol=1e-10, atol=1e-12)
            if fatigue:
                np.testing.assert_allclose(batch.km[i], one.km, rtol=1e-12)


def test_batch_of_one_is_the_single_form():
    p = irregular_train(13)
    t = np.linspace(0, 1, 101)
    np.testing.assert_array_equal(ding_force_batch(p[None, :], t).force[0], ding_force(p, t).force)


# --- zero pulses -------------------------------------------------------------------------------

def test_zero_pulses_give_zero_force():
    t = np.linspace(0, 1, 11)
    res = ding_force([], t, fatigue=True, return_states=True)
    assert np.all(res.force == 0) and np.all(res.cn == 0)
    assert np.all(res.a == D2003.a_rest) and np.all(res.km == D2003.km_rest)
    assert np.all(ding_force_batch(np.full((3, 4), np.nan), t).force == 0)
    assert np.all(ding_force_batch(np.zeros((2, 0)), t).force == 0)
    assert np.all(ding_force_reference([], t).force == 0)


# --- bad input ---------------------------------------------------------------------------------

BAD_CALLS = [
    ("pulse_times[2]", dict(pulse_times=[0.0, 0.1, 0.05])),                  # unsorted
    ("pulse_times[1]", dict(pulse_times=[0.0, 0.0, 0.1])),                   # duplicate
    ("pulse_times[1]", dict(pulse_times=[0.0, np.nan])),                     # NaN in 1-D form
    ("pulse_times[0]", dict(pulse_times=[np.inf])),
    ("pulse_times", dict(pulse_times=[[0.0, 0.1]])),                         # 2-D in single form
    ("pulse_times", dict(pulse_times="abc")),
    ("pulse_times", dict(pulse_times=None)),
    ("t", dict(t=[])),
    ("t[1]", dict(t=[0.0, 0.0])),
    ("t[2]", dict(t=[0.0, 0.5, np.nan])),
    ("t", dict(t=[[0.0, 1.0]])),
    ("pulse_width", dict(pulse_width=[300e-6])),                            # wrong length
    ("pulse_width[1]", dict(pulse_width=[300e-6, -1e-6, 3e-4])),
    ("amplitude[0]", dict(amplitude=[-0.01, 0.02, 0.03])),
    ("amplitude", dict(amplitude=[[0.01, 0.02, 0.03]])),
    ("max_step", dict(max_step=0.0)),
    ("max_step", dict(max_step=0.5)),
    ("max_step", dict(max_step="fine")),
    ("r0_km", dict(r0_km="current")),
    ("params", dict(params={"tau_c": 0.02})),
]


@pytest.mark.parametrize("path, change", BAD_CALLS,
                         ids=[f"{c[0]}-{i}" for i, c in enumerate(BAD_CALLS)])
def test_bad_input_raises_a_typed_error_naming_the_argument(path, change):
    kw = dict(pulse_times=[0.0, 0.05, 0.1], t=[0.0, 0.5])
    kw.update(change)
    with pytest.raises(PhysiologyInputError) as info:
        ding_force(kw.pop("pulse_times"), kw.pop("t"), **kw)
    err = info.value
    assert isinstance(err, ValueError) and isinstance(err, EmsimError)
    assert err.path == path
    assert path.split("[")[0] in str(err)


BAD_BATCH = [
    ("pulse_times[1, 2]", np.array([[0.0, 0.1, 0.2], [0.0, np.nan, 0.2]])),  # NaN not trailing
    ("pulse_times[0, 1]", np.array([[0.1, 0.1, np.nan]])),                   # duplicate
    ("pulse_times", np.array([0.0, 0.1])),                                   # 1-D in batch form
    ("pulse_times", np.zeros((0, 3))),
]


@pytest.mark.parametrize("path, pulses", BAD_BATCH)
def test_bad_batch_input_names_row_and_column(path, pulses):
    with pytest.raises(PhysiologyInputError) as info:
        ding_force_batch(pulses, [0.0, 1.0])
    assert info.value.path == path


def test_missing_pulse_width_for_ding2007_is_named():
    with pytest.raises(PhysiologyInputError) as info:
        ding_force([0.0, 0.1], [0.0, 0.2], D2007)
    assert info.value.path == "pulse_width"
    assert "quadriceps_ding2007" in str(info.value)


def test_padding_values_of_per_pulse_arrays_are_not_checked():
    pulses = np.array([[0.0, 0.1], [0.0, np.nan]])
    widths = np.array([[3e-4, 3e-4], [3e-4, np.nan]])
    ding_force_batch(pulses, [0.0, 0.3], D2007, pulse_width=widths)


def test_unstable_step_is_reported():
    fast = D2003.replace(tau1_rest=1e-4)
    with pytest.raises(PhysiologyInputError) as info:
        ding_force([0.0], [0.0, 0.1], fast, max_step=0.01)
    assert info.value.path == "max_step"


# --- parameters and their data files -----------------------------------------------------------

def test_default_parameters_come_from_the_data_file_with_provenance():
    p = DingParameters()
    assert p.name == "quadriceps_ding2003"
    assert (p.tau_c, p.a_rest, p.tau1_rest, p.tau2, p.km_rest) == (0.020, 3009.0, 0.050957, 0.060, 0.103)
    assert (p.alpha_a, p.alpha_tau1, p.alpha_km, p.tau_fat) == (-0.40, 2.1e-5, 1.9e-5, 127.0)
    assert p.r0_rest == pytest.approx(1.143)
    assert not p.has_pulse_duration_term and p.has_amplitude_term
    for name in ("tau_c", "a_rest", "tau1_rest", "tau2", "km_rest", "r0_km_offset", "alpha_a",
                 "alpha_tau1", "alpha_km", "tau_fat", "hmed_ar", "hmed_bs", "hmed_is", "hmed_cr"):
        info = p.provenance[name]
        assert info.evidence in EVIDENCE_LEVELS
        assert info.source in p.sources
    assert p.provenance["tau2"].evidence == "assumed"


def test_parameters_are_frozen_and_replace_drops_provenance():
    p = DingParameters()
    with pytest.raises(FrozenInstanceError):
        p.tau_c = 0.01
    q = p.replace(tau2=0.1)
    assert q.tau2 == 0.1 and "tau2" not in q.provenance and "tau_c" in q.provenance
    assert q != p and p.replace() == p


@pytest.mark.parametrize("change, path", [
    (dict(tau_c=0.0), "tau_c"),
    (dict(tau1_rest=float("nan")), "tau1_rest"),
    (dict(km_rest=-0.1), "km_rest"),
    (dict(pd0=1e-4), "pdt"),                       # partial Ding 2007 term
    (dict(hmed_ar=None), "hmed_ar"),               # partial Hmed term
    (dict(a_rest="3009"), "a_rest"),
])
def test_bad_parameter_values_raise(change, path):
    with pytest.raises(ModelParameterError) as info:
        DingParameters().replace(**change)
    assert info.value.path == path
    assert isinstance(info.value, ValueError)


def _write(tmp_path, mutate):
    from emsim._data import models_dir
    doc = json.loads((models_dir() / "muscles" / "quadriceps_ding2003.json").read_text())
    mutate(doc)
    path = tmp_path / "set.json"
    path.write_text(json.dumps(doc))
    return path


@pytest.mark.parametrize("mutate, fragment", [
    (lambda d: d["parameters"].pop("tau_c"), "missing required parameter 'tau_c'"),
    (lambda d: d["parameters"]["tau_c"].update(unit="ms"), "$.parameters.tau_c.unit"),
    (lambda d: d["parameters"]["tau_fat"].update(value=-1), "$.parameters.tau_fat.value"),
    (lambda d: d["parameters"]["tau2"].update(evidence="guessed"), "$.parameters.tau2.evidence"),
    (lambda d: d["parameters"]["tau2"].update(source="nobody2020"), "$.parameters.tau2.source"),
    (lambda d: d["parameters"]["tau2"].pop("evidence"), "missing 'evidence'"),
    (lambda d: d["parameters"].update(tau3={"value": 1}), "$.parameters.tau3"),
    (lambda d: d.update(format="other/1"), "$.format"),
])
def test_bad_parameter_files_raise_naming_the_field(tmp_path, mutate, fragment):
    with pytest.raises(ModelParameterError) as info:
        DingParameters.from_file(_write(tmp_path, mutate))
    assert fragment in str(info.value)


def test_unknown_parameter_set_lists_the_known_ones():
    with pytest.raises(ModelParameterError) as info:
        DingParameters.load("quadriceps_nonexistent")
    assert "quadriceps_ding2003" in str(info.value) and info.value.path == "name"


def test_ding2007_set_loads_with_pulse_duration_term():
    assert D2007.has_pulse_duration_term and not D2007.has_amplitude_term
    assert D2007.pd0 == pytest.approx(131.405e-6) and D2007.tau_c == 0.011
    assert D2007.provenance["a_rest"].evidence == "assumed"


# --- the scan ----------------------------------------------------------------------------------

@pytest.mark.parametrize("n", [1, 16, 17, 256, 257, 5000])
@pytest.mark.parametrize("scale", [0.01, 5.0, 300.0])
def test_linear_scan_matches_a_loop(n, scale):
    rng = np.random.default_rng(n)
    logd = -rng.exponential(scale, (2, n))
    u = rng.normal(size=(2, n))
    x0 = rng.normal(size=2)
    expected = np.empty_like(u)
    x = x0.copy()
    for k in range(n):
        x = np.exp(logd[:, k]) * x + u[:, k]
        expected[:, k] = x
    for scan in (_linear_scan, _linear_scan_dense):
        np.testing.assert_allclose(scan(logd, u, x0), expected, rtol=1e-9, atol=1e-12)
