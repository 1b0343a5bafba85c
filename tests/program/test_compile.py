"""The compiler: exact pulse timing, ramps, patterns, channel timing, sessions, resolution."""

import numpy as np
import pytest

from emsim.testing.documents import PROGRAMS, as_json, channel, stim
from emsim.errors import ProgramError
from emsim.program import compile, load, loads


def _train(doc, **kw):
    return compile(loads(as_json(doc)), **kw)


def test_constant_continuous_pulse_count_and_times(base_doc):
    base_doc["phases"][0]["stimulation"][0].update(on_s=60, off_s=0, ramp_up_s=0, ramp_down_s=0)
    tr = _train(base_doc)
    assert tr.n_pulses == 50 * 60
    np.testing.assert_allclose(np.diff(tr.t_s), 0.02, rtol=0, atol=1e-12)
    np.testing.assert_allclose(tr.amplitude_a, 0.020)
    np.testing.assert_allclose(tr.width_s, 300e-6)


def test_on_off_cycles_and_ramps(base_doc):
    tr = _train(base_doc)  # 5 s on (1 s ramps) / 5 s off, 50 Hz, 60 s
    t = tr.t_s
    in_cycle = np.mod(t, 10.0)
    assert in_cycle.max() < 5.0
    # 6 cycles x 250 pulse slots, minus the zero-amplitude first pulse of each ramp
    assert tr.n_pulses == 6 * 249
    first = tr.amplitude_a[t < 5.0]
    assert first[0] == pytest.approx(0.020 * 0.02)          # 20 ms into a 1 s ramp
    assert first.max() == pytest.approx(0.020)
    assert np.all(np.diff(first[:49]) > 0)                   # rising
    assert first[-1] == pytest.approx(0.020 * 0.02)          # last pulse 20 ms before the end of the ramp-down


def test_doublets_and_variable_frequency(base_doc):
    s = base_doc["phases"][0]["stimulation"][0]
    s.update(ramp_up_s=0, ramp_down_s=0, frequency_hz=20,
             pattern={"type": "doublets", "pulses_per_burst": 2, "intra_burst_interval_ms": 5})
    t = _train(base_doc).t_s
    np.testing.assert_allclose(t[:4], [0, 0.005, 0.05, 0.055], atol=1e-12)
    s["pattern"] = {"type": "variable_frequency", "onset_intervals_ms": [5]}
    t = _train(base_doc).t_s
    np.testing.assert_allclose(t[:4], [0, 0.005, 0.055, 0.105], atol=1e-12)
    np.testing.assert_allclose(t[t >= 10][:2], [10, 10.005], atol=1e-12)  # every on time restarts the doublet


def test_alternating_and_sequential_timing(base_doc):
    base_doc["channels"].append(channel("B", side="right"))
    ph = base_doc["phases"][0]
    ph["stimulation"].append(stim("B"))
    ph["timing"]["mode"] = "alternating"
    tr = _train(base_doc)
    a, b = tr.t_s[tr.channel_slice("A")], tr.t_s[tr.channel_slice("B")]
    assert a.min() < 1 and b.min() >= 5.0
    assert not np.any(np.isin(np.round(a, 6), np.round(b, 6)))
    ph["timing"] = {"mode": "sequential", "offset_s": 2}
    tr = _train(base_doc)
    assert tr.t_s[tr.channel_slice("B")].min() == pytest.approx(2.02)


def test_sessions_progression_and_first_session_caps(base_doc):
    base_doc["schedule"]["first_sessions"] = {"count": 1, "intensity_factor": 0.5, "duration_factor": 0.5}
    base_doc["schedule"]["progression"] = [{"type": "intensity_step", "every_sessions": 1, "step_pct": 10,
                                            "max_factor": 1.2}]
    p = loads(as_json(base_doc))
    s1, s2, s5 = (compile(p, session=k) for k in (1, 2, 5))
    assert s1.duration_s == 30 and s2.duration_s == 60
    assert s1.amplitude_a.max() == pytest.approx(0.010)
    assert s2.amplitude_a.max() == pytest.approx(0.022)
    assert s5.amplitude_a.max() == pytest.approx(0.024)  # capped at 1.2


def test_relative_amplitude_needs_patient_thresholds(base_doc, measured_patient):
    base_doc["phases"][0]["stimulation"][0]["amplitude"] = {"relative_to": "motor_threshold", "factor": 1.5}
    p = loads(as_json(base_doc))
    with pytest.raises(ProgramError, match="needs a patient"):
        compile(p)
    tr = compile(p, measured_patient)
    assert tr.amplitude_a.max() == pytest.approx(1.5 * 0.024)  # 24 mA measured at 300 µs, left side
    p2 = loads(as_json(base_doc).replace('"lumbar_erector_spinae"', '"gluteus_maximus"'))
    with pytest.raises(ProgramError, match="no motor_threshold measured at gluteus_maximus"):
        compile(p2, measured_patient)


def test_weiss_law_carries_threshold_to_another_pulse_width(base_doc, measured_patient):
    s = base_doc["phases"][0]["stimulation"][0]
    s["amplitude"] = {"relative_to": "motor_threshold", "factor": 1.0}
    s["waveform"]["pulse_width_us"] = 150
    tr = compile(loads(as_json(base_doc)), measured_patient)
    rheobase = 24 / (1 + 459 / 300)
    assert tr.amplitude_a.max() * 1e3 == pytest.approx(rheobase * (1 + 459 / 150))


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_examples_compile_sorted_and_balanced(path, measured_patient):
    tr = compile(load(path), measured_patient)
    for c in range(len(tr.channel_ids)):
        assert np.all(np.diff(tr.t_s[tr.channel_slice(c)]) > 0)
    assert np.all(tr.t_s < tr.duration_s)
    assert np.all(np.abs(tr.net_charge_c()) <= 0.01 * tr.phase_charge_c() + 1e-15)


def test_memory_is_proportional_to_pulses(base_doc):
    base_doc["phases"][0]["stimulation"][0].update(on_s=60, off_s=0, ramp_up_s=0, ramp_down_s=0)
    tr = _train(base_doc)
    assert tr.nbytes <= 28 * tr.n_pulses + 64
