"""emsim.body.calibration and `emsim calibrate`: the fitted models reproduce the measurements."""

import json

import numpy as np

from emsim.body import load_patient
from emsim.body.calibration import (MOTOR_CRITERION, TOLERANCE_NRS, _model_motor_threshold_ma,
                                    _steady_drive, calibrate, default_channel)
from emsim.cli import main
from emsim.physiology.recruitment import StimulusSet, recruit
from emsim.testing.documents import PATIENTS

MEASURED = load_patient(PATIENTS / "example_measured.json")
SITE, SIDE = "lumbar_erector_spinae", "left"


def test_motor_gain_moves_the_model_threshold_onto_the_measured_one():
    cal = calibrate(MEASURED, SITE, SIDE)
    measured = MEASURED.thresholds_for(SITE, SIDE, "motor_threshold")[0]
    ch = default_channel(SITE, SIDE)
    # the current the units see is gain × delivered current: at the measured threshold the
    # calibrated model recruits the criterion fraction
    ss = StimulusSet.from_arrays(measured.amplitude_ma * cal.motor_gain, measured.pulse_width_us,
                                 measured.frequency_hz, channels=[ch])
    frac = recruit(ss, SITE, MEASURED, side=SIDE).motor_fraction_above.mean()
    assert abs(frac - MOTOR_CRITERION) < 0.02
    lo, hi = cal.motor_gain_range
    assert lo < cal.motor_gain < hi


def test_tolerance_gives_the_anchor_nrs_after_calibration():
    cal = calibrate(MEASURED, SITE, SIDE)
    tol = MEASURED.thresholds_for(SITE, SIDE, "tolerance")[0]
    total, _, dsc = _steady_drive(default_channel(SITE, SIDE), MEASURED, tol.pulse_width_us,
                                  tol.frequency_hz, cal.cutaneous_scale, [tol.amplitude_ma])
    params = dsc.DiscomfortParameters.load()
    nrs = dsc.nrs_from_drive(cal.sensitivity * total, params.transfer_exponent)
    assert abs(float(nrs[0]) - TOLERANCE_NRS) < 0.05


def test_no_thresholds_means_neutral_factors():
    cal = calibrate(load_patient(PATIENTS / "lbp_average.json"), SITE, SIDE)
    assert not cal.calibrated
    assert (cal.motor_gain, cal.cutaneous_scale, cal.sensitivity) == (1.0, 1.0, 1.0)


def test_model_motor_threshold_rises_with_fat():
    ch = default_channel(SITE, SIDE)
    lean = _model_motor_threshold_ma(ch, load_patient(PATIENTS / "lbp_lean.json"), 300, 50)
    fat = _model_motor_threshold_ma(ch, load_patient(PATIENTS / "lbp_high_fat.json"), 300, 50)
    assert fat > lean


def test_cli(capsys):
    assert main(["calibrate", str(PATIENTS / "example_measured.json"), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert {c["side"] for c in out["calibrations"]} == {"left", "right"}
    assert all(np.isfinite(c["motor_gain"]) for c in out["calibrations"])
    assert main(["calibrate", str(PATIENTS / "lbp_lean.json")]) == 1
    assert "nothing to calibrate" in capsys.readouterr().err
