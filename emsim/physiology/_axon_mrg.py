"""Brian2 engine of the MRG 2002 double-cable fibre (:mod:`emsim.physiology._mrg_cable`).

Every Brian2 object of the double cable lives here; callers pass and receive plain SI floats.

Layout and why
--------------
* The nodal gates (fast and persistent Na⁺, slow K⁺) are a Brian2 ``NeuronGroup`` with the
  same MRG rate equations as the node-only cable (``_axon_brian.MRG_GATES``, Cython,
  exponential Euler), ``n_nodes × n_fibres`` rows in node-major order, so the middle node of
  every fibre is one ``Subgroup`` with a ``SpikeMonitor`` on it.
* The cable itself (axolemma and periaxonal/myelin layers of node, MYSA, FLUT and STIN
  compartments) is advanced by a Brian2 ``NetworkOperation`` scheduled after the gates in the
  ``groups`` slot: one backward-Euler step of the whole fibre (a compiled block-tridiagonal
  solve), which writes the new nodal potentials into the group before the threshold check.
  Brian2's ``Synapses``-with-summed-variables coupling (used by the node-only cable) is
  explicit, and the MYSA's myelin and node–MYSA time constants (0.1 ns – 0.05 µs) would force
  sub-nanosecond steps; Brian2's own implicit cable solver (``SpatialNeuron``) handles one
  single-layer cable per object and cannot represent the periaxonal layer.
* The resting state is found by letting the unstimulated fibres settle (slow K⁺ ~30 ms) with
  a coarse step, which the implicit solve allows; it is passed in when known.
* **Gaines 2018 variants** (``node["rates"]`` and ``internode`` given): the nodal group gains
  Gaines's fast K⁺ gate ``n`` and the variant's Na⁺ rate constants (equations written from
  ``models/fibres/gaines2018.json``; one compiled code per variant), and the MYSA/FLUT/STIN
  axolemma carries slow K⁺, fast K⁺, HCN and leak channels. Their gates are advanced in the
  same compiled kernel pass as the cable step (:func:`emsim.physiology._mrg_cable.internode_channels`):
  ten internodal compartments per node would make a Brian2 group ten times the nodal one for
  three gates each, and their conductances enter the implicit solve directly.
"""

from __future__ import annotations

import numpy as np
from brian2 import Clock, Network, NetworkOperation, NeuronGroup, SpikeMonitor, second, volt

from emsim.physiology import _mrg_cable as mc
from emsim.physiology._axon_brian import MRG_GATES, V_DETECT

__all__ = ["MrgNetwork", "GATES", "INTERNODE_GATES", "node_gate_equations"]

GATES = ("m", "h", "p", "s")
INTERNODE_GATES = ("s_i", "q_i", "n_i")   # Gaines's internodal slow K⁺, HCN, fast K⁺ (F, N)
_STATE_V = """
v : volt
vr = clip(v, -0.2*volt, 0.2*volt) : volt
"""
SETTLE_DT = 25e-6   # s; rest-state run (backward Euler is stable at any step)
SETTLE_S = 0.25     # s; ≈ 8 time constants of the slow K⁺ gate at rest
SETTLE_HCN_S = 0.5  # s; Gaines's HCN gate has τ ≈ 30–50 ms at rest


def _plus(b_mv):
    """``+ b*mV`` written so that Brian2's parser sees no ``+ -``."""
    return f"+ {b_mv!r}*mV" if b_mv >= 0 else f"- {-b_mv!r}*mV"


def node_gate_equations(rates=None):
    """Brian2 equations of the nodal gates: MRG 2002's, or Gaines 2018's with ``rates``.

    ``rates`` maps ``alpha_mp, beta_mp, alpha_m, beta_m, alpha_h, beta_h, alpha_n, beta_n`` to
    NEURON's (A, B, C) constants (``models/fibres/gaines2018.json``); the vtrap forms
    ``A·(v+B)/(1−exp(−(v+B)/C))`` are written with Brian2's ``exprel``.
    """
    if rates is None:
        return MRG_GATES + _STATE_V

    def vtrap(key, q, sign):  # sign −1: A(v+B)/(1−e^{−(v+B)/C}); +1: A(−(v+B))/(1−e^{(v+B)/C})
        a, b, c = rates[key]
        neg = "-" if sign < 0 else ""
        return f"{q}*{a!r}/ms*{c!r}/exprel({neg}(vr {_plus(b)})/({c!r}*mV))"

    an, bn = rates["alpha_n"], rates["beta_n"]
    bh = rates["beta_h"]
    return f"""
dm/dt = am*(1 - m) - bm*m : 1
dh/dt = ah*(1 - h) - bh*h : 1
dp/dt = ap*(1 - p) - bp*p : 1
ds/dt = as_*(1 - s) - bs*s : 1
dn/dt = an*(1 - n) - bn*n : 1
am = {vtrap("alpha_m", "q_mp", -1)} : Hz
bm = {vtrap("beta_m", "q_mp", 1)} : Hz
ah = {vtrap("alpha_h", "q_h", 1)} : Hz
bh = q_h*{bh[0]!r}/ms/(1 + exp(-(vr {_plus(bh[1])})/({bh[2]!r}*mV))) : Hz
ap = {vtrap("alpha_mp", "q_mp", -1)} : Hz
bp = {vtrap("beta_mp", "q_mp", 1)} : Hz
as_ = q_s*0.3/ms/(1 + exp(-(vr + 53.0*mV)/(5.0*mV))) : Hz
bs = q_s*0.03/ms/(1 + exp(-(vr + 90.0*mV)/mV)) : Hz
an = q_s*{an[0]!r}/ms*{an[2]!r}/exprel(-(vr {_plus(-an[1])})/({an[2]!r}*mV)) : Hz
bn = q_s*{bn[0]!r}/ms*{bn[2]!r}/exprel((vr {_plus(-bn[1])})/({bn[2]!r}*mV)) : Hz
q_mp : 1 (constant)
q_h : 1 (constant)
q_s : 1 (constant)
""" + _STATE_V


