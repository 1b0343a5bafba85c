"""The program document (``"format": "emsim.program/1"``) as strict, immutable data classes.

A program is what the optimiser exports, what the workbench edits, and what the simulated
stimulator and the real drivers execute (after :func:`emsim.program.compile`). Field names
carry their unit (``frequency_hz``, ``pulse_width_us``, ``amplitude`` in ``ma``); the hard
bounds declared here are the format's limits (what any program may say at all). Device and
patient limits are narrower and live in :mod:`emsim.safety`; ``softbounds`` in the schema
are the typical clinical ranges a UI slider should offer.

Timing conventions
------------------
* A *phase* (warm-up, main, cool-down, ...) lasts ``duration_s``; phases run one after the
  other.
* Within a phase each channel cycles ``on_s`` on, ``off_s`` off. ``on_s`` is the whole time
  pulses are delivered, ramps included: the amplitude rises linearly from 0 over
  ``ramp_up_s``, holds, and falls to 0 over the last ``ramp_down_s`` of the on time. So
  ``ramp_up_s + ramp_down_s <= on_s``. Continuous stimulation is ``off_s = 0`` with
  ``on_s`` equal to the phase duration.
* Channel timing: ``simultaneous`` (all cycles start with the phase), ``alternating`` (the
  channels listed at odd positions start half a cycle later; all cycles must be equal) or
  ``sequential`` (channel *k* starts ``k * offset_s`` later).
* Pulse patterns: ``constant`` (one pulse per 1/f), ``doublets`` (each pulse replaced by a
  burst of 2-4 pulses ``intra_burst_interval_ms`` apart; Binder-Macleod doublet trains),
  ``variable_frequency`` (each on time starts with the listed short intervals, e.g. a 5 ms
  doublet, then continues at f; Binder-Macleod variable-frequency trains).
"""

from __future__ import annotations

import math
from typing import Annotated, Any, ClassVar, Literal, Union

from pydantic import Discriminator, Field, Tag

from emsim._strict import Strict, num as _num

from emsim.body.sites import site_ids
from emsim.errors import ProgramError

__all__ = [
    "FORMAT", "Electrode", "Channel", "SymmetricBiphasic", "AsymmetricBiphasic",
    "Monophasic", "ChargeBalancePhase", "KhzBurst", "Waveform", "ConstantPattern",
    "DoubletPattern", "VariableFrequencyPattern", "Pattern", "AbsoluteAmplitude",
    "RelativeAmplitude", "Amplitude", "Stimulation", "Timing", "Phase", "IntensityStep",
    "FirstSessions", "Schedule", "Provenance", "Program", "SITE_IDS", "THRESHOLD_KINDS",
]

FORMAT = "emsim.program/1"
SITE_IDS: tuple[str, ...] = site_ids()
THRESHOLD_KINDS = ("sensory_threshold", "motor_threshold", "tolerance")


class _Strict(Strict):
    input_error: ClassVar[type[ProgramError]] = ProgramError

SiteId = Literal[SITE_IDS]  # type: ignore[valid-type]  # the catalogue is data, read at import
Side = Literal["left", "right", "bilateral"]
Identifier = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,31}$")]


# --------------------------------------------------------------------------- channels

class Electrode(_Strict):
    """One electrode of a pair: rectangular (width x length) or circular."""

    shape: Literal["rectangle", "circle"]
    width_cm: float | None = _num(ge=0.5, le=30, soft=(2, 10), doc="rectangle width", default=None)
    length_cm: float | None = _num(ge=0.5, le=30, soft=(2, 15), doc="rectangle length", default=None)
    diameter_cm: float | None = _num(ge=0.5, le=30, soft=(2, 8), doc="circle diameter", default=None)
    site: SiteId | None = Field(None, description="where this electrode sits, if not on the channel's site")
    side: Side | None = Field(None, description="side of this electrode, if not the channel's side")

    @property
    def area_cm2(self) -> float:
        if self.shape == "circle":
            return math.pi * (self.diameter_cm or 0.0) ** 2 / 4.0
        return (self.width_cm or 0.0) * (self.length_cm or 0.0)


class Channel(_Strict):
    """An electrode pair and the muscle it targets."""

    id: Identifier
    site: SiteId
    side: Side
    electrodes: tuple[Electrode, Electrode]
    spacing_cm: float = _num(ge=0.5, le=60, soft=(2, 15), doc="edge-to-edge distance between the electrodes")
    orientation: Literal["along_fibres", "across_fibres"] = "along_fibres"


# --------------------------------------------------------------------------- waveforms

