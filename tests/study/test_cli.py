"""`emsim study list|run|report`: every shipped study's --quick run and report, and bad input."""

import re

import pytest

from emsim.study import study_names
from emsim.study._runner import stages as study_stages

from .conftest import cli

SHIPPED = ["discomfort", "force_frequency", "lumbar_design", "recruitment_fat", "sensitivity", "strength_duration"]


def test_list_prints_one_study_per_line_name_first(capsys):
    assert cli(["study", "list"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert [line.split("\t")[0] for line in lines] == study_names()
    assert set(SHIPPED) <= set(study_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_quick_run_and_report_show_the_figures(name, tmp_path, capsys):
    from emsim.study import load_study

    assert cli(["study", "run", name, "--quick", "--out", str(tmp_path), "--no-progress"]) == 0
    assert (tmp_path / name / "results.parquet").is_file() and (tmp_path / name / "provenance.json").is_file()
    assert cli(["study", "report", name, "--quick", "--out", str(tmp_path)]) == 0
    page = (tmp_path / name / "report.html").read_text()
    study = load_study(name, quick=True)
    stages = [s for s, _ in study_stages(study, tmp_path)]
    keys = re.findall(r'<section class="figure" id="([^"]+)">', page)
    assert len(keys) == sum(len(s.plots) for s in stages) > 0
    assert len(stages) == (2 if study.then is not None else 1)
    for key in keys:
        assert (tmp_path / name / "figures" / f"{key}.png").stat().st_size > 1000
        assert (tmp_path / name / "figures" / f"{key}.html").is_file()
        assert f'src="figures/{key}.png"' in page
    assert page.count('data-root-id=') >= len(keys)  # an interactive bokeh plot per figure
    for stage in stages:
        for ref in stage.references:
            assert ref.source[:30] in page.replace("&amp;", "&")
        for unit in stage.units().values():
            if unit:
                assert unit.replace("&", "&amp;") in page


def test_report_names_units_on_axes(tiny_dir, tmp_path):
    assert cli(["study", "run", "tiny", "--out", str(tmp_path), "--no-progress"]) == 0
    assert cli(["study", "report", "tiny", "--out", str(tmp_path)]) == 0
    fig = (tmp_path / "tiny" / "figures" / "fig1_y_vs_x.html").read_text()
    assert "x (m)" in fig and "y (m^2)" in fig and "published: paper" in fig


def _no_results(folder):
    return not any(folder.rglob("results.parquet")) and not any(folder.rglob("provenance.json"))


def test_unknown_study_is_one_line_exit_2(tmp_path, capsys):
    assert cli(["study", "run", "no_such_study", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown study" in err[0] and "force_frequency" in err[0]
    assert _no_results(tmp_path)


def test_unreachable_scheduler_is_one_line_exit_2(tiny_dir, tmp_path, capsys):
    assert cli(["study", "run", "tiny", "--out", str(tmp_path), "--scheduler", "tcp://127.0.0.1:9"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "cannot reach the Dask scheduler" in err[0]
    assert _no_results(tmp_path) and not (tmp_path / "tiny" / ".parts").exists()


def test_unwritable_output_folder_is_one_line_exit_2(tiny_dir, tmp_path, capsys):
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    assert cli(["study", "run", "tiny", "--out", str(blocker / "sub"), "--no-progress"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "not writable" in err[0]


def test_report_before_run_is_one_line_exit_2(tiny_dir, tmp_path, capsys):
    assert cli(["study", "report", "tiny", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "run it first" in err[0]
    assert not (tmp_path / "tiny" / "report.html").exists()


def test_parameter_outside_the_model_range_is_one_line_exit_1(tiny_dir, tmp_path, capsys):
    """A study row the model refuses (type I fraction 1.2 > 1): the model's own error, exit 1,
    and no results or provenance presented as complete."""
    (tiny_dir / "bad_range.py").write_text(BAD_RANGE)
    assert cli(["study", "run", "bad_range", "--out", str(tmp_path), "--no-progress"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "type1_area_fraction" in err[0] and "1.2" in err[0]
    assert _no_results(tmp_path)
    assert len(list((tmp_path / "bad_range" / ".parts").glob("part-*.parquet"))) == 1  # the good batch


BAD_RANGE = '''
import numpy as np
from emsim.study import Grid, Parameter, Study


def evaluate(params):
    from emsim.physiology.pool import PoolParameters

    return {"n_classes": np.array([PoolParameters(type1_area_fraction=float(f)).n_classes
                                   for f in params["type1_fraction"]], dtype=float)}


def build(quick=False):
    return Study(name="bad_range", title="type I fraction sweep", evaluate=evaluate, outcomes={"n_classes": ""},
                 space=Grid(Parameter("type1_fraction", "", (0.5, 0.6, 1.2))), batch_size=2)
'''


@pytest.mark.parametrize("setting, words", [("wndow_s=300", ["unknown study option", "window_s", "cohort"]),
                                            ("window_s=5000", ["out of range", "5000", "1200"]),
                                            ("window_s", ["KEY=VALUE"])])
@pytest.mark.parametrize("command", ["run", "report"])
def test_bad_study_option_is_one_line_exit_2(command, setting, words, tmp_path, capsys):
    assert cli(["study", command, "lumbar_design", "--set", setting, "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and all(w in err[0] for w in words), err
    assert not any(tmp_path.iterdir())


def test_list_names_each_study_s_options(capsys):
    assert cli(["study", "list"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if x.startswith("lumbar_design\t"))
    assert line.split("\t")[2] == "options: window_s, cohort, n_designs, max_front"


def test_script_takes_the_same_options(tmp_path, capsys):
    from emsim.study import main
    from emsim.study._registry import _module

    build = _module("lumbar_design").build
    assert main(build, ["--set", "cohort=0", "--out", str(tmp_path), "--no-progress"]) == 2
    assert "--set cohort" in capsys.readouterr().err
