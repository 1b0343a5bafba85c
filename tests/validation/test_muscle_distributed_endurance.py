"""B6c: endurance of a held 20 % contraction scales with the muscle volume the electrodes reach.

Source
------
Buckmire AJ, Lockwood DR, Doane CJ, Fuglevand AJ (2018), J Neural Eng 15:066004 (authors and
citation an unverified recollection; numbers verified: https://pmc.ncbi.nlm.nih.gov/articles/
PMC6370345). Tibialis anterior, anaesthetic nerve block proximal to the stimulation site;
ankle dorsiflexion held at 20 % of maximum voluntary force with feedback-controlled 25 Hz
stimulation through one or four percutaneous intramuscular electrodes, or through the nerve,
until it could no longer be held. Endurance 84 ± 19 s (one electrode), 232 ± 123 s (four),
787 ± 201 s (nerve), 896 ± 272 s (voluntary).

Protocol reading (the stored text is the abstract: it does not say how the four electrodes were
driven, how the controller worked or what ended a test; each point below is an assumption)
---------------------------------------------------------------------------------------
* Each of the four electrodes is driven at 25 Hz, the four interleaved (10 ms apart, composite
  100 Hz): the abstract gives one rate for all conditions and argues by accessible volume, not
  by per-unit rate. The alternative, rotation at a composite 25 Hz (6.25 Hz per electrode), is
  run by :func:`endurance_times` for the report (docs/literature/muscle_fatigue_effects.md,
  "Session 10: B6c").
* One command scales all electrodes alike, so each electrode holds a quarter of the target.
* The controller holds the mean force of each 1 s block at the target (deadbeat: it recruits
  just enough fresh units of the electrode's territory); the test ends when holding the target
  needs more than the territory ("could no longer be held").
* Maximum voluntary force = the model's ``max_force`` (rested 100 Hz force).

Territories (assumed, chosen before the endurance was simulated; the sensitivity is reported)
--------------------------------------------------------------------------------------------
The single electrode reaches ``SINGLE_TERRITORY`` = 0.37 of the pool: its largest 25 Hz force is
then 1.5× the target (30 % of maximum force), i.e. 20 % is reachable at the start with
headroom; a quarter of the pool (0.25) cannot hold it at all (rested 25 Hz force is 0.81 of
maximum, so a quarter gives 0.20 once fused and 0.18 over the first second). The four electrodes
reach disjoint quarters, the whole muscle: with overlap, the shared units would fire at 50 Hz.
Nerve stimulation reaches the whole pool at 25 Hz.

How the model is driven
-----------------------
The recruited fraction of the pool holds that fraction of every unit class (position, not size,
sets the order under stimulation: :mod:`emsim.physiology.pool`), unrecruited units stay fresh
and rows do not interact. So a block's fresh recruits are their own row, and the force of a row
recruited ``s`` at block ``k`` is ``s · g(t − k)``, with ``g`` the force of a fresh, fully
recruited row: one simulation per rate gives the whole feedback loop exactly
(:func:`test_later_recruits_start_fresh_and_add_linearly` checks this). The model's muscle-level
occlusion term ``Ω = 1 − γ + γ·F/F_max`` is not shared between rows; the muscle is held at 20 %
in every arm, so Ω is the constant 1 − γ + 0.2γ, applied exactly by scaling the force drive
(``drive_scale × Ω``) while keeping the per-pulse cost (``pulse_cost / Ω``).

Muscle: a tibialis anterior stand-in, the quadriceps set with its type I area fraction raised
from 0.45 to 0.70 (TA is about 70 % type I; Johnson et al. 1973, unverified recollection), the
way the SCI and adductor pollicis stand-ins are built; no TA parameter set exists.
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

from emsim.physiology.muscle import load_muscle, simulate

pytestmark = pytest.mark.validation

QUAD = load_muscle("quadriceps_ding2003")
TA_STAND_IN = dataclasses.replace(QUAD, pool=dataclasses.replace(QUAD.pool,
                                                                  type1_area_fraction=0.70))
TARGET = 0.20            # of maximum force
BLOCK_S = 1.0            # controller update
HORIZON_S = 2400.0       # longest hold simulated (nerve ≈ 800 s published)
SINGLE_TERRITORY = 0.37  # one electrode's share of the pool (see the module docstring)
FOUR_TERRITORY = 1.0     # four electrodes together: disjoint quarters


def held_at(muscle, level: float):
    """The muscle with occlusion fixed at a held relative force ``level`` (rows cannot share it).

    ``Ω`` multiplies the force drive only, so ``drive_scale·Ω`` with ``pulse_cost/Ω`` keeps the
    per-pulse drive (``∝ drive_scale·pulse_cost``) and scales the force drive by Ω.
    """
    f = muscle.fatigue
    omega = 1.0 - f.occlusion_gain + f.occlusion_gain * level
    return dataclasses.replace(muscle, fatigue=dataclasses.replace(
        f, occlusion_gain=0.0, drive_scale=f.drive_scale * omega, pulse_cost=f.pulse_cost / omega))


def block_means(result, row: int = 0, n: int | None = None) -> np.ndarray:
    """Mean force of each controller block of one row, in units of the muscle's maximum force."""
    k = np.floor(result.t / BLOCK_S + 1e-9).astype(int)
    n = int(HORIZON_S / BLOCK_S) if n is None else n
    ok = k < n
    return (np.bincount(k[ok], weights=result.force_n[row][ok], minlength=n)
            / np.bincount(k[ok], minlength=n))


