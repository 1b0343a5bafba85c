"""Where the parameter data (the top-level ``models/`` folder) lives, and how it is read."""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

__all__ = ["models_dir", "load_data"]


def models_dir() -> Path:
    """The ``models/`` folder: ``$EMSIM_MODELS_DIR`` if set, else the one beside the package."""
    override = os.environ.get("EMSIM_MODELS_DIR")
    path = Path(override) if override else Path(__file__).resolve().parent.parent / "models"
    if not path.is_dir():
        raise FileNotFoundError(
            f"emsim parameter data not found at {path}; install emsim from its source tree "
            "(pip install -e .) or set EMSIM_MODELS_DIR")
    return path


@lru_cache(maxsize=None)
def load_data(relative: str) -> dict:
    """Parse one JSON data file below ``models/`` (cached; treat the result as read-only)."""
    with open(models_dir() / relative, encoding="utf-8") as fh:
        return json.load(fh)
