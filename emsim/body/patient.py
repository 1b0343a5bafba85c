"""The patient file (``"format": "emsim.patient/1"``).

What the program layer and the safety validator need about a person: body size, fat
thickness per site, measured sensory/motor/tolerance thresholds (used to resolve relative
amplitudes), the contraindication questionnaire (``models/safety/contraindications.json``),
conditions localised to a site, and the session history that whole-body-EMS dosing rules
read. Calibration of model parameters from thresholds builds on this file (issue 6).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, create_model

from emsim._data import load_data
from emsim._strict import Strict, num
from emsim._validation import canonical_json, parse_json, raise_all, read_text, validate_document
from emsim.body.sites import get_site, site_ids
from emsim.errors import PatientError

__all__ = ["Patient", "Threshold", "FatThickness", "MeasuredMVC", "StoredCalibration", "LocalCondition", "History",
           "load_patient", "loads_patient", "dumps_patient", "patient_schema",
           "contraindication_items", "PATIENT_FORMAT"]

PATIENT_FORMAT = "emsim.patient/1"
CONTRAINDICATIONS_FILE = "safety/contraindications.json"

SiteId = Literal[site_ids()]  # type: ignore[valid-type]
Side = Literal["left", "right", "bilateral"]


class _Strict(Strict):
    input_error: ClassVar[type[PatientError]] = PatientError
ThresholdKind = Literal["sensory_threshold", "motor_threshold", "tolerance"]


@lru_cache(maxsize=None)
def contraindication_items() -> tuple[dict, ...]:
    """The questionnaire items, each with id, question, severity, scope and source."""
    return tuple(load_data(CONTRAINDICATIONS_FILE)["items"])


_SITE_SCOPED = tuple(i["id"] for i in contraindication_items() if i["scope"] == "site")

Contraindications = create_model(
    "Contraindications", __base__=_Strict,
    **{item["id"]: (bool | None, Field(None, description=item["question"]))
       for item in contraindication_items()},
)
Contraindications.__doc__ = ("The contraindication questionnaire: true, false, or absent/null "
                             "(not asked). Items are listed in models/safety/contraindications.json.")


class FatThickness(_Strict):
    """Subcutaneous fat over a site, by ultrasound (single layer) or calliper (double fold)."""

    site: SiteId
    side: Side
    method: Literal["ultrasound", "skinfold"]
    value_mm: float = num(gt=0, le=150, soft=(2, 60),
                          doc="ultrasound: fat thickness; skinfold: the double-fold calliper reading")


class Threshold(_Strict):
    """A measured current threshold at one site, pulse width and frequency."""

    site: SiteId
    side: Side
    kind: ThresholdKind
    pulse_width_us: float = num(ge=10, le=1000, soft=(50, 500))
    frequency_hz: float = num(ge=0.5, le=300, soft=(1, 120))
    amplitude_ma: float = num(gt=0, le=200, soft=(1, 100))


class MeasuredMVC(_Strict):
    """A measured maximal voluntary contraction (isometric) at one site and side.

    Exactly one of ``torque_nm`` (a joint torque, e.g. trunk extension on a dynamometer) and
    ``force_n`` (a force at a load cell or hand-held dynamometer) is given. The bounds are the
    format's limits (a typo guard), not physiology; the soft bounds cover adult trunk and hip
    strength. ``side`` may be ``bilateral`` for a whole-trunk measurement.
    """

    site: SiteId
    side: Side
    torque_nm: float | None = num(gt=0, le=2000, soft=(20, 500), default=None,
                                  doc="maximal voluntary torque, N·m")
    force_n: float | None = num(gt=0, le=20000, soft=(20, 3000), default=None,
                                doc="maximal voluntary force, N")
    method: Literal["isokinetic_dynamometer", "fixed_dynamometer", "handheld_dynamometer", "load_cell", "other"]
    date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None

    @property
    def value(self) -> tuple[float, str]:
        """(value, unit) of the measurement: ``(torque, "N·m")`` or ``(force, "N")``."""
        return (self.torque_nm, "N·m") if self.torque_nm is not None else (self.force_n, "N")


_Range = tuple[Annotated[float, Field(gt=0, le=1000)], Annotated[float, Field(gt=0, le=1000)]]


class StoredCalibration(_Strict):
    """Person factors fitted to this patient's thresholds at one site and side (``emsim calibrate --out``).

    Written by :func:`emsim.body.calibration.with_calibration`; a prediction uses it while
    ``thresholds`` equal the thresholds the file holds for that site and side, and fits anew
    otherwise. Ranges are 95 % intervals (see :mod:`emsim.body.calibration`).
    """

    site: SiteId
    side: Side
    motor_gain: float = num(gt=0, le=1000)
    motor_gain_range: _Range | None = None
    cutaneous_scale: float = num(gt=0, le=1000)
    cutaneous_scale_range: _Range | None = None
    sensitivity: float = num(gt=0, le=1000)
    sensitivity_range: _Range | None = None
    thresholds: tuple[Threshold, ...] = Field(..., min_length=1, max_length=256)
    electrodes: Annotated[str, Field(max_length=200)] = ""
    emsim_version: Annotated[str, Field(min_length=1, max_length=40)]
    date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]


class LocalCondition(_Strict):
    """A site-scoped questionnaire item (e.g. an open wound) and where it is."""

    condition: Literal[_SITE_SCOPED]  # type: ignore[valid-type]
    site: SiteId
    side: Side


class History(_Strict):
    sessions_completed: int = Field(0, ge=0, le=10000)
    last_session_date: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")] | None = None


class Patient(_Strict):
    """A patient (or a virtual one). All fields except ``format`` and ``id`` are optional."""

    format: Literal["emsim.patient/1"]
    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,63}$")]
    sex: Literal["female", "male", "other"] | None = None
    age_years: float | None = num(ge=0, le=120, soft=(18, 90), default=None)
    height_cm: float | None = num(ge=50, le=250, soft=(140, 200), default=None)
    weight_kg: float | None = num(ge=10, le=350, soft=(40, 150), default=None)
    fat_thickness: tuple[FatThickness, ...] = Field((), max_length=64)
    thresholds: tuple[Threshold, ...] = Field((), max_length=256)
    mvc: tuple[MeasuredMVC, ...] = Field((), max_length=64)
    calibration: tuple[StoredCalibration, ...] = Field((), max_length=64)
    contraindications: Contraindications = Field(default_factory=Contraindications)  # type: ignore[valid-type]
    local_conditions: tuple[LocalCondition, ...] = Field((), max_length=64)
    history: History = Field(default_factory=History)
    notes: Annotated[str, Field(max_length=4000)] = ""

    @property
    def bmi(self) -> float | None:
        if self.height_cm and self.weight_kg:
            return self.weight_kg / (self.height_cm / 100.0) ** 2
        return None

    def thresholds_for_any(self, site: str, side: str) -> tuple[Threshold, ...]:
        """Every threshold measured at ``site`` and ``side``, of any kind."""
        return tuple(t for t in self.thresholds if t.site == site and t.side == side)

    def thresholds_for(self, site: str, side: str, kind: str) -> tuple[Threshold, ...]:
        return tuple(t for t in self.thresholds if t.site == site and t.side == side and t.kind == kind)

    def mvc_for(self, site: str, side: str) -> MeasuredMVC | None:
        """The measured MVC at ``site`` and ``side`` (a bilateral one serves either side)."""
        own = [m for m in self.mvc if m.site == site and m.side == side]
        both = [m for m in self.mvc if m.site == site and m.side == "bilateral"]
        return (own or both or [None])[0]


def _check(patient: Patient) -> None:
    problems: list[PatientError] = []
    for i, t in enumerate(patient.thresholds):
        if t.side not in get_site(t.site).sides:
            problems.append(PatientError("side not possible for this site", path=f"$.thresholds[{i}].side",
                                         value=t.side, allowed=", ".join(get_site(t.site).sides)))
    seen: dict[tuple, int] = {}
    for i, m in enumerate(patient.mvc):
        if (m.torque_nm is None) == (m.force_n is None):
            problems.append(PatientError("give the MVC as exactly one of torque_nm and force_n",
                                         path=f"$.mvc[{i}]", value=[m.torque_nm, m.force_n],
                                         allowed="torque_nm (N·m) or force_n (N), not both, not neither"))
        if m.side not in get_site(m.site).sides + ("bilateral",):
            problems.append(PatientError("side not possible for this site", path=f"$.mvc[{i}].side",
                                         value=m.side, allowed=", ".join(get_site(m.site).sides)))
        if (m.site, m.side) in seen:
            problems.append(PatientError("MVC given twice for this site and side", path=f"$.mvc[{i}]",
                                         value=f"{m.site} ({m.side})", allowed=f"one entry ($.mvc[{seen[m.site, m.side]}])"))
        seen[(m.site, m.side)] = i
    for i, c in enumerate(patient.calibration):
        if [c.site, c.side] in [[d.site, d.side] for d in patient.calibration[:i]]:
            problems.append(PatientError("calibration given twice for this site and side",
                                         path=f"$.calibration[{i}]", value=f"{c.site} ({c.side})",
                                         allowed="one entry per site and side"))
    # Thresholds measured together must be ordered sensory <= motor <= tolerance.
    order = {"sensory_threshold": 0, "motor_threshold": 1, "tolerance": 2}
    for i, a in enumerate(patient.thresholds):
        for j, b in enumerate(patient.thresholds):
            if (a.site, a.side, a.pulse_width_us) == (b.site, b.side, b.pulse_width_us) \
                    and order[a.kind] < order[b.kind] and a.amplitude_ma > b.amplitude_ma:
                problems.append(PatientError(
                    f"{a.kind} above {b.kind} at the same site and pulse width",
                    path=f"$.thresholds[{i}].amplitude_ma", value=a.amplitude_ma,
                    allowed=f"<= {b.amplitude_ma:g} mA ($.thresholds[{j}])"))
    raise_all(problems)


def loads_patient(text: str | bytes) -> Patient:
    """Parse and validate a patient document; raise :class:`PatientError` naming the field."""
    data = parse_json(text, PatientError)
    patient = validate_document(data, Patient, PatientError, PATIENT_FORMAT)
    _check(patient)
    return patient


def load_patient(path: str | Path) -> Patient:
    try:
        return loads_patient(read_text(path, PatientError))
    except PatientError as exc:
        if exc.unreadable and exc.path == "$":
            exc.path = str(path)
        raise


def dumps_patient(patient: Patient) -> str:
    return canonical_json(patient.model_dump(mode="json", exclude_none=True))


def patient_schema() -> dict:
    schema = Patient.model_json_schema()
    schema.update({"$schema": "https://json-schema.org/draft/2020-12/schema",
                   "$id": "https://emsim.invalid/schema/emsim.patient-1.json",
                   "title": "emsim patient file (emsim.patient/1)"})
    return schema
