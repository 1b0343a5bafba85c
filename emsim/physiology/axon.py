r"""Excitable fibres in Brian2: thresholds, strength–duration, refractoriness, kHz behaviour.

Brian2 is emsim's simulator of record for excitable fibres. This module simulates populations of
motor-axon terminal branches and cutaneous afferents (Aβ, Aδ, C) driven by the extracellular
potential of the real pulse shape and tabulates what the fast path
(:mod:`emsim.physiology.recruitment`, via :mod:`emsim.physiology.fibre_tables`) needs.

Regenerate the shipped tables (``models/fibres/thresholds.npz`` + ``.json``) with::

    python -m emsim.physiology.axon tabulate            # full grid, a few minutes on 2 cores
    python -m emsim.physiology.axon tabulate --small --out /tmp/t   # the test's reduced grid

Model, and why
--------------
* **Myelinated fibres (motor terminals, Aβ, Aδ): MRG nodes on a node-only cable.** Every node
  carries the MRG 2002 nodal membrane (fast and persistent Na⁺, slow K⁺, leak; 37 °C); nodes
  are joined by the internodal axoplasm resistance ``4ρΔx/(πd²)`` with ideal internodes
  (McNeal 1976). The full MRG double cable (MYSA/FLUT/STIN compartments) would need ~11 rows
  per node and a periaxonal pathway; the node-only form keeps the exact activating-function
  coupling of the extracellular potential at every node (Rattay 1986), which is what surface
  stimulation needs, at a tenth of the cost. Without the internodal compartments an MRG node
  fires spontaneously and, once stabilised by the DC internodal leak alone (≈ 2× the nodal leak
  from the MRG constants), is hyperexcitable (< 1 mV from rest to threshold). The paranodal and
  internodal load is therefore lumped into each node as a leak ``(1 + L)·g_L`` to the internodal
  rest and a capacitance ``(1 + K)·C_node``; ``L = 20`` and ``K = 14`` are *fitted* so that a
  7 µm motor terminal has the human motor τSD (459 µs, Mogyoros 1996; model 460 µs) with a
  rheobase field of ≈ 7.6 V/m (``K ≥ 25`` blocks conduction). Consequence, stated in the tables'
  metadata: absolute thresholds are calibrated, not first-principles; the shapes of the
  strength–duration, biphasic, kHz and recovery curves are the model's.
* **Or the full MRG 2002 double cable** (``"model": "mrg"`` per class in
  ``fibre_classes.json``, or ``model="mrg"`` in every experiment here): node, MYSA, FLUT and
  six STIN compartments per internode with the periaxonal space and the myelin as a second
  cable layer, the authors' NEURON geometry and constants (``models/fibres/mrg.json``), no
  fitted load. Engine: :mod:`emsim.physiology._axon_mrg` (Brian2 gates + an implicit
  backward-Euler cable step, :mod:`emsim.physiology._mrg_cable`). It replaces the lumped load
  and the sensory resting-potential fit by MRG's own structure, so its absolute thresholds,
  chronaxies and recovery cycle are predictions rather than fits.
* **Or Gaines et al. 2018's motor and sensory variants of that cable** (``"gaines_motor"``,
  ``"gaines_sensory"``; ``models/fibres/gaines2018.json``, from ModelDB 243841): a nodal fast
  K⁺ channel, new nodal conductances (sensory: slow K⁺ 0.04106, fast K⁺ 0.02737, leak
  0.006005 S/cm²) and sensory Na⁺ rate constants, and slow K⁺/fast K⁺/HCN/leak channels on the
  MYSA, FLUT and STIN axolemma instead of MRG's passive one. The sensory axon rests at
  −79.4 mV (motor −85.9 mV), has the lower threshold at equal diameter (Gaines's abstract) and
  the longer chronaxie (uniform field, 8.49 µm: 319 vs 168 µs; MRG 368 µs).
* **Motor vs sensory.** Sensory axons have longer τSD, attributed to more persistent Na⁺ and
  HCN current and a more depolarised rest (Mogyoros 1996; Gaines 2018). In the node cable the
  ``gNaP`` scale barely changes τSD before the node turns unstable, so the Aβ/Aδ classes carry
  the difference as a depolarised internodal rest (−74.7 vs −80 mV), fitted to Mogyoros's
  sensory/motor τSD ratio of 1.45 (``models/fibres/fibre_classes.json``).
* **C fibres: Hodgkin–Huxley membrane on a continuous cable** (25 µm compartments), as in
  Rattay's unmyelinated-fibre analyses.
* **Stimulus: a uniform field along the fibre's terminal.** Surface stimulation excites terminal
  branches and bends, driven by the first difference ``E·Δx`` (reference §2.4, §2.6), so every
  fibre is a straight cable with two sealed ends in a uniform field ``E(t) = E·wave(t)``; the
  extracellular potential ``−E·x`` at each node enters through the activating function. A
  threshold is the smallest ``E`` (V/m) that sends an action potential past the fibre's middle
  node. The fast path divides it by the field per ampere at each terminal (from
  :mod:`emsim.physiology.field`) to get a threshold current.
* **Pulse shapes** are sampled from :func:`emsim.program.waveform.segments` (the compiler's and
  safety validator's definition); a sine kHz carrier is sampled exactly (``segments`` gives its
  half-cycle means).

Numerics: one ``NeuronGroup`` per experiment holds every (fibre × waveform) cable side by side;
threshold search is a vectorised bracketing + geometric bisection in which all rows move
together and the compiled network is re-run with ``store``/``restore`` (see
:mod:`emsim.physiology._axon_brian`). The Cython target is used and its code cache makes
rebuilding a network of the same structure cost milliseconds. Explicit axial coupling needs
``dt < R_axial·C_node/2`` (≈ 2 µs here); 1 µs is used for myelinated fibres, 2 µs for C fibres.

References
----------
.. [MRG2002] McIntyre CC, Richardson AG, Grill WM (2002). J Neurophysiol 87:995–1006.
.. [McNeal1976] McNeal DR (1976). IEEE Trans Biomed Eng 23:329–337.
.. [Rattay1986] Rattay F (1986). IEEE Trans Biomed Eng 33:974–977.
.. [HH1952] Hodgkin AL, Huxley AF (1952). J Physiol 117:500–544.
.. [Mogyoros1996] Mogyoros I, Kiernan MC, Burke D (1996). Brain 119:439–447.
.. [Gaines2018] Gaines JL, Finn KE, Slopsema JP, Heyboer LA, Polasek KH (2018). J Comput Neurosci
   45:29–43 (ModelDB 243841).
.. [Ward2007] Ward AR, Lucas-Toumbourou S (2007). Arch Phys Med Rehabil 88:1036.
"""

