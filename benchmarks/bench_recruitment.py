"""Recruitment benchmark: one program on one patient, and 1 000 candidates in one batch call.

* ``program``: a 20-minute, 2-channel (left/right erector spinae), 50 Hz program compiled for
  the example patient; ``recruit(train, site, patient)`` after the tables and the field are
  cached (the target is ≤ 20 ms), and cold (first call: field solve and fibre sampling).
* ``batch``: 1 000 candidates (amplitude, pulse width, frequency, 4 electrode sizes) in one
  ``recruit(StimulusSet, ...)`` call (target ≤ 1 s), warm and cold; and 1 000 kHz-burst
  candidates (carrier, burst duration, amplitude, rate, electrode) with discomfort.
Both include the afferent side (the discomfort model's skin current-density activation,
:mod:`emsim.physiology.cutaneous`); ``*_with_discomfort_*`` adds ``discomfort.predict`` on the
result (the issue's per-program target is field + recruitment + discomfort). Besides wall-clock medians the record holds the process
CPU-time median and the load average: the machine is often shared, and wall time then
measures the neighbours as much as the code.
Run: ``python benchmarks/bench_recruitment.py [--repeats 7]``; results are appended to
``benchmarks/results/recruitment.jsonl``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from _report import machine, publish
from emsim.body import load_patient
from emsim.physiology import discomfort as dsc
from emsim.physiology import recruitment as rc
from emsim.physiology.fibre_tables import load_table
from emsim.program import compile, from_dict
from emsim.program.model import Channel

ROOT = Path(__file__).resolve().parent.parent
SITE = "lumbar_erector_spinae"


def program_doc(minutes=20.0):
    ch = [{"id": s[0].upper(), "site": SITE, "side": s, "spacing_cm": 3, "orientation": "along_fibres",
           "electrodes": [{"shape": "rectangle", "width_cm": 5, "length_cm": 9}] * 2} for s in ("left", "right")]
    stim = [{"channel": c["id"], "waveform": {"shape": "symmetric_biphasic", "pulse_width_us": 300,
                                              "interphase_gap_us": 50},
             "frequency_hz": 50, "pattern": {"type": "constant"}, "amplitude": {"ma": 40},
             "on_s": 6, "off_s": 6, "ramp_up_s": 1, "ramp_down_s": 1} for c in ch]
    return {"format": "emsim.program/1", "name": "bench", "category": "nmes", "channels": ch,
            "phases": [{"name": "main", "kind": "main", "duration_s": minutes * 60,
                        "timing": {"mode": "simultaneous"}, "stimulation": stim}],
            "schedule": {"sessions_per_week": 2, "weeks": 1, "min_days_between_sessions": 2},
            "provenance": {"emsim_version": "0.1.0", "created_by": "benchmark", "created_with": "benchmark"}}


def timed(fn, repeats, cpu=None, setup=None):
    """Wall-clock seconds of ``repeats`` calls; their process CPU seconds go to ``cpu``.

    With ``setup``, each call is ``fn(setup())`` and only ``fn`` is timed.
    """
    out = []
    for _ in range(repeats):
        arg = setup() if setup is not None else None
        c0, t0 = time.process_time(), time.perf_counter()
        fn(arg) if setup is not None else fn()
        out.append(time.perf_counter() - t0)
        if cpu is not None:
            cpu.append(time.process_time() - c0)
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    load_table()
    patient = load_patient(ROOT / "models" / "patients" / "example_measured.json")
    train = compile(from_dict(program_doc()), patient)
    t0 = time.perf_counter()
    rc.recruit(train, SITE, patient)
    cold_program = time.perf_counter() - t0
    cpu_program, cpu_batch, cpu_program_nrs, cpu_nrs_only = [], [], [], []
    warm_program = timed(lambda: rc.recruit(train, SITE, patient), args.repeats, cpu_program)
    # The per-program target covers field + recruitment + discomfort.
    warm_program_nrs = timed(lambda: dsc.predict(rc.recruit(train, SITE, patient)), args.repeats, cpu_program_nrs)
    # The discomfort part alone (Recruitment → AfferentDrive conversion + predict), on a fresh
    # Recruitment each time so that its cached conversion is not reused.
    warm_nrs_only = timed(dsc.predict, args.repeats, cpu_nrs_only, setup=lambda: rc.recruit(train, SITE, patient))

    rng = np.random.default_rng(0)
    n = 1000
    chans = [Channel(id="A", site=SITE, side="left", spacing_cm=3, orientation="along_fibres",
                     electrodes=({"shape": "rectangle", "width_cm": w, "length_cm": l},) * 2)
             for w, l in ((2, 2), (4, 4), (5, 5), (5, 9))]
    batch = rc.StimulusSet.from_arrays(rng.uniform(5, 100, n), rng.uniform(50, 1000, n), rng.uniform(10, 120, n),
                                       channels=chans, channel_index=rng.integers(0, 4, n))
    rc._GEOM_CACHE.clear()
    t0 = time.perf_counter()
    rc.recruit(batch, SITE, patient)
    cold_batch = time.perf_counter() - t0
    warm_batch = timed(lambda: rc.recruit(batch, SITE, patient), args.repeats, cpu_batch)
    warm_batch_nrs = timed(lambda: dsc.predict(rc.recruit(batch, SITE, patient)), args.repeats)
    # kHz bursts (1-10 kHz, 2-10 ms): the afferents' thresholds come from the Brian2 tables and their
    # action potentials per burst from the burst-firing table (several activations per class).
    khz_batch = rc.StimulusSet.from_arrays(rng.uniform(5, 150, n), 300.0, rng.uniform(20, 100, n), channels=chans,
                                           channel_index=rng.integers(0, 4, n), shape="khz_burst",
                                           carrier_hz=rng.uniform(1000, 10000, n),
                                           burst_duration_ms=rng.uniform(2, 10, n))
    cpu_khz = []
    warm_khz_nrs = timed(lambda: dsc.predict(rc.recruit(khz_batch, SITE, patient)), args.repeats, cpu_khz)
    publish("recruitment", {
        "benchmark": "recruit: 20-min 2-channel program; 1000-candidate batch", **machine(),
        "repeats": args.repeats, "program_pulses": train.n_pulses,
        "load_average_1min": os.getloadavg()[0],
        "program_warm_median_s": statistics.median(warm_program), "program_warm_min_s": min(warm_program),
        "program_warm_cpu_median_s": statistics.median(cpu_program),
        "program_cold_s": cold_program, "program_target_s": 0.020,
        "program_with_discomfort_warm_median_s": statistics.median(warm_program_nrs),
        "program_with_discomfort_warm_cpu_median_s": statistics.median(cpu_program_nrs),
        "program_discomfort_only_warm_median_s": statistics.median(warm_nrs_only),
        "program_discomfort_only_warm_cpu_median_s": statistics.median(cpu_nrs_only),
        "batch_candidates": n, "batch_electrode_sets": len(chans),
        "batch_warm_median_s": statistics.median(warm_batch), "batch_warm_cpu_median_s": statistics.median(cpu_batch),
        "batch_cold_s": cold_batch, "batch_target_s": 1.0,
        "batch_with_discomfort_warm_median_s": statistics.median(warm_batch_nrs),
        "khz_batch_with_discomfort_warm_median_s": statistics.median(warm_khz_nrs),
        "khz_batch_with_discomfort_warm_cpu_median_s": statistics.median(cpu_khz)})
    return 0


if __name__ == "__main__":
    sys.exit(main())
