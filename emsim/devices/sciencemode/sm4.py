"""ScienceMode 4 (Hasomed P24, "smpt") codec: frames, low-level, mid-level and general commands.

Written from the reference (``devices_and_safety.md`` §3), which summarises the P24 IFU
protocol chapter and Hasomed's smpt C library. Pure functions and frozen dataclasses; no I/O.

Frame (§3.3)::

    F0 | 81 LENmsb^55 | 81 LENlsb^55 | 81 CRCmsb^55 | 81 CRClsb^55 | stuffed(prefix + data) | 0F

* LEN is the whole frame length in bytes, start and stop included (12–1200).
* CRC is CRC-16/XMODEM (poly 0x1021, init 0) over the *stuffed* body, big-endian.
* The 2-byte prefix is ``pkt_no << 10 | cmd`` (6-bit packet number 0–63, 10-bit command),
  big-endian, and is stuffed with the data (packet number 60 gives a first byte 0xF0).
* Multi-byte fields are big-endian; acknowledgement data start with an unsigned result byte.

Mid-level channels are numbered 0–7 here, as in the C library (bit i of the enable mask is
channel i). Low-level commands address a channel by connector (0–1) and colour (0–3).

Notes on other implementations (their behaviour is *not* copied):

* The P24 IFU (Table 19) numbers Ml_get_current_data 037/038; the C library, science_mode_4
  and pysciencemode use 36/37, and so does this codec.
* science_mode_4 at commit 0d212de encodes the Ml_update period field as
  ``round(period_ms / 2)`` (2 ms resolution up to 131 s). The C library and the reference
  encode ``period_ms * 2`` (0.5 ms resolution, ``period_ms * 4`` with the double-accuracy
  bit); this codec follows the C library (golden vector: 20 ms → ``00 50``).
* pysciencemode refuses pulses whose charge does not balance ("is_pulse_symmetric"). The
  codec encodes any representable waveform, because charge balance is a safety rule
  (``emsim.safety``), not a protocol rule; :func:`biphasic_points` builds balanced pulses.
* The payloads of GeneralError (66) and UnknownCommand (67) are not given in the reference;
  they are decoded as a result byte (as science_mode_4 does) plus any extra bytes.
"""

from __future__ import annotations

import enum
import numbers
from dataclasses import dataclass
from typing import ClassVar

from emsim.devices.sciencemode._fields import (
    Message, Packet, RawMessage, check_bool, check_enum, check_int, check_step, check_tuple,
    expect_length, payload_error, set_field, where,
)
from emsim.devices.sciencemode._framing import (
    START, STOP, STUFF, STUFF_KEY, BadFrame, BadFrameKind, CodecError, StreamDecoder as _StreamDecoder,
    FramedCodec, check_no_raw_controls, checked_payload, crc16_xmodem, stuff,
)

__all__ = [
    "Command", "Result", "Measurement", "HighVoltage", "ChannelColour", "Connector",
    "Interpolation", "MlDataSelection", "MlChannelState", "StimStatus",
    "Point", "biphasic_points",
    "LlInit", "LlInitAck", "LlChannelConfig", "LlChannelConfigAck", "LlStop", "LlStopAck",
    "MlInit", "MlInitAck", "MlChannelConfig", "MlUpdate", "MlUpdateAck", "MlStop", "MlStopAck",
    "MlGetCurrentData", "MlGetCurrentDataAck", "GetStimStatus", "GetStimStatusAck",
    "GeneralError", "UnknownCommand", "RawMessage", "Packet", "BadFrame", "BadFrameKind",
    "CodecError",
    "encode", "encode_packet", "build_frame", "parse_frame", "decode", "decode_message",
    "StreamDecoder", "ACK_FOR",
    "MAX_PACKET_NUMBER", "MAX_COMMAND", "MAX_FRAME", "MIN_FRAME", "HEADER_SIZE", "MAX_POINTS",
    "MAX_POINT_DURATION_US", "MAX_CURRENT_MA", "CHANNEL_OVERHEAD_US",
]

MAX_PACKET_NUMBER = 63
MAX_COMMAND = 1023
MAX_FRAME = 1200
MIN_FRAME = 12
HEADER_SIZE = 9
MAX_POINTS = 16
MAX_POINT_DURATION_US = 4095
MAX_CURRENT_MA = 150.0           # protocol field; the C library's validity check uses 130 mA
CHANNEL_OVERHEAD_US = 60         # per pulse, in the C library's multiplexing check