MUSCLES = {"ta_stand_in": TA_STAND_IN, "quadriceps": QUAD}


@lru_cache(maxsize=None)
def fresh_row(muscle_name: str, rate_hz: float) -> np.ndarray:
    """Block means of a fresh, fully recruited row stimulated at ``rate_hz`` from t = 0."""
    m = held_at(MUSCLES[muscle_name], TARGET)
    res = simulate(np.arange(0.0, HORIZON_S, 1.0 / rate_hz), m, dt=1e-2)
    return block_means(res) / m.max_force


def hold(g: np.ndarray, load: float, territory: float) -> tuple[float, np.ndarray]:
    """Deadbeat feedback: recruit just enough fresh units each block to hold ``load``.

    Returns the endurance time (s; ``inf`` if held to the horizon) and the recruitment added per
    block. ``g`` is :func:`fresh_row`; ``load`` and ``territory`` are fractions of the maximum
    force and of the pool.
    """
    n = g.size
    added = np.zeros(n)
    used = 0.0
    for j in range(n):
        # force of everything recruited so far, each recruit aged by its own start
        have = added[:j][::-1] @ g[1:j + 1]
        need = max(0.0, (load - have) / g[0])
        if used + need > territory + 1e-12:
            return j * BLOCK_S, added[:j]
        added[j] = need
        used += need
    return np.inf, added


def endurance_times(muscle_name: str = "ta_stand_in", single: float = SINGLE_TERRITORY,
                    four: float = FOUR_TERRITORY, per_electrode_hz: float = 25.0) -> dict:
    """Endurance (s) with one electrode, four electrodes and the nerve.

    The four electrodes' rows are identical under one command, so the four-electrode arm is one
    territory of ``four / 4`` holding a quarter of the target (the 10 ms stagger changes only
    the ripple of the sum, not a block's mean).
    """
    g25 = fresh_row(muscle_name, 25.0)
    g4 = fresh_row(muscle_name, per_electrode_hz)
    return {"one": hold(g25, TARGET, single)[0],
            "four": hold(g4, TARGET / 4, four / 4)[0],
            "nerve": hold(g25, TARGET, 1.0)[0]}


