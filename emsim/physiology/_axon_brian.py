"""Brian2 engine of :mod:`emsim.physiology.axon`: node cables in one ``NeuronGroup``.

Every Brian2 quantity of emsim lives in this module; callers pass and receive plain SI floats.

Layout and why
--------------
* One ``NeuronGroup`` holds ``n_nodes × n_fibres`` rows in **node-major** order
  (row = node·n_fibres + fibre), so the middle node of every fibre is one contiguous
  ``Subgroup`` and a single ``SpikeMonitor`` on it detects propagated action potentials.
* Axial coupling is a ``Synapses`` object with a summed variable
  (``Iax_post = (v_pre - v_post)·gax_post``), the pattern of shared/reference/peers_and_practice.md
  §2.4. Brian2 has no extracellular mechanism, so the extracellular potential enters as the
  activating-function current ``Σ_nb (Ve_nb − Ve_n)/R_axial`` (Rattay 1986), precomputed per row
  per unit drive (``gext``) and scaled by ``drive · wave(t, k)``. A second drive/wave pair
  (``drive2``, ``wave2``) carries the test pulse of paired-pulse runs with the same compiled code.
* Rate functions see the membrane potential clipped to ±200 mV (``vr``): far-suprathreshold
  drives push end nodes by volts during a pulse, and the exponentials would overflow to NaN.
* The coupling is integrated explicitly, so the step must satisfy ``dt < R_axial·C_node/2``;
  :func:`build` checks it and refuses an unstable step.
* The equation *structure* is fixed per membrane model and every parameter is a per-row
  constant, so the Cython code compiled once is reused from the on-disk cache for any fibre
  set; one network is built per experiment and re-run with ``store``/``restore`` for every
  bisection step (vectorised over all fibres and waveforms at once).
"""

from __future__ import annotations

import numpy as np
from brian2 import (NeuronGroup, Network, SpikeMonitor, Synapses, TimedArray, defaultclock, amp, farad,
                    meter, prefs, second, siemens, volt)

__all__ = ["build", "rest_state", "AxonNetwork", "EQUATIONS", "MRG_GATES", "V_DETECT"]

# Explicitly "cython", not "auto": auto falls back to numpy silently, and HH rates with exprel
# are ~50x slower there (peers_and_practice.md §2.2); better to fail loudly without a compiler.
prefs.codegen.target = "cython"

_COMMON = """
dv/dt = (Iax + Iext - Iion) / cn : volt
Iext = (drive * wave(t, k) + drive2 * wave2(t, k)) * gext : amp
Iax : amp
vr = clip(v, -0.2*volt, 0.2*volt) : volt
drive : volt/metre
drive2 : volt/metre
gext : metre/ohm (constant)
cn : farad (constant)
k : integer (constant)
"""

# MRG 2002 node gates (rates as in McIntyre et al. 2002 / PySONIC MRGNode, mV and ms); shared
# with the double-cable engine (emsim.physiology._axon_mrg), which integrates only the gates here.
MRG_GATES = """
dm/dt = am*(1 - m) - bm*m : 1
dh/dt = ah*(1 - h) - bh*h : 1
dp/dt = ap*(1 - p) - bp*p : 1
ds/dt = as_*(1 - s) - bs*s : 1
am = q_mp*1.86/ms*10.3/exprel(-(vr + 21.4*mV)/(10.3*mV)) : Hz
bm = q_mp*0.086/ms*9.16/exprel((vr + 25.7*mV)/(9.16*mV)) : Hz
ah = q_h*0.062/ms*11.0/exprel((vr + 114.0*mV)/(11.0*mV)) : Hz
bh = q_h*2.3/ms/(1 + exp(-(vr + 31.8*mV)/(13.4*mV))) : Hz
ap = q_mp*0.01/ms*10.2/exprel(-(vr + 27.0*mV)/(10.2*mV)) : Hz
bp = q_mp*0.00025/ms*10.0/exprel((vr + 34.0*mV)/(10.0*mV)) : Hz
as_ = q_s*0.3/ms/(1 + exp(-(vr + 53.0*mV)/(5.0*mV))) : Hz
bs = q_s*0.03/ms/(1 + exp(-(vr + 90.0*mV)/mV)) : Hz
q_mp : 1 (constant)
q_h : 1 (constant)
q_s : 1 (constant)
"""

