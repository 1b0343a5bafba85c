"""The study journal (emsim.optimise._journal): layout detection, one total order under concurrent
appends, whole batches after a kill, the same trials as in memory, damage and bad files as typed errors.

PostgreSQL versions of the concurrency test are in test_postgres.py.
"""

import multiprocessing
import os
import signal
import sqlite3
import time

import optuna
import pytest

from emsim.errors import OptimiseError
from emsim.optimise import optimise
from emsim.optimise._journal import JOURNAL_TABLE, BatchJournalStorage
from emsim.optimise._storage import RDB_TABLES, UID_KEY, close_storage, open_storage, storage_layout
from tests.optimise import _journal_workers
from tests.optimise._db import tables


def _trials(result):
    return [(t.params, t.values, t.constraints) for t in result.study.get_trials(deepcopy=False)]


def test_new_database_gets_the_journal_and_keeps_it(cheap_problem, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    result = optimise(cheap_problem, "random", budget=32, seed=0, batch_size=16, storage=url, study_name="s",
                      predict=False)
    assert storage_layout(result.study._storage) == "journal"
    found = tables(tmp_path / "s.db")
    assert JOURNAL_TABLE in found and not found & set(RDB_TABLES)
    # optuna's own RDB storage pointed at the file by mistake adds its empty tables; the journal still wins
    optuna.storages.RDBStorage(url)
    assert storage_layout(open_storage(url)) == "journal"
    more = optimise(cheap_problem, "random", budget=48, seed=0, batch_size=16, storage=url, study_name="s",
                    resume=True, predict=False)
    assert more.n_complete == 48 and more.n_evaluated == 16


def test_database_in_the_rdb_layout_still_opens_and_resumes(cheap_problem, tmp_path):
    """A database written by optuna's RDB storage (emsim before the journal) keeps that layout."""
    db = tmp_path / "old.db"
    url = f"sqlite:///{db}"
    optuna.storages.RDBStorage(url)  # optuna's tables, as the earlier emsim created them
    first = optimise(cheap_problem, "nsga2", budget=16, seed=2, batch_size=8, storage=url, study_name="old",
                     predict=False)
    assert storage_layout(first.study._storage) == "rdb"
    more = optimise(cheap_problem, "nsga2", budget=24, seed=2, batch_size=8, storage=url, study_name="old",
                    resume=True, predict=False)
    assert more.n_complete == 24 and more.n_evaluated == 8
    assert JOURNAL_TABLE not in tables(db)
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT state, COUNT(*) FROM trials GROUP BY state").fetchall() == [("COMPLETE", 24)]
    finally:
        con.close()


@pytest.mark.parametrize("method", ["nsga2", "tpe"])
def test_storage_does_not_change_the_trials(cheap_problem, tmp_path, method):
    """Same seed, same trials (parameters, values, constraints, order) in memory, journal and RDB layout."""
    runs = {}
    for layout in ("memory", "journal", "rdb"):
        url = None if layout == "memory" else f"sqlite:///{tmp_path / layout}.db"
        if layout == "rdb":
            optuna.storages.RDBStorage(url)
        runs[layout] = optimise(cheap_problem, method, budget=40, seed=11, batch_size=8, storage=url,
                                study_name="same", predict=False)
        assert storage_layout(runs[layout].study._storage) == layout
    assert _trials(runs["journal"]) == _trials(runs["memory"]) == _trials(runs["rdb"])
    assert len(_trials(runs["memory"])) == 40


def test_batch_record_replays_as_optunas_own(cheap_problem, tmp_path):
    """add_trials writes what optuna's create_new_trial(template_trial=...) writes, for many trials at once."""
    result = optimise(cheap_problem, "nsga2", budget=8, seed=1, batch_size=8, predict=False)
    trials = result.study.get_trials(deepcopy=False)
    storage = open_storage(f"sqlite:///{tmp_path / 'j.db'}")
    assert isinstance(storage, BatchJournalStorage)
    ours = optuna.create_study(storage=storage, study_name="ours", directions=result.study.directions)
    theirs = optuna.create_study(storage=storage, study_name="theirs", directions=result.study.directions)
    n_before = len(storage._backend.read_logs(0))
    storage.add_trials(ours._study_id, trials)
    assert len(storage._backend.read_logs(0)) == n_before + len(trials)  # one record per trial
    theirs.add_trials(trials)
    fresh = open_storage(f"sqlite:///{tmp_path / 'j.db'}")  # replayed from the database alone
    a, b = (optuna.load_study(study_name=n, storage=fresh).get_trials() for n in ("ours", "theirs"))
    fields = ("number", "state", "params", "distributions", "values", "user_attrs", "system_attrs",
              "intermediate_values", "datetime_start", "datetime_complete")
    assert [[getattr(t, f) for f in fields] for t in a] == [[getattr(t, f) for f in fields] for t in b]
    assert [t.params for t in a] == [t.params for t in trials]
    # the study attributes written with a batch (the lease's heartbeat) replay too
    storage.add_trials(ours._study_id, trials[:1], {"emsim.worker:x": [1.5, 0]})
    assert open_storage(f"sqlite:///{tmp_path / 'j.db'}").get_study_user_attrs(ours._study_id) == \
        {"emsim.worker:x": [1.5, 0]}
    with pytest.raises(ValueError, match="not finished"):
        storage.add_trials(ours._study_id, [optuna.trial.create_trial(state=optuna.trial.TrialState.RUNNING)])


@pytest.mark.slow
def test_concurrent_appends_keep_one_total_order(tmp_path):
    url = f"sqlite:///{tmp_path / 'j.db'}"
    seen = _journal_workers.concurrent_appends(url, tmp_path)
    # the writers really interleaved and the readers really read while they wrote
    assert seen["writer_switches"] > 10 and min(seen["reads"]) > 2, seen
    assert tables(tmp_path / "j.db") == {JOURNAL_TABLE}


@pytest.mark.slow
def test_workers_racing_to_create_the_journal(tmp_path):
    url = f"sqlite:///{tmp_path / 'race.db'}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_journal_workers.write, args=(url, w, 5)) for w in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=120)
        assert p.exitcode == 0
    records = _journal_workers.backend(url).read_logs(0)
    assert len(records) == sum(sum(_journal_workers.batch_sizes(w, 5)) for w in range(4))


@pytest.mark.slow
def test_kill_during_appends_loses_at_most_the_batch_in_flight(tmp_path):
    """SIGKILL a writer of 50-record batches at several moments: every stored batch is whole."""
    url = f"sqlite:///{tmp_path / 'k.db'}"
    ctx = multiprocessing.get_context("spawn")
    n_before = 0
    for k, delay in enumerate((0.0, 0.013, 0.05, 0.11, 0.2)):
        ready = tmp_path / f"ready{k}"
        p = ctx.Process(target=_journal_workers.write_forever, args=(url, str(ready), 2000))
        p.start()
        deadline = time.monotonic() + 120
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.005)
        time.sleep(delay)
        os.kill(p.pid, signal.SIGKILL)
        p.join(timeout=30)
        assert tables(tmp_path / "k.db") == {JOURNAL_TABLE}  # integrity_check ok
        records = _journal_workers.backend(url).read_logs(0)
        assert len(records) % 50 == 0 and len(records) >= n_before + 50
        for start in range(0, len(records), 50):
            assert [(r["b"], r["i"]) for r in records[start:start + 50]] == \
                [(records[start]["b"], i) for i in range(50)]
        n_before = len(records)


