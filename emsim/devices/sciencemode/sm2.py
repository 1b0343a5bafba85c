"""ScienceMode 2 (Hasomed RehaStim 2) codec: frames, commands and acknowledgements.

Written from *ScienceMode2 – Description and Protocol* v1.24 as summarised in the reference
(``devices_and_safety.md`` §1). Pure functions and frozen dataclasses; no serial I/O.

Frame (§1.3)::

    F0 | 81 CRC^55 | 81 LEN^55 | stuffed(pkt_no, cmd, data...) | 0F

* CRC is CRC-8 (poly 0x07, init 0) and LEN the byte count, both of the *stuffed* body.
  Checksum and length are always sent escaped, even when they need no escaping.
* Packet numbers run 0–255; an acknowledgement echoes the number of its command.
* 16-bit fields are sent MSB first. The PDF says "little endian", but its own field tables
  list the MSB first and every implementation sends it so (pyRehaStim: ``01 5E`` = 350 µs).
* Result and error bytes are signed (two's complement): −1 is 0xFF.

Channel numbers in this module are 1–8 as in the Hasomed documents (module A = 1–4,
module B = 5–8); on the wire SinglePulse carries 0–7 and the channel-list commands a bitmask.

Where pysciencemode (s2mLab/pyScienceMode @66b8454) differs — its behaviour is *not* copied:

* It escapes 0x0A and 0x55 as well as 0xF0/0x0F/0x81, and XORs the packet number and command
  in place without an escape byte, so GetStimulationMode (cmd 10 = 0x0A) goes out as 0x5F and
  packet numbers 10, 15, 85, 129 and 240 are mangled. Here only the three control bytes are
  escaped (the protocol rule); the decoder still unescapes any byte after 0x81.
* Its default inter-pulse interval t2 is 2 ms, although the PDF gives 8 ms as the firmware
  minimum. The codec accepts the protocol range (1.5–129 ms) and exports
  :data:`FIRMWARE_MIN_GROUP_TIME_MS` and :data:`FIRMWARE_MIN_MAIN_TIME_MS` for the safety layer.
* Its MOTOmed parser combines bytes as ``255*msb + lsb``; MOTOmed commands are not modelled
  here (they decode as :class:`RawMessage`).

The PDF's StimulationError table names the command "StartChannelListModeAck"; that is a typo,
the command byte is 38 (:class:`StimulationError`).
"""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass
from typing import ClassVar

from emsim.devices.sciencemode._fields import (
    Message, Packet, PulseMode, RawMessage, channels_of, check_channels, check_enum, check_int,
    check_tuple, expect_length, mask_of, payload_error, signed8,
)
from emsim.devices.sciencemode._framing import (
    START, STOP, STUFF, STUFF_KEY, BadFrame, BadFrameKind, CodecError, StreamDecoder as _StreamDecoder,
    FramedCodec, check_no_raw_controls, checked_payload, crc8, stuff,
)

__all__ = [
    "Command", "Result", "StimulationMode", "PulseMode", "ChannelExecution",
    "StimulationErrorCode",
    "Init", "InitAck", "UnknownCommand", "Watchdog", "GetStimulationMode",
    "GetStimulationModeAck", "InitChannelListMode", "InitChannelListModeAck", "ChannelSettings",
    "StartChannelListMode", "StartChannelListModeAck", "StopChannelListMode",
    "StopChannelListModeAck", "SinglePulse", "SinglePulseAck", "StimulationError", "RawMessage",
    "Packet", "BadFrame", "BadFrameKind", "CodecError",
    "encode", "encode_packet", "build_frame", "parse_frame", "decode", "decode_message",
    "StreamDecoder", "ACK_FOR",
    "main_time_ms", "main_time_code", "group_time_ms", "group_time_code",
    "MAX_PACKET_NUMBER", "MAX_FRAME", "MAIN_TIME_CODE_MAX", "GROUP_TIME_CODE_MAX",
    "FIRMWARE_MIN_MAIN_TIME_MS", "FIRMWARE_MIN_GROUP_TIME_MS", "MAX_CURRENT_MA",
    "MAX_PULSE_WIDTH_US",
]

MAX_PACKET_NUMBER = 255
MAX_FRAME = 1 + 4 + 255 + 1          # LEN is one byte, so the stuffed body is at most 255 bytes
MAIN_TIME_CODE_MAX = 2048            # t1 = 1025 ms
GROUP_TIME_CODE_MAX = 255            # t2 = 129 ms
FIRMWARE_MIN_MAIN_TIME_MS = 8.0      # PDF note; below this the device misbehaves
FIRMWARE_MIN_GROUP_TIME_MS = 8.0
MAX_CURRENT_MA = 130
MAX_PULSE_WIDTH_US = 500


