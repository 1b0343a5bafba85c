"""Afferent thresholds of kHz bursts from the Brian2 fibre tables (emsim.physiology.cutaneous.waveform_multiplier)."""

import dataclasses
import json
import math

import numpy as np
import pytest

from emsim._data import models_dir
from emsim.physiology import cutaneous as cut
from emsim.physiology import discomfort as dsc
from emsim.physiology import recruitment as rc
from emsim.physiology.errors import ModelParameterError, PhysiologyInputError
from emsim.physiology.fibre_tables import load_table
from emsim.program.model import Channel

SITE = "lumbar_erector_spinae"
CLASSES = ("abeta", "adelta", "c")


def channel():
    return Channel(id="A", site=SITE, side="left", spacing_cm=4.0, orientation="along_fibres",
                   electrodes=({"shape": "rectangle", "width_cm": 5.0, "length_cm": 5.0},) * 2)


def waves():
    """Monophasic, zero-gap and 100 µs-gap biphasic, asymmetric, and two kHz bursts (grid points)."""
    return rc.waveform_parameters([
        rc.Monophasic(shape="monophasic", pulse_width_us=200.0,
                      balance={"delay_us": 0.0, "width_us": 2000.0, "amplitude_ratio": 0.1}),
        rc.SymmetricBiphasic(shape="symmetric_biphasic", pulse_width_us=50.0, interphase_gap_us=0.0),
        rc.SymmetricBiphasic(shape="symmetric_biphasic", pulse_width_us=300.0, interphase_gap_us=100.0),
        rc.AsymmetricBiphasic(shape="asymmetric_biphasic", pulse_width_us=100.0, interphase_gap_us=50.0,
                              secondary_amplitude_ratio=0.25),
        rc.KhzBurst(shape="khz_burst", carrier_hz=2500.0, burst_duration_ms=4.0),
        rc.KhzBurst(shape="khz_burst", carrier_hz=10000.0, burst_duration_ms=1.0),
    ])


def test_pulsed_waveforms_keep_the_calibrated_weiss_law():
    w = waves()
    mult = cut.waveform_multiplier(w)
    for name, c in cut.class_parameters().items():
        np.testing.assert_array_equal(mult[name][:4], 1.0 + c.chronaxie_s / w["pulse_width_s"][:4])


def test_khz_bursts_take_the_tables_ratio_to_the_calibration_pulse():
    """At table grid points: (1 + c/PW_ref) × mean over diameters of ln(E_th(burst)/E_th(ref))."""
    table = load_table()
    ref_w = cut.reference_waveform()
    ref = {"kind": np.array([1]), "pulse_width_s": np.array([ref_w["pulse_width_s"]]),
           "gap_s": np.array([ref_w["gap_s"]]), "ratio": np.array([1.0]), "carrier_hz": np.array([0.0]),
           "burst_s": np.array([0.0])}
    mult = cut.waveform_multiplier(waves())
    carriers, bursts = list(table.carrier_hz), list(np.round(table.burst_s * 1e3, 9))
    for row, (f, b) in ((4, (2500.0, 4.0)), (5, (10000.0, 1.0))):
        for name, c in cut.class_parameters().items():
            e_burst = table.khz[name][:, carriers.index(f), bursts.index(b)]
            e_ref = table.waveform_factor(name, ref)[0]
            want = (1.0 + c.chronaxie_s / ref_w["pulse_width_s"]) * math.exp(np.mean(np.log(e_burst / e_ref)))
            assert mult[name][row] == pytest.approx(want, rel=1e-12), (name, f)
    # a carrier raises every class's threshold well beyond the calibration pulse's, more at 10 kHz
    for name in CLASSES:
        assert mult[name][5] > mult[name][4] > 1.0 + cut.class_parameters()[name].chronaxie_s / 250e-6


def test_a_class_missing_from_the_table_keeps_the_half_cycle_weiss_factor_and_inf_means_unexcitable():
    table = load_table()
    stub = dataclasses.replace(table, classes=("motor", "abeta", "adelta"),
                               khz={**table.khz, "adelta": np.full_like(table.khz["adelta"], np.inf)})
    w = waves()
    mult = cut.waveform_multiplier(w, table=stub)
    c = cut.class_parameters()["c"]
    np.testing.assert_allclose(mult["c"], 1.0 + c.chronaxie_s / w["pulse_width_s"])
    assert np.all(np.isinf(mult["adelta"][4:])) and np.all(np.isfinite(mult["adelta"][:4]))
    contact = rc.recruit(rc.StimulusSet.from_arrays(10.0, channels=channel()), SITE).fields[0].skin_current_density()
    act = cut.activation(contact, 0.2, w["pulse_width_s"], threshold_multiplier=mult)
    assert np.all(act["adelta"][4:] == 0.0) and np.all(act["adelta"][:4] > 0.0)


def test_recruit_feeds_the_table_based_khz_afferents_to_discomfort():
    """recruit's afferent fractions for kHz bursts are cutaneous_activation(..., waveform=...);
    they are no longer those of one pulse of the half-cycle (the pre-table treatment)."""
    amps = np.array([10.0, 30.0, 60.0, 120.0])
    s = rc.StimulusSet.from_arrays(amps, channels=channel(), frequency_hz=50.0, shape="khz_burst",
                                   carrier_hz=[1000.0, 2500.0, 4000.0, 10000.0], burst_duration_ms=4.0)
    person = dsc.Person()
    rec = rc.recruit(s, SITE, person=person)
    contact = rec.fields[0].skin_current_density()
    act = dsc.cutaneous_activation(contact, amps * 1e-3, s.waveform["pulse_width_s"], person=person,
                                   waveform=s.waveform)
    half_cycle = dsc.cutaneous_activation(contact, amps * 1e-3, s.waveform["pulse_width_s"], person=person)
    for name in CLASSES:
        np.testing.assert_allclose(rec.afferent_fraction[name][:, :2], act[name], atol=1e-12)
    assert np.max(np.abs(act["abeta"] - half_cycle["abeta"])) > 0.05
    # the 5 % thresholds agree with the fractions
    for row in range(amps.size):
        thr = rec.afferent_threshold_a["abeta"][row]
        mult = {k: v[row] for k, v in cut.waveform_multiplier(s.waveform).items()}
        at = cut.activation(contact, thr, s.waveform["pulse_width_s"][row], threshold_multiplier=mult)["abeta"]
        np.testing.assert_allclose(np.diag(at), cut.SENSATION_LEVEL, rtol=1e-6)


def test_waveform_and_multiplier_together_are_refused():
    contact = rc.recruit(rc.StimulusSet.from_arrays(10.0, channels=channel()), SITE).fields[0].skin_current_density()
    w = waves()
    with pytest.raises(PhysiologyInputError) as e:
        dsc.cutaneous_activation(contact, 0.01, w["pulse_width_s"], waveform=w,
                                 threshold_multiplier=cut.waveform_multiplier(w))
    assert e.value.path == "threshold_multiplier"


def test_a_parameter_file_without_a_usable_reference_waveform_is_a_typed_error(tmp_path):
    data = json.loads((models_dir() / cut.CLASS_FILE).read_text(encoding="utf-8"))
    data["reference_waveform"]["shape"] = "monophasic"
    bad = tmp_path / "discomfort.json"
    bad.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ModelParameterError) as e:
        cut.waveform_multiplier(waves(), relative=str(bad))
    assert "reference_waveform" in e.value.path