class Command(enum.IntEnum):
    """smpt command numbers used by the P24 (low level, mid level, general)."""

    LL_INIT = 0
    LL_INIT_ACK = 1
    LL_CHANNEL_CONFIG = 2
    LL_CHANNEL_CONFIG_ACK = 3
    LL_STOP = 4
    LL_STOP_ACK = 5
    ML_INIT = 30
    ML_INIT_ACK = 31
    ML_UPDATE = 32
    ML_UPDATE_ACK = 33
    ML_STOP = 34
    ML_STOP_ACK = 35
    ML_GET_CURRENT_DATA = 36
    ML_GET_CURRENT_DATA_ACK = 37
    GET_VERSION_MAIN = 50
    GET_VERSION_MAIN_ACK = 51
    GET_DEVICE_ID = 52
    GET_DEVICE_ID_ACK = 53
    GET_BATTERY_STATUS = 54
    GET_BATTERY_STATUS_ACK = 55
    SET_POWER = 56
    SET_POWER_ACK = 57
    RESET = 58
    RESET_ACK = 59
    GET_VERSION_STIM = 60
    GET_VERSION_STIM_ACK = 61
    GET_STIM_STATUS = 62
    GET_STIM_STATUS_ACK = 63
    GET_MAIN_STATUS = 64
    GET_MAIN_STATUS_ACK = 65
    GENERAL_ERROR = 66
    UNKNOWN_COMMAND = 67
    GET_EXTENDED_VERSION = 68
    GET_EXTENDED_VERSION_ACK = 69


#: The acknowledgement command expected for each modelled host command.
ACK_FOR: dict[Command, Command] = {
    Command.LL_INIT: Command.LL_INIT_ACK,
    Command.LL_CHANNEL_CONFIG: Command.LL_CHANNEL_CONFIG_ACK,
    Command.LL_STOP: Command.LL_STOP_ACK,
    Command.ML_INIT: Command.ML_INIT_ACK,
    Command.ML_UPDATE: Command.ML_UPDATE_ACK,
    Command.ML_STOP: Command.ML_STOP_ACK,
    Command.ML_GET_CURRENT_DATA: Command.ML_GET_CURRENT_DATA_ACK,
    Command.GET_STIM_STATUS: Command.GET_STIM_STATUS_ACK,
}


class Result(enum.IntEnum):
    """Unsigned acknowledgement result codes (§3.4)."""

    OK = 0
    TRANSFER_ERROR = 1               # checksum or length mismatch
    PARAMETER_ERROR = 2
    PROTOCOL_VERSION_ERROR = 3
    UC_STIM_TIMEOUT_ERROR = 4
    EMG_TIMEOUT_ERROR = 5
    EMG_REGISTER_ERROR = 6
    NOT_INITIALIZED_ERROR = 7        # level not initialised, or another level active
    HV_ERROR = 8
    DEMUX_TIMEOUT_ERROR = 9
    ELECTRODE_ERROR = 10
    INVALID_COMMAND_ERROR = 11
    DEMUX_PARAMETER_ERROR = 12
    DEMUX_NOT_INITIALIZED_ERROR = 13
    DEMUX_TRANSFER_ERROR = 14
    DEMUX_UNKNOWN_ACK_ERROR = 15
    PULSE_TIMEOUT_ERROR = 16         # period too short for the pulse
    FUEL_GAUGE_ERROR = 17
    LIVE_SIGNAL_ERROR = 18
    FILE_TRANSMISSION_TIMEOUT = 19
    FILE_NOT_FOUND = 20
    BUSY = 21
    FILE_ERROR = 22
    FLASH_ERASE_ERROR = 23
    FLASH_WRITE_ERROR = 24
    UNKNOWN_CONTROLLER_ERROR = 25
    FIRMWARE_TOO_LARGE_ERROR = 26
    FUEL_GAUGE_NOT_PROGRAMMED = 27
    PULSE_LOW_CURRENT_ERROR = 28     # compliance voltage insufficient


class Measurement(enum.IntEnum):
    """Low-level measurement type (Ll_init bits 6–4)."""

    NONE = 0
    STIMULATION_CURRENT = 1
    STIMULATION_VOLTAGE = 2
    HIGH_VOLTAGE = 3


class HighVoltage(enum.IntEnum):
    """High-voltage level (Ll_init bits 3–1); DEFAULT is 150 V."""

    DEFAULT = 0
    OFF = 1
    V30 = 2
    V60 = 3
    V90 = 4
    V120 = 5
    V150 = 6


class ChannelColour(enum.IntEnum):
    """Low-level channel colour within a connector."""

    RED = 0
    BLUE = 1
    BLACK = 2
    WHITE = 3


class Connector(enum.IntEnum):
    """Low-level connector."""

    YELLOW = 0
    GREEN = 1


class Interpolation(enum.IntEnum):
    """Interpolation between waveform points (point bits 6–5)."""

    JUMP = 0
    LINEAR = 1                       # documented as not implemented


class MlDataSelection(enum.IntEnum):
    """What Ml_get_current_data asks for."""

    STIMULATION = 2                  # stimulation state + electrode errors of channels 0–3
    STIMULATION_EIGHT_CHANNELS = 3   # stimulation state + electrode errors of channels 0–7
    CHANNELS = 4                     # per-channel active flag and error state, channels 0–7


class MlChannelState(enum.IntEnum):
    """Per-channel state nibble in the Ml_get_current_data acknowledgement (selection 4)."""

    OK = 0
    ELECTRODE_ERROR = 1
    PULSE_TIMEOUT = 2
    LOW_CURRENT = 3


class StimStatus(enum.IntEnum):
    """Which stimulation level is active (GetStimStatusAck)."""

    UNINITIALIZED = 0
    LL_INITIALIZED = 1
    ML_INITIALIZED = 2
    ML_RUNNING = 3


# --------------------------------------------------------------------------- waveform points


