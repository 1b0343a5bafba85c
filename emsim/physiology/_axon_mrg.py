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
"""

from __future__ import annotations

import numpy as np
from brian2 import Clock, Network, NetworkOperation, NeuronGroup, SpikeMonitor, second, volt

from emsim.physiology import _mrg_cable as mc
from emsim.physiology._axon_brian import MRG_GATES, V_DETECT

__all__ = ["MrgNetwork", "GATES"]

GATES = ("m", "h", "p", "s")
_NODE_EQUATIONS = MRG_GATES + """
v : volt
vr = clip(v, -0.2*volt, 0.2*volt) : volt
"""
SETTLE_DT = 25e-6   # s; rest-state run (backward Euler is stable at any step)
SETTLE_S = 0.25     # s; ≈ 8 time constants of the slow K⁺ gate at rest


class MrgNetwork:
    """A batch of MRG fibres, re-runnable with new per-fibre drive amplitudes.

    Parameters
    ----------
    cab : MrgCable
        Compartment constants of the F fibres.
    node : dict
        Nodal channel conductances (S, arrays (F,)) ``gnaf, gnap, gks, gl``, reversal potentials
        (V, floats) ``ena, ek, el`` and rate factors ``q_mp, q_h, q_s``.
    waves, waves2 : ndarray (n_steps, n_waveforms)
        Relative stimulus level per step; fibre ``f`` uses column ``k[f]``.
    k : ndarray (F,) int
    dt_s, duration_s : float
    rest : dict, optional
        ``vm``, ``u`` (F, N) and ``v`` and the gates (n_nodes, F); settled here if omitted.
    monitor_all : bool
        Record spikes at every node (row = node·F + fibre), not only the middle one.
    """

    def __init__(self, cab, node, waves, waves2, k, *, dt_s, duration_s, rest=None, monitor_all=False):
        self.cab = cab
        F, N = cab.shape
        self.n_fibres = F
        self.n_nodes = cab.node_col.size
        self.duration_s = duration_s
        self._waves = np.ascontiguousarray(waves, float)
        self._waves2 = np.zeros_like(self._waves) if waves2 is None else np.ascontiguousarray(waves2, float)
        self._k = np.asarray(k, int)
        self._node = node
        self._dt = self._dt_run = dt_s
        self._clock = Clock(dt=dt_s * second, name="mrg_clock")
        nn = self.n_nodes
        group = NeuronGroup(nn * F, _NODE_EQUATIONS, threshold="v > emsim_v_detect", refractory="v > emsim_v_detect",
                            method="exponential_euler", clock=self._clock,
                            namespace={"emsim_v_detect": V_DETECT * volt}, name="mrg_nodes")
        for q in ("q_mp", "q_h", "q_s"):
            setattr(group, q, node[q])
        self._group = group
        # Brian2's runtime arrays persist through store/restore: take the views once.
        self._views = {name: group.variables[name].get_value().reshape(nn, F) for name in ("v",) + GATES}
        mid = nn // 2
        self._monitor = SpikeMonitor(group if monitor_all else group[mid * F:(mid + 1) * F], name="mrg_spikes")
        op = NetworkOperation(self._step, clock=self._clock, when="groups", order=1, name="mrg_cable")
        self._net = Network(group, self._monitor, op)
        self._vm = np.zeros((F, N))
        self._u = np.zeros((F, N))
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
    def _array(self, name):
        return self._views[name]

    def _set_state(self, st):
        self._vm[:] = st["vm"]
        self._u[:] = st["u"]
        for name in ("v",) + GATES:
            self._array(name)[:] = st[name]

    def state(self) -> dict:
        """Current cable and gate state (copies), in the layout ``rest=`` accepts."""
        out = {"vm": self._vm.copy(), "u": self._u.copy()}
        out.update({name: self._array(name).copy() for name in ("v",) + GATES})
        return out

    def _settle(self):
        shape = (self.n_nodes, self.n_fibres)
        v0 = float(self.cab.em[0, 0])  # MRG's v_init: every compartment at the internodal rest
        self._set_state({"vm": self.cab.em.copy(), "u": np.zeros(self.cab.shape), "v": np.full(shape, v0),
                         "m": np.zeros(shape), "h": np.ones(shape), "p": np.zeros(shape), "s": np.zeros(shape)})
        self._clock.dt = SETTLE_DT * second
        self._dt = SETTLE_DT
        self._stimulate = False
        self._net.run(SETTLE_S * second)
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
        mc.node_currents(v["m"], v["h"], v["p"], v["s"], nd["gnaf"], nd["gnap"], nd["gks"], nd["gl"],
                         nd["ena"], nd["ek"], nd["el"], self._g, self._i)
        c = self.cab
        mc.step(self._dt, c.cm, c.gm, c.em, c.cmy, c.gmy, c.gi, c.gp, c.ai, c.ap, c.is_node, c.node_col,
                self._vm, self._u, src, self._g, self._i, v["v"], self._scratch)
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
