"""Logic tests of the Simulate tab (no server, no browser): validation before play, pause, intensity,
emergency stop, the audit log view and the delivered-pulse envelope."""

import time
from types import SimpleNamespace

import numpy as np
import pytest

pytest.importorskip("panel")

from apps.optimise_view import OptimiseView  # noqa: E402
from apps.simulate_view import SOURCES, SimulateView, delivered_envelope  # noqa: E402
from apps.store import PATIENT_DIR, WorkbenchStore  # noqa: E402
from emsim.devices import StimulatorState  # noqa: E402
from emsim.devices.audit import read_events  # noqa: E402
from emsim.optimise import lumbar_template  # noqa: E402

pytestmark = pytest.mark.ui


@pytest.fixture
def store(measured_store):
    return measured_store


def _until(cond, timeout=30.0):
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def test_unsafe_program_is_refused_and_nothing_plays():
    s = WorkbenchStore(auto_predict=False)
    s.load_patient_file(PATIENT_DIR / "example_pacemaker.json")  # absolute contraindication
    view = SimulateView(store=s)
    assert not view.start_session()
    assert "Refused by the validator" in view.message and not view.running
    kinds = [(e["kind"], (e["decoded"] or {}).get("ok")) for e in read_events(view.audit_path)]
    assert ("validator", False) in kinds
    assert not any(k == "state" and "running" in str(e) for k, e in kinds)
    assert "REFUSED" in view.audit_text


def test_nothing_to_play_when_every_channel_is_off(store):
    for c in store.channels:
        c.enabled = False
    view = SimulateView(store=store)
    assert not view.start_session()
    assert "every channel" in view.message


def test_pause_intensity_and_emergency_stop(store):
    view = SimulateView(store=store, speed="10×")
    assert view.start_session()
    sim = view.sim
    assert _until(lambda: sim.delivered().n_pulses > 0)
    view.toggle_pause()
    assert sim.state is StimulatorState.PAUSED
    view.toggle_pause()
    assert sim.state is StimulatorState.RUNNING
    before = [c.level_ma for c in sim.status().channels]
    view.lower_intensity()
    after = [c.level_ma for c in sim.status().channels]
    assert all(a < b for a, b in zip(after, before))
    view.raise_intensity()
    assert [c.level_ma for c in sim.status().channels] == pytest.approx(before)
    view.param.trigger("estop")
    n = sim.delivered().n_pulses
    assert sim.state is StimulatorState.STOPPED and sim.emergency_stopped
    assert view.wait(120) and not view.running
    assert sim.delivered().n_pulses == n  # nothing delivered after the stop returned
    assert "State: stopped" in view.state_text and "emergency stop button" in view.state_text
    assert "EMERGENCY STOP: emergency stop button in the workbench" in view.audit_text
    for action in ("pause", "resume", "set_intensity"):
        assert f"operator   {action}" in view.audit_text
    # the traces are those of the pulses actually delivered
    t, amp = view._live
    assert amp.shape[0] == 2 and amp.max() <= max(before) + 1e-9 and t[-1] <= sim.status().elapsed_s + 1.0


def test_plays_the_chosen_pareto_program_to_the_end(store):
    opt = OptimiseView(store=store)
    opt.chosen = lumbar_template(store.patient, duration_s=20.0)
    view = SimulateView(store=store, optimise=opt, source=SOURCES[1], speed="as fast as possible")
    assert view.start_session()
    assert view.wait(120)
    status = view.sim.status()
    assert status.stop_cause == "program completed"
    assert status.program_s == pytest.approx(view.sim.plan.duration_s)
    assert view._physiology is not None and view._physiology.mvc_pct.shape[0] == 2
    # the live plots got the final traces of both channels
    force = view._pipes["force"].data
    assert set(force["ys"]) == {"ES-L", "ES-R"} and len(force["t"]) == len(force["ys"]["ES-L"]) > 0
    assert max(v.max() for v in force["ys"].values()) > 0


def test_chosen_source_without_a_choice_says_so(store):
    view = SimulateView(store=store, optimise=OptimiseView(store=store), source=SOURCES[1])
    assert not view.start_session()
    assert "Use this program" in view.message


def test_delivered_envelope_takes_the_peak_per_bin():
    d = SimpleNamespace(channel_ids=("A", "B"), duration_s=1.0, n_pulses=4, t_s=np.array([0.05, 0.06, 0.55, 0.95]),
                        channel=np.array([0, 0, 1, 0]), amplitude_a=np.array([0.010, 0.020, 0.030, 0.005]))
    t, amp = delivered_envelope(d, bin_s=0.5)
    np.testing.assert_allclose(t, [0.25, 0.75])
    np.testing.assert_allclose(amp, [[20.0, 5.0], [0.0, 30.0]])


def test_renders_to_a_bokeh_model(store):
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    root = pn.panel(SimulateView(store=store)).get_root(Document(), comm=Comm())
    assert root.ref["id"]