@dataclass(frozen=True)
class Point:
    """One waveform point: hold ``current_ma`` for ``duration_us``.

    Sent as one big-endian 32-bit word: duration in bits 31–20, current code
    ``2·I + 300`` in bits 19–10, interpolation in bits 6–5, other bits zero.

    Attributes
    ----------
    duration_us : int
        0–4095 µs (the device raises < 10 µs to 10 µs).
    current_ma : float
        −150…+150 mA in 0.5 mA steps.
    interpolation : Interpolation
        Towards the next point; only ``JUMP`` is implemented by the device.
    """

    duration_us: int
    current_ma: float
    interpolation: Interpolation = Interpolation.JUMP

    def __post_init__(self) -> None:
        check_int(self, "duration_us", 0, MAX_POINT_DURATION_US, unit="us")
        check_step(self, "current_ma", -MAX_CURRENT_MA, MAX_CURRENT_MA, 0.5, unit="mA")
        check_enum(self, "interpolation", Interpolation)

    @property
    def current_code(self) -> int:
        """Current field value ``2·I + 300`` (0–600)."""
        return int(round(self.current_ma * 2)) + 300

    def to_bytes(self) -> bytes:
        """The 4-byte wire form."""
        word = (self.duration_us << 20) | (self.current_code << 10) | (self.interpolation << 5)
        return word.to_bytes(4, "big")

    @classmethod
    def from_bytes(cls, data: bytes) -> "Point":
        """Decode 4 bytes; reserved bits are ignored as the device does."""
        word = int.from_bytes(data[:4], "big")
        code = (word >> 10) & 0x3FF
        if code > 600:
            raise CodecError("current code out of range", path="Point.current_code", value=code,
                             allowed="0..600 (-150..+150 mA)", kind=BadFrameKind.PAYLOAD)
        return cls(word >> 20, (code - 300) / 2, (word >> 5) & 0x3)


def biphasic_points(pulse_width_us: int, current_ma: float,
                    interphase_us: int = 100) -> tuple[Point, ...]:
    """A charge-balanced biphasic rectangular pulse: ``+I``, pause, ``−I``.

    Parameters
    ----------
    pulse_width_us : int
        Width of each phase, µs.
    current_ma : float
        Amplitude of the first (positive) phase, mA.
    interphase_us : int
        Pause between the phases; 0 leaves the pause out.
    """
    pos = Point(pulse_width_us, current_ma)
    neg = Point(pulse_width_us, -current_ma)
    return (pos, Point(interphase_us, 0.0), neg) if interphase_us else (pos, neg)


# --------------------------------------------------------------------------- messages


def _result_from(cls: type, b: int) -> Result:
    try:
        return Result(b)
    except ValueError:
        raise CodecError("unknown result code", path=f"{cls.__name__}.result", value=b,
                         allowed=f"0..{max(Result)}", kind=BadFrameKind.PAYLOAD) from None


@dataclass(frozen=True)
class _ResultAck(Message):
    """An acknowledgement that carries only a result byte."""

    result: Result = Result.OK

    def __post_init__(self) -> None:
        check_enum(self, "result", Result)

    @property
    def ok(self) -> bool:
        """True if the command was accepted."""
        return self.result == Result.OK

    def payload(self) -> bytes:
        return bytes([self.result])

    @classmethod
    def from_payload(cls, data: bytes) -> "_ResultAck":
        expect_length(cls, data, 1)
        return cls(_result_from(cls, data[0]))


@dataclass(frozen=True)
class LlInit(Message):
    """Host → device: enter low level and switch the high voltage on (~40 ms).

    Attributes
    ----------
    high_voltage : HighVoltage
        Output stage voltage (DEFAULT = 150 V).
    measurement : Measurement
        Measurement returned with each Ll_channel_config acknowledgement.
    """

    command: ClassVar[int] = Command.LL_INIT
    high_voltage: HighVoltage = HighVoltage.DEFAULT
    measurement: Measurement = Measurement.NONE

    def __post_init__(self) -> None:
        check_enum(self, "high_voltage", HighVoltage)
        check_enum(self, "measurement", Measurement)

    def payload(self) -> bytes:
        return bytes([(self.measurement << 4) | (self.high_voltage << 1)])

    @classmethod
    def from_payload(cls, data: bytes) -> "LlInit":
        expect_length(cls, data, 1)
        # bits 7 and 0 are unused; the C library ignores them, so do we
        return cls((data[0] >> 1) & 0x7, (data[0] >> 4) & 0x7)


@dataclass(frozen=True)
class LlInitAck(_ResultAck):
    """Device → host answer to :class:`LlInit`."""

    command: ClassVar[int] = Command.LL_INIT_ACK


