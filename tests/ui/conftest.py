import os
import subprocess
import sys
import time
import urllib.request

import pytest


@pytest.fixture(scope="package")
def workbench_url():
    """``emsim workbench`` in its own process on a free 127.0.0.1 port, as a user starts it.

    A separate process, because a server thread inside the test process shared its event-loop
    state with everything the suite ran before (Dask clusters, other servers): in full runs its
    updates sometimes never reached the browser.
    """
    from apps.serve import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}/"
    proc = subprocess.Popen([sys.executable, "-m", "emsim.cli", "workbench", "--no-show", "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=dict(os.environ))
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.poll() is not None else ""
                    raise RuntimeError(f"workbench did not start: {out[-2000:]}")
                time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
