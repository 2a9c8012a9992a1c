"""Copy progress: the driver-side channel (sites/progress.py) and the engine's
throttled reporter that keeps it on the work row (engine/progress.py)."""

from __future__ import annotations

import time

from sqlalchemy import select

from isthmus.engine import progress as copy_progress
from isthmus.engine import queue
from isthmus.sites import progress
from isthmus.store import work
from isthmus.store.db import Database
from isthmus.store.repo import utcnow
from isthmus.store.tables import Site, Work
from tests.waiting import ManualClock


def _db_with_item(db_url: str, kind: str = "image") -> tuple[Database, queue.WorkItem]:
    db = Database(db_url)
    db.migrate()
    with db.session() as session:
        session.add(Site(name="s1", driver="local", config={}, created_at=utcnow(), health="up"))
        work.enqueue(session, "img-1", kind, "s1")
    with db.session() as session:
        (item,) = queue.claim(session, "w1", 10)
    return db, item


def _row(db: Database) -> tuple[int | None, int | None, float | None]:
    with db.read() as session:
        row = session.scalars(select(Work)).one()
        return row.progress_done, row.progress_total, row.progress_at


def test_report_is_a_no_op_without_a_reporter_and_never_breaks_a_copy() -> None:
    progress.report(1, 2)  # nothing installed: nothing happens, nothing raises
    calls: list[tuple[int, int]] = []

    def broken(done: int, total: int) -> None:
        calls.append((done, total))
        raise RuntimeError("store is gone")

    with progress.reporting(broken):
        progress.report(5, 10)  # the reporter fails; the copy goes on
    progress.report(6, 10)  # uninstalled again on leaving the block
    assert calls == [(5, 10)]


def test_throttled_reporter_writes_the_first_the_final_and_one_per_interval(
    db_url: str,
) -> None:
    db, item = _db_with_item(db_url)
    reporter = copy_progress.CopyProgress(db, item.id, interval=3600)
    reporter(0, 1000)
    assert _row(db)[:2] == (0, 1000) and reporter.writes == 1
    before = time.time()
    for done in range(100, 1000, 100):  # within the interval: none of these is written
        reporter(done, 1000)
    assert _row(db)[:2] == (0, 1000) and reporter.writes == 1
    reporter(1000, 1000)  # the final one always is, once
    reporter(1000, 1000)
    done, total, at = _row(db)
    assert (done, total, reporter.writes) == (1000, 1000, 2)
    assert at is not None and at >= before - 1
    reporter.clear()
    assert _row(db) == (None, None, None) and reporter.writes == 3

    # once the interval has passed, the next report is written
    clock = ManualClock()
    paced = copy_progress.CopyProgress(db, item.id, interval=0.05, clock=clock)
    paced(0, 1000)
    clock.advance(0.04)
    paced(10, 1000)  # too soon
    assert _row(db)[:2] == (0, 1000)
    clock.advance(0.02)
    paced(20, 1000)
    assert _row(db)[:2] == (20, 1000) and paced.writes == 2
    db.dispose()


def test_tracking_records_image_copies_and_clears_them_even_when_they_fail(
    db_url: str,
) -> None:
    db, item = _db_with_item(db_url)
    seen: list[tuple[int | None, int | None, float | None]] = []
    try:
        with copy_progress.tracking(db, item) as reporter:
            assert reporter is not None
            progress.report(0, 300)  # what a driver calls while it copies
            seen.append(_row(db))
            with db.read() as session:
                state = work.image_copy(session, "img-1", "s1")
            assert state is not None and state.text() == "0% (0.0 of 0.0 MiB)"
            raise ValueError("the site broke mid-copy")
    except ValueError:
        pass
    assert seen[0][:2] == (0, 300)
    assert _row(db) == (None, None, None)  # cleared although the copy failed
    with db.read() as session:
        assert work.image_copy(session, "img-1", "s1") is None
    db.dispose()


def test_tracking_leaves_kinds_that_copy_nothing_alone(db_url: str) -> None:
    db, item = _db_with_item(db_url, kind="network")
    with copy_progress.tracking(db, item) as reporter:
        assert reporter is None
        progress.report(1, 2)
    assert _row(db) == (None, None, None)
    db.dispose()


def test_copy_state_text() -> None:
    mib = 1024 * 1024
    state = work.CopyState(int(120.0 * mib), int(266.7 * mib), 0.0)
    assert state.text() == "44% (120.0 of 266.7 MiB)"
    assert work.CopyState(5, 5, 0.0).percent == 100
    assert work.CopyState(4, 5, 0.0).percent == 80
    assert work.CopyState(0, 0, 0.0).percent == 100
