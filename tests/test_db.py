"""Schema management: the Alembic migrations are the models, on SQLite and PostgreSQL."""

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect

from leadflow.store.db import make_engine, schema_is_current, upgrade
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
