"""Tissue layers under a stimulation site: :class:`Layer`, :class:`Layers` and their data.

Conductivities come from ``models/tissues/conductivities.json`` and layer thicknesses by site
and body build from ``models/sites/layers.json`` (both record source and evidence level per
value). A patient's own fat measurement for the site replaces the build value. Coordinates
follow :mod:`emsim.physiology.field`: x along the muscle fibres, y across them, z into depth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from typing import TYPE_CHECKING, Literal

import numpy as np

from emsim._data import load_data
from emsim.physiology._layered import LayerStack
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError

if TYPE_CHECKING:  # pragma: no cover
    from emsim.body.patient import Patient

__all__ = ["Layer", "Layers", "Gel", "Build", "tissue_conductivity", "site_layer_data",
           "TISSUES_FILE", "SITE_LAYERS_FILE"]

TISSUES_FILE = "tissues/conductivities.json"
SITE_LAYERS_FILE = "sites/layers.json"

Build = Literal["lean", "average", "high_fat"]


def _value(entry: dict, where: str) -> float:
    try:
        return float(entry["value"])
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelParameterError("parameter entry without a numeric value", path=where) from exc


def tissue_conductivity(tissue: str) -> tuple[float, float, float]:
    """``(σx, σy, σz)`` in S/m for a tissue of ``models/tissues/conductivities.json``.

    Muscle is anisotropic (longitudinal along x, transverse along y and z); the others are
    isotropic.
    """
    tissues = load_data(TISSUES_FILE)["tissues"]
    if tissue not in tissues:
        raise PhysiologyInputError("unknown tissue", path="tissue", value=tissue,
                                   allowed=", ".join(sorted(tissues)))
    entry = tissues[tissue]
    where = f"{TISSUES_FILE}:$.tissues.{tissue}"
    if "sigma_s_per_m" in entry:
        s = _value(entry["sigma_s_per_m"], where)
        return (s, s, s)
    lon = _value(entry["sigma_longitudinal_s_per_m"], where)
    tra = _value(entry["sigma_transverse_s_per_m"], where)
    return (lon, tra, tra)


@dataclass(frozen=True)
class Layer:
    """One tissue layer.

    Parameters
    ----------
    name : str
        Tissue name (free text; ``Layers.standard`` uses the ``models/tissues`` keys).
    thickness_m : float
        Thickness in m; ``math.inf`` for the bottom half-space.
    sigma_x, sigma_y, sigma_z : float
        Conductivity in S/m along the fibres (x), across them (y) and into depth (z).
    """

    name: str
    thickness_m: float
    sigma_x: float
    sigma_y: float
    sigma_z: float


@dataclass(frozen=True)
class Layers:
    """A layered half-space: finite layers from the skin down, then a half-space.

    Raises :class:`~emsim.physiology.errors.PhysiologyInputError` (naming the layer and field)
    for a zero, negative or non-finite thickness of a finite layer, a finite bottom layer, or a
    non-positive conductivity.
    """

    layers: tuple[Layer, ...]
    _stack: LayerStack = field(init=False, repr=False, compare=False)

    def __post_init__(self):
        layers = tuple(self.layers)
        object.__setattr__(self, "layers", layers)
        if not layers:
            raise PhysiologyInputError("at least one layer (the half-space) is needed", path="layers",
                                       value=0, allowed=">= 1 layer")
        for i, lay in enumerate(layers):
            last = i == len(layers) - 1
            t = lay.thickness_m
            if last and not (isinstance(t, (int, float)) and math.isinf(t) and t > 0):
                raise PhysiologyInputError("the bottom layer must be a half-space",
                                           path=f"layers[{i}].thickness_m", value=t, allowed="math.inf")
            if not last and not (isinstance(t, (int, float)) and math.isfinite(t) and t > 0):
                raise PhysiologyInputError("layer thickness must be positive and finite",
                                           path=f"layers[{i}].thickness_m", value=t, allowed="> 0 m")
            for comp in ("sigma_x", "sigma_y", "sigma_z"):
                s = getattr(lay, comp)
                if not (isinstance(s, (int, float)) and math.isfinite(s) and s > 0):
                    raise PhysiologyInputError("conductivity must be positive and finite",
                                               path=f"layers[{i}].{comp}", value=s, allowed="> 0 S/m")
        stack = LayerStack([lay.thickness_m if math.isfinite(lay.thickness_m) else 0.0 for lay in layers],
                           [[lay.sigma_x, lay.sigma_y, lay.sigma_z] for lay in layers])
        object.__setattr__(self, "_stack", stack)

    # ------------------------------------------------------------------ construction
    @classmethod
    def homogeneous(cls, sigma: float | tuple[float, float, float], name: str = "tissue") -> "Layers":
        """A homogeneous (possibly anisotropic) half-space: the closed-form test case."""
        sx, sy, sz = (sigma, sigma, sigma) if np.isscalar(sigma) else sigma
        return cls((Layer(name, math.inf, float(sx), float(sy), float(sz)),))

    @classmethod
    def standard(cls, *, skin_m: float, fat_m: float, muscle_m: float | None = None,
                 bottom: str = "cortical_bone", muscle_isotropic: bool = False) -> "Layers":
        """Skin / fat / muscle / bottom half-space with the ``models/tissues`` conductivities.

        ``muscle_m=None`` makes muscle the half-space (no bottom layer). ``muscle_isotropic``
        uses the transverse muscle conductivity in every direction (the reference's isotropic
        comparison case, §2.6).
        """
        muscle = tissue_conductivity("muscle")
        if muscle_isotropic:
            muscle = (muscle[1],) * 3
        layers = [Layer("skin", skin_m, *tissue_conductivity("skin")),
                  Layer("fat", fat_m, *tissue_conductivity("fat"))]
        if muscle_m is None:
            layers.append(Layer("muscle", math.inf, *muscle))
        else:
            layers.append(Layer("muscle", muscle_m, *muscle))
            layers.append(Layer(bottom, math.inf, *tissue_conductivity(bottom)))
        return cls(tuple(layers))

    @classmethod
    def for_site(cls, site: str, *, build: Build | None = None, patient: "Patient | None" = None,
                 side: str | None = None, fat_m: float | None = None) -> "Layers":
        """Layers under ``site`` (an id of ``models/sites/sites.json``).

        Fat thickness, first match wins: ``fat_m``; the patient's fat measurement for the site
        (and ``side`` if given; ultrasound directly, skinfold via ``models/sites/layers.json``
        ``skinfold_to_fat``); the patient's build from BMI; ``build`` (default ``"average"``).

        Raises
        ------
        PhysiologyInputError
            ``site`` unknown or without layer data; unknown ``build``.
        """
        data = site_layer_data()
        sites = data["sites"]
        if site not in sites:
            raise PhysiologyInputError("unknown site, or no layer data for it", path="site", value=site,
                                       allowed=", ".join(sites))
        entry = sites[site]
        where = f"{SITE_LAYERS_FILE}:$.sites.{site}"
        skin = _value(entry["skin_mm"], where + ".skin_mm") * 1e-3
        if fat_m is None and patient is not None:
            fat_m = _patient_fat(patient, site, side, skin)
            if fat_m is None and build is None:
                build = _build_from_bmi(patient)
        if fat_m is None:
            build = build or "average"
            if build not in data["builds"]:
                raise PhysiologyInputError("unknown body build", path="build", value=build,
                                           allowed=", ".join(data["builds"]))
            fat_m = float(entry["fat_mm"][build]) * 1e-3
        muscle = _value(entry["muscle_mm"], where + ".muscle_mm") * 1e-3
        return cls.standard(skin_m=skin, fat_m=fat_m, muscle_m=muscle, bottom=entry["bottom"])

    # ------------------------------------------------------------------ queries
    @property
    def stack(self) -> LayerStack:
        return self._stack

    @property
    def tops_m(self) -> np.ndarray:
        """Depth of the top of each layer (m)."""
        return self._stack.tops.copy()

    def top_of(self, name: str) -> float:
        """Depth (m) of the top of the first layer called ``name`` (e.g. ``"muscle"``)."""
        for lay, top in zip(self.layers, self._stack.tops):
            if lay.name == name:
                return float(top)
        raise PhysiologyInputError("no layer with this name", path="name", value=name,
                                   allowed=", ".join(lay.name for lay in self.layers))

    def key(self) -> tuple:
        return tuple((lay.thickness_m, lay.sigma_x, lay.sigma_y, lay.sigma_z) for lay in self.layers)


@lru_cache(maxsize=None)
def site_layer_data() -> dict:
    """``models/sites/layers.json`` (read-only)."""
    return load_data(SITE_LAYERS_FILE)


def _patient_fat(patient, site, side, skin_m) -> float | None:
    """Fat thickness (m) from the patient's measurement at ``site`` (and ``side``), or None.

    ``side`` None takes the first measurement of the site; a side takes that side's first
    measurement, else a bilateral one (whatever the order in the file); ``"bilateral"`` (one
    electrode pair across both sides) takes the mean of the left and the right side's
    thickness so found, since the current crosses both (a side measured twice counts once).
    """
    at_site = [f for f in patient.fat_thickness if f.site == site]

    def first(s):
        return next((f for f in at_site if f.side == s), None)

    if side is None:
        picked = at_site[:1]
    elif side == "bilateral":
        picked = [first(s) or first("bilateral") for s in ("left", "right")]
        picked = [f for f in picked if f is not None]
    else:
        picked = [f for f in (first(side) or first("bilateral"),) if f is not None]
    fats = []
    for f in picked:
        if f.method == "ultrasound":
            fats.append(f.value_mm * 1e-3)
            continue
        fat = f.value_mm * 1e-3 / 2 - skin_m
        if fat <= 0:
            raise PhysiologyInputError("skinfold thinner than two layers of skin",
                                       path=f"patient.fat_thickness[{site}].value_mm", value=f.value_mm,
                                       allowed=f"> {2 * skin_m * 1e3:g} mm")
        fats.append(fat)
    return float(np.mean(fats)) if fats else None


def _build_from_bmi(patient) -> str | None:
    bmi = patient.bmi
    if bmi is None:
        return None
    rule = site_layer_data()["build_from_bmi"]
    if bmi < rule["lean_below"]:
        return "lean"
    return "high_fat" if bmi >= rule["high_fat_from"] else "average"


@dataclass(frozen=True)
class Gel:
    """The resistive layer between an electrode's conductor and the skin (gel + electrode).

    Parameters
    ----------
    resistivity_ohm_m : float
        Volume resistivity (Ω·m). ``math.inf`` gives the ideal uniform current density.
    thickness_m : float
        Thickness (m). ``0`` gives an equipotential (metal-on-skin) electrode.
    name : str
    """

    resistivity_ohm_m: float
    thickness_m: float
    name: str = "gel"

    def __post_init__(self):
        for attr in ("resistivity_ohm_m", "thickness_m"):
            v = getattr(self, attr)
            if not (isinstance(v, (int, float)) and v >= 0 and not math.isnan(v)):
                raise PhysiologyInputError("gel parameter must be >= 0", path=f"gel.{attr}", value=v,
                                           allowed=">= 0")
        if math.isinf(self.resistivity_ohm_m) and self.thickness_m == 0:
            raise PhysiologyInputError("infinite resistivity needs a non-zero thickness",
                                       path="gel.thickness_m", value=0.0, allowed="> 0 m")

    @property
    def specific_resistance_ohm_m2(self) -> float:
        """``ρ·t`` (Ω·m²): the contact resistance of one square metre."""
        return self.resistivity_ohm_m * self.thickness_m

    @classmethod
    def load(cls, name: str = "hydrogel") -> "Gel":
        """An interface of ``models/tissues/conductivities.json``: ``hydrogel`` (default: gel plus
        stratum corneum), ``hydrogel_gel_only``, ``saline_sponge``."""
        interfaces = load_data(TISSUES_FILE)["interfaces"]
        if name not in interfaces:
            raise PhysiologyInputError("unknown electrode interface", path="gel", value=name,
                                       allowed=", ".join(interfaces))
        e = interfaces[name]
        where = f"{TISSUES_FILE}:$.interfaces.{name}"
        return cls(_value(e["resistivity_ohm_m"], where), _value(e["thickness_m"], where), name)

    @classmethod
    def uniform(cls) -> "Gel":
        """The ideal limit of a very resistive interface: uniform current density (fastest)."""
        return cls(math.inf, 1.0, "uniform")

    @classmethod
    def metal(cls) -> "Gel":
        """No series resistance: an equipotential electrode on the skin (sharp edge peaks)."""
        return cls(0.0, 0.0, "metal")