@dataclass(frozen=True)
class LlChannelConfig(Message):
    """Host → device: one low-level pulse on one channel (the device buffers up to 10).

    Attributes
    ----------
    points : tuple of Point
        1–16 points when enabled, none when disabled (the device then sends no pulse).
    channel : ChannelColour
        Channel colour 0–3.
    connector : Connector
        Connector 0–1.
    enable : bool
        Whether to execute the points.
    """

    command: ClassVar[int] = Command.LL_CHANNEL_CONFIG
    points: tuple[Point, ...] = ()
    channel: ChannelColour = ChannelColour.RED
    connector: Connector = Connector.YELLOW
    enable: bool = True

    def __post_init__(self) -> None:
        check_bool(self, "enable")
        if self.enable:
            check_tuple(self, "points", Point, 1, MAX_POINTS)
        else:
            check_tuple(self, "points", Point, 0, 0)
        check_enum(self, "channel", ChannelColour)
        check_enum(self, "connector", Connector)

    def payload(self) -> bytes:
        n = max(len(self.points) - 1, 0)
        head = (self.enable << 7) | (self.channel << 5) | (self.connector << 4) | n
        return bytes([head]) + b"".join(p.to_bytes() for p in self.points)

    @classmethod
    def from_payload(cls, data: bytes) -> "LlChannelConfig":
        if not data:
            raise payload_error(cls, "missing configuration byte", data, "1 + 4*n data bytes")
        head = data[0]
        enable = bool(head >> 7)
        channel, connector = (head >> 5) & 0x3, (head >> 4) & 0x1
        if not enable:
            # the device ignores the point count and expects no points when disabled
            expect_length(cls, data, 1)
            return cls((), channel, connector, False)
        n = (head & 0xF) + 1
        expect_length(cls, data, 1 + 4 * n)
        points = tuple(Point.from_bytes(data[1 + 4 * i:5 + 4 * i]) for i in range(n))
        return cls(points, channel, connector, True)


@dataclass(frozen=True)
class LlChannelConfigAck(Message):
    """Device → host, after the pulse of an :class:`LlChannelConfig` was executed.

    Attributes
    ----------
    result : Result
        ``OK``, or for example ``ELECTRODE_ERROR``.
    channel : ChannelColour
    connector : Connector
    measurement : Measurement
        Echo of the measurement type chosen in :class:`LlInit`.
    sampling_time_us : int or None
        Sample interval of ``samples``; present exactly when ``measurement`` is not NONE.
    samples : tuple of int
        128 raw 16-bit samples when ``measurement`` is not NONE (the C library says they
        are to be multiplied by 100), otherwise empty.
    """

    command: ClassVar[int] = Command.LL_CHANNEL_CONFIG_ACK
    result: Result = Result.OK
    channel: ChannelColour = ChannelColour.RED
    connector: Connector = Connector.YELLOW
    measurement: Measurement = Measurement.NONE
    sampling_time_us: int | None = None
    samples: tuple[int, ...] = ()

    N_SAMPLES: ClassVar[int] = 128

    def __post_init__(self) -> None:
        check_enum(self, "result", Result)
        check_enum(self, "channel", ChannelColour)
        check_enum(self, "connector", Connector)
        check_enum(self, "measurement", Measurement)
        if self.measurement == Measurement.NONE:
            if self.sampling_time_us is not None or tuple(self.samples):
                raise CodecError("no samples without a measurement",
                                 path=where(self, "samples"), value=len(tuple(self.samples)),
                                 allowed="no sampling_time_us and no samples")
            set_field(self, "samples", ())
            return
        check_int(self, "sampling_time_us", 0, 0xFFFF, unit="us")
        samples = tuple(self.samples)
        if len(samples) != self.N_SAMPLES:
            raise CodecError("wrong number of samples", path=where(self, "samples"),
                             value=len(samples), allowed=f"exactly {self.N_SAMPLES}")
        for i, s in enumerate(samples):
            if isinstance(s, bool) or not isinstance(s, numbers.Integral) or not 0 <= s <= 0xFFFF:
                raise CodecError("sample out of range", path=f"{where(self, 'samples')}[{i}]",
                                 value=s, allowed="0..65535", has_value=True)
        set_field(self, "samples", tuple(int(s) for s in samples))

    @property
    def ok(self) -> bool:
        """True if the pulse was delivered without error."""
        return self.result == Result.OK

    def payload(self) -> bytes:
        out = bytearray([self.result, (self.connector << 4) | self.channel, self.measurement])
        if self.measurement != Measurement.NONE:
            out += self.sampling_time_us.to_bytes(2, "big")
            for s in self.samples:
                out += s.to_bytes(2, "big")
        return bytes(out)

    @classmethod
    def from_payload(cls, data: bytes) -> "LlChannelConfigAck":
        if len(data) < 3:
            raise payload_error(cls, "too few data bytes", data, "3 or 261 data bytes")
        result = _result_from(cls, data[0])
        connector, channel, measurement = data[1] >> 4, data[1] & 0xF, data[2]
        if measurement == Measurement.NONE:
            expect_length(cls, data, 3)
            return cls(result, channel, connector, measurement)
        expect_length(cls, data, 5 + 2 * cls.N_SAMPLES)
        samples = tuple(int.from_bytes(data[5 + 2 * i:7 + 2 * i], "big")
                        for i in range(cls.N_SAMPLES))
        return cls(result, channel, connector, measurement,
                   int.from_bytes(data[3:5], "big"), samples)


@dataclass(frozen=True)
class LlStop(Message):
    """Host → device: leave low level, high voltage off."""

    command: ClassVar[int] = Command.LL_STOP


