r"""Cutaneous afferents (Aβ, Aδ, C) activated under surface electrodes: emsim's one afferent model.

Both :func:`emsim.physiology.recruitment.recruit` (``Recruitment.afferent_fraction``) and the
discomfort model (:func:`emsim.physiology.discomfort.cutaneous_activation`) call
:func:`activation`, so the afferent drive that recruitment reports is exactly what the
discomfort model was calibrated with (reference §4.5)::

    A_c,e(I, PW) = Σ_px area·Φ((ln(I·J_px) − ln J_th,c)/σ_c) / Σ area,
    J_th,c       = J_rh,c · s · (1 + c_c/PW)

* ``J_px`` is the local skin current density per ampere under electrode ``e`` (edge
  concentration and gel resistivity included: :meth:`emsim.physiology.field.FieldSolution.skin_current_density`);
  endings have log-normal thresholds around ``J_th,c`` with spread ``σ_c``.
* ``(1 + c_c/PW)`` is the Weiss strength–duration law with each class's chronaxie
  (Mogyoros 1996 sensory 665 µs; Guillen 2025 Aδ 232 µs; classical C ≈ 2 ms), PW the width of
  the first phase, for every pulsed waveform: Mogyoros's chronaxies are monophasic-pulse
  values while the calibration anchors stand for the clinical biphasic pulse
  (``reference_waveform`` in ``models/discomfort/discomfort.json``). The Brian2 tables'
  monophasic/biphasic ratios applied on top (tried) turn recruit's monophasic Aβ chronaxie into
  ~305 µs (outside Mogyoros's 665 ± 182 µs, S1) and put Aδ below the quadriceps motor threshold
  at 50 µs (S4), since the tables' Aδ has the sensory 656 µs chronaxie, not the calibrated
  232 µs (S3): shape-aware pulses need the anchors restated for a pulse shape first. A **kHz
  burst** is not a pulse of its half-cycle: :func:`waveform_multiplier` takes its threshold
  relative to the calibration pulse from the Brian2 fibre tables (``models/fibres/thresholds``,
  carrier × burst duration per class), the same axon-model response the motor units see; how
  many action potentials an active afferent fires per burst comes from the Brian2 burst-firing
  table (:func:`burst_spikes`, :mod:`emsim.physiology.burst_firing`).
* ``s`` is the person's cutaneous threshold scale (sex: the women/men sensory-threshold ratio,
  docs/literature/person_factors.md; or fitted to the patient's measured sensory threshold by
  :mod:`emsim.body.calibration`).

Parameters ``J_rh``, ``σ`` and ``c`` per class live in ``models/discomfort/discomfort.json``
(``classes``), calibrated to the anchors listed there: first sensation (5 % of Aβ,
:data:`SENSATION_LEVEL`) at 8 mA for 5 × 5 cm electrodes over the average lumbar erector spinae
at 250 µs, pain threshold near 3.5 × and tolerance near 7 × that current.

Why a density model rather than sampled Brian2 fibres: the Brian2 afferent tables
(``models/fibres/thresholds``) give the classes' strength–duration shapes, but their absolute
thresholds are not calibrated (reference §7 gap); sampled Aβ terminals reached 57 % at 1 mA
where the calibrated anchors put first sensation near 8 mA. The tables enter only as threshold
*ratios* (kHz burst / calibration pulse), so pulsed waveforms keep their calibration exactly.

References
----------
.. [Mogyoros1996] Mogyoros I, Kiernan MC, Burke D (1996). Brain 119:439–447.
.. [Maffiuletti2008] Maffiuletti NA et al. (2008). Ann Neurol 63:507.
.. [TENSsex] "The effects of sex, women's body composition and monthly cycle phases on the
   sensory threshold of upper limb to transcutaneous electrical nerve stimulation in healthy
   subjects" (n = 254; abstract; authors and journal not recorded).
.. [Sha2008] Sha N et al. (2008). Artif Organs (PMID 18782136).
"""

from __future__ import annotations

import math
import weakref
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, Mapping

import numpy as np
from scipy.special import ndtr

from emsim._data import load_data
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.physiology.fibre_tables import load_table

__all__ = ["AFFERENT_CLASSES", "CLASS_FILE", "SENSATION_LEVEL", "ClassParameters", "class_parameters",
           "sex_threshold_scale", "activation", "threshold_current", "read_value", "reference_waveform",
           "waveform_multiplier", "burst_spikes"]

