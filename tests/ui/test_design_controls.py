"""Design logic: waveform/pattern/phase controls, the recruitment curve, two-stage predictions."""

import threading
import time

import numpy as np
import pytest

pytest.importorskip("panel")

from apps.design_view import curve_plot, recruitment_curve, summary_text  # noqa: E402
from apps.limits import FORMAT_PATTERNS, FORMAT_WAVEFORMS, channel_limits  # noqa: E402
from apps.store import PATIENT_DIR, ChannelSettings, WorkbenchStore  # noqa: E402
from emsim.program.device_profile import device_profile  # noqa: E402
from emsim.safety import check  # noqa: E402

pytestmark = pytest.mark.ui


def test_choices_are_what_format_and_device_both_have():
    for device in ("rehastim2", "p24", "generic"):
        prof = device_profile(device)
        chan = ChannelSettings.for_device(device, channel_id="X")
        assert set(chan.param["waveform"].objects) == set(FORMAT_WAVEFORMS) & set(prof.waveforms)
        assert set(chan.param["pattern"].objects) == set(FORMAT_PATTERNS) & set(prof.patterns)
        lo, hi = chan.param["intra_burst_interval_ms"].bounds
        assert lo >= prof.intra_burst_interval_ms.min and hi <= prof.intra_burst_interval_ms.max
    assert channel_limits(None).waveforms == FORMAT_WAVEFORMS


def test_device_switch_falls_back_to_a_waveform_it_has(store):
    store.device = "generic"
    store.channels[0].waveform = "khz_burst"
    store.device = "rehastim2"
    assert store.channels[0].waveform == "symmetric_biphasic"


def test_khz_burst_takes_the_constant_pattern_only(store):
    store.device = "generic"
    chan = store.channels[0]
    chan.pattern = "doublets"
    chan.waveform = "khz_burst"
    assert chan.pattern == "constant" and chan.param["pattern"].objects == ["constant"]
    assert "carrier_hz" in chan.active_controls() and "pulse_width_us" in chan.active_controls()
    chan.waveform = "monophasic"
    assert "doublets" in chan.param["pattern"].objects


def test_fixed_device_values_are_not_controls(store):
    chan = store.channels[0]  # RehaStim 2 fixes the inter-phase gap at 100 µs
    assert chan.param["interphase_gap_us"].bounds == (100.0, 100.0)
    assert "interphase_gap_us" not in chan.active_controls()
    store.device = "generic"
    assert "interphase_gap_us" in store.channels[0].active_controls()


@pytest.mark.parametrize("waveform,pattern", [(w, p) for w in FORMAT_WAVEFORMS for p in FORMAT_PATTERNS
                                              if w != "khz_burst" or p == "constant"])
def test_every_waveform_and_pattern_makes_a_valid_program(store, waveform, pattern):
    store.device = "generic"
    chan = store.channels[0]
    chan.param.update(waveform=waveform, pattern=pattern, amplitude_ma=20.0)
    program = store.program()
    main = next(ph for ph in program.phases if ph.kind == "main")
    stim = next(s for s in main.stimulation if s.channel == "ES-L")
    assert (stim.waveform.shape, stim.pattern.type) == (waveform, pattern)
    if waveform == "monophasic":  # the balance phase carries the primary phase's charge
        b = stim.waveform.balance
        assert b.width_us * b.amplitude_ratio == pytest.approx(stim.waveform.pulse_width_us)
    report = check(program, None, "generic")
    assert not [f for f in report.errors if "charge" in f.rule], report.lines()


def test_phases_follow_the_phase_controls(store):
    store.channels[0].amplitude_ma = 30.0
    store.param.update(warm_up_s=120.0, warm_up_amplitude_pct=50.0, cool_down_s=0.0, main_s=900.0)
    program = store.program()
    assert [(ph.kind, ph.duration_s) for ph in program.phases] == [("warm_up", 120.0), ("main", 900.0)]
    warm = {s.channel: s for s in program.phases[0].stimulation}
    assert warm["ES-L"].amplitude.ma == pytest.approx(15.0)
    assert warm["ES-L"].ramp_up_s + warm["ES-L"].ramp_down_s <= warm["ES-L"].on_s
    store.warm_up_s = 6.0  # a short warm-up shrinks its ramps to fit
    w = store.program().phases[0].stimulation[0]
    assert w.ramp_up_s + w.ramp_down_s <= w.on_s
    (preview,) = store.program(60.0).phases  # the preview is the start of the main phase only
    assert (preview.kind, preview.duration_s) == ("main", 60.0)


