r"""Action potentials per kHz burst: how often a fibre fires within one burst of a kHz carrier.

A threshold table (:mod:`emsim.physiology.fibre_tables`) says *whether* a burst excites a fibre;
it does not say how many times. A low carrier acts like a train of short pulses: at 1 kHz each
cycle of a 4 ms burst is a 0.5 ms phase and a fibre driven above threshold can fire on several
cycles of one burst. A high carrier excites by summation over many cycles and a fibre cannot
follow it cycle by cycle (Ward & Robertson 2001, Muscle Nerve 24:1303: summation of
subthreshold depolarisations, more efficient at higher carriers). How many action potentials
one burst evokes therefore depends on the carrier, the burst duration and how far above its own
threshold the fibre is driven.

This module tabulates that count with the Brian2 fibre models through the public API of
:mod:`emsim.physiology.axon` (:func:`emsim.physiology.axon.khz_block`: action potentials
passing the fibre's middle node during one burst at multiples of the burst's threshold), for
each fibre class at the class's middle diameter, and gives the fast path a step function
``n(m)`` per (class, carrier, burst): ``n_k`` action potentials for a drive between the
tabulated multiples ``m_k`` and ``m_{k+1}`` of the fibre's threshold. A population with
thresholds ``I_th`` then fires ``Σ_k (n_k − n_{k−1})·F(I/m_k)`` action potentials per fibre
per burst, with ``F`` the fraction whose threshold is reached (:func:`spike_weighted_fraction`).

The table also holds *when* the action potentials pass the middle node (``spike_times_ms``, from
the burst onset): for motor units the interval of a doublet decides how much force it adds
(catch-like summation in the muscle model), so :mod:`emsim.physiology.recruitment` reads the
motor class's counts and times (:meth:`BurstFiring.spike_times`) to give the muscle model each
burst's extra action potentials.

A burst between the tabulated durations (4 and 10 ms) reads the nearest one in log duration. The
tabulated and the actual burst deliver the same carrier until the shorter one ends, so the read
keeps only the tabulated action potentials the actual burst evokes too: none later than the
actual burst's end plus the class's offset latency (:meth:`BurstFiring.offset_latency_s`, the
latest the table itself shows an action potential after the end of its own burst: ≈ 1 ms for
the A fibres and motor axons, ≈ 3.6 ms for the C fibres), and the counts are the numbers of kept
times. A 6.5 ms burst at 1 kHz, read from the 10 ms table, thus keeps a motor axon's spikes at
≈ 1, 3.4 and 5.6 ms and drops those at 7.9 and 11 ms. Nothing is added: a burst longer than
its nearest tabulated one (5 ms read from 4 ms; anything beyond 10 ms) keeps the tabulated
spikes (an undercount), its own offset response is not modelled, and a burst shorter than the
shortest tabulated one keeps its first action potential (whether the fibre fires at all is the
threshold table's decision for that burst) and later ones only up to its end plus the latency.
The tabulated durations themselves read the table unchanged.

Regenerate the shipped table (``models/fibres/burst_firing.json``) with::

    python -m emsim.physiology.burst_firing tabulate               # full grid
    python -m emsim.physiology.burst_firing tabulate --small --out /tmp/b.json

Evidence: computed (model output of the Brian2 fibre models; their inputs are flagged in
``models/fibres/fibre_classes.json``). The counts inherit the node-cable model's limits (the
table's metadata says which axon model made them).

References
----------
.. [Ward2001] Ward AR, Robertson VJ (2001). Muscle Nerve 24:1303–1311.
.. [Ward2004] Ward AR, Robertson VJ, Ioannou H (2004). Med Eng Phys 26:569–579.
.. [Ward2007] Ward AR, Lucas-Toumbourou S (2007). Arch Phys Med Rehabil 88:1036.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

from emsim import __version__
from emsim._data import load_data, models_dir
from emsim.physiology.errors import ModelParameterError

__all__ = ["BurstFiring", "GRID_FULL", "GRID_SMALL", "TABLE_FILE", "load_burst_firing", "tabulate",
           "spike_weighted_fraction", "main"]

TABLE_FILE = "fibres/burst_firing.json"

#: Multiples of the burst threshold at which the spike count is read. 1.03 rather than 1: the
#: threshold search stops within 1 % of the true threshold, and a count just at it is noise.
GRID_FULL = {
    "classes": ["abeta", "adelta", "c", "motor"],
    "carrier_hz": [1000, 2500, 4000, 5000, 10000],
    "burst_ms": [4, 10],
    "multiples": [1.03, 1.25, 1.5, 2.0, 3.0, 5.0],
}
GRID_SMALL = {"classes": ["abeta", "motor"], "carrier_hz": [1000, 10000], "burst_ms": [4],
              "multiples": [1.03, 2.0, 5.0]}


@dataclass(frozen=True)
class BurstFiring:
    """Spike counts per burst: ``counts[class]`` shaped (carrier, burst, multiple); ``times_s[class]``
    (carrier, burst, multiple, spike) the times the action potentials pass the middle node from
    the burst onset (NaN-padded; empty dict for a table made before times were recorded)."""

    classes: tuple
    carrier_hz: np.ndarray
    burst_s: np.ndarray
    multiples: np.ndarray
    counts: dict
    meta: dict
    times_s: dict = field(default_factory=dict)

    def _nearest(self, carrier_hz, burst_s):
        fi = np.abs(np.log(np.asarray(carrier_hz, float)[:, None]) - np.log(self.carrier_hz)[None]).argmin(1)
        bi = np.abs(np.log(np.asarray(burst_s, float)[:, None]) - np.log(self.burst_s)[None]).argmin(1)
        return fi, bi

    def _check(self, name, store):
        if name not in store:
            raise ModelParameterError("class not in the burst-firing table", path=f"burst_firing.{name}",
                                      value=name, allowed=", ".join(store))

    def offset_latency_s(self, name: str) -> float:
        """The latest an action potential of class ``name`` passes the middle node after the end of
        its own tabulated burst, s (0 if the table shows none; NaN-free).

        Read from the table's own spike times: a spike initiated at the burst's last cycle, or
        the offset response, needs this long to reach the middle node (≈ 1 ms for the A fibres
        and motor axons, ≈ 3.6 ms for the slow C fibres in the shipped table).
        """
        self._check(name, self.times_s)
        late = self.times_s[name] - self.burst_s[None, :, None, None]
        return float(max(0.0, np.nanmax(late, initial=0.0)))

    def _kept_times(self, name: str, carrier_hz, burst_s) -> np.ndarray:
        """Spike times (B, M, K) of the nearest tabulated burst that the actual burst also evokes.

        The tabulated burst and the actual one deliver the same carrier until the shorter ends,
        so the tabulated spikes up to the actual burst's end plus :meth:`offset_latency_s` are
        the actual burst's; later ones were evoked by carrier cycles it never delivers and are
        dropped (NaN). The first action potential always stays: whether the fibre fires at all is
        the threshold table's decision, made for the actual burst. Nothing is added: a burst
        longer than the tabulated one keeps the table's spikes (an undercount), and the actual
        burst's own offset response is not modelled (the table's is at the end of ITS burst).
        """
        fi, bi = self._nearest(carrier_hz, burst_s)
        t = np.array(self.times_s[name][fi, bi])         # (B, M, K)
        first = t[:, 0, 0]
        t[:, 0, 0] = np.where(np.isnan(first), t[:, min(1, t.shape[1] - 1), 0], first)
        end = np.asarray(burst_s, float).reshape(-1)[:, None, None] + self.offset_latency_s(name)
        with np.errstate(invalid="ignore"):
            late = t > end
        late[..., 0] = False
        t[late] = np.nan
        return t

    def steps(self, name: str, carrier_hz, burst_s) -> tuple[np.ndarray, np.ndarray]:
        """The spike count as a step function of the multiple of threshold, per stimulus.

        Returns ``(m, n)``, both (B, M): at multiples ``m_k`` (the grid, its first point standing
        for the threshold itself, ``m = 1``) the fibre fires ``n_k`` action potentials, up to the
        next grid multiple; the nearest tabulated carrier (in log frequency) and burst duration
        are used (a burst outside the grid takes the nearest edge). Where the table has spike
        times, ``n`` counts those the actual burst evokes (:meth:`spike_times`: none after its
        end plus the offset latency), so a 6.5 ms burst read from the 10 ms table loses the
        spikes of the 10 ms burst's last 3.5 ms; a tabulated duration reads its counts unchanged.
        ``n`` need not rise with the multiple: a strong kHz burst can give an onset response and
        then block (a fall to one). A count of 0 at the first multiple is search noise (it lies
        within the threshold search's tolerance) and counts as 1.
        """
        self._check(name, self.counts)
        if name in self.times_s:
            counted = np.isfinite(self._kept_times(name, carrier_hz, burst_s)).sum(axis=-1).astype(float)
        else:  # a table made before times were recorded: the nearest burst's counts as they are
            fi, bi = self._nearest(carrier_hz, burst_s)
            counted = np.asarray(self.counts[name], dtype=float)[fi, bi]
        n = np.maximum(counted, 1.0)                     # (B, M): every fibre above threshold fires
        m = np.broadcast_to(np.concatenate([[1.0], self.multiples[1:]]), n.shape)
        return m, n

    def spike_times(self, name: str, carrier_hz, burst_s) -> tuple[np.ndarray, np.ndarray]:
        """When the action potentials of :meth:`steps` pass, per stimulus: ``(m, t)``.

        ``m`` (B, M) as in :meth:`steps`; ``t`` (B, M, K) the times (s, from the burst onset) of
        the 1st … K-th action potential of a fibre driven at ``m_k`` (NaN beyond its count). A
        count of 0 at the first multiple (search noise, counted as 1 by :meth:`steps`) takes the
        next multiple's first time. Spikes of the nearest tabulated burst later than the actual
        burst's end plus :meth:`offset_latency_s` are left out (NaN), all but the first.
        """
        self._check(name, self.times_s)
        t = self._kept_times(name, carrier_hz, burst_s)
        m = np.broadcast_to(np.concatenate([[1.0], self.multiples[1:]]), t.shape[:2])
        return m, t


def spike_weighted_fraction(fraction_at, steps, exponent: float = 1.0):
    """``Σ_k (n_k^e − n_{k−1}^e)·F(I/m_k)`` (``n_0 = 0``): the sum over fibres of ``n^e``.

    A fibre driven at a multiple in ``[m_k, m_{k+1})`` of its threshold fires ``n_k`` action
    potentials; the fraction of fibres at or above ``m_k`` is ``F(I/m_k)``, so the sum over
    fibres of ``n^e`` (per fibre of the class) telescopes into the increments above.

    Parameters
    ----------
    fraction_at : callable
        ``fraction_at(scale)`` → the activated fraction with every threshold multiplied by
        ``scale`` (B,) (shape (B, ...)); ``scale = 1`` is the ordinary activation.
    steps : (m, n)
        From :meth:`BurstFiring.steps`.
    exponent : float
        ``e = 1``: the spike count; the discomfort model applies its own rate exponent.
    """
    m, n = steps
    out = None
    prev = np.zeros(n.shape[0])
    for k in range(m.shape[1]):
        w = n[:, k] ** exponent - prev ** exponent
        prev = n[:, k]
        if not np.any(w):
            continue
        f = fraction_at(m[:, k])
        term = w.reshape((-1,) + (1,) * (np.ndim(f) - 1)) * f
        out = term if out is None else out + term
    return out


@lru_cache(maxsize=4)
def load_burst_firing(relative: str = TABLE_FILE) -> BurstFiring:
    """The shipped table (``models/fibres/burst_firing.json``)."""
    d = load_data(relative)
    try:
        return BurstFiring(classes=tuple(d["classes"]), carrier_hz=np.asarray(d["carrier_hz"], float),
                           burst_s=np.asarray(d["burst_ms"], float) * 1e-3,
                           multiples=np.asarray(d["multiples"], float),
                           counts={k: np.asarray(v, float) for k, v in d["counts"].items()}, meta=d.get("meta", {}),
                           times_s={k: _padded_times(v) for k, v in d.get("spike_times_ms", {}).items()})
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelParameterError("malformed burst-firing table", path=relative) from exc


def _padded_times(nested) -> np.ndarray:
    """Ragged ``[carrier][burst][multiple] -> [t_ms, ...]`` as a NaN-padded array in s."""
    cells = [t for per_f in nested for per_b in per_f for t in per_b]
    k = max(1, max(len(t) for t in cells))
    shape = (len(nested), len(nested[0]), len(nested[0][0]))
    out = np.full(shape + (k,), np.nan)
    for idx, t in zip(np.ndindex(shape), cells):
        out[idx][:len(t)] = np.asarray(t, float) * 1e-3
    return out


def tabulate(grid=None, *, progress=None) -> dict:
    """Run :func:`emsim.physiology.axon.khz_block` over ``grid`` (default :data:`GRID_FULL`).

    Returns the table as a JSON-ready dict (what :func:`load_burst_firing` reads).
    """
    from emsim.physiology import axon
    from emsim.physiology.fibre_tables import fibre_classes

    g = dict(GRID_FULL if grid is None else grid)
    say = progress or (lambda msg: None)
    counts, times, timing = {}, {}, {}
    for name in g["classes"]:
        t0 = time.perf_counter()
        cls = fibre_classes()[name]
        d = math.sqrt(cls.diameter_min_m * cls.diameter_max_m)  # the class's middle diameter
        block = np.zeros((len(g["carrier_hz"]), len(g["burst_ms"]), len(g["multiples"])))
        when = [[None] * len(g["burst_ms"]) for _ in g["carrier_hz"]]
        for i, f in enumerate(g["carrier_hz"]):
            for k, b in enumerate(g["burst_ms"]):
                _, n, t = axon.khz_block(name, d, carrier_hz=float(f), burst_ms=float(b), multiples=g["multiples"],
                                         return_times=True)
                block[i, k] = n
                when[i][k] = [[round(float(x) * 1e3, 4) for x in tk] for tk in t]
        counts[name] = block.tolist()
        times[name] = when
        timing[name] = time.perf_counter() - t0
        say(f"{name}: {timing[name]:.1f} s")
    return {
        "format": "emsim.burst_firing/1",
        "classes": list(g["classes"]), "carrier_hz": list(g["carrier_hz"]), "burst_ms": list(g["burst_ms"]),
        "multiples": list(g["multiples"]), "counts": counts, "spike_times_ms": times,
        "meta": {"emsim_version": __version__,
                 "quantity": "action potentials passing the middle node during one sine-carrier burst, at "
                             "multiples of that burst's own threshold; each class at its middle diameter; "
                             "spike_times_ms: when they pass, ms from the burst onset",
                 "generated_by": "python -m emsim.physiology.burst_firing tabulate",
                 "axon_model": "emsim.physiology.axon (public API khz_block); see models/fibres/thresholds.json "
                               "'model' for the cable and membrane",
                 "evidence": "computed (model output)",
                 "timing_s": timing,
                 "machine": {"platform": platform.platform(), "python": sys.version.split()[0]}},
    }


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m emsim.physiology.burst_firing",
                                 description="regenerate models/fibres/burst_firing.json (Brian2)")
    sub = ap.add_subparsers(dest="cmd", required=True)
    tab = sub.add_parser("tabulate", help="count action potentials per kHz burst")
    tab.add_argument("--small", action="store_true", help="the reduced grid of the regeneration test")
    tab.add_argument("--out", default=None, help="output file (default models/fibres/burst_firing.json)")
    args = ap.parse_args(argv)
    table = tabulate(GRID_SMALL if args.small else GRID_FULL, progress=lambda m: print(m, flush=True))
    out = Path(args.out) if args.out else models_dir() / TABLE_FILE
    out.write_text(json.dumps(table, indent=1) + "\n", encoding="utf-8")
    print(json.dumps({"written": str(out), "timing_s": table["meta"]["timing_s"]}))
    return 0


if __name__ == "__main__":  # pragma: no cover
    raise SystemExit(main())
