"""Recruitment curves at the lumbar erector spinae vs amplitude, pulse width and fat thickness.

For the three virtual archetypes (``models/patients/lbp_lean.json``, ``lbp_average.json``,
``lbp_high_fat.json``), two electrode sizes and several electrode spacings (placement), the
fraction of the erector-spinae motor pool and of the Aβ skin afferents that one symmetric biphasic pulse excites
(:func:`emsim.physiology.recruitment.recruit`, layered volume conductor + fibre tables).
Subcutaneous fat is extrapolated from limb data (see the models' evidence levels).

Run: ``python studies/recruitment_fat.py [--quick]`` or ``emsim study run recruitment_fat``.
"""

from __future__ import annotations

import numpy as np

from emsim.study import Grid, Parameter, Plot, Study, main

SITE = "lumbar_erector_spinae"
ARCHETYPES = ("lean", "average", "high_fat")
ELECTRODES_CM = {"5x9": (5.0, 9.0), "8x13": (8.0, 13.0)}
# Placement: spacing of the pair along the fibres (3 cm: the usual paravertebral pair). Wider
# pairs send more current deep but spread it; which wins at each fat thickness is the result.
SPACINGS_CM = (2.0, 3.0, 5.0, 8.0)


def _channel(size, spacing_cm=3.0):
    from emsim.program.model import Channel

    w, l = ELECTRODES_CM[size]
    return Channel(id="A", site=SITE, side="left", spacing_cm=float(spacing_cm), orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": w, "length_cm": l},) * 2)


def evaluate(params):
    """Motor and Aβ fractions per row; one vectorised recruit() call per (archetype, electrode)."""
    from emsim._data import models_dir
    from emsim.body import load_patient
    from emsim.physiology.recruitment import StimulusSet, recruit

    n = len(params["amplitude_ma"])
    motor, abeta = np.empty(n), np.empty(n)
    keys = list(zip(params["archetype"], params["electrode"], params["spacing_cm"].astype(float)))
    for arch, size, spacing in dict.fromkeys(keys):
        rows = np.array([k == (arch, size, spacing) for k in keys])
        patient = load_patient(models_dir() / "patients" / f"lbp_{arch}.json")
        stim = StimulusSet.from_arrays(params["amplitude_ma"][rows].astype(float),
                                       params["pulse_width_us"][rows].astype(float), 40.0,
                                       channels=_channel(size, spacing))
        r = recruit(stim, SITE, patient)
        motor[rows] = 100.0 * r.force_fraction[:, 0]
        abeta[rows] = 100.0 * r.afferent_fraction["abeta"].mean(axis=1)
    return {"motor_recruited_pct": motor, "abeta_recruited_pct": abeta}


def build(quick: bool = False) -> Study:
    """Lumbar recruitment vs amplitude, pulse width, fat thickness (archetypes) and electrode size."""
    amps = (10.0, 40.0, 80.0) if quick else tuple(float(a) for a in np.arange(5.0, 125.0, 5.0))
    pws = (300.0,) if quick else (100.0, 200.0, 300.0, 450.0)
    return Study(
        name="recruitment_fat", title="Lumbar recruitment vs amplitude, pulse width and fat thickness",
        description=" ".join(__doc__.strip().split("\n\n")[1].split()), quick=quick, evaluate=evaluate,
        space=Grid(Parameter("archetype", "", ARCHETYPES, label="patient archetype"),
                   Parameter("electrode", "cm × cm", ("5x9",) if quick else tuple(ELECTRODES_CM), label="electrode"),
                   Parameter("spacing_cm", "cm", (3.0, 8.0) if quick else SPACINGS_CM,
                             label="electrode spacing (edge to edge, along the fibres)"),
                   Parameter("pulse_width_us", "µs", pws, label="pulse width"),
                   Parameter("amplitude_ma", "mA", amps, label="amplitude")),
        outcomes={"motor_recruited_pct": "% of pool", "abeta_recruited_pct": "% of afferents"},
        outcome_labels={"motor_recruited_pct": "erector spinae motor units recruited",
                        "abeta_recruited_pct": "Aβ skin afferents excited"},
        batch_size=24 if quick else 96,
        models=("patients/lbp_lean.json", "patients/lbp_average.json", "patients/lbp_high_fat.json",
                "sites/layers.json", "sites/sites.json", "tissues/conductivities.json", "fibres/motor_pools.json",
                "fibres/thresholds.npz"),
        plots=(Plot("amplitude_ma", "motor_recruited_pct", by="archetype", facet="pulse_width_us",
                    where={"electrode": "5x9", "spacing_cm": 3.0},
                    title="Recruitment curves by fat thickness (5 × 9 cm electrodes 3 cm apart)"),
               Plot("amplitude_ma", "abeta_recruited_pct", by="archetype", facet="pulse_width_us",
                    where={"electrode": "5x9", "spacing_cm": 3.0},
                    title="Aβ afferents by fat thickness (5 × 9 cm electrodes 3 cm apart)"),
               Plot("amplitude_ma", "motor_recruited_pct", by="electrode", facet="archetype",
                    where={"pulse_width_us": 300.0, "spacing_cm": 3.0}, title="Electrode size (300 µs, 3 cm apart)"),
               Plot("amplitude_ma", "motor_recruited_pct", by="spacing_cm", facet="archetype",
                    where={"pulse_width_us": 300.0, "electrode": "5x9"},
                    title="Placement: electrode spacing (300 µs, 5 × 9 cm)")))


if __name__ == "__main__":
    raise SystemExit(main(build))