from __future__ import annotations

import argparse
import gc
import json
import math
import platform
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from emsim import __version__
from emsim._data import models_dir
from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.fibre_tables import (CLASS_NAMES, TABLE_STEM, ThresholdTable, fibre_classes, load_table,
                                           membrane_parameters, mrg_geometry, weiss_fit)
from emsim.program import waveform as wf
from emsim.program.model import AsymmetricBiphasic, KhzBurst, Monophasic, SymmetricBiphasic

__all__ = ["thresholds", "strength_duration", "paired_pulse", "following", "khz_thresholds", "conduction_velocity",
           "khz_block", "tabulate", "merge_tables", "waveform_samples", "monophasic", "symmetric", "asymmetric", "khz",
           "sampled_thresholds", "sample_interval", "fibre_network", "threshold_search", "GRID_FULL", "GRID_SMALL", "main"]

T_LEAD = 20e-6            # s of rest before every stimulus
# Keyed by engine: "mrg_node" (node-only cable), the double cables ("mrg" and Gaines's variants),
# "hh_unmyelinated".
DOUBLE_CABLES = ("mrg", "gaines_motor", "gaines_sensory")
TAIL = {"mrg_node": 1.5e-3, "hh_unmyelinated": 4.0e-3, **{m: 1.5e-3 for m in DOUBLE_CABLES}}  # s after the stimulus
DT = {"mrg_node": 1e-6, "hh_unmyelinated": 2e-6, **{m: 1e-6 for m in DOUBLE_CABLES}}
MODELS = ("node_cable",) + DOUBLE_CABLES
CAP_FACTOR = 300.0        # search cap: guess × this; beyond it a fibre counts as not excitable


# ------------------------------------------------------------------------- waveforms

def monophasic(pulse_width_us: float) -> Monophasic:
    """A monophasic pulse with a negligible balance phase (charge-balance settings do not matter
    for the threshold when the balance amplitude is tiny and late)."""
    return Monophasic(shape="monophasic", pulse_width_us=pulse_width_us,
                      balance={"delay_us": 0.0, "width_us": 10.0, "amplitude_ratio": 1e-9})


def symmetric(pulse_width_us: float, gap_us: float = 0.0) -> SymmetricBiphasic:
    return SymmetricBiphasic(shape="symmetric_biphasic", pulse_width_us=pulse_width_us, interphase_gap_us=gap_us)


def asymmetric(pulse_width_us: float, ratio: float, gap_us: float = 0.0) -> AsymmetricBiphasic:
    return AsymmetricBiphasic(shape="asymmetric_biphasic", pulse_width_us=pulse_width_us,
                              interphase_gap_us=gap_us, secondary_amplitude_ratio=ratio)


def khz(carrier_hz: float, burst_ms: float, shape: str = "sine") -> KhzBurst:
    return KhzBurst(shape="khz_burst", carrier_hz=carrier_hz, burst_duration_ms=burst_ms, carrier_shape=shape)


def waveform_samples(w, dt_s: float) -> np.ndarray:
    """Relative level of one pulse sampled every ``dt_s`` (starts at the pulse onset)."""
    if isinstance(w, KhzBurst) and w.carrier_shape == "sine":
        n = int(round(w.burst_duration_ms * 1e-3 / dt_s))
        return np.sin(2.0 * math.pi * w.carrier_hz * (np.arange(n) + 0.5) * dt_s)
    parts = [np.full(int(round(d / dt_s)), lv) for d, lv in wf.segments(w)]
    return np.concatenate(parts) if parts else np.zeros(0)


def _wave_matrix(columns, dt_s):
    """Stack sampled waveforms (each already a 1-D array) with ``T_LEAD`` of rest before them."""
    lead = int(round(T_LEAD / dt_s))
    n = lead + max(c.size for c in columns) + 1
    out = np.zeros((n, len(columns)))
    for j, c in enumerate(columns):
        out[lead:lead + c.size, j] = c
    return out


# ------------------------------------------------------------------------- fibres

@dataclass(frozen=True)
class _Batch:
    """Cable parameters for a batch of fibres of one class (SI, node-major rows)."""

    model: str
    n_nodes: int
    rows: dict
    gax: np.ndarray
    gext: np.ndarray
    rest: dict


_REST_CACHE: dict = {}


