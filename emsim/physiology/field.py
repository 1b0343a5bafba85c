r"""Layered volume conductor under surface electrodes: potential, field, activating drive, skin current.

Geometry and units
------------------
SI throughout, everything **per ampere** of stimulating current (the problem is linear; scale
by the pulse current). Coordinates: ``x`` along the muscle fibres, ``y`` across them in the
skin plane, ``z`` depth below the skin surface (``z ≥ 0``). The tissue is a stack of parallel
layers (skin / subcutaneous fat / anisotropic muscle / bone half-space, :class:`Layers`), with
the electrodes on the insulated surface ``z = 0``. An electrode with ``weight`` +1 injects the
current into the tissue, one with −1 takes it back (the stimulator's output for the first
phase; the second phase of a biphasic pulse is the same field with the opposite sign).

Method
------
Quasi-static volume conduction ``∇·(σ∇φ) = 0`` with current (Neumann) conditions under the
electrodes and insulation elsewhere (reference §2.1). The surface current density is
transformed with a 2-D FFT over a periodic square grid; each wavenumber ``(kx, ky)`` is carried
through the layers by the admittance recursion of :mod:`._layered` (reference §2.3), the
anisotropic muscle handled by the coordinate scaling ``κ = √((σx kx² + σy ky²)/σz)``. Potential,
field components and second derivatives at any depth are inverse FFTs of the surface solution
times exact depth factors (derivatives are taken spectrally, so the activating function has
no finite-difference error at grid resolution).

How current spreads under each electrode is solved separately on a finer patch around the
electrodes (:mod:`._contact`): the electrode conductor is equipotential behind a resistive
gel/electrode layer (:class:`Gel`), which gives the edge concentration of current density and
its flattening by resistive gels (Panescu 1994; Kuhn 2009), or uniform current density with
``Gel.uniform()``.

Checks (``tests/physiology/test_field.py``): point source and uniform disc on a homogeneous
half-space (closed forms), anisotropic half-space (closed form), the two-layer image series
and the independent Hankel-transform route of :func:`._layered.axisymmetric_potential`.

Accuracy and cost
-----------------
An FFT solution is periodic: it is the true solution plus images one period away, which for
a muscle layer over poorly conducting bone decay slowly (sheet-like spread) and bias the deep
field by several per cent even on a 0.4 m domain. They are removed by a correction computed
with two cheap coarse solves of the same source (8 mm pixels; one of the same period, one four
times wider; their difference is the image field). With it the default domain (1 mm pixels,
side max(0.3 m, 2 × the electrode reach)) agrees with closed forms to ≈ 0.1–0.3 % and with a
domain four times as large to < 0.5 % in the field at 3 cm into muscle and ≈ 1 % in absolute
potential (``tests/physiology/test_field.py``). Points beyond the fine grid (up to
:attr:`FieldSolution.reach_m`, about twice as far) are read from the coarse wide grid: there
the field is smooth and differences along a fibre are within a few per cent.

In-plane values between pixels come from cubic splines on the grid; depths are exact for up
to :attr:`FieldSolution.max_exact_depths` distinct depths per call, otherwise interpolated
(cubic, within a layer) between cached depth planes graded with depth (error ≈ 1e-4 of the
peak). Planes are cached per solution (single precision spline coefficients) and
:func:`solve` returns the cached solution for repeated arguments. Typical costs on 2 cores
(``benchmarks/bench_field.py``): a solve 12 ms (``Gel.uniform()``) to 0.16 s (hydrogel
contact, 5 × 9 cm pair); the first evaluation at a new depth ≈ 10 ms per field component;
then ~1 µs per point. :func:`solve_batch` superposes single-electrode solutions, so 1 000
candidate configurations drawn from a few electrode footprints cost a few solves.

For cable models use :meth:`FieldSolution.potential_along` (points from :func:`fibre_points`);
for terminal drive ``E·Δx`` use :meth:`FieldSolution.electric_field_along`; for the
skin afferents and the discomfort model use :meth:`FieldSolution.skin_current_density`.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from dataclasses import dataclass, field as dc_field, replace
from functools import lru_cache
from typing import Literal, Sequence

import numpy as np
from scipy import fft as sfft
from scipy import ndimage

from emsim.physiology._contact import robin_currents
from emsim.physiology._field_cache import PLANES as _PLANES
from emsim.physiology._geometry import coverage, footprints_overlap, half_extent
from emsim.physiology._layered import LayerKernel
from emsim.physiology._tissues import Build, Gel, Layer, Layers, tissue_conductivity
from emsim.physiology.errors import PhysiologyInputError

__all__ = ["Layer", "Layers", "Gel", "Build", "Electrode", "Electrodes", "Grid", "FieldSolution",
           "SkinCurrentDensity", "ElectrodeContact", "solve", "solve_batch", "solve_channel", "tissue_conductivity",
           "fibre_points", "clear_cache", "cache_info", "set_cache_budget"]

Axis = Literal["x", "y", "z"]


# ============================================================================ electrodes

@dataclass(frozen=True)
class Electrode:
    """One surface electrode.

    Parameters
    ----------
    shape : {"rectangle", "circle"}
    x_m, y_m : float
        Centre (m); x along the muscle fibres.
    length_m, width_m : float
        Rectangle sides (m): ``length_m`` along the rectangle's own axis, which points at
        ``angle_rad`` from the fibres (x).
    diameter_m : float
        Circle diameter (m).
    angle_rad : float
        Rotation of a rectangle's length axis from x.
    weight : float
        Share of the stimulating current injected into the tissue here (+1 injects, −1
        withdraws; weights of a set sum to zero).
    """

    shape: Literal["rectangle", "circle"]
    x_m: float = 0.0
    y_m: float = 0.0
    length_m: float = 0.0
    width_m: float = 0.0
    diameter_m: float = 0.0
    angle_rad: float = 0.0
    weight: float = 1.0

    @property
    def area_m2(self) -> float:
        if self.shape == "circle":
            return math.pi * self.diameter_m ** 2 / 4
        return self.length_m * self.width_m

    def half_extent(self) -> tuple[float, float]:
        return half_extent(self.shape, self.x_m, self.y_m, self.length_m, self.width_m,
                           self.diameter_m, self.angle_rad)

    def coverage(self, xs: np.ndarray, ys: np.ndarray) -> np.ndarray:
        return coverage(self.shape, self.x_m, self.y_m, self.length_m, self.width_m,
                        self.diameter_m, self.angle_rad, xs, ys)


def _span(electrodes: Sequence[Electrode]) -> tuple[float, float, float, float]:
    boxes = [(e.x_m - hx, e.x_m + hx, e.y_m - hy, e.y_m + hy)
             for e in electrodes for hx, hy in [e.half_extent()]]
    b = np.array(boxes)
    return float(b[:, 0].min()), float(b[:, 1].max()), float(b[:, 2].min()), float(b[:, 3].max())


def _check_positive(value, path):
    if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
        raise PhysiologyInputError("electrode size must be positive (zero-area electrode)", path=path,
                                   value=value, allowed="> 0 m")


@dataclass(frozen=True)
class Electrodes:
    """A set of surface electrodes (usually a pair) whose weights sum to zero.

    Raises :class:`~emsim.physiology.errors.PhysiologyInputError` naming the field for an
    unknown shape, a zero-area (or negative, non-finite) size, overlapping footprints, fewer
    than two electrodes, or weights that do not sum to zero.
    """

    electrodes: tuple[Electrode, ...]

    def __post_init__(self):
        es = tuple(self.electrodes)
        object.__setattr__(self, "electrodes", es)
        if len(es) < 2:
            raise PhysiologyInputError("at least two electrodes are needed (current must return)",
                                       path="electrodes", value=len(es), allowed=">= 2")
        for i, e in enumerate(es):
            if e.shape == "circle":
                _check_positive(e.diameter_m, f"electrodes[{i}].diameter_m")
            elif e.shape == "rectangle":
                _check_positive(e.length_m, f"electrodes[{i}].length_m")
                _check_positive(e.width_m, f"electrodes[{i}].width_m")
            else:
                raise PhysiologyInputError("unknown electrode shape", path=f"electrodes[{i}].shape",
                                           value=e.shape, allowed="rectangle, circle")
            for attr in ("x_m", "y_m", "angle_rad", "weight"):
                v = getattr(e, attr)
                if not (isinstance(v, (int, float)) and math.isfinite(v)):
                    raise PhysiologyInputError("must be a finite number", path=f"electrodes[{i}].{attr}",
                                               value=v, allowed="finite")
        total = sum(e.weight for e in es)
        if abs(total) > 1e-9 * sum(abs(e.weight) for e in es) or all(e.weight == 0 for e in es):
            raise PhysiologyInputError("electrode weights must sum to zero and not all be zero",
                                       path="electrodes[].weight", value=total, allowed="sum = 0")
        for i in range(len(es)):
            for j in range(i + 1, len(es)):
                if footprints_overlap(es[i], es[j]):
                    raise PhysiologyInputError(f"electrodes {i} and {j} overlap",
                                               path=f"electrodes[{j}]", value=(es[j].x_m, es[j].y_m),
                                               allowed=f"footprint disjoint from electrodes[{i}]")

    @classmethod
    def pair(cls, shape: Literal["rectangle", "circle"] = "rectangle", *, spacing_m: float,
             length_m: float = 0.0, width_m: float = 0.0, diameter_m: float = 0.0,
             orientation: Literal["along_fibres", "across_fibres"] | float = "along_fibres",
             centre_m: tuple[float, float] = (0.0, 0.0)) -> "Electrodes":
        """Two equal electrodes ``spacing_m`` apart edge to edge, centred on ``centre_m``.

        The pair's axis runs along the fibres (x), across them (y), or at ``orientation``
        radians from x. A rectangle's ``length_m`` lies along the pair's axis and ``width_m``
        across it (a 5 × 9 cm electrode "placed longitudinally" along the fibres is
        ``length_m=0.09, width_m=0.05, orientation="along_fibres"``). Electrode 0 (on the −axis
        side) injects the current, electrode 1 takes it back.
        """
        if orientation == "along_fibres":
            angle = 0.0
        elif orientation == "across_fibres":
            angle = math.pi / 2
        elif isinstance(orientation, (int, float)) and math.isfinite(orientation):
            angle = float(orientation)
        else:
            raise PhysiologyInputError("unknown orientation", path="orientation", value=orientation,
                                       allowed="along_fibres, across_fibres or an angle in rad")
        if not (isinstance(spacing_m, (int, float)) and math.isfinite(spacing_m) and spacing_m > 0):
            raise PhysiologyInputError("edge-to-edge spacing must be positive (electrodes would overlap)",
                                       path="spacing_m", value=spacing_m, allowed="> 0 m")
        if shape == "circle":
            _check_positive(diameter_m, "diameter_m")
            half = diameter_m / 2
        elif shape == "rectangle":
            _check_positive(length_m, "length_m")
            _check_positive(width_m, "width_m")
            half = length_m / 2
        else:
            raise PhysiologyInputError("unknown electrode shape", path="shape", value=shape,
                                       allowed="rectangle, circle")
        d = spacing_m / 2 + half
        c, s = math.cos(angle), math.sin(angle)
        mk = [Electrode(shape, centre_m[0] + sign * d * c, centre_m[1] + sign * d * s, length_m, width_m,
                        diameter_m, angle, -sign) for sign in (-1.0, 1.0)]
        return cls(tuple(mk))

    @classmethod
    def from_channel(cls, channel, centre_m: tuple[float, float] = (0.0, 0.0)) -> "Electrodes":
        """The electrode pair of a program channel (:class:`emsim.program.model.Channel`).

        Uses the channel's ``spacing_cm`` (edge to edge) and ``orientation``; rectangles put
        ``length_cm`` along the pair's axis. The two electrodes may differ in size.
        """
        angle = 0.0 if channel.orientation == "along_fibres" else math.pi / 2
        c, s = math.cos(angle), math.sin(angle)
        spacing = channel.spacing_cm * 1e-2
        halves, parts = [], []
        for e in channel.electrodes:
            if e.shape == "circle":
                parts.append(dict(shape="circle", diameter_m=(e.diameter_cm or 0.0) * 1e-2))
                halves.append((e.diameter_cm or 0.0) * 1e-2 / 2)
            else:
                parts.append(dict(shape="rectangle", length_m=(e.length_cm or 0.0) * 1e-2,
                                  width_m=(e.width_cm or 0.0) * 1e-2))
                halves.append((e.length_cm or 0.0) * 1e-2 / 2)
        # Put the gap's midpoint at centre_m.
        d0 = -(spacing / 2 + halves[0])
        d1 = spacing / 2 + halves[1]
        es = tuple(Electrode(x_m=centre_m[0] + d * c, y_m=centre_m[1] + d * s, angle_rad=angle,
                             weight=w, **p) for d, w, p in zip((d0, d1), (1.0, -1.0), parts))
        return cls(es)

    @property
    def span_m(self) -> tuple[float, float, float, float]:
        """Bounding box ``(xmin, xmax, ymin, ymax)`` of all footprints."""
        return _span(self.electrodes)

    def key(self) -> tuple:
        return tuple((e.shape, e.x_m, e.y_m, e.length_m, e.width_m, e.diameter_m, e.angle_rad, e.weight)
                     for e in self.electrodes)


# ============================================================================ grid

@dataclass(frozen=True)
class Grid:
    """Discretisation of the skin plane.

    Parameters
    ----------
    dx_m : float
        Pixel size of the field grid (m). Default 1 mm, as in the reference's layered runs.
    size_m : float, optional
        Side of the periodic square domain (m). Default: max(0.3 m, 2 × the electrode span about the origin).
    contact_refine : int
        The contact (current-sharing) patch uses pixels ``dx_m/contact_refine``.
    contact_margin_m : float
        Skin margin around the electrodes in the contact patch (m).
    dz_m, dz_rel : float
        When many distinct depths are asked at once, values are interpolated between cached
        depth planes spaced ``max(dz_m, dz_rel·z)`` apart.
    """

    dx_m: float = 1e-3
    size_m: float | None = None
    contact_refine: int = 2
    contact_margin_m: float = 0.03
    dz_m: float = 0.25e-3
    dz_rel: float = 0.12

    def __post_init__(self):
        for attr, lo in (("dx_m", 0.0), ("contact_margin_m", 0.0), ("dz_m", 0.0), ("dz_rel", 0.0)):
            v = getattr(self, attr)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v > lo):
                raise PhysiologyInputError("must be positive", path=f"grid.{attr}", value=v, allowed="> 0")
        if not (isinstance(self.contact_refine, int) and 1 <= self.contact_refine <= 16):
            raise PhysiologyInputError("must be an integer 1-16", path="grid.contact_refine",
                                       value=self.contact_refine, allowed="1..16")
        if self.size_m is not None and not (math.isfinite(self.size_m) and self.size_m > 16 * self.dx_m):
            raise PhysiologyInputError("domain too small", path="grid.size_m", value=self.size_m,
                                       allowed=f"> {16 * self.dx_m:g} m")

    def resolved_n(self, electrodes: Electrodes | Sequence[Electrode], reach_m: float = 0.0) -> int:
        """Number of pixels per side for these electrodes (even, FFT-friendly).

        ``reach_m``: extra distance from the origin that evaluation points may need.
        """
        es = electrodes.electrodes if isinstance(electrodes, Electrodes) else tuple(electrodes)
        x0, x1, y0, y1 = _span(es)
        reach = max(2 * max(abs(x0), abs(x1), abs(y0), abs(y1)), 2 * reach_m)
        size = self.size_m if self.size_m is not None else max(0.3, 2 * reach)
        # Divisible by twice the image-correction pixel factor (8) so the coarse grids nest.
        n = int(math.ceil(size / self.dx_m))
        while True:
            n = sfft.next_fast_len(n, real=True)
            if n % 16 == 0 and sfft.next_fast_len(n // 8, real=True) == n // 8:
                break
            n += 1
        if self.size_m is not None and n * self.dx_m < reach + 2 * self.contact_margin_m:
            raise PhysiologyInputError("domain smaller than the electrodes and margin", path="grid.size_m",
                                       value=self.size_m, allowed=f">= {reach + 2 * self.contact_margin_m:g} m")
        return n


def _axis_coords(n: int, dx: float) -> np.ndarray:
    return (np.arange(n) - n // 2) * dx


def _wavenumbers(n: int, dx: float):
    kx = 2 * np.pi * sfft.fftfreq(n, dx)[:, None]
    ky = 2 * np.pi * sfft.rfftfreq(n, dx)[None, :]
    return kx, ky


def _kernel(layers: Layers, n: int, dx: float):
    """Wavenumbers and layer depth factors on the rfft2 grid."""
    kx, ky = _wavenumbers(n, dx)
    return kx, ky, LayerKernel(layers.stack, kx, ky)


def _kernel_bytes(value) -> int:
    kx, ky, kern = value
    arrays = [kx, ky, kern.kap, kern.s, kern.y, kern.inv_y, *kern.grow, *kern.decay, *kern.top_ratio]
    return sum(a.nbytes for a in arrays if isinstance(a, np.ndarray))


class _Kernels:
    """The owner of the layer kernels in the field cache (shared by solutions with the same
    layers and grid; one patient's stack is reused by all its electrode sets and programs)."""


_KERNELS = _Kernels()
_KERNEL_TOKEN = _PLANES.owner(_KERNELS)


def _kernel_for(layers: Layers, n: int, dx: float):
    return _PLANES.get(_KERNEL_TOKEN, (layers, n, dx), lambda: _kernel(layers, n, dx), math.inf,
                       nbytes=_kernel_bytes)


@lru_cache(maxsize=32)
def _first_derivative(n: int, dx: float, kind: str) -> np.ndarray:
    """``kx`` or ``ky`` (times i, applied via the spectrum) with the Nyquist term removed."""
    kx, ky = _wavenumbers(n, dx)
    k = np.broadcast_to(kx if kind == "dx" else ky, (n, n // 2 + 1)).copy()
    k[np.abs(k) >= np.pi / dx - 1e-9] = 0.0
    return k


@lru_cache(maxsize=32)
def _spline_divisor(n: int, dx: float) -> np.ndarray:
    """``1/(Bx·By)``: periodic cubic B-spline prefilter on the rfft2 grid (B(k) = (2 + cos k·dx)/3)."""
    kx, ky = _wavenumbers(n, dx)
    return 1.0 / (((2.0 + np.cos(kx * dx)) / 3.0) * ((2.0 + np.cos(ky * dx)) / 3.0))


# ============================================================================ skin current density

@dataclass(frozen=True)
class ElectrodeContact:
    """Current density under one electrode, per ampere of stimulating current.

    ``mean_a_per_m2`` is the electrode's current over its area; ``peak_a_per_m2`` the largest
    local density on the covered skin (over contact pixels at least half covered);
    ``peak_to_mean`` their ratio (1 for uniform current; > 1 with edge concentration).
    """

    index: int
    area_m2: float
    current_a: float
    mean_a_per_m2: float
    peak_a_per_m2: float
    peak_to_mean: float
    voltage_v: float


@dataclass(frozen=True)
class SkinCurrentDensity:
    """Skin current-density map under the electrodes (A/m² per A), on the contact patch.

    Attributes
    ----------
    x_m, y_m : ndarray
        Pixel centres of the patch (m).
    density : ndarray, shape (x_m.size, y_m.size)
        Magnitude of the current density on the covered skin, per ampere (local value: pixel
        current divided by covered area); 0 off the electrodes.
    owner : ndarray of int
        Electrode index per pixel, −1 off the electrodes.
    cover : ndarray
        Fraction of each pixel under its electrode.
    electrodes : tuple of ElectrodeContact
        Per-electrode statistics.
    pixel_area_m2 : float

    Solutions from :func:`solve_batch` with ``superpose=True`` carry per-electrode samples only
    (``x_m``, ``y_m``, ``density``, ``owner``, ``cover`` are ``None``); :meth:`samples`,
    :meth:`area_fraction_above` and the statistics work for both.
    """

    x_m: np.ndarray | None
    y_m: np.ndarray | None
    density: np.ndarray | None
    owner: np.ndarray | None
    cover: np.ndarray | None
    electrodes: tuple[ElectrodeContact, ...]
    pixel_area_m2: float
    pieces: tuple[tuple[np.ndarray, np.ndarray], ...] | None = dc_field(default=None, repr=False)

    def samples(self, electrode: int) -> tuple[np.ndarray, np.ndarray]:
        """``(density per A, skin area in m²)`` of every pixel under ``electrode``.

        For afferent recruitment: the fraction of endings under the electrode activated at
        current ``I`` is ``Σ area·P(threshold ≤ I·density)/Σ area``.
        """
        if self.pieces is not None:
            return self.pieces[electrode]
        m = self.owner == electrode
        return self.density[m], self.cover[m] * self.pixel_area_m2

    def area_fraction_above(self, density_a_per_m2, current_a: float = 1.0, electrode: int | None = None):
        """Fraction of the electrode area (all electrodes if ``None``) where ``current·J ≥ density``."""
        which = range(len(self.electrodes)) if electrode is None else [electrode]
        parts = [self.samples(e) for e in which]
        d = np.concatenate([p[0] for p in parts]) * current_a
        a = np.concatenate([p[1] for p in parts])
        thr = np.asarray(density_a_per_m2, dtype=float)
        order = np.argsort(d)
        d, a = d[order], a[order]
        tail = np.concatenate([np.cumsum(a[::-1])[::-1], [0.0]])
        return tail[np.searchsorted(d, thr, side="left")] / a.sum()

    @property
    def peak_a_per_m2(self) -> float:
        return max(e.peak_a_per_m2 for e in self.electrodes)


# ============================================================================ solution

_Kind = Literal["phi", "dx", "dy", "dz", "dxx", "dyy", "dzz"]


def fibre_points(origins, direction, s) -> np.ndarray:
    """Points of straight fibres: ``origins + s·direction``.

    Parameters
    ----------
    origins : array_like, shape (n_fibres, 3)
        A point of each fibre (x, y, z in m).
    direction : array_like, shape (3,) or (n_fibres, 3)
        Fibre direction (normalised here).
    s : array_like, shape (n_nodes,) or (n_fibres, n_nodes)
        Arc-length positions of the nodes (m).

    Returns
    -------
    ndarray, shape (n_fibres, n_nodes, 3)
        Feed to :meth:`FieldSolution.potential_along`.
    """
    o = np.asarray(origins, dtype=float).reshape(-1, 3)
    d = np.broadcast_to(np.asarray(direction, dtype=float).reshape(-1, 3), o.shape)
    d = d / np.linalg.norm(d, axis=1, keepdims=True)
    s = np.asarray(s, dtype=float)
    s = np.broadcast_to(s if s.ndim == 2 else s[None, :], (o.shape[0], s.shape[-1]))
    return o[:, None, :] + s[..., None] * d[:, None, :]


class _FieldEvaluation:
    """Evaluation methods shared by every field object; subclasses provide ``_evaluate``."""

    def _evaluate(self, kind: str, x, y, z) -> np.ndarray:  # pragma: no cover - abstract
        raise NotImplementedError

    def potential(self, x, y, z) -> np.ndarray:
        """Extracellular potential (V per A of stimulating current) at points ``(x, y, z)``."""
        return self._evaluate("phi", x, y, z)

    def electric_field(self, x, y, z) -> np.ndarray:
        """Electric field ``−∇φ`` (V/m per A); the last axis holds ``(Ex, Ey, Ez)``."""
        return -np.stack([self._evaluate(k, x, y, z) for k in ("dx", "dy", "dz")], axis=-1)

    def electric_field_along(self, x, y, z, axis: Axis = "x") -> np.ndarray:
        """One component of ``−∇φ`` (V/m per A): along the fibres (``"x"``, the drive of motor
        terminals, E·Δx), across them (``"y"``) or into depth (``"z"``). A third of the cost
        of :meth:`electric_field` on first evaluation."""
        if axis not in ("x", "y", "z"):
            raise PhysiologyInputError("unknown axis", path="axis", value=axis, allowed="x, y, z")
        return -self._evaluate("d" + axis, x, y, z)

    def activating_function(self, x, y, z, axis: Axis = "x", node_spacing: float | None = None) -> np.ndarray:
        """Second spatial derivative of the potential along a fibre direction (V/m² per A).

        ``axis`` "x" is along the muscle fibres (motor-axon terminals and muscle fibres), "y"
        across them, "z" into depth. With ``node_spacing`` (m) the second *difference*
        ``(φ(p−Δ) − 2φ(p) + φ(p+Δ))/Δ²`` over the node spacing Δ of a myelinated fibre is
        returned instead of the continuous derivative (Rattay 1986; McNeal 1976); multiply by
        Δ² for the node-to-node voltage drive in V/A.
        """
        if axis not in ("x", "y", "z"):
            raise PhysiologyInputError("unknown axis", path="axis", value=axis, allowed="x, y, z")
        if node_spacing is None:
            return self._evaluate("d" + axis * 2, x, y, z)
        if not (isinstance(node_spacing, (int, float)) and node_spacing > 0):
            raise PhysiologyInputError("node spacing must be positive", path="node_spacing",
                                       value=node_spacing, allowed="> 0 m")
        x, y, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, z)))
        d = float(node_spacing)
        sh = {"x": (d, 0, 0), "y": (0, d, 0), "z": (0, 0, d)}[axis]
        plus = self.potential(x + sh[0], y + sh[1], z + sh[2])
        minus = self.potential(x - sh[0], y - sh[1], z - sh[2])
        return (plus - 2 * self.potential(x, y, z) + minus) / d ** 2

    def potential_along(self, points) -> np.ndarray:
        """Potential (V/A) at an array of points with coordinates on the last axis.

        ``points`` of shape ``(n_fibres, n_nodes, 3)`` (see :func:`fibre_points`) gives an
        ``(n_fibres, n_nodes)`` array: the extracellular drive of a cable model, to be scaled
        by the pulse current waveform.
        """
        p = np.asarray(points, dtype=float)
        if p.shape[-1:] != (3,):
            raise PhysiologyInputError("points need x, y, z on the last axis", path="points",
                                       value=p.shape, allowed="(..., 3)")
        return self.potential(p[..., 0], p[..., 1], p[..., 2])



