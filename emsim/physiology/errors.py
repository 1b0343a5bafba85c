"""Typed errors raised by the physiology models.

Both derive from :class:`emsim.errors.EmsimError` (so the CLI prints one line naming the
argument, the value and the allowed range) and from :class:`ValueError` (so plain numerical
code can catch them without knowing emsim).
"""

from __future__ import annotations

from emsim.errors import EmsimError

__all__ = ["PhysiologyInputError", "ModelParameterError"]


class PhysiologyInputError(EmsimError, ValueError):
    """An argument of a physiology function is malformed or out of range.

    ``path`` names the argument (and element), e.g. ``pulse_times[0, 3]``.
    """


class ModelParameterError(EmsimError, ValueError):
    """A model parameter (or a parameter file in ``models/``) is missing or out of range.

    ``path`` names the file and the JSON path, or the dataclass field.
    """
