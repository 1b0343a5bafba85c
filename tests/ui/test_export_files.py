"""Export logic: program, device-quantised program with its report, and the one-page summary."""

import json

import pytest

pytest.importorskip("panel")

from apps.export_view import ExportView, summary_html  # noqa: E402
from apps.store import PATIENT_DIR, WorkbenchStore  # noqa: E402
from emsim.program import loads  # noqa: E402
from emsim.program.device_profile import device_profile  # noqa: E402
from emsim.safety import check  # noqa: E402

pytestmark = pytest.mark.ui


@pytest.fixture(scope="module")
def exported():
    store = WorkbenchStore(auto_predict=False)
    store.load_patient_file(PATIENT_DIR / "example_measured.json")
    store.param.update(session=3, main_s=300.0, warm_up_s=60.0, cool_down_s=60.0)  # short: quick to predict
    store.channels[0].amplitude_ma = 30.0
    view = ExportView(store=store)
    return store, view, {k: view.file_text(k) for k in ("program", "quantised", "report", "summary")}


def test_program_file_validates_for_patient_and_device(exported):
    store, _, files = exported
    program = loads(files["program"])
    assert check(program, store.patient, store.device, session=store.session).ok
    assert [ph.kind for ph in program.phases] == ["warm_up", "main", "cool_down"]
    outcomes = program.provenance.predicted_outcomes
    assert outcomes["session"] == 3 and outcomes["patient"] == "example-measured"
    assert outcomes["evidence"] in ("assumed", "extrapolated", "fitted", "measured")
    assert outcomes["peak_mvc_pct"] > 0


def test_quantised_file_is_on_the_device_grid_and_validates(exported):
    store, _, files = exported
    prof = device_profile(store.device)
    q = loads(files["quantised"])
    assert check(q, store.patient, store.device, session=store.session).ok
    assert store.device in q.provenance.created_with
    for ph in q.phases:
        periods = {round(1000.0 / s.frequency_hz, 6) for s in ph.stimulation}
        for period in periods:
            k = (period - prof.period_ms.origin) / prof.period_ms.step
            assert k == pytest.approx(round(k), abs=1e-6)  # every period is one the device can make
    report = json.loads(files["report"])
    assert report["device"] == store.device and report["ok"] is True
    assert len(report["blocks"]) == sum(len(ph.stimulation) for ph in q.phases)


def test_summary_page_has_table_outcomes_evidence_safety_and_disclaimer(exported):
    _, _, files = exported
    page = files["summary"]
    assert page.startswith("<!DOCTYPE html>") and "<script" not in page
    assert page.count("Research use, no clinical clearance.") == 2
    assert "Evidence level of the prediction" in page and "Safety report" in page
    assert page.count("<tr>") >= 1 + 3 * 2  # header + three phases × two channels
    assert "example-measured" in page


def test_summary_escapes_names():
    store = WorkbenchStore(auto_predict=False)
    store.new_patient("P-1")
    store.channels[0].amplitude_ma = 20.0
    bundle = store.export_bundle(predict=False)
    text = json.loads(bundle.program_text)
    text["name"] = "<script>alert(1)</script>"
    from dataclasses import replace

    page = summary_html(replace(bundle, program_text=json.dumps(text)), store.patient, store.device)
    assert "<script>" not in page and "&lt;script&gt;" in page


def test_downloads_are_refused_while_the_safety_check_fails():
    store = WorkbenchStore(auto_predict=False)
    store.load_patient_file(PATIENT_DIR / "example_pacemaker.json")
    view = ExportView(store=store)
    text, kind = view.status()
    assert "Export refused" in text and kind == "danger"
    assert all(b.disabled for b in view._buttons)
    assert all(view.file_text(k) == "" for k in ("program", "quantised", "report", "summary"))