def _membrane_rows(cls, diameter_m):
    """Per-fibre membrane values (F, S, V) and axial conductance and spacing for ``diameter_m``."""
    mem = membrane_parameters(cls.membrane)
    d = np.asarray(diameter_m, float)
    cm = mem["c_m_uf_per_cm2"] * 1e-2           # F/m²
    if cls.membrane == "mrg_node":
        node_d, axon_d, dx = mrg_geometry(d)
        area = math.pi * node_d * mem["node_length_um"] * 1e-6
        load = mem["internode_load_ratio"]
        e_int = cls.e_internode_v * 1e3 if math.isfinite(cls.e_internode_v) else mem["e_internode_mv"]
        el = (mem["e_l_mv"] + load * e_int) / (1 + load) * 1e-3
        temp = mem["temperature_c"]
        f = {"cn": cm * area * (1 + mem.get("internode_capacitance_ratio", 0.0)),
             "gnaf": mem["g_naf_s_per_cm2"] * 1e4 * area,
             "gnap": cls.gnap_scale * mem["g_nap_s_per_cm2"] * 1e4 * area,
             "gks": mem["g_ks_s_per_cm2"] * 1e4 * area, "gl": mem["g_l_s_per_cm2"] * 1e4 * area * (1 + load),
             "ena": np.full(d.shape, mem["e_na_mv"] * 1e-3), "ek": np.full(d.shape, mem["e_k_mv"] * 1e-3),
             "el": np.full(d.shape, el),
             "q_mp": np.full(d.shape, 2.2 ** ((temp - 20.0) / 10.0)),
             "q_h": np.full(d.shape, 2.9 ** ((temp - 20.0) / 10.0)),
             "q_s": np.full(d.shape, 3.0 ** ((temp - 36.0) / 10.0))}
        gax = math.pi * axon_d ** 2 / (4.0 * mem["rho_axoplasm_ohm_cm"] * 1e-2 * dx)
    else:
        dx = np.full(d.shape, mem["compartment_um"] * 1e-6)
        area = math.pi * d * dx
        f = {"cn": cm * area, "gna": mem["g_na_s_per_cm2"] * 1e4 * area, "gk": mem["g_k_s_per_cm2"] * 1e4 * area,
             "gl": mem["g_l_s_per_cm2"] * 1e4 * area,
             "ena": np.full(d.shape, mem["e_na_mv"] * 1e-3), "ek": np.full(d.shape, mem["e_k_mv"] * 1e-3),
             "el": np.full(d.shape, mem["e_l_mv"] * 1e-3),
             "phi": np.full(d.shape, 3.0 ** ((mem["temperature_c"] - 6.3) / 10.0))}
        gax = math.pi * d ** 2 / (4.0 * mem["rho_axoplasm_ohm_cm"] * 1e-2 * dx)
    return f, gax, dx


def _rest(cls):
    """Resting state of the class's membrane (geometry-independent; cached per process)."""
    key = (cls.membrane, cls.gnap_scale, cls.e_internode_v)
    if key not in _REST_CACHE:
        from emsim.physiology import _axon_brian as engine
        f, _, _ = _membrane_rows(cls, np.array([cls.diameter_mean_m]))
        _REST_CACHE[key] = {k: float(v[0]) for k, v in engine.rest_state(cls.membrane, f).items()}
    return _REST_CACHE[key]


def _batch(class_name, diameter_m, wave_index):
    """Cables for fibres ``diameter_m`` (F,) each stimulated by waveform column ``wave_index``."""
    cls = fibre_classes()[class_name]
    f, gax, dx = _membrane_rows(cls, diameter_m)
    n = cls.n_nodes
    rows = {k: np.tile(v, n) for k, v in f.items()}
    rows["k"] = np.tile(np.asarray(wave_index, int), n)
    # Uniform field E along +x: Ve_n = -E·x_n, so the activating current at node n per unit E is
    # Σ_nb (Ve_nb − Ve_n)/R = −Σ_nb (x_nb − x_n)·gax: only the two sealed ends are driven.
    node = np.arange(n)[:, None]
    offset = np.where(node == 0, 1.0, 0.0) - np.where(node == n - 1, 1.0, 0.0)
    gext = (offset * (-dx * gax)[None, :]).ravel()
    rest = {k: np.full(gax.size, v) for k, v in _rest(cls).items()}
    return _Batch(cls.membrane, n, rows, gax, gext, rest)


def _engine(class_name, model=None):
    """Engine key (of ``DT``/``TAIL``) for a class: its configured cable model unless ``model``."""
    cls = fibre_classes()[class_name]
    if cls.membrane != "mrg_node":
        return cls.membrane
    m = cls.model if model is None else model
    if m not in MODELS:
        raise PhysiologyInputError("unknown myelinated fibre model", path="model", value=m, allowed=", ".join(MODELS))
    return m if m in DOUBLE_CABLES else "mrg_node"


_MRG_REST: dict = {}
_FIBRE_FIRST = ("vm", "u", "s_i", "q_i", "n_i")   # double-cable state arrays shaped (F, ...); the rest (n_nodes, F)


def _mrg_node_channels(cls, cab, variant="mrg"):
    """Nodal channel constants of the double cable (MRG 2002 node membrane or a Gaines 2018
    variant's, absolute units)."""
    mem = membrane_parameters("mrg_node")
    area = cab.node_area
    temp = mem["temperature_c"]
    if variant == "mrg":
        g = {k: mem[f"{k}_s_per_cm2"] for k in ("g_naf", "g_nap", "g_ks", "g_l")}
        e = {k: mem[f"{k}_mv"] for k in ("e_na", "e_k", "e_l")}
        extra = {}
    else:
        from emsim.physiology._mrg_cable import gaines_parameters
        p = gaines_parameters(variant)
        g = {k: p["node"][f"{k}_s_per_cm2"] for k in ("g_naf", "g_nap", "g_ks", "g_l", "g_kf")}
        e = {k: p["node"][f"{k}_mv"] for k in ("e_na", "e_k", "e_l")}
        extra = {"gkf": g["g_kf"] * 1e4 * area, "rates": p["rates"]}
    return {"gnaf": g["g_naf"] * 1e4 * area, "gnap": cls.gnap_scale * g["g_nap"] * 1e4 * area,
            "gks": g["g_ks"] * 1e4 * area, "gl": g["g_l"] * 1e4 * area,
            "ena": e["e_na"] * 1e-3, "ek": e["e_k"] * 1e-3, "el": e["e_l"] * 1e-3,
            "q_mp": 2.2 ** ((temp - 20.0) / 10.0), "q_h": 2.9 ** ((temp - 20.0) / 10.0),
            "q_s": 3.0 ** ((temp - 36.0) / 10.0), **extra}


