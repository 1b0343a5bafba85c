"""Lumbar program design: Pareto fronts of contraction, discomfort and fatigue, archetypes and a cohort.

Stage 1 (design): a Latin-hypercube sample of lumbar erector-spinae programs (frequency 20–100 Hz,
pulse width 150–450 µs, 20–90 mA, 4–15 s on, 4–40 s off, 0.5–2 s ramps; the usual lumbar NMES
ranges of emsim.optimise, currents absolute because the archetypes have no measured
thresholds) plus the references — the whole-body-EMS standard (85 Hz, 350 µs, 4 s on / 4 s
off, ``models/programs/wb_ems_85hz_350us.json``), the home-device routine's paraspinal block
and the whole home-device routine (hip flexors, paraspinals, glutes, 20 min each, both sides:
``models/programs/home_routine_hip_back_glutes.json``) — evaluated with
:func:`emsim.simulate.evaluate` on the lean, average and high-fat archetypes. Each archetype's
non-dominated front: mean contraction (% of the region's maximum) up, peak discomfort (NRS)
down, fatigue (decline of the contraction over the session, %) down; only programs the safety
check passes.

Stage 2 (cohort): the front programs and the WB-EMS and paraspinal-block references on a cohort
of virtual patients (:func:`emsim.body.cohort`): outcome distributions (median, 10–90 % band)
and the front of the medians (cohort-robust front).

Simplifications: the designs and the two lumbar references are reduced to their left lumbar
erector-spinae channel (the programs are left/right symmetric) and the phase stimulating it,
evaluated at nominal dose (the first session after conditioning, progression removed) over the
first ``window_s`` seconds of that phase (default 1 200 s: the whole 20-min session). The whole
home routine is evaluated as written (6 channels, 3 × 20 min) on the archetypes only: its
outcomes combine three regions (mean contraction averaged over the six channels, peak
discomfort and fatigue the worst of them), so it is a whole-routine reference, not a lumbar
one; it costs ~6 field solutions per patient and is left out of the cohort.

Options (``emsim study run lumbar_design --set KEY=VALUE``, the same for ``report``):
``window_s`` (evaluated seconds of each lumbar program, 10–1200), ``cohort`` (virtual patients,
1–100 000), ``n_designs`` (Latin-hypercube programs, 2–500), ``max_front`` (front programs
taken to the cohort, 1–100). The cohort stage costs about 1 CPU-second per patient at 1 200 s
(14 programs; measured on 2 shared cores): ~16 min for 1 000 patients on one core.

Run: ``python studies/lumbar_design.py [--quick]`` or ``emsim study run lumbar_design``.
"""

from __future__ import annotations

import numpy as np

from emsim.study import (Cohort, Grid, LatinHypercube, Parameter, Plot, Study, cohort_patients, main, pareto_mask,
                         worker_cache)

SITE = "lumbar_erector_spinae"
ARCHETYPES = ("lean", "average", "high_fat")
REFERENCES = {"WB-EMS 85 Hz 350 µs 4/4 s": "wb_ems_85hz_350us",
              "home routine (paraspinal block)": "home_routine_hip_back_glutes"}
#: References evaluated as written (all channels and phases), on the archetypes only.
WHOLE = {"home routine (whole: 3 sites x 20 min, both sides)": "home_routine_hip_back_glutes"}
# Sampled settings, in the units of emsim.optimise's design space (which snaps them to its grid).
SETTINGS = (Parameter("frequency_hz", "Hz", low=20.0, high=100.0, label="frequency"),
            Parameter("pulse_width_us", "µs", low=150.0, high=450.0, label="pulse width"),
            Parameter("amplitude_ma", "mA", low=20.0, high=90.0, label="amplitude"),
            Parameter("on_s", "s", low=4.0, high=15.0, label="on time"),
            Parameter("off_s", "s", low=4.0, high=40.0, label="off time"),
            Parameter("ramp_s", "s", low=0.5, high=2.0, label="ramp up = ramp down"))
OUTCOMES = {"mean_mvc_pct": "% max force", "peak_mvc_pct": "% max force", "fatigue_decline_pct": "%",
            "peak_discomfort_nrs": "NRS 0–10", "mean_discomfort_nrs": "NRS 0–10", "safety_ok": "1 = passes"}
OBJECTIVES = {"mean_mvc_pct": True, "peak_discomfort_nrs": False, "fatigue_decline_pct": False}  # True: maximise
LABELS = {"mean_mvc_pct": "mean contraction", "peak_mvc_pct": "peak contraction",
          "fatigue_decline_pct": "fatigue (decline over the session)", "peak_discomfort_nrs": "peak discomfort",
          "mean_discomfort_nrs": "mean discomfort"}
