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


def _ode_factors(pulses, fat, activation=None):
    """The factor by integrating dR/dt = −w(R − R_f)/τ_d + (1 − w)(1 − R)/τ_r numerically,
    w constant over each interval and scaled by the activation of the pulse that starts it (an
    independent check of the closed form)."""
    act = np.ones(pulses.size) if activation is None else activation
    out, r = [1.0], 1.0
    for i, (a, b) in enumerate(zip(pulses[:-1], pulses[1:])):
        dt = b - a
        w = act[i] * np.clip((fat.economy_unfused_interval - dt)
                             / (fat.economy_unfused_interval - fat.economy_fused_interval),
                             0.0, 1.0)

        def rhs(_t, y, w=w):
            return [-w * (y[0] - fat.economy_floor) / fat.economy_onset
                    + (1.0 - w) * (1.0 - y[0]) / fat.economy_recovery]
        r = solve_ivp(rhs, (0.0, dt), [r], rtol=1e-11, atol=1e-12).y[0, -1]
        out.append(r)
    return np.array(out)


def test_factors_solve_their_ode_for_mixed_intervals():
    """Fused, partly fused and unfused intervals and rests, against a numerical solution of the
    defining ODE: within 1e-8."""
    p = _mixed_timing(3)
    np.testing.assert_allclose(economy_factors(p, ON), _ode_factors(p, ON), atol=1e-8)


def _timing_only_factors(pulses, fat):
    """The factor as first written (session 8, before activation counted): the fusion weight
    of the interval alone, in plain Python."""
    out, r = [1.0], 1.0
    span = fat.economy_unfused_interval - fat.economy_fused_interval
    for a, b in zip(pulses[:-1], pulses[1:]):
        dt = b - a
        w = min(1.0, max(0.0, (fat.economy_unfused_interval - dt) / span))
        k = w / fat.economy_onset + (1 - w) / fat.economy_recovery
        r_inf = (w * fat.economy_floor / fat.economy_onset + (1 - w) / fat.economy_recovery) / k
        r = r_inf + (r - r_inf) * np.exp(-k * dt)
        out.append(r)
    return np.array(out)


def _mixed_timing(seed):
    rng = np.random.default_rng(seed)
    gaps = rng.choice([0.0125, 0.033, 0.07, 0.1, 0.2, 0.5, 2.0], size=200)
    return np.concatenate([[0.0], np.cumsum(gaps)])


def test_full_activation_reproduces_the_timing_only_factors():
    """Activation 1 at every pulse (given, or left out) gives the factors of the timing-only
    form to 1e-12."""
    p = _mixed_timing(5)
    ref = _timing_only_factors(p, ON)
    np.testing.assert_allclose(economy_factors(p, ON, np.ones(p.size)), ref, rtol=0, atol=1e-12)
    np.testing.assert_allclose(economy_factors(p, ON), ref, rtol=0, atol=1e-12)


def test_factors_with_partial_activation_solve_their_ode():
    """Activations between 0 and 1 (and beyond, clipped) against the numerical ODE solution with
    the fusion weight scaled by the starting pulse's activation: within 1e-8."""
    p = _mixed_timing(7)
    act = np.random.default_rng(8).uniform(-0.2, 1.2, p.size)
    np.testing.assert_allclose(economy_factors(p, ON, act),
                               _ode_factors(p, ON, np.clip(act, 0.0, 1.0)), atol=1e-8)


def test_lead_in_that_recruits_nothing_earns_no_economy():
    """3 s of 50 Hz at activation 0 before a 50 Hz contraction: the factor at the first
    recruiting pulse is exactly 1 (the lead-in is a rest), and from there the factors equal
    those of the contraction on its own; the timing-only form had it near the floor."""
    p = np.arange(0.0, 7.0, 1 / 50)
    act = (p >= 3.0 - 1e-9).astype(float)
    i3 = int(np.argmax(act))
    r = economy_factors(p, ON, act)
    assert r[i3] == 1.0
    np.testing.assert_allclose(r[i3:], economy_factors(p[i3:] - p[i3], ON), rtol=0, atol=1e-12)
    assert economy_factors(p, ON)[i3] == pytest.approx(
        ON.economy_floor + (1 - ON.economy_floor) * np.exp(-p[i3] / ON.economy_onset), rel=1e-9)


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


