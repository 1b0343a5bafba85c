"""Strength–duration curves of motor, sensory (Aβ) and pain (Aδ, C) fibres vs published chronaxies.

Reads the monophasic threshold columns of the shipped fibre table
(``models/fibres/thresholds.npz``, Brian2 cable models) at each class's geometric-mean diameter,
normalises them to the Weiss-law rheobase, and fits the chronaxie (Mogyoros et al. 1996 charge
form, :func:`emsim.physiology.fibre_tables.weiss_fit`).

Run: ``python studies/strength_duration.py [--quick]`` or ``emsim study run strength_duration``.
"""

from __future__ import annotations

import numpy as np

from emsim.study import Grid, Parameter, Plot, Reference, Study, main

CLASSES = ("motor", "abeta", "adelta", "c")


def evaluate(params):
    """Threshold / rheobase at each pulse width, and the class's fitted chronaxie, per row."""
    from emsim.physiology.fibre_tables import load_table, weiss_fit

    table = load_table()
    pw_grid = table.pulse_width_s
    out_ratio, out_chron = [], []
    for name, pw_us in zip(params["fibre_class"], params["pulse_width_us"].astype(float)):
        # The diameter grid row nearest the class's geometric-mean diameter (the table's own
        # strength_duration default) keeps the curve and the fitted chronaxie consistent.
        d = np.log(table.diameters_m[name])
        col = table.mono[name][int(np.argmin(np.abs(d - d.mean())))]
        rheobase, chronaxie = weiss_fit(pw_grid, col)
        thr = np.exp(np.interp(np.log(pw_us * 1e-6), np.log(pw_grid), np.log(col)))
        out_ratio.append(thr / rheobase)
        out_chron.append(chronaxie * 1e6)
    return {"threshold_over_rheobase": np.array(out_ratio), "chronaxie_us": np.array(out_chron)}


REFERENCES = (
    Reference("chronaxies (published)",
              "motor 459 ± 126 µs and sensory 665 ± 182 µs: Mogyoros, Kiernan & Burke 1996, Brain 119:439 (human "
              "median nerve, measured); Aδ 232 µs: Guillen et al. 2025, Front Pain Res 6:1526277 (MRG model value); "
              "C ~2 ms (1–4 ms 'classical'): Schneider et al. 2023, J Pain",
              "measured (motor, sensory); model (Aδ); review range (C)",
              {"fibre_class": ["motor", "abeta", "adelta", "c"], "chronaxie_us": [459.0, 665.0, 232.0, 2000.0],
               "sd": [126.0, 182.0, 93.0, 1000.0]}, error="sd"),
    Reference("Weiss law at the published motor chronaxie",
              "Weiss law I/I_rh = 1 + c/t with c = 459 µs (Mogyoros 1996)", "measured (chronaxie); law: model",
              {"pulse_width_us": [50.0, 100.0, 200.0, 500.0, 1000.0],
               "threshold_over_rheobase": [1 + 459.0 / t for t in (50.0, 100.0, 200.0, 500.0, 1000.0)]}),
)


def build(quick: bool = False) -> Study:
    """Strength–duration curves of motor, Aβ, Aδ and C fibres from the fibre tables."""
    pws = (50.0, 200.0, 1000.0) if quick else tuple(float(v) for v in np.geomspace(20, 1000, 15).round(1))
    return Study(
        name="strength_duration", title="Strength–duration curves of motor, sensory and pain fibres",
        description=__doc__.strip().splitlines()[2], quick=quick, evaluate=evaluate,
        space=Grid(Parameter("fibre_class", "", CLASSES, label="fibre class"),
                   Parameter("pulse_width_us", "µs", pws, label="pulse width")),
        outcomes={"threshold_over_rheobase": "× rheobase", "chronaxie_us": "µs"},
        outcome_labels={"threshold_over_rheobase": "threshold", "chronaxie_us": "chronaxie (Weiss fit)"},
        batch_size=16, references=REFERENCES, models=("fibres/thresholds.npz", "fibres/thresholds.json",
                                                       "fibres/fibre_classes.json"),
        plots=(Plot("pulse_width_us", "threshold_over_rheobase", by="fibre_class", logx=True, logy=True,
                    title="Strength–duration curves (monophasic, geometric-mean diameter)",
                    references=("Weiss law at the published motor chronaxie",)),
               Plot("fibre_class", "chronaxie_us", where={"pulse_width_us": pws[0]}, logy=True,
                    title="Chronaxie: model vs published", references=("chronaxies (published)",))))


if __name__ == "__main__":
    raise SystemExit(main(build))