class SymmetricBiphasic(_Strict):
    """Two equal rectangular phases of opposite sign: charge balanced by construction."""

    shape: Literal["symmetric_biphasic"]
    pulse_width_us: float = _num(ge=10, le=1000, soft=(50, 500), doc="width of each phase")
    interphase_gap_us: float = _num(ge=0, le=1000, soft=(0, 200), doc="pause between the phases")


class AsymmetricBiphasic(_Strict):
    """A rectangular primary phase and a longer, lower secondary phase of equal charge."""

    shape: Literal["asymmetric_biphasic"]
    pulse_width_us: float = _num(ge=10, le=1000, soft=(50, 500), doc="width of the primary phase")
    interphase_gap_us: float = _num(ge=0, le=1000, soft=(0, 200))
    secondary_amplitude_ratio: float = _num(
        ge=0.1, le=1.0, soft=(0.2, 1.0),
        doc="secondary amplitude / primary amplitude; the secondary width is pulse_width_us / ratio")


class ChargeBalancePhase(_Strict):
    """The explicit balancing phase of a monophasic pulse (opposite sign to the primary)."""

    delay_us: float = _num(ge=0, le=10000, soft=(0, 1000), doc="pause after the primary phase")
    width_us: float = _num(ge=10, le=100000, soft=(100, 5000))
    amplitude_ratio: float = _num(gt=0, le=1.0, soft=(0.05, 1.0), doc="balance amplitude / primary amplitude")


class Monophasic(_Strict):
    """A rectangular primary phase with an explicitly described charge-balance phase.

    Nothing makes this balanced by construction: the safety validator checks the net charge.
    """

    shape: Literal["monophasic"]
    pulse_width_us: float = _num(ge=10, le=1000, soft=(50, 500))
    balance: ChargeBalancePhase


class KhzBurst(_Strict):
    """Bursts of a kHz alternating carrier ("Russian"/"Aussie" current), ``frequency_hz`` bursts/s."""

    shape: Literal["khz_burst"]
    carrier_hz: float = _num(ge=1000, le=20000, soft=(1000, 10000))
    burst_duration_ms: float = _num(ge=0.25, le=100, soft=(1, 10))
    carrier_shape: Literal["sine", "rectangular"] = "sine"

    @property
    def pulse_width_us(self) -> float:
        """Width of one carrier half-cycle (the phase that depolarises)."""
        return 1e6 / (2.0 * self.carrier_hz)


def _waveform_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return v.get("shape")
    return getattr(v, "shape", None)


Waveform = Annotated[
    Union[Annotated[SymmetricBiphasic, Tag("symmetric_biphasic")],
          Annotated[AsymmetricBiphasic, Tag("asymmetric_biphasic")],
          Annotated[Monophasic, Tag("monophasic")],
          Annotated[KhzBurst, Tag("khz_burst")]],
    Discriminator(_waveform_tag, custom_error_type="waveform_shape",
                  custom_error_message="unknown waveform shape",
                  custom_error_context={"allowed": "symmetric_biphasic, asymmetric_biphasic, monophasic, khz_burst"}),
]

# --------------------------------------------------------------------------- patterns


class ConstantPattern(_Strict):
    type: Literal["constant"]


class DoubletPattern(_Strict):
    type: Literal["doublets"]
    pulses_per_burst: int = Field(2, ge=2, le=4, description="2 = doublet, 3 = triplet")
    intra_burst_interval_ms: float = _num(ge=2, le=100, soft=(4, 10), doc="spacing of the pulses within a burst")


class VariableFrequencyPattern(_Strict):
    type: Literal["variable_frequency"]
    onset_intervals_ms: tuple[Annotated[float, Field(ge=2, le=1000)], ...] = Field(
        ..., min_length=1, max_length=20,
        description="intervals at the start of each on time before the train continues at frequency_hz")


def _pattern_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return v.get("type")
    return getattr(v, "type", None)


Pattern = Annotated[
    Union[Annotated[ConstantPattern, Tag("constant")],
          Annotated[DoubletPattern, Tag("doublets")],
          Annotated[VariableFrequencyPattern, Tag("variable_frequency")]],
    Discriminator(_pattern_tag, custom_error_type="pattern_type",
                  custom_error_message="unknown pulse pattern",
                  custom_error_context={"allowed": "constant, doublets, variable_frequency"}),
]

# --------------------------------------------------------------------------- amplitude


class AbsoluteAmplitude(_Strict):
    ma: float = _num(ge=0, le=200, soft=(0, 100), doc="peak current of the primary phase")


class RelativeAmplitude(_Strict):
    """Amplitude as a multiple of the patient's measured threshold at this site and side."""

    relative_to: Literal["sensory_threshold", "motor_threshold", "tolerance"]
    factor: float = _num(gt=0, le=5, soft=(0.5, 2.0))


