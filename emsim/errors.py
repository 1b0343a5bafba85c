"""Typed errors for bad input.

Every error names the field (a JSON path such as ``$.phases[0].stimulation[1].frequency_hz``),
the offending value and the allowed range, so that the CLI can print one line and scripts can
read the machine form from :meth:`EmsimError.to_dict`.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = [
    "EmsimError",
    "ProgramError",
    "PatientError",
    "SafetyViolation",
    "DeviceError",
    "InputFileError",
    "OptimiseError",
]


def _short(value: Any, limit: int = 60) -> str:
    if isinstance(value, float) and not math.isfinite(value):
        return repr(value)
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


class EmsimError(Exception):
    """Base class: a problem with user input, with the field, value and allowed range.

    Parameters
    ----------
    message : str
        What is wrong, in one line.
    path : str, optional
        JSON path of the offending field (``$`` is the document root).
    value : object, optional
        The offending value (shortened when printed).
    allowed : str, optional
        The allowed range or set, in human units.
    """

    def __init__(self, message: str, *, path: str | None = None, value: Any = None,
                 allowed: str | None = None, has_value: bool | None = None,
                 unreadable: bool = False):
        self.message = message
        # True when the input could not be read or parsed at all (missing, too large, not
        # JSON), as opposed to read but invalid; the CLI exits 2 for the former.
        self.unreadable = unreadable
        self.problems: list[EmsimError] = [self]  # every problem found; raise_all fills it
        self.path = path
        self.value = value
        self.allowed = allowed
        self.has_value = (value is not None) if has_value is None else has_value
        super().__init__(self.one_line())

    def one_line(self) -> str:
        parts = []
        if self.path:
            parts.append(f"{self.path}: ")
        parts.append(self.message)
        if self.has_value:
            parts.append(f" (got {_short(self.value)}")
            parts.append(f"; allowed {self.allowed})" if self.allowed else ")")
        elif self.allowed:
            parts.append(f" (allowed {self.allowed})")
        return "".join(parts).replace("\n", " ")

    def to_dict(self) -> dict:
        value = self.value
        if isinstance(value, float) and not math.isfinite(value):
            value = repr(value)
        elif not isinstance(value, (str, int, float, bool, type(None))):
            value = _short(value, 200)
        return {"kind": type(self).__name__, "path": self.path, "message": self.message,
                "value": value if self.has_value else None, "allowed": self.allowed}


class InputFileError(EmsimError):
    """A file could not be read: missing, too large, not UTF-8 or not JSON."""


class ProgramError(EmsimError):
    """A program document is malformed, out of range or internally inconsistent."""


class PatientError(EmsimError):
    """A patient document is malformed, out of range or lacks what was asked of it."""


class SafetyViolation(EmsimError):
    """A program failed the safety check for this device and patient and must not be delivered."""

    def __init__(self, report: Any):
        self.report = report
        first = report.errors[0] if getattr(report, "errors", None) else None
        msg = (f"safety check failed: {len(report.errors)} error(s); first: [{first.rule}] {first.message}"
               if first else "safety check failed")
        super().__init__(msg)


class DeviceError(EmsimError):
    """A stimulator refused a command, reported a fault or could not be reached."""


class OptimiseError(EmsimError):
    """An optimisation cannot be set up or finished: an unknown objective, contradictory bounds,
    nothing feasible within the budget, a storage that cannot be opened, or a study that
    belongs to a different problem."""
