"""The study scripts' own pieces: program construction, perturbed parameters, threshold sweeps."""

import inspect

import numpy as np
import pytest

from emsim.study import load_study


def _module(name):
    return inspect.getmodule(load_study(name, quick=True).evaluate)


def test_lumbar_design_labels_rebuild_their_programs():
    """Every design label is the (snapped) program it names, so a Dask worker rebuilds the same one."""
    L = _module("lumbar_design")
    study = load_study("lumbar_design", quick=True)
    designs = study.space.parameters[0].values
    for label in designs:
        prog = L.program(label, 12.0)
        if label in L.WHOLE:
            continue  # the whole home routine, as written (tested below)
        assert [c.site for c in prog.channels] == ["lumbar_erector_spinae"] and prog.channels[0].side == "left"
        assert prog.phases[0].duration_s == 12.0 and not prog.schedule.progression
        if label not in L.REFERENCES:
            assert L.design_label(**L._settings(prog)) == label


def test_lumbar_design_references_keep_their_settings_and_conditioning():
    from emsim.safety import check

    L = _module("lumbar_design")
    wb = L.program("WB-EMS 85 Hz 350 µs 4/4 s", 12.0)
    assert L._settings(wb) == {"frequency_hz": 85.0, "pulse_width_us": 350.0, "amplitude_ma": 40.0, "on_s": 4.0,
                               "off_s": 4.0, "ramp_s": 0.5}
    assert wb.schedule.first_sessions is not None and L.nominal_session(wb) == wb.schedule.first_sessions.count + 1
    assert check(wb, None, session=L.nominal_session(wb)).ok
    home = L.program("home routine (paraspinal block)", 12.0)
    assert L._settings(home)["frequency_hz"] == 35.0 and home.channels[0].electrodes[0].width_cm == 5


def test_lumbar_design_whole_home_routine_is_the_program_as_written():
    """Three sites x 20 min, both sides: every channel and phase of the shipped routine."""
    from emsim._data import models_dir
    from emsim.program.io import load

    L = _module("lumbar_design")
    label = next(iter(L.WHOLE))
    assert label in load_study("lumbar_design", quick=True).space.parameters[0].values
    whole, shipped = L.program(label, 12.0), load(models_dir() / "programs" / f"{L.WHOLE[label]}.json")
    assert [c.id for c in whole.channels] == [c.id for c in shipped.channels] and len(whole.channels) == 6
    assert [ph.duration_s for ph in whole.phases] == [1200.0, 1200.0, 1200.0]
    assert {c.site for c in whole.channels} == {"hip_flexors", "lumbar_erector_spinae", "gluteus_maximus"}


def test_lumbar_design_options_reach_the_study_and_its_report_text():
    full = load_study("lumbar_design")
    assert full.space.parameters[2].values == (1200.0,)  # the whole 20-min session by default
    assert "the whole 20-min session" in full.description
    short = load_study("lumbar_design", options={"window_s": 300, "cohort": 50, "n_designs": 10})
    assert short.space.parameters[2].values == (300.0,) and "only the first 300 s" in short.description
    assert "50 virtual patients" in short.description
    assert short.spec() != full.spec()  # a different run folder fingerprint: never resumed into


@pytest.mark.parametrize("option", [{"window_s": 5}, {"window_s": 1201}, {"cohort": 0}, {"cohort": 2.5},
                                    {"max_front": "many"}, {"n_designs": True}])
def test_lumbar_design_option_out_of_range_is_a_study_error(option):
    from emsim.study import StudyError

    with pytest.raises(StudyError) as err:
        load_study("lumbar_design", options=option)
    assert err.value.path == f"--set {next(iter(option))}"


def test_sensitivity_perturbs_only_the_named_parameters():
    from emsim.physiology.muscle import load_muscle

    S = _module("sensitivity")
    base = load_muscle("lumbar_erector_spinae")
    ones = {k: 1.0 for k in S.FACTORS}
    ones.update(fat_mm=12.0, type1_fraction=base.pool.type1_area_fraction)
    assert S._muscle(ones) == base
    m = S._muscle(dict(ones, tau1_factor=1.4, pulse_cost_factor=2.0))
    assert m.ding.tau1_rest == pytest.approx(1.4 * base.ding.tau1_rest) and m.ding.tau2 == base.ding.tau2
    assert m.fatigue.pulse_cost == pytest.approx(2 * base.fatigue.pulse_cost)
    fat = [f.value_mm for f in S._patient(20.0).fat_thickness if f.site == "lumbar_erector_spinae"]
    assert fat and all(v == 20.0 for v in fat)


def test_sensitivity_more_fat_means_less_contraction():
    """Layered-conductor geometry (reference G1): at a fixed current more fat, less recruitment."""
    S = _module("sensitivity")
    x = {k: 1.0 for k in S.FACTORS}
    x["type1_fraction"] = 0.62
    lean, fat = (S.predict(dict(x, fat_mm=v), 12.0) for v in (5.0, 28.0))
    assert lean["peak_mvc_pct"] > fat["peak_mvc_pct"] > 0


def test_discomfort_thresholds_are_ordered():
    """S4 (Alon 1983; reference §6): sensation < pain < tolerance at every pulse width, and the
    current for a 20 % contraction lies above the motor threshold."""
    D = _module("discomfort")
    out = D.evaluate({"waveform": np.array(["biphasic 100 µs", "biphasic 300 µs"]),
                      "frequency_hz": np.array([50.0, 50.0]), "electrode": np.array(["5x9", "5x9"])})
    assert np.all(out["sensation_threshold_ma"] < out["pain_threshold_ma"])
    assert np.all(out["pain_threshold_ma"] < out["tolerance_ma"])
    assert np.all(out["motor_threshold_ma"] < out["current_at_target_ma"])
    assert out["sensation_threshold_ma"][0] > out["sensation_threshold_ma"][1]  # Weiss law
