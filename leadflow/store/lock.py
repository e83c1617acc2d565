"""Never two state-changing runs at once, whoever starts them (a deployment, the CLI, a test).

The lock belongs to the state store and dies with the process holding it, so a crashed run
never leaves it stuck: on SQLite an exclusive `flock` on `<database>.lock` beside the file, on
PostgreSQL a session advisory lock keyed by the schema. It is re-entrant within a process (the
daily flow holds it while its ingest takes it again).
"""

import fcntl
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import Engine, text

from leadflow.errors import UserError

POLL_SECONDS = 0.5
_held: dict[str, int] = {}  # lock key -> depth, in this process
_held_lock = threading.Lock()


class RunInProgress(UserError, RuntimeError):
    """Another run is changing the same state store (the message says which, when known)."""


@contextmanager
def state_lock(engine: Engine, holder: str, wait_seconds: float = 0) -> Iterator[None]:
    """Hold the state store's run lock for the block; wait up to `wait_seconds` for it, then
    raise RunInProgress naming the run that has it."""
    key = engine.url.render_as_string(hide_password=True)
    with _held_lock:
        if _held.get(key):
            _held[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _held_lock:
                _held[key] -= 1
        return
    acquire = _sqlite_lock if engine.dialect.name == "sqlite" else _postgres_lock
    with acquire(engine, holder, wait_seconds):
        with _held_lock:
            _held[key] = 1
        try:
            yield
        finally:
            with _held_lock:
                _held.pop(key, None)


def describe_holder(holder: str) -> str:
    started = datetime.now(UTC).isoformat(timespec="seconds")
    return f"{holder} (pid {os.getpid()} on {socket.gethostname()}, since {started})"


@contextmanager
def _sqlite_lock(engine: Engine, holder: str, wait_seconds: float) -> Iterator[None]:
    database = engine.url.database
    if not database or database == ":memory:":
        yield  # a private in-memory store: nobody else can change it
        return
    path = Path(database).resolve().with_name(Path(database).name + ".lock")
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a+") as handle:
        deadline = time.monotonic() + wait_seconds
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    handle.seek(0)
                    other = handle.read().strip() or "another run"
                    raise RunInProgress(
                        f"{path}: the state store is being changed by {other}; "
                        "try again when it finishes"
                    ) from None
                time.sleep(POLL_SECONDS)
        handle.seek(0)
        handle.truncate()
        handle.write(describe_holder(holder))
        handle.flush()
        try:
            yield
        finally:
            handle.seek(0)
            handle.truncate()
            handle.flush()
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def _postgres_lock(engine: Engine, holder: str, wait_seconds: float) -> Iterator[None]:
    """A session advisory lock; the holder's description goes to `run_lock_holder`, keyed by a
    token that is also the session's application_name (at most 63 characters), so that a
    refused run names the holder in full."""
    key = "hashtext('leadflow:' || current_schema())"
    token = uuid.uuid4().hex
    with engine.connect() as connection:
        deadline = time.monotonic() + wait_seconds
        while not connection.execute(text(f"SELECT pg_try_advisory_lock({key})")).scalar():
            connection.rollback()
            if time.monotonic() >= deadline:
                raise RunInProgress(
                    f"{engine.url.render_as_string(hide_password=True)}: the state store is "
                    f"being changed by {_postgres_holder(connection)}; try again when it "
                    "finishes"
                )
            time.sleep(POLL_SECONDS)
        connection.execute(
            text("SELECT set_config('application_name', :name, false)"),
            {"name": f"{APPLICATION_PREFIX}{token}"},
        )
        connection.commit()
        _describe_postgres_holder(engine, token, describe_holder(holder))
        try:
            yield
        finally:
            connection.execute(text(f"SELECT pg_advisory_unlock({key})"))
            connection.execute(text("RESET application_name"))
            connection.execute(
                text("DELETE FROM run_lock_holder WHERE token = :token"), {"token": token}
            )
            connection.commit()


APPLICATION_PREFIX = "leadflow:"
HOLDERS_SQL = """SELECT h.holder FROM pg_stat_activity a
                 JOIN run_lock_holder h ON a.application_name = :prefix || h.token
                 WHERE a.pid <> pg_backend_pid() LIMIT 1"""


def _describe_postgres_holder(engine: Engine, token: str, description: str) -> None:
    """Record who holds the lock (committed at once, so that others can read it), and forget
    the holders whose sessions are gone (killed runs)."""
    with engine.begin() as connection:
        connection.execute(
            text(
                """DELETE FROM run_lock_holder WHERE :prefix || token NOT IN (
                       SELECT application_name FROM pg_stat_activity
                       WHERE application_name IS NOT NULL)"""
            ),
            {"prefix": APPLICATION_PREFIX},
        )
        connection.execute(
            text("INSERT INTO run_lock_holder (token, holder) VALUES (:token, :holder)"),
            {"token": token, "holder": description},
        )


def _postgres_holder(connection) -> str:
    holder = connection.execute(text(HOLDERS_SQL), {"prefix": APPLICATION_PREFIX}).scalar()
    connection.rollback()
    return holder or "another run"
