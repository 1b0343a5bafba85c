"""The motor-unit pool: fibre-type fatigabilities and their reduction to classes."""

import dataclasses
import json

import numpy as np
import pytest

from emsim.physiology.errors import ModelParameterError
from emsim.physiology.muscle import _from_file, load_muscle
from emsim.physiology.pool import PoolParameters, build_pool

BY_TYPE = dict(fatigability_s=0.05, fatigability_fr=0.13, fatigability_ff=2.08)


def test_units_take_the_rate_of_their_fibre_type():
    pool = build_pool(PoolParameters(type1_area_fraction=0.45, **BY_TYPE))
    # three levels only, in the ratios given, ordered slow → fast
    levels = np.unique(np.round(pool.fatigability, 12))
    assert levels.size == 3
    assert np.allclose(levels / levels[0], [1, 0.13 / 0.05, 2.08 / 0.05])
    assert np.all(np.diff(pool.fatigability) >= 0)
    assert np.isclose(np.sum(pool.twitch_force * pool.fatigability), 1.0)
    # with three classes each class is one fibre type
    phi = pool.class_fatigability
    assert np.allclose(phi / phi[0], [1, 0.13 / 0.05, 2.08 / 0.05])
    # the S type holds the type I area fraction of the force (to within one unit)
    s_force = pool.twitch_force[pool.fatigability == pool.fatigability.min()].sum()
    assert abs(s_force - 0.45) <= pool.twitch_force.max()


@pytest.mark.parametrize("k", [1, 2, 5])
def test_other_class_counts_average_the_types(k):
    pool = build_pool(PoolParameters(n_classes=k, **BY_TYPE))
    assert np.isclose(np.sum(pool.force_share * pool.class_fatigability), 1.0)
    assert np.all(np.diff(pool.class_fatigability) >= -1e-12)
    if k == 1:
        assert np.isclose(pool.class_fatigability[0], 1.0)


def test_without_type_rates_the_continuous_spread_is_used():
    pool = build_pool(PoolParameters(fatigability_range=180.0))
    f = pool.fatigability
    assert np.isclose(f.max() / f.min(), 180.0 ** ((120 - 1) / 120))
    assert np.unique(np.round(f, 12)).size == 120


def test_more_type_I_means_less_force_at_the_ff_rate():
    """Fibre type now matters for the whole pool: the force share of FF units shrinks."""
    def ff_share(t1):
        p = build_pool(PoolParameters(type1_area_fraction=t1, **BY_TYPE))
        return p.twitch_force[p.fatigability == p.fatigability.max()].sum()
    assert ff_share(0.6) < ff_share(0.2) - 0.1


@pytest.mark.parametrize("given", [dict(fatigability_s=0.05),
                                   dict(fatigability_s=0.05, fatigability_fr=0.1),
                                   dict(BY_TYPE, fatigability_ff=0.0),
                                   dict(BY_TYPE, fatigability_fr=float("nan"))])
def test_incomplete_or_bad_type_rates_are_refused(given):
    with pytest.raises(ModelParameterError) as exc:
        PoolParameters(**given)
    assert exc.value.path.startswith("pool.fatigability_")


def test_shipped_muscles_use_fibre_type_rates():
    m = load_muscle("quadriceps_ding2003")
    assert m.pool.fatigability_s is not None
    info = m.provenance["pool.fatigability_ff"]
    assert info.source == "burke1973" and info.evidence == "fitted"
    phi = m.motor_units.class_fatigability
    assert phi[2] / phi[0] >= 5       # FF far more fatigable than S (Burke 1973)


def test_a_file_with_a_bad_type_rate_names_the_path(tmp_path):
    src = json.loads((load_muscle.__globals__["models_dir"]() / "muscles"
                      / "quadriceps_ding2003.json").read_text())
    src["pool"]["fatigability_ff"]["value"] = -1.0
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(src))
    with pytest.raises(ModelParameterError) as exc:
        _from_file(bad)
    assert "fatigability_ff" in str(exc.value.path)
    del src["pool"]["fatigability_ff"]
    bad.write_text(json.dumps(src))
    with pytest.raises(ModelParameterError) as exc:
        _from_file(bad)
    assert "fatigability_ff" in str(exc.value.path)
