import pytest


@pytest.fixture(scope="package")
def workbench_url():
    """The workbench served from a thread on a free 127.0.0.1 port for the whole package."""
    from apps.serve import serve_in_thread

    url, thread = serve_in_thread()
    yield url
    thread.stop()
