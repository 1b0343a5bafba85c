"""ScienceMode 2 emulator over a real pseudo-terminal, driven by a raw pyserial client.

Timing tolerances: the emulator loop runs every 2 ms and shares 2 cores with other test
processes, so instants are asserted to within +100 ms of the protocol value (never less than it).
"""

from __future__ import annotations

import time

import pytest
import serial

from emsim.devices.emulator import ScienceMode2Emulator
from emsim.devices.emulator.scenarios import RawClient
from emsim.devices.sciencemode import BadFrame, BadFrameKind, sm2

R = sm2.Result
SLACK = 0.1


@pytest.fixture
def emu():
    with ScienceMode2Emulator(latency_ms=1.0) as e:
        yield e


@pytest.fixture
def client(emu):
    with RawClient(emu) as c:
        yield c


def handshake(client) -> None:
    init = client.receive(1.0)[0]
    assert isinstance(init.message, sm2.Init)
    client.send(sm2.InitAck(R.OK), init.number)
    time.sleep(0.02)


def started(client, emu, channels=(1, 2), t1_ms=20.0, current=40, pn=10):
    handshake(client)
    assert client.request(sm2.InitChannelListMode.from_ms(set(channels), t1_ms, 8.0), pn).message.ok
    settings = tuple(sm2.ChannelSettings(300, current) for _ in channels)
    assert client.request(sm2.StartChannelListMode(settings), pn + 1).message.ok
    assert emu.timeline.stimulating


def test_init_repeats_every_500_ms_until_acknowledged(emu, client):
    items = client.receive(1.8, count=3)
    assert len(items) == 3 and all(isinstance(i.message, sm2.Init) and i.message.version == 1 for i in items)
    sends = [t.t for t in emu.traffic if t.direction == "tx"]
    gaps = [b - a for a, b in zip(sends, sends[1:])]
    assert all(0.5 - 0.005 <= g <= 0.5 + SLACK for g in gaps), gaps
    client.send(sm2.InitAck(R.OK), items[-1].number)
    assert client.receive(0.8) == []  # acknowledged: no more Init
    assert emu.connected and emu.handshakes == 1


def test_incompatible_init_ack_keeps_the_device_waiting(emu, client):
    init = client.receive(1.0)[0]
    client.send(sm2.InitAck(R.INCOMPATIBLE_PROTOCOL), init.number)
    assert isinstance(client.receive(0.8)[0].message, sm2.Init)
    assert not emu.connected


def test_mode_state_machine_and_wrong_mode(emu, client):
    handshake(client)
    mode = lambda pn: client.request(sm2.GetStimulationMode(), pn).message.mode  # noqa: E731
    assert mode(1) == sm2.StimulationMode.START
    start = sm2.StartChannelListMode((sm2.ChannelSettings(300, 20),))
    assert client.request(start, 2).message.result == R.WRONG_MODE
    assert client.request(sm2.StopChannelListMode(), 3).message.result == R.WRONG_MODE
    init = sm2.InitChannelListMode.from_ms({1}, 20.0, 8.0)
    assert client.request(init, 4).message.ok
    assert mode(5) == sm2.StimulationMode.INITIALIZED
    assert client.request(init, 6).message.result == R.WRONG_MODE
    assert client.request(sm2.SinglePulse(1, 200, 20), 7).message.result == R.WRONG_MODE
    assert client.request(start, 8).message.ok
    assert mode(9) == sm2.StimulationMode.STARTED and emu.timeline.stimulating
    assert client.request(start, 10).message.ok  # the same command updates a running stimulation
    stop = client.request(sm2.StopChannelListMode(), 11)
    assert stop.number == 11 and stop.message.ok
    assert mode(12) == sm2.StimulationMode.START and not emu.timeline.stimulating
    assert client.request(sm2.SinglePulse(3, 200, 20), 13).message.ok
    assert emu.timeline.single_pulses[-1][1:] == (3, 200, 20)


