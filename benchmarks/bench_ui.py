"""Workbench benchmark: slider-to-update latency measured in a real browser.

Starts ``emsim workbench`` in its own process, opens it in Debian's chromium (Playwright, no
browser download), picks ``example_measured``, and then presses PageUp / PageDown on the ES-L
amplitude slider ``--repeats`` times. Alternating PageUp/PageDown revisits two amplitudes, so
after the first two presses the prediction comes from the workbench's cache and this times the
page, not the model; ``--keys up`` presses ArrowUp every time, a new amplitude each press, so
every prediction is computed. Each latency is the browser's own clock from the key press to
the moment the page shows the next prediction's text (debounce ``apps.store.DEBOUNCE_S``,
quick preview 60 s, session 1); the plots update from the same prediction just after. Reports the median, min and max and the
core count. Run: ``python benchmarks/bench_ui.py [--repeats N] [--keys alternate|up]``; results are appended to
``benchmarks/results/ui.jsonl``. (The browser tests check the behaviour, not the time.)
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from _report import machine, publish  # noqa: E402

from apps.serve import free_port  # noqa: E402
from apps.store import DEBOUNCE_S  # noqa: E402
from tests.ui.conftest import DEEP_TEXT_JS, start_workbench, stop_workbench  # noqa: E402

_PREDICTION = "/Prediction #(\\d+) \\(/"


def _count(page) -> int:
    return int(page.evaluate(f"() => {{ const m = ({DEEP_TEXT_JS})().match({_PREDICTION}); return m ? m[1] : -1; }}"))


def _wait_settled(page, quiet_ms: int = 1500, timeout_ms: int = 120_000) -> int:
    waited, last = 0, _count(page)
    while waited < timeout_ms:
        page.wait_for_timeout(quiet_ms)
        waited += quiet_ms
        now = _count(page)
        if now == last and now >= 0:
            return now
        last = now
    raise RuntimeError("predictions did not settle")


def measure(repeats: int, keys: str = "alternate") -> list[float]:
    from playwright.sync_api import expect, sync_playwright

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    port = free_port()
    proc = start_workbench(port)
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"http://127.0.0.1:{port}/")
            page.locator("select").first.select_option("example_measured")
            expect(page.get_by_text("Calibration")).to_be_visible(timeout=120_000)
            page.get_by_text("Design", exact=True).click()
            expect(page.locator(".emsim-prediction")).to_contain_text("Patient: example-measured", timeout=120_000)
            handle = page.locator(".emsim-amplitude_ma-ES-L .noUi-handle")
            latencies = []
            for k in range(repeats):
                n = _wait_settled(page)
                handle.focus()
                t0 = page.evaluate("performance.now()")
                handle.press("ArrowUp" if keys == "up" else ("PageUp" if k % 2 == 0 else "PageDown"))
                done = page.wait_for_function(
                    f"() => {{ const m = ({DEEP_TEXT_JS})().match({_PREDICTION}); "
                    f"return m && parseInt(m[1]) > {n} ? performance.now() : false; }}",
                    polling="raf", timeout=120_000)
                latencies.append(done.json_value() - t0)
            browser.close()
    finally:
        stop_workbench(proc)
    return latencies


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--keys", choices=["alternate", "up"], default="alternate",
                    help="alternate PageUp/PageDown (cached after two presses) or ArrowUp (never cached)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]  # other work on the machine slows the browser and the server alike
    lat = measure(args.repeats, args.keys)
    publish("ui", {"bench": "ui_slider_to_update", **machine(), "repeats": args.repeats,
                   "loadavg_1min_before": round(load_before, 2),
                   "median_ms": round(statistics.median(lat), 1), "min_ms": round(min(lat), 1),
                   "max_ms": round(max(lat), 1), "latencies_ms": [round(x, 1) for x in lat],
                   "keys": args.keys, "debounce_ms": round(1000 * DEBOUNCE_S),
                   "what": ("amplitude ArrowUp (new amplitude each press, uncached)" if args.keys == "up" else
                            "amplitude PageUp/PageDown (cached after two presses)")
                           + " on ES-L -> next prediction text in the browser (first prediction after the change, "
                             "quick preview 60 s, session 1, example_measured)"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