class Command(enum.IntEnum):
    """ScienceMode 2 command numbers (§1.5)."""

    INIT = 1
    INIT_ACK = 2
    UNKNOWN_COMMAND = 3
    WATCHDOG = 4
    GET_STIMULATION_MODE = 10
    GET_STIMULATION_MODE_ACK = 11
    GET_MOTOMED_MODE = 12
    GET_MOTOMED_MODE_ACK = 13
    INIT_CHANNEL_LIST_MODE = 30
    INIT_CHANNEL_LIST_MODE_ACK = 31
    START_CHANNEL_LIST_MODE = 32
    START_CHANNEL_LIST_MODE_ACK = 33
    STOP_CHANNEL_LIST_MODE = 34
    STOP_CHANNEL_LIST_MODE_ACK = 35
    SINGLE_PULSE = 36
    SINGLE_PULSE_ACK = 37
    STIMULATION_ERROR = 38


#: The acknowledgement command expected for each host command.
ACK_FOR: dict[Command, Command] = {
    Command.GET_STIMULATION_MODE: Command.GET_STIMULATION_MODE_ACK,
    Command.INIT_CHANNEL_LIST_MODE: Command.INIT_CHANNEL_LIST_MODE_ACK,
    Command.START_CHANNEL_LIST_MODE: Command.START_CHANNEL_LIST_MODE_ACK,
    Command.STOP_CHANNEL_LIST_MODE: Command.STOP_CHANNEL_LIST_MODE_ACK,
    Command.SINGLE_PULSE: Command.SINGLE_PULSE_ACK,
}


class Result(enum.IntEnum):
    """Signed acknowledgement result codes (§1.5)."""

    OK = 0
    TRANSFER_ERROR = -1          # length or checksum mismatch
    PARAMETER_ERROR = -2         # also a wrong number of parameters
    WRONG_MODE = -3
    MOTOMED_CONNECTION_ERROR = -4
    INCOMPATIBLE_PROTOCOL = -5
    INVALID_MOTOMED_TRAINER = -6
    MOTOMED_BUSY = -7
    BUSY = -8                    # still processing the previous command


class StimulationMode(enum.IntEnum):
    """Device stimulation mode reported by :class:`GetStimulationModeAck`."""

    START = 0
    INITIALIZED = 1
    STARTED = 2


class ChannelExecution(enum.IntEnum):
    """Channel timing inside a main period (InitChannelListMode byte 13)."""

    FIXED_SLOTS = 0              # 1.5 ms reserved per selected channel
    AS_FAST_AS_POSSIBLE = 1      # documented as "not yet implemented"


class StimulationErrorCode(enum.IntEnum):
    """Errors reported by the device in :class:`StimulationError` (signed)."""

    EMERGENCY_SWITCH = -1        # activated or not connected
    ELECTRODE_ERROR = -2
    STIMULATION_MODULE_ERROR = -3


# --------------------------------------------------------------------------- time codes


def main_time_ms(code: int) -> float:
    """Main stimulation interval t1 in ms for a code: ``code * 0.5 + 1``."""
    return code * 0.5 + 1.0


def group_time_ms(code: int) -> float:
    """Inter-pulse interval t2 (doublet/triplet spacing) in ms: ``code * 0.5 + 1.5``."""
    return code * 0.5 + 1.5


def _time_code(ms: float, offset: float, hi: int, name: str, quantize: bool) -> int:
    allowed = f"{offset:g}..{offset + hi * 0.5:g} ms in 0.5 ms steps"
    if isinstance(ms, bool) or not isinstance(ms, numbers.Real) or not math.isfinite(ms):
        raise CodecError(f"{name} must be a finite number of ms", path=name, value=ms,
                         allowed=allowed, has_value=True)
    k = (float(ms) - offset) / 0.5
    if quantize:
        k = math.floor(k + 0.5)
    elif k != round(k):
        raise CodecError(f"{name} is not representable", path=name, value=ms, allowed=allowed)
    k = int(round(k))
    if not 0 <= k <= hi:
        raise CodecError(f"{name} out of range", path=name, value=ms, allowed=allowed)
    return k


