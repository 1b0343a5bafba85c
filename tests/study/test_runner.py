"""Runner: tidy table + provenance + NetCDF, resume after a kill, Dask local cluster."""

import json
import os
import subprocess
import sys
import time

import numpy as np
import pandas as pd
import pytest
import xarray as xr

from emsim.study import load_study, run


def test_run_writes_table_provenance_and_netcdf(tiny_dir, tmp_path):
    res = run(load_study("tiny"), tmp_path / "out", progress=False)
    df = pd.read_parquet(res.results)
    assert len(df) == 12 and list(df["row"]) == list(range(12))
    assert np.allclose(df["y"], df["x"] ** 2 + df["k"])
    prov = json.loads(res.provenance.read_text())
    assert prov["complete"] and prov["n_rows"] == 12 and prov["seed"] == 0 and prov["emsim_version"]
    assert prov["units"]["y"] == "m^2"
    ds = xr.open_dataset(res.netcdf, engine="h5netcdf")
    assert ds["y"].shape == (6, 2) and ds["y"].attrs["units"] == "m^2"
    assert float(ds["y"].sel(x=3, k=10)) == 19.0
    assert not (res.folder / ".parts").exists()
    again = run(load_study("tiny"), tmp_path / "out", progress=False)
    assert again.batches_run == 0  # a finished run of the same spec is not repeated


def test_provenance_hashes_the_model_files(tmp_path):
    from emsim._data import models_dir
    import hashlib

    res = run(load_study("strength_duration", quick=True), tmp_path, progress=False)
    prov = json.loads(res.provenance.read_text())
    entry = next(m for m in prov["models"] if m["file"] == "fibres/fibre_classes.json")
    assert entry["sha256"] == hashlib.sha256((models_dir() / entry["file"]).read_bytes()).hexdigest()
    assert entry["version"]


