"""The simulated stimulator: faithful delivery of the compiled program, operator control, faults.

All but the threaded tests move simulated time explicitly (``threaded=False``), so nothing sleeps.
"""

from __future__ import annotations

import math
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsim.devices.audit import AuditLog, read_events
from emsim.devices.base import EventKind, StimulatorState
from emsim.devices.simulated import ForceTrace, SimulatedStimulator, default_physiology, peak_forces
from emsim.errors import DeviceError, SafetyViolation
from emsim.program import from_dict
from emsim.testing.clock import ManualClock

PATIENTS = Path(__file__).resolve().parents[2] / "models" / "patients"


@pytest.fixture
def program(base_doc):
    # 60 s, one channel, 50 Hz, 5 s on (1 s ramps) / 5 s off, 20 mA
    return from_dict(base_doc)


def _two_channel_doc(base_doc):
    ch = dict(base_doc["channels"][0], id="B", side="right")
    st = dict(base_doc["phases"][0]["stimulation"][0], channel="B", amplitude={"ma": 30})
    base_doc["channels"].append(ch)
    base_doc["phases"][0]["stimulation"].append(st)
    return from_dict(base_doc)


def sim_for(program, patient, *, device="generic", audit=None, **kw):
    sim = SimulatedStimulator(device, threaded=False, audit=audit, physiology=kw.pop("physiology", None), **kw)
    sim.connect()
    sim.load(program, patient)
    return sim


def test_a_full_run_delivers_exactly_the_quantised_train(base_doc, measured_patient):
    program = _two_channel_doc(base_doc)
    sim = sim_for(program, measured_patient, device="rehastim2")
    sim.start()
    sim.run_to_end()
    assert sim.state is StimulatorState.STOPPED and sim.status().stop_cause == "program completed"
    train = sim.plan.train
    got = sim.delivered().as_pulse_train()
    live = train.amplitude_a > 0  # ramp pulses that quantise to 0 mA deliver nothing
    assert got.n_pulses == int(live.sum()) > 0 and (~live).sum() < 0.05 * train.n_pulses
    np.testing.assert_array_equal(np.diff(got.channel_ptr),
                                  [live[train.channel_slice(c)].sum() for c in range(2)])
    np.testing.assert_allclose(got.t_s, train.t_s[live], atol=1e-9)
    np.testing.assert_allclose(got.amplitude_a, train.amplitude_a[live], atol=1e-12)
    np.testing.assert_array_equal(got.width_s, train.width_s[live])


def test_delivery_is_chunked_but_not_reordered_in_time(program, measured_patient):
    sim = sim_for(program, measured_patient)
    seen = []
    sim.add_listener(lambda e: seen.append(e.data["t_s"]) if e.kind == EventKind.PULSES else None)
    sim.start()
    for _ in range(700):
        sim.advance(0.0937)  # steps that do not divide the pulse period
    t = np.concatenate(seen)
    assert t.size == int((sim.plan.train.amplitude_a > 0).sum()) and np.all(np.diff(t) > 0)


def test_pause_stops_pulses_and_resume_ramps_back_in(program, measured_patient):
    sim = sim_for(program, measured_patient)
    sim.start()
    sim.advance(2.5)                 # on the plateau (ramp up is 1 s)
    sim.pause()
    n_paused = sim.delivered().n_pulses
    sim.advance(0.05)
    assert sim.status().channels[0].amplitude_ma == 0.0  # the display shows no current while paused
    sim.advance(9.95)
    assert sim.delivered().n_pulses == n_paused  # nothing while paused
    st_ = sim.status()
    assert st_.state is StimulatorState.PAUSED and st_.elapsed_s == pytest.approx(12.5)
    assert st_.program_s == pytest.approx(2.5)
    sim.resume()
    sim.advance(1.5)
    d = sim.delivered()
    after = d.t_s >= 12.5
    assert after.any() and d.t_s[after].min() >= 12.5
    programmed = sim.plan.train.amplitude_a[d.source[after]]
    delivered = d.amplitude_a[after]
    assert delivered[0] < 0.2 * programmed[0]           # back in gently
    assert np.all(delivered <= programmed + 1e-12)
    assert delivered[-1] == pytest.approx(programmed[-1])  # full after the 1 s resume ramp


