"""emsim.physiology.muscle: API, shapes, PulseTrain input and bad input."""

import json

import numpy as np
import pytest

from emsim.errors import EmsimError
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.physiology.muscle import load_muscle, muscle_names, simulate
from emsim.program import compile as compile_program, load

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_names_are_the_files():
    names = muscle_names()
    assert "quadriceps_ding2003" in names and "quadriceps_ding2007" in names
    for n in names:
        assert load_muscle(n).name == n


def test_unknown_muscle_names_the_known_ones():
    with pytest.raises(ModelParameterError) as info:
        load_muscle("biceps")
    assert info.value.path == "muscle" and "quadriceps_ding2003" in info.value.allowed


@pytest.mark.parametrize("section, name, value, fragment", [
    ("pool", "type1_area_fraction", 1.5, "pool.type1_area_fraction"),
    ("fatigue", "occlusion_gain", -0.1, "fatigue.occlusion_gain"),
    ("fatigue", "recovery_slow", "long", "fatigue.recovery_slow"),
])
def test_bad_parameter_file_names_the_path(tmp_path, monkeypatch, section, name, value, fragment):
    doc = json.loads((ROOT / "models/muscles/quadriceps_ding2003.json").read_text())
    doc[section][name]["value"] = value
    (tmp_path / "muscles").mkdir()
    (tmp_path / "muscles" / "broken.json").write_text(json.dumps(doc))
    monkeypatch.setenv("EMSIM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelParameterError) as info:
        load_muscle("broken")
    assert fragment in info.value.path


def test_missing_value_names_it(tmp_path, monkeypatch):
    doc = json.loads((ROOT / "models/muscles/quadriceps_ding2003.json").read_text())
    del doc["fatigue"]["pulse_cost"]
    (tmp_path / "muscles").mkdir()
    (tmp_path / "muscles" / "broken.json").write_text(json.dumps(doc))
    monkeypatch.setenv("EMSIM_MODELS_DIR", str(tmp_path))
    with pytest.raises(ModelParameterError, match="pulse_cost"):
        load_muscle("broken")


@pytest.mark.parametrize("train, fragment", [
    ([], "empty"),
    ([0.0, 0.02, 0.01], "strictly increasing"),
    ([0.0, 0.01, 0.01], "duplicate"),
    ([[0.0, np.nan, 0.02]], "trailing"),
])
def test_bad_trains(train, fragment):
    with pytest.raises(PhysiologyInputError, match=fragment):
        simulate(train)


def test_bad_widths_and_recruitment():
    p = np.arange(10) / 50
    with pytest.raises(PhysiologyInputError) as info:
        simulate(p, "quadriceps_ding2007", pulse_width_us=-np.ones(10))
    assert "pulse_width_us" in info.value.path
    with pytest.raises(PhysiologyInputError, match="pulse_width_us is required"):
        simulate(p, "quadriceps_ding2007")
    with pytest.raises(PhysiologyInputError) as info:
        simulate(p, recruitment=1.5)
    assert info.value.path == "recruitment" and info.value.allowed == "0 to 1"
    r = np.full(10, 0.5)
    r[3] = 2.0
    with pytest.raises(PhysiologyInputError) as info:
        simulate(p, recruitment=r)
    assert "recruitment[0, 3]" == info.value.path
    with pytest.raises(PhysiologyInputError):
        simulate(p, dt=0.0)
    assert issubclass(PhysiologyInputError, EmsimError)


def test_batch_shapes_and_padding():
    a = np.arange(0, 1, 1 / 20)
    b = np.arange(0, 0.3, 1 / 50)
    pulses = np.full((2, a.size), np.nan)
    pulses[0] = a
    pulses[1, :b.size] = b
    r = simulate(pulses, fatigue=False)
    assert r.force_n.shape == (2, r.t.size)
    single = simulate(b, fatigue=False)
    n = single.t.size
    assert np.allclose(r.t[:n], single.t) and np.allclose(r.force_n[1, :n], single.force_n[0], atol=1e-9)
    assert r.peak_force_n.shape[0] == 2 and np.isnan(r.fatigue_index).all()


def test_recruitment_scales_rested_force_linearly():
    p = np.arange(0, 1, 1 / 33)
    full = simulate(p, fatigue=False)
    half = simulate(p, fatigue=False, recruitment=0.5)
    assert np.allclose(half.force_n, 0.5 * full.force_n, rtol=1e-9, atol=1e-9)


def test_unrecruited_units_stay_fresh():
    """Fatigue is carried by the recruited units only: after fatiguing 30 % of the pool, raising
    recruitment to 60 % brings in fresh units. Per fibre-type class (the classes differ in
    fatigability, Burke 1973), the newly recruited depth group ends the 60 % train with the
    deficit that train alone causes in a rested muscle — at most that (the only coupling between
    cells is the muscle-level occlusion factor, lower when the first units are fatigued), and
    not less than 80 % of it — while the units that did the earlier work carry several times
    more."""
    cyc = [k * 2.0 + np.arange(0, 1, 1 / 40) for k in range(60)]
    last = 130.0 + np.arange(0, 1, 1 / 40)
    p = np.concatenate(cyc + [last])
    r = np.concatenate([np.full(c.size, 0.3) for c in cyc] + [np.full(40, 0.6)])
    res = simulate(p, recruitment=r, trace=False)
    rested = simulate(last, recruitment=np.full(40, 0.6), trace=False)
    alone = {c["unit_class"]: rested.deficits[0][i, 0] for i, c in enumerate(rested.cells)}
    d = res.deficits[0]
    for i, c in enumerate(res.cells):
        ref = alone[c["unit_class"]]
        if c["recruitment_from"] >= 0.3 - 1e-9:
            assert 0.8 * ref <= d[i, 0] <= ref * (1 + 1e-6), c
        else:
            assert d[i, 0] > 3 * ref, c


def test_recovery_over_a_long_rest_is_exact_and_cheap():
    p1 = np.arange(0, 4, 1 / 50)
    p = np.concatenate([p1, 4 * 3600 + p1])
    r = simulate(p, trace=False)
    # a 4 h rest costs no more integration than a 6 s one: it is one exact exponential step
    short_rest = simulate(np.concatenate([p1, 10.0 + p1]), trace=False)
    assert r.stats["integrated"] <= short_rest.stats["integrated"]
    assert 0.9 < r.peak_force_n[0, 1] / r.peak_force_n[0, 0] <= 1.0


def test_pulse_train_input_rows_are_channels(measured_patient):
    program = load(ROOT / "models/programs/paraspinal_strengthening.json")
    train = compile_program(program, measured_patient)
    res = simulate(train, "quadriceps_ding2003", trace=False)
    assert res.peak_force_n.shape[0] == len(train.channel_ids)
    assert np.all(res.fti_total_ns > 0)
    assert np.all(res.fatigue_index < 1.0)
