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

from emsim.optimise.cli import main
from emsim.testing.documents import PATIENTS, ROOT

PATIENT = str(PATIENTS / "example_measured.json")
# A 60 s main phase keeps each real evaluation well under a second.
FAST = ["--session-s", "60", "--batch-size", "4", "--no-progress"]


def _counts(db: Path) -> dict:
    con = sqlite3.connect(db)
    try:
        assert con.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return dict(con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall())
    finally:
        con.close()


def _n_complete(db: Path) -> int:
    try:
        return _counts(db).get("COMPLETE", 0)
    except sqlite3.OperationalError:  # tables not created yet, or locked for a moment
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
def test_sigkill_mid_run_then_resume(tmp_path):
    out = tmp_path / "out"
    db = out / "study.sqlite3"
    budget = 16
    cmd = [sys.executable, "-m", "emsim.optimise.cli", "optimise", "--patient", PATIENT, "--budget", str(budget),
           "--seed", "4", "--out", str(out), *FAST]
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
        time.sleep(0.3)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    before = _counts(db)
    assert 4 <= before.get("COMPLETE", 0) < budget
    assert set(before) <= {"COMPLETE"}  # nothing half-written: only finished trials are stored
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-800:]
    after = _counts(db)
    assert after == {"COMPLETE": budget}
    assert len(list(out.glob("pareto_*.json"))) >= 1
    # resuming a finished study evaluates nothing more
    again = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert again.returncode == 0 and "0 in this run" in again.stdout
    assert _counts(db) == {"COMPLETE": budget}


@pytest.mark.slow
def test_robust_mode_over_a_virtual_cohort(tmp_path, capsys):
    """--cohort adds virtual patients; outcomes combine with --statistic (worst here)."""
    out = tmp_path / "robust"
    code = main(["optimise", "--patient", str(PATIENTS / "lbp_average.json"), "--budget", "4", "--cohort", "2",
                 "--statistic", "worst", "--out", str(out), "--seed", "3", *FAST])
    assert code == 0
    exported = sorted(out.glob("pareto_*.json"))
    assert exported
    # absolute amplitudes: virtual patients have no measured thresholds
    doc = json.loads(exported[0].read_text())
    amp = doc["phases"][0]["stimulation"][0]["amplitude"]
    assert "ma" in amp
    assert main(["optimise", "--patient", PATIENT, "--budget", "2", "--statistic", "median",
                 "--out", str(tmp_path / "bad"), *FAST]) != 0
    assert "statistic" in capsys.readouterr().err
