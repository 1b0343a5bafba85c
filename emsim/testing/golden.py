"""Golden results: canonical cases through the public API, their stored values, and the comparison.

A refactor of the physiology or the optimiser must not move their results silently. Each case
here computes a dict of named numbers (floats, ints, numpy arrays) through the public API
only; ``tests/golden/<case>.json`` holds the values of the emsim commit they were generated
from, and ``tests/test_golden.py`` compares every case with its file (rtol 1e-9 unless the
case says why not).

Regenerating is a deliberate, reviewable act::

    python -m emsim.testing.golden              # compare every case, print what moved
    python -m emsim.testing.golden --update muscle_lumbar_85hz_4s4s_20min
    python -m emsim.testing.golden --list

``--update`` prints which numbers moved and by how much, then rewrites the files; commit them
with a message that says why the results moved.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import json
import math
import platform
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Mapping

import numpy as np

from emsim.errors import EmsimError
from emsim.testing.documents import BASE_DOC, PATIENTS, PROGRAMS, ROOT, channel, stim

__all__ = ["Case", "CASES", "Mismatch", "compute", "load", "save", "compare", "failure_message",
           "golden_dir", "REGENERATE"]

#: How to regenerate a case (printed in every failure message).
REGENERATE = "python -m emsim.testing.golden --update {name}"
#: Default tolerance: far below any modelling error, far above nothing (a refactor that only
#: reorders floating-point operations moves results by ~1e-15 relative).
RTOL = 1e-9
#: Every element may also move by this fraction of its key's largest magnitude: a decayed tail
#: (a relaxed force of 1e-11 N beside a 4 N peak) is rounding noise, and relative to itself
#: it moves by tens of per cent when an unrelated operation is reordered (seen on merging
#: s9rev: 1.63e-11 → 1.47e-11 N). 1e-11 of the peak is far below any modelling change.
PEAK_RTOL = 1e-11
# Floats per line in the stored files: a moved number shows as a small diff, not one huge line.
_PER_LINE = 8


@dataclass(frozen=True)
class Case:
    """A named canonical computation and how closely it must reproduce.

    Attributes
    ----------
    name : str
    compute : callable
        ``compute() -> dict`` of name → float, int or numpy array.
    rtol, atol : float
        Element-wise ``|got - expected| <= atol + rtol * |expected| + PEAK_RTOL * max|expected|``
        (the maximum over the key's finite values).
    slow : bool
        Takes more than a few seconds (the test is marked ``slow``).
    tolerance_note : str
        Why the tolerance is what it is (measured repeatability).
    """

    name: str
    compute: Callable[[], dict]
    rtol: float = RTOL
    atol: float = 0.0
    slow: bool = False
    tolerance_note: str = ""


CASES: dict[str, Case] = {}


def _case(name: str, *, atol: float, rtol: float = RTOL, slow: bool = False, note: str = ""):
    def register(fn):
        CASES[name] = Case(name, fn, rtol=rtol, atol=atol, slow=slow, tolerance_note=note)
        return fn
    return register


def golden_dir() -> Path:
    """``tests/golden`` of the source tree (the files are not shipped in the wheel)."""
    return ROOT / "tests" / "golden"


# ============================================================================ helpers

def _every(a, n: int = 200) -> np.ndarray:
    """About ``n`` evenly spaced samples along the last axis, always including the last."""
    a = np.asarray(a)
    if a.shape[-1] <= n:
        return a
    idx = np.unique(np.linspace(0, a.shape[-1] - 1, n).round().astype(int))
    return a[..., idx]


def _train(freq_hz: float, on_s: float, off_s: float, minutes: float,
           doublet_s: float | None = None) -> np.ndarray:
    """Pulse times of on/off cycles, built as cycle start + pattern (as a compiled program is).

    With ``doublet_s`` each train is opened by a pulse ``doublet_s`` before its first pulse.
    """
    rel = np.arange(0.0, on_s - 1e-9, 1.0 / freq_hz)
    if doublet_s is not None:
        rel = np.concatenate([[0.0], doublet_s + rel])
    period = on_s + off_s
    return np.concatenate([k * period + rel for k in range(int(round(minutes * 60 / period)))])


def _force(r) -> dict:
    """The outputs of a :class:`~emsim.physiology.muscle.ForceResult` worth freezing.

    ``stats`` (how much was integrated) is left out: how the solver gets its answer may change;
    the answer may not.
    """
    out = {"contraction_start_s": r.contraction_start_s, "peak_force_n": r.peak_force_n,
           "end_force_n": r.end_force_n, "fti_ns": r.fti_ns, "fti_total_ns": r.fti_total_ns, "fatigue_index": r.fatigue_index,
           "capacity": r.capacity, "deficits": r.deficits}
    if r.t.size:
        out.update(t_s=_every(r.t), force_n=_every(r.force_n))
    return out


def _program(name: str, channels: list, stims: list, duration_s: float):
    from emsim.program import from_dict

    doc = {**BASE_DOC, "name": name, "channels": channels,
           "phases": [{**BASE_DOC["phases"][0], "duration_s": duration_s, "stimulation": stims}]}
    return from_dict(doc)


def _patient(stem: str):
    from emsim.body import load_patient

    return load_patient(PATIENTS / f"{stem}.json")


# ============================================================================ muscle
# Recruitment is given explicitly (rows = channels at two levels), so that these cases freeze
# the force, fatigue and recovery solver alone; the compiled-program path is the ramped case.

_SOLVER_NOTE = ("numba kernels, serial for batches under 8 rows: bit-identical over 3 runs in one "
                "process, in a fresh process and with NUMBA_NUM_THREADS=1 and 4, so atol only covers "
                "values that are zero (deficits never touched, relaxed force).")


def _muscle_case(name, fn, **kw):
    return _case(name, atol=1e-12, note=_SOLVER_NOTE, **kw)(fn)


def _four_on_four_off(muscle: str) -> dict:
    """20 minutes of 85 Hz, 4 s on / 4 s off (whole-body-EMS style), two channels recruiting
    half and all of the pool, with fatigue."""
    from emsim.physiology.muscle import simulate

    p = _train(85.0, 4.0, 4.0, 20.0)
    recr = np.repeat([[0.5], [1.0]], p.size, axis=1)
    r = simulate(np.broadcast_to(p, recr.shape), muscle, recruitment=recr, pulse_width_us=350.0,
                 amplitude_ma=40.0, dt=0.01)
    return _force(r)


_muscle_case("muscle_quadriceps_85hz_4s4s_20min", lambda: _four_on_four_off("quadriceps_ding2003"))
_muscle_case("muscle_lumbar_85hz_4s4s_20min", lambda: _four_on_four_off("lumbar_erector_spinae"))


@_case("muscle_lumbar_85hz_4s4s_20min_16_rows", atol=1e-12,
       note="16 rows: the only muscle case big enough to be split over threads (4 rows per thread "
            "at least); bit-identical with 1, 2, 3 and 4 threads (set_num_threads), 3 runs each, fresh processes. "
            "atol for deficits that stay zero.")
def _sixteen_rows() -> dict:
    """The 85 Hz 4 s / 4 s session at 16 recruitment levels (0.25 to 1), per-contraction outputs
    only (``trace=False``, what searches use); every 5th contraction's peak, end force and integral."""
    from emsim.physiology.muscle import simulate

    p = _train(85.0, 4.0, 4.0, 20.0)
    recr = np.repeat(np.linspace(0.25, 1.0, 16)[:, None], p.size, axis=1)
    r = simulate(np.broadcast_to(p, recr.shape), "lumbar_erector_spinae", recruitment=recr,
                 pulse_width_us=350.0, amplitude_ma=40.0, trace=False)
    out = _force(r)
    out.update(peak_force_n=r.peak_force_n[:, ::5], end_force_n=r.end_force_n[:, ::5], fti_ns=r.fti_ns[:, ::5],
               contraction_start_s=r.contraction_start_s[:, ::5])
    return out


@_case("muscle_lumbar_ramped_35hz_program", atol=1e-12, note=_SOLVER_NOTE)
def _ramped_program() -> dict:
    """A compiled two-channel program: 35 Hz, 10 s on / 20 s off, ramps 2 s up / 1 s down
    (left) and 1 s / 0.5 s (right), 5 minutes; recruitment from the program's amplitudes."""
    from emsim.physiology.muscle import simulate
    from emsim.program import compile

    prog = _program("golden ramped 35 Hz", [channel("A", side="left"), channel("B", side="right")],
                    [stim("A", frequency_hz=35, on_s=10, off_s=20, ramp_up_s=2, ramp_down_s=1,
                          amplitude={"ma": 30}),
                     stim("B", frequency_hz=35, on_s=10, off_s=20, ramp_up_s=1, ramp_down_s=0.5,
                          amplitude={"ma": 25})], 300)
    return _force(simulate(compile(prog), "lumbar_erector_spinae", dt=0.005))


@_case("muscle_lumbar_8hz", atol=1e-12, note=_SOLVER_NOTE)
def _eight_hz() -> dict:
    """An unfused 8 Hz train, 4 s on / 4 s off, 5 minutes, at 30 % and all of the pool."""
    from emsim.physiology.muscle import simulate

    p = _train(8.0, 4.0, 4.0, 5.0)
    recr = np.repeat([[0.3], [1.0]], p.size, axis=1)
    return _force(simulate(np.broadcast_to(p, recr.shape), "lumbar_erector_spinae", recruitment=recr,
                           pulse_width_us=300.0, amplitude_ma=30.0, dt=0.005))


@_case("muscle_quadriceps_doublet_onset", atol=1e-12, note=_SOLVER_NOTE)
def _doublet_onset() -> dict:
    """20 Hz trains opened by a 5 ms doublet, 5 s on / 5 s off, 5 minutes (Binder-Macleod
    doublet-onset trains), at 60 % and all of the pool."""
    from emsim.physiology.muscle import simulate

    p = _train(20.0, 5.0, 5.0, 5.0, doublet_s=0.005)
    recr = np.repeat([[0.6], [1.0]], p.size, axis=1)
    return _force(simulate(np.broadcast_to(p, recr.shape), "quadriceps_ding2003", recruitment=recr,
                           dt=0.005))


@_case("muscle_quadriceps_nan_padded_batch", atol=1e-12, note=_SOLVER_NOTE)
def _padded_batch() -> dict:
    """Three rows of different lengths, NaN-padded at the end: 30 Hz for 1 s, 50 Hz for 2 s
    opened by a doublet with a recruitment ramp, 14 Hz for 3 s at 70 %."""
    from emsim.physiology.muscle import simulate

    rows = [np.arange(30) / 30.0, np.concatenate([[0.0], 0.005 + np.arange(100) / 50.0]),
            np.arange(42) / 14.0]
    n = max(r.size for r in rows)
    t = np.full((3, n), np.nan)
    recr = np.zeros((3, n))
    for i, r in enumerate(rows):
        t[i, :r.size] = r
    recr[0], recr[1], recr[2] = 1.0, np.minimum(1.0, 0.2 + np.arange(n) / 50.0), 0.7
    return _force(simulate(t, "quadriceps_ding2003", recruitment=recr, dt=0.001))


@_case("muscle_quadriceps_no_fatigue", atol=1e-12, note=_SOLVER_NOTE)
def _no_fatigue() -> dict:
    """``fatigue=False``: one minute of 33 Hz, 4 s on / 4 s off, at 50 % and all of the pool
    (contractions differ only by the catch-like gain)."""
    from emsim.physiology.muscle import simulate

    p = _train(33.0, 4.0, 4.0, 1.0)
    recr = np.repeat([[0.5], [1.0]], p.size, axis=1)
    return _force(simulate(np.broadcast_to(p, recr.shape), "quadriceps_ding2003", recruitment=recr,
                           fatigue=False, dt=0.002))


# ============================================================================ recruitment + discomfort

_SITE = "lumbar_erector_spinae"
_PULSED = dict(waveform={"shape": "symmetric_biphasic", "pulse_width_us": 300, "interphase_gap_us": 100},
               frequency_hz=50)
# Russian current: 2.5 kHz carrier in 10 ms bursts at 50 bursts/s (Ward 2009, Phys Ther 89:181, reviews the
# parameters) — a different excitation path (carrier half-cycles, burst firing tables).
_KHZ = dict(waveform={"shape": "khz_burst", "carrier_hz": 2500, "burst_duration_ms": 10}, frequency_hz=50)
_NMES_NOTE = ("pure numpy/scipy plus serial numba kernels: bit-identical over 3 runs, in a fresh process "
              "and with NUMBA_NUM_THREADS=1; atol for fractions that are exactly 0 (pools or "
              "afferents a pulse does not reach).")


def _recruit_and_discomfort(patient_stem: str, waveform: dict) -> dict:
    """30 s of a two-channel (left 30 mA, right 24 mA) 5 s on / 5 s off program on the lumbar
    erector spinae of an example patient: motor and afferent recruitment, then discomfort."""
    from emsim.physiology.discomfort import Person, predict
    from emsim.physiology.recruitment import recruit
    from emsim.program import compile

    patient = _patient(patient_stem)
    prog = _program(f"golden {patient_stem}", [channel("A", side="left"), channel("B", side="right")],
                    [stim("A", amplitude={"ma": 30}, **waveform), stim("B", amplitude={"ma": 24}, **waveform)],
                    30)
    rec = recruit(compile(prog, patient), _SITE, patient)
    disc = predict(rec, person=Person.from_patient(patient))
    out = {"n_pulses": rec.n_rows, "unit_threshold_a": _every(rec.unit_threshold_a),
           "unit_position_m": _every(rec.unit_position_m.T),
           "motor_fraction": _every(rec.motor_fraction.T), "motor_fraction_sum": rec.motor_fraction.sum(axis=0),
           "force_fraction": _every(rec.force_fraction),
           "nrs": _every(disc.nrs), "nrs_peak": disc.peak, "nrs_mean": disc.mean}
    for name, v in rec.afferent_fraction.items():
        out[f"afferent_{name}"] = _every(v.T)
        out[f"afferent_{name}_sum"] = v.sum(axis=0)
        out[f"afferent_threshold_{name}_a"] = rec.afferent_threshold_a[name]
    return out


for _stem in ("example_measured", "lbp_lean"):
    for _kind, _wave in (("pulsed", _PULSED), ("khz", _KHZ)):
        _case(f"recruitment_discomfort_{_stem}_{_kind}", atol=1e-15, note=_NMES_NOTE)(
            lambda stem=_stem, wave=_wave: _recruit_and_discomfort(stem, wave))


# ============================================================================ field

@_case("field_lumbar_skin_current_density", atol=1e-12,
       note="FFT / transfer-matrix solve (scipy.fft, single-threaded by default): bit-identical "
            "over 3 runs, in a fresh process and with NUMBA_NUM_THREADS=1; atol for the zero "
            "current density off the electrodes.")
def _field() -> dict:
    """Skin current density of a 5 × 5 cm rectangular pair 3 cm apart and a 3.2 cm circular pair
    2 cm apart on the left lumbar erector spinae of example_measured (hydrogel, default grid),
    per ampere; potential and longitudinal field 1 cm into the muscle along the pair's axis."""
    from emsim.physiology.field import Electrodes, Layers, solve

    layers = Layers.for_site(_SITE, patient=_patient("example_measured"), side="left")
    pairs = {"rect": Electrodes.pair(spacing_m=0.03, length_m=0.05, width_m=0.05),
             "circle": Electrodes.pair("circle", spacing_m=0.02, diameter_m=0.032)}
    levels = np.array([250.0, 500.0, 1000.0, 1300.0, 1450.0])  # A/m² per A: the two pairs span 400-1470
    x = np.linspace(-0.08, 0.08, 33)
    out = {}
    for name, electrodes in pairs.items():
        sol = solve(layers, electrodes)
        skin = sol.skin_current_density()
        for key in ("current_a", "mean_a_per_m2", "peak_a_per_m2", "peak_to_mean", "voltage_v"):
            out[f"{name}_{key}"] = np.array([getattr(e, key) for e in skin.electrodes])
        out[f"{name}_area_fraction_above"] = skin.area_fraction_above(levels)
        out[f"{name}_resistance_ohm"] = sol.resistance_ohm
        z = np.full_like(x, layers.top_of("muscle") + 0.01)
        out[f"{name}_muscle_1cm_potential_v"] = sol.potential(x, np.zeros_like(x), z)
        out[f"{name}_muscle_1cm_field_x_v_per_m"] = sol.electric_field_along(x, np.zeros_like(x), z)
    return out


# ============================================================================ program compile

@_case("program_compile_examples", atol=0.0,
       note="pure numpy arithmetic on the program's numbers: exact (atol 0, and rtol 1e-9 is never needed).")
def _compile_examples() -> dict:
    """The shipped paraspinal program (relative amplitudes, resolved against example_measured's
    thresholds; session 1 and 5) and the whole-body-EMS program (absolute): pulse counts per
    channel, sampled pulse times, widths and amplitudes, and sums over every pulse."""
    from emsim.program import compile, load

    programs = {p.stem: p for p in PROGRAMS}
    runs = {"paraspinal_s1": (programs["paraspinal_strengthening"], _patient("example_measured"), 1),
            "paraspinal_s5": (programs["paraspinal_strengthening"], _patient("example_measured"), 5),
            "wb_ems": (programs["wb_ems_85hz_350us"], None, 1)}
    out = {}
    for name, (path, patient, session) in runs.items():
        train = compile(load(path), patient, session=session)
        out[f"{name}_pulses_per_channel"] = np.diff(train.channel_ptr)
        out[f"{name}_duration_s"] = train.duration_s
        for key in ("t_s", "width_s", "amplitude_a"):
            out[f"{name}_{key}"] = _every(getattr(train, key))
            out[f"{name}_{key}_sum"] = float(np.sum(getattr(train, key)))
        out[f"{name}_total_charge_c"] = train.total_charge_c()
    return out


# ============================================================================ optimiser

@_case("optimise_nsga2_seed1", atol=1e-12, slow=True,
       note="sixteen full predictions; the search is seeded and runs in this process: bit-identical "
            "over 3 runs and in a fresh process; atol for zero-valued outcomes.")
def _optimise() -> dict:
    """NSGA-II, seed 1, 16 candidates in two batches of 8, over frequency, pulse width,
    amplitude and on/off times of a 2-minute lumbar template on example_measured (RehaStim 2,
    peak discomfort <= 8): every trial's objectives and constraints, the Pareto set."""
    from emsim.optimise import CONSTRAINTS, DesignSpace, Problem, lumbar_template, optimise

    patient = _patient("example_measured")
    space = DesignSpace.from_template(lumbar_template(patient, duration_s=120), device="rehastim2",
                                      fields=["frequency_hz", "pulse_width_us", "amplitude", "on_s", "off_s"])
    result = optimise(Problem(patient, space, max_discomfort_nrs=8.0), "nsga2", budget=16, seed=1,
                      batch_size=8)
    trials = result.study.get_trials(deepcopy=False)
    names = sorted(result.pareto[0].vector)
    out = {"trial_values": np.array([t.values for t in trials], dtype=float),
           "trial_constraints": np.array([[t.constraints[k] for k in CONSTRAINTS]
                                          for t in trials], dtype=float),
           "pareto_trial_number": np.array([c.trial_number for c in result.pareto]),
           "pareto_front": result.front(),
           "pareto_vector": np.array([[c.vector[n] for n in names] for c in result.pareto], dtype=float)}
    first = result.pareto[0].prediction.scalars
    for key in sorted(first):
        if isinstance(first[key], (int, float)):
            out[f"best_{key}"] = first[key]
    return out


# ============================================================================ values ↔ files

def compute(name: str) -> dict:
    """The values of case ``name`` as numpy arrays (scalars as 0-d arrays).

    Raises
    ------
    EmsimError
        Unknown case.
    """
    if name not in CASES:
        raise EmsimError("unknown golden case", path="case", value=name, allowed=", ".join(CASES))
    return {k: np.asarray(v) for k, v in CASES[name].compute().items()}


def _plain(x):
    """A JSON value of one element: NaN → null, ±inf → "inf"/"-inf", floats by repr (round-trip)."""
    if isinstance(x, (bool, np.bool_)):
        return int(x)
    if isinstance(x, (int, np.integer)):
        return int(x)
    x = float(x)
    if math.isnan(x):
        return None
    if math.isinf(x):
        return "inf" if x > 0 else "-inf"
    return x


def _unplain(x):
    if x is None:
        return math.nan
    if isinstance(x, str):
        return math.inf if x == "inf" else -math.inf
    return x


def _dump_data(a: np.ndarray, indent: str) -> str:
    if a.ndim == 0:
        return json.dumps(_plain(a.item()))
    if a.ndim == 1:
        items = [json.dumps(_plain(v)) for v in a.tolist()]
        if len(items) <= _PER_LINE:
            return "[" + ", ".join(items) + "]"
        lines = [", ".join(items[i:i + _PER_LINE]) for i in range(0, len(items), _PER_LINE)]
        inner = indent + " "
        return "[\n" + inner + (",\n" + inner).join(lines) + "\n" + indent + "]"
    inner = indent + " "
    return "[\n" + inner + (",\n" + inner).join(_dump_data(r, inner) for r in a) + "\n" + indent + "]"


def _git(*args: str) -> str:
    try:
        return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=True,
                              timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def _provenance() -> dict:
    import numba
    import scipy

    dirty = _git("status", "--porcelain", "--", "emsim", "models")
    return {"emsim_commit": _git("rev-parse", "HEAD") or "unknown",
            "uncommitted_changes_in_emsim_or_models": bool(dirty),
            "commit_date": _git("show", "-s", "--format=%cI", "HEAD") or "unknown",
            # this machine's clock is not trusted: the commit date above is the reliable one
            "generated_utc": _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat(),
            "python": platform.python_version(), "numpy": np.__version__, "scipy": scipy.__version__,
            "numba": numba.__version__, "machine": platform.machine(),
            "numba_threads": numba.get_num_threads()}


def save(name: str, values: Mapping[str, np.ndarray], directory: Path | None = None) -> Path:
    """Write ``values`` of case ``name`` to ``<directory>/<name>.json`` with its provenance."""
    case = CASES[name]
    path = (directory or golden_dir()) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    head = {"case": name, "regenerate": REGENERATE.format(name=name), "generated": _provenance(),
            "tolerance": {"rtol": case.rtol, "atol": case.atol, "why": case.tolerance_note}}
    lines = ["{"] + [f" {json.dumps(k)}: {json.dumps(v, ensure_ascii=False)}," for k, v in head.items()]
    entries = []
    for key in sorted(values):
        a = np.asarray(values[key])
        kind = "int" if a.dtype.kind in "iub" else "float"
        entries.append(f'  {json.dumps(key)}: {{"kind": "{kind}", "shape": {list(a.shape)}, '
                       f'"data": {_dump_data(a, "   ")}}}')
    lines += [' "values": {', ",\n".join(entries), " }", "}"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def load(name: str, directory: Path | None = None) -> dict:
    """The stored values of case ``name`` (numpy arrays), as :func:`save` wrote them.

    Raises
    ------
    EmsimError
        No stored file for the case (generate it with ``--update``).
    """
    path = (directory or golden_dir()) / f"{name}.json"
    if not path.is_file():
        raise EmsimError(f"no stored golden values for '{name}' (generate them: {REGENERATE.format(name=name)})",
                         path=str(path))
    doc = json.loads(path.read_text(encoding="utf-8"))
    out = {}
    for key, entry in doc["values"].items():
        data = entry["data"]
        if entry["kind"] == "int":
            out[key] = np.array(data, dtype=np.int64).reshape(entry["shape"])
        else:
            flat = [_unplain(v) for v in np.array(data, dtype=object).reshape(-1).tolist()]
            out[key] = np.array(flat, dtype=np.float64).reshape(entry["shape"])
    return out


# ============================================================================ comparison

@dataclass(frozen=True)
class Mismatch:
    """One key of a case that moved: the element furthest outside its tolerance, or a structural difference."""

    key: str
    problem: str
    index: tuple = ()
    expected: float = math.nan
    got: float = math.nan
    n_moved: int = 0
    size: int = 0

    @property
    def abs_diff(self) -> float:
        return abs(self.got - self.expected)

    @property
    def rel_diff(self) -> float:
        return self.abs_diff / abs(self.expected) if self.expected else math.inf

    def __str__(self) -> str:
        if not self.n_moved:
            return f"{self.key}: {self.problem}"
        return (f"{self.key}: {self.n_moved} of {self.size} moved; worst at {list(self.index)}: "
                f"expected {self.expected!r}, got {self.got!r} (|diff| {self.abs_diff:.3g}, "
                f"relative {self.rel_diff:.3g})")


def _key_atol(e: np.ndarray, atol: float, peak_rtol: float) -> float:
    finite = np.abs(e[np.isfinite(e)]) if e.size else e
    return atol + (peak_rtol * float(finite.max()) if finite.size else 0.0)


def _worst(key: str, e: np.ndarray, g: np.ndarray, moved: np.ndarray, rtol: float, atol: float) -> Mismatch:
    """The moved element furthest outside its tolerance (in multiples of ``atol + rtol·|e|``)."""
    ef, gf = e.astype(float), g.astype(float)
    with np.errstate(invalid="ignore", divide="ignore"):  # inf - inf where infinities agree; zero tolerance
        diff = np.abs(np.nan_to_num(gf - ef, nan=0.0, posinf=np.inf, neginf=np.inf))
        score = diff / (atol + rtol * np.abs(np.nan_to_num(ef, posinf=0.0, neginf=0.0)))
    # NaN against a number is the worst kind of move
    score = np.where(np.isnan(ef) != np.isnan(gf), np.inf, np.nan_to_num(score, nan=np.inf))
    score = np.where(moved, score, -1.0)
    idx = np.unravel_index(int(np.argmax(score)), e.shape) if e.ndim else ()
    return Mismatch(key, "moved", tuple(int(i) for i in idx), float(ef[idx]), float(gf[idx]),
                    int(moved.sum()), int(e.size))


def compare(expected: Mapping[str, np.ndarray], got: Mapping[str, np.ndarray], *, rtol: float = RTOL,
            atol: float = 0.0, peak_rtol: float = PEAK_RTOL) -> list[Mismatch]:
    """Keys of ``got`` that differ from ``expected`` beyond ``atol + rtol·|expected|`` plus
    ``peak_rtol`` times the key's largest finite magnitude.

    Missing or extra keys, other shapes and NaN where a number was (or the reverse) always
    count; infinities must match exactly.
    """
    out = [Mismatch(k, "missing from the computed values") for k in sorted(set(expected) - set(got))]
    out += [Mismatch(k, "not in the stored values") for k in sorted(set(got) - set(expected))]
    for key in sorted(set(expected) & set(got)):
        e, g = np.asarray(expected[key]), np.asarray(got[key])
        if e.shape != g.shape:
            out.append(Mismatch(key, f"shape {g.shape}, stored {e.shape}"))
            continue
        ef = e.astype(float)
        key_atol = _key_atol(ef, atol, peak_rtol)
        close = np.isclose(g.astype(float), ef, rtol=rtol, atol=key_atol, equal_nan=True)
        if not close.all():
            out.append(_worst(key, e, g, ~close, rtol, key_atol))
    return out


def failure_message(name: str, mismatches: list[Mismatch], *, rtol: float, atol: float) -> str:
    """What moved in case ``name``, and how to regenerate if the move was intended."""
    lines = [f"golden case '{name}' moved (rtol {rtol:g}, atol {atol:g} + {PEAK_RTOL:g} of each key's peak):"]
    lines += [f"  {m}" for m in mismatches]
    lines.append(f"If the change is intended, regenerate and commit the file with the reason: "
                 f"{REGENERATE.format(name=name)}")
    return "\n".join(lines)


def _changes(expected: Mapping, got: Mapping) -> list[str]:
    """Every key that changed at all (bit-level), with its largest absolute and relative move."""
    lines = []
    for m in compare(expected, got, rtol=0.0, atol=0.0, peak_rtol=0.0):
        if not m.n_moved:
            lines.append(f"  {m}")
            continue
        e, g = np.asarray(expected[m.key], float), np.asarray(got[m.key], float)
        both = np.isfinite(e) & np.isfinite(g)
        d = np.abs(g - e)[both]
        rel = (d / np.where(e[both] != 0, np.abs(e[both]), np.inf)) if d.size else d
        lines.append(f"  {m.key}: {m.n_moved} of {m.size} changed, max |diff| "
                     f"{(d.max() if d.size else math.nan):.3g}, max relative "
                     f"{(rel.max() if rel.size else math.nan):.3g}; worst at {list(m.index)}: "
                     f"{m.expected!r} -> {m.got!r}")
    return lines


def main(argv=None) -> int:
    """``python -m emsim.testing.golden [--update] [--list] [--dir DIR] [case ...]``."""
    ap = argparse.ArgumentParser(prog="python -m emsim.testing.golden", description=__doc__.split("\n")[0])
    ap.add_argument("cases", nargs="*", help="case names (default: all)")
    ap.add_argument("--update", action="store_true", help="rewrite the stored values of the cases")
    ap.add_argument("--list", action="store_true", help="list the cases and exit")
    ap.add_argument("--dir", type=Path, default=None, help="stored values (default: tests/golden)")
    args = ap.parse_args(argv)
    if args.list:
        for c in CASES.values():
            print(f"{c.name}{'  [slow]' if c.slow else ''}  rtol {c.rtol:g} atol {c.atol:g}")
        return 0
    unknown = [n for n in args.cases if n not in CASES]
    if unknown:
        print(f"unknown case(s): {', '.join(unknown)}; known: {', '.join(CASES)}", file=sys.stderr)
        return 2
    status = 0
    for name in args.cases or list(CASES):
        case = CASES[name]
        got = compute(name)
        path = (args.dir or golden_dir()) / f"{name}.json"
        old = load(name, args.dir) if path.is_file() else None
        if args.update:
            changes = ["  (new case)"] if old is None else _changes(old, got)
            if not changes:
                print(f"{name}: unchanged (file kept)")
                continue
            save(name, got, args.dir)
            print(f"{name}: rewrote {path}\n" + "\n".join(changes))
        elif old is None:
            print(f"{name}: no stored values ({REGENERATE.format(name=name)})")
            status = 1
        else:
            bad = compare(old, got, rtol=case.rtol, atol=case.atol)
            changed = _changes(old, got)
            print(f"{name}: " + ("MOVED beyond tolerance" if bad else "within tolerance" if changed
                                 else "bit-identical"))
            if changed:
                print("\n".join(changed))
            status |= bool(bad)
    return status


if __name__ == "__main__":
    sys.exit(main())
