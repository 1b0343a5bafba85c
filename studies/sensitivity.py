"""Sensitivity of lumbar predictions to the uncertain parameters: Morris elementary effects.

One representative lumbar program — the main phase of ``models/programs/paraspinal_strengthening.json``
(50 Hz, 300 µs symmetric biphasic, 10 s on / 20 s off, 2 s ramps) on the left erector spinae at
an absolute 45 mA — on the average archetype (``models/patients/lbp_average.json``), with the
parameters that ``models/muscles/lumbar_erector_spinae.json``, the cohort and the discomfort model
mark as extrapolated or assumed varied over the ranges in :data:`FACTORS` (each with its basis).
Morris trajectories (4 levels, Morris 1991; μ* of Campolongo et al. 2007) rank which of them move
the predicted peak and mean contraction, the fatigue decline and the peak discomfort: an outcome
whose μ* is dominated by assumed parameters is one users should not trust in absolute terms.

The chain is the one :func:`emsim.simulate.predict_train` runs (compile → recruit → muscle →
cutaneous activation → discomfort), driven here with perturbed parameter objects built through
public constructors (``dataclasses.replace`` on :class:`~emsim.physiology.muscle.MuscleParameters`,
a patient re-read with another fat thickness); the recruited motor fraction stands in for the
contraction term of the discomfort model.

Run: ``python studies/sensitivity.py [--quick]`` or ``emsim study run sensitivity``.
"""

from __future__ import annotations

import dataclasses
import json
import numpy as np

from emsim.study import Grid, MorrisTrajectories, Parameter, Plot, Study, elementary_effects, main, worker_cache

SITE, SIDE, MUSCLE = "lumbar_erector_spinae", "left", "lumbar_erector_spinae"
AMPLITUDE_MA = 45.0

# name -> (low, high, unit, label, basis). Factors multiply the file's value unless stated.
FACTORS = {
    "fat_mm": (5.0, 28.0, "mm", "subcutaneous fat (ES)",
               "archetype range lean 5 mm – high-fat 25–28 mm (models/patients; assumed anchors of "
               "cohorts/adults_lbp)"),
    "tau1_factor": (0.7, 1.4, "×", "τ1 (force decay)", "assumed (quadriceps Ding 2003 value); range assumed"),
    "tau2_factor": (0.7, 1.4, "×", "τ2 (force decay)", "assumed (quadriceps Ding 2003 value)"),
    "km_factor": (0.7, 1.4, "×", "Km (force sensitivity)", "extrapolated from Ding 2003 quadriceps"),
    "type1_fraction": (0.54, 0.75, "", "type I area fraction",
                       "measured range: men 54–58 %, women 70–75 % by area (Thorstensson 1987)"),
    "pulse_cost_factor": (0.5, 2.0, "×", "fatigue cost per pulse", "extrapolated from quadriceps (Ding 2003 fit)"),
    "recovery_factor": (0.5, 2.0, "×", "fast recovery time", "extrapolated from quadriceps (τfat 127 s)"),
    "drive_scale_factor": (0.7, 1.4, "×", "fatigue drive scale", "fitted to McCully 2019 (one study)"),
    "cutaneous_scale": (0.57, 1.3, "×", "cutaneous threshold scale",
                        "0.57 = women's sensory threshold (Maffiuletti 2008); upper end assumed"),
    "sensitivity": (0.7, 1.4, "×", "discomfort sensitivity",
                    "assumed person factor (calibration fits it when measured)"),
    "motor_gain": (0.7, 1.4, "×", "motor gain",
                   "assumed; the calibration's person factor when thresholds are measured"),
}
# What kind of uncertainty each factor is: model parameters (assumed / extrapolated / fitted /
# measured range) or person factors a user can measure (ultrasound fat, threshold calibration).
EVIDENCE = {"fat_mm": "person (ultrasound)", "tau1_factor": "assumed", "tau2_factor": "assumed",
            "km_factor": "extrapolated", "type1_fraction": "measured range", "pulse_cost_factor": "extrapolated",
            "recovery_factor": "extrapolated", "drive_scale_factor": "fitted",
            "cutaneous_scale": "person (calibration)",
            "sensitivity": "person (calibration)", "motor_gain": "person (calibration)"}
