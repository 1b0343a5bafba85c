"""Passing double-cable axons under a point or surface-disc source (emsim.physiology._axon_geometry).

The unmarked tests run no Brian2 code: the source potentials against closed forms and the
activating sources against the uniform-field cable. The marked test builds two networks.
"""

import math

import numpy as np
import pytest

from emsim.physiology import _axon_geometry as geo
from emsim.physiology import _mrg_cable as mc
from emsim.physiology.errors import PhysiologyInputError


def test_a_linear_potential_gives_the_uniform_field_sources_of_the_terminal_cable():
    d = np.array([5.7e-6, 10e-6, 12e-6])
    ref = mc.cable(d, 7)
    # Ve = −E·x with E = 1 V/m is the uniform field mc.cable builds its ai/ap for
    cab = geo.passing_cable(d, 7, [lambda x: -x] * d.size)
    np.testing.assert_allclose(cab.ai, ref.ai, rtol=1e-9, atol=1e-12 * np.abs(ref.ai).max())
    np.testing.assert_allclose(cab.ap, ref.ap, rtol=1e-9, atol=1e-12 * np.abs(ref.ap).max())


def test_point_source_sources_are_depolarising_under_a_cathode_and_conserve_current():
    ve, _ = geo.point_source(5e-3)
    cab = geo.passing_cable(np.array([10e-6]), 41, [ve])
    mid = cab.node_col[20]
    assert cab.ai[0, mid] > 0                       # inward source at the node under the cathode
    assert cab.ai[0, cab.node_col[30]] < 0          # virtual anode beyond the flank
    np.testing.assert_allclose(cab.ai.sum(), 0.0, atol=1e-9 * np.abs(cab.ai).max())   # sealed ends


def test_anisotropy_acts_as_the_isotropic_source_at_the_scaled_distance():
    x = np.linspace(-40e-3, 40e-3, 201)
    ve, h_eff = geo.point_source(5e-3, sigma_trans=0.086, sigma_long=0.35)
    iso, h_iso = geo.point_source(5e-3 * math.sqrt(0.35 / 0.086), sigma_trans=0.086)
    assert h_eff == pytest.approx(h_iso)
    np.testing.assert_allclose(ve(x), iso(x), rtol=1e-12)


def test_disc_source_matches_the_closed_form_on_axis_and_a_point_source_far_away():
    a, sigma = 5e-3, 0.2
    for z in (1e-3, 3e-3, 10e-3):
        ve, _ = geo.disc_source(z, a, sigma)
        closed = (math.sqrt(a * a + z * z) - z) / (math.pi * a * a * sigma)   # reference §2.3
        assert -ve(np.array([0.0]))[0] == pytest.approx(closed, rel=1e-4)
    ve, _ = geo.disc_source(5e-3, a, sigma)
    x = 80e-3
    assert -ve(np.array([x]))[0] == pytest.approx(1 / (2 * math.pi * sigma * math.hypot(x, 5e-3)), rel=2e-3)


@pytest.mark.parametrize("call", [lambda: geo.point_source(0.0), lambda: geo.point_source(5e-3, sigma_trans=-1),
                                  lambda: geo.disc_source(5e-3, 0.0),
                                  lambda: geo.thresholds("node_cable", [10e-6], [geo.point_source(5e-3)], [])])
def test_bad_geometry_or_model_is_a_typed_error(call):
    with pytest.raises(PhysiologyInputError):
        call()


PWS_US = (50, 100, 200, 500, 1000)


@pytest.fixture(scope="module")
def passing_sd():
    """Gaines 2018 motor (3 and 5 mm) and sensory (5 mm) 10 µm axons under a point source,
    monophasic 50–1000 µs, Weiss fit (the set-up of benchmarks/axon_geometry_sd.py)."""
    d = [10e-6]
    motor = geo.strength_duration("gaines_motor", d, [geo.point_source(5e-3), geo.point_source(3e-3)], PWS_US,
                                  rtol=0.01)
    sensory = geo.strength_duration("gaines_sensory", d, [geo.point_source(5e-3)], PWS_US, rtol=0.01)
    return motor, sensory


@pytest.mark.slow
@pytest.mark.needs_compiler
def test_passing_gaines_pair_meets_the_s1_ratio_and_gaines_threshold_order(passing_sd):
    """S1 ratio (Mogyoros et al. 1996, Brain 119:439: sensory/motor τSD 665/459 = 1.45; reference
    §6 tolerance 1.2–1.8) for a 10 µm axon passing 5 mm from a point source (surface electrode
    over the median nerve at the wrist, as Mogyoros measured). Gaines et al. 2018 (abstract):
    sensory threshold below motor at equal diameter — checked on the rheobase."""
    motor, sensory = passing_sd
    ratio = sensory["chronaxie_s"][0, 0] / motor["chronaxie_s"][0, 0]
    assert 1.2 <= ratio <= 1.8
    assert sensory["rheobase_a"][0, 0] < motor["rheobase_a"][0, 0]


@pytest.mark.slow
@pytest.mark.needs_compiler
def test_chronaxie_of_a_passing_axon_rises_with_electrode_distance(passing_sd):
    """Rattay, Paredes & Leao 2012 (Neuroscience 214:1, PMC3401985): for extracellular
    stimulation the zone between the virtual anodes widens with electrode distance and the
    chronaxie rises. Prediction of the cable; required rise ≥ 10 % from 3 to 5 mm."""
    c5, c3 = passing_sd[0]["chronaxie_s"][0]
    assert c5 >= 1.1 * c3


@pytest.mark.slow
@pytest.mark.needs_compiler
@pytest.mark.xfail(strict=True, reason="Gaines 2018 motor chronaxie stays far below the human motor tau_SD in "
                   "every geometry tried: passing axon under a point source 146-279 us (3-20 mm, 10-12 um; "
                   "20 mm isotropic ~ 10 mm in muscle with sigma_l/sigma_t = 4), under a 5 mm-radius surface "
                   "disc 205-225 us (3-5 mm deep), terminal in a uniform field 165-168 us; symmetric biphasic "
                   "195-322 us. Mogyoros 1996: 459 +- 126 us. MRG 2002 in the same passing geometry gives "
                   "368-518 us at 5-10 mm (docs/literature/axon_models.md section 6)")
def test_passing_gaines_motor_chronaxie_reaches_the_human_value(passing_sd):
    """S1 motor (Mogyoros et al. 1996): τSD 459 ± 126 µs; tolerance ±1 SD, at 3 or 5 mm."""
    c = passing_sd[0]["chronaxie_s"][0]
    assert np.any((333e-6 <= c) & (c <= 585e-6))
