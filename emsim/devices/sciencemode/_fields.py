"""Field checks and the message base classes shared by the ScienceMode codecs."""

from __future__ import annotations

import enum
import math
import numbers
from dataclasses import dataclass
from typing import Any, ClassVar, Iterable

from emsim.devices.sciencemode._framing import BadFrameKind, CodecError

__all__ = ["PulseMode", "Message", "RawMessage", "Packet"]


class PulseMode(enum.IntEnum):
    """Pulses per channel per main period (SM1 and SM2 channel-list mode)."""

    SINGLE = 0
    DOUBLET = 1
    TRIPLET = 2


# --------------------------------------------------------------------------- field checks
# Messages validate in __post_init__ so that an out-of-range value fails where it is made,
# not later when bytes are already on their way to a stimulator.


def set_field(obj: Any, name: str, value: Any) -> None:
    """Normalise a field of a frozen dataclass in ``__post_init__``."""
    object.__setattr__(obj, name, value)


def where(obj: Any, name: str) -> str:
    return f"{type(obj).__name__}.{name}"


def check_int(obj: Any, name: str, lo: int, hi: int, *, unit: str = "") -> int:
    """Require an integer field in ``[lo, hi]``; store it as a plain ``int``."""
    value = getattr(obj, name)
    suffix = f" {unit}" if unit else ""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CodecError(f"{name} must be an integer", path=where(obj, name), value=value,
                         allowed=f"integer {lo}..{hi}{suffix}", has_value=True)
    value = int(value)
    if not lo <= value <= hi:
        raise CodecError(f"{name} out of range", path=where(obj, name), value=value,
                         allowed=f"{lo}..{hi}{suffix}")
    set_field(obj, name, value)
    return value


def check_bool(obj: Any, name: str) -> bool:
    value = getattr(obj, name)
    if not isinstance(value, (bool, numbers.Integral)) or value not in (0, 1):
        raise CodecError(f"{name} must be a boolean", path=where(obj, name), value=value,
                         allowed="True or False", has_value=True)
    set_field(obj, name, bool(value))
    return bool(value)


def check_enum(obj: Any, name: str, enum_type: type[enum.IntEnum]) -> enum.IntEnum:
    """Coerce an enum field (an int is accepted) and reject values the protocol does not define."""
    value = getattr(obj, name)
    allowed = ", ".join(f"{m.value} ({m.name})" for m in enum_type)
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise CodecError(f"{name} must be a {enum_type.__name__}", path=where(obj, name),
                         value=value, allowed=allowed, has_value=True)
    try:
        member = enum_type(int(value))
    except ValueError:
        raise CodecError(f"{name} is not a defined {enum_type.__name__}", path=where(obj, name),
                         value=int(value), allowed=allowed) from None
    set_field(obj, name, member)
    return member


def check_step(obj: Any, name: str, lo: float, hi: float, step: float, *, unit: str) -> float:
    """Require a finite real in ``[lo, hi]`` that is an exact multiple of ``step``."""
    value = getattr(obj, name)
    allowed = f"{lo:g}..{hi:g} {unit} in steps of {step:g} {unit}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise CodecError(f"{name} must be a number", path=where(obj, name), value=value,
                         allowed=allowed, has_value=True)
    value = float(value)
    if not math.isfinite(value) or not lo <= value <= hi:
        raise CodecError(f"{name} out of range", path=where(obj, name), value=value,
                         allowed=allowed)
    if value / step != round(value / step):
        raise CodecError(f"{name} is not a multiple of {step:g} {unit}", path=where(obj, name),
                         value=value, allowed=allowed)
    set_field(obj, name, value + 0.0)  # -0.0 becomes 0.0 so equal values compare and print alike
    return value


def check_channels(obj: Any, name: str, lo: int, hi: int) -> frozenset[int]:
    """Require a set of channel numbers in ``[lo, hi]``; store it as a frozenset."""
    value = getattr(obj, name)
    allowed = f"set of channel numbers {lo}..{hi}"
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise CodecError(f"{name} must be a set of channel numbers", path=where(obj, name),
                         value=value, allowed=allowed, has_value=True)
    items = list(value)
    for ch in items:
        if isinstance(ch, bool) or not isinstance(ch, numbers.Integral) or not lo <= ch <= hi:
            raise CodecError(f"{name} contains an invalid channel", path=where(obj, name),
                             value=ch, allowed=allowed, has_value=True)
    result = frozenset(int(ch) for ch in items)
    set_field(obj, name, result)
    return result