def test_hole_in_the_journal_is_a_typed_error(cheap_problem, tmp_path):
    db = tmp_path / "s.db"
    url = f"sqlite:///{db}"
    optimise(cheap_problem, "random", budget=32, seed=0, batch_size=16, storage=url, study_name="s", predict=False)
    con = sqlite3.connect(db)
    with con:
        con.execute(f"DELETE FROM {JOURNAL_TABLE} WHERE log_number = 3")
    con.close()
    with pytest.raises(OptimiseError, match="no record 3") as info:
        optimise(cheap_problem, "random", budget=48, storage=url, study_name="s", resume=True)
    assert info.value.path == "storage"


def test_a_file_that_is_not_a_database(cheap_problem, tmp_path):
    bad = tmp_path / "notes.db"
    bad.write_bytes(b"not an SQLite file, just notes\n" * 100)
    with pytest.raises(OptimiseError, match="storage cannot be opened") as info:
        optimise(cheap_problem, budget=4, storage=f"sqlite:///{bad}", study_name="s")
    assert info.value.path == "storage"
    assert bad.read_bytes() == b"not an SQLite file, just notes\n" * 100


def _share_a_study(url, budget, seed):
    from emsim.body import load_patient
    from emsim.optimise import Problem
    from emsim.optimise.testing import surrogate_evaluate_batch
    from emsim.testing.documents import PATIENTS

    problem = Problem(load_patient(PATIENTS / "example_measured.json"), evaluator=surrogate_evaluate_batch,
                      max_discomfort_nrs=8.5)
    optimise(problem, "nsga2", budget=budget, seed=seed, batch_size=8, storage=url, study_name="shared",
             resume=True, predict=False)


