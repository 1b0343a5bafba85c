"""ScienceMode 2 codec: golden vectors (reference §1.7), framing, fields and properties."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from emsim.devices.sciencemode import BadFrame, BadFrameKind, CodecError, sm2
from emsim.devices.sciencemode._framing import crc8, stuff, unstuff
from emsim.errors import DeviceError

FAST = settings(max_examples=100, deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

H = bytes.fromhex

# --------------------------------------------------------------------------- golden vectors
# Every vector of devices_and_safety.md §1.7, verbatim.

GOLDEN = [
    ("InitAck pn0", sm2.InitAck(), 0, "F0 81 7F 81 56 00 02 00 0F"),
    ("GetStimMode pn1", sm2.GetStimulationMode(), 1, "F0 81 76 81 57 01 0A 0F"),
    ("InitCLM pn2 ch1 t1=33ms exec=1",
     sm2.InitChannelListMode({1}, main_time_code=64, group_time_code=0,
                             channel_execution=sm2.ChannelExecution.AS_FAST_AS_POSSIBLE),
     2, "F0 81 17 81 5C 02 1E 00 01 00 00 00 40 01 0F"),
    ("Init pn0 version 1", sm2.Init(1), 0, "F0 81 47 81 56 00 01 01 0F"),
    ("Watchdog pn1", sm2.Watchdog(), 1, "F0 81 5C 81 57 01 04 0F"),
    ("InitCLM pn5 ch1+2 t1=20ms t2=8ms",
     sm2.InitChannelListMode({1, 2}, main_time_code=38, group_time_code=13),
     5, "F0 81 5F 81 5C 05 1E 00 03 00 0D 00 26 00 0F"),
    ("StartCLM pn6 2x single 300us 40mA",
     sm2.StartChannelListMode((sm2.ChannelSettings(300, 40), sm2.ChannelSettings(300, 40))),
     6, "F0 81 BC 81 5F 06 20 00 01 2C 28 00 01 2C 28 0F"),
    ("StartCLM pn7 pause 0mA",
     sm2.StartChannelListMode((sm2.ChannelSettings(300, 0), sm2.ChannelSettings(300, 0))),
     7, "F0 81 71 81 5F 07 20 00 01 2C 00 00 01 2C 00 0F"),
    ("StopCLM pn8", sm2.StopChannelListMode(), 8, "F0 81 13 81 57 08 22 0F"),
    ("SinglePulse pn9 ch1 200us 20mA", sm2.SinglePulse(1, 200, 20), 9,
     "F0 81 F1 81 53 09 24 00 00 C8 14 0F"),
    ("GetStimMode pn10", sm2.GetStimulationMode(), 10, "F0 81 E1 81 57 0A 0A 0F"),
    ("InitCLMAck pn5 ok", sm2.InitChannelListModeAck(sm2.Result.OK), 5,
     "F0 81 01 81 56 05 1F 00 0F"),
]


@pytest.mark.parametrize("name,message,number,hexbytes", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_encode(name, message, number, hexbytes):
    assert sm2.encode(message, number) == H(hexbytes)


@pytest.mark.parametrize("name,message,number,hexbytes", GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_decode(name, message, number, hexbytes):
    packet = sm2.decode(H(hexbytes))
    assert packet == sm2.Packet(number, message)
    assert type(packet.message) is type(message)
    assert sm2.StreamDecoder().feed(H(hexbytes)) == [packet]


def test_golden_time_fields_in_ms():
    init = sm2.decode(H("F0 81 17 81 5C 02 1E 00 01 00 00 00 40 01 0F")).message
    assert init.main_time_ms == 33.0 and init.active_channels == {1}
    init = sm2.decode(H("F0 81 5F 81 5C 05 1E 00 03 00 0D 00 26 00 0F")).message
    assert (init.main_time_ms, init.group_time_ms, init.frequency_hz) == (20.0, 8.0, 50.0)
    assert sm2.InitChannelListMode.from_ms({1, 2}, 20, 8) == init


def test_golden_stream_concatenated_byte_by_byte():
    stream = b"".join(H(g[3]) for g in GOLDEN)
    dec = sm2.StreamDecoder()
    items = []
    for b in stream:
        items += dec.feed(bytes([b]))
    assert items == [sm2.Packet(g[2], g[1]) for g in GOLDEN]
    assert dec.pending == 0


# --------------------------------------------------------------------------- framing primitives


def test_crc8_check_value():
    assert crc8(b"123456789") == 0xF4  # CRC-8/SMBUS check value


@pytest.mark.parametrize("raw,stuffed", [
    (b"\xF0", b"\x81\xA5"), (b"\x0F", b"\x81\x5A"), (b"\x81", b"\x81\xD4"),
    (b"\x55", b"\x55"), (b"\x0A", b"\x0A"), (b"\x00\xF0\x01", b"\x00\x81\xA5\x01"),
])
def test_stuffing_escapes_only_the_three_control_bytes(raw, stuffed):
    # pysciencemode also escapes 0x0A and 0x55; the protocol does not (reference §1.8)
    assert stuff(raw) == stuffed
    assert unstuff(stuffed) == raw


def test_unstuff_xors_any_byte_after_escape():
    assert unstuff(b"\x81\x00\x81\x55") == b"\x55\x00"


def test_unstuff_dangling_escape_raises():
    with pytest.raises(CodecError) as err:
        unstuff(b"\x01\x81")
    assert err.value.kind == BadFrameKind.STUFFING


@pytest.mark.parametrize("number", [10, 15, 85, 129, 240])
def test_packet_numbers_mangled_by_pysciencemode_round_trip(number):
    frame = sm2.encode(sm2.GetStimulationMode(), number)
    body = frame[5:-1]
    assert body[-1] == 0x0A  # the command byte goes out raw, not as 0x5F
    assert sm2.decode(frame) == sm2.Packet(number, sm2.GetStimulationMode())


def _find_frame_with_header_byte(value):
    for version in range(256):
        for number in range(256):
            frame = sm2.encode(sm2.Init(version), number)
            if frame[2] == value:
                return frame
    raise AssertionError("no such frame")


@pytest.mark.parametrize("value", [0xF0, 0x0F])
def test_control_byte_value_in_header_slot_is_not_framing(value):
    # the checksum is always sent escaped, so a CRC of 0xA5 appears as a raw 0xF0 in the header
    frame = _find_frame_with_header_byte(value)
    assert sm2.StreamDecoder().feed(frame) == [sm2.decode(frame)]


# --------------------------------------------------------------------------- fields and errors


def test_codec_error_is_device_error_and_value_error():
    with pytest.raises(CodecError) as err:
        sm2.SinglePulse(1, 200, 131)
    e = err.value
    assert isinstance(e, DeviceError) and isinstance(e, ValueError)
    assert e.path == "SinglePulse.current_ma" and e.value == 131 and e.allowed == "0..130 mA"
    assert "current_ma" in str(e) and "131" in str(e) and "0..130" in str(e)


@pytest.mark.parametrize("factory,field,value", [
    (lambda: sm2.SinglePulse(0, 200, 20), "channel", 0),
    (lambda: sm2.SinglePulse(9, 200, 20), "channel", 9),
    (lambda: sm2.SinglePulse(1, 501, 20), "pulse_width_us", 501),
    (lambda: sm2.SinglePulse(1, -1, 20), "pulse_width_us", -1),
    (lambda: sm2.ChannelSettings(200, 131), "current_ma", 131),
    (lambda: sm2.ChannelSettings(200, 20, 3), "mode", 3),
    (lambda: sm2.ChannelSettings(200.0, 20), "pulse_width_us", 200.0),
    (lambda: sm2.ChannelSettings(True, 20), "pulse_width_us", True),
    (lambda: sm2.InitChannelListMode({1}, 2049), "main_time_code", 2049),
    (lambda: sm2.InitChannelListMode({1}, 10, 256), "group_time_code", 256),
    (lambda: sm2.InitChannelListMode({1}, 10, low_frequency_factor=8), "low_frequency_factor", 8),
    (lambda: sm2.InitChannelListMode({0}, 10), "active_channels", 0),
    (lambda: sm2.InitChannelListMode({1}, 10, low_frequency_channels={9}),
     "low_frequency_channels", 9),
    (lambda: sm2.Init(256), "version", 256),
    (lambda: sm2.InitAck(-9), "result", -9),
    (lambda: sm2.StimulationError(-4), "error", -4),
])
def test_out_of_range_fields_name_field_value_and_range(factory, field, value):
    with pytest.raises(CodecError) as err:
        factory()
    assert err.value.path.endswith("." + field)
    assert err.value.value == value
    assert err.value.allowed


def test_start_channel_list_mode_needs_1_to_8_channels():
    with pytest.raises(CodecError, match="channels"):
        sm2.StartChannelListMode(())
    with pytest.raises(CodecError, match="channels"):
        sm2.StartChannelListMode((sm2.ChannelSettings(100, 10),) * 9)
    with pytest.raises(CodecError, match=r"channels\[0\]"):
        sm2.StartChannelListMode(((100, 10),))


def test_get_stimulation_mode_ack_mode_present_only_when_ok():
    with pytest.raises(CodecError):
        sm2.GetStimulationModeAck(sm2.Result.OK)
    with pytest.raises(CodecError):
        sm2.GetStimulationModeAck(sm2.Result.BUSY, sm2.StimulationMode.START)
    assert sm2.encode(sm2.GetStimulationModeAck(sm2.Result.BUSY), 3)[5:-1] == b"\x03\x0b\xf8"
    ack = sm2.GetStimulationModeAck(sm2.Result.OK, sm2.StimulationMode.STARTED)
    assert sm2.decode(sm2.encode(ack, 1)).message.mode is sm2.StimulationMode.STARTED


def test_packet_number_range():
    with pytest.raises(CodecError, match="Packet.number"):
        sm2.encode(sm2.Watchdog(), 256)
    with pytest.raises(CodecError):
        sm2.encode(sm2.Watchdog(), -1)


@pytest.mark.parametrize("code,byte", [(-1, 0xFF), (-2, 0xFE), (-3, 0xFD), (-5, 0xFB), (-8, 0xF8)])
def test_result_codes_are_signed(code, byte):
    frame = sm2.encode(sm2.SinglePulseAck(code), 9)
    assert unstuff(frame[5:-1])[2] == byte
    assert sm2.decode(frame).message.result == code


def test_unknown_result_code_is_payload_error():
    frame = sm2.build_frame(1, sm2.Command.SINGLE_PULSE_ACK, b"\xF7")  # -9
    with pytest.raises(CodecError) as err:
        sm2.decode(frame)
    assert err.value.kind == BadFrameKind.PAYLOAD
    assert (err.value.packet_number, err.value.command) == (1, 37)


@pytest.mark.parametrize("code", list(sm2.StimulationErrorCode))
def test_stimulation_error_codes(code):
    frame = sm2.build_frame(200, 38, bytes([code & 0xFF]))
    assert sm2.decode(frame) == sm2.Packet(200, sm2.StimulationError(code))


def test_time_code_helpers():
    assert sm2.main_time_code(33) == 64 and sm2.main_time_ms(64) == 33.0
    assert sm2.group_time_code(8) == 13 and sm2.group_time_ms(13) == 8.0
    assert sm2.main_time_code(1025) == 2048 and sm2.main_time_code(1) == 0
    assert sm2.main_time_code(20.2, quantize=True) == 38
    assert sm2.group_time_code(8.3, quantize=True) == 14
    for bad in (20.2, 0.5, 1025.5, float("nan"), "20"):
        with pytest.raises(CodecError):
            sm2.main_time_code(bad)
    with pytest.raises(CodecError):
        sm2.group_time_code(129.5)


def test_unknown_command_decodes_as_raw_message():
    frame = sm2.build_frame(3, 50, b"\x01\x02")  # a MOTOmed command
    assert sm2.decode(frame) == sm2.Packet(3, sm2.RawMessage(50, b"\x01\x02"))
    assert sm2.encode(sm2.RawMessage(50, b"\x01\x02"), 3) == frame


@pytest.mark.parametrize("command,data", [
    (sm2.Command.SINGLE_PULSE, b"\x00\x00\xC8"),            # one parameter missing
    (sm2.Command.SINGLE_PULSE, b"\x08\x00\xC8\x14"),        # channel 9
    (sm2.Command.START_CHANNEL_LIST_MODE, b"\x00\x01\x2C"),  # not a multiple of 4
    (sm2.Command.START_CHANNEL_LIST_MODE, b"\x00\x01\xF5\x14"),  # 501 us
    (sm2.Command.INIT_CHANNEL_LIST_MODE, b"\x00\x01\x00\x00\x08\x01\x00"),  # t1 code 2049
    (sm2.Command.WATCHDOG, b"\x00"),
    (sm2.Command.GET_STIMULATION_MODE_ACK, b"\x00\x03"),
])
def test_malformed_payload_reports_packet_and_command(command, data):
    frame = sm2.build_frame(42, command, data)
    with pytest.raises(CodecError) as err:
        sm2.decode(frame)
    assert err.value.kind == BadFrameKind.PAYLOAD
    assert (err.value.packet_number, err.value.command) == (42, command)
    [item] = sm2.StreamDecoder().feed(frame)
    assert isinstance(item, BadFrame) and item.kind == BadFrameKind.PAYLOAD
    assert (item.packet_number, item.command) == (42, command)


@pytest.mark.parametrize("frame,kind", [
    (H("F0 81 7E 81 56 00 02 00 0F"), BadFrameKind.CRC),
    (H("F0 81 7F 81 57 00 02 00 0F"), BadFrameKind.LENGTH),
    (H("F0 80 7F 81 56 00 02 00 0F"), BadFrameKind.BAD_HEADER),
    (H("F0 81 7F 81 56 00 02 00"), BadFrameKind.FRAMING),
    (H("F0 81 55 81 55 0F"), BadFrameKind.TOO_SHORT),
])
def test_decode_rejects_broken_frames(frame, kind):
    with pytest.raises(CodecError) as err:
        sm2.decode(frame)
    assert err.value.kind == kind


# --------------------------------------------------------------------------- stream decoder


def test_stream_second_start_restarts_frame():
    good = sm2.encode(sm2.Watchdog(), 1)
    items = sm2.StreamDecoder().feed(good[:6] + good)
    assert [type(i) for i in items] == [BadFrame, sm2.Packet]
    assert items[0].kind == BadFrameKind.RESTARTED and items[1].message == sm2.Watchdog()


def test_stream_recovers_start_swallowed_by_header_slot():
    # "F0 81" of a lost frame, then a whole frame: its start byte lands in the CRC slot
    good = sm2.encode(sm2.SinglePulse(2, 300, 30), 7)
    items = sm2.StreamDecoder().feed(b"\xF0\x81" + good)
    assert items[-1] == sm2.decode(good)
    assert all(isinstance(i, BadFrame) for i in items[:-1])


def test_stream_reports_crc_error_and_continues():
    bad = bytearray(sm2.encode(sm2.SinglePulse(1, 200, 20), 9))
    bad[-2] ^= 0x01
    good = sm2.encode(sm2.Watchdog(), 10)
    items = sm2.StreamDecoder().feed(bytes(bad) + good)
    assert isinstance(items[0], BadFrame) and items[0].kind == BadFrameKind.CRC
    assert items[-1] == sm2.Packet(10, sm2.Watchdog())


def test_stream_junk_and_overlong():
    dec = sm2.StreamDecoder()
    [junk] = dec.feed(b"\x01\x02\x03")
    assert junk.kind == BadFrameKind.JUNK and junk.raw == b"\x01\x02\x03"
    items = dec.feed(b"\xF0\x81\x00\x81\x00" + b"\x11" * 300)
    assert any(i.kind == BadFrameKind.OVERLONG for i in items)
    assert dec.pending < sm2.MAX_FRAME
    assert dec.feed(sm2.encode(sm2.Watchdog(), 0))[-1] == sm2.Packet(0, sm2.Watchdog())


def test_stream_reset_discards_partial_frame():
    dec = sm2.StreamDecoder()
    dec.feed(sm2.encode(sm2.Watchdog(), 1)[:4])
    assert dec.pending == 4
    dec.reset()
    assert dec.pending == 0


# --------------------------------------------------------------------------- properties

_results = st.sampled_from(list(sm2.Result))
_channel_sets = st.frozensets(st.integers(1, 8))
_settings = st.builds(sm2.ChannelSettings, st.integers(0, 500), st.integers(0, 130),
                      st.sampled_from(list(sm2.PulseMode)))
_known = {int(c) for c in sm2.Command}

MESSAGE_STRATEGIES = {
    sm2.Init: st.builds(sm2.Init, st.integers(0, 255)),
    sm2.InitAck: st.builds(sm2.InitAck, _results),
    sm2.UnknownCommand: st.builds(sm2.UnknownCommand, st.integers(0, 255)),
    sm2.Watchdog: st.just(sm2.Watchdog()),
    sm2.GetStimulationMode: st.just(sm2.GetStimulationMode()),
    sm2.GetStimulationModeAck: _results.flatmap(lambda r: st.builds(
        sm2.GetStimulationModeAck, st.just(r),
        st.sampled_from(list(sm2.StimulationMode)) if r == 0 else st.none())),
    sm2.InitChannelListMode: st.builds(
        sm2.InitChannelListMode, _channel_sets, st.integers(0, 2048), st.integers(0, 255),
        _channel_sets, st.integers(0, 7), st.sampled_from(list(sm2.ChannelExecution))),
    sm2.InitChannelListModeAck: st.builds(sm2.InitChannelListModeAck, _results),
    sm2.StartChannelListMode: st.builds(
        sm2.StartChannelListMode, st.lists(_settings, min_size=1, max_size=8).map(tuple)),
    sm2.StartChannelListModeAck: st.builds(sm2.StartChannelListModeAck, _results),
    sm2.StopChannelListMode: st.just(sm2.StopChannelListMode()),
    sm2.StopChannelListModeAck: st.builds(sm2.StopChannelListModeAck, _results),
    sm2.SinglePulse: st.builds(sm2.SinglePulse, st.integers(1, 8), st.integers(0, 500),
                               st.integers(0, 130)),
    sm2.SinglePulseAck: st.builds(sm2.SinglePulseAck, _results),
    sm2.StimulationError: st.builds(sm2.StimulationError,
                                    st.sampled_from(list(sm2.StimulationErrorCode))),
    sm2.RawMessage: st.builds(sm2.RawMessage,
                              st.integers(0, 255).filter(lambda c: c not in _known),
                              st.binary(max_size=60)),
}
messages = st.one_of(*MESSAGE_STRATEGIES.values())
packets = st.builds(sm2.Packet, st.integers(0, 255), messages)


def test_strategies_cover_every_message_class():
    assert set(sm2._MESSAGES.values()) <= set(MESSAGE_STRATEGIES)


@FAST
@given(packets)
def test_round_trip(packet):
    frame = sm2.encode_packet(packet)
    assert sm2.decode(frame) == packet


@FAST
@given(st.binary(max_size=200))
def test_stuff_round_trip_and_no_raw_control_bytes(data):
    stuffed = stuff(data)
    assert 0xF0 not in stuffed and 0x0F not in stuffed
    assert unstuff(stuffed) == data


@FAST
@given(packets)
def test_no_raw_control_bytes_inside_encoded_body(packet):
    frame = sm2.encode_packet(packet)
    body = frame[5:-1]
    assert 0xF0 not in body and 0x0F not in body
    assert frame[1] == frame[3] == 0x81


@FAST
@given(packets, st.data())
def test_single_bit_flip_is_detected(packet, data):
    frame = bytearray(sm2.encode_packet(packet))
    pos = data.draw(st.integers(0, len(frame) - 1), label="byte")
    bit = data.draw(st.integers(0, 7), label="bit")
    frame[pos] ^= 1 << bit
    with pytest.raises(CodecError) as err:
        sm2.decode(bytes(frame))
    assert err.value.kind != BadFrameKind.PAYLOAD  # caught by framing, length or CRC
    items = sm2.StreamDecoder().feed(bytes(frame))
    assert all(isinstance(i, BadFrame) for i in items)


@FAST
@given(st.lists(packets, max_size=6), st.lists(st.integers(1, 20), min_size=1))
def test_stream_chunking_does_not_matter(pkts, chunks):
    stream = b"".join(sm2.encode_packet(p) for p in pkts)
    dec = sm2.StreamDecoder()
    out, i, k = [], 0, 0
    while i < len(stream):
        n = chunks[k % len(chunks)]
        out += dec.feed(stream[i:i + n])
        i, k = i + n, k + 1
    assert out == pkts


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(st.binary(max_size=40), packets.map(sm2.encode_packet),
                          st.sampled_from([b"\xF0", b"\x0F", b"\x81", b"\xF0\x81"])),
                max_size=12),
       st.integers(1, 16))
def test_garbage_never_raises(parts, chunk):
    stream = b"".join(parts)
    dec = sm2.StreamDecoder()
    items = []
    for i in range(0, len(stream), chunk):
        items += dec.feed(stream[i:i + chunk])
    assert all(isinstance(i, (sm2.Packet, BadFrame)) for i in items)
    assert dec.pending <= len(stream)


@FAST
@given(st.binary(max_size=100).map(lambda b: b.replace(b"\xF0", b"")), packets)
def test_frame_after_junk_is_decoded(junk, packet):
    items = sm2.StreamDecoder().feed(junk + sm2.encode_packet(packet))
    assert items[-1] == packet
    assert all(isinstance(i, BadFrame) and i.kind == BadFrameKind.JUNK for i in items[:-1])


def test_messages_of_other_protocols_are_refused():
    from emsim.devices.sciencemode import sm1, sm4
    for msg in (sm4.MlStop(), sm1.SinglePulse(1, 100, 10), "Watchdog"):
        with pytest.raises(CodecError, match="not a ScienceMode 2 message"):
            sm2.encode(msg, 1)


def test_every_bit_flip_of_every_golden_frame_is_detected():
    for _, _, _, hexbytes in GOLDEN:
        frame = H(hexbytes)
        for pos in range(len(frame)):
            for bit in range(8):
                bad = bytearray(frame)
                bad[pos] ^= 1 << bit
                with pytest.raises(CodecError):
                    sm2.decode(bytes(bad))
                assert not any(isinstance(i, sm2.Packet)
                               for i in sm2.StreamDecoder().feed(bytes(bad)))


@FAST
@given(packets, packets, st.data())
def test_truncated_frame_then_valid_frame(first, second, data):
    cut_frame = sm2.encode_packet(first)
    cut = data.draw(st.integers(1, len(cut_frame) - 1), label="cut")
    items = sm2.StreamDecoder().feed(cut_frame[:cut] + sm2.encode_packet(second))
    assert items[-1] == second
    assert all(isinstance(i, BadFrame) for i in items[:-1])


@pytest.mark.parametrize("value", [0xF0, 0x0F])
def test_truncated_frame_then_frame_with_control_byte_in_header(value):
    frame = _find_frame_with_header_byte(value)
    for prefix in (sm2.encode(sm2.SinglePulse(2, 300, 30), 7), frame):
        for cut in range(1, len(prefix)):
            assert sm2.StreamDecoder().feed(prefix[:cut] + frame)[-1] == sm2.decode(frame)
