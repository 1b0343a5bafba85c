"""Layered volume conductor (emsim.physiology.field) against closed forms and invariants.

Closed forms (shared/reference/nerve_recruitment_discomfort.md §2.3):
* point source on a homogeneous half-space ``φ = I/(2πσR)``; uniform disc on the axis
  ``φ(0, z) = I(√(a²+z²) − z)/(πa²σ)``;
* anisotropic half-space (principal axes x, y, z): ``φ = I/(2π√(σxσyσz)·√(x²/σx+y²/σy+z²/σz))``;
* two layers: the image series with ``K = (σ1−σ2)/(σ1+σ2)``.
The FFT solver is compared with these, either directly or through the independent Hankel-transform
route (:func:`emsim.physiology._layered.axisymmetric_potential`), which is itself checked against
the closed forms first.
"""

import math

import numpy as np
import pytest

from emsim.errors import EmsimError
from emsim.physiology._layered import axisymmetric_potential
from emsim.physiology.errors import PhysiologyInputError
from emsim.physiology.field import (
    Electrode, Electrodes, Gel, Grid, Layer, Layers, fibre_points, solve, solve_batch,
)

SIGMA = 0.2


def image_series(s1, s2, h, r, z, terms=600):
    """Potential per ampere of a point source on a two-layer half-space (image series)."""
    k = (s1 - s2) / (s1 + s2)
    n = np.arange(1, terms)
    if z < h:
        val = 1 / np.hypot(r, z) + np.sum(k ** n * (1 / np.hypot(r, 2 * n * h - z) + 1 / np.hypot(r, 2 * n * h + z)))
    else:
        n0 = np.arange(terms)
        val = (1 + k) * np.sum(k ** n0 / np.hypot(r, z + 2 * n0 * h))
    return val / (2 * math.pi * s1)


# ----------------------------------------------------------------------------- Hankel route

@pytest.mark.parametrize("z", [0.002, 0.01, 0.03])
def test_hankel_disc_on_axis_matches_closed_form(z):
    a = 0.02
    exact = (math.sqrt(a * a + z * z) - z) / (math.pi * a * a * SIGMA)
    got = axisymmetric_potential(Layers.homogeneous(SIGMA).stack, a, 0.0, z)
    assert got == pytest.approx(exact, rel=1e-8)


def test_hankel_point_source_matches_half_space():
    got = axisymmetric_potential(Layers.homogeneous(SIGMA).stack, 0.0, 0.03, 0.01)
    assert got == pytest.approx(1 / (2 * math.pi * SIGMA * math.hypot(0.03, 0.01)), rel=1e-8)


@pytest.mark.parametrize("z", [0.002, 0.004, 0.008, 0.02])
@pytest.mark.parametrize("s2", [0.05, 0.8])
def test_hankel_two_layer_matches_image_series(z, s2):
    h, r = 0.005, 0.02
    layers = Layers((Layer("a", h, SIGMA, SIGMA, SIGMA), Layer("b", math.inf, s2, s2, s2)))
    got = axisymmetric_potential(layers.stack, 0.0, r, z)
    assert got == pytest.approx(image_series(SIGMA, s2, h, r, z), rel=1e-7)


# ----------------------------------------------------------------------------- FFT solver

@pytest.fixture(scope="module")
def disc_pair_homogeneous():
    a = 0.02
    el = Electrodes.pair("circle", diameter_m=2 * a, spacing_m=0.03)
    return a, el, solve(Layers.homogeneous(SIGMA), el, gel=Gel.uniform())


@pytest.mark.parametrize("z", [0.005, 0.01, 0.02, 0.04])
def test_fft_disc_pair_on_half_space(disc_pair_homogeneous, z):
    """Potential on the axis of the injecting disc: own disc (closed form) minus the other (Hankel)."""
    a, el, sol = disc_pair_homogeneous
    c0, d = el.electrodes[0].x_m, el.electrodes[1].x_m - el.electrodes[0].x_m
    exact = (math.sqrt(a * a + z * z) - z) / (math.pi * a * a * SIGMA) \
        - axisymmetric_potential(Layers.homogeneous(SIGMA).stack, a, d, z)
    assert sol.potential(c0, 0.0, z) == pytest.approx(exact, rel=3e-3)


