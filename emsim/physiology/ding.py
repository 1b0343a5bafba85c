r"""Ding-family CN–F muscle force model with force-driven fatigue.

The model
---------
Two fast states, CN (normalised Ca²⁺–troponin complex, dimensionless) and F (force, N), are driven
by stimulation pulses at times :math:`t_1 < t_2 < \dots` (Ding et al. 2003, eqs. 1–2)::

    dCN/dt = (1/τc) Σ_{t_i ≤ t} λ_i R_i exp(−(t − t_i)/τc) − CN/τc
    R_1 = 1,  R_i = 1 + (R0 − 1) exp(−(t_i − t_{i−1})/τc),   R0 = Km + 1.04
    dF/dt  = A · CN/(Km + CN) − F / (τ1 + τ2 · CN/(Km + CN))

* **Ding 2007 pulse-duration term.** ``A`` is replaced by
  ``A · (1 − exp(−(PD − PD0)/PDt))`` with PD the duration of the most recent pulse (cocofest
  convention: A switches at each pulse). The factor is taken as 0 for ``PD ≤ PD0``, where the
  published expression would turn negative.
* **Hmed 2018 amplitude term.** Each pulse's term in the CN sum is scaled by
  ``λ_i = Ar · (tanh(Bs · (I_i − Is)) + Cr)``. Below the threshold (λ = 0 at ≈ 17.0 mA) λ is
  clamped to 0: a sub-threshold pulse recruits nothing rather than removing Ca²⁺.
  Without amplitudes, λ_i = 1 (Ding 2003 and 2007 as published).
* **Ding 2003 fatigue** (optional, ``fatigue=True``): A, τ1 and Km become states::

      dA/dt  = −(A − A_rest)/τfat   + αA · F
      dτ1/dt = −(τ1 − τ1_rest)/τfat + ατ1 · F
      dKm/dt = −(Km − Km_rest)/τfat + αKm · F

  With the Ding 2007 term, ``A`` relaxes to ``a_rest`` (cocofest's ``a_scale``) and the pulse-duration
  factor multiplies the fatigued A. ``R0`` follows the fatigued Km evaluated at each pulse
  (``r0_km="fatigued"``, the papers' formulation) or the rested Km (``r0_km="rest"``, what cocofest
  does); the difference is negligible with the published parameters.

Defaults (``DingParameters()``, read from ``models/muscles/quadriceps_ding2003.json``, which records
the source and evidence level of every value)::

    tau_c        0.020     s        Ding 2003
    a_rest       3009      N/s      Ding 2003 (3.009 N/ms)
    tau1_rest    0.050957  s        Ding 2003
    tau2         0.060     s        assumed (cocofest; published transcriptions disagree, 60–125 ms)
    km_rest      0.103     –        Ding 2003
    r0_km_offset 1.04      –        Ding 2003 (R0 = Km + 1.04)
    alpha_a      −0.40     s⁻²      Ding 2003 (corrected per Doll 2015)
    alpha_tau1   2.1e-5    N⁻¹      Ding 2003
    alpha_km     1.9e-5    s⁻¹N⁻¹   Ding 2003
    tau_fat      127       s        Ding 2003
    hmed_ar      0.586     –        Hmed 2018
    hmed_bs      26.0      A⁻¹      Hmed 2018 (0.026 mA⁻¹)
    hmed_is      0.0631    A        Hmed 2018 (63.1 mA)
    hmed_cr      0.833     –        Hmed 2018

``DingParameters.load("quadriceps_ding2007")`` gives cocofest's Ding 2007 defaults (SCI quadriceps,
τc 0.011 s, A 4920 N/s, τ1 0.060601 s, τ2 0.001 s, Km 0.137, PD0 131.405 µs, PDt 194.138 µs).

Numerical method, and why
-------------------------
* **CN is integrated exactly.** The CN equation is linear with a sum of exponentials as input;
  with an auxiliary ``E = (1/τc) Σ λ_i R_i exp(−(t − t_i)/τc)`` it is the closed system
  ``dE/dt = −E/τc`` (E jumps by ``λ_i R_i/τc`` at pulse i), ``dCN/dt = E − CN/τc``, whose exact
  solution over any step h is ``E ← E e^{−h/τc}``, ``CN ← (CN + E h) e^{−h/τc}``. Every past pulse
  is carried in (E, CN), so there is no truncated pulse sum (cocofest keeps the last 20 pulses) and
  the cost per pulse is constant.
* **F is integrated with classical RK4 on a node grid** made of the pulse times, the requested
  output times and fill points at most ``max_step`` apart (default 1 ms). Pulses are nodes, so
  inside each step CN is smooth and known in closed form at the RK4 stage times, and RK4 keeps its
  fourth order (a generic solver stepping across a pulse loses it). Given CN, the F equation is
  linear in F, so each step is an affine map ``F_k = φ_k F_{k−1} + ψ_k``; all steps are evaluated
  at once with numpy and the recurrence is solved by a blocked parallel-prefix scan
  (:class:`_ScanPlan`), so there is no Python loop over time steps or pulses.
  Why not ``solve_ivp``: with the pulse sum it costs O(pulses²), and with restarts at each pulse
  (needed because dCN/dt jumps there) it costs a solver start per pulse — seconds to minutes for a
  20-minute session. It is kept as the check, :func:`ding_force_reference`. Against it (DOP853,
  rtol 1e-10) the maximum force error with 1 ms steps is ≈ 3e-6 of peak for the Ding 2003
  parameters and ≈ 1e-5 for Ding 2007 (τc 11 ms); it scales with ``max_step⁴``.
* **Fatigue states** change by < 0.1 % per millisecond, so they are coupled to F by block
  Picard (waveform-relaxation) iteration: within a block of 2048 nodes (≤ 2 s), F is computed
  from the current fatigue trajectory (linear between nodes), then the fatigue trajectory is
  recomputed exactly from F (linear ODEs; ∫F per step by Hermite-corrected trapezoid; again a
  scan), until the fatigue states change by less than 1e-10 relative; about four iterations per
  block. Errors in A, τ1 and Km against the reference are below 1e-7 relative.
* Rows of a batch are independent and are computed side by side (NaN-padded pulse trains become
  zero-length steps that leave every state unchanged).

References
----------
.. [Ding2003] Ding J, Wexler AS, Binder-Macleod SA (2003). Mathematical models for fatigue
   minimization during functional electrical stimulation. J Electromyogr Kinesiol 13(6):575–588.
.. [Ding2007] Ding J, Chou LW, Kesar TM, Lee SCK, Johnston TE, Wexler AS, Binder-Macleod SA (2007).
   Mathematical model that predicts the force–intensity and force–frequency relationships after
   spinal cord injuries. Muscle Nerve 36(2):214–222.
.. [Hmed2018] Hmed AB, Bakir T, Garnier YM, Sakly A, Lepers R, Binczak S (2018). An approach to a
   muscle force model with force-pulse amplitude relationship of human quadriceps muscles.
   Comput Biol Med 101:218–228.
.. [Doll2015] Doll BD, Kirsch NA, Sharma N (2015). IFAC-PapersOnLine 48(20):338 (cited by
   cocofest for the corrected αA).
.. [cocofest] pyomeca/cocofest (MIT): reference implementation these equations, defaults and
   regression values were checked against (``cocofest/models/ding2003``, ``ding2007``,
   ``hmed2018``).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, Mapping

import numpy as np

from emsim._data import models_dir
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError

__all__ = [
    "DingParameters",
    "ParameterInfo",
    "DingResult",
    "ding_force",
    "ding_force_batch",
    "ding_force_reference",
    "ding_derivatives",
    "cn_sum",
    "DEFAULT_MAX_STEP",
]

#: Default largest RK4 step for F (s): force error ≈ 3e-6 (Ding 2003) to 1e-5 (Ding 2007) of peak.
DEFAULT_MAX_STEP = 1e-3

EVIDENCE_LEVELS = ("measured", "fitted", "extrapolated", "assumed")

_PARAMETER_FORMAT = "emsim.ding_parameters/1"
# Muscle files (emsim.physiology.muscle) carry the same "parameters" object plus pool and fatigue.
_FORMATS = (_PARAMETER_FORMAT, "emsim.muscle/1")

# name -> (unit written in the data file, check, required). The unit is checked on load because
# the papers use ms and a silently mis-scaled value would still "work".
_SPEC: dict[str, tuple[str, str, bool]] = {
    "tau_c": ("s", "positive", True),
    "a_rest": ("N/s", "nonnegative", True),
    "tau1_rest": ("s", "positive", True),
    "tau2": ("s", "nonnegative", True),
    "km_rest": ("1", "positive", True),
    "r0_km_offset": ("1", "finite", True),
    "alpha_a": ("1/s^2", "finite", True),
    "alpha_tau1": ("1/N", "finite", True),
    "alpha_km": ("1/(s*N)", "finite", True),
    "tau_fat": ("s", "positive", True),
    "pd0": ("s", "nonnegative", False),
    "pdt": ("s", "positive", False),
    "hmed_ar": ("1", "positive", False),
    "hmed_bs": ("1/A", "positive", False),
    "hmed_is": ("A", "nonnegative", False),
    "hmed_cr": ("1", "finite", False),
}
_GROUPS = {"pulse-duration term (Ding 2007)": ("pd0", "pdt"),
           "amplitude term (Hmed 2018)": ("hmed_ar", "hmed_bs", "hmed_is", "hmed_cr")}
_ALLOWED = {"positive": "> 0", "nonnegative": ">= 0", "finite": "a finite number"}


def _models_dir() -> Path:
    try:
        return models_dir()
    except FileNotFoundError as exc:
        raise ModelParameterError(str(exc), path="models/") from None


@dataclass(frozen=True)
class ParameterInfo:
    """Provenance of one parameter value, as recorded in the data file.

    Attributes
    ----------
    unit : str
        SI unit as written in the file (``"1"`` for dimensionless).
    source : str
        Key of the paper in the file's ``sources`` table (e.g. ``"ding2003"``).
    evidence : str
        One of ``measured``, ``fitted``, ``extrapolated``, ``assumed``.
    note : str
        Free text: conversions, doubts, where it was transcribed from.
    """

    unit: str
    source: str
    evidence: str
    note: str = ""


def _check_value(name: str, value: Any, path: str, spec: Mapping | None = None) -> float:
    unit, check, _ = (spec or _SPEC)[name]
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)):
        raise ModelParameterError(f"{name} must be a number in {unit}", path=path, value=value,
                                  allowed=_ALLOWED[check])
    v = float(value)
    ok = math.isfinite(v) and (check == "finite" or (v > 0 if check == "positive" else v >= 0))
    if not ok:
        raise ModelParameterError(f"{name} out of range", path=path, value=v, allowed=_ALLOWED[check])
    return v


def read_entries(section: Any, spec: Mapping[str, tuple[str, str, bool]], sources: Mapping,
                 where: str) -> tuple[dict[str, float], dict[str, "ParameterInfo"]]:
    """Check one object of ``{name: {value, unit, source, evidence, note}}`` entries.

    ``spec`` maps each allowed name to ``(unit, check, required)`` with check one of
    ``positive``, ``nonnegative``, ``finite``. Every value must carry its unit (compared
    verbatim: the papers use ms and a mis-scaled value would still "work"), a source listed in
    ``sources`` and an evidence level. Raises :class:`ModelParameterError` naming the JSON path.
    """
    if not isinstance(section, dict):
        raise ModelParameterError("expected an object of parameter entries", path=where)
    values: dict[str, float] = {}
    info: dict[str, ParameterInfo] = {}
    for name, entry in section.items():
        p = f"{where}.{name}"
        if name not in spec:
            raise ModelParameterError("unknown parameter", path=p, value=name,
                                      allowed=", ".join(spec))
        if not isinstance(entry, dict):
            raise ModelParameterError("entry must be an object with value, unit, source, evidence",
                                      path=p)
        for key in ("value", "unit", "source", "evidence"):
            if key not in entry:
                raise ModelParameterError(f"missing '{key}'", path=p)
        unit = spec[name][0]
        if entry["unit"] != unit:
            raise ModelParameterError(f"wrong unit for {name}", path=f"{p}.unit",
                                      value=entry["unit"], allowed=unit)
        if entry["evidence"] not in EVIDENCE_LEVELS:
            raise ModelParameterError("unknown evidence level", path=f"{p}.evidence",
                                      value=entry["evidence"], allowed=", ".join(EVIDENCE_LEVELS))
        if entry["source"] not in sources:
            raise ModelParameterError("source not listed in the file's 'sources'",
                                      path=f"{p}.source", value=entry["source"],
                                      allowed=", ".join(sources) or "(none listed)")
        values[name] = _check_value(name, entry["value"], f"{p}.value", spec)
        info[name] = ParameterInfo(unit=unit, source=entry["source"], evidence=entry["evidence"],
                                   note=str(entry.get("note", "")))
    for name, (_, _, required) in spec.items():
        if required and name not in values:
            raise ModelParameterError(f"missing required parameter '{name}'", path=where)
    return values, info


def read_document(path: Path) -> dict:
    """Read a parameter file of ``models/muscles`` (either format), with typed errors."""
    where = str(path)
    try:
        with open(path, encoding="utf-8") as fh:
            doc = json.load(fh)
    except FileNotFoundError:
        raise ModelParameterError("parameter file not found", path=where) from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelParameterError(f"cannot read parameter file: {exc}", path=where) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("parameters"), dict):
        raise ModelParameterError("parameter file has no 'parameters' object", path=f"{where}:$")
    if doc.get("format") not in _FORMATS:
        raise ModelParameterError("unknown parameter file format", path=f"{where}:$.format",
                                  value=doc.get("format"), allowed=" or ".join(_FORMATS))
    return doc


def _read_parameter_file(path: Path) -> tuple[dict[str, float], dict[str, ParameterInfo], str, dict]:
    doc = read_document(path)
    sources = doc.get("sources") or {}
    values, info = read_entries(doc["parameters"], _SPEC, sources, f"{path}:$.parameters")
    return values, info, str(doc.get("name", path.stem)), dict(sources)


def _load_named(name: str):
    path = _models_dir() / "muscles" / f"{name}.json"
    if not path.is_file():
        known = sorted(p.stem for p in path.parent.glob("*.json")) if path.parent.is_dir() else []
        raise ModelParameterError("unknown parameter set", path="name", value=name,
                                  allowed=", ".join(known) or "(no files in models/muscles)")
    return _read_parameter_file(path)


_DEFAULT_VALUES, _DEFAULT_INFO, _DEFAULT_NAME, _DEFAULT_SOURCES = _load_named("quadriceps_ding2003")


@dataclass(frozen=True)
class DingParameters:
    """Parameters of the Ding-family force and fatigue model (SI units).

    The defaults are the Ding 2003 quadriceps values with the Hmed 2018 amplitude term, read at
    import from ``models/muscles/quadriceps_ding2003.json``; ``provenance`` holds each value's unit,
    source and evidence level. Use :meth:`load` for other files and :func:`dataclasses.replace`
    (or :meth:`replace`) to change values; changed values keep no provenance.

    Parameters
    ----------
    tau_c : float
        Time constant of CN rise and decay, s.
    a_rest : float
        Rested force scaling factor A, N/s (``a_scale`` of Ding 2007).
    tau1_rest : float
        Rested force decline time constant without strongly bound cross-bridges, s.
    tau2 : float
        Additional force decline time constant due to cross-bridge friction, s.
    km_rest : float
        Rested sensitivity of strongly bound cross-bridges to CN, dimensionless.
    r0_km_offset : float
        ``R0 = Km + r0_km_offset`` (1.04 in Ding 2003), dimensionless.
    alpha_a : float
        Fatigue coefficient of A, s⁻² (negative: A falls with force).
    alpha_tau1 : float
        Fatigue coefficient of τ1, N⁻¹.
    alpha_km : float
        Fatigue coefficient of Km, s⁻¹·N⁻¹.
    tau_fat : float
        Recovery time constant of A, τ1 and Km, s.
    pd0, pdt : float or None
        Ding 2007 pulse-duration term, s. Both or neither; when set, ``pulse_width`` is required.
    hmed_ar, hmed_bs, hmed_is, hmed_cr : float or None
        Hmed 2018 amplitude term (Ar dimensionless, Bs in A⁻¹, Is in A, Cr dimensionless). All or
        none; used when ``amplitude`` is given.
    name : str
        Name of the parameter set (file stem).
    provenance : Mapping[str, ParameterInfo]
        Unit, source and evidence level per value (not compared, not hashed).
    sources : Mapping[str, str]
        Full citations keyed as in ``provenance`` (not compared, not hashed).

    Raises
    ------
    ModelParameterError
        If a value is not finite, out of range, or an optional term is only partly given.
    """

    tau_c: float = _DEFAULT_VALUES["tau_c"]
    a_rest: float = _DEFAULT_VALUES["a_rest"]
    tau1_rest: float = _DEFAULT_VALUES["tau1_rest"]
    tau2: float = _DEFAULT_VALUES["tau2"]
    km_rest: float = _DEFAULT_VALUES["km_rest"]
    r0_km_offset: float = _DEFAULT_VALUES["r0_km_offset"]
    alpha_a: float = _DEFAULT_VALUES["alpha_a"]
    alpha_tau1: float = _DEFAULT_VALUES["alpha_tau1"]
    alpha_km: float = _DEFAULT_VALUES["alpha_km"]
    tau_fat: float = _DEFAULT_VALUES["tau_fat"]
    pd0: float | None = _DEFAULT_VALUES.get("pd0")
    pdt: float | None = _DEFAULT_VALUES.get("pdt")
    hmed_ar: float | None = _DEFAULT_VALUES.get("hmed_ar")
    hmed_bs: float | None = _DEFAULT_VALUES.get("hmed_bs")
    hmed_is: float | None = _DEFAULT_VALUES.get("hmed_is")
    hmed_cr: float | None = _DEFAULT_VALUES.get("hmed_cr")
    name: str = _DEFAULT_NAME
    provenance: Mapping[str, ParameterInfo] = field(
        default_factory=lambda: MappingProxyType(dict(_DEFAULT_INFO)),
        compare=False, hash=False, repr=False)
    sources: Mapping[str, str] = field(
        default_factory=lambda: MappingProxyType(dict(_DEFAULT_SOURCES)),
        compare=False, hash=False, repr=False)

    def __post_init__(self):
        for name, (_, _, required) in _SPEC.items():
            value = getattr(self, name)
            if value is None and not required:
                continue
            object.__setattr__(self, name, _check_value(name, value, name))
        for label, group in _GROUPS.items():
            given = [getattr(self, n) is not None for n in group]
            if any(given) and not all(given):
                missing = [n for n, g in zip(group, given) if not g]
                raise ModelParameterError(f"{label} is only partly given; missing {', '.join(missing)}",
                                          path=missing[0])

    # --- construction -------------------------------------------------------------------------

    @classmethod
    def load(cls, name: str) -> "DingParameters":
        """Load a parameter set from ``models/muscles/<name>.json``.

        Parameters
        ----------
        name : str
            File stem, e.g. ``"quadriceps_ding2003"`` or ``"quadriceps_ding2007"``.

        Raises
        ------
        ModelParameterError
            Unknown name, or a file with missing, mis-united or out-of-range values.
        """
        if not isinstance(name, str) or not name or "/" in name or "\\" in name:
            raise ModelParameterError("parameter set name must be a file stem", path="name",
                                      value=name)
        return cls._from_parts(*_load_named(name))

    @classmethod
    def from_file(cls, path: str | Path) -> "DingParameters":
        """Load a parameter set from a JSON file in the ``models/muscles`` format."""
        return cls._from_parts(*_read_parameter_file(Path(path)))

    @classmethod
    def _from_parts(cls, values, info, name, sources) -> "DingParameters":
        kwargs = {n: values.get(n) for n in _SPEC}
        return cls(**kwargs, name=name, provenance=MappingProxyType(info),
                   sources=MappingProxyType(sources))

    def replace(self, **changes: float) -> "DingParameters":
        """A copy with some values changed; their provenance is dropped (now user-set)."""
        unknown = set(changes) - {f.name for f in fields(self)}
        if unknown:
            raise ModelParameterError("unknown parameter", path=sorted(unknown)[0],
                                      allowed=", ".join(_SPEC))
        prov = {k: v for k, v in self.provenance.items() if k not in changes}
        return replace(self, **changes, provenance=MappingProxyType(prov))

    # --- derived quantities -------------------------------------------------------------------

    @property
    def has_pulse_duration_term(self) -> bool:
        """True if the Ding 2007 pulse-duration term is defined (``pd0``, ``pdt``)."""
        return self.pd0 is not None

    @property
    def has_amplitude_term(self) -> bool:
        """True if the Hmed 2018 amplitude term is defined."""
        return self.hmed_ar is not None

    @property
    def r0_rest(self) -> float:
        """R0 at rest, ``km_rest + r0_km_offset``."""
        return self.km_rest + self.r0_km_offset

    def pulse_duration_factor(self, pulse_width: Any) -> np.ndarray:
        """Ding 2007 factor ``1 − exp(−(PD − PD0)/PDt)``, 0 for ``PD ≤ PD0``.

        Parameters
        ----------
        pulse_width : array_like
            Pulse duration PD, s.

        Returns
        -------
        numpy.ndarray
            Factor in [0, 1) that multiplies A. All ones if the set has no pulse-duration term.
        """
        pw = np.asarray(pulse_width, dtype=float)
        if not self.has_pulse_duration_term:
            return np.ones_like(pw)
        return np.where(pw > self.pd0, -np.expm1(-(pw - self.pd0) / self.pdt), 0.0)

    def amplitude_factor(self, amplitude: Any) -> np.ndarray:
        """Hmed 2018 factor ``λ = Ar (tanh(Bs (I − Is)) + Cr)``, clamped to ≥ 0.

        Parameters
        ----------
        amplitude : array_like
            Pulse amplitude I, A.

        Returns
        -------
        numpy.ndarray
            λ per pulse; 0 below threshold (≈ 17.0 mA with the defaults). All ones if the set has
            no amplitude term.
        """
        amp = np.asarray(amplitude, dtype=float)
        if not self.has_amplitude_term:
            return np.ones_like(amp)
        lam = self.hmed_ar * (np.tanh(self.hmed_bs * (amp - self.hmed_is)) + self.hmed_cr)
        return np.maximum(lam, 0.0)

    @property
    def amplitude_threshold(self) -> float | None:
        """Amplitude (A) at which the Hmed factor reaches 0, or None without the term."""
        if not self.has_amplitude_term:
            return None
        return self.hmed_is + math.atanh(-self.hmed_cr) / self.hmed_bs


@dataclass(frozen=True)
class DingResult:
    """Output of :func:`ding_force` / :func:`ding_force_batch`.

    Attributes
    ----------
    t : numpy.ndarray
        Evaluation times, s, shape ``(n_t,)``.
    force : numpy.ndarray
        Force F, N: shape ``(n_t,)`` from :func:`ding_force`, ``(batch, n_t)`` from the batch form.
    cn : numpy.ndarray or None
        CN (dimensionless), same shape as ``force``; only with ``return_states=True``.
    a, tau1, km : numpy.ndarray or None
        Fatigue states A (N/s), τ1 (s), Km (dimensionless), same shape as ``force``; only with
        ``fatigue=True`` and ``return_states=True``.
    params : DingParameters
        The parameters used.
    """

    t: np.ndarray
    force: np.ndarray
    params: DingParameters
    cn: np.ndarray | None = None
    a: np.ndarray | None = None
    tau1: np.ndarray | None = None
    km: np.ndarray | None = None


# ================================================================================================
# input checking

def _bad(msg: str, path: str, value: Any = None, allowed: str | None = None, has_value=True):
    return PhysiologyInputError(msg, path=path, value=value, allowed=allowed, has_value=has_value)


def _float_array(x: Any, name: str) -> np.ndarray:
    if x is None:
        raise _bad(f"{name} is required", name, has_value=False)
    try:
        arr = np.asarray(x, dtype=float)
    except (TypeError, ValueError):
        raise _bad(f"{name} must be numeric", name, x, "an array of numbers") from None
    if arr.dtype == object:
        raise _bad(f"{name} must be numeric", name, x, "an array of numbers")
    return arr


def _index_text(name: str, idx: tuple) -> str:
    return f"{name}[{', '.join(str(int(i)) for i in idx)}]"


def _check_times(t: Any) -> np.ndarray:
    arr = _float_array(t, "t")
    if arr.ndim != 1 or arr.size == 0:
        raise _bad("t must be a non-empty 1-D array of times in s", "t", f"shape {arr.shape}",
                   "1-D, at least one element")
    bad = np.flatnonzero(~np.isfinite(arr))
    if bad.size:
        raise _bad("t must be finite", f"t[{bad[0]}]", float(arr[bad[0]]), "finite times in s")
    steps = np.flatnonzero(np.diff(arr) <= 0)
    if steps.size:
        i = steps[0] + 1
        raise _bad("t must be strictly increasing", f"t[{i}]", float(arr[i]),
                   f"> {arr[i - 1]!r} (the previous time)")
    return arr


def _check_pulses(pulse_times: Any, batch: bool) -> np.ndarray:
    arr = _float_array(pulse_times, "pulse_times")
    want = 2 if batch else 1
    if arr.ndim != want:
        raise _bad(f"pulse_times must be {'2-D (batch, pulses)' if batch else '1-D'}",
                   "pulse_times", f"shape {arr.shape}",
                   "batch × pulses, NaN-padded" if batch else "1-D array of times in s")
    if batch and arr.shape[0] == 0:
        raise _bad("pulse_times has no rows", "pulse_times", f"shape {arr.shape}", ">= 1 row")
    a2 = arr if batch else arr[None, :]
    nan = np.isnan(a2)
    inf = np.isinf(a2)
    if inf.any():
        idx = np.argwhere(inf)[0]
        raise _bad("pulse times must be finite", _index_text("pulse_times", idx if batch else idx[1:]),
                   float(a2[tuple(idx)]), "finite times in s (NaN only as trailing padding)")
    if nan.any():
        if not batch:
            i = int(np.flatnonzero(nan[0])[0])
            raise _bad("pulse times must not be NaN", f"pulse_times[{i}]", float("nan"),
                       "finite times in s (NaN padding only in the batch form)")
        gap = nan[:, :-1] & ~nan[:, 1:]
        if gap.any():
            r, j = np.argwhere(gap)[0]
            raise _bad("NaN padding must be trailing", f"pulse_times[{r}, {j + 1}]",
                       float(a2[r, j + 1]), "finite times first, then NaN padding")
    with np.errstate(invalid="ignore"):
        d = np.diff(a2, axis=1)
        bad = (d <= 0) & ~np.isnan(d)
    if bad.any():
        r, j = np.argwhere(bad)[0]
        what = "duplicate" if d[r, j] == 0 else "unsorted"
        path = f"pulse_times[{r}, {j + 1}]" if batch else f"pulse_times[{j + 1}]"
        raise _bad(f"pulse times must be strictly increasing ({what} time)", path,
                   float(a2[r, j + 1]), f"> {float(a2[r, j])!r} s (the previous pulse)")
    return a2


def _check_per_pulse(x: Any, name: str, pulses: np.ndarray, batch: bool, check: str,
                     unit: str) -> np.ndarray:
    arr = _float_array(x, name)
    if arr.ndim == 0:
        arr = np.full(pulses.shape, float(arr))
    elif not batch:
        arr = arr[None, :] if arr.ndim == 1 else np.full((2, 0), np.nan)  # 2-D: shape mismatch
    if arr.shape != pulses.shape:
        shown = pulses.shape if batch else pulses.shape[1:]
        got = arr.shape if batch else np.shape(x)
        raise _bad(f"{name} must have one value per pulse", name, f"shape {got}",
                   f"a scalar or shape {shown}")
    valid = ~np.isnan(pulses)
    with np.errstate(invalid="ignore"):
        ok = np.isfinite(arr) & ((arr > 0) if check == "positive" else (arr >= 0))
    bad = valid & ~ok
    if bad.any():
        idx = np.argwhere(bad)[0]
        path = _index_text(name, idx if batch else idx[1:])
        raise _bad(f"{name} out of range", path, float(arr[tuple(idx)]),
                   f"{'> 0' if check == 'positive' else '>= 0'} {unit}, finite")
    return np.where(valid, arr, np.nan)


def _check_max_step(max_step: Any) -> float:
    try:
        v = float(max_step)
    except (TypeError, ValueError):
        raise _bad("max_step must be a number in s", "max_step", max_step,
                   "0 < max_step <= 0.01 s") from None
    if not (math.isfinite(v) and 0 < v <= 0.01):
        raise _bad("max_step out of range", "max_step", v, "0 < max_step <= 0.01 s")
    return v


def _check_params(params: Any) -> DingParameters:
    if params is None:
        return DingParameters()
    if not isinstance(params, DingParameters):
        raise _bad("params must be a DingParameters", "params", type(params).__name__,
                   "DingParameters or None")
    return params


def _check_r0_km(r0_km: Any) -> str:
    if r0_km not in ("fatigued", "rest"):
        raise _bad("unknown r0_km", "r0_km", r0_km, "'fatigued' or 'rest'")
    return r0_km


def _pulse_factors(params: DingParameters, pulses: np.ndarray, pulse_width, amplitude, batch):
    """Per-pulse A factor (Ding 2007) and λ (Hmed 2018), NaN where padded."""
    valid = ~np.isnan(pulses)
    if params.has_pulse_duration_term:
        if pulse_width is None:
            raise _bad(f"pulse_width is required by parameter set '{params.name}' "
                       "(Ding 2007 pulse-duration term)", "pulse_width", has_value=False)
        pw = _check_per_pulse(pulse_width, "pulse_width", pulses, batch, "positive", "s")
        a_factor = params.pulse_duration_factor(np.where(valid, pw, 1.0))
    else:
        if pulse_width is not None:  # still validated: a bad value is a caller bug either way
            _check_per_pulse(pulse_width, "pulse_width", pulses, batch, "positive", "s")
        a_factor = np.ones(pulses.shape)
    if amplitude is not None:
        amp = _check_per_pulse(amplitude, "amplitude", pulses, batch, "nonnegative", "A")
        lam = params.amplitude_factor(np.where(valid, amp, 0.0))
    else:
        lam = np.ones(pulses.shape)
    return np.where(valid, a_factor, np.nan), np.where(valid, lam, np.nan)


# ================================================================================================
# numerical core

# exp() of anything below this is 0 in float64; clipping keeps cumulative sums well conditioned.
_LOG_TINY = -745.0
_DENSE_BLOCK = 16
_FAST_BLOCK = 256
# Largest cumulative log-decay inside one fast block: exp(±600) stays far from overflow.
_SAFE_RANGE = 600.0
_TRI = {n: np.tri(n, dtype=bool) for n in range(1, _DENSE_BLOCK + 1)}


def _block_solve(logd: np.ndarray, u: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Within-block solution from zero start, and the cumulative log-decay, along the last axis."""
    n = logd.shape[-1]
    c = np.cumsum(logd, axis=-1)
    diff = c[..., :, None] - c[..., None, :]
    w = np.exp(np.where(_TRI[n], diff, -np.inf))
    return (w @ u[..., None])[..., 0], c


