"""Workbench benchmark: slider-to-update latency measured in a real browser.

Starts ``emsim workbench`` in its own process, opens it in Debian's chromium (Playwright, no
browser download), picks ``example_measured``, and then presses a key on the ES-L amplitude
slider ``--repeats`` times, waiting each time until the predictions have settled (preview and
full session). ``--keys up`` (the honest mode) presses ArrowUp every time: a new amplitude each
press, so every prediction is computed. ``--keys alternate`` presses PageUp / PageDown, which
revisits two amplitudes: after the first two presses the prediction comes from the
workbench's cache and this times the page, not the model.

Each latency is measured on the browser's own clock, from the key event to the first
animation frame in which the page holds

* ``text``: the next prediction's summary text ("Prediction #n+1 (…"), and
* ``plots``: that text *and* new data in the ES-L force plot (its Bokeh data source replaced;
  the plot is drawn in that frame).

A small loop in the page checks both once per animation frame (the check reads one element's
text and one object's identity, so it costs the page next to nothing). ``plots`` is the
honest "update landed" time; ``text`` is what earlier records measured. The first prediction
after a change is the quick preview (60 s of the main phase, session 1); the full session
follows. The 1-minute load average is recorded before and after: other work on the machine
slows the browser and the server alike. Results are appended to
``benchmarks/results/ui.jsonl``. Run: ``python benchmarks/bench_ui.py [--repeats N] [--keys up|alternate]``.
(The browser tests check the behaviour, not the time.)
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

# Installs window.__emsimLanded: a promise of {key, text, plots} times (performance.now(), ms)
# for the next prediction after ``n``. ``key`` is the key event's own time stamp.
_WATCH_JS = """(n) => {
  const find = (root, sel) => { const hit = root.querySelector(sel); if (hit) return hit;
    for (const el of root.querySelectorAll('*')) { if (el.shadowRoot) { const f = find(el.shadowRoot, sel);
      if (f) return f; } } return null; };
  const src = window.Bokeh.documents[0].get_model_by_name('emsim-force-ES-L');
  const data0 = src.data;
  const st = {key: null, text: null, plots: null};
  document.addEventListener('keydown', (e) => { if (st.key === null) st.key = e.timeStamp; },
                            {capture: true, once: true});
  let el = null;
  window.__emsimLanded = new Promise((resolve) => {
    const tick = () => {
      const now = performance.now();
      if (!el || !el.isConnected) el = find(document, '.emsim-prediction');
      if (st.text === null && el) {  // Panel draws the text in the element's shadow root
        const m = (el.shadowRoot || el).textContent.match(%s); if (m && +m[1] > n) st.text = now; }
      if (st.text !== null && st.plots === null && src.data !== data0) st.plots = now;
      if (st.plots !== null) resolve(st); else requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  });
}""" % _PREDICTION


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


def measure(repeats: int, keys: str = "up") -> tuple[list[float], list[float]]:
    """Latencies in ms from the key event to the new text, and to the new text and plot data."""
    from playwright.sync_api import expect, sync_playwright

    exe = shutil.which("chromium") or "/usr/bin/chromium"
    port = free_port()
    proc = start_workbench(port)
    text, plots = [], []
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
            for k in range(repeats):
                n = _wait_settled(page)
                handle.focus()
                page.evaluate(_WATCH_JS, n)
                handle.press("ArrowUp" if keys == "up" else ("PageUp" if k % 2 == 0 else "PageDown"))
                st = page.evaluate("() => Promise.race([window.__emsimLanded, "
                                   "new Promise((r) => setTimeout(() => r(null), 120000))])")
                if st is None:
                    raise RuntimeError("no new prediction with new plot data within 120 s of the key press")
                text.append(st["text"] - st["key"])
                plots.append(st["plots"] - st["key"])
            browser.close()
    finally:
        stop_workbench(proc)
    return text, plots


def _stats(values: list[float]) -> dict:
    return {"median_ms": round(statistics.median(values), 1), "min_ms": round(min(values), 1),
            "max_ms": round(max(values), 1), "latencies_ms": [round(x, 1) for x in values]}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeats", type=int, default=9)
    ap.add_argument("--keys", choices=["alternate", "up"], default="up",
                    help="ArrowUp (never cached, default) or alternate PageUp/PageDown (cached after two presses)")
    ap.add_argument("--note", default="", help="recorded with the result (what else was going on)")
    args = ap.parse_args(argv)
    load_before = os.getloadavg()[0]
    text, plots = measure(args.repeats, args.keys)
    load_after = os.getloadavg()[0]
    text_stats, plot_stats = _stats(text), _stats(plots)
    publish("ui", {"bench": "ui_slider_to_update", **machine(), "repeats": args.repeats,
                   "loadavg_1min_before": round(load_before, 2), "loadavg_1min_after": round(load_after, 2),
                   **text_stats, "plots": plot_stats, "keys": args.keys, "debounce_ms": round(1000 * DEBOUNCE_S),
                   "note": args.note,
                   "what": ("amplitude ArrowUp (new amplitude each press, uncached)" if args.keys == "up" else
                            "amplitude PageUp/PageDown (cached after two presses)")
                           + " on ES-L: key event -> first frame with the next prediction's text (median_ms) / "
                             "with the text and new ES-L force plot data (plots.median_ms), browser clock; "
                             "quick preview 60 s, session 1, example_measured"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
