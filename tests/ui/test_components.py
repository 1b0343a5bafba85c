"""Logic tests of the workbench components, without a server or a browser."""

import json

import pytest

pytest.importorskip("panel")

from apps.design_view import MAX_PLOT_POINTS, summary_text  # noqa: E402
from apps.program_text import decimate  # noqa: E402
from apps.limits import channel_limits  # noqa: E402
from apps.store import MAX_UPLOAD_BYTES, PATIENT_DIR, ChannelSettings, WorkbenchStore  # noqa: E402
from emsim.program import loads  # noqa: E402
from emsim.program.device_profile import device_profile  # noqa: E402

pytestmark = pytest.mark.ui


def test_hard_bounds_are_the_device_limits():
    prof = device_profile("rehastim2")
    chan = ChannelSettings.for_device("rehastim2", channel_id="X", amplitude_ma=500.0)
    assert chan.param["amplitude_ma"].bounds == (0.0, prof.current_ma.max)
    assert chan.amplitude_ma == prof.current_ma.max  # clipped into the device range
    lo, hi = chan.param["frequency_hz"].bounds
    assert hi == pytest.approx(1000.0 / prof.period_ms.min)
    with pytest.raises(ValueError):
        chan.amplitude_ma = prof.current_ma.max + 1
    # Soft bounds (the slider's first view) lie inside the hard ones.
    for name, (s_lo, s_hi) in channel_limits("rehastim2").soft.items():
        h_lo, h_hi = chan.param[name].bounds
        assert h_lo <= s_lo <= s_hi <= h_hi and (s_lo < s_hi or h_lo == h_hi)  # a device may fix a value


def test_bounds_are_per_instance():
    a = ChannelSettings.for_device("rehastim2", channel_id="A")
    b = ChannelSettings.for_device(None, channel_id="B")
    assert a.param["amplitude_ma"].bounds != b.param["amplitude_ma"].bounds


def test_device_change_rebuilds_channels_with_new_limits(store):
    store.device = "generic"
    store.channels[0].amplitude_ma = 140.0  # legal on the generic device, above rehastim2's maximum
    store.device = "rehastim2"
    assert store.channels[0].amplitude_ma == device_profile("rehastim2").current_ma.max
    store.n_channels = 1
    assert [c.channel_id for c in store.channels] == ["ES-L"]


def test_program_follows_the_controls(store):
    store.channels[0].param.update(frequency_hz=35.0, amplitude_ma=22.0)
    store.channels[1].enabled = False
    program = store.program(60.0)
    (phase,) = program.phases
    assert phase.duration_s == 60.0
    (stim,) = phase.stimulation
    assert (stim.channel, stim.frequency_hz, stim.amplitude.ma) == ("ES-L", 35.0, 22.0)
    for c in store.channels:
        c.enabled = False
    assert store.program() is None


def test_shipped_patient_loads_and_bad_uploads_are_refused(store):
    assert store.load_patient_file(PATIENT_DIR / "example_measured.json")
    assert store.patient.id and store.patient_error == ""
    before = store.patient
    assert not store.load_patient_bytes(b"{not json", "bad.json")
    assert store.patient is before and store.patient_error
    assert not store.load_patient_bytes(b" " * (MAX_UPLOAD_BYTES + 1), "big.json")
    assert "too large" in store.patient_error and store.patient is before


def test_blocking_contraindication_is_marked_and_blocks_export(store):
    store.load_patient_file(PATIENT_DIR / "example_pacemaker.json")
    found = store.contraindications()
    assert found and found[0]["blocking"] and found[0]["id"] == "active_implant"
    text, report = store.export()
    assert text is None and not report.ok