def _disc_quadrature(a, n_r=24, n_t=64):
    g, w = np.polynomial.legendre.leggauss(n_r)
    r = a * (g + 1) / 2
    t = np.arange(n_t) * 2 * np.pi / n_t
    rr, tt = np.meshgrid(r, t, indexing="ij")
    ww = np.broadcast_to((w * a / 2 * r)[:, None] * (2 * np.pi / n_t) / (np.pi * a * a), rr.shape)
    return rr * np.cos(tt), rr * np.sin(tt), ww


def test_fft_anisotropic_half_space_matches_closed_form():
    """Muscle-like anisotropy (0.35 along x, 0.086 across): field of a disc pair vs the
    closed-form anisotropic point source integrated over each disc."""
    sx, sy, sz = 0.35, 0.086, 0.086
    a = 0.005
    el = Electrodes.pair("circle", diameter_m=2 * a, spacing_m=0.05)
    sol = solve(Layers.homogeneous((sx, sy, sz)), el, gel=Gel.uniform(), grid=Grid(size_m=0.3))
    qx, qy, qw = _disc_quadrature(a)

    def phi(x, y, z):
        tot = 0.0
        for e in el.electrodes:
            rr = np.sqrt((x - e.x_m - qx) ** 2 / sx + (y - e.y_m - qy) ** 2 / sy + z ** 2 / sz)
            tot += e.weight * np.sum(qw / rr) / (2 * math.pi * math.sqrt(sx * sy * sz))
        return tot

    xa = el.electrodes[0].x_m
    for x, y, z in [(xa + 0.02, 0.0, 0.01), (xa, 0.02, 0.005), (0.0, 0.01, 0.02), (0.0, 0.0, 0.03)]:
        h = 1e-6
        ex_exact = -(phi(x + h, y, z) - phi(x - h, y, z)) / (2 * h)
        ez_exact = -(phi(x, y, z + h) - phi(x, y, z - h)) / (2 * h)
        e = sol.electric_field(x, y, z)
        assert e[0] == pytest.approx(ex_exact, rel=3e-3)
        assert e[2] == pytest.approx(ez_exact, rel=5e-3, abs=1e-3 * abs(ex_exact))
        # Absolute potential (zero at infinity): relies on the periodic-image correction.
        assert sol.potential(x, y, z) == pytest.approx(phi(x, y, z), rel=3e-3, abs=1e-3)


def test_fft_two_layer_matches_image_series():
    """Small disc pair on fat-over-muscle: potential differences vs the integrated image series."""
    s1, s2, h = 0.033, 0.086, 0.008
    layers = Layers((Layer("fat", h, s1, s1, s1), Layer("muscle", math.inf, s2, s2, s2)))
    a = 0.003
    el = Electrodes.pair("circle", diameter_m=2 * a, spacing_m=0.04)
    sol = solve(layers, el, gel=Gel.uniform(), grid=Grid(dx_m=0.5e-3, size_m=0.25))
    qx, qy, qw = _disc_quadrature(a, 12, 32)

    def phi(x, y, z):
        tot = 0.0
        for e in el.electrodes:
            rs = np.hypot(x - e.x_m - qx, y - e.y_m - qy).ravel()
            vals = np.array([image_series(s1, s2, h, r, z, terms=300) for r in rs])
            tot += e.weight * np.sum(qw.ravel() * vals)
        return tot

    xa = el.electrodes[0].x_m
    ref = (0.0, 0.02, 0.012)
    for p in [(xa, 0.0, 0.005), (xa + 0.015, 0.005, 0.012), (xa, 0.0, 0.02)]:
        got = sol.potential(*p) - sol.potential(*ref)
        assert got == pytest.approx(phi(*p) - phi(*ref), rel=5e-3)


