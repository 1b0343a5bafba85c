"""Serve the workbench in a background thread on a free local port (tests and screenshots)."""

from __future__ import annotations

import socket
import time
import urllib.request

__all__ = ["free_port", "serve_in_thread"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def serve_in_thread(timeout_s: float = 30.0):
    """Start the workbench on 127.0.0.1 and wait until it answers.

    Returns
    -------
    (url, server_thread)
        Stop the server with ``server_thread.stop()``.
    """
    import panel as pn

    from apps.app import PAGE_TITLE, create_app

    port = free_port()
    thread = pn.serve(create_app, port=port, address="127.0.0.1", threaded=True, show=False,
                      title=PAGE_TITLE)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with urllib.request.urlopen(url, timeout=5):
                return url, thread
        except OSError:
            if time.monotonic() > deadline:
                thread.stop()
                raise
            time.sleep(0.2)
