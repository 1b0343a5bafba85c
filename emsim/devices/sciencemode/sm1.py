"""ScienceMode 1 (Hasomed RehaStim 1) codec: the four bit-packed commands and the 1-byte ack.

Written from *ScienceMode – RehaStim Stimulation Device, Description and Protocol* (2009) as
summarised in the reference (``devices_and_safety.md`` §2). There are no start or stop bytes:
the first byte of a command has bit 7 set, every following byte has bit 7 clear, a 2-bit
Ident in bits 6–5 of the first byte selects the command, and a small additive checksum is
embedded in the first byte.

==========================  =====  ==================================================  ======
Command                     Ident  Checksum                                            Bytes
==========================  =====  ==================================================  ======
ChannelListModeInit         0      (N_Factor + Channel_Stim + Channel_Lf + Group_Time  6
                                   + Main_Time) mod 8
ChannelListModeUpdate       1      Σ (Mode + Pulse_Width + Pulse_Current) mod 32       1 + 3n
ChannelListModeStop         2      0                                                   1
SinglePulse                 3      (Channel_Number + Pulse_Width + Pulse_Current)      4
                                   mod 32
==========================  =====  ==================================================  ======

An update carries no channel numbers and no count: its length follows from the number of
active channels of the last initialisation, which :class:`StreamDecoder` tracks (as the
device does). Channel numbers here are 1–8; SinglePulse sends them as 0–7.

The PDF's worked examples contain two arithmetic slips in the prose (a "51" for 55 in a
single-pulse sum, and an update checksum given as 28 where the bytes encode 27); the bytes
in the PDF are right and are the golden vectors of the tests.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from emsim.devices.sciencemode._fields import (
    Message, PulseMode, channels_of, check_bool, check_channels, check_enum, check_int,
    check_tuple, mask_of,
)
from emsim.devices.sciencemode._framing import BadFrame, BadFrameKind, CodecError

__all__ = [
    "Ident", "PulseMode", "ChannelListModeInit", "ChannelSettings", "ChannelListModeUpdate",
    "ChannelListModeStop", "SinglePulse", "Ack", "encode", "decode", "encode_ack", "decode_ack",
    "StreamDecoder", "BadFrame", "BadFrameKind", "CodecError", "main_time_ms", "group_time_ms",
    "MAX_CURRENT_MA", "MAX_PULSE_WIDTH_US",
]

MAX_CURRENT_MA = 127        # 7-bit field; the device itself delivers 0-126 mA in 2 mA steps
MAX_PULSE_WIDTH_US = 500    # 9-bit field, protocol range 0-500 us


class Ident(enum.IntEnum):
    """Command selector in bits 6–5 of the first byte (and bits 7–6 of the ack)."""

    INIT = 0
    UPDATE = 1
    STOP = 2
    SINGLE_PULSE = 3


def main_time_ms(code: int) -> float:
    """Main interval t1 = code·0.5 + 1 ms."""
    return code * 0.5 + 1.0


def group_time_ms(code: int) -> float:
    """Group interval t2 = code·0.5 + 1.5 ms."""
    return code * 0.5 + 1.5


def _bad(kind: BadFrameKind, message: str, data: bytes, allowed: str) -> CodecError:
    return CodecError(message, path="sm1.command", value=bytes(data).hex(" "), allowed=allowed,
                      kind=kind, has_value=True)


@dataclass(frozen=True)
class ChannelListModeInit(Message):
    """Configure channel-list mode (6 bytes).

    Attributes
    ----------
    active_channels : frozenset of int
        Channels 1–8 (Channel_Stim).
    main_time_code : int
        0–2047; t1 = code·0.5 + 1 ms. The device needs 3–1023.5 ms.
    group_time_code : int
        0–31; t2 = code·0.5 + 1.5 ms. The device needs 3–16 ms.
    low_frequency_channels : frozenset of int
        Channels 1–8 (Channel_Lf).
    low_frequency_factor : int
        0–7 (N_Factor).
    """

    command = Ident.INIT
    active_channels: frozenset[int] = frozenset()
    main_time_code: int = 0
    group_time_code: int = 0
    low_frequency_channels: frozenset[int] = frozenset()
    low_frequency_factor: int = 0

    def __post_init__(self) -> None:
        check_channels(self, "active_channels", 1, 8)
        check_int(self, "main_time_code", 0, 2047)
        check_int(self, "group_time_code", 0, 31)
        check_channels(self, "low_frequency_channels", 1, 8)
        check_int(self, "low_frequency_factor", 0, 7)

    @property
    def main_time_ms(self) -> float:
        """t1 in ms."""
        return main_time_ms(self.main_time_code)

    @property
    def group_time_ms(self) -> float:
        """t2 in ms."""
        return group_time_ms(self.group_time_code)

    def to_bytes(self) -> bytes:
        """The 6-byte wire form."""
        nf, gt, mt = self.low_frequency_factor, self.group_time_code, self.main_time_code
        cs, lf = mask_of(self.active_channels, 1), mask_of(self.low_frequency_channels, 1)
        chk = (nf + cs + lf + gt + mt) % 8
        return bytes([
            0x80 | (Ident.INIT << 5) | (chk << 2) | (nf >> 1),
            ((nf & 1) << 6) | (cs >> 2),
            ((cs & 0x3) << 5) | (lf >> 3),
            ((lf & 0x7) << 4) | (gt >> 3),
            ((gt & 0x7) << 4) | (mt >> 7),
            mt & 0x7F,
        ])

    @classmethod
    def from_bytes(cls, data: bytes) -> "ChannelListModeInit":
        """Decode 6 bytes; raises :class:`CodecError` on a checksum mismatch."""
        b = data
        nf = ((b[0] & 0x3) << 1) | (b[1] >> 6 & 1)
        cs = ((b[1] & 0x3F) << 2) | (b[2] >> 5 & 0x3)
        lf = ((b[2] & 0x1F) << 3) | (b[3] >> 4 & 0x7)
        gt = ((b[3] & 0x3) << 3) | (b[4] >> 4 & 0x7)
        mt = ((b[4] & 0xF) << 7) | (b[5] & 0x7F)
        if (b[0] >> 2 & 0x7) != (nf + cs + lf + gt + mt) % 8:
            raise _bad(BadFrameKind.CRC, "checksum mismatch", data, "(NF+CS+LF+GT+MT) mod 8")
        return cls(channels_of(cs, 1), mt, gt, channels_of(lf, 1), nf)


@dataclass(frozen=True)
class ChannelSettings:
    """Pulse settings of one active channel in :class:`ChannelListModeUpdate`.

    Attributes
    ----------
    pulse_width_us : int
        0–500 µs.
    current_ma : int
        0–127 mA (7-bit field).
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
class ChannelListModeUpdate(Message):
    """Set the pulses of every active channel, in ascending channel order (1 + 3n bytes).

    Attributes
    ----------
    channels : tuple of ChannelSettings
        1–8 entries, one per active channel of the last initialisation.
    """

    command = Ident.UPDATE
    channels: tuple[ChannelSettings, ...] = ()

    def __post_init__(self) -> None:
        check_tuple(self, "channels", ChannelSettings, 1, 8)

    def to_bytes(self) -> bytes:
        """The wire form."""
        chk = sum(c.mode + c.pulse_width_us + c.current_ma for c in self.channels) % 32
        out = bytearray([0x80 | (Ident.UPDATE << 5) | chk])
        for c in self.channels:
            out += bytes([(c.mode << 5) | (c.pulse_width_us >> 7), c.pulse_width_us & 0x7F,
                          c.current_ma])
        return bytes(out)

    @classmethod
    def from_bytes(cls, data: bytes) -> "ChannelListModeUpdate":
        """Decode ``1 + 3n`` bytes; raises :class:`CodecError` on a bad checksum or field."""
        channels = []
        for i in range(1, len(data), 3):
            b1, b2, b3 = data[i:i + 3]
            mode = b1 >> 5 & 0x3
            if mode > PulseMode.TRIPLET:
                raise _bad(BadFrameKind.PAYLOAD, "undefined pulse mode 3", data, "modes 0-2")
            channels.append((mode, ((b1 & 0x3) << 7) | b2, b3))
        if (data[0] & 0x1F) != sum(sum(c) for c in channels) % 32:
            raise _bad(BadFrameKind.CRC, "checksum mismatch", data,
                       "sum(mode+pulse_width+current) mod 32")
        return cls(tuple(ChannelSettings(pw, cur, mode) for mode, pw, cur in channels))