def test_potential_continuous_and_normal_current_conserved_at_boundaries():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=0.03)
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.03)
    sol = solve(layers, el, gel=Gel.uniform())
    x = np.linspace(-0.06, 0.06, 7)
    for i, top in enumerate(layers.tops_m[1:], start=1):
        above, below = layers.layers[i - 1], layers.layers[i]
        eps = 1e-7
        assert np.allclose(sol.potential(x, 0.01, top - eps), sol.potential(x, 0.01, top + eps),
                           rtol=1e-4, atol=1e-6 * np.abs(sol.potential(x, 0.01, top)).max())
        jz_up = above.sigma_z * sol.electric_field(x, 0.01, top - eps)[..., 2]
        jz_dn = below.sigma_z * sol.electric_field(x, 0.01, top + eps)[..., 2]
        assert np.allclose(jz_up, jz_dn, rtol=2e-3, atol=1e-3 * np.abs(jz_up).max())


def test_second_derivatives_satisfy_laplace_in_anisotropic_muscle():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.008, muscle_m=0.03)
    el = Electrodes.pair("rectangle", length_m=0.06, width_m=0.04, spacing_m=0.03)
    sol = solve(layers, el, gel=Gel.uniform())
    m = layers.layers[2]
    x, y, z = np.linspace(-0.05, 0.05, 11), 0.01, layers.top_of("muscle") + 0.01
    lap = (m.sigma_x * sol.activating_function(x, y, z, "x") + m.sigma_y * sol.activating_function(x, y, z, "y")
           + m.sigma_z * sol.activating_function(x, y, z, "z"))
    scale = m.sigma_x * np.abs(sol.activating_function(x, y, z, "x")).max()
    # Planes are cached in single precision (~6e-8 relative); the three terms cancel.
    assert np.abs(lap).max() < 1e-6 * scale


def test_activating_function_matches_second_difference():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=None)
    el = Electrodes.pair("circle", diameter_m=0.05, spacing_m=0.03)
    sol = solve(layers, el, gel=Gel.uniform())
    x = np.linspace(-0.08, 0.08, 33)
    z = layers.top_of("muscle") + 0.005
    cont = sol.activating_function(x, 0.0, z, "x")
    disc = sol.activating_function(x, 0.0, z, "x", node_spacing=2e-4)
    assert np.allclose(disc, cont, rtol=2e-3, atol=2e-3 * np.abs(cont).max())


def test_many_depths_interpolation_matches_exact_planes():
    layers = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.04)
    sol = solve(layers, el, gel=Gel.uniform())
    rng = np.random.default_rng(1)
    z = rng.uniform(0.0, 0.05, 200)
    x = rng.uniform(-0.1, 0.1, 200)
    y = rng.uniform(-0.03, 0.03, 200)
    interp = sol.potential(x, y, z)  # > max_exact_depths distinct depths
    exact = np.array([sol.potential(xi, yi, zi) for xi, yi, zi in zip(x[:30], y[:30], z[:30])])
    assert np.allclose(interp[:30], exact, rtol=0, atol=1e-3 * np.abs(exact).max())


def test_reversing_the_current_negates_the_field():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=0.03)
    el = Electrodes.pair("circle", diameter_m=0.04, spacing_m=0.02)
    rev = Electrodes(tuple(Electrode(**{**e.__dict__, "weight": -e.weight}) for e in el.electrodes))
    p = (np.array([-0.03, 0.0, 0.02]), 0.005, 0.015)
    for gel in (Gel.uniform(), Gel.load()):
        assert np.allclose(solve(layers, rev, gel=gel).potential(*p), -solve(layers, el, gel=gel).potential(*p))


def test_mirror_symmetry_of_a_pair_along_fibres():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=0.03)
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.04, spacing_m=0.03)
    sol = solve(layers, el)
    x = np.linspace(0.005, 0.06, 12)
    z = 0.02
    assert np.allclose(sol.potential(x, 0.0, z), -sol.potential(-x, 0.0, z), atol=1e-6)
    assert np.allclose(sol.potential(x, 0.01, z), sol.potential(x, -0.01, z), atol=1e-6)


def test_domain_size_converged():
    """The periodic-image correction makes the deep drive independent of the domain size."""
    layers = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.04)
    z = layers.top_of("muscle") + 0.03
    x = np.linspace(-0.15, 0.15, 301)
    small = np.abs(solve(layers, el, gel=Gel.uniform(), grid=Grid(size_m=0.4)).electric_field(x, 0, z)[..., 0]).max()
    big = np.abs(solve(layers, el, gel=Gel.uniform(), grid=Grid(size_m=0.8)).electric_field(x, 0, z)[..., 0]).max()
    assert small == pytest.approx(big, rel=5e-3)