def test_lowered_intensity_scales_every_following_pulse(program, measured_patient):
    sim = sim_for(program, measured_patient)
    sim.start()
    sim.advance(1.0)
    n0 = sim.delivered().n_pulses
    max_ma = sim.plan.max_amplitude_a[0] * 1e3
    sim.set_intensity("A", max_ma / 2)
    sim.advance(30.0)
    d = sim.delivered()
    prog = sim.plan.train.amplitude_a[d.source[n0:]]
    np.testing.assert_allclose(d.amplitude_a[n0:], np.floor(prog / 2 / 1e-4 + 1e-6) * 1e-4, atol=1e-12)
    assert d.amplitude_a[n0:].max() <= max_ma / 2 * 1e-3 + 1e-12
    with pytest.raises(DeviceError):
        sim.set_intensity("A", max_ma + 1)


def test_stop_ramps_down_then_stops(program, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "s.sqlite")
    sim = sim_for(program, measured_patient, audit=log)
    sim.start()
    sim.advance(2.0)
    sim.stop(ramp_s=1.0)
    assert sim.state is StimulatorState.STOPPING
    sim.advance(5.0)
    assert sim.state is StimulatorState.STOPPED and sim.status().stop_cause == "operator stop"
    d = sim.delivered()
    ramp = d.t_s >= 2.0
    assert d.t_s.max() < 3.0                           # nothing after the ramp
    assert np.all(np.diff(d.amplitude_a[ramp]) <= 1e-12) and d.amplitude_a[ramp][-1] < 0.1 * d.amplitude_a[ramp][0]
    causes = [e["decoded"] for e in read_events(log.path) if e["kind"] == "stop_cause"]
    assert causes[-1] == {"cause": "operator stop", "emergency": False}


# --------------------------------------------------------------------------- faults

def test_electrode_contact_loss_is_an_emergency_stop(base_doc, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "e.sqlite")
    sim = sim_for(_two_channel_doc(base_doc), measured_patient, audit=log)
    events = []
    sim.add_listener(events.append)
    sim.inject_fault("electrode", at_s=12.34, channel="B")
    sim.start()
    sim.advance(60.0)
    st_ = sim.status()
    assert st_.state is StimulatorState.ERROR and "electrode" in st_.last_error and "B" in st_.last_error
    assert sim.delivered().t_s.max() < 12.34
    assert all(c.amplitude_ma == 0 for c in st_.channels)
    assert [e.channel for e in events if e.kind == EventKind.ERROR] == ["B"]
    rows = read_events(log.path)
    assert any(r["kind"] == "error" and r["decoded"]["kind"] == "electrode" for r in rows)
    assert any(r["kind"] == "stop_cause" and r["decoded"]["emergency"] and "electrode" in r["decoded"]["cause"]
               for r in rows)


def test_generic_device_error_is_an_emergency_stop(program, measured_patient):
    sim = sim_for(program, measured_patient)
    sim.inject_fault("device_error", at_s=3.0, message="output stage over-temperature")
    sim.start()
    sim.advance(10.0)
    assert sim.state is StimulatorState.ERROR and "over-temperature" in sim.status().last_error
    assert sim.delivered().t_s.max() < 3.0


def test_host_stall_lets_the_device_watchdog_stop_stimulation(program, measured_patient):
    sim = sim_for(program, measured_patient, device="rehastim2")
    sim.inject_fault("host_stall", at_s=11.0)   # on-window 10-15 s
    sim.start()
    sim.advance(30.0)
    st_ = sim.status()
    assert st_.state is StimulatorState.ERROR and "watchdog" in st_.last_error
    last = sim.delivered().t_s.max()
    assert 11.0 + 1.2 - 0.03 <= last < 11.0 + 1.2  # pulses until the 1.2 s watchdog expires, none after


