"""A real PostgreSQL server on loopback: two worker processes share one resumable study.

Needs Debian's ``postgresql`` package and the ``psycopg`` driver
(:mod:`emsim.optimise.loopback_postgres`); skipped without them.
"""

import os
import subprocess
import sys

import pytest

from emsim.optimise.loopback_postgres import PG_BIN, loopback_postgres
from emsim.testing.documents import PATIENTS, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def postgres_server(tmp_path_factory):
    if not PG_BIN:
        pytest.skip("PostgreSQL server binaries not installed (apt-get install postgresql)")
    pytest.importorskip("psycopg")
    with loopback_postgres(tmp_path_factory.mktemp("pg")) as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server):
    """A fresh database on the module's server."""
    return postgres_server.create_database()


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

    from emsim.optimise._storage import open_storage, storage_layout

    storage = open_storage(url)
    assert storage_layout(storage) == "journal"
    trials = optuna.load_study(study_name="pg-study", storage=storage).get_trials(deepcopy=False)
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


def test_concurrent_appends_keep_one_total_order_on_postgres(postgres_url, tmp_path):
    """Writers and incremental readers at once (tests/optimise/_journal_workers.py): one total order."""
    from tests.optimise._journal_workers import concurrent_appends

    seen = concurrent_appends(postgres_url, tmp_path)
    assert seen["writer_switches"] > 10 and min(seen["reads"]) > 2, seen


def test_workers_racing_to_create_the_journal_on_postgres(postgres_url):
    import multiprocessing

    from tests.optimise._journal_workers import backend, batch_sizes, write

    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=write, args=(postgres_url, w, 5)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    assert len(backend(postgres_url).read_logs(0)) == sum(sum(batch_sizes(w, 5)) for w in range(4))