class FieldSolution(_FieldEvaluation):
    """The solved field of one electrode set on one layered half-space, per ampere.

    Obtain from :func:`solve`. All evaluation methods take broadcastable arrays of ``x``,
    ``y``, ``z`` (m) and return arrays of the broadcast shape.
    """

    #: Above this many distinct depths per call, depths are interpolated between cached planes.
    max_exact_depths = 24
    #: Memory cap for cached planes per solution (bytes); all solutions together stay within
    #: the process budget of :func:`set_cache_budget`.
    cache_bytes = 64 * 2 ** 20

    def __init__(self, layers: Layers, electrodes: Electrodes, gel: Gel, grid: Grid, n: int,
                 spectra: tuple, contact: SkinCurrentDensity, cg_iterations: int, image_factor: int):
        self.layers = layers
        self.electrodes = electrodes
        self.gel = gel
        self.grid = grid
        self.n = n
        self.dx = grid.dx_m
        self.x_m = _axis_coords(n, self.dx)
        self.y_m = self.x_m
        # (Φ̂(k, 0), n, dx) of the fine grid, the coarse grid of the same period and the
        # coarse grid _WIDE times wider (periodic-image correction); image_factor is the
        # coarse pixel in fine pixels.
        self._spectra = spectra
        self._image_factor = image_factor
        self._coarse_n = spectra[1][1]
        self._contact = contact
        self.cg_iterations = cg_iterations
        self._plane_token = _PLANES.owner(self)

    def __getstate__(self):
        # Planes live in this process's store: a copy recomputes its own.
        return {k: v for k, v in self.__dict__.items() if k != "_plane_token"}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._plane_token = _PLANES.owner(self)

    @property
    def cached_bytes(self) -> int:
        """Bytes of this solution's planes now held in the process's plane store."""
        return _PLANES.owner_bytes(self._plane_token)

    # ------------------------------------------------------------------ planes
    def plane(self, z: float, kind: _Kind = "phi", layer: int | None = None) -> np.ndarray:
        """Grid values at depth ``z`` (shape ``(n, n)``, indexed ``[ix, iy]`` on ``x_m``, ``y_m``).

        ``kind``: ``"phi"`` potential (V/A); ``"dx"``, ``"dy"``, ``"dz"`` first derivatives
        (V/m/A); ``"dxx"``, ``"dyy"``, ``"dzz"`` second derivatives (V/m²/A). Includes the
        periodic-image correction.
        """
        z = float(z)
        layer = int(self.layers.stack.layer_of(z)) if layer is None else layer
        fine = self._cached(("fine", kind, z, layer), lambda: self._raw(0, z, kind, layer)).copy()
        corr, _ = self._correction(z, kind, layer)
        f = self._image_factor
        gx = self.x_m / (f * self.dx) + self._coarse_n // 2
        ix, iy = np.meshgrid(gx, gx, indexing="ij")
        fine += ndimage.map_coordinates(corr, [ix.ravel(), iy.ravel()], order=3, mode="mirror",
                                        prefilter=False).reshape(fine.shape)
        return fine

    def _cached(self, key, make):
        return _PLANES.get(self._plane_token, key, make, self.cache_bytes)

    def _raw(self, which: int, z: float, kind: str, layer: int, spline: bool = False) -> np.ndarray:
        """Periodic solution plane on grid ``which`` (0 fine, 1 coarse, 2 coarse and wide).

        ``spline=True`` returns the periodic cubic B-spline coefficients instead of the values
        (for ``map_coordinates(..., prefilter=False, mode="grid-wrap")``), in single precision:
        on a periodic grid the prefilter is the division by ``Π (2 + cos k·dx)/3`` in the
        wavenumber domain, so it costs nothing here (``ndimage.spline_filter`` would cost more
        than the FFT).
        """
        hat, n, dx = self._spectra[which]
        kx, ky, kern = _kernel_for(self.layers, n, dx)
        zkind = {"dz": "dz", "dzz": "dzz"}.get(kind, "phi")
        # Fold every real factor first; one complex multiply at the end (the arrays are large).
        factor = kern.transfer(z, zkind, layer=layer)
        if kind in ("dx", "dy"):
            factor = factor * _first_derivative(n, dx, kind)
            hat = self._hat_times_i(which)
        elif kind == "dxx":
            factor = factor * -(kx ** 2)
        elif kind == "dyy":
            factor = factor * -(ky ** 2)
        if spline:
            spec = (hat * (factor * _spline_divisor(n, dx))).astype(np.complex64)
        else:
            spec = hat * factor
        return sfft.irfft2(spec, s=(n, n))

    def _hat_times_i(self, which: int) -> np.ndarray:
        cache = self.__dict__.setdefault("_hat_i", {})
        if which not in cache:
            cache[which] = self._spectra[which][0] * 1j
        return cache[which]

    def _fine_prefiltered(self, z: float, kind: str, layer: int) -> np.ndarray:
        # Only the spline coefficients are kept, in single precision (interpolation runs in
        # double): halves the memory of cached planes at ~1e-7 relative error.
        return self._cached(("fine-pf", kind, z, layer), lambda: self._raw(0, z, kind, layer, spline=True))

    def _correction(self, z: float, kind: str, layer: int):
        """Periodic-image correction on the coarse grid (prefiltered for cubic splines).

        The fine solution is the sum of the true solution and its images one period away.
        Two coarse solves with the same coarse source — one with the fine period, one
        ``_WIDE`` times wider — differ by exactly those images (minus the much weaker
        images of the wide one); subtracting that smooth difference removes them.
        """
        def make():
            narrow = self._raw(1, z, kind, layer)
            wide = self._raw(2, z, kind, layer)
            nc, nw = self._coarse_n, self._spectra[2][1]
            lo = nw // 2 - nc // 2
            diff = wide[lo:lo + nc, lo:lo + nc] - narrow
            return ndimage.spline_filter(diff, order=3, mode="mirror")
        return self._cached(("corr", kind, z, layer), make), self._coarse_n

    # ------------------------------------------------------------------ evaluation
    @property
    def half_width_m(self) -> float:
        """Points with |x|, |y| up to this are evaluated on the fine grid."""
        return (self.n // 2 - 2) * self.dx

    @property
    def reach_m(self) -> float:
        """Largest |x|, |y| that can be evaluated (beyond :attr:`half_width_m`, on the coarse wide grid)."""
        _, nw, step = self._spectra[2]
        return (nw // 2 - 2) * step

    def _check_points(self, x, y, z):
        half = self.reach_m
        for name, v in (("x", x), ("y", y)):
            if v.size and (not np.all(np.isfinite(v)) or np.abs(v).max() > half):
                bad = v[~np.isfinite(v) | (np.abs(v) > half)].ravel()[0]
                raise PhysiologyInputError("point outside the solved domain", path=name, value=float(bad),
                                           allowed=f"|{name}| <= {half:g} m (enlarge grid.size_m)")
        if z.size and (not np.all(np.isfinite(z)) or z.min() < 0):
            bad = z[~np.isfinite(z) | (z < 0)].ravel()[0]
            raise PhysiologyInputError("depth must be >= 0 (below the skin surface)", path="z",
                                       value=float(bad), allowed=">= 0 m")

    def _evaluate(self, kind: str, x, y, z) -> np.ndarray:
        x, y, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, z)))
        self._check_points(x, y, z)
        shape = x.shape
        xf, yf, zf = x.ravel(), y.ravel(), z.ravel()
        out = np.zeros(xf.size)
        if xf.size == 0:
            return out.reshape(shape)
        off = self.n // 2
        ix = xf / self.dx + off
        iy = yf / self.dx + off
        coarse = self._image_factor * self.dx
        cx = xf / coarse + self._coarse_n // 2
        cy = yf / coarse + self._coarse_n // 2

        # Points beyond the fine grid (far from the electrodes, where the field is smooth) are
        # read from the coarse grid four periods wide, whose own images are four times further.
        inner = (np.abs(xf) <= self.half_width_m) & (np.abs(yf) <= self.half_width_m)
        _, nw, wstep = self._spectra[2]
        wx = xf / wstep + nw // 2
        wy = yf / wstep + nw // 2

        def at(z, layer, m):
            vals = np.empty(m.size)
            mi = inner[m]
            if mi.any():
                k = m[mi]
                fine = self._fine_prefiltered(z, kind, layer)
                corr, _ = self._correction(z, kind, layer)
                vals[mi] = (self._interp(fine, ix[k], iy[k], "grid-wrap")
                            + self._interp(corr, cx[k], cy[k], "mirror"))
            if not mi.all():
                k = m[~mi]
                wide = self._cached(("wide-pf", kind, z, layer), lambda: self._raw(2, z, kind, layer, spline=True))
                vals[~mi] = self._interp(wide, wx[k], wy[k], "grid-wrap")
            return vals

        zs, inv = np.unique(zf, return_inverse=True)
        if zs.size <= self.max_exact_depths:
            stack = self.layers.stack
            for j, zj in enumerate(zs):
                m = np.nonzero(inv == j)[0]
                out[m] = at(float(zj), int(stack.layer_of(zj)), m)
            return out.reshape(shape)
        # Many depths: cubic Lagrange between cached planes, never across a layer boundary
        # (the z-derivative of φ jumps there). Nodes are graded: the field varies on the scale
        # of the depth itself, so the spacing grows with depth (grid.dz_m … grid.dz_rel·z).
        stack = self.layers.stack
        layer = stack.layer_of(zf)
        for lay in np.unique(layer):
            m = np.nonzero(layer == lay)[0]
            nodes = self._depth_nodes(int(lay), float(zf[m].max()))
            j0 = np.clip(np.searchsorted(nodes, zf[m], side="right") - 2, 0, nodes.size - 4)
            stencil = nodes[j0[:, None] + np.arange(4)]  # (points, 4)
            weights = np.ones_like(stencil)
            for q in range(4):
                for r in range(4):
                    if q != r:
                        weights[:, q] *= (zf[m] - stencil[:, r]) / (stencil[:, q] - stencil[:, r])
            for node in np.unique(j0[:, None] + np.arange(4)):
                q = node - j0
                sel = np.nonzero((q >= 0) & (q <= 3))[0]
                out[m[sel]] += weights[sel, q[sel]] * at(float(nodes[node]), int(lay), m[sel])
        return out.reshape(shape)

    def _depth_nodes(self, layer: int, z_max: float) -> np.ndarray:
        """Interpolation nodes in ``layer`` (at least 4, reaching ``z_max``).

        Geometric in ``z + z0`` with ``z0 = dz_m/dz_rel``: the spacing is about
        ``dz_rel·z`` at depth and never below ``dz_m`` near the skin.
        """
        stack, g = self.layers.stack, self.grid
        z0 = g.dz_m / g.dz_rel
        ratio = 1.0 + g.dz_rel
        top = float(stack.tops[layer]) + z0
        if layer < stack.n - 1:
            bottom = top + float(stack.thickness[layer])
            count = max(3, int(math.ceil(math.log(bottom / top) / math.log(ratio))))
            return top * (bottom / top) ** (np.arange(count + 1) / count) - z0
        count = max(3, int(math.ceil(math.log(max(z_max + z0, top) / top) / math.log(ratio))) + 2)
        return top * ratio ** np.arange(count + 1) - z0

    @staticmethod
    def _interp(plane, ix, iy, mode):
        return ndimage.map_coordinates(plane, np.vstack([ix, iy]), order=3, mode=mode, prefilter=False,
                                       output=np.float64)

    def skin_current_density(self) -> SkinCurrentDensity:
        """Current density at the skin under each electrode (A/m² per A of stimulating current)."""
        return self._contact

    @property
    def resistance_ohm(self) -> float:
        """Electrode-to-electrode resistance of a pair (Ω) including the gel; NaN for ``Gel.uniform()``."""
        es = self._contact.electrodes
        if math.isinf(self.gel.resistivity_ohm_m) or len(es) != 2:
            return math.nan
        return (es[0].voltage_v - es[1].voltage_v) / es[0].current_a


