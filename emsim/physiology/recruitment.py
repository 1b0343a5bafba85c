r"""Fast recruitment: which motor units and skin afferents each pulse excites.

From the layered field (:mod:`emsim.physiology.field`, per ampere) and the Brian2 fibre tables
(:mod:`emsim.physiology.fibre_tables`), every fibre gets a threshold current for every pulse
shape, and every pulse's amplitude then recruits the fibres whose threshold it reaches:

* **Motor units.** Each site's muscles (``models/fibres/motor_pools.json``) hold a seeded sample
  of units whose terminal branches sit in the muscle layer (depth and thickness from
  ``models/sites/layers.json`` and the patient's fat measurement), clustered along the fibres
  around the motor point. A unit's drive is the field along the fibres averaged over its
  terminal's internode, ``|φ(p) − φ(p + Δx·x̂)|/Δx`` (V/m per A; reference §2.6: terminal
  branches are excited by E·Δx), taken at its most strongly driven terminal. Its threshold is
  ``I_th = k·E_th(d, waveform)/drive`` with ``E_th`` the tabulated uniform-field threshold and
  ``k`` the class's fitted calibration (motor: Hmed 2018's quadriceps onset; reference §2.6). The
  order of recruitment therefore follows distance to the electrodes, not unit size
  (non-selective, spatially fixed NMES recruitment: Gregory & Bickel 2005; Bickel 2011);
  diameter enters only through ``E_th ∝ ~1/d``. With ``excitation="terminal_or_passing"`` each
  unit's parent axon, passing straight along the fibres, may fire it instead: its nodes are
  driven by the second difference of the potential (Rattay's activating function, the quantity
  of the reference's G1 numbers). At the calibrated thresholds it never wins under the usual
  electrodes (its drive is ~10× weaker), which is the reference's own §2.6 argument, measured.
* **Cutaneous afferents** (Aβ, Aδ, C): the fraction of each class activated under each electrode
  comes from :func:`emsim.physiology.cutaneous.activation` — log-normal endings under the local
  skin current density (edge concentration and gel included), each class with its Weiss
  strength–duration law, scaled for the actual waveform (second phase, gap, kHz burst) by the
  Brian2 tables (:func:`emsim.physiology.cutaneous.waveform_multiplier`), so the motor units and
  the afferents both see what a kHz carrier or a biphasic pulse does to an axon — the same
  computation, parameters and calibration anchors as the
  discomfort model (``models/discomfort/discomfort.json``: first sensation, 5 % of Aβ, at 8 mA
  for 5 × 5 cm electrodes over the average lumbar erector spinae at 250 µs). A ``Recruitment``
  therefore feeds :func:`emsim.physiology.discomfort.predict` on its calibrated scale. Afferents
  are counted on every pulse (no refractoriness): the discomfort model's temporal summation
  carries the rate. A kHz burst can fire an active afferent more than once; how often comes
  from the Brian2 burst-firing table (``Recruitment.afferent_spikes``,
  :func:`emsim.physiology.cutaneous.burst_spikes`).
* **Motor units in kHz bursts.** A motor unit driven well above its threshold by a low-carrier
  burst fires more than once per burst (the same Brian2 table, motor class: at 1 kHz in 4 ms bursts
  twice from 1.25 × threshold, the second action potential ~2.3–3.4 ms after the first; at
  2.5–10 kHz once, then block, except near 1.5 × threshold and an occasional spike at the burst's
  end). A doublet a few ms apart raises the unit's force (catch-like summation, which the muscle
  model represents), so :attr:`Recruitment.motor_extra_spikes` gives, per pulse, the fraction of
  each pool firing a 2nd, 3rd … action potential and its delay after the first;
  :func:`with_extra_spikes` turns them into the muscle model's pulse list. The units that fire again are the most strongly driven,
  i.e. the first recruited ones, which is the muscle model's order (a pulse of fraction ``r``
  fires the depth-ordered units ``[0, r]``); where the table's count is not monotone in the drive
  (a band of units fires twice) the same fraction is given to the first units, which is exact for
  the force as long as every depth group has the same unit classes and history (the pool's
  groups do, within a steady train). No motor unit in the table drops out (every count ≥ 1).
  A burst between the tabulated durations (4, 10 ms) reads the nearest one without the
  action potentials that fall after its own end plus the table's offset latency (a 6.5 ms burst
  has none of the 10 ms burst's at 7.9 and 11 ms); the afferent counts likewise
  (:mod:`emsim.physiology.burst_firing`).
* **Refractoriness and following.** A unit driven at ``m = I/I_th`` by pulses ``Δt`` apart fires
  on every ``n``-th pulse, with ``n`` the smallest count for which the tabulated recovery
  ratio ``R(n·Δt) ≤ m`` (paired-pulse curves of the Brian2 models; supernormality, ``R < 1``,
  is ignored because it cannot recruit a unit that never fired). The effective fraction per
  pulse is ``Σ_n F(I/R(nΔt))/n``-weighted (see :func:`_following_fraction`): a steady-train
  estimate; the first pulse of each train uses ``F(I)``.

Everything is vectorised: thresholds are a (stimulus × fibre) matrix from table interpolation,
fractions are ``searchsorted`` on sorted thresholds. Field solutions and motor-unit samples are
cached per (site, side, layers, electrodes, motor-point offset, seed).

Public API: :func:`recruit` → :class:`Recruitment`; :class:`StimulusSet` for candidate batches.

References
----------
.. [Gregory2005] Gregory CM, Bickel CS (2005). Phys Ther 85:358–364.
.. [Bickel2011] Bickel CS, Gregory CM, Dean JC (2011). Eur J Appl Physiol 111:2399–2407.
.. [Rattay1986] Rattay F (1986). IEEE Trans Biomed Eng 33:974–977.
.. [Rattay1989] Rattay F (1989). Analysis of models for extracellular fiber stimulation.
   IEEE Trans Biomed Eng 36:676–682.
"""

from __future__ import annotations

import math
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field as dc_field
from functools import cached_property

import numpy as np

from emsim._data import load_data
from emsim.physiology import cutaneous as cut
from emsim.physiology import field as fld
from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.fibre_tables import fibre_classes, load_table, mrg_geometry
from emsim.program.compile import PulseTrain
from emsim.program.model import AsymmetricBiphasic, Channel, KhzBurst, Monophasic, SymmetricBiphasic

__all__ = ["Recruitment", "StimulusSet", "recruit", "clear_cache", "waveform_parameters", "motor_point_offset", "POOLS_FILE",
           "MOTOR_POINTS_FILE", "with_extra_spikes"]

POOLS_FILE = "fibres/motor_pools.json"
MOTOR_POINTS_FILE = "sites/motor_points.json"
N_FOLLOW_TERMS = 4           # units firing on every 1st … 4th pulse; slower ones counted at 1/5
EXCITATIONS = ("terminal", "terminal_or_passing")
_KIND = {"monophasic": 0, "symmetric_biphasic": 1, "asymmetric_biphasic": 2, "khz_burst": 3}


# ------------------------------------------------------------------------ stimuli