@pytest.mark.parametrize("message", [
    sm2.InitChannelListMode.from_ms({1}, 7.0, 8.0),                       # t1 below the 8 ms firmware minimum
    sm2.InitChannelListMode({1}, main_time_code=0, group_time_code=13),   # one-shot mode (not emulated)
    sm2.InitChannelListMode.from_ms({1}, 20.0, 8.0, low_frequency_channels={2}),  # LF channel not active
])
def test_init_parameter_errors(emu, client, message):
    handshake(client)
    assert client.request(message, 1).message.result == R.PARAMETER_ERROR
    assert emu.mode == sm2.StimulationMode.START


def test_start_parameter_errors(emu, client):
    handshake(client)
    assert client.request(sm2.InitChannelListMode.from_ms({1, 2}, 20.0, 8.0), 1).message.ok
    one = sm2.StartChannelListMode((sm2.ChannelSettings(300, 20),))          # 1 entry for 2 channels
    assert client.request(one, 2).message.result == R.PARAMETER_ERROR
    # 140 mA cannot be built with the codec; send the bytes a buggy host would send
    raw = sm2.build_frame(3, sm2.Command.START_CHANNEL_LIST_MODE, bytes([0, 1, 44, 20, 0, 1, 44, 140]))
    client.send_raw(raw)
    reply = client.receive()[0]
    assert (reply.number, reply.message.result) == (3, R.PARAMETER_ERROR)
    triplet = sm2.StartChannelListMode((sm2.ChannelSettings(300, 20, sm2.PulseMode.TRIPLET),) * 2)
    assert client.request(triplet, 4).message.result == R.PARAMETER_ERROR  # 3 x 8 ms > t1 = 20 ms
    assert not emu.timeline.stimulating


def test_crc_fault_is_a_transfer_error(emu, client):
    handshake(client)
    frame = bytearray(sm2.encode(sm2.GetStimulationMode(), 7))
    frame[2] ^= 0x01
    client.send_raw(bytes(frame))
    reply = client.receive()[0]
    assert reply.number == 7 and isinstance(reply.message, sm2.GetStimulationModeAck)
    assert reply.message.result == R.TRANSFER_ERROR


def test_busy_while_processing():
    emu = ScienceMode2Emulator(latency_ms=50.0).start()
    c = RawClient(emu)
    try:
        handshake(c)
        c.send(sm2.GetStimulationMode(), 1)
        c.send(sm2.GetStimulationMode(), 2)
        first, second = c.receive(0.5, count=2)
        assert (first.number, first.message.result) == (2, R.BUSY)
        assert (second.number, second.message.result) == (1, R.OK)
    finally:
        c.close()
        emu.close()


def test_unknown_command(emu, client):
    handshake(client)
    reply = client.request(sm2.RawMessage(99, b""), 1)
    assert isinstance(reply.message, sm2.UnknownCommand) and reply.message.echoed_command == 99


def test_latency_in_configured_range():
    emu = ScienceMode2Emulator().start()  # default 10-24 ms
    c = RawClient(emu)
    try:
        handshake(c)
        lat = []
        for pn in range(10):
            t = time.monotonic()
            assert c.request(sm2.GetStimulationMode(), pn).message.result == R.OK
            lat.append(time.monotonic() - t)
        assert min(lat) >= 0.010 and max(lat) <= 0.024 + SLACK
    finally:
        c.close()
        emu.close()


def test_watchdog_stops_stimulation_and_reinitialises(emu, client):
    started(client, emu)
    for pn in range(20, 24):                      # Watchdog packets keep it alive past 1.2 s
        time.sleep(0.4)
        client.send(sm2.Watchdog(), pn)
    assert emu.timeline.stimulating
    t = time.monotonic()
    while emu.timeline.stimulating and time.monotonic() - t < 2.0:
        time.sleep(0.005)
    off = emu.timeline.last_off()
    last_rx = max(t.t for t in emu.traffic if t.direction == "rx" and t.t < off)
    assert off is not None and 1.2 <= off - last_rx <= 1.2 + SLACK
    assert emu.timeline.events_of("watchdog")
    assert emu.mode == sm2.StimulationMode.START and not emu.connected
    assert isinstance(client.receive(1.0)[0].message, sm2.Init)   # asks for a host again


