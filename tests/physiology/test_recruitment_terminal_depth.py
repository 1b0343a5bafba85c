"""Does a motor terminal's chronaxie depend on its depth under surface electrodes? (issue 4, R2)

recruit gives every unit the strength–duration curve of the uniform-field table at its
diameter, whatever its depth (threshold = table E_th / the terminal's first difference). These
tests put the tabulated node cable itself at a terminal in the layered field of R2's electrodes
(emsim.physiology._axon_geometry.terminal_thresholds) and check that assumption. Numbers and
literature: docs/literature/recruitment.md "Session 9d".
"""

import numpy as np
import pytest

from emsim.physiology import _axon_geometry as geo
from emsim.physiology import field as fld
from emsim.physiology import recruitment as rc
from emsim.physiology.axon import monophasic, thresholds
from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.fibre_tables import weiss_fit
from emsim.program.model import Channel

PWS_US = np.array([50.0, 100.0, 200.0, 500.0, 1000.0])
R2_CHANNEL = Channel(id="A", site="quadriceps", side="left", spacing_cm=3.0, orientation="along_fibres",
                     electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 9.0},) * 2)


def test_one_diameter_per_terminal():
    with pytest.raises(PhysiologyInputError):
        geo.terminal_thresholds("motor", [5e-6, 6e-6], [(0.0, 0.0, 0.01)], lambda x, y, z: -x, [monophasic(100)])


@pytest.mark.slow
@pytest.mark.needs_compiler
def test_in_a_uniform_field_the_terminal_cable_is_the_tabulated_one():
    """The helper's cable, in the potential −E·x (E = 1 V/m per A), must give the uniform-field
    thresholds of emsim.physiology.axon (the tables' own computation) within the two searches'
    bracket widths (0.5 % each)."""
    waves = [monophasic(p) for p in (100.0, 1000.0)]
    d = np.array([4e-6, 6e-6])
    got = geo.terminal_thresholds("motor", d, [(0.0, 0.0, 0.0)] * 2, lambda x, y, z: -x, waves)
    ref = thresholds("motor", d, waves)
    np.testing.assert_allclose(got, ref, rtol=0.011)


@pytest.mark.slow
@pytest.mark.needs_compiler
def test_terminal_chronaxie_does_not_grow_with_depth_under_the_r2_electrodes():
    """Grill & Mortimer 1996 (IEEE TBME 43:161) and Rattay et al. 2012 (Neuroscience 214:1):
    chronaxie grows with the electrode–fibre distance — for fibres passing the electrode (the
    depolarised zone between the virtual anodes widens with distance). A terminal is driven at its
    end over the cable's electrotonic length (~1 internode here), far shorter than the field's
    length scale at 3–30 mm into muscle, so the fast path keeps one chronaxie per diameter.
    Terminals of 5 µm under the active electrode's centre (quadriceps, R2's 5 × 9 cm pair 3 cm
    apart, average build), 3 and 30 mm into muscle; monophasic 50–1000 µs, Weiss fit.
    Tolerance: each within ±10 % of the uniform-field chronaxie (model: 477 / 464 vs 456 µs);
    a 10 % change of every unit's chronaxie moves R2's fractions by about 0.02 (scored in the
    doc), far inside R2's ±0.15."""
    sol = fld.solve(fld.Layers.for_site("quadriceps", side="left"), fld.Electrodes.from_channel(R2_CHANNEL))
    top = fld.Layers.for_site("quadriceps", side="left").top_of("muscle")
    x0 = fld.Electrodes.from_channel(R2_CHANNEL).electrodes[0].x_m
    waves = [monophasic(p) for p in PWS_US]
    pts = [(x0, 0.0, top + 3e-3), (x0, 0.0, top + 30e-3)]
    got = geo.terminal_thresholds("motor", [5e-6, 5e-6], pts, sol.potential, waves)
    ref = thresholds("motor", [5e-6], waves)[0]
    c_ref = weiss_fit(PWS_US * 1e-6, ref)[1]
    c = [weiss_fit(PWS_US * 1e-6, row)[1] for row in got]
    assert all(abs(ci / c_ref - 1.0) <= 0.10 for ci in c), (c, c_ref)


def test_recruit_gives_every_unit_the_same_chronaxie_at_its_diameter():
    """The fast path's side of the same statement: units of equal diameter at different depths
    have equal threshold ratios between pulse widths (to rounding), so any depth dependence must
    come from the cable (test above), not from recruit."""
    s = rc.StimulusSet.from_arrays(30.0, np.array([100.0, 1000.0]), 20.0, channels=R2_CHANNEL, shape="monophasic",
                                   secondary_amplitude_ratio=0.01)
    r = rc.recruit(s, "quadriceps")
    ratio = r.unit_threshold_a[0] / r.unit_threshold_a[1]
    top = fld.Layers.for_site("quadriceps", side="left").top_of("muscle")
    depth = r.unit_position_m[:, 2] - top
    near = np.abs(r.unit_diameter_m - 5e-6) < 0.05e-6
    shallow, deep = near & (depth < 0.01), near & (depth > 0.03)
    assert shallow.sum() >= 3 and deep.sum() >= 3
    np.testing.assert_allclose(np.median(ratio[shallow]), np.median(ratio[deep]), rtol=0.01)
