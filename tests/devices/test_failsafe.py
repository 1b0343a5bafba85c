"""Fail-safe behaviour of the ScienceMode drivers against their emulators (issue 5).

Every case runs over a real pseudo-terminal with an audit log attached, and checks three
things: what the device (emulator) did, what the driver reported, and that the audit log
shows the cause. Watchdog times are the devices' documented values (1.2 s and 2 s, measured
in real time); instants are asserted to within +150 ms (loop granularity and CPU contention),
never earlier than the documented value.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from emsim.devices import AuditLog, EventKind, StimulatorState
from emsim.devices.audit import read_events, read_sessions
from emsim.devices.emulator import ScienceMode2Emulator, ScienceMode4Emulator
from emsim.devices.emulator.scenarios import TEST_ACK_TIMEOUT_S, example_patient, short_paraspinal_program
from emsim.devices.sciencemode import sm2, sm4
from emsim.devices.sciencemode.driver_sm2 import ScienceMode2Stimulator
from emsim.devices.sciencemode.driver_sm4 import ScienceMode4Stimulator
from emsim.errors import DeviceError, SafetyViolation
from emsim.program import from_dict

SLACK = 0.15

DEVICES = {
    "sm2": (ScienceMode2Emulator, ScienceMode2Stimulator, 1.2, sm2),
    "sm4": (ScienceMode4Emulator, ScienceMode4Stimulator, 2.0, sm4),
}


@pytest.fixture(params=sorted(DEVICES))
def setup(request, tmp_path):
    emu_cls, drv_cls, watchdog, codec = DEVICES[request.param]
    emu = emu_cls(latency_ms=2.0).start()
    log = tmp_path / "audit.sqlite"
    audit = AuditLog(log)
    drv = drv_cls(emu.port, audit=audit, ack_timeout_s=TEST_ACK_TIMEOUT_S)
    events: list = []
    drv.add_listener(lambda e: events.append(e) if e.kind != EventKind.PROGRESS else None)
    ns = type("Setup", (), dict(name=request.param, emu=emu, drv=drv, events=events, log=log,
                                watchdog=watchdog, codec=codec))
    yield ns
    drv.emergency_stop("test teardown")
    try:
        drv.close()
    except DeviceError:
        pass
    emu.close()
    audit.close()


def running(s, **program):
    program = {"warm_up_s": 6, "main_s": 8, "cool_down_s": 4, "ramp_s": 1.0, **program}
    s.drv.connect()
    s.drv.load(short_paraspinal_program(**program), example_patient())
    s.drv.start()
    t = time.monotonic()
    while not s.emu.timeline.stimulating and time.monotonic() - t < 2:
        time.sleep(0.005)
    assert s.emu.timeline.stimulating


def wait_for(cond, timeout=3.0):
    t = time.monotonic()
    while not cond() and time.monotonic() - t < timeout:
        time.sleep(0.005)
    return cond()


def audit_events(s):
    return read_events(s.log)


def stop_causes(log):
    return [e["decoded"]["cause"] for e in read_events(log) if e["kind"] == "stop_cause"]


def rx_types_after(emu, t0):
    return [type(x.item.message).__name__ for x in emu.traffic
            if x.direction == "rx" and x.t >= t0 and hasattr(x.item, "message")]


# --------------------------------------------------------------------------- host killed

KILLED_HOST = r"""
import sys, time
from emsim.devices import AuditLog
from emsim.devices.emulator.scenarios import TEST_ACK_TIMEOUT_S, example_patient, short_paraspinal_program
name, port, log = sys.argv[1:4]
if name == "sm2":
    from emsim.devices.sciencemode.driver_sm2 import ScienceMode2Stimulator as Driver
else:
    from emsim.devices.sciencemode.driver_sm4 import ScienceMode4Stimulator as Driver