def main_time_code(ms: float, *, quantize: bool = False) -> int:
    """Code for a main interval t1 in ms (1–1025 ms in 0.5 ms steps).

    Parameters
    ----------
    ms : float
        Main stimulation interval (1000 / base frequency in Hz).
    quantize : bool
        Round to the nearest representable value instead of raising.

    Raises
    ------
    CodecError
        If ``ms`` is out of range, or not a multiple of 0.5 ms after the 1 ms offset and
        ``quantize`` is false.
    """
    return _time_code(ms, 1.0, MAIN_TIME_CODE_MAX, "main_time_ms", quantize)


def group_time_code(ms: float, *, quantize: bool = False) -> int:
    """Code for an inter-pulse interval t2 in ms (1.5–129 ms in 0.5 ms steps).

    See :func:`main_time_code` for the parameters.
    """
    return _time_code(ms, 1.5, GROUP_TIME_CODE_MAX, "group_time_ms", quantize)


# --------------------------------------------------------------------------- messages


def _result_from(cls: type, b: int) -> Result:
    v = signed8(b)
    try:
        return Result(v)
    except ValueError:
        raise CodecError("unknown result code", path=f"{cls.__name__}.result", value=v,
                         allowed=", ".join(str(r.value) for r in Result),
                         kind=BadFrameKind.PAYLOAD) from None


@dataclass(frozen=True)
class _ResultAck(Message):
    """An acknowledgement carrying only a signed result byte."""

    result: Result = Result.OK

    def __post_init__(self) -> None:
        check_enum(self, "result", Result)

    @property
    def ok(self) -> bool:
        """True if the command was accepted."""
        return self.result == Result.OK

    def payload(self) -> bytes:
        return bytes([self.result & 0xFF])

    @classmethod
    def from_payload(cls, data: bytes) -> "_ResultAck":
        expect_length(cls, data, 1)
        return cls(_result_from(cls, data[0]))


@dataclass(frozen=True)
class Init(Message):
    """Device → host at connection (repeated every 500 ms until acknowledged).

    Attributes
    ----------
    version : int
        Protocol version, 0–255 (devices and pysciencemode use 1).
    """

    command: ClassVar[int] = Command.INIT
    version: int = 1

    def __post_init__(self) -> None:
        check_int(self, "version", 0, 255)

    def payload(self) -> bytes:
        return bytes([self.version])

    @classmethod
    def from_payload(cls, data: bytes) -> "Init":
        expect_length(cls, data, 1)
        return cls(data[0])


@dataclass(frozen=True)
class InitAck(_ResultAck):
    """Host → device answer to :class:`Init`, echoing the device's packet number.

    ``result`` is ``OK`` or ``INCOMPATIBLE_PROTOCOL`` (−5).
    """

    command: ClassVar[int] = Command.INIT_ACK


@dataclass(frozen=True)
class UnknownCommand(Message):
    """Device → host: the device did not recognise a command.

    Attributes
    ----------
    echoed_command : int
        The unrecognised command byte, 0–255.
    """

    command: ClassVar[int] = Command.UNKNOWN_COMMAND
    echoed_command: int = 0

    def __post_init__(self) -> None:
        check_int(self, "echoed_command", 0, 255)

    def payload(self) -> bytes:
        return bytes([self.echoed_command])

    @classmethod
    def from_payload(cls, data: bytes) -> "UnknownCommand":
        expect_length(cls, data, 1)
        return cls(data[0])


@dataclass(frozen=True)
class Watchdog(Message):
    """Host → device keep-alive; send when idle, well within the 1.2 s watchdog. No ack."""

    command: ClassVar[int] = Command.WATCHDOG


@dataclass(frozen=True)
class GetStimulationMode(Message):
    """Host → device: ask for the stimulation mode."""

    command: ClassVar[int] = Command.GET_STIMULATION_MODE