def waveform_parameters(waveforms) -> dict:
    """Table query arrays (``kind``, ``pulse_width_s``, ``gap_s``, ``ratio``, ``carrier_hz``,
    ``burst_s``) for a sequence of :mod:`emsim.program.model` waveforms.

    A monophasic pulse's explicit balance phase is treated as an asymmetric secondary phase
    (its amplitude ratio, its delay as the gap).
    """
    rows = []
    for w in waveforms:
        if isinstance(w, SymmetricBiphasic):
            rows.append((1, w.pulse_width_us * 1e-6, w.interphase_gap_us * 1e-6, 1.0, 0.0, 0.0))
        elif isinstance(w, AsymmetricBiphasic):
            rows.append((2, w.pulse_width_us * 1e-6, w.interphase_gap_us * 1e-6, w.secondary_amplitude_ratio, 0.0, 0.0))
        elif isinstance(w, Monophasic):
            rows.append((0, w.pulse_width_us * 1e-6, w.balance.delay_us * 1e-6, w.balance.amplitude_ratio, 0.0, 0.0))
        elif isinstance(w, KhzBurst):
            rows.append((3, 0.5 / w.carrier_hz, 0.0, 1.0, w.carrier_hz, w.burst_duration_ms * 1e-3))
        else:
            raise PhysiologyInputError("not a waveform", path="waveform", value=type(w).__name__,
                                       allowed="SymmetricBiphasic, AsymmetricBiphasic, Monophasic, KhzBurst")
    a = np.array(rows, dtype=float).reshape(-1, 6)
    return {"kind": a[:, 0].astype(int), "pulse_width_s": a[:, 1], "gap_s": a[:, 2], "ratio": a[:, 3],
            "carrier_hz": a[:, 4], "burst_s": a[:, 5]}


def _positive(name, values, allowed, upper=math.inf):
    v = np.asarray(values, dtype=float)
    bad = ~np.isfinite(v) | (v <= 0) | (v > upper)
    if np.any(bad):
        i = int(np.flatnonzero(bad.ravel())[0])
        raise PhysiologyInputError("out of range", path=f"{name}[{i}]", value=float(v.ravel()[i]), allowed=allowed)
    return v


@dataclass(frozen=True)
class StimulusSet:
    """A batch of candidate stimuli (one steady pulse train per row) for :func:`recruit`.

    Build it with :meth:`from_arrays` (vectorised, human units) or directly from waveform
    objects. ``channels`` holds the distinct electrode configurations; ``channel_index`` says
    which one each candidate uses.
    """

    amplitude_a: np.ndarray
    frequency_hz: np.ndarray
    waveform: dict
    channels: tuple
    channel_index: np.ndarray

    @classmethod
    def from_arrays(cls, amplitude_ma, pulse_width_us=300.0, frequency_hz=50.0, *, channels,
                    channel_index=0, shape="symmetric_biphasic", interphase_gap_us=0.0,
                    secondary_amplitude_ratio=1.0, carrier_hz=2500.0, burst_duration_ms=4.0) -> "StimulusSet":
        """Candidates from arrays (broadcast together) in human units.

        Parameters
        ----------
        amplitude_ma, pulse_width_us, frequency_hz : array_like
            Peak current (mA), primary-phase width (µs), pulse or burst rate (Hz).
        channels : Channel or sequence of Channel
            Electrode configurations (:class:`emsim.program.model.Channel`).
        channel_index : array_like of int
            Which configuration each candidate uses.
        shape : str or array_like of str
            ``monophasic``, ``symmetric_biphasic``, ``asymmetric_biphasic`` or ``khz_burst``.
        """
        chans = (channels,) if isinstance(channels, Channel) else tuple(channels)
        arrs = np.broadcast_arrays(np.asarray(amplitude_ma, float), np.asarray(pulse_width_us, float),
                                   np.asarray(frequency_hz, float), np.asarray(channel_index),
                                   np.asarray(shape, dtype=object), np.asarray(interphase_gap_us, float),
                                   np.asarray(secondary_amplitude_ratio, float), np.asarray(carrier_hz, float),
                                   np.asarray(burst_duration_ms, float))
        amp, pw, f, ci, sh, gap, ratio, car, burst = (np.atleast_1d(a).ravel() for a in arrs)
        _positive("amplitude_ma", amp, "> 0 and <= 200 mA", 200.0)
        _positive("frequency_hz", f, "> 0 and <= 1000 Hz", 1000.0)
        kind = np.array([_KIND.get(s, -1) for s in sh])
        if np.any(kind < 0):
            i = int(np.flatnonzero(kind < 0)[0])
            raise PhysiologyInputError("unknown waveform shape", path=f"shape[{i}]", value=sh[i],
                                       allowed=", ".join(_KIND))
        pulsed = kind != 3
        _positive("pulse_width_us", np.where(pulsed, pw, 1.0), "> 0 and <= 1000 us", 1000.0)
        _positive("carrier_hz", np.where(pulsed, 1e3, car), "> 0 and <= 20000 Hz", 2e4)
        _positive("burst_duration_ms", np.where(pulsed, 1.0, burst), "> 0 and <= 100 ms", 100.0)
        if np.any(~np.isfinite(gap) | (gap < 0)):
            raise PhysiologyInputError("out of range", path="interphase_gap_us", value=float(np.min(gap)),
                                       allowed=">= 0 us")
        _positive("secondary_amplitude_ratio", ratio, "> 0 and <= 1", 1.0)
        ci = ci.astype(int)
        if np.any((ci < 0) | (ci >= len(chans))):
            raise PhysiologyInputError("no such channel", path="channel_index", value=int(ci.max()),
                                       allowed=f"0 .. {len(chans) - 1}")
        wave = {"kind": kind, "pulse_width_s": np.where(pulsed, pw * 1e-6, 0.5 / np.where(pulsed, 1.0, car)),
                "gap_s": np.where(pulsed, gap * 1e-6, 0.0), "ratio": np.where(kind == 1, 1.0, ratio),
                "carrier_hz": np.where(pulsed, 0.0, car), "burst_s": np.where(pulsed, 0.0, burst * 1e-3)}
        return cls(amplitude_a=amp * 1e-3, frequency_hz=f, waveform=wave, channels=chans, channel_index=ci)

    def __len__(self) -> int:
        return int(self.amplitude_a.size)


# ------------------------------------------------------------------------ result

