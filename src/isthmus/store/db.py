"""The database handle: engine and session factory for SQLite (default) or
PostgreSQL (by URL), and schema migration through alembic.

SQLite runs in WAL mode with a busy timeout so the API threads and the engine
workers of one process share it; PostgreSQL is the choice for several processes.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


class Database:
    """One database: `session()` gives a unit of work that commits on success."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        if self.is_sqlite:
            self.engine: Engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20
            )
            event.listen(self.engine, "connect", _sqlite_pragmas)
            # let SQLite take the write lock at BEGIN, so concurrent writers queue
            # on busy_timeout instead of failing with "database is locked"
            event.listen(self.engine, "begin", lambda conn: conn.exec_driver_sql("BEGIN IMMEDIATE"))
            self._disable_pysqlite_begin()
        else:
            self.engine = create_engine(url, pool_size=20, max_overflow=20, pool_pre_ping=True)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # reads need no write lock: on SQLite they get their own engine with a
        # deferred BEGIN so they never queue behind the engine's writers
        self.read_engine: Engine = self.engine
        if self.is_sqlite:
            self.read_engine = create_engine(
                url, connect_args={"check_same_thread": False, "timeout": 30}, pool_size=20
            )
            event.listen(self.read_engine, "connect", _sqlite_pragmas)
        self._read_sessions = sessionmaker(self.read_engine, expire_on_commit=False)

    def _disable_pysqlite_begin(self) -> None:
        @event.listens_for(self.engine, "connect")
        def _no_implicit_begin(dbapi_connection: Any, _record: Any) -> None:
            dbapi_connection.isolation_level = None

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back on error."""
        with self._sessions() as session, session.begin():
            yield session

    @contextmanager
    def read(self) -> Iterator[Session]:
        """A read-only unit of work (never commits anything)."""
        with self._read_sessions() as session:
            yield session
            session.rollback()

    def migrate(self) -> None:
        """Bring the schema to the newest alembic revision (idempotent)."""
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
        with self.engine.begin() as connection:
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, "head")

    def dispose(self) -> None:
        self.engine.dispose()
        self.read_engine.dispose()
