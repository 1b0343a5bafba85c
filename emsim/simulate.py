"""Whole-session prediction: a program on a patient → contraction, fatigue, discomfort, safety.

:func:`evaluate` runs the chain of the design (``DESIGN.md``): compile the program for the
patient (one session), check it with the safety validator, recruit motor units and skin
afferents per pulse at each site (:mod:`emsim.physiology.recruitment`), drive each muscle region
(the channels on one muscle and side together: they reach the same units, :mod:`emsim._muscle_regions`)
with the recruited fraction (:mod:`emsim.physiology.muscle`: force, fatigue,
recovery), and predict discomfort from the afferent drive and the contraction
(:mod:`emsim.physiology.discomfort`). The result, a :class:`Prediction`, holds the traces and
the scalar outcomes a clinician asks about, plus the lowest evidence level of the parameters
used (lumbar values are mostly extrapolated from limb data, and the prediction says so).

Research use only: emsim has no clinical clearance.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from emsim._muscle_regions import channel_shares, refractory_interval_s, region_rows, regions as muscle_regions
from emsim.errors import PatientError, ProgramError
from emsim.program.compile import PulseTrain, compile as compile_program

__all__ = ["Prediction", "evaluate", "evaluate_batch", "predict_train", "EVIDENCE_ORDER", "SCALAR_KEYS",
           "EFFECTIVE_MVC_PCT", "MVC_DENOMINATOR"]

#: Weakest first: the prediction reports the weakest evidence among the parameters it used.
EVIDENCE_ORDER = ("assumed", "extrapolated", "fitted", "measured")
#: A contraction counts as effective above this share of the muscle region's maximum force.
EFFECTIVE_MVC_PCT = 10.0
#: Keys of :attr:`Prediction.scalars`, in the order ``emsim evaluate --json`` prints them.
SCALAR_KEYS = ("peak_mvc_pct", "mean_mvc_pct", "effective_contractions", "fti_ns",
               "fatigue_decline_pct", "peak_discomfort_nrs", "mean_discomfort_nrs",
               "total_charge_mc", "motor_recruitment_fraction")

#: What %MVC is relative to. A measured MVC (patient file) is a voluntary joint torque or
#: force of the whole muscle group; the model's forces are quadriceps-equivalent newtons of the
#: region under one electrode pair (models/muscles/*.json: "not a joint force"), so a moment arm
#: alone would not make the two comparable (the region's share of the group and the PCSA
#: scaling are extrapolated). The denominator therefore stays the model's own maximum evoked
#: force of the region, and the measured MVC is reported beside it, never divided into it.
MVC_DENOMINATOR = "model_max_evoked"
_DENOMINATOR_NOTE = ("%MVC is relative to the model's maximum evoked force of each stimulated region (rested, "
                     "fully recruited, 100 Hz)")

# Site id → muscle parameter set (file stem in models/muscles) where the names differ.
_SITE_MUSCLE = {"quadriceps": "quadriceps_ding2003"}


@dataclass
class Prediction:
    """What one session of a program does to one patient.

    Attributes
    ----------
    program, patient
        The inputs (the patient may be ``None`` for absolute-amplitude programs).
    session : int
    t_s : numpy.ndarray
        Sample times of the traces, s.
    channel_ids : tuple of str
    force_n : numpy.ndarray
        Each channel's force, N, shape ``(channels, n_t)``. Channels on the same site and side
        drive one region (the same units, :mod:`emsim._muscle_regions`): its force is split among
        them in proportion to each channel's recruited fraction summed over its pulses in the
        0.25 s (the muscle model's contraction gap) up to the region's latest pulse, so a
        relaxing or resting region keeps the split of the stimulation that made its force. So
        a channel alone on its muscle and side carries its region's whole force, alternating
        channels each carry the force while they stimulate, and the channels' forces always add
        up to the region's force.
    mvc_pct : numpy.ndarray
        The same as a percentage of the region's maximum evoked force (rested, fully recruited,
        100 Hz), shape ``(channels, n_t)``. This is the denominator even when the patient file
        holds a measured MVC (see :data:`MVC_DENOMINATOR`).
    total_force_n : numpy.ndarray
        Sum over channels (each region counted once), shape ``(n_t,)``.
    discomfort_nrs : numpy.ndarray or None
        Discomfort (NRS 0–10) on the same time axis (the worst site at each time).
    capacity : numpy.ndarray
        Remaining force capacity at the end of the region each channel drives (1 = rested); the
        same value for channels sharing a region.
    channel_peak_mvc_pct : numpy.ndarray
        Largest peak, % of the region's maximum evoked force, of the region's contractions in
        which the channel delivers pulses (the contraction under its electrodes, not a share of
        it; for a channel alone on its region, its own largest peak). The discomfort model's
        contraction term uses the same region peaks.
    scalars : dict
        The outcomes (keys :data:`SCALAR_KEYS`). ``fatigue_decline_pct`` is, per muscle region
        and over the main phase, 1 − (force at the end of the last contraction's plateau) /
        (the strongest contraction's peak), in %, the largest over the regions (0 without a
        contraction). The end-of-plateau force
        (:attr:`emsim.physiology.muscle.ForceResult.end_force_n`) is the force peak after the
        contraction's last fully driving pulse: a ramp-down is not counted as fatigue, and a
        continuous or long contraction shows the force it loses while it lasts (the published
        fatigue index of sustained stimulation: force at the end over the initial force, e.g.
        Bigland-Ritchie, Jones & Woods 1979, Exp Neurol 64:414), where comparing the contractions' peaks, reached early in
        each, read 0 for one continuous contraction.
    safety : emsim.safety.report.SafetyReport
    evidence : str
        Weakest evidence level among the parameters used.
    notes : list of str
        Including which %MVC denominator was used.
    measured_mvc : dict
        Channel id → the patient's measured MVC at that channel's site and side (value, unit,
        method, date), reported beside the prediction, not used as its denominator.
    """

    program: Any
    patient: Any
    session: int
    t_s: np.ndarray
    channel_ids: tuple
    force_n: np.ndarray
    mvc_pct: np.ndarray
    total_force_n: np.ndarray
    discomfort_nrs: np.ndarray | None
    capacity: np.ndarray
    channel_peak_mvc_pct: np.ndarray
    scalars: dict
    safety: Any
    evidence: str
    notes: list = field(default_factory=list)
    measured_mvc: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        """The machine-readable summary (what ``emsim evaluate --json`` prints)."""
        out = {k: self.scalars[k] for k in SCALAR_KEYS}
        out["safety"] = {"ok": bool(self.safety.ok),
                         "errors": [f.to_dict() if hasattr(f, "to_dict") else str(f)
                                    for f in self.safety.errors],
                         "warnings": [f.to_dict() if hasattr(f, "to_dict") else str(f)
                                      for f in self.safety.warnings]}
        out["evidence"] = self.evidence
        out["program"] = self.program.name
        out["patient"] = getattr(self.patient, "id", None)
        out["session"] = self.session
        out["channels"] = {cid: {"peak_mvc_pct": float(self.channel_peak_mvc_pct[i]),
                                 "end_capacity": float(self.capacity[i]),
                                 "mvc_denominator": MVC_DENOMINATOR,
                                 "measured_mvc": self.measured_mvc.get(cid)}
                           for i, cid in enumerate(self.channel_ids)}
        out["notes"] = list(self.notes)
        return out

    def series(self) -> dict[str, np.ndarray]:
        """Time series as columns (for CSV/Parquet)."""
        cols = {"t_s": self.t_s, "total_force_n": self.total_force_n}
        for i, cid in enumerate(self.channel_ids):
            cols[f"force_n[{cid}]"] = self.force_n[i]
            cols[f"mvc_pct[{cid}]"] = self.mvc_pct[i]
        if self.discomfort_nrs is not None:
            cols["discomfort_nrs"] = self.discomfort_nrs
        return cols


def _muscle_name(site: str) -> str:
    return _SITE_MUSCLE.get(site, site)


def _weakest(levels) -> str:
    present = [lv for lv in levels if lv in EVIDENCE_ORDER]
    return min(present, key=EVIDENCE_ORDER.index) if present else "assumed"


def _regions(program):
    """Muscle regions of the program: the channels on one site and side share one row.

    A ``bilateral`` channel (one pair across both sides) stimulates a region of its own, drawn
    from its own unit sample (:func:`emsim.physiology.recruitment.recruit`); beside a left or
    right channel on the same site it would reach units of those sides too, which the model
    cannot place, so that combination is refused.
    """
    out = muscle_regions([ch.site for ch in program.channels], [ch.side for ch in program.channels],
                         [_muscle_name(ch.site) for ch in program.channels])
    for r in out:
        if r.side != "bilateral":
            continue
        sided = [c for o in out if o.site == r.site and o.side != "bilateral" for c in o.channels]
        if sided:
            c = min(sided)
            raise ProgramError("a bilateral channel and a left or right channel on the same site cannot be "
                               "predicted: the bilateral pair reaches units of both sides, and the model cannot "
                               "say which of them the one-sided channel also drives",
                               path=f"$.channels[{c}].side", value=program.channels[c].side,
                               allowed=f"bilateral, like channel {program.channels[r.channels[0]].id!r} on "
                                       f"{program.channels[c].site}, or only left/right channels there")
    return out


def _peak_with_channel(peaks_pct: np.ndarray, starts: np.ndarray, pulses: np.ndarray) -> float:
    """Largest peak among the region's contractions in which the channel delivers a pulse."""
    ok = np.isfinite(starts)
    starts, peaks_pct = starts[ok], peaks_pct[ok]
    if starts.size == 0 or pulses.size == 0:
        return 0.0
    k = np.searchsorted(starts, pulses, side="right") - 1
    k = np.unique(k[k >= 0])
    return float(np.nanmax(peaks_pct[k], initial=0.0)) if k.size else 0.0


def _channel_motor_fraction(rec, train: PulseTrain, program, site: str) -> dict[int, tuple]:
    """Muscle-model pulses of each channel of ``site`` (program channel order).

    Returns channel index → ``(times_s, fraction)``: the channel's pulses with the fraction of
    its side's pool each recruits, plus, for kHz bursts, the extra action potentials the
    strongly driven units fire within a burst (:attr:`emsim.physiology.recruitment.Recruitment.
    motor_extra_spikes`, from the Brian2 burst-firing table's motor class), at their delays
    after the burst with the fraction of the pool that fires them.
    """
    from emsim.physiology.recruitment import with_extra_spikes

    chans = [c for c, ch in enumerate(program.channels) if ch.site == site]
    delay_all, extra_all = rec.motor_extra_spikes
    out = {}
    for k, c in enumerate(chans):
        rows = rec.channel == k
        side = program.channels[c].side
        pools = [i for i, name in enumerate(rec.muscles) if name.endswith(f":{side}")]
        frac = rec.motor_fraction[rows][:, pools].mean(axis=1) if pools else np.zeros(int(rows.sum()))
        frac = np.clip(frac, 0.0, 1.0)
        times = train.t_s[train.channel_slice(c)]
        if extra_all.shape[1] and pools:
            extra = np.clip(extra_all[rows][:, :, pools].mean(axis=2), 0.0, 1.0)
            times, frac = with_extra_spikes(times, frac, delay_all[rows], extra,
                                            refractory_s=refractory_interval_s())
        out[c] = (times, frac)
    return out


@functools.lru_cache(maxsize=256)
def _cached_calibration(patient_json: str, channel_json: str):
    from emsim.body.calibration import calibrate
    from emsim.body.patient import loads_patient
    from emsim.program.model import Channel

    ch = Channel.model_validate_json(channel_json)
    return calibrate(loads_patient(patient_json), ch.site, ch.side, channel=ch)


def _calibration(patient, channel):
    """(person factors for the channel's site and side, a note or ``""``).

    A calibration stored in the patient file (``emsim calibrate --out``) is used while the
    thresholds it was fitted from are the file's; otherwise the factors are fitted here.
    """
    from emsim.body.calibration import Calibration, stored_calibration
    from emsim.body.patient import dumps_patient

    if patient is None or not patient.thresholds_for_any(channel.site, channel.side):
        return Calibration(site=channel.site, side=channel.side), ""
    stored, note = stored_calibration(patient, channel.site, channel.side)
    if stored is not None:
        return stored, f"{channel.id}: person factors from the calibration stored in the patient file ({stored.stored})"
    return _cached_calibration(dumps_patient(patient), channel.model_dump_json()), \
        (f"{channel.id}: {note}" if note else "")


def _electrode_areas(channel) -> list[float]:
    """Electrode areas of a program channel, m²."""
    return [e.area_cm2 * 1e-4 for e in channel.electrodes]


def _main_window(train: PulseTrain, channel: int) -> tuple[float, float]:
    """Session-time window of the channel's main phase(s); the whole session if the program marks
    none; empty, ``(inf, -inf)``, if the program has main phases but the channel stimulates in
    none of them (so it adds nothing to the window of a region it shares: a warm-up-only channel
    beside a main-phase one must not put its warm-up contractions into the fatigue decline)."""
    phases = train.program.phases
    blocks = [b for b in train.blocks if b.channel == channel and phases[b.phase].kind == "main"]
    if not blocks:
        if any(phases[b.phase].kind == "main" for b in train.blocks):
            return np.inf, -np.inf
        return -np.inf, np.inf
    return min(b.start_s for b in blocks), max(b.end_s for b in blocks)


def _force_fraction_per_pulse(t_p: np.ndarray, contractions) -> np.ndarray:
    """Each pulse gets the peak force fraction of the contraction it belongs to (0 if unknown).

    An upper bound during ramps; the discomfort model uses it for the contraction term.
    """
    if contractions is None:
        return np.zeros(t_p.size)
    starts, frac = contractions
    ok = np.isfinite(starts) & np.isfinite(frac)
    starts, frac = starts[ok], frac[ok]
    if starts.size == 0:
        return np.zeros(t_p.size)
    k = np.clip(np.searchsorted(starts, t_p, side="right") - 1, 0, starts.size - 1)
    return np.clip(frac[k], 0.0, None)


def evaluate(program, patient=None, *, device: str | None = None, session: int = 1,
             dt: float | None = None, trace: bool = True) -> Prediction:
    """Predict one session of ``program`` on ``patient``.

    Parameters
    ----------
    program : emsim.program.model.Program
    patient : emsim.body.patient.Patient, optional
        Needed for relative amplitudes (measured thresholds), fat thickness and person factors.
    device : str, optional
        Device profile id for the safety check.
    session : int
        Session number (first-session caps and progression apply).
    dt : float, optional
        Trace sample interval, s (default: automatic, see :func:`emsim.physiology.muscle.simulate`).
    trace : bool
        Keep the time series (``False`` for searches: scalars only).

    Returns
    -------
    Prediction

    Raises
    ------
    PatientError
        A relative amplitude cannot be resolved for this patient.
    ProgramError
        A bilateral channel shares a muscle with a left or right channel (see :func:`predict_train`).
    """
    from emsim.safety import check

    report = check(program, patient, device, session=session)
    train = compile_program(program, patient, session=session)
    return predict_train(train, patient, report=report, dt=dt, trace=trace)


def predict_train(train: PulseTrain, patient=None, *, report=None, dt: float | None = None,
                  trace: bool = True) -> Prediction:
    """Predict what a compiled (or delivered) pulse train does to ``patient``.

    :func:`evaluate` compiles a program and calls this; the simulated stimulator calls it on the
    pulses it actually delivered (pauses, intensity changes and stops included).

    Parameters
    ----------
    train : PulseTrain
    patient : Patient, optional
    report : SafetyReport, optional
        Safety report to attach (default: checked again for ``train.program``).
    dt, trace
        As in :func:`evaluate`.

    Notes
    -----
    Channels on the same site (muscle) and side are one muscle row: the union of their pulses, each
    with its own channel's recruited fraction, pulses of different channels closer than the
    motor axon's refractory period merged into one (:mod:`emsim._muscle_regions`). The region's
    units, fatigue and occlusion are shared, and the scalars (peak and mean %MVC, effective
    contractions, FTI, fatigue decline over the union of the channels' main phases) count each
    region once. How the per-channel outputs are defined: :class:`Prediction`.

    Raises
    ------
    PatientError
        A relative amplitude cannot be resolved for this patient.
    ProgramError
        A bilateral channel and a left or right channel on the same site.
    """
    from emsim.physiology import discomfort as dsc
    from emsim.physiology import recruitment as rct
    from emsim.physiology._muscle_solver import GAP as CONTRACTION_GAP
    from emsim.physiology.muscle import load_muscle, simulate
    from emsim.safety import check

    program = train.program
    session = train.session
    if report is None:
        report = check(program, patient, None, session=session)
    if np.any(~np.isfinite(train.amplitude_a)):
        raise PatientError("relative amplitude cannot be resolved: the patient has no measured "
                           "threshold for a channel's site, side and kind", path="patient.thresholds",
                           value=getattr(patient, "id", None),
                           allowed="thresholds for every channel with a relative amplitude")
    n_ch = len(train.channel_ids)
    regions = _regions(program)
    notes: list[str] = []
    levels: list[str] = []
    # person factors fitted to the patient's own thresholds, per channel (1.0 when unmeasured)
    cals = []
    for ch in program.channels:
        cal, note = _calibration(patient, ch)
        cals.append(cal)
        if note:
            notes.append(note)
    for ch, cal in zip(program.channels, cals):
        if not cal.calibrated:
            notes.append(f"{ch.id}: no thresholds measured at {ch.site} ({ch.side}); population-average "
                         "recruitment and discomfort")
    # person factors fitted to the patient's thresholds where measured, else the population's
    persons = {ch.id: (dsc.Person(cutaneous_threshold_scale=cal.cutaneous_scale, sensitivity=cal.sensitivity)
                       if cal.calibrated else dsc.Person.from_patient(patient))
               for ch, cal in zip(program.channels, cals)}
    gains = {ch.id: cal.motor_gain for ch, cal in zip(program.channels, cals)}
    per_pulse_recr: dict[int, tuple] = {}
    discomfort_rows = []
    for site in dict.fromkeys(ch.site for ch in program.channels):
        rec = rct.recruit(train, site, patient, person=persons, motor_gain=gains)
        per_pulse_recr.update(_channel_motor_fraction(rec, train, program, site))
        discomfort_rows.append(rec)
        notes.extend(rec.notes)

    duration = float(train.duration_s)
    t_out = None
    force = None
    capacity = np.ones(n_ch)
    peaks_pct, fti_total, decline, mvc_mean = [], 0.0, [], []
    effective = 0
    force_by_channel: dict[int, tuple] = {}
    channel_peak = np.zeros(n_ch)
    chan_times = [per_pulse_recr[c][0] for c in range(n_ch)]
    chan_recr = [per_pulse_recr[c][1] for c in range(n_ch)]
    refractory_s = refractory_interval_s()
    for r in regions:
        if len(r.channels) > 1:
            notes.append(", ".join(program.channels[c].id for c in r.channels)
                         + f": same site and side ({r.site}, {r.side}): one region, the same motor units, "
                           "fatigue and occlusion; pulses closer than "
                           f"{refractory_s * 1e3:g} ms merged; force split by recent recruitment")
    for muscle_name in dict.fromkeys(r.muscle for r in regions):
        regs = [r for r in regions if r.muscle == muscle_name]
        m = load_muscle(muscle_name)
        levels += list(m.evidence().values())
        rows = [region_rows([chan_times[c] for c in r.channels], [chan_recr[c] for c in r.channels],
                            refractory_s) for r in regs]
        n = max((t.size for t, _ in rows), default=0)
        if n == 0:
            continue
        times = np.full((len(regs), n), np.nan)
        recr = np.ones((len(regs), n))
        for j, (t_r, r_r) in enumerate(rows):
            times[j, :t_r.size] = t_r
            recr[j, :t_r.size] = r_r
        empty = np.isnan(times).all(axis=1)
        if empty.any():  # a region without pulses in this session contributes no force
            times[empty, 0] = 0.0
            recr[empty, 0] = 0.0
        res = simulate(times, m, recruitment=recr, t_end=max(duration, float(np.nanmax(times))),
                       dt=dt, trace=trace)
        if force is None:
            t_out = res.t
            force = np.zeros((n_ch, res.t.size))
        pk = res.peak_force_n / m.max_force * 100.0
        for j, reg in enumerate(regs):
            idx = list(reg.channels)
            if len(idx) == 1:
                force[idx[0]] = res.force_n[j]
            elif res.t.size:
                force[idx] = res.force_n[j] * channel_shares(res.t, [chan_times[c] for c in idx],
                                                             [chan_recr[c] for c in idx], CONTRACTION_GAP)
            capacity[idx] = res.capacity[j]
            starts = res.contraction_start_s[j]
            for c in idx:
                force_by_channel[c] = (starts, pk[j] / 100.0)
                channel_peak[c] = _peak_with_channel(pk[j], starts, chan_times[c]) if len(idx) > 1 \
                    else float(np.nanmax(pk[j], initial=0.0))
            # fatigue: the force at the end of the main phase's last contraction's plateau
            # against the strongest contraction peak (a peak comes early in a contraction: the
            # end force sees the fatigue inside long and continuous contractions too)
            lo = min(_main_window(train, c)[0] for c in idx)
            hi = max(_main_window(train, c)[1] for c in idx)
            sel = np.isfinite(pk[j]) & (starts >= lo) & (starts < hi)
            row = pk[j][sel]
            if row.size and row.max() > 0:
                decline.append(100.0 * (1.0 - res.end_force_n[j][sel][-1] / m.max_force * 100.0 / row.max()))
            if row.size:
                mvc_mean.append(float(np.mean(row)))
        peaks_pct.append(np.nanmax(pk, initial=0.0))
        effective += int(np.sum(pk > EFFECTIVE_MVC_PCT))
        fti_total += float(np.nansum(res.fti_total_ns))
    t_out = np.zeros(0) if t_out is None else t_out
    force = np.zeros((n_ch, t_out.size)) if force is None else force
    max_force = np.array([load_muscle(_muscle_name(ch.site)).max_force for ch in program.channels])
    mvc = force / max_force[:, None] * 100.0

    # Discomfort: cutaneous activation from each channel's skin current density (the
    # discomfort model's own calibration, models/discomfort/discomfort.json), with the
    # contraction each pulse belongs to.
    nrs_peak, nrs_mean = 0.0, 0.0
    nrs_trace = None
    for rec in discomfort_rows:
        chans = [c for c, ch in enumerate(program.channels) if ch.site == rec.site]
        for k, c in enumerate(chans):
            sl = train.channel_slice(c)
            t_p = train.t_s[sl]
            if t_p.size == 0:
                continue
            person = persons[program.channels[c].id]
            afferent = rec.channel_afferent(k)
            area = np.array([_electrode_areas(program.channels[c])])
            force_frac = _force_fraction_per_pulse(t_p, force_by_channel.get(c))
            drive = dsc.AfferentDrive(times_s=t_p[None], afferent=afferent, electrode_area_m2=area,
                                      force_fraction=force_frac[None], spike_factor=rec.channel_spike_factor(k))
            pred = dsc.predict(drive, person=person)
            nrs_peak = max(nrs_peak, float(np.nanmax(pred.peak)))
            nrs_mean = max(nrs_mean, float(np.nanmax(pred.mean)))
            if trace and t_out.size:
                vv = pred.nrs[0]
                ok = np.isfinite(vv)
                site_trace = np.interp(t_out, t_p[ok], vv[ok], left=0.0, right=0.0) if ok.any() \
                    else np.zeros(t_out.size)
                nrs_trace = site_trace if nrs_trace is None else np.maximum(nrs_trace, site_trace)

    levels.append("assumed" if not levels else _weakest(levels))
    measured = _measured_mvc(patient, program)
    notes.append(_DENOMINATOR_NOTE + (
        "; the measured MVC in the patient file (" + ", ".join(sorted({f"{m['site']} ({m['side']}) {m['value']:g} "
                                                                       f"{m['unit']}" for m in measured.values()}))
        + ") is reported per channel, not used as the denominator: model forces are region forces in "
          "quadriceps-equivalent newtons, not joint torques" if measured else "; no MVC measured"))
    scalars = {
        "peak_mvc_pct": float(max(peaks_pct, default=0.0)),
        "mean_mvc_pct": float(np.mean(mvc_mean)) if mvc_mean else 0.0,
        "effective_contractions": int(effective),
        "fti_ns": float(fti_total),
        "fatigue_decline_pct": float(np.max(decline)) if decline else 0.0,
        "peak_discomfort_nrs": float(nrs_peak),
        "mean_discomfort_nrs": float(nrs_mean),
        "total_charge_mc": float(train.total_charge_c() * 1e3),
        "motor_recruitment_fraction": float(max((np.max(r, initial=0.0)
                                                 for r in chan_recr), default=0.0)),
    }
    return Prediction(program=program, patient=patient, session=session, t_s=t_out,
                      channel_ids=tuple(train.channel_ids), force_n=force, mvc_pct=mvc,
                      total_force_n=force.sum(axis=0), discomfort_nrs=nrs_trace,
                      capacity=capacity, channel_peak_mvc_pct=channel_peak, scalars=scalars, safety=report,
                      evidence=_weakest(levels), notes=notes, measured_mvc=measured)


def _measured_mvc(patient, program) -> dict:
    """Channel id → the patient's measured MVC at the channel's site and side, JSON-ready."""
    out = {}
    for ch in program.channels:
        m = patient.mvc_for(ch.site, ch.side) if hasattr(patient, "mvc_for") else None
        if m is not None:
            value, unit = m.value
            out[ch.id] = {"site": m.site, "side": m.side, "value": value, "unit": unit, "method": m.method,
                          "date": m.date}
    return out


def evaluate_batch(programs: Sequence, patients, **kwargs) -> list[Prediction]:
    """:func:`evaluate` for many programs (one patient for all, or one per program)."""
    if not isinstance(patients, (list, tuple)):
        patients = [patients] * len(programs)
    if len(patients) != len(programs):
        raise PatientError("one patient per program, or one for all", path="patients",
                           value=len(patients), allowed=f"1 or {len(programs)}")
    return [evaluate(p, q, **kwargs) for p, q in zip(programs, patients)]
