"""The run cache: a DuckDB file in the lake's local folder (`<lake>/_cache/run.duckdb`; always on
this machine, also for a lake on S3) holding what a day run would otherwise re-read or
recompute in full every day: the aggregate ledger
(`leadflow.scoring.ledger`) and a mirror of the state (`leadflow.pipeline.mirror`).

It is a cache, never the truth: every part records what it was built from (in `cache.meta`),
and a part that does not match is rebuilt from the lake and the state store. Deleting the file
is always safe. Only state-changing runs use it, under the state lock.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from leadflow.sql import literal

SCHEMA = [
    "CREATE TABLE IF NOT EXISTS cache.meta (name VARCHAR PRIMARY KEY, value VARCHAR)",
    "CREATE TABLE IF NOT EXISTS cache.ledger_batches (batch_id VARCHAR)",
]


def cache_path(lake_local: Path) -> Path:
    return Path(lake_local) / "_cache" / "run.duckdb"


@contextmanager
def attached(connection: duckdb.DuckDBPyConnection, path: Path) -> Iterator[None]:
    """Attach the cache file as `cache` (a new one if missing or unreadable)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        connection.execute(f"ATTACH {literal(path.as_posix())} AS cache")
    except duckdb.Error:  # written by another DuckDB version, or damaged: start again
        path.unlink(missing_ok=True)
        Path(f"{path}.wal").unlink(missing_ok=True)
        connection.execute(f"ATTACH {literal(path.as_posix())} AS cache")
    try:
        for statement in SCHEMA:
            connection.execute(statement)
        yield
    finally:
        connection.execute("DETACH cache")


@contextmanager
def transaction(connection: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """All or nothing in the cache file (a transaction may write to one database only: create
    temporary tables before it)."""
    connection.execute("BEGIN")
    try:
        yield
    except BaseException:
        connection.execute("ROLLBACK").fetchall()
        raise
    connection.execute(
        "COMMIT"
    ).fetchall()  # fetched: DuckDB refuses new work over a pending result


def get_meta(connection: duckdb.DuckDBPyConnection, name: str) -> str | None:
    # fetchall, not fetchone: DuckDB refuses new work on a connection with rows left to fetch
    rows = connection.execute("SELECT value FROM cache.meta WHERE name = ?", [name]).fetchall()
    return rows[0][0] if rows else None


def set_meta(connection: duckdb.DuckDBPyConnection, name: str, value: str | None) -> None:
    connection.execute(
        "INSERT OR REPLACE INTO cache.meta VALUES (?, ?)",
        [name, value],
    )
