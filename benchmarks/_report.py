"""Shared tail of the benchmark scripts: machine description and the JSON-lines results file."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

from emsim import __version__


def machine() -> dict:
    """emsim and Python versions, core count and machine type (recorded with every result)."""
    return {"emsim": __version__, "python": platform.python_version(), "cores": os.cpu_count(),
            "machine": platform.machine(), "processor": platform.processor() or None}


def publish(name: str, result: dict) -> None:
    """Print ``result`` and append it, time-stamped, to ``benchmarks/results/<name>.jsonl``."""
    result = {**result, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / f"{name}.jsonl"
    out.parent.mkdir(exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