def test_points_beyond_the_fine_grid_use_the_wide_grid():
    """Far from the electrodes the coarse wide grid continues the fine one (smooth field)."""
    layers = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.03)
    small = solve(layers, el, gel=Gel.uniform(), grid=Grid(size_m=0.3))
    big = solve(layers, el, gel=Gel.uniform(), grid=Grid(size_m=0.8))
    x = np.linspace(0.12, 0.3, 10)
    z = layers.top_of("muscle") + 0.01
    assert small.half_width_m < 0.3 < small.reach_m
    ref = big.electric_field_along(x, 0.02, z)
    assert np.allclose(small.electric_field_along(x, 0.02, z), ref, atol=0.02 * np.abs(ref).max())
    # Potential differences along a fibre (what a cable model feels); the absolute level far out
    # carries the slowly decaying images of a muscle sheet over bone.
    d_small = np.diff(small.potential(x, 0.02, z))
    d_big = np.diff(big.potential(x, 0.02, z))
    assert np.allclose(d_small, d_big, atol=0.03 * np.abs(d_big).max())


def test_potential_along_fibres_shape_and_values():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=0.03)
    sol = solve(layers, Electrodes.pair("circle", diameter_m=0.04, spacing_m=0.03), gel=Gel.uniform())
    origins = np.array([[0.0, 0.0, 0.015], [0.0, 0.01, 0.02], [0.0, -0.01, 0.03]])
    s = np.linspace(-0.05, 0.05, 41)
    pts = fibre_points(origins, (1.0, 0.0, 0.0), s)
    ve = sol.potential_along(pts)
    assert ve.shape == (3, 41)
    assert np.allclose(ve[1], sol.potential(s, 0.01, 0.02))


# ----------------------------------------------------------------------------- skin current density

@pytest.fixture(scope="module")
def contact_cases():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=0.03)
    el = Electrodes.pair("circle", diameter_m=0.05, spacing_m=0.03)
    gels = (Gel.uniform(), Gel.load("hydrogel"), Gel.load("hydrogel_gel_only"), Gel.metal())
    return {g.name: solve(layers, el, gel=g) for g in gels}


def test_electrode_currents_are_conserved(contact_cases):
    for sol in contact_cases.values():
        cur = [e.current_a for e in sol.skin_current_density().electrodes]
        assert cur == pytest.approx([1.0, -1.0], abs=1e-9)


def test_uniform_contact_has_no_edge_peak(contact_cases):
    sc = contact_cases["uniform"].skin_current_density()
    for e in sc.electrodes:
        assert e.peak_to_mean == pytest.approx(1.0, abs=1e-9)
        assert e.mean_a_per_m2 == pytest.approx(1 / (math.pi * 0.025 ** 2), rel=1e-3)


def test_resistive_gel_flattens_the_edge_peak(contact_cases):
    """Edge concentration is largest for an equipotential electrode and shrinks with gel
    resistance (Wiley & Webster 1982; Panescu 1994); the peak sits at the rim."""
    metal = contact_cases["metal"].skin_current_density()
    gel = contact_cases["hydrogel_gel_only"].skin_current_density()
    skin = contact_cases["hydrogel"].skin_current_density()
    assert metal.electrodes[0].peak_to_mean > gel.electrodes[0].peak_to_mean > skin.electrodes[0].peak_to_mean > 1.05
    d, _ = gel.samples(0)
    e0 = contact_cases["hydrogel_gel_only"].electrodes.electrodes[0]
    xx, yy = np.meshgrid(gel.x_m, gel.y_m, indexing="ij")
    r = np.hypot(xx - e0.x_m, yy - e0.y_m)[gel.owner == 0]
    assert np.median(d[r > 0.023]) > 1.5 * np.median(d[r < 0.01])