def test_session_lead_in_at_recruitment_zero_changes_nothing(muscle):
    """A 3 s, 40 Hz lead-in at recruitment 0 ending 0.5 s before 20 s of 40 Hz, 4 s on /
    4 s off: the deficits and every contraction's force-time integral equal those of the
    session without the lead-in to 1e-9. (The timing-only factor left R ≈ 0.74 at the first
    recruited pulse, and the lead-in ends 25 τc before it, so the Ding core's own pulse-timing
    term R_i is 1 there too.)"""
    cycles = [k * 8.0 + np.arange(0.0, 4.0, 1 / 40) for k in range(3)]
    alone = np.concatenate(cycles)
    lead = np.arange(-3.5, -0.5 + 1e-9, 1 / 40)
    with_lead = np.concatenate([lead, alone])
    rec = np.where(with_lead < -0.25, 0.0, 0.7)
    a = simulate(alone, muscle, recruitment=0.7, trace=False, t_end=24.0)
    b = simulate(with_lead, muscle, recruitment=rec, trace=False, t_end=24.0)
    np.testing.assert_allclose(b.deficits, a.deficits, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(b.fti_ns[0, -3:], a.fti_ns[0], rtol=1e-9)
    assert b.fti_ns[0, 0] == 0.0


def test_batch_rows_with_different_activation_equal_single_rows(muscle):
    """Rows of one timing whose activation differs (flat, ramped, half-amplitude lead) run in
    separate groups of the kernel's tables: each batch row equals the row simulated alone."""
    p = np.concatenate([k * 3.0 + np.arange(0.0, 2.0, 1 / 35) for k in range(4)])
    rel = np.mod(p, 3.0)
    rows = np.vstack([np.full(p.size, 0.6), np.clip(rel / 0.5, 0, 1) * 0.6,
                      np.where(rel < 0.5, 0.3, 0.6), np.full(p.size, 0.6)])
    batch = simulate(np.broadcast_to(p, rows.shape), muscle, recruitment=rows, trace=False)
    for i, r in enumerate(rows):
        one = simulate(p, muscle, recruitment=r, trace=False)
        np.testing.assert_allclose(batch.fti_ns[i], one.fti_ns[0], rtol=1e-12)
        np.testing.assert_allclose(batch.deficits[i, :one.deficits.shape[1]], one.deficits[0],
                                   rtol=1e-12, atol=1e-15)
    # the ramped rows hold less of their pool early, so they keep more of the economy's cost
    assert not np.allclose(batch.deficits[0], batch.deficits[1, :batch.deficits[0].shape[0]])


@pytest.mark.slow
def test_economy_with_ramped_activation_matches_the_reference(muscle):
    """A flat row and a row ramped 0 → 0.6 over 0.5 s (activation rising from 0) in one batch,
    against the solve_ivp reference of ``benchmarks/bench_muscle.py`` (per-row activation):
    force within 0.1 % of the peak, deficits within 1e-4."""
    bench = load_bench()
    p = np.concatenate([k * 2.0 + np.arange(0.0, 1.0, 1 / 30) for k in range(4)])
    rel = np.mod(p, 2.0)
    rows = np.vstack([np.full(p.size, 0.6), np.clip(rel / 0.5, 0.0, 1.0) * 0.6])
    r = simulate(np.broadcast_to(p, rows.shape), muscle, recruitment=rows, dt=1e-3,
                 skip_tol=None)
    ref, x = bench.reference_pool(p, rows, muscle, r.t)
    assert np.max(np.abs(r.force_n - ref)) < 1e-3 * ref.max()
    assert np.max(np.abs(r.deficits - x)) < 1e-4
