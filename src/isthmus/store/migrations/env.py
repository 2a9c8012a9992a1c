"""Alembic environment: runs migrations on the connection `Database.migrate()`
hands over, or on `ISTHMUS_DB_URL` when alembic is run by hand."""

from __future__ import annotations

import os

from alembic import context
from sqlalchemy import create_engine

from isthmus.store.tables import Base

target_metadata = Base.metadata


def run_migrations() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        context.configure(
            connection=connection, target_metadata=target_metadata, render_as_batch=True
        )
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = create_engine(os.environ.get("ISTHMUS_DB_URL", "sqlite:///isthmus.db"))
    with engine.begin() as conn:
        context.configure(connection=conn, target_metadata=target_metadata, render_as_batch=True)
        with context.begin_transaction():
            context.run_migrations()


run_migrations()
