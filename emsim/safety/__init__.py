"""The safety gate: nothing reaches a device, real or simulated, without passing ``check``.

>>> from emsim.safety import check
>>> report = check(program, patient, device="rehastim2")  # doctest: +SKIP
>>> report.ok, [f.rule for f in report.errors]             # doctest: +SKIP
"""

from __future__ import annotations

import datetime as _dt

from emsim.errors import SafetyViolation
from emsim.program.device_profile import DeviceProfile, device_profile
from emsim.safety.report import Finding, SafetyReport
from emsim.safety.rules import BASIS, LIMITS, RULES, build_context

__all__ = ["check", "require_safe", "SafetyReport", "Finding", "LIMITS", "BASIS"]


def check(program, patient=None, device: DeviceProfile | str | None = None, *, session: int = 1,
          today: _dt.date | None = None) -> SafetyReport:
    """Run every safety rule for this program, patient, device and session.

    Parameters
    ----------
    program : Program
    patient : Patient, optional
        Without a patient, current-dependent rules for relative amplitudes and the
        contraindication checks cannot run; the report says so in a warning.
    device : DeviceProfile or str, optional
        Device id (``rehastim2``, ``p24``, ``generic``) or profile; adds the device envelope.
    session : int
        1-based session number (progression and first-session caps).
    today : date, optional
        Date of delivery for the session-spacing rule (defaults to today).

    Raises
    ------
    ProgramError
        A relative amplitude the given patient cannot resolve (a missing threshold).
    """
    dev = device_profile(device) if isinstance(device, str) else device
    ctx = build_context(program, patient, dev, session, today or _dt.date.today())
    findings: list[Finding] = []
    for rule in RULES:
        findings.extend(rule(ctx))
    return SafetyReport(findings=tuple(findings), device=dev.id if dev else None,
                        patient=getattr(patient, "id", None), session=session, metrics=ctx.metrics)


def require_safe(program, patient, device, **kwargs) -> SafetyReport:
    """Like :func:`check`, but raise :class:`~emsim.errors.SafetyViolation` on any error."""
    report = check(program, patient, device, **kwargs)
    if not report.ok:
        raise SafetyViolation(report)
    return report
