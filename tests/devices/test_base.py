"""The Stimulator interface: the safety checks the base class does before any device hook runs."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from emsim.devices.audit import AuditLog, read_events
from emsim.devices.base import (Capabilities, EventKind, Stimulator, StimulatorState, program_hash)
from emsim.errors import DeviceError, SafetyViolation
from emsim.program import from_dict


class Recorder(Stimulator):
    """A stimulator whose hooks only record that they were called (and can be told to fail)."""

    def __init__(self, device="generic", fail=(), **kw):
        super().__init__(Capabilities.from_profile(device), **kw)
        self.calls: list[tuple] = []
        self.fail = set(fail)

    def _hook(self, name, *args):
        self.calls.append((name, *args))
        if name in self.fail:
            raise RuntimeError(f"{name} exploded")

    def _connect(self):
        self._hook("connect")

    def _load_plan(self, plan):
        self._hook("load", plan)

    def _start(self):
        self._hook("start")

    def _pause(self):
        self._hook("pause")

    def _resume(self):
        self._hook("resume")

    def _set_intensity(self, channel, amplitude_a):
        self._hook("set_intensity", channel, amplitude_a)

    def _stop(self, ramp_s):
        self._hook("stop", ramp_s)

    def _emergency_stop(self):
        self._hook("emergency_stop")

    def names(self):
        return [c[0] for c in self.calls]


PATIENTS = Path(__file__).resolve().parents[2] / "models" / "patients"


@pytest.fixture
def program(base_doc):
    return from_dict(base_doc)


@pytest.fixture
def pacemaker():
    from emsim.body import load_patient
    return load_patient(PATIENTS / "example_pacemaker.json")


def running(stim, program, patient):
    stim.connect()
    stim.load(program, patient)
    stim.start()
    return stim


# --------------------------------------------------------------------------- capabilities

@pytest.mark.parametrize("device, channels, shared, watchdog", [
    ("rehastim2", 8, True, 1.2), ("p24", 8, False, 2.0), ("generic", 16, False, 2.0)])
def test_capabilities_come_from_the_device_profile(device, channels, shared, watchdog):
    from emsim.program.device_profile import device_profile

    caps = Capabilities.from_profile(device)
    prof = device_profile(device)
    assert (caps.channels, caps.shared_frequency, caps.watchdog_timeout_s) == (channels, shared, watchdog)
    assert caps.amplitude_ma == prof.current_ma and caps.pulse_width_us == prof.pulse_width_us
    assert caps.frequency_hz == pytest.approx((1000 / prof.period_ms.max, 1000 / prof.period_ms.min))
    assert 0 < caps.heartbeat_period_s < caps.watchdog_timeout_s / 2  # at least two keep-alives per watchdog


def test_heartbeat_longer_than_the_watchdog_is_refused():
    with pytest.raises(DeviceError, match="heartbeat"):
        Capabilities.from_profile("rehastim2", heartbeat_period_s=1.5)


@settings(max_examples=200, deadline=None)
@given(st.floats(0, 0.2, allow_nan=False), st.sampled_from(["rehastim2", "p24", "generic"]))
def test_floor_amplitude_never_exceeds_the_request_and_lands_on_a_step(amp, device):
    caps = Capabilities.from_profile(device)
    out = caps.floor_amplitude_a(amp)
    step = caps.amplitude_ma.step * 1e-3
    assert out <= amp + 1e-12
    assert out <= caps.amplitude_ma.max * 1e-3
    assert abs(out / step - round(out / step)) < 1e-6
    assert amp - out < step + 1e-12 or amp > caps.amplitude_ma.max * 1e-3


# --------------------------------------------------------------------------- load: validation first

def test_unsafe_program_is_refused_before_the_device_sees_it(program, pacemaker, tmp_path):
    log = AuditLog(tmp_path / "a.sqlite")
    stim = Recorder(audit=log)
    stim.connect()
    with pytest.raises(SafetyViolation):
        stim.load(program, pacemaker)
    assert "load" not in stim.names()
    assert stim.state is StimulatorState.CONNECTED and stim.plan is None
    with pytest.raises(DeviceError, match="no validated program"):
        stim.start()
    assert "start" not in stim.names()
    refused = [e for e in read_events(log.path) if e["kind"] == "validator"]
    assert refused and refused[-1]["decoded"]["ok"] is False
    assert any("contraindication" in line or "pacemaker" in line.lower() for line in refused[-1]["decoded"]["errors"])


def test_validate_needs_no_connection_and_does_no_device_io(program, measured_patient):
    stim = Recorder()
    plan = stim.validate(program, measured_patient)
    assert stim.calls == [] and stim.state is StimulatorState.DISCONNECTED
    assert plan.program_hash == program_hash(program)


def test_load_hands_the_hook_a_quantised_validated_plan(program, measured_patient):
    stim = Recorder(device="rehastim2")
    stim.connect()
    plan = stim.load(program, measured_patient)
    (hooked,) = [c[1] for c in stim.calls if c[0] == "load"]
    assert hooked is plan and plan.safety.ok
    amps_ma = plan.train.amplitude_a * 1e3
    assert np.allclose(amps_ma / 2.0, np.round(amps_ma / 2.0))  # RehaStim 2: 2 mA steps
    assert plan.max_amplitude_a == (pytest.approx(float(plan.train.amplitude_a.max())),)
    assert stim.state is StimulatorState.LOADED


def test_start_requires_a_loaded_program(program, measured_patient):
    stim = Recorder()
    stim.connect()
    with pytest.raises(DeviceError, match="no validated program"):
        stim.start()
    assert "start" not in stim.names()


# --------------------------------------------------------------------------- intensity limit

def test_intensity_above_the_validated_maximum_is_refused(program, measured_patient):
    stim = running(Recorder(), program, measured_patient)
    max_ma = stim.plan.max_amplitude_a[0] * 1e3
    with pytest.raises(DeviceError) as info:
        stim.set_intensity("A", max_ma + 0.5)
    err = info.value
    assert "A" in err.path and err.value == max_ma + 0.5 and f"{max_ma:g} mA" in err.allowed
    for bad in (-1.0, float("nan"), float("inf"), "lots"):
        with pytest.raises(DeviceError):
            stim.set_intensity("A", bad)
    with pytest.raises(DeviceError, match="unknown channel"):
        stim.set_intensity("Z", 1.0)
    assert "set_intensity" not in stim.names()


def test_intensity_within_limits_is_floored_to_the_device_step(program, measured_patient):
    stim = running(Recorder(device="rehastim2"), program, measured_patient)
    applied = stim.set_intensity(0, 12.9)
    assert applied == pytest.approx(12.0)  # 2 mA steps, rounded down
    assert stim.calls[-1][0] == "set_intensity" and stim.calls[-1][2] == pytest.approx(0.012)
    assert stim.status().channels[0].level_ma == pytest.approx(12.0)


# --------------------------------------------------------------------------- emergency stop

def test_emergency_stop_never_raises_and_calls_the_hook_once(program, measured_patient):
    stim = running(Recorder(fail={"emergency_stop"}), program, measured_patient)
    stim.emergency_stop("first")
    stim.emergency_stop("second")
    assert stim.names().count("emergency_stop") == 1
    st_ = stim.status()
    assert st_.state is StimulatorState.STOPPED and st_.stop_cause == "first"


def test_emergency_stop_from_many_threads_at_once(program, measured_patient):
    stim = running(Recorder(), program, measured_patient)
    barrier = threading.Barrier(8)

    def hit(k):
        barrier.wait()
        stim.emergency_stop(f"thread {k}")

    threads = [threading.Thread(target=hit, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert stim.names().count("emergency_stop") == 1
    assert stim.state is StimulatorState.STOPPED
    with pytest.raises(DeviceError):
        stim.start()  # re-arming needs a new load


def test_device_error_is_an_emergency_stop_with_an_error_event(program, measured_patient):
    stim = running(Recorder(), program, measured_patient)
    events = []
    stim.add_listener(events.append)
    stim._device_error("electrode contact lost", channel=0, kind="electrode")
    assert "emergency_stop" in stim.names()
    st_ = stim.status()
    assert st_.state is StimulatorState.ERROR and "electrode" in st_.last_error and "A" in st_.last_error
    errors = [e for e in events if e.kind == EventKind.ERROR]
    assert errors and errors[0].channel == "A"
    assert any(e.kind == EventKind.STOP for e in events)


def test_a_failing_start_hook_stops_and_reports(program, measured_patient):
    stim = Recorder(fail={"start"})
    stim.connect()
    stim.load(program, measured_patient)
    with pytest.raises(DeviceError, match="start failed"):
        stim.start()
    assert "emergency_stop" in stim.names() and stim.state is StimulatorState.STOPPED


def test_a_broken_listener_does_not_break_stopping(program, measured_patient):
    stim = running(Recorder(), program, measured_patient)

    def broken(event):
        raise RuntimeError("listener bug")

    stim.add_listener(broken)
    stim.emergency_stop("stop anyway")
    assert stim.state is StimulatorState.STOPPED and "emergency_stop" in stim.names()


# --------------------------------------------------------------------------- context manager, stop

def test_context_manager_emergency_stops_on_exception(program, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "a.sqlite")
    stim = Recorder(audit=log)
    with pytest.raises(ZeroDivisionError):
        with stim:
            stim.load(program, measured_patient)
            stim.start()
            1 / 0
    assert "emergency_stop" in stim.names() and "stop" not in stim.names()
    assert stim.state is StimulatorState.DISCONNECTED
    causes = [e["decoded"]["cause"] for e in read_events(log.path) if e["kind"] == "stop_cause"]
    assert any("ZeroDivisionError" in c for c in causes)


def test_context_manager_stops_with_a_ramp_on_normal_exit(program, measured_patient):
    stim = Recorder()
    with stim:
        stim.load(program, measured_patient)
        stim.start()
    assert ("stop", 1.0) in stim.calls and "emergency_stop" not in stim.names()
    assert stim.state is StimulatorState.DISCONNECTED


def test_stop_records_its_cause_and_pause_resume_follow_the_state_machine(program, measured_patient):
    stim = running(Recorder(), program, measured_patient)
    with pytest.raises(DeviceError):
        stim.resume()
    stim.pause()
    assert stim.state is StimulatorState.PAUSED
    stim.resume()
    stim.stop(0.5, cause="SIGTERM received")
    assert ("stop", 0.5) in stim.calls
    assert stim.status().stop_cause == "SIGTERM received" and stim.state is StimulatorState.STOPPED
    with pytest.raises(DeviceError, match="non-negative"):
        running(Recorder(), program, measured_patient).stop(-1)