@dataclass(frozen=True)
class ChannelListModeStop(Message):
    """Stop channel-list mode: the single byte 0xC0."""

    command = Ident.STOP

    def to_bytes(self) -> bytes:
        """The wire form, ``C0``."""
        return bytes([0x80 | (Ident.STOP << 5)])

    @classmethod
    def from_bytes(cls, data: bytes) -> "ChannelListModeStop":
        """Decode ``C0``; any checksum bit set is an error."""
        if data[0] & 0x1F:
            raise _bad(BadFrameKind.CRC, "stop command with non-zero checksum bits", data, "C0")
        return cls()


@dataclass(frozen=True)
class SinglePulse(Message):
    """One pulse now (4 bytes).

    Attributes
    ----------
    channel : int
        Channel 1–8 (sent as 0–7).
    pulse_width_us : int
        0–500 µs.
    current_ma : int
        0–127 mA.
    """

    command = Ident.SINGLE_PULSE
    channel: int = 1
    pulse_width_us: int = 0
    current_ma: int = 0

    def __post_init__(self) -> None:
        check_int(self, "channel", 1, 8)
        check_int(self, "pulse_width_us", 0, MAX_PULSE_WIDTH_US, unit="us")
        check_int(self, "current_ma", 0, MAX_CURRENT_MA, unit="mA")

    def to_bytes(self) -> bytes:
        """The 4-byte wire form."""
        ch, pw, cur = self.channel - 1, self.pulse_width_us, self.current_ma
        chk = (ch + pw + cur) % 32
        return bytes([0x80 | (Ident.SINGLE_PULSE << 5) | chk, (ch << 4) | (pw >> 7), pw & 0x7F,
                      cur])

    @classmethod
    def from_bytes(cls, data: bytes) -> "SinglePulse":
        """Decode 4 bytes; raises :class:`CodecError` on a bad checksum or field."""
        ch = data[1] >> 4 & 0x7
        pw = ((data[1] & 0x3) << 7) | data[2]
        cur = data[3]
        if (data[0] & 0x1F) != (ch + pw + cur) % 32:
            raise _bad(BadFrameKind.CRC, "checksum mismatch", data,
                       "(channel+pulse_width+current) mod 32")
        return cls(ch + 1, pw, cur)


