"""Program and patient documents for tests (shipped, so tests and downstream users share them).

``ROOT`` is the repository (the parent of the package), ``PROGRAMS`` the shipped example
programs, ``PATIENTS`` the folder of example patients; ``BASE_DOC`` a small valid program
document, ``channel()``/``stim()``/``electrode()`` build its parts.
"""

import json
from pathlib import Path

from emsim._data import models_dir

ROOT = models_dir().parent
PROGRAMS = sorted((models_dir() / "programs").glob("*.json"))
PATIENTS = models_dir() / "patients"


def electrode(w=5, l=5):
    return {"shape": "rectangle", "width_cm": w, "length_cm": l}


def stim(channel="A", **kw):
    d = {"channel": channel,
         "waveform": {"shape": "symmetric_biphasic", "pulse_width_us": 300, "interphase_gap_us": 100},
         "frequency_hz": 50, "pattern": {"type": "constant"}, "amplitude": {"ma": 20},
         "on_s": 5, "off_s": 5, "ramp_up_s": 1, "ramp_down_s": 1}
    d.update(kw)
    return d


def channel(cid="A", site="lumbar_erector_spinae", side="left", w=5, l=5):
    return {"id": cid, "site": site, "side": side, "electrodes": [electrode(w, l), electrode(w, l)],
            "spacing_cm": 3, "orientation": "along_fibres"}


BASE_DOC = {
    "format": "emsim.program/1", "name": "test", "description": "", "category": "nmes",
    "channels": [channel()],
    "phases": [{"name": "main", "kind": "main", "duration_s": 60,
                "timing": {"mode": "simultaneous", "offset_s": 0}, "stimulation": [stim()]}],
    "schedule": {"sessions_per_week": 2, "weeks": 4, "min_days_between_sessions": 2, "progression": []},
    "provenance": {"emsim_version": "0.1.0", "model_versions": {}, "created_by": "tests",
                   "created_with": "tests"},
}


def as_json(doc) -> str:
    return json.dumps(doc)