def test_calibration_uses_the_measured_thresholds(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    rows = store.calibrations()
    assert len(rows) == 2 and all(r["fit"] for r in rows)
    store.load_patient_file(PATIENT_DIR / "lbp_average.json")
    assert all(not r["fit"] and r["motor_gain"] == 1.0 for r in store.calibrations())


def test_prediction_changes_with_amplitude(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    store.session = 3  # past the template's shortened first sessions
    store.channels[0].amplitude_ma = 20.0
    low = store.predict_now()
    store.channels[0].amplitude_ma = 40.0
    high = store.predict_now()
    assert high.scalars["peak_mvc_pct"] > low.scalars["peak_mvc_pct"]
    assert high.t_s[-1] == pytest.approx(60.0, abs=1.0)


def test_debounced_background_prediction_lands_once():
    store = WorkbenchStore(debounce_s=0.2)
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    for amp in (20.0, 24.0, 28.0):  # a slider drag: only the last value is evaluated
        store.channels[0].amplitude_ma = amp
    assert store.wait(60)
    assert store.updates == 2 and not store.busy  # the preview, then the full session
    assert store.prediction_stage == "full"
    assert {s.amplitude.ma for ph in store.prediction.program.phases for s in ph.stimulation
            if s.channel == "ES-L" and ph.kind == "main"} == {28.0}
    assert summary_text(store).startswith("Prediction #2 (full session 1, ")  # the preview was #1
    assert "Evidence: " + store.prediction.evidence in summary_text(store)


def test_export_validates_and_carries_predicted_outcomes(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    store.channels[0].amplitude_ma = 20.0
    store.channels[1].enabled = False
    store.prediction, store.prediction_stage = store.predict_full(), "full"
    text, report = store.export()
    assert report.ok and text
    program = loads(text)  # the downloaded file parses and validates as a program
    assert [(ph.kind, ph.duration_s) for ph in program.phases] == [
        ("warm_up", store.warm_up_s), ("main", 1200.0), ("cool_down", store.cool_down_s)]
    assert store.prediction.t_s[-1] < program.duration_s  # session 1 runs shortened (first-session rule)
    assert program.provenance.predicted_outcomes["peak_mvc_pct"] == pytest.approx(
        store.prediction.scalars["peak_mvc_pct"], abs=5e-7)  # the export rounds to 6 decimals
    assert json.loads(text)["provenance"]["created_with"] == "emsim workbench"


def test_decimation_bounds_points():
    import numpy as np

    t = np.arange(112_501) * 0.01
    td, yd = decimate(t, t, max_points=MAX_PLOT_POINTS)
    assert len(td) <= MAX_PLOT_POINTS and td[0] == 0 and len(td) == len(yd)


def test_decimation_of_several_series_keeps_each_ones_extremes_on_one_time_axis():
    import numpy as np

    t = np.arange(50_000) * 0.01
    a, b = np.sin(t), np.cos(3.0 * t)
    a[1234], b[40_000] = 5.0, -7.0
    td, ad, bd = decimate(t, a, b, max_points=600)
    assert len(td) <= 600 and np.all(np.diff(td) > 0)
    assert ad.max() == 5.0 and bd.min() == -7.0
    idx = np.searchsorted(t, td)
    assert np.array_equal(ad, a[idx]) and np.array_equal(bd, b[idx])  # both at the shared times


def test_decimation_keeps_every_contraction_peak():
    import numpy as np

    # 20 min at 100 Hz: 10 s contractions every 30 s whose peaks fall by fatigue, with a 1-sample spike
    t = np.arange(120_000) * 0.01
    y = np.where((t % 30.0) < 10.0, 40.0 * np.exp(-t / 900.0), 0.0)
    y[54_321] = 55.0
    td, yd = decimate(t, y, max_points=MAX_PLOT_POINTS)
    assert len(td) <= MAX_PLOT_POINTS and np.all(np.diff(td) >= 0)
    assert yd.max() == 55.0 and yd.min() == 0.0  # a stride would drop the spike
    peaks = [y[(t >= c) & (t < c + 10.0)].max() for c in np.arange(0, 1200, 30.0)]
    kept = [yd[(td >= c) & (td < c + 10.0)].max() for c in np.arange(0, 1200, 30.0)]
    assert kept == peaks  # every contraction's peak, so the fatigue decline is drawn as predicted


def test_workbench_renders_to_a_bokeh_model():
    import panel as pn
    from bokeh.document import Document
    from pyviz_comms import Comm

    from apps.app import Workbench

    wb = Workbench(store=WorkbenchStore(auto_predict=False))
    root = pn.panel(wb).get_root(Document(), comm=Comm())
    assert root.ref["id"]


def test_design_view_shows_the_safety_report(store):
    from apps.design_view import DesignView

    view = DesignView(store=store)
    store.prediction = store.predict_now()
    assert store.prediction is not None
    assert "Safety report" in view._safety().object


def test_trace_plots_take_each_prediction_in_place():
    import numpy as np

    from apps.design_view import MAX_PLOT_POINTS, DesignView
    from apps.store import PATIENT_DIR, WorkbenchStore

    store = WorkbenchStore(auto_predict=False)
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    view = DesignView(store=store)
    column = view._plots()
    force, discomfort = (pane.object for pane in column)
    sources = [r.data_source for r in force.renderers]
    assert [len(s.data["t"]) for s in sources] == [0, 0]  # nothing predicted yet
    store.prediction = pred = store.predict_now()
    # the same figures (no new plot per prediction), now holding the envelope of each trace
    assert [pane.object for pane in column] == [force, discomfort]
    for s, i in zip(sources, range(2)):
        assert 0 < len(s.data["t"]) <= MAX_PLOT_POINTS
        assert max(s.data["y"]) == pred.mvc_pct[i].max()
    nrs = discomfort.renderers[0].data_source.data
    assert max(nrs["y"]) == np.nanmax(pred.discomfort_nrs)
