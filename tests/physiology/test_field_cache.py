"""The process-wide byte budget of the field solutions' cached depth planes.

Eviction must change memory and speed only: a plane recomputed after eviction equals the one
first computed, bit for bit.
"""

import gc
import pickle

import numpy as np
import pytest

from emsim.errors import EmsimError
from emsim.physiology import _field_cache, field
from emsim.physiology.field import Electrodes, Gel, Layers, solve

DEPTHS = np.array([0.004, 0.008, 0.012, 0.016, 0.02, 0.024])


@pytest.fixture
def budget():
    """Restore the process budget and empty the caches around a test."""
    before = field.cache_info()["budget_bytes"]
    field.clear_cache()
    yield field.set_cache_budget
    field.set_cache_budget(before)
    field.clear_cache()


def _solution(spacing_m=0.04):
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=spacing_m)
    return solve(Layers.homogeneous(0.2), el, gel=Gel.uniform(), cache=False)


def _values(sol):
    """Potential and along-fibre field at one point per depth (one plane each)."""
    x = np.full(DEPTHS.size, 0.01)
    return np.concatenate([sol.potential(x, 0.0 * x, DEPTHS), sol.electric_field_along(x, 0.0 * x, DEPTHS)])


def test_budget_bounds_kernels_and_planes_of_all_solutions_and_results_do_not_change(budget):
    ref_a, ref_b = _values(_solution(0.04)), _values(_solution(0.06))
    field.clear_cache()
    _values(_solution(0.04))
    one = field.cache_info()["bytes"]  # layer kernels + the planes of one solution
    budget(one // 2)
    a, b = _solution(0.04), _solution(0.06)
    got_a, got_b = _values(a), _values(b)
    info = field.cache_info()
    assert 0 < info["bytes"] <= one // 2
    assert info["evictions"] > 0
    # Asked again after eviction: recomputed, identical.
    np.testing.assert_array_equal(_values(a), got_a)
    np.testing.assert_array_equal(got_a, ref_a)
    np.testing.assert_array_equal(got_b, ref_b)


def test_per_solution_cap_still_applies(budget, monkeypatch):
    sol = _solution()
    _values(sol)
    total = sol.cached_bytes
    monkeypatch.setattr(field.FieldSolution, "cache_bytes", total // 3)
    other = _solution(0.05)
    _values(other)
    assert 0 < other.cached_bytes <= total // 3


def test_clear_cache_drops_planes_and_solutions(budget):
    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.04)
    sol = solve(Layers.homogeneous(0.2), el, gel=Gel.uniform())
    assert solve(Layers.homogeneous(0.2), el, gel=Gel.uniform()) is sol  # cached
    before = _values(sol)
    assert field.cache_info()["bytes"] > 0
    field.clear_cache()
    info = field.cache_info()
    assert (info["bytes"], info["planes"], info["solutions"]) == (0, 0, 0)
    assert solve(Layers.homogeneous(0.2), el, gel=Gel.uniform()) is not sol
    np.testing.assert_array_equal(_values(sol), before)  # a kept solution refills on demand


def test_collected_solution_releases_its_planes(budget):
    sol = _solution()
    kernels = field.cache_info()["bytes"]  # the solve needed the layer kernels, no planes yet
    _values(sol)
    assert field.cache_info()["bytes"] == kernels + sol.cached_bytes > kernels
    del sol
    gc.collect()
    assert field.cache_info()["bytes"] == kernels


def test_pickled_solution_recomputes_its_own_planes(budget):
    sol = _solution()
    first = _values(sol)
    copy = pickle.loads(pickle.dumps(sol))
    assert copy.cached_bytes == 0
    np.testing.assert_array_equal(_values(copy), first)
    assert copy.cached_bytes > 0


@pytest.mark.parametrize("bad", [-1, 2.0 ** 60, "lots", True, None])
def test_bad_budget_is_a_typed_error(budget, bad):
    with pytest.raises(EmsimError) as err:
        budget(bad)
    assert err.value.path == "budget_bytes"


def test_budget_from_environment(monkeypatch):
    monkeypatch.setenv(_field_cache.ENV_VAR, "64")
    assert _field_cache.budget_from_env() == 64 * 2 ** 20
    monkeypatch.setenv(_field_cache.ENV_VAR, "")
    assert _field_cache.budget_from_env() == _field_cache.DEFAULT_BUDGET_BYTES
    monkeypatch.setenv(_field_cache.ENV_VAR, "a lot")
    with pytest.raises(EmsimError) as err:
        _field_cache.budget_from_env()
    assert err.value.path == _field_cache.ENV_VAR
