"""emsim — simulation and protocol-design workbench for electrical muscle stimulation.

Research use only: emsim has no clinical clearance. Its predictions and programs must not be
used to treat anyone without independent clinical judgement and a certified stimulator.
"""

from importlib.metadata import PackageNotFoundError, version as _version

try:
    __version__ = _version("emsim")
except PackageNotFoundError:  # pragma: no cover - running from a source tree without install
    __version__ = "0.0.0+unknown"

DISCLAIMER = "Research use only: emsim has no clinical clearance."

from emsim.errors import (  # noqa: E402
    DeviceError, EmsimError, InputFileError, PatientError, ProgramError, SafetyViolation,
)

__all__ = ["__version__", "DISCLAIMER", "EmsimError", "InputFileError", "ProgramError",
           "PatientError", "SafetyViolation", "DeviceError"]
