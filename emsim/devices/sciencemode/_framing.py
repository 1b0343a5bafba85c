"""Byte stuffing, checksums and frame splitting shared by ScienceMode 2 and ScienceMode 4.

Both protocols delimit a packet with a start byte (0xF0) and a stop byte (0x0F) and escape
the three control bytes 0xF0, 0x0F and 0x81 inside the packet as ``0x81, byte ^ 0x55``
(reference §1.3 and §3.3). They differ in the header (SM2: one-byte checksum and length;
SM4: 16-bit length and CRC-16) and in the command prefix, which the protocol modules handle.

Everything here is a pure function or a small state machine without I/O.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any, Callable

from emsim.errors import DeviceError

__all__ = [
    "START",
    "STOP",
    "STUFF",
    "STUFF_KEY",
    "CodecError",
    "BadFrameKind",
    "BadFrame",
    "stuff",
    "unstuff",
    "crc8",
    "crc16_xmodem",
    "FrameSplitter",
    "StreamDecoder",
    "check_no_raw_controls",
    "checked_payload",
    "FramedCodec",
]

START = 0xF0
STOP = 0x0F
STUFF = 0x81
STUFF_KEY = 0x55

_ESCAPED = frozenset((START, STOP, STUFF))


class BadFrameKind(str, enum.Enum):
    """Why received bytes did not make a packet."""

    JUNK = "junk"                # bytes outside any frame
    RESTARTED = "restarted"      # a start byte arrived before the frame was complete
    BAD_HEADER = "bad_header"    # header bytes are not the fixed 0x81 markers
    OVERLONG = "overlong"        # no stop byte within the protocol's maximum frame length
    FRAMING = "framing"          # not one frame: no start/stop, or a raw control byte inside
    LENGTH = "length"            # declared length differs from the received length
    CRC = "crc"                  # checksum mismatch
    STUFFING = "stuffing"        # escape byte 0x81 with nothing after it
    TOO_SHORT = "too_short"      # body shorter than the packet-number/command prefix
    PAYLOAD = "payload"          # frame intact, but the command data does not decode
    RANGE = "range"              # a field is outside its allowed range (encoding side)


class CodecError(DeviceError, ValueError):
    """A message cannot be encoded or a byte sequence cannot be decoded.

    It is a :class:`emsim.errors.DeviceError` (so the CLI reports it like every other
    emsim error) and a :class:`ValueError` (so generic callers can catch bad values).

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    path : str, optional
        The offending field, ``MessageName.field`` (or ``frame.crc`` and similar for framing).
    value : object, optional
        The offending value.
    allowed : str, optional
        The allowed range or set.
    kind : BadFrameKind, optional
        Machine-readable category; the streaming decoders copy it into their error items.
    packet_number, command : int, optional
        Set when the frame itself was intact, so that a device emulator can still answer
        the right packet (for example with a parameter error).
    """

    def __init__(self, message: str, *, path: str | None = None, value: Any = None,
                 allowed: str | None = None, has_value: bool | None = None,
                 kind: BadFrameKind = BadFrameKind.RANGE, packet_number: int | None = None,
                 command: int | None = None):
        self.kind = BadFrameKind(kind)
        self.packet_number = packet_number
        self.command = command
        super().__init__(message, path=path, value=value, allowed=allowed, has_value=has_value)

    def to_dict(self) -> dict:
        d = super().to_dict()
        d.update(codec_kind=self.kind.value, packet_number=self.packet_number, command=self.command)
        return d


@dataclass(frozen=True)
class BadFrame:
    """An error item from a streaming decoder: bytes that did not make a valid packet.

    Attributes
    ----------
    kind : BadFrameKind
        Category of the problem.
    message : str
        Human-readable one-line description.
    raw : bytes
        The bytes this item accounts for (discarded by the decoder).
    packet_number, command : int or None
        Known when the frame was intact and only its data failed to decode (``PAYLOAD``).
    """

    kind: BadFrameKind
    message: str
    raw: bytes = b""
    packet_number: int | None = None
    command: int | None = None

    @classmethod
    def from_error(cls, err: CodecError, raw: bytes) -> "BadFrame":
        """Wrap a :class:`CodecError` raised while parsing ``raw``."""
        return cls(err.kind, err.one_line(), bytes(raw), err.packet_number, err.command)


# --------------------------------------------------------------------------- stuffing


def stuff(data: bytes) -> bytes:
    """Escape 0xF0, 0x0F and 0x81 as ``0x81, byte ^ 0x55``; every other byte passes unchanged.

    Parameters
    ----------
    data : bytes
        Unstuffed bytes.

    Returns
    -------
    bytes
        Stuffed bytes, free of raw start and stop bytes.
    """
    out = bytearray()
    for b in data:
        if b in _ESCAPED:
            out.append(STUFF)
            out.append(b ^ STUFF_KEY)
        else:
            out.append(b)
    return bytes(out)


def unstuff(data: bytes) -> bytes:
    """Undo :func:`stuff`.

    Any byte that follows 0x81 is XORed with 0x55, not only the three escaped values:
    the device receivers do the same (reference §1.3), so this decoder accepts what they accept.

    Raises
    ------
    CodecError
        ``kind=STUFFING`` if the data ends with a lone 0x81.
    """
    out = bytearray()
    escape = False
    for b in data:
        if escape:
            out.append(b ^ STUFF_KEY)
            escape = False
        elif b == STUFF:
            escape = True
        else:
            out.append(b)
    if escape:
        raise CodecError("escape byte 0x81 at the end of the data", path="frame.body",
                         value=bytes(data[-4:]).hex(" "), allowed="0x81 followed by one byte",
                         kind=BadFrameKind.STUFFING)
    return bytes(out)


# --------------------------------------------------------------------------- checksums


def _crc8_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = ((c << 1) ^ 0x07) & 0xFF if c & 0x80 else (c << 1) & 0xFF
        table.append(c)
    return tuple(table)


def _crc16_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        c = i << 8
        for _ in range(8):
            c = ((c << 1) ^ 0x1021) & 0xFFFF if c & 0x8000 else (c << 1) & 0xFFFF
        table.append(c)
    return tuple(table)


_CRC8 = _crc8_table()
_CRC16 = _crc16_table()


def crc8(data: bytes) -> int:
    """CRC-8 with polynomial 0x07, init 0, no reflection, no final XOR (CRC-8/SMBUS).

    ScienceMode 2 computes it over the *stuffed* packet body. Hasomed calls it
    "CRC-8-CCITT"; check value ``crc8(b"123456789") == 0xF4``.
    """
    c = 0
    for b in data:
        c = _CRC8[c ^ b]
    return c


def crc16_xmodem(data: bytes) -> int:
    """CRC-16 with polynomial 0x1021, init 0, no reflection, no final XOR (CRC-16/XMODEM).

    ScienceMode 4 computes it over the *stuffed* packet body; check value
    ``crc16_xmodem(b"123456789") == 0x31C3``.
    """
    c = 0
    for b in data:
        c = ((c << 8) & 0xFFFF) ^ _CRC16[((c >> 8) ^ b) & 0xFF]
    return c


# --------------------------------------------------------------------------- stream splitting


class FrameSplitter:
    """Cut a byte stream into ``F0 … 0F`` frames and hand each to a parser.

    The header after the start byte is ``header_pairs`` pairs of ``0x81, value ^ 0x55``.
    The value byte of a pair is taken literally even when it equals 0xF0 or 0x0F: the
    checksum and length are always sent escaped, so a checksum of 0xA5 appears as a raw
    0xF0 in the header and must not be mistaken for a new start. In the body a raw 0xF0
    restarts the frame and a raw 0x0F ends it (a correct sender never puts either there).

    Parameters
    ----------
    header_pairs : int
        Number of escaped header values (2 for SM2, 4 for SM4).
    max_frame : int
        Longest legal frame, start and stop bytes included.
    parse : callable
        ``parse(frame: bytes)`` returns the decoded packet or raises :class:`CodecError`.
    """

    _CHUNK = 4096

    def __init__(self, header_pairs: int, max_frame: int, parse: Callable[[bytes], Any]):
        self._pairs = header_pairs
        self._header_end = 1 + 2 * header_pairs
        self._max = max_frame
        self._parse = parse
        self._buf = bytearray()
        self._scan = 0  # body bytes already checked for control bytes, so feeds stay O(n)

    @property
    def pending(self) -> int:
        """Number of buffered bytes that do not yet form a complete item."""
        return len(self._buf)

    def reset(self) -> None:
        """Forget any partial frame."""
        self._buf.clear()
        self._scan = 0

    def feed(self, data: bytes) -> list:
        """Add received bytes; return the packets and :class:`BadFrame` items now complete.

        Only the parser's :class:`CodecError` is caught; it becomes a :class:`BadFrame`.
        """
        out: list = []
        # Feeding in slices bounds the buffer (each drop is a memmove of the buffer), so a
        # megabyte of line noise costs linear, not quadratic, time.
        for i in range(0, len(data), self._CHUNK):
            self._buf += data[i:i + self._CHUNK]
            while True:
                item, progressed = self._step()
                if item is not None:
                    out.append(item)
                if not progressed:
                    break
        return out

    def _drop(self, n: int) -> bytes:
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        self._scan = 0
        return raw

    def _step(self) -> tuple[Any, bool]:
        buf = self._buf
        if not buf:
            return None, False
        if buf[0] != START:
            i = buf.find(START)
            raw = self._drop(len(buf) if i < 0 else i)
            return BadFrame(BadFrameKind.JUNK, f"{len(raw)} byte(s) outside a frame discarded",
                            raw), True
        for k in range(self._pairs):
            pos = 1 + 2 * k
            if pos >= len(buf):
                return None, False
            b = buf[pos]
            if b == START:
                raw = self._drop(pos)
                return BadFrame(BadFrameKind.RESTARTED, "start byte inside the header: "
                                "incomplete frame discarded", raw), True
            if b != STUFF:
                raw = self._drop(pos + 1)
                return BadFrame(BadFrameKind.BAD_HEADER,
                                f"header byte {pos} is 0x{b:02X}, expected 0x81", raw), True
            if pos + 1 >= len(buf):
                return None, False
        j = max(self._header_end, self._scan)
        n = len(buf)
        while j < n:
            b = buf[j]
            if b == STOP:
                frame = self._drop(j + 1)
                return self._finish(frame), True
            if b == START:
                # if the frame was cut inside its header, the new frame's start byte sits in
                # a header value slot: restart there rather than at this later start byte
                slot = self._start_in_header_slot(buf)
                raw = self._drop(j if slot is None else slot)
                return BadFrame(BadFrameKind.RESTARTED,
                                "start byte inside the body: incomplete frame discarded", raw), True
            j += 1
            if j >= self._max:
                raw = self._drop(j)
                return BadFrame(BadFrameKind.OVERLONG,
                                f"no stop byte within {self._max} bytes", raw), True
        self._scan = j
        return None, False

    def _start_in_header_slot(self, frame: bytes | bytearray) -> int | None:
        """Index of the first header value slot holding 0xF0, if any."""
        for k in range(self._pairs):
            slot = 2 + 2 * k
            if frame[slot] == START:
                return slot
        return None

    def _finish(self, frame: bytes) -> Any:
        try:
            return self._parse(frame)
        except CodecError as err:
            item = BadFrame.from_error(err, frame)
            if err.kind in (BadFrameKind.LENGTH, BadFrameKind.CRC, BadFrameKind.STUFFING,
                            BadFrameKind.TOO_SHORT):
                # A frame cut short can swallow the next frame's start byte into one of its
                # header value slots; re-scan from there so that next frame is not lost.
                slot = self._start_in_header_slot(frame)
                if slot is not None:
                    self._buf[:0] = frame[slot:]
                    self._scan = 0
            return item


# --------------------------------------------------------------------------- protocol-independent codec steps
# SM2 and SM4 differ only in their header and command prefix (``build_frame``/``parse_frame``
# and the message table); the steps below are the same for both and live here once.


def check_no_raw_controls(body: bytes) -> None:
    """Raise :class:`CodecError` (FRAMING) if a stuffed body holds a raw start or stop byte."""
    if START in body or STOP in body:
        raise CodecError("raw start or stop byte inside the body", path="frame.body",
                         value=body.hex(" "), allowed="stuffed bytes", kind=BadFrameKind.FRAMING)


def checked_payload(body: bytes, crc: int, actual_crc: int, width: int) -> bytes:
    """Compare the checksums, then return the unstuffed body (packet prefix + command data).

    ``width`` is the number of hex digits the checksum is shown with (2 for CRC-8, 4 for CRC-16).

    Raises
    ------
    CodecError
        With ``kind`` CRC, STUFFING or TOO_SHORT.
    """
    if actual_crc != crc:
        raise CodecError("checksum mismatch", path="frame.crc", value=f"0x{actual_crc:0{width}X}",
                         allowed=f"0x{crc:0{width}X} (declared)", kind=BadFrameKind.CRC)
    raw = unstuff(body)
    if len(raw) < 2:
        raise CodecError("body lacks the packet-number/command prefix", path="frame.body",
                         value=raw.hex(" "), allowed="at least 2 bytes", kind=BadFrameKind.TOO_SHORT)
    return raw


class FramedCodec:
    """The encode/decode entry points of one framed protocol, built from its specific parts.

    A protocol module supplies its message table and its ``build_frame``/``parse_frame``
    (header layout and command prefix) and exports this object's bound methods as its
    module-level ``decode_message``, ``encode``, ``encode_packet`` and ``decode``.
    """

    def __init__(self, protocol: str, module: str, messages: dict, own: tuple,
                 build_frame: Callable[[int, int, bytes], bytes],
                 parse_frame: Callable[[bytes], tuple[int, int, bytes]]):
        self.protocol, self.module = protocol, module
        self._messages, self._own = messages, own
        self._build, self._parse = build_frame, parse_frame

    def decode_message(self, command: int, data: bytes):
        """Decode command data into its message class (``RawMessage`` if not modelled).

        Raises
        ------
        CodecError
            ``kind=PAYLOAD`` if the data do not fit the command.
        """
        from emsim.devices.sciencemode._fields import RawMessage

        cls = self._messages.get(command)
        if cls is None:
            return RawMessage(command, bytes(data))
        try:
            return cls.from_payload(bytes(data))
        except CodecError as err:
            raise CodecError(err.message, path=err.path, value=err.value, allowed=err.allowed,
                             has_value=err.has_value, kind=BadFrameKind.PAYLOAD,
                             command=command) from None

    def encode(self, message, number: int) -> bytes:
        """Encode ``message`` as a complete frame with packet number ``number``."""
        # the message classes of all three codecs share a base class, so check the module too:
        # an SM4 MlStop (cmd 34) must not slip into an SM2 frame as StopChannelListMode
        if not isinstance(message, self._own):
            raise CodecError(f"not a {self.protocol} message", path="message", value=message,
                             allowed=f"an emsim.devices.sciencemode.{self.module} message", has_value=True)
        return self._build(number, message.command_number, message.payload())

    def entry_points(self) -> tuple:
        """``(decode_message, encode, encode_packet, decode)``: the module-level functions."""
        return self.decode_message, self.encode, self.encode_packet, self.decode

    def encode_packet(self, packet) -> bytes:
        """Encode a ``Packet``."""
        return self.encode(packet.message, packet.number)

    def decode(self, frame: bytes):
        """Decode one complete frame into a ``Packet``.

        Raises
        ------
        CodecError
            On any framing, checksum or payload problem; ``err.kind`` says which.
        """
        from emsim.devices.sciencemode._fields import Packet

        number, command, data = self._parse(frame)
        try:
            return Packet(number, self.decode_message(command, data))
        except CodecError as err:
            err.packet_number = number
            err.command = command
            raise


class StreamDecoder:
    """Incremental decoder of a received byte stream (the protocol modules subclass it).

    ``feed`` returns complete packets and :class:`BadFrame` items in arrival order and never
    raises for bad input.
    """

    def __init__(self, header_pairs: int, max_frame: int, decode: Callable[[bytes], Any]) -> None:
        self._splitter = FrameSplitter(header_pairs, max_frame, decode)

    def feed(self, data: bytes) -> list:
        """Add received bytes; return the items completed by them."""
        return self._splitter.feed(bytes(data))

    @property
    def pending(self) -> int:
        """Bytes buffered towards an incomplete frame."""
        return self._splitter.pending

    def reset(self) -> None:
        """Discard any partial frame (for example after reopening the port)."""
        self._splitter.reset()