def test_equipotential_disc_follows_wiley_webster_profile(contact_cases):
    """J(r)/J_mean = 1/(2√(1−r²/a²)) for an isolated equipotential disc on a half-space
    (reference §2.3: 0.5 at the centre, 1.15 at 0.9a)."""
    layers = Layers.homogeneous(0.2)
    el = Electrodes.pair("circle", diameter_m=0.03, spacing_m=0.15)
    sol = solve(layers, el, gel=Gel.metal(), grid=Grid(dx_m=1e-3, contact_refine=4))
    sc = sol.skin_current_density()
    e0 = el.electrodes[0]
    xx, yy = np.meshgrid(sc.x_m, sc.y_m, indexing="ij")
    r = np.hypot(xx - e0.x_m, yy - e0.y_m)
    mean = sc.electrodes[0].mean_a_per_m2
    centre = sc.density[(r < 0.002) & (sc.owner == 0)].mean() / mean
    ring = sc.density[(np.abs(r - 0.9 * 0.015) < 0.0004) & (sc.owner == 0)].mean() / mean
    assert centre == pytest.approx(0.5, rel=0.05)
    assert ring == pytest.approx(1 / (2 * math.sqrt(1 - 0.81)), rel=0.07)


def test_area_fraction_above(contact_cases):
    sc = contact_cases["hydrogel_gel_only"].skin_current_density()
    mean = sc.electrodes[0].mean_a_per_m2
    assert sc.area_fraction_above(0.0, electrode=0) == pytest.approx(1.0)
    assert sc.area_fraction_above(10 * sc.peak_a_per_m2) == 0.0
    fr = sc.area_fraction_above(np.array([0.5, 1.0, 2.0]) * mean, electrode=0)
    assert np.all(np.diff(fr) < 0)


def test_resistance_positive_and_larger_with_gel(contact_cases):
    assert (contact_cases["hydrogel"].resistance_ohm > contact_cases["hydrogel_gel_only"].resistance_ohm
            > contact_cases["metal"].resistance_ohm > 0)
    assert math.isnan(contact_cases["uniform"].resistance_ohm)


# ----------------------------------------------------------------------------- batch

def test_solve_batch_exact_deduplicates_and_matches_single():
    layers = Layers.standard(skin_m=1.5e-3, fat_m=0.01, muscle_m=0.03)
    a = Electrodes.pair("circle", diameter_m=0.04, spacing_m=0.03)
    b = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.02)
    sols = solve_batch(layers, [a, b, a], gel=Gel.uniform(), superpose=False)
    assert sols[0] is sols[2] and sols[0] is not sols[1]
    assert sols[1].potential(0.01, 0.0, 0.02) == pytest.approx(
        solve(layers, b, gel=Gel.uniform()).potential(0.01, 0.0, 0.02))


def test_superposed_batch_matches_exact_solutions():
    """Superposition of shifted single-electrode solutions equals the pair solution (uniform
    contact: exact up to interpolation) for different spacings, orientations and sizes."""
    layers = Layers.for_site("lumbar_erector_spinae")
    configs = [Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=s, orientation=o)
               for s in (0.02, 0.06) for o in ("along_fibres", "across_fibres")]
    configs.append(Electrodes.pair("circle", diameter_m=0.04, spacing_m=0.03))
    batch = solve_batch(layers, configs, gel=Gel.uniform())
    x = np.linspace(-0.08, 0.08, 17)
    z = layers.top_of("muscle") + np.array([0.002, 0.015])[:, None]
    got = batch.electric_field(x, 0.005, z)
    assert got.shape == (5, 2, 17, 3)
    for c, el in enumerate(configs):
        exact = solve(layers, el, gel=Gel.uniform()).electric_field(x, 0.005, z)
        scale = np.abs(exact).max()
        assert np.allclose(got[c], exact, atol=3e-3 * scale)
        assert np.allclose(batch.electric_field_along(x, 0.005, z)[c], got[c][..., 0])
        assert np.allclose(batch[c].electric_field_along(x, 0.005, z, "z"), got[c][..., 2])
        assert np.allclose(batch[c].activating_function(x, 0.005, z[0]),
                           solve(layers, el, gel=Gel.uniform()).activating_function(x, 0.005, z[0]),
                           atol=3e-3 * np.abs(batch[c].activating_function(x, 0.005, z[0])).max())


