r"""Current sharing under electrodes with a resistive gel / electrode layer (Robin contact).

Private helper of :mod:`emsim.physiology.field`.

Each electrode is an equipotential conductor at voltage ``V_e`` separated from the skin by a
thin resistive layer (gel plus electrode material) of specific resistance ``r_c = ρ·t``
(Ω·m²). Current crosses that layer vertically, so on the skin under electrode ``e``::

    J(r) = c(r) · (V_e − φ(r)) / r_c,       φ = K J

where ``c`` is the pixel coverage and ``K`` the layered half-space's surface operator
(``Φ̂ = Ĵ/Y_1`` in the wavenumber domain, :mod:`._layered`). This is the "complete electrode
model" of impedance tomography and the mechanism by which a resistive gel flattens the
edge peak of current density (Panescu, Webster & Stratbucker 1994, IEEE TBME 41:681;
Kuhn et al. 2009, Med Eng Phys 31:945). With ``r_c → 0`` the electrode is equipotential
on the skin and the density rises towards the edges (Wiley & Webster 1982); with
``r_c → ∞`` the density is uniform.

Solution: for each electrode, ``(diag(r_c/c) + K) u_e = 1_e`` on the electrode pixels, solved
by Jacobi-preconditioned conjugate gradients (the operator is symmetric positive definite;
``K`` is applied with FFTs on a periodic patch); then ``J = Σ V_e u_e`` with the voltages
chosen so that each electrode carries its prescribed current.
"""

from __future__ import annotations

import numpy as np
from scipy import fft as sfft

__all__ = ["robin_currents"]


def robin_currents(inv_y: np.ndarray, shape: tuple[int, int], owner: np.ndarray, cov: np.ndarray,
                   currents: np.ndarray, r_c: float, pixel_area: float, *, rtol: float = 1e-9,
                   max_iter: int = 2000) -> tuple[np.ndarray, np.ndarray, int]:
    """Current density and electrode voltages for prescribed electrode currents.

    Parameters
    ----------
    inv_y : ndarray
        ``1/Y_1`` on the patch's ``rfft2`` wavenumber grid (``0`` at ``k = 0``), Ω·m.
    shape : (int, int)
        Patch size in pixels.
    owner : ndarray of int, shape ``shape``
        Index of the electrode covering each pixel, ``-1`` where none.
    cov : ndarray, shape ``shape``
        Fraction of each pixel covered by its owner.
    currents : ndarray, shape (n_electrodes,)
        Current into the tissue through each electrode (A), summing to zero.
    r_c : float
        Specific contact resistance in Ω·m² (``0`` for an equipotential electrode).
    pixel_area : float
        Pixel area in m².

    Returns
    -------
    j : ndarray, shape ``shape``
        Pixel-averaged current density into the tissue (A/m²).
    v : ndarray, shape (n_electrodes,)
        Electrode voltages (V) relative to the patch's mean surface potential.
    iterations : int
        Conjugate-gradient iterations used.
    """
    n_e = currents.size
    idx = np.nonzero(owner.ravel() >= 0)[0]
    who = owner.ravel()[idx]
    c = cov.ravel()[idx]
    diag = r_c / c
    k_diag = float(sfft.irfft2(inv_y, s=shape)[0, 0])  # diagonal of the circulant K

    def apply_k(u):  # u: (n_e, n_pix)
        full = np.zeros((u.shape[0], shape[0] * shape[1]))
        full[:, idx] = u
        pot = sfft.irfft2(sfft.rfft2(full.reshape(u.shape[0], *shape)) * inv_y, s=shape)
        return pot.reshape(u.shape[0], -1)[:, idx]

    def apply_a(u):
        return diag * u + apply_k(u)

    precond = 1.0 / (diag + k_diag)
    b = (who[None, :] == np.arange(n_e)[:, None]).astype(float)
    u = b * precond
    r = b - apply_a(u)
    z = precond * r
    p = z.copy()
    rz = np.einsum("ij,ij->i", r, z)
    b_norm = np.sqrt(np.einsum("ij,ij->i", b, b))
    it = 0
    for it in range(1, max_iter + 1):
        ap = apply_a(p)
        alpha = rz / np.einsum("ij,ij->i", p, ap)
        u += alpha[:, None] * p
        r -= alpha[:, None] * ap
        if np.all(np.sqrt(np.einsum("ij,ij->i", r, r)) <= rtol * b_norm):
            break
        z = precond * r
        rz_new = np.einsum("ij,ij->i", r, z)
        p = z + (rz_new / rz)[:, None] * p
        rz = rz_new
    # m[e', e]: current through electrode e' per volt on electrode e.
    m = np.stack([np.bincount(who, weights=u[e] * pixel_area, minlength=n_e) for e in range(n_e)], axis=1)
    v = np.linalg.solve(m, currents)
    j = np.zeros(shape[0] * shape[1])
    j[idx] = v @ u
    return j.reshape(shape), v, it