def test_a_short_host_stall_within_the_watchdog_is_harmless(program, measured_patient):
    sim = sim_for(program, measured_patient, device="rehastim2")
    sim.inject_fault("host_stall", at_s=11.0, duration_s=1.0)
    sim.start()
    sim.run_to_end()
    assert sim.status().stop_cause == "program completed"


def test_a_dropped_ack_is_resolved_by_a_query_not_a_resend(program, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "d.sqlite")
    sim = sim_for(program, measured_patient, audit=log)
    sim.inject_fault("drop_acks", count=1)
    sim.start()
    assert sim.state is StimulatorState.RUNNING
    assert sim.device_commands.count("start") == 1 and sim.device_commands[-1] == "query"
    assert any(r["kind"] == "info" and r["decoded"].get("ack_missing") == "start" for r in read_events(log.path))


def test_lost_ack_and_lost_query_reply_stop_the_session(program, measured_patient):
    sim = sim_for(program, measured_patient)
    sim.start()
    sim.advance(2.0)
    sim.inject_fault("drop_acks", count=2)
    with pytest.raises(DeviceError, match="no acknowledgement"):
        sim.pause()
    assert sim.device_commands.count("pause") == 1        # never resent blindly
    assert sim.state is StimulatorState.STOPPED and sim.emergency_stopped
    n = sim.delivered().n_pulses
    sim.advance(10.0)
    assert sim.delivered().n_pulses == n


# --------------------------------------------------------------------------- refusal, threads

def test_unvalidated_program_is_refused_before_anything_is_delivered(program):
    from emsim.body import load_patient

    sim = SimulatedStimulator(threaded=False, physiology=None)
    sim.connect()
    with pytest.raises(SafetyViolation):
        sim.load(program, load_patient(PATIENTS / "example_pacemaker.json"))
    assert sim.device_commands == ["connect"]
    with pytest.raises(DeviceError):
        sim.start()
    with pytest.raises(DeviceError):
        sim.delivered()