def test_superposed_batch_contact_statistics():
    layers = Layers.for_site("lumbar_erector_spinae")
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.04)
    batch = solve_batch(layers, [el])
    exact = solve(layers, el).skin_current_density()
    sup = batch[0].skin_current_density()
    assert [e.current_a for e in sup.electrodes] == pytest.approx([1.0, -1.0])
    for a, b in zip(sup.electrodes, exact.electrodes):
        assert a.peak_to_mean == pytest.approx(b.peak_to_mean, rel=0.05)
        assert a.mean_a_per_m2 == pytest.approx(b.mean_a_per_m2, rel=1e-3)
    d, w = sup.samples(1)
    assert w.sum() == pytest.approx(0.0025, rel=1e-3)
    assert sup.area_fraction_above(0.0) == pytest.approx(1.0)


# ----------------------------------------------------------------------------- construction and data

def test_layers_for_site_uses_patient_fat(measured_patient):
    from emsim.body import loads_patient
    doc = ('{"format": "emsim.patient/1", "id": "p", "fat_thickness": ['
           '{"site": "lumbar_erector_spinae", "side": "left", "method": "ultrasound", "value_mm": 22},'
           '{"site": "gluteus_maximus", "side": "left", "method": "skinfold", "value_mm": 30}]}')
    p = loads_patient(doc)
    lay = Layers.for_site("lumbar_erector_spinae", patient=p, side="left")
    assert lay.layers[1].thickness_m == pytest.approx(0.022)
    glut = Layers.for_site("gluteus_maximus", patient=p)
    assert glut.layers[1].thickness_m == pytest.approx(0.015 - 0.002)
    lean = Layers.for_site("lumbar_erector_spinae", build="lean")
    fat = Layers.for_site("lumbar_erector_spinae", build="high_fat")
    assert lean.layers[1].thickness_m < fat.layers[1].thickness_m
    assert [x.name for x in lean.layers] == ["skin", "fat", "muscle", "cortical_bone"]
    m = lean.layers[2]
    assert m.sigma_x > m.sigma_y == m.sigma_z


def test_layers_for_site_falls_back_to_build_from_bmi():
    from emsim.body import loads_patient
    heavy = loads_patient('{"format": "emsim.patient/1", "id": "h", "height_cm": 170, "weight_kg": 100}')
    lean = loads_patient('{"format": "emsim.patient/1", "id": "l", "height_cm": 180, "weight_kg": 55}')
    site = "gluteus_maximus"
    assert Layers.for_site(site, patient=heavy) == Layers.for_site(site, build="high_fat")
    assert Layers.for_site(site, patient=lean) == Layers.for_site(site, build="lean")
    assert Layers.for_site(site, patient=heavy, fat_m=0.01).layers[1].thickness_m == pytest.approx(0.01)



def test_bilateral_channel_uses_the_mean_of_both_sides_fat():
    """A bilateral pair crosses both sides: its layers take the mean of the site's left and right
    measurements (not the BMI build, which ignored them), in the field solve and in recruitment."""
    from emsim.body import loads_patient
    from emsim.physiology.field import solve_channel
    from emsim.program.model import Channel, Electrode

    p = loads_patient('{"format": "emsim.patient/1", "id": "p", "height_cm": 170, "weight_kg": 100, '
                      '"fat_thickness": ['
                      '{"site": "lumbar_erector_spinae", "side": "left", "method": "ultrasound", "value_mm": 10},'
                      '{"site": "lumbar_erector_spinae", "side": "right", "method": "ultrasound", "value_mm": 20}]}')
    site = "lumbar_erector_spinae"
    both = Layers.for_site(site, patient=p, side="bilateral")
    assert both.layers[1].thickness_m == pytest.approx(0.015)
    assert Layers.for_site(site, patient=p, side="right").layers[1].thickness_m == pytest.approx(0.020)
    assert Layers.for_site(site, patient=p).layers[1].thickness_m == pytest.approx(0.010)  # first found
    e = Electrode(shape="rectangle", width_cm=5, length_cm=5)
    ch = Channel(id="B", site=site, side="bilateral", spacing_cm=4, electrodes=(e, e))
    assert solve_channel(ch, p).layers == both

