"""Resolve what a program leaves to the patient and the session: relative amplitudes,
progression and first-session (conditioning) caps.
"""

from __future__ import annotations

from dataclasses import dataclass

from emsim.errors import ProgramError
from emsim.program.model import AbsoluteAmplitude, Program, Schedule, Stimulation
from emsim.program.waveform import primary_width_s

__all__ = ["ResolvedAmplitude", "resolve_amplitude", "session_factors", "CHRONAXIE_US"]

# Weiss-law chronaxies used to carry a threshold measured at one pulse width to another
# (I_th = I_rh (1 + c / PW)). Motor and sensory: Mogyoros, Kiernan & Burke 1996, Brain
# 119:439 (median nerve, 459 ± 126 µs and 665 ± 182 µs) [measured]. Tolerance has no
# published chronaxie; the motor value is an assumption (evidence: assumed).
CHRONAXIE_US = {"motor_threshold": 459.0, "sensory_threshold": 665.0, "tolerance": 459.0}


@dataclass(frozen=True)
class ResolvedAmplitude:
    ma: float
    note: str  # how it was obtained, for the report and the audit log


def resolve_amplitude(stim: Stimulation, site: str, side: str, patient=None,
                      path: str = "$") -> ResolvedAmplitude:
    """The plateau amplitude in mA of one stimulation block for this patient.

    Raises
    ------
    ProgramError
        A relative amplitude without a patient, or without a threshold of that kind at the
        site and side.
    """
    amp = stim.amplitude
    if isinstance(amp, AbsoluteAmplitude):
        return ResolvedAmplitude(amp.ma, "absolute")
    where = f"{path}.amplitude.relative_to"
    if patient is None:
        raise ProgramError("a relative amplitude needs a patient with measured thresholds",
                           path=where, value=amp.relative_to, allowed="an absolute amplitude {'ma': ...} "
                           "or --patient with thresholds")
    measured = patient.thresholds_for(site, side, amp.relative_to)
    if not measured:
        raise ProgramError(f"patient {patient.id!r} has no {amp.relative_to} measured at {site} ({side})",
                           path=where, value=amp.relative_to,
                           allowed="a threshold of that kind at this site and side in the patient file")
    pw_us = primary_width_s(stim.waveform) * 1e6
    exact = [t for t in measured if abs(t.pulse_width_us - pw_us) < 0.5]
    if exact:
        base = sum(t.amplitude_ma for t in exact) / len(exact)
        return ResolvedAmplitude(amp.factor * base,
                                 f"{amp.factor:g} x {amp.relative_to} {base:g} mA measured at {pw_us:g} µs")
    c = CHRONAXIE_US[amp.relative_to]
    # Rheobase from each measurement, then back to this pulse width (Weiss law).
    rheobases = [t.amplitude_ma / (1.0 + c / t.pulse_width_us) for t in measured]
    rh = sum(rheobases) / len(rheobases)
    base = rh * (1.0 + c / pw_us)
    return ResolvedAmplitude(amp.factor * base,
                             f"{amp.factor:g} x {amp.relative_to} {base:.3g} mA carried from "
                             f"{', '.join(f'{t.pulse_width_us:g}' for t in measured)} µs to {pw_us:g} µs "
                             f"by the Weiss law (chronaxie {c:g} µs)")


def session_factors(schedule: Schedule, session: int) -> tuple[float, float]:
    """(intensity factor, duration factor) for session number ``session`` (1-based)."""
    if session < 1:
        raise ProgramError("session numbers start at 1", path="session", value=session, allowed=">= 1")
    intensity = 1.0
    for step in schedule.progression:
        raised = 1.0 + step.step_pct / 100.0 * ((session - 1) // step.every_sessions)
        intensity *= min(step.max_factor, raised)
    duration = 1.0
    fs = schedule.first_sessions
    if fs is not None and session <= fs.count:
        intensity *= fs.intensity_factor
        duration = fs.duration_factor
    return intensity, duration


def max_session(program: Program) -> int:
    """Number of sessions in the schedule (rounded up)."""
    import math

    return max(1, math.ceil(program.schedule.sessions_per_week * program.schedule.weeks))
