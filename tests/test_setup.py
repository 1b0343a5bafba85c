"""The README's two set-up commands, and CI running exactly the test one."""

import re

from emsim.testing.documents import ROOT


def _commands():
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    blocks = re.findall(r"```\n(.*?)\n```", text, flags=re.S)
    return [b.strip() for b in blocks if "python3 -m venv" in b and b.strip().count("\n") == 0]


def test_readme_has_exactly_two_setup_commands():
    cmds = _commands()
    assert len(cmds) == 2
    assert all("\n" not in c for c in cmds)
    assert "emsim" in cmds[0] and "pytest" in cmds[1]


def test_ci_runs_the_readme_test_command_and_nothing_else():
    lines = [ln.strip() for ln in (ROOT / ".ci" / "run").read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    steps = [ln for ln in lines if not ln.startswith(("set ", "cd "))]
    assert steps == [_commands()[1]]


def test_readme_states_research_use():
    assert "no clinical clearance" in (ROOT / "README.md").read_text(encoding="utf-8")
