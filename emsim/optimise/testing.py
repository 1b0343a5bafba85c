"""A cheap stand-in evaluator for testing and timing the search machinery.

:func:`surrogate_evaluate_batch` has the signature of :func:`emsim.simulate.evaluate_batch`
and returns objects with ``scalars`` (the same keys), ``safety`` (the real safety report)
and ``evidence``. The outcomes are smooth closed-form caricatures with the right trade-offs
(stronger and more frequent stimulation contracts more, hurts more and fatigues more); they
are NOT predictions and must never reach a user: every result says ``evidence = "assumed"``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

from emsim.program.resolve import resolve_amplitude

__all__ = ["SurrogatePrediction", "surrogate_evaluate_batch"]


@dataclass
class SurrogatePrediction:
    program: Any
    patient: Any
    scalars: dict
    safety: Any
    evidence: str = "assumed"
    notes: list = field(default_factory=lambda: ["surrogate evaluator: not a prediction"])


def _one(program, patient, device, session) -> SurrogatePrediction:
    from emsim.safety import check

    report = check(program, patient, device, session=session)
    ph = program.phases[0]
    mvc, fatigue, nrs, fti, effective, charge = [], [], [], 0.0, 0, 0.0
    for st in ph.stimulation:
        ch = program.channel(st.channel)
        amp = resolve_amplitude(st, ch.site, ch.side, patient).ma
        pw = st.waveform.pulse_width_us
        doublet = 1.3 if st.pattern.type == "doublets" else 1.0
        charge_nc = amp * pw  # mA x µs = nC
        r = 1.0 / (1.0 + math.exp(-(charge_nc - 9000.0) / 2500.0))
        force_freq = st.frequency_hz ** 2 / (st.frequency_hz ** 2 + 25.0 ** 2)
        m = 100.0 * r * force_freq * min(doublet, 1.0 / max(r * force_freq, 1e-9))
        duty = st.on_s / (st.on_s + st.off_s)
        ramp = 1.0 - 0.5 * (st.ramp_up_s + st.ramp_down_s) / st.on_s
        mvc.append(m * ramp)
        fatigue.append(min(95.0, 60.0 * r * force_freq * duty * doublet * (st.frequency_hz / 50.0) ** 0.5))
        nrs.append(min(10.0, 10.0 * (1.0 - math.exp(-charge_nc / 9000.0)) * (1.2 - 0.2 * min(st.ramp_up_s, 2.0) / 2.0)))
        cycles = int(ph.duration_s // (st.on_s + st.off_s))
        effective += cycles if m > 10.0 else 0
        fti += m * st.on_s * cycles
        charge += 2 * amp * pw * 1e-9 * st.frequency_hz * duty * ph.duration_s
    scalars = {"peak_mvc_pct": max(mvc), "mean_mvc_pct": sum(mvc) / len(mvc), "effective_contractions": effective,
               "fti_ns": fti, "fatigue_decline_pct": max(fatigue), "peak_discomfort_nrs": max(nrs),
               "mean_discomfort_nrs": 0.6 * max(nrs), "total_charge_mc": charge * 1e3,
               "motor_recruitment_fraction": max(m / 100.0 for m in mvc)}
    return SurrogatePrediction(program, patient, scalars, report)


def surrogate_evaluate_batch(programs: Sequence, patients, *, device=None, session: int = 1,
                             trace: bool = False, **_ignored) -> list[SurrogatePrediction]:
    """:func:`emsim.simulate.evaluate_batch`'s signature over the closed-form caricature."""
    if not isinstance(patients, (list, tuple)):
        patients = [patients] * len(programs)
    return [_one(p, q, device, session) for p, q in zip(programs, patients)]