@pytest.mark.slow
def test_two_processes_share_a_sqlite_study(tmp_path):
    url = f"sqlite:///{tmp_path / 'shared.db'}"
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_share_a_study, args=(url, 160, 0)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=300)
        assert p.exitcode == 0
    storage = open_storage(url)
    try:
        study = optuna.load_study(study_name="shared", storage=storage)
        trials = study.get_trials(deepcopy=False)
        workers = [k for k in study.user_attrs if k.startswith("emsim.worker:")]
    finally:
        close_storage(storage)
    # together they kept to the budget (at most one batch over), each trial stored once
    assert 160 <= len(trials) <= 168 and {t.state.name for t in trials} == {"COMPLETE"}
    assert len({t.user_attrs[UID_KEY] for t in trials}) == len(trials)
    assert len(workers) == 2


def test_a_trial_left_running_by_someone_else_does_not_stall_the_search(cheap_problem, tmp_path):
    url = f"sqlite:///{tmp_path / 's.db'}"
    optimise(cheap_problem, "random", budget=16, seed=0, batch_size=8, storage=url, study_name="s", predict=False)
    optuna.load_study(study_name="s", storage=open_storage(url)).ask()  # a RUNNING trial, never told
    more = optimise(cheap_problem, "random", budget=32, seed=0, batch_size=8, storage=url, study_name="s",
                    resume=True, predict=False)
    assert more.n_complete == 32 and more.n_evaluated == 16
    states = [t.state.name for t in more.study.get_trials(deepcopy=False)]
    assert states.count("RUNNING") == 1 and states.count("COMPLETE") == 32


def test_refused_studies_write_nothing(cheap_problem, measured_patient, tmp_path):
    """A name that exists, or a study of another problem or other directions: refused, the journal unchanged."""
    from emsim.optimise import Problem
    from emsim.optimise.testing import surrogate_evaluate_batch

    url = f"sqlite:///{tmp_path / 's.db'}"
    optimise(cheap_problem, "random", budget=16, seed=0, batch_size=16, storage=url, study_name="s", predict=False)
    before = _journal_workers.backend(url).read_logs(0)
    other = Problem(measured_patient, evaluator=surrogate_evaluate_batch, max_discomfort_nrs=5.0)
    fewer = Problem(measured_patient, evaluator=surrogate_evaluate_batch, objectives=["mean_mvc_pct"])
    for problem, resume, words in ((cheap_problem, False, "exists already"), (other, True, "different problem"),
                                   (fewer, True, "different problem")):
        with pytest.raises(OptimiseError, match=words):
            optimise(problem, "random", budget=32, storage=url, study_name="s", resume=resume)
    assert _journal_workers.backend(url).read_logs(0) == before
