"""A program with its relative amplitudes resolved to mA for one patient (``emsim calibrate --program --out``).

Relative amplitudes (``{"relative_to": "motor_threshold", "factor": 1.5}``) are resolved
exactly as compiling does (:func:`emsim.program.resolve.resolve_amplitude`: the threshold
measured at the block's pulse width, or carried there by the Weiss law), so the resolved
program compiles to the same pulses for this patient, and needs no patient file to do so.
Session scaling (first-session caps, progression) stays in the schedule and still applies.
"""

from __future__ import annotations

import datetime as _dt

from emsim.program.io import from_dict
from emsim.program.model import RelativeAmplitude
from emsim.program.resolve import resolve_amplitude

__all__ = ["resolve_program"]


def resolve_program(program, patient):
    """``program`` with every relative amplitude replaced by the mA it means for ``patient``.

    Returns
    -------
    (Program, list of str)
        The validated program (provenance: ``emsim calibrate``, today; predicted outcomes
        dropped) and one line per resolved block saying how its current was obtained.

    Raises
    ------
    ProgramError
        A relative amplitude whose threshold the patient file does not hold.
    """
    from emsim import __version__

    data = program.model_dump(mode="json", exclude_none=True)
    lines = []
    for p, phase in enumerate(program.phases):
        for k, st in enumerate(phase.stimulation):
            if not isinstance(st.amplitude, RelativeAmplitude):
                continue
            ch = program.channel(st.channel)
            r = resolve_amplitude(st, ch.site, ch.side, patient, path=f"$.phases[{p}].stimulation[{k}]")
            data["phases"][p]["stimulation"][k]["amplitude"] = {"ma": r.ma}
            lines.append(f"{phase.name or phase.kind} {st.channel}: {r.ma:.4g} mA ({r.note})")
    note = (f" Amplitudes resolved to mA for patient {patient.id} by emsim calibrate on "
            f"{_dt.date.today().isoformat()}; valid for this patient only.")
    if lines:
        data["description"] = data.get("description", "")[:4000 - len(note)] + note
    prov = dict(data["provenance"])
    prov.pop("predicted_outcomes", None)
    prov.update(emsim_version=__version__, created_by="emsim calibrate",
                created_with=f"emsim calibrate --program: amplitudes resolved for patient {patient.id}"[:200],
                created=_dt.date.today().isoformat())
    data["provenance"] = prov
    return from_dict(data), lines
