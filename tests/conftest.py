"""Shared fixtures: a workspace on a real SQLite file or a real PostgreSQL schema, and a lake."""

import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from sqlalchemy import MetaData, create_engine, text
from sqlalchemy.exc import OperationalError

from leadflow.settings import PROJECT_ROOT
from leadflow.workspace import Workspace

POSTGRES_URL = os.environ.get(
    "LEADFLOW_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
SHIPPED_CONFIG = PROJECT_ROOT / "leadflow.yaml"


def postgres_available() -> str | None:
    """None if the server answers, else why not."""
    try:
        with create_engine(POSTGRES_URL).connect() as connection:
            connection.execute(text("SELECT 1"))
    except OperationalError as error:
        return str(error.orig).splitlines()[0]
    return None


@pytest.fixture(scope="session")
def postgres_server() -> str:
    problem = postgres_available()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(f"PostgreSQL is required in CI ({POSTGRES_URL}): {problem}")
        pytest.skip(f"no PostgreSQL server at {POSTGRES_URL}: {problem}")
    return POSTGRES_URL


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'state.db'}"


@contextmanager
def fresh_postgres_schema(server: str) -> Iterator[str]:
    """A new schema, dropped afterwards: its URL selects it through the search_path."""
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server)
    with admin.begin() as connection:
        connection.execute(text(f"CREATE SCHEMA {schema}"))
    try:
        yield f"{server}?options=-csearch_path%3D{schema}"
    finally:
        with admin.begin() as connection:
            connection.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        admin.dispose()


@pytest.fixture
def postgres_url(postgres_server: str):
    """A fresh schema per test."""
    with fresh_postgres_schema(postgres_server) as url:
        yield url


LOCK_HOLDER = """
import sys, time
from leadflow.store.db import make_engine
from leadflow.store.lock import state_lock
with state_lock(make_engine(sys.argv[1]), sys.argv[2]):
    print("held", flush=True)
    time.sleep(60)
"""


@contextmanager
def lock_held_by_another_process(url: str, holder_name: str) -> Iterator[None]:
    """The state store's run lock, held by another process until the block ends (then killed)."""
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, url, holder_name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        line = holder.stdout.readline().strip()
        assert line == b"held", holder.stderr.read().decode()[-3000:]
        yield
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def database_url(request) -> str:
    """Run a storage test once on SQLite and once on PostgreSQL."""
    return request.getfixturevalue(f"{request.param}_url")


def make_workspace(
    database_url: str, root: Path, config_path: Path = SHIPPED_CONFIG, lake: str | None = None
) -> Workspace:
    return Workspace.in_folder(database_url, root, config_path, lake)


@pytest.fixture
def workspace(database_url: str, tmp_path: Path):
    space = make_workspace(database_url, tmp_path)
    yield space
    space.engine.dispose()


@pytest.fixture
def sqlite_workspace(sqlite_url: str, tmp_path: Path):
    space = make_workspace(sqlite_url, tmp_path)
    yield space
    space.engine.dispose()


def snapshot(space: Workspace) -> dict:
    """Every row of every table, and every file of the lake with its size: to prove no change."""
    metadata = MetaData()
    metadata.reflect(space.engine)
    state: dict = {}
    with space.engine.connect() as connection:
        for table in metadata.sorted_tables:
            rows = connection.execute(table.select()).fetchall()
            state[table.name] = sorted(map(repr, rows))
    files = sorted(space.lake.root.rglob("*")) if space.lake.root.exists() else []
    state["lake"] = [
        (str(path.relative_to(space.lake.root)), path.stat().st_size)
        for path in files
        if path.is_file() and "_cache" not in path.parts  # the run cache is not state
    ]
    return state


# Columns that differ between two runs reaching the same state: row ids and wall-clock times.
INCIDENTAL_COLUMNS = {"id", "demotion_id", "recorded_at", "started_at", "finished_at"}


def logical_state(space: Workspace) -> dict:
    """Every row of every state table without its incidental columns: what a replay or a
    backfill must reproduce exactly."""
    metadata = MetaData()
    metadata.reflect(space.engine)
    state: dict = {}
    with space.engine.connect() as connection:
        for table in metadata.sorted_tables:
            if table.name in ("scoring_run", "state_version", "run_report"):
                continue  # logs of the work done, and a count of the writes: not state
            columns = [c for c in table.columns if c.name not in INCIDENTAL_COLUMNS]
            rows = connection.execute(table.select().with_only_columns(*columns)).fetchall()
            state[table.name] = sorted(map(repr, rows))
    return state


@pytest.fixture(scope="session")
def prefect_harness():
    """One ephemeral Prefect server for the whole session (it takes 10-20 s to start)."""
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=60):
        yield


@pytest.fixture
def leadflow_env(tmp_path: Path, monkeypatch) -> Path:
    """Point the LEADFLOW_* settings at a fresh folder, as a user's shell would."""
    monkeypatch.setenv("LEADFLOW_DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.setenv("LEADFLOW_LAKE", str(tmp_path / "lake"))
    monkeypatch.setenv("LEADFLOW_CONFIG", str(SHIPPED_CONFIG))
    monkeypatch.setenv("LEADFLOW_INBOX", str(tmp_path / "inbox"))
    return tmp_path


@pytest.fixture(scope="session")
def standin():
    """One local HubSpot stand-in (tests/hubspot_standin.py) for the whole session."""
    from tests.hubspot_standin import serve

    with serve() as server:
        yield server


@pytest.fixture
def portal(standin):
    """The stand-in's portal, emptied for each test."""
    standin.portal.reset()
    return standin.portal


@pytest.fixture
def clock():
    """A fake clock for the HubSpot client (tests/hubspot_standin.py: FakeClock)."""
    from tests.hubspot_standin import FakeClock

    return FakeClock()


@pytest.fixture
def client(standin, portal, clock):
    """A HubSpot client of the stand-in, on the fake clock."""
    from leadflow.hubspot.client import HubSpotClient
    from tests.hubspot_standin import TOKEN

    with HubSpotClient(
        TOKEN, base_url=standin.base_url, clock=clock.monotonic, sleep=clock.sleep
    ) as hubspot:
        yield hubspot