drv = Driver(port, audit=AuditLog(log), ack_timeout_s=TEST_ACK_TIMEOUT_S)
drv.connect()
drv.load(short_paraspinal_program(warm_up_s=60, main_s=8, cool_down_s=4), example_patient())
drv.start()
print("running", flush=True)
time.sleep(60)
"""


@pytest.mark.parametrize("name", sorted(DEVICES))
def test_host_killed_mid_session_device_stops_within_its_watchdog(name, tmp_path):
    emu_cls, _, watchdog, _ = DEVICES[name]
    log = tmp_path / "audit.sqlite"
    with emu_cls(latency_ms=2.0) as emu:
        proc = subprocess.Popen([sys.executable, "-c", KILLED_HOST, name, emu.port, str(log)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env={**os.environ, "PYTHONPATH": os.getcwd()})
        try:
            assert proc.stdout.readline().strip() == "running", proc.stderr.read()
            assert wait_for(lambda: emu.timeline.stimulating, 3.0)
            time.sleep(0.6)                                  # mid-session, heartbeats flowing
            proc.send_signal(signal.SIGKILL)
            killed = time.monotonic()
            proc.wait(5)
        finally:
            if proc.poll() is None:
                proc.kill()
        assert wait_for(lambda: not emu.timeline.stimulating, watchdog + 1.0)
        off = emu.timeline.last_off()
        last_rx = max(x.t for x in emu.traffic if x.direction == "rx" and x.t < off)
        assert off - killed <= watchdog + SLACK               # stopped within its watchdog time
        assert watchdog <= off - last_rx <= watchdog + SLACK  # ... by the watchdog itself
        assert emu.timeline.events_of("watchdog")
    # the audit log survived kill -9: the session, the validated program and its frames are there
    (session,) = read_sessions(log)
    assert session["program_hash"] and session["patient_id"] == "example-measured"
    ev = read_events(log)
    assert any(e["kind"] == "validator" and e["decoded"]["ok"] for e in ev)
    tx = [e for e in ev if e["kind"] == "tx"]
    assert len(tx) >= 3 and not any(e["kind"] == "stop_cause" for e in ev)   # no clean stop: killed


# --------------------------------------------------------------------------- cable pulled

def test_serial_cable_pulled(setup):
    s = setup
    running(s)
    pulled = time.monotonic()
    s.emu.unplug()
    assert wait_for(lambda: s.drv.state == StimulatorState.ERROR, 1.0)
    errors = [e for e in s.events if e.kind == EventKind.ERROR]
    assert errors and "serial connection lost" in errors[0].message and errors[0].data["kind"] == "connection"
    assert "serial connection lost" in s.drv.status().last_error
    with pytest.raises(DeviceError, match="cannot start"):
        s.drv.start()
    # the device, cut off, stops by its own watchdog
    assert wait_for(lambda: not s.emu.timeline.stimulating, s.watchdog + 1.0)
    assert s.emu.timeline.last_off() - pulled <= s.watchdog + SLACK
    causes = stop_causes(s.log)
    assert causes and "serial connection lost" in causes[0]


# --------------------------------------------------------------------------- electrode error

def test_device_reports_electrode_error(setup):
    s = setup
    running(s)
    t0 = time.monotonic()
    if s.name == "sm2":
        s.emu.stimulation_error(sm2.StimulationErrorCode.ELECTRODE_ERROR)    # unsolicited cmd 38
    else:
        s.emu.disconnect_electrode(0)                                        # seen by the 0.8 s poll
    hb = s.drv.capabilities.heartbeat_period_s
    assert wait_for(lambda: s.drv.state == StimulatorState.ERROR, hb + 0.5)
    err = next(e for e in s.events if e.kind == EventKind.ERROR)
    assert err.data["kind"] == "electrode" and "ELECTRODE" in err.message.upper()
    if s.name == "sm4":
        assert err.channel == "ES-L"
    # emergency stop: the stop command went out at once
    stop = "StopChannelListMode" if s.name == "sm2" else "MlStop"
    assert wait_for(lambda: stop in rx_types_after(s.emu, t0), 1.0)
    assert not s.emu.timeline.stimulating
    ev = audit_events(s)
    kinds = [(e["kind"], (e["decoded"] or {}).get("type")) for e in ev]
    i_err = kinds.index(("error", None))
    assert ("tx", stop) in kinds[i_err:]
    assert any("electrode" in c.lower() for c in stop_causes(s.log))


# --------------------------------------------------------------------------- missing / corrupted acks

@pytest.mark.parametrize("fault", ["drop", "corrupt"])
def test_missing_or_corrupted_ack_queries_and_stops_without_resending(setup, fault):
    s = setup
    running(s, warm_up_s=6, ramp_s=3.0)          # a 3 s ramp: an acknowledged update every 0.1 s
    t0 = time.monotonic()
    (s.emu.drop_acks if fault == "drop" else s.emu.corrupt_next)(1)
    assert wait_for(lambda: s.drv.state == StimulatorState.ERROR, 2.0)
    err = next(e for e in s.events if e.kind == EventKind.ERROR)
    assert err.data["kind"] == "acknowledgement" and "not resent" in err.message
    assert ("within" in err.message) if fault == "drop" else ("corrupted" in err.message)
    query, stop = (("GetStimulationMode", "StopChannelListMode") if s.name == "sm2"
                   else ("GetStimStatus", "MlStop"))
    assert "device reports" in err.message              # the query was answered and recorded
    assert wait_for(lambda: stop in rx_types_after(s.emu, t0), 1.0)
    acked = [t for t in rx_types_after(s.emu, t0) if t not in ("Watchdog",)]
    # the unanswered command, then the query, then the stop: nothing was sent again
    i = acked.index(query)
    assert acked[i + 1] == stop and acked[:i] and len(acked[:i]) == 1
    assert not s.emu.timeline.stimulating
    causes = stop_causes(s.log)
    assert causes and "acknowledgement" in causes[0]


# --------------------------------------------------------------------------- intensity limit

def test_intensity_beyond_the_validated_maximum_is_refused(setup):
    s = setup
    running(s, warm_up_s=4, ramp_s=0.5)
    top = s.drv.plan.max_amplitude_a[0] * 1e3
    with pytest.raises(DeviceError, match="above the validated maximum"):
        s.drv.set_intensity("ES-L", top + 2.0)
    with pytest.raises(DeviceError):
        s.drv.set_intensity("ES-L", float("nan"))
    assert s.drv.state == StimulatorState.RUNNING                   # refused, not stopped
    time.sleep(0.3)
    delivered = max(o.current_ma for seg in s.emu.timeline.segments for o in seg.channels.values())
    assert delivered <= max(s.drv.plan.max_amplitude_a) * 1e3 + 1e-9
    refused = [e["decoded"] for e in audit_events(s) if e["kind"] == "operator"
               and e["decoded"].get("action") == "set_intensity"]
    assert refused and refused[0]["refused"] is True


# --------------------------------------------------------------------------- not validated

@pytest.mark.parametrize("case", ["pacemaker", "over_device_envelope"])
def test_program_not_validated_is_refused_before_any_byte(setup, case, base_doc):
    s = setup
    if case == "pacemaker":
        program, patient = short_paraspinal_program(), example_patient("example_pacemaker")
    else:
        base_doc["phases"][0]["stimulation"][0]["amplitude"] = {"ma": 140}
        program, patient = from_dict(base_doc), example_patient()
    s.drv.connect()
    with pytest.raises(SafetyViolation):
        s.drv.load(program, patient)
    s.drv.close()
    assert s.emu.rx_bytes == 0                                       # the emulator saw zero bytes
    ev = audit_events(s)
    assert not any(e["kind"] == "tx" for e in ev)
    verdict = next(e["decoded"] for e in ev if e["kind"] == "validator")
    assert verdict["ok"] is False and verdict["errors"]


# --------------------------------------------------------------------------- hung controller

def test_hung_controller_gets_no_keep_alive(setup):
    """A session executor that stops making progress must not be kept alive by the heartbeat."""
    s = setup
    running(s)
    release = threading.Event()
    s.drv._dev_apply = lambda *a, **k: release.wait(10)            # the controller hangs
    hung = time.monotonic()
    try:
        assert wait_for(lambda: not s.emu.timeline.stimulating, 0.5 * s.watchdog + s.watchdog + 1.0)
        off = s.emu.timeline.last_off()
        assert off - hung <= 0.5 * s.watchdog + s.drv.capabilities.heartbeat_period_s + s.watchdog + SLACK
        assert s.emu.timeline.events_of("watchdog")
        assert any("keep-alive withheld" in (e["decoded"] or {}).get("error", "")
                   for e in audit_events(s) if e["kind"] == "error")
        if s.name == "sm2":   # the device starts over with Init: the driver notices and stops
            assert wait_for(lambda: s.drv.state == StimulatorState.ERROR, 1.5)
    finally:
        release.set()


# --------------------------------------------------------------------------- emergency stop itself

def test_emergency_stop_resends_once_then_leaves_the_watchdog_as_backstop(tmp_path):
    """§5.1: stop at once, resend once after ~100 ms without an ack, stop the heartbeat, close."""
    with ScienceMode2Emulator(latency_ms=2.0) as emu:
        drv = ScienceMode2Stimulator(emu.port, audit=AuditLog(tmp_path / "a.sqlite"),
                                     ack_timeout_s=TEST_ACK_TIMEOUT_S)
        s = type("S", (), dict(emu=emu, drv=drv))
        running(s, warm_up_s=6, ramp_s=0.3)
        time.sleep(0.5)                                    # plateau: only unacknowledged Watchdogs
        emu.drop_acks(1)                                   # the stop's acknowledgement is lost
        t0 = time.monotonic()
        th = threading.Thread(target=drv.emergency_stop, args=("operator pressed STOP",))
        th.start()                                         # from another thread
        th.join(2.0)
        stops = [x.t for x in emu.traffic if x.direction == "rx"
                 and isinstance(getattr(x.item, "message", None), sm2.StopChannelListMode)]
        assert len(stops) == 2 and stops[1] - stops[0] >= 0.1
        assert stops[0] - t0 < 0.05                        # at once, not behind other traffic
        assert not emu.timeline.stimulating and emu.timeline.last_off() - t0 < 0.1
        assert drv.state == StimulatorState.STOPPED and drv._serial is None     # port closed
        n = emu.rx_bytes
        drv.emergency_stop("again")                        # idempotent: nothing more is sent
        time.sleep(0.6)                                    # and no heartbeat either
        assert emu.rx_bytes == n
        assert stop_causes(tmp_path / "a.sqlite")[0] == "operator pressed STOP"
        drv.close()


def test_reconnect_after_an_error_starts_from_a_clean_device(setup):
    """After an error the port is closed; connect() reopens it and the next load handshakes again."""
    s = setup
    running(s, warm_up_s=4, ramp_s=0.3)
    if s.name == "sm2":
        s.emu.stimulation_error(sm2.StimulationErrorCode.STIMULATION_MODULE_ERROR)
    else:
        s.emu.general_error()
    assert wait_for(lambda: s.drv.state == StimulatorState.ERROR, 1.0)
    err = next(e for e in s.events if e.kind == EventKind.ERROR)
    assert err.data["kind"] == "device"
    s.drv.connect()                                  # SM2: waits for the device's next Init
    s.drv.load(short_paraspinal_program(warm_up_s=1, main_s=1, cool_down_s=1, on_s=0.5, off_s=0.5,
                                        ramp_s=0.2), example_patient())
    s.drv.start()
    assert s.drv.wait(10) and s.drv.status().stop_cause == "program completed"
    assert len(s.emu.timeline.on_intervals()) >= 3
