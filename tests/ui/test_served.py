"""The workbench served over HTTP, and the start-up rules of ``emsim workbench``."""

import argparse
import urllib.request

import pytest

pytest.importorskip("panel")

from emsim import DISCLAIMER  # noqa: E402
from emsim.workbench_cli import register, serve_kwargs  # noqa: E402

pytestmark = pytest.mark.ui


def test_served_page_answers_with_the_disclaimer(workbench_url):
    with urllib.request.urlopen(workbench_url, timeout=30) as resp:
        body = resp.read().decode()
        assert resp.status == 200
    assert "emsim workbench" in body
    # The widgets arrive later as a compressed Bokeh document; the page title carries the disclaimer.
    assert f"<title>emsim workbench · {DISCLAIMER}</title>" in body


def _args(argv):
    parser = argparse.ArgumentParser()
    register(parser.add_subparsers())
    return parser.parse_args(["workbench", *argv])


def test_default_binds_to_localhost_without_auth():
    kw = serve_kwargs(_args(["--no-show"]))
    assert kw["address"] == "127.0.0.1" and kw["port"] == 5006 and kw["show"] is False
    assert "basic_auth" not in kw


def test_other_address_without_auth_is_refused(capsys):
    with pytest.raises(SystemExit) as exc:
        serve_kwargs(_args(["--address", "0.0.0.0", "--basic-auth", ""]))
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "refusing" in err and "--basic-auth" in err and len(err.splitlines()) == 1


def test_other_address_with_auth_uses_panel_basic_auth():
    kw = serve_kwargs(_args(["--address", "0.0.0.0", "--port", "5010", "--basic-auth", "s3cret"]))
    assert kw["basic_auth"] == "s3cret" and len(kw["cookie_secret"]) >= 32