FULL = {"n_designs": 48, "window_s": 1200.0, "cohort": 1000, "max_front": 12}
QUICK = {"n_designs": 3, "window_s": 12.0, "cohort": 2, "max_front": 2}
#: Allowed range of each option (the window stays within the 20-min session of the references).
OPTION_RANGES = {"window_s": (10.0, 1200.0), "cohort": (1, 100_000), "n_designs": (2, 500), "max_front": (1, 100)}


# ------------------------------------------------------------------ programs

def design_label(frequency_hz, pulse_width_us, amplitude_ma, on_s, off_s, ramp_s) -> str:
    """A candidate's settings as its label (the label is all a worker needs to rebuild it)."""
    return (f"{frequency_hz:g} Hz {pulse_width_us:g} µs {amplitude_ma:g} mA "
            f"{on_s:g}/{off_s:g} s r{ramp_s:g}")


def _parse(label: str) -> dict:
    t = label.replace("/", " ").split()
    return {"frequency_hz": float(t[0]), "pulse_width_us": float(t[2]), "amplitude_ma": float(t[4]),
            "on_s": float(t[6]), "off_s": float(t[7]), "ramp_up_s": float(t[9][1:]), "ramp_down_s": float(t[9][1:])}


def _nominal(data: dict, window_s: float) -> dict:
    """Keep the left lumbar ES channel and the phase stimulating it, ``window_s`` long, at nominal dose
    (the programs are symmetric: one side halves the field solutions per virtual patient)."""
    chans = [c for c in data["channels"] if c["site"] == SITE and c["side"] == "left"]
    ids = {c["id"] for c in chans}
    phase = next(ph for ph in data["phases"] if any(st["channel"] in ids for st in ph["stimulation"]))
    phase = dict(phase, kind="main", duration_s=float(window_s), timing={"mode": "simultaneous", "offset_s": 0},
                 stimulation=[st for st in phase["stimulation"] if st["channel"] in ids])
    schedule = dict(data["schedule"], progression=[])
    return dict(data, channels=chans, phases=[phase], schedule=schedule)


def nominal_session(prog) -> int:
    """The first session after the conditioning sessions (full intensity and duration)."""
    first = prog.schedule.first_sessions
    return 1 if first is None else int(first.count) + 1


@worker_cache(256)
def program(design: str, window_s: float):
    """The lumbar program of a design label or reference name."""
    from emsim._data import models_dir
    from emsim.optimise import DesignSpace, lumbar_template
    from emsim.program.io import from_dict, load

    if design in WHOLE:
        data = load(models_dir() / "programs" / f"{WHOLE[design]}.json").model_dump(mode="json", exclude_none=True)
        return from_dict(dict(data, schedule=dict(data["schedule"], progression=[])))
    if design in REFERENCES:
        data = load(models_dir() / "programs" / f"{REFERENCES[design]}.json").model_dump(mode="json", exclude_none=True)
        return from_dict(_nominal(data, window_s))
    data = lumbar_template(None, duration_s=window_s).model_dump(mode="json", exclude_none=True)
    template = from_dict(_nominal(data, window_s))
    fields = ("frequency_hz", "pulse_width_us", "amplitude", "on_s", "off_s", "ramp_up_s", "ramp_down_s")
    space = DesignSpace.from_template(template, fields=fields, tie=fields,
                                      bounds={"amplitude_ma": (SETTINGS[2].low, SETTINGS[2].high)})
    settings = _parse(design)
    return space.to_program(space.snap({v.name: settings[v.field] for v in space.variables}))


def _settings(prog) -> dict:
    st = prog.phases[0].stimulation[0]
    return {"frequency_hz": st.frequency_hz, "pulse_width_us": st.waveform.pulse_width_us,
            "amplitude_ma": st.amplitude.ma, "on_s": st.on_s, "off_s": st.off_s, "ramp_s": st.ramp_up_s}


def _outcomes(prog, patient) -> dict:
    from emsim.simulate import evaluate as predict

    pred = predict(prog, patient, session=nominal_session(prog), trace=False)
    out = {k: pred.scalars[k] for k in OUTCOMES if k in pred.scalars}
    out["safety_ok"] = float(pred.safety.ok)
    return out


def _archetype(name: str):
    from emsim._data import models_dir
    from emsim.body import load_patient

    return load_patient(models_dir() / "patients" / f"lbp_{name}.json")