def _amplitude_tag(v: Any) -> str | None:
    if isinstance(v, dict):
        return "absolute" if "ma" in v else "relative"
    return "absolute" if isinstance(v, AbsoluteAmplitude) else "relative"


Amplitude = Annotated[
    Union[Annotated[AbsoluteAmplitude, Tag("absolute")],
          Annotated[RelativeAmplitude, Tag("relative")]],
    Discriminator(_amplitude_tag),
]

# --------------------------------------------------------------------------- phases


class Stimulation(_Strict):
    """What one channel does during one phase."""

    channel: Identifier
    waveform: Waveform
    frequency_hz: float = _num(ge=0.5, le=300, soft=(1, 120), doc="pulse (or burst) repetition rate")
    pattern: Pattern
    amplitude: Amplitude
    on_s: float = _num(ge=0.1, le=7200, soft=(1, 30), doc="delivery time per cycle, ramps included")
    off_s: float = _num(ge=0, le=3600, soft=(0, 60), doc="pause per cycle")
    ramp_up_s: float = _num(ge=0, le=60, soft=(0, 5))
    ramp_down_s: float = _num(ge=0, le=60, soft=(0, 5))


class Timing(_Strict):
    mode: Literal["simultaneous", "alternating", "sequential"]
    offset_s: float = _num(ge=0, le=3600, soft=(0, 10), doc="start delay between consecutive channels (sequential only)", default=0.0)


class Phase(_Strict):
    name: Annotated[str, Field(min_length=1, max_length=80)]
    kind: Literal["warm_up", "main", "cool_down", "rest"]
    duration_s: float = _num(ge=1, le=7200, soft=(30, 1800))
    timing: Timing
    stimulation: tuple[Stimulation, ...] = Field(..., max_length=16)


# --------------------------------------------------------------------------- schedule


class IntensityStep(_Strict):
    """Raise all amplitudes by ``step_pct`` every ``every_sessions`` sessions, up to ``max_factor``."""

    type: Literal["intensity_step"]
    every_sessions: int = Field(..., ge=1, le=50)
    step_pct: float = _num(ge=0, le=50, soft=(0, 20))
    max_factor: float = _num(ge=1, le=3, soft=(1, 2))


class FirstSessions(_Strict):
    """Conditioning: the first ``count`` sessions run at reduced intensity and duration."""

    count: int = Field(..., ge=1, le=30)
    intensity_factor: float = _num(gt=0, le=1, soft=(0.3, 1))
    duration_factor: float = _num(gt=0, le=1, soft=(0.3, 1))


class Schedule(_Strict):
    sessions_per_week: float = _num(gt=0, le=14, soft=(1, 7))
    weeks: int = Field(..., ge=1, le=104)
    min_days_between_sessions: float = _num(ge=0, le=14, soft=(0, 7))
    first_sessions: FirstSessions | None = None
    progression: tuple[IntensityStep, ...] = Field((), max_length=4)


# --------------------------------------------------------------------------- provenance

JsonScalar = Union[float, int, str, bool, None]


class Provenance(_Strict):
    emsim_version: Annotated[str, Field(min_length=1, max_length=40)]
    model_versions: dict[Annotated[str, Field(max_length=80)], Annotated[str, Field(max_length=80)]] = Field(
        default_factory=dict, max_length=64)
    seed: int | None = Field(None, ge=0, le=2**63 - 1)
    created_by: Annotated[str, Field(min_length=1, max_length=200)]
    created_with: Annotated[str, Field(min_length=1, max_length=200)]
    created: Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}(T[0-9:.+\-Z]{2,40})?$")] | None = None
    predicted_outcomes: dict[Annotated[str, Field(max_length=80)], JsonScalar] | None = Field(None, max_length=128)


# --------------------------------------------------------------------------- the document


class Program(_Strict):
    """A complete stimulation program. Build it with :func:`emsim.program.loads` or directly."""

    format: Literal["emsim.program/1"]
    name: Annotated[str, Field(min_length=1, max_length=120)]
    description: Annotated[str, Field(max_length=4000)] = ""
    category: Literal["nmes", "wb_ems", "tens"]
    channels: tuple[Channel, ...] = Field(..., min_length=1, max_length=16)
    phases: tuple[Phase, ...] = Field(..., min_length=1, max_length=32)
    schedule: Schedule
    provenance: Provenance

    @property
    def duration_s(self) -> float:
        return sum(p.duration_s for p in self.phases)

    def channel(self, channel_id: str) -> Channel:
        for c in self.channels:
            if c.id == channel_id:
                return c
        raise KeyError(channel_id)
