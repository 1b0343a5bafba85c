"""What an ``emsim optimise`` study was created with, kept in the study so ``--resume`` needs nothing else.

The specification is every argument that defines the search: the patient (the whole document,
with its path and SHA-256), the template program if one was given, sites, varied fields and
bounds, objectives, constraints, device, session, robust-mode cohort and statistic, method,
seed and budget. It is stored as a user attribute of the optuna study when the study is
created, and :func:`problem_from_spec` rebuilds the identical :class:`Problem` from it (the
study's problem fingerprint then confirms it). Arguments given again on resume must agree
with the stored ones; only the budget may change (a larger budget extends the study).
Output folder, workers, scheduler, batch size and the progress bar are run settings, not
part of the specification.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

from emsim.errors import OptimiseError
from emsim.optimise._objectives import DEFAULT_OBJECTIVES

__all__ = ["SPEC_KEY", "DEFAULTS", "OPTIONS", "document_entry", "merge_spec", "problem_from_spec", "read_spec"]

SPEC_KEY = "emsim.spec"
SPEC_VERSION = 1

#: Specification field → default when it is neither given nor stored.
DEFAULTS: dict[str, Any] = {
    "template": None, "sites": ["lumbar_erector_spinae"], "vary": None, "bounds": {},
    "objectives": list(DEFAULT_OBJECTIVES), "max_discomfort_nrs": None, "max_session_min": None, "session_s": None,
    "device": "rehastim2", "session": 1, "cohort": 0, "statistic": "mean", "method": "nsga2", "seed": 0,
}
#: Specification field → the command-line option that sets it (for messages).
OPTIONS = {"patient": "--patient", "budget": "--budget", "template": "--template", "sites": "--sites",
           "vary": "--vary", "bounds": "--bounds", "objectives": "--objective",
           "max_discomfort_nrs": "--max-discomfort", "max_session_min": "--max-session-min",
           "session_s": "--session-s", "device": "--device", "session": "--session", "cohort": "--cohort",
           "statistic": "--statistic", "method": "--method", "seed": "--seed"}
# May differ on resume: a larger budget extends the study.
_EXTENDABLE = ("budget",)


def document_entry(path, document: dict) -> dict:
    """A stored input document: where it came from, its content and the content's SHA-256."""
    text = json.dumps(document, sort_keys=True, separators=(",", ":"))
    return {"path": str(path), "sha256": hashlib.sha256(text.encode()).hexdigest(), "document": document}


def _same(key: str, a, b) -> bool:
    if key in ("patient", "template"):
        return (a or {}).get("sha256") == (b or {}).get("sha256")
    return json.dumps(a, sort_keys=True) == json.dumps(b, sort_keys=True)


def _shown(key: str, value) -> str:
    if key in ("patient", "template"):
        return f"{Path(value['path']).name} (sha256 {value['sha256'][:12]})" if value else "none"
    if isinstance(value, list):
        return ",".join(map(str, value))
    if isinstance(value, dict):
        return ",".join(f"{k}={lo:g}:{hi:g}" for k, (lo, hi) in value.items()) or "none"
    return "none" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


def merge_spec(stored: dict | None, given: dict, study: str) -> dict:
    """The specification of this run: ``given`` (the options on the command line) over ``stored``.

    Raises
    ------
    OptimiseError
        A given option contradicts the stored one, or the patient or the budget is missing
        for a new study (``path`` names the option).
    """
    if stored is None:
        spec = {**DEFAULTS, **given}
        for key in ("patient", "budget"):
            if spec.get(key) is None:
                raise OptimiseError(f"needed to create study {study!r}", path=OPTIONS[key],
                                    allowed=f"{OPTIONS[key]} for a new study, or --resume with the name of a "
                                            "study emsim optimise created")
        return {"version": SPEC_VERSION, **spec}
    if stored.get("version") != SPEC_VERSION:
        raise OptimiseError("study specification of another emsim version", path="study", value=study,
                            allowed=f"specification version {SPEC_VERSION}; repeat the original arguments")
    for key, value in given.items():
        if key not in _EXTENDABLE and not _same(key, value, stored.get(key)):
            raise OptimiseError(f"contradicts study {study!r}, which was created with {_shown(key, stored.get(key))}",
                                path=OPTIONS[key], value=_shown(key, value),
                                allowed=f"{_shown(key, stored.get(key))}, or leave {OPTIONS[key]} out when resuming")
    return {**stored, **{k: v for k, v in given.items() if k in _EXTENDABLE}}


def problem_from_spec(spec: dict):
    """The :class:`~emsim.optimise.Problem` a specification describes (the same one every time)."""
    from emsim.body import cohort
    from emsim.body.patient import loads_patient
    from emsim.optimise._problem import Problem
    from emsim.optimise._space import DesignSpace
    from emsim.optimise._template import lumbar_template
    from emsim.program.io import from_dict

    patient = loads_patient(json.dumps(spec["patient"]["document"]))
    cohort_n = int(spec["cohort"] or 0)
    if spec["template"] is not None:
        template = from_dict(spec["template"]["document"])
    else:
        # virtual patients have no measured thresholds: robust searches use absolute currents
        template = lumbar_template(None if cohort_n else patient, sites=spec["sites"], duration_s=spec["session_s"])
    bounds = {k: tuple(v) for k, v in (spec["bounds"] or {}).items()} or None
    space = DesignSpace.from_template(template, device=spec["device"], fields=spec["vary"], bounds=bounds)
    patients = [patient] + (cohort(cohort_n, seed=spec["seed"]) if cohort_n else [])
    return Problem(patients, space, objectives=spec["objectives"], device=spec["device"], session=spec["session"],
                   max_discomfort_nrs=spec["max_discomfort_nrs"], max_session_min=spec["max_session_min"],
                   statistic=spec["statistic"])


def read_spec(storage, name: str) -> tuple[bool, dict | None]:
    """(study exists, its stored specification or ``None``) in an opened optuna ``storage``."""
    try:
        study_id = storage.get_study_id_from_name(name)
    except KeyError:
        return False, None
    except Exception as exc:  # a storage that opened but cannot be read
        raise OptimiseError(f"storage cannot be read ({type(exc).__name__})", path="storage") from None
    return True, storage.get_study_user_attrs(study_id).get(SPEC_KEY)