def evaluate_design(params):
    """Stage 1: outcomes and the (snapped) settings of each design on each archetype."""
    rows = []
    for design, arch, window in zip(params["design"], params["archetype"], params["window_s"]):
        prog = program(str(design), float(window))
        rows.append({**_outcomes(prog, _archetype(str(arch))), **_settings(prog)})
    return {k: np.array([r[k] for r in rows], dtype=float) for k in rows[0]}


def evaluate_cohort(params):
    """Stage 2: outcomes of each program on each virtual patient (seed = COHORT_SEED)."""
    patients = cohort_patients(params["patient_index"], COHORT_SEED)
    rows = [_outcomes(program(str(d), float(w)), p) for d, w, p in zip(params["design"], params["window_s"], patients)]
    return {k: np.array([r[k] for r in rows], dtype=float) for k in OUTCOMES}


COHORT_SEED = 7


# ------------------------------------------------------------------ fronts and summaries

def _kind(design: str, on_front: bool) -> str:
    if design in REFERENCES or design in WHOLE:
        return design
    return "Pareto front" if on_front else "candidate"


def _front(df):
    ok = (df["safety_ok"] > 0).to_numpy()
    vals = df[list(OBJECTIVES)].to_numpy(float)
    mask = np.zeros(len(df), dtype=bool)
    mask[ok] = pareto_mask(vals[ok], list(OBJECTIVES.values()))
    return mask


def design_tables(df):
    """Front membership per archetype (candidates only; references marked)."""
    parts = []
    for _, g in df.groupby("archetype", sort=False):
        cand = ~g["design"].isin([*REFERENCES, *WHOLE])
        front = np.zeros(len(g), dtype=bool)
        front[cand.to_numpy()] = _front(g[cand])
        parts.append(g.assign(on_front=front, kind=[_kind(d, f) for d, f in zip(g["design"], front)]))
    import pandas as pd

    return {"fronts": pd.concat(parts, ignore_index=True)}


def front_designs(df, max_front: int) -> list[str]:
    """Designs on any archetype's front: most fronts first, then the strongest mean contraction."""
    fr = design_tables(df)["fronts"]
    on = fr[fr["on_front"]]
    score = on.groupby("design").agg(n=("archetype", "size"), mvc=("mean_mvc_pct", "mean"))
    return list(score.sort_values(["n", "mvc"], ascending=False).index[:max_front])


def cohort_tables(df):
    """Median and 10–90 % band of each outcome per program; front of the medians."""
    import pandas as pd

    g = df.groupby("design", sort=False)
    summary = pd.DataFrame({"n_patients": g.size(), "safety_ok_share": g["safety_ok"].mean()})
    for k in OBJECTIVES:
        summary[f"{k}_median"] = g[k].median()
        summary[f"{k}_p10"] = g[k].quantile(0.10)
        summary[f"{k}_p90"] = g[k].quantile(0.90)
    summary = summary.reset_index()
    med = summary[[f"{k}_median" for k in OBJECTIVES]].to_numpy(float)
    summary["robust_front"] = pareto_mask(med, list(OBJECTIVES.values()))
    summary["kind"] = [_kind(d, f) for d, f in zip(summary["design"], summary["robust_front"])]
    return {"cohort summary": summary}


def cohort_stage(designs, n_patients: int, window_s: float, seed: int = 0, patients_per_batch: int = 1,
                 quick: bool = False) -> Study:
    """Stage 2 as a study of its own: ``designs`` × ``n_patients`` virtual patients.

    A batch holds whole patients (all designs of each), so a worker solves each patient's field
    once (the recruitment model caches it) for all the programs."""
    space = Cohort(int(n_patients), extra=Grid(
        Parameter("design", "", tuple(designs), label="program"),
        Parameter("window_s", "s", (float(window_s),), label="evaluated window")))
    return Study(
        name="cohort", title=f"Front programs and references on {n_patients} virtual patients",
        description=("Each program of the archetype fronts and the WB-EMS and paraspinal-block references on every "
                     f"virtual patient of cohort(n, seed={COHORT_SEED}), left lumbar erector-spinae channel, first "
                     f"{window_s:g} s of the session; distributions and the front of the cohort medians."),
        space=space, evaluate=evaluate_cohort, outcomes=OUTCOMES, seed=seed, quick=quick,
        outcome_labels={**LABELS, **{f"{k}_{s}": f"{LABELS[k]}, cohort {name}" for k in OBJECTIVES
                                     for s, name in (("median", "median"), ("p10", "10th percentile"),
                                                     ("p90", "90th percentile"))}},
        batch_size=len(designs) * patients_per_batch, tables=cohort_tables,
        derived_units={**{f"{k}_{s}": OUTCOMES[k] for k in OBJECTIVES for s in ("median", "p10", "p90")},
                       "n_patients": "", "safety_ok_share": "", "robust_front": "", "kind": ""},
        models=("cohorts/adults_lbp.json", "muscles/lumbar_erector_spinae.json", "discomfort/discomfort.json",
                "programs/wb_ems_85hz_350us.json", "programs/home_routine_hip_back_glutes.json"),
        plots=(Plot("design", "mean_mvc_pct", kind="box", title="Mean contraction across the cohort"),
               Plot("design", "peak_discomfort_nrs", kind="box", title="Peak discomfort across the cohort"),
               Plot("design", "fatigue_decline_pct", kind="box", title="Fatigue across the cohort"),
               Plot("peak_discomfort_nrs_median", "mean_mvc_pct_median", by="kind", kind="scatter",
                    table="cohort summary", title="Cohort medians: the cohort-robust front and the references")))


