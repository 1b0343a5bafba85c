"""Patient calibration: fit the person factors of the models to the thresholds measured on them.

The recruitment and discomfort models predict population-average thresholds for a site, a
patient's fat thickness and an electrode pair. A measured patient differs: skin, nerve depth,
sensitivity. Three factors per site and side make the models reproduce that patient's own
measurements (``Threshold`` entries of the patient file, any pulse width and frequency):

* ``motor_gain`` multiplies the current the motor units see, so the model's motor threshold
  (``MOTOR_CRITERION`` of the pool recruited) equals the measured one;
* ``cutaneous_scale`` multiplies the cutaneous threshold current densities
  (:class:`emsim.physiology.discomfort.Person`), so the model's first sensation
  (``SENSORY_NRS``) falls at the measured sensory threshold;
* ``sensitivity`` multiplies the afferent drive before the NRS transfer, so the maximum
  tolerated current gives ``TOLERANCE_NRS`` (the reference anchors tolerance at NRS 8–10).

With several measurements of one kind (different pulse widths) the factor is the geometric
mean of the single-measurement factors, and the spread between them is part of the
uncertainty. The uncertainty also includes the test–retest variability of a threshold
measurement (``MEASUREMENT_CV``, assumed 10 %); ranges are 95 % intervals on a log scale.

``emsim calibrate PATIENT --out FILE`` stores the factors in the patient file
(:func:`with_calibration`: per site and side, with their ranges, the thresholds they were
fitted from, the electrode pair, the emsim version and the date); a prediction reads them back
(:func:`stored_calibration`) while those thresholds are still the file's.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from emsim.errors import PatientError

__all__ = ["Calibration", "calibrate", "default_channel", "with_calibration", "stored_calibration",
           "MOTOR_CRITERION", "SENSORY_NRS", "TOLERANCE_NRS", "MEASUREMENT_CV"]

#: Fraction of the motor pool recruited at the motor threshold (first visible contraction).
MOTOR_CRITERION = 0.05
#: NRS at the sensory threshold (first sensation).
SENSORY_NRS = 0.5
#: NRS at the maximum tolerated current (reference §4.2: tolerance limit NRS 8–10).
TOLERANCE_NRS = 8.0
#: Test–retest coefficient of variation of one threshold measurement (assumed).
MEASUREMENT_CV = 0.10
_AMPS_MA = np.geomspace(0.5, 200.0, 240)


@dataclass(frozen=True)
class Calibration:
    """Person factors for one site and side, with their 95 % ranges and the fit.

    Attributes
    ----------
    site, side : str
    motor_gain, cutaneous_scale, sensitivity : float
        1.0 when the patient has no measurement of that kind (then ``*_range`` is ``None``).
    motor_gain_range, cutaneous_scale_range, sensitivity_range : tuple or None
    fit : list of dict
        Per measurement: kind, pulse width, frequency, measured and model threshold (mA)
        before and after the fit (empty when read back from the patient file).
    stored : str or None
        ``"<date>, emsim <version>"`` when read from the patient file's calibration section.
    """

    site: str
    side: str
    motor_gain: float = 1.0
    cutaneous_scale: float = 1.0
    sensitivity: float = 1.0
    motor_gain_range: tuple | None = None
    cutaneous_scale_range: tuple | None = None
    sensitivity_range: tuple | None = None
    fit: list = field(default_factory=list)
    stored: str | None = None

    @property
    def calibrated(self) -> bool:
        return bool(self.fit) or self.stored is not None

    def to_dict(self) -> dict:
        return {"site": self.site, "side": self.side, "motor_gain": self.motor_gain,
                "motor_gain_range": self.motor_gain_range, "cutaneous_scale": self.cutaneous_scale,
                "cutaneous_scale_range": self.cutaneous_scale_range,
                "sensitivity": self.sensitivity, "sensitivity_range": self.sensitivity_range,
                "fit": self.fit, "stored": self.stored}


def default_channel(site: str, side: str):
    """The electrode pair assumed when no program says otherwise: 5 × 9 cm, 4 cm apart."""
    from emsim.program.model import Channel

    return Channel.model_validate_json(
        '{"id": "cal", "site": "%s", "side": "%s", "electrodes": ['
        '{"shape": "rectangle", "width_cm": 5, "length_cm": 9},'
        '{"shape": "rectangle", "width_cm": 5, "length_cm": 9}],'
        '"spacing_cm": 4, "orientation": "along_fibres"}' % (site, side))


def _crossing(x: np.ndarray, y: np.ndarray, level: float) -> float:
    """First x where the increasing curve y reaches ``level`` (log-interpolated); NaN if never."""
    above = np.flatnonzero(y >= level)
    if above.size == 0:
        return math.nan
    i = int(above[0])
    if i == 0:
        return float(x[0])
    f = (level - y[i - 1]) / (y[i] - y[i - 1]) if y[i] > y[i - 1] else 1.0
    return float(math.exp(math.log(x[i - 1]) + f * (math.log(x[i]) - math.log(x[i - 1]))))


def _model_motor_threshold_ma(channel, patient, pulse_width_us, frequency_hz) -> float:
    from emsim.physiology import recruitment as rct

    ss = rct.StimulusSet.from_arrays(_AMPS_MA, pulse_width_us, frequency_hz, channels=[channel])
    rec = rct.recruit(ss, channel.site, patient, side=channel.side)
    frac = rec.motor_fraction_above.mean(axis=1)
    return _crossing(_AMPS_MA, np.maximum.accumulate(frac), MOTOR_CRITERION)


def _steady_drive(channel, patient, pulse_width_us, frequency_hz, cutaneous_scale, amps_ma):
    """Total discomfort drive (before the NRS transfer) of 1 s steady trains, per amplitude."""
    from emsim.physiology import discomfort as dsc
    from emsim.physiology.field import solve_channel

    contact = solve_channel(channel, patient).skin_current_density()
    person = dsc.Person(cutaneous_threshold_scale=cutaneous_scale)
    act = dsc.cutaneous_activation(contact, np.asarray(amps_ma) * 1e-3, pulse_width_us * 1e-6,
                                   person=person)
    n = max(2, int(round(frequency_hz)))
    times = np.broadcast_to(np.arange(n) / frequency_hz, (len(amps_ma), n))
    aff = {k: np.repeat(v[:, :, None], n, axis=2) for k, v in act.items()}
    area = np.array([[e.area_cm2 * 1e-4 for e in channel.electrodes]])
    drive = dsc.AfferentDrive(times_s=times, afferent=aff, electrode_area_m2=area)
    pred = dsc.predict(drive, person=person)
    total = sum(np.nan_to_num(v) for v in pred.components.values())
    return np.nanmax(total, axis=1), np.nanmax(pred.nrs, axis=1), dsc


def _combine(factors: list[float]) -> tuple[float, tuple]:
    logs = np.log(factors)
    n = len(logs)
    spread = float(np.std(logs, ddof=1)) if n > 1 else 0.0
    se = math.sqrt(math.log1p(MEASUREMENT_CV) ** 2 + spread ** 2) / math.sqrt(n)
    centre = float(np.mean(logs))
    return math.exp(centre), (math.exp(centre - 1.96 * se), math.exp(centre + 1.96 * se))


def calibrate(patient, site: str, side: str, channel=None) -> Calibration:
    """Fit the person factors for ``site``/``side`` to the patient's measured thresholds.

    Parameters
    ----------
    patient : Patient
    site, side : str
    channel : emsim.program.model.Channel, optional
        Electrode pair used in the measurement (default :func:`default_channel`).

    Returns
    -------
    Calibration
        Neutral factors (1.0) and an empty fit when nothing was measured there.

    Raises
    ------
    PatientError
        A measured threshold the model cannot reach (above 200 mA in the model).
    """
    channel = channel or default_channel(site, side)
    motor, sensory, tol = ([t for t in patient.thresholds
                            if t.site == site and t.side == side and t.kind == k]
                           for k in ("motor_threshold", "sensory_threshold", "tolerance"))
    fit: list[dict] = []
    out = dict(site=site, side=side)
    if motor:
        factors = []
        for t in motor:
            model = _model_motor_threshold_ma(channel, patient, t.pulse_width_us, t.frequency_hz)
            if not math.isfinite(model):
                raise PatientError("the model cannot reach this motor threshold", path="thresholds",
                                   value=t.amplitude_ma, allowed="a threshold the model reaches below 200 mA")
            factors.append(model / t.amplitude_ma)
            fit.append(dict(kind=t.kind, pulse_width_us=t.pulse_width_us, frequency_hz=t.frequency_hz,
                            measured_ma=t.amplitude_ma, model_ma=model))
        out["motor_gain"], out["motor_gain_range"] = _combine(factors)
    scale = 1.0
    if sensory:
        factors = []
        for t in sensory:
            _, nrs, _ = _steady_drive(channel, patient, t.pulse_width_us, t.frequency_hz, 1.0, _AMPS_MA)
            model = _crossing(_AMPS_MA, np.maximum.accumulate(nrs), SENSORY_NRS)
            if not math.isfinite(model):
                raise PatientError("the model cannot reach this sensory threshold", path="thresholds",
                                   value=t.amplitude_ma, allowed="below 200 mA in the model")
            # thresholds scale with the cutaneous threshold density: I_th ∝ scale
            factors.append(t.amplitude_ma / model)
            fit.append(dict(kind=t.kind, pulse_width_us=t.pulse_width_us, frequency_hz=t.frequency_hz,
                            measured_ma=t.amplitude_ma, model_ma=model))
        scale, out["cutaneous_scale_range"] = _combine(factors)
        out["cutaneous_scale"] = scale
    if tol:
        factors = []
        for t in tol:
            total, nrs, dsc = _steady_drive(channel, patient, t.pulse_width_us, t.frequency_hz, scale,
                                            [t.amplitude_ma])
            params = dsc.DiscomfortParameters.load()
            x = (TOLERANCE_NRS / (10.0 - TOLERANCE_NRS)) ** (1.0 / params.transfer_exponent)
            if not total[0] > 0:
                raise PatientError("no afferent drive at the tolerated current in the model",
                                   path="thresholds", value=t.amplitude_ma, allowed="a higher tolerance")
            factors.append(x / float(total[0]))
            fit.append(dict(kind=t.kind, pulse_width_us=t.pulse_width_us, frequency_hz=t.frequency_hz,
                            measured_ma=t.amplitude_ma, model_nrs_before=float(nrs[0])))
        out["sensitivity"], out["sensitivity_range"] = _combine(factors)
    return Calibration(**out, fit=fit)


def _electrodes(channel) -> str:
    """The electrode pair a calibration was fitted with, in words (kept with the factors)."""
    sizes = [f"{e.width_cm:g} x {e.length_cm:g} cm" if e.shape == "rectangle" else f"{e.diameter_cm:g} cm circle"
             for e in channel.electrodes]
    return f"{' and '.join(sizes)}, {channel.spacing_cm:g} cm apart"[:200]


def with_calibration(patient, calibrations, channels=None):
    """``patient`` with a ``calibration`` section holding ``calibrations`` (replacing entries of
    the same site and side), each with the thresholds it was fitted from, the emsim version and
    today's date.

    Parameters
    ----------
    patient : Patient
    calibrations : sequence of Calibration
        Fitted ones (uncalibrated sites are left out).
    channels : sequence of Channel, optional
        The electrode pair each was fitted with (default :func:`default_channel`).

    Returns
    -------
    Patient
        Validated like a file read from disk.
    """
    import datetime as _dt

    from emsim import __version__
    from emsim.body.patient import loads_patient

    data = patient.model_dump(mode="json", exclude_none=True)
    entries = {(c["site"], c["side"]): c for c in data.get("calibration", [])}
    channels = list(channels) if channels is not None else [None] * len(calibrations)
    for cal, ch in zip(calibrations, channels):
        if not cal.fit:
            continue
        entry = {"site": cal.site, "side": cal.side, "motor_gain": cal.motor_gain,
                 "cutaneous_scale": cal.cutaneous_scale, "sensitivity": cal.sensitivity,
                 "thresholds": [t.model_dump(mode="json") for t in patient.thresholds_for_any(cal.site, cal.side)],
                 "electrodes": _electrodes(ch or default_channel(cal.site, cal.side)),
                 "emsim_version": __version__, "date": _dt.date.today().isoformat()}
        for name in ("motor_gain", "cutaneous_scale", "sensitivity"):
            rng = getattr(cal, f"{name}_range")
            if rng is not None:
                entry[f"{name}_range"] = [float(rng[0]), float(rng[1])]
        entries[(cal.site, cal.side)] = entry
    data["calibration"] = list(entries.values())
    return loads_patient(json.dumps(data))


def stored_calibration(patient, site: str, side: str) -> tuple[Calibration | None, str]:
    """The calibration stored in the patient file for ``site``/``side``, if still valid.

    Returns
    -------
    (Calibration or None, str)
        The stored factors when the thresholds they were fitted from equal the patient's
        thresholds at that site and side now; otherwise ``None`` and a note saying why (empty
        when nothing is stored).
    """
    entry = next((c for c in getattr(patient, "calibration", ()) if c.site == site and c.side == side), None)
    if entry is None:
        return None, ""
    key = lambda ts: sorted(t.model_dump_json() for t in ts)  # noqa: E731 - order-free comparison
    if key(entry.thresholds) != key(patient.thresholds_for_any(site, side)):
        return None, (f"stored calibration of {entry.date} at {site} ({side}) was fitted to other thresholds "
                      "than the file holds now: fitted again")
    tup = lambda r: None if r is None else tuple(r)  # noqa: E731
    return Calibration(site=site, side=side, motor_gain=entry.motor_gain, cutaneous_scale=entry.cutaneous_scale,
                       sensitivity=entry.sensitivity, motor_gain_range=tup(entry.motor_gain_range),
                       cutaneous_scale_range=tup(entry.cutaneous_scale_range),
                       sensitivity_range=tup(entry.sensitivity_range),
                       stored=f"{entry.date}, emsim {entry.emsim_version}"), ""
