"""Find and load the study scripts in ``studies/`` (each defines ``build(quick=False) -> Study``).

A script may take options as keyword-only arguments of ``build`` (``build(quick=False, *,
window_s=None)``); ``emsim study run NAME --set window_s=300`` passes them.
"""

from __future__ import annotations

import importlib.util
import inspect
import os
import sys
from pathlib import Path

from emsim.study._errors import StudyError

__all__ = ["studies_dir", "study_names", "load_study", "study_options", "parse_options", "build_with_options"]


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


def study_options(build) -> dict:
    """The options a study's ``build`` accepts: keyword-only argument → default."""
    return {k: p.default for k, p in inspect.signature(build).parameters.items()
            if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _value(text: str):
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return text


def parse_options(pairs) -> dict:
    """``["window_s=300", ...]`` → ``{"window_s": 300}`` (ints, floats, else strings)."""
    out = {}
    for pair in pairs or ():
        key, sep, text = pair.partition("=")
        if not sep or not key.strip() or not text.strip():
            raise StudyError("a study option is KEY=VALUE", path="--set", value=pair, allowed="e.g. window_s=300")
        out[key.strip()] = _value(text.strip())
    return out


def build_with_options(build, quick: bool, options: dict | None):
    """``build(quick=quick, **options)`` after checking the option names."""
    options = dict(options or {})
    known = study_options(build)
    unknown = sorted(set(options) - set(known))
    if unknown:
        raise StudyError("unknown study option", path="--set", value=unknown[0],
                         allowed=", ".join(k if v is None else f"{k} (default {v})" for k, v in known.items()) or "none")
    return build(quick=quick, **options)


def load_study(name: str, quick: bool = False, options: dict | None = None):
    """The :class:`Study` defined by ``studies/<name>.py`` at full or ``quick`` size, with the
    script's ``options`` (see :func:`study_options`)."""
    names = study_names()
    if name not in names:
        raise StudyError("unknown study", path="NAME", value=name,
                         allowed=", ".join(names) or f"none found in {studies_dir()}")
    study = build_with_options(_module(name).build, quick, options)
    if study.name != name:
        raise StudyError("a study's name must match its file name", path=f"studies/{name}.py",
                         value=study.name, allowed=name)
    return study
