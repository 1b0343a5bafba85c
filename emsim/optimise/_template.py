"""The default starting point of a search: the shipped paraspinal program's main phase."""

from __future__ import annotations

import copy
from typing import Sequence

from emsim._data import models_dir
from emsim.body.sites import get_site
from emsim.errors import OptimiseError
from emsim.program.io import from_dict, load
from emsim.program.model import SITE_IDS, Program

__all__ = ["lumbar_template"]

_ABBREVIATIONS = {"lumbar_erector_spinae": "ES", "lumbar_multifidus": "MF", "gluteus_maximus": "GMAX",
                  "gluteus_medius": "GMED", "hip_flexors": "HF", "rectus_abdominis": "RA"}
# Absolute amplitude for patients without a measured motor threshold: mid-range of lumbar
# NMES reports (roughly 20-60 mA at 300 µs; Alrwaily et al. 2019) [assumed].
_ABSOLUTE_MA = 30.0


def lumbar_template(patient=None, *, sites: Sequence[str] = ("lumbar_erector_spinae",),
                    duration_s: float | None = None) -> Program:
    """A one-phase program: the main phase of ``models/programs/paraspinal_strengthening.json``
    (50 Hz, 300 µs, 10 s on / 20 s off, 2 s ramps, 20 min) on a left/right channel pair per site.

    The schedule (twice weekly for 6 weeks, conditioning in the first two sessions,
    progression) is the shipped program's, so session 1 is evaluated at its reduced intensity.
    Amplitudes are relative to the motor threshold where ``patient`` has one measured at the
    site and side, and absolute (30 mA) otherwise.

    Raises
    ------
    OptimiseError
        An unknown site, or one without a left and a right side.
    """
    base = load(models_dir() / "programs" / "paraspinal_strengthening.json")
    data = base.model_dump(mode="json", exclude_none=True)
    main = next(ph for ph in data["phases"] if ph["kind"] == "main")
    proto_ch, proto_st = data["channels"][0], main["stimulation"][0]
    channels, stims = [], []
    for site in sites:
        if site not in SITE_IDS:
            raise OptimiseError("unknown site", path="sites", value=site, allowed=", ".join(SITE_IDS))
        if not {"left", "right"} <= set(get_site(site).sides):
            raise OptimiseError("site has no left/right pair", path="sites", value=site,
                                allowed="a bilateral site")
        for side in ("left", "right"):
            cid = f"{_ABBREVIATIONS.get(site, site[:6].upper())}-{side[0].upper()}"
            ch = copy.deepcopy(proto_ch)
            ch.update(id=cid, site=site, side=side)
            st = copy.deepcopy(proto_st)
            st["channel"] = cid
            if patient is None or not patient.thresholds_for(site, side, "motor_threshold"):
                st["amplitude"] = {"ma": _ABSOLUTE_MA}
            channels.append(ch)
            stims.append(st)
    main = dict(main, stimulation=stims)
    if duration_s is not None:
        main["duration_s"] = float(duration_s)
    data.update(name="emsim optimise template", channels=channels, phases=[main],
                description=("Search template: the main phase of the shipped paraspinal strengthening program "
                             "(after Alrwaily et al. 2019). Research use only: no clinical clearance."))
    return from_dict(data)
