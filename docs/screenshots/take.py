"""Retake the workbench screenshots in this folder (patient, design, optimise, simulate, export,
studies) with Playwright in Debian's chromium.

The browser tests drive each tab to a meaningful state and, with ``EMSIM_SCREENSHOTS=1``, copy
their full-page screenshots here; this script runs them that way, so the pictures always show
what the tests check. Run from the repository: ``python docs/screenshots/take.py``.
"""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
TESTS = ["tests/ui/test_browser.py", "tests/ui/test_browser_optimise.py", "tests/ui/test_browser_simulate.py",
         "tests/ui/test_browser_studies.py"]

if __name__ == "__main__":
    env = dict(os.environ, EMSIM_SCREENSHOTS="1")
    sys.exit(subprocess.call([sys.executable, "-m", "pytest", *TESTS, "-q", "-p", "no:cacheprovider"],
                             cwd=ROOT, env=env))
