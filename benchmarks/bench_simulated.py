"""Simulated-stimulator benchmark: a whole paraspinal session as fast as possible, physiology attached.

The example program (``models/programs/paraspinal_strengthening.json``: 3 min warm-up, 20 min
main phase of 10 s on / 20 s off at 50 Hz, 2 min cool-down; two channels) for the example
patient, session 3 (full length, 25 min), runs on :class:`SimulatedStimulator` at
``speed=inf`` in its background thread with an audit log and a pulse listener attached; then
the default physiology (motor-unit pool force with fatigue) runs on the delivered pulses.
Reports the median wall time of several runs for delivery alone and for delivery plus
physiology, the speed-up over real time (target >= 100x), and the core count.
Run: ``python benchmarks/bench_simulated.py [--repeats N] [--session N]``; results are
appended to ``benchmarks/results/simulated.jsonl``.
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import tempfile
import time
from pathlib import Path

from _report import machine, publish  # benchmarks/_report.py (scripts run from this folder)

from emsim._data import models_dir
from emsim.body import load_patient
from emsim.devices.audit import AuditLog
from emsim.devices.simulated import SimulatedStimulator, model_name
from emsim.program import load


def one_run(program, patient, session: int, log_path: Path) -> dict:
    pulses = [0]

    def count(event):
        if event.kind == "pulses":
            pulses[0] += len(event.data["t_s"])

    with AuditLog(log_path) as audit:
        sim = SimulatedStimulator(speed=math.inf, audit=audit)
        sim.add_listener(count)
        t0 = time.perf_counter()
        with sim:
            sim.load(program, patient, session=session)
            sim.start()
            if not sim.wait(600):
                raise RuntimeError("the simulated session did not finish")
            t1 = time.perf_counter()
            result = sim.physiology_result()
            t2 = time.perf_counter()
            status = sim.status()
    assert status.stop_cause == "program completed" and pulses[0] == status.extra["delivered_pulses"]
    return {"deliver_s": t1 - t0, "total_s": t2 - t0, "physiology_s": t2 - t1, "session_s": status.elapsed_s,
            "program_s": status.program_s, "pulses": pulses[0], "model": model_name(result)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--session", type=int, default=3, help="session number (3: full length, no first-session caps)")
    args = ap.parse_args(argv)
    root = models_dir()
    program = load(root / "programs" / "paraspinal_strengthening.json")
    patient = load_patient(root / "patients" / "example_measured.json")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        one_run(program, patient, args.session, Path(tmp) / "warmup.sqlite")  # imports, caches
        for k in range(args.repeats):
            runs.append(one_run(program, patient, args.session, Path(tmp) / f"run{k}.sqlite"))
    deliver = statistics.median(r["deliver_s"] for r in runs)
    total = statistics.median(r["total_s"] for r in runs)
    program_s = runs[0]["program_s"]
    publish("simulated", {
        "benchmark": "simulated stimulator, paraspinal_strengthening session, speed=inf, physiology attached",
        **machine(), "repeats": args.repeats, "session": args.session, "program_s": program_s,
        "pulses": runs[0]["pulses"], "physiology": runs[0]["model"],
        "median_deliver_s": deliver, "median_total_s": total,
        "median_physiology_s": statistics.median(r["physiology_s"] for r in runs),
        "speedup_deliver": program_s / deliver, "speedup_with_physiology": program_s / total,
        "min_total_s": min(r["total_s"] for r in runs), "max_total_s": max(r["total_s"] for r in runs),
        "target_speedup": 100, "meets_target": program_s / total >= 100,
    })
    return 0


if __name__ == "__main__":
    sys.exit(main())
