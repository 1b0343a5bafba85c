"""Many electrode configurations by superposition of single-electrode solutions.

Private helper of :mod:`emsim.physiology.field` (:func:`~emsim.physiology.field.solve_batch`).

The layered problem is linear and translation invariant in the skin plane, so the field of an
electrode set is ``Σ_i w_i · M_f(x − x_i, y − y_i, z)``, where ``M_f`` is the field of one
electrode of footprint ``f`` (shape, size, rotation) centred at the origin. Each distinct
footprint is solved once (a periodic "monopole": its ``k = 0`` mode is dropped, i.e. a uniform
return current spread over the whole domain, which cancels exactly between electrodes whose
weights sum to zero — also in the periodic-image correction). Configurations that differ only in
positions, spacing or which electrode injects share every FFT plane; a batch of 1 000 candidate
pairs from a catalogue of a few electrode sizes costs a few solves plus interpolation.

Exact for uniform current density (``Gel.uniform()``). With a resistive or equipotential contact,
each electrode's current sharing is solved in isolation: the pull of the partner electrode on
the near edges is neglected (a few per cent on the peak density for gaps of a few cm).
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np

from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.field import ElectrodeContact, SkinCurrentDensity, _FieldEvaluation

__all__ = ["SuperposedField", "FieldBatch", "superposed_batch"]


def _footprint_key(e):
    return (e.shape, e.length_m, e.width_m, e.diameter_m, e.angle_rad % (2 * math.pi))


class SuperposedField(_FieldEvaluation):
    """Field of one electrode set as a weighted sum of shifted single-electrode solutions.

    Same evaluation API as :class:`~emsim.physiology.field.FieldSolution` (``potential``,
    ``electric_field``, ``activating_function``, ``potential_along``,
    ``skin_current_density``); ``resistance_ohm`` is NaN (electrode coupling not solved).
    """

    def __init__(self, layers, electrodes, gel, terms):
        self.layers = layers
        self.electrodes = electrodes
        self.gel = gel
        self._terms = terms  # list of (monopole FieldSolution, x shift, y shift, weight)
        self._contact = None

    def _evaluate(self, kind, x, y, z):
        x, y, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, z)))
        out = np.zeros(x.shape)
        for mono, sx, sy, w in self._terms:
            out += w * mono._evaluate(kind, x - sx, y - sy, z)
        return out

    def skin_current_density(self):
        if self._contact is None:
            pieces, stats = [], []
            for i, (mono, _, _, w) in enumerate(self._terms):
                c = mono.skin_current_density()
                d, a = c.samples(0)
                e = c.electrodes[0]
                pieces.append((d * abs(w), a))
                stats.append(ElectrodeContact(i, e.area_m2, w * e.current_a, e.mean_a_per_m2 * abs(w),
                                              e.peak_a_per_m2 * abs(w), e.peak_to_mean, math.nan))
            self._contact = SkinCurrentDensity(None, None, None, None, None, tuple(stats),
                                               mono.skin_current_density().pixel_area_m2, tuple(pieces))
        return self._contact

    @property
    def resistance_ohm(self) -> float:
        return math.nan


class FieldBatch(Sequence):
    """The fields of a batch of electrode configurations (a sequence of field objects).

    Besides indexing, :meth:`potential`, :meth:`electric_field` and :meth:`activating_function`
    evaluate every configuration at the same points in one call, returning a leading
    configuration axis; planes are shared between configurations with the same footprints.
    """

    def __init__(self, fields):
        self._fields = list(fields)

    def __len__(self):
        return len(self._fields)

    def __getitem__(self, i):
        return self._fields[i]

    def _evaluate(self, kind, x, y, z):
        x, y, z = np.broadcast_arrays(*(np.asarray(v, dtype=float) for v in (x, y, z)))
        out = np.zeros((len(self._fields),) + x.shape)
        groups: dict[int, tuple] = {}
        for c, f in enumerate(self._fields):
            terms = getattr(f, "_terms", None)
            if terms is None:  # an exact FieldSolution
                out[c] = f._evaluate(kind, x, y, z)
                continue
            for mono, sx, sy, w in terms:
                g = groups.setdefault(id(mono), (mono, [], [], [], []))
                g[1].append(c), g[2].append(sx), g[3].append(sy), g[4].append(w)
        for mono, cs, sxs, sys_, ws in groups.values():
            sx = np.asarray(sxs).reshape((-1,) + (1,) * x.ndim)
            sy = np.asarray(sys_).reshape((-1,) + (1,) * x.ndim)
            vals = mono._evaluate(kind, x[None] - sx, y[None] - sy, np.broadcast_to(z, (len(cs),) + z.shape))
            np.add.at(out, np.asarray(cs), np.asarray(ws).reshape((-1,) + (1,) * x.ndim) * vals)
        return out

    def potential(self, x, y, z) -> np.ndarray:
        """Potential (V/A), shape ``(n_configs,) + broadcast shape``."""
        return self._evaluate("phi", x, y, z)

    def electric_field(self, x, y, z) -> np.ndarray:
        """Field ``−∇φ`` (V/m per A), shape ``(n_configs,) + broadcast shape + (3,)``."""
        return -np.stack([self._evaluate(k, x, y, z) for k in ("dx", "dy", "dz")], axis=-1)

    def electric_field_along(self, x, y, z, axis="x") -> np.ndarray:
        """One field component (V/m per A) along ``axis``, leading configuration axis."""
        if axis not in ("x", "y", "z"):
            raise PhysiologyInputError("unknown axis", path="axis", value=axis, allowed="x, y, z")
        return -self._evaluate("d" + axis, x, y, z)

    def activating_function(self, x, y, z, axis="x") -> np.ndarray:
        """Continuous second derivative along ``axis`` (V/m² per A), leading configuration axis."""
        if axis not in ("x", "y", "z"):
            raise PhysiologyInputError("unknown axis", path="axis", value=axis, allowed="x, y, z")
        return self._evaluate("d" + axis * 2, x, y, z)


#: Single-electrode solutions kept between calls (planes included): an optimiser that keeps
#: drawing from the same electrode catalogue pays for each footprint once.
_MONOPOLES: "OrderedDict[tuple, object]" = OrderedDict()
MONOPOLE_CACHE_SIZE = 24


def clear_cache() -> None:
    """Forget cached single-electrode solutions."""
    _MONOPOLES.clear()


def superposed_batch(stacks, electrodes, gel, grid, solve_monopole, reach_of):
    """Build a :class:`FieldBatch` of :class:`SuperposedField` (see module docstring)."""
    fields = []
    # The monopole domain must hold each footprint shifted by the largest electrode offset plus
    # points near any configuration; rounded up so that similar batches share solutions.
    reach = max(reach_of(el) for el in electrodes)
    reach = 0.05 * math.ceil(reach / 0.05)
    for lay, el in zip(stacks, electrodes):
        terms = []
        for e in el.electrodes:
            key = (lay, _footprint_key(e), gel, grid, reach)
            mono = _MONOPOLES.get(key)
            if mono is None:
                mono = solve_monopole(lay, e, gel, grid, reach)
                _MONOPOLES[key] = mono
                while len(_MONOPOLES) > MONOPOLE_CACHE_SIZE:
                    _MONOPOLES.popitem(last=False)
            else:
                _MONOPOLES.move_to_end(key)
            terms.append((mono, e.x_m, e.y_m, e.weight))
        fields.append(SuperposedField(lay, el, gel, terms))
    return FieldBatch(fields)
