"""Snap a compiled train to what a device can represent, and say how far it moved.

Frequencies, pulse widths, inter-phase gaps and doublet spacings are block settings: they
are snapped in the program and the session is recompiled, so pulse timing still comes from
the one compiler. Per-pulse amplitudes (ramps included) are then rounded to the device's
current step. Devices with one shared period (ScienceMode 2) get one base period per phase;
slower channels run at integer sub-multiples (the low-frequency factor), as the device does.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

from emsim.program.compile import PulseTrain, compile
from emsim.program.device_profile import DeviceProfile, device_profile
from emsim.program.io import from_dict
from emsim.program.model import DoubletPattern, KhzBurst

__all__ = ["quantise", "QuantisationReport", "BlockQuantisation", "RELATIVE_FREQUENCY_TOLERANCE",
           "device_frequencies"]

# Above this relative frequency change a snap is no longer a rounding but a different program.
RELATIVE_FREQUENCY_TOLERANCE = 0.05


@dataclass(frozen=True)
class BlockQuantisation:
    channel: str
    phase: int
    frequency_hz: float
    device_frequency_hz: float
    pulse_width_us: float | None
    device_pulse_width_us: float | None

    @property
    def frequency_error(self) -> float:
        return self.device_frequency_hz / self.frequency_hz - 1.0


@dataclass(frozen=True)
class QuantisationReport:
    device: str
    blocks: tuple[BlockQuantisation, ...]
    max_amplitude_error_ma: float
    max_width_error_us: float
    n_pulses: int
    n_pulses_device: int
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"device": self.device, "ok": self.ok, "problems": list(self.problems),
                "max_amplitude_error_ma": self.max_amplitude_error_ma,
                "max_width_error_us": self.max_width_error_us,
                "n_pulses": self.n_pulses, "n_pulses_device": self.n_pulses_device,
                "blocks": [{"channel": b.channel, "phase": b.phase, "frequency_hz": b.frequency_hz,
                            "device_frequency_hz": b.device_frequency_hz,
                            "frequency_error_pct": 100.0 * b.frequency_error,
                            "pulse_width_us": b.pulse_width_us,
                            "device_pulse_width_us": b.device_pulse_width_us} for b in self.blocks]}


def device_frequencies(program, device: DeviceProfile) -> dict[tuple[int, int], float]:
    """Device frequency of every (phase, stimulation index), honouring a shared period."""
    out: dict[tuple[int, int], float] = {}
    for p, ph in enumerate(program.phases):
        if not ph.stimulation:
            continue
        if not device.shared_period:
            for j, st in enumerate(ph.stimulation):
                out[p, j] = device.snap_frequency_hz(st.frequency_hz)
            continue
        base_ms = device.period_ms.snap(1000.0 / max(st.frequency_hz for st in ph.stimulation))
        ratios = [round((1000.0 / st.frequency_hz) / base_ms) for st in ph.stimulation]
        slow = max(ratios)
        factor = min(slow, device.low_frequency_factor_max + 1)
        for j, r in enumerate(ratios):
            # Each channel runs at the base period or at the one low-frequency multiple.
            multiple = 1 if abs(r - 1) <= abs(r - factor) else factor
            out[p, j] = 1000.0 / (base_ms * multiple)
    return out


def quantise(train: PulseTrain, device: DeviceProfile | str) -> tuple[PulseTrain, QuantisationReport]:
    """Return the device's version of ``train`` and the quantisation report."""
    device = device_profile(device) if isinstance(device, str) else device
    program = train.program
    freqs = device_frequencies(program, device)
    data = program.model_dump(mode="json", exclude_none=True)
    rows: list[BlockQuantisation] = []
    problems: list[str] = []
    for p, ph in enumerate(program.phases):
        for j, st in enumerate(ph.stimulation):
            sd = data["phases"][p]["stimulation"][j]
            f_dev = freqs[p, j]
            w = st.waveform
            pw = None if isinstance(w, KhzBurst) else w.pulse_width_us
            pw_dev = None
            if pw is not None:
                pw_dev = float(device.pulse_width_us.snap(pw))
                sd["waveform"]["pulse_width_us"] = pw_dev
                gap = w.interphase_gap_us if hasattr(w, "interphase_gap_us") else None
                if gap is not None:
                    sd["waveform"]["interphase_gap_us"] = float(min(max(device.interphase_gap_us.snap(gap),
                                                                        device.interphase_gap_us.min),
                                                                    device.interphase_gap_us.max))
            if isinstance(st.pattern, DoubletPattern):
                sd["pattern"]["intra_burst_interval_ms"] = float(
                    device.intra_burst_interval_ms.snap(st.pattern.intra_burst_interval_ms))
            sd["frequency_hz"] = f_dev
            row = BlockQuantisation(st.channel, p, st.frequency_hz, f_dev, pw, pw_dev)
            rows.append(row)
            where = f"{st.channel} in phase {p} ({ph.name})"
            if abs(row.frequency_error) > RELATIVE_FREQUENCY_TOLERANCE:
                problems.append(f"{where}: {st.frequency_hz:g} Hz becomes {f_dev:.4g} Hz on {device.id} "
                                f"({100 * row.frequency_error:+.1f} %, more than "
                                f"{100 * RELATIVE_FREQUENCY_TOLERANCE:g} %)")
            if w.shape not in device.waveforms:
                problems.append(f"{where}: waveform {w.shape} not available on {device.id} "
                                f"({', '.join(device.waveforms)})")
            if st.pattern.type not in device.patterns:
                problems.append(f"{where}: pattern {st.pattern.type} not available on {device.id} "
                                f"({', '.join(device.patterns)})")
            if not device.period_ms.contains(1000.0 / st.frequency_hz):
                problems.append(f"{where}: {st.frequency_hz:g} Hz outside the device's "
                                f"{1000 / device.period_ms.max:.3g}-{1000 / device.period_ms.min:.4g} Hz")
    try:
        snapped = from_dict(data)
        q = compile(snapped, train.patient, session=train.session)
    except Exception as exc:  # the snapped program is inconsistent: report, keep the original
        problems.append(f"the device-snapped program is not valid: {exc}")
        q = train
    pre_ma = q.amplitude_a * 1e3
    amp_ma = np.asarray(device.current_ma.snap(pre_ma), dtype=np.float64)
    width_err = max((abs(r.device_pulse_width_us - r.pulse_width_us) for r in rows
                     if r.pulse_width_us is not None), default=0.0)
    report = QuantisationReport(
        device=device.id, blocks=tuple(rows),
        max_amplitude_error_ma=float(np.max(np.abs(amp_ma - pre_ma), initial=0.0)),
        max_width_error_us=float(width_err), n_pulses=train.n_pulses, n_pulses_device=q.n_pulses,
        problems=tuple(problems))
    return replace(q, amplitude_a=amp_ma * 1e-3), report
