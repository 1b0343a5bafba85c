r"""Predicted discomfort (NRS 0–10) from cutaneous afferent drive, skin hot spots and contraction.

The model (a synthesis, not a published model: shared/reference/nerve_recruitment_discomfort.md
§4.5; every parameter in ``models/discomfort/discomfort.json`` with source and evidence)::

    u(t)  = s · [ Σ_c w_c Ψ_c(t) + w_m (F/MVC)^p_m + w_h H(t) ]
    NRS   = 10 · u^n / (u^n + 1)

* **Cutaneous classes** c ∈ {Aβ, Aδ, C}. Per pulse, ``a_{c,e}`` is the fraction of class c
  activated under electrode e (from :mod:`emsim.physiology.recruitment`, or directly from the
  skin current-density map with :func:`cutaneous_activation` — the same computation,
  :mod:`emsim.physiology.cutaneous`: log-normal local thresholds
  ``J_rh,c·(1 + c_c/PW)`` — Weiss law with each class's chronaxie; for a kHz burst the Brian2
  fibre table's burst/calibration-pulse threshold ratio instead — over the edge-weighted
  density distribution of :meth:`emsim.physiology.field.FieldSolution.skin_current_density`).
  Electrodes add with sub-linear spatial summation ``Σ_e a_{c,e}·(area_e/area_ref)^γ``.
* **Temporal summation.** Pulses are integrated with a leaky window τ (the 30–300 ms critical
  duration of electrocutaneous sensation): ``Ψ_c = Ā_c · R^q`` where ``Ā_c`` is the
  window-weighted mean drive of recent pulses and ``R = N/(f0 τ)`` the window's pulse count
  relative to the reference rate f0, so a steady train at frequency f gives ``(f/f0)^q``
  (§4.5, q ≈ 0.3). A kHz burst can fire an afferent several times (Brian2 burst-firing table,
  :mod:`emsim.physiology.burst_firing`); those action potentials fall inside the window and
  count like as many pulses: the class's drive × ``spikes^q`` (``AfferentDrive.spike_factor``).
* **Partial integration beyond the critical duration** (Bar-Ilan, §4.2 D2): over a running
  train the drive grows as ``u·(d/d_ref)^a`` with ``d`` the time since the train (or the
  current burst of a duty cycle) began, ``d_ref`` the 1 s of the calibration trains, and
  ``a = κ·ln(NRS_top/NRS)`` smaller at higher levels, so the Stevens exponent falls with
  duration (1.4 → 0.93 from 0.1 to 6.4 s in Bar-Ilan; κ fitted to that ratio). A batch row
  with a steady rate stands for a train of the reference duration.
* **Contraction** (deep pressure, cramp): ``(F/MVC)^p_m`` with the force fraction per pulse
  (from the muscle model) or, lacking it, the motor fraction.
* **Hot spots**: optional r.m.s. local skin current density, ``H = (J_rms/J_ref)²`` smoothed with
  a thermal time constant (Joule heating under sweat ducts and edges; Sha 2008).
* **Transfer** ``g``: a Hill function, i.e. a Stevens power law with exponent n far from
  saturation (§4.2: 1.2–2 within 2–10 × threshold), saturating towards NRS 10 at tolerance.
* **Person**: ``s`` (sensitivity, default 1) scales the drive; sex scales the cutaneous
  thresholds (women 0.78 × men's: the sensory-threshold ratio of a 254-subject TENS study,
  which also reproduces Maffiuletti 2008's VAS ratio at the quadriceps motor threshold; see
  docs/literature/person_factors.md). Skinfold acts only through the field (more fat → more
  current for the same contraction → more cutaneous drive); no published basis was found for
  a skinfold term in the discomfort itself (Medeiros 2015's larger tolerated current with
  thicker skinfolds is a strict xfail: person_factors.md says why).

No rule such as "wider pulses hurt more" is built in: the sign of any pulse-width effect at
equal contraction comes from the class chronaxies (Aδ shorter, C longer than motor axons),
the electrode area (current density), and the depth of the motor target (current needed).
``tests/validation/test_discomfort_targets.py`` lists the calibration points and the published
comparisons reproduced.

Calibration: the class weights and the transfer were fitted with the activation of
:func:`cutaneous_activation` (local current-density thresholds) against the anchors listed in
``models/discomfort/discomfort.json``. :func:`emsim.physiology.recruitment.recruit` computes its
afferent fractions with the same function (:mod:`emsim.physiology.cutaneous`), so a
``Recruitment`` fed to :func:`predict` is on the calibrated scale; afferent fractions from any
other model are meaningful only if that model reproduces the same anchors.

Public API: :func:`predict` → :class:`Discomfort`; inputs :class:`AfferentDrive` (what a
``Recruitment`` converts to; a batch ``Recruitment`` — one pulse per candidate — is read as the
steady state of each candidate's train), :class:`Person`; helper :func:`cutaneous_activation`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Mapping

import numpy as np

from emsim._data import load_data
from emsim.physiology._jit import jit
from emsim.physiology import cutaneous as cut
from emsim.physiology.cutaneous import AFFERENT_CLASSES, ClassParameters
from emsim.physiology.cutaneous import read_value as _v
from emsim.physiology.errors import PhysiologyInputError

__all__ = ["AFFERENT_CLASSES", "ClassParameters", "DiscomfortParameters", "Person", "AfferentDrive",
           "Discomfort", "predict", "cutaneous_activation", "DISCOMFORT_FILE"]

DISCOMFORT_FILE = cut.CLASS_FILE


# ============================================================================ parameters

@dataclass(frozen=True)
class DiscomfortParameters:
    """Parameters of the discomfort model (see the module docstring); load with :meth:`load`."""

    classes: Mapping[str, ClassParameters]
    area_exponent: float
    reference_area_m2: float
    integration_time_s: float
    rate_exponent: float
    reference_rate_hz: float
    contraction_weight: float
    contraction_exponent: float
    hotspot_weight: float
    hotspot_reference_j_rms: float
    hotspot_time_constant_s: float
    transfer_exponent: float
    female_threshold_scale: float
    unspecified_sex_threshold_scale: float
    reference_duration_s: float
    partial_integration_slope: float
    partial_integration_top_nrs: float
    train_reset_gap_s: float

    @classmethod
    def load(cls, relative: str = DISCOMFORT_FILE) -> "DiscomfortParameters":
        return _load_parameters(relative)

    def replace(self, **changes) -> "DiscomfortParameters":
        """A copy with some fields changed (``classes`` may be a partial mapping of updates)."""
        from dataclasses import replace as _replace
        if "classes" in changes:
            merged = dict(self.classes)
            for k, v in changes["classes"].items():
                merged[k] = _replace(merged[k], **v) if isinstance(v, dict) else v
            changes["classes"] = merged
        return _replace(self, **changes)


@lru_cache(maxsize=8)
def _load_parameters(relative: str) -> DiscomfortParameters:
    d = load_data(relative)
    return DiscomfortParameters(classes=cut.class_parameters(relative),
                                **{name: _v(d[section], key, f"{relative}:$.{section}")
                                   for name, (section, key) in _FILE_FIELDS.items()})


# DiscomfortParameters field → (section, key) in the parameter file.
_FILE_FIELDS = {
    "area_exponent": ("spatial", "area_exponent"),
    "reference_area_m2": ("spatial", "reference_area_m2"),
    "integration_time_s": ("temporal", "integration_time_s"),
    "rate_exponent": ("temporal", "rate_exponent"),
    "reference_rate_hz": ("temporal", "reference_rate_hz"),
    "contraction_weight": ("contraction", "weight"),
    "contraction_exponent": ("contraction", "exponent"),
    "hotspot_weight": ("hotspot", "weight"),
    "hotspot_reference_j_rms": ("hotspot", "reference_j_rms_a_per_m2"),
    "hotspot_time_constant_s": ("hotspot", "time_constant_s"),
    "transfer_exponent": ("transfer", "exponent"),
    "female_threshold_scale": ("person", "female_cutaneous_threshold_scale"),
    "unspecified_sex_threshold_scale": ("person", "unspecified_sex_threshold_scale"),
    "reference_duration_s": ("temporal", "reference_duration_s"),
    "partial_integration_slope": ("temporal", "partial_integration_slope"),
    "partial_integration_top_nrs": ("temporal", "partial_integration_top_nrs"),
    "train_reset_gap_s": ("temporal", "train_reset_gap_s"),
}


@dataclass(frozen=True)
class Person:
    """Person factors of the discomfort model.

    Parameters
    ----------
    cutaneous_threshold_scale : float
        Multiplies every cutaneous class's threshold current density (< 1: more sensitive skin).
    sensitivity : float
        Multiplies the total drive before the NRS transfer (individual calibration, e.g. from a
        measured tolerance).
    """

    cutaneous_threshold_scale: float = 1.0
    sensitivity: float = 1.0

    def __post_init__(self):
        for attr in ("cutaneous_threshold_scale", "sensitivity"):
            v = getattr(self, attr)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > 0):
                raise PhysiologyInputError("person factor must be positive", path=f"person.{attr}", value=v,
                                           allowed="> 0")

    @classmethod
    def from_patient(cls, patient, params: DiscomfortParameters | None = None,
                     sensitivity: float = 1.0) -> "Person":
        """Sex-specific threshold scale from a :class:`emsim.body.Patient` (``person`` in the
        parameter file: the women/men sensory-threshold ratio; geometric middle if sex is not recorded)."""
        p = params or DiscomfortParameters.load()
        sex = getattr(patient, "sex", None)
        scale = {"male": 1.0, "female": p.female_threshold_scale}.get(sex, p.unspecified_sex_threshold_scale)
        return cls(cutaneous_threshold_scale=scale, sensitivity=sensitivity)


# ============================================================================ inputs

def _as_batch(a, ndim: int, name: str) -> np.ndarray:
    arr = np.asarray(a, dtype=float)
    while arr.ndim < ndim:
        arr = arr[None]
    if arr.ndim != ndim:
        raise PhysiologyInputError(f"expected at most {ndim} dimensions", path=name, value=arr.shape,
                                   allowed=f"{ndim}-d with a leading batch axis")
    return arr


@dataclass(frozen=True)
class AfferentDrive:
    """The input of :func:`predict`: per-pulse afferent activation (and contraction) for a batch.

    Shapes (B = batch, E = electrodes, P = pulses; NaN-pad times of shorter rows):

    Attributes
    ----------
    times_s : ndarray, shape (B, P)
        Pulse times (s), increasing along each row.
    afferent : mapping of class name → ndarray, shape (B, E, P)
        Fraction (0–1) of each cutaneous class ("abeta", "adelta", "c") activated under each
        electrode by each pulse. Missing classes count as 0.
    electrode_area_m2 : ndarray, shape (B, E)
        Electrode areas (for spatial summation).
    force_fraction : ndarray, shape (B, P), optional
        Evoked force as a fraction of MVC after each pulse (or the motor fraction recruited).
    hotspot_j_rms_a_per_m2 : ndarray, shape (B, P), optional
        Largest local r.m.s. skin current density at each pulse.
    steady_rate_hz : ndarray, shape (B,), optional
        For candidate batches: each row's pulses stand for a steady train at this rate, and the
        prediction is the steady state (temporal summation of that rate) instead of the
        response to isolated pulses.
    spike_factor : mapping of class name → ndarray, shape (B, E, P), optional
        Action potentials per activated afferent per pulse (≥ 1; 1 when missing): a kHz burst
        can fire a fibre several times (:func:`emsim.physiology.cutaneous.burst_spikes`). The
        spikes of one pulse fall inside the integration window, so they count like that many
        pulses: the class's drive is multiplied by ``spike_factor^q`` (the rate exponent).
    """

    times_s: np.ndarray
    afferent: Mapping[str, np.ndarray]
    electrode_area_m2: np.ndarray
    force_fraction: np.ndarray | None = None
    hotspot_j_rms_a_per_m2: np.ndarray | None = None
    steady_rate_hz: np.ndarray | None = None
    spike_factor: Mapping[str, np.ndarray] | None = None

    def __post_init__(self):
        t = _as_batch(self.times_s, 2, "times_s")
        b, p = t.shape
        aff = {}
        for name, v in dict(self.afferent).items():
            if name not in AFFERENT_CLASSES:
                raise PhysiologyInputError("unknown afferent class", path=f"afferent.{name}", value=name,
                                           allowed=", ".join(AFFERENT_CLASSES))
            arr = _as_batch(v, 3, f"afferent.{name}")
            if arr.shape[0] == 1 and arr.shape[2] == p:
                arr = np.broadcast_to(arr, (b, arr.shape[1], p))
            if arr.shape[0] != b or arr.shape[2] != p:
                raise PhysiologyInputError("shape does not match times_s", path=f"afferent.{name}",
                                           value=arr.shape, allowed=f"({b}, E, {p})")
            if _outside_unit_interval(arr):
                raise PhysiologyInputError("fractions must lie in [0, 1]", path=f"afferent.{name}",
                                           value=float(np.nanmax(np.abs(arr))), allowed="0..1")
            aff[name] = arr
        if not aff:
            raise PhysiologyInputError("no afferent activation given", path="afferent", value={},
                                       allowed=", ".join(AFFERENT_CLASSES))
        n_e = next(iter(aff.values())).shape[1]
        area = np.broadcast_to(_as_batch(self.electrode_area_m2, 2, "electrode_area_m2"), (b, n_e))
        if np.any(~(area > 0)):
            raise PhysiologyInputError("electrode area must be positive", path="electrode_area_m2",
                                       value=float(np.min(area)), allowed="> 0 m²")
        object.__setattr__(self, "times_s", t)
        object.__setattr__(self, "afferent", aff)
        object.__setattr__(self, "electrode_area_m2", area)
        for name in ("force_fraction", "hotspot_j_rms_a_per_m2"):
            v = getattr(self, name)
            if v is not None:
                arr = np.broadcast_to(_as_batch(v, 2, name), (b, p))
                if np.any(arr[np.isfinite(arr)] < 0):
                    raise PhysiologyInputError("must be >= 0", path=name, value=float(np.nanmin(arr)),
                                               allowed=">= 0")
                object.__setattr__(self, name, arr)
        if self.spike_factor is not None:
            spikes = {}
            for name, v in dict(self.spike_factor).items():
                if name not in aff:
                    raise PhysiologyInputError("spike factor for a class without activation",
                                               path=f"spike_factor.{name}", value=name, allowed=", ".join(aff))
                arr = np.broadcast_to(_as_batch(v, 3, f"spike_factor.{name}"), aff[name].shape)
                if np.any(~(arr >= 1.0)):
                    raise PhysiologyInputError("action potentials per active fibre must be >= 1",
                                               path=f"spike_factor.{name}", value=float(np.nanmin(arr)),
                                               allowed=">= 1")
                spikes[name] = arr
            object.__setattr__(self, "spike_factor", spikes)
        if self.steady_rate_hz is not None:
            rate = np.broadcast_to(np.asarray(self.steady_rate_hz, dtype=float).reshape(-1), (b,))
            if np.any(~(rate > 0)) or np.any(~np.isfinite(rate)):
                raise PhysiologyInputError("steady rate must be positive and finite", path="steady_rate_hz",
                                           value=float(np.min(rate)), allowed="> 0 Hz")
            object.__setattr__(self, "steady_rate_hz", rate)

    @property
    def n_electrodes(self) -> int:
        return next(iter(self.afferent.values())).shape[1]

    @classmethod
    def from_pulses(cls, times_s, activation: Mapping[str, Any], electrode_area_m2, *,
                    force_fraction=None, hotspot_j_rms_a_per_m2=None) -> "AfferentDrive":
        """Build from per-pulse activation shaped ``(B, P, E)`` or ``(P, E)`` — what
        :func:`cutaneous_activation` returns for currents of shape ``(B, P)`` or ``(P,)``."""
        aff = {}
        for k, v in activation.items():
            arr = np.asarray(v, dtype=float)
            if arr.ndim == 2:
                arr = arr[None]
            aff[k] = np.swapaxes(arr, -1, -2)
        return cls(times_s=times_s, afferent=aff, electrode_area_m2=electrode_area_m2,
                   force_fraction=force_fraction, hotspot_j_rms_a_per_m2=hotspot_j_rms_a_per_m2)


def _outside_unit_interval(arr: np.ndarray) -> bool:
    """Whether a finite entry of ``arr`` lies outside [0, 1] (NaN and ±inf entries are not checked)."""
    if arr.size == 0:
        return False
    lo, hi = arr.min(), arr.max()
    if not (np.isfinite(lo) and np.isfinite(hi)):  # only then pay for masking the non-finite entries
        fin = arr[np.isfinite(arr)]
        if fin.size == 0:
            return False
        lo, hi = fin.min(), fin.max()
    return bool(lo < 0 or hi > 1)


def _to_drive(recruitment: Any, **overrides) -> AfferentDrive:
    """Accept an :class:`AfferentDrive`, anything with ``to_afferent_drive()``, or duck-typed fields."""
    overrides = {k: v for k, v in overrides.items() if v is not None}
    if isinstance(recruitment, AfferentDrive) and not overrides:
        return recruitment
    if hasattr(recruitment, "to_afferent_drive"):
        base = recruitment.to_afferent_drive()
    elif isinstance(recruitment, AfferentDrive):
        base = recruitment
    else:
        base = None
    fields = {}
    if base is not None:
        fields = dict(times_s=base.times_s, afferent=base.afferent, electrode_area_m2=base.electrode_area_m2,
                      force_fraction=base.force_fraction, hotspot_j_rms_a_per_m2=base.hotspot_j_rms_a_per_m2,
                      steady_rate_hz=base.steady_rate_hz, spike_factor=base.spike_factor)
    else:
        def get(*names):  # each attribute read once: a Recruitment computes them on access
            for n in names:
                v = getattr(recruitment, n, None)
                if v is not None:
                    return v
            return None
        fields = dict(times_s=get("times_s", "pulse_times_s", "pulse_times"),
                      afferent=get("afferent", "afferent_fraction"),
                      electrode_area_m2=get("electrode_area_m2"),
                      force_fraction=get("force_fraction", "motor_fraction"),
                      hotspot_j_rms_a_per_m2=get("hotspot_j_rms_a_per_m2"))
        if fields["times_s"] is None or fields["afferent"] is None or fields["electrode_area_m2"] is None:
            raise PhysiologyInputError("recruitment lacks pulse times, afferent activation or electrode areas",
                                       path="recruitment", value=type(recruitment).__name__,
                                       allowed="AfferentDrive, or an object with to_afferent_drive()")
        rate = get("steady_rate_hz")
        fields["steady_rate_hz"] = rate if rate is not None else _batch_rate(recruitment, fields["times_s"])
        fields["spike_factor"] = get("spike_factor")
    fields.update({k: v for k, v in overrides.items() if v is not None})
    return AfferentDrive(**fields)


def _batch_rate(recruitment: Any, times) -> np.ndarray | None:
    """Rate of each candidate of a batch :class:`~emsim.physiology.recruitment.Recruitment`
    (one pulse per row, pulse times all zero, ``interval_s`` = period of its steady train)."""
    t = np.asarray(times, dtype=float)
    interval = getattr(recruitment, "interval_s", None)
    if interval is None or t.ndim != 2 or t.shape[1] != 1 or np.any(t != 0):
        return None
    interval = np.asarray(interval, dtype=float).reshape(-1)
    if interval.size != t.shape[0] or not np.all(np.isfinite(interval) & (interval > 0)):
        return None
    return 1.0 / interval


# ============================================================================ cutaneous activation

def cutaneous_activation(contact, current_a, pulse_width_s, *, params: DiscomfortParameters | None = None,
                         person: Person | None = None,
                         threshold_multiplier: Mapping[str, Any] | None = None,
                         waveform: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Fraction of each cutaneous class activated under each electrode (reference §4.5).

    The one afferent model of emsim (:func:`emsim.physiology.cutaneous.activation`, which
    :func:`emsim.physiology.recruitment.recruit` also uses) with this model's class parameters
    and the person's cutaneous threshold scale.

    Parameters
    ----------
    contact : emsim.physiology.field.SkinCurrentDensity
        Skin current-density map per ampere (``FieldSolution.skin_current_density()``).
    current_a, pulse_width_s : array_like
        Pulse current (A) and phase width (s); broadcast together to shape ``S``.
    threshold_multiplier : mapping class → array_like, optional
        ``J_th/J_rh`` for each class and waveform; replaces the Weiss factor ``1 + c/PW``.
    waveform : mapping, optional
        Table query arrays of the waveforms (``StimulusSet.waveform``,
        :func:`emsim.physiology.recruitment.waveform_parameters`), broadcasting with
        ``current_a``: the multiplier becomes
        :func:`emsim.physiology.cutaneous.waveform_multiplier` (Brian2 fibre tables), as
        :func:`emsim.physiology.recruitment.recruit` uses it. Without it (and without
        ``threshold_multiplier``) every pulse is the calibration pulse of width ``pulse_width_s``
        (symmetric biphasic, ``reference_waveform`` in the parameter file).

    Returns
    -------
    dict class → ndarray, shape ``S + (n_electrodes,)``
        ``Σ_pixels area·Φ((ln(I·J_px) − ln J_th)/σ) / Σ area``: log-normal endings under the
        local (edge-weighted) current density.
    """
    p = params or DiscomfortParameters.load()
    person = person or Person()
    if waveform is not None:
        if threshold_multiplier is not None:
            raise PhysiologyInputError("give either waveform or threshold_multiplier, not both",
                                       path="threshold_multiplier", value="both given", allowed="one of them")
        threshold_multiplier = cut.waveform_multiplier(waveform, classes=p.classes)
    return cut.activation(contact, current_a, pulse_width_s, classes=p.classes,
                          threshold_scale=person.cutaneous_threshold_scale,
                          threshold_multiplier=threshold_multiplier)


