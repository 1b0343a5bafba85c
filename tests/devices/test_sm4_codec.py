"""ScienceMode 4 (P24 smpt) codec: golden vectors (reference §3.5), fields and properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsim.devices.sciencemode import BadFrame, BadFrameKind, CodecError, sm4
from emsim.devices.sciencemode._framing import crc16_xmodem, unstuff

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

H = bytes.fromhex
P = sm4.Point

# --------------------------------------------------------------------------- golden vectors
# Every vector of devices_and_safety.md §3.5, verbatim.

GOLDEN = [
    ("Ll_init pn0 default", sm4.LlInit(), 0, "F0 81 55 81 58 81 55 81 55 00 00 00 0F"),
    ("Ll_init pn5 150V", sm4.LlInit(sm4.HighVoltage.V150), 5,
     "F0 81 55 81 58 81 0B 81 7A 14 00 0C 0F"),
    ("Ll_channel_config pn1 red/yellow 200us@+20 100us@0 200us@-20",
     sm4.LlChannelConfig((P(200, 20), P(100, 0), P(200, -20)), sm4.ChannelColour.RED,
                         sm4.Connector.YELLOW), 1,
     "F0 81 55 81 4C 81 3B 81 81 04 02 82 0C 85 50 00 06 44 B0 00 0C 84 10 00 0F"),
    ("Ll_stop pn2", sm4.LlStop(), 2, "F0 81 55 81 59 81 9C 81 78 08 04 0F"),
    ("Ml_init pn3 stop_all", sm4.MlInit(True), 3, "F0 81 55 81 58 81 10 81 69 0C 1E 01 0F"),
    ("Ml_update pn4 ch0 ramp3 20ms 300us@+40 100us@0 300us@-40",
     sm4.MlUpdate((sm4.MlChannelConfig(0, 20.0, (P(300, 40), P(100, 0), P(300, -40)), ramp=3),)),
     4, "F0 81 55 81 48 81 8E 81 C0 10 20 01 23 00 50 12 C5 81 A5 00 06 44 B0 00 12 C3 70 00 0F"),
    ("Ml_get_current_data pn5 sel2", sm4.MlGetCurrentData(sm4.MlDataSelection.STIMULATION), 5,
     "F0 81 55 81 58 81 20 81 96 14 24 02 0F"),
    ("Ml_stop pn6", sm4.MlStop(), 6, "F0 81 55 81 59 81 DB 81 AF 18 22 0F"),
    ("Ml_init_ack pn3 ok", sm4.MlInitAck(sm4.Result.OK), 3,
     "F0 81 55 81 58 81 33 81 79 0C 1F 00 0F"),
    ("Ml_update_ack pn4 ok", sm4.MlUpdateAck(sm4.Result.OK), 4,
     "F0 81 55 81 58 81 23 81 E1 10 21 00 0F"),
    ("Ml_update_ack pn4 param error", sm4.MlUpdateAck(sm4.Result.PARAMETER_ERROR), 4,
     "F0 81 55 81 58 81 03 81 A3 10 21 02 0F"),
]


@pytest.mark.parametrize("name,message,number,hexbytes", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_encode(name, message, number, hexbytes):
    assert sm4.encode(message, number) == H(hexbytes)


@pytest.mark.parametrize("name,message,number,hexbytes", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_decode(name, message, number, hexbytes):
    packet = sm4.decode(H(hexbytes))
    assert packet == sm4.Packet(number, message)
    assert type(packet.message) is type(message)
    assert sm4.StreamDecoder().feed(H(hexbytes)) == [packet]


def test_golden_fields():
    cfg = sm4.decode(H(GOLDEN[2][3])).message
    assert cfg.enable and cfg.channel == sm4.ChannelColour.RED
    assert [(p.duration_us, p.current_ma) for p in cfg.points] == [(200, 20), (100, 0), (200, -20)]
    upd = sm4.decode(H(GOLDEN[5][3])).message
    [ch] = upd.channels
    assert (ch.channel, ch.period_ms, ch.frequency_hz, ch.ramp) == (0, 20.0, 50.0, 3)
    assert ch.points == sm4.biphasic_points(300, 40)
    assert sm4.decode(H(GOLDEN[10][3])).message.result is sm4.Result.PARAMETER_ERROR


def test_golden_stream_byte_by_byte():
    stream = b"".join(H(g[3]) for g in GOLDEN)
    dec = sm4.StreamDecoder()
    items = []
    for b in stream:
        items += dec.feed(bytes([b]))
    assert items == [sm4.Packet(g[2], g[1]) for g in GOLDEN]


# --------------------------------------------------------------------------- framing


def test_crc16_check_value():
    assert crc16_xmodem(b"123456789") == 0x31C3  # CRC-16/XMODEM check value


def test_length_counts_start_and_stop():
    frame = sm4.encode(sm4.MlStop(), 6)
    n = ((frame[2] ^ 0x55) << 8) | (frame[4] ^ 0x55)
    assert n == len(frame) == sm4.MIN_FRAME


def test_prefix_of_packet_60_is_stuffed():
    frame = sm4.encode(sm4.MlStop(), 60)
    assert frame[9:11] == b"\x81\xA5"  # (60 << 2) = 0xF0
    assert sm4.decode(frame) == sm4.Packet(60, sm4.MlStop())


def test_ten_bit_command_numbers():
    frame = sm4.encode(sm4.RawMessage(0x3FF, b"\x01"), 63)
    assert unstuff(frame[9:-1])[:2] == b"\xFF\xFF"
    assert sm4.decode(frame) == sm4.Packet(63, sm4.RawMessage(1023, b"\x01"))


def test_range_of_packet_number_and_command():
    with pytest.raises(CodecError, match="Packet.number"):
        sm4.encode(sm4.MlStop(), 64)
    with pytest.raises(CodecError):
        sm4.build_frame(0, 1024)


def test_frame_size_limit():
    with pytest.raises(CodecError, match="too long"):
        sm4.encode(sm4.RawMessage(300, bytes(1200)), 0)
    # the largest mid-level update (8 channels x 16 points) fits, even fully stuffed
    worst = sm4.MlChannelConfig(0, 16383.0, (P(4095, -150.0),) * 16, 15)
    upd = sm4.MlUpdate(tuple(sm4.MlChannelConfig(c, worst.period_ms, worst.points, 15)
                             for c in range(8)))
    frame = sm4.encode(upd, 60)
    assert len(frame) <= sm4.MAX_FRAME
    assert sm4.decode(frame).message == upd


# --------------------------------------------------------------------------- points and fields


@pytest.mark.parametrize("point,word", [
    (P(200, 20), 0x0C855000),
    (P(100, 0), 0x0644B000),
    (P(200, -20), 0x0C841000),
    (P(4095, 150), (4095 << 20) | (600 << 10)),
    (P(0, -150), 0),
    (P(10, 0.5, sm4.Interpolation.LINEAR), (10 << 20) | (301 << 10) | (1 << 5)),
])
def test_point_layout(point, word):
    assert point.to_bytes() == word.to_bytes(4, "big")
    assert P.from_bytes(word.to_bytes(4, "big")) == point


def test_point_reserved_bits_ignored_and_bad_current_code_rejected():
    assert P.from_bytes((0x0C855000 | 0x1F).to_bytes(4, "big")) == P(200, 20)
    with pytest.raises(CodecError):
        P.from_bytes(((200 << 20) | (601 << 10)).to_bytes(4, "big"))


@pytest.mark.parametrize("factory,field", [
    (lambda: P(4096, 0), "duration_us"),
    (lambda: P(100, 150.5), "current_ma"),
    (lambda: P(100, 10.25), "current_ma"),
    (lambda: P(100, float("inf")), "current_ma"),
    (lambda: sm4.MlChannelConfig(8, 20, (P(100, 1),)), "channel"),
    (lambda: sm4.MlChannelConfig(0, 20.25, (P(100, 1),)), "period_ms"),
    (lambda: sm4.MlChannelConfig(0, 16383.5, (P(100, 1),)), "period_ms"),
    (lambda: sm4.MlChannelConfig(0, 0, (P(100, 1),)), "period_ms"),
    (lambda: sm4.MlChannelConfig(0, 8191.75, (P(100, 1),), double_period_accuracy=True),
     "period_ms"),
    (lambda: sm4.MlChannelConfig(0, 20, ()), "points"),
    (lambda: sm4.MlChannelConfig(0, 20, (P(100, 1),) * 17), "points"),
    (lambda: sm4.MlChannelConfig(0, 20, (P(100, 1),), ramp=16), "ramp"),
    (lambda: sm4.LlChannelConfig(()), "points"),
    (lambda: sm4.LlChannelConfig((P(1, 1),), channel=4), "channel"),
    (lambda: sm4.LlInit(7), "high_voltage"),
    (lambda: sm4.MlGetCurrentData(1), "selection"),
    (lambda: sm4.MlUpdateAck(29), "result"),
])
def test_out_of_range_fields(factory, field):
    with pytest.raises(CodecError) as err:
        factory()
    assert err.value.path.endswith("." + field)
    assert err.value.allowed


def test_period_resolutions():
    fine = sm4.MlChannelConfig(1, 8191.5, (P(100, 10),), double_period_accuracy=True)
    assert fine.period_code == 32766
    assert fine.to_bytes()[1:3] == ((32766 << 1) | 1).to_bytes(2, "big")
    coarse = sm4.MlChannelConfig(1, 16383, (P(100, 10),))
    assert coarse.to_bytes()[1:3] == (32766 << 1).to_bytes(2, "big")
    q = sm4.MlChannelConfig(2, 12.25, (P(100, 10),), double_period_accuracy=True)
    assert sm4.decode(sm4.encode(sm4.MlUpdate((q,)), 1)).message.channels == (q,)


def test_update_channels_sorted_and_distinct():
    a = sm4.MlChannelConfig(5, 20, (P(100, 10),))
    b = sm4.MlChannelConfig(2, 25, (P(100, 10),))
    upd = sm4.MlUpdate((a, b))
    assert [c.channel for c in upd.channels] == [2, 5]
    assert sm4.encode(upd, 1)[11] == 0b00100100  # enable mask, after the 2 prefix bytes
    with pytest.raises(CodecError, match="twice"):
        sm4.MlUpdate((a, a))


def test_time_load():
    cfg = sm4.MlChannelConfig(0, 20, sm4.biphasic_points(300, 40))
    assert sm4.MlUpdate((cfg,)).time_load == pytest.approx((700 + 60) / 20000)


def test_biphasic_points_are_charge_balanced():
    pts = sm4.biphasic_points(250, 33.5, 50)
    assert sum(p.duration_us * p.current_ma for p in pts) == 0
    assert sm4.biphasic_points(250, 10, 0) == (P(250, 10), P(250, -10))


def test_disabled_ll_channel_config_has_no_points():
    cfg = sm4.LlChannelConfig((), sm4.ChannelColour.WHITE, sm4.Connector.GREEN, enable=False)
    frame = sm4.encode(cfg, 9)
    assert unstuff(frame[9:-1])[2:] == bytes([0b01110000])
    assert sm4.decode(frame).message == cfg


def test_ll_channel_config_ack_with_measurement():
    samples = tuple(range(0, 128 * 500, 500))
    ack = sm4.LlChannelConfigAck(sm4.Result.ELECTRODE_ERROR, sm4.ChannelColour.BLACK,
                                 sm4.Connector.GREEN, sm4.Measurement.STIMULATION_CURRENT, 20,
                                 samples)
    data = ack.payload()
    assert data[:5] == bytes([10, 0x12, 1, 0, 20]) and len(data) == 261
    assert sm4.decode(sm4.encode(ack, 3)) == sm4.Packet(3, ack)
    with pytest.raises(CodecError):
        sm4.LlChannelConfigAck(measurement=sm4.Measurement.NONE, samples=samples)
    with pytest.raises(CodecError):
        sm4.LlChannelConfigAck(measurement=sm4.Measurement.HIGH_VOLTAGE, sampling_time_us=1,
                               samples=samples[:-1])


# --------------------------------------------------------------------------- get current data


def _ack_frame(data):
    return sm4.build_frame(5, sm4.Command.ML_GET_CURRENT_DATA_ACK, data)


def test_current_data_selection_4_nibbles():
    # active: channels 0 and 7; states: ch1 electrode error, ch2 pulse timeout,
    # ch3 low current, ch7 electrode error
    ack = sm4.decode(_ack_frame(bytes([0, 4, 0x81, 0x10, 0x32, 0x00, 0x10]))).message
    assert ack.selection is sm4.MlDataSelection.CHANNELS
    assert ack.channels_active == (True, False, False, False, False, False, False, True)
    assert ack.channel_states == (0, 1, 2, 3, 0, 0, 0, 1)
    assert ack.channel_errors == {1: "ELECTRODE_ERROR", 2: "PULSE_TIMEOUT", 3: "LOW_CURRENT",
                                  7: "ELECTRODE_ERROR"}
    assert ack.payload() == bytes([0, 4, 0x81, 0x10, 0x32, 0x00, 0x10])


def test_current_data_selection_2_and_3():
    ack2 = sm4.decode(_ack_frame(bytes([0, 2, 0x15]))).message
    assert ack2.stimulation_running is True
    assert ack2.electrode_errors == (True, False, True, False)
    ack3 = sm4.decode(_ack_frame(bytes([0, 3, 0x08, 0x02]))).message
    assert ack3.stimulation_running is False
    assert ack3.electrode_errors == (False, False, False, True, False, True, False, False)
    assert ack3.channel_errors == {3: "ELECTRODE_ERROR", 5: "ELECTRODE_ERROR"}


@pytest.mark.parametrize("data", [
    bytes([0, 4, 0x00, 0x04, 0, 0, 0]),     # undefined channel state 4
    bytes([0, 5, 0x00]),                    # undefined selection
    bytes([0, 2, 0x00, 0x00]),              # one byte too many
    bytes([0, 4, 0x00, 0x00]),              # too short
    bytes([29, 2, 0x00]),                   # undefined result
])
def test_current_data_malformed(data):
    [item] = sm4.StreamDecoder().feed(_ack_frame(data))
    assert isinstance(item, BadFrame) and item.kind == BadFrameKind.PAYLOAD
    assert (item.packet_number, item.command) == (5, 37)


def test_current_data_inconsistent_fields_rejected():
    with pytest.raises(CodecError):
        sm4.MlGetCurrentDataAck(selection=sm4.MlDataSelection.STIMULATION,
                                stimulation_running=True, electrode_errors=(False,) * 8)
    with pytest.raises(CodecError):
        sm4.MlGetCurrentDataAck(selection=sm4.MlDataSelection.CHANNELS,
                                stimulation_running=True, channels_active=(False,) * 8,
                                channel_states=(0,) * 8)


def test_general_error_and_unknown_command():
    for cls, cmd in ((sm4.GeneralError, 66), (sm4.UnknownCommand, 67)):
        assert sm4.decode(sm4.build_frame(1, cmd, b"\x0b")).message == cls(sm4.Result(11))
        assert sm4.decode(sm4.build_frame(1, cmd)).message == cls()
        assert sm4.decode(sm4.build_frame(1, cmd, b"\x00\x07")).message == cls(0, b"\x07")


def test_get_stim_status_ack():
    frame = sm4.build_frame(2, sm4.Command.GET_STIM_STATUS_ACK, b"\x00\x03\x01")
    assert sm4.decode(frame).message == sm4.GetStimStatusAck(sm4.Result.OK,
                                                             sm4.StimStatus.ML_RUNNING, 1)


@pytest.mark.parametrize("frame,kind", [
    (H("F0 81 55 81 58 81 55 81 54 00 00 00 0F"), BadFrameKind.CRC),
    (H("F0 81 55 81 59 81 55 81 55 00 00 00 0F"), BadFrameKind.LENGTH),
    (H("F0 81 55 80 58 81 55 81 55 00 00 00 0F"), BadFrameKind.BAD_HEADER),
    (H("F0 81 55 81 58 81 55 81 55 00 00 00"), BadFrameKind.FRAMING),
    (H("F0 81 55 81 5F 81 55 81 55 0F"), BadFrameKind.TOO_SHORT),
])
def test_decode_rejects_broken_frames(frame, kind):
    with pytest.raises(CodecError) as err:
        sm4.decode(frame)
    assert err.value.kind == kind


# --------------------------------------------------------------------------- properties

_results = st.sampled_from(list(sm4.Result))
_points = st.builds(P, st.integers(0, 4095), st.integers(-300, 300).map(lambda k: k / 2),
                    st.sampled_from(list(sm4.Interpolation)))
_point_lists = st.lists(_points, min_size=1, max_size=16).map(tuple)


@st.composite
def _ml_channel(draw, channel):
    fine = draw(st.booleans())
    code = draw(st.integers(1, 32766))
    return sm4.MlChannelConfig(channel, code / (4 if fine else 2), draw(_point_lists),
                               draw(st.integers(0, 15)), fine)


@st.composite
def _ml_update(draw):
    chans = draw(st.lists(st.integers(0, 7), unique=True, max_size=8))
    return sm4.MlUpdate(tuple(draw(_ml_channel(c)) for c in chans))


@st.composite
def _current_data_ack(draw):
    result = draw(_results)
    sel = draw(st.sampled_from(list(sm4.MlDataSelection)))
    if sel == sm4.MlDataSelection.CHANNELS:
        return sm4.MlGetCurrentDataAck.for_channels(
            draw(st.lists(st.booleans(), min_size=8, max_size=8)),
            draw(st.lists(st.sampled_from(list(sm4.MlChannelState)), min_size=8, max_size=8)),
            result)
    n = 4 if sel == sm4.MlDataSelection.STIMULATION else 8
    return sm4.MlGetCurrentDataAck.for_stimulation(
        draw(st.booleans()), draw(st.lists(st.booleans(), min_size=n, max_size=n)), result)


@st.composite
def _ll_channel_config_ack(draw):
    m = draw(st.sampled_from(list(sm4.Measurement)))
    args = [draw(_results), draw(st.sampled_from(list(sm4.ChannelColour))),
            draw(st.sampled_from(list(sm4.Connector))), m]
    if m != sm4.Measurement.NONE:
        args += [draw(st.integers(0, 0xFFFF)),
                 tuple(draw(st.lists(st.integers(0, 0xFFFF), min_size=128, max_size=128)))]
    return sm4.LlChannelConfigAck(*args)


_known = {int(c) for c in sm4.Command}
_colour = st.sampled_from(list(sm4.ChannelColour))
_connector = st.sampled_from(list(sm4.Connector))

MESSAGE_STRATEGIES = {
    sm4.LlInit: st.builds(sm4.LlInit, st.sampled_from(list(sm4.HighVoltage)),
                          st.sampled_from(list(sm4.Measurement))),
    sm4.LlInitAck: st.builds(sm4.LlInitAck, _results),
    sm4.LlChannelConfig: st.one_of(
        st.builds(sm4.LlChannelConfig, _point_lists, _colour, _connector, st.just(True)),
        st.builds(sm4.LlChannelConfig, st.just(()), _colour, _connector, st.just(False))),
    sm4.LlChannelConfigAck: _ll_channel_config_ack(),
    sm4.LlStop: st.just(sm4.LlStop()),
    sm4.LlStopAck: st.builds(sm4.LlStopAck, _results),
    sm4.MlInit: st.builds(sm4.MlInit, st.booleans()),
    sm4.MlInitAck: st.builds(sm4.MlInitAck, _results),
    sm4.MlUpdate: _ml_update(),
    sm4.MlUpdateAck: st.builds(sm4.MlUpdateAck, _results),
    sm4.MlStop: st.just(sm4.MlStop()),
    sm4.MlStopAck: st.builds(sm4.MlStopAck, _results),
    sm4.MlGetCurrentData: st.builds(sm4.MlGetCurrentData,
                                    st.sampled_from(list(sm4.MlDataSelection))),
    sm4.MlGetCurrentDataAck: _current_data_ack(),
    sm4.GetStimStatus: st.just(sm4.GetStimStatus()),
    sm4.GetStimStatusAck: st.builds(sm4.GetStimStatusAck, _results,
                                    st.sampled_from(list(sm4.StimStatus)), st.integers(0, 255)),
    sm4.GeneralError: st.one_of(st.just(sm4.GeneralError()),
                                st.builds(sm4.GeneralError, _results, st.binary(max_size=4))),
    sm4.UnknownCommand: st.one_of(st.just(sm4.UnknownCommand()),
                                  st.builds(sm4.UnknownCommand, _results, st.binary(max_size=4))),
    sm4.RawMessage: st.builds(sm4.RawMessage,
                              st.integers(0, 1023).filter(lambda c: c not in _known),
                              st.binary(max_size=80)),
}
messages = st.one_of(*MESSAGE_STRATEGIES.values())
packets = st.builds(sm4.Packet, st.integers(0, 63), messages)


def test_strategies_cover_every_message_class():
    assert set(sm4._MESSAGES.values()) <= set(MESSAGE_STRATEGIES)


@FAST
@given(packets)
def test_round_trip(packet):
    assert sm4.decode(sm4.encode_packet(packet)) == packet


@FAST
@given(packets)
def test_no_raw_control_bytes_inside_encoded_body(packet):
    frame = sm4.encode_packet(packet)
    body = frame[9:-1]
    assert 0xF0 not in body and 0x0F not in body
    assert [frame[i] for i in (1, 3, 5, 7)] == [0x81] * 4


@FAST
@given(packets, st.data())
def test_single_bit_flip_is_detected(packet, data):
    frame = bytearray(sm4.encode_packet(packet))
    pos = data.draw(st.integers(0, len(frame) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    frame[pos] ^= 1 << bit
    with pytest.raises(CodecError) as err:
        sm4.decode(bytes(frame))
    assert err.value.kind != BadFrameKind.PAYLOAD
    assert all(isinstance(i, BadFrame) for i in sm4.StreamDecoder().feed(bytes(frame)))


@FAST
@given(st.lists(packets, max_size=5), st.integers(1, 40))
def test_stream_chunking_does_not_matter(pkts, chunk):
    stream = b"".join(sm4.encode_packet(p) for p in pkts)
    dec = sm4.StreamDecoder()
    out = []
    for i in range(0, len(stream), chunk):
        out += dec.feed(stream[i:i + chunk])
    assert out == pkts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), packets.map(sm4.encode_packet),
                          st.sampled_from([b"\xF0", b"\x0F", b"\x81", b"\xF0\x81\x55\x81"])),
                max_size=12),
       st.integers(1, 16))
def test_garbage_never_raises(parts, chunk):
    stream = b"".join(parts)
    dec = sm4.StreamDecoder()
    items = []
    for i in range(0, len(stream), chunk):
        items += dec.feed(stream[i:i + chunk])
    assert all(isinstance(i, (sm4.Packet, BadFrame)) for i in items)


@FAST
@given(st.binary(max_size=100).map(lambda b: b.replace(b"\xF0", b"")), packets)
def test_frame_after_junk_is_decoded(junk, packet):
    items = sm4.StreamDecoder().feed(junk + sm4.encode_packet(packet))
    assert items[-1] == packet


def test_messages_of_other_protocols_are_refused():
    from emsim.devices.sciencemode import sm2
    for msg in (sm2.StopChannelListMode(), sm2.Watchdog()):
        with pytest.raises(CodecError, match="not a ScienceMode 4 message"):
            sm4.encode(msg, 1)


def test_every_bit_flip_of_every_golden_frame_is_detected():
    for _, _, _, hexbytes in GOLDEN:
        frame = H(hexbytes)
        for pos in range(len(frame)):
            for bit in range(8):
                bad = bytearray(frame)
                bad[pos] ^= 1 << bit
                with pytest.raises(CodecError):
                    sm4.decode(bytes(bad))
                assert not any(isinstance(i, sm4.Packet)
                               for i in sm4.StreamDecoder().feed(bytes(bad)))


@FAST
@given(packets, packets, st.data())
def test_truncated_frame_then_valid_frame(first, second, data):
    cut_frame = sm4.encode_packet(first)
    cut = data.draw(st.integers(1, len(cut_frame) - 1), label="cut")
    items = sm4.StreamDecoder().feed(cut_frame[:cut] + sm4.encode_packet(second))
    assert items[-1] == second
    assert all(isinstance(i, BadFrame) for i in items[:-1])


def test_control_bytes_in_header_slots():
    # LEN and CRC values are always escaped, so raw 0xF0 / 0x0F appear in the header; the
    # Ll_channel_config golden vector even has 0x81 there. Find frames for every slot.
    found = {}
    for size in range(0, 200):
        for fill in (0x00, 0x11, 0x22, 0x5A):
            frame = sm4.encode(sm4.RawMessage(300, bytes([fill]) * size), size % 64)
            for slot in (2, 4, 6, 8):
                if frame[slot] in (0xF0, 0x0F):
                    found.setdefault((slot, frame[slot]), frame)
    assert len(found) >= 5
    prefix = sm4.encode(sm4.MlStop(), 6)
    for frame in found.values():
        assert sm4.StreamDecoder().feed(frame) == [sm4.decode(frame)]
        for cut in range(1, len(prefix)):
            assert sm4.StreamDecoder().feed(prefix[:cut] + frame)[-1] == sm4.decode(frame)
