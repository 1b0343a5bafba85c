"""`emsim optimise` bad input (issue 6): one clear line, the documented exit code, the database intact.

Infeasible constraints, contradictory bounds, an unknown objective, a storage URL that cannot
be opened, and a study name that exists with a different problem.
"""

import contextlib
import pytest

from emsim.errors import OptimiseError
from emsim.optimise import Problem, optimise
from emsim.optimise.cli import main
from emsim.optimise.testing import surrogate_evaluate_batch
from emsim.testing.documents import PATIENTS
from tests.optimise._db import studies, trial_counts

PATIENT = str(PATIENTS / "example_measured.json")
FAST = ["--session-s", "60", "--batch-size", "4", "--no-progress"]


def _run(capsys, *argv):
    code = main(["optimise", *argv])
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return code, [line for line in err.splitlines() if line.startswith("emsim: error")]


def _studies(db) -> list:
    return sorted(studies(f"sqlite:///{db}"))


def test_infeasible_constraints(tmp_path, capsys):
    db = tmp_path / "s.db"
    where = ["--storage", f"sqlite:///{db}", "--study", "s", "--out", str(tmp_path / "o")]
    code, err = _run(capsys, "--patient", PATIENT, "--budget", "4", "--max-discomfort", "0", *where, *FAST)
    assert code == 1 and len(err) == 1 and "infeasible constraints: none of 4" in err[0]
    assert trial_counts(db) == {"COMPLETE": 4}  # evaluated and kept: a looser study can be compared with them
    assert not list((tmp_path / "o").glob("pareto_*.json"))
    # a fixed session longer than allowed is refused before anything is evaluated or stored
    code, err = _run(capsys, "--patient", PATIENT, "--budget", "4", "--max-session-min", "0.5",
                     "--storage", f"sqlite:///{db}", "--study", "t", "--out", str(tmp_path / "o"), *FAST)
    assert code == 1 and len(err) == 1 and "session length is fixed above the maximum" in err[0]
    assert _studies(db) == ["s"] and trial_counts(db) == {"COMPLETE": 4}


@pytest.mark.parametrize("bounds, words", [
    ("on_s=10:5", "low above high"),
    ("on_s=2:3,ramp_up_s=2.75:3", "contradictory bounds"),
    ("pulse_width_us=100:900", "outside what the format and device allow"),
    ("off_sec=1:2", "not varied"),
])
def test_contradictory_bounds(tmp_path, capsys, bounds, words):
    db = tmp_path / "s.db"
    code, err = _run(capsys, "--patient", PATIENT, "--budget", "4", "--bounds", bounds,
                     "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "o"), *FAST)
    assert code == 1 and len(err) == 1 and words in err[0]
    assert not db.exists() or _studies(db) == []


def test_malformed_bounds_are_a_usage_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as info:
        main(["optimise", "--patient", PATIENT, "--budget", "4", "--bounds", "on_s=five:6", "--out", str(tmp_path)])
    assert info.value.code == 2 and "FIELD=LOW:HIGH" in capsys.readouterr().err


def test_unknown_objective_stores_nothing(tmp_path, capsys):
    db = tmp_path / "s.db"
    code, err = _run(capsys, "--patient", PATIENT, "--budget", "4", "--objective", "mean_mvc_pct,joy",
                     "--storage", f"sqlite:///{db}", "--out", str(tmp_path / "o"), *FAST)
    assert code == 1 and len(err) == 1 and "unknown objective" in err[0] and "'joy'" in err[0]
    assert not db.exists() or _studies(db) == []


@pytest.mark.parametrize("url", ["nonsense", "sqlite:////nonexistent-dir/x/y.db", "mysql://u@127.0.0.1:1/x",
                                 "postgresql+psycopg://u@127.0.0.1:1/x"])
def test_storage_that_cannot_be_opened(tmp_path, capsys, url):
    code, err = _run(capsys, "--patient", PATIENT, "--budget", "4", "--storage", url, "--out", str(tmp_path / "o"),
                     *FAST)
    assert code == 2 and len(err) == 1 and "storage" in err[0]
    code, err = _run(capsys, "--resume", "--storage", url, "--study", "s", "--out", str(tmp_path / "o"))
    assert code == 2 and len(err) == 1 and "storage" in err[0]


def test_study_name_of_a_different_problem(tmp_path, capsys, measured_patient):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    # a study of another problem (the surrogate evaluator, another discomfort limit) made through the API
    other = Problem(measured_patient, evaluator=surrogate_evaluate_batch, max_discomfort_nrs=8.5)
    with contextlib.suppress(OptimiseError):  # feasible or not, its 4 trials are stored
        optimise(other, "random", budget=4, seed=0, batch_size=4, storage=url, study_name="taken", predict=False)
    before = trial_counts(db)
    args = ["--patient", PATIENT, "--budget", "8", "--storage", url, "--study", "taken",
            "--out", str(tmp_path / "o"), *FAST]
    code, err = _run(capsys, *args)
    assert code == 1 and len(err) == 1 and "exists already" in err[0]
    code, err = _run(capsys, *args, "--resume")
    assert code == 1 and len(err) == 1 and "different problem" in err[0]
    # without the arguments there is nothing to rebuild the problem from
    code, err = _run(capsys, "--resume", "--storage", url, "--study", "taken", "--out", str(tmp_path / "o"))
    assert code == 1 and len(err) == 1 and "no stored arguments" in err[0]
    assert trial_counts(db) == before