@dataclass(frozen=True, eq=False)
class Recruitment:
    """Motor units and cutaneous afferents recruited, per pulse (train) or per candidate (batch).

    Rows ``P`` are the pulses of the site's channels (train, in channel order then time) or the
    candidates of a :class:`StimulusSet`. Stimuli ``S`` are the distinct (channel, waveform)
    combinations; thresholds are stored per stimulus.

    Attributes
    ----------
    site : str
    muscles : tuple of str
        ``"<muscle>:<side>"`` per motor pool.
    unit_muscle : ndarray (U,) int
        Pool of each sampled motor unit (index into ``muscles``).
    unit_position_m : ndarray (U, 3)
        Position (x along the fibres, y, z depth below the skin; m) of each unit's most strongly
        driven terminal.
    unit_field_v_per_m : ndarray (U,)
        Field along the fibres at that terminal per ampere of current (V/m per A), averaged over
        its internode: the geometric part of the threshold.
    unit_passing_field_v_per_m : ndarray (U,) or None
        With ``excitation="terminal_or_passing"``: the drive of each unit's passing parent axon
        as a terminal-equivalent field (V/m per A, :func:`_passing_drive`); the unit's threshold
        uses the larger of this and ``unit_field_v_per_m``. ``None`` otherwise.
    unit_threshold_a : ndarray (S, U)
        Recruitment threshold current (A) of each unit for each stimulus (``inf``: the stimulus's
        channel does not reach this pool). A unit is recruited by a pulse of amplitude ``I`` of
        stimulus ``s`` when ``unit_threshold_a[s, u] <= I``.
    stimulus : ndarray (P,) int
        Stimulus of each row.
    amplitude_a : ndarray (P,)
        Peak current of each row.
    interval_s : ndarray (P,)
        Time since the previous pulse of the same channel (``inf`` for a first pulse).
    t_s, channel : ndarray (P,)
        Pulse time (NaN in a batch) and channel index (into ``channel_ids``).
    motor_fraction : ndarray (P, M)
        Fraction of each pool's units firing per pulse, refractoriness/following included.
    motor_fraction_above : ndarray (P, M)
        Fraction of units whose threshold the pulse reaches (no refractoriness).
    electrodes : tuple of (channel_id, electrode index)
        The ``E`` electrodes of the site's channels.
    afferent_fraction : dict class -> ndarray (P, E)
        Fraction of class ``abeta``/``adelta``/``c`` afferents excited under each electrode
        (:func:`emsim.physiology.cutaneous.activation`; 0 under another channel's electrodes).
    afferent_threshold_a : dict class -> ndarray (S, E)
        Current (A) of each stimulus at which :data:`emsim.physiology.cutaneous.SENSATION_LEVEL`
        (5 %) of the class under each electrode is active (``inf`` under another channel's
        electrodes): for Aβ, the first-sensation threshold of the discomfort calibration.
    cutaneous_threshold_scale : tuple of float
        The person's cutaneous threshold scale used for each channel.
    fields : tuple of FieldSolution
        Field per channel (per ampere): skin current density for the discomfort model.
    notes : tuple of str

    Notes
    -----
    Pulses repeat few distinct (stimulus, amplitude, interval) rows, so the per-pulse results are
    held as a table per distinct row plus the distinct row of each pulse (the ``_*_distinct``
    and ``_*_row`` fields that :func:`recruit` fills); ``motor_fraction``,
    ``motor_fraction_above`` and ``afferent_fraction`` are spread out to one row per pulse on
    first access (read-only), and the discomfort model's input gathers straight from the tables.
    """

    site: str
    channel_ids: tuple
    muscles: tuple
    unit_muscle: np.ndarray
    unit_diameter_m: np.ndarray
    unit_position_m: np.ndarray
    unit_field_v_per_m: np.ndarray
    unit_threshold_a: np.ndarray
    stimulus: np.ndarray
    stimulus_channel: np.ndarray
    amplitude_a: np.ndarray
    interval_s: np.ndarray
    t_s: np.ndarray
    channel: np.ndarray
    electrodes: tuple
    afferent_threshold_a: dict
    cutaneous_threshold_scale: tuple
    fields: tuple
    _motor_distinct: np.ndarray          # (G, M) firing fraction per distinct row
    _motor_above_distinct: np.ndarray    # (G, M) fraction above threshold per distinct row
    _motor_row: np.ndarray               # (P,) distinct row of each pulse
    _afferent_distinct: dict             # class -> (A, E) per distinct (stimulus, amplitude)
    _afferent_row: np.ndarray            # (P,) distinct (stimulus, amplitude) of each pulse
    notes: tuple = dc_field(default=())
    unit_passing_field_v_per_m: np.ndarray | None = None
    _afferent_spikes_distinct: dict | None = None  # class -> (A, E) action potentials per active afferent
    _motor_extra_delay_distinct: np.ndarray | None = None  # (G, K) s after the first action potential
    _motor_extra_distinct: np.ndarray | None = None        # (G, K, M) fraction firing a (k+2)-th one

    @property
    def n_rows(self) -> int:
        return int(self.amplitude_a.size)

    def recruited_units(self, row: int) -> np.ndarray:
        """Boolean mask (U,) of units whose threshold row ``row``'s amplitude reaches."""
        return self.unit_threshold_a[self.stimulus[row]] <= self.amplitude_a[row]

    def unit_threshold_for_row(self, row: int) -> np.ndarray:
        """Threshold current (A) of every unit for the stimulus of row ``row``."""
        return self.unit_threshold_a[self.stimulus[row]]

    # -- the discomfort model's input (emsim.physiology.discomfort.AfferentDrive fields) --------
    # A train is one batch row with its pulses in time order (channels interleaved); a batch of
    # candidates is B rows of one pulse each.
    # The conversion is computed once per Recruitment (cached, read-only arrays): ``predict`` may
    # be called on the same result many times, and the time order costs a sort.
    @cached_property
    def _is_train(self) -> bool:
        return bool(np.all(np.isfinite(self.t_s))) and self.n_rows > 0

    @cached_property
    def _time_order(self) -> np.ndarray | None:
        """Rows in time order (channels interleaved, stable); ``None`` when already in order."""
        if not self._is_train:
            return None
        order = np.argsort(self.t_s, kind="stable")
        return None if np.all(order[1:] > order[:-1]) else order

    def _in_time_order(self, a: np.ndarray) -> np.ndarray:
        return a if self._time_order is None else np.take(a, self._time_order, axis=0)

    @cached_property
    def motor_fraction(self) -> np.ndarray:
        """Fraction of each pool's units firing per pulse, refractoriness/following included (P, M)."""
        return _read_only(np.take(self._motor_distinct, self._motor_row, axis=0))

    @cached_property
    def motor_fraction_above(self) -> np.ndarray:
        """Fraction of each pool's units whose threshold the pulse reaches (P, M)."""
        return _read_only(np.take(self._motor_above_distinct, self._motor_row, axis=0))

    @cached_property
    def afferent_fraction(self) -> dict:
        """Fraction of each afferent class excited under each electrode per pulse, class -> (P, E)."""
        return {k: _read_only(np.take(v, self._afferent_row, axis=0)) for k, v in self._afferent_distinct.items()}

    @cached_property
    def afferent_spikes(self) -> dict:
        """Action potentials per activated afferent per pulse, class -> (P, E): 1 for pulsed
        waveforms, the Brian2 burst-firing count for kHz bursts
        (:func:`emsim.physiology.cutaneous.burst_spikes`)."""
        src = self._spikes_distinct
        return {k: _read_only(np.take(v, self._afferent_row, axis=0)) for k, v in src.items()}

    @cached_property
    def _spikes_distinct(self) -> dict:
        if self._afferent_spikes_distinct is not None:
            return self._afferent_spikes_distinct
        return {k: np.ones_like(v) for k, v in self._afferent_distinct.items()}

    @cached_property
    def spike_factor(self) -> dict | None:
        """:attr:`afferent_spikes` in the layout of :attr:`afferent` (the discomfort model's input);
        ``None`` when every pulse is an ordinary pulse (one action potential per active fibre)."""
        if self._afferent_spikes_distinct is None:
            return None
        rows = self._in_time_order(self._afferent_row)
        out = {k: np.take(v.T, rows, axis=1) for k, v in self._spikes_distinct.items()}
        return {k: _read_only(v[None] if self._is_train else v.T[:, :, None]) for k, v in out.items()}

    def channel_spike_factor(self, k: int) -> dict | None:
        """:attr:`afferent_spikes` under channel ``k``'s electrodes, laid out as :meth:`channel_afferent`
        (``AfferentDrive.spike_factor``); ``None`` when every pulse is an ordinary pulse."""
        if self._afferent_spikes_distinct is None:
            return None
        rows = self._afferent_row[self.channel == k]
        return {name: _read_only(np.take(v[:, 2 * k:2 * k + 2].T, rows, axis=1)[None])
                for name, v in self._spikes_distinct.items()}

    @cached_property
    def times_s(self) -> np.ndarray:
        """Pulse times, shape (1, P) for a train (time-sorted) or (B, 1) zeros for a batch."""
        t = self._in_time_order(self.t_s)[None, :] if self._is_train else np.zeros((self.n_rows, 1))
        return _read_only(t)

    @cached_property
    def afferent(self) -> dict:
        """Afferent fraction per class, shape (1, E, P) (train) or (B, E, 1) (batch)."""
        # one gather per class from the distinct-row table, straight into the (E, P) layout
        rows = self._in_time_order(self._afferent_row)
        out = {k: np.take(v.T, rows, axis=1) for k, v in self._afferent_distinct.items()}  # (E, P)
        return {k: _read_only(v[None] if self._is_train else v.T[:, :, None]) for k, v in out.items()}

    @cached_property
    def force_fraction(self) -> np.ndarray:
        """Motor fraction firing per pulse (all pools pooled), shaped like :attr:`times_s`."""
        counts = np.bincount(self.unit_muscle, minlength=len(self.muscles)).astype(float)
        f = np.take(self._motor_distinct @ (counts / max(counts.sum(), 1.0)), self._in_time_order(self._motor_row))
        return _read_only(f[None, :] if self._is_train else f[:, None])

    @cached_property
    def motor_extra_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """Motor units firing again within a kHz burst: ``(delay_s, fraction)`` per pulse.

        ``fraction[p, k, j]`` (P, K, M) is the fraction of pool ``j`` whose units fire a
        ``(k+2)``-th action potential in pulse ``p``'s burst, ``delay_s[p, k]`` (P, K) its mean
        delay after the burst's first action potential (NaN where no unit fires it). From the
        Brian2 burst-firing table's motor class (:meth:`emsim.physiology.burst_firing.BurstFiring.
        spike_times`) at each unit's drive ``I/I_th``, following the onset (units that are
        refractory at the burst onset miss the whole burst). ``K = 0`` for pulsed programs or a
        table without the motor class.
        """
        if self._motor_extra_distinct is None:
            return (_read_only(np.zeros((self.n_rows, 0))),
                    _read_only(np.zeros((self.n_rows, 0, len(self.muscles)))))
        return (_read_only(np.take(self._motor_extra_delay_distinct, self._motor_row, axis=0)),
                _read_only(np.take(self._motor_extra_distinct, self._motor_row, axis=0)))

    @cached_property
    def force_extra_spikes(self) -> tuple[np.ndarray, np.ndarray]:
        """:attr:`motor_extra_spikes` pooled over the pools like :attr:`force_fraction`:
        ``(delay_s, fraction)``, each shaped like :attr:`times_s` plus a last axis K."""
        if self._motor_extra_distinct is None:
            z = np.zeros(self.times_s.shape + (0,))
            return _read_only(z), _read_only(z.copy())
        counts = np.bincount(self.unit_muscle, minlength=len(self.muscles)).astype(float)
        rows = self._in_time_order(self._motor_row)
        frac = np.take(self._motor_extra_distinct @ (counts / max(counts.sum(), 1.0)), rows, axis=0)
        delay = np.take(self._motor_extra_delay_distinct, rows, axis=0)
        shape = (1, rows.size) if self._is_train else (rows.size, 1)
        k = frac.shape[-1]
        return _read_only(delay.reshape(shape + (k,))), _read_only(frac.reshape(shape + (k,)))

    def channel_afferent(self, k: int) -> dict:
        """Afferent fraction under channel ``k``'s two electrodes, for its pulses in pulse order.

        Returns class → ndarray (1, 2, P_k): ``afferent_fraction[class][channel == k][:, 2k:2k+2].T``
        gathered straight from the distinct-row table (one channel's :class:`AfferentDrive`
        input without spreading every class over all pulses and electrodes first).
        """
        rows = self._afferent_row[self.channel == k]
        return {name: _read_only(np.take(v[:, 2 * k:2 * k + 2].T, rows, axis=1)[None])
                for name, v in self._afferent_distinct.items()}

    @cached_property
    def electrode_area_m2(self) -> np.ndarray:
        """Area of each of the E electrodes, shape (1, E) (train) or (B, E) (batch)."""
        area = np.array([e.area_m2 for sol in self.fields for e in sol.electrodes.electrodes])
        return _read_only(area[None, :] if self._is_train else np.broadcast_to(area, (self.n_rows, area.size)))


