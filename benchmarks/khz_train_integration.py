"""Would integration over the kHz burst TRAIN explain the kHz discomfort/contraction gaps? (issue 4, S5)

Ward & Lucas-Toumbourou 2007 (50 Hz bursts) and Ward & Chuen 2009 (20 Hz bursts) found
transcutaneous sensory / motor / pain-tolerance thresholds falling with burst duration to a
minimum at ≈ 7 / > 10 / ≥ 20 ms and ≈ 20 / ≈ 30 / > 50 ms: the same fraction of the burst
period (≈ 0.35–0.4, 0.5–0.6, 1). A membrane time constant cannot scale with the period; a count
of action potentials per second — what the discomfort model's temporal summation already
integrates — can, *if* a fibre fires repetitively through the burst: at a carrier-independent
rate ``r`` during the burst (Bromm 1975, Pflügers Arch 353:1: 120–820 Hz at 1–3 × threshold, single
frog nodes at 20 °C) a fibre fires ``r·D`` times per burst, ``r·D/T`` per second.

This probe measures that hypothesis, not a model: it overrides the Brian2 burst-firing table
(``models/fibres/burst_firing.json``: 1 action potential per burst at threshold, ≤ 4 at 5 ×) with
``max(table, r·min(D, u_c·T))`` per class — ``u_c`` the class's utilization fraction of the
period read off Ward (Aβ 0.375; Aδ and C, pain, 1.0), so the counts stop growing where Ward's
thresholds stop falling — and feeds it through the existing hook (afferent spikes → the
discomfort model's ``spikes^q``). Motor units keep one action potential per burst: repetitive
motor firing would add force to the kHz arms, so leaving it out is the most favourable case for
the pulsed-vs-kHz checks. ``r = 0`` is the shipped model.

Outputs per rate: the quantities of the kHz strict xfails and passing checks of
``tests/validation/test_discomfort_targets.py`` (D1, pain/sensory and pain/motor ratios,
pulsed/kHz at NRS 5 and 8, Aussie/pulsed at NRS 8), and Ward's burst-duration series at 50 and
20 Hz bursts (1 and 4 kHz): sensory threshold as 5 % of Aβ and as the spike-weighted Aβ drive
(5 % × spikes^q — the criterion a spike-counting percept would use), motor (2 % of the pool) and
pain-tolerance (NRS 8) thresholds in mA. Discussion: docs/literature/khz_discomfort.md
"Session 9b".

Run (from the repository root): ``python benchmarks/khz_train_integration.py [--rates 0 300 800]``;
appends one JSON line to ``benchmarks/results/khz_train_integration.jsonl``. ~5–10 s CPU per rate.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from _report import machine, publish  # noqa: E402
import emsim.physiology.burst_firing as bf  # noqa: E402
from emsim.physiology.discomfort import DiscomfortParameters  # noqa: E402
import tests.validation.test_discomfort_targets as targets  # noqa: E402

#: Ward's utilization time as a fraction of the burst period (2007: 7/20 ms, 2009: 20/50 ms → ~0.375;
#: pain tolerance ≥ the whole period at both burst rates).
UTILIZATION_FRACTION = {"abeta": 0.375, "adelta": 1.0, "c": 1.0}
WARD_SERIES_MS = {50.0: (1.0, 2.0, 4.0, 7.0, 10.0, 20.0), 20.0: (1.0, 2.0, 4.0, 10.0, 20.0, 30.0, 50.0)}
GRID_BURSTS_S = np.array([0.5, 1.0, 2.0, 4.0, 7.0, 10.0, 20.0, 30.0, 50.0]) * 1e-3
_SHIPPED = bf.load_burst_firing


def repetitive_table(rate_hz: float, period_s: float) -> bf.BurstFiring:
    """The shipped burst-firing table with ``max(n, r·min(D, u_c·T))`` spikes per burst."""
    orig = _SHIPPED()
    counts = {}
    for name in orig.classes:
        c = np.maximum(np.asarray(orig.counts[name], float), 1.0)
        out = np.empty((orig.carrier_hz.size, GRID_BURSTS_S.size, orig.multiples.size))
        for k, d in enumerate(GRID_BURSTS_S):
            nearest = int(np.abs(np.log(d) - np.log(orig.burst_s)).argmin())
            out[:, k, :] = np.maximum(c[:, nearest, :], rate_hz * min(d, UTILIZATION_FRACTION[name] * period_s))
        counts[name] = out
    return bf.BurstFiring(orig.classes, orig.carrier_hz, GRID_BURSTS_S, orig.multiples, counts,
                          {"probe": f"repetitive firing at {rate_hz} Hz"})


def use(table) -> None:
    """Make every later recruit() read ``table`` (the shipped one when None)."""
    bf.load_burst_firing = _SHIPPED if table is None else (lambda *a, **k: table)


def ward_series(frequency_hz: float, carrier_hz: float, q: float) -> dict:
    """Thresholds (mA) over Ward's burst durations at one burst rate and carrier."""
    from emsim.physiology.discomfort import Person, predict
    from emsim.physiology.recruitment import StimulusSet, recruit
    from emsim.program.model import Channel

    ch = Channel(id="A", site=targets.KHZ_SITE, side="left", spacing_cm=4.0, orientation="along_fibres",
                 electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 5.0},) * 2)
    out = {"sensory_fraction": [], "sensory_drive": [], "motor": [], "pain_tolerance": []}
    for b in WARD_SERIES_MS[frequency_hz]:
        s = StimulusSet.from_arrays(targets.KHZ_AMPS_MA, channels=ch, frequency_hz=frequency_hz,
                                    shape="khz_burst", carrier_hz=carrier_hz, burst_duration_ms=b)
        rec = recruit(s, targets.KHZ_SITE, person=Person())
        ab = rec.afferent_fraction["abeta"]
        drive = np.maximum.accumulate((ab * rec.afferent_spikes["abeta"] ** q).max(axis=1))
        cross = targets.first_crossing_ma
        out["sensory_fraction"].append(cross(np.maximum.accumulate(ab.max(axis=1)), 0.05))
        out["sensory_drive"].append(cross(drive, 0.05))
        out["motor"].append(cross(np.maximum.accumulate(rec.force_fraction[:, 0]), 0.02))
        out["pain_tolerance"].append(cross(np.maximum.accumulate(predict(rec).peak), targets.TOLERANCE_NRS))
    return {k: [round(x, 2) for x in v] for k, v in out.items()}