def test_killed_run_resumes_without_duplicates(tiny_dir, tmp_path):
    out = tmp_path / "out"
    cmd = [sys.executable, str(tiny_dir / "tiny.py"), "--out", str(out), "--no-report", "--no-progress"]
    env = {**os.environ, "TINY_SLEEP_S": "0.4"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    parts = out / "tiny" / ".parts"
    deadline = time.time() + 60
    while time.time() < deadline and len(list(parts.glob("part-*.parquet"))) < 2:
        time.sleep(0.05)
    proc.kill()
    proc.wait()
    n_done = len(list(parts.glob("part-*.parquet")))
    assert 2 <= n_done < 6, "the kill should land mid-run"
    assert not (out / "tiny" / "results.parquet").exists() and not (out / "tiny" / "provenance.json").exists()
    done = subprocess.run(cmd, env={**os.environ, "TINY_SLEEP_S": "0"}, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert f"{n_done} resumed" in done.stdout
    resumed = pd.read_parquet(out / "tiny" / "results.parquet")
    clean = pd.read_parquet(run(load_study("tiny"), tmp_path / "clean", progress=False).results)
    assert resumed["row"].is_unique and len(resumed) == 12
    pd.testing.assert_frame_equal(resumed, clean)


@pytest.mark.slow
def test_dask_local_cluster_gives_the_local_table(tiny_dir, tmp_path):
    local = pd.read_parquet(run(load_study("tiny"), tmp_path / "local", progress=False).results)
    res = run(load_study("tiny"), tmp_path / "dask", workers=2, progress=False)
    pd.testing.assert_frame_equal(pd.read_parquet(res.results), local)
    assert json.loads(res.provenance.read_text())["executor"] == "dask:local:2"


TWO_STAGE = '''
import numpy as np
from emsim.study import Grid, Parameter, Plot, Study


def evaluate(params):
    return {"y": params["x"].astype(float) ** 2}


def evaluate_again(params):
    return {"z": params["x"].astype(float) + 0.5}


def build(quick=False):
    def then(df):
        best = tuple(float(v) for v in df.nlargest(2, "y")["x"])  # the stage-1 winners
        return Study(name="winners", title="winners", space=Grid(Parameter("x", "", best)), evaluate=evaluate_again,
                     outcomes={"z": ""}, plots=(Plot("x", "z", kind="scatter"),))

    return Study(name="two_stage", title="Two stages", space=Grid(Parameter("x", "", (1, 2, 3, 4))),
                 evaluate=evaluate, outcomes={"y": ""}, batch_size=2, then=then,
                 tables=lambda df: {"top": df.nlargest(1, "y")}, plots=(Plot("x", "y", table="top", kind="bar"),))
'''


def test_follow_up_stage_runs_on_the_first_stage_results_and_is_reported(tiny_dir, tmp_path):
    from emsim.study import report

    (tiny_dir / "two_stage.py").write_text(TWO_STAGE)
    res = run(load_study("two_stage"), tmp_path, progress=False)
    assert len(res.stages) == 1 and res.stages[0].folder == tmp_path / "two_stage" / "winners"
    second = pd.read_parquet(res.stages[0].results)
    assert sorted(second["x"]) == [3.0, 4.0] and np.allclose(second["z"], second["x"] + 0.5)
    again = run(load_study("two_stage"), tmp_path, progress=False)
    assert again.batches_run == 0 and again.stages[0].batches_run == 0
    page = report(load_study("two_stage"), tmp_path).read_text()
    assert 'id="fig1_y_vs_x"' in page and 'id="s2_fig1_z_vs_x"' in page and "Stage 2: winners" in page


@pytest.mark.slow
def test_dask_submission_keeps_a_bounded_window_in_flight(tiny_dir, tmp_path):
    """With 1 worker the runner never has more than 2 batches submitted and unfinished."""
    from distributed import Client

    from emsim.study._runner import _batches, _submit_bounded, _window
    from emsim.study._storage import Layout

    study = load_study("tiny")
    layout = Layout(tmp_path, "tiny")
    layout.start("fp")
    state = {"submitted": 0, "written": 0, "max": 0}

    class Counting:
        def __init__(self, client):
            self.client = client

        def submit(self, *a, **k):
            state["submitted"] += 1
            state["max"] = max(state["max"], state["submitted"] - state["written"])
            return self.client.submit(*a, **k)

    write = layout.write_part

    def counted_write(i, cols):
        state["written"] += 1
        write(i, cols)

    layout.write_part = counted_write
    with Client(processes=False, n_workers=1, threads_per_worker=1, dashboard_address=":0") as client:
        window = _window(client)
        todo = _batches(study.space.rows(0), study.batch_size)

        class Bar:
            def update(self, n):
                pass

        _submit_bounded(Counting(client), study, todo, tuple(study.outcomes), layout, Bar(), window)
    assert window == 2 and state["written"] == len(todo) == 6
    assert state["max"] <= window
    assert layout.merge(len(todo)) == 12


@pytest.mark.slow
def test_local_cluster_workers_keep_glibc_default_malloc_and_remote_ones_are_flagged(monkeypatch):
    """The nanny's MALLOC_TRIM_THRESHOLD_ made every batch 2-2.5x slower in a worker: the local
    cluster must start its workers without it, and a cluster whose workers have it is warned about."""
    from distributed import Client, LocalCluster

    from emsim._dask import MALLOC_TRIM, warn_malloc_trim
    from emsim.study._runner import _client

    monkeypatch.delenv(MALLOC_TRIM, raising=False)
    client = _client(1, None)
    try:
        assert list(client.run(os.environ.get, MALLOC_TRIM).values()) == [None]
    finally:
        client.close()
        client.cluster.close()
    try:
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=40) as cluster, \
                Client(cluster) as dask_default:
            with pytest.warns(RuntimeWarning, match=MALLOC_TRIM):
                warn_malloc_trim(dask_default)
    finally:
        os.environ.pop(MALLOC_TRIM, None)  # the nanny copies its pre-spawn variables into this process


def _solve_one_field(params):
    from emsim.physiology.field import Electrodes, Gel, Layers, solve

    el = Electrodes.pair("rectangle", length_m=0.05, width_m=0.05, spacing_m=0.04)
    sol = solve(Layers.homogeneous(0.2 + 0.01 * int(params["patient_index"][0])), el, gel=Gel.uniform())
    sol.potential(0.01, 0.0, 0.01)  # fills a plane
    return {"v": np.zeros(len(params["patient_index"]))}


@pytest.mark.parametrize("space", ["cohort", "grid"])
def test_cohort_batches_leave_no_field_solutions_cached(space, tmp_path):
    """A cohort never meets a patient twice: its batches drop the field cache; other studies keep it."""
    from emsim.physiology import field
    from emsim.study import Cohort, Grid, Parameter, Study

    field.clear_cache()
    sp = Cohort(3) if space == "cohort" else Grid(Parameter("patient_index", "", (0, 1, 2)))
    run(Study(name="c", title="c", space=sp, evaluate=_solve_one_field, outcomes={"v": ""}, batch_size=1),
        tmp_path, progress=False)
    info = field.cache_info()
    if space == "cohort":
        assert (info["solutions"], info["bytes"]) == (0, 0)
    else:
        assert info["solutions"] == 3 and info["bytes"] > 0
    field.clear_cache()


@pytest.mark.slow
@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs 2 cores to tell 1 kernel thread from the default")
def test_dask_workers_run_the_muscle_kernels_on_one_thread(monkeypatch):
    """Two workers on two cores must not each start a kernel thread per core: local clusters
    start with the plugin, a remote cluster gets it when the runner connects."""
    import warnings

    import dask
    from distributed import Client, LocalCluster

    from emsim._dask import MALLOC_TRIM
    from emsim.physiology.muscle import get_num_threads
    from emsim.study._runner import _client

    # Without OMP_NUM_THREADS (which nannies set, also in this process) the kernels would
    # default to every core.
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    monkeypatch.delenv(MALLOC_TRIM, raising=False)
    with dask.config.set({"distributed.nanny.pre-spawn-environ.OMP_NUM_THREADS": None}):
        local = _client(1, None)
        try:
            assert list(local.run(get_num_threads).values()) == [1]
        finally:
            local.close()
            local.cluster.close()
        with LocalCluster(n_workers=1, threads_per_worker=1, dashboard_address=":0", silence_logs=40) as cluster, \
                Client(cluster) as plain:
            assert list(plain.run(get_num_threads).values()) == [len(os.sched_getaffinity(0))]
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)  # the plain cluster's malloc setting
                remote = _client(None, cluster.scheduler_address)
            try:
                assert list(remote.run(get_num_threads).values()) == [1]
            finally:
                remote.close()
