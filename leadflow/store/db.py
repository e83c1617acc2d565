"""The single engine/session factory, and the Alembic upgrade applied on first use."""

import io
import itertools
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import Connection, Engine, Table, event, inspect, text
from sqlmodel import Session, create_engine

from leadflow.settings import PROJECT_ROOT
from leadflow.sql import identifier

MIGRATIONS_DIR = PROJECT_ROOT / "migrations"


def alembic_config(url: str) -> AlembicConfig:
    config = AlembicConfig()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    # Staging tables of bulk loads in a temporary file (in memory, a batch of ten million
    # contacts and their properties took 20 GiB; BENCHMARKS: Scale).
    cursor.execute("PRAGMA temp_store=FILE")
    cursor.execute("PRAGMA cache_size=-262144")  # 256 MiB: index upkeep of large batches
    cursor.close()


def _drop_scratch(dbapi_connection, record) -> None:
    """Back in the pool (its transaction over): detach and delete the connection's scratch
    files of bulk loads (`_load_through_scratch`)."""
    if dbapi_connection is not None:
        _detach_finished(dbapi_connection, record.info)


def _detach_finished(dbapi_connection, info: dict) -> int:
    """Detach and delete the scratch files no transaction holds any more; returns how many
    are still attached (locked by the transaction under way)."""
    kept = []
    for schema, path in info.get(SCRATCH_KEY, []):
        try:
            dbapi_connection.execute(f"DETACH DATABASE {identifier(schema)}")
        except Exception:  # noqa: BLE001 - still locked by a transaction: kept for later
            kept.append((schema, path))
            continue
        path.unlink(missing_ok=True)
    info[SCRATCH_KEY] = kept
    return len(kept)


def _close_scratch(_dbapi_connection, record) -> None:
    for _schema, path in record.info.pop(SCRATCH_KEY, []):
        path.unlink(missing_ok=True)


def _remove_orphan_scratch(database: Path) -> None:
    """Scratch files that a process which has ended left beside the state store."""
    for path in database.parent.glob(f"{database.name}.bulk-*"):
        pid = path.name.rsplit(".bulk-", 1)[1].split("-", 1)[0]
        try:
            os.kill(int(pid), 0)
        except (ValueError, ProcessLookupError):
            path.unlink(missing_ok=True)
        except PermissionError:
            pass


def make_engine(url: str) -> Engine:
    """An engine for `url`; a local SQLite file gets its folder created and sane pragmas."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[1] if "///" in url else ""
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
            _remove_orphan_scratch(Path(database))
        engine = create_engine(url)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "checkin", _drop_scratch)
        event.listen(engine, "close", _close_scratch)
        return engine
    return create_engine(url, pool_pre_ping=True)


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Bring the schema to `revision` (idempotent)."""
    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, revision)


def schema_is_current(engine: Engine) -> bool:
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    heads = set(ScriptDirectory.from_config(alembic_config(str(engine.url))).get_heads())
    with engine.connect() as connection:
        if not inspect(connection).has_table("alembic_version"):
            return False
        return set(MigrationContext.configure(connection).get_current_heads()) == heads


@cache
def get_engine(url: str) -> Engine:
    """The process-wide engine for `url`, migrated to the latest schema on first use."""
    engine = make_engine(url)
    if not schema_is_current(engine):
        upgrade(engine)
    return engine


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """A session whose work commits on success and rolls back whole on any error."""
    with Session(engine) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


def bump_state_version(db: Connection) -> None:
    """Call in every transaction that changes scores, stages, marketing statuses or demotions:
    the run cache's mirror of them (`leadflow.pipeline.mirror`) is only valid at the version it
    saw."""
    db.execute(text("UPDATE state_version SET token = :token"), {"token": uuid.uuid4().hex})


BULK_CHUNK_ROWS = 200_000


def bulk_load(connection: Connection, table: Table, rows: pa.Table | pa.RecordBatchReader) -> int:
    """Append Arrow rows to `table` fast: COPY on PostgreSQL, a plain executemany on SQLite;
    returns how many. A `RecordBatchReader` (DuckDB's `to_arrow_reader`) is written batch by
    batch, so that a ten-million-row load never holds its rows in memory at once.

    Going through the ORM or SQLAlchemy's executemany costs ~20 µs per row in Python, which is
    most of an ingest of a million property values; this path is a few µs per row. Timestamps
    are written in the storage format SQLAlchemy's DateTime uses on each dialect, so rows read
    back through the models exactly as if the ORM had written them.
    """
    names = [column.name for column in table.columns if column.name in rows.schema.names]
    batches = rows.to_batches(BULK_CHUNK_ROWS) if isinstance(rows, pa.Table) else rows
    count = 0
    if connection.dialect.name == "postgresql":
        cursor = connection.connection.driver_connection.cursor()
        column_list = ", ".join(identifier(name) for name in names)
        options = pacsv.WriteOptions(include_header=False)
        statement = f"COPY {identifier(table.name)} ({column_list}) FROM STDIN (FORMAT csv)"
        with cursor.copy(statement) as copy:
            for batch in batches:
                buffer = io.BytesIO()
                pacsv.write_csv(pa.Table.from_batches([batch.select(names)]), buffer, options)
                copy.write(buffer.getvalue())
                count += batch.num_rows
        return count
    batches = iter(batches)
    first = next(batches, None)
    if first is None:
        return 0
    batches = itertools.chain([first], batches)
    database = connection.engine.url.database
    large = rows.num_rows if isinstance(rows, pa.Table) else first.num_rows
    if (
        database
        and database != ":memory:"
        and large >= SCRATCH_MIN_ROWS
        # SQLite attaches at most 10 databases: past 8 in one transaction, row by row.
        and _detach_finished(connection.connection.driver_connection, connection.connection.info)
        < SCRATCH_MAX_ATTACHED
    ):
        return _load_through_scratch(connection, table, names, batches, Path(database))
    statement = (
        f"INSERT INTO {identifier(table.name)} ({', '.join(map(identifier, names))}) "
        f"VALUES ({', '.join('?' for _ in names)})"
    )
    for batch in batches:  # bounded memory: Python rows are big
        batch = _sqlite_values(batch.select(names))
        columns = [column.to_pylist() for column in batch.columns]
        if batch.num_rows:
            connection.exec_driver_sql(statement, list(zip(*columns, strict=True)))
        count += batch.num_rows
    return count


