"""The Design tab's "× motor threshold" amplitude: offered where the patient has a measured motor
threshold at the channel's site and side, written as the format's relative amplitude, and
resolved for the patient exactly as compiling does (emsim.program.resolve.resolve_amplitude)."""

import pytest

pytest.importorskip("panel")

from apps.channel_settings import ChannelSettings  # noqa: E402
from apps.design_view import DesignView  # noqa: E402
from apps.store import PATIENT_DIR, WorkbenchStore  # noqa: E402
from emsim.program import compile as compile_program  # noqa: E402
from emsim.program import from_dict  # noqa: E402
from emsim.program.model import RelativeAmplitude  # noqa: E402
from emsim.program.resolve import resolve_amplitude, session_factors  # noqa: E402

pytestmark = pytest.mark.ui
REL, ABS = ChannelSettings.RELATIVE, ChannelSettings.ABSOLUTE


def _main(doc):
    return next(ph for ph in doc["phases"] if ph["kind"] == "main")["stimulation"]


def _resolved_ma(store, chan):
    program = from_dict(store.program_dict())
    st = next(s for ph in program.phases if ph.kind == "main" for s in ph.stimulation if s.channel == chan.channel_id)
    return resolve_amplitude(st, chan.site, chan.side, store.patient).ma


def test_offered_only_where_a_motor_threshold_is_measured(measured_store):
    es_l = measured_store.channels[0]
    assert es_l.param["amplitude_mode"].objects == [ABS, REL]
    assert "amplitude_mode" in es_l.active_controls()
    bare = WorkbenchStore(auto_predict=False)
    assert bare.channels[0].param["amplitude_mode"].objects == [ABS]
    assert "amplitude_mode" not in bare.channels[0].active_controls()
    es_l.site = "gluteus_maximus"  # nothing measured there
    assert es_l.param["amplitude_mode"].objects == [ABS]


def test_switching_keeps_the_current_and_writes_a_relative_amplitude(measured_store):
    es_l = measured_store.channels[0]
    es_l.amplitude_ma = 36.0
    es_l.amplitude_mode = REL
    assert es_l.amplitude_factor == pytest.approx(36.0 / 24.0)  # ES-L motor threshold 24 mA at 300 µs
    assert es_l.amplitude_ma == pytest.approx(36.0)
    assert "amplitude_factor" in es_l.active_controls() and "amplitude_ma" not in es_l.active_controls()
    doc = measured_store.program_dict()
    assert _main(doc)[0]["amplitude"] == {"relative_to": "motor_threshold", "factor": es_l.amplitude_factor}
    warm = next(ph for ph in doc["phases"] if ph["kind"] == "warm_up")["stimulation"][0]["amplitude"]
    assert warm["factor"] == pytest.approx(es_l.amplitude_factor * measured_store.warm_up_amplitude_pct / 100.0)


def test_the_current_shown_is_what_compiling_delivers(measured_store):
    es_l = measured_store.channels[0]
    es_l.amplitude_mode = REL
    es_l.amplitude_factor = 1.8
    es_l.pulse_width_us = 200.0  # the threshold was measured at 300 µs: the Weiss law carries it
    expected = _resolved_ma(measured_store, es_l)
    assert expected > 1.8 * 24.0  # a shorter pulse needs more current
    assert es_l.amplitude_ma == pytest.approx(expected)
    program = measured_store.program()
    train = compile_program(program, measured_store.patient)
    intensity, _ = session_factors(program.schedule, 1)
    plateau = train.amplitude_a[train.channel_slice("ES-L")].max() * 1e3
    assert plateau == pytest.approx(expected * intensity, rel=1e-6)


def test_a_patient_without_the_threshold_falls_back_to_ma(measured_store):
    es_l = measured_store.channels[0]
    es_l.amplitude_mode = REL
    es_l.amplitude_factor = 1.5
    current = es_l.amplitude_ma
    measured_store.load_patient_file(PATIENT_DIR / "lbp_average.json")
    assert es_l.amplitude_mode == ABS and es_l.amplitude_ma == pytest.approx(current)
    assert _main(measured_store.program_dict())[0]["amplitude"] == {"ma": pytest.approx(current)}


def test_a_relative_program_applies_as_relative(measured_store):
    doc = measured_store.program_dict()
    _main(doc)[1]["amplitude"] = {"relative_to": "motor_threshold", "factor": 2.0}
    assert measured_store.apply_program(from_dict(doc)), measured_store.program_error
    es_r = measured_store.channels[1]
    assert es_r.amplitude_mode == REL and es_r.amplitude_factor == 2.0
    assert es_r.amplitude_ma == pytest.approx(2.0 * 26.0)  # ES-R motor threshold 26 mA at 300 µs
    amp = from_dict(measured_store.program_dict()).phases[1].stimulation[1].amplitude
    assert isinstance(amp, RelativeAmplitude) and amp.factor == 2.0


def test_the_mode_control_is_rendered(measured_store):
    import panel as pn
    from bokeh.document import Document

    view = DesignView(store=measured_store)
    chan = measured_store.channels[0]
    chan.amplitude_mode = REL
    controls = view._controls(chan)
    assert "amplitude_factor" in controls.parameters and "amplitude_ma" not in controls.parameters
    assert pn.panel(controls).get_root(Document()) is not None
