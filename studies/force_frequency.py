"""Force–frequency and fatigue vs frequency and duty cycle of the quadriceps model.

Reproduces, on ``models/muscles/quadriceps_ding2003.json``, the matched-initial-force fatigue
experiments collected in ``docs/literature/muscle_fatigue_effects.md`` (§1, §3.5): trains of
``on_s`` at ``frequency_hz``, repeated with the given duty cycle, recruitment set so that the
first train peaks at 25 % of F_max (Bickel et al. 2012 matched 25 % MVIC).

Run: ``python studies/force_frequency.py [--quick]`` or ``emsim study run force_frequency``.
"""

from __future__ import annotations

import numpy as np

from emsim.study import Grid, Parameter, Plot, Reference, Study, main

MUSCLE = "quadriceps_ding2003"
ON_S = 1.0
TARGET = 0.25  # initial peak force as a fraction of F_max (Bickel 2012: 25 % MVIC)


def _padded(rows):
    out = np.full((len(rows), max(r.size for r in rows)), np.nan)
    for i, r in enumerate(rows):
        out[i, :r.size] = r
    return out


def evaluate(params):
    """Rested force at full recruitment and the decline over the fatiguing series, per row."""
    from emsim.physiology.muscle import load_muscle, simulate

    m = load_muscle(MUSCLE)
    f = params["frequency_hz"].astype(float)
    duty = params["duty_cycle"].astype(float)
    n = params["contractions"].astype(int)
    singles = [np.arange(0.0, ON_S - 1e-9, 1.0 / fi) for fi in f]
    one = _padded(singles)
    series = _padded([np.concatenate([k * ON_S / d + s for k in range(m)]) for s, d, m in zip(singles, duty, n)])
    rested = simulate(one, m, fatigue=False, trace=False).peak_force_n[:, 0]
    recr = np.clip(TARGET * m.max_force / rested, 0.0, 1.0)
    res = simulate(series, m, recruitment=np.broadcast_to(recr[:, None], series.shape).copy(), trace=False)
    first = res.peak_force_n[:, 0]
    return {"rested_force_pct_max": 100.0 * rested / m.max_force,
            "initial_force_pct_max": 100.0 * first / m.max_force,
            "fatigue_decline_pct": 100.0 * (1.0 - res.fatigue_index)}


REFERENCES = (
    Reference("Bickel 2012 (25 % MVIC; frequencies unverified recollection)",
              "Bickel, Gregory & Azuero 2012, J Rehabil Res Dev 49(2): decline 25 ± 14 % (lowHz) vs 50 ± 13 % (lowPD, "
              "~60 Hz); docs/literature/muscle_fatigue_effects.md §1.3",
              "verified abstract (declines); frequencies 12/60 Hz unverified recollection",
              {"frequency_hz": [12.0, 60.0], "fatigue_decline_pct": [25.0, 50.0], "sd": [14.0, 13.0]}, error="sd"),
    Reference("Bickel 2004 (14 Hz, 50 % duty, 180 trains)",
              "Bickel et al. 2004, J Rehabil Res Dev 41(1): able-bodied decline 44 % (±15 points tolerance); "
              "docs/literature/muscle_fatigue_effects.md §3.5",
              "verified abstract", {"frequency_hz": [14.0], "fatigue_decline_pct": [44.0], "sd": [15.0]}, error="sd"),
)
#: Typical quadriceps force–frequency values (% of the ~100 Hz force), drawn as range midpoints ± half-range.
FFR = Reference("typical quadriceps FFR (unverified recollection)",
                "shared/reference/muscle_force_fatigue.md §4.1: ~30–40 % at 10 Hz, ~55–70 % at 20 Hz, ~75–85 % at "
                "30 Hz, ~90–95 % at 50 Hz of the ~100 Hz force (after Binder-Macleod & McDermond 1992, Phys Ther "
                "72:95; Binder-Macleod et al. 1995, Med Sci Sports Exerc 27:556)",
                "unverified recollection (the papers' figures are not reproduced in the reference)",
                {"frequency_hz": [10.0, 20.0, 30.0, 50.0], "rested_force_pct_max": [35.0, 62.5, 80.0, 92.5],
                 "half_range": [5.0, 7.5, 5.0, 2.5]}, error="half_range")


def build(quick: bool = False) -> Study:
    """Force–frequency and fatigue vs frequency and duty cycle (quadriceps, 25 % F_max start)."""
    freqs = (10.0, 20.0, 40.0, 80.0) if quick else (5.0, 8.0, 10.0, 12.0, 14.0, 20.0, 30.0, 40.0, 50.0, 60.0, 80.0, 100.0)
    space = Grid(Parameter("frequency_hz", "Hz", freqs, label="frequency"),
                 Parameter("duty_cycle", "", (0.25, 0.5), label="duty cycle (on / period)"),
                 Parameter("contractions", "", (10,) if quick else (60, 180), label="contractions"))
    return Study(
        name="force_frequency", title="Force–frequency and fatigue vs frequency and duty cycle (quadriceps)",
        description=" ".join(__doc__.strip().split("\n\n")[1].split()), space=space, evaluate=evaluate, quick=quick,
        outcomes={"rested_force_pct_max": "% F_max", "initial_force_pct_max": "% F_max",
                  "fatigue_decline_pct": "%"},
        outcome_labels={"rested_force_pct_max": "rested peak force (full recruitment)",
                        "initial_force_pct_max": "first-train peak force",
                        "fatigue_decline_pct": "decline of peak force, first to last train"},
        batch_size=8, plots=(
            Plot("frequency_hz", "rested_force_pct_max", where={"duty_cycle": 0.5, "contractions": 10 if quick else 60},
                 title="Force–frequency relation (rested, 1 s trains)", references=(FFR.label,)),
            Plot("frequency_hz", "fatigue_decline_pct", by="duty_cycle", facet="contractions",
                 title="Fatigue at matched initial force (25 % F_max)", references=tuple(r.label for r in REFERENCES)),
        ), references=REFERENCES + (FFR,), models=(f"muscles/{MUSCLE}.json",))


if __name__ == "__main__":
    raise SystemExit(main(build))