def test_pulses_recorded_at_the_programmed_rate(emu, client):
    started(client, emu, channels=(1, 5), t1_ms=20.0, current=30)
    time.sleep(0.5)
    assert client.request(sm2.StopChannelListMode(), 30).message.ok
    (on, off), = emu.timeline.on_intervals()
    p = emu.timeline.pulses()
    for ch in (1, 5):
        n = int((p["channel"] == ch).sum())
        assert abs(n - (off - on) / 0.020) <= 1
    assert set(p["current_ma"]) == {30.0} and set(p["pulse_width_us"]) == {300.0}
    assert p["t_s"][1] - p["t_s"][0] == pytest.approx(0.0) and p["t_s"][2] - p["t_s"][0] == pytest.approx(0.020)


def test_accelerated_clock_scales_recorded_output_not_the_watchdog():
    emu = ScienceMode2Emulator(latency_ms=1.0, time_scale=10.0).start()
    c = RawClient(emu)
    try:
        started(c, emu, channels=(1,), t1_ms=20.0)
        time.sleep(0.3)
        c.request(sm2.StopChannelListMode(), 40)
        (on, off), = emu.timeline.on_intervals()
        n = int((emu.timeline.pulses()["channel"] == 1).sum())
        assert abs(n - 10 * (off - on) / 0.020) <= 1
        assert emu.watchdog_s == 1.2
    finally:
        c.close()
        emu.close()


def test_fault_dropped_ack_still_executes(emu, client):
    handshake(client)
    emu.drop_acks(1)
    assert client.request(sm2.InitChannelListMode.from_ms({1}, 20.0, 8.0), 1, timeout_s=0.2) is None
    assert emu.mode == sm2.StimulationMode.INITIALIZED and emu.dropped_acks == 1
    assert client.request(sm2.GetStimulationMode(), 2).message.mode == sm2.StimulationMode.INITIALIZED


def test_fault_corrupted_reply(emu, client):
    handshake(client)
    emu.corrupt_next(1)
    bad = client.request(sm2.GetStimulationMode(), 1)
    assert isinstance(bad, BadFrame) and bad.kind == BadFrameKind.CRC
    assert client.request(sm2.GetStimulationMode(), 2).message.result == R.OK


def test_fault_stimulation_error(emu, client):
    started(client, emu)
    emu.stimulation_error(sm2.StimulationErrorCode.ELECTRODE_ERROR)
    msg = client.receive()[0].message
    assert isinstance(msg, sm2.StimulationError) and msg.error == sm2.StimulationErrorCode.ELECTRODE_ERROR
    assert not emu.timeline.stimulating and emu.mode == sm2.StimulationMode.START


def test_fault_stall(emu, client):
    handshake(client)
    emu.stall(0.3)
    assert client.request(sm2.GetStimulationMode(), 1, timeout_s=0.2) is None
    time.sleep(0.15)
    assert client.request(sm2.GetStimulationMode(), 2).message.result == R.OK


def test_unplug_breaks_the_line_and_the_watchdog_stops_output(emu, client):
    started(client, emu)
    t = time.monotonic()
    emu.unplug()
    with pytest.raises(serial.SerialException):
        for _ in range(50):
            client.serial.read(1)
    while emu.timeline.stimulating and time.monotonic() - t < 2.0:
        time.sleep(0.005)
    assert emu.timeline.last_off() - t <= 1.2 + SLACK


def test_cli_emulate_prints_the_port_and_stops_on_sigterm():
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "emsim.cli", "emulate", "sciencemode2", "--latency-ms", "5"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": os.getcwd()})
    try:
        port = proc.stdout.readline().strip()
        assert port.startswith("/dev/")
        with serial.Serial(port, baudrate=460800, parity="E", timeout=1.0) as ser:
            items = sm2.StreamDecoder().feed(ser.read(9))       # the device asks for a host
        assert isinstance(items[0].message, sm2.Init)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(5) == 0
        assert "emulator stopped" in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