@dataclass(frozen=True)
class GetStimulationModeAck(Message):
    """Device → host answer to :class:`GetStimulationMode`.

    Attributes
    ----------
    result : Result
        ``OK`` or an error.
    mode : StimulationMode or None
        Present exactly when ``result`` is ``OK``.
    """

    command: ClassVar[int] = Command.GET_STIMULATION_MODE_ACK
    result: Result = Result.OK
    mode: StimulationMode | None = None

    def __post_init__(self) -> None:
        check_enum(self, "result", Result)
        if self.result == Result.OK:
            if self.mode is None:
                raise CodecError("mode is required when result is OK",
                                 path="GetStimulationModeAck.mode", value=None,
                                 allowed="0 (START), 1 (INITIALIZED), 2 (STARTED)",
                                 has_value=True)
            check_enum(self, "mode", StimulationMode)
        elif self.mode is not None:
            raise CodecError("mode must be None when result is not OK",
                             path="GetStimulationModeAck.mode", value=self.mode, allowed="None")

    def payload(self) -> bytes:
        if self.mode is None:
            return bytes([self.result & 0xFF])
        return bytes([self.result & 0xFF, self.mode])

    @classmethod
    def from_payload(cls, data: bytes) -> "GetStimulationModeAck":
        if not data:
            raise payload_error(cls, "missing result byte", data, "1 or 2 data bytes")
        result = _result_from(cls, data[0])
        if result == Result.OK:
            expect_length(cls, data, 2)
            return cls(result, data[1])
        expect_length(cls, data, 1)
        return cls(result)


@dataclass(frozen=True)
class InitChannelListMode(Message):
    """Host → device: configure continuous channel-list mode (§1.6, 7 data bytes).

    All channels share the main interval t1, so the device has one base frequency;
    low-frequency channels run every ``low_frequency_factor + 1`` main periods.

    Attributes
    ----------
    active_channels : frozenset of int
        Channels 1–8 to stimulate.
    main_time_code : int
        t1 code 0–2048, t1 = code·0.5 ms + 1 ms (1–1025 ms); 0 selects one-shot mode.
        Firmware minimum 8 ms (code 14).
    group_time_code : int
        t2 code 0–255, t2 = code·0.5 ms + 1.5 ms (1.5–129 ms), the doublet/triplet spacing.
        Firmware minimum 8 ms (code 13).
    low_frequency_channels : frozenset of int
        Channels 1–8 that run at the reduced rate.
    low_frequency_factor : int
        0–7 main periods skipped for low-frequency channels.
    channel_execution : ChannelExecution
        Slot timing (``AS_FAST_AS_POSSIBLE`` is documented as not implemented).
    """

    command: ClassVar[int] = Command.INIT_CHANNEL_LIST_MODE
    active_channels: frozenset[int] = frozenset()
    main_time_code: int = 0
    group_time_code: int = 0
    low_frequency_channels: frozenset[int] = frozenset()
    low_frequency_factor: int = 0
    channel_execution: ChannelExecution = ChannelExecution.FIXED_SLOTS

    def __post_init__(self) -> None:
        check_channels(self, "active_channels", 1, 8)
        check_int(self, "main_time_code", 0, MAIN_TIME_CODE_MAX)
        check_int(self, "group_time_code", 0, GROUP_TIME_CODE_MAX)
        check_channels(self, "low_frequency_channels", 1, 8)
        check_int(self, "low_frequency_factor", 0, 7)
        check_enum(self, "channel_execution", ChannelExecution)

    @classmethod
    def from_ms(cls, active_channels, main_time_ms: float, group_time_ms: float = 1.5, *,
                low_frequency_channels=frozenset(), low_frequency_factor: int = 0,
                channel_execution: ChannelExecution = ChannelExecution.FIXED_SLOTS,
                quantize: bool = False) -> "InitChannelListMode":
        """Build from intervals in ms (see :func:`main_time_code` for ``quantize``)."""
        return cls(active_channels, main_time_code(main_time_ms, quantize=quantize),
                   group_time_code(group_time_ms, quantize=quantize), low_frequency_channels,
                   low_frequency_factor, channel_execution)

    @property
    def main_time_ms(self) -> float:
        """t1 in ms."""
        return main_time_ms(self.main_time_code)

    @property
    def group_time_ms(self) -> float:
        """t2 in ms."""
        return group_time_ms(self.group_time_code)

    @property
    def frequency_hz(self) -> float | None:
        """Base frequency 1000 / t1, or None in one-shot mode (code 0)."""
        return None if self.main_time_code == 0 else 1000.0 / self.main_time_ms

    def payload(self) -> bytes:
        t1 = self.main_time_code
        return bytes([self.low_frequency_factor, mask_of(self.active_channels, 1),
                      mask_of(self.low_frequency_channels, 1), self.group_time_code,
                      t1 >> 8, t1 & 0xFF, self.channel_execution])

    @classmethod
    def from_payload(cls, data: bytes) -> "InitChannelListMode":
        expect_length(cls, data, 7)
        return cls(channels_of(data[1], 1), (data[4] << 8) | data[5], data[3],
                   channels_of(data[2], 1), data[0], data[6])


