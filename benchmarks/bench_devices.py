"""Device benchmark: command-to-acknowledgement latency and heartbeat jitter over the emulators.

For each protocol (ScienceMode 2 / RehaStim 2, ScienceMode 4 / P24) the real driver runs a
shortened paraspinal program (ramps and on/off cycles: an update every 100 ms during ramps)
against its emulator over a pseudo-terminal, in real time, with and without an audit log
(the audit log commits every frame with fsync before it is sent). Per run it records the
latency from writing a command to receiving its matching acknowledgement (median, p95, max;
also without the P24 commands that switch the high voltage, which take 40-80 ms by design)
and the heartbeat jitter (deviation of the keep-alive intervals from the nominal period).
Reported values are medians over the runs. The emulator latency is the device's (SM2: uniform
10-24 ms, the README figure; SM4: 1-3 ms, assumed), so the SM2 numbers mostly measure it.

Run: ``python benchmarks/bench_devices.py [--repeats N] [--seconds S]``; results are appended
to ``benchmarks/results/devices.jsonl``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from emsim.devices import AuditLog
from emsim.devices.emulator import ScienceMode2Emulator, ScienceMode4Emulator
from emsim.devices.emulator.scenarios import example_patient, short_paraspinal_program
from emsim.devices.sciencemode.driver_sm2 import ScienceMode2Stimulator
from emsim.devices.sciencemode.driver_sm4 import ScienceMode4Stimulator

from _report import machine  # benchmarks/_report.py (scripts run from this folder)

PROTOCOLS = {"sciencemode2": (ScienceMode2Emulator, ScienceMode2Stimulator),
             "sciencemode4": (ScienceMode4Emulator, ScienceMode4Stimulator)}


def one_run(protocol: str, seconds: float, audit_dir: str | None) -> dict:
    emu_cls, drv_cls = PROTOCOLS[protocol]
    third = seconds / 3
    program = short_paraspinal_program(warm_up_s=third, main_s=third, cool_down_s=third,
                                       on_s=third / 2, off_s=third / 2, ramp_s=third / 6)
    audit = AuditLog(Path(audit_dir) / f"{protocol}-{time.monotonic_ns()}.sqlite") if audit_dir else None
    with emu_cls() as emu:
        drv = drv_cls(emu.port, audit=audit)
        with drv:
            drv.load(program, example_patient())
            drv.start()
            if not drv.wait(seconds + 10):
                raise RuntimeError("session did not finish")
            if drv.status().stop_cause != "program completed":
                raise RuntimeError(f"session ended early: {drv.status().stop_cause}")
    if audit is not None:
        audit.close()
    lat = np.array(drv.ack_latencies_s) * 1e3
    # commands that switch the P24's high voltage wait 40-80 ms by design (§3.4): report apart
    hv = {"MlInit", "MlStop", "LlInit", "LlStop"}
    routine = np.array([t for name, t in drv.ack_log if name not in hv]) * 1e3
    beats = np.array(drv.heartbeat_times)
    period = drv.capabilities.heartbeat_period_s
    jitter = np.abs(np.diff(beats) - period) * 1e3 if beats.size > 1 else np.zeros(1)
    return {"n_acks": int(lat.size), "ack_median_ms": float(np.median(lat)),
            "ack_p95_ms": float(np.percentile(lat, 95)), "ack_max_ms": float(lat.max()),
            "n_routine_acks": int(routine.size), "routine_ack_median_ms": float(np.median(routine)),
            "routine_ack_p95_ms": float(np.percentile(routine, 95)),
            "routine_ack_max_ms": float(routine.max()),
            "n_heartbeats": int(beats.size), "heartbeat_period_s": period,
            "jitter_median_ms": float(np.median(jitter)), "jitter_p95_ms": float(np.percentile(jitter, 95)),
            "jitter_max_ms": float(jitter.max())}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--seconds", type=float, default=9.0, help="session length per run (real time)")
    args = ap.parse_args(argv)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for protocol in PROTOCOLS:
            for audit in (False, True):
                runs = [one_run(protocol, args.seconds, tmp if audit else None) for _ in range(args.repeats)]
                key = f"{protocol}{'+audit' if audit else ''}"
                results[key] = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                results[key]["runs"] = runs
                print(f"{key:<20} ack median {results[key]['ack_median_ms']:6.2f} ms  p95 "
                      f"{results[key]['ack_p95_ms']:6.2f} ms  max {results[key]['ack_max_ms']:6.2f} ms "
                      f"(without HV switching: median {results[key]['routine_ack_median_ms']:5.2f} p95 "
                      f"{results[key]['routine_ack_p95_ms']:5.2f} max {results[key]['routine_ack_max_ms']:5.2f}) | "
                      f"heartbeat jitter median {results[key]['jitter_median_ms']:5.2f} ms  p95 "
                      f"{results[key]['jitter_p95_ms']:5.2f} ms  max {results[key]['jitter_max_ms']:5.2f} ms",
                      flush=True)
    record = {"benchmark": "device ack latency and heartbeat jitter over emulators", **machine(),
              "platform": platform.platform(), "repeats": args.repeats, "session_s": args.seconds,
              "results": results, "when": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out = Path(__file__).resolve().parent / "results" / "devices.jsonl"
    out.parent.mkdir(exist_ok=True)
    with open(out, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
