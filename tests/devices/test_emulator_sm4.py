"""ScienceMode 4 (P24) emulator over a real pseudo-terminal, driven by a raw pyserial client.

Timing tolerances as in test_emulator_sm2: protocol value, never less, plus at most 100 ms.
"""

from __future__ import annotations

import time

import pytest

from emsim.devices.emulator import ScienceMode4Emulator
from emsim.devices.emulator.scenarios import RawClient
from emsim.devices.sciencemode import BadFrame, sm4

R = sm4.Result
S = sm4.StimStatus
SLACK = 0.1


@pytest.fixture
def emu():
    with ScienceMode4Emulator(latency_ms=1.0) as e:
        yield e


@pytest.fixture
def client(emu):
    with RawClient(emu) as c:
        yield c


def channel(ch=0, ma=40.0, period_ms=20.0, pw=300):
    return sm4.MlChannelConfig(ch, period_ms, sm4.biphasic_points(pw, ma))


def status(client, pn):
    return client.request(sm4.GetStimStatus(), pn).message.stim_status


def running(client, emu, *configs):
    assert client.request(sm4.MlInit(), 1).message.ok
    assert client.request(sm4.MlUpdate(configs or (channel(),)), 2).message.ok
    assert emu.timeline.stimulating


def test_mid_level_lifecycle_and_not_initialised(emu, client):
    assert status(client, 1) == S.UNINITIALIZED
    assert client.request(sm4.MlUpdate((channel(),)), 2).message.result == R.NOT_INITIALIZED_ERROR
    assert client.request(sm4.MlStop(), 3).message.result == R.NOT_INITIALIZED_ERROR
    poll = client.request(sm4.MlGetCurrentData(), 4).message
    assert poll.result == R.NOT_INITIALIZED_ERROR
    t = time.monotonic()
    assert client.request(sm4.MlInit(), 5).message.ok
    assert time.monotonic() - t >= 0.080            # high voltage on: 2 x 40 ms
    assert status(client, 6) == S.ML_INITIALIZED and not emu.timeline.stimulating
    assert client.request(sm4.MlUpdate((channel(0), channel(3, 20.0, 40.0))), 7).message.ok
    assert status(client, 8) == S.ML_RUNNING and emu.timeline.stimulating
    poll = client.request(sm4.MlGetCurrentData(), 9).message
    assert poll.channels_active == (True, False, False, True, False, False, False, False)
    assert client.request(sm4.MlStop(), 10).message.ok
    assert status(client, 11) == S.UNINITIALIZED and not emu.timeline.stimulating


def test_low_level_blocks_mid_level(emu, client):
    assert client.request(sm4.LlInit(), 1).message.ok
    assert client.request(sm4.MlInit(), 2).message.result == R.NOT_INITIALIZED_ERROR
    pulse = sm4.LlChannelConfig(sm4.biphasic_points(200, 20.0), sm4.ChannelColour.BLUE, sm4.Connector.GREEN)
    assert client.request(pulse, 3).message.ok
    assert emu.timeline.single_pulses[-1][1:] == (5, 200, 20.0)
    assert client.request(sm4.LlStop(), 4).message.ok
    assert client.request(sm4.MlInit(), 5).message.ok


def test_parameter_and_pulse_timeout_errors(emu, client):
    assert client.request(sm4.MlInit(), 1).message.ok
    too_much = sm4.MlChannelConfig(0, 20.0, sm4.biphasic_points(300, 140.0))    # codec allows 150
    assert client.request(sm4.MlUpdate((too_much,)), 2).message.result == R.PARAMETER_ERROR
    # 8 channels of 2 x 4000 µs in a 10 ms period cannot be multiplexed
    crowded = tuple(sm4.MlChannelConfig(c, 10.0, sm4.biphasic_points(4000, 10.0, 0)) for c in range(8))
    assert client.request(sm4.MlUpdate(crowded), 3).message.result == R.PULSE_TIMEOUT_ERROR
    assert not emu.timeline.stimulating