@dataclass(frozen=True)
class LlStopAck(_ResultAck):
    """Device → host answer to :class:`LlStop`."""

    command: ClassVar[int] = Command.LL_STOP_ACK


@dataclass(frozen=True)
class MlInit(Message):
    """Host → device: enter mid level, high voltage on (2 × 40 ms).

    Attributes
    ----------
    stop_all_channels_on_error : bool
        Stop every channel when one fails (True, the safer default) or only the failing one.
    """

    command: ClassVar[int] = Command.ML_INIT
    stop_all_channels_on_error: bool = True

    def __post_init__(self) -> None:
        check_bool(self, "stop_all_channels_on_error")

    def payload(self) -> bytes:
        return bytes([int(self.stop_all_channels_on_error)])

    @classmethod
    def from_payload(cls, data: bytes) -> "MlInit":
        expect_length(cls, data, 1)
        return cls(bool(data[0] & 0x1))  # the C library reads bit 0 only


@dataclass(frozen=True)
class MlInitAck(_ResultAck):
    """Device → host answer to :class:`MlInit`."""

    command: ClassVar[int] = Command.ML_INIT_ACK


@dataclass(frozen=True)
class MlChannelConfig:
    """One enabled channel in :class:`MlUpdate`: the device repeats the waveform every period.

    Attributes
    ----------
    channel : int
        Mid-level channel 0–7.
    period_ms : float
        Pulse period: 0.5–16383 ms in 0.5 ms steps, or with ``double_period_accuracy``
        0.25–8191.5 ms in 0.25 ms steps.
    points : tuple of Point
        1–16 waveform points.
    ramp : int
        0–15 pulses of linearly rising current after the channel is enabled.
    double_period_accuracy : bool
        Selects the 0.25 ms period resolution.
    """

    channel: int
    period_ms: float
    points: tuple[Point, ...]
    ramp: int = 0
    double_period_accuracy: bool = False

    def __post_init__(self) -> None:
        check_int(self, "channel", 0, 7)
        check_bool(self, "double_period_accuracy")
        if self.double_period_accuracy:
            check_step(self, "period_ms", 0.25, 8191.5, 0.25, unit="ms")
        else:
            check_step(self, "period_ms", 0.5, 16383.0, 0.5, unit="ms")
        check_tuple(self, "points", Point, 1, MAX_POINTS)
        check_int(self, "ramp", 0, 15, unit="pulses")

    @property
    def period_code(self) -> int:
        """15-bit period field: period·2 (or period·4 with double accuracy)."""
        return int(round(self.period_ms * (4 if self.double_period_accuracy else 2)))

    @property
    def frequency_hz(self) -> float:
        """Pulse frequency 1000 / period."""
        return 1000.0 / self.period_ms

    @property
    def pulse_duration_us(self) -> int:
        """Sum of the point durations."""
        return sum(p.duration_us for p in self.points)

    def to_bytes(self) -> bytes:
        """Wire form: count/ramp byte, period word, points."""
        word = (self.period_code << 1) | int(self.double_period_accuracy)
        return (bytes([((len(self.points) - 1) << 4) | self.ramp]) + word.to_bytes(2, "big")
                + b"".join(p.to_bytes() for p in self.points))


@dataclass(frozen=True)
class MlUpdate(Message):
    """Host → device: start or update mid-level stimulation.

    Channels not listed are disabled. Stimulation pauses by itself if neither this nor
    :class:`MlGetCurrentData` arrives for 2 s.

    Attributes
    ----------
    channels : tuple of MlChannelConfig
        0–8 configurations with distinct channel numbers; stored in ascending channel order.
    """

    command: ClassVar[int] = Command.ML_UPDATE
    channels: tuple[MlChannelConfig, ...] = ()

    def __post_init__(self) -> None:
        items = check_tuple(self, "channels", MlChannelConfig, 0, 8)
        numbers_ = [c.channel for c in items]
        if len(set(numbers_)) != len(numbers_):
            raise CodecError("a channel is configured twice", path=where(self, "channels"),
                             value=sorted(numbers_), allowed="distinct channels 0..7")
        set_field(self, "channels", tuple(sorted(items, key=lambda c: c.channel)))

    @property
    def time_load(self) -> float:
        """Σ over channels of (pulse duration + 60 µs) / period; the device needs < 1.

        This is the C library's multiplexing check; the codec reports it but does not enforce
        it (that is the safety layer's job).
        """
        return sum((c.pulse_duration_us + CHANNEL_OVERHEAD_US) / (c.period_ms * 1000.0)
                   for c in self.channels)

    def payload(self) -> bytes:
        mask = 0
        for c in self.channels:
            mask |= 1 << c.channel
        return bytes([mask]) + b"".join(c.to_bytes() for c in self.channels)

    @classmethod
    def from_payload(cls, data: bytes) -> "MlUpdate":
        if not data:
            raise payload_error(cls, "missing enable mask", data, "enable mask + channel blocks")
        configs = []
        i = 1
        for ch in range(8):
            if not data[0] >> ch & 1:
                continue
            if i + 3 > len(data):
                raise payload_error(cls, f"data end inside channel {ch}", data,
                                    "3 + 4*n bytes per enabled channel")
            n, ramp = (data[i] >> 4) + 1, data[i] & 0xF
            word = int.from_bytes(data[i + 1:i + 3], "big")
            fine = bool(word & 1)
            period = (word >> 1) / (4 if fine else 2)
            i += 3
            if i + 4 * n > len(data):
                raise payload_error(cls, f"data end inside the points of channel {ch}", data,
                                    "3 + 4*n bytes per enabled channel")
            points = tuple(Point.from_bytes(data[i + 4 * k:i + 4 * k + 4]) for k in range(n))
            i += 4 * n
            configs.append(MlChannelConfig(ch, period, points, ramp, fine))
        if i != len(data):
            raise payload_error(cls, f"{len(data) - i} extra data byte(s)", data,
                                "exactly the enabled channel blocks")
        return cls(tuple(configs))