def test_later_recruits_start_fresh_and_add_linearly():
    """The superposition :func:`hold` relies on: a row recruited ``s`` from block ``k`` gives
    ``s · g(t − k)``, whatever the other rows do. Tolerance 0.5 % of the row's force (the
    reference-target tolerance of the muscle model), on every block of 3 min."""
    m = held_at(TA_STAND_IN, TARGET)
    n = 180
    starts, fractions = (0.0, 7.0, 40.0), (0.30, 0.05, 0.12)
    trains = [np.arange(s, n, 1 / 25) for s in starts]
    pulses = np.full((len(trains), max(map(len, trains))), np.nan)
    for i, p in enumerate(trains):
        pulses[i, :len(p)] = p
    res = simulate(pulses, m, recruitment=np.array(fractions)[:, None] * np.ones(pulses.shape),
                   dt=1e-2, t_end=float(n))
    g = fresh_row("ta_stand_in", 25.0)[:n]
    for i, (s, r) in enumerate(zip(starts, fractions)):
        k = int(s / BLOCK_S)
        got = block_means(res, i, n)[k:] / m.max_force
        want = r * g[:n - k]
        assert np.max(np.abs(got - want)) <= 0.005 * want.max(), (s, got[:3], want[:3])


def test_four_electrodes_hold_longer_than_one_buckmire2018():
    """B6c direction. Buckmire et al. 2018: four intramuscular electrodes held 20 % of maximum
    force longer than one (232 ± 123 vs 84 ± 19 s, significant). Protocol reading and
    territories in the module docstring. Tolerance: endurance(4) ≥ 1.5 × endurance(1), the
    convention of the spatially distributed benchmarks (B6a) for "markedly less fatigue"."""
    e = endurance_times()
    assert e["one"] > 0 and e["four"] >= 1.5 * e["one"], e


@pytest.mark.xfail(strict=True, reason="model (TA stand-in, one electrode 0.37 of the pool, four "
                   "electrodes disjoint quarters, each at 25 Hz): endurance 46 s (one), 728 s "
                   "(four), 728 s (nerve); ratio 15.8 against published 2.8 (84 / 232 s) and "
                   "four electrodes equal to the nerve against 232 vs 787 s. In the model, "
                   "endurance is set by the pool fraction each unit of load can draw on, so four "
                   "electrodes that reach the whole muscle are the nerve; the ratio lands in "
                   "1.5-4.2 only if the four together reach 0.43-0.60 of the pool (no measurement "
                   "of their territories was read). Rotation at a composite 25 Hz (6.25 Hz per "
                   "electrode) gives 199 s, ratio 4.3. See docs/literature/"
                   "muscle_fatigue_effects.md, Session 10: B6c")
def test_endurance_ratio_of_four_to_one_electrode_buckmire2018():
    """B6c size. Buckmire et al. 2018: 84 ± 19 s with one electrode, 232 ± 123 s with four
    (ratio of means 2.8), 787 ± 201 s with nerve stimulation. Tolerance: ratio 1.5–4.2 (lower:
    the B6a convention; upper: the four-electrode mean + 1 SD over the one-electrode mean,
    355 / 84), and four electrodes at most 0.75 of the nerve's endurance (published 0.29; the
    nerve mean − 1 SD is 586 s, 2.5× the four-electrode mean)."""
    e = endurance_times()
    ratio = e["four"] / e["one"]
    assert 1.5 <= ratio <= 4.2, e
    assert e["four"] <= 0.75 * e["nerve"], e


def test_nerve_stimulation_endurance_buckmire2018():
    """B6c absolute. Buckmire et al. 2018: nerve stimulation (the whole pool at 25 Hz) held
    20 % of maximum force for 787 ± 201 s. Independent of the territory assumptions. Tolerance:
    mean ± 1 SD. The time scale is only partly meaningful for TA: the fatigue rates are the
    quadriceps calibration (intermittent NMES: Bickel 2004, 2012), with the TA fibre mix; the
    quadriceps set itself gives 793 s."""
    e = endurance_times()["nerve"]
    assert 586.0 <= e <= 988.0, e