@dataclass(frozen=True)
class InitChannelListModeAck(_ResultAck):
    """Device → host answer to :class:`InitChannelListMode`."""

    command: ClassVar[int] = Command.INIT_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True)
class ChannelSettings:
    """Pulse settings of one active channel in :class:`StartChannelListMode`.

    Attributes
    ----------
    pulse_width_us : int
        0–500 µs (firmware raises < 20 µs to 20 µs).
    current_ma : int
        0–130 mA (the device resolves 2 mA steps); 0 mA is how a pause is sent.
    mode : PulseMode
        Single, doublet or triplet.
    """

    pulse_width_us: int
    current_ma: int
    mode: PulseMode = PulseMode.SINGLE

    def __post_init__(self) -> None:
        check_int(self, "pulse_width_us", 0, MAX_PULSE_WIDTH_US, unit="us")
        check_int(self, "current_ma", 0, MAX_CURRENT_MA, unit="mA")
        check_enum(self, "mode", PulseMode)


@dataclass(frozen=True)
class StartChannelListMode(Message):
    """Host → device: start channel-list stimulation, or update it while running.

    Attributes
    ----------
    channels : tuple of ChannelSettings
        One entry per *active* channel (as configured by :class:`InitChannelListMode`),
        in ascending channel order; 1–8 entries. The message itself carries no channel
        numbers.
    """

    command: ClassVar[int] = Command.START_CHANNEL_LIST_MODE
    channels: tuple[ChannelSettings, ...] = ()

    def __post_init__(self) -> None:
        check_tuple(self, "channels", ChannelSettings, 1, 8)

    def payload(self) -> bytes:
        out = bytearray()
        for ch in self.channels:
            out += bytes([ch.mode, ch.pulse_width_us >> 8, ch.pulse_width_us & 0xFF,
                          ch.current_ma])
        return bytes(out)

    @classmethod
    def from_payload(cls, data: bytes) -> "StartChannelListMode":
        if not data or len(data) % 4 or len(data) > 32:
            raise payload_error(cls, f"wrong number of data bytes ({len(data)})", data,
                                "4 bytes per active channel, 1-8 channels")
        return cls(tuple(ChannelSettings((data[i + 1] << 8) | data[i + 2], data[i + 3], data[i])
                         for i in range(0, len(data), 4)))


@dataclass(frozen=True)
class StartChannelListModeAck(_ResultAck):
    """Device → host answer to :class:`StartChannelListMode`."""

    command: ClassVar[int] = Command.START_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True)
class StopChannelListMode(Message):
    """Host → device: stop channel-list stimulation; the device returns to start mode."""

    command: ClassVar[int] = Command.STOP_CHANNEL_LIST_MODE


@dataclass(frozen=True)
class StopChannelListModeAck(_ResultAck):
    """Device → host answer to :class:`StopChannelListMode`."""

    command: ClassVar[int] = Command.STOP_CHANNEL_LIST_MODE_ACK


@dataclass(frozen=True)
class SinglePulse(Message):
    """Host → device: one pulse now (only allowed in start mode).

    Attributes
    ----------
    channel : int
        Channel 1–8 (sent as 0–7).
    pulse_width_us : int
        0–500 µs.
    current_ma : int
        0–130 mA.
    """

    command: ClassVar[int] = Command.SINGLE_PULSE
    channel: int = 1
    pulse_width_us: int = 0
    current_ma: int = 0

    def __post_init__(self) -> None:
        check_int(self, "channel", 1, 8)
        check_int(self, "pulse_width_us", 0, MAX_PULSE_WIDTH_US, unit="us")
        check_int(self, "current_ma", 0, MAX_CURRENT_MA, unit="mA")

    def payload(self) -> bytes:
        return bytes([self.channel - 1, self.pulse_width_us >> 8, self.pulse_width_us & 0xFF,
                      self.current_ma])

    @classmethod
    def from_payload(cls, data: bytes) -> "SinglePulse":
        expect_length(cls, data, 4)
        return cls(data[0] + 1, (data[1] << 8) | data[2], data[3])


@dataclass(frozen=True)
class SinglePulseAck(_ResultAck):
    """Device → host answer to :class:`SinglePulse`."""

    command: ClassVar[int] = Command.SINGLE_PULSE_ACK