OUTCOMES = {"peak_mvc_pct": "% max force", "mean_mvc_pct": "% max force", "fatigue_decline_pct": "%",
            "peak_discomfort_nrs": "NRS 0–10"}
LABELS = {"peak_mvc_pct": "peak contraction", "mean_mvc_pct": "mean contraction",
          "fatigue_decline_pct": "fatigue decline", "peak_discomfort_nrs": "peak discomfort"}


def space(r: int, window_s: float) -> MorrisTrajectories:
    """``r`` trajectories over FACTORS, each point evaluated over ``window_s`` of the session."""
    return MorrisTrajectories(tuple(Parameter(k, v[2], low=v[0], high=v[1], label=v[3]) for k, v in FACTORS.items()),
                              r=r, extra=Grid(Parameter("window_s", "s", (float(window_s),), label="evaluated window")))


@worker_cache(4)
def _program(window_s: float):
    from emsim._data import models_dir
    from emsim.program.io import from_dict, load

    data = load(models_dir() / "programs" / "paraspinal_strengthening.json").model_dump(mode="json", exclude_none=True)
    ch = next(c for c in data["channels"] if c["site"] == SITE and c["side"] == SIDE)
    main_phase = next(ph for ph in data["phases"] if ph["kind"] == "main")
    st = dict(next(s for s in main_phase["stimulation"] if s["channel"] == ch["id"]), amplitude={"ma": AMPLITUDE_MA})
    return from_dict(dict(data, channels=[ch], schedule=dict(data["schedule"], progression=[]),
                          phases=[dict(main_phase, duration_s=float(window_s), stimulation=[st])]))


@worker_cache(64)
def _patient(fat_mm: float):
    from emsim._data import models_dir
    from emsim.body.patient import dumps_patient, load_patient, loads_patient

    doc = json.loads(dumps_patient(load_patient(models_dir() / "patients" / "lbp_average.json")))
    for f in doc.get("fat_thickness", []):
        if f["site"] == SITE:
            f["value_mm"] = round(float(fat_mm), 2)
    return loads_patient(json.dumps(doc))


def _muscle(x: dict):
    from emsim.physiology.muscle import load_muscle

    m = load_muscle(MUSCLE)
    ding = dataclasses.replace(m.ding, tau1_rest=m.ding.tau1_rest * x["tau1_factor"],
                               tau2=m.ding.tau2 * x["tau2_factor"], km_rest=m.ding.km_rest * x["km_factor"])
    pool = dataclasses.replace(m.pool, type1_area_fraction=float(x["type1_fraction"]))
    fat = dataclasses.replace(m.fatigue, pulse_cost=m.fatigue.pulse_cost * x["pulse_cost_factor"],
                              recovery_fast=m.fatigue.recovery_fast * x["recovery_factor"],
                              drive_scale=m.fatigue.drive_scale * x["drive_scale_factor"])
    return dataclasses.replace(m, ding=ding, pool=pool, fatigue=fat)


def predict(x: dict, window_s: float) -> dict:
    """The four outcomes for one parameter point ``x`` (keys of FACTORS)."""
    from emsim.physiology import discomfort as dsc
    from emsim.physiology.muscle import simulate
    from emsim.physiology.recruitment import recruit
    from emsim.program.compile import compile as compile_program

    patient = _patient(float(x["fat_mm"]))
    prog = _program(window_s)
    first = prog.schedule.first_sessions  # nominal dose: the first session after conditioning
    train = compile_program(prog, patient, session=1 if first is None else int(first.count) + 1)
    seen = dataclasses.replace(train, amplitude_a=train.amplitude_a * x["motor_gain"])
    rec = recruit(seen, SITE, patient)
    pools = [i for i, name in enumerate(rec.muscles) if name.endswith(f":{SIDE}")]
    motor = np.clip(rec.motor_fraction[:, pools].mean(axis=1), 0.0, 1.0)
    m = _muscle(x)
    res = simulate(train.t_s[None], m, recruitment=motor[None], t_end=float(train.duration_s), trace=False)
    pk = res.peak_force_n[0] / m.max_force * 100.0
    # fatigue as emsim.simulate defines it: the end of the last contraction's plateau
    end = res.end_force_n[0][np.isfinite(pk)] / m.max_force * 100.0
    pk = pk[np.isfinite(pk)]
    person = dsc.Person(cutaneous_threshold_scale=float(x["cutaneous_scale"]), sensitivity=float(x["sensitivity"]))
    act = dsc.cutaneous_activation(rec.fields[0].skin_current_density(), train.amplitude_a, train.width_s,
                                   person=person)
    area = [[e.area_cm2 * 1e-4 for e in train.program.channels[0].electrodes]]
    drive = dsc.AfferentDrive.from_pulses(train.t_s[None], act, area, force_fraction=motor[None])
    return {"peak_mvc_pct": float(pk.max(initial=0.0)), "mean_mvc_pct": float(pk.mean()) if pk.size else 0.0,
            "fatigue_decline_pct": 100.0 * (1.0 - end[-1] / pk.max()) if pk.size and pk.max() > 0 else 0.0,
            "peak_discomfort_nrs": float(dsc.predict(drive, person=person).peak[0])}