EQUATIONS = {
    "mrg_node": _COMMON + MRG_GATES + """
Iion = gnaf*m**3*h*(v - ena) + gnap*p**3*(v - ena) + gks*s*(v - ek) + gl*(v - el) : amp
gnaf : siemens (constant)
gnap : siemens (constant)
gks : siemens (constant)
gl : siemens (constant)
ena : volt (constant)
ek : volt (constant)
el : volt (constant)
""",
    # Hodgkin–Huxley 1952 on an unmyelinated cable; rates scaled by phi = 3^((T-6.3)/10).
    "hh_unmyelinated": _COMMON + """
Iion = gna*m**3*h*(v - ena) + gk*n**4*(v - ek) + gl*(v - el) : amp
dm/dt = phi*(am*(1 - m) - bm*m) : 1
dh/dt = phi*(ah*(1 - h) - bh*h) : 1
dn/dt = phi*(an*(1 - n) - bn*n) : 1
am = 0.1/ms*10.0/exprel(-(vr + 40.0*mV)/(10.0*mV)) : Hz
bm = 4.0/ms*exp(-(vr + 65.0*mV)/(18.0*mV)) : Hz
ah = 0.07/ms*exp(-(vr + 65.0*mV)/(20.0*mV)) : Hz
bh = 1.0/ms/(1 + exp(-(vr + 35.0*mV)/(10.0*mV))) : Hz
an = 0.01/ms*10.0/exprel(-(vr + 55.0*mV)/(10.0*mV)) : Hz
bn = 0.125/ms*exp(-(vr + 65.0*mV)/(80.0*mV)) : Hz
gna : siemens (constant)
gk : siemens (constant)
gl : siemens (constant)
ena : volt (constant)
ek : volt (constant)
el : volt (constant)
phi : 1 (constant)
""",
}

_GATES = {"mrg_node": ("m", "h", "p", "s"), "hh_unmyelinated": ("m", "h", "n")}

# Per-row SI parameters the caller provides (see emsim.physiology.axon._row_parameters) and
# the Brian2 unit each one is given here.
_UNITS = {"cn": farad, "gnaf": siemens, "gnap": siemens, "gks": siemens, "gl": siemens,
          "gna": siemens, "gk": siemens, "ena": volt, "ek": volt, "el": volt,
          "q_mp": 1, "q_h": 1, "q_s": 1, "phi": 1}

V_DETECT = -20.0e-3  # V; a propagated action potential at the middle node


class AxonNetwork:
    """A compiled fibre batch, re-runnable with new per-fibre drive amplitudes.

    Parameters are plain SI numpy arrays; see :func:`build`.
    """

    def __init__(self, net, group, monitor, n_fibres, n_nodes, duration_s):
        self._net = net
        self._group = group
        self._monitor = monitor
        self.n_fibres = n_fibres
        self.n_nodes = n_nodes
        self.duration_s = duration_s
        net.store("rest")

    def run(self, drive_v_per_m, drive2_v_per_m=None, *, return_times=False):
        """Run once from rest; return the spike count at each fibre's middle node.

        Parameters
        ----------
        drive_v_per_m : array_like, shape (n_fibres,)
            Amplitude scaling ``wave`` (V/m of uniform field along the fibre, or the unit the
            caller's ``gext`` was built for).
        drive2_v_per_m : array_like, optional
            Amplitude scaling ``wave2`` (paired-pulse test pulse); zero if omitted.
        """
        self._net.restore("rest")
        d1 = np.broadcast_to(np.asarray(drive_v_per_m, dtype=float), (self.n_fibres,))
        d2 = np.zeros(self.n_fibres) if drive2_v_per_m is None else np.broadcast_to(
            np.asarray(drive2_v_per_m, dtype=float), (self.n_fibres,))
        self._group.drive_ = np.tile(d1, self.n_nodes)
        self._group.drive2_ = np.tile(d2, self.n_nodes)
        self._net.run(self.duration_s * second)
        i = np.asarray(self._monitor.i[:])
        counts = np.bincount(i, minlength=self.n_fibres)
        if return_times:
            return counts, i, np.asarray(self._monitor.t_[:])
        return counts


