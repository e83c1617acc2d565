"""A day's partitions on a Dask cluster (README: A Dask cluster): a real LocalCluster of two
worker processes, shared by the module. The command line's runs (its own client, or --dask's
cluster) and the flows (Prefect tasks through DaskTaskRunner) end in the same exports and
state as in process, a worker killed mid-run included; a scheduler down or a partition failing
is one line, and the day is not committed.

Each test runs the days in process first, then again on the cluster in the same workspace
(the run cache deleted: the partitions' ledgers are rebuilt on the workers): a replay ends in
the state a first run reaches, so the two are compared whole."""

import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
import yaml
from distributed import Client, LocalCluster, get_task_stream
from typer.testing import CliRunner

from leadflow.cli import app
from leadflow.demo_data import generate_demo_data
from leadflow.ingest.load import ingest_file
from leadflow.settings import PROJECT_ROOT
from tests.conftest import logical_state, make_workspace
from tests.test_partitions import BEFORE_LAST, END, LAST, exports

PARTITIONS = 4
START = date(2026, 10, 13)  # the renewal of 2026-10-14 inside the days run, in few days
runner = CliRunner()


@pytest.fixture(scope="module")
def cluster():
    """A client of a cluster of two worker processes, one thread each."""
    with (
        LocalCluster(
            n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0"
        ) as local,
        Client(local, set_as_default=False) as client,
    ):
        yield client


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return generate_demo_data(
        tmp_path_factory.mktemp("dask") / "data", contacts=300, days=60, end=END, seed=11
    )


def prepared(url: str, folder: Path, data) -> dict:
    """A workspace in `folder` with the contacts and all but the last events file; the
    settings (LEADFLOW_*) that select it, for the command line."""
    config = yaml.safe_load((PROJECT_ROOT / "leadflow.yaml").read_text())
    # A renewal inside the days run: demotions are queued, scheduled and applied.
    config["contract"].update(renewal_date="2026-10-14", demotion_window_days=10)
    config["engine"] = {"partitions": PARTITIONS}
    path = folder / "leadflow.yaml"
    path.write_text(yaml.safe_dump(config))
    space = make_workspace(url, folder, path)
    ingest_file(space, data.contacts_file)
    for events in data.event_files[:-1]:
        ingest_file(space, events)
    space.engine.dispose()
    return {
        "LEADFLOW_DATABASE_URL": url,
        "LEADFLOW_LAKE": str(folder / "lake"),
        "LEADFLOW_CONFIG": str(path),
        "LEADFLOW_INBOX": str(folder / "inbox"),
        "LEADFLOW_DASK_ADDRESS": None,
        "PREFECT_API_URL": "",  # the command line's own runs, unless a test says otherwise
    }


def state_of(env: dict) -> dict:
    """The exports and the whole logical state as of the last day (tests.test_partitions)."""
    space = make_workspace(
        env["LEADFLOW_DATABASE_URL"],
        Path(env["LEADFLOW_LAKE"]).parent,
        Path(env["LEADFLOW_CONFIG"]),
    )
    try:
        return exports(space)
    finally:
        space.engine.dispose()


def stored(env: dict) -> dict:
    """The logical state of the store alone (tests.conftest), without reading the lake."""
    space = make_workspace(
        env["LEADFLOW_DATABASE_URL"],
        Path(env["LEADFLOW_LAKE"]).parent,
        Path(env["LEADFLOW_CONFIG"]),
    )
    try:
        return logical_state(space)
    finally:
        space.engine.dispose()