def _linear_scan_dense(logd: np.ndarray, u: np.ndarray, x0: Any) -> np.ndarray:
    """Robust form of :class:`_ScanPlan` for arbitrarily strong decay.

    Blocks of 16 are solved with a dense transfer matrix whose entries ``exp(c_k − c_j) ≤ 1``
    never overflow; block end states are scanned recursively. Work O(16·n).
    """
    logd = np.maximum(logd, _LOG_TINY)
    n = logd.shape[-1]
    x0 = np.broadcast_to(np.asarray(x0, dtype=float), u.shape[:-1])
    if n == 0:
        return np.zeros(u.shape)
    if n <= _DENSE_BLOCK:
        y, c = _block_solve(logd, u)
        return y + np.exp(c) * x0[..., None]
    nb = -(-n // _DENSE_BLOCK)
    pad = nb * _DENSE_BLOCK - n
    if pad:
        logd = np.concatenate([logd, np.zeros(logd.shape[:-1] + (pad,))], axis=-1)
        u = np.concatenate([u, np.zeros(u.shape[:-1] + (pad,))], axis=-1)
    shape_l = logd.shape[:-1] + (nb, _DENSE_BLOCK)
    shape_u = u.shape[:-1] + (nb, _DENSE_BLOCK)
    y, c = _block_solve(logd.reshape(shape_l), u.reshape(shape_u))
    ends = _linear_scan_dense(c[..., -1], y[..., -1], x0)
    starts = np.concatenate([x0[..., None], ends[..., :-1]], axis=-1)
    x = y + np.exp(c) * starts[..., None]
    return x.reshape(u.shape[:-1] + (nb * _DENSE_BLOCK,))[..., :n]


class _ScanPlan:
    """Solver for ``x_k = exp(logd_k) · x_{k−1} + u_k`` along the last axis (``x_{−1} = x0``).

    A blocked parallel prefix, so there is no Python loop over k. Inside a block of 256 the
    transfer weights ``exp(c_k − c_j)`` (c the cumulative log-decay) factor into
    ``exp(c_k) · exp(−c_j)``, so a block is two exponentials and a cumulative sum per element;
    block end states are scanned recursively. The factorisation is used only while a block's
    cumulative decay stays above ``exp(−600)``, which holds for steps ≤ ``max_step``; otherwise
    the dense form (:func:`_linear_scan_dense`) is used. The plan depends only on ``logd``, so
    it is built once and applied to several right-hand sides ``u`` (extra leading axes of ``u``
    broadcast against ``logd``'s).
    """

    def __init__(self, logd: np.ndarray):
        logd = np.clip(logd, _LOG_TINY, 0.0)
        self.n = n = logd.shape[-1]
        self.dense = None
        if n == 0:
            return
        nb = -(-n // _FAST_BLOCK) if n > _FAST_BLOCK else 1
        k = _FAST_BLOCK if nb > 1 else n
        self.nb, self.k, self.pad = nb, k, nb * k - n
        lp = np.concatenate([logd, np.zeros(logd.shape[:-1] + (self.pad,))], axis=-1) \
            if self.pad else logd
        c = np.cumsum(lp.reshape(logd.shape[:-1] + (nb, k)), axis=-1)
        if c.size and c[..., -1].min() < -_SAFE_RANGE:
            self.dense = logd
            return
        self.ec = np.exp(c)
        self.emc = np.exp(-c)
        self.next = _ScanPlan(c[..., -1]) if nb > 1 else None

    def apply(self, u: np.ndarray, x0: Any) -> np.ndarray:
        """Solution x for right-hand side ``u`` and start value ``x0`` (broadcast)."""
        if self.n == 0:
            return np.zeros(u.shape)
        if self.dense is not None:
            return _linear_scan_dense(self.dense, u, x0)
        x0 = np.broadcast_to(np.asarray(x0, dtype=float), u.shape[:-1])
        if self.pad:
            u = np.concatenate([u, np.zeros(u.shape[:-1] + (self.pad,))], axis=-1)
        ub = u.reshape(u.shape[:-1] + (self.nb, self.k))
        y = self.ec * np.cumsum(self.emc * ub, axis=-1)
        if self.next is None:
            x = y + self.ec * x0[..., None, None]
        else:
            ends = self.next.apply(y[..., -1], x0)
            starts = np.concatenate([x0[..., None], ends[..., :-1]], axis=-1)
            x = y + self.ec * starts[..., None]
        return x.reshape(u.shape[:-1] + (self.nb * self.k,))[..., :self.n]


def _linear_scan(logd: np.ndarray, u: np.ndarray, x0: Any) -> np.ndarray:
    """One-off :class:`_ScanPlan` solve."""
    return _ScanPlan(logd).apply(u, x0)


def _build_nodes(pulses_row: np.ndarray, t_eval: np.ndarray, max_step: float):
    """Node grid of one row: pulses, output times and fill points at most max_step apart."""
    t0 = min(t_eval[0], pulses_row[0]) if pulses_row.size else t_eval[0]
    return fill_nodes(np.union1d(np.union1d(pulses_row, t_eval), [t0]), max_step)


def fill_nodes(base: np.ndarray, max_step: float) -> np.ndarray:
    """``base`` (sorted, unique) with equal fill points so that no step exceeds ``max_step``."""
    gaps = np.diff(base)
    nsub = np.maximum(1, np.ceil(gaps / max_step * (1 - 1e-12))).astype(np.int64)
    owner = np.repeat(np.arange(gaps.size), nsub)
    first = np.repeat(np.cumsum(nsub) - nsub, nsub)
    frac = (np.arange(owner.size) - first) / nsub[owner]
    nodes = np.append(base[owner] + frac * gaps[owner], base[-1])
    return nodes


def _prepare_rows(pulses: np.ndarray, a_factor: np.ndarray, lam: np.ndarray, t_eval: np.ndarray,
                  max_step: float, tau_c: float):
    """Padded per-node arrays for a group of rows (independent of the parameters' fatigue)."""
    rows = []
    for r in range(pulses.shape[0]):
        valid = ~np.isnan(pulses[r])
        p = pulses[r, valid]
        nodes = _build_nodes(p, t_eval, max_step)
        n = nodes.size
        # governing pulse of the step that starts at each node (−1 before the first pulse)
        gov = np.searchsorted(p, nodes, side="right") - 1
        is_pulse = np.zeros(n, dtype=bool)
        pulse_node = np.searchsorted(nodes, p)
        is_pulse[pulse_node] = True
        lam_n = np.zeros(n)
        lam_n[pulse_node] = lam[r, valid]
        # R_i uses the interval to the previous pulse; the first pulse gets R = 1 (exp(−inf) = 0)
        decay_prev = np.zeros(n)
        if p.size:
            decay_prev[pulse_node] = np.exp(-np.diff(p, prepend=-np.inf) / tau_c)
        afac_n = (np.where(gov >= 0, a_factor[r, valid][np.maximum(gov, 0)], 0.0) if p.size
                  else np.zeros(n))
        eval_idx = np.searchsorted(nodes, t_eval)
        rows.append((nodes, is_pulse, lam_n, decay_prev, afac_n, eval_idx))
    nmax = max(r[0].size for r in rows)

    def pad(i, fill_last=False, fill=0.0):
        out = np.empty((len(rows), nmax), dtype=rows[0][i].dtype)
        for k, row in enumerate(rows):
            a = row[i]
            out[k, :a.size] = a
            out[k, a.size:] = a[-1] if fill_last else fill
        return out

    nodes = pad(0, fill_last=True)
    return dict(
        nodes=nodes,
        h=np.diff(nodes, axis=1),          # step k−1 → k, zero in the padding
        is_pulse=pad(1, fill=False),
        lam=pad(2),
        decay_prev=pad(3),
        afac=pad(4),
        eval_idx=np.stack([r[5] for r in rows]),
    )


def _rk4_affine(h, e0, cn0, tau_c, afac, a0, a1, t10, t11, km0, km1, tau2):
    """One RK4 step of dF/dt = a(t) − b(t) F over [0, h] as F1 = φ F0 + ψ.

    CN is evaluated in closed form at the stage times; the fatigue states are linear across the
    step. Also returns the end-point coefficients (a, b) used by the Hermite quadrature of F.
    """
    def coeffs(tau, w):
        cn = (cn0 + e0 * tau) * np.exp(-tau / tau_c)
        a_st = a0 + w * (a1 - a0)
        km = km0 + w * (km1 - km0)
        t1 = t10 + w * (t11 - t10)
        s = cn / (km + cn)
        return a_st * afac * s, 1.0 / (t1 + tau2 * s)

    ab, bb = coeffs(0.0, 0.0)
    am, bm = coeffs(0.5 * h, 0.5)
    ae, be = coeffs(h, 1.0)
    hh = 0.5 * h
    # homogeneous part (F0 = 1, a = 0)
    k1 = -bb
    k2 = -bm * (1.0 + hh * k1)
    k3 = -bm * (1.0 + hh * k2)
    k4 = -be * (1.0 + h * k3)
    phi = 1.0 + h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    # particular part (F0 = 0)
    k1 = ab
    k2 = am - bm * (hh * k1)
    k3 = am - bm * (hh * k2)
    k4 = ae - be * (h * k3)
    psi = h / 6.0 * (k1 + 2.0 * k2 + 2.0 * k3 + k4)
    return phi, psi, ab, bb, ae, be


def _log_phi(phi: np.ndarray) -> np.ndarray:
    # RK4's amplification stays positive while h/τ_eff < ~2.7; beyond that the step is useless.
    if not np.all(phi > 0):
        raise PhysiologyInputError(
            "max_step too large for these parameters (force step unstable)", path="max_step",
            allowed="a step well below tau1_rest")
    return np.log(phi)


def _simulate_group(prep: dict, t_eval: np.ndarray, prm: DingParameters, fatigue: bool,
                    r0_fatigued: bool, want_states: bool, block_nodes: int,
                    tol: float = 1e-10, max_iter: int = 50):
    """Integrate one group of rows on their node grids; returns force (and states) at t_eval."""
    nodes, h = prep["nodes"], prep["h"]
    B, N = nodes.shape
    tau_c = prm.tau_c
    eval_idx = prep["eval_idx"]
    out = {k: np.zeros((B, t_eval.size)) for k in ("f", "cn", "a", "tau1", "km")}
    rest = np.array([prm.a_rest, prm.tau1_rest, prm.km_rest])
    alphas = np.array([prm.alpha_a, prm.alpha_tau1, prm.alpha_km])

    # State at the node just before the current block, per row. Node 0 (the start, t0) may
    # itself be the first pulse, hence its jump of E.
    e = prep["is_pulse"][:, 0] * prep["lam"][:, 0] / tau_c
    cn = np.zeros(B)
    f = np.zeros(B)
    fat = np.repeat(rest[:, None], B, axis=1)          # (3, B): A, τ1, Km

    # Output positions per row and block, found once (eval_idx rows are sorted).
    starts = np.concatenate([[0], np.arange(1, N, block_nodes), [N]])
    cuts = np.stack([np.searchsorted(eval_idx[r], starts) for r in range(B)])
    block_no = {int(k): i for i, k in enumerate(starts[:-1])}

    def store(k0, k1, f_blk, cn_blk, fat_blk):
        b = block_no[k0]
        for r in range(B):
            lo, hi = cuts[r, b], cuts[r, b + 1]
            if lo == hi:
                continue
            j = eval_idx[r, lo:hi] - k0
            out["f"][r, lo:hi] = f_blk[r, j]
            if want_states:
                out["cn"][r, lo:hi] = cn_blk[r, j]
                for name, x in zip(("a", "tau1", "km"), fat_blk):
                    out[name][r, lo:hi] = x[r, j] if np.ndim(x) == 2 else x

    store(0, 1, f[:, None], cn[:, None], fat[:, :, None])

    for s in range(1, N, block_nodes):
        stop = min(N, s + block_nodes)
        hp = h[:, s - 1:stop - 1]                     # step preceding each block node
        is_p = prep["is_pulse"][:, s:stop]
        lam_over_tc = prep["lam"][:, s:stop] / tau_c
        dprev = prep["decay_prev"][:, s:stop]
        afac = prep["afac"][:, s - 1:stop - 1]        # governing pulse of each step
        plan_c = _ScanPlan(-hp / tau_c)
        dc_h = np.exp(-hp / tau_c) * hp

        def cn_scan(km_nodes):
            r0 = km_nodes + prm.r0_km_offset
            e_blk = plan_c.apply(is_p * lam_over_tc * (1.0 + (r0 - 1.0) * dprev), e)
            e_prev = np.concatenate([e[:, None], e_blk[:, :-1]], axis=1)
            cn_blk = plan_c.apply(dc_h * e_prev, cn)
            cn_prev = np.concatenate([cn[:, None], cn_blk[:, :-1]], axis=1)
            return e_blk, cn_blk, e_prev, cn_prev

        if not fatigue:
            e_blk, cn_blk, e_prev, cn_prev = cn_scan(prm.km_rest)
            phi, psi, *_ = _rk4_affine(hp, e_prev, cn_prev, tau_c, afac, prm.a_rest, prm.a_rest,
                                       prm.tau1_rest, prm.tau1_rest, prm.km_rest, prm.km_rest,
                                       prm.tau2)
            f_blk = _ScanPlan(_log_phi(phi)).apply(psi, f)
            store(s, stop, f_blk, cn_blk, rest)
            e, cn, f = e_blk[:, -1], cn_blk[:, -1], f_blk[:, -1]
            continue

        # --- fatigue: block Picard (waveform-relaxation) iteration ------------------------------
        tb = nodes[:, s:stop] - nodes[:, s - 1:s]     # time since the block's start node
        plan_fat = _ScanPlan(-hp / prm.tau_fat)
        wmid = alphas[:, None, None] * np.exp(-0.5 * hp / prm.tau_fat)  # α·e^{-h/2τfat}
        # Initial guess: continue each fatigue state along its current derivative.
        slope = -(fat - rest[:, None]) / prm.tau_fat + alphas[:, None] * f
        fat_blk = fat[:, :, None] + slope[:, :, None] * tb
        fixed = None if r0_fatigued else cn_scan(prm.km_rest)
        for _ in range(max_iter):
            e_blk, cn_blk, e_prev, cn_prev = cn_scan(fat_blk[2]) if r0_fatigued else fixed
            fat_prev = np.concatenate([fat[:, :, None], fat_blk[:, :, :-1]], axis=2)
            phi, psi, ab, bb, ae, be = _rk4_affine(
                hp, e_prev, cn_prev, tau_c, afac, fat_prev[0], fat_blk[0], fat_prev[1],
                fat_blk[1], fat_prev[2], fat_blk[2], prm.tau2)
            f_blk = _ScanPlan(_log_phi(phi)).apply(psi, f)
            f_prev = np.concatenate([f[:, None], f_blk[:, :-1]], axis=1)
            # ∫F over each step: trapezoid plus Hermite end-slope correction (4th order)
            integral = (0.5 * hp * (f_prev + f_blk)
                        + hp * hp / 12.0 * ((ab - bb * f_prev) - (ae - be * f_blk)))
            new = rest[:, None, None] + plan_fat.apply(wmid * integral, fat - rest[:, None])
            change = float(np.max(np.abs(new - fat_blk) / np.abs(rest)[:, None, None]))
            fat_blk = new
            if change < tol:
                break
        else:  # pragma: no cover - not reached with physiological parameters
            raise RuntimeError(f"fatigue iteration did not converge (last change {change:.2e})")
        store(s, stop, f_blk, cn_blk, fat_blk)
        e, cn, f = e_blk[:, -1], cn_blk[:, -1], f_blk[:, -1]
        fat = fat_blk[:, :, -1]
    return out["f"], out


def ding_force_batch(pulse_times: Any, t: Any, params: DingParameters | None = None, *,
                     pulse_width: Any = None, amplitude: Any = None, fatigue: bool = False,
                     r0_km: Literal["fatigued", "rest"] = "fatigued",
                     return_states: bool = False,
                     max_step: float = DEFAULT_MAX_STEP) -> DingResult:
    """Force of the Ding-family model for a batch of pulse trains.

    Every row starts from rest (CN = F = 0, fatigue states at their rested values) at
    ``min(t[0], first pulse)``; pulses before ``t[0]`` therefore count.

    Parameters
    ----------
    pulse_times : array_like, shape (batch, n_pulses)
        Pulse onset times, s. Each row strictly increasing; ragged rows are padded at the end
        with NaN. A row of only NaN is a train without pulses (zero force).
    t : array_like, shape (n_t,)
        Evaluation times, s, strictly increasing, shared by all rows.
    params : DingParameters, optional
        Model parameters; default ``DingParameters()`` (Ding 2003 quadriceps).
    pulse_width : array_like, optional
        Pulse duration per pulse, s, same shape as ``pulse_times`` (or a scalar). Required when
        ``params`` has the Ding 2007 pulse-duration term; otherwise validated and ignored.
    amplitude : array_like, optional
        Pulse amplitude per pulse, A, same shape as ``pulse_times`` (or a scalar). Scales each
        pulse by the Hmed 2018 factor when ``params`` has that term; otherwise validated and
        ignored. Omitted: every pulse counts fully (λ = 1).
    fatigue : bool, default False
        Integrate the Ding 2003 fatigue states A, τ1 and Km.
    r0_km : {"fatigued", "rest"}, default "fatigued"
        Km used in ``R0 = Km + r0_km_offset`` at each pulse when ``fatigue`` is on: the fatigued
        state (Ding 2003) or the rested value (cocofest).
    return_states : bool, default False
        Also return CN and, with fatigue, A, τ1 and Km on the grid.
    max_step : float, default 1e-3
        Largest integration step for F, s (0 < max_step ≤ 0.01).

    Returns
    -------
    DingResult
        ``force`` has shape ``(batch, n_t)``.

    Raises
    ------
    PhysiologyInputError
        Malformed, non-finite, unsorted or duplicate pulse times; per-pulse arrays of the wrong
        shape or out of range; a missing ``pulse_width`` for a pulse-duration parameter set; a
        bad ``t``, ``max_step`` or ``r0_km``. The error names the argument and element.

    Examples
    --------
    >>> import numpy as np
    >>> trains = np.array([[0.0, 0.05, 0.10], [0.0, 0.03, np.nan]])
    >>> ding_force_batch(trains, np.linspace(0, 0.3, 31)).force.shape
    (2, 31)
    """
    return _run(pulse_times, t, params, pulse_width, amplitude, fatigue, r0_km, return_states,
                max_step, batch=True)


def ding_force(pulse_times: Any, t: Any, params: DingParameters | None = None, *,
               pulse_width: Any = None, amplitude: Any = None, fatigue: bool = False,
               r0_km: Literal["fatigued", "rest"] = "fatigued", return_states: bool = False,
               max_step: float = DEFAULT_MAX_STEP) -> DingResult:
    """Force of the Ding-family model for one pulse train.

    Same as :func:`ding_force_batch` for a single train: ``pulse_times`` is 1-D (no NaN), the
    per-pulse arrays are 1-D of the same length, and ``force`` has shape ``(n_t,)``.

    Examples
    --------
    >>> import numpy as np
    >>> res = ding_force(np.arange(34) / 33, [1 / 33, 1.0])
    >>> np.round(res.force, 1)
    array([ 56.3, 268.9])
    """
    return _run(pulse_times, t, params, pulse_width, amplitude, fatigue, r0_km, return_states,
                max_step, batch=False)


# Bound on nodes × rows held in memory at once (~tens of MB of temporaries).
_MAX_GROUP_NODES = 400_000


def _run(pulse_times, t, params, pulse_width, amplitude, fatigue, r0_km, return_states, max_step,
         batch):
    prm = _check_params(params)
    t_eval = _check_times(t)
    pulses = _check_pulses(pulse_times, batch)
    a_factor, lam = _pulse_factors(prm, pulses, pulse_width, amplitude, batch)
    max_step = _check_max_step(max_step)
    r0_fatigued = _check_r0_km(r0_km) == "fatigued"
    fatigue = bool(fatigue)
    block_nodes = 2048 if fatigue else 65536

    B = pulses.shape[0]
    force = np.zeros((B, t_eval.size))
    states = {k: np.zeros((B, t_eval.size)) for k in ("cn", "a", "tau1", "km")} if return_states else {}
    # Rows are grouped so that the padded node arrays stay bounded in memory.
    span = (max(t_eval[-1], np.nanmax(pulses)) if np.isfinite(pulses).any() else t_eval[-1]) - \
        min(t_eval[0], np.nanmin(pulses) if np.isfinite(pulses).any() else t_eval[0])
    est = span / max_step + t_eval.size + pulses.shape[1] + 2
    group = max(1, int(_MAX_GROUP_NODES // max(est, 1)))
    for g0 in range(0, B, group):
        g1 = min(B, g0 + group)
        prep = _prepare_rows(pulses[g0:g1], a_factor[g0:g1], lam[g0:g1], t_eval, max_step,
                             prm.tau_c)
        f, st = _simulate_group(prep, t_eval, prm, fatigue, r0_fatigued, return_states,
                                block_nodes)
        force[g0:g1] = f
        for k in states:
            states[k][g0:g1] = st[k]
    if not batch:
        force = force[0]
        states = {k: v[0] for k, v in states.items()}
    return DingResult(
        t=t_eval, force=force, params=prm,
        cn=states.get("cn"),
        a=states.get("a") if fatigue else None,
        tau1=states.get("tau1") if fatigue else None,
        km=states.get("km") if fatigue else None,
    )


# ================================================================================================
# reference (brute-force) forms

def cn_sum(t: float, pulse_times: Any, *, r0: float, tau_c: float, lam: Any = None) -> float:
    """The pulse sum ``Σ_{t_i ≤ t} λ_i R_i exp(−(t − t_i)/τc)`` of Ding 2003 eq. 1, over all pulses.

    Parameters
    ----------
    t : float
        Time, s.
    pulse_times : array_like
        Strictly increasing pulse times, s.
    r0 : float
        Enhancement R0 (dimensionless).
    tau_c : float
        CN time constant, s.
    lam : array_like, optional
        Per-pulse amplitude factor λ_i (default 1).

    Returns
    -------
    float
        The sum (dimensionless), as cocofest's ``cn_sum_fun`` without truncation.
    """
    p = _check_pulses(pulse_times, batch=False)[0]
    lam_arr = np.ones_like(p) if lam is None else np.asarray(lam, dtype=float)
    past = p <= t
    r = 1.0 + (r0 - 1.0) * np.exp(-np.diff(p, prepend=-np.inf) / tau_c)
    return float(np.sum((lam_arr * r * np.exp(-(t - p) / tau_c))[past]))


def ding_derivatives(t: float, state: Any, pulse_times: Any, params: DingParameters | None = None,
                     *, pulse_width: Any = None, amplitude: Any = None,
                     r0_km: Literal["fatigued", "rest"] = "rest") -> np.ndarray:
    """Right-hand side of the model at one time, summing over all past pulses (brute force).

    Parameters
    ----------
    t : float
        Time, s.
    state : array_like
        ``(CN, F)`` or, with fatigue, ``(CN, F, A, τ1, Km)``.
    pulse_times : array_like
        Strictly increasing pulse times, s.
    params : DingParameters, optional
        Default ``DingParameters()``.
    pulse_width, amplitude : array_like, optional
        Per pulse, s and A (see :func:`ding_force`).
    r0_km : {"rest", "fatigued"}, default "rest"
        Km used for R0: the rested value (cocofest) or the state's Km at time t.

    Returns
    -------
    numpy.ndarray
        ``d state / dt`` with the same length as ``state``.
    """
    prm = _check_params(params)
    y = np.asarray(state, dtype=float)
    if y.shape not in ((2,), (5,)):
        raise _bad("state must be (CN, F) or (CN, F, A, tau1, Km)", "state", f"shape {y.shape}",
                   "length 2 or 5")
    p = _check_pulses(pulse_times, batch=False)
    a_factor, lam = _pulse_factors(prm, p, pulse_width, amplitude, batch=False)
    p, a_factor, lam = p[0], a_factor[0], lam[0]
    cn, f = y[0], y[1]
    a, t1, km = (y[2], y[3], y[4]) if y.size == 5 else (prm.a_rest, prm.tau1_rest, prm.km_rest)
    km_r0 = km if _check_r0_km(r0_km) == "fatigued" else prm.km_rest
    total = cn_sum(t, p, r0=km_r0 + prm.r0_km_offset, tau_c=prm.tau_c, lam=lam)
    dcn = (total - cn) / prm.tau_c
    last = np.flatnonzero(p <= t)
    afac = a_factor[last[-1]] if last.size else 0.0
    s = cn / (km + cn)
    df = a * afac * s - f / (t1 + prm.tau2 * s)
    if y.size == 2:
        return np.array([dcn, df])
    return np.array([dcn, df,
                     -(a - prm.a_rest) / prm.tau_fat + prm.alpha_a * f,
                     -(t1 - prm.tau1_rest) / prm.tau_fat + prm.alpha_tau1 * f,
                     -(km - prm.km_rest) / prm.tau_fat + prm.alpha_km * f])


def ding_force_reference(pulse_times: Any, t: Any, params: DingParameters | None = None, *,
                         pulse_width: Any = None, amplitude: Any = None, fatigue: bool = False,
                         r0_km: Literal["fatigued", "rest"] = "fatigued",
                         rtol: float = 1e-10, atol: float = 1e-10) -> DingResult:
    """Straightforward ``scipy.integrate.solve_ivp`` solution of the same equations.

    CN follows eq. 1 with the full (untruncated) pulse sum, evaluated by brute force at every
    right-hand-side call; the integration restarts at each pulse (DOP853) because dCN/dt jumps
    there. R_i is fixed at the pulse from the Km of that moment, exactly as in
    :func:`ding_force`. Cost grows with the square of the number of pulses: use it for checking
    and benchmarks, not for long protocols.

    Parameters
    ----------
    pulse_times, t, params, pulse_width, amplitude, fatigue, r0_km
        As in :func:`ding_force`.
    rtol, atol : float
        Tolerances passed to ``solve_ivp``.

    Returns
    -------
    DingResult
        With ``cn`` (and fatigue states when ``fatigue``) filled in.
    """
    from scipy.integrate import solve_ivp

    prm = _check_params(params)
    t_eval = _check_times(t)
    p2 = _check_pulses(pulse_times, batch=False)
    a_factor, lam = _pulse_factors(prm, p2, pulse_width, amplitude, batch=False)
    p, a_factor, lam = p2[0], a_factor[0], lam[0]
    fatigued_r0 = _check_r0_km(r0_km) == "fatigued"
    tau_c = prm.tau_c
    weights = np.zeros(p.size)            # λ_i R_i, filled as pulses are reached
    gap_decay = np.exp(-np.diff(p, prepend=-np.inf) / tau_c)

    def rhs(time, y, n_past, afac):
        cn, f = y[0], y[1]
        total = np.sum(weights[:n_past] * np.exp(-(time - p[:n_past]) / tau_c)) if n_past else 0.0
        if fatigue:
            a, t1, km = y[2], y[3], y[4]
        else:
            a, t1, km = prm.a_rest, prm.tau1_rest, prm.km_rest
        s = cn / (km + cn)
        out = [(total - cn) / tau_c, a * afac * s - f / (t1 + prm.tau2 * s)]
        if fatigue:
            out += [-(a - prm.a_rest) / prm.tau_fat + prm.alpha_a * f,
                    -(t1 - prm.tau1_rest) / prm.tau_fat + prm.alpha_tau1 * f,
                    -(km - prm.km_rest) / prm.tau_fat + prm.alpha_km * f]
        return out

    start = min(t_eval[0], p[0]) if p.size else t_eval[0]
    bounds = np.concatenate([[start], p[p > start], [max(t_eval[-1], p[-1] if p.size else start)]])
    y = np.array([0.0, 0.0] + ([prm.a_rest, prm.tau1_rest, prm.km_rest] if fatigue else []))
    out = np.zeros((y.size, t_eval.size))
    done = np.zeros(t_eval.size, dtype=bool)
    for k in range(bounds.size - 1):
        t_a, t_b = bounds[k], bounds[k + 1]
        n_past = int(np.searchsorted(p, t_a, side="right"))
        if n_past and p[n_past - 1] == t_a:   # a pulse starts this segment: fix its R_i now
            km_now = y[4] if (fatigue and fatigued_r0) else prm.km_rest
            r0 = km_now + prm.r0_km_offset
            weights[n_past - 1] = lam[n_past - 1] * (1 + (r0 - 1) * gap_decay[n_past - 1])
        afac = a_factor[n_past - 1] if n_past else 0.0
        last = k == bounds.size - 2
        sel = (t_eval >= t_a) & ((t_eval <= t_b) if last else (t_eval < t_b)) & ~done
        if t_b > t_a:
            # t_b is always requested so that the segment's end state comes out exactly
            want = np.union1d(t_eval[sel], [t_b])
            sol = solve_ivp(rhs, (t_a, t_b), y, method="DOP853", rtol=rtol, atol=atol,
                            t_eval=want, args=(n_past, afac))
            if not sol.success:  # pragma: no cover
                raise RuntimeError(sol.message)
            if sel.any():
                out[:, sel] = sol.y[:, np.searchsorted(want, t_eval[sel])]
            y = sol.y[:, -1]
        elif sel.any():
            out[:, sel] = y[:, None]
        done |= sel
    return DingResult(t=t_eval, force=out[1], params=prm, cn=out[0],
                      a=out[2] if fatigue else None, tau1=out[3] if fatigue else None,
                      km=out[4] if fatigue else None)
