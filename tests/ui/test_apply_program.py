""""Use this program": a program (an optimiser's Pareto member or any program file) taken into the
design, or refused whole when the design controls cannot represent it."""

import json

import pytest

pytest.importorskip("panel")

from apps.optimise_view import OptimiseView  # noqa: E402
from apps.store import PATIENT_DIR, WorkbenchStore  # noqa: E402
from emsim.body.resolved_program import resolve_program  # noqa: E402
from emsim.optimise.testing import surrogate_evaluate_batch  # noqa: E402
from emsim.program import from_dict, loads  # noqa: E402

pytestmark = pytest.mark.ui


def _main(program):
    return next(ph for ph in program.phases if ph.kind == "main")


def _stimulation(program):
    return [st.model_dump(mode="json") for st in _main(program).stimulation]


@pytest.fixture
def store():
    s = WorkbenchStore(auto_predict=False)
    s.load_patient_file(PATIENT_DIR / "example_measured.json")
    s.param.update(main_s=120.0, warm_up_s=30.0, cool_down_s=30.0)  # short sessions: quick to export
    return s


@pytest.fixture
def searched(store):
    """A search on the surrogate evaluator (fast): its members are real programs of the design space."""
    view = OptimiseView(store=store, budget=16, batch_size=8, seed=5)
    problem = view.build_problem()
    problem.evaluator = surrogate_evaluate_batch
    view.build_problem = lambda: problem
    assert view.start() and view.wait(60)
    assert len(view.param.pick.objects) >= 1
    return view


def test_use_this_program_reaches_the_design_and_the_export(searched, store):
    searched.pick = searched.param.pick.objects[-1]
    searched.param.trigger("use")
    chosen = searched.chosen
    assert chosen is searched.candidate(searched.pick).program
    assert store.program_error == "" and "Design tab" in searched.status
    # the optimiser's amplitudes are relative to the motor threshold, which this patient has at
    # both sites: the design keeps them relative and its mA controls show what they mean
    designed = from_dict(store.program_dict())
    assert _stimulation(designed) == _stimulation(chosen)
    assert all(c.amplitude_mode == "× motor threshold" for c in store.channels)
    resolved, _ = resolve_program(chosen, store.patient)
    resolved_ma = {st.channel: st.amplitude.ma for st in _main(resolved).stimulation}
    assert {c.channel_id: c.amplitude_ma for c in store.channels} == pytest.approx(resolved_ma)
    assert [c.model_dump() for c in designed.channels] == [c.model_dump() for c in chosen.channels]
    # the session keeps the design's phase lengths around the chosen stimulation
    assert [ph.kind for ph in designed.phases] == ["warm_up", "main", "cool_down"]
    assert _main(designed).duration_s == 120.0
    bundle = store.export_bundle()
    assert bundle.program_text is not None, bundle.safety
    assert _stimulation(loads(bundle.program_text)) == _stimulation(chosen)


def test_absolute_program_round_trips_every_control():
    store = WorkbenchStore(auto_predict=False, device="generic")
    doc = store.program_dict()
    doc["channels"] = doc["channels"][:1]
    doc["channels"][0].update(site="gluteus_medius", side="right", spacing_cm=6.0,
                              electrodes=[{"shape": "circle", "diameter_cm": 5}] * 2)
    main = next(ph for ph in doc["phases"] if ph["kind"] == "main")
    main["stimulation"] = [dict(main["stimulation"][0], frequency_hz=35.0, amplitude={"ma": 42.5}, on_s=6.0,
                                off_s=12.0, ramp_up_s=1.5, ramp_down_s=0.5,
                                waveform={"shape": "asymmetric_biphasic", "pulse_width_us": 250.0,
                                          "interphase_gap_us": 50.0, "secondary_amplitude_ratio": 0.6},
                                pattern={"type": "variable_frequency", "onset_intervals_ms": [6.0]})]
    doc["phases"] = [main]
    program = from_dict(doc)
    assert store.apply_program(program), store.program_error
    assert store.n_channels == 1 and len(store.channels) == 1
    chan = store.channels[0]
    assert (chan.site, chan.side, chan.electrode, chan.waveform, chan.pattern) == (
        "gluteus_medius", "right", "round 5 cm", "asymmetric_biphasic", "variable_frequency")
    assert _stimulation(store.program()) == _stimulation(program)


def _edited(store, edit):
    doc = json.loads(json.dumps(store.program_dict()))
    edit(doc)
    return from_dict(doc)


def _main_stim(doc):
    return next(ph for ph in doc["phases"] if ph["kind"] == "main")["stimulation"]


@pytest.mark.parametrize("edit, path", [
    (lambda d: _main_stim(d)[0].update(amplitude={"ma": 150.0}), "amplitude"),  # above RehaStim 2's range
    (lambda d: d["channels"][0].update(electrodes=[{"shape": "rectangle", "width_cm": 4, "length_cm": 4}] * 2),
     "electrodes"),
    (lambda d: d.update(json.loads(json.dumps(d).replace('"ES-L"', '"X-1"'))), "channels"),
    (lambda d: _main_stim(d)[0].update(pattern={"type": "variable_frequency", "onset_intervals_ms": [5.0, 8.0]}),
     "pattern"),  # RehaStim 2 has no variable-frequency pattern
    (lambda d: d["channels"][0].update(orientation="across_fibres"), "orientation"),
])
def test_what_the_controls_cannot_represent_is_refused_whole(store, edit, path):
    before = store.program_dict()
    assert not store.apply_program(_edited(store, edit))
    assert path in store.program_error
    assert store.program_dict() == before


def test_relative_amplitudes_need_a_patient():
    store = WorkbenchStore(auto_predict=False)
    program = _edited(store, lambda d: _main_stim(d)[0].update(
        amplitude={"relative_to": "motor_threshold", "factor": 1.5}))
    assert not store.apply_program(program)
    assert "patient" in store.program_error
