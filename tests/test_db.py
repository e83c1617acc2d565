"""Schema management: the Alembic migrations are the models, on SQLite and PostgreSQL; bulk
loads into the store."""

import os
import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import pyarrow as pa
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import (
    Boolean,
    Column,
    Date,
    DateTime,
    Float,
    Integer,
    MetaData,
    String,
    Table,
    inspect,
    select,
)

from leadflow.store.db import (
    SCRATCH_MAX_ATTACHED,
    SCRATCH_MIN_ROWS,
    bulk_load,
    make_engine,
    schema_is_current,
    upgrade,
)
from models import SQLModel


def test_migrations_create_exactly_the_models_schema(database_url):
    engine = make_engine(database_url)
    assert not schema_is_current(engine)
    upgrade(engine)
    assert schema_is_current(engine)
    with engine.connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), SQLModel.metadata)
    assert differences == []
    upgrade(engine)  # idempotent
    engine.dispose()


def test_downgrade_to_base_removes_every_table(database_url):
    engine = make_engine(database_url)
    upgrade(engine)
    upgrade_tables = set(inspect(engine).get_table_names())
    assert {
        "contact",
        "contact_property_history",
        "ingest_batch",
        "quarantined_row",
    } <= upgrade_tables

    from alembic import command

    from leadflow.store.db import alembic_config

    config = alembic_config(engine.url.render_as_string(hide_password=False))
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    engine.dispose()


def _bulk_rows(count: int) -> pa.Table:
    """Every kind of value the stores' staging tables take, nulls among them."""
    start = datetime(2026, 3, 29, 0, 59, 59, 123456, tzinfo=UTC)  # Paris' clocks change
    return pa.table(
        {
            "number": pa.array([i if i % 7 else None for i in range(count)], pa.int64()),
            "name": pa.array([f"é{i}" if i % 5 else None for i in range(count)]),
            "value": pa.array([i / 3 for i in range(count)]),
            "flag": pa.array([i % 3 == 0 if i % 4 else None for i in range(count)]),
            "at": pa.array([start + timedelta(seconds=i) for i in range(count)]),
            "day": pa.array([date(2026, 1, 1) + timedelta(days=i % 400) for i in range(count)]),
        }
    )


def test_a_large_bulk_load_on_sqlite_goes_through_a_scratch_file_and_stores_the_same(tmp_path):
    database = tmp_path / "state.db"
    engine = make_engine(f"sqlite:///{database}")
    metadata = MetaData()
    through_scratch, row_by_row = (
        Table(
            name,
            metadata,
            Column("number", Integer),
            Column("name", String),
            Column("value", Float),
            Column("flag", Boolean),
            Column("at", DateTime(timezone=True)),
            Column("day", Date),
        )
        for name in ("through_scratch", "row_by_row")
    )
    metadata.create_all(engine)
    rows = _bulk_rows(SCRATCH_MIN_ROWS + 1)
    small = rows.to_batches(SCRATCH_MIN_ROWS // 4)  # first batch under the threshold: executemany
    with engine.begin() as db:
        assert bulk_load(db, through_scratch, rows) == rows.num_rows
        assert len(list(tmp_path.glob("state.db.bulk-*"))) == 1  # locked until the commit
        assert bulk_load(db, row_by_row, pa.RecordBatchReader.from_batches(rows.schema, small))
    assert list(tmp_path.glob("state.db.bulk-*")) == []
    with engine.connect() as db:
        attached = [row[1] for row in db.exec_driver_sql("PRAGMA database_list")]
        assert not [name for name in attached if name.startswith("bulk_")]
        values = "number, name, value, flag, at, day, typeof(at), typeof(flag), typeof(day)"
        stored = [
            db.exec_driver_sql(f"SELECT {values} FROM {name} ORDER BY rowid").fetchall()
            for name in ("through_scratch", "row_by_row")
        ]
        assert stored[0] == stored[1] and len(stored[0]) == rows.num_rows
        read = db.execute(select(through_scratch).where(through_scratch.c.number == 1)).one()
    assert read.at == datetime(2026, 3, 29, 1, 0, 0, 123456)  # SQLite's DateTime reads naive UTC
    assert (read.flag, read.day, read.name) == (False, date(2026, 1, 2), "é1")
    # Rolled back: nothing stored, and the scratch file goes with the connection's transaction.
    with pytest.raises(RuntimeError), engine.begin() as db:
        bulk_load(db, through_scratch, rows)
        raise RuntimeError("the day failed")
    assert list(tmp_path.glob("state.db.bulk-*")) == []
    with engine.connect() as db:
        count = db.exec_driver_sql("SELECT count(*) FROM through_scratch").scalar()
    assert count == rows.num_rows
    engine.dispose()


def test_more_large_loads_in_one_transaction_than_sqlite_can_attach_all_go_in(tmp_path):
    """SQLite attaches at most 10 databases; the 9th large load of a transaction goes row by
    row, and the next transaction attaches again (the earlier files detached)."""
    engine = make_engine(f"sqlite:///{tmp_path / 'state.db'}")
    metadata = MetaData()
    table = Table("many", metadata, Column("number", Integer))
    metadata.create_all(engine)
    rows = pa.table({"number": pa.array(range(SCRATCH_MIN_ROWS), pa.int64())})
    with engine.connect() as db:
        with db.begin():
            for _ in range(12):
                bulk_load(db, table, rows)
            assert len(list(tmp_path.glob("state.db.bulk-*"))) == SCRATCH_MAX_ATTACHED
        with db.begin():
            bulk_load(db, table, rows)
            assert len(list(tmp_path.glob("state.db.bulk-*"))) == 1
        assert db.exec_driver_sql("SELECT count(*) FROM many").scalar() == 13 * rows.num_rows
    assert list(tmp_path.glob("state.db.bulk-*")) == []
    engine.dispose()


def test_scratch_files_of_ended_processes_are_removed_when_the_store_is_opened(tmp_path):
    database = tmp_path / "state.db"
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], check=True,
                           capture_output=True, text=True).stdout.strip()  # fmt: skip
    orphan = tmp_path / f"state.db.bulk-{ended}-0123456789abcdef"
    live = tmp_path / f"state.db.bulk-{os.getpid()}-0123456789abcdef"
    orphan.write_bytes(b"")
    live.write_bytes(b"")
    make_engine(f"sqlite:///{database}").dispose()
    assert not orphan.exists() and live.exists()