def test_fat_of_a_side_prefers_its_own_measurement_and_bilateral_weighs_the_sides_equally():
    """A side's own measurement wins over a bilateral one listed first, and a bilateral channel
    takes the mean of the two sides, not of the entries (a side measured twice by ultrasound and
    skinfold counts once)."""
    from emsim.body import loads_patient

    fat = lambda side, method, mm: (f'{{"site": "lumbar_erector_spinae", "side": "{side}", '  # noqa: E731
                                    f'"method": "{method}", "value_mm": {mm}}}')
    p = loads_patient('{"format": "emsim.patient/1", "id": "p", "fat_thickness": ['
                      + ", ".join([fat("bilateral", "ultrasound", 30), fat("left", "ultrasound", 10),
                                   fat("left", "ultrasound", 12), fat("right", "ultrasound", 20)]) + "]}")
    site = "lumbar_erector_spinae"
    thick = lambda side: Layers.for_site(site, patient=p, side=side).layers[1].thickness_m  # noqa: E731
    assert thick("left") == pytest.approx(0.010)
    assert thick("right") == pytest.approx(0.020)
    assert thick("bilateral") == pytest.approx(0.015)
    only_left = loads_patient('{"format": "emsim.patient/1", "id": "q", "fat_thickness": ['
                              + ", ".join([fat("bilateral", "ultrasound", 30), fat("left", "ultrasound", 10)]) + "]}")
    assert Layers.for_site(site, patient=only_left, side="right").layers[1].thickness_m == pytest.approx(0.030)
    assert Layers.for_site(site, patient=only_left, side="bilateral").layers[1].thickness_m == pytest.approx(0.020)


def test_fat_thickness_lowers_the_deep_drive():
    el = Electrodes.pair("rectangle", length_m=0.09, width_m=0.05, spacing_m=0.04)
    x = np.linspace(-0.12, 0.12, 241)
    drives = []
    for build in ("lean", "average", "high_fat"):
        lay = Layers.for_site("lumbar_erector_spinae", build=build)
        sol = solve(lay, el, gel=Gel.uniform())
        drives.append(np.abs(sol.electric_field(x, 0, lay.top_of("muscle") + 0.01)[..., 0]).max())
    assert drives[0] > drives[1] > drives[2]


def test_solve_channel_uses_patient_fat(base_doc, measured_patient):
    from emsim.physiology.field import solve_channel
    from emsim.program import from_dict
    ch = from_dict(base_doc).channels[0]
    sol = solve_channel(ch, measured_patient, gel=Gel.uniform())
    assert sol.layers.layers[1].thickness_m == pytest.approx(0.014)  # left lumbar, ultrasound
    assert sol.electrodes == Electrodes.from_channel(ch)


def test_electrodes_from_program_channel(base_doc):
    from emsim.program import from_dict
    ch = from_dict(base_doc).channels[0]
    el = Electrodes.from_channel(ch)
    e0, e1 = el.electrodes
    assert e0.area_m2 == pytest.approx(ch.electrodes[0].area_cm2 * 1e-4)
    gap = (e1.x_m - e1.length_m / 2) - (e0.x_m + e0.length_m / 2)
    assert gap == pytest.approx(ch.spacing_cm * 1e-2)
    assert e0.weight == 1.0 and e1.weight == -1.0


# ----------------------------------------------------------------------------- bad input

@pytest.mark.parametrize("kwargs, path", [
    (dict(shape="circle", diameter_m=0.0, spacing_m=0.02), "diameter_m"),
    (dict(shape="rectangle", length_m=0.05, width_m=0.0, spacing_m=0.02), "width_m"),
    (dict(shape="rectangle", length_m=-0.05, width_m=0.05, spacing_m=0.02), "length_m"),
    (dict(shape="circle", diameter_m=0.04, spacing_m=0.0), "spacing_m"),
    (dict(shape="circle", diameter_m=0.04, spacing_m=-0.01), "spacing_m"),
    (dict(shape="hexagon", diameter_m=0.04, spacing_m=0.01), "shape"),
])
def test_bad_pair_raises_typed_error(kwargs, path):
    with pytest.raises(PhysiologyInputError) as exc:
        Electrodes.pair(**kwargs)
    assert exc.value.path == path
    assert isinstance(exc.value, EmsimError)


def test_zero_area_electrode_in_a_set():
    with pytest.raises(PhysiologyInputError, match="zero-area") as exc:
        Electrodes((Electrode("circle", 0.0, 0.0, diameter_m=0.0, weight=1),
                    Electrode("circle", 0.1, 0.0, diameter_m=0.03, weight=-1)))
    assert exc.value.path == "electrodes[0].diameter_m"


