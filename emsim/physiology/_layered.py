r"""Transfer-matrix (admittance recursion) solution of Laplace's equation in a layered half-space.

Private helper of :mod:`emsim.physiology.field`. Everything here works on arrays of in-plane
wavenumbers and knows nothing about electrodes or grids.

Method (shared/reference/nerve_recruitment_discomfort.md §2.3, [computed, cross-checked] there):
in layer ``i`` with conductivities ``(σx, σy, σz)`` a plane-wave component
``exp(i(kx x + ky y))`` of the potential varies with depth as ``exp(±κ_i z)``,
``κ_i = sqrt((σx kx² + σy ky²)/σz)`` — the coordinate scaling that turns the anisotropic layer into
an isotropic one. With ``s_i = σz κ_i`` (the isotropic ``σk``), the input admittance seen from the
top of layer ``i`` is obtained by the upward recursion::

    Y_N = s_N                                       (bottom half-space)
    Y_i = s_i (Y_{i+1} + s_i T_i) / (s_i + Y_{i+1} T_i),   T_i = tanh(κ_i t_i)

and the surface potential is ``Φ(k, 0) = ĵ(k)/Y_1`` for an injected current density ``ĵ``.
Inside layer ``i`` (``dz`` measured from its top)::

    Φ(dz) = Φ_top · ½[(1 − R_i) e^{κ dz} + (1 + R_i) e^{−κ dz}],    R_i = Y_i/s_i

where ``(1 − R_i) e^{κ dz}`` is evaluated as
``(s_i − Y_{i+1}) / (s_i + Y_{i+1} T_i) · 2 e^{κ(dz − 2t)} / (1 + e^{−2κt})`` so that no
exponential overflows. ``dΦ/dz`` and ``d²Φ/dz² = κ² Φ`` follow from the same two terms.

The ``k = 0`` component (``κ = 0``) is the mean potential of a net-zero current pattern; callers
set it to zero (a pair of electrodes carries no net current).
"""

from __future__ import annotations

import numpy as np

__all__ = ["LayerStack", "LayerKernel", "kappa", "admittances", "axisymmetric_potential"]


class LayerStack:
    """Thicknesses and conductivity triples of a layered half-space, as plain arrays.

    Parameters
    ----------
    thickness : sequence of float
        Layer thicknesses in m, top first; the last layer is a half-space (its entry is ignored).
    sigma : array_like, shape (n_layers, 3)
        ``(σx, σy, σz)`` per layer in S/m: x along the muscle fibres, y across, z into depth.
    """

    def __init__(self, thickness, sigma):
        self.thickness = np.asarray(thickness, dtype=float)
        self.sigma = np.asarray(sigma, dtype=float).reshape(-1, 3)
        self.n = self.sigma.shape[0]
        # Depth of the top of each layer; the half-space extends to +inf.
        self.tops = np.concatenate([[0.0], np.cumsum(self.thickness[:-1])])

    def layer_of(self, z):
        """Index of the layer containing depth ``z`` (a boundary belongs to the deeper layer)."""
        return np.searchsorted(self.tops, z, side="right") - 1


def kappa(stack: LayerStack, kx, ky):
    """``κ_i(kx, ky)`` for every layer: array of shape ``(n_layers,) + broadcast(kx, ky).shape``."""
    sx, sy, sz = (stack.sigma[:, j].reshape((-1,) + (1,) * np.ndim(kx)) for j in range(3))
    return np.sqrt((sx * kx ** 2 + sy * ky ** 2) / sz)


def admittances(stack: LayerStack, kx, ky):
    """Input admittance at the top of every layer.

    Returns
    -------
    kap : ndarray, shape (n_layers, ...)
        ``κ_i``.
    s : ndarray, shape (n_layers, ...)
        ``σz,i κ_i``.
    y : ndarray, shape (n_layers, ...)
        ``Y_i``; ``y[0]`` is the surface admittance (A/V per m of wavelength: ``Φ = ĵ/Y``).
    """
    kap = kappa(stack, kx, ky)
    s = stack.sigma[:, 2].reshape((-1,) + (1,) * (kap.ndim - 1)) * kap
    y = np.empty_like(s)
    y[-1] = s[-1]
    for i in range(stack.n - 2, -1, -1):
        t = np.tanh(kap[i] * stack.thickness[i])
        y[i] = s[i] * (y[i + 1] + s[i] * t) / _nonzero(s[i] + y[i + 1] * t)
    return kap, s, y


def _nonzero(a):
    # Only the k = 0 entry can vanish; its value is discarded by the callers.
    return np.where(a == 0.0, 1.0, a)


