"""A real PostgreSQL server on loopback: two worker processes share one resumable study.

Needs Debian's ``postgresql`` package (initdb/pg_ctl under /usr/lib/postgresql/*/bin) and the
``psycopg`` driver (``pip install emsim[postgres]``). PostgreSQL refuses to run as root, so as
root the server runs as the ``postgres`` system user.
"""

import glob
import os
import shutil
import socket
import subprocess
import sys
import time

import pytest

from emsim.testing.documents import PATIENTS, ROOT

pytestmark = pytest.mark.slow

PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin/pg_ctl"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def postgres_url(tmp_path_factory):
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    bindir = os.path.dirname(PG_BIN[-1])
    base = tmp_path_factory.mktemp("pg")
    data, sock = base / "data", base / "sock"
    sock.mkdir()
    as_user: list[str] = []
    if os.geteuid() == 0:
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres")
        shutil.chown(sock, "postgres")
        os.chmod(base.parent, 0o755)
        os.chmod(base.parent.parent, 0o755)
    port = _free_port()
    run = dict(check=True, capture_output=True, timeout=120)
    subprocess.run(as_user + [f"{bindir}/initdb", "-D", str(data), "-A", "trust", "-U", "emsim"], **run)
    subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", str(data), "-w", "-l", str(base / "log"), "-o",
                              f"-p {port} -k {sock} -c listen_addresses=127.0.0.1", "start"], **run)
    try:
        subprocess.run(as_user + [f"{bindir}/createdb", "-h", "127.0.0.1", "-p", str(port), "-U", "emsim", "emsim"],
                       **run)
        yield f"postgresql+psycopg://emsim@127.0.0.1:{port}/emsim"
    finally:
        subprocess.run(as_user + [f"{bindir}/pg_ctl", "-D", str(data), "-m", "immediate", "stop"],
                       capture_output=True, timeout=120)


def _worker(url, out, budget):
    # 10-min sessions (~0.25 s per evaluation): long enough that one worker cannot finish the
    # budget before the other has started, now that an evaluation is fast
    cmd = [sys.executable, "-m", "emsim.optimise.cli", "optimise", "--patient", str(PATIENTS / "example_measured.json"),
           "--budget", str(budget), "--seed", "1", "--out", str(out), "--storage", url, "--study", "pg-study",
           "--resume", "--session-s", "600", "--batch-size", "4", "--no-progress"]
    return subprocess.Popen(cmd, cwd=ROOT, env=dict(os.environ, PYTHONPATH=str(ROOT)),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _states(url):
    import optuna

    study = optuna.load_study(study_name="pg-study", storage=url)
    trials = study.get_trials(deepcopy=False)
    return [t.state.name for t in trials], len({t.user_attrs["emsim.uid"] for t in trials})


def test_two_workers_share_a_resumable_postgres_study(postgres_url, tmp_path):
    budget = 16
    workers = [_worker(postgres_url, tmp_path / f"w{k}", budget) for k in range(2)]
    outs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outs):
        assert w.returncode == 0, err[-800:]
    states, n_unique = _states(postgres_url)
    assert set(states) == {"COMPLETE"}
    # both workers contributed, and together they kept to the budget (at most one batch over)
    in_run = [int(out.split(" in this run")[0].rsplit(", ", 1)[-1]) for out, _ in outs]
    assert all(n > 0 for n in in_run), in_run
    assert budget <= len(states) <= budget + 4 and n_unique == len(states)
    # resume the study with a larger budget: it continues where it stopped
    n0 = len(states)
    w = _worker(postgres_url, tmp_path / "w3", n0 + 8)
    out, err = w.communicate(timeout=600)
    assert w.returncode == 0, err[-800:]
    states, _ = _states(postgres_url)
    assert len(states) == n0 + 8 and set(states) == {"COMPLETE"}
    assert list((tmp_path / "w3").glob("pareto_*.json"))
