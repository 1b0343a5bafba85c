r"""The McIntyre–Richardson–Grill (2002) double cable: compartments and its implicit step.

No Brian2 here: this module turns fibre diameters into the double cable's per-compartment
constants (``models/fibres/mrg.json``) and holds the compiled linear solve that
:mod:`emsim.physiology._axon_mrg` calls once per Brian2 time step.

The cable, per fibre (node-to-node pattern repeated ``n_nodes − 1`` times)::

    node │ MYSA │ FLUT │ STIN ×6 │ FLUT │ MYSA │ node …

Every compartment has an axolemma potential ``vm`` and a periaxonal potential ``u`` measured
against the applied extracellular potential ``Ve`` (so ``u`` is the voltage across the myelin):

* axolemma:   ``C_m dvm/dt + I_ion(vm) = I_a``,
  ``I_a = Σ_k g_jk (vm_k + u_k − vm_j − u_j) + Σ_k g_jk (Ve_k − Ve_j)`` (intracellular axial);
* periaxon:   ``C_my du/dt + G_my u = I_a + Σ_k gp_jk (u_k − u_j) + Σ_k gp_jk (Ve_k − Ve_j)``;
* at a node the periaxonal layer is shorted to the outside (MRG: ``xg = 1e10``), so ``u ≡ 0``.

The ``Ve`` differences are the activating-function sources (Rattay 1986) of both layers.

Why an implicit solve: the 3 µm MYSA's myelin capacitance (~3e-16 F) against its axial
conductance (~3e-6 S) gives time constants of ~0.1 ns, and node–MYSA coupling ~0.05 µs, so any
explicit coupling (Brian2 ``Synapses`` with summed variables, as in the node-only cable) would
need sub-nanosecond steps; a per-compartment implicit update with lagged neighbours (Jacobi)
is stable but needs ~10 steps to settle each stiff cluster. Backward Euler over the whole
fibre is a block-tridiagonal system (2 × 2 blocks) solved exactly each step, as NEURON does
for MRG; the nodal ion channels enter linearised with the gates of the new step (their
kinetics are integrated by Brian2 just before).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from emsim._data import load_data
from emsim.physiology._jit import jit

__all__ = ["MrgCable", "cable", "geometry", "step", "node_currents", "internode_channels", "SECTIONS_PER_INTERNODE",
           "KINDS", "GAINES_VARIANTS", "gaines_parameters", "gaines_internode"]

MRG_FILE = "fibres/mrg.json"
GAINES_FILE = "fibres/gaines2018.json"
GAINES_VARIANTS = ("gaines_motor", "gaines_sensory")
SECTIONS_PER_INTERNODE = 10  # MYSA, FLUT, 6 STIN, FLUT, MYSA
KINDS = ("node", "mysa", "flut", "stin")  # codes of MrgCable.kind


@lru_cache(maxsize=None)
def _params():
    data = load_data(MRG_FILE)
    c = {k: v["value"] for k, v in data["cable"].items()}
    return c, data["geometry"]


@lru_cache(maxsize=None)
def gaines_parameters(variant: str) -> dict:
    """Gaines 2018 constants of ``variant`` (``models/fibres/gaines2018.json``) as plain values.

    Keys: ``v_init_mv``, ``node`` (the ``*_s_per_cm2`` and ``*_mv`` values), ``rates`` (the
    nodal and fast-K⁺ (A, B, C) triples), ``internode`` (section → densities S/cm², reversal
    potentials, HCN half-activation) and ``hcn`` (rate ms⁻¹, slope mV).
    """
    data = load_data(GAINES_FILE)
    v = data["variants"][variant]
    shared = data["shared_rates"]
    rates = {k: tuple(float(x) for x in val) for k, val in v["node_rates"].items() if isinstance(val, list)}
    rates.update({k: tuple(float(x) for x in shared[k]) for k in ("alpha_n", "beta_n")})
    return {"v_init_mv": float(v["v_init_mv"]["value"]),
            "node": {k: float(val["value"]) for k, val in v["node"].items()},
            "rates": rates, "internode": v["internode"],
            "hcn": (float(shared["hcn_rate_per_ms"]), float(shared["hcn_slope_mv"]))}


def gaines_internode(cab: "MrgCable", variant: str, temperature_c: float = 37.0) -> dict:
    """Internodal channel arrays of ``variant`` for the cable ``cab`` (the ``internode``
    argument of :class:`emsim.physiology._axon_mrg.MrgNetwork`).

    Densities act on the fibre's outer surface over each compartment: Gaines's hoc inserts the
    MYSA/FLUT/STIN mechanisms in sections of ``diam = fiberD`` without MRG's paraD/fiberD
    scaling (models/fibres/gaines2018.json, ``modeldb243841_hoc``).
    """
    p = gaines_parameters(variant)
    sec = p["internode"]
    out = {}
    for key in ("g_ks", "g_kf", "g_q", "g_l"):
        dens = np.array([0.0] + [float(sec[k][key]) for k in KINDS[1:]]) * 1e4   # S/m² by kind, node 0
        out[key.replace("_", "")] = dens[cab.kind][None, :] * cab.outer_area
    out.update(ek=sec["e_k_mv"] * 1e-3, eq=sec["e_q_mv"] * 1e-3, el=sec["e_l_mv"] * 1e-3,
               q3=3.0 ** ((temperature_c - 36.0) / 10.0),
               fast_k=np.array(p["rates"]["alpha_n"] + p["rates"]["beta_n"]),
               hcn=np.array([p["hcn"][0], float(sec["hcn_half_mv"]), p["hcn"][1]]))
    return out


def geometry(fibre_d_m):
    """MRG geometry (SI) for fibre diameters (F,): dict of arrays.

    Keys ``node_d, flut_d, axon_d, delta_x, flut_length, lamellae``; linear interpolation in
    the MRG table, ratios of the 5.7 µm fibre below it and of the 16 µm fibre above it.
    """
    _, g = _params()
    fd = np.asarray(g["fibre_d_um"], float) * 1e-6
    d = np.atleast_1d(np.asarray(fibre_d_m, float))
    out = {}
    for key, name in (("node_d_um", "node_d"), ("flut_d_um", "flut_d"), ("axon_d_um", "axon_d"),
                      ("delta_x_um", "delta_x"), ("flut_length_um", "flut_length")):
        out[name] = d * np.interp(d, fd, np.asarray(g[key], float) * 1e-6 / fd)
    out["lamellae"] = d * np.interp(d, fd, np.asarray(g["lamellae"], float) / fd)
    return out


@dataclass(frozen=True)
class MrgCable:
    """Per-compartment constants (SI) of ``F`` fibres with ``N`` compartments each.

    Arrays are (F, N) unless noted: ``cm`` axolemma capacitance (F), ``gm``/``em`` passive
    axolemma conductance (S) and reversal (V; zero conductance at nodes, whose leak is part of
    the nodal channels), ``cmy``/``gmy`` myelin capacitance and conductance, ``gi``/``gp``
    (F, N−1) intracellular and periaxonal conductance to the next compartment, ``ai``/``ap``
    the intracellular and periaxonal activating current per V/m of uniform field along the
    fibre (A per V/m), ``x`` compartment centres (m), ``node_col`` (n_nodes,) the column of
    each node, ``node_area`` (F,) nodal membrane area (m²), ``kind`` (N,) the section type of
    each compartment (index into :data:`KINDS`), ``outer_area`` (F, N) the area of the fibre's
    outer surface over each compartment (m²; NEURON's section area with ``diam = fiberD``).
    """

    cm: np.ndarray
    gm: np.ndarray
    em: np.ndarray
    cmy: np.ndarray
    gmy: np.ndarray
    gi: np.ndarray
    gp: np.ndarray
    ai: np.ndarray
    ap: np.ndarray
    x: np.ndarray
    is_node: np.ndarray
    node_col: np.ndarray
    node_area: np.ndarray
    delta_x: np.ndarray
    kind: np.ndarray
    outer_area: np.ndarray

    @property
    def shape(self):
        return self.cm.shape


def cable(fibre_d_m, n_nodes: int) -> MrgCable:
    """Build the double cable of MRG 2002 (ModelDB 3810 ``MRGaxon.hoc``) for each diameter."""
    c, _ = _params()
    geo = geometry(fibre_d_m)
    d = np.atleast_1d(np.asarray(fibre_d_m, float))
    F = d.size
    n_stin = int(c["stin_per_internode"])
    um = 1e-6
    l_node, l_mysa = c["node_length_um"] * um, c["mysa_length_um"] * um
    l_stin = (geo["delta_x"] - l_node - 2 * l_mysa - 2 * geo["flut_length"]) / n_stin
    # (section type, length, axolemma diameter, periaxonal width, passive g S/cm², myelin?)
    kinds = [("node", np.full(F, l_node), geo["node_d"], c["space_node_um"], 0.0)]
    inter = ([("mysa", np.full(F, l_mysa), geo["node_d"], c["space_mysa_um"], c["g_mysa_s_per_cm2"]),
              ("flut", geo["flut_length"], geo["flut_d"], c["space_flut_um"], c["g_flut_s_per_cm2"])]
             + [("stin", l_stin, geo["axon_d"], c["space_stin_um"], c["g_stin_s_per_cm2"])] * n_stin
             + [("flut", geo["flut_length"], geo["flut_d"], c["space_flut_um"], c["g_flut_s_per_cm2"]),
                ("mysa", np.full(F, l_mysa), geo["node_d"], c["space_mysa_um"], c["g_mysa_s_per_cm2"])])
    layout = kinds + (inter + kinds) * (n_nodes - 1)
    N = len(layout)
    length = np.stack([k[1] for k in layout], axis=1)
    dax = np.stack([k[2] for k in layout], axis=1)
    space = np.array([k[3] for k in layout]) * um
    gpas = np.array([k[4] for k in layout]) * 1e4          # S/m²
    is_node = np.array([k[0] == "node" for k in layout])
    rho = c["rho_axoplasm_ohm_cm"] * 1e-2                  # Ω·m
    cm_area = c["c_m_uf_per_cm2"] * 1e-2                   # F/m²
    area = math.pi * dax * length
    outer = math.pi * d[:, None] * length                  # myelin per area of the fibre surface
    nl = geo["lamellae"][:, None]
    cmy = np.where(is_node, 0.0, c["myelin_c_uf_per_cm2_per_lamella"] * 1e-2 / (2 * nl) * outer)
    gmy = np.where(is_node, 0.0, c["myelin_g_s_per_cm2_per_lamella"] * 1e4 / (2 * nl) * outer)
    half_ri = rho * (length / 2) / (math.pi * dax ** 2 / 4)
    r = dax / 2
    half_rp = rho * (length / 2) / (math.pi * ((r + space) ** 2 - r ** 2))
    gi = 1.0 / (half_ri[:, :-1] + half_ri[:, 1:])
    gp = 1.0 / (half_rp[:, :-1] + half_rp[:, 1:])
    x = np.cumsum(length, axis=1) - length / 2
    dx = np.diff(x, axis=1)
    # Uniform field E along +x: Ve = −E·x, so the source into j from k is g_jk·(−(x_k − x_j))·E.
    ai, ap = np.zeros((F, N)), np.zeros((F, N))
    ai[:, :-1] -= gi * dx
    ai[:, 1:] += gi * dx
    ap[:, :-1] -= gp * dx
    ap[:, 1:] += gp * dx
    return MrgCable(cm=cm_area * area, gm=np.where(is_node, 0.0, gpas * area),
                    em=np.full((F, N), c["e_internode_mv"] * 1e-3), cmy=cmy, gmy=gmy, gi=gi, gp=gp,
                    ai=ai, ap=ap, x=x, is_node=is_node, node_col=np.flatnonzero(is_node),
                    node_area=area[:, 0].copy(), delta_x=geo["delta_x"],
                    kind=np.array([KINDS.index(k[0]) for k in layout]), outer_area=outer)


@jit()
def node_currents(m, h, p, s, n, gnaf, gnap, gks, gkf, gl, ena, ek, el, g_out, i_out):
    """Nodal channels with the new gates: total conductance (S) and ``Σ g·E`` (A), (n_nodes, F).

    ``n``/``gkf``: the fast K⁺ channel of Gaines 2018 (zero conductance in MRG 2002).
    """
    nn, F = m.shape
    for i in range(nn):
        for f in range(F):
            gna = gnaf[f] * m[i, f] ** 3 * h[i, f] + gnap[f] * p[i, f] ** 3
            gk = gks[f] * s[i, f] + gkf[f] * n[i, f] ** 4
            g_out[i, f] = gna + gk + gl[f]
            i_out[i, f] = gna * ena + gk * ek + gl[f] * el


@jit()
def _x_over_1_minus_exp(x):
    """``x / (1 − exp(−x))``, continuous at 0 (NEURON's vtrap)."""
    if abs(x) < 1e-6:
        return 1.0 + 0.5 * x
    return x / (1.0 - math.exp(-x))


@jit()
def internode_channels(dt, vm, s, q, n, gks, gkf, gq, gl, ek, eq, el, q3, fast_k, hcn, g_out, i_out):
    """Advance the internodal gates of Gaines 2018 one step and return their membrane terms.

    Exponential Euler from the potentials ``vm`` (V, (F, N)) of the previous step, as Brian2
    advances the nodal gates. Gates ``s`` (slow K⁺), ``q`` (HCN), ``n`` (fast K⁺) in place;
    conductances (S, (F, N); zero at nodes, which are skipped) ``gks, gkf, gq, gl``; reversal
    potentials (V) ``ek, eq, el``; ``q3`` the 36 °C-referenced Q10 factor; ``fast_k`` =
    (αA, αB, αC, βA, βB, βC) in ms⁻¹·mV⁻¹ and mV; ``hcn`` = (rate ms⁻¹, half-activation mV,
    slope mV). Writes the total conductance (S) into ``g_out`` and ``Σ g·E`` (A) into ``i_out``.
    A step ``dt`` far longer than every time constant sets each gate to its steady state.
    """
    F, N = vm.shape
    dt_ms = dt * 1e3
    aA, aB, aC, bA, bB, bC = fast_k
    qr, qh, qk = hcn
    for f in range(F):
        for j in range(N):
            if gl[f, j] == 0.0:
                continue
            v = min(max(vm[f, j] * 1e3, -200.0), 200.0)  # as Brian2's clipped vr
            a = q3 * 0.3 / (1.0 + math.exp(-(v + 53.0) / 5.0))
            b = q3 * 0.03 / (1.0 + math.exp(-(v + 90.0)))
            s[f, j] = a / (a + b) + (s[f, j] - a / (a + b)) * math.exp(-dt_ms * (a + b))
            a = q3 * qr * math.exp(-(v - qh) / qk)
            b = q3 * qr * math.exp((v - qh) / qk)
            q[f, j] = a / (a + b) + (q[f, j] - a / (a + b)) * math.exp(-dt_ms * (a + b))
            a = q3 * aA * aC * _x_over_1_minus_exp((v - aB) / aC)
            b = q3 * bA * bC * _x_over_1_minus_exp(-(v - bB) / bC)
            n[f, j] = a / (a + b) + (n[f, j] - a / (a + b)) * math.exp(-dt_ms * (a + b))
            g_s = gks[f, j] * s[f, j]
            g_f = gkf[f, j] * n[f, j] ** 4
            g_q = gq[f, j] * q[f, j]
            g_out[f, j] = g_s + g_f + g_q + gl[f, j]
            i_out[f, j] = (g_s + g_f) * ek + g_q * eq + gl[f, j] * el


@jit()
def step(dt, cm, g_memb, i_memb, cmy, gmy, gi, gp, ai, ap, is_node, node_col, vm, u, src,
         g_ion, i_ion, v_node, scratch):
    """One backward-Euler step of every fibre's double cable, in place.

    ``g_memb``/``i_memb`` (F, N) are the internodal axolemma's conductance (S) and ``Σ g·E``
    (A): MRG's passive ``gm`` and ``gm·em``, or Gaines's channels of this step
    (:func:`internode_channels`); ignored at nodes.
    ``src`` (F,) is the field (V/m) of this step; ``g_ion``/``i_ion`` (n_nodes, F) the nodal
    channels' total conductance (S) and ``Σ g·E`` (A) with this step's gates; ``v_node``
    (n_nodes, F) receives the new nodal potentials; ``scratch`` (N, 10) is work space.
    Block-tridiagonal Thomas algorithm with 2 × 2 blocks over (vm, u).
    """
    F, N = vm.shape
    for f in range(F):
        s = src[f]
        inode = 0
        for j in range(N):
            gl = gi[f, j - 1] if j > 0 else 0.0
            gr = gi[f, j] if j < N - 1 else 0.0
            pl = gp[f, j - 1] if j > 0 else 0.0
            pr = gp[f, j] if j < N - 1 else 0.0
            sg = gl + gr
            a = cm[f, j] / dt
            if is_node[j]:
                d11 = a + g_ion[inode, f] + sg
                d12 = sg
                d21 = 0.0
                d22 = 1.0
                r1 = a * vm[f, j] + i_ion[inode, f] + s * ai[f, j]
                r2 = 0.0
                l21 = 0.0
                l22 = 0.0
                u21 = 0.0
                u22 = 0.0
                inode += 1
            else:
                b = cmy[f, j] / dt
                d11 = a + g_memb[f, j] + sg
                d12 = sg
                d21 = sg
                d22 = b + gmy[f, j] + sg + pl + pr
                r1 = a * vm[f, j] + i_memb[f, j] + s * ai[f, j]
                r2 = b * u[f, j] + s * (ai[f, j] + ap[f, j])
                l21 = -gl
                l22 = -gl - pl
                u21 = -gr
                u22 = -gr - pr
            l11 = -gl
            l12 = -gl
            if j > 0:  # eliminate the lower block with the previous modified diagonal
                q11, q12, q21, q22 = scratch[j - 1, 0], scratch[j - 1, 1], scratch[j - 1, 2], scratch[j - 1, 3]
                m11 = l11 * q11 + l12 * q21
                m12 = l11 * q12 + l12 * q22
                m21 = l21 * q11 + l22 * q21
                m22 = l21 * q12 + l22 * q22
                pu11, pu12, pu21, pu22 = scratch[j - 1, 6], scratch[j - 1, 7], scratch[j - 1, 8], scratch[j - 1, 9]
                d11 -= m11 * pu11 + m12 * pu21
                d12 -= m11 * pu12 + m12 * pu22
                d21 -= m21 * pu11 + m22 * pu21
                d22 -= m21 * pu12 + m22 * pu22
                pr1, pr2 = scratch[j - 1, 4], scratch[j - 1, 5]
                r1 -= m11 * pr1 + m12 * pr2
                r2 -= m21 * pr1 + m22 * pr2
            det = d11 * d22 - d12 * d21
            scratch[j, 0] = d22 / det
            scratch[j, 1] = -d12 / det
            scratch[j, 2] = -d21 / det
            scratch[j, 3] = d11 / det
            scratch[j, 4] = r1
            scratch[j, 5] = r2
            scratch[j, 6] = -gr
            scratch[j, 7] = -gr
            scratch[j, 8] = u21
            scratch[j, 9] = u22
        x1 = 0.0
        x2 = 0.0
        inode = node_col.size - 1
        for j in range(N - 1, -1, -1):
            r1 = scratch[j, 4]
            r2 = scratch[j, 5]
            if j < N - 1:
                r1 -= scratch[j, 6] * x1 + scratch[j, 7] * x2
                r2 -= scratch[j, 8] * x1 + scratch[j, 9] * x2
            x1 = scratch[j, 0] * r1 + scratch[j, 1] * r2
            x2 = scratch[j, 2] * r1 + scratch[j, 3] * r2
            vm[f, j] = x1
            u[f, j] = x2
            if is_node[j]:
                v_node[inode, f] = x1
                inode -= 1