@dataclass(frozen=True)
class Ack:
    """The device's one-byte answer: bits 7–6 = Ident of the command, bit 0 = 1 if OK.

    Attributes
    ----------
    ident : Ident
        Which command is answered.
    ok : bool
        Whether the device accepted it.
    """

    ident: Ident
    ok: bool

    def __post_init__(self) -> None:
        check_enum(self, "ident", Ident)
        check_bool(self, "ok")


def encode(message: Message) -> bytes:
    """Encode a ScienceMode 1 command.

    Raises
    ------
    CodecError
        If ``message`` is not one of this module's commands.
    """
    if not isinstance(message, (ChannelListModeInit, ChannelListModeUpdate, ChannelListModeStop,
                                SinglePulse)):
        raise CodecError("not a ScienceMode 1 command", path="message", value=message,
                         allowed="ChannelListModeInit, ChannelListModeUpdate, "
                                 "ChannelListModeStop or SinglePulse", has_value=True)
    return message.to_bytes()


def _expected_length(ident: int, n_channels: int | None) -> int | None:
    if ident == Ident.INIT:
        return 6
    if ident == Ident.STOP:
        return 1
    if ident == Ident.SINGLE_PULSE:
        return 4
    return None if n_channels is None else 1 + 3 * n_channels


def _from_bytes(data: bytes) -> Message:
    ident = data[0] >> 5 & 0x3
    return {Ident.INIT: ChannelListModeInit, Ident.UPDATE: ChannelListModeUpdate,
            Ident.STOP: ChannelListModeStop, Ident.SINGLE_PULSE: SinglePulse}[ident] \
        .from_bytes(data)


