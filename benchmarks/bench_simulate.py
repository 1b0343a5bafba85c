"""Whole-prediction benchmark: ``evaluate(program, patient, trace=False)`` on the example programs.

What the optimiser pays per candidate. Every shipped example program (``models/programs``) on
the ``example_measured`` patient, plus a 4-channel program with two channels on each side of
the lumbar erector spinae (one muscle region per side, ``emsim._muscle_regions``). Reports the
median wall time of several runs per program and the core count. Run:
``python benchmarks/bench_simulate.py [--repeats N]``; results are appended to
``benchmarks/results/simulate.jsonl``.
"""

from __future__ import annotations

import argparse
import copy
import statistics
import time

from emsim.body import load_patient
from emsim.program import from_dict, load
from emsim.simulate import evaluate
from emsim.testing.documents import BASE_DOC, PATIENTS, PROGRAMS, channel, stim

from _report import machine, publish  # benchmarks/_report.py (scripts run from this folder)


def same_side_doc(minutes=20.0):
    """Two channels on each side of the lumbar erector spinae, 85 Hz, 4 s on / 4 s off."""
    doc = copy.deepcopy(BASE_DOC)
    sides = ("left", "left", "right", "right")
    doc["channels"] = [channel(f"C{i}", "lumbar_erector_spinae", s) for i, s in enumerate(sides)]
    doc["phases"][0].update(duration_s=minutes * 60, timing={"mode": "sequential", "offset_s": 0.005})
    doc["phases"][0]["stimulation"] = [stim(f"C{i}", frequency_hz=85, on_s=4, off_s=4, amplitude={"ma": 35})
                                       for i in range(4)]
    return doc


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args(argv)
    patient = load_patient(PATIENTS / "example_measured.json")
    programs = {p.stem: load(p) for p in PROGRAMS}
    programs["same_side_4ch_20min"] = from_dict(same_side_doc())
    timings = {}
    for name, program in programs.items():
        evaluate(program, patient, trace=False)  # warm-up (imports, field and geometry caches)
        runs = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            evaluate(program, patient, trace=False)
            runs.append(time.perf_counter() - t0)
        timings[name] = {"median_s": statistics.median(runs), "min_s": min(runs), "max_s": max(runs)}
    publish("simulate", {"benchmark": "evaluate(trace=False), example programs on example_measured",
                         **machine(), "repeats": args.repeats, "programs": timings})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
