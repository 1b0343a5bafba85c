"""Codecs for the Hasomed ScienceMode stimulator protocols (pure functions, no I/O).

Modules
-------
sm2
    ScienceMode 2 (RehaStim 2): framed, CRC-8, 460 800 Bd 8E1.
sm4
    ScienceMode 4 (P24, "smpt"): framed, CRC-16, 3 Mbaud 8N2 RTS/CTS.
sm1
    ScienceMode 1 (RehaStim 1): bit-packed commands, 115 200 Bd 8N2 RTS/CTS.

Shared framing (byte stuffing and checksums) lives in ``_framing``; every decoding or
encoding problem raises :class:`CodecError`, a :class:`emsim.errors.DeviceError`. The
streaming decoders never raise for bad input: they return :class:`BadFrame` items.
"""

from emsim.devices.sciencemode import sm1, sm2, sm4
from emsim.devices.sciencemode._fields import Message, Packet, PulseMode, RawMessage
from emsim.devices.sciencemode._framing import (
    BadFrame, BadFrameKind, CodecError, crc8, crc16_xmodem, stuff, unstuff,
)

__all__ = [
    "sm1", "sm2", "sm4",
    "CodecError", "BadFrame", "BadFrameKind", "Message", "Packet", "PulseMode", "RawMessage",
    "stuff", "unstuff", "crc8", "crc16_xmodem",
]