def test_recruitment_curve_uses_measured_thresholds_and_is_cached(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    chan = store.channels[0]
    curve = recruitment_curve(chan, store.patient)
    assert np.all(np.diff(curve.motor_pct) >= 0) and curve.motor_pct[-1] > curve.motor_pct[0]
    measured = {t.kind: t.amplitude_ma for t in store.patient.thresholds_for(chan.site, chan.side, "motor_threshold")}
    assert curve.thresholds["motor_threshold"] == (measured["motor_threshold"], "measured at 300 µs")
    assert curve.calibrated
    chan.amplitude_ma = 44.0  # the amplitude only moves the marker: same curve object, no recomputation
    assert recruitment_curve(chan, store.patient) is curve
    chan.pulse_width_us = 200.0
    other = recruitment_curve(chan, store.patient)
    assert other is not curve and other.thresholds["motor_threshold"][1] == "measured at 300 µs"


def test_recruitment_curve_predicts_thresholds_without_measurements(store):
    store.load_patient_file(PATIENT_DIR / "lbp_average.json")
    curve = recruitment_curve(store.channels[0], store.patient)
    values = [curve.thresholds[k][0] for k in ("sensory_threshold", "motor_threshold", "tolerance")]
    assert all(curve.thresholds[k][1] == "predicted" for k in curve.thresholds)
    assert values[0] < values[1] <= values[2]  # first sensation, then contraction, then the pain limit
    assert not curve.calibrated


def test_curve_plot_marks_the_amplitude():
    import holoviews as hv

    hv.extension("bokeh", logo=False)
    store = WorkbenchStore(auto_predict=False)
    curve = recruitment_curve(store.channels[0], None)
    plot = curve_plot(curve, 33.0, "t")
    vlines = [el.data for el in plot if isinstance(el, hv.VLine)]
    assert 33.0 in vlines
    assert sum(isinstance(el, hv.VSpan) for el in plot) == 3  # sensory, motor and pain bands
    assert hv.render(plot) is not None


class _SlowEvaluate:
    """Stands in for evaluate: previews are fast, full sessions slow; records what ran and landed."""

    def __init__(self, full_s=0.6):
        self.full_s, self.calls = full_s, []
        self.lock = threading.Lock()

    def __call__(self, doc, elsewhere=False):
        full = len(doc["phases"]) > 1
        amp = next(s for ph in doc["phases"] if ph["kind"] == "main" for s in ph["stimulation"])["amplitude"]["ma"]
        with self.lock:
            self.calls.append(("full" if full else "preview", amp, time.monotonic()))
        if full:
            time.sleep(self.full_s)
        return ("full" if full else "preview", amp)


def test_preview_lands_first_then_the_full_session():
    store = WorkbenchStore(debounce_s=0.01)
    fake = _SlowEvaluate()
    store._evaluate = fake
    stages = []
    store.param.watch(lambda e: stages.append(e.new), "prediction")
    store.channels[0].amplitude_ma = 20.0
    assert store.wait(10)
    assert stages == [("preview", 20.0), ("full", 20.0)] and store.prediction_stage == "full"
    assert store.updates == 2 and not store.busy


def test_stale_full_session_is_dropped_and_does_not_delay_the_new_preview():
    store = WorkbenchStore(debounce_s=0.01)
    fake = _SlowEvaluate(full_s=1.0)
    store._evaluate = fake
    landed = []
    store.param.watch(lambda e: landed.append((e.new, time.monotonic())), "prediction")
    store.channels[0].amplitude_ma = 20.0
    while not any(c[0] == "full" for c in fake.calls):  # the first full session is running
        time.sleep(0.01)
    store.channels[0].amplitude_ma = 30.0
    assert store.wait(10)
    values = [v for v, _ in landed]
    assert ("full", 20.0) not in values  # stale: computed, never shown
    assert values[-2:] == [("preview", 30.0), ("full", 30.0)]
    first_full_end = next(t for kind, amp, t in fake.calls if kind == "full") + fake.full_s
    new_preview_time = next(t for v, t in landed if v == ("preview", 30.0))
    assert new_preview_time < first_full_end  # the new preview did not wait for the stale session


def test_identical_design_is_not_evaluated_twice(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    first = store.predict_now()
    store.channels[0].amplitude_ma = 40.0
    store.channels[0].amplitude_ma = 30.0  # back to the first design
    assert store.predict_now() is first


def test_summary_names_the_stage(store):
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    store.param.update(prediction=store.predict_now(), prediction_stage="preview", updates=1)
    assert summary_text(store).startswith("Prediction #1 (preview: first 60 s of the main phase, session 1): peak ")


def test_recruitment_plot_legend_sits_bottom_right(measured_store):
    import holoviews as hv

    from apps.design_view import DesignView

    shown = DesignView(store=measured_store)._recruitment(measured_store.channels[0])[0].object  # curve * marker
    fig = hv.render(shown)
    assert [legend.location for legend in fig.legend] == ["bottom_right"]


def test_first_change_starts_at_once_and_a_burst_collapses_into_one_more():
    debounce = 1.0
    store = WorkbenchStore(debounce_s=debounce, auto_predict=False)
    fake = _SlowEvaluate(full_s=0.0)
    store._evaluate = fake
    store._auto = True  # predictions from here on, all through the stand-in
    t_first = time.monotonic()
    store.channels[0].amplitude_ma = 20.0  # after a quiet spell: leading edge
    for amp in (21.0, 22.0, 23.0):  # a burst closer together than the debounce time
        time.sleep(0.01)
        store.channels[0].amplitude_ma = amp
    t_last = time.monotonic()
    assert store.wait(20)
    previews = [(amp, t) for kind, amp, t in fake.calls if kind == "preview"]
    assert [amp for amp, _ in previews] == [20.0, 23.0]  # the first change, then only the last one
    assert previews[0][1] - t_first < debounce  # started without waiting
    assert previews[1][1] - t_last >= debounce * 0.99  # after the burst went quiet
    assert store.prediction == ("full", 23.0)
