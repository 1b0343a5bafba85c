"""ScienceMode 2 driver against its emulator over a real pseudo-terminal.

The whole-program test runs the shipped paraspinal program with phases shortened to seconds
(same frequencies, widths, ramps and patient-relative amplitudes) at 2x speed. Each command
takes 10-24 ms to be acknowledged, i.e. up to ~0.05 s of program time at 2x, so on/off edges
may move by that much: pulse counts are compared to the compiled train within 10 %.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

from emsim.devices import AuditLog, EventKind, StimulatorState
from emsim.devices.audit import read_events
from emsim.devices.emulator import ScienceMode2Emulator
from emsim.devices.emulator.scenarios import (
    TEST_ACK_TIMEOUT_S, example_patient, on_windows, short_paraspinal_program,
)
from emsim.devices.sciencemode import sm2
from emsim.devices.sciencemode.driver_sm2 import ScienceMode2Stimulator
from emsim.errors import DeviceError, SafetyViolation
from emsim.program import from_dict

SPEED = 2.0


@pytest.fixture
def emu():
    with ScienceMode2Emulator(time_scale=SPEED) as e:
        yield e


@pytest.fixture(scope="module")
def patient():
    return example_patient()


def run_driver(emu, **kw):
    drv = ScienceMode2Stimulator(emu.port, speed=SPEED, ack_timeout_s=TEST_ACK_TIMEOUT_S, **kw)
    events = []
    drv.add_listener(lambda e: events.append(e) if e.kind != EventKind.PROGRESS else None)
    return drv, events


def test_whole_program_against_the_emulator(emu, patient, tmp_path):
    program = short_paraspinal_program(warm_up_s=2, main_s=8, cool_down_s=2, on_s=2, off_s=2, ramp_s=0.5)
    audit = AuditLog(tmp_path / "log.sqlite")
    drv, events = run_driver(emu, audit=audit)
    with drv:
        assert emu.rx_bytes == 0                       # connect only listens for the device's Init
        plan = drv.load(program, patient)
        drv.start()
        assert drv.wait(20)
        st = drv.status()
        assert st.state == StimulatorState.STOPPED and st.stop_cause == "program completed", st.last_error
    assert [e.kind for e in events if e.kind in (EventKind.FINISHED, EventKind.ERROR)] == [EventKind.FINISHED]
    assert not emu.timeline.stimulating and emu.mode == sm2.StimulationMode.START
    train = plan.train
    assert len(emu.timeline.on_intervals()) == on_windows(train, 0)
    pulses = emu.timeline.pulses()
    for c in range(2):
        mine = pulses["channel"] == c + 1
        sl = train.channel_slice(c)
        assert abs(int(mine.sum()) - (sl.stop - sl.start)) <= 0.1 * (sl.stop - sl.start)
        # peak current: the quantised maximum, never more
        assert pulses["current_ma"][mine].max() == pytest.approx(train.amplitude_a[sl].max() * 1e3)
        assert set(pulses["pulse_width_us"][mine]) == {250.0, 300.0}
    # one shared base period per phase: 8 Hz, 50 Hz, 5 Hz
    periods = sorted({round(o.period_s, 6) for s in emu.timeline.segments for o in s.channels.values()})
    assert periods == [0.02, 0.125, 0.2]
    # the audit log: every frame recorded, the first one after the validator passed
    ev = read_events(tmp_path / "log.sqlite")
    kinds = [e["kind"] for e in ev]
    assert kinds.index("validator") < kinds.index("tx")
    assert ev[kinds.index("validator")]["decoded"]["ok"] is True
    tx_types = [e["decoded"]["type"] for e in ev if e["kind"] == "tx"]
    assert tx_types[0] == "InitAck" and "StartChannelListMode" in tx_types and "Watchdog" in tx_types
    assert tx_types.count("InitChannelListMode") == 3            # one per phase
    assert any(e["kind"] == "stop_cause" and e["decoded"]["cause"] == "program completed" for e in ev)


def test_one_base_frequency_with_a_low_frequency_channel(emu, patient, base_doc):
    base_doc["channels"].append(dict(base_doc["channels"][0], id="B", side="right"))
    stim = dict(base_doc["phases"][0]["stimulation"][0], channel="B", frequency_hz=25)
    base_doc["phases"][0]["stimulation"].append(stim)
    base_doc["phases"][0]["duration_s"] = 3
    for s in base_doc["phases"][0]["stimulation"]:
        s.update(on_s=3, off_s=0, ramp_up_s=0.5, ramp_down_s=0.5)
    base_doc["phases"][0]["stimulation"][0]["frequency_hz"] = 49   # 20.41 ms: snaps to 20.5 ms
    drv, events = run_driver(emu)
    with drv:
        drv.load(from_dict(base_doc), patient)
        drv.start()
        assert drv.wait(10)
    warning = next(e for e in events if e.kind == EventKind.WARNING)   # quantisation is reported
    assert "49 Hz runs at 48.78 Hz" in warning.message and "25 Hz runs at 24.39 Hz" in warning.message
    init = [t.item.message for t in emu.traffic
            if t.direction == "rx" and isinstance(getattr(t.item, "message", None), sm2.InitChannelListMode)]
    assert len(init) == 1
    assert init[0].main_time_ms == 20.5 and init[0].low_frequency_channels == {2}
    assert init[0].low_frequency_factor == 1
    periods = {ch: o.period_s for s in emu.timeline.segments for ch, o in s.channels.items()}
    assert periods == {1: pytest.approx(0.0205), 2: pytest.approx(0.041)}


def test_pause_resume_intensity_and_graceful_stop(emu, patient):
    program = short_paraspinal_program(warm_up_s=8, main_s=8, cool_down_s=4, ramp_s=0.5)
    drv, events = run_driver(emu)
    with drv:
        plan = drv.load(program, patient)
        drv.start()
        time.sleep(0.4)                                        # 1.6 s into the warm-up plateau
        assert emu.timeline.stimulating
        drv.pause()
        assert drv.state == StimulatorState.PAUSED and not emu.timeline.stimulating
        time.sleep(0.2)
        assert not emu.timeline.stimulating                    # the heartbeat keeps it connected
        drv.resume()
        time.sleep(0.2)
        assert emu.timeline.stimulating
        top = plan.max_amplitude_a[0] * 1e3
        applied = drv.set_intensity(0, top / 2)
        assert applied <= top / 2
        time.sleep(0.2)
        latest = emu.timeline.segments[-1].channels
        assert latest[1].current_ma <= applied and latest[2].current_ma > applied   # only channel 1
        drv.stop(ramp_s=0.8)
        assert drv.wait(5)
        assert drv.state == StimulatorState.STOPPED and drv.status().stop_cause == "operator stop"
    assert emu.mode == sm2.StimulationMode.START and not emu.timeline.stimulating
    ramp = [s.channels[2].current_ma for s in emu.timeline.segments if 2 in s.channels][-4:]
    assert ramp == sorted(ramp, reverse=True) and ramp[-1] < ramp[0]   # ramped down, not cut


def test_frequency_sm2_cannot_share_is_refused_before_any_byte(emu, patient, base_doc):
    base_doc["channels"].append(dict(base_doc["channels"][0], id="B", side="right"))
    base_doc["phases"][0]["stimulation"].append(
        dict(base_doc["phases"][0]["stimulation"][0], channel="B", frequency_hz=33))
    drv, _ = run_driver(emu)
    drv.connect()
    with pytest.raises(SafetyViolation, match="one shared period"):
        drv.load(from_dict(base_doc), patient)
    drv.close()
    assert emu.rx_bytes == 0


def test_connect_fails_cleanly_without_a_device(tmp_path):
    drv = ScienceMode2Stimulator(str(tmp_path / "no-such-port"))
    with pytest.raises(DeviceError, match="cannot open the serial port"):
        drv.connect()
    emu = ScienceMode2Emulator(latency_ms=1).start()
    emu.stall(5.0)                                              # a port, but nothing answers
    drv = ScienceMode2Stimulator(emu.port, connect_timeout_s=0.6)
    try:
        with pytest.raises(DeviceError, match="no Init from the device"):
            drv.connect()
    finally:
        emu.close()


@pytest.mark.parametrize("driver", ["sm2", "sm4"])
def test_host_schedule_follows_the_compiled_train_and_never_runs_ahead(driver, patient):
    """The update steps of the whole shipped program: every pulse falls in an 'on' step whose
    current is at most the pulse's programmed current, and below it by no more than the
    program's ramp covers in one 100 ms step plus one device current step."""
    from emsim.devices.sciencemode._driver import build_schedule
    from emsim.devices.sciencemode.driver_sm4 import ScienceMode4Stimulator
    from emsim.program import load

    cls = ScienceMode2Stimulator if driver == "sm2" else ScienceMode4Stimulator
    drv = cls("/dev/null")                                     # validate() does no I/O
    plan = drv.validate(load("models/programs/paraspinal_strengthening.json"), patient)
    s = build_schedule(plan, step_s=0.1)
    step_a = drv.capabilities.amplitude_ma.step * 1e-3
    train = plan.train
    rate = max(b.amplitude_a / r for b in train.blocks
               for r in (b.stimulation.ramp_up_s, b.stimulation.ramp_down_s) if r > 0)   # A/s
    for c in range(len(train.channel_ids)):
        sl = train.channel_slice(c)
        rows = np.searchsorted(s.times_s, train.t_s[sl], side="right") - 1
        assert np.all(s.block[rows, c] >= 0)
        below = train.amplitude_a[sl] - s.amplitude_a[rows, c]
        assert below.min() >= -1e-12 and below.max() <= rate * 0.1 + step_a + 1e-12
    gaps = np.diff(s.times_s)
    assert gaps.min() > 0 and s.times_s[-1] == pytest.approx(train.duration_s)
    assert np.all(s.block[-1] == -1)                           # everything off at the end
