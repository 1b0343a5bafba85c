"""DesignSpace: vector → program → vector is exact; bad bounds are typed errors."""

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from emsim.errors import OptimiseError
from emsim.optimise import DesignSpace, lumbar_template
from emsim.program.io import dumps, loads


def _grid_vector(space, data):
    x = {}
    for v in space.variables:
        if v.categorical:
            x[v.name] = data.draw(st.sampled_from(v.choices), label=v.name)
        else:
            x[v.name] = data.draw(st.floats(v.low, v.high, allow_nan=False), label=v.name)
    return space.snap(x)


@pytest.fixture(scope="module")
def rehastim_space():
    from emsim.body import load_patient
    from emsim.testing.documents import PATIENTS

    return DesignSpace.from_template(lumbar_template(load_patient(PATIENTS / "example_measured.json")),
                                     device="rehastim2")


@pytest.fixture(scope="module")
def wide_space():
    """Absolute amplitudes, a device without a shared period, every categorical field."""
    return DesignSpace.from_template(
        lumbar_template(None, sites=("lumbar_erector_spinae", "lumbar_multifidus")), device="generic",
        fields=("frequency_hz", "pulse_width_us", "amplitude", "on_s", "off_s", "ramp_up_s", "ramp_down_s",
                "duration_s", "waveform", "pattern", "electrode"),
        choices={"electrode": ["5x5", "5x9", "8x13"]})


def test_default_space_has_the_issue_variables(rehastim_space):
    names = rehastim_space.names
    assert len(names) >= 8
    assert "frequency_hz" in names  # one shared period on the RehaStim 2
    for ch in ("ES-L", "ES-R"):
        for f in ("pulse_width_us", "amplitude_factor", "on_s", "off_s", "ramp_up_s", "ramp_down_s", "pattern"):
            assert f"{ch}.{f}" in names


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_vector_program_vector(rehastim_space, data):
    x = _grid_vector(rehastim_space, data)
    program = rehastim_space.to_program(x)
    assert rehastim_space.from_program(program) == x
    # and through the file format: the text written and read back is the same vector
    assert rehastim_space.from_program(loads(dumps(program))) == x


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_round_trip_with_categoricals_and_absolute_amplitude(wide_space, data):
    x = _grid_vector(wide_space, data)
    try:
        program = wide_space.to_program(x)
    except Exception as exc:  # the format may refuse a combination (e.g. doublets at a high rate)
        from emsim.errors import ProgramError
        assert isinstance(exc, ProgramError)
        return
    back = wide_space.from_program(loads(dumps(program)))
    assert back == x
    assert wide_space.to_program(back) == program


def test_snap_is_idempotent_and_on_grid(rehastim_space):
    x = {v.name: (v.choices[-1] if v.categorical else v.low + 0.37 * (v.high - v.low)) for v in rehastim_space.variables}
    once = rehastim_space.snap(x)
    assert rehastim_space.snap(once) == once
    f = once["frequency_hz"]
    period_ms = 1000.0 / f
    assert abs((period_ms - 1.0) / 0.5 - round((period_ms - 1.0) / 0.5)) < 1e-9  # RehaStim 2 period grid


def test_template_program_is_in_the_space(rehastim_space):
    x = rehastim_space.from_program(rehastim_space.template)
    assert x["frequency_hz"] == 50.0 and x["ES-L.pulse_width_us"] == 300.0


def test_program_outside_the_space_is_refused(rehastim_space):
    data = rehastim_space.template.model_dump(mode="json", exclude_none=True)
    data["channels"][0]["spacing_cm"] = 7  # not a design variable
    from emsim.program.io import from_dict
    with pytest.raises(OptimiseError, match="outside the design variables"):
        rehastim_space.from_program(from_dict(data))
    data = rehastim_space.template.model_dump(mode="json", exclude_none=True)
    data["phases"][0]["stimulation"][0]["waveform"]["pulse_width_us"] = 301.5  # off the 10 µs grid
    with pytest.raises(OptimiseError, match="not on the design grid"):
        rehastim_space.from_program(from_dict(data))


@pytest.mark.parametrize("kwargs, match", [
    ({"bounds": {"on_s": (10, 5)}}, "low above high"),
    ({"bounds": {"pulse_width_us": (100, 900)}}, "outside what the format and device allow"),
    ({"bounds": {"on_s": (2, 3), "ramp_up_s": (2.75, 3)}}, "contradictory bounds"),
    ({"fields": ["frequency_hz", "colour"]}, "unknown design field"),
    ({"bounds": {"off_sec": (1, 2)}}, "not varied"),
    ({"fields": ["waveform"], "choices": {"waveform": ["asymmetric_biphasic"]}}, "no waveform choice is left"),
])
def test_bad_bounds_are_typed_errors(kwargs, match):
    with pytest.raises(OptimiseError, match=match) as info:
        DesignSpace.from_template(lumbar_template(None), device="rehastim2", **kwargs)
    assert info.value.path  # names the field


def test_vector_with_unknown_or_missing_variable(rehastim_space):
    x = rehastim_space.from_program(rehastim_space.template)
    with pytest.raises(OptimiseError, match="unknown decision variable"):
        rehastim_space.snap(dict(x, extra=1.0))
    x.pop("frequency_hz")
    with pytest.raises(OptimiseError, match="lacks a variable"):
        rehastim_space.snap(x)
