"""An emergency stop pressed after the program has already ended.

The stop cause says why stimulation ended; a later press stops nothing that runs, so it must
not rewrite that cause. It is still honoured (the device hook runs, re-arming needs a new
load) and the audit log records it as an operator action of its own.
"""

from __future__ import annotations

import pytest

from emsim.devices.audit import AuditLog, read_events
from emsim.devices.base import EventKind, StimulatorState
from emsim.errors import DeviceError
from emsim.program import from_dict
from tests.devices.test_base import Recorder, running


@pytest.fixture
def program(base_doc):
    return from_dict(base_doc)


@pytest.mark.parametrize("end", ["completed", "stopped"])
def test_estop_after_the_end_keeps_the_cause_and_logs_the_press(end, program, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "a.sqlite")
    stim = running(Recorder(audit=log), program, measured_patient)
    if end == "completed":
        stim._finished()
        expected = "program completed"
    else:
        stim.stop(0.0, cause="operator stop")
        expected = "operator stop"
    assert stim.status().stop_cause == expected
    events = []
    stim.add_listener(events.append)

    stim.emergency_stop("emergency stop button")

    st_ = stim.status()
    assert st_.state is StimulatorState.STOPPED and st_.stop_cause == expected
    assert "emergency_stop" in stim.names()  # always honoured: the device hook still runs
    assert not any(e.kind == EventKind.STOP for e in events)  # nothing stopped now
    with pytest.raises(DeviceError):
        stim.start()
    records = read_events(log.path)
    causes = [e["decoded"] for e in records if e["kind"] == "stop_cause"]
    assert [c["cause"] for c in causes] == [expected] and not causes[0]["emergency"]
    presses = [e["decoded"] for e in records
               if e["kind"] == "operator" and e["decoded"]["action"] == "emergency_stop"]
    assert presses == [{"action": "emergency_stop", "cause": "emergency stop button", "after_end": expected}]


def test_estop_while_running_still_records_its_cause(program, measured_patient, tmp_path):
    log = AuditLog(tmp_path / "a.sqlite")
    stim = running(Recorder(audit=log), program, measured_patient)
    stim.emergency_stop("button")
    stim._finished()  # a completion reported after the press does not replace it
    assert stim.status().stop_cause == "button"
    causes = [e["decoded"] for e in read_events(log.path) if e["kind"] == "stop_cause"]
    assert causes == [{"cause": "button", "emergency": True, "repeat": False}]


def test_estop_after_load_without_start_is_an_emergency_stop(program, measured_patient):
    stim = Recorder()
    stim.connect()
    stim.load(program, measured_patient)
    stim.emergency_stop("pressed before start")
    assert stim.status().stop_cause == "pressed before start"
    with pytest.raises(DeviceError):
        stim.start()
