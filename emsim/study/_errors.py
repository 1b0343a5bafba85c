"""The study runner's typed error."""

from __future__ import annotations

from emsim.errors import EmsimError

__all__ = ["StudyError"]


class StudyError(EmsimError):
    """A study cannot run: unknown name, bad parameter space, unreachable scheduler, unwritable folder."""
