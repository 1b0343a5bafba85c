r"""Evoked muscle force, fatigue and recovery: the EMS motor-unit pool on the Ding force core.

Public API
----------
:func:`simulate` drives a muscle with a compiled :class:`~emsim.program.compile.PulseTrain` or
with plain arrays of pulse times and returns a :class:`ForceResult`; :func:`load_muscle` reads a
parameter set from ``models/muscles/<name>.json``.

The model, in three layers
--------------------------
1. **Force core** — Ding, Wexler & Binder-Macleod 2003 (J Electromyogr Kinesiol 13:575) CN–F
   model with the Ding et al. 2007 (Muscle Nerve 36:214) pulse-duration term and the Hmed et al.
   2018 (Comput Biol Med 101:218) amplitude term, integrated with the exact CN update
   (:mod:`emsim.physiology.ding`).
2. **Motor-unit pool** — Fuglevand 1993 / Potvin & Fuglevand 2017 units reduced to classes
   (:mod:`emsim.physiology.pool`); the units recruited by a pulse fire synchronously, in a fixed
   set (recruitment depth groups), each class with its own contraction time and fatigability.
   With one class the pool *is* the Ding core.
3. **Fatigue and recovery** per cell, driven by the cell's own force and pulses, with fast and
   slow recovery and low-frequency fatigue (:mod:`emsim.physiology.fatigue`).

Numerics are in :mod:`emsim.physiology._muscle_solver` and its compiled kernel
:mod:`emsim.physiology._muscle_kernel` (exact CN, RK4 for F, the fatigue deficits integrated
alongside, exact rests, envelope stepping over repeated contractions and over identical pulse
intervals inside a contraction).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property, lru_cache, partial
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import numpy as np

from emsim._data import models_dir
from emsim.physiology import _muscle_kernel as kernel
from emsim.physiology import _muscle_solver as solver
from emsim.physiology.ding import (DingParameters, ParameterInfo, _check_max_step, _check_pulses,
                                   _check_per_pulse, _float_array, _SPEC as DING_SPEC, ding_force,
                                   read_document, read_entries)
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.physiology.fatigue import (FATIGUE_SPEC, MECH_CAPACITY, FatigueParameters,
                                      deficit_gains, deficit_rate_cap_intervals,
                                      deficit_uses_economy, economy_factors,
                                      deficit_interval_thresholds, deficit_mechanisms,
                                      deficit_saturation_levels, deficit_time_constants,
                                      deficit_uses_fatigability)
from emsim.physiology.pool import POOL_SPEC, MotorUnitPool, PoolParameters, build_pool

__all__ = ["MuscleParameters", "ForceResult", "load_muscle", "muscle_names", "simulate", "warm_up",
           "set_num_threads", "get_num_threads"]

#: Most recruitment depth groups tracked separately (units recruited alike share a group).
MAX_DEPTH_GROUPS = 6
#: Default tolerance of the envelope stepping over repeated contractions (deficit units).
SKIP_TOL = 1e-3
#: Default largest node step inside contractions, s.
MAX_STEP = 2.5e-3
_MAX_TRACE_VALUES = 20_000_000


@dataclass(frozen=True)
class MuscleParameters:
    """A muscle: Ding force core, motor-unit pool and fatigue rates, with provenance.

    Attributes
    ----------
    name : str
        File stem in ``models/muscles``.
    ding : DingParameters
        Force core (A, τ1, τ2, Km, τc, R0 and the optional pulse-duration/amplitude terms). Its
        α and τfat values set the fatigue gains (see :mod:`emsim.physiology.fatigue`).
    pool : PoolParameters
    fatigue : FatigueParameters
    description : str
    provenance : Mapping[str, ParameterInfo]
        ``section.name`` → unit, source, evidence level and note.
    sources : Mapping[str, str]
    """

    name: str
    ding: DingParameters
    pool: PoolParameters = PoolParameters()
    fatigue: FatigueParameters = FatigueParameters()
    description: str = ""
    provenance: Mapping[str, ParameterInfo] = field(default_factory=dict, compare=False, repr=False)
    sources: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @cached_property
    def motor_units(self) -> MotorUnitPool:
        return build_pool(self.pool)

    @cached_property
    def max_force(self) -> float:
        """Rested, fully recruited peak force of a 1 s, 100 Hz train, N (the reference F_max)."""
        pulses = np.arange(100) / 100.0
        kw = {}
        if self.ding.has_pulse_duration_term:
            kw["pulse_width"] = 10 * (self.ding.pd0 + 10 * self.ding.pdt)
        res = ding_force(pulses, np.linspace(0.0, 1.2, 1201), self.ding, **kw)
        return float(res.force.max())

    def evidence(self) -> dict[str, str]:
        """``section.name`` → evidence level, for showing users how certain each value is."""
        return {k: v.evidence for k, v in self.provenance.items()}


def muscle_names() -> list[str]:
    """Names of the shipped muscle parameter sets."""
    return sorted(p.stem for p in (models_dir() / "muscles").glob("*.json"))


def load_muscle(name: str) -> MuscleParameters:
    """Read ``models/muscles/<name>.json``.

    Parameters
    ----------
    name : str
        File stem, e.g. ``quadriceps_ding2003``, ``quadriceps_ding2007``,
        ``lumbar_erector_spinae``, ``lumbar_multifidus``, ``gluteus_maximus``.

    Returns
    -------
    MuscleParameters

    Raises
    ------
    ModelParameterError
        Unknown name (the error lists the known ones), or a file with missing, unknown, mis-united
        or out-of-range values (the error names the JSON path).

    Notes
    -----
    Every value carries its source and evidence level (``MuscleParameters.evidence``). The
    quadriceps sets are published ones: ``quadriceps_ding2003`` (able-bodied; Ding, Wexler &
    Binder-Macleod 2003, J Electromyogr Kinesiol 13:575, with the Hmed et al. 2018 amplitude
    term) and ``quadriceps_ding2007`` (spinal-cord-injured; Ding et al. 2007, Muscle Nerve
    36:214, cocofest defaults). The lumbar, hip and abdominal sets are extrapolated from
    ``quadriceps_ding2003``; each file's ``description`` states how (force scaled by PCSA,
    fibre-type composition, twitch times).
    """
    if not isinstance(name, str) or not name or "/" in name or "\\" in name:
        raise ModelParameterError("muscle name must be a file stem in models/muscles",
                                  path="muscle", value=name, allowed=", ".join(muscle_names()))
    path = models_dir() / "muscles" / f"{name}.json"
    if not path.is_file():
        raise ModelParameterError("unknown muscle", path="muscle", value=name,
                                  allowed=", ".join(muscle_names()))
    st = path.stat()
    return _from_file(str(path.resolve()), st.st_mtime_ns, st.st_size)


@lru_cache(maxsize=64)
def _from_file(path: str, mtime_ns: int = 0, size: int = 0) -> MuscleParameters:
    # memoised on the file's identity and version: the optimiser and studies call
    # load_muscle (and the cached MuscleParameters.max_force, a 1.2 s Ding run) per candidate;
    # the parameter sets are immutable, so sharing one object is safe
    path = Path(path)
    doc = read_document(path)
    where = str(path)
    sources = doc.get("sources") or {}
    values, info = read_entries(doc["parameters"], DING_SPEC, sources, f"{where}:$.parameters")
    ding = DingParameters._from_parts(values, info, str(doc.get("name", path.stem)), sources)
    prov = {f"parameters.{k}": v for k, v in info.items()}
    pool, fat = PoolParameters(), FatigueParameters.ding2003(ding.tau_fat)
    if doc.get("format") == "emsim.muscle/1":
        pv, pi = read_entries(doc.get("pool"), POOL_SPEC, sources, f"{where}:$.pool")
        fv, fi = read_entries(doc.get("fatigue"), FATIGUE_SPEC, sources, f"{where}:$.fatigue")
        try:
            pool = PoolParameters(**{k: (int(v) if k in ("n_units", "n_classes") else v)
                                     for k, v in pv.items()})
            fat = FatigueParameters(**fv)
        except ModelParameterError as exc:
            exc.path = f"{where}:$.{exc.path}"
            raise
        prov.update({f"pool.{k}": v for k, v in pi.items()})
        prov.update({f"fatigue.{k}": v for k, v in fi.items()})
    return MuscleParameters(name=str(doc.get("name", path.stem)), ding=ding, pool=pool,
                            fatigue=fat, description=str(doc.get("description", "")),
                            provenance=MappingProxyType(prov), sources=MappingProxyType(dict(sources)))


@dataclass
class ForceResult:
    """Output of :func:`simulate` (all arrays have a leading batch axis).

    Attributes
    ----------
    t : numpy.ndarray
        Sample times, s, shape ``(n_t,)`` (empty with ``trace=False``).
    force_n : numpy.ndarray
        Force, N, shape ``(batch, n_t)``.
    contraction_start_s : numpy.ndarray
        Start of each contraction (a burst of pulses separated from the next by > 0.25 s), s,
        shape ``(batch, n_contractions)``, NaN-padded.
    peak_force_n, fti_ns : numpy.ndarray
        Peak force (N) and force–time integral (N·s, including the relaxation after the burst)
        of each contraction, same shape, NaN-padded.
    end_force_n : numpy.ndarray
        Force at the end of each contraction's plateau, N, same shape, NaN-padded: the largest
        force from the contraction's last fully driving pulse (recruitment × amplitude factor ×
        pulse-duration factor within 0.1 % of the contraction's strongest pulse) to the end of
        its relaxation. On a fused plateau that is the ripple peak after the last plateau pulse,
        in an unfused train that pulse's twitch peak; weaker pulses after it (a doublet's second
        pulse, a kHz burst's extra action potentials) add to it, while a ramp-down's falling
        recruitment does not lower it (the ramp is not fatigue). Compared with ``peak_force_n``
        it shows the fatigue inside a contraction (a peak comes early in a long one).
    fti_total_ns : numpy.ndarray
        Force–time integral of the whole train, N·s, shape ``(batch,)``.
    fatigue_index : numpy.ndarray
        Peak of the last contraction over peak of the first (1 = no fatigue; NaN with fewer than
        two contractions), shape ``(batch,)``.
    cell_peak_force_n : numpy.ndarray
        Peak force of each cell in each contraction, N, shape ``(batch, n_contractions, cells)``
        (per unit class and recruitment depth group; see ``cells``), NaN-padded.
    capacity : numpy.ndarray
        Remaining force capacity at the end, force-weighted over the whole pool (1 = rested).
    deficits : numpy.ndarray
        Fatigue deficits at the end per row, cell and deficit, shape
        ``(batch, cells, N_DEFICITS)`` (order: :mod:`emsim.physiology.fatigue`).
    cells : list of dict
        Class, recruitment depth range and force share of each cell of the first row (every
        row has its own depth groups, from its own recruitment levels; zero-width groups pad
        rows with fewer groups than the widest row).
    muscle : MuscleParameters
    stats : dict
        Contractions (``segments``) and those integrated (``integrated``: the others were
        stepped over); node steps integrated, summed over rows, and what the integrated
        contractions would have cost without stepping over identical pulse intervals.
    """

    t: np.ndarray
    force_n: np.ndarray
    contraction_start_s: np.ndarray
    peak_force_n: np.ndarray
    fti_ns: np.ndarray
    end_force_n: np.ndarray
    fti_total_ns: np.ndarray
    fatigue_index: np.ndarray
    cell_peak_force_n: np.ndarray
    capacity: np.ndarray
    deficits: np.ndarray
    cells: list
    muscle: MuscleParameters
    stats: dict


def _bad(msg, path, value=None, allowed=None, has_value=True):
    return PhysiologyInputError(msg, path=path, value=value, allowed=allowed, has_value=has_value)


def _from_pulse_train(train):
    rows, widths, amps = [], [], []
    for c in range(len(train.channel_ids)):
        sl = train.channel_slice(c)
        rows.append(train.t_s[sl])
        widths.append(train.width_s[sl])
        amps.append(train.amplitude_a[sl])
    n = max((r.size for r in rows), default=0)
    if n == 0:
        raise _bad("the pulse train has no pulses", "train", has_value=False,
                   allowed="at least one pulse")

    def pad(list_, fill):
        out = np.full((len(list_), n), fill)
        for i, r in enumerate(list_):
            out[i, :r.size] = r
        return out

    t = pad(rows, np.nan)
    amp = pad(amps, 0.0)
    known = np.isfinite(amp) & (amp > 0)
    return t, pad(widths, 1e-4), np.where(known, amp, np.nan), float(train.duration_s)


def _unpadded(pulses: np.ndarray) -> bool:
    return not np.isnan(pulses[..., -1]).any()   # NaN padding is trailing (checked)


def _pulses(arr: np.ndarray, batch: bool) -> np.ndarray:
    """Checked pulse times as (rows, pulses); one compiled pass over the distinct rows (a
    broadcast batch is checked once) when they are fine, else the ding checker names the first
    problem."""
    a2 = arr if batch else arr[None, :]
    if (isinstance(arr, np.ndarray) and arr.dtype == np.float64 and arr.ndim == (2 if batch else 1)
            and a2.shape[0] and a2.shape[1] and kernel.pulses_ok(solver.compact(a2))
            and (batch or not np.isnan(arr[-1]))):
        return a2
    return _check_pulses(arr, batch)


def _per_pulse(x, name: str, pulses: np.ndarray, batch: bool, check: str, unit: str,
               top: float = np.inf) -> tuple[np.ndarray, bool]:
    """:func:`~emsim.physiology.ding._check_per_pulse` without copies when the values are fine;
    also says whether they were found ≤ ``top`` (one pass over large arrays, not two; values
    constant along the pulses, a broadcast column, are checked once per row). The values at
    NaN-padded pulses are then returned as given, unchecked, where the checker puts NaN: every
    caller masks them with the valid pulses."""
    if isinstance(x, np.ndarray) and x.dtype == np.float64:
        x2 = x if batch else (x[None, :] if x.ndim == 1 else None)
        if x2 is not None and x2.shape == pulses.shape:
            xc = solver.compact(x2)
            if kernel.values_ok(xc, solver.compact(pulses[:, :xc.shape[1]]),
                                check == "positive", top):
                return x2, True
    return _check_per_pulse(x, name, pulses, batch, check, unit), top == np.inf


def _timing_groups(pulses: np.ndarray) -> list[list[int]]:
    """Rows with the same pulse timing (integrated together), bit for bit (NaN padding
    included): grouped by a hash of each row's times, confirmed by comparison
    (:func:`~emsim.physiology._muscle_solver._equal_rows`); a broadcast batch is one group."""
    B, P = pulses.shape
    bits = (solver.compact(pulses) if pulses.strides[0] == 0 else pulses).view(np.uint64)
    h = kernel.block_hashes(bits, np.zeros(1, np.int64), np.array([P]))
    _, label = solver._equal_rows(np.broadcast_to(h, (B, 1)), [bits])
    order = np.argsort(label, kind="stable")
    return [g.tolist() for g in np.split(order, np.cumsum(np.bincount(label))[:-1])]


def _take(a: np.ndarray, rows: list[int], n: int) -> np.ndarray:
    """Rows ``rows`` and their first ``n`` pulses of a per-pulse factor, without copying
    broadcast (constant) factors or a whole unpadded batch."""
    if a.strides[1] == 0:
        return np.broadcast_to(a[rows, :1], (len(rows), n))
    if n == a.shape[1] and len(rows) == a.shape[0] and rows == list(range(a.shape[0])):
        return a
    return a[rows, :n]


def _recruitment(recruitment, pulses, valid, batch, amp, ding: DingParameters):
    if recruitment is None:
        if amp is not None and not ding.has_amplitude_term:
            # Placeholder until the recruitment model feeds the pool: the ramp shape, relative to
            # each row's largest amplitude, recruits the pool in proportion.
            top = np.nanmax(np.where(valid, amp, np.nan), axis=1, keepdims=True)
            return np.where(valid, np.nan_to_num(amp / top, nan=1.0), 1.0)
        return np.broadcast_to(1.0, pulses.shape)
    if np.isscalar(recruitment) or np.ndim(recruitment) == 0:
        r = recruitment
        if isinstance(r, bool) or not isinstance(r, (int, float, np.floating, np.integer)) \
                or not 0.0 <= float(r) <= 1.0:
            raise _bad("recruitment must be a fraction of the motor-unit pool", "recruitment",
                       value=r, allowed="0 to 1")
        return np.broadcast_to(float(r), pulses.shape)
    try:
        r, below_top = _per_pulse(recruitment, "recruitment", pulses, batch, "nonnegative", "",
                                  top=1.0)
    except PhysiologyInputError as exc:
        if not exc.has_value or exc.message != "recruitment out of range":
            raise
        # the generic per-pulse check only knows the lower bound; name the whole range
        raise _bad("recruitment must be a fraction of the motor-unit pool", exc.path,
                   value=exc.value, allowed="0 to 1") from None
    if not below_top and not kernel.values_ok(r, pulses, False, 1.0):
        bad = np.argwhere(valid & (r > 1.0))[0]
        raise _bad("recruitment must be a fraction of the motor-unit pool",
                   f"recruitment[{', '.join(map(str, bad))}]", value=float(r[tuple(bad)]),
                   allowed="0 to 1")
    return r if _unpadded(pulses) else np.where(valid, r, 1.0)


def _row_levels(seen: np.ndarray) -> np.ndarray:
    """A row's depth-group upper edges: its recruitment levels, at most ``MAX_DEPTH_GROUPS``
    (quantiles of its levels when it has more)."""
    levels = np.flatnonzero(seen) / 1000.0 if seen.any() else np.array([1.0])
    if levels.size > MAX_DEPTH_GROUPS:
        q = np.linspace(0, 1, MAX_DEPTH_GROUPS + 1)[1:]
        levels = np.unique(np.round(np.quantile(levels, q), 3))
    return levels


def _cells(muscle: MuscleParameters, recr: np.ndarray) -> solver.Cells:
    """Cells (unit class × depth group) with each row's own depth-group edges.

    The edges come from the row's own recruitment levels only, so a row's result does not
    depend on the other rows of a batch (or on the other channel of a program); rows with fewer
    groups than the widest row are padded with zero-width groups (no share, never recruited).
    """
    B = recr.shape[0]
    # per row: which of np.unique(np.round(r[r > 0], 3)) occur
    seen = kernel.recruitment_levels(solver.compact(recr))
    # the levels of each distinct pattern once (a batch of flat rows has one pattern per level)
    _, first, inverse = np.unique(np.packbits(seen, axis=1), axis=0, return_index=True,
                                  return_inverse=True)
    per_pattern = [_row_levels(seen[r]) for r in first]
    D = max(lv.size for lv in per_pattern)
    edges = np.ones((len(per_pattern), D + 1))
    edges[:, 0] = 0.0
    for u, lv in enumerate(per_pattern):
        edges[u, 1:lv.size + 1] = lv
        edges[u, lv.size + 1:] = lv[-1]
    edges = np.ascontiguousarray(np.broadcast_to(edges[inverse.ravel()], (B, D + 1)))
    pool = muscle.motor_units
    G = len(pool.classes)
    width = np.diff(edges, axis=1)
    return solver.Cells(
        weight=(width[:, :, None] * pool.force_share[None, None, :]).reshape(B, D * G),
        time_factor=np.tile(pool.time_factor, D),
        fatigability=np.tile(pool.class_fatigability, D),
        depth=np.repeat(np.arange(D), G),
        edges=edges,
    )


def _model(muscle: MuscleParameters, fatigue: bool) -> solver.Model:
    d, f = muscle.ding, muscle.fatigue
    force_gain, pulse_gain = deficit_gains(d, f, muscle.max_force)
    mech = deficit_mechanisms(f)
    thr = np.asarray(deficit_interval_thresholds(f), dtype=np.float64)
    use_fat = np.asarray(deficit_uses_fatigability(f))
    cap = np.asarray(deficit_rate_cap_intervals(f), dtype=np.float64)
    sat = np.asarray(deficit_saturation_levels(f), dtype=np.float64)
    n = mech.size
    for name, a in (("deficit_interval_thresholds", thr), ("deficit_uses_fatigability", use_fat),
                    ("deficit_rate_cap_intervals", cap), ("deficit_saturation_levels", sat)):
        if a.shape != (n,):
            raise ModelParameterError(f"{name} must give one value per deficit", path=name,
                                      value=a.shape, allowed=f"shape ({n},)")
    if not np.all(np.isfinite(thr) & (thr >= 0.0)):
        raise ModelParameterError("deficit interval thresholds must be finite and ≥ 0",
                                  path="deficit_interval_thresholds", value=thr.tolist(),
                                  allowed="≥ 0 s (0: off)")
    if not np.all(np.isfinite(cap) & (cap >= 0.0) & ((thr == 0.0) | (cap < thr))):
        raise ModelParameterError("rate-cap intervals must be finite, ≥ 0 and below the "
                                  "deficit's interval threshold", path="deficit_rate_cap_intervals",
                                  value=cap.tolist(), allowed="0 (off), or ≥ 0 and < threshold")
    if not np.all(np.isfinite(sat) & (sat >= 0.0)):
        raise ModelParameterError("deficit saturation levels must be finite and ≥ 0",
                                  path="deficit_saturation_levels", value=sat.tolist(),
                                  allowed="≥ 0 (0: none)")
    return solver.Model(tau_c=d.tau_c, a_rest=d.a_rest, tau1=d.tau1_rest, tau2=d.tau2, km=d.km_rest,
                        r0=d.km_rest + d.r0_km_offset, gains=force_gain, pulse_gains=pulse_gain,
                        mech=mech, taus=deficit_time_constants(f),
                        occlusion=f.occlusion_gain, f_max=muscle.max_force, fatigue=bool(fatigue),
                        thresholds=thr, pulse_fatigability=use_fat.astype(np.bool_),
                        rate_cap=cap, saturation=sat,
                        economy=partial(economy_factors, fat=f),
                        economy_mask=np.asarray(deficit_uses_economy(f), dtype=np.bool_))


def simulate(train: Any, muscle: str | MuscleParameters = "quadriceps_ding2003", *,
             fatigue: bool = True, recruitment: Any = None, dt: float | None = None,
             pulse_width_us: Any = None, amplitude_ma: Any = None, t_end: float | None = None,
             trace: bool = True, skip_tol: float | None = SKIP_TOL,
             max_step: float = MAX_STEP) -> ForceResult:
    """Force, fatigue and recovery of a muscle driven by a pulse train.

    Parameters
    ----------
    train : PulseTrain or array_like
        A compiled program (each channel is one row: one muscle region under one channel), or
        pulse times in seconds: 1-D, or ``(batch, pulses)`` padded at the end with NaN.
    muscle : str or MuscleParameters, default "quadriceps_ding2003"
        Parameter set name (file stem in ``models/muscles``) or a loaded set.
    fatigue : bool, default True
        Integrate fatigue and recovery; without it the muscle stays rested (the catch-like
        gain of short intervals, :mod:`emsim.physiology.fatigue`, still acts: it is not
        fatigue).
    recruitment : float or array_like, optional
        Fraction (0–1) of the motor-unit pool recruited, scalar or per pulse (same shape as the
        pulse times). Default: the whole pool (arrays) or, for a PulseTrain of a muscle without
        an amplitude term, the amplitude relative to each channel's largest (ramps recruit
        progressively) until the recruitment model provides it.
    dt : float, optional
        Sample interval of the force trace, s. Default 1 ms for up to 20 s of stimulation, else
        10 ms or coarser so that the trace stays below 2·10⁷ values.
    pulse_width_us, amplitude_ma : array_like, optional
        Per-pulse width (µs) and amplitude (mA) for array input, same shape as the pulse times
        or scalars; used by the Ding 2007 pulse-duration and Hmed 2018 amplitude terms.
    t_end : float, optional
        End of the simulation, s (default: 1 s after the last pulse, or the program's duration).
    trace : bool, default True
        Return the sampled force trace; ``False`` returns per-contraction outputs only (what
        batch searches need).
    skip_tol : float or None
        Tolerance of the envelope stepping over identical contractions (deficit units); ``None``
        integrates every contraction.
    max_step : float
        Largest node step inside contractions, s (0 < max_step ≤ 0.01).

    Returns
    -------
    ForceResult

    Raises
    ------
    PhysiologyInputError
        Empty or non-numeric trains, unsorted or duplicate pulse times, negative widths or
        amplitudes, recruitment outside 0–1, a bad ``dt``, ``t_end``, ``max_step`` or
        ``skip_tol``.
    ModelParameterError
        Unknown muscle name or a bad parameter file.

    References
    ----------
    Ding J, Wexler AS, Binder-Macleod SA (2003). Mathematical models for fatigue minimization
    during functional electrical stimulation. J Electromyogr Kinesiol 13:575–588.
    Ding J, Chou LW, Kesar TM, Lee SCK, Johnston TE, Wexler AS, Binder-Macleod SA (2007).
    Mathematical model that predicts the force–intensity and force–frequency relationships
    after spinal cord injuries. Muscle Nerve 36:214–222.
    Hmed AB, Bakir T, Garnier YM, Sakly A, Lepers R, Binczak S (2018). An approach to a muscle
    force model with force-pulse amplitude relationship of human quadriceps muscles. Comput
    Biol Med 101:218–228.
    Fuglevand AJ, Winter DA, Patla AE (1993). Models of recruitment and rate coding
    organization in motor-unit pools. J Neurophysiol 70:2470–2488.
    Validation targets and effects: ``shared/reference/muscle_force_fatigue.md`` §6 and
    ``docs/literature/muscle_fatigue_effects.md``.

    Examples
    --------
    >>> import numpy as np
    >>> r = simulate(np.arange(34) / 33, fatigue=False)
    >>> round(float(r.peak_force_n[0, 0]), 0)
    269.0
    """
    m = muscle if isinstance(muscle, MuscleParameters) else load_muscle(muscle)
    max_step = _check_max_step(max_step)   # RK4 of the force needs steps well below τ1
    if skip_tol is not None and (isinstance(skip_tol, bool)
                                 or not isinstance(skip_tol, (int, float, np.floating))
                                 or not 0.0 <= float(skip_tol) < np.inf):
        raise _bad("skip_tol out of range", "skip_tol", value=skip_tol,
                   allowed="≥ 0 and finite (deficit units; 0 or None integrates every contraction)")
    from emsim.program.compile import PulseTrain

    duration = None
    if isinstance(train, PulseTrain):
        pulses, width, amp, duration = _from_pulse_train(train)
        batch = True
        if pulse_width_us is not None or amplitude_ma is not None:
            raise _bad("pulse_width_us/amplitude_ma come from the PulseTrain; do not pass them",
                       "pulse_width_us", has_value=False)
    else:
        arr = train if isinstance(train, np.ndarray) else _float_array(train, "pulse_times")
        if arr.size == 0 or (arr.ndim == 2 and arr.shape[1] == 0):
            raise _bad("the pulse train is empty", "train", has_value=False,
                       allowed="at least one pulse time")
        if arr.ndim == 0:
            raise _bad("pulse_times must be an array", "pulse_times", value=train,
                       allowed="1-D array of times in s, or (batch, pulses) NaN-padded")
        batch = arr.ndim == 2
        pulses = _pulses(arr, batch)
        if np.all(np.isnan(pulses[..., 0])):   # NaN padding is trailing (checked)
            raise _bad("the pulse train is empty", "train", has_value=False,
                       allowed="at least one pulse time")
        width = amp = None
        if pulse_width_us is not None:
            width = _per_pulse(pulse_width_us, "pulse_width_us", pulses, batch, "positive",
                               "µs")[0] * 1e-6
        if amplitude_ma is not None:
            amp = _per_pulse(amplitude_ma, "amplitude_ma", pulses, batch, "nonnegative",
                             "mA")[0] * 1e-3
    if pulses.ndim == 1:
        pulses = pulses[None, :]
        width = None if width is None else np.broadcast_to(width, pulses.shape)
        amp = None if amp is None else np.broadcast_to(amp, pulses.shape)
    B = pulses.shape[0]
    # from the distinct rows: a broadcast batch of one timing is looked at once
    valid_c = ~np.isnan(solver.compact(pulses))
    valid = np.broadcast_to(valid_c, pulses.shape)
    if not isinstance(train, PulseTrain) and not _unpadded(pulses):
        # NaN at padded pulses, as the checker gives them (its fast path passes them through)
        width = None if width is None else np.where(valid, width, np.nan)
        amp = None if amp is None else np.where(valid, amp, np.nan)
    d = m.ding
    if d.has_pulse_duration_term:
        if width is None:
            raise _bad(f"pulse_width_us is required by muscle '{m.name}' (Ding 2007 term)",
                       "pulse_width_us", has_value=False)
        afac = np.where(valid, d.pulse_duration_factor(np.where(valid, width, 1.0)), 1.0)
    else:
        afac = np.broadcast_to(1.0, pulses.shape)
    if amp is not None and d.has_amplitude_term:
        lam = np.where(valid & np.isfinite(amp), d.amplitude_factor(np.nan_to_num(amp)), 1.0)
    else:
        lam = np.broadcast_to(1.0, pulses.shape)
    recr = _recruitment(recruitment, pulses, valid, batch, amp, d)

    n_valid = np.broadcast_to(valid_c.sum(axis=1), (B,))
    has = n_valid > 0
    last = float(pulses[has, n_valid[has] - 1].max()) if has.any() else 0.0
    first = float(pulses[has, 0].min()) if has.any() else 0.0
    if t_end is None:
        t_end = max(duration or 0.0, last + 1.0)
    elif not (isinstance(t_end, (int, float)) and np.isfinite(t_end) and t_end >= last):
        raise _bad("t_end must be at or after the last pulse", "t_end", value=t_end,
                   allowed=f"≥ {last} s")
    t0 = min(0.0, first)
    if dt is None:
        span = t_end - t0
        dt = 1e-3 if span <= 20.0 else 1e-2
        while trace and B * span / dt > _MAX_TRACE_VALUES:
            dt *= 2
    elif not (isinstance(dt, (int, float)) and np.isfinite(dt) and 0 < dt <= 1.0):
        raise _bad("dt out of range", "dt", value=dt, allowed="0 < dt ≤ 1 s")
    t_out = np.arange(t0, t_end + 0.5 * dt, dt) if trace else np.zeros(0)

    model = _model(m, fatigue)
    keys = _timing_groups(pulses)
    force = np.zeros((B, t_out.size))
    groups = []
    n_eval = n_seg = n_steps = n_full = 0
    for rows in keys:
        p = pulses[rows[0], valid[rows[0]]]
        if p.size == 0:
            continue
        take = lambda a: _take(a, rows, p.size)  # noqa: E731
        cells = _cells(m, take(recr))
        g = solver.run_group(p, take(afac), take(lam), take(recr), model, cells, t_out, t_end,
                             max_step, trace, skip_tol)
        if trace:
            force[rows] = g.force
        n_eval += g.evaluated
        n_seg += g.segments
        n_steps += g.node_steps
        n_full += g.node_steps_full
        groups.append((g, np.asarray(rows), cells))
    K = max((g.contraction_start.size for g, _, _ in groups), default=0)
    nanfill = lambda: np.full((B, K), np.nan)  # noqa: E731
    c_start, peak, fti, end = nanfill(), nanfill(), nanfill(), nanfill()
    fi = np.full(B, np.nan)
    cap = np.ones(B)
    cmax = max((c.weight.shape[1] for _, _, c in groups), default=0)
    cap_def = model.mech == MECH_CAPACITY
    deficits = np.zeros((B, cmax, model.mech.size))
    cell_peak = np.full((B, K, cmax), np.nan)
    cells_info: list = []
    for g, rows, cells in groups:   # each timing group's rows at once
        k = g.contraction_start.size
        c_start[rows, :k] = g.contraction_start
        peak[rows, :k] = g.peak
        cell_peak[rows, :k, :g.cell_peak.shape[2]] = g.cell_peak
        fti[rows, :k] = g.fti
        end[rows, :k] = g.end_force
        if k >= 2:
            ok = g.peak[:, 0] > 0
            fi[rows[ok]] = g.peak[ok, -1] / g.peak[ok, 0]
        x = g.state.x
        deficits[rows, :x.shape[1]] = x
        w = cells.weight
        cap[rows] = np.sum(w * (1 - np.minimum(1, x[:, :, cap_def].sum(axis=2))), axis=1) \
            + (1 - w.sum(axis=1))
        if rows[0] == 0:
            names = [c.name for c in m.motor_units.classes]
            w, edges = w[0], cells.edges[0]
            cells_info = [dict(unit_class=names[j % len(names)],
                               recruitment_from=float(edges[cells.depth[j]]),
                               recruitment_to=float(edges[cells.depth[j] + 1]),
                               force_share=float(w[j])) for j in range(w.size)]
    return ForceResult(t=t_out, force_n=force, contraction_start_s=c_start, peak_force_n=peak,
                       fti_ns=fti, end_force_n=end, fti_total_ns=np.nansum(fti, axis=1), fatigue_index=fi,
                       cell_peak_force_n=cell_peak, capacity=cap, deficits=deficits, cells=cells_info, muscle=m,
                       stats=dict(segments=n_seg, integrated=n_eval, node_steps=n_steps,
                                  node_steps_without_interval_stepping=n_full))


def warm_up() -> float:
    """Compile (or load from the on-disk cache) the muscle model's kernels on a tiny input.

    The first :func:`simulate` on a fresh install compiles the numba kernels (about 20–60 s on
    a 2-core machine); with the cache filled, loading them takes well under a second. Call this
    at start in a background thread (workbench, CLI) so that the first real simulation does
    not wait. The tiny input exercises every compiled path: batch rows split over threads,
    flat and ramped recruitment, stepping over identical pulse intervals and contractions, the
    force trace, and the Ding 2007 pulse-duration term.

    Returns
    -------
    float
        Seconds it took.
    """
    import time

    t0 = time.perf_counter()
    p = np.concatenate([k * 1.0 + np.arange(0.0, 0.4, 1 / 50) for k in range(8)])
    n_rows = 2 * kernel.MIN_ROWS_PER_THREAD * max(2, kernel._threads())
    recr = np.repeat(np.linspace(0.3, 1.0, n_rows)[:, None], p.size, axis=1)
    recr[0] = np.minimum(1.0, np.mod(p, 1.0) / 0.2 + 0.1)
    simulate(np.broadcast_to(p, recr.shape), recruitment=recr, trace=False)
    simulate(p, dt=0.01)
    simulate(p, "quadriceps_ding2007", pulse_width_us=np.full(p.size, 300.0), dt=0.01)
    return time.perf_counter() - t0


def set_num_threads(n: int | None) -> None:
    """Set how many threads :func:`simulate` splits batch rows over (in this process).

    The default is the number of cores this process may run on (``os.sched_getaffinity``),
    capped by ``OMP_NUM_THREADS`` or ``NUMBA_NUM_THREADS`` when set. Set 1 in each worker of a
    process pool that already has one worker per core (Dask, multiprocessing): more threads
    than cores only adds switching. Results do not depend on the thread count.

    Parameters
    ----------
    n : int or None
        Threads, 1 to 64; ``None`` restores the default.

    Raises
    ------
    PhysiologyInputError
        ``n`` is not an integer from 1 to 64 (or None).
    """
    kernel.set_num_threads(n)


def get_num_threads() -> int:
    """Threads :func:`simulate` splits batch rows over (see :func:`set_num_threads`)."""
    return kernel._threads()