def check_tuple(obj: Any, name: str, item_type: type, lo: int, hi: int) -> tuple:
    """Require a sequence of ``lo..hi`` items of ``item_type``; store it as a tuple."""
    value = getattr(obj, name)
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise CodecError(f"{name} must be a sequence of {item_type.__name__}",
                         path=where(obj, name), value=value,
                         allowed=f"{lo}..{hi} {item_type.__name__} items", has_value=True)
    items = tuple(value)
    if not lo <= len(items) <= hi:
        raise CodecError(f"{name} has the wrong number of items", path=where(obj, name),
                         value=len(items), allowed=f"{lo}..{hi} items")
    for i, item in enumerate(items):
        if not isinstance(item, item_type):
            raise CodecError(f"{name}[{i}] must be a {item_type.__name__}",
                             path=f"{where(obj, name)}[{i}]", value=item,
                             allowed=item_type.__name__, has_value=True)
    set_field(obj, name, items)
    return items


def mask_of(channels: Iterable[int], first: int) -> int:
    """Bitmask with bit ``ch - first`` set for every channel."""
    m = 0
    for ch in channels:
        m |= 1 << (ch - first)
    return m


def channels_of(mask: int, first: int, n: int = 8) -> frozenset[int]:
    return frozenset(first + i for i in range(n) if mask >> i & 1)


def signed8(b: int) -> int:
    """Two's-complement value of one byte."""
    return b - 256 if b & 0x80 else b


def payload_error(cls: type, message: str, data: bytes, allowed: str) -> CodecError:
    return CodecError(message, path=f"{cls.__name__}.data", value=bytes(data).hex(" "),
                      allowed=allowed, kind=BadFrameKind.PAYLOAD, has_value=True)


def expect_length(cls: type, data: bytes, *lengths: int) -> None:
    if len(data) not in lengths:
        allowed = " or ".join(str(n) for n in lengths) + " data byte(s)"
        raise payload_error(cls, f"wrong number of data bytes ({len(data)})", data, allowed)


# --------------------------------------------------------------------------- base classes


@dataclass(frozen=True)
class Message:
    """Base class of every decoded or encodable message.

    Subclasses set ``command`` and implement :meth:`payload` and :meth:`from_payload`
    (the command data after the packet number and command).
    """

    command: ClassVar[int] = -1

    def payload(self) -> bytes:
        """Command data bytes (unstuffed, after the packet number and command)."""
        return b""

    @classmethod
    def from_payload(cls, data: bytes) -> "Message":
        """Decode the command data; raises :class:`CodecError` with ``kind=PAYLOAD``."""
        expect_length(cls, data, 0)
        return cls()

    @property
    def command_number(self) -> int:
        """Command number of this message."""
        return self.command


@dataclass(frozen=True)
class RawMessage(Message):
    """A command the codec does not model (for example MOTOmed or file-transfer commands).

    Decoders return it for command numbers they do not know; it can also be encoded, which
    lets tests send deliberately malformed data for a known command.

    Attributes
    ----------
    command_id : int
        Command number.
    data : bytes
        Command data, unstuffed.
    """

    command_id: int
    data: bytes = b""

    def __post_init__(self) -> None:
        check_int(self, "command_id", 0, 1023)
        if not isinstance(self.data, (bytes, bytearray, memoryview)):
            raise CodecError("data must be bytes", path=where(self, "data"), value=self.data,
                             allowed="bytes", has_value=True)
        set_field(self, "data", bytes(self.data))

    @property
    def command_number(self) -> int:
        return self.command_id

    def payload(self) -> bytes:
        return self.data


@dataclass(frozen=True)
class Packet:
    """A decoded packet: the packet number and the message it carries.

    Attributes
    ----------
    number : int
        Packet number (SM2 0–255, SM4 0–63). An acknowledgement echoes the number of the
        command it answers.
    message : Message
        The decoded message.
    """

    number: int
    message: Message

    @property
    def command(self) -> int:
        """Command number of the carried message."""
        return self.message.command_number