class MrgNetwork:
    """A batch of MRG fibres, re-runnable with new per-fibre drive amplitudes.

    Parameters
    ----------
    cab : MrgCable
        Compartment constants of the F fibres.
    node : dict
        Nodal channel conductances (S, arrays (F,)) ``gnaf, gnap, gks, gl`` (and Gaines's fast
        K⁺ ``gkf``), reversal potentials (V, floats) ``ena, ek, el``, rate factors
        ``q_mp, q_h, q_s``, and for Gaines's variants the gate ``rates``
        (see :func:`node_gate_equations`).
    waves, waves2 : ndarray (n_steps, n_waveforms)
        Relative stimulus level per step; fibre ``f`` uses column ``k[f]``.
    k : ndarray (F,) int
    dt_s, duration_s : float
    rest : dict, optional
        ``vm``, ``u`` (F, N), ``v`` and the gates (n_nodes, F), and with ``internode`` its
        gates ``s_i, q_i, n_i`` (F, N); settled here if omitted.
    monitor_all : bool
        Record spikes at every node (row = node·F + fibre), not only the middle one.
    internode : dict, optional
        Gaines's internodal channels: conductances (S, (F, N), zero at nodes) ``gks, gkf, gq,
        gl``, reversal potentials (V) ``ek, eq, el``, ``q3``, ``fast_k`` and ``hcn`` (see
        :func:`emsim.physiology._mrg_cable.internode_channels`). Without it the internodal
        axolemma is MRG's passive ``gm``/``em``.
    v_init : float, optional
        Potential (V) every compartment starts the rest-state settling from (MRG: ``em``).
    """

    def __init__(self, cab, node, waves, waves2, k, *, dt_s, duration_s, rest=None, monitor_all=False,
                 internode=None, v_init=None):
        self.cab = cab
        F, N = cab.shape
        self.n_fibres = F
        self.n_nodes = cab.node_col.size
        self.duration_s = duration_s
        self._waves = np.ascontiguousarray(waves, float)
        self._waves2 = np.zeros_like(self._waves) if waves2 is None else np.ascontiguousarray(waves2, float)
        self._k = np.asarray(k, int)
        self._node = node
        self._gates = GATES + (("n",) if "rates" in node else ())
        self._dt = self._dt_run = dt_s
        self._clock = Clock(dt=dt_s * second, name="mrg_clock")
        nn = self.n_nodes
        group = NeuronGroup(nn * F, node_gate_equations(node.get("rates")), threshold="v > emsim_v_detect",
                            refractory="v > emsim_v_detect", method="exponential_euler", clock=self._clock,
                            namespace={"emsim_v_detect": V_DETECT * volt}, name="mrg_nodes")
        for q in ("q_mp", "q_h", "q_s"):
            setattr(group, q, node[q])
        self._group = group
        # Brian2's runtime arrays persist through store/restore: take the views once.
        self._views = {name: group.variables[name].get_value().reshape(nn, F) for name in ("v",) + self._gates}
        self._n_node = self._views["n"] if "n" in self._views else np.zeros((nn, F))
        self._gkf = np.asarray(node.get("gkf", np.zeros(F)), float)
        mid = nn // 2
        self._monitor = SpikeMonitor(group if monitor_all else group[mid * F:(mid + 1) * F], name="mrg_spikes")
        op = NetworkOperation(self._step, clock=self._clock, when="groups", order=1, name="mrg_cable")
        self._net = Network(group, self._monitor, op)
        self._vm = np.zeros((F, N))
        self._u = np.zeros((F, N))
        self._internode = internode
        if internode is None:
            self._g_memb = cab.gm
            self._i_memb = cab.gm * cab.em
            self._igates = {}
        else:
            self._g_memb = np.zeros((F, N))
            self._i_memb = np.zeros((F, N))
            self._igates = {name: np.zeros((F, N)) for name in INTERNODE_GATES}
        self._v_init = float(cab.em[0, 0]) if v_init is None else float(v_init)
        self._scratch = np.zeros((N, 10))
        self._g = np.zeros((nn, F))
        self._i = np.zeros((nn, F))
        self._drive = np.zeros(F)
        self._drive2 = np.zeros(F)
        self._n = 0
        self._stimulate = False
        if rest is None:
            rest = self._settle()
        self._rest = {key: np.array(val, float) for key, val in rest.items()}
        self._set_state(self._rest)
        self._net.store("rest")
        self._t0 = float(self._clock.t_[:])

    # -- state ------------------------------------------------------------------------------
    def _set_state(self, st):
        self._vm[:] = st["vm"]
        self._u[:] = st["u"]
        for name in ("v",) + self._gates:
            self._views[name][:] = st[name]
        for name, arr in self._igates.items():
            arr[:] = st[name]

    def state(self) -> dict:
        """Current cable and gate state (copies), in the layout ``rest=`` accepts."""
        out = {"vm": self._vm.copy(), "u": self._u.copy()}
        out.update({name: self._views[name].copy() for name in ("v",) + self._gates})
        out.update({name: arr.copy() for name, arr in self._igates.items()})
        return out

    def _internode_step(self, dt):
        if self._internode is None:
            return
        c, g = self._internode, self._igates
        mc.internode_channels(dt, self._vm, g["s_i"], g["q_i"], g["n_i"], c["gks"], c["gkf"], c["gq"], c["gl"],
                              c["ek"], c["eq"], c["el"], c["q3"], c["fast_k"], c["hcn"], self._g_memb, self._i_memb)

    def _settle(self):
        shape = (self.n_nodes, self.n_fibres)
        st = {"vm": np.full(self.cab.shape, self._v_init), "u": np.zeros(self.cab.shape),
              "v": np.full(shape, self._v_init), "m": np.zeros(shape), "h": np.ones(shape), "p": np.zeros(shape),
              "s": np.zeros(shape), "n": np.zeros(shape)}
        st.update({name: np.zeros(self.cab.shape) for name in self._igates})
        self._set_state(st)
        self._internode_step(1e3)  # a step far beyond every time constant: gates at their steady state
        self._clock.dt = SETTLE_DT * second
        self._dt = SETTLE_DT
        self._stimulate = False
        self._net.run((SETTLE_S if self._internode is None else SETTLE_HCN_S) * second)
        self._clock.dt = self._dt_run * second
        self._dt = self._dt_run
        return self.state()

    # -- one time step ----------------------------------------------------------------------
    def _step(self):
        n = self._n
        if self._stimulate and n < self._waves.shape[0]:
            src = self._drive * self._waves[n, self._k] + self._drive2 * self._waves2[n, self._k]
        else:
            src = np.zeros(self.n_fibres)
        nd, v = self._node, self._views
        mc.node_currents(v["m"], v["h"], v["p"], v["s"], self._n_node, nd["gnaf"], nd["gnap"], nd["gks"], self._gkf,
                         nd["gl"], nd["ena"], nd["ek"], nd["el"], self._g, self._i)
        self._internode_step(self._dt)
        c = self.cab
        mc.step(self._dt, c.cm, self._g_memb, self._i_memb, c.cmy, c.gmy, c.gi, c.gp, c.ai, c.ap, c.is_node,
                c.node_col, self._vm, self._u, src, self._g, self._i, v["v"], self._scratch)
        self._n = n + 1

    # -- runs -------------------------------------------------------------------------------
    def run(self, drive_v_per_m, drive2_v_per_m=None, *, return_times=False):
        """Run once from rest; return the spike count at each fibre's middle node."""
        self._net.restore("rest")
        self._set_state(self._rest)
        self._drive = np.broadcast_to(np.asarray(drive_v_per_m, float), (self.n_fibres,)).copy()
        self._drive2 = (np.zeros(self.n_fibres) if drive2_v_per_m is None else
                        np.broadcast_to(np.asarray(drive2_v_per_m, float), (self.n_fibres,)).copy())
        self._n = 0
        self._stimulate = True
        self._net.run(self.duration_s * second)
        i = np.asarray(self._monitor.i[:])
        counts = np.bincount(i % self.n_fibres, minlength=self.n_fibres)
        if return_times:
            return counts, i, np.asarray(self._monitor.t_[:]) - self._t0
        return counts
