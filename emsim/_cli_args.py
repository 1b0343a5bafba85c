"""argparse value types with a range, shared by every ``emsim`` subcommand.

A bad value becomes argparse's usage error (exit 2) with one line naming what was expected,
the value given and the allowed range, like every other input error of the CLI.
"""

from __future__ import annotations

import argparse
import math


def bounded(what: str, low: float, high: float = math.inf, *, unit: str = "", integer: bool = False):
    """An argparse ``type`` accepting a number in ``[low, high]`` (whole numbers if ``integer``)."""
    kind = "a whole number" if integer else "a number"
    shown = f"{low:g} to {high:g}" if math.isfinite(high) else f">= {low:g}"
    suffix = f" {unit}" if unit else ""

    def parse(text: str):
        try:
            value = int(text) if integer else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{what} must be {kind} (got {text!r}; allowed {shown}{suffix})") from None
        if not (low <= value <= high) or (not integer and not math.isfinite(value)):
            raise argparse.ArgumentTypeError(f"{what} out of range (got {text!r}; allowed {shown}{suffix})")
        return value

    parse.__name__ = what.replace(" ", "_")
    return parse