def _mrg_network(class_name, diameter_m, wave_index, waves, waves2, duration, monitor_all=False, variant="mrg"):
    from emsim.physiology import _axon_mrg as engine
    from emsim.physiology import _mrg_cable as mc
    cls = fibre_classes()[class_name]
    d = np.asarray(diameter_m, float)

    def build(dia, **kw):
        cab = mc.cable(dia, cls.n_nodes)
        extra = {}
        if variant != "mrg":
            extra = {"internode": mc.gaines_internode(cab, variant),
                     "v_init": mc.gaines_parameters(variant)["v_init_mv"] * 1e-3}
        return engine.MrgNetwork(cab, _mrg_node_channels(cls, cab, variant), dt_s=DT[variant], **extra, **kw)

    uniq, inv = np.unique(d, return_inverse=True)
    key = lambda dia: (variant, cls.n_nodes, cls.gnap_scale, float(dia))  # noqa: E731
    todo = [x for x in uniq if key(x) not in _MRG_REST]
    if todo:  # rest depends on geometry: settle each new diameter once per process
        st = build(np.array(todo), waves=np.zeros((2, 1)), waves2=None, k=np.zeros(len(todo), int),
                   duration_s=0.0).state()
        for j, x in enumerate(todo):
            _MRG_REST[key(x)] = {k: (v[j] if k in _FIBRE_FIRST else v[:, j]) for k, v in st.items()}
    rest = {}
    for k in _MRG_REST[key(uniq[0])]:
        cols = [_MRG_REST[key(x)][k] for x in uniq]
        stacked = np.stack(cols, axis=0 if k in _FIBRE_FIRST else 1)
        rest[k] = stacked[inv] if k in _FIBRE_FIRST else stacked[:, inv]
    return build(d, waves=waves, waves2=waves2, k=wave_index, duration_s=duration, rest=rest,
                 monitor_all=monitor_all)


def _network(class_name, diameter_m, wave_index, waves, waves2=None, model=None):
    eng = _engine(class_name, model)
    dt = DT[eng]
    duration = waves.shape[0] * dt + TAIL[eng]
    if eng in DOUBLE_CABLES:
        return _mrg_network(class_name, diameter_m, wave_index, waves, waves2, duration, variant=eng)
    from emsim.physiology import _axon_brian as engine
    b = _batch(class_name, diameter_m, wave_index)
    return engine.build(b.model, b.rows, b.gext, b.gax, b.rest, waves, waves2, dt_s=dt, duration_s=duration)


def _guess(class_name, diameter_m):
    """Starting field (V/m) for the search: scales as 1/diameter (Δx ∝ d)."""
    base = 40.0 if fibre_classes()[class_name].membrane == "mrg_node" else 400.0
    return base * 10e-6 / np.asarray(diameter_m, float)


def threshold_search(run, guess, *, rtol=0.005, max_runs=40, cap=None):
    """Vectorised threshold search: the smallest amplitude with ``run(amps)`` True, per trial.

    All trials move together, so one simulation of a network holding every trial answers each
    step (the experiments here, and probes that build their own Brian2 network).

    Parameters
    ----------
    run : callable
        ``run(amps) -> bool array``: whether each trial fires at amplitude ``amps`` (same shape
        as ``guess``); firing must be monotone in the amplitude.
    guess : array_like
        Starting amplitude per trial (any positive unit; the result is in the same unit).
    rtol : float
        Relative bracket width ``hi/lo − 1`` at which a trial stops.
    max_runs : int
        Most calls of ``run``.
    cap : array_like, optional
        Largest amplitude tried per trial; default ``guess × CAP_FACTOR``.

    Returns
    -------
    ndarray
        Geometric midpoint of each final bracket; ``inf`` for trials not excited at ``cap``.

    Notes
    -----
    Brackets by ×3 steps from ``guess``, then bisects geometrically until ``hi/lo < 1 + rtol``.
    """
    guess = np.asarray(guess, float)
    cap = guess * CAP_FACTOR if cap is None else np.broadcast_to(cap, guess.shape)
    lo = np.zeros_like(guess)
    hi = np.full_like(guess, np.inf)
    amp = guess.copy()
    for _ in range(max_runs):
        fired = run(amp)
        hi = np.where(fired, np.minimum(hi, amp), hi)
        lo = np.where(~fired, np.maximum(lo, amp), lo)
        dead = ~np.isfinite(hi) & (lo >= cap)
        done = dead | (np.isfinite(hi) & (lo > 0) & (hi <= lo * (1 + rtol)))
        if np.all(done):
            break
        amp = np.where(~np.isfinite(hi), np.minimum(lo * 3.0, cap), np.where(lo == 0, hi / 3.0, np.sqrt(lo * hi)))
        amp = np.where(done, np.where(np.isfinite(hi), hi, cap), amp)
    return np.where(np.isfinite(hi), np.sqrt(np.maximum(lo, hi / (1 + rtol)) * hi), np.inf)


def _check_class(name):
    if name not in fibre_classes():
        raise PhysiologyInputError("unknown fibre class", path="fibre_class", value=name,
                                   allowed=", ".join(fibre_classes()))


# ------------------------------------------------------------------------- experiments

def sample_interval(class_name, model=None):
    """Time step (s) of the class's cable model: the interval to sample waveforms at for
    :func:`sampled_thresholds` (1 µs for myelinated fibres, 2 µs for C fibres).

    Parameters
    ----------
    class_name : {"motor", "abeta", "adelta", "c"}
    model : {"node_cable", "mrg", "gaines_motor", "gaines_sensory"}, optional
        Myelinated cable model; default the class's.
    """
    _check_class(class_name)
    return DT[_engine(class_name, model)]


