"""Continuous vs intermittent stimulation at equal contraction time, circulation intact.

The test any economy of sustained activation must pass (``docs/literature/muscle_fatigue_effects.md``,
session 8): a model tuned to occluded-muscle energetics (Chasiotis, Bergström & Hultman 1987;
Bergström & Hultman 1988) made a 10-minute continuous contraction the best program at equal
contraction time. With the circulation intact the published direction is the opposite: holding
does not fatigue less than 1 s on / 1 s off, and rests of twice the contraction fatigue much
less (Duchateau & Hainaut 1985). Sustained contractions above ~10 % MVC outrun their blood flow
(Sjøgaard, Savard & Juel 1988, Eur J Appl Physiol 57:327 [authors: unverified recollection],
abstract read at
https://pubmed.ncbi.nlm.nih.gov/3371342/: flow sufficient during sustained contractions below
10 % MVC, knee extensors and handgrip, continuous vs 5 s on / 5 s off), and flow stops at
50–64 % MVC (Sadamoto, Bonde-Petersen & Suzuki 1983, Eur J Appl Physiol 51:395 [authors and
journal: unverified recollection], abstract read at
https://www.ncbi.nlm.nih.gov/pubmed?db=PubMed&cmd=search&term=6685038), so minutes-long holds
lose perfusion that rests restore.

Adductor pollicis stand-in: Duchateau & Hainaut stimulated the adductor pollicis, whose fibres
are 80 % type I on average (Round et al. 1984, J Neurol Sci 66:263 [authors: unverified
recollection], abstract read at https://pubmed.ncbi.nlm.nih.gov/6241628/: post mortem,
histochemistry; the same abstract says its type I fibres are faster than the quadriceps', and
its contractile properties resemble the quadriceps'). The stand-in is the quadriceps with
``type1_area_fraction`` 0.80 (fibre-number share taken as area share, assumed), as the SCI test
of ``test_muscle_effects.py`` replaces it with 0.10; it changes only the slow units' share.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from emsim.physiology.muscle import load_muscle, simulate

from ._muscle_protocols import repeated

pytestmark = pytest.mark.validation

QUAD = load_muscle("quadriceps_ding2003")
AP_STAND_IN = dataclasses.replace(QUAD, pool=dataclasses.replace(QUAD.pool,
                                                                  type1_area_fraction=0.80))
MUSCLES = {"quadriceps": QUAD, "adductor_pollicis_stand_in": AP_STAND_IN}


def duchateau_hainaut(muscle) -> dict:
    """Force loss (1 − end/initial) after 60 s of 30 Hz at full recruitment: sustained, and as
    60 × 1 s contractions with 0.5, 1 or 2 s rests (last vs first contraction peak)."""
    r = simulate(np.arange(0.0, 60.0, 1 / 30), muscle, recruitment=1.0, dt=2e-3)
    f, t = r.force_n[0], r.t
    loss = {"sustained": float(1.0 - f[(t > 59.0) & (t <= 60.0)].max() / f[t <= 1.0].max())}
    for rest in (0.5, 1.0, 2.0):
        res = simulate(repeated(30, 1.0, 1.0 + rest, 60), muscle, recruitment=1.0, trace=False)
        loss[rest] = float(1.0 - res.fatigue_index[0])
    return loss


_CACHE: dict = {}


def _dh(name):
    if name not in _CACHE:
        _CACHE[name] = duchateau_hainaut(MUSCLES[name])
    return _CACHE[name]


@pytest.mark.parametrize("name", list(MUSCLES))
def test_rests_twice_the_contraction_fatigue_less_than_holding_duchateau_hainaut1985(name):
    """Duchateau & Hainaut 1985 (J Appl Physiol 58:942; abstract read, see
    ``docs/literature/sustained_fatigue.md`` I1 — verified): adductor pollicis, 30 Hz via the
    ulnar nerve, 60 s sustained vs 60 × 1 s contractions with 2 s rests (the same time in
    contraction): force loss −40 % sustained, −18 % with 2 s rests (P < 0.05). Circulation not
    occluded (the abstract mentions no cuff; unverified). Tolerance: the 2 s-rest loss at least
    5 points below the sustained loss (published gap 22 points; the SDs were not read)."""
    loss = _dh(name)
    assert loss[2.0] + 0.05 <= loss["sustained"], loss


def _equal_loss(name):
    loss = _dh(name)
    assert abs(loss[1.0] - loss["sustained"]) <= 0.10, loss


def test_one_second_rests_fatigue_like_holding_duchateau_hainaut1985():
    """Duchateau & Hainaut 1985: the sustained loss (−40 %) did not differ from the loss with
    1 s rests (−40 %; P > 0.05). Quadriceps parameters (model 0.59 vs 0.51). Tolerance: within
    10 points (set in ``sustained_fatigue.md`` S2 before this test was run)."""
    _equal_loss("quadriceps")


@pytest.mark.xfail(strict=True, reason="model, adductor pollicis stand-in: sustained 60 s loses "
                   "0.636, 1 s rests 0.533 (published 0.40 both): 0.103 apart, just outside 0.10; "
                   "holding costs a little more than 1:1 rests")
def test_one_second_rests_fatigue_like_holding_ap_stand_in_duchateau_hainaut1985():
    """As above on the adductor pollicis stand-in (type I 0.80)."""
    _equal_loss("adductor_pollicis_stand_in")


@pytest.mark.xfail(strict=True, reason="model (both muscles): 0.5 s rests lose less than holding "
                   "(quadriceps 0.54 vs 0.59; stand-in 0.57 vs 0.64), published 0.65 vs 0.40: "
                   "rests of 0.5 s cost nothing extra here, whereas the muscle pays for each "
                   "onset and recovers within seconds (session 7b: no form tried reproduces "
                   "the 0.5 s arm)")
@pytest.mark.parametrize("name", list(MUSCLES))
def test_half_second_rests_fatigue_more_than_holding_duchateau_hainaut1985(name):
    """Duchateau & Hainaut 1985: 60 × 1 s with 0.5 s rests lost 65 %, more than sustained (40 %;
    P < 0.05). Tolerance: ordering with a 5-point margin."""
    loss = _dh(name)
    assert loss[0.5] >= loss["sustained"] + 0.05, loss


def _session(on_s, off_s, total_on_s=600.0, f=30.0):
    if off_s == 0:
        return np.arange(0.0, total_on_s, 1.0 / f)
    n = int(round(total_on_s / on_s))
    pattern = np.arange(0.0, on_s - 1e-9, 1.0 / f)
    return np.concatenate([k * (on_s + off_s) + pattern for k in range(n)])


@pytest.mark.parametrize("muscle", ["quadriceps_ding2003", "lumbar_erector_spinae"])
def test_ten_minute_hold_is_not_the_best_program_at_equal_contraction_time(muscle):
    """A 20-min session with 600 s of 30 Hz at recruitment 0.6 (the review's ranking case,
    ``muscle_fatigue_effects.md`` session 8): held for 10 min, or 4 s on / 4 s off. Published
    basis: at equal contraction time holding loses at least as much force as 1 s on / 1 s off
    (Duchateau & Hainaut 1985, 60 s), and sustained contractions above ~10 % MVC lose the
    perfusion that rests restore (Sjøgaard et al. 1988; Sadamoto et al. 1983), so a 10-min hold
    cannot deliver more force-time integral than the 1:1 program. Extrapolated from 60 s
    adductor-pollicis data and voluntary blood-flow data to a 10-min evoked contraction: a
    direction, not a magnitude. Tolerance: the hold's force-time integral at most 1.05× the 4 s /
    4 s program's (the 5 % allows D&H's "no difference" at 1:1)."""
    m = load_muscle(muscle)
    fti = {}
    for on, off in ((600.0, 0.0), (4.0, 4.0)):
        r = simulate(_session(on, off), m, recruitment=0.6, trace=False, t_end=1200.0)
        fti[(on, off)] = float(r.fti_total_ns[0])
    assert fti[(600.0, 0.0)] <= 1.05 * fti[(4.0, 4.0)], fti