def test_emergency_stop_from_other_threads_while_running(program, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "t.sqlite")
    sim = SimulatedStimulator(speed=20.0, physiology=None, audit=log, tick_s=0.005)
    sim.connect()
    sim.load(program, measured_patient)
    sim.start()
    deadline = time.monotonic() + 5
    while sim.delivered().n_pulses == 0 and time.monotonic() < deadline:
        time.sleep(0.01)
    threads = [threading.Thread(target=sim.emergency_stop, args=(f"panic {k}",)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(2.0)
    n = sim.delivered().n_pulses
    assert 0 < n < sim.plan.train.n_pulses
    time.sleep(0.1)
    assert sim.delivered().n_pulses == n                     # nothing after the stop returned
    assert sim.state is StimulatorState.STOPPED and sim.device_commands.count("emergency_stop") == 1
    causes = [r["decoded"] for r in read_events(log.path) if r["kind"] == "stop_cause"]
    assert len(causes) == 4 and sum(not c["repeat"] for c in causes) == 1
    sim.close()


def test_threaded_run_as_fast_as_possible_completes(program, measured_patient):
    sim = SimulatedStimulator(speed=math.inf, physiology=None)
    with sim:
        sim.load(program, measured_patient)
        sim.start()
        assert sim.wait(10.0)
        assert sim.status().stop_cause == "program completed"
        assert sim.delivered().n_pulses == sim.plan.train.n_pulses


def test_context_manager_stops_a_running_simulation_on_exception(program, measured_patient):
    sim = SimulatedStimulator(speed=5.0, physiology=None)
    with pytest.raises(KeyError):
        with sim:
            sim.load(program, measured_patient)
            sim.start()
            raise KeyError("controller bug")
    assert sim.emergency_stopped and sim.state is StimulatorState.DISCONNECTED
    n = sim.delivered().n_pulses
    time.sleep(0.05)
    assert sim.delivered().n_pulses == n and "KeyError" in sim.status().stop_cause


def test_manual_clock_poll_runs_at_the_speed_factor(program, measured_patient):
    clock = ManualClock()
    sim = SimulatedStimulator(speed=10.0, clock=clock, threaded=False, physiology=None)
    sim.connect()
    sim.load(program, measured_patient)
    sim.start()
    clock.advance(1.5)
    sim.poll()
    assert sim.status().elapsed_s == pytest.approx(15.0)


# --------------------------------------------------------------------------- physiology

def test_physiology_hook_receives_the_delivered_not_the_programmed_pulses(program, measured_patient):
    received = []
    sim = sim_for(program, measured_patient, physiology=lambda d: received.append(d) or "ok")
    sim.start()
    sim.advance(20.0)
    sim.stop(ramp_s=0.0)
    assert sim.physiology_result() == "ok"
    (d,) = received
    assert 0 < d.n_pulses < sim.plan.train.n_pulses and d.t_s.max() < 20.0


def test_default_physiology_gives_force_that_follows_the_pulses(program, measured_patient):
    sim = sim_for(program, measured_patient, physiology=default_physiology)
    sim.start()
    sim.run_to_end()
    res = sim.physiology_result()
    t = np.asarray(res.t if hasattr(res, "t") else res.t_s)
    force = np.atleast_2d(res.force_n)[0]
    on = (t > 3) & (t < 4)      # plateau of the first on-window (0-5 s)
    off = (t > 9) & (t < 10)    # 4 s into the off time
    assert force[on].mean() > 10 * max(force[off].mean(), 1e-3)
    assert peak_forces(res, sim.plan.channel_ids)["A"] > 0


def test_default_physiology_of_no_pulses_is_a_resting_muscle(program, measured_patient):
    sim = sim_for(program, measured_patient)
    sim.start()
    sim.emergency_stop("before the first pulse")
    res = default_physiology(sim.delivered())
    assert isinstance(res, ForceTrace) and not res.force_n.any()


def test_the_audit_log_shows_every_stop_cause(program, measured_patient, tmp_path):
    """One log, five sessions ending five ways: each cause is in the log, in order."""
    from emsim.body import load_patient

    path = tmp_path / "causes.sqlite"
    log = AuditLog(path)
    sim = SimulatedStimulator(threaded=False, physiology=None, audit=log, device="rehastim2")
    sim.connect()
    with pytest.raises(SafetyViolation):
        sim.load(program, load_patient(PATIENTS / "example_pacemaker.json"))
    endings = [
        lambda: sim.run_to_end(),
        lambda: (sim.advance(3.0), sim.stop(0.5), sim.advance(1.0)),
        lambda: (sim.advance(3.0), sim.emergency_stop("operator pressed the stop button")),
        lambda: (sim.inject_fault("electrode", at_s=2.0), sim.advance(5.0)),
        lambda: (sim.inject_fault("host_stall", at_s=2.0), sim.advance(5.0)),
    ]
    for end in endings:
        if sim.state is StimulatorState.ERROR:
            sim.connect()
        sim.load(program, measured_patient)
        sim.start()
        end()
    rows = read_events(path)
    refused = [r for r in rows if r["kind"] == "validator" and not r["decoded"]["ok"]]
    assert len(refused) == 1 and "example-pacemaker" == refused[0]["decoded"]["patient"]
    causes = [r["decoded"]["cause"] for r in rows if r["kind"] == "stop_cause"]
    assert causes[:3] == ["program completed", "operator stop", "operator pressed the stop button"]
    assert "electrode" in causes[3] and "watchdog" in causes[4] and len(causes) == 5


def test_raising_the_intensity_is_slew_limited_and_lowering_is_immediate(base_doc, measured_patient):
    from emsim.devices.simulated import SLEW_UP_MA_PER_S

    base_doc["phases"][0]["stimulation"][0].update(on_s=30, off_s=0, ramp_up_s=0, ramp_down_s=0)
    base_doc["phases"][0]["duration_s"] = 30
    sim = sim_for(from_dict(base_doc), measured_patient)   # 20 mA plateau, 50 Hz
    sim.start()
    sim.advance(1.0)
    sim.set_intensity("A", 0.0)
    n0 = sim.delivered().n_pulses
    sim.advance(1.0)
    assert sim.delivered().n_pulses == n0                  # 0 mA at once: nothing delivered
    sim.set_intensity("A", 20.0)
    sim.advance(2.0)
    d = sim.delivered()
    t, amp_ma = d.t_s[n0:] - 2.0, d.amplitude_a[n0:] * 1e3
    assert np.all(amp_ma <= SLEW_UP_MA_PER_S * t + 0.1 + 1e-9)   # never faster than 5 mA per 100 ms
    assert amp_ma[0] < 2.0 and amp_ma[-1] == pytest.approx(20.0)
    assert t[np.argmax(amp_ma >= 20.0 - 1e-9)] == pytest.approx(20.0 / SLEW_UP_MA_PER_S, abs=0.03)


_ACTIONS = st.lists(st.tuples(st.sampled_from(["advance", "pause", "resume", "intensity", "stop", "estop"]),
                              st.floats(0.0, 1.0)), min_size=1, max_size=25)


def _operate(sim, actions, *, advance_s, max_a):
    """Apply an operator action sequence; refused actions (DeviceError) are part of the game."""
    for kind, x in actions:
        try:
            if kind == "advance":
                sim.advance(advance_s * x)
            elif kind == "pause":
                sim.pause()
            elif kind == "resume":
                sim.resume()
            elif kind == "intensity":
                sim.set_intensity(0, 1.3 * x * max_a * 1e3)   # sometimes above the maximum: refused
            elif kind == "stop":
                sim.stop(ramp_s=x)
            else:
                sim.emergency_stop("property test")
        except DeviceError:
            pass


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=_ACTIONS)
def test_no_operator_sequence_exceeds_the_validated_maximum(base_doc, measured_patient, actions):
    """Whatever the operator does, each programmed pulse goes out at most once, in order, never above max."""
    sim = sim_for(from_dict(base_doc), measured_patient, device="rehastim2")
    sim.start()
    max_a = sim.plan.max_amplitude_a[0]
    _operate(sim, actions, advance_s=20.0, max_a=max_a)
    sim.advance(5.0)
    d = sim.delivered()
    assert np.all(d.amplitude_a <= max_a + 1e-12)
    assert np.all(d.amplitude_a <= sim.plan.train.amplitude_a[d.source] + 1e-12)
    assert np.all(np.diff(d.source) > 0) and np.all(np.diff(d.t_s) > 0)
    if sim.emergency_stopped:
        n = d.n_pulses
        sim.advance(30.0)
        assert sim.delivered().n_pulses == n


# --------------------------------------------------------------------------- phase windows after pauses

def _paused_prediction(program, patient, pauses=(), *, stop_at_s=None):
    """Run ``program`` with ``pauses`` ((program position s, pause length s), ...) and predict it."""
    from emsim.devices.simulated import predict_delivered

    sim = sim_for(program, patient, resume_ramp_s=0.0)  # no resume ramp: the pulses only move in time
    sim.start()
    at = 0.0
    for position_s, length_s in pauses:
        sim.advance(position_s - at)
        at = position_s
        sim.pause()
        sim.advance(length_s)
        sim.resume()
    if stop_at_s is not None:
        sim.advance(stop_at_s - at)
        sim.stop(ramp_s=0.0)
    sim.run_to_end()
    d = sim.delivered()
    return d, predict_delivered(d, patient).scalars


def _three_phases(base_doc, kinds=("warm_up", "main", "cool_down"), lengths=(20, 60, 20)):
    ph = base_doc["phases"][0]
    base_doc["phases"] = [dict(ph, name=k, kind=k, duration_s=s) for k, s in zip(kinds, lengths)]
    return from_dict(base_doc)


def test_a_pause_before_the_first_pulse_predicts_the_unpaused_session(program, measured_patient):
    """A 30 s pause at the start only moves every pulse 30 s later (fresh muscle either way), so the
    main phase's fatigue decline and mean %MVC are the unpaused ones. Before the phase windows moved
    with the pauses, the last 30 s of contractions fell outside the main phase (decline 22 % instead
    of 39 %)."""
    _, plain = _paused_prediction(program, measured_patient)
    _, paused = _paused_prediction(program, measured_patient, [(0.0, 30.0)])
    for key in ("fatigue_decline_pct", "mean_mvc_pct", "peak_mvc_pct"):
        assert paused[key] == pytest.approx(plain[key], rel=1e-9), key
    assert plain["fatigue_decline_pct"] > 10.0  # a decline that a lost contraction would change


def test_a_pause_in_a_rest_gap_equals_the_same_gap_written_into_the_program(base_doc, measured_patient):
    """Pausing 10 s in the off time at 9.95 s delivers exactly the pulses of a program whose main
    phase is split by a 10 s rest phase at 10 s: the muscle (and its recovery) sees the same
    session, and the fatigue decline and mean %MVC must agree (before the fix the paused session
    lost its last contraction: decline 34.8 % instead of 39.2 %)."""
    d, paused = _paused_prediction(from_dict(base_doc), measured_patient, [(9.95, 10.0)])
    ph = base_doc["phases"][0]
    base_doc["phases"] = [dict(ph, duration_s=10),
                          {"name": "gap", "kind": "rest", "duration_s": 10, "timing": ph["timing"], "stimulation": []},
                          dict(ph, name="main 2", duration_s=50)]
    e, written = _paused_prediction(from_dict(base_doc), measured_patient)
    np.testing.assert_allclose(d.t_s, e.t_s, atol=1e-9)
    for key in ("fatigue_decline_pct", "mean_mvc_pct", "peak_mvc_pct"):
        assert paused[key] == pytest.approx(written[key], rel=1e-9), key


def test_a_pause_inside_the_main_phase_keeps_its_last_contractions(base_doc, measured_patient):
    """A pause mid-contraction in the main phase: the main-phase window stretches by the pause, so
    the contraction delivered last (program 50-55 s, session 65-70 s) is inside it and in the
    decline; a stop ends the window where delivery ended."""
    program = _three_phases(base_doc)
    d, _ = _paused_prediction(program, measured_patient, [(22.5, 15.0)])
    train = d.as_pulse_train()
    main = [b for b in train.blocks if program.phases[b.phase].kind == "main"]
    assert [(b.start_s, b.end_s) for b in main] == [(20.0, pytest.approx(95.0))]
    last_main = train.t_s[main[0].stop - 1]
    assert 85.0 < last_main < main[0].end_s  # delivered for the main phase, inside its window
    cool = [b for b in train.blocks if program.phases[b.phase].kind == "cool_down"][0]
    assert cool.start_s == pytest.approx(95.0) and cool.end_s == pytest.approx(d.duration_s) == pytest.approx(115.0)

    d, _ = _paused_prediction(program, measured_patient, [(22.5, 15.0)], stop_at_s=42.5)
    blocks = d.as_pulse_train().blocks
    assert d.duration_s == pytest.approx(57.5)
    assert [(b.start_s, b.end_s) for b in blocks] == [(0.0, 20.0), (20.0, pytest.approx(57.5)),
                                                      (pytest.approx(57.5), pytest.approx(57.5))]


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(actions=_ACTIONS)
def test_every_delivered_pulse_lies_in_its_blocks_window(base_doc, measured_patient, actions):
    """Whatever the operator does, the delivered train keeps PulseTrain's shape: each block's pulses
    lie in its [start_s, end_s), a channel's blocks follow each other without overlap, and no window
    reaches past the end of delivery."""
    sim = sim_for(_three_phases(base_doc, lengths=(10, 20, 10)), measured_patient)
    sim.start()
    _operate(sim, actions, advance_s=10.0, max_a=sim.plan.max_amplitude_a[0])
    sim.advance(5.0 * actions[-1][1])
    d = sim.delivered()
    train = d.as_pulse_train()
    for b in train.blocks:
        t = train.t_s[b.first:b.stop]
        assert b.start_s <= b.first_cycle_s <= b.end_s <= d.duration_s + 1e-12
        assert np.all((t >= b.start_s - 1e-9) & (t < b.end_s))
    for c in range(len(train.channel_ids)):
        mine = [b for b in train.blocks if b.channel == c]
        assert all(a.end_s <= b.start_s + 1e-12 for a, b in zip(mine, mine[1:]))
