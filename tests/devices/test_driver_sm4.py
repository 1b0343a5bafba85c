"""ScienceMode 4 (P24) driver against its emulator over a real pseudo-terminal.

Whole-program test as for ScienceMode 2 (the shipped paraspinal program with phases shortened
to seconds, at 2x speed). Acknowledgements take a few ms plus 40-80 ms for switching the high
voltage, so on/off edges move by well under 0.1 s of program time; pulse counts are compared
with the compiled train within 10 %.
"""

from __future__ import annotations

import time

import pytest

from emsim.devices import AuditLog, EventKind, StimulatorState
from emsim.devices.audit import read_events
from emsim.devices.emulator import ScienceMode4Emulator
from emsim.devices.emulator.scenarios import (
    TEST_ACK_TIMEOUT_S, example_patient, on_windows, short_paraspinal_program,
)
from emsim.devices.sciencemode import sm4
from emsim.devices.sciencemode.driver_sm4 import ScienceMode4Stimulator
from emsim.errors import DeviceError
from emsim.program import from_dict

SPEED = 2.0


@pytest.fixture
def emu():
    with ScienceMode4Emulator(time_scale=SPEED) as e:
        yield e


@pytest.fixture(scope="module")
def patient():
    return example_patient()


def rx_messages(emu, cls):
    return [t.item.message for t in emu.traffic
            if t.direction == "rx" and isinstance(getattr(t.item, "message", None), cls)]


def test_whole_program_against_the_emulator(emu, patient, tmp_path):
    program = short_paraspinal_program(warm_up_s=2, main_s=8, cool_down_s=2, on_s=2, off_s=2, ramp_s=0.5)
    drv = ScienceMode4Stimulator(emu.port, speed=SPEED, ack_timeout_s=TEST_ACK_TIMEOUT_S,
                                 audit=AuditLog(tmp_path / "log.sqlite"))
    events = []
    drv.add_listener(events.append)
    with drv:
        assert emu.rx_bytes == 0                       # connect writes nothing
        plan = drv.load(program, patient)
        drv.start()
        assert drv.wait(20)
        assert drv.status().stop_cause == "program completed"
    assert EventKind.FINISHED in [e.kind for e in events]
    assert EventKind.ERROR not in [e.kind for e in events]
    assert not emu.timeline.stimulating and emu.status == sm4.StimStatus.UNINITIALIZED
    train = plan.train
    assert len(emu.timeline.on_intervals()) == on_windows(train, 0)
    pulses = emu.timeline.pulses()
    for c in range(2):
        mine = pulses["channel"] == c
        sl = train.channel_slice(c)
        assert abs(int(mine.sum()) - (sl.stop - sl.start)) <= 0.1 * (sl.stop - sl.start)
        assert pulses["current_ma"][mine].max() == pytest.approx(train.amplitude_a[sl].max() * 1e3)
    updates = rx_messages(emu, sm4.MlUpdate)
    assert {cfg.period_ms for u in updates for cfg in u.channels} == {125.0, 20.0, 200.0}
    cfg = next(cfg for u in updates for cfg in u.channels if cfg.period_ms == 20.0)
    assert [(p.duration_us, p.current_ma > 0, p.current_ma == 0) for p in cfg.points] == \
        [(300, True, False), (100, False, True), (300, False, False)]          # +I, gap, -I
    assert sum(p.current_ma * p.duration_us for p in cfg.points) == 0           # charge balanced
    ev = read_events(tmp_path / "log.sqlite")
    kinds = [e["kind"] for e in ev]
    assert kinds.index("validator") < kinds.index("tx")
    tx_types = [e["decoded"]["type"] for e in ev if e["kind"] == "tx"]
    assert tx_types[:2] == ["GetStimStatus", "MlInit"] and tx_types[-1] == "MlStop"
    assert "MlGetCurrentData" in tx_types                                       # heartbeat / poll


def test_heartbeat_polls_within_the_keep_alive(emu, patient):
    program = short_paraspinal_program(warm_up_s=4, main_s=2, cool_down_s=2, on_s=1, off_s=1, ramp_s=0.5)
    drv = ScienceMode4Stimulator(emu.port, speed=1.0, ack_timeout_s=TEST_ACK_TIMEOUT_S)
    with drv:
        drv.load(program, patient)
        drv.start()
        time.sleep(2.5)                                # longer than the 2 s keep-alive
        assert emu.timeline.stimulating and drv.state == StimulatorState.RUNNING
        drv.stop(ramp_s=0.2)
        assert drv.wait(3)
    beats = drv.heartbeat_times
    assert len(beats) >= 3
    assert max(b - a for a, b in zip(beats, beats[1:])) < 2.0
    assert not emu.timeline.events_of("watchdog")


def test_unsupported_waveform_is_refused_before_any_byte(emu, patient, base_doc):
    base_doc["phases"][0]["stimulation"][0]["pattern"] = {
        "type": "doublets", "pulses_per_burst": 2, "intra_burst_interval_ms": 5}
    drv = ScienceMode4Stimulator(emu.port)
    drv.connect()
    with pytest.raises(DeviceError, match="constant frequency only"):
        drv.load(from_dict(base_doc), patient)
    drv.close()
    assert emu.rx_bytes == 0
