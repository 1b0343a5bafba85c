"""Device quantisation: steps, shared periods and the report."""

import numpy as np
import pytest

from emsim.testing.documents import as_json, channel, stim
from emsim.program import compile, loads
from emsim.program.device_profile import device_profile
from emsim.program.quantise import quantise


def test_rehastim2_steps_and_shared_period(base_doc):
    base_doc["channels"].append(channel("B", side="right"))
    ph = base_doc["phases"][0]
    ph["stimulation"][0].update(frequency_hz=85, amplitude={"ma": 41.3})
    ph["stimulation"].append(stim("B", frequency_hz=42.5))
    tr = compile(loads(as_json(base_doc)))
    q, report = quantise(tr, "rehastim2")
    assert report.ok, report.problems
    f = {b.channel: b.device_frequency_hz for b in report.blocks}
    assert f["A"] == pytest.approx(1000 / 12.0)            # t1 = 1 + 0.5 k ms -> 12 ms
    assert f["B"] == pytest.approx(1000 / 24.0)            # low-frequency factor 1 (every 2nd period)
    assert np.allclose(np.round(q.amplitude_a * 1e3 / 2) * 2, q.amplitude_a * 1e3)
    assert report.max_amplitude_error_ma <= 1.0 + 1e-9
    a = q.t_s[q.channel_slice("A")]
    on = a[a < 5]
    assert np.allclose(np.diff(on), 0.012)


def test_unrepresentable_settings_are_reported(base_doc):
    base_doc["phases"][0]["stimulation"][0]["pattern"] = {"type": "variable_frequency", "onset_intervals_ms": [5]}
    base_doc["phases"][0]["stimulation"][0]["frequency_hz"] = 150
    _, report = quantise(compile(loads(as_json(base_doc))), "rehastim2")
    assert not report.ok
    text = " ".join(report.problems)
    assert "variable_frequency" in text and "150 Hz" in text


def test_p24_and_generic_keep_frequencies_close(base_doc):
    base_doc["phases"][0]["stimulation"][0]["frequency_hz"] = 85
    tr = compile(loads(as_json(base_doc)))
    for dev in ("p24", "generic"):
        _, report = quantise(tr, dev)
        assert report.ok
        assert abs(report.blocks[0].frequency_error) < 0.002
    assert device_profile("p24").current_ma.step == 0.5