@dataclass(frozen=True)
class MlUpdateAck(_ResultAck):
    """Device → host answer to :class:`MlUpdate`."""

    command: ClassVar[int] = Command.ML_UPDATE_ACK


@dataclass(frozen=True)
class MlStop(Message):
    """Host → device: stop mid-level stimulation, high voltage off (40 ms)."""

    command: ClassVar[int] = Command.ML_STOP


@dataclass(frozen=True)
class MlStopAck(_ResultAck):
    """Device → host answer to :class:`MlStop`."""

    command: ClassVar[int] = Command.ML_STOP_ACK


@dataclass(frozen=True)
class MlGetCurrentData(Message):
    """Host → device: status poll and mid-level keep-alive (send every ≤ 0.5–1 s).

    Attributes
    ----------
    selection : MlDataSelection
        ``CHANNELS`` (4) returns every channel's error state and is the recommended poll.
    """

    command: ClassVar[int] = Command.ML_GET_CURRENT_DATA
    selection: MlDataSelection = MlDataSelection.CHANNELS

    def __post_init__(self) -> None:
        check_enum(self, "selection", MlDataSelection)

    def payload(self) -> bytes:
        return bytes([self.selection])

    @classmethod
    def from_payload(cls, data: bytes) -> "MlGetCurrentData":
        expect_length(cls, data, 1)
        return cls(data[0])


