"""A tiny study script in a temporary studies folder (EMSIM_STUDIES_DIR), and a CLI driver."""

import argparse
import textwrap

import pytest

TINY = textwrap.dedent('''
    """Tiny test study: y = x^2 + k on a 6 x 2 grid, 2 rows per batch."""
    import os
    import time

    from emsim.study import Grid, Parameter, Plot, Reference, Study, main


    def evaluate(params):
        time.sleep(float(os.environ.get("TINY_SLEEP_S", "0")))
        x = params["x"].astype(float)
        return {"y": x ** 2 + params["k"]}


    def build(quick=False):
        return Study(name="tiny", title="Tiny study", space=Grid(Parameter("x", "m", (1, 2, 3, 4, 5, 6)),
                     Parameter("k", "", (0, 10))), evaluate=evaluate, outcomes={"y": "m^2"}, batch_size=2,
                     quick=quick, plots=(Plot("x", "y", by="k", references=("paper",)),),
                     references=(Reference("paper", "A. Author 2000", "assumed", {"x": [2.0], "y": [4.0]}),))


    if __name__ == "__main__":
        raise SystemExit(main(build))
''')


@pytest.fixture
def tiny_dir(tmp_path, monkeypatch):
    folder = tmp_path / "studies"
    folder.mkdir()
    (folder / "tiny.py").write_text(TINY)
    monkeypatch.setenv("EMSIM_STUDIES_DIR", str(folder))
    return folder


def cli(argv):
    """Run ``emsim study ...`` through emsim.study.cli.register (as emsim.cli will)."""
    from emsim.study.cli import register

    parser = argparse.ArgumentParser(prog="emsim")
    register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(argv)
    return args.func(args)
