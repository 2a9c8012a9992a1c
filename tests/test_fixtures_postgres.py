"""Checks of the test plumbing itself: the throw-away PostgreSQL server and ``db_url``."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest
from sqlalchemy import create_engine, inspect, text
from sqlalchemy.engine import make_url

from tests.fixtures.postgres import (
    PostgresServer,
    PostgresUnavailable,
    create_database,
    start_postgres,
)

_seen_urls: set[str] = set()


def _select_one(url: str) -> int:
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            return int(conn.execute(text("select 1")).scalar_one())
    finally:
        engine.dispose()


def _running(pid: int) -> bool:
    """Whether ``pid`` is alive (a zombie waiting for PID 1 to reap it counts as stopped)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_db_url_connects(db_url: str) -> None:
    assert _select_one(db_url) == 1


@pytest.mark.parametrize("round_", [1, 2])
def test_db_url_is_fresh_and_distinct(db_url: str, round_: int) -> None:
    """Each round finds an empty database, then leaves a table in it: shared databases fail."""
    assert db_url not in _seen_urls
    _seen_urls.add(db_url)
    engine = create_engine(db_url)
    try:
        assert inspect(engine).get_table_names() == []
        with engine.begin() as conn:
            conn.execute(text("create table marker (round integer)"))
            conn.execute(text("insert into marker values (:r)"), {"r": round_})
    finally:
        engine.dispose()


def test_postgres_url_shape(postgres_server: PostgresServer) -> None:
    url = make_url(postgres_server.url)
    assert url.drivername == "postgresql+psycopg"
    assert (url.username, url.host, url.port, url.database) == (
        "postgres",
        "127.0.0.1",
        postgres_server.port,
        "isthmus",
    )
    assert _select_one(postgres_server.url) == 1


def test_create_database_gives_separate_databases(postgres_server: PostgresServer) -> None:
    a = create_database(postgres_server)
    b = create_database(postgres_server)
    assert a != b
    engine_a, engine_b = create_engine(a), create_engine(b)
    try:
        with engine_a.begin() as conn:
            conn.execute(text("create table only_in_a (x integer)"))
        assert inspect(engine_b).get_table_names() == []
    finally:
        engine_a.dispose()
        engine_b.dispose()


@pytest.mark.slow
def test_start_and_stop_leaves_nothing(tmp_path: Path) -> None:
    """A second private server starts, serves, and on stop() its process and directory go."""
    try:
        server = start_postgres(tmp_path)
    except PostgresUnavailable as exc:
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        assert _select_one(server.url) == 1
        pid = server.postmaster_pid()
        assert pid is not None
        assert server.data_dir.is_dir()
    finally:
        server.stop()
    deadline = time.monotonic() + 10
    while _running(pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _running(pid), f"postmaster {pid} still running"
    assert not server.root.exists()
    server.stop()  # idempotent
    assert os.path.exists(tmp_path)