class LayerKernel:
    """Surface admittance and depth factors of a layer stack on one wavenumber grid.

    Everything that does not depend on the depth (the factors across whole layers above the
    evaluation layer) is computed once, so a new depth costs two exponentials per wavenumber.
    """

    def __init__(self, stack: LayerStack, kx, ky):
        self.stack = stack
        kap, s, y = admittances(stack, kx, ky)
        self.kap, self.s, self.y = kap, s, y
        y0 = y[0]
        self.inv_y = np.where(y0 > 0, 1.0 / _nonzero(y0), 0.0)
        n = stack.n
        self.grow = []    # a = grow_i · exp(κ(dz − 2t_i))
        self.decay = []   # b = decay_i · exp(−κ dz)
        self.top_ratio = []  # Φ(top of layer i)/Φ(0)
        ratio = np.ones_like(kap[0])
        zero = kap[0] == 0.0
        for i in range(n):
            self.top_ratio.append(ratio)
            k = kap[i]
            decay = np.where(zero, 1.0, 0.5 * (1.0 + y[i] / _nonzero(s[i])))
            if i == n - 1:
                grow = np.zeros_like(k)
            else:
                t_i = stack.thickness[i]
                e2 = np.exp(-2.0 * k * t_i)
                tanh = (1.0 - e2) / (1.0 + e2)
                grow = np.where(zero, 0.0, (s[i] - y[i + 1]) / _nonzero(s[i] + y[i + 1] * tanh) / (1.0 + e2))
                ratio = ratio * (grow * np.exp(-k * t_i) + decay * np.exp(-k * t_i))
            self.grow.append(grow)
            self.decay.append(decay)

    def transfer(self, z: float, kind: str = "phi", layer: int | None = None):
        """``Φ(k, z)/Φ(k, 0)`` (``kind="phi"``), its z-derivative (``"dz"``) or second
        z-derivative (``"dzz"``) at depth ``z`` (m).

        A depth on a boundary belongs to the deeper layer unless ``layer`` names the layer to
        evaluate in (the z-derivatives jump at boundaries because σz does).
        """
        stack = self.stack
        layer = int(stack.layer_of(z)) if layer is None else int(layer)
        k = self.kap[layer]
        dz = z - stack.tops[layer]
        b = self.decay[layer] * np.exp(-k * dz)
        if layer < stack.n - 1:
            a = self.grow[layer] * np.exp(k * (dz - 2.0 * stack.thickness[layer]))
        else:
            a = 0.0
        r = self.top_ratio[layer]
        if kind == "phi":
            return r * (a + b)
        if kind == "dz":
            return r * k * (a - b)
        if kind == "dzz":
            return r * k ** 2 * (a + b)
        raise ValueError(f"unknown kind {kind!r}")


def axisymmetric_potential(stack: LayerStack, radius: float, r, z: float, current: float = 1.0):
    r"""Potential of one uniform-current disc (or a point, ``radius=0``) on isotropic layers.

    The Hankel form ``φ(r, z) = ∫₀^∞ Φ(k, z) J0(kr) k dk`` with surface flux
    ``ĵ(k) = (I/2π)·2J1(ka)/(ka)`` (reference §2.3), integrated by adaptive quadrature. It is
    an independent route to the same layered solution (no grid, no periodic images) and serves
    as the check of the FFT solver. Needs ``z > 0`` (the surface integral of a point converges
    too slowly for quadrature) and isotropic layers.
    """
    from scipy import integrate, special

    if z <= 0:
        raise ValueError("axisymmetric_potential needs z > 0")
    if not np.allclose(stack.sigma[:, 0], stack.sigma[:, 1]):
        raise ValueError("axisymmetric_potential needs in-plane isotropic layers")

    def integrand(k, rr):
        kk = np.atleast_1d(k)
        kern = LayerKernel(stack, kk, np.zeros_like(kk))
        ka = kk * radius
        flux = current / (2 * np.pi) * (np.where(ka > 0, 2 * special.j1(ka) / np.where(ka > 0, ka, 1.0), 1.0))
        phi = flux / kern.y[0] * kern.transfer(z) * special.j0(kk * rr) * kk
        return float(phi[0])

    k_max = 60.0 / z
    out = []
    for rr in np.atleast_1d(np.asarray(r, dtype=float)):
        # Split at the oscillation scale so quad sees a few zeros of J0 per interval.
        period = 2 * np.pi / max(rr, radius, z, 1e-9)
        edges = np.unique(np.concatenate([np.arange(0.0, k_max, 4 * period), [k_max]]))
        total = 0.0
        for lo, hi in zip(edges[:-1], edges[1:]):
            total += integrate.quad(integrand, lo, hi, args=(rr,), limit=200, epsabs=0, epsrel=1e-10)[0]
        out.append(total)
    return np.asarray(out).reshape(np.shape(r))