def build(model, rows, gext, gax, rest, waves, wave2=None, *, dt_s, duration_s):
    """Build one network for ``n_fibres`` fibres of ``n_nodes`` nodes each.

    Parameters
    ----------
    model : {"mrg_node", "hh_unmyelinated"}
    rows : dict of str -> ndarray (n_nodes * n_fibres,)
        Per-row membrane parameters in SI (node-major order), plus ``k`` (waveform column).
    gext : ndarray (n_rows,)
        Activating-function current per unit drive (A per V/m, i.e. m/Ω).
    gax : ndarray (n_fibres,)
        Axial conductance between neighbouring nodes of each fibre (S).
    rest : dict of str -> ndarray (n_fibres,)
        Resting potential ``v`` (V) and gate values, per fibre.
    waves, wave2 : ndarray (n_steps, n_waveforms)
        Relative stimulus level sampled every ``dt_s``.
    """
    n_rows = gext.size
    n_fibres = gax.size
    n_nodes = n_rows // n_fibres
    tau_min = float(np.min(rows["cn"] / np.repeat(gax[None, :], n_nodes, 0).ravel()))
    if dt_s >= 0.5 * tau_min:
        raise ValueError(f"dt {dt_s:g} s is unstable for the explicit axial coupling "
                         f"(needs < R_axial*C_node/2 = {0.5 * tau_min:g} s)")
    defaultclock.dt = dt_s * second
    wave = TimedArray(np.ascontiguousarray(waves), dt=dt_s * second, name="wave")
    w2 = wave2 if wave2 is not None else np.zeros_like(waves)
    wave_2 = TimedArray(np.ascontiguousarray(w2), dt=dt_s * second, name="wave2")
    group = NeuronGroup(n_rows, EQUATIONS[model], threshold="v > emsim_v_detect", refractory="v > emsim_v_detect",
                        method="exponential_euler",
                        namespace={"wave": wave, "wave2": wave_2, "emsim_v_detect": V_DETECT * volt}, name="nodes")
    for name, unit in _UNITS.items():
        if name in rows:
            setattr(group, name, rows[name] * unit)
    group.k = rows["k"].astype(np.int64)
    group.gext = gext * meter * amp / volt
    group.v = np.tile(rest["v"], n_nodes) * volt
    for gate in _GATES[model]:
        setattr(group, gate, np.tile(rest[gate], n_nodes))
    syn = Synapses(group, group, "gax : siemens (constant)\nIax_post = gax*(v_pre - v_post) : amp (summed)",
                   method="exact", name="axial")
    node = np.arange(n_nodes - 1)
    fib = np.arange(n_fibres)
    a = (node[:, None] * n_fibres + fib[None, :]).ravel()
    b = a + n_fibres
    syn.connect(i=np.concatenate([a, b]), j=np.concatenate([b, a]))
    g = np.tile(gax, n_nodes - 1)
    syn.gax = np.concatenate([g, g]) * siemens
    mid = n_nodes // 2
    monitor = SpikeMonitor(group[mid * n_fibres:(mid + 1) * n_fibres], name="mid_spikes")
    net = Network(group, syn, monitor)
    return AxonNetwork(net, group, monitor, n_fibres, n_nodes, duration_s)


def rest_state(model, rows, *, dt_s=10e-6, duration_s=0.4):
    """Resting potential and gates of isolated nodes (one row per distinct membrane).

    The rest state does not depend on geometry (every current scales with the node area), so
    it is computed once per membrane parameter set by letting unstimulated, uncoupled nodes
    settle; the slow K+ gate of the MRG node needs a few hundred milliseconds.
    """
    n = rows["cn"].size
    zero = TimedArray(np.zeros((2, 1)), dt=dt_s * second, name="wave")
    zero2 = TimedArray(np.zeros((2, 1)), dt=dt_s * second, name="wave2")
    group = NeuronGroup(n, EQUATIONS[model], method="exponential_euler", dt=dt_s * second,
                        namespace={"wave": zero, "wave2": zero2}, name="settle")
    for name, unit in _UNITS.items():
        if name in rows:
            setattr(group, name, rows[name] * unit)
    group.k = 0
    group.v = -0.075 * volt if model == "mrg_node" else -0.065 * volt
    for gate in _GATES[model]:
        setattr(group, gate, 0.0 if gate in ("m", "p", "s", "n") else 1.0)
    net = Network(group)
    net.run(duration_s * second)
    out = {"v": np.asarray(group.v_[:])}
    for gate in _GATES[model]:
        out[gate] = np.asarray(getattr(group, gate)[:])
    return out
