"""Shared pytest fixtures for the Isthmus test suite.

Sections are delimited by banner comments; add new fixtures in a section of their own.
"""

from __future__ import annotations

import contextlib
import itertools
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.postgres import (
    PostgresServer,
    PostgresUnavailable,
    create_database,
    drop_database,
    start_postgres,
)
from tests.support import Cloud, make_service, serve_in_thread

# =============================================================================================
# Databases: a throw-away PostgreSQL server per session, a fresh database per test.
#
#   postgres_server  session-scoped PostgresServer (tests skip, with the reason, if PostgreSQL
#                    cannot run here, e.g. no server binaries installed; they fail instead if
#                    ISTHMUS_REQUIRE_POSTGRES=1)
#   db_url           SQLAlchemy URL of a fresh, empty database; every test using it runs twice,
#                    as [sqlite] and as [postgresql]
# =============================================================================================

_postgres_unavailable: list[str] = []  # the reason, once a start was tried and failed
_db_counter = itertools.count(1)


@pytest.fixture(scope="session")
def postgres_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PostgresServer]:
    """A private PostgreSQL server for the whole session, stopped and removed at its end."""
    try:
        server = start_postgres(tmp_path_factory.mktemp("postgres"))
    except PostgresUnavailable as exc:
        _postgres_unavailable.append(str(exc))
        if os.environ.get("ISTHMUS_REQUIRE_POSTGRES") == "1":
            pytest.fail(f"PostgreSQL unavailable and ISTHMUS_REQUIRE_POSTGRES=1: {exc}")
        pytest.skip(f"PostgreSQL unavailable: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLAlchemy URL of a fresh, empty database for this test (SQLite file or PostgreSQL)."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/isthmus.db"
        return
    server: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"isthmus_t{next(_db_counter)}_{os.getpid()}"
    url = create_database(server, name)
    yield url
    with contextlib.suppress(Exception):  # best effort: the whole server is discarded anyway
        drop_database(server, name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Say loudly when the PostgreSQL variants were skipped."""
    if _postgres_unavailable:
        terminalreporter.write_sep("=", "PostgreSQL unavailable: only SQLite was used", yellow=True)
        terminalreporter.write_line(_postgres_unavailable[0])
    for line in _openstack_site.summary():  # (imported in the OpenStack site section below)
        terminalreporter.write_line(line)


# =============================================================================================
# (end of database fixtures)
# =============================================================================================


# =============================================================================================
# Clouds: a bootstrapped Isthmus over three embedded sites, with its engine running.
#
#   cloud       in-process HTTP (TestClient), on SQLite and PostgreSQL (via db_url)
#   live_cloud  served by uvicorn on a loopback port, with a clouds.yaml for the real
#               openstack CLI (`cloud.clouds_yaml`, clouds `isthmus` and `isthmus-demo`); SQLite
# =============================================================================================


@pytest.fixture
def cloud(tmp_path: Path, db_url: str) -> Iterator[Cloud]:
    service = make_service(tmp_path / "data", db_url, run_engine=True)
    service.start()
    try:
        yield Cloud(service)
    finally:
        service.stop()


@pytest.fixture
def live_cloud(tmp_path: Path) -> Iterator[Cloud]:
    service = make_service(tmp_path / "data", None, run_engine=True)
    service.start()
    cloud = Cloud(service)
    server = serve_in_thread(cloud, tmp_path / "data")
    try:
        yield cloud
    finally:
        server.should_exit = True
        server.thread.join(timeout=10)
        service.stop()


# =============================================================================================
# A real OpenStack site (Debian's Zed packages on loopback): tests/fixtures/openstack_site.py.
#
#   openstack_site  session-scoped OpenStackSite (clouds.yaml, cloud names, endpoints, pids);
#                   its ~3 min bring-up starts in the background right after collection when
#                   a collected test uses it, and is torn down (by pid) at session end
# =============================================================================================

from tests.fixtures import openstack_site as _openstack_site  # noqa: E402
from tests.fixtures.openstack_site import openstack_site  # noqa: E402,F401


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    _openstack_site.run_site_tests_last(items)


def pytest_collection_finish(session: pytest.Session) -> None:
    _openstack_site.launch_if_needed(session.items)


def pytest_sessionfinish(session: pytest.Session) -> None:
    _openstack_site.shutdown()