def test_keep_alive_pauses_after_2_s(emu, client):
    running(client, emu)
    t = time.monotonic()
    pn = 10
    while time.monotonic() - t < 2.3:                 # polls keep it running past 2 s
        time.sleep(0.5)
        assert client.request(sm4.MlGetCurrentData(), pn).message.result == R.OK
        pn += 1
    assert emu.timeline.stimulating
    t = time.monotonic()
    while emu.timeline.stimulating and time.monotonic() - t < 3.0:
        time.sleep(0.005)
    off = emu.timeline.last_off()
    last_rx = max(x.t for x in emu.traffic if x.direction == "rx" and x.t < off)
    assert 2.0 <= off - last_rx <= 2.0 + SLACK
    assert status(client, 40) == S.ML_INITIALIZED       # paused, still initialised
    assert client.request(sm4.MlUpdate((channel(),)), 41).message.ok and emu.timeline.stimulating


def test_electrode_error_needs_15_mA_and_stops_all_channels(emu, client):
    running(client, emu, channel(0, 10.0), channel(1, 40.0))
    emu.disconnect_electrode(0)                       # 10 mA: below the detection threshold
    assert emu.timeline.stimulating
    assert client.request(sm4.MlUpdate((channel(0, 20.0), channel(1, 40.0))), 3).message.result \
        == R.ELECTRODE_ERROR
    assert not emu.timeline.stimulating               # stop_all_channels_on_error=True
    poll = client.request(sm4.MlGetCurrentData(), 4).message
    assert poll.channel_states[0] == sm4.MlChannelState.ELECTRODE_ERROR
    assert poll.channel_errors == {0: "ELECTRODE_ERROR"} and not any(poll.channels_active)


def test_electrode_coming_off_while_running_is_seen_by_the_poll(emu, client):
    running(client, emu, channel(2, 30.0))
    emu.disconnect_electrode(2)
    assert not emu.timeline.stimulating
    poll = client.request(sm4.MlGetCurrentData(), 3).message
    assert poll.channel_errors == {2: "ELECTRODE_ERROR"}


def test_compliance_voltage_gives_low_current(emu, client):
    emu.set_load_ohm(1, 2000.0)                       # 100 mA x 2 kOhm = 200 V > 150 V
    assert client.request(sm4.MlInit(), 1).message.ok
    assert client.request(sm4.MlUpdate((channel(1, 100.0),)), 2).message.result == R.PULSE_LOW_CURRENT_ERROR
    assert client.request(sm4.MlGetCurrentData(), 3).message.channel_errors == {1: "LOW_CURRENT"}
    assert client.request(sm4.MlInit(), 4).message.ok  # re-init clears the states
    assert client.request(sm4.MlUpdate((channel(1, 70.0),)), 5).message.ok   # 140 V fits


def test_transfer_error_and_unknown_command(emu, client):
    frame = bytearray(sm4.encode(sm4.GetStimStatus(), 9))
    frame[6] ^= 0x01
    client.send_raw(bytes(frame))
    reply = client.receive()[0]
    assert reply.number == 9 and reply.message.result == R.TRANSFER_ERROR
    reply = client.request(sm4.RawMessage(50, b""), 10)             # get version: not modelled
    assert isinstance(reply.message, sm4.UnknownCommand)


def test_faults_general_error_dropped_and_corrupted_acks(emu, client):
    running(client, emu)
    emu.general_error()
    assert isinstance(client.receive()[0].message, sm4.GeneralError)
    assert not emu.timeline.stimulating
    emu.drop_acks(1)
    assert client.request(sm4.MlUpdate((channel(),)), 3, timeout_s=0.2) is None
    assert emu.timeline.stimulating                                 # executed, ack lost
    emu.corrupt_next(1)
    assert isinstance(client.request(sm4.MlGetCurrentData(), 4), BadFrame)


def test_pulses_follow_each_channel_period(emu, client):
    running(client, emu, channel(0, 40.0, 20.0), channel(1, 30.0, 40.0))
    time.sleep(0.4)
    assert client.request(sm4.MlUpdate((channel(0, 20.0, 20.0), channel(1, 30.0, 40.0))), 3).message.ok
    time.sleep(0.2)
    assert client.request(sm4.MlStop(), 4).message.ok
    (on, off), = emu.timeline.on_intervals()
    p = emu.timeline.pulses()
    for ch, period in ((0, 0.020), (1, 0.040)):
        t = p["t_s"][p["channel"] == ch]
        assert abs(t.size - (off - on) / period) <= 1
        assert pytest.approx(period) == float(min(set(round(x, 9) for x in t[1:] - t[:-1])))
    a0 = p["current_ma"][p["channel"] == 0]
    assert a0[0] == 40.0 and a0[-1] == 20.0               # the update changed the current in place