def with_extra_spikes(times_s, fraction, delay_s, extra_fraction, *,
                      refractory_s: float = 0.0) -> tuple[np.ndarray, np.ndarray]:
    """The muscle model's pulse list with each burst's extra motor action potentials.

    Parameters
    ----------
    times_s, fraction : array_like (P,)
        Burst (or pulse) times, increasing, and the fraction of the pool each recruits (its
        first action potential).
    delay_s, extra_fraction : array_like (P, K)
        From :attr:`Recruitment.motor_extra_spikes` or :attr:`Recruitment.force_extra_spikes`
        (one row's pools combined): delay of the ``(k+2)``-th action potential after the first and
        the fraction of the pool firing it.
    refractory_s : float
        An extra action potential less than ``refractory_s`` before the next pulse that recruits
        anything, or after it, is left out. The table's delays belong to an isolated burst (read at
        the nearest tabulated burst duration, up to the actual burst's end), so at high burst rates
        they can reach the next burst, whose first action potential fires the same first-recruited
        units (``[0, r]``): a unit cannot fire twice within its refractory period, and the muscle
        model cannot skip units at that onset, so the extra one goes. 0 drops only those at or after the next onset.

    Returns
    -------
    times_s, fraction : ndarray (N,)
        Time-sorted, for :func:`emsim.physiology.muscle.simulate` (``recruitment=fraction``);
        extra action potentials with no unit firing them are left out.
    """
    t = np.asarray(times_s, float).ravel()
    f = np.asarray(fraction, float).ravel()
    d = np.asarray(delay_s, float).reshape(t.size, -1)
    x = np.asarray(extra_fraction, float).reshape(t.size, -1)
    at = t[:, None] + np.nan_to_num(d)
    recruits = np.flatnonzero(f > 0)
    k = np.searchsorted(recruits, np.arange(t.size), side="right")
    following = np.append(t[recruits], np.inf)[k]         # next pulse recruiting anything
    gap = following[:, None] - at
    keep = np.isfinite(d) & (x > 0) & (gap >= refractory_s) & (gap > 0)
    times = np.concatenate([t, at[keep]])
    frac = np.concatenate([f, x[keep]])
    order = np.argsort(times, kind="stable")
    return times[order], frac[order]


def _read_only(a: np.ndarray) -> np.ndarray:
    """A view of ``a`` that cannot be written (cached arrays are shared between callers)."""
    v = a.view()
    v.flags.writeable = False
    return v


# ------------------------------------------------------------------------ fibre samples

@dataclass(frozen=True)
class _Geometry:
    """Per-channel fibre sample with its drive per ampere (cached)."""

    field: object
    unit_muscle: np.ndarray        # (U,) index into the site's pool names
    unit_diameter_m: np.ndarray
    unit_drive: np.ndarray         # (U,) V/m per A
    unit_position_m: np.ndarray    # (U, 3) the most strongly driven terminal of each unit
    pools: tuple
    unit_passing_drive: np.ndarray | None = None  # (U,) parent axon, terminal-equivalent V/m per A


_GEOM_CACHE: "OrderedDict[tuple, _Geometry]" = OrderedDict()
_GEOM_CACHE_SIZE = 32


def clear_cache() -> None:
    """Forget the cached per-channel fibre geometries and the field solutions behind them
    (:func:`emsim.physiology.field.clear_cache`). Each geometry keeps its solution's spectra
    and skin-current map (~11 MB): a virtual cohort, which never meets a patient twice, calls
    this between patients so a process does not hold 32 of them."""
    _GEOM_CACHE.clear()
    fld.clear_cache()


def _pool_spec(site: str) -> tuple[dict, list[dict]]:
    data = load_data(POOLS_FILE)
    if site not in data["sites"]:
        raise PhysiologyInputError("no motor-pool data for this site", path="site", value=site,
                                   allowed=", ".join(data["sites"]))
    defaults = {k: v["value"] for k, v in data["defaults"].items()}
    return defaults, data["sites"][site]["muscles"]


def motor_point_offset(site: str) -> tuple[float, float]:
    """The site's main motor point relative to its standard placement's active electrode (m).

    Returns ``(along_fibres, across_fibres)`` from ``models/sites/motor_points.json``
    (0, 0 where the site has no entry: active electrode over the motor point). Sources: Botter et
    al. 2011 (Eur J Appl Physiol 111:2461) and Gobbo et al. 2011 (Eur J Appl Physiol 111:2451);
    the per-site values and their evidence levels are in the file.
    """
    entry = load_data(MOTOR_POINTS_FILE)["sites"].get(site, {})
    return (entry.get("along_fibres_mm", 0.0) * 1e-3, entry.get("across_fibres_mm", 0.0) * 1e-3)