def sampled_thresholds(class_name, diameters_m, samples, *, guess_scale=1.0, rtol=0.005, model=None):
    """Uniform-field threshold ``E_th`` (V/m) for every (diameter, sampled waveform) pair.

    :func:`thresholds` for waveforms given as samples rather than as program waveform objects
    (a kHz burst with another onset phase, a train of bursts, any probe's stimulus).

    Parameters
    ----------
    class_name : {"motor", "abeta", "adelta", "c"}
    diameters_m : array_like (n_d,)
        Fibre diameters in metres.
    samples : sequence of 1-D arrays, length n_w
        Relative level of each waveform (peak 1 for a threshold in peak field) sampled every
        :func:`sample_interval` from its onset; ``T_LEAD`` (20 µs) of rest is put before each.
    guess_scale : float or array_like broadcastable to (n_d, n_w)
        Factor on the search's starting field (which scales as 1/diameter); waveforms that
        need a much larger field than a 100 µs pulse converge in fewer runs from a larger one.
    rtol : float
        Relative bracket width at which the search stops (:func:`threshold_search`).
    model : {"node_cable", "mrg", "gaines_motor", "gaines_sensory"}, optional
        Myelinated cable model; default the class's.

    Returns
    -------
    ndarray (n_d, n_w)
        ``inf`` where no action potential arose up to the search cap.
    """
    d = np.atleast_1d(np.asarray(diameters_m, float))
    dd, kk = np.meshgrid(d, np.arange(len(samples)), indexing="ij")
    net = fibre_network(class_name, dd.ravel(), samples, kk.ravel(), model=model)
    guess = (_guess(class_name, dd) * guess_scale).ravel()
    return threshold_search(lambda a: net.run(a) >= 1, guess, rtol=rtol).reshape(dd.shape)


def fibre_network(class_name, diameters_m, samples, wave_index=None, *, model=None):
    """A compiled Brian2 batch of fibres, re-runnable at new field amplitudes (what
    :func:`sampled_thresholds` searches over; for probes and benchmarks of the cable itself).

    Parameters
    ----------
    class_name : {"motor", "abeta", "adelta", "c"}
    diameters_m : array_like (F,)
        Fibre diameters in metres, one fibre each.
    samples : sequence of 1-D arrays, length n_w
        Relative level of each waveform sampled every :func:`sample_interval` from its onset;
        ``T_LEAD`` (20 µs) of rest is put before each.
    wave_index : array_like of int (F,), optional
        Waveform of each fibre (index into ``samples``); default 0 for every fibre.
    model : {"node_cable", "mrg", "gaines_motor", "gaines_sensory"}, optional
        Myelinated cable model; default the class's.

    Returns
    -------
    network
        ``run(drive_v_per_m)`` runs every fibre once from rest, fibre i in a uniform field of
        ``drive_v_per_m[i]`` (V/m) times its waveform, and returns the spike counts at the
        fibres' middle nodes (F,); ``duration_s`` is the simulated time per run and
        ``n_fibres`` the batch size; a double cable's also has ``cab``, its compartment constants
        (shape (F, compartments per fibre)). The first build of a structure compiles it (Cython,
        cached on disk); rebuilding costs milliseconds.
    """
    _check_class(class_name)
    if len(samples) == 0 or any(np.ndim(c) != 1 or not np.all(np.isfinite(c)) for c in samples):
        raise PhysiologyInputError("samples must be 1-D arrays of finite levels", path="samples",
                                   value=[np.shape(c) for c in samples], allowed="non-empty sequence of 1-D arrays")
    d = np.atleast_1d(np.asarray(diameters_m, float))
    k = np.zeros(d.size, int) if wave_index is None else np.asarray(wave_index, int)
    if k.shape != d.shape or (k.size and not (0 <= k.min() and k.max() < len(samples))):
        raise PhysiologyInputError("one waveform index per fibre, into samples", path="wave_index",
                                   value=k.tolist(), allowed=f"{d.size} integers in 0..{len(samples) - 1}")
    waves = _wave_matrix([np.asarray(c, float) for c in samples], sample_interval(class_name, model))
    return _network(class_name, d, k, waves, model=model)


def thresholds(class_name, diameters_m, waveforms, *, rtol=0.005, model=None):
    """Uniform-field threshold ``E_th`` (V/m) for every (diameter, waveform) pair.

    Parameters
    ----------
    class_name : {"motor", "abeta", "adelta", "c"}
    diameters_m : array_like (n_d,)
        Fibre diameters in metres.
    waveforms : sequence of waveform objects (emsim.program.model), length n_w
    rtol : float
        Relative bracket width at which the search stops.
    model : {"node_cable", "mrg", "gaines_motor", "gaines_sensory"}, optional
        Myelinated cable model; default the class's (``model`` in ``fibre_classes.json``).

    Returns
    -------
    ndarray (n_d, n_w)
        ``inf`` where no action potential arose up to the search cap.
    """
    dt = sample_interval(class_name, model)
    pw = np.array([wf.primary_width_s(w) for w in waveforms])
    # short pulses need a larger field: start the search nearer their threshold
    return sampled_thresholds(class_name, diameters_m, [waveform_samples(w, dt) for w in waveforms],
                              guess_scale=(1.0 + 100e-6 / pw)[None, :], rtol=rtol, model=model)