@pytest.mark.parametrize("second", [
    Electrode("circle", 0.03, 0.0, diameter_m=0.04, weight=-1),
    Electrode("rectangle", 0.02, 0.01, length_m=0.03, width_m=0.03, weight=-1),
    Electrode("rectangle", 0.035, 0.0, length_m=0.05, width_m=0.01, angle_rad=math.pi / 4, weight=-1),
])
def test_overlapping_electrodes_raise(second):
    with pytest.raises(PhysiologyInputError, match="overlap") as exc:
        Electrodes((Electrode("circle", 0.0, 0.0, diameter_m=0.04, weight=1), second))
    assert exc.value.path == "electrodes[1]"


def test_touching_electrodes_do_not_overlap():
    Electrodes((Electrode("rectangle", 0.0, 0.0, length_m=0.04, width_m=0.04, weight=1),
                Electrode("rectangle", 0.04, 0.0, length_m=0.04, width_m=0.04, weight=-1)))


def test_unbalanced_weights_raise():
    with pytest.raises(PhysiologyInputError, match="sum to zero"):
        Electrodes((Electrode("circle", 0.0, 0.0, diameter_m=0.02, weight=1),
                    Electrode("circle", 0.1, 0.0, diameter_m=0.02, weight=-0.5)))


@pytest.mark.parametrize("thickness, path", [(0.0, "layers[0].thickness_m"), (-0.002, "layers[0].thickness_m"),
                                              (math.nan, "layers[0].thickness_m")])
def test_bad_layer_thickness_raises(thickness, path):
    with pytest.raises(PhysiologyInputError) as exc:
        Layers((Layer("skin", thickness, 0.2, 0.2, 0.2), Layer("muscle", math.inf, 0.3, 0.1, 0.1)))
    assert exc.value.path == path


def test_bad_layers_raise():
    with pytest.raises(PhysiologyInputError, match="half-space"):
        Layers((Layer("skin", 0.002, 0.2, 0.2, 0.2),))
    with pytest.raises(PhysiologyInputError) as exc:
        Layers((Layer("skin", 0.002, 0.2, 0.0, 0.2), Layer("m", math.inf, 0.3, 0.1, 0.1)))
    assert exc.value.path == "layers[0].sigma_y"
    with pytest.raises(PhysiologyInputError) as exc:
        Layers.standard(skin_m=0.0015, fat_m=-0.01)
    assert exc.value.path == "layers[1].thickness_m"


def test_unknown_site_and_build_raise():
    with pytest.raises(PhysiologyInputError) as exc:
        Layers.for_site("left_elbow")
    assert exc.value.path == "site" and "lumbar_erector_spinae" in exc.value.allowed
    with pytest.raises(PhysiologyInputError) as exc:
        Layers.for_site("face")  # in the catalogue, but forbidden: no layer data
    assert exc.value.path == "site"
    with pytest.raises(PhysiologyInputError) as exc:
        Layers.for_site("quadriceps", build="muscular")
    assert exc.value.path == "build"


def test_points_outside_domain_or_above_skin_raise():
    sol = solve(Layers.homogeneous(0.2), Electrodes.pair("circle", diameter_m=0.02, spacing_m=0.02),
                gel=Gel.uniform())
    with pytest.raises(PhysiologyInputError) as exc:
        sol.potential(sol.reach_m + 0.01, 0.0, 0.01)
    assert exc.value.path == "x"
    with pytest.raises(PhysiologyInputError) as exc:
        sol.potential(0.0, 0.0, -0.001)
    assert exc.value.path == "z"
    with pytest.raises(PhysiologyInputError) as exc:
        sol.activating_function(0.0, 0.0, 0.01, axis="w")
    assert exc.value.path == "axis"


def test_bad_gel_and_grid_raise():
    with pytest.raises(PhysiologyInputError):
        Gel(-1.0, 0.001)
    with pytest.raises(PhysiologyInputError):
        Gel.load("toothpaste")
    with pytest.raises(PhysiologyInputError):
        Grid(dx_m=0.0)
