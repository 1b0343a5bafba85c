"""Provenance of a study run: emsim version, model parameter files (version + SHA-256), seed."""

from __future__ import annotations

import hashlib
import json
import platform
import sys
from datetime import datetime, timezone

from emsim._data import models_dir
from emsim.study._errors import StudyError

__all__ = ["fingerprint", "provenance"]


def fingerprint(spec: dict) -> str:
    """SHA-256 of a study's spec: the same rows and outcomes iff the same fingerprint."""
    return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()


def _model_file(relative: str) -> dict:
    path = models_dir() / relative
    if not path.is_file():
        raise StudyError("the study names a model file that does not exist", path="models",
                         value=relative, allowed=f"files below {models_dir()}")
    data = path.read_bytes()
    entry = {"file": relative, "sha256": hashlib.sha256(data).hexdigest()}
    if path.suffix == ".json":
        try:
            doc = json.loads(data)
        except ValueError:
            doc = {}
        for key in ("version", "format", "emsim_version"):
            if isinstance(doc, dict) and key in doc:
                entry[key] = doc[key]
    return entry


def provenance(study, n_rows: int, *, executor: str) -> dict:
    """The provenance record written beside a study's results."""
    import emsim

    return {
        "study": study.name, "title": study.title, "quick": study.quick, "seed": study.seed,
        "emsim_version": getattr(emsim, "__version__", "unknown"),
        "fingerprint": fingerprint(study.spec()), "spec": study.spec(), "n_rows": n_rows,
        "units": study.units(), "models": [_model_file(m) for m in study.models],
        "references": [{"label": r.label, "source": r.source, "evidence": r.evidence} for r in study.references],
        "executor": executor, "python": sys.version.split()[0], "platform": platform.platform(),
        "finished_utc": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "complete": True,
    }