@dataclass(frozen=True)
class StimulationError(Message):
    """Device → host, unsolicited: stimulation stopped because of an error.

    The device is back in start mode when this arrives; a driver treats it as an
    emergency stop.

    Attributes
    ----------
    error : StimulationErrorCode
        Emergency switch, electrode or stimulation-module error.
    """

    command: ClassVar[int] = Command.STIMULATION_ERROR
    error: StimulationErrorCode = StimulationErrorCode.EMERGENCY_SWITCH

    def __post_init__(self) -> None:
        check_enum(self, "error", StimulationErrorCode)

    def payload(self) -> bytes:
        return bytes([self.error & 0xFF])

    @classmethod
    def from_payload(cls, data: bytes) -> "StimulationError":
        expect_length(cls, data, 1)
        return cls(signed8(data[0]))


_MESSAGES: dict[int, type[Message]] = {
    cls.command: cls for cls in (
        Init, InitAck, UnknownCommand, Watchdog, GetStimulationMode, GetStimulationModeAck,
        InitChannelListMode, InitChannelListModeAck, StartChannelListMode,
        StartChannelListModeAck, StopChannelListMode, StopChannelListModeAck, SinglePulse,
        SinglePulseAck, StimulationError)
}

_OWN = tuple(_MESSAGES.values()) + (RawMessage,)

# --------------------------------------------------------------------------- frames


def _check_byte(value: int, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= 255:
        raise CodecError(f"{name} out of range", path=name, value=value, allowed="0..255",
                         has_value=True)
    return int(value)


def build_frame(number: int, command: int, data: bytes = b"") -> bytes:
    """Frame a packet: header, stuffed ``(number, command, data)`` body and stop byte.

    Parameters
    ----------
    number : int
        Packet number 0–255.
    command : int
        Command byte 0–255.
    data : bytes
        Unstuffed command data.

    Raises
    ------
    CodecError
        If a value is out of range or the stuffed body exceeds 255 bytes.
    """
    body = stuff(bytes([_check_byte(number, "Packet.number"), _check_byte(command, "command")])
                 + bytes(data))
    if len(body) > 255:
        raise CodecError("packet too long", path="frame.length", value=len(body),
                         allowed="at most 255 stuffed body bytes")
    return bytes([START, STUFF, crc8(body) ^ STUFF_KEY, STUFF, len(body) ^ STUFF_KEY]) + body \
        + bytes([STOP])


def parse_frame(frame: bytes) -> tuple[int, int, bytes]:
    """Check one complete frame and return ``(packet number, command, data)``.

    Raises
    ------
    CodecError
        With ``kind`` FRAMING, BAD_HEADER, LENGTH, CRC, STUFFING or TOO_SHORT.
    """
    frame = bytes(frame)
    if len(frame) < 6 or frame[0] != START or frame[-1] != STOP:
        raise CodecError("not a frame (needs F0 … 0F and a 4-byte header)", path="frame",
                         value=frame[:8].hex(" "), allowed="F0 81 xx 81 xx body 0F",
                         kind=BadFrameKind.FRAMING)
    if frame[1] != STUFF or frame[3] != STUFF:
        raise CodecError("header markers must be 0x81", path="frame.header",
                         value=frame[1:5].hex(" "), allowed="81 xx 81 xx",
                         kind=BadFrameKind.BAD_HEADER)
    body = frame[5:-1]
    check_no_raw_controls(body)
    length = frame[4] ^ STUFF_KEY
    if len(body) != length:
        raise CodecError("length mismatch", path="frame.length", value=len(body),
                         allowed=f"{length} (declared)", kind=BadFrameKind.LENGTH)
    raw = checked_payload(body, frame[2] ^ STUFF_KEY, crc8(body), 2)
    return raw[0], raw[1], raw[2:]


# The protocol-independent steps live in _framing.FramedCodec; these are its entry points.
_CODEC = FramedCodec("ScienceMode 2", "sm2", _MESSAGES, _OWN, build_frame, parse_frame)
decode_message, encode, encode_packet, decode = _CODEC.entry_points()


class StreamDecoder(_StreamDecoder):
    """Incremental decoder for a received byte stream.

    ``feed`` returns complete :class:`Packet` objects and :class:`BadFrame` error items in
    arrival order; it never raises for bad input. A second start byte restarts the frame;
    length and checksum mismatches become ``BadFrame`` items (the device would answer
    such a packet with ``Result.TRANSFER_ERROR``).

    Examples
    --------
    >>> dec = StreamDecoder()
    >>> dec.feed(bytes.fromhex("F0 81 5C 81 57 01 04 0F"))
    [Packet(number=1, message=Watchdog())]
    """

    def __init__(self) -> None:
        super().__init__(2, MAX_FRAME, decode)