# ============================================================================ temporal integration

def _leaky_sum(times: np.ndarray, x: np.ndarray, tau: float) -> np.ndarray:
    """``y_p = Σ_{q≤p} x_q exp(−(t_p − t_q)/τ)`` along the last axis (times may be NaN-padded).

    ``times`` has shape (B, P) (or broadcasts to ``x``'s trailing axes), ``x`` shape
    ``(..., B, P)``: several quantities summed over the same pulses share one decay factor.
    The sum is the linear recursion ``y_p = y_{p−1}·exp(−(t_p − t_{p−1})/τ) + x_p``, run as a
    compiled loop (:func:`_leaky_sum_kernel`): O(P), one exponential per pulse, no overflow.
    A NaN time (padding) adds nothing and keeps the sum; time never runs backwards (a time below
    an earlier one counts as that earlier time).
    """
    x = np.asarray(x, dtype=float)
    nt = max(np.ndim(times), 1)  # x's trailing axes that the times index; the leading ones share them
    t = np.broadcast_to(np.asarray(times, dtype=float), x.shape[-nt:]).reshape(-1, x.shape[-1])
    y = _leaky_sum_kernel(np.ascontiguousarray(t), np.ascontiguousarray(x).reshape(-1, *t.shape), float(tau))
    return y.reshape(x.shape)


