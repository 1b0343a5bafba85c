"""The safety report: which rule fired, how badly, why, and on what basis."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["Finding", "SafetyReport"]


@dataclass(frozen=True)
class Finding:
    """One rule outcome. ``severity`` is ``error`` (blocks delivery), ``warning`` or ``info``."""

    rule: str
    severity: str
    message: str
    path: str | None = None
    value: float | str | None = None
    limit: float | str | None = None
    basis: str = ""

    def line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.severity.upper()} [{self.rule}] {where}{self.message}"

    def to_dict(self) -> dict:
        return {"rule": self.rule, "severity": self.severity, "message": self.message, "path": self.path,
                "value": self.value, "limit": self.limit, "basis": self.basis}


@dataclass(frozen=True)
class SafetyReport:
    """All findings of :func:`emsim.safety.check` for one program, patient and device."""

    findings: tuple[Finding, ...]
    device: str | None
    patient: str | None
    session: int
    metrics: dict = field(default_factory=dict)

    @property
    def errors(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "error")

    @property
    def warnings(self) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.severity == "warning")

    @property
    def ok(self) -> bool:
        return not self.errors

    def rules_fired(self, severity: str = "error") -> set[str]:
        return {f.rule for f in self.findings if f.severity == severity}

    def lines(self) -> list[str]:
        return [f.line() for f in self.findings if f.severity in ("error", "warning")]

    def to_dict(self) -> dict:
        return {"ok": self.ok, "device": self.device, "patient": self.patient, "session": self.session,
                "errors": [f.to_dict() for f in self.errors],
                "warnings": [f.to_dict() for f in self.warnings],
                "info": [f.to_dict() for f in self.findings if f.severity == "info"],
                "metrics": self.metrics}
