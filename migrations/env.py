"""Alembic environment: runs on the connection leadflow hands over (see leadflow.db.upgrade)."""

from alembic import context
from sqlalchemy import create_engine

import models

target_metadata = models.SQLModel.metadata
config = context.config


def run_migrations(connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


connection = config.attributes.get("connection")
if connection is not None:
    run_migrations(connection)
else:  # plain `alembic` command line
    with create_engine(config.get_main_option("sqlalchemy.url")).begin() as own_connection:
        run_migrations(own_connection)