# A load of at least this many rows (its first batch's, for a stream) goes to SQLite through a
# scratch file: Arrow's SQLite driver writes it in C (1.3 s for 2.1M scores, where the
# driver's executemany takes 3.6 s), then one INSERT … SELECT copies it in (BENCHMARKS: Full
# rescore).
SCRATCH_MIN_ROWS = 50_000
SCRATCH_MAX_ATTACHED = 8
SCRATCH_KEY = "leadflow_bulk_scratch"


def _sqlite_values(batch: pa.RecordBatch) -> pa.RecordBatch:
    """Timestamps as SQLAlchemy's DateTime stores them on SQLite: "2026-01-01 00:00:05.000000"
    in UTC (casting a zone-less timestamp is ten times faster than one with a zone)."""
    columns = []
    for column in batch.columns:
        if pa.types.is_timestamp(column.type):
            utc = column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())
            column = utc.cast(pa.timestamp("us")).cast(pa.string())
        columns.append(column)
    return pa.record_batch(columns, names=batch.schema.names)


def _load_through_scratch(
    connection: Connection,
    table: Table,
    names: list[str],
    batches: Iterator[pa.RecordBatch],
    database: Path,
) -> int:
    """Write the rows into a scratch SQLite file beside the state store with Arrow's SQLite
    driver, attach it and copy them in, in `connection`'s transaction. The file is detached and
    deleted when the connection goes back to the pool (`_drop_scratch`): SQLite keeps it locked
    until the transaction ends."""
    import adbc_driver_sqlite.dbapi as adbc_sqlite

    token = uuid.uuid4().hex[:16]
    scratch = database.with_name(f"{database.name}.bulk-{os.getpid()}-{token}")
    schema = f"bulk_{token}"
    count = 0

    def counted() -> Iterator[pa.RecordBatch]:
        nonlocal count
        for batch in batches:
            count += batch.num_rows
            yield _sqlite_values(batch.select(names))

    converted = counted()
    first = next(converted)
    reader = pa.RecordBatchReader.from_batches(first.schema, itertools.chain([first], converted))
    try:
        with adbc_sqlite.connect(str(scratch)) as scratch_db:
            with scratch_db.cursor() as cursor:
                cursor.execute("PRAGMA journal_mode=OFF")
                cursor.adbc_ingest("rows", reader, mode="create")
            scratch_db.commit()
        connection.exec_driver_sql(f"ATTACH DATABASE ? AS {identifier(schema)}", (str(scratch),))
    except BaseException:
        scratch.unlink(missing_ok=True)
        raise
    connection.connection.info.setdefault(SCRATCH_KEY, []).append((schema, scratch))
    column_list = ", ".join(map(identifier, names))
    connection.exec_driver_sql(
        f"INSERT INTO {identifier(table.name)} ({column_list}) "
        f"SELECT {column_list} FROM {identifier(schema)}.rows"
    )
    return count


@contextmanager
def connected(source: Engine | Connection) -> Iterator[Connection]:
    """`source` itself if it is a connection (so a read sees its transaction's writes), else a
    new connection of the engine, closed afterwards."""
    if isinstance(source, Connection):
        yield source
        return
    with source.connect() as connection:
        yield connection


def read_arrow(source: Engine | Connection, sql: str, schema: pa.Schema) -> pa.Table:
    """Run a plain SQL query (no parameters) through the DB-API cursor into an Arrow table.

    For large reads (every contact, every score): SQLAlchemy's Row objects cost about a
    microsecond per value; the driver's tuples go straight into Arrow, chunk by chunk.
    """
    batches = []
    with connected(source) as connection:
        cursor = connection.connection.driver_connection.cursor()
        cursor.execute(sql)
        while rows := cursor.fetchmany(BULK_CHUNK_ROWS):
            columns = list(zip(*rows, strict=True))
            batches.append(
                pa.record_batch(
                    [
                        pa.array(values, field.type)
                        for values, field in zip(columns, schema, strict=True)
                    ],
                    schema=schema,
                )
            )
        cursor.close()
    return pa.Table.from_batches(batches, schema=schema)
