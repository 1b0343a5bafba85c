"""Economy of sustained activation (:func:`emsim.physiology.fatigue.economy_factors`): the
factor on the Ding-mechanism drives, its exact recursion, and the solver against the solve_ivp
reference with it switched on."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from scipy.integrate import solve_ivp

from emsim.physiology.errors import ModelParameterError
from emsim.physiology.fatigue import FatigueParameters, deficit_uses_economy, economy_factors
from emsim.physiology.muscle import load_muscle, simulate
from tests.physiology.test_muscle_kernel import load_bench

ON = FatigueParameters(economy_floor=0.1, economy_onset=2.0, economy_recovery=0.5,
                       economy_fused_interval=0.05, economy_unfused_interval=0.15)


def _ode_factors(pulses, fat):
    """The factor by integrating dR/dt = −w(R − R_f)/τ_d + (1 − w)(1 − R)/τ_r numerically,
    w constant over each interval (an independent check of the closed form)."""
    out, r = [1.0], 1.0
    for a, b in zip(pulses[:-1], pulses[1:]):
        dt = b - a
        w = np.clip((fat.economy_unfused_interval - dt)
                    / (fat.economy_unfused_interval - fat.economy_fused_interval), 0.0, 1.0)

        def rhs(_t, y, w=w):
            return [-w * (y[0] - fat.economy_floor) / fat.economy_onset
                    + (1.0 - w) * (1.0 - y[0]) / fat.economy_recovery]
        r = solve_ivp(rhs, (0.0, dt), [r], rtol=1e-11, atol=1e-12).y[0, -1]
        out.append(r)
    return np.array(out)


def test_factors_solve_their_ode_for_mixed_intervals():
    """Fused, partly fused and unfused intervals and rests, against a numerical solution of the
    defining ODE: within 1e-8."""
    rng = np.random.default_rng(3)
    gaps = rng.choice([0.0125, 0.033, 0.07, 0.1, 0.2, 0.5, 2.0], size=200)
    p = np.concatenate([[0.0], np.cumsum(gaps)])
    np.testing.assert_allclose(economy_factors(p, ON), _ode_factors(p, ON), atol=1e-8)


def test_fused_train_approaches_the_floor_with_the_onset_time():
    """At a fused rate (w = 1) R(t) = R_f + (1 − R_f)·e^{−t/τ_d} at the pulse times."""
    p = np.arange(0.0, 10.0, 1 / 30)
    expected = ON.economy_floor + (1 - ON.economy_floor) * np.exp(-p / ON.economy_onset)
    np.testing.assert_allclose(economy_factors(p, ON), expected, rtol=1e-10)


def test_twitch_trains_and_the_first_pulse_pay_in_full():
    """Intervals at or above the unfused interval never lower the factor: 2–6 Hz twitch trains
    (McCully 2019's protocol) and the first pulse of a timing keep R = 1."""
    for f in (2.0, 4.0, 6.0):
        p = np.arange(0.0, 30.0, 1.0 / f)
        assert np.all(economy_factors(p, ON) == 1.0), f


def test_rest_recovers_with_the_recovery_time():
    """After 5 s of 40 Hz, a 1 s rest brings R back as 1 − (1 − R_end)·e^{−1 s/τ_r}."""
    train = np.arange(0.0, 5.0, 1 / 40)
    p = np.concatenate([train, train[-1] + 1.0 + train])
    r = economy_factors(p, ON)
    r_end = r[train.size - 1]
    assert r_end < 0.2
    assert r[train.size] == pytest.approx(1 - (1 - r_end) * np.exp(-1.0 / ON.economy_recovery),
                                          rel=1e-12)


def test_off_by_default_and_only_on_the_ding_deficits():
    """Off by default, in Ding 2003 and in every shipped muscle; on, it weights the capacity,
    relaxation and fast Km deficits, not the slow Km one, high-frequency fatigue or the gain."""
    assert economy_factors(np.arange(0.0, 1.0, 0.01), FatigueParameters()) is None
    assert economy_factors(np.arange(0.0, 1.0, 0.01), FatigueParameters.ding2003(127.0)) is None
    for name in ("quadriceps_ding2003", "lumbar_erector_spinae"):
        assert load_muscle(name).fatigue.economy_floor == 1.0
    mask = deficit_uses_economy(ON)
    assert mask[:5].all() and not mask[5:].any()


@pytest.mark.parametrize("field, value", [("economy_floor", 0.0), ("economy_floor", 1.5),
                                          ("economy_onset", -1.0), ("economy_recovery", 0.0),
                                          ("economy_unfused_interval", 0.05)])
def test_bad_economy_parameters_raise(field, value):
    with pytest.raises(ModelParameterError) as err:
        dataclasses.replace(ON, **{field: value})
    assert field in err.value.path


@pytest.fixture(scope="module")
def muscle():
    """The quadriceps with the economy switched on (the shipped data leave it off: no setting
    passed every validation test, docs/literature/muscle_fatigue_effects.md, session 8)."""
    quad = load_muscle("quadriceps_ding2003")
    return dataclasses.replace(quad, fatigue=dataclasses.replace(
        quad.fatigue, economy_floor=ON.economy_floor, economy_onset=ON.economy_onset,
        economy_recovery=ON.economy_recovery))


def test_twitch_train_is_unaffected_by_the_economy(muscle):
    """A 4 Hz twitch train never lowers the factor, so switching the economy off changes
    nothing (deficits to round-off)."""
    off = dataclasses.replace(muscle, fatigue=dataclasses.replace(muscle.fatigue,
                                                                  economy_floor=1.0))
    p = np.arange(0.0, 60.0, 0.25)
    a = simulate(p, muscle, trace=False, skip_tol=None)
    b = simulate(p, off, trace=False, skip_tol=None)
    np.testing.assert_allclose(a.deficits, b.deficits, rtol=1e-12, atol=1e-15)


def test_sustained_contraction_costs_less_with_the_economy(muscle):
    """60 s of continuous 30 Hz: the deficits the economy weights end smaller with it than
    without it in every cell (the per-second cost falls towards the floor after the onset)."""
    off = dataclasses.replace(muscle, fatigue=dataclasses.replace(muscle.fatigue,
                                                                  economy_floor=1.0))
    p = np.arange(0.0, 60.0, 1 / 30)
    on_x = simulate(p, muscle, trace=False).deficits[0, :, :5]
    off_x = simulate(p, off, trace=False).deficits[0, :, :5]
    assert np.all(on_x < off_x)
    # the slow class (first cell) is far from saturating: there the cost falls by more than half
    assert np.all(on_x[0] < 0.5 * off_x[0])


@pytest.mark.slow
@pytest.mark.parametrize("case", ["intermittent", "sustained"])
def test_economy_matches_a_fine_solve_ivp_reference(muscle, case):
    """The kernel (economy factors in the interval and step tables, the relaxation tail's
    closed-form drive) against the solve_ivp reference of
    ``benchmarks/bench_muscle.py``: force within 0.1 % of the peak, deficits within 1e-4."""
    bench = load_bench()
    if case == "intermittent":
        p = np.concatenate([k * 2.0 + np.arange(0.0, 1.0, 1 / 30) for k in range(4)])
        rec = 0.6
    else:
        p = np.arange(0.0, 8.0, 1 / 40)
        rec = 1.0
    # without the interval stepping (its own check below): the equations
    r = simulate(p, muscle, recruitment=rec, dt=1e-3, skip_tol=None)
    ref, x = bench.reference_pool(p, np.full((1, p.size), rec), muscle, r.t)
    assert np.max(np.abs(r.force_n - ref)) < 1e-3 * ref.max()
    assert np.max(np.abs(r.deficits - x)) < 1e-4


def test_interval_stepping_with_the_economy_matches_full_integration(muscle):
    """Stepping over pulse intervals whose economy factor still falls (the deficits' increments
    are interpolated) vs integrating every interval, 2 min of 85 Hz 4 s on / 4 s off: the
    house targets of ``test_muscle_solver.py`` (peaks and force-time integrals 0.1 %, deficits
    1e-3 relative), and the stepping still saves most node steps."""
    p = np.concatenate([k * 8.0 + np.arange(0.0, 4.0, 1 / 85) for k in range(15)])
    full = simulate(p, muscle, dt=0.005, skip_tol=None)
    fast = simulate(p, muscle, dt=0.005)
    assert fast.stats["node_steps"] < 0.3 * full.stats["node_steps"]
    peak = full.peak_force_n.max()
    assert np.max(np.abs(fast.peak_force_n - full.peak_force_n)) < 1e-3 * peak
    assert np.max(np.abs(fast.fti_ns - full.fti_ns) / full.fti_ns) < 1e-3
    assert np.all(np.abs(fast.deficits - full.deficits) <= 1e-3 * full.deficits + 1e-12)
