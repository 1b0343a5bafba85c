"""Device profiles (``models/devices/*.json``): what a stimulator can represent.

The profile is data read by the program layer (quantisation), the safety validator and the
drivers, so that all three agree on one envelope per device.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from emsim._data import load_data, models_dir
from emsim.errors import DeviceError

__all__ = ["Range", "DeviceProfile", "device_profile", "device_ids"]


@dataclass(frozen=True)
class Range:
    """Representable values ``origin + k * step`` within ``[min, max]``."""

    min: float
    max: float
    step: float
    origin: float = 0.0

    def snap(self, value):
        """Nearest representable value (not clipped; check :meth:`contains` separately)."""
        return self.origin + self.step * _round_half_up((value - self.origin) / self.step)

    def contains(self, value, tol: float = 1e-9) -> bool:
        return self.min - tol <= value <= self.max + tol

    def text(self, unit: str) -> str:
        return f"{self.min:g} to {self.max:g} {unit} in {self.step:g} {unit} steps"


def _round_half_up(x):
    import numpy as np

    return np.floor(np.asarray(x) + 0.5) if not isinstance(x, (int, float)) else math.floor(x + 0.5)


@dataclass(frozen=True)
class DeviceProfile:
    id: str
    name: str
    protocol: str
    channels: int
    current_ma: Range
    pulse_width_us: Range
    interphase_gap_us: Range
    waveforms: tuple[str, ...]
    patterns: tuple[str, ...]
    max_pulses_per_burst: int
    intra_burst_interval_ms: Range
    period_ms: Range
    shared_period: bool
    low_frequency_factor_max: int
    slot_ms: float
    channels_per_source: int
    pulse_overhead_us: float
    max_voltage_v: float
    load_ohm: float
    watchdog_s: float
    emergency_stop_input: bool
    device_ramp_pulses_max: int
    max_waveform_points: int | None
    serial: dict | None
    sources: dict

    def snap_frequency_hz(self, frequency_hz: float) -> float:
        period = self.period_ms.snap(1000.0 / frequency_hz)
        return 1000.0 / period if period > 0 else math.inf


def _range(d: dict) -> Range:
    return Range(float(d["min"]), float(d["max"]), float(d["step"]), float(d.get("origin", 0.0)))


def device_ids() -> tuple[str, ...]:
    return tuple(sorted(p.stem for p in (models_dir() / "devices").glob("*.json")))


@lru_cache(maxsize=None)
def device_profile(device_id: str) -> DeviceProfile:
    """Load a device profile by id (``rehastim2``, ``p24``, ``generic``)."""
    if device_id not in device_ids():
        raise DeviceError("unknown device", path="device", value=device_id, allowed=", ".join(device_ids()))
    d = load_data(f"devices/{device_id}.json")
    mux = d["multiplex"]
    return DeviceProfile(
        id=d["id"], name=d["name"], protocol=d["protocol"], channels=int(d["channels"]),
        current_ma=_range(d["current_ma"]), pulse_width_us=_range(d["pulse_width_us"]),
        interphase_gap_us=_range(d["interphase_gap_us"]), waveforms=tuple(d["waveforms"]),
        patterns=tuple(d["patterns"]), max_pulses_per_burst=int(d["max_pulses_per_burst"]),
        intra_burst_interval_ms=_range(d["intra_burst_interval_ms"]), period_ms=_range(d["period_ms"]),
        shared_period=bool(d["shared_period"]), low_frequency_factor_max=int(d["low_frequency_factor_max"]),
        slot_ms=float(mux["slot_ms"]), channels_per_source=int(mux["channels_per_source"]),
        pulse_overhead_us=float(mux["pulse_overhead_us"]), max_voltage_v=float(d["max_voltage_v"]),
        load_ohm=float(d["load_ohm"]), watchdog_s=float(d["watchdog_s"]),
        emergency_stop_input=bool(d["emergency_stop_input"]),
        device_ramp_pulses_max=int(d["device_ramp_pulses_max"]),
        max_waveform_points=d.get("max_waveform_points"), serial=d.get("serial"), sources=d["sources"])