# ============================================================================ solve

def _contact_patch(electrodes: Sequence[Electrode], grid: Grid, n: int):
    """Pixel range of the contact patch on the field grid and its fine coordinates."""
    x0, x1, y0, y1 = _span(electrodes)
    m = grid.contact_margin_m
    dx, r = grid.dx_m, grid.contact_refine
    off = n // 2
    lo_x = max(int(math.floor((x0 - m) / dx)) + off, 0)
    hi_x = min(int(math.ceil((x1 + m) / dx)) + off + 1, n)
    lo_y = max(int(math.floor((y0 - m) / dx)) + off, 0)
    hi_y = min(int(math.ceil((y1 + m) / dx)) + off + 1, n)

    def fine(lo, hi):
        # Extend to an FFT-friendly length without leaving the field grid.
        count = hi - lo
        good = sfft.next_fast_len(count * r, real=True)
        while good % r:
            good = sfft.next_fast_len(good + 1, real=True)
        count = min(good // r, n)
        lo = min(lo, n - count)
        xs = (lo - off - 0.5) * dx + (np.arange(count * r) + 0.5) * dx / r
        return lo, count, xs

    lx, cx, xs = fine(lo_x, hi_x)
    ly, cy, ys = fine(lo_y, hi_y)
    return (lx, cx, xs), (ly, cy, ys)


def _contact_solution(layers: Layers, electrodes: Sequence[Electrode], gel: Gel, grid: Grid, n: int):
    (lx, cx, xs), (ly, cy, ys) = _contact_patch(electrodes, grid, n)
    r = grid.contact_refine
    dxc = grid.dx_m / r
    pix = dxc * dxc
    covs = np.stack([e.coverage(xs, ys) for e in electrodes])
    owner = np.where(covs.max(axis=0) > 0, covs.argmax(axis=0), -1)
    cover = np.where(owner >= 0, covs.max(axis=0), 0.0)
    weights = np.array([e.weight for e in electrodes])
    n_e = weights.size
    iters = 0
    if math.isinf(gel.resistivity_ohm_m):
        covered = np.array([cover[owner == i].sum() * pix for i in range(n_e)])
        j = np.zeros_like(cover)
        for i in range(n_e):
            j[owner == i] = cover[owner == i] * weights[i] / covered[i]
        volts = np.full(n_e, math.nan)
    else:
        kx = 2 * np.pi * sfft.fftfreq(xs.size, dxc)[:, None]
        ky = 2 * np.pi * sfft.rfftfreq(ys.size, dxc)[None, :]
        inv_y = LayerKernel(layers.stack, kx, ky).inv_y
        j, volts, iters = robin_currents(inv_y, (xs.size, ys.size), owner, cover, weights,
                                         gel.specific_resistance_ohm_m2, pix)
    local = np.where(cover > 0, np.abs(j) / np.where(cover > 0, cover, 1.0), 0.0)
    stats = []
    for i, e in enumerate(electrodes):
        m = owner == i
        current = float(j[m].sum() * pix)
        area = float(cover[m].sum() * pix)  # rasterised area (geometric to < 0.1 %)
        mean = abs(current) / area
        solid = m & (cover >= 0.5)
        peak = float(local[solid].max()) if solid.any() else float(local[m].max())
        stats.append(ElectrodeContact(i, area, current, mean, peak, peak / mean, float(volts[i])))
    contact = SkinCurrentDensity(xs, ys, local, owner, cover, tuple(stats), pix)
    # Field-grid source: block-sum the patch currents into field pixels (conserves current).
    src = np.zeros((n, n))
    blocks = j.reshape(cx, r, cy, r).sum(axis=(1, 3)) * pix / grid.dx_m ** 2
    src[lx:lx + cx, ly:ly + cy] = blocks
    return src, contact, iters


def solve(layers: Layers, electrodes: Electrodes, *, gel: Gel | None = None,
          grid: Grid | None = None, cache: bool = True) -> FieldSolution:
    """Solve the layered volume conductor for an electrode set, per ampere of current.

    Parameters
    ----------
    layers : Layers
        Tissue stack (e.g. ``Layers.for_site("lumbar_erector_spinae", patient=p)``).
    electrodes : Electrodes
        Electrode footprints and current weights (e.g. ``Electrodes.pair(...)``).
    gel : Gel, optional
        Electrode–skin interface; default ``Gel.load("hydrogel")`` from ``models/tissues``
        (gel plus stratum corneum as one effective series layer, ~0.3 Ω·m²).
        ``Gel.uniform()`` assumes uniform current density (fastest), ``Gel.metal()`` an
        equipotential electrode.
    grid : Grid, optional
        Discretisation; default ``Grid()``.
    cache : bool
        Return the same solution object (and its already computed planes) for arguments equal
        to one of the last ``SOLUTION_CACHE_SIZE`` calls.

    Returns
    -------
    FieldSolution
        Potential, field, activating function and skin current density per ampere.

    Notes
    -----
    Semi-analytical 2-D FFT / transfer-matrix method of
    shared/reference/nerve_recruitment_discomfort.md §2.3 (anisotropic muscle by coordinate
    scaling), current sharing under the electrodes after the complete-electrode (Robin) model.
    Checked against the closed-form half-space, uniform-disc and two-layer image-series
    solutions of §2.3 (tests/physiology/test_field.py) and the layered results of §2.6
    (tests/validation/test_field_targets.py, targets G1–G3).

    References
    ----------
    Conductivities: Gabriel S, Lau RW, Gabriel C (1996). Phys Med Biol 41:2271; the others
    listed with each value in ``models/tissues/conductivities.json``.
    Electrode edge and gel: Panescu D, Webster JG, Stratbucker RA (1994). IEEE Trans Biomed Eng
    41:681; Sha N et al. (2008). Artif Organs (PMID 18782136).
    Layered vs anatomical models: Kuhn A et al. (2009). Med Eng Phys 31:945; Gómez-Tames et
    al. (2014). Comput Math Methods Med 2014:489240.
    """
    if not isinstance(layers, Layers):
        raise PhysiologyInputError("layers must be a Layers", path="layers", value=type(layers).__name__,
                                   allowed="emsim.physiology.field.Layers")
    if not isinstance(electrodes, Electrodes):
        raise PhysiologyInputError("electrodes must be an Electrodes", path="electrodes",
                                   value=type(electrodes).__name__, allowed="emsim.physiology.field.Electrodes")
    gel = Gel.load() if gel is None else gel
    grid = Grid() if grid is None else grid
    key = (layers, electrodes, gel, grid)
    if cache and key in _SOLUTIONS:
        _SOLUTIONS.move_to_end(key)
        return _SOLUTIONS[key]
    n = grid.resolved_n(electrodes)
    src, contact, iters = _contact_solution(layers, electrodes.electrodes, gel, grid, n)
    sol = FieldSolution(layers, electrodes, gel, grid, n, _spectra(layers, src, grid.dx_m),
                        contact, iters, _IMAGE_FACTOR)
    if cache:
        _SOLUTIONS[key] = sol
        while len(_SOLUTIONS) > SOLUTION_CACHE_SIZE:
            _SOLUTIONS.popitem(last=False)
    return sol


#: Recent solutions returned again for identical arguments (their planes are in _PLANES).
_SOLUTIONS: OrderedDict = OrderedDict()
SOLUTION_CACHE_SIZE = 8


def set_cache_budget(nbytes: int) -> None:
    """Bytes the field cache — layer kernels and the depth planes of all solutions — may hold
    together in this process.

    Default 256 MB, or ``EMSIM_FIELD_CACHE_MB`` (MB) when set; each solution's planes are also
    capped at :attr:`FieldSolution.cache_bytes`. Evicted entries are recomputed when asked again
    (same values), so the budget trades speed for memory. Solutions kept by :func:`solve` or by
    the recruitment model's geometry cache keep their spectra and skin-current map (≈ 10 MB
    each at the default grid) outside this budget.
    """
    _PLANES.set_budget(nbytes)


def cache_info() -> dict:
    """Plane store and solution cache state: bytes, budget, planes, hits, misses, evictions."""
    return {**_PLANES.info(), "solutions": len(_SOLUTIONS)}


def clear_cache() -> None:
    """Forget cached solutions (this module's and :func:`solve_batch`'s single-electrode ones),
    layer kernels and depth planes. A virtual cohort never meets a patient twice: its runs call
    this between patients so that no process holds solutions it will not use again."""
    from emsim.physiology._batch import clear_cache as clear_monopoles

    _SOLUTIONS.clear()
    clear_monopoles()
    _PLANES.clear()


_IMAGE_FACTOR = 8  # coarse pixel of the image correction, in fine pixels
_WIDE = 4  # period of the wide correction grid, in fine periods


def _spectra(layers: Layers, src: np.ndarray, dx: float) -> tuple:
    """Surface-potential spectra of the fine grid and of the two coarse image-correction grids.

    Coarse pixels are ``_IMAGE_FACTOR`` fine pixels wide; the narrow coarse grid has the fine
    period, the wide one ``_WIDE`` times that period.
    """
    n, f = src.shape[0], _IMAGE_FACTOR
    nc = n // f
    # Coarse pixel i is centred on fine pixel f·i (as the coordinates assume): gather fine
    # pixels f·i − f/2 … f·i + f/2 with half weights at both ends (total current conserved).
    taps = np.arange(-(f // 2), f // 2 + 1)
    w = np.where(np.abs(taps) == f // 2, 0.5, 1.0) / f
    coarse = src
    for axis in (0, 1):
        coarse = sum(wt * np.roll(coarse, -t, axis=axis) for t, wt in zip(taps, w))
    coarse = coarse[::f, ::f]  # mean current density of each coarse pixel
    nw = _WIDE * nc
    wide = np.zeros((nw, nw))
    lo = nw // 2 - nc // 2
    wide[lo:lo + nc, lo:lo + nc] = coarse
    out = []
    for grid_src, step in ((src, dx), (coarse, f * dx), (wide, f * dx)):
        kern = _kernel_for(layers, grid_src.shape[0], step)[2]
        out.append((sfft.rfft2(grid_src) * kern.inv_y, grid_src.shape[0], step))
    return tuple(out)


def solve_channel(channel, patient=None, *, build: Build | None = None, gel: Gel | None = None,
                  grid: Grid | None = None) -> FieldSolution:
    """Solve a program channel (:class:`emsim.program.model.Channel`) on a patient.

    Layers from ``Layers.for_site(channel.site, patient=patient, side=channel.side, build=build)``,
    electrodes from :meth:`Electrodes.from_channel`.
    """
    layers = Layers.for_site(channel.site, patient=patient, side=channel.side, build=build)
    return solve(layers, Electrodes.from_channel(channel), gel=gel, grid=grid)


def _solve_monopole(layers: Layers, footprint: Electrode, gel: Gel, grid: Grid, reach: float) -> FieldSolution:
    """One electrode of ``footprint`` centred at the origin, weight 1 (for superposition)."""
    e = replace(footprint, x_m=0.0, y_m=0.0, weight=1.0)
    n = grid.resolved_n((e,), reach_m=reach)
    src, contact, iters = _contact_solution(layers, (e,), gel, grid, n)
    return FieldSolution(layers, (e,), gel, grid, n, _spectra(layers, src, grid.dx_m), contact, iters,
                         _IMAGE_FACTOR)


def _reach(electrodes: Electrodes) -> float:
    x0, x1, y0, y1 = electrodes.span_m
    return max(abs(x0), abs(x1), abs(y0), abs(y1))


def solve_batch(layers: Layers | Sequence[Layers], electrodes: Sequence[Electrodes], *,
                gel: Gel | None = None, grid: Grid | None = None, superpose: bool = True):
    """Solve many electrode configurations at once.

    Parameters
    ----------
    layers : Layers or sequence of Layers
        One stack for all configurations, or one per configuration.
    electrodes : sequence of Electrodes
    gel, grid : as for :func:`solve`
    superpose : bool
        ``True`` (default): solve each distinct electrode footprint once and build every
        configuration by shifting and adding (``emsim.physiology._batch``): cost grows with the
        number of distinct footprints, not configurations. Exact for ``Gel.uniform()``; with a
        resistive contact the partner electrode's pull on current sharing is neglected.
        ``False``: an exact :func:`solve` per distinct configuration.

    Returns
    -------
    FieldBatch
        A sequence with one field object per configuration (duplicates share objects), plus
        vectorised ``potential``/``electric_field``/``activating_function`` returning a leading
        configuration axis.
    """
    from emsim.physiology._batch import FieldBatch, superposed_batch

    electrodes = list(electrodes)
    stacks = [layers] * len(electrodes) if isinstance(layers, Layers) else list(layers)
    if len(stacks) != len(electrodes):
        raise PhysiologyInputError("one Layers per electrode set, or a single Layers", path="layers",
                                   value=len(stacks), allowed=f"1 or {len(electrodes)}")
    for i, el in enumerate(electrodes):
        if not isinstance(el, Electrodes):
            raise PhysiologyInputError("must be an Electrodes", path=f"electrodes[{i}]",
                                       value=type(el).__name__, allowed="emsim.physiology.field.Electrodes")
    gel = Gel.load() if gel is None else gel
    grid = Grid() if grid is None else grid
    if superpose:
        return superposed_batch(stacks, electrodes, gel, grid, _solve_monopole, _reach)
    done: dict = {}
    out = []
    for lay, el in zip(stacks, electrodes):
        key = (lay.key(), el.key())
        if key not in done:
            done[key] = solve(lay, el, gel=gel, grid=grid)
        out.append(done[key])
    return FieldBatch(out)