def _offset_pair(value, site):
    """``motor_point_offset_m`` as (along, across) in m; ``None`` means the site's data."""
    if value is None:
        return motor_point_offset(site)
    pair = (value, 0.0) if isinstance(value, (int, float)) and not isinstance(value, bool) else value
    try:
        along, across = (float(v) for v in pair)
    except (TypeError, ValueError):
        along = across = math.nan
    if not (math.isfinite(along) and math.isfinite(across)):
        raise PhysiologyInputError("must be a finite number or a pair (along, across) of finite numbers",
                                   path="motor_point_offset_m", value=value, allowed="finite (m)")
    return along, across


def _drive(sol, points, axis_vec, length):
    """Mean field (V/m per A) along ``axis_vec`` (3,) or (N, 3) over ``length`` from each point."""
    p0 = points
    p1 = points + np.broadcast_to(axis_vec, points.shape) * length[:, None]
    phi = sol.potential(np.concatenate([p0[:, 0], p1[:, 0]]), np.concatenate([p0[:, 1], p1[:, 1]]),
                        np.concatenate([p0[:, 2], p1[:, 2]]))
    n = points.shape[0]
    return np.abs(phi[:n] - phi[n:]) / length


_ELECTRODES_CACHE: "OrderedDict[tuple, fld.Electrodes]" = OrderedDict()


def _electrodes(channel) -> "fld.Electrodes":
    """``Electrodes.from_channel`` memoised on the fields it reads (its overlap checks cost ~1 ms)."""
    key = (channel.spacing_cm, channel.orientation,
           tuple((e.shape, e.width_cm, e.length_cm, e.diameter_cm) for e in channel.electrodes))
    hit = _ELECTRODES_CACHE.get(key)
    if hit is None:
        hit = _ELECTRODES_CACHE[key] = fld.Electrodes.from_channel(channel)
        while len(_ELECTRODES_CACHE) > _GEOM_CACHE_SIZE:
            _ELECTRODES_CACHE.popitem(last=False)
    return hit


def _geometry(site, side, channel, patient, motor_point_offset_m, seed, layers=None,
              excitation="terminal") -> _Geometry:
    if layers is None:
        layers = fld.Layers.for_site(site, patient=patient, side=side)
    electrodes = _electrodes(channel)
    key = (site, side, layers.key(), electrodes.key(), tuple(motor_point_offset_m), int(seed), excitation)
    if key in _GEOM_CACHE:
        _GEOM_CACHE.move_to_end(key)
        return _GEOM_CACHE[key]
    sol = fld.solve(layers, electrodes)
    # One generator per (seed, side) so the same side gets the same units on every channel.
    rng = np.random.default_rng([int(seed), {"left": 0, "right": 1, "bilateral": 2}.get(side, 3)])
    defaults, muscles = _pool_spec(site)
    top = layers.top_of("muscle")
    idx = [i for i, lay in enumerate(layers.layers) if lay.name == "muscle"][0]
    thick = layers.layers[idx].thickness_m
    thick = 0.05 if not math.isfinite(thick) else thick
    active = electrodes.electrodes[0]
    motor = fibre_classes()["motor"]
    x_axis = np.array([1.0, 0.0, 0.0])
    names, mus, dia, drive, pos, centres = [], [], [], [], [], []
    reach = 0.9 * getattr(sol, "reach_m", np.inf) - 0.01
    for m, spec in enumerate(muscles):
        get = lambda k: spec.get(k, defaults[k])  # noqa: E731
        n, k = int(get("n_units")), int(get("terminals_per_unit"))
        f0, f1 = get("depth_fraction")
        half_w = get("width_mm") * 1e-3 / 2
        cy = rng.uniform(-half_w, half_w, n)
        cz = top + thick * rng.uniform(f0, f1, n)
        sd_t = get("territory_sd_mm") * 1e-3
        px = active.x_m + motor_point_offset_m[0] + rng.normal(0.0, get("innervation_zone_sd_mm") * 1e-3, (n, k))
        py = active.y_m + motor_point_offset_m[1] + cy[:, None] + rng.normal(0.0, sd_t, (n, k))
        pz = np.clip(cz[:, None] + rng.normal(0.0, sd_t, (n, k)), top + 1e-4, top + thick - 1e-4)
        # Keep every terminal (and its internode) inside the solved field's domain.
        px, py = np.clip(px, -reach, reach), np.clip(py, -reach, reach)
        d = motor.sample_diameters(n, rng)
        pts = np.stack([px.ravel(), py.ravel(), pz.ravel()], axis=1)
        e = _drive(sol, pts, x_axis, np.repeat(mrg_geometry(d)[2], k)).reshape(n, k)
        names.append(spec["name"])
        mus.append(np.full(n, m))
        dia.append(d)
        drive.append(e.max(axis=1))
        best = np.argmax(e, axis=1)
        pos.append(pts.reshape(n, k, 3)[np.arange(n), best])
        centres.append(np.stack([cy, cz], axis=1) + np.array([active.y_m + motor_point_offset_m[1], 0.0]))
    dia = np.concatenate(dia)
    passing = None
    if excitation == "terminal_or_passing":
        passing = _passing_drive(sol, electrodes, np.concatenate(centres), dia, defaults,
                                 np.random.default_rng([int(seed), 7]))
    geom = _Geometry(field=sol, unit_muscle=np.concatenate(mus), unit_diameter_m=dia,
                     unit_drive=np.concatenate(drive), unit_position_m=np.concatenate(pos), pools=tuple(names),
                     unit_passing_drive=passing)
    _GEOM_CACHE[key] = geom
    while len(_GEOM_CACHE) > _GEOM_CACHE_SIZE:
        _GEOM_CACHE.popitem(last=False)
    return geom


def _passing_drive(sol, electrodes, centres, terminal_diameter_m, defaults, rng):
    """Drive of each unit's parent axon passing along the fibres, as a terminal-equivalent field.

    The parent is a straight myelinated axon along x through the unit's territory centre
    ``centres`` (U, 2: y, depth), diameter from ``parent_axon_diameter_um``
    (``models/fibres/motor_pools.json``), nodes ``Δx_p`` apart (MRG 2002 spacing) at a random
    phase. Its node n is driven by the second difference ``Δ²φ_n = φ_{n−1} − 2φ_n + φ_{n+1}``
    (Rattay 1986, 1989; McNeal 1976), a terminal's end node by ``E·Δx_t``: both inject
    ``G_a × drive`` into the node they excite, so a pulse that just fires a terminal with
    ``E·Δx_t`` fires a passing node with ``|Δ²φ| = E·Δx_t`` (the short-pulse equivalence of
    Rattay's activating function). The tabulated critical node drive ``E_th·Δx`` is the same for
    every tabulated terminal diameter (12.9–13.1 mV at 300 µs over 3–7 µm) and is taken to hold
    for the thicker parent axon too [extrapolated]. Returns ``max_n |Δ²φ_n| / Δx_t`` (V/m per A),
    directly comparable with the terminal drive of the same unit.
    """
    spec = defaults["parent_axon_diameter_um"]
    U = centres.shape[0]
    d = np.clip(rng.normal(spec["mean"], spec["sd"], U), spec["min"], spec["max"]) * 1e-6
    dx_p = mrg_geometry(d)[2]
    x0, x1, _, _ = electrodes.span_m
    margin = defaults["parent_axon_margin_mm"] * 1e-3
    # The fine grid's edge is a seam of the interpolation: stay inside it.
    edge = getattr(sol, "half_width_m", np.inf) - 0.005
    lo, hi = max(x0 - margin, -edge), min(x1 + margin, edge)
    n = int(np.ceil((hi - lo) / dx_p.min())) + 1
    xs = lo + (rng.uniform(0.0, 1.0, U)[:, None] + np.arange(n)[None, :]) * dx_p[:, None]
    inside = xs <= hi
    phi = sol.potential(np.minimum(xs, hi), np.repeat(centres[:, :1], n, axis=1), np.repeat(centres[:, 1:], n, axis=1))
    second = np.abs(phi[:, :-2] - 2.0 * phi[:, 1:-1] + phi[:, 2:])
    second = np.where(inside[:, 2:], second, 0.0)
    return second.max(axis=1) / mrg_geometry(terminal_diameter_m)[2]


