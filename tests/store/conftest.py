"""Fixtures for the store's unit tests: a migrated database (SQLite and PostgreSQL,
through `db_url`) with three enabled, healthy sites and nothing else."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from isthmus.store.db import Database
from isthmus.store.repo import utcnow
from isthmus.store.tables import Site

SITES = ("site-a", "site-b", "site-c")
CAPACITY = {"vcpus": 16, "ram_mb": 32768, "disk_gb": 400}


@pytest.fixture
def db(db_url: str) -> Iterator[Database]:
    database = Database(db_url)
    database.migrate()
    with database.session() as session:
        for name in SITES:
            session.add(
                Site(
                    name=name,
                    driver="local",
                    config={},
                    health="up",
                    capacity=dict(CAPACITY),
                    allocated={},
                    created_at=utcnow(),
                )
            )
    try:
        yield database
    finally:
        database.dispose()
