"""`emsim study list|run|report`: every shipped study's --quick run and report, and bad input."""

import re

import pytest

from emsim.study import study_names

from .conftest import cli

SHIPPED = ["force_frequency", "recruitment_fat", "strength_duration"]


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
    keys = re.findall(r'<section class="figure" id="([^"]+)">', page)
    assert len(keys) == len(study.plots) > 0
    for key in keys:
        assert (tmp_path / name / "figures" / f"{key}.png").stat().st_size > 1000
        assert (tmp_path / name / "figures" / f"{key}.html").is_file()
        assert f'src="figures/{key}.png"' in page
    assert page.count('data-root-id=') >= len(keys)  # an interactive bokeh plot per figure
    for ref in study.references:
        assert ref.source[:30] in page.replace("&amp;", "&")
    for unit in study.units().values():
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
