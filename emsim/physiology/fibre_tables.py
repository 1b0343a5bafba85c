"""Fibre classes and the tabulated fibre thresholds, for the fast path (no Brian2 import).

Two kinds of data live in ``models/fibres/``:

* ``fibre_classes.json`` — per class (``motor``, ``abeta``, ``adelta``, ``c``) the membrane
  model, the myelinated cable model (``model``: ``node_cable``, the MRG 2002 double cable
  ``mrg``, whose constants are in ``mrg.json``, or its Gaines 2018 variants ``gaines_motor`` /
  ``gaines_sensory``, ``gaines2018.json``), the cable geometry, the diameter distribution and where the excitable terminal sits
  and which way it points; every value with its source and evidence level.
* ``thresholds.npz`` + ``thresholds.json`` — what :mod:`emsim.physiology.axon` (Brian2)
  computed from those classes: the uniform-field threshold ``E_th`` (V/m along the terminal) per
  class, diameter and waveform (monophasic, symmetric and asymmetric biphasic, kHz bursts),
  the paired-pulse recovery curve and the following fraction at high rates. The JSON records
  the emsim version, the generation parameters and the command that regenerates them
  (``python -m emsim.physiology.axon tabulate``).

:class:`ThresholdTable` interpolates them (log–log in diameter and pulse width, linear in
inter-phase gap and secondary-phase ratio) vectorised over any batch of waveform parameters.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from emsim._data import load_data, models_dir
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError

__all__ = ["FibreClass", "fibre_classes", "membrane_parameters", "mrg_geometry", "ThresholdTable",
           "load_table", "CLASS_NAMES", "AFFERENT_CLASSES", "TABLE_STEM"]

CLASSES_FILE = "fibres/fibre_classes.json"
TABLE_STEM = "fibres/thresholds"
CLASS_NAMES = ("motor", "abeta", "adelta", "c")
AFFERENT_CLASSES = ("abeta", "adelta", "c")


@dataclass(frozen=True)
class FibreClass:
    """One fibre class as described in ``models/fibres/fibre_classes.json`` (SI units)."""

    name: str
    kind: str                 # "motor" | "afferent"
    membrane: str             # "mrg_node" | "hh_unmyelinated"
    n_nodes: int
    gnap_scale: float
    diameter_mean_m: float
    diameter_sd_m: float
    diameter_min_m: float
    diameter_max_m: float
    terminal_axis: str        # "x" (along the muscle fibres) or "z" (towards the surface)
    model: str = "node_cable"  # myelinated cable: "node_cable" (lumped internode), "mrg" (double cable),
    #                            "gaines_motor" / "gaines_sensory" (Gaines 2018 variants of the double cable)
    e_internode_v: float = float("nan")   # resting potential the lumped internodal load holds (MRG)
    threshold_scale: float = 1.0          # fast-path calibration of absolute thresholds (recruitment)
    depth_min_m: float = float("nan")
    depth_max_m: float = float("nan")
    density_per_m2: float = float("nan")

    def sample_diameters(self, n: int, rng: np.random.Generator) -> np.ndarray:
        """``n`` diameters (m) from the class's truncated normal distribution."""
        out = rng.normal(self.diameter_mean_m, self.diameter_sd_m, size=n)
        bad = (out < self.diameter_min_m) | (out > self.diameter_max_m)
        while np.any(bad):  # rejection keeps the truncated-normal shape exactly
            out[bad] = rng.normal(self.diameter_mean_m, self.diameter_sd_m, size=int(bad.sum()))
            bad = (out < self.diameter_min_m) | (out > self.diameter_max_m)
        return out


@lru_cache(maxsize=None)
def fibre_classes() -> dict[str, FibreClass]:
    """All fibre classes, keyed by name."""
    data = load_data(CLASSES_FILE)
    out = {}
    for name, c in data["classes"].items():
        d = c["diameter_um"]
        depth = c.get("depth_mm", {})
        out[name] = FibreClass(
            name=name, kind=c["kind"], membrane=c["membrane"], n_nodes=int(c["n_nodes"]),
            gnap_scale=float(c["gnap_scale"]["value"]),
            diameter_mean_m=d["mean"] * 1e-6, diameter_sd_m=d["sd"] * 1e-6,
            diameter_min_m=d["min"] * 1e-6, diameter_max_m=d["max"] * 1e-6,
            terminal_axis=c["terminal_axis"]["value"], model=c.get("model", {}).get("value", "node_cable"),
            e_internode_v=c.get("e_internode_mv", {}).get("value", float("nan")) * 1e-3,
            threshold_scale=float(c.get("threshold_scale", {}).get("value", 1.0)),
            depth_min_m=depth.get("min", float("nan")) * 1e-3, depth_max_m=depth.get("max", float("nan")) * 1e-3,
            density_per_m2=c.get("density_per_cm2", {}).get("value", float("nan")) * 1e4)
    return out


