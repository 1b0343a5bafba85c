"""``emsim optimise`` end to end with the real model: export, validate, re-evaluate, kill and resume."""

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emsim.optimise._storage import open_storage
from emsim.optimise.cli import main
from emsim.program import load
from emsim.testing.documents import PATIENTS, ROOT
from tests.optimise._db import n_complete_now, trial_counts

PATIENT = str(PATIENTS / "example_measured.json")
# A 60 s main phase keeps each real evaluation well under a second.
FAST = ["--session-s", "60", "--batch-size", "4", "--no-progress"]


def _n_complete(db: Path) -> int:
    try:
        return n_complete_now(db)
    except sqlite3.OperationalError:  # no table yet, or locked for a moment
        return 0


@pytest.mark.slow
def test_exported_programs_validate_and_reevaluate_identically(tmp_path, capsys):
    from emsim.body import load_patient
    from emsim.cli import main as emsim_main
    from emsim.program import load
    from emsim.simulate import evaluate

    out = tmp_path / "out"
    assert main(["optimise", "--patient", PATIENT, "--budget", "8", "--seed", "2", "--out", str(out), *FAST]) == 0
    files = sorted(out.glob("pareto_*.json"))
    assert files and (out / "pareto.csv").read_text().count("\n") == len(files) + 1
    patient = load_patient(PATIENT)
    for f in files:
        assert emsim_main(["validate", str(f), "--patient", PATIENT, "--device", "rehastim2"]) == 0
        program = load(f)
        prov = program.provenance
        assert prov.created_by == "emsim optimise" and prov.seed == 2 and "emsim-optimise" in prov.created_with
        fresh = evaluate(program, patient, device="rehastim2", session=1).scalars
        for key, value in fresh.items():
            stored = prov.predicted_outcomes[key]
            assert abs(value - stored) <= 1e-9 * max(abs(stored), 1e-300), key
    assert "Pareto-optimal program" in capsys.readouterr().out


def test_usage_errors_are_one_line(tmp_path, capsys):
    out = str(tmp_path / "o")
    assert main(["optimise", "--patient", PATIENT, "--budget", "4", "--out", out,
                 "--objective", "mean_mvc_pct,joy", *FAST]) == 1
    assert "unknown objective" in capsys.readouterr().err
    assert main(["optimise", "--patient", PATIENT, "--budget", "4", "--out", out,
                 "--storage", "postgresql+psycopg://u@127.0.0.1:1/x", *FAST]) == 2
    err = capsys.readouterr().err
    assert "storage cannot be opened" in err and "Traceback" not in err
    assert main(["optimise", "--patient", str(tmp_path / "missing.json"), "--budget", "4", "--out", out]) == 2


