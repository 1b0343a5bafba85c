"""Does a kHz burst's threshold fall with burst length once its onset advantage is removed? (issue 4, S5)

Ward & Lucas-Toumbourou 2007 (Arch Phys Med Rehabil 88:1036) found transcutaneous thresholds
falling with the duration of 1 and 4 kHz sine bursts up to a "utilization time" (≈ 7 ms sensory,
> 10 ms motor, ≥ 20 ms pain). emsim samples a burst as a sine starting at phase 0, whose first
half-cycle carries net charge: its first cycles set the threshold, so the 10 ms / 1 ms ratio is
1.000 in every cable model. This script measures the ratio for three onsets:

* ``sine``: ``sin(ωt)`` from phase 0 (emsim's representation, :func:`emsim.physiology.axon.waveform_samples`);
* ``cos``: ``cos(ωt)`` — the charge ``sin(ωt)/ω`` swings symmetrically about zero (no onset offset);
* ``halfstart``: the phase-0 sine with its first half-cycle at half amplitude (charge-symmetric too);

optionally repeated as a 50 Hz train (``--train N`` bursts; Ward's bursts came at 50 Hz), for the
shipped node cable (optionally at another temperature: ``--temps``), the MRG 2002 and Gaines 2018
double cables, and a space-clamped Frankenhaeuser–Huxley node under injected current (``--fh``,
Bromm's air-gap condition: Bromm 1975, Pflügers Arch 353:1 reports a mean depolarisation and
repetitive firing of single frog nodes under 4–20 kHz constant-current AC at 20 °C, reproduced by
computations on voltage-clamp data). Discussion: docs/literature/khz_discomfort.md "session 9".

Run: ``python benchmarks/khz_onset_summation.py [--models node_cable mrg] [--classes motor abeta]
[--carriers 2500 10000] [--temps 37 27 20] [--fh 6 20 37] [--train 5]``; appends one JSON line to
``benchmarks/results/khz_onset_summation.jsonl``. Node cable: ~20 s CPU per class, carrier and
temperature for the default 3 onsets × 5 bursts; MRG ~50 s; Gaines several minutes; FH ~10 s.

Cable thresholds of the sampled bursts come from :func:`emsim.physiology.axon.sampled_thresholds`;
the FH node is this probe's own Brian2 network, searched with
:func:`emsim.physiology.axon.threshold_search`. The temperature variant patches the node cable's
membrane parameters for the process and clears :mod:`~emsim.physiology.axon`'s cache of resting
states (``_REST_CACHE``): a probe, not a feature the library offers.
"""

from __future__ import annotations

import argparse
import gc
import math
import sys
import time

import numpy as np

from _report import machine, publish
from emsim.physiology import axon as ax
from emsim.physiology.fibre_tables import fibre_classes

ONSETS = ("sine", "cos", "halfstart")
BURSTS_MS = (1.0, 2.0, 4.0, 10.0, 20.0)
TRAIN_PERIOD_S = 20e-3   # 50 Hz bursts (Ward 2007)


def burst(onset: str, carrier_hz: float, burst_ms: float, dt: float, train: int = 1) -> np.ndarray:
    """Relative level of one burst (or a 50 Hz train of ``train`` bursts) sampled every ``dt``."""
    n = int(round(burst_ms * 1e-3 / dt))
    t = (np.arange(n) + 0.5) * dt
    w = 2.0 * math.pi * carrier_hz
    y = np.cos(w * t) if onset == "cos" else np.sin(w * t)
    if onset == "halfstart":
        y[t < 0.5 / carrier_hz] *= 0.5
    if train > 1:
        per = int(round(TRAIN_PERIOD_S / dt))
        out = np.zeros(per * (train - 1) + n)
        for j in range(train):
            out[j * per:j * per + n] += y
        y = out
    return y


def _with_temperature(temp_c):
    """Patch the node cable's membrane temperature (rates' Q10 factors) for this process."""
    orig = ax.membrane_parameters

    def patched(name, _orig=orig):
        return {**_orig(name), "temperature_c": float(temp_c)}
    ax.membrane_parameters = patched
    ax._REST_CACHE.clear()
    return orig


def cable_thresholds(cls, model, columns):
    """Uniform-field thresholds (V/m) of the class's middle diameter for sampled ``columns``."""
    c = fibre_classes()[cls]
    d = math.sqrt(c.diameter_min_m * c.diameter_max_m)
    # bursts need ~20× the field of a 100 µs pulse: start the search there
    return d, ax.sampled_thresholds(cls, [d], columns, guess_scale=20.0, rtol=0.01, model=model)[0]


# Frankenhaeuser & Huxley 1964 (J Physiol 171:302) Xenopus node, rates at 20 °C scaled by Q10 = 3,
# constants as transcribed in PySONIC (tjjlemaire/PySONIC, PySONIC/neurons/fh.py); V = deviation
# from the -70 mV rest in mV.
FH_EQS = """
dv/dt = (I - Iion)/cmem : volt
I = amp_ * wave(t - toff, k) : amp/metre**2
toff : second (shared)
amp_ : amp/metre**2
k : integer (constant)
q : 1 (constant)
cmem : farad/metre**2 (constant)
T : kelvin (constant)
u = clip(v, -0.2*volt, 0.2*volt) : volt
V = (u + 70*mV)/mV : 1
x = u*faraday/(gas_r*T) : 1
ghk_na = faraday*(13.74*mmolar - 114.5*mmolar*exp(-x))/exprel(-x) : coulomb/metre**3
ghk_k = faraday*(120*mmolar - 2.5*mmolar*exp(-x))/exprel(-x) : coulomb/metre**3
Iion = 8e-5*metre/second*m**2*h*ghk_na + 1.2e-5*metre/second*n**2*ghk_k + 0.54e-5*metre/second*p**2*ghk_na + 300.3*siemens/metre**2*(v + 69.974*mV) : amp/metre**2
dm/dt = q*(0.36*(V-22)/(1-exp((22-V)/3))*(1-m) - 0.4*(13-V)/(1-exp((V-13)/20))*m)/ms : 1
dh/dt = q*(0.1*(-10-V)/(1-exp((V+10)/6))*(1-h) - 4.5/(1+exp((45-V)/10))*h)/ms : 1
dn/dt = q*(0.02*(V-35)/(1-exp((35-V)/10))*(1-n) - 0.05*(10-V)/(1-exp((V-10)/10))*n)/ms : 1
dp/dt = q*(0.006*(V-40)/(1-exp((40-V)/10))*(1-p) - 0.09*(-25-V)/(1-exp((V+25)/20))*p)/ms : 1
"""