@jit(nogil=True)
def _leaky_sum_kernel(t, x, tau):  # pragma: no cover - compiled; tested through _leaky_sum
    # t (B, P) pulse times, x (K, B, P) quantities; one decay per pulse shared by the K sums.
    K, B, P = x.shape
    y = np.empty_like(x)
    for b in range(B):
        acc = np.zeros(K)
        t_last = -np.inf
        for p in range(P):
            tp = t[b, p]
            if np.isnan(tp):
                for k in range(K):
                    y[k, b, p] = acc[k]
                continue
            decay = 0.0
            if t_last > -np.inf:
                decay = 1.0 if tp <= t_last else np.exp(-(tp - t_last) / tau)
            if tp > t_last:
                t_last = tp
            for k in range(K):
                acc[k] = acc[k] * decay + x[k, b, p]
                y[k, b, p] = acc[k]
    return y


# ============================================================================ prediction

@dataclass(frozen=True)
class Discomfort:
    """Predicted discomfort for a batch.

    Attributes
    ----------
    times_s : ndarray, shape (B, P)
        Pulse times (NaN padding kept).
    nrs : ndarray, shape (B, P)
        NRS 0–10 just after each pulse (NaN at padding).
    peak : ndarray, shape (B,)
        Largest NRS of each row.
    mean : ndarray, shape (B,)
        Time-weighted mean NRS over the stimulation (each pulse weighted by the interval to the
        next, capped at 3 integration times so that off-periods do not count).
    components : dict name → ndarray (B, P)
        The weighted drives before the transfer: "abeta", "adelta", "c", "contraction", "hotspot".
    """

    times_s: np.ndarray
    nrs: np.ndarray
    peak: np.ndarray
    mean: np.ndarray
    components: Mapping[str, np.ndarray] = field(repr=False)


