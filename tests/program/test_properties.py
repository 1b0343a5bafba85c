"""Property tests: the loader only ever raises ProgramError, and whatever the validator
accepts respects charge balance and the density limits, checked on the compiled pulses."""

import copy
import json
import math

import numpy as np
from hypothesis import HealthCheck, given, settings, strategies as st

from emsim.testing.documents import BASE_DOC, PROGRAMS
from emsim.errors import ProgramError
from emsim.program import compile, from_dict, loads
from emsim.program import waveform as wf
from emsim.safety import check

EXAMPLES = [json.loads(p.read_text()) for p in PROGRAMS]
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**12, 10**12) | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=12), children, max_size=4),
    max_leaves=12)


def _paths(obj, prefix=()):
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


@SETTINGS
@given(doc_index=st.integers(0, len(EXAMPLES) - 1), data=st.data(), value=json_values,
       action=st.sampled_from(["replace", "delete", "add"]))
def test_mutated_examples_raise_only_program_error(doc_index, data, value, action):
    doc = copy.deepcopy(EXAMPLES[doc_index])
    paths = [p for p in _paths(doc) if p]
    path = data.draw(st.sampled_from(paths))
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if action == "replace":
        parent[path[-1]] = value
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.text(min_size=1, max_size=10))] = value
    else:
        parent.append(value)
    try:
        text = json.dumps(doc, allow_nan=True)
        program = loads(text)
    except ProgramError:
        return
    compile(program) if not _relative(program) else None


def _relative(program):
    return any(s.amplitude.__class__.__name__ == "RelativeAmplitude" for ph in program.phases for s in ph.stimulation)


@SETTINGS
@given(st.binary(max_size=300) | st.text(max_size=300))
def test_random_bytes_raise_only_program_error(blob):
    try:
        loads(blob)
    except ProgramError:
        pass


waveforms = st.one_of(
    st.builds(lambda pw, g: {"shape": "symmetric_biphasic", "pulse_width_us": pw, "interphase_gap_us": g},
              st.floats(10, 1000), st.floats(0, 500)),
    st.builds(lambda pw, r: {"shape": "asymmetric_biphasic", "pulse_width_us": pw, "interphase_gap_us": 50,
                             "secondary_amplitude_ratio": r}, st.floats(10, 1000), st.floats(0.1, 1)),
    st.builds(lambda pw, w, r: {"shape": "monophasic", "pulse_width_us": pw,
                                "balance": {"delay_us": 50, "width_us": w, "amplitude_ratio": r}},
              st.floats(10, 1000), st.floats(10, 10000), st.floats(0.01, 1)),
    st.builds(lambda c, d, s: {"shape": "khz_burst", "carrier_hz": c, "burst_duration_ms": d, "carrier_shape": s},
              st.floats(1000, 10000), st.floats(0.25, 10), st.sampled_from(["sine", "rectangular"])),
)


@SETTINGS
@given(w=waveforms, f=st.floats(1, 150), ma=st.floats(0, 150), side=st.floats(1, 12),
       on=st.floats(0.5, 10), off=st.floats(0, 10))
def test_accepted_programs_respect_charge_and_density(w, f, ma, side, on, off):
    doc = copy.deepcopy(BASE_DOC)
    doc["channels"][0]["electrodes"] = [{"shape": "rectangle", "width_cm": side, "length_cm": side}] * 2
    doc["phases"][0]["stimulation"][0].update(waveform=w, frequency_hz=f, amplitude={"ma": ma}, on_s=on, off_s=off,
                                              ramp_up_s=0, ramp_down_s=0)
    try:
        program = from_dict(doc)
    except ProgramError:
        return
    if not check(program, None, None).ok:
        return
    train = compile(program)
    if train.n_pulses == 0:
        return
    # Charge balance, from the compiled pulses.
    assert np.all(np.abs(train.net_charge_c()) <= 0.01 * train.phase_charge_c() * (1 + 1e-9))
    # r.m.s. current density over any 1 s of delivery, from the pulse times and shapes.
    sq = wf.square_integral_s(program.phases[0].stimulation[0].waveform)
    t = train.t_s
    window = min(on, 1.0)
    counts = np.searchsorted(t, t + window - 1e-9) - np.arange(t.size)
    i_rms = train.amplitude_a.max() * math.sqrt(counts.max() / window * sq)
    area = side * side
    assert i_rms * 1e3 / area <= 2.0 * (1 + 1e-6)