def _options(quick: bool, given: dict) -> dict:
    from emsim.study import StudyError

    size = dict(QUICK if quick else FULL)
    for key, value in given.items():
        if value is None:
            continue
        lo, hi = OPTION_RANGES[key]
        whole = isinstance(lo, int)
        ok = not isinstance(value, bool) and isinstance(value, (int, float)) and lo <= value <= hi \
            and (not whole or float(value).is_integer())
        if not ok:
            raise StudyError("lumbar_design option out of range", path=f"--set {key}", value=value,
                             allowed=f"{lo} to {hi}" + (" (whole number)" if whole else ""))
        size[key] = int(value) if whole else float(value)
    return size


def _description(size: dict) -> str:
    paragraphs = [" ".join(p.split()) for p in __doc__.strip().split("\n\n")]
    window = size["window_s"]
    stated = "the whole 20-min session" if window >= 1200 else f"only the first {window:g} s of the 20-min session"
    return (f"{paragraphs[1]} {paragraphs[3]} This run: {size['n_designs']} sampled programs, {stated} "
            f"(window_s = {window:g} s), {size['cohort']} virtual patients, up to {size['max_front']} front programs "
            f"taken to the cohort.")


def build(quick: bool = False, *, window_s=None, cohort=None, n_designs=None, max_front=None) -> Study:
    """Lumbar program design: archetype Pareto fronts vs WB-EMS and the home routine, then a cohort."""
    size = _options(quick, {"window_s": window_s, "cohort": cohort, "n_designs": n_designs, "max_front": max_front})
    seed = 11
    sample = LatinHypercube(SETTINGS, n=size["n_designs"]).rows(seed)
    labels = []
    for i in range(size["n_designs"]):
        prog = program(design_label(*(float(round(sample[p.name][i], 1)) for p in SETTINGS)), size["window_s"])
        labels.append(design_label(**_settings(prog)))  # snapped settings: label == program
    designs = tuple(dict.fromkeys(labels)) + tuple(REFERENCES) + tuple(WHOLE)

    def then(df):
        return cohort_stage(front_designs(df, size["max_front"]) + list(REFERENCES), size["cohort"],
                            size["window_s"], seed=seed, quick=quick)

    return Study(
        name="lumbar_design", title="Lumbar program design: Pareto fronts on three archetypes and a cohort",
        description=_description(size), quick=quick, seed=seed,
        space=Grid(Parameter("design", "", designs, label="program"),
                   Parameter("archetype", "", ARCHETYPES, label="patient archetype"),
                   Parameter("window_s", "s", (size["window_s"],), label="evaluated window")),
        evaluate=evaluate_design, outcomes={**OUTCOMES, **{p.name: p.unit for p in SETTINGS}},
        outcome_labels=LABELS, batch_size=3 if quick else 12, tables=design_tables, then=then,
        derived_units={"on_front": "", "kind": ""},
        models=("patients/lbp_lean.json", "patients/lbp_average.json", "patients/lbp_high_fat.json",
                "muscles/lumbar_erector_spinae.json", "discomfort/discomfort.json",
                "programs/paraspinal_strengthening.json", "programs/wb_ems_85hz_350us.json",
                "programs/home_routine_hip_back_glutes.json"),
        plots=(Plot("peak_discomfort_nrs", "mean_mvc_pct", by="kind", facet="archetype", kind="scatter",
                    table="fronts", title="Contraction vs discomfort: fronts per archetype, references marked"),
               Plot("fatigue_decline_pct", "mean_mvc_pct", by="kind", facet="archetype", kind="scatter",
                    table="fronts", title="Contraction vs fatigue: fronts per archetype, references marked")))


if __name__ == "__main__":
    raise SystemExit(main(build))