def decode(data: bytes, n_channels: int | None = None) -> Message:
    """Decode exactly one command.

    Parameters
    ----------
    data : bytes
        The command bytes.
    n_channels : int, optional
        Active channels of the last initialisation, to check an update's length; without it
        the length must merely be ``1 + 3n`` with n = 1–8.

    Raises
    ------
    CodecError
        On a framing error (bit 7), wrong length, checksum mismatch or field out of range.
    """
    data = bytes(data)
    if not data or not data[0] & 0x80 or any(b & 0x80 for b in data[1:]):
        raise _bad(BadFrameKind.FRAMING, "bit 7 must be set in the first byte only", data,
                   "first byte >= 0x80, others < 0x80")
    ident = data[0] >> 5 & 0x3
    expected = _expected_length(ident, n_channels)
    if expected is None:
        ok = len(data) >= 4 and (len(data) - 1) % 3 == 0 and len(data) <= 25
    else:
        ok = len(data) == expected
    if not ok:
        raise _bad(BadFrameKind.LENGTH, f"wrong length for {Ident(ident).name}", data,
                   f"{expected} bytes" if expected else "1 + 3n bytes, n = 1..8")
    try:
        return _from_bytes(data)
    except CodecError as err:
        if err.kind != BadFrameKind.RANGE:
            raise
        raise CodecError(err.message, path=err.path, value=err.value, allowed=err.allowed,
                         has_value=err.has_value, kind=BadFrameKind.PAYLOAD) from None


def encode_ack(ack: Ack) -> bytes:
    """The device's answer byte, e.g. ``C1`` for an accepted single pulse."""
    return bytes([(ack.ident << 6) | int(ack.ok)])


def decode_ack(byte: int | bytes) -> Ack:
    """Decode the device's answer byte (bits 5–1 are unused and ignored)."""
    if isinstance(byte, (bytes, bytearray)):
        if len(byte) != 1:
            raise _bad(BadFrameKind.LENGTH, "an ack is one byte", byte, "1 byte")
        byte = byte[0]
    if isinstance(byte, bool) or not isinstance(byte, int) or not 0 <= byte <= 255:
        raise CodecError("ack must be one byte", path="sm1.ack", value=byte, allowed="0..255",
                         has_value=True)
    return Ack(Ident(byte >> 6), bool(byte & 1))


class StreamDecoder:
    """Incremental decoder for host → device command bytes (what a device emulator reads).

    A byte with bit 7 set starts a command; a new start before the command is complete
    abandons it. The number of active channels, needed to know an update's length, is taken
    from each decoded :class:`ChannelListModeInit` (or given up front).

    Parameters
    ----------
    n_channels : int, optional
        Active channels, if an initialisation happened before decoding starts.
    """

    def __init__(self, n_channels: int | None = None) -> None:
        self.n_channels = n_channels
        self._buf = bytearray()

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete command."""
        return len(self._buf)

    def reset(self) -> None:
        """Discard any partial command (keeps ``n_channels``)."""
        self._buf.clear()

    def feed(self, data: bytes) -> list[Message | BadFrame]:
        """Add received bytes; return decoded commands and :class:`BadFrame` items."""
        out: list[Message | BadFrame] = []
        junk = bytearray()
        for b in bytes(data):
            if b & 0x80:
                if junk:
                    out.append(BadFrame(BadFrameKind.JUNK, f"{len(junk)} data byte(s) outside a "
                                        "command discarded", bytes(junk)))
                    junk.clear()
                if self._buf:
                    out.append(BadFrame(BadFrameKind.RESTARTED, "new command before the last "
                                        "was complete", bytes(self._buf)))
                self._buf = bytearray([b])
            elif self._buf:
                self._buf.append(b)
            else:
                junk.append(b)
                continue
            item = self._complete()
            if item is not None:
                out.append(item)
        if junk:
            out.append(BadFrame(BadFrameKind.JUNK, f"{len(junk)} data byte(s) outside a command "
                                "discarded", bytes(junk)))
        return out

    def _complete(self) -> Message | BadFrame | None:
        ident = self._buf[0] >> 5 & 0x3
        if ident == Ident.UPDATE and not self.n_channels:
            raw = bytes(self._buf)
            self._buf.clear()
            return BadFrame(BadFrameKind.PAYLOAD, "update before an initialisation with "
                            "active channels", raw)
        if len(self._buf) < _expected_length(ident, self.n_channels):
            return None
        raw = bytes(self._buf)
        self._buf.clear()
        try:
            msg = decode(raw, self.n_channels)
        except CodecError as err:
            return BadFrame.from_error(err, raw)
        if isinstance(msg, ChannelListModeInit):
            self.n_channels = len(msg.active_channels)
        return msg
