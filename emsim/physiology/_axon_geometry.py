r"""Strength–duration of *passing* double-cable axons under a point or surface-disc source.

An investigation helper for issue 4's check S1 (sensory/motor chronaxie ratio ≈ 1.45, motor
τSD 459 ± 126 µs; Mogyoros, Kiernan & Burke 1996). :mod:`emsim.physiology.axon` drives every
fibre as a sealed terminal in a uniform field; there the MRG 2002 and Gaines 2018 cables give
chronaxies (MRG 368 µs, Gaines motor 165–168 µs, Gaines sensory 316–319 µs) that fail S1 for
every pairing. Mogyoros measured with surface electrodes over the median nerve at the wrist,
i.e. axons passing millimetres under the cathode, and Gaines et al. 2018 fitted their cables in
a finite-element arm. Chronaxie of extracellular stimulation depends on the electrode–fibre
distance (Rattay, Paredes & Leao 2012, Neuroscience 214:1, PMC3401985: the depolarised zone
between the virtual anodes widens with distance and the chronaxie rises towards the
intracellular value), so this module recomputes the curves for that geometry. It does not
change the shipped tables or :mod:`emsim.physiology.axon`.

Geometry, and why
-----------------
* A straight fibre, middle node directly under the source; its ends sealed and far enough away
  (``half_length_factor`` × the effective distance) that the end drive is small
  (the cathodic end drive falls as 1/x² against 1/h³ under the source).
* **Point source** in an infinite medium, conductivity ``σ_t`` across and ``σ_l`` along the
  fibre: ``Ve(x) = −I / (4π σ_t √(x² + h² σ_l/σ_t))`` for a cathodic current ``I`` (the
  monopole in a uniaxially anisotropic medium, standard potential theory; the half-space
  surface point source ``I/(2πσR)`` has the same shape, twice the amplitude). Anisotropy therefore acts on the
  curve's *shape* exactly as the isotropic distance ``h·√(σ_l/σ_t)`` would: muscle's
  0.35/0.086 S/m (ASCENT ``materials.json``; reference §2.2) doubles the effective distance.
* **Surface disc**: uniform current density over a disc of radius ``a`` on a homogeneous
  half-space, fibre at depth ``h`` parallel to the surface under the disc centre;
  ``Ve = −(I/(2πσ)) ⟨1/R⟩_disc`` (reference §2.3), Gauss–Legendre in radius, uniform in angle.
* The activating sources of both cable layers are the ``Ve`` differences between neighbouring
  compartments weighted by the axial conductances (Rattay 1986; the same rule as the uniform
  field's ``ai``/``ap`` in :func:`emsim.physiology._mrg_cable.cable`).
* Threshold = smallest cathodic current whose action potential reaches a node
  ``detect_fraction`` of the half-length away from the middle, i.e. a *propagated* spike, not
  the passive swing under the electrode.

Default medium: homogeneous 0.2 S/m (ρ = 500 Ω·cm; the medium of MRG 2002's point-source
simulations, unverified recollection). Only rheobases depend on it (∝ σ); chronaxies do not.

Results and their discussion: docs/literature/axon_models.md §6; the grid is
``benchmarks/axon_geometry_sd.py``.

:func:`terminal_thresholds` is the same question for the fast path's own fibres (issue 4, R2):
the tabulated node-cable *terminal*, placed with its end at a unit's terminal in a computed
field (e.g. the layered solution under the patient's electrodes) instead of a uniform one.
Results: docs/literature/recruitment.md "Session 9d"; probe ``benchmarks/terminal_depth_sd.py``.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np

from emsim.physiology.errors import PhysiologyInputError
from emsim.program import waveform as wf

__all__ = ["point_source", "disc_source", "passing_cable", "thresholds", "node_cable_thresholds",
           "terminal_thresholds", "strength_duration", "SIGMA_S_PER_M"]

SIGMA_S_PER_M = 0.2          # MRG 2002 homogeneous medium (500 Ω·cm)
HALF_LENGTH_FACTOR = 8.0     # half fibre length / effective distance
MIN_HALF_LENGTH_M = 20e-3
DETECT_FRACTION = 0.6        # detection node: this fraction of the half-length from the middle
TAIL_S = 2.0e-3              # after the waveform: the spike must travel to the detection node
MODELS = ("mrg", "gaines_motor", "gaines_sensory")


def point_source(distance_m: float, sigma_trans: float = SIGMA_S_PER_M, sigma_long: float | None = None):
    """``Ve(x)`` (V per A of cathodic current) of a point source ``distance_m`` from the fibre.

    Returns ``(ve, h_eff)``: the potential as a function of axial offset ``x`` (m, any shape)
    and the effective isotropic distance ``h·√(σ_l/σ_t)`` that sets its shape.
    """
    sl = sigma_trans if sigma_long is None else sigma_long
    if distance_m <= 0 or sigma_trans <= 0 or sl <= 0:
        raise PhysiologyInputError("point source needs a positive distance and conductivities", path="distance_m",
                                   value=(distance_m, sigma_trans, sl), allowed="> 0")
    h2 = distance_m ** 2 * sl / sigma_trans
    return (lambda x: -1.0 / (4.0 * math.pi * sigma_trans * np.sqrt(np.asarray(x) ** 2 + h2))), math.sqrt(h2)


def disc_source(depth_m: float, radius_m: float, sigma: float = SIGMA_S_PER_M, n_radial: int = 24,
                n_angle: int = 48):
    """``Ve(x)`` (V per A) under a uniform-current surface disc on a homogeneous half-space.

    Returns ``(ve, h_eff)`` with ``h_eff = √(depth² + radius²/2)``, the RMS source distance from
    the point under the centre (only used to size the fibre).
    """
    if depth_m <= 0 or radius_m <= 0 or sigma <= 0:
        raise PhysiologyInputError("disc source needs positive depth, radius and conductivity", path="depth_m",
                                   value=(depth_m, radius_m, sigma), allowed="> 0")
    g, w = np.polynomial.legendre.leggauss(n_radial)
    r = 0.5 * radius_m * (g + 1.0)
    wr = 0.5 * radius_m * w * r                                   # ∫ r dr
    th = (np.arange(n_angle) + 0.5) * 2.0 * math.pi / n_angle
    xi = (r[:, None] * np.cos(th)[None, :]).ravel()
    eta2 = ((r[:, None] * np.sin(th)[None, :]) ** 2).ravel()
    wt = (np.repeat(wr, n_angle) * 2.0 * math.pi / n_angle) / (math.pi * radius_m ** 2)

    def ve(x):
        x = np.asarray(x, float)
        inv = 1.0 / np.sqrt((x[..., None] - xi) ** 2 + eta2 + depth_m ** 2)
        return -(inv @ wt) / (2.0 * math.pi * sigma)

    return ve, math.sqrt(depth_m ** 2 + radius_m ** 2 / 2.0)


def passing_cable(fibre_d_m, n_nodes: int, ves):
    """MRG double cable of each diameter with activating sources of the potentials ``ves``.

    ``ves`` is one ``Ve(x)`` callable per fibre (x measured from the middle node). The
    returned cable's ``ai``/``ap`` are in A per A of source current.
    """
    from emsim.physiology import _mrg_cable as mc
    cab = mc.cable(fibre_d_m, n_nodes)
    mid = cab.node_col[n_nodes // 2]
    x = cab.x - cab.x[:, mid:mid + 1]
    ve = np.stack([np.broadcast_to(f(x[i]), x[i].shape) for i, f in enumerate(ves)])
    dve = np.diff(ve, axis=1)
    ai, ap = np.zeros_like(ve), np.zeros_like(ve)
    ai[:, :-1] += cab.gi * dve
    ai[:, 1:] -= cab.gi * dve
    ap[:, :-1] += cab.gp * dve
    ap[:, 1:] -= cab.gp * dve
    return replace(cab, ai=ai, ap=ap)


def _n_nodes(dx_min, h_eff, half_length_factor):
    """Odd node count that puts the sealed ends ``half_length_factor × h_eff`` from the middle."""
    half = max(half_length_factor * h_eff, MIN_HALF_LENGTH_M)
    return 2 * int(math.ceil(half / dx_min)) + 1


def _network(model, cab, waves, k, dt, duration, rest=None):
    from emsim.physiology import _axon_mrg as engine
    from emsim.physiology import _mrg_cable as mc
    from emsim.physiology.axon import _mrg_node_channels
    from emsim.physiology.fibre_tables import fibre_classes
    cls = fibre_classes()["motor"]   # gNaP scale 1 for motor and Aβ alike; the model sets the rest
    extra = {}
    if model != "mrg":
        extra = {"internode": mc.gaines_internode(cab, model),
                 "v_init": mc.gaines_parameters(model)["v_init_mv"] * 1e-3}
    return engine.MrgNetwork(cab, _mrg_node_channels(cls, cab, model), waves, None, k, dt_s=dt, duration_s=duration,
                             rest=rest, monitor_all=True, **extra)


def _rest(model, fibre_d_m, n_nodes):
    """Settled state of unstimulated fibres (one per diameter), as ``rest=`` arrays."""
    d = np.unique(np.asarray(fibre_d_m, float))
    cab = passing_cable(d, n_nodes, [lambda x: np.zeros_like(x)] * d.size)
    st = _network(model, cab, np.zeros((2, 1)), np.zeros(d.size, int), 1e-6, 0.0).state()
    return d, st


def thresholds(model, diameters_m, sources, waveforms, *, rtol=0.01, half_length_factor=HALF_LENGTH_FACTOR,
               detect_fraction=DETECT_FRACTION):
    """Cathodic threshold current (A) for every (diameter, source, waveform).

    Parameters
    ----------
    model : {"mrg", "gaines_motor", "gaines_sensory"}
    diameters_m : array_like (n_d,)
    sources : sequence of ``(ve, h_eff)`` pairs from :func:`point_source` / :func:`disc_source`
    waveforms : sequence of waveform objects (first phase cathodic)
    rtol : float
        Relative bracket width of the bisection.

    Returns
    -------
    ndarray (n_d, n_sources, n_w); ``inf`` where nothing propagated up to the search cap.
    One network per source (fibre length scales with its distance), all diameters and
    waveforms side by side in it.
    """
    from emsim.physiology import _mrg_cable as mc
    from emsim.physiology.axon import DT, threshold_search, _wave_matrix, waveform_samples
    if model not in MODELS:
        raise PhysiologyInputError("unknown double-cable model", path="model", value=model, allowed=", ".join(MODELS))
    d = np.atleast_1d(np.asarray(diameters_m, float))
    dt = DT[model]
    waves = _wave_matrix([waveform_samples(w, dt) for w in waveforms], dt)
    duration = waves.shape[0] * dt + TAIL_S
    dd, kk = np.meshgrid(d, np.arange(len(waveforms)), indexing="ij")
    out = np.full((d.size, len(sources), len(waveforms)), np.inf)
    for s, (ve, h_eff) in enumerate(sources):
        nn = _n_nodes(float(np.min(mc.geometry(d)["delta_x"])), h_eff, half_length_factor)
        uniq, st = _rest(model, d, nn)
        idx = np.searchsorted(uniq, dd.ravel())
        rest = {key: (val[idx] if key in ("vm", "u", "s_i", "q_i", "n_i") else val[:, idx]) for key, val in st.items()}
        cab = passing_cable(dd.ravel(), nn, [ve] * dd.size)
        net = _network(model, cab, waves, kk.ravel(), dt, duration, rest=rest)
        F = dd.size
        node = nn // 2 + int(round(detect_fraction * (nn // 2)))

        def fired(amp, net=net, node=node, F=F):
            _, i, _ = net.run(amp, return_times=True)
            return np.bincount(i[i // F == node] % F, minlength=F) >= 1

        pw = np.array([wf.primary_width_s(w) for w in waveforms])
        guess = (2e-3 * (h_eff / 5e-3) ** 2 * 10e-6 / dd * (1.0 + 200e-6 / pw[kk])).ravel()
        out[:, s, :] = threshold_search(fired, guess, rtol=rtol).reshape(dd.shape)
        del net
    return out


def node_cable_thresholds(class_name, diameters_m, sources, waveforms, *, rtol=0.01,
                          half_length_factor=HALF_LENGTH_FACTOR):
    """As :func:`thresholds` for the shipped node-only cable of ``class_name`` ("motor" or
    "abeta": the lumped paranodal load and the class's fitted internodal rest).

    The node cable's engine reports spikes at the middle node only, i.e. under the source;
    near threshold that is the initiating action potential.
    """
    from emsim.physiology.axon import DT, _membrane_rows, _wave_matrix, waveform_samples
    cls = _node_cable_class(class_name)
    d = np.atleast_1d(np.asarray(diameters_m, float))
    dt = DT["mrg_node"]
    waves = _wave_matrix([waveform_samples(w, dt) for w in waveforms], dt)
    dd, kk = np.meshgrid(d, np.arange(len(waveforms)), indexing="ij")
    _, _, dx = _membrane_rows(cls, dd.ravel())
    pw = np.array([wf.primary_width_s(w) for w in waveforms])
    out = np.full((d.size, len(sources), len(waveforms)), np.inf)
    for s, (ve, h_eff) in enumerate(sources):
        n = _n_nodes(float(dx.min()), h_eff, half_length_factor)
        x = (np.arange(n) - n // 2)[:, None] * dx[None, :]            # (n_nodes, F)
        guess = (2e-3 * (h_eff / 5e-3) ** 2 * 10e-6 / dd * (1.0 + 200e-6 / pw[kk])).ravel()
        out[:, s, :] = _node_cable_search(cls, dd.ravel(), kk.ravel(), ve(x), waves, guess, rtol).reshape(dd.shape)
    return out


def terminal_thresholds(class_name, diameters_m, points_m, potential, waveforms, *, axis=(1.0, 0.0, 0.0),
                        n_nodes=None, rtol=0.005):
    """Thresholds (A per A of the source) of the shipped node-cable *terminal* in a computed field.

    The cable is the tabulated one (:mod:`emsim.physiology.axon`: ``n_nodes`` of the class,
    sealed ends, action potential detected at the middle node), but instead of a uniform field
    each node sits in the potential ``potential(x, y, z)`` (V per A, e.g.
    :meth:`emsim.physiology.field.FieldSolution.potential`): node 0 at the terminal
    ``points_m[i]``, node k at ``points_m[i] + k·Δx·axis``. The source's polarity is the one
    that depolarises node 0, as the fast path's ``|E|·Δx`` drive assumes. In a uniform field
    this is exactly the tabulated threshold; in a real field it measures what the fast path's
    "uniform-field table ÷ local first difference" leaves out (the field's variation along the
    cable). Investigation helper (issue 4, R2): docs/literature/recruitment.md.

    Parameters
    ----------
    class_name : {"motor", "abeta", "adelta"}
    diameters_m : array_like (P,)
        Fibre diameter at each terminal.
    points_m : array_like (P, 3)
        Terminal positions (m).
    potential : callable (x, y, z) -> ndarray
    waveforms : sequence of waveform objects (first phase depolarising node 0)

    Returns
    -------
    ndarray (P, n_w); ``inf`` where nothing fired up to the search cap.
    """
    from emsim.physiology.axon import DT, _membrane_rows, _wave_matrix, waveform_samples
    from emsim.physiology.fibre_tables import mrg_geometry
    cls = _node_cable_class(class_name)
    d = np.atleast_1d(np.asarray(diameters_m, float))
    pts = np.asarray(points_m, float).reshape(-1, 3)
    if pts.shape[0] != d.size:
        raise PhysiologyInputError("one diameter per terminal", path="diameters_m", value=d.size,
                                   allowed=f"{pts.shape[0]} (the number of points)")
    n = cls.n_nodes if n_nodes is None else int(n_nodes)
    dt = DT["mrg_node"]
    waves = _wave_matrix([waveform_samples(w, dt) for w in waveforms], dt)
    nw = len(waveforms)
    step = mrg_geometry(d)[2][:, None] * np.asarray(axis, float)[None, :]          # (P, 3)
    nodes = pts[:, None, :] + np.arange(n)[None, :, None] * step[:, None, :]        # (P, n, 3)
    phi = np.asarray(potential(nodes[..., 0], nodes[..., 1], nodes[..., 2]), float)  # (P, n)
    phi = phi * np.where(phi[:, 1] >= phi[:, 0], 1.0, -1.0)[:, None]
    dd = np.repeat(d, nw)
    kk = np.tile(np.arange(nw), d.size)
    _, _, dx = _membrane_rows(cls, dd)
    pw = np.array([wf.primary_width_s(w) for w in waveforms])
    first = np.repeat(np.abs(phi[:, 1] - phi[:, 0]), nw)
    # uniform-field guess: ~40 V/m at 10 um and 100 us (axon._guess) over the terminal's first difference
    guess = 40.0 * 10e-6 / dd * (1.0 + 100e-6 / pw[kk]) * dx / np.maximum(first, 1e-30)
    v = np.repeat(phi.T, nw, axis=1)                                                # (n, P*nw)
    return _node_cable_search(cls, dd, kk, v, waves, guess, rtol).reshape(d.size, nw)


def _node_cable_class(class_name):
    from emsim.physiology.fibre_tables import fibre_classes
    cls = fibre_classes()[class_name]
    if cls.membrane != "mrg_node":
        raise PhysiologyInputError("node cable geometry needs a myelinated class", path="class_name",
                                   value=class_name, allowed="motor, abeta, adelta")
    return cls


def _node_cable_search(cls, dd, kk, v, waves, guess, rtol):
    """Threshold search on node cables (one per column of ``v``, the potential per unit source
    at each node, shape (n_nodes, F)); fibre ``F`` has diameter ``dd`` and waveform column ``kk``."""
    from emsim.physiology import _axon_brian as engine
    from emsim.physiology.axon import DT, _membrane_rows, _rest as class_rest, threshold_search
    f, gax, _ = _membrane_rows(cls, dd)
    n = v.shape[0]
    gext = np.zeros_like(v)
    gext[:-1] += (v[1:] - v[:-1]) * gax
    gext[1:] += (v[:-1] - v[1:]) * gax
    rows = {k: np.tile(val, n) for k, val in f.items()}
    rows["k"] = np.tile(kk, n)
    rest = {k: np.full(gax.size, val) for k, val in class_rest(cls).items()}
    dt = DT["mrg_node"]
    net = engine.build("mrg_node", rows, gext.ravel(), gax, rest, waves, None, dt_s=dt,
                       duration_s=waves.shape[0] * dt + TAIL_S)
    return threshold_search(lambda a: net.run(a) >= 1, guess, rtol=rtol)   # the network is freed on return


def strength_duration(model, diameters_m, sources, pulse_widths_us=(50, 100, 200, 500, 1000), *, rtol=0.01,
                      **kw):
    """Monophasic thresholds (A) and the Weiss-law rheobase (A) and chronaxie (s).

    Returns a dict of arrays: ``threshold_a`` (n_d, n_sources, n_pw), ``rheobase_a`` and
    ``chronaxie_s`` (n_d, n_sources).
    """
    from emsim.physiology.axon import monophasic
    from emsim.physiology.fibre_tables import weiss_fit
    pws = np.asarray(pulse_widths_us, float)
    th = thresholds(model, diameters_m, sources, [monophasic(p) for p in pws], rtol=rtol, **kw)
    fits = np.array([[weiss_fit(pws * 1e-6, th[i, j]) for j in range(th.shape[1])] for i in range(th.shape[0])])
    return {"pulse_width_s": pws * 1e-6, "threshold_a": th, "rheobase_a": fits[..., 0], "chronaxie_s": fits[..., 1]}