#: The file holding the class parameters (the discomfort model's calibration).
CLASS_FILE = "discomfort/discomfort.json"
AFFERENT_CLASSES = ("abeta", "adelta", "c")
#: Fraction of a class under an electrode that counts as its threshold (first sensation for Aβ:
#: the criterion of the calibration anchors in ``models/discomfort/discomfort.json``).
SENSATION_LEVEL = 0.05
_BINS = 256


def read_value(d: dict, key: str, where: str) -> float:
    """``d[key]["value"]`` as a finite float ≥ 0, or a :class:`ModelParameterError` naming it."""
    try:
        value = float(d[key]["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelParameterError("missing or non-numeric parameter", path=f"{where}.{key}") from exc
    if not math.isfinite(value) or value < 0:
        raise ModelParameterError("parameter must be finite and >= 0", path=f"{where}.{key}", value=value,
                                  allowed=">= 0")
    return value


@dataclass(frozen=True)
class ClassParameters:
    """One cutaneous class: Weiss chronaxie, rheobase local current density, log-normal spread,
    and its weight in the discomfort sum (used by :mod:`emsim.physiology.discomfort` only)."""

    chronaxie_s: float
    rheobase_j_a_per_m2: float
    sigma_ln: float
    weight: float


@lru_cache(maxsize=8)
def class_parameters(relative: str = CLASS_FILE) -> dict[str, ClassParameters]:
    """The cutaneous classes of a parameter file (default ``models/discomfort/discomfort.json``)."""
    d = load_data(relative)
    out = {}
    for c in AFFERENT_CLASSES:
        e = d.get("classes", {}).get(c)
        if e is None:
            raise ModelParameterError("missing afferent class", path=f"{relative}:$.classes.{c}")
        out[c] = ClassParameters(*(read_value(e, k, f"{relative}:$.classes.{c}") for k in
                                   ("chronaxie_s", "rheobase_j_a_per_m2", "sigma_ln", "weight")))
    return out


def sex_threshold_scale(sex: str | None, relative: str = CLASS_FILE) -> float:
    """Cutaneous threshold scale for a recorded sex (women/men sensory-threshold ratio 0.78 from a
    254-subject TENS study — Maffiuletti 2008's −43 % overstates its own VAS data with one scale
    for every class, docs/literature/person_factors.md; the geometric mean when sex is not recorded)."""
    person = load_data(relative).get("person", {})
    where = f"{relative}:$.person"
    if sex == "male":
        return 1.0
    if sex == "female":
        return read_value(person, "female_cutaneous_threshold_scale", where)
    return read_value(person, "unspecified_sex_threshold_scale", where)


# ---------------------------------------------------------------------------- waveforms

@lru_cache(maxsize=8)
def reference_waveform(relative: str = CLASS_FILE) -> dict[str, float]:
    """The pulse the class parameters were calibrated with: ``{"gap_s": …, "pulse_width_s": …}``
    of a symmetric biphasic pulse (``reference_waveform`` in the parameter file)."""
    block = load_data(relative).get("reference_waveform")
    where = f"{relative}:$.reference_waveform"
    if not isinstance(block, dict) or block.get("shape") != "symmetric_biphasic":
        raise ModelParameterError("missing or unsupported reference waveform (needs shape symmetric_biphasic)",
                                  path=where)
    return {"gap_s": read_value(block, "interphase_gap_us", where) * 1e-6,
            "pulse_width_s": read_value(block, "pulse_width_us", where) * 1e-6}


def waveform_multiplier(waveform: Mapping[str, Any], *, classes: Mapping[str, ClassParameters] | None = None,
                        table=None, relative: str = CLASS_FILE) -> dict[str, np.ndarray]:
    """``J_th/J_rh`` of each class for each waveform of a batch.

    * Pulsed waveforms: the calibrated Weiss factor ``1 + c_c/PW`` of the first-phase width,
      whatever the second phase (see the module docstring for why).
    * kHz bursts: ``(1 + c_c/PW_ref) · T_c(burst) / T_c(ref)`` with ``T_c`` the Brian2 fibre
      table's threshold (geometric mean of the ratio over the class's tabulated diameters) and
      ``ref`` the calibration pulse (:func:`reference_waveform`, width ``PW_ref``): the burst's
      threshold relative to the calibrated pulse — its dependence on carrier and burst
      duration — is the axon model's, exactly as for the motor units
      (:mod:`emsim.physiology.recruitment`). (Anchoring at a pulse of the carrier's half-cycle
      instead would put the Weiss law's extrapolation to 25–50 µs phases into the carrier
      response, where the Brian2 strength–duration curves are steeper than Weiss's.)

    Parameters
    ----------
    waveform : mapping
        Table query arrays of equal length B (``kind``, ``pulse_width_s``, ``gap_s``, ``ratio``,
        ``carrier_hz``, ``burst_s``), as :func:`emsim.physiology.recruitment.waveform_parameters`
        returns (``kind`` 3 = kHz burst, ``pulse_width_s`` its half-cycle).
    classes : mapping class → ClassParameters, optional
        Default :func:`class_parameters` of ``relative``.
    table : ThresholdTable, optional
        Default: the shipped table (read only when the batch holds a kHz burst). A class it
        lacks keeps the Weiss factor of the half-cycle.

    Returns
    -------
    dict class → ndarray (B,)
        ``inf`` where the axon model found the burst unable to excite the class.
    """
    classes = class_parameters(relative) if classes is None else classes
    pw = np.asarray(waveform["pulse_width_s"], dtype=float).reshape(-1)
    _check_width(pw)
    khz = np.asarray(waveform["kind"], dtype=int).reshape(-1) == 3
    out = {name: 1.0 + c.chronaxie_s / pw for name, c in classes.items()}
    if not np.any(khz):
        return out
    table = load_table() if table is None else table
    ref_w = reference_waveform(relative)
    n = int(khz.sum())
    burst = {k: np.asarray(v).reshape(-1)[khz] for k, v in waveform.items()}
    ref = {"kind": np.ones(n, int), "pulse_width_s": np.full(n, ref_w["pulse_width_s"]),
           "gap_s": np.full(n, ref_w["gap_s"]), "ratio": np.ones(n), "carrier_hz": np.zeros(n),
           "burst_s": np.zeros(n)}
    for name, c in classes.items():
        if name not in table.classes:
            continue
        with np.errstate(divide="ignore", invalid="ignore"):
            log_ratio = np.mean(np.log(table.waveform_factor(name, burst))
                                - np.log(table.waveform_factor(name, ref)), axis=1)
        # inf/inf (neither excites within the search cap): the burst cannot excite it either
        ratio = np.where(np.isnan(log_ratio), np.inf, np.exp(log_ratio))
        out[name][khz] = (1.0 + c.chronaxie_s / ref_w["pulse_width_s"]) * ratio
    return out


# ---------------------------------------------------------------------------- density histograms

#: Largest step (in ln current) of the tabulated response of an electrode; linear interpolation
#: in it is within ~1e-6 of the direct sum over the histogram (Δ²/8 · max|F''| with σ ≥ 0.4).
_RESPONSE_STEP = 4e-3

# Per map: area-weighted histograms of ln(density) per electrode, and per σ the tabulated
# response of each electrode. A map is immutable, so none of these changes;
# entries live as long as their map.
_CACHE: dict[int, tuple] = {}


def _cached(contact) -> tuple[list, dict]:
    """(histograms per electrode, dict of things derived from them) of one density map."""
    key = id(contact)
    hit = _CACHE.get(key)
    if hit is not None and hit[0]() is contact:
        return hit[1], hit[2]
    hists = [_log_density_histogram(*contact.samples(e)) for e in range(len(contact.electrodes))]
    derived: dict = {}
    try:
        ref = weakref.ref(contact, lambda _r, k=key: _CACHE.pop(k, None))
    except TypeError:  # objects without weak-reference support are not cached
        return hists, derived
    _CACHE[key] = (ref, hists, derived)
    return hists, derived


def _response(log_j, w, h, sigma):
    """``F(y) = Σ w·Φ((y + ln J)/σ)`` tabulated on a grid of ``y = ln I − ln J_th``.

    The histogram's bin centres are evenly spaced (step ``h``), so with a grid step ``h/m`` every
    ``y + ln J`` falls on one sample grid: Φ is evaluated once per sample and F is a strided sum
    over bins (exact at the grid points). Below the grid F < 1e-15, above it F = 1 to 1e-15;
    :func:`numpy.interp` clamps to those.
    """
    if log_j.size == 1:
        y = np.linspace(-log_j[0] - 8.0 * sigma, -log_j[0] + 8.0 * sigma, 4001)
        return y, ndtr((y + log_j[0]) / sigma)
    bins = np.rint((log_j - log_j[0]) / h).astype(int)      # bin index of every kept bin
    m = max(1, int(math.ceil(h / _RESPONSE_STEP)))
    lo = -float(log_j[-1]) - 8.0 * sigma
    n = int(math.ceil((float(log_j[-1] - log_j[0]) + 16.0 * sigma) / (h / m))) + 1
    y = lo + np.arange(n) * (h / m)
    # samples g_k = Φ((lo + log_j[0] + k·h/m)/σ), k = 0 … n − 1 + m·bins[-1]
    g = ndtr((lo + log_j[0] + np.arange(n + m * bins[-1]) * (h / m)) / sigma)
    f = np.zeros(n)
    for b, wb in zip(bins, w):
        f += wb * g[m * b:m * b + n]
    # The weights sum to 1 only to rounding: a fraction may not exceed 1 (AfferentDrive checks).
    return y, np.minimum(f, 1.0)


def _responses(contact, sigma) -> list:
    hists, derived = _cached(contact)
    key = ("response", sigma)
    if key not in derived:
        derived[key] = [_response(log_j, w, h, sigma) for log_j, w, h in hists]
    return derived[key]


def _log_density_histogram(density, area, bins: int = _BINS):
    """Area-weighted histogram of ln(density): (centres of the non-empty bins, their weights
    summing to 1, the bin width — 0 when all pixels share one density)."""
    m = density > 0
    lj, a = np.log(density[m]), area[m]
    lo, hi = lj.min(), lj.max()
    if hi - lo < 1e-9:
        return np.array([lo]), np.array([1.0]), 0.0
    edges = np.linspace(lo, hi, bins + 1)
    w, _ = np.histogram(lj, bins=edges, weights=a)
    keep = w > 0
    return 0.5 * (edges[:-1] + edges[1:])[keep], w[keep] / w.sum(), float(edges[1] - edges[0])


# ---------------------------------------------------------------------------- activation

def _log_threshold(c: ClassParameters, shape, pulse_width, threshold_scale, multiplier) -> np.ndarray:
    """ln J_th for every stimulus: rheobase × person scale × (tabulated or Weiss) multiplier."""
    mult = (np.broadcast_to(np.asarray(multiplier, dtype=float), shape) if multiplier is not None
            else 1.0 + c.chronaxie_s / pulse_width)
    return np.log(c.rheobase_j_a_per_m2 * threshold_scale * mult)


def _check_width(pulse_width):
    if np.any(~(pulse_width > 0)):
        raise PhysiologyInputError("pulse width must be positive", path="pulse_width_s",
                                   value=float(np.min(pulse_width)), allowed="> 0 s")


def activation(contact, current_a, pulse_width_s, *, classes: Mapping[str, ClassParameters] | None = None,
               threshold_scale: float = 1.0,
               threshold_multiplier: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Fraction of each cutaneous class activated under each electrode (module docstring).

    Parameters
    ----------
    contact : emsim.physiology.field.SkinCurrentDensity
        Skin current-density map per ampere.
    current_a, pulse_width_s : array_like
        Pulse current (A) and first-phase width (s); broadcast together to shape ``S``.
    classes : mapping class → ClassParameters, optional
        Default :func:`class_parameters`.
    threshold_scale : float
        The person's cutaneous threshold scale (multiplies every class's threshold).
    threshold_multiplier : mapping class → array_like, optional
        ``J_th/J_rh`` per class and stimulus, replacing the Weiss factor ``1 + c/PW``.

    Returns
    -------
    dict class → ndarray, shape ``S + (n_electrodes,)``
    """
    classes = class_parameters() if classes is None else classes
    current, pw = np.broadcast_arrays(np.asarray(current_a, dtype=float), np.asarray(pulse_width_s, dtype=float))
    if np.any(current < 0) or np.any(~np.isfinite(current)):
        raise PhysiologyInputError("current must be finite and >= 0", path="current_a",
                                   value=float(np.min(current)), allowed=">= 0 A")
    _check_width(pw)
    log_i = np.log(np.where(current > 0, current, 1e-300))
    out = {}
    for name, c in classes.items():
        mult = None if threshold_multiplier is None else threshold_multiplier.get(name)
        y = log_i - _log_threshold(c, current.shape, pw, threshold_scale, mult)
        resp = _responses(contact, c.sigma_ln)
        frac = np.empty(current.shape + (len(resp),))
        for e, (grid, f) in enumerate(resp):
            frac[..., e] = np.interp(y, grid, f)
        # an infinite threshold (a waveform the axon model found unable to excite) excites none
        out[name] = np.where((current[..., None] > 0) & np.isfinite(y)[..., None], frac, 0.0)
    return out


def threshold_current(contact, pulse_width_s, *, level: float = SENSATION_LEVEL,
                      classes: Mapping[str, ClassParameters] | None = None, threshold_scale: float = 1.0,
                      threshold_multiplier: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Current (A) at which ``level`` of each class under each electrode is active.

    The inverse of :func:`activation` in the current: the stimulus enters only through
    ``ln J_th``, so the level's offset is read once per electrode and class off the same
    tabulated response.

    Returns
    -------
    dict class → ndarray, shape ``pulse_width_s.shape + (n_electrodes,)``
    """
    if not 0.0 < level < 1.0:
        raise PhysiologyInputError("threshold level must lie strictly between 0 and 1", path="level",
                                   value=level, allowed="0 < level < 1")
    classes = class_parameters() if classes is None else classes
    pw = np.asarray(pulse_width_s, dtype=float)
    _check_width(pw)
    out = {}
    for name, c in classes.items():
        mult = None if threshold_multiplier is None else threshold_multiplier.get(name)
        log_th = _log_threshold(c, pw.shape, pw, threshold_scale, mult)
        # F rises strictly through any level in (0, 1): its piecewise-linear inverse is exact.
        y = np.array([np.interp(level, f, grid) for grid, f in _responses(contact, c.sigma_ln)])
        out[name] = np.exp(log_th[..., None] + y)
    return out


def burst_spikes(contact, current_a, waveform: Mapping[str, Any], *, threshold_multiplier: Mapping[str, Any],
                 classes: Mapping[str, ClassParameters] | None = None, threshold_scale: float = 1.0,
                 firing=None) -> dict[str, np.ndarray]:
    """Action potentials per activated afferent per pulse, for each class under each electrode.

    1 for pulsed waveforms (a pulse fires a fibre at most once). For a kHz burst, a fibre driven
    at ``m`` times its own threshold fires ``n(m)`` action potentials (the Brian2 burst-firing
    table, :mod:`emsim.physiology.burst_firing`: several at a 1 kHz carrier, where each cycle
    acts as a pulse; fewer where the fibre cannot follow the carrier); over the log-normal
    endings under the electrode this is ``Σ_j F(I/m_j) / F(I)`` (the module's step function).

    Parameters
    ----------
    contact, current_a : as :func:`activation` (``current_a`` of shape (S,))
    waveform : mapping
        Table query arrays of length S (:func:`emsim.physiology.recruitment.waveform_parameters`).
    threshold_multiplier : mapping class → array (S,)
        The classes' ``J_th/J_rh`` for these waveforms (:func:`waveform_multiplier`).
    firing : BurstFiring, optional
        Default: the shipped table (read only when a kHz burst is present).

    Returns
    -------
    dict class → ndarray (S, n_electrodes), ≥ 1 (1 where no fibre of the class is active).
    """
    from emsim.physiology.burst_firing import load_burst_firing, spike_weighted_fraction

    classes = class_parameters() if classes is None else classes
    current = np.asarray(current_a, dtype=float).reshape(-1)
    khz = np.asarray(waveform["kind"], dtype=int).reshape(-1) == 3
    n_e = len(contact.electrodes)
    out = {name: np.ones((current.size, n_e)) for name in classes}
    if not np.any(khz):
        return out
    firing = load_burst_firing() if firing is None else firing
    pw = np.asarray(waveform["pulse_width_s"], float).reshape(-1)[khz]
    car = np.asarray(waveform["carrier_hz"], float).reshape(-1)[khz]
    burst = np.asarray(waveform["burst_s"], float).reshape(-1)[khz]
    for name, c in classes.items():
        if name not in firing.counts:
            continue
        mult = np.broadcast_to(np.asarray(threshold_multiplier[name], float).reshape(-1), current.shape)[khz]

        def fraction_at(scale, name=name, c=c, mult=mult):
            return activation(contact, current[khz], pw, classes={name: c}, threshold_scale=threshold_scale,
                              threshold_multiplier={name: mult * scale})[name]

        spikes = spike_weighted_fraction(fraction_at, firing.steps(name, car, burst))
        active = fraction_at(np.ones(mult.shape))
        with np.errstate(divide="ignore", invalid="ignore"):
            out[name][khz] = np.where(active > 1e-12, np.maximum(spikes / active, 1.0), 1.0)
    return out
