"""Progress of data copies into sites (image data), kept on the work item's row.

While a worker runs `driver.ensure` for an image, `tracking(db, item)` installs a
`CopyProgress` reporter (sites/progress.py) for that call. The driver reports
`(bytes_done, bytes_total)` as it copies; the reporter writes them to the item's
`work` row (`progress_done`, `progress_total`, `progress_at`) in its own short
transaction, at most once per `interval` seconds (the first report and the final
one, all bytes through, are always written). When `ensure` returns or fails the
columns are cleared, so a row shows progress only while its copy is under way.

How a row's copy reads (`CopyState`, `image_copy`) is the store's: store/work.py.
Readers: `repo.pending_reason` (a server waiting for its image in that site says
"copying image NAME to SITE: 45% (120.0 of 266.7 MiB)"), the admin work and
resource views (api/admin/sites.py, `isthmus work`, `isthmus resource show`) and the
Prometheus gauges (api/admin/metrics.py).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from sqlalchemy import update

from isthmus.engine.queue import WorkItem
from isthmus.sites import progress
from isthmus.store.db import Database
from isthmus.store.tables import Work

log = logging.getLogger(__name__)

WRITE_INTERVAL_SECONDS = 1.0
TRACKED_KINDS = frozenset({"image"})


class CopyProgress:
    """A reporter (sites/progress.py) that records one work item's copy on its row,
    throttled to one write per `interval` seconds plus the first and the final one."""

    def __init__(
        self,
        db: Database,
        work_id: int,
        interval: float = WRITE_INTERVAL_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.db = db
        self.work_id = work_id
        self.interval = interval
        self.clock = clock  # seconds, for the throttle only
        self.writes = 0
        self._last_write: float | None = None
        self._final_written = False

    def __call__(self, bytes_done: int, bytes_total: int) -> None:
        now = self.clock()
        final = bytes_total >= 0 and bytes_done >= bytes_total
        if final:
            if self._final_written:
                return
        elif self._last_write is not None and now - self._last_write < self.interval:
            return
        self._store(bytes_done, bytes_total)
        self._last_write = now
        self._final_written = final

    def _store(self, done: int | None, total: int | None) -> None:
        try:
            with self.db.session() as session:
                session.execute(
                    update(Work)
                    .execution_options(synchronize_session=False)
                    .where(Work.id == self.work_id)
                    .values(
                        progress_done=done,
                        progress_total=total,
                        progress_at=time.time() if total is not None else None,
                    )
                )
            self.writes += 1
        except Exception:  # a busy store must not fail the copy; the next report retries
            log.exception("recording copy progress of work item %s failed", self.work_id)

    def clear(self) -> None:
        """The copy ended (done or failed): the row shows no progress any more."""
        if self.writes:
            self._store(None, None)


@contextmanager
def tracking(db: Database, item: WorkItem) -> Iterator[CopyProgress | None]:
    """Around `driver.ensure` for `item`: records the copy's progress on the item's
    row when its kind copies data (images), and clears it when the call ends."""
    if item.kind not in TRACKED_KINDS:
        yield None
        return
    reporter = CopyProgress(db, item.id)
    try:
        with progress.reporting(reporter):
            yield reporter
    finally:
        reporter.clear()