@lru_cache(maxsize=None)
def membrane_parameters(name: str) -> dict[str, float]:
    """The membrane's parameters as plain values in the units their keys name."""
    block = load_data(CLASSES_FILE)["membranes"][name]
    return {k: float(v["value"]) for k, v in block.items() if isinstance(v, dict)}


def mrg_geometry(diameter_m):
    """Node diameter, internodal axon diameter and node spacing (m) for fibre diameters (m).

    Linear interpolation in the MRG 2002 table; below its smallest fibre (5.7 µm) the ratios of
    that fibre are kept (extrapolated), above its largest the ratios of the largest.
    """
    g = load_data(CLASSES_FILE)["mrg_geometry"]
    fd = np.asarray(g["fibre_d_um"]) * 1e-6
    d = np.asarray(diameter_m, dtype=float)
    out = []
    for key in ("node_d_um", "axon_d_um", "delta_x_um"):
        ratio = np.asarray(g[key]) * 1e-6 / fd
        out.append(d * np.interp(d, fd, ratio))
    return tuple(out)


# ------------------------------------------------------------------ tabulated thresholds

@dataclass(frozen=True)
class ThresholdTable:
    """Tabulated uniform-field thresholds from the Brian2 fibre models.

    Attributes
    ----------
    classes : tuple of str
    diameters_m : dict class -> ndarray (n_d,)
    pulse_width_s : ndarray (n_pw,)
        Primary-phase widths of the pulsed grids.
    gaps_s : ndarray (n_gap,)
        Inter-phase gaps of the symmetric-biphasic grid.
    ratios : ndarray (n_r,)
        Secondary/primary amplitude ratios of the asymmetric grid (0 = monophasic, 1 = symmetric).
    mono, sym, asym : dict class -> ndarray
        ``E_th`` in V/m: ``mono[c][d, pw]``, ``sym[c][d, gap, pw]``, ``asym[c][d, r, pw]``
        (asymmetric at zero gap).
    carrier_hz, burst_s : ndarray
        kHz-burst grid; ``khz[c][d, carrier, burst]`` is ``E_th`` (V/m, sine carrier amplitude).
    pair_interval_s : ndarray; ``pair_ratio[c]`` : ndarray (n_int,)
        Test/single threshold ratio after a conditioning action potential (inf = absolutely
        refractory within the search cap).
    follow_rate_hz : ndarray; ``follow_fraction[c]`` : ndarray (n_rate,)
        Fraction of pulses followed by a fibre driven at ``follow_margin`` × threshold.
    meta : dict
        The JSON metadata (sources, emsim version, generation parameters).
    """

    classes: tuple
    diameters_m: dict
    pulse_width_s: np.ndarray
    gaps_s: np.ndarray
    ratios: np.ndarray
    mono: dict
    sym: dict
    asym: dict
    carrier_hz: np.ndarray
    burst_s: np.ndarray
    khz: dict
    pair_interval_s: np.ndarray
    pair_ratio: dict
    follow_rate_hz: np.ndarray
    follow_fraction: dict
    meta: dict

    # -- construction -------------------------------------------------------------------
    @classmethod
    def from_arrays(cls, arrays: dict, meta: dict) -> "ThresholdTable":
        names = tuple(meta["classes"])
        per = lambda key: {c: np.asarray(arrays[f"{key}__{c}"], dtype=float) for c in names}  # noqa: E731
        return cls(classes=names, diameters_m=per("diameter_m"),
                   pulse_width_s=np.asarray(arrays["pulse_width_s"], float), gaps_s=np.asarray(arrays["gaps_s"], float),
                   ratios=np.asarray(arrays["ratios"], float), mono=per("mono"), sym=per("sym"), asym=per("asym"),
                   carrier_hz=np.asarray(arrays["carrier_hz"], float), burst_s=np.asarray(arrays["burst_s"], float),
                   khz=per("khz"), pair_interval_s=np.asarray(arrays["pair_interval_s"], float),
                   pair_ratio=per("pair_ratio"), follow_rate_hz=np.asarray(arrays["follow_rate_hz"], float),
                   follow_fraction=per("follow_fraction"), meta=meta)

    def to_arrays(self) -> dict:
        out = {"pulse_width_s": self.pulse_width_s, "gaps_s": self.gaps_s, "ratios": self.ratios,
               "carrier_hz": self.carrier_hz, "burst_s": self.burst_s,
               "pair_interval_s": self.pair_interval_s, "follow_rate_hz": self.follow_rate_hz}
        for key in ("diameter_m", "mono", "sym", "asym", "khz", "pair_ratio", "follow_fraction"):
            src = self.diameters_m if key == "diameter_m" else getattr(self, key)
            for c in self.classes:
                out[f"{key}__{c}"] = src[c]
        return out

    def save(self, stem: str | Path) -> None:
        stem = Path(stem)
        np.savez_compressed(stem.with_suffix(".npz"), **self.to_arrays())
        stem.with_suffix(".json").write_text(json.dumps(self.meta, indent=2, sort_keys=True) + "\n",
                                             encoding="utf-8")

    # -- queries ------------------------------------------------------------------------
    def _check_class(self, name: str) -> None:
        if name not in self.classes:
            raise PhysiologyInputError("unknown fibre class", path="fibre_class", value=name,
                                       allowed=", ".join(self.classes))

    def strength_duration(self, name: str, diameter_m: float | None = None):
        """Weiss-law rheobase (V/m) and chronaxie (s) fitted to the monophasic column.

        The fit is the linear charge law ``E·t = E_rh·(t + c)`` by least squares over the grid
        (Mogyoros et al. 1996 recommend this form for human nerve).
        """
        self._check_class(name)
        d = self.diameters_m[name]
        dia = float(np.exp(np.mean(np.log(d)))) if diameter_m is None else diameter_m
        e = self._interp_diameter(name, np.array([dia]), self.mono[name])[0]
        return weiss_fit(self.pulse_width_s, e)

    def _interp_diameter(self, name, diameter_m, grid):
        """Log-log interpolation along axis 0 of ``grid`` at ``diameter_m`` (clamped to the grid)."""
        ld = np.log(self.diameters_m[name])
        x = np.clip(np.log(np.asarray(diameter_m, float)), ld[0], ld[-1])
        lg = np.log(grid)
        if ld.size == 1:
            return np.broadcast_to(np.exp(lg[0]), x.shape + grid.shape[1:]).copy()
        j = np.clip(np.searchsorted(ld, x) - 1, 0, ld.size - 2)
        w = ((x - ld[j]) / (ld[j + 1] - ld[j])).reshape(x.shape + (1,) * (grid.ndim - 1))
        return np.exp(lg[j] * (1 - w) + lg[j + 1] * w)

    def waveform_factor(self, name: str, params: dict) -> np.ndarray:
        """``E_th`` (V/m) per waveform (batch ``B``) for each tabulated diameter: shape (B, n_d).

        ``params`` holds equal-length arrays: ``kind`` (0 monophasic, 1 symmetric biphasic,
        2 asymmetric biphasic, 3 kHz burst), ``pulse_width_s``, ``gap_s``, ``ratio`` (secondary
        / primary amplitude; 0 for an unbalanced monophasic pulse), ``carrier_hz``, ``burst_s``.
        Values outside the grids are clamped to its edges.
        """
        self._check_class(name)
        kind = np.asarray(params["kind"], dtype=int)
        B = kind.size
        out = np.empty((B, self.diameters_m[name].size))
        pulsed = kind != 3
        if np.any(pulsed):
            pw = np.asarray(params["pulse_width_s"], float)[pulsed]
            gap = np.asarray(params["gap_s"], float)[pulsed]
            ratio = np.where(kind[pulsed] == 0, np.asarray(params["ratio"], float)[pulsed],
                             np.where(kind[pulsed] == 1, 1.0, np.asarray(params["ratio"], float)[pulsed]))
            out[pulsed] = self._pulsed(name, pw, gap, ratio)
        if np.any(~pulsed):
            out[~pulsed] = self._khz(name, np.asarray(params["carrier_hz"], float)[~pulsed],
                                     np.asarray(params["burst_s"], float)[~pulsed])
        return out

    def _pulsed(self, name, pw, gap, ratio):
        lpw = np.log(self.pulse_width_s)
        x = np.clip(np.log(pw), lpw[0], lpw[-1])
        j = np.clip(np.searchsorted(lpw, x) - 1, 0, lpw.size - 2)
        w = (x - lpw[j]) / (lpw[j + 1] - lpw[j])

        def at_pw(grid):  # grid (..., n_pw) -> (B, ...) log-interpolated at each row's width
            lg = np.log(np.moveaxis(grid, -1, 0))
            sh = (-1,) + (1,) * (lg.ndim - 1)
            return np.exp(lg[j] * (1 - w.reshape(sh)) + lg[j + 1] * w.reshape(sh))

        mono = at_pw(self.mono[name])                    # (B, n_d)
        sym = at_pw(self.sym[name])                      # (B, n_d, n_gap)
        asym = at_pw(self.asym[name])                    # (B, n_d, n_r)
        # The gap effect of the symmetric pulse, relative to its zero-gap value, is applied to
        # the asymmetric pulse too: both describe how much the reversed phase cancels the first.
        rows = np.arange(pw.size)
        gs = self.gaps_s
        if gs.size > 1:
            g = np.clip(gap, gs[0], gs[-1])
            jg = np.clip(np.searchsorted(gs, g) - 1, 0, gs.size - 2)
            wg = ((g - gs[jg]) / (gs[jg + 1] - gs[jg]))[:, None]
            rel = sym / sym[:, :, :1]
            gap_factor = rel[rows, :, jg] * (1 - wg) + rel[rows, :, jg + 1] * wg
        else:
            gap_factor = np.ones(mono.shape)
        r = np.clip(ratio, 0.0, 1.0)
        rgrid = np.concatenate([[0.0], self.ratios])
        full = np.log(np.concatenate([mono[:, :, None], asym], axis=2))  # ratio 0: monophasic
        jr = np.clip(np.searchsorted(rgrid, r) - 1, 0, rgrid.size - 2)
        wr = ((r - rgrid[jr]) / (rgrid[jr + 1] - rgrid[jr]))[:, None]
        bi = np.exp(full[rows, :, jr] * (1 - wr) + full[rows, :, jr + 1] * wr)
        return bi * gap_factor

    def _khz(self, name, carrier_hz, burst_s):
        grid = np.log(self.khz[name])                    # (n_d, n_f, n_b)
        lf, lb = np.log(self.carrier_hz), np.log(self.burst_s)
        xf = np.clip(np.log(carrier_hz), lf[0], lf[-1])
        xb = np.clip(np.log(burst_s), lb[0], lb[-1])
        jf = np.clip(np.searchsorted(lf, xf) - 1, 0, lf.size - 2)
        jb = np.clip(np.searchsorted(lb, xb) - 1, 0, lb.size - 2)
        wf_ = ((xf - lf[jf]) / (lf[jf + 1] - lf[jf]))[:, None]
        wb = ((xb - lb[jb]) / (lb[jb + 1] - lb[jb]))[:, None]
        g = np.moveaxis(grid, 0, -1)                     # (n_f, n_b, n_d)
        val = (g[jf, jb] * (1 - wf_) * (1 - wb) + g[jf + 1, jb] * wf_ * (1 - wb)
               + g[jf, jb + 1] * (1 - wf_) * wb + g[jf + 1, jb + 1] * wf_ * wb)
        return np.exp(val)

    def diameter_weights(self, name: str, diameter_m: np.ndarray):
        """Indices and weights that log-interpolate a (B, n_d) array at each diameter.

        Returns ``(j, w)`` such that ``log E(d) = (1-w)·log E[:, j] + w·log E[:, j+1]``.
        """
        self._check_class(name)
        ld = np.log(self.diameters_m[name])
        x = np.clip(np.log(np.asarray(diameter_m, float)), ld[0], ld[-1])
        if ld.size == 1:
            return np.zeros(x.shape, int), np.zeros(x.shape)
        j = np.clip(np.searchsorted(ld, x) - 1, 0, ld.size - 2)
        return j, (x - ld[j]) / (ld[j + 1] - ld[j])

    def recovery_ratio(self, name: str, interval_s) -> np.ndarray:
        """Threshold multiplier for a pulse ``interval_s`` after an action potential (≥ 1)."""
        self._check_class(name)
        t = self.pair_interval_s
        r = self.pair_ratio[name]
        x = np.asarray(interval_s, float)
        finite = np.isfinite(r)
        # log-ratio interpolated; before the first finite point the fibre is absolutely refractory
        lr = np.interp(x, t[finite], np.log(np.maximum(r[finite], 1.0)), right=0.0)
        return np.where(x < t[finite][0], np.inf, np.exp(lr))


def weiss_fit(pulse_width_s, threshold):
    """Rheobase and chronaxie of the Weiss law ``I·t = I_rh·(t + c)`` (least squares in charge)."""
    t = np.asarray(pulse_width_s, float)
    q = t * np.asarray(threshold, float)
    slope, intercept = np.polyfit(t, q, 1)
    return float(slope), float(intercept / slope)


@lru_cache(maxsize=4)
def _load(stem: str) -> ThresholdTable:
    path = Path(stem)
    npz, js = path.with_suffix(".npz"), path.with_suffix(".json")
    if not npz.is_file() or not js.is_file():
        raise ModelParameterError("fibre threshold table missing; regenerate it with "
                                  "`python -m emsim.physiology.axon tabulate`", path=str(npz))
    with np.load(npz) as f:
        arrays = {k: f[k] for k in f.files}
    return ThresholdTable.from_arrays(arrays, json.loads(js.read_text(encoding="utf-8")))


def load_table(stem: str | Path | None = None) -> ThresholdTable:
    """The shipped threshold table (``models/fibres/thresholds``), or one at ``stem`` (cached)."""
    return _load(str(stem) if stem is not None else str(models_dir() / TABLE_STEM))
