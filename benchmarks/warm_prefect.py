"""Helpers shared by the benchmarks: a warm Prefect server, the ingest of a prepared data set,
a hard-linked copy of a prepared state, and timers hung on module attributes.

Not a benchmark itself. `prefect_server()` must run before anything imports `prefect`: the
client reads PREFECT_API_URL once, when prefect is first imported.
"""

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

# Every table a day run writes; a prepared state fresh from ingest has none of these rows.
DERIVED_TABLES = (
    "band_change",
    "contact_score",
    "scoring_run",
    "stage_move",
    "stage_entry",
    "contact_stage",
    "marketing_change",
    "demotion",
    "contact_marketing",
    "contract_renewal",
    "day_run",
)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@contextmanager
def prefect_server(log: Path, timeout: float = 120) -> Iterator[str]:
    """`prefect server start` in a child process, on a free port and a private PREFECT_HOME;
    this process (and its children) talk to it through PREFECT_API_URL. Yields the API URL."""
    if "prefect" in sys.modules:
        raise RuntimeError("prefect was imported before the server was started")
    home = Path(tempfile.mkdtemp(prefix="leadflow-bench-prefect-"))
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    os.environ.update(
        PREFECT_HOME=str(home),
        PREFECT_API_URL=url,
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        PREFECT_LOGGING_LEVEL="WARNING",  # the console; the run logs still reach the server
    )
    prefect = Path(sys.executable).with_name("prefect")
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("w") as output:
        server = subprocess.Popen(
            [str(prefect), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
            stdout=output,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PREFECT_UI_ENABLED": "false"},
        )
    try:
        started = time.perf_counter()
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.perf_counter() - started > timeout:
                raise RuntimeError(f"the Prefect server did not start; see {log}")
            time.sleep(0.5)
        print(f"Prefect server up at {url} in {time.perf_counter() - started:.1f} s")
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
        shutil.rmtree(home, ignore_errors=True)


def warm_up() -> float:
    """Run a small flow with a task twice (client, API and task machinery warm); seconds."""
    from prefect import flow, task

    @task
    def double(value: int) -> int:
        return 2 * value

    @flow(name="warm-up")
    def warm_up_flow() -> int:
        return sum(double(value) for value in range(3))

    started = time.perf_counter()
    warm_up_flow()
    warm_up_flow()
    return time.perf_counter() - started


def ingest_prepared(space, paths: list[Path], ready: Path) -> None:
    """Ingest a data set's files into `space`, printing progress, then mark it `ready`."""
    from leadflow.ingest.load import ingest_file

    started = time.perf_counter()
    for path in paths:
        result = ingest_file(space, path)
        print(
            f"  ingested {path.name}: {result.rows_loaded} rows "
            f"({time.perf_counter() - started:.0f} s)",
            flush=True,
        )
    ready.touch()


def copy_state(prepared: Path, work: Path, clear: bool = True) -> None:
    """A private copy of a prepared state (`state.db` + `lake/`) in `work`, so the cached one
    stays pristine: the database is copied, the lake's files hard-linked (ingest only ever adds
    or removes lake files, never rewrites one). With `clear`, every row a day run wrote is
    deleted (a benchmark may have scored the cached state)."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    for name in ("state.db", "state.db-wal", "state.db-shm"):
        if (prepared / name).exists():
            shutil.copy2(prepared / name, work / name)

    def link(source: str, target: str) -> None:
        try:
            os.link(source, target)
        except OSError:
            shutil.copy2(source, target)

    # The run cache is rewritten in place: copied, never linked; dropped with the rows it mirrors.
    shutil.copytree(
        prepared / "lake",
        work / "lake",
        copy_function=link,
        ignore=shutil.ignore_patterns("_cache"),
    )
    if not clear:
        if (prepared / "lake" / "_cache").exists():
            shutil.copytree(prepared / "lake" / "_cache", work / "lake" / "_cache")
        return
    with sqlite3.connect(work / "state.db") as connection:
        present = {row[0] for row in connection.execute("SELECT name FROM sqlite_master")}
        cleared = 0
        for table in DERIVED_TABLES:
            if table in present:
                cleared += connection.execute(f"DELETE FROM {table}").rowcount
    if cleared:
        print(f"  cleared {cleared} rows of earlier day runs from the copy")


def leadflow_env(work: Path, config: Path, inbox: Path | None = None) -> None:
    """Point the LEADFLOW_* settings of this process (and its children) at `work`."""
    os.environ.update(
        LEADFLOW_DATABASE_URL=f"sqlite:///{work / 'state.db'}",
        LEADFLOW_LAKE=str(work / "lake"),
        LEADFLOW_CONFIG=str(config),
        LEADFLOW_INBOX=str(inbox or work / "inbox"),
    )


class Timers:
    """Wall seconds of every call of functions looked up through a module attribute."""

    def __init__(self) -> None:
        self.calls: dict[str, list[float]] = {}
        self._undo: list[tuple[object, str, object]] = []

    def wrap(self, module, name: str, label: str | None = None) -> None:
        original = getattr(module, name)
        times = self.calls.setdefault(label or name, [])

        def timed(*args, **kwargs):
            started = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                times.append(time.perf_counter() - started)

        setattr(module, name, timed)
        self._undo.append((module, name, original))

    def total(self, label: str) -> float:
        return sum(self.calls.get(label, []))

    def restore(self) -> None:
        for module, name, original in reversed(self._undo):
            setattr(module, name, original)
        self._undo.clear()


def timed(label: str, function: Callable):
    started = time.perf_counter()
    value = function()
    seconds = time.perf_counter() - started
    print(f"{label:52} {seconds:7.2f} s", flush=True)
    return value, seconds