def _electrode_sum(a: np.ndarray, weight: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """``Σ_e a[b, e, p]·weight[b, e]`` (NaN activation counts as 0), shape (B, P), into ``out``."""
    if not np.isfinite(a).all():
        a = np.nan_to_num(a)
    out = np.multiply(a[:, 0, :], weight[:, :1], out=out)
    for e in range(1, a.shape[1]):  # E is a handful of electrodes: no (B, E, P) temporary
        out += a[:, e, :] * weight[:, e:e + 1]
    return out


def _typical_interval(nxt: np.ndarray, default: float) -> np.ndarray:
    """Median interval to the next pulse of each row, shape (B, 1) (``default`` without one)."""
    finite = np.isfinite(nxt)
    typical = np.full(nxt.shape[:-1] + (1,), default)
    has = np.flatnonzero(finite.any(axis=-1))
    if has.size > 64:
        typical[has, 0] = np.nanmedian(np.where(finite[has], nxt[has], np.nan), axis=-1)
    else:  # few rows (a session): the median of each row's finite intervals, as nanmedian
        for b in has:
            typical[b, 0] = np.median(nxt[b][finite[b]])
    return typical


def _train_duration(t: np.ndarray, valid: np.ndarray, typical: np.ndarray, reset_gap_s: float) -> np.ndarray:
    """Time each pulse's train has been running (s), counting the pulse's own interval.

    A train starts at a row's first pulse and after every gap longer than ``reset_gap_s``
    (the off-time of a duty cycle). ``typical`` (B, 1) is the row's usual pulse interval.
    """
    tt = np.where(valid, t, np.nan)
    onset = _train_onset_kernel(np.ascontiguousarray(tt.reshape(-1, tt.shape[-1])), float(reset_gap_s))
    return np.where(valid, tt - onset.reshape(tt.shape) + typical, np.nan)


@jit(nogil=True)
def _train_onset_kernel(t, reset_gap_s):  # pragma: no cover - compiled; tested through _train_duration
    # A pulse starts a train unless the previous pulse (not padding) is at most reset_gap_s
    # before it; onset = the latest start so far (-inf before the first; NaN times never start).
    B, P = t.shape
    onset = np.empty_like(t)
    for b in range(B):
        last = -np.inf
        prev = np.nan
        for p in range(P):
            tp = t[b, p]
            if not np.isnan(tp) and not (tp - prev <= reset_gap_s) and tp > last:
                last = tp
            onset[b, p] = last
            prev = tp
    return onset


def _partial_integration(u, duration_s, p: DiscomfortParameters):
    """Drive after partial temporal integration beyond the critical duration (Bar-Ilan).

    Equal-magnitude contours of electrocutaneous trains follow ``I·t^a = K`` with ``a`` falling
    as the magnitude rises, so the magnitude-estimation exponent falls from ~1.4 to 0.93 as the
    duration grows from 0.1 to 6.4 s ("Electrocutaneous psychophysical input–output functions
    and temporal integration", Bar-Ilan University; reference §4.2, D2). Here the drive ``u`` is
    scaled by ``(d / d_ref)^a`` with ``d`` the train's running time (at least the integration
    time, below which the leaky pulse count already integrates), ``d_ref`` the duration at which
    the calibration anchors hold, and ``a = slope·ln(NRS_top / NRS(u))`` (≥ 0) falling with the
    level it would have at ``d_ref``.
    """
    nrs0 = nrs_from_drive(u, p.transfer_exponent)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = p.partial_integration_slope * np.log(p.partial_integration_top_nrs / nrs0)
    a = np.clip(np.nan_to_num(a, nan=0.0, posinf=0.0), 0.0, None)
    d = np.maximum(np.nan_to_num(duration_s, nan=p.reference_duration_s), p.integration_time_s)
    return u * np.power(d / p.reference_duration_s, a)


def _with_spikes(a: np.ndarray, spikes: np.ndarray | None, q: float) -> np.ndarray:
    """Activation weighted by ``spikes^q``: several action potentials of one fibre within the
    integration window count like as many pulses under the rate-summation law ``(f/f0)^q``."""
    if spikes is None or not np.any(spikes != 1.0):
        return a
    return a * np.power(spikes, q)


def nrs_from_drive(u, exponent: float):
    """The transfer ``g``: NRS = 10 u^n/(u^n + 1) (NRS 5 at u = 1)."""
    un = np.power(np.maximum(u, 0.0), exponent)
    return 10.0 * un / (un + 1.0)


def predict(recruitment: Any, *, person: Person | None = None, params: DiscomfortParameters | None = None,
            force_fraction=None, hotspot_j_rms_a_per_m2=None) -> Discomfort:
    """Discomfort (NRS 0–10) over time for a batch of stimulation responses.

    Parameters
    ----------
    recruitment : AfferentDrive or Recruitment-like
        Per-pulse afferent activation per class and electrode. An object with
        ``to_afferent_drive()`` (e.g. :class:`emsim.physiology.recruitment.Recruitment`) or with
        attributes ``times_s``/``pulse_times_s``, ``afferent`` and ``electrode_area_m2`` (and
        optionally ``force_fraction`` or ``motor_fraction``) is converted.
    person : Person, optional
        Person factors (default: neutral). Cutaneous threshold scaling acts where the
        activation is computed (:func:`cutaneous_activation`); here only ``sensitivity`` applies.
    params : DiscomfortParameters, optional
        Default ``models/discomfort/discomfort.json``.
    force_fraction, hotspot_j_rms_a_per_m2 : array_like, optional
        Override / supply the contraction and hot-spot inputs, shape (B, P).

    Returns
    -------
    Discomfort

    Notes
    -----
    A synthesis model (shared/reference/nerve_recruitment_discomfort.md §4.5), not a published
    one; the equations are in the module docstring and every parameter's source and evidence
    level in ``models/discomfort/discomfort.json``. The calibration points and published
    comparisons are tests in ``tests/validation/test_discomfort_targets.py``.

    References
    ----------
    Mogyoros I, Kiernan MC, Burke D (1996). Brain 119:439 (sensory vs motor strength–duration).
    "Scales of unpleasantness of electrical stimulation" (unpleasantness exponent 1.81) and
    "Electrocutaneous psychophysical input-output functions and temporal integration"
    (Bar-Ilan; exponent 1.4 → 0.93 with duration): reference §4.2, target D2.
    Sha N et al. (2008). Artif Organs (PMID 18782136): hot spots under the stratum corneum.
    Maffiuletti NA et al. (2008). Ann Neurol 63:507 (sex and thresholds; person factors).
    """
    p = params or DiscomfortParameters.load()
    person = person or Person()
    drive = _to_drive(recruitment, force_fraction=force_fraction, hotspot_j_rms_a_per_m2=hotspot_j_rms_a_per_m2)
    t = drive.times_s
    valid = np.isfinite(t)
    tau = p.integration_time_s
    steady = drive.steady_rate_hz
    spatial = np.power(drive.electrode_area_m2 / p.reference_area_m2, p.area_exponent)  # (B, E)
    names = [name for name in p.classes if drive.afferent.get(name) is not None]
    stacked = np.empty((1 + len(names),) + t.shape)  # pulse count, then each class: one leaky sum
    stacked[0] = 1.0
    spikes = drive.spike_factor or {}
    per_pulse = {name: _electrode_sum(_with_spikes(drive.afferent[name], spikes.get(name), p.rate_exponent),
                                      spatial, out=stacked[1 + i])  # (B, P) each
                 for i, name in enumerate(names)}
    if steady is None:  # one leaky sum for the pulse count and every class (shared exponentials)
        sums = _leaky_sum(t, stacked, tau)
        count = sums[0]
        mean_recent = dict(zip(per_pulse, sums[1:] / np.where(count > 0, count, 1.0)))
    else:  # the window's pulse count just after a pulse of a steady train
        count = np.broadcast_to((1.0 / -np.expm1(-1.0 / (steady * tau)))[:, None], t.shape)
        mean_recent = per_pulse
    rate = np.power(count / (p.reference_rate_hz * tau), p.rate_exponent)
    components = {}
    total = np.zeros_like(t)
    for name, m in mean_recent.items():
        components[name] = p.classes[name].weight * m * rate
        total += components[name]
    if drive.force_fraction is not None:
        f = np.clip(np.nan_to_num(drive.force_fraction), 0.0, None)
        components["contraction"] = p.contraction_weight * np.power(f, p.contraction_exponent)
        total += components["contraction"]
    if drive.hotspot_j_rms_a_per_m2 is not None:
        h = (np.nan_to_num(drive.hotspot_j_rms_a_per_m2) / p.hotspot_reference_j_rms) ** 2
        if steady is None:
            tau_h = p.hotspot_time_constant_s
            h_count, h_sum = _leaky_sum(t, np.stack([np.ones_like(t), h]), tau_h)
            h = h_sum / np.where(h_count > 0, h_count, 1.0)
        components["hotspot"] = p.hotspot_weight * h
        total += components["hotspot"]
    nxt = np.diff(t, axis=-1, append=np.nan)
    u = person.sensitivity * total
    if steady is not None:
        typical = (1.0 / steady)[:, None]
    else:  # a steady-train row stands for a train of the reference duration: no duration term
        typical = _typical_interval(nxt, tau)
        u = _partial_integration(u, _train_duration(t, valid, typical, p.train_reset_gap_s), p)
    nrs = np.where(valid, nrs_from_drive(u, p.transfer_exponent), np.nan)
    # Time weights: interval to the next pulse, capped so off-periods do not count.
    w = np.where(np.isfinite(nxt), np.minimum(nxt, 3 * tau), np.minimum(typical, 3 * tau))
    w = np.where(valid, w, 0.0)
    with np.errstate(invalid="ignore"):
        mean = np.sum(np.nan_to_num(nrs) * w, axis=-1) / np.where(w.sum(-1) > 0, w.sum(-1), np.nan)
        peak = np.nanmax(np.where(valid, nrs, -np.inf), axis=-1)
    peak = np.where(np.isfinite(peak), peak, np.nan)
    return Discomfort(times_s=t, nrs=nrs, peak=peak, mean=mean, components=components)