def strength_duration(class_name, diameter_m, pulse_widths_us=(20, 50, 100, 200, 500, 1000), *, rtol=0.005,
                      model=None):
    """Monophasic thresholds and the Weiss-law rheobase (V/m) and chronaxie (s).

    Returns
    -------
    dict with ``pulse_width_s``, ``threshold_v_per_m``, ``rheobase_v_per_m``, ``chronaxie_s``.
    """
    pws = np.asarray(pulse_widths_us, float)
    e = thresholds(class_name, [diameter_m], [monophasic(p) for p in pws], rtol=rtol, model=model)[0]
    rh, c = weiss_fit(pws * 1e-6, e)
    return {"pulse_width_s": pws * 1e-6, "threshold_v_per_m": e, "rheobase_v_per_m": rh, "chronaxie_s": c}


def paired_pulse(class_name, diameter_m, intervals_s, *, pulse_width_us=100.0, conditioning=2.0, rtol=0.01,
                 model=None):
    """Recovery cycle: test-pulse threshold / single-pulse threshold after a conditioning AP.

    The conditioning pulse (``conditioning`` × single threshold) fires the fibre; the test
    pulse of equal shape follows ``intervals_s`` later, and its threshold for a *second* action
    potential at the middle node is searched (cap 20× single; ``inf`` = no second AP).
    """
    _check_class(class_name)
    iv = np.asarray(intervals_s, float)
    dt = DT[_engine(class_name, model)]
    single = thresholds(class_name, [diameter_m], [monophasic(pulse_width_us)], rtol=rtol, model=model)[0, 0]
    pulse = waveform_samples(monophasic(pulse_width_us), dt)
    lead = int(round(T_LEAD / dt))
    n = lead + int(round(iv.max() / dt)) + pulse.size + 1
    cond = np.zeros((n, iv.size))
    test = np.zeros((n, iv.size))
    for j, t in enumerate(iv):
        cond[lead:lead + pulse.size, j] = pulse
        s = lead + int(round(t / dt))
        test[s:s + pulse.size, j] = pulse
    net = _network(class_name, np.full(iv.size, diameter_m), np.arange(iv.size), cond, test, model=model)
    drive1 = np.full(iv.size, conditioning * single)
    e2 = threshold_search(lambda a: net.run(drive1, a) >= 2, np.full(iv.size, single), rtol=rtol,
                 cap=np.full(iv.size, 20.0 * single))
    return e2 / single


def following(class_name, diameter_m, rates_hz, *, n_pulses=10, margin=1.5, pulse_width_us=100.0, model=None):
    """Fraction of ``n_pulses`` followed by an action potential at each rate (margin × threshold)."""
    _check_class(class_name)
    rates = np.asarray(rates_hz, float)
    dt = DT[_engine(class_name, model)]
    single = thresholds(class_name, [diameter_m], [monophasic(pulse_width_us)], model=model)[0, 0]
    pulse = waveform_samples(monophasic(pulse_width_us), dt)
    cols = []
    for r in rates:
        period = int(round(1.0 / (r * dt)))
        col = np.zeros(period * (n_pulses - 1) + pulse.size)
        for p in range(n_pulses):
            col[p * period:p * period + pulse.size] = pulse
        cols.append(col)
    waves = _wave_matrix(cols, dt)
    net = _network(class_name, np.full(rates.size, diameter_m), np.arange(rates.size), waves, model=model)
    counts = net.run(np.full(rates.size, margin * single))
    return np.minimum(counts, n_pulses) / n_pulses


