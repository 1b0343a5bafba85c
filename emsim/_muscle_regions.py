r"""Channels that stimulate the same site (muscle) on the same side share one muscle row.

The recruitment model places every channel's motor units relative to its own active electrode
and draws them from one generator per (seed, side) (:func:`emsim.physiology.recruitment.recruit`):
every channel on a site and side sees *the same units at the same place*. The muscle model's
pool fires, at a pulse that recruits the fraction ``r`` of the pool, exactly the depth groups
``[0, r]`` (:mod:`emsim.physiology.pool`). So two channels on one muscle and side do not drive two
regions: they drive one, whose units fire at the pulses of both, and whose fatigue and
muscle-level occlusion Ω (:mod:`emsim.physiology.fatigue`, computed per row) they share.
:func:`region_rows` builds that row; :func:`channel_shares` splits its force back to the
channels for the per-channel outputs of :class:`emsim.simulate.Prediction`.

Pulses of different channels closer than the motor axon's absolute refractory period are one
excitation: a unit that fired at the first cannot fire again at the second, and the muscle
model rejects equal pulse times. They are merged into one pulse at the earlier time with the
larger recruited fraction (the units only the larger pulse reaches fire < 2 ms late, far below
the twitch time scale). The period is the first interval at which the tabulated paired-pulse
recovery of the motor fibre is finite (:func:`refractory_interval_s`). Relative refractoriness
across channels (a second pulse 2–10 ms later needs 1.05–1.3× the current,
``models/fibres/thresholds.json``) is not applied: the recruited fractions come from each
channel's own pulse intervals (the recruitment module's following model), and the merged row
fires ``[0, r_k]`` at every pulse.

Research use only: emsim has no clinical clearance.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["Region", "regions", "region_rows", "channel_shares", "refractory_interval_s"]


@dataclass(frozen=True)
class Region:
    """A site and side, its muscle, and the program channels (indices, program order) there."""

    site: str
    side: str
    muscle: str
    channels: tuple[int, ...]


def regions(sites, sides, muscles) -> list[Region]:
    """Group channels by (site, side), in order of each group's first channel.

    The units are shared per site and side (the recruitment model's sample), so two sites
    that use the same muscle parameter set stay two regions.

    Parameters
    ----------
    sites, sides, muscles : sequence of str
        The site, side and muscle parameter set of each program channel.
    """
    groups: dict[tuple[str, str], list[int]] = {}
    for c, key in enumerate(zip(sites, sides)):
        groups.setdefault(key, []).append(c)
    return [Region(site, side, muscles[chans[0]], tuple(chans)) for (site, side), chans in groups.items()]


@lru_cache(maxsize=1)
def refractory_interval_s() -> float:
    """Pulses closer than this cannot fire a motor axon twice, s.

    The first interval of the Brian2 paired-pulse table (``models/fibres/thresholds.json``,
    ``pair_interval_ms``; :func:`emsim.physiology.axon.paired_pulse`, McIntyre, Richardson & Grill
    2002 membrane) at which a second action potential was found below 20× the single-pulse
    threshold: 2 ms for the shipped motor class (none at 0.5–1.5 ms). Below it
    :meth:`~emsim.physiology.fibre_tables.ThresholdTable.recovery_ratio` is infinite, and the
    recruitment module counts such a unit as not firing, so the merging agrees with the
    recruitment model. Measured (Kopec, Delbeke & McComas 1978, J Neurol Neurosurg Psychiatry
    41:54, human median nerve and thenar muscle, subtraction technique): absolute refractory
    periods of the distal motor nerve branches mostly 2.5–3.0 ms, relative refractoriness of the
    terminals about 5 ms; the model's 2 ms (the table's grid between 1.5 and 2 ms) is the shorter
    end, so some pulse pairs 2–3 ms apart that a real terminal could not follow are kept as two.
    """
    from emsim.physiology.fibre_tables import load_table

    table = load_table()
    t = np.asarray(table.pair_interval_s, float)
    return float(t[np.isfinite(table.recovery_ratio("motor", t))][0])


def region_rows(times, fractions, refractory_s: float):
    """One muscle row from several channels' pulses: their union, near-coincident ones merged.

    Parameters
    ----------
    times, fractions : sequence of numpy.ndarray
        Each channel's pulse times (s, increasing) and recruited fraction per pulse.
    refractory_s : float
        Pulses of *different* channels closer than this to the pulse they would follow are
        merged into it (the larger fraction is kept); a channel's own pulses are never merged,
        so a single channel's row is its own pulses unchanged.

    Returns
    -------
    t, r : numpy.ndarray
        Pulse times and fractions of the row (strictly increasing times).
    """
    if len(times) == 1:
        return times[0], fractions[0]
    t = np.concatenate(times)
    r = np.concatenate(fractions)
    owner = np.concatenate([np.full(x.size, c) for c, x in enumerate(times)])
    order = np.lexsort((owner, t))
    t, r, owner = t[order], r[order], owner[order]
    if t.size == 0:
        return t, r
    # clusters: runs of pulses each closer than refractory_s to the one before
    starts = np.flatnonzero(np.r_[True, np.diff(t) >= refractory_s])
    size = np.diff(np.r_[starts, t.size])
    cluster = np.repeat(np.arange(starts.size), size)
    # a run longer than the refractory period (chained offsets, or one channel firing twice)
    # is split pulse by pulse against the first pulse of each merge (rare)
    repeat = t[starts + size - 1] - t[starts] >= refractory_s
    n_ch = int(owner.max()) + 1
    keys, counts = np.unique(cluster * n_ch + owner, return_counts=True)
    repeat[keys[counts > 1] // n_ch] = True
    if not repeat.any():
        return t[starts], np.maximum.reduceat(r, starts)
    keep_t, keep_r = [], []
    for k, s in enumerate(starts):
        e = s + size[k]
        if not repeat[k]:
            keep_t.append(t[s]), keep_r.append(r[s:e].max())
            continue
        first, chans = s, {int(owner[s])}
        best = r[s]
        for j in range(s + 1, e):
            if t[j] - t[first] < refractory_s and int(owner[j]) not in chans:
                best = max(best, r[j])
                chans.add(int(owner[j]))
                continue
            keep_t.append(t[first]), keep_r.append(best)
            first, chans, best = j, {int(owner[j])}, r[j]
        keep_t.append(t[first]), keep_r.append(best)
    return np.asarray(keep_t, float), np.asarray(keep_r, float)


def channel_shares(t_out, times, fractions, window_s: float) -> np.ndarray:
    """Each channel's share of its region's force at the trace times.

    The share of channel ``c`` at time ``t`` is its recruited fraction summed over its pulses in
    the ``window_s`` up to the region's latest pulse at or before ``t``, over the same sum for
    all the region's channels. So alternating channels each carry the force while they
    stimulate, simultaneous identical channels carry half each, and a relaxing or resting
    region keeps the split of the stimulation that made its force; before the first pulse the
    channels share equally. The shares always sum to 1: the channels' forces add up to the
    region's force.

    Parameters
    ----------
    t_out : numpy.ndarray
        Trace sample times, s.
    times, fractions : sequence of numpy.ndarray
        Each channel's own pulse times and recruited fractions (before merging).
    window_s : float
        Window, s (the muscle model's contraction gap: a pulse drives the force of the
        contraction it belongs to).

    Returns
    -------
    numpy.ndarray
        Shares, shape ``(channels, t_out.size)``.
    """
    n = len(times)
    every = np.sort(np.concatenate(times))
    k = np.searchsorted(every, t_out, side="right") - 1
    latest = every[np.maximum(k, 0)] if every.size else np.zeros(t_out.size)
    drive = np.empty((n, t_out.size))
    for c, (tc, rc) in enumerate(zip(times, fractions)):
        cum = np.r_[0.0, np.cumsum(rc)]
        drive[c] = cum[np.searchsorted(tc, latest, side="right")] - cum[np.searchsorted(tc, latest - window_s,
                                                                                         side="right")]
    drive[:, k < 0] = 0.0
    total = drive.sum(axis=0)
    # pulses that recruit nothing (a ramp's start) keep the split of the last ones that did
    last = np.maximum.accumulate(np.where(total > 0, np.arange(t_out.size), -1))
    shares = np.full((n, t_out.size), 1.0 / n)
    held = last >= 0
    src = last[held]
    shares[:, held] = drive[:, src] / total[src]
    return shares
