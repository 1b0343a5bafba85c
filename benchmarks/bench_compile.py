"""Compiler benchmark: a 20-minute, 4-channel, 100 Hz continuous program (480 000 pulses).

Reports the median wall time of several runs, the peak memory allocated during one compile
(tracemalloc, so NumPy buffers are included), the train's own size, and the core count.
Run: ``python benchmarks/bench_compile.py [--repeats N]``; results are appended to
``benchmarks/results/compile.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import tracemalloc
from pathlib import Path

from emsim import __version__
from emsim.program import compile, from_dict

from _report import machine  # benchmarks/_report.py (scripts run from this folder)


def program_doc(channels=4, frequency_hz=100.0, minutes=20.0):
    ch = [{"id": f"C{i}", "site": "lumbar_erector_spinae", "side": "left" if i % 2 == 0 else "right",
           "electrodes": [{"shape": "rectangle", "width_cm": 5, "length_cm": 9}] * 2, "spacing_cm": 4,
           "orientation": "along_fibres"} for i in range(channels)]
    stim = [{"channel": c["id"], "waveform": {"shape": "symmetric_biphasic", "pulse_width_us": 300,
                                              "interphase_gap_us": 100},
             "frequency_hz": frequency_hz, "pattern": {"type": "constant"}, "amplitude": {"ma": 30},
             "on_s": minutes * 60, "off_s": 0, "ramp_up_s": 2, "ramp_down_s": 2} for c in ch]
    return {"format": "emsim.program/1", "name": "benchmark", "category": "nmes", "channels": ch,
            "phases": [{"name": "main", "kind": "main", "duration_s": minutes * 60,
                        "timing": {"mode": "simultaneous"}, "stimulation": stim}],
            "schedule": {"sessions_per_week": 2, "weeks": 1, "min_days_between_sessions": 2},
            "provenance": {"emsim_version": __version__, "created_by": "benchmark", "created_with": "benchmark"}}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=7)
    args = ap.parse_args(argv)
    program = from_dict(program_doc())
    compile(program)  # warm-up (imports, caches)
    times = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        train = compile(program)
        times.append(time.perf_counter() - t0)
    tracemalloc.start()
    train = compile(program)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    scaling = {}
    for minutes in (5.0, 10.0, 20.0):  # peak memory per pulse should stay flat if memory ~ pulse count
        prog = from_dict(program_doc(minutes=minutes))
        tracemalloc.start()
        tr = compile(prog)
        _, pk = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        scaling[f"{minutes:g}_min"] = {"n_pulses": tr.n_pulses, "peak_alloc_mb": pk / 2**20,
                                       "bytes_per_pulse": pk / tr.n_pulses}
    result = {
        "benchmark": "compile 20 min x 4 ch x 100 Hz", **machine(), "repeats": args.repeats,
        "n_pulses": train.n_pulses, "median_s": statistics.median(times), "min_s": min(times),
        "max_s": max(times), "peak_alloc_mb": peak / 2**20, "train_mb": train.nbytes / 2**20,
        "bytes_per_pulse_peak": peak / train.n_pulses,
        "memory_scaling": scaling,
        "when": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    print(json.dumps(result, indent=2))
    out = Path(__file__).resolve().parent / "results" / "compile.jsonl"
    out.parent.mkdir(exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