def conduction_velocity(class_name, diameters_m, *, multiple=3.0, pulse_width_us=100.0, model="mrg"):
    """Conduction velocity (m/s) of double-cable fibres, from spike times between the 5th nodes
    from either end (``multiple`` × single-pulse threshold, monophasic pulse)."""
    _check_class(class_name)
    eng = _engine(class_name, model)
    if eng not in DOUBLE_CABLES:
        raise PhysiologyInputError("conduction velocity is measured on the double-cable models only",
                                   path="model", value=model, allowed=", ".join(DOUBLE_CABLES))
    d = np.atleast_1d(np.asarray(diameters_m, float))
    e = thresholds(class_name, d, [monophasic(pulse_width_us)], rtol=0.02, model=model)[:, 0]
    dt = DT[eng]
    waves = _wave_matrix([waveform_samples(monophasic(pulse_width_us), dt)], dt)
    net = _mrg_network(class_name, d, np.zeros(d.size, int), waves, None, waves.shape[0] * dt + 3e-3,
                       monitor_all=True, variant=eng)
    _, rows, times = net.run(multiple * e, return_times=True)
    nn, F = net.n_nodes, d.size
    first = np.full((nn, F), np.nan)
    for r, t in zip(rows[::-1], times[::-1]):  # reversed: the earliest spike of each row wins
        first[r // F, r % F] = t
    x = net.cab.x[:, net.cab.node_col]                    # (F, n_nodes)
    lo, hi = 5, nn - 6
    return np.abs(x[np.arange(F), hi] - x[np.arange(F), lo]) / np.abs(first[hi] - first[lo])


def khz_thresholds(class_name, diameter_m, carriers_hz, bursts_ms, *, rtol=0.01, model=None):
    """``E_th`` (V/m, sine carrier amplitude) of single kHz bursts: shape (n_carrier, n_burst)."""
    ws = [khz(f, b) for f in carriers_hz for b in bursts_ms]
    e = thresholds(class_name, [diameter_m], ws, rtol=rtol, model=model)[0]
    return e.reshape(len(carriers_hz), len(bursts_ms))


def khz_block(class_name, diameter_m, carrier_hz=10000.0, burst_ms=20.0, multiples=(1.5, 3, 6, 12, 24), *,
              model=None, return_times=False):
    """Action potentials passing the middle node during a long kHz burst at multiples of threshold.

    Conduction block shows as a fall to one (onset) response or none at high multiples.
    Returns (multiples, spike counts), and with ``return_times`` a third item: per multiple, the
    sorted times (s) at which the action potentials pass the middle node, from the burst onset
    (the interval between them is what a muscle's force summation sees).
    """
    e_th = khz_thresholds(class_name, diameter_m, [carrier_hz], [burst_ms], model=model)[0, 0]
    dt = DT[_engine(class_name, model)]
    m = np.asarray(multiples, float)
    col = waveform_samples(khz(carrier_hz, burst_ms), dt)
    waves = _wave_matrix([col] * m.size, dt)
    net = _network(class_name, np.full(m.size, diameter_m), np.arange(m.size), waves, model=model)
    if not return_times:
        return m, net.run(m * e_th)
    counts, i, t = net.run(m * e_th, return_times=True)
    return m, counts, [np.sort(t[i == k]) - T_LEAD for k in range(m.size)]


# ------------------------------------------------------------------------- tabulation

GRID_FULL = {
    "diameter_points": 3,
    "pulse_width_us": [20, 50, 100, 200, 300, 500, 1000],
    "gap_us": [0, 50, 100],
    "ratios": [0.25, 0.5, 1.0],
    "carrier_hz": [1000, 2500, 5000, 10000, 20000],
    "burst_ms": [0.5, 1, 2, 4, 10, 20],
    "pair_interval_ms": [0.5, 0.75, 1, 1.5, 2, 3, 5, 10],
    "follow_rate_hz": [50, 100, 200, 300, 500, 700, 1000],
    "follow_margin": 1.5,
    "rtol": 0.005,
    "classes": list(CLASS_NAMES),
}

GRID_SMALL = {
    "diameter_points": 1,
    "pulse_width_us": [50, 200, 1000],
    "gap_us": [0, 100],
    "ratios": [0.5, 1.0],
    "carrier_hz": [2500, 10000],
    "burst_ms": [1, 4],
    "pair_interval_ms": [1, 3],
    "follow_rate_hz": [500],
    "follow_margin": 1.5,
    "rtol": 0.01,
    "classes": ["motor"],
}


def _diameter_grid(cls, points):
    if points == 1:  # the middle point of every odd-sized grid, so small and full tables share it
        return np.array([math.sqrt(cls.diameter_min_m * cls.diameter_max_m)])
    return np.exp(np.linspace(math.log(cls.diameter_min_m), math.log(cls.diameter_max_m), points))


def tabulate(grid=None, *, progress=None, models=None) -> ThresholdTable:
    """Run every experiment of ``grid`` (default :data:`GRID_FULL`) and return the table.

    ``models`` maps a class to a myelinated cable model, overriding ``fibre_classes.json``.
    """
    g = dict(GRID_FULL if grid is None else grid)
    models = dict(models or {})
    say = progress or (lambda msg: None)
    pws = np.asarray(g["pulse_width_us"], float)
    gaps = np.asarray(g["gap_us"], float)
    ratios = np.asarray(g["ratios"], float)
    fam = {k: {} for k in ("diameter_m", "mono", "sym", "asym", "khz", "pair_ratio", "follow_fraction")}
    timing, cpu, engines = {}, {}, {}
    for name in g["classes"]:
        t0, c0 = time.perf_counter(), time.process_time()
        cls = fibre_classes()[name]
        model = models.get(name)
        engines[name] = _engine(name, model)
        d = _diameter_grid(cls, g["diameter_points"])
        ws = [monophasic(p) for p in pws]
        ws += [symmetric(p, gp) for gp in gaps for p in pws]
        asym_r = [r for r in ratios if r < 1.0]
        ws += [asymmetric(p, r) for r in asym_r for p in pws]
        e = thresholds(name, d, ws, rtol=g["rtol"], model=model)
        n = pws.size
        mono = e[:, :n]
        sym = e[:, n:n + gaps.size * n].reshape(d.size, gaps.size, n)
        asym = e[:, n + gaps.size * n:].reshape(d.size, len(asym_r), n)
        if 1.0 in ratios:  # ratio 1 at zero gap is the symmetric pulse
            asym = np.concatenate([asym, sym[:, :1]], axis=1)
        say(f"{name}: pulsed grid {e.size} thresholds in {time.perf_counter() - t0:.1f} s")
        mid = float(np.exp(np.mean(np.log(d))))
        # All diameters in one network: the per-step overhead is paid once.
        kz = thresholds(name, d, [khz(f, b) for f in g["carrier_hz"] for b in g["burst_ms"]],
                        rtol=max(g["rtol"], 0.01), model=model).reshape(d.size, len(g["carrier_hz"]), len(g["burst_ms"]))
        say(f"{name}: kHz grid done at {time.perf_counter() - t0:.1f} s")
        pr = paired_pulse(name, mid, np.asarray(g["pair_interval_ms"]) * 1e-3, model=model)
        ff = following(name, mid, g["follow_rate_hz"], margin=g["follow_margin"], model=model)
        for key, val in (("diameter_m", d), ("mono", mono), ("sym", sym), ("asym", asym), ("khz", kz),
                         ("pair_ratio", pr), ("follow_fraction", ff)):
            fam[key][name] = val
        timing[name] = time.perf_counter() - t0
        cpu[name] = time.process_time() - c0
        say(f"{name}: done in {timing[name]:.1f} s ({cpu[name]:.1f} s CPU)")
    meta = {
        "format": "emsim.fibre_thresholds/1",
        "emsim_version": __version__,
        "classes": list(g["classes"]),
        "quantity": "uniform-field threshold E_th along the fibre terminal, V/m (kHz: sine carrier amplitude)",
        "generated_by": "python -m emsim.physiology.axon tabulate",
        "grid": g,
        "class_engines": engines,
        "model": {"myelinated": "MRG 2002 node membrane on a node-only (McNeal 1976) cable; paranodal/internodal "
                                "load lumped into each node (leak and capacitance ratios fitted to the human motor "
                                "tau_SD, see fibre_classes.json): absolute thresholds are calibrated",
                  "mrg": "MRG 2002 double cable (node, MYSA, FLUT, 6 STIN per internode, periaxonal and myelin "
                         "layer; models/fibres/mrg.json), backward Euler; classes with engine 'mrg' in class_engines",
                  "gaines": "Gaines et al. 2018 motor/sensory variants of the MRG double cable (nodal fast K+, "
                            "internodal slow K+/fast K+/HCN/leak; models/fibres/gaines2018.json, ModelDB 243841); "
                            "classes with engine 'gaines_motor' or 'gaines_sensory' in class_engines",
                  "unmyelinated": "Hodgkin-Huxley 1952 membrane on a continuous cable",
                  "stimulus": "uniform field along a straight fibre with two sealed ends; threshold = AP at the middle node",
                  "dt_s": DT, "classes_file": "models/fibres/fibre_classes.json"},
        "sources": ["McIntyre, Richardson & Grill 2002, J Neurophysiol 87:995", "ModelDB 3810 MRGaxon.hoc",
                    "Gaines et al. 2018, J Comput Neurosci 45:29 (ModelDB 243841)",
                    "McNeal 1976, IEEE TBME 23:329", "Rattay 1986, IEEE TBME 33:974",
                    "Hodgkin & Huxley 1952, J Physiol 117:500", "Mogyoros et al. 1996, Brain 119:439"],
        "evidence": "computed (model output); inputs as flagged in fibre_classes.json",
        "timing_s": timing,
        "cpu_s": cpu,
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0]},
    }
    return ThresholdTable(
        classes=tuple(g["classes"]), diameters_m=fam["diameter_m"], pulse_width_s=pws * 1e-6,
        gaps_s=gaps * 1e-6, ratios=ratios,
        mono=fam["mono"], sym=fam["sym"], asym=fam["asym"], carrier_hz=np.asarray(g["carrier_hz"], float),
        burst_s=np.asarray(g["burst_ms"], float) * 1e-3, khz=fam["khz"],
        pair_interval_s=np.asarray(g["pair_interval_ms"], float) * 1e-3, pair_ratio=fam["pair_ratio"],
        follow_rate_hz=np.asarray(g["follow_rate_hz"], float), follow_fraction=fam["follow_fraction"], meta=meta)