@pytest.mark.slow
def test_sigkill_mid_run_then_resume_without_the_original_arguments(tmp_path):
    out = tmp_path / "out"
    db = tmp_path / "study.sqlite3"
    budget = 24
    where = ["--storage", f"sqlite:///{db}", "--study", "killed"]
    # 10-min sessions (~0.1 s per evaluation) so that the kill lands before the budget is reached
    cmd = [sys.executable, "-m", "emsim.optimise.cli", "optimise", "--patient", PATIENT, "--budget", str(budget),
           "--seed", "4", "--out", str(out), *where, "--session-s", "600", "--batch-size", "4", "--no-progress"]
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.time() + 240
        while time.time() < deadline:  # kill once the first batch is stored, in the middle of the next
            if db.exists() and _n_complete(db) >= 4:
                break
            if proc.poll() is not None:
                pytest.fail(f"optimiser ended before the kill: {proc.stderr.read().decode()[-500:]}")
            time.sleep(0.05)
        else:
            pytest.fail("no batch stored in time")
        time.sleep(0.1)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = trial_counts(db)
    assert 4 <= before.get("COMPLETE", 0) < budget
    assert set(before) <= {"COMPLETE"}  # nothing half-written: only finished trials are stored
    # only where the study is: patient, budget, seed and the rest come from the study itself
    resume = [sys.executable, "-m", "emsim.optimise.cli", "optimise", "--resume", *where, "--out", str(out),
              "--no-progress"]
    done = subprocess.run(resume, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-800:]
    assert trial_counts(db) == {"COMPLETE": budget}
    exported = sorted(out.glob("pareto_*.json"))
    assert exported and json.loads(exported[0].read_text())["provenance"]["seed"] == 4
    # resuming a finished study evaluates nothing more
    again = subprocess.run(resume, cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 in this run" in again.stdout
    assert trial_counts(db) == {"COMPLETE": budget}


def test_resume_refuses_contradicting_arguments_and_leaves_the_study_alone(tmp_path, capsys):
    db = tmp_path / "s.db"
    where = ["--storage", f"sqlite:///{db}", "--study", "s", "--out", str(tmp_path / "o")]
    assert main(["optimise", "--patient", PATIENT, "--budget", "2", "--seed", "3", *where, *FAST]) == 0
    capsys.readouterr()
    before = trial_counts(db)
    for extra, option in ((["--seed", "5"], "--seed"), (["--objective", "mean_mvc_pct"], "--objective"),
                          (["--patient", str(PATIENTS / "lbp_lean.json")], "--patient"),
                          (["--max-discomfort", "5"], "--max-discomfort"), (["--session-s", "30"], "--session-s")):
        assert main(["optimise", "--resume", *where, *extra, "--no-progress"]) == 1, option
        err = [line for line in capsys.readouterr().err.splitlines() if line.startswith("emsim: error")]
        assert len(err) == 1 and f"{option}: contradicts study 's'" in err[0], err
    # the same arguments again are no contradiction; a larger budget extends the study and is kept
    assert main(["optimise", "--resume", *where, "--seed", "3", "--patient", PATIENT, "--budget", "4",
                 "--no-progress"]) == 0
    assert trial_counts(db) == {"COMPLETE": 4} and before == {"COMPLETE": 2}
    import optuna

    study = optuna.load_study(study_name="s", storage=open_storage(f"sqlite:///{db}"))
    assert study.user_attrs["emsim.spec"]["budget"] == 4
    assert main(["optimise", "--resume", *where, "--no-progress"]) == 0
    assert "0 in this run" in capsys.readouterr().out
    # nothing stored under that name: the patient and the budget are needed (usage error)
    assert main(["optimise", "--resume", "--storage", f"sqlite:///{db}", "--study", "new", "--out",
                 str(tmp_path / "n")]) == 2
    assert "--patient: needed to create study 'new'" in capsys.readouterr().err
    assert trial_counts(db) == {"COMPLETE": 4}


@pytest.mark.slow
@pytest.mark.parametrize("statistic", ["worst", "p90", "mean"])
def test_robust_mode_over_a_virtual_cohort(tmp_path, capsys, statistic):
    """--cohort adds virtual patients; outcomes combine with --statistic."""
    import optuna

    from emsim.body import cohort, load_patient
    from emsim.optimise._objectives import aggregate, check_statistic
    from emsim.simulate import evaluate

    out = tmp_path / "robust"
    code = main(["optimise", "--patient", str(PATIENTS / "lbp_average.json"), "--budget", "4", "--cohort", "2",
                 "--statistic", statistic, "--out", str(out), "--seed", "3", *FAST])
    assert code == 0
    exported = sorted(out.glob("pareto_*.json"))
    assert exported
    # the stored objective values are the statistic over the file's patient and the 2 virtual ones
    study = optuna.load_study(study_name="emsim-optimise", storage=open_storage(f"sqlite:///{out / 'study.sqlite3'}"))
    assert study.user_attrs["emsim.spec"]["statistic"] == check_statistic(statistic)
    best = study.trials[int(load(exported[0]).provenance.created_with.rsplit("trial ", 1)[1])]
    people = [load_patient(PATIENTS / "lbp_average.json"), *cohort(2, seed=3)]
    per = [evaluate(load(exported[0]), p, device="rehastim2", trace=False).scalars for p in people]
    for name, direction, value in zip(("mean_mvc_pct", "peak_discomfort_nrs", "fatigue_decline_pct"),
                                      ("maximize", "minimize", "minimize"), best.values):
        expected = aggregate([s[name] for s in per], direction, check_statistic(statistic))
        assert value == pytest.approx(expected, rel=1e-9), name
    # absolute amplitudes: virtual patients have no measured thresholds
    doc = json.loads(exported[0].read_text())
    amp = doc["phases"][0]["stimulation"][0]["amplitude"]
    assert "ma" in amp
    assert main(["optimise", "--patient", PATIENT, "--budget", "2", "--statistic", "median",
                 "--out", str(tmp_path / "bad"), *FAST]) != 0
    assert "statistic" in capsys.readouterr().err
