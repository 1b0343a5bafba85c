import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

# Text of the page including open shadow roots, where Panel renders its components.
DEEP_TEXT_JS = """() => { const walk = (n) => { let s = ''; for (const c of n.childNodes) {
  s += c.nodeType === 3 ? c.textContent : walk(c); } if (n.shadowRoot) s += walk(n.shadowRoot); return s; };
  return walk(document.body); }"""


def start_workbench(port: int, *, timeout_s: float = 180.0, cwd: str | None = None) -> subprocess.Popen:
    """``emsim workbench --no-show`` on 127.0.0.1:``port``, returned once it answers HTTP.

    Its output goes to a log file (``proc.log_path``), not to a pipe: nobody reads a pipe while the
    tests run, and a full one would block the server on its next log line.
    """
    url = f"http://127.0.0.1:{port}/"
    log = tempfile.NamedTemporaryFile(prefix=f"emsim-workbench-{port}-", suffix=".log", delete=False)
    proc = subprocess.Popen([sys.executable, "-m", "emsim.cli", "workbench", "--no-show", "--port", str(port)],
                            stdout=log, stderr=subprocess.STDOUT, env=dict(os.environ), cwd=cwd)
    log.close()
    proc.log_path = Path(log.name)
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=60):  # the first page renders every tab
                return proc
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                stop_workbench(proc)
                out = proc.log_path.read_text(errors="replace")
                raise RuntimeError(f"workbench did not start: {out[-2000:]}")
            time.sleep(0.2)


def stop_workbench(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()


@pytest.fixture(scope="package")
def workbench_url():
    """``emsim workbench`` in its own process on a free 127.0.0.1 port, as a user starts it.

    A separate process, because a server thread inside the test process shared its event-loop
    state with everything the suite ran before (Dask clusters, other servers): in full runs its
    updates sometimes never reached the browser.
    """
    from apps.serve import free_port

    port = free_port()
    proc = start_workbench(port)
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        stop_workbench(proc)


def chromium_path() -> str:
    """Debian's chromium (no Playwright browser download); fail clearly when it or playwright is missing."""
    try:
        import playwright  # noqa: F401  (only to fail clearly when it is missing)
    except ImportError:
        pytest.fail("playwright is not installed: pip install -e '.[test]' (it needs no browser download)")
    path = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if path is None:
        pytest.fail("Debian's chromium is missing: apt-get install -y chromium (the browser tests use it)")
    return path


@pytest.fixture(scope="package")
def browser():
    """One Chromium for the browser tests of this package; each test opens its own page (session)."""
    from playwright.sync_api import sync_playwright

    exe = chromium_path()
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def new_page(browser, workbench_url):
    """A fresh workbench page (its own server session) at 1400 x 1000."""
    pages = []

    def make():
        pg = browser.new_page(viewport={"width": 1400, "height": 1000})
        pg.goto(workbench_url)
        pages.append(pg)
        return pg

    yield make
    for pg in pages:
        pg.close()


@pytest.fixture
def shot(tmp_path):
    """``shot(page, name)``: a full-page screenshot; with ``EMSIM_SCREENSHOTS=1`` also to docs/screenshots/."""

    def take(page, name: str) -> Path:
        out = tmp_path / f"{name}.png"
        page.screenshot(path=str(out), full_page=True)
        if os.environ.get("EMSIM_SCREENSHOTS") == "1":
            dest = ROOT / "docs" / "screenshots"
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(out, dest / out.name)
        assert out.stat().st_size > 10_000
        return out

    return take


@pytest.fixture
def measured_store():
    """A store (no automatic predictions) with the example patient whose lumbar thresholds are measured."""
    from apps.store import PATIENT_DIR, WorkbenchStore

    s = WorkbenchStore(auto_predict=False)
    s.load_patient_file(PATIENT_DIR / "example_measured.json")
    return s


@pytest.fixture
def page_with_patient(new_page):
    """``page_with_patient(tab)``: a fresh page with example_measured loaded (its calibration shown),
    switched to ``tab``."""
    from playwright.sync_api import expect

    def make(tab: str):
        page = new_page()
        page.locator("select").first.select_option("example_measured")
        expect(page.get_by_text("Calibration")).to_be_visible(timeout=90_000)  # computed on selection
        page.get_by_text(tab, exact=True).click()
        return page

    return make


@pytest.fixture(scope="session")
def quick_study_dir(tmp_path_factory):
    """A folder holding one finished ``--quick`` study with its report (strength_duration, ~5 s)."""
    from emsim.study import load_study, report, run

    out = tmp_path_factory.mktemp("studies")
    study = load_study("strength_duration", quick=True)
    run(study, out, progress=False)
    report(study, out)
    return out


@pytest.fixture
def store():
    """A workbench store that predicts only when asked (the component tests)."""
    from apps.store import WorkbenchStore

    return WorkbenchStore(auto_predict=False)
