"""Virtual cohorts: plausible patients sampled from published distributions.

``cohort(n, seed, population="adults_lbp")`` draws ``n`` patients from the distributions in
``models/cohorts/<population>.json`` (each with its source and evidence level). Draws are
reproducible: the same seed gives the same patients, and patient ``i`` does not depend on ``n``
(each person has their own random stream), so a cohort can be extended without changing the
people already in it.
"""

from __future__ import annotations

import json

import numpy as np

from emsim._data import load_data, models_dir
from emsim.body.patient import Patient, loads_patient
from emsim.errors import PatientError

__all__ = ["cohort", "populations"]


def populations() -> list[str]:
    """Names of the shipped cohort definitions."""
    return sorted(p.stem for p in (models_dir() / "cohorts").glob("*.json"))


def _truncnorm(rng, mean, sd, lo, hi):
    for _ in range(100):
        v = rng.normal(mean, sd)
        if lo <= v <= hi:
            return float(v)
    return float(np.clip(mean, lo, hi))


def _person(spec: dict, rng: np.random.Generator, index: int, population: str) -> Patient:
    female = rng.random() < spec["female_fraction"]["value"]
    sex = "female" if female else "male"
    a = spec["age_years"]
    age = round(_truncnorm(rng, a["mean"], a["sd"], a["min"], a["max"]), 0)
    h = spec["height_cm"]
    height = round(_truncnorm(rng, h[sex]["mean"], h[sex]["sd"], h["min"], h["max"]), 1)
    b = spec["bmi"]
    bmi = float(np.clip(b["median"] * np.exp(rng.normal(0.0, b["log_sd"])), b["min"], b["max"]))
    weight = round(bmi * (height / 100.0) ** 2, 1)
    f = spec["lumbar_fat_mm"]
    base = float(np.interp(bmi, f["anchors_bmi"], f["anchors_mm"]))
    slope = (f["anchors_mm"][-1] - f["anchors_mm"][-2]) / (f["anchors_bmi"][-1] - f["anchors_bmi"][-2])
    if bmi > f["anchors_bmi"][-1]:
        base = f["anchors_mm"][-1] + slope * (bmi - f["anchors_bmi"][-1])
    mix = spec["female_fraction"]["value"]
    sex_factor = f["female_factor"] if female else 1.0
    sex_factor /= mix * f["female_factor"] + (1 - mix)
    fat = base * sex_factor * np.exp(rng.normal(0.0, f["log_sd"]))
    thickness = []
    for site in f["sites"]:
        site_fat = fat * (f["multifidus_factor"] if site == "lumbar_multifidus" else 1.0)
        for side in ("left", "right"):
            v = float(np.clip(site_fat * np.exp(rng.normal(0.0, 0.1)), f["min"], f["max"]))
            thickness.append({"site": site, "side": side, "method": "ultrasound",
                              "value_mm": round(v, 1)})
    return loads_patient(json.dumps({
        "format": "emsim.patient/1", "id": f"{population}-{index:05d}", "sex": sex,
        "age_years": age, "height_cm": height, "weight_kg": weight,
        "fat_thickness": thickness,
        "notes": f"virtual patient {index} of cohort '{population}' (emsim.body.cohort)"}))


def cohort(n: int, seed: int, population: str = "adults_lbp") -> list[Patient]:
    """Sample ``n`` virtual patients.

    Parameters
    ----------
    n : int
        Number of patients (1 to 1 000 000).
    seed : int
        Seed; patient ``i`` depends only on ``(seed, i)``.
    population : str
        File stem in ``models/cohorts`` (default ``adults_lbp``).

    Returns
    -------
    list of Patient

    Raises
    ------
    PatientError
        Unknown population, or ``n``/``seed`` out of range.
    """
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 1 <= n <= 1_000_000:
        raise PatientError("cohort size out of range", path="n", value=n, allowed="1 to 1000000")
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise PatientError("seed must be a non-negative integer", path="seed", value=seed,
                           allowed="integer >= 0")
    if population not in populations():
        raise PatientError("unknown population", path="population", value=population,
                           allowed=", ".join(populations()))
    spec = load_data(f"cohorts/{population}.json")
    return [_person(spec, np.random.default_rng([int(seed), i]), i, population) for i in range(n)]