def invoke(env: dict, *args: str) -> str:
    result = runner.invoke(app, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def in_process(env: dict, data) -> dict:
    """The days from a start, then late data the daily run takes up, in process; the state
    they reach. The run cache is then deleted: the next run rebuilds every part of it."""
    invoke(env, "backfill", "--start", str(START), "--end", str(BEFORE_LAST))
    space = make_workspace(
        env["LEADFLOW_DATABASE_URL"],
        Path(env["LEADFLOW_LAKE"]).parent,
        Path(env["LEADFLOW_CONFIG"]),
    )
    ingest_file(space, data.event_files[-1], now=datetime(2026, 11, 6, tzinfo=UTC))
    space.engine.dispose()
    invoke(env, "run", "--as-of", str(LAST))
    state = state_of(env)
    assert state["scores"] and state["tier"]["marketing_contacts"]
    shutil.rmtree(Path(env["LEADFLOW_LAKE"]) / "_cache")
    return state


def partition_keys(stream) -> list[str]:
    return [task["key"] for task in stream.data if task["key"].startswith("partition-")]


def test_partitions_on_the_cluster_give_the_same_exports(cluster, data, database_url, tmp_path):
    env = prepared(database_url, tmp_path, data)
    expected = in_process(env, data)
    env["LEADFLOW_DASK_ADDRESS"] = cluster.scheduler.address
    with get_task_stream(cluster) as stream:
        # The same days again (undone, then replayed up to the last day), then the last day.
        invoke(env, "backfill", "--start", str(START), "--end", str(BEFORE_LAST))
        invoke(env, "run", "--as-of", str(LAST))
    assert state_of(env) == expected
    # Every day's four partitions ran on the two workers, none in this process.
    keys = partition_keys(stream)
    days = {key.split("-of-4-")[1][:10] for key in keys}
    assert days == {f"2026-10-{day}" for day in range(13, 17)}
    assert len(keys) == PARTITIONS * (len(days) + 1)  # the last day twice
    assert {key.split("-of-")[0] for key in keys} == {f"partition-{n}" for n in range(4)}
    assert len({task["worker"] for task in stream.data}) == 2


def executing(dask_worker) -> list[str]:
    """The keys a worker is running now (not those waiting for its thread)."""
    return [str(task.key) for task in dask_worker.state.executing]


@pytest.mark.postgres
@pytest.mark.parametrize("runs", ["command line", pytest.param("flow", marks=pytest.mark.flow)])
def test_a_worker_killed_mid_run_ends_in_the_same_state(
    runs, request, cluster, data, postgres_url, tmp_path
):
    """The backfill in a command of its own; one worker SIGKILLed once a partition runs on
    it: by the command's client, or as a Prefect task run of the backfill flow."""
    env = prepared(postgres_url, tmp_path, data)
    expected = in_process(env, data)
    pids = cluster.run(os.getpid)
    environment = {
        name: value for name, value in os.environ.items() if not name.startswith("LEADFLOW_")
    }
    environment |= {name: value for name, value in env.items() if value is not None}
    environment["LEADFLOW_DASK_ADDRESS"] = cluster.scheduler.address
    if runs == "flow":
        request.getfixturevalue("prefect_harness")
        from prefect.settings import PREFECT_API_URL

        environment["PREFECT_API_URL"] = PREFECT_API_URL.value()
    command = subprocess.Popen(
        [Path(sys.executable).parent / "leadflow", "backfill"]
        + ["--start", str(START), "--end", str(BEFORE_LAST)],
        env=environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed = None
    deadline = time.monotonic() + 120
    while killed is None and command.poll() is None and time.monotonic() < deadline:
        busy = {address: keys for address, keys in cluster.run(executing).items() if keys}
        if busy:
            address, [killed] = next(iter(busy.items()))
            os.kill(pids[address], signal.SIGKILL)
        time.sleep(0.01)
    out, err = command.communicate(timeout=180)
    assert command.returncode == 0, out + err
    assert killed is not None and "partition" in killed, "no partition was seen running"
    # The scheduler saw the worker go, ran its partition again (on the other worker or the
    # nanny's new one), and the replay ended in the state of the run in process.
    moves = [entry for entry in cluster.story(killed) if entry[0] == "scheduler"]
    lost = [
        at
        for _, _, start, finish, _, stimulus, at in moves
        if (start, finish) == ("processing", "released")
        and stimulus.startswith("handle-worker-cleanup")
    ]
    done = [at for _, _, _, finish, _, _, at in moves if finish == "memory"]
    assert lost and done and done[-1] > lost[0]
    assert state_of(env) == expected
    cluster.wait_for_workers(2, timeout=60)


def test_a_scheduler_that_does_not_answer_is_one_line(data, tmp_path):
    env = prepared(f"sqlite:///{tmp_path / 'state.db'}", tmp_path, data)
    before = stored(env)
    env["LEADFLOW_DASK_ADDRESS"] = "tcp://127.0.0.1:9"
    result = runner.invoke(app, ["run", "--as-of", str(LAST)], env=env)
    assert result.exit_code == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: no Dask scheduler answers at LEADFLOW_DASK_ADDRESS=tcp://")
    assert "unset LEADFLOW_DASK_ADDRESS to score in this process" in line
    assert stored(env) == before


def test_a_partition_failing_on_a_worker_commits_nothing(cluster, data, tmp_path):
    env = prepared(f"sqlite:///{tmp_path / 'state.db'}", tmp_path, data)
    before = stored(env)
    [lake_file, *_] = sorted((tmp_path / "lake" / "events").glob("day=2026-10-*/*.parquet"))
    lake_file.write_bytes(b"not a parquet file, a truncated copy" * 100)
    env["LEADFLOW_DASK_ADDRESS"] = cluster.scheduler.address
    with get_task_stream(cluster) as stream:
        result = runner.invoke(app, ["run", "--as-of", str(LAST)], env=env)
    assert result.exit_code == 1, result.output
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("error: the lake or the run cache: ")
    assert any(task["status"] == "error" for task in stream.data)
    assert stored(env) == before


@pytest.mark.flow
@pytest.mark.postgres
def test_the_daily_flow_runs_each_partition_as_a_task_run_on_the_cluster(
    prefect_harness, cluster, data, postgres_url, tmp_path
):
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId
    from prefect.settings import PREFECT_API_URL

    env = prepared(postgres_url, tmp_path, data)
    expected = in_process(env, data)
    env |= {
        "LEADFLOW_DASK_ADDRESS": cluster.scheduler.address,
        "PREFECT_API_URL": PREFECT_API_URL.value(),
    }
    with get_client(sync_client=True) as client:
        before = {run.id for run in client.read_flow_runs()}
    invoke(env, "run", "--as-of", str(LAST))  # the last day replayed, by the daily flow
    assert state_of(env) == expected
    with get_client(sync_client=True) as client:
        [flow_run] = [run for run in client.read_flow_runs() if run.id not in before]
        runs = client.read_task_runs(
            flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run.id]))
        )
    assert flow_run.state.is_completed()
    partitions = sorted(run.name for run in runs if run.name.startswith("partition "))
    assert partitions == [f"partition {n} of {PARTITIONS}" for n in range(PARTITIONS)]
    assert all(run.state.is_completed() for run in runs)


def test_dask_starts_a_local_cluster_for_the_command(data, tmp_path):
    env = prepared(f"sqlite:///{tmp_path / 'state.db'}", tmp_path, data)
    expected = in_process(env, data)
    output = invoke(env, "--verbose", "run", "--as-of", str(LAST), "--dask")
    assert "the days' partitions run on the Dask cluster at tcp://127.0.0.1:" in output
    assert state_of(env) == expected