# ------------------------------------------------------------------------ thresholds

def _thresholds(table, name, wave, diameter_m, drive):
    """Threshold current (A), shape (S, N): tabulated E_th at each fibre's diameter / drive,
    times the class's calibration ``threshold_scale`` (models/fibres/fibre_classes.json)."""
    e_grid = np.log(table.waveform_factor(name, wave))             # (S, n_d)
    j, w = table.diameter_weights(name, diameter_m)
    if e_grid.shape[1] == 1:
        log_e = np.repeat(e_grid, diameter_m.size, axis=1)
    else:
        log_e = e_grid[:, j] * (1.0 - w) + e_grid[:, j + 1] * w
    with np.errstate(divide="ignore"):
        return fibre_classes()[name].threshold_scale * np.exp(log_e) / drive[None, :]


def _follow_weights(levels_count, above, first):
    """Combine per-term counts into the steady-train firing fraction.

    ``levels_count[..., k-1]`` is the fraction with threshold ≤ I/R(k·Δt) (k = 1 … T),
    ``above`` the fraction with threshold ≤ I. Units recovering only by the k-th pulse fire on
    every k-th pulse; the slower remainder is counted at 1/(T+1).
    """
    total = np.zeros(above.shape)
    prev = np.zeros(above.shape)
    for k in range(levels_count.shape[-1]):
        cur = np.maximum(levels_count[..., k], prev)
        total += (cur - prev) / (k + 1)
        prev = cur
    total += (above - prev) / (levels_count.shape[-1] + 1)
    return np.where(first, above, total)


def _recovery_levels(amps, intervals, recovery):
    """Effective amplitudes I/R(k·Δt), shape (R, T); 0 where absolutely refractory."""
    first = ~np.isfinite(intervals)
    k = np.arange(1, N_FOLLOW_TERMS + 1)
    dt = np.where(first[:, None], 1.0, intervals[:, None] * k[None, :])
    r = np.maximum(recovery(dt), 1.0)
    return np.where(np.isfinite(r), amps[:, None] / r, 0.0), first


def _following_fraction(sorted_thr, amps, intervals, recovery):
    """Firing fraction per pulse for one sorted threshold set (see :func:`_dense_fraction`)."""
    n = sorted_thr.size
    if n == 0:
        return np.zeros(amps.shape), np.zeros(amps.shape)
    levels, first = _recovery_levels(amps, intervals, recovery)
    above = np.searchsorted(sorted_thr, amps, side="right") / n
    counts = np.searchsorted(sorted_thr, levels, side="right") / n
    return _follow_weights(counts, above, first), above


