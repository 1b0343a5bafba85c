"""The workbench in a real browser (Debian's chromium driven by Playwright): patient, design, export.

Loads the page, picks a patient, places the channels (ES-R over the right multifidus, larger
electrodes for ES-L), moves the amplitude slider of channel ES-L and waits for the prediction
text to change, then downloads the program and its device-quantised version and checks that
both parse and pass the safety check for that patient and device. The slider-to-update latency is measured by
``benchmarks/bench_ui.py`` (median of several presses), not here. With ``EMSIM_SCREENSHOTS=1``
the screenshots of each tab are written to ``docs/screenshots/``.
"""

import re

import pytest

from emsim import DISCLAIMER
from tests.ui.conftest import DEEP_TEXT_JS, ROOT

pytestmark = [pytest.mark.ui, pytest.mark.slow]


@pytest.fixture(scope="module")
def page(browser, workbench_url):
    pg = browser.new_page(viewport={"width": 1400, "height": 1000})
    pg.goto(workbench_url)
    yield pg
    pg.close()


def test_patient_placement_slider_prediction_and_export(page, shot):
    from playwright.sync_api import expect

    expect(page.get_by_text(DISCLAIMER)).to_be_visible(timeout=30_000)
    expect(page.get_by_text("Evidence level of the prediction")).to_be_visible()

    page.locator("select").first.select_option("example_measured")
    expect(page.get_by_text("Calibration")).to_be_visible(timeout=90_000)  # computed on selection
    expect(page.get_by_text("Contraindication questionnaire")).to_be_visible()
    # placement: ES-R moves to the right multifidus, ES-L gets larger electrodes
    page.locator(".emsim-site-ES-R select").select_option("lumbar_multifidus")
    page.locator(".emsim-electrode-ES-L select").select_option("5 × 10 cm")
    shot(page, "patient")

    page.get_by_text("Design", exact=True).click()
    expect(page.get_by_text("Channel ES-R (lumbar multifidus, right)")).to_be_visible(timeout=30_000)
    summary = page.locator(".emsim-prediction")
    # the prediction for the chosen patient and placement, and no other one still on its way
    expect(summary).to_contain_text("Patient: example-measured", timeout=60_000)
    before = _settled_prediction(page)
    n_before = int(before.group(1))

    amplitude = page.locator(".emsim-amplitude_ma-ES-L .noUi-handle")
    amplitude.focus()
    t0 = page.evaluate("performance.now()")
    amplitude.press("PageUp")
    # the first prediction of the new amplitude: usually the preview; under heavy load the server
    # may send the preview and the full session in one update, and the page shows only the latter
    done = page.wait_for_function(
        f"() => {{ const m = ({DEEP_TEXT_JS})().match(/Prediction #(\\d+) \\(/); "
        f"return m && +m[1] > {n_before} ? performance.now() : false; }}", polling="raf", timeout=60_000)
    print(f"slider-to-update in the browser: {done.json_value() - t0:.0f} ms (benchmarks/bench_ui.py records it)")
    after = _settled_prediction(page)  # then the full session of the new design
    assert int(after.group(1)) >= n_before + 2  # a preview, then the full session
    assert float(after.group(3)) > float(before.group(3))  # more current, more force
    # the safety verdict of the same prediction (the Alert pane itself is checked in
    # test_components; in one full CI run it had not reached the DOM after 30 s, unexplained)
    expect(summary).to_contain_text("safety check passed", timeout=30_000)
    expect(page.get_by_text("Thresholds: sensory 9 mA (measured at 300 µs)")).to_be_visible()
    shot(page, "design")

    page.get_by_text("Export", exact=True).click()
    expect(page.get_by_text("Ready to export")).to_be_visible(timeout=30_000)
    shot(page, "export")
    program = _download(page, "Download program (JSON)")
    quantised = _download(page, "Download device-quantised program (JSON)")
    _check_download(program, "rehastim2")
    q = _check_download(quantised, "rehastim2")
    assert "quantised for rehastim2" in q.provenance.created_with
    assert q.channel("ES-R").site == "lumbar_multifidus"
    assert q.channel("ES-L").electrodes[0].length_cm == 10


def _download(page, label: str) -> str:
    with page.expect_download(timeout=120_000) as info:
        page.get_by_text(label, exact=True).click()
    return open(info.value.path(), encoding="utf-8").read()


def _check_download(text: str, device: str):
    """The downloaded file parses as a program and passes the safety check for its patient and device."""
    from emsim.body import load_patient
    from emsim.program.io import loads
    from emsim.safety import check

    program = loads(text)
    patient = load_patient(ROOT / "models" / "patients" / "example_measured.json")
    outcomes = program.provenance.predicted_outcomes
    assert outcomes["patient"] == patient.id and outcomes["peak_mvc_pct"] > 0
    report = check(program, patient, device, session=outcomes["session"])
    assert report.ok, report.lines()
    return program


def _settled_prediction(page, quiet_ms: int = 1500, timeout_ms: int = 120_000):
    """The full-session prediction once no newer one has arrived for ``quiet_ms`` (updates settle)."""
    waited, last = 0, _prediction(page)
    while waited < timeout_ms:
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
        now = _prediction(page)
        if now.group(0) == last.group(0) and now.group(2) == "full session":
            return now
        last = now
    raise AssertionError(f"predictions kept changing for {timeout_ms} ms: {last.group(0)}")


def _prediction(page):
    match = re.search(r"Prediction #(\d+) \((preview|full session)[^)]*\): peak ([\d.]+) %MVC",
                      page.evaluate(DEEP_TEXT_JS))
    assert match, "no prediction text on the page"
    return match