def trust(eff):
    """Per outcome: the share of Σμ* from model parameters a user cannot measure, and a verdict."""
    import pandas as pd

    rows = []
    for outcome, g in eff.groupby("outcome", sort=True):
        total = float(g["mu_star"].sum())
        model = float(g.loc[~g["evidence"].str.startswith("person"), "mu_star"].sum())
        share = model / total if total > 0 else 0.0
        top = g.sort_values("mu_star", ascending=False)["factor"].iloc[0]
        verdict = ("driven by measurable person factors: trust after measuring fat and calibrating thresholds"
                   if share < 0.33 else "mixed: trust differences between programs more than absolute values"
                   if share < 0.66 else "driven by assumed / extrapolated muscle parameters: trust trends only")
        rows.append({"outcome": outcome, "top_factor": top, "model_parameter_share": share, "verdict": verdict})
    return pd.DataFrame(rows)


def evaluate(params):
    """Outcomes at every trajectory point."""
    n = len(params["trajectory"])
    rows = [predict({k: float(params[k][i]) for k in FACTORS}, float(params["window_s"][i])) for i in range(n)]
    return {k: np.array([r[k] for r in rows]) for k in OUTCOMES}


def build(quick: bool = False) -> Study:
    """Morris screening of the uncertain lumbar parameters (contraction, fatigue, discomfort)."""
    morris = space(1 if quick else 20, 35.0 if quick else 120.0)  # quick: two contractions, so fatigue shows

    def tables(df):
        eff = elementary_effects(df, morris, tuple(OUTCOMES))
        eff["basis"] = eff["factor"].map(lambda f: FACTORS[f][4])
        eff = eff.sort_values(["outcome", "mu_star"], ascending=[True, False]).reset_index(drop=True)
        eff["rank"] = eff.groupby("outcome").cumcount() + 1
        eff["evidence"] = eff["factor"].map(EVIDENCE)
        return {"elementary effects": eff, "what to trust": trust(eff)}

    return Study(
        name="sensitivity", title="Sensitivity of lumbar predictions to uncertain parameters (Morris screening)",
        description=" ".join(__doc__.strip().split("\n\n")[1].split()), quick=quick, seed=5,
        space=morris, evaluate=evaluate, outcomes=OUTCOMES, outcome_labels=LABELS,
        batch_size=len(FACTORS) + 1, tables=tables,
        derived_units={"mu_star": "outcome unit per full range", "mu": "outcome unit per full range",
                       "sigma": "outcome unit per full range", "n_effects": "", "factor": "", "outcome": "",
                       "basis": "", "rank": "", "evidence": "", "top_factor": "", "model_parameter_share": "",
                       "verdict": ""},
        models=("muscles/lumbar_erector_spinae.json", "patients/lbp_average.json", "discomfort/discomfort.json",
                "programs/paraspinal_strengthening.json", "cohorts/adults_lbp.json"),
        plots=(Plot("mu_star", "sigma", by="factor", facet="outcome", kind="scatter", table="elementary effects",
                    shared_axes=False,
                    title="Morris screening: μ* (importance) vs σ (interaction / non-linearity)"),
               Plot("factor", "mu_star", facet="outcome", kind="bar", table="elementary effects", shared_axes=False,
                    title="μ* per factor, one panel per outcome (ranked in the table)"),
               Plot("outcome", "model_parameter_share", kind="bar", table="what to trust",
                    title="Share of μ* from model parameters users cannot measure (low = trustworthy)")))


if __name__ == "__main__":
    raise SystemExit(main(build))
