"""Logic tests of the Optimise tab (no server, no browser): problem set-up, background search,
cancel, picking, comparing and choosing a Pareto member."""

import numpy as np
import pytest

pytest.importorskip("panel")

from apps.optimise_view import MAX_COMPARE, OptimiseView  # noqa: E402
from apps.store import PATIENT_DIR, WorkbenchStore  # noqa: E402
from emsim.optimise._result import pareto_mask  # noqa: E402
from emsim.optimise.testing import surrogate_evaluate_batch  # noqa: E402
from emsim.program.model import AbsoluteAmplitude, RelativeAmplitude  # noqa: E402

pytestmark = pytest.mark.ui


@pytest.fixture
def store(measured_store):
    return measured_store


@pytest.fixture(scope="module")
def searched():
    """One short real search (60 s preview, 16 evaluations), shared by the picking tests."""
    s = WorkbenchStore(auto_predict=False)
    s.load_patient_file(PATIENT_DIR / "example_measured.json")
    view = OptimiseView(store=s, budget=16, batch_size=8, seed=3)
    assert view.start()
    assert view.wait(180), "the search did not finish in 180 s"
    return view


def test_without_a_patient_the_search_does_not_start():
    view = OptimiseView(store=WorkbenchStore(auto_predict=False))
    assert not view.start()
    assert "Cannot optimise" in view.status and "patient" in view.status
    assert not view.running


def test_problem_follows_the_controls(store):
    view = OptimiseView(store=store, objectives=["mean_mvc_pct", "peak_discomfort_nrs"], limit_discomfort=True,
                        max_discomfort_nrs=5.5, device="generic")
    problem = view.build_problem()
    assert problem.objective_names == ("mean_mvc_pct", "peak_discomfort_nrs")
    assert problem.max_discomfort_nrs == 5.5 and problem.device == "generic" and problem.max_session_s is None
    assert problem.space.template.phases[0].duration_s == 60.0  # the quick preview
    # a patient with measured thresholds: amplitudes relative to the motor threshold
    assert all(isinstance(st.amplitude, RelativeAmplitude) for st in problem.space.template.phases[0].stimulation)


def test_robust_mode_adds_a_virtual_cohort_with_absolute_currents(store):
    view = OptimiseView(store=store, robust=True, cohort_size=4, statistic="worst patient")
    problem = view.build_problem()
    assert len(problem.patients) == 5 and problem.patients[0] is store.patient
    assert problem.statistic == "worst"
    assert all(isinstance(st.amplitude, AbsoluteAmplitude) for st in problem.space.template.phases[0].stimulation)


def test_contradictory_limits_are_reported_not_raised(store):
    view = OptimiseView(store=store, objectives=[])
    assert not view.start()
    assert "objective" in view.status


def test_search_runs_in_the_background_and_fills_the_front(searched):
    res = searched.result
    assert res is not None and not searched.running
    assert searched.n_done == res.n_complete == 16 and searched.n_total == 16
    assert "Pareto-optimal" in searched.status
    # the members shown are mutually non-dominated
    assert pareto_mask(res.front(), res.problem.directions).all()
    assert searched.pick == searched.param.pick.objects[0]


def test_picking_gives_the_members_traces_and_program(searched):
    label = searched.param.pick.objects[-1]
    searched.select_index(len(searched.param.pick.objects) - 1)  # what a tap on the plot does
    assert searched.pick == label
    pred = searched.traces(label)
    cand = searched.candidate(label)
    assert pred.program is cand.program and pred.mvc_pct.shape[0] == 2
    # the traces' outcome is the value the optimiser scored (same evaluator, same program)
    assert pred.scalars["mean_mvc_pct"] == pytest.approx(cand.values["mean_mvc_pct"], rel=1e-6)
    text = searched.member_summary(label)
    assert label in text and "ES-L" in text and "ES-R" in text


def test_compare_keeps_at_most_three(searched):
    labels = list(searched.param.compare.objects)
    searched.compare = labels[:MAX_COMPARE]
    assert searched.wait(120)
    assert all(searched.traces(x) is not None for x in searched.compare)
    view = OptimiseView(store=WorkbenchStore(auto_predict=False))
    view.param.compare.objects = ["a", "b", "c", "d"]
    view.compare = ["a", "b", "c", "d"]
    assert view.compare == ["b", "c", "d"]  # the latest three


def test_use_this_program_makes_it_the_chosen_one(searched):
    searched.pick = searched.param.pick.objects[0]
    searched.param.trigger("use")
    assert searched.chosen is searched.candidate(searched.pick).program
    assert searched.pick in searched.chosen_label


def test_cancel_stops_after_the_batch_in_flight(store):
    view = OptimiseView(store=store, budget=40, batch_size=4)

    def evaluator(*args, **kwargs):  # the user presses Cancel while the first batch is evaluated
        view.param.trigger("cancel")
        return surrogate_evaluate_batch(*args, **kwargs)

    problem = view.build_problem()
    problem.evaluator = evaluator
    view.build_problem = lambda: problem
    assert view.start()
    assert view.wait(60)
    assert view.result is not None and view.result.n_complete == 4 < 40
    assert "cancelled" in view.status


def test_renders_and_a_tap_on_the_front_picks(searched):
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    assert searched.wait(120)  # no traces landing (and re-rendering) while this thread renders
    root = pn.panel(searched).get_root(Document(), comm=Comm())
    assert root.ref["id"]
    searched._front_plot()  # the plot (and its tap stream) for the current front
    n = len(searched.param.pick.objects)
    searched._tap.event(index=[n - 1])
    assert searched.pick == searched.param.pick.objects[n - 1]
    values = np.array([searched.candidate(x).values[searched.objectives[0]] for x in searched.param.pick.objects])
    assert np.all(np.isfinite(values))
