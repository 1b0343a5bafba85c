"""Motor units in kHz bursts: repetitive firing, dropout and the evoked force at tolerance (issue 4 x 3).

The kHz checks of ``tests/validation/test_discomfort_targets.py`` compare contractions at equal
discomfort. Until session 11 they used the motor fraction (units recruited per burst) as the torque
stand-in, although Ward 2004 and Vaz 2015 measured torque. A motor unit driven well above its
threshold by a low-carrier burst can fire more than once per burst, and a doublet a few ms apart
raises its force (catch-like summation, represented by the Ding-family muscle model); a high carrier
in a long burst may instead block conduction after the onset spike (dropout). This probe measures
both with the Brian2 burst-firing table's motor class (``models/fibres/burst_firing.json``,
``python -m emsim.physiology.burst_firing tabulate``: counts and spike times per burst at
multiples of each burst's threshold) fed to the muscle model through
``Recruitment.force_extra_spikes`` (``tests.validation.test_discomfort_targets.force_at_nrs``):
the evoked force at the NRS level of each check, with and without the extra action potentials,
and the motor fraction for comparison.

Protocols: lumbar erector spinae, 5 x 5 and 5 x 9 cm pairs 4 cm apart, a man, 50 Hz; 4 ms bursts at
1 / 2.5 / 4 / 5 / 10 kHz and Russian current (2.5 kHz, 10 ms); 200 / 300 / 500 us symmetric pulses.
Discussion: docs/literature/khz_discomfort.md, section 7.

Run (from the repository root): ``python benchmarks/khz_motor_firing.py``; appends one JSON line to
``benchmarks/results/khz_motor_firing.jsonl``. About a minute of CPU.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import dataclasses

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import machine, publish  # noqa: E402
from emsim.physiology.burst_firing import load_burst_firing  # noqa: E402
from emsim.physiology.muscle import load_muscle  # noqa: E402
import tests.validation.test_discomfort_targets as targets  # noqa: E402

PROTOCOLS = {
    "pc200": ("symmetric_biphasic", {"pulse_width_us": 200.0}),
    "pc300": ("symmetric_biphasic", {"pulse_width_us": 300.0}),
    "pc500": ("symmetric_biphasic", {"pulse_width_us": 500.0}),
    "1khz_4ms": ("khz_burst", {"carrier_hz": 1000.0, "burst_duration_ms": 4.0}),
    "2.5khz_4ms": ("khz_burst", {"carrier_hz": 2500.0, "burst_duration_ms": 4.0}),
    "4khz_4ms": ("khz_burst", {"carrier_hz": 4000.0, "burst_duration_ms": 4.0}),
    "5khz_4ms": ("khz_burst", {"carrier_hz": 5000.0, "burst_duration_ms": 4.0}),
    "10khz_4ms": ("khz_burst", {"carrier_hz": 10000.0, "burst_duration_ms": 4.0}),
    "russian": ("khz_burst", {"carrier_hz": 2500.0, "burst_duration_ms": 10.0}),
}
LEVELS = (5.0, targets.TOLERANCE_NRS)
MEASURES = ("motor_fraction", "force_first_ap", "force", "force_no_catch_gain")


def without_catch_gain():
    """The test muscle with the catch-like gain off (``catch_gain`` 0): the doublets then add only
    the Ding core's summation; the gain is extrapolated from Bickel 2004 (quadriceps)."""
    m = load_muscle(targets.KHZ_MUSCLE)
    return dataclasses.replace(m, fatigue=dataclasses.replace(m.fatigue, catch_gain=0.0))


def motor_table() -> dict:
    """The motor class of the shipped burst-firing table: counts and spike times (ms) per burst."""
    t = load_burst_firing()
    times = t.times_s["motor"]
    out = {}
    for i, f in enumerate(t.carrier_hz):
        for k, b in enumerate(t.burst_s):
            key = f"{f / 1e3:g}khz_{b * 1e3:g}ms"
            out[key] = {f"{m:g}": [round(x * 1e3, 2) for x in times[i, k, j] if np.isfinite(x)]
                        for j, m in enumerate(t.multiples)}
    return {"multiples": t.multiples.tolist(), "times_ms": out}


def outcomes() -> dict:
    """Force (fraction of the region's maximal force) with and without the extra action potentials,
    and the motor fraction, at NRS 5 and 8, per protocol and electrode size; the force also without
    the muscle model's catch-like gain."""
    rows = {}
    no_catch = without_catch_gain()
    shipped = targets.KHZ_MUSCLE
    for w, length in ((5.0, 5.0), (5.0, 9.0)):
        for level in LEVELS:
            for name, (shape, kw) in PROTOCOLS.items():
                _, cur = targets.sweep_to_nrs(shape, w, length, level, **kw)
                rows[f"{w:g}x{length:g}|nrs{level:g}|{name}"] = {
                    "current_ma": round(cur, 2) if np.isfinite(cur) else None,
                    "motor_fraction": round(targets.motor_at_nrs(shape, w, length, level, **kw), 4),
                    "force_first_ap": round(targets.force_at_nrs(shape, w, length, level, extra_spikes=False, **kw), 4),
                    "force": round(targets.force_at_nrs(shape, w, length, level, **kw), 4)}
                targets.KHZ_MUSCLE = no_catch
                try:
                    rows[f"{w:g}x{length:g}|nrs{level:g}|{name}"]["force_no_catch_gain"] = round(
                        targets.force_at_nrs(shape, w, length, level, **kw), 4)
                finally:
                    targets.KHZ_MUSCLE = shipped
    return rows


def ratios(rows: dict) -> dict:
    """The checks' ratios for each measure (motor fraction, force of the first AP, force)."""
    out = {}
    for size in ("5x5", "5x9"):
        for q in MEASURES:
            g = lambda lv, name: rows[f"{size}|nrs{lv:g}|{name}"][q]  # noqa: E731
            tol = targets.TOLERANCE_NRS
            out[f"{size}|{q}"] = {
                "r3_1/2.5/4/5/10khz_at_nrs8": [g(tol, n) for n in ("1khz_4ms", "2.5khz_4ms", "4khz_4ms", "5khz_4ms",
                                                                   "10khz_4ms")],
                "aussie_over_pc200_at_nrs8": round(g(tol, "1khz_4ms") / g(tol, "pc200"), 3),
                "pc500_over_pc200_at_nrs8": round(g(tol, "pc500") / g(tol, "pc200"), 3),
                "pc300_over_2.5khz_4ms_at_nrs5": round(g(5.0, "pc300") / g(5.0, "2.5khz_4ms"), 3),
                "pc200_over_russian_at_nrs8": round(g(tol, "pc200") / g(tol, "russian"), 3)}
    return out


def main() -> int:
    t0 = time.process_time()
    rows = outcomes()
    row = {"benchmark": "kHz motor firing per burst: force at equal discomfort", **machine(),
           "motor_table": motor_table(), "rows": rows, "ratios": ratios(rows),
           "cpu_s": round(time.process_time() - t0, 1)}
    for k, v in row["ratios"].items():
        print(k, v, flush=True)
    publish("khz_motor_firing", row)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
