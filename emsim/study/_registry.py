"""Find and load the study scripts in ``studies/`` (each defines ``build(quick=False) -> Study``)."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

from emsim.study._errors import StudyError

__all__ = ["studies_dir", "study_names", "load_study"]


def studies_dir() -> Path:
    """``$EMSIM_STUDIES_DIR`` if set, else the ``studies/`` folder beside the package."""
    override = os.environ.get("EMSIM_STUDIES_DIR")
    return Path(override) if override else Path(__file__).resolve().parents[2] / "studies"


def study_names() -> list[str]:
    folder = studies_dir()
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.py") if not p.stem.startswith("_"))


def _module(name: str):
    path = studies_dir() / f"{name}.py"
    key = f"emsim_studies.{name}"
    mod = sys.modules.get(key)
    if mod is not None and getattr(mod, "__file__", None) == str(path):
        return mod
    spec = importlib.util.spec_from_file_location(key, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[key] = mod
    spec.loader.exec_module(mod)
    return mod


def load_study(name: str, quick: bool = False):
    """The :class:`Study` defined by ``studies/<name>.py`` at full or ``quick`` size."""
    names = study_names()
    if name not in names:
        raise StudyError("unknown study", path="NAME", value=name,
                         allowed=", ".join(names) or f"none found in {studies_dir()}")
    study = _module(name).build(quick=quick)
    if study.name != name:
        raise StudyError("a study's name must match its file name", path=f"studies/{name}.py",
                         value=study.name, allowed=name)
    return study