def fh_thresholds(columns, temp_c, dt=0.5e-6):
    """Injected current-density thresholds (mA/cm², sine amplitude) of a space-clamped FH node."""
    from brian2 import (NeuronGroup, Network, SpikeMonitor, TimedArray, coulomb, defaultclock, farad, joule, kelvin,
                        metre, mmolar, mole, ms, mV, second, amp)
    n = len(columns)
    lead = int(round(ax.T_LEAD / dt))   # the rest before each waveform, as in the cable experiments
    waves = np.zeros((lead + max(c.size for c in columns) + 1, n))
    for j, c in enumerate(columns):
        waves[lead:lead + c.size, j] = c
    defaultclock.dt = dt * second
    ns = {"wave": TimedArray(np.ascontiguousarray(waves), dt=dt * second, name="wave"), "mmolar": mmolar,
          "faraday": 96485.0 * coulomb / mole, "gas_r": 8.314 * joule / mole / kelvin}
    g = NeuronGroup(n, FH_EQS, threshold="v > -20*mV", refractory="v > -20*mV", method="exponential_euler",
                    namespace=ns)
    g.k = np.arange(n)
    g.q = 3.0 ** ((temp_c - 20.0) / 10.0)
    g.cmem = 2e-2 * farad / metre ** 2
    g.T = (temp_c + 273.15) * kelvin
    g.v = -70 * mV
    g.m, g.h, g.n, g.p = 0.0005, 0.8, 0.027, 0.005
    mon = SpikeMonitor(g)
    net = Network(g, mon)
    net.run(20 * ms)  # settle the gates at rest, then stimulate from here
    g.toff = net.t
    net.store("rest")
    dur = waves.shape[0] * dt + 3e-3

    def fired(a):
        net.restore("rest")
        t0 = float(net.t / second)
        g.amp_ = a * amp / metre ** 2
        net.run(dur * second)
        i, t = np.asarray(mon.i[:]), np.asarray(mon.t_[:])
        return np.bincount(i[t > t0], minlength=n) >= 1
    return ax.threshold_search(fired, np.full(n, 20.0), rtol=0.01) / 10.0   # A/m² -> mA/cm²


def table(values, labels):
    out = {}
    for (f, onset, b), v in zip(labels, values):
        out.setdefault(f"{f:g} Hz {onset}", {})[f"{b:g} ms"] = round(float(v), 4)
    for row in out.values():
        row["10/1"] = round(row["10 ms"] / row["1 ms"], 3) if "10 ms" in row and "1 ms" in row else None
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--models", nargs="*", default=["node_cable"], choices=list(ax.MODELS))
    ap.add_argument("--classes", nargs="+", default=["motor", "abeta"])
    ap.add_argument("--carriers", nargs="+", type=float, default=[2500.0])
    ap.add_argument("--bursts", nargs="+", type=float, default=list(BURSTS_MS))
    ap.add_argument("--onsets", nargs="+", default=list(ONSETS), choices=ONSETS)
    ap.add_argument("--temps", nargs="+", type=float, default=[37.0], help="node-cable membrane temperatures (°C)")
    ap.add_argument("--fh", nargs="*", type=float, default=[], help="FH node temperatures (°C)")
    ap.add_argument("--train", type=int, default=1, help="bursts per 50 Hz train")
    args = ap.parse_args(argv)
    gc.freeze()
    labels = [(f, o, b) for f in args.carriers for o in args.onsets for b in args.bursts]
    results, cpu = {}, {}
    for model in args.models:
        for cls in args.classes:
            temps = args.temps if model == "node_cable" else [37.0]
            for temp in temps:
                orig = _with_temperature(temp) if temp != 37.0 else None
                t0 = time.process_time()
                dt = ax.sample_interval(cls, model)
                d, e = cable_thresholds(cls, model, [burst(o, f, b, dt, args.train) for f, o, b in labels])
                key = f"{model} {cls} {d * 1e6:.2f} um {temp:g} C (V/m)"
                results[key] = table(e, labels)
                cpu[key] = round(time.process_time() - t0, 1)
                if orig is not None:
                    ax.membrane_parameters = orig
                    ax._REST_CACHE.clear()
                print(key, results[key], flush=True)
    for temp in args.fh:
        t0 = time.process_time()
        e = fh_thresholds([burst(o, f, b, 0.5e-6, args.train) for f, o, b in labels], temp)
        key = f"FH node {temp:g} C (mA/cm2)"
        results[key] = table(e, labels)
        cpu[key] = round(time.process_time() - t0, 1)
        print(key, results[key], flush=True)
    publish("khz_onset_summation", {"benchmark": "kHz burst threshold vs burst length by onset", **machine(),
                                    "train_bursts_at_50hz": args.train, "results": results, "cpu_s": cpu})
    return 0


if __name__ == "__main__":
    sys.exit(main())