def checks() -> dict:
    """The quantities of the kHz checks of tests/validation/test_discomfort_targets.py (50 Hz bursts)."""
    nrs = []
    for f in targets.D1_CARRIERS_HZ:
        motor, _, n = targets.khz_sweep(f, 4.0)
        i = targets.first_crossing_ma(motor, 0.20)
        nrs.append(round(float(np.interp(math.log(i), np.log(targets.KHZ_AMPS_MA), n)), 2))
    lo, hi = (targets.ward1998_thresholds(f) for f in (1000.0, 10000.0))
    out = {"d1_nrs_at_20pct_pool": nrs,
           "pain_over_sensory_1_10khz": [round(lo[2] / lo[0], 2), round(hi[2] / hi[0], 2)],
           "pain_over_motor_1_10khz": [round(lo[2] / lo[1], 2), round(hi[2] / hi[1], 2)]}
    m = targets.motor_at_nrs
    for w, length in ((5.0, 9.0), (5.0, 5.0)):
        pc200 = m("symmetric_biphasic", w, length, targets.TOLERANCE_NRS, pulse_width_us=200.0)
        out[f"{w:g}x{length:g}"] = {
            "pc300_over_2.5khz_4ms_at_nrs5": round(m("symmetric_biphasic", w, length, pulse_width_us=300.0)
                                                   / m("khz_burst", w, length, carrier_hz=2500.0,
                                                       burst_duration_ms=4.0), 3),
            "pc200_over_russian_at_nrs8": round(pc200 / m("khz_burst", w, length, targets.TOLERANCE_NRS,
                                                          carrier_hz=2500.0, burst_duration_ms=10.0), 3),
            "aussie_over_pc200_at_nrs8": round(m("khz_burst", w, length, targets.TOLERANCE_NRS, carrier_hz=1000.0,
                                                 burst_duration_ms=4.0) / pc200, 3)}
    return out


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rates", nargs="+", type=float, default=[0.0, 300.0, 500.0, 800.0],
                    help="in-burst firing rates (Hz); 0 = the shipped table")
    ap.add_argument("--no-series", action="store_true", help="skip Ward's burst-duration series")
    args = ap.parse_args(argv)
    q = DiscomfortParameters.load().rate_exponent
    rows = []
    for r in args.rates:
        t0 = time.process_time()
        use(None if r == 0 else repetitive_table(r, 1 / 50.0))
        row = {"rate_hz": r, **checks()}
        if not args.no_series:
            for fb in WARD_SERIES_MS:
                use(None if r == 0 else repetitive_table(r, 1 / fb))
                for car in (1000.0, 4000.0):
                    row[f"ward_{fb:g}hz_{car / 1e3:g}khz"] = ward_series(fb, car, q)
        row["cpu_s"] = round(time.process_time() - t0, 2)
        rows.append(row)
        print(row, flush=True)
    use(None)
    publish("khz_train_integration", {"benchmark": "kHz burst-train integration probe (afferent repetitive firing)",
                                      **machine(), "utilization_fraction": UTILIZATION_FRACTION,
                                      "ward_series_ms": {str(k): v for k, v in WARD_SERIES_MS.items()},
                                      "rows": rows})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
