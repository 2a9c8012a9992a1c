"""The work queue: one row per (resource, site), leases, re-requests, expiry."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select, update

from isthmus.engine import queue
from isthmus.store import work
from isthmus.store.db import Database
from isthmus.store.repo import utcnow
from isthmus.store.tables import Site, Work


def _db(db_url: str) -> Database:
    db = Database(db_url)
    db.migrate()
    with db.session() as session:
        session.add(Site(name="s1", driver="local", config={}, created_at=utcnow(), health="up"))
    return db


def test_enqueue_twice_keeps_one_row_and_bumps_seq(db_url: str) -> None:
    db = _db(db_url)
    with db.session() as session:
        work.enqueue(session, "r1", "network", "s1")
        work.enqueue(session, "r1", "network", "s1")
        work.enqueue(session, "r1", "network", "s1")
    with db.read() as session:
        rows = session.scalars(select(Work)).all()
        assert [(r.resource_id, r.seq) for r in rows] == [("r1", 3)]
    db.dispose()


def test_a_leased_item_is_not_claimed_twice_until_the_lease_runs_out(db_url: str) -> None:
    db = _db(db_url)
    with db.session() as session:
        work.enqueue(session, "r1", "network", "s1")
    with db.session() as session:
        first = queue.claim(session, "w1", 10)
    with db.session() as session:
        assert queue.claim(session, "w2", 10) == []
    with db.session() as session:  # w1 died: its lease runs out
        session.execute(update(Work).values(lease_until=0.0))
    with db.session() as session:
        again = queue.claim(session, "w2", 10)
    assert [i.resource_id for i in first] == [i.resource_id for i in again] == ["r1"]
    db.dispose()


def test_completing_an_older_request_keeps_the_newer_one(db_url: str) -> None:
    db = _db(db_url)
    with db.session() as session:
        work.enqueue(session, "r1", "network", "s1")
    with db.session() as session:
        (item,) = queue.claim(session, "w1", 10)
    with db.session() as session:  # the intent changed while w1 worked
        work.enqueue(session, "r1", "network", "s1")
    with db.session() as session:
        queue.complete(session, item)
    with db.session() as session:
        (again,) = queue.claim(session, "w1", 10)
        assert again.seq == item.seq + 1
        queue.complete(session, again)
    with db.read() as session:
        assert queue.pending_count(session) == 0
    db.dispose()


def test_work_of_a_down_site_is_not_claimed(db_url: str) -> None:
    db = _db(db_url)
    with db.session() as session:
        work.enqueue(session, "r1", "network", "s1")
        session.execute(update(Site).values(health="down"))
    with db.session() as session:
        assert queue.claim(session, "w1", 10) == []
    with db.session() as session:
        session.execute(update(Site).values(health="up"))
    with db.session() as session:
        assert len(queue.claim(session, "w1", 10)) == 1
    db.dispose()


def test_retry_later_waits_unless_re_requested(db_url: str, tmp_path: Path) -> None:
    db = _db(db_url)
    with db.session() as session:
        work.enqueue(session, "r1", "network", "s1")
    with db.session() as session:
        (item,) = queue.claim(session, "w1", 10)
        queue.retry_later(session, item, 60.0, "site busy")
    with db.session() as session:
        assert queue.claim(session, "w1", 10) == []
        work.enqueue(session, "r1", "network", "s1")
    with db.session() as session:
        assert len(queue.claim(session, "w1", 10)) == 1
    db.dispose()