def merge_tables(base: ThresholdTable, new: ThresholdTable) -> ThresholdTable:
    """``base`` with the classes of ``new`` replaced or added (the grids must be equal)."""
    for key in ("pulse_width_s", "gaps_s", "ratios", "carrier_hz", "burst_s", "pair_interval_s", "follow_rate_hz"):
        if not np.array_equal(getattr(base, key), getattr(new, key)):
            raise PhysiologyInputError("tables with different grids cannot be merged", path=key,
                                       value=list(getattr(new, key)), allowed=str(list(getattr(base, key))))
    classes = tuple(base.classes) + tuple(c for c in new.classes if c not in base.classes)
    pick = lambda attr: {c: (getattr(new, attr) if c in new.classes else getattr(base, attr))[c]  # noqa: E731
                         for c in classes}
    meta = dict(new.meta)
    meta["classes"] = list(classes)
    meta["grid"] = dict(new.meta["grid"], classes=list(classes))
    for key in ("timing_s", "cpu_s", "class_engines"):
        meta[key] = {c: (new.meta if c in new.classes else base.meta).get(key, {}).get(c) for c in classes}
    for c in classes:  # tables from before the double cable recorded no engine: they used the membrane's cable
        meta["class_engines"][c] = meta["class_engines"][c] or fibre_classes()[c].membrane
    return ThresholdTable(classes=classes, diameters_m=pick("diameters_m"), pulse_width_s=base.pulse_width_s,
                          gaps_s=base.gaps_s, ratios=base.ratios, mono=pick("mono"), sym=pick("sym"),
                          asym=pick("asym"), carrier_hz=base.carrier_hz, burst_s=base.burst_s, khz=pick("khz"),
                          pair_interval_s=base.pair_interval_s, pair_ratio=pick("pair_ratio"),
                          follow_rate_hz=base.follow_rate_hz, follow_fraction=pick("follow_fraction"), meta=meta)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emsim.physiology.axon",
                                 description="Brian2 fibre models: regenerate models/fibres/thresholds.{npz,json}")
    sub = ap.add_subparsers(dest="cmd", required=True)
    tab = sub.add_parser("tabulate", help="run the fibre experiments and write the threshold table")
    tab.add_argument("--small", action="store_true", help="the reduced grid used by the regeneration test")
    tab.add_argument("--out", default=None, help="output stem (default models/fibres/thresholds)")
    tab.add_argument("--classes", default=None, help="comma-separated subset of classes")
    tab.add_argument("--model", default=None, choices=MODELS,
                     help="myelinated cable model for these classes (default: fibre_classes.json)")
    tab.add_argument("--update", action="store_true",
                     help="keep the other classes of the existing table at --out (same grid)")
    args = ap.parse_args(argv)
    grid = dict(GRID_SMALL if args.small else GRID_FULL)
    if args.classes:
        grid["classes"] = args.classes.split(",")
    models = {c: args.model for c in grid["classes"]} if args.model else None
    out = Path(args.out) if args.out else models_dir() / TABLE_STEM
    base = load_table(out) if args.update else None
    # Brian2 runs gc.collect() at every Network.run; with numba and Brian2 loaded that full
    # collection costs ~0.3 s per bisection step. Objects alive now are never garbage here.
    gc.freeze()
    table = tabulate(grid, progress=lambda m: print(m, flush=True), models=models)
    if base is not None:
        table = merge_tables(base, table)
    table.save(out)
    print(json.dumps({"written": str(out.with_suffix(".npz")), "timing_s": table.meta["timing_s"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