def _dense_fraction(thr, row_stim, groups, n_groups, amps, intervals, recovery):
    """Fraction of each group's fibres firing, per row: (R, G) firing and (R, G) above threshold.

    ``thr`` (S, N) thresholds of every fibre for each stimulus (``inf``: not reachable),
    ``row_stim`` (R,) the stimulus of each row, ``groups`` (N,) the group (muscle or electrode)
    of each fibre. Few stimuli (a train): sorted thresholds and ``searchsorted`` per
    (stimulus, group). Many (a batch): one (R, T+1, N) comparison and a one-hot matrix product.
    """
    R = amps.size
    sizes = np.bincount(groups, minlength=n_groups).astype(float)
    if R == 0 or thr.shape[1] == 0:
        return np.zeros((R, n_groups)), np.zeros((R, n_groups))
    levels, first = _recovery_levels(amps, intervals, recovery)
    all_levels = np.concatenate([amps[:, None], levels], axis=1)          # (R, T+1)
    stims = np.unique(row_stim)
    frac = np.zeros((R, all_levels.shape[1], n_groups))
    if stims.size * n_groups <= 64:
        for st in stims:
            rows = np.flatnonzero(row_stim == st)
            for g in range(n_groups):
                col = np.sort(thr[st, groups == g])
                frac[rows, :, g] = np.searchsorted(col, all_levels[rows], side="right") / max(sizes[g], 1.0)
    else:
        onehot = np.zeros((groups.size, n_groups))
        onehot[np.arange(groups.size), groups] = 1.0
        step = max(1, int(4e6 // max(1, all_levels.shape[1] * thr.shape[1])))  # bound memory
        for lo in range(0, R, step):
            hit = thr[row_stim[lo:lo + step], None, :] <= all_levels[lo:lo + step, :, None]
            frac[lo:lo + step] = (hit.astype(float) @ onehot) / np.maximum(sizes, 1.0)
    above = frac[:, 0, :]
    return _follow_weights(np.moveaxis(frac[:, 1:, :], 1, -1), above, first[:, None]), above


# ------------------------------------------------------------------------ public

def recruit(train_or_params, site: str, patient=None, *, side: str | None = None,
            motor_point_offset_m=None, seed: int = 0, table=None, layers=None,
            person=None, motor_gain=1.0, excitation: str = "terminal") -> Recruitment:
    """Motor units and cutaneous afferents recruited at ``site``.

    Parameters
    ----------
    train_or_params : PulseTrain or StimulusSet
        A compiled session (every pulse of the channels targeting ``site``), or a batch of
        candidate stimuli (one row each, steady train at its frequency).
    site : str
        Site id (``models/sites/sites.json``) with motor-pool data.
    patient : Patient, optional
        Fat thickness per site and side (else the site's average build).
    side : str, optional
        Batch only: the side the candidates stimulate (default: the first channel's side).
    motor_point_offset_m : float or (float, float), optional
        Motor point position relative to the active electrode's centre (m): along the fibres,
        or (along, across the fibres). Default: the site's standard placement
        (:func:`motor_point_offset`, ``models/sites/motor_points.json``). Placing the active
        electrode away from the motor point raises the motor thresholds (Gobbo et al. 2011).
    seed : int
        Seed of the fibre sample (reproducible unit identities).
    table : ThresholdTable, optional
        Fibre thresholds (default: the shipped table).
    layers : emsim.physiology.field.Layers, optional
        Tissue stack to use instead of ``Layers.for_site(site, patient=..., side=...)``
        (it must contain a layer named ``"muscle"``).
    person : object with ``cutaneous_threshold_scale``, or mapping channel id → such, optional
        Person factors of the afferent model (e.g. :class:`emsim.physiology.discomfort.Person`,
        or one per channel from a patient calibration). Default: the patient's sex
        (:func:`emsim.physiology.cutaneous.sex_threshold_scale`), as
        ``discomfort.Person.from_patient``.
    motor_gain : float or mapping channel id → float
        Multiplies the current the motor units see (a patient calibration's ``motor_gain``);
        the afferents see the delivered current.
    excitation : {"terminal", "terminal_or_passing"}
        ``"terminal"`` (default): a unit fires when its most strongly driven terminal branch
        does (E·Δx; reference §2.6). ``"terminal_or_passing"``: also the unit's parent axon
        passing along the fibres, driven by the second difference of the potential (Rattay's
        activating function, :func:`_passing_drive`); each unit takes whichever needs less
        current. At the calibrated thresholds the parent axon almost never wins
        (``models/fibres/motor_pools.json`` ``passing_vs_terminal``), so the default leaves it
        out (about 0.5 s of CPU per new quadriceps geometry).

    Returns
    -------
    Recruitment

    Raises
    ------
    PhysiologyInputError
        Unknown site, no channel of the train at the site, bad stimulus values, a
        non-positive motor gain or cutaneous threshold scale, an unknown ``excitation``.

    References
    ----------
    Terminal excitation by E·Δx and calibration against measured motor thresholds:
    shared/reference/nerve_recruitment_discomfort.md §2.6 and §3.
    McIntyre CC, Richardson AG, Grill WM (2002). J Neurophysiol 87:995–1006 (membrane of the
    Brian2 fibre tables).
    Mogyoros I, Kiernan MC, Burke D (1996). Brain 119:439–447 (motor and sensory
    strength–duration time constants, target S1).
    Hmed AB et al. (2018). Comput Biol Med 101:218 (quadriceps amplitude recruitment, target R1;
    the motor threshold scale is fitted to it).
    Gobbo M et al. (2011). Eur J Appl Physiol 111:2451 (placement relative to the motor point).
    """
    if excitation not in EXCITATIONS:
        raise PhysiologyInputError("unknown motor excitation", path="excitation", value=excitation,
                                   allowed=", ".join(EXCITATIONS))
    table = load_table() if table is None else table
    _pool_spec(site)
    motor_point_offset_m = _offset_pair(motor_point_offset_m, site)
    if isinstance(train_or_params, PulseTrain):
        rows = _rows_from_train(train_or_params, site)
    elif isinstance(train_or_params, StimulusSet):
        rows = _rows_from_set(train_or_params, side)
    else:
        raise PhysiologyInputError("expected a PulseTrain or a StimulusSet", path="train_or_params",
                                   value=type(train_or_params).__name__, allowed="PulseTrain, StimulusSet")
    channels, chan_side, stim_channel, stim_wave, stim, amp, interval, t, chan = rows
    gains = [_per_channel(motor_gain, ch, "motor_gain") for ch in channels]
    scales = [_per_channel(_cutaneous_scale(person, patient, ch), ch, "person.cutaneous_threshold_scale")
              for ch in channels]
    geoms = [_geometry(site, s, ch, patient, motor_point_offset_m, seed, layers, excitation)
             for ch, s in zip(channels, chan_side)]

    # Motor pools: one per (muscle, side); each channel reaches the pools of its side only.
    sides = list(dict.fromkeys(chan_side))
    pool_names, unit_muscle, unit_d, unit_owner, unit_pos, unit_e, unit_p = [], [], [], [], [], [], []
    for s in sides:
        g = geoms[chan_side.index(s)]
        base = len(pool_names)
        pool_names += [f"{p}:{s}" for p in g.pools]
        unit_muscle.append(g.unit_muscle + base)
        unit_d.append(g.unit_diameter_m)
        unit_pos.append(g.unit_position_m)
        unit_e.append(g.unit_drive)
        unit_p.append(g.unit_passing_drive if g.unit_passing_drive is not None else np.zeros(g.unit_drive.size))
        unit_owner.append(np.full(g.unit_muscle.size, sides.index(s)))
    unit_muscle = np.concatenate(unit_muscle)
    unit_d = np.concatenate(unit_d)
    unit_pos = np.concatenate(unit_pos)
    unit_e = np.concatenate(unit_e)
    unit_p = np.concatenate(unit_p)
    unit_owner = np.concatenate(unit_owner)
    S = stim_channel.size
    thr = np.full((S, unit_muscle.size), np.inf)
    for c, g in enumerate(geoms):
        sel = np.flatnonzero(stim_channel == c)
        if sel.size == 0:
            continue
        cols = np.flatnonzero(unit_owner == sides.index(chan_side[c]))
        wave = {k: v[sel] for k, v in stim_wave.items()}
        drive = g.unit_drive if g.unit_passing_drive is None else np.maximum(g.unit_drive, g.unit_passing_drive)
        thr[np.ix_(sel, cols)] = _thresholds(table, "motor", wave, g.unit_diameter_m, drive) / gains[c]

    # Pulses repeat few (stimulus, amplitude, interval) combinations (plateaus, ramps, fixed
    # rates): fractions are computed once per distinct combination and spread back.
    # Intervals from differenced pulse times carry rounding noise: compare them at 0.1 µs, and
    # amplitudes at 1 nA, far below any physiological resolution.
    iv_key = np.where(np.isfinite(interval), np.round(interval * 1e7), -1.0)
    amp_key = np.round(amp * 1e9)
    order = np.lexsort((iv_key, amp_key, stim))
    first_of, inverse = _groups(order, stim, amp_key, iv_key)
    u_stim, u_amp, u_int = stim[first_of], amp[first_of], interval[first_of]
    M = len(pool_names)
    f, a = _dense_fraction(thr, u_stim, unit_muscle, M, u_amp, u_int, lambda dt: table.recovery_ratio("motor", dt))

    extra = _motor_extra(thr, u_stim, u_amp, stim_wave, unit_muscle, M, f, a)

    # Afferents have no refractoriness: one evaluation per distinct (stimulus, amplitude), found
    # among the few distinct rows above.
    electrodes = tuple((channels[c].id, j) for c in range(len(channels)) for j in range(2))
    u_key = amp_key[first_of]
    sa_first, sa_of_u = _groups(np.lexsort((u_key, u_stim)), u_stim, u_key)
    aff_frac, aff_thr, aff_spikes = _afferents(geoms, scales, stim_channel, stim_wave, u_stim[sa_first],
                                               u_amp[sa_first])

    notes = ["motor thresholds: Brian2 node-cable tables (models/fibres/thresholds.json) scaled by a factor fitted "
             "with the terminal depth range to Hmed 2018's quadriceps recruitment curve (models/fibres/"
             "motor_pools.json); lumbar absolute thresholds are extrapolated from that fit",
             "afferents: the discomfort model's calibrated skin current-density model (emsim.physiology.cutaneous; "
             "anchors in models/discomfort/discomfort.json, assumed)"]
    return Recruitment(site=site, channel_ids=tuple(c.id for c in channels), muscles=tuple(pool_names),
                       unit_muscle=unit_muscle, unit_diameter_m=unit_d, unit_position_m=unit_pos, unit_field_v_per_m=unit_e,
                       unit_threshold_a=thr, stimulus=stim,
                       stimulus_channel=stim_channel, amplitude_a=amp, interval_s=interval, t_s=t, channel=chan,
                       electrodes=electrodes, afferent_threshold_a=aff_thr,
                       _motor_distinct=f, _motor_above_distinct=a, _motor_row=inverse,
                       _afferent_distinct=aff_frac, _afferent_row=np.take(sa_of_u, inverse),
                       cutaneous_threshold_scale=tuple(scales), fields=tuple(g.field for g in geoms),
                       notes=tuple(notes),
                       unit_passing_field_v_per_m=unit_p if excitation == "terminal_or_passing" else None,
                       _afferent_spikes_distinct=aff_spikes if np.any(stim_wave["kind"] == 3) else None,
                       _motor_extra_delay_distinct=None if extra is None else extra[0],
                       _motor_extra_distinct=None if extra is None else extra[1])


def _motor_extra(thr, u_stim, u_amp, stim_wave, unit_muscle, n_pools, firing, above):
    """Extra action potentials of motor units per distinct row: ``(delay (G, K), fraction (G, K, M))``
    or ``None`` (no kHz row, or a burst-firing table without the motor class's times).

    Each unit's drive ``I/I_th`` picks its step of the Brian2 motor table (``spike_times``); a
    unit firing a ``(k+2)``-th action potential counts in ``fraction[:, k]`` of its pool, and the
    delays after each unit's own first action potential are averaged over those units. Scaled per
    pool by firing/above: units refractory at the onset miss the burst.
    """
    from emsim.physiology.burst_firing import load_burst_firing

    rows = np.flatnonzero(stim_wave["kind"][u_stim] == 3)
    table = load_burst_firing()
    if rows.size == 0 or "motor" not in table.times_s:
        return None
    st = u_stim[rows]
    grid, t = table.spike_times("motor", stim_wave["carrier_hz"][st], stim_wave["burst_s"][st])
    K = int(np.isfinite(t).sum(axis=-1).max()) - 1                    # the table pads to its longest burst
    t = t[..., :K + 1]
    G, U = u_amp.size, unit_muscle.size
    delay = np.full((G, K), np.nan)
    frac = np.zeros((G, K, n_pools))
    onehot = np.zeros((U, n_pools))
    onehot[np.arange(U), unit_muscle] = 1.0
    onehot /= np.maximum(onehot.sum(axis=0), 1.0)
    step_rows = max(1, int(2e6 // max(1, U * (K + 1))))                # bound the (R, U, K+1) gather
    for lo in range(0, rows.size, step_rows):
        g = rows[lo:lo + step_rows]
        with np.errstate(divide="ignore"):
            drive = u_amp[g, None] / thr[u_stim[g]]                    # 0 where unreachable (inf)
        step = np.searchsorted(grid[0], drive, side="right") - 1        # same grid for every row; -1: below
        tu = np.take_along_axis(t[lo:lo + step_rows], np.maximum(step, 0)[:, :, None], axis=1)  # (R, U, K+1)
        later = np.where((step >= 0)[:, :, None], tu[:, :, 1:] - tu[:, :, :1], np.nan)
        fires = np.isfinite(later)
        frac[g] = np.swapaxes(fires, 1, 2).astype(float) @ onehot
        n = fires.sum(axis=1)
        with np.errstate(invalid="ignore"):
            delay[g] = np.where(n > 0, np.where(fires, later, 0.0).sum(axis=1) / n, np.nan)
    with np.errstate(invalid="ignore", divide="ignore"):
        follow = np.where(above > 0, firing / above, 0.0)
    frac *= follow[:, None, :]
    return delay, frac


def _groups(order, *keys):
    """Rows grouped by equal ``keys``: ``(first row of each group, group of each row)``.

    ``order`` sorts the rows by the keys (first key slowest) or by a superset of them with
    these keys leading, so every group is one run of ``order``.
    """
    n = order.size
    if n == 0:
        return np.zeros(0, int), np.zeros(0, int)
    new = np.zeros(n, bool)
    new[0] = True
    for k in keys:
        ks = np.take(k, order)
        new[1:] |= ks[1:] != ks[:-1]
    group = np.cumsum(new, dtype=np.intp)
    group -= 1
    inverse = np.empty(n, np.intp)
    inverse[order] = group
    return order[new], inverse


def _afferents(geoms, scales, stim_channel, stim_wave, u_stim, u_amp):
    """Afferent fractions per distinct row (R, E), 5 % thresholds per stimulus (S, E) and action
    potentials per active afferent per distinct row (R, E; 1 for pulses), per class.

    Each channel's rows use its own skin current-density map and person scale; electrodes of the
    other channels stay at 0 (fractions) and ``inf`` (thresholds). Each stimulus's waveform
    enters through :func:`emsim.physiology.cutaneous.waveform_multiplier` (Brian2 fibre tables).
    """
    E, S = 2 * len(geoms), stim_channel.size
    frac = {k: np.zeros((u_amp.size, E)) for k in cut.AFFERENT_CLASSES}
    spikes = {k: np.ones((u_amp.size, E)) for k in cut.AFFERENT_CLASSES}
    thr = {k: np.full((S, E), np.inf) for k in cut.AFFERENT_CLASSES}
    pulse_width_s = stim_wave["pulse_width_s"]
    mult = cut.waveform_multiplier(stim_wave) if S else {}
    row_channel = stim_channel[u_stim]
    for c, g in enumerate(geoms):
        contact = g.field.skin_current_density()
        cols = slice(2 * c, 2 * c + 2)
        rows = np.flatnonzero(row_channel == c)
        if rows.size:
            st = u_stim[rows]
            row_mult = {k: v[st] for k, v in mult.items()}
            act = cut.activation(contact, u_amp[rows], pulse_width_s[st], threshold_scale=scales[c],
                                 threshold_multiplier=row_mult)
            for k, v in act.items():
                frac[k][rows, cols] = v
            if np.any(stim_wave["kind"][st] == 3):
                wave = {k: np.asarray(v)[st] for k, v in stim_wave.items()}
                for k, v in cut.burst_spikes(contact, u_amp[rows], wave, threshold_multiplier=row_mult,
                                             threshold_scale=scales[c]).items():
                    spikes[k][rows, cols] = v
        sel = np.flatnonzero(stim_channel == c)
        if sel.size:
            for k, v in cut.threshold_current(contact, pulse_width_s[sel], threshold_scale=scales[c],
                                              threshold_multiplier={k: v[sel] for k, v in mult.items()}).items():
                thr[k][sel, cols] = v
    return frac, thr, spikes


def _cutaneous_scale(person, patient, channel):
    """The person's cutaneous threshold scale for ``channel`` (see :func:`recruit`)."""
    if person is None:
        return cut.sex_threshold_scale(getattr(patient, "sex", None))
    if isinstance(person, Mapping):
        if channel.id not in person:
            raise PhysiologyInputError("no person factors for this channel", path=f"person.{channel.id}",
                                       value=None, allowed=", ".join(map(str, person)))
        person = person[channel.id]
    return getattr(person, "cutaneous_threshold_scale", person)


def _per_channel(value, channel, path):
    """A positive finite factor for ``channel`` from a scalar or a mapping channel id → scalar."""
    if isinstance(value, Mapping):
        if channel.id not in value:
            raise PhysiologyInputError("no value for this channel", path=f"{path}.{channel.id}", value=None,
                                       allowed=", ".join(map(str, value)))
        value = value[channel.id]
    try:
        v = float(value)
    except (TypeError, ValueError):
        v = math.nan
    if not (math.isfinite(v) and v > 0):
        raise PhysiologyInputError("must be a positive number", path=path, value=value, allowed="> 0")
    return v


def _rows_from_train(train: PulseTrain, site: str):
    prog = train.program
    chans = [c for c, ch in enumerate(prog.channels) if ch.site == site]
    if not chans:
        raise PhysiologyInputError("no channel of the program targets this site", path="site", value=site,
                                   allowed=", ".join(sorted({ch.site for ch in prog.channels})))
    channels = [prog.channels[c] for c in chans]
    blocks = [(b_i, b) for b_i, b in enumerate(train.blocks) if b.channel in chans]
    stim_of_block = np.full(max(len(train.blocks), 1), -1, dtype=int)
    for k, (b_i, _) in enumerate(blocks):
        stim_of_block[b_i] = k
    stim_channel = np.array([chans.index(b.channel) for _, b in blocks], dtype=int)
    wave = waveform_parameters([b.waveform for _, b in blocks]) if blocks else waveform_parameters([])
    stim, amp, interval, t, chan = [], [], [], [], []
    for k, c in enumerate(chans):
        sl = train.channel_slice(c)
        tt = train.t_s[sl]
        blk = train.block[sl]
        iv = np.diff(tt, prepend=-np.inf)
        # A pulse after an off period (gap > 1 s) starts a new train: no refractoriness.
        iv[iv > 1.0] = np.inf
        stim.append(stim_of_block[blk])
        amp.append(train.amplitude_a[sl])
        interval.append(iv)
        t.append(tt)
        chan.append(np.full(tt.size, k))
    cat = lambda a, dt=float: np.concatenate(a, dtype=dt, casting="unsafe") if a else np.zeros(0, dt)  # noqa: E731
    return (channels, [ch.side for ch in channels], stim_channel, wave, cat(stim, int), cat(amp), cat(interval),
            cat(t), cat(chan, int))


def _rows_from_set(batch: StimulusSet, side):
    channels = list(batch.channels)
    chan_side = [side or ch.side for ch in channels]
    B = len(batch)
    return (channels, chan_side, batch.channel_index.copy(), batch.waveform, np.arange(B), batch.amplitude_a,
            1.0 / batch.frequency_hz, np.full(B, np.nan), batch.channel_index.copy())