@dataclass(frozen=True)
class MlGetCurrentDataAck(Message):
    """Device → host answer to :class:`MlGetCurrentData`; the layout depends on the selection.

    Attributes
    ----------
    result : Result
    selection : MlDataSelection
    stimulation_running : bool or None
        Selections 2 and 3: whether stimulation is running (bit 4 of each state byte).
    electrode_errors : tuple of bool or None
        Selection 2: channels 0–3; selection 3: channels 0–7 (bits 0–3 of each state byte).
    channels_active : tuple of bool or None
        Selection 4: per-channel stimulation flag, channels 0–7 (one bitmask byte).
    channel_states : tuple of MlChannelState or None
        Selection 4: per-channel state, channels 0–7 (four bytes of nibbles, the even
        channel in the low nibble).

    Use :meth:`for_stimulation` or :meth:`for_channels` to build one.
    """

    command: ClassVar[int] = Command.ML_GET_CURRENT_DATA_ACK
    result: Result = Result.OK
    selection: MlDataSelection = MlDataSelection.CHANNELS
    stimulation_running: bool | None = None
    electrode_errors: tuple[bool, ...] | None = None
    channels_active: tuple[bool, ...] | None = None
    channel_states: tuple[MlChannelState, ...] | None = None

    def __post_init__(self) -> None:
        check_enum(self, "result", Result)
        sel = check_enum(self, "selection", MlDataSelection)
        if sel == MlDataSelection.CHANNELS:
            self._require_none("stimulation_running", "electrode_errors")
            self._bools("channels_active", 8)
            states = self._sequence("channel_states", 8)
            try:
                set_field(self, "channel_states", tuple(MlChannelState(s) for s in states))
            except (ValueError, TypeError):
                raise CodecError("invalid channel state", path=where(self, "channel_states"),
                                 value=states, allowed="MlChannelState values 0..3") from None
        else:
            self._require_none("channels_active", "channel_states")
            check_bool(self, "stimulation_running")
            self._bools("electrode_errors", 4 if sel == MlDataSelection.STIMULATION else 8)

    def _require_none(self, *names: str) -> None:
        for name in names:
            if getattr(self, name) is not None:
                raise CodecError(f"{name} is not part of selection {self.selection.name}",
                                 path=where(self, name), value=getattr(self, name),
                                 allowed="None")

    def _sequence(self, name: str, n: int) -> tuple:
        value = getattr(self, name)
        try:
            items = tuple(value)
        except TypeError:
            items = None
        if items is None or len(items) != n:
            raise CodecError(f"{name} needs {n} entries", path=where(self, name), value=value,
                             allowed=f"{n} entries", has_value=True)
        return items

    def _bools(self, name: str, n: int) -> None:
        items = self._sequence(name, n)
        if not all(isinstance(x, (bool, numbers.Integral)) and x in (0, 1) for x in items):
            raise CodecError(f"{name} must hold booleans", path=where(self, name), value=items,
                             allowed="True/False")
        set_field(self, name, tuple(bool(x) for x in items))

    @classmethod
    def for_stimulation(cls, running: bool, electrode_errors, result: Result = Result.OK
                        ) -> "MlGetCurrentDataAck":
        """Selection 2 (4 error flags) or 3 (8 error flags), chosen by the flag count."""
        errors = tuple(electrode_errors)
        sel = MlDataSelection.STIMULATION if len(errors) == 4 \
            else MlDataSelection.STIMULATION_EIGHT_CHANNELS
        return cls(result, sel, running, errors)

    @classmethod
    def for_channels(cls, channels_active, channel_states, result: Result = Result.OK
                     ) -> "MlGetCurrentDataAck":
        """Selection 4: per-channel active flags and states."""
        return cls(result, MlDataSelection.CHANNELS, None, None, tuple(channels_active),
                   tuple(channel_states))

    @property
    def channel_errors(self) -> dict[int, str]:
        """Channels (0–7) reporting a problem, with the problem's name."""
        if self.selection == MlDataSelection.CHANNELS:
            return {i: s.name for i, s in enumerate(self.channel_states) if s != MlChannelState.OK}
        return {i: "ELECTRODE_ERROR" for i, e in enumerate(self.electrode_errors) if e}

    def payload(self) -> bytes:
        out = bytearray([self.result, self.selection])
        if self.selection == MlDataSelection.CHANNELS:
            mask = sum(1 << i for i, a in enumerate(self.channels_active) if a)
            out.append(mask)
            s = self.channel_states
            out += bytes((s[2 * k + 1] << 4) | s[2 * k] for k in range(4))
        else:
            run = int(self.stimulation_running) << 4
            e = self.electrode_errors
            for k in range(0, len(e), 4):
                out.append(run | sum(1 << i for i in range(4) if e[k + i]))
        return bytes(out)

    @classmethod
    def from_payload(cls, data: bytes) -> "MlGetCurrentDataAck":
        if len(data) < 2:
            raise payload_error(cls, "too few data bytes", data, "result, selection, data")
        result = _result_from(cls, data[0])
        try:
            sel = MlDataSelection(data[1])
        except ValueError:
            raise CodecError("unknown data selection", path=f"{cls.__name__}.selection",
                             value=data[1], allowed="2, 3, 4", kind=BadFrameKind.PAYLOAD) from None
        if sel == MlDataSelection.CHANNELS:
            expect_length(cls, data, 7)
            active = tuple(bool(data[2] >> i & 1) for i in range(8))
            states = []
            for k in range(4):
                states += [data[3 + k] & 0xF, data[3 + k] >> 4]
            return cls.for_channels(active, states, result)
        n_bytes = 1 if sel == MlDataSelection.STIMULATION else 2
        expect_length(cls, data, 2 + n_bytes)
        # the C library reads the running flag from the first state byte only
        running = bool(data[2] >> 4 & 1)
        errors = tuple(bool(data[2 + k // 4] >> (k % 4) & 1) for k in range(4 * n_bytes))
        return cls(result, sel, running, errors)


@dataclass(frozen=True)
class GetStimStatus(Message):
    """Host → device: ask which stimulation level is active (useful when connecting)."""

    command: ClassVar[int] = Command.GET_STIM_STATUS


@dataclass(frozen=True)
class GetStimStatusAck(Message):
    """Device → host answer to :class:`GetStimStatus` (layout from the smpt C library).

    Attributes
    ----------
    result : Result
    stim_status : StimStatus
    high_voltage : int
        Raw high-voltage byte: the C library types it as the high-voltage level,
        science_mode_4 reads it as on/off, so it is kept undecoded (0–255).
    """

    command: ClassVar[int] = Command.GET_STIM_STATUS_ACK
    result: Result = Result.OK
    stim_status: StimStatus = StimStatus.UNINITIALIZED
    high_voltage: int = 0

    def __post_init__(self) -> None:
        check_enum(self, "result", Result)
        check_enum(self, "stim_status", StimStatus)
        check_int(self, "high_voltage", 0, 255)

    def payload(self) -> bytes:
        return bytes([self.result, self.stim_status, self.high_voltage])

    @classmethod
    def from_payload(cls, data: bytes) -> "GetStimStatusAck":
        expect_length(cls, data, 3)
        return cls(_result_from(cls, data[0]), data[1], data[2])


@dataclass(frozen=True)
class _DeviceNotice(Message):
    """Unsolicited device report: an optional result byte plus any further bytes."""

    result: Result | None = None
    extra: bytes = b""

    def __post_init__(self) -> None:
        if self.result is not None:
            check_enum(self, "result", Result)
        if not isinstance(self.extra, (bytes, bytearray, memoryview)):
            raise CodecError("extra must be bytes", path=where(self, "extra"), value=self.extra,
                             allowed="bytes", has_value=True)
        set_field(self, "extra", bytes(self.extra))
        if self.result is None and self.extra:
            raise CodecError("extra bytes need a result byte first", path=where(self, "extra"),
                             value=self.extra.hex(" "), allowed="empty when result is None")

    def payload(self) -> bytes:
        return b"" if self.result is None else bytes([self.result]) + self.extra

    @classmethod
    def from_payload(cls, data: bytes) -> "_DeviceNotice":
        if not data:
            return cls()
        return cls(_result_from(cls, data[0]), bytes(data[1:]))


@dataclass(frozen=True)
class GeneralError(_DeviceNotice):
    """Device → host, unsolicited: a general error (cmd 66). A driver stops on it."""

    command: ClassVar[int] = Command.GENERAL_ERROR


@dataclass(frozen=True)
class UnknownCommand(_DeviceNotice):
    """Device → host: the last command number was not recognised (cmd 67)."""

    command: ClassVar[int] = Command.UNKNOWN_COMMAND


_MESSAGES: dict[int, type[Message]] = {
    cls.command: cls for cls in (
        LlInit, LlInitAck, LlChannelConfig, LlChannelConfigAck, LlStop, LlStopAck, MlInit,
        MlInitAck, MlUpdate, MlUpdateAck, MlStop, MlStopAck, MlGetCurrentData,
        MlGetCurrentDataAck, GetStimStatus, GetStimStatusAck, GeneralError, UnknownCommand)
}

_OWN = tuple(_MESSAGES.values()) + (RawMessage,)

# --------------------------------------------------------------------------- frames


def _check_range(value: int, name: str, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= value <= hi:
        raise CodecError(f"{name} out of range", path=name, value=value, allowed=f"0..{hi}",
                         has_value=True)
    return int(value)


def build_frame(number: int, command: int, data: bytes = b"") -> bytes:
    """Frame a packet: header, stuffed prefix and data, stop byte.

    Parameters
    ----------
    number : int
        Packet number 0–63.
    command : int
        Command number 0–1023.
    data : bytes
        Unstuffed command data.

    Raises
    ------
    CodecError
        If a value is out of range or the frame would exceed 1200 bytes.
    """
    number = _check_range(number, "Packet.number", MAX_PACKET_NUMBER)
    command = _check_range(command, "command", MAX_COMMAND)
    body = stuff(bytes([(number << 2) | (command >> 8), command & 0xFF]) + bytes(data))
    n = HEADER_SIZE + len(body) + 1
    if n > MAX_FRAME:
        raise CodecError("packet too long", path="frame.length", value=n,
                         allowed=f"at most {MAX_FRAME} bytes")
    c = crc16_xmodem(body)
    return bytes([START, STUFF, (n >> 8) ^ STUFF_KEY, STUFF, (n & 0xFF) ^ STUFF_KEY,
                  STUFF, (c >> 8) ^ STUFF_KEY, STUFF, (c & 0xFF) ^ STUFF_KEY]) + body \
        + bytes([STOP])


def parse_frame(frame: bytes) -> tuple[int, int, bytes]:
    """Check one complete frame and return ``(packet number, command, data)``.

    Raises
    ------
    CodecError
        With ``kind`` FRAMING, BAD_HEADER, LENGTH, CRC, STUFFING or TOO_SHORT.
    """
    frame = bytes(frame)
    if len(frame) < HEADER_SIZE + 1 or frame[0] != START or frame[-1] != STOP:
        raise CodecError("not a frame (needs F0 … 0F and an 8-byte header)", path="frame",
                         value=frame[:12].hex(" "), allowed="F0 81 xx 81 xx 81 xx 81 xx body 0F",
                         kind=BadFrameKind.FRAMING)
    if any(frame[i] != STUFF for i in (1, 3, 5, 7)):
        raise CodecError("header markers must be 0x81", path="frame.header",
                         value=frame[1:9].hex(" "), allowed="81 xx 81 xx 81 xx 81 xx",
                         kind=BadFrameKind.BAD_HEADER)
    body = frame[HEADER_SIZE:-1]
    check_no_raw_controls(body)
    length = ((frame[2] ^ STUFF_KEY) << 8) | (frame[4] ^ STUFF_KEY)
    if len(frame) != length:
        raise CodecError("length mismatch", path="frame.length", value=len(frame),
                         allowed=f"{length} (declared)", kind=BadFrameKind.LENGTH)
    crc = ((frame[6] ^ STUFF_KEY) << 8) | (frame[8] ^ STUFF_KEY)
    raw = checked_payload(body, crc, crc16_xmodem(body), 4)
    return raw[0] >> 2, ((raw[0] & 0x3) << 8) | raw[1], raw[2:]


# The protocol-independent steps live in _framing.FramedCodec; these are its entry points.
_CODEC = FramedCodec("ScienceMode 4", "sm4", _MESSAGES, _OWN, build_frame, parse_frame)
decode_message, encode, encode_packet, decode = _CODEC.entry_points()


class StreamDecoder(_StreamDecoder):
    """Incremental decoder for a received byte stream.

    ``feed`` returns complete :class:`Packet` objects and :class:`BadFrame` error items in
    arrival order and never raises for bad input.

    Examples
    --------
    >>> dec = StreamDecoder()
    >>> dec.feed(bytes.fromhex("F0 81 55 81 58 81 23 81 E1 10 21 00 0F"))
    [Packet(number=4, message=MlUpdateAck(result=<Result.OK: 0>))]
    """

    def __init__(self) -> None:
        super().__init__(4, MAX_FRAME, decode)
