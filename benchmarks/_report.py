"""Shared tail of the benchmark scripts: machine description and the JSON-lines results file."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from pathlib import Path

from emsim import __version__


def source_commit() -> str | None:
    """The git commit of the measured emsim tree, ``+dirty`` if ``emsim/`` has uncommitted
    changes, or None outside a git checkout: a result is only comparable with the code it ran."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True,
                              text=True, timeout=10, check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "emsim"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=True).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return head + ("+dirty" if dirty else "") if head else None


def machine() -> dict:
    """emsim and Python versions, source commit, core count and machine type (recorded with
    every result)."""
    return {"emsim": __version__, "commit": source_commit(), "python": platform.python_version(),
            "cores": os.cpu_count(), "machine": platform.machine(),
            "processor": platform.processor() or None}


def results_file(name: str) -> Path:
    """The house results file of benchmark ``name``: ``benchmarks/results/<name>.jsonl``."""
    return Path(__file__).resolve().parent / "results" / f"{name}.jsonl"


def publish(name: str, result: dict, *, out: str | Path | None = None, record: bool = True) -> None:
    """Print ``result`` and append it, time-stamped, to ``out`` (default
    :func:`results_file`), or nowhere with ``record=False`` (trial runs)."""
    result = {**result, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    print(json.dumps(result, indent=2))
    if not record:
        return
    out = results_file(name) if out is None else Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
