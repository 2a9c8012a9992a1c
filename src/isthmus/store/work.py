"""Requests for work: the rows of table `work`, one per (resource, site), and what
they say about a copy under way.

The one rule about enqueueing: a work row is written only here. `enqueue` and
`enqueue_many` are called in the same transaction that changes intent, by the
store's write functions (`repo.change`, `repo.mark_deleting`, `ports.create_port`)
and by the callers of `repo.add` (intent/ functions, the engine's follow-ups);
a second request for the same pair bumps `seq` instead of adding a row. Taking
work (claim, lease, complete, retry) is the engine's (engine/queue.py).

A copy of data into a site (image data) records its progress on its row
(engine/progress.py writes it while the copy runs); `CopyState`, `state_of` and
`image_copy` read it for `repo.pending_reason`, the admin views and the metrics.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

from sqlalchemy import case, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from isthmus.store.tables import Work

MIB = 1024 * 1024


def enqueue(
    session: Session,
    resource_id: str,
    kind: str,
    site: str,
    delay: float = 0.0,
    if_absent: bool = False,
    debounce: bool = False,
) -> None:
    """Ask for (resource, site) to be reconciled, at the earliest after `delay` s.
    With `if_absent`, a request already queued for the pair is left as it is (a
    prerequisite asked for by many waiters is not re-requested by each).
    With `debounce`, many requests within `delay` make one pass: a queued request
    keeps its earlier time, and one under way is asked to run once more after
    `delay`."""
    enqueue_many(session, [(resource_id, kind, site)], delay, if_absent, debounce)


def enqueue_many(
    session: Session,
    items: list[tuple[str, str, str]],
    delay: float = 0.0,
    if_absent: bool = False,
    debounce: bool = False,
) -> None:
    """`enqueue` for several (resource id, kind, site) in one statement."""
    if not items:
        return
    now = time.time()
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(Work).values(
        [
            {
                "resource_id": resource_id,
                "kind": kind,
                "site": site,
                "seq": 1,
                "not_before": now + delay,
                "attempts": 0,
                "lease_until": 0.0,
                "created_at": now,
            }
            for resource_id, kind, site in items
        ]
    )
    if if_absent:
        stmt = stmt.on_conflict_do_nothing(index_elements=[Work.resource_id, Work.site])
    elif debounce:
        under_way = Work.lease_until >= now
        stmt = stmt.on_conflict_do_update(
            index_elements=[Work.resource_id, Work.site],
            set_={
                "seq": case((under_way, Work.seq + 1), else_=Work.seq),
                "not_before": case(
                    (under_way, now + delay),
                    (Work.not_before < now + delay, Work.not_before),
                    else_=now + delay,
                ),
            },
        )
    else:
        stmt = stmt.on_conflict_do_update(
            index_elements=[Work.resource_id, Work.site],
            set_={"seq": Work.seq + 1, "not_before": now + delay, "attempts": 0},
        )
    session.execute(stmt)


# -- copy progress, as recorded on a work row ---------------------------------------------


@dataclass(frozen=True)
class CopyState:
    """How far one copy is: bytes done of bytes total, as last recorded."""

    done: int
    total: int
    at: float  # epoch seconds of the last record

    @property
    def percent(self) -> int:
        """Whole percent done, rounded down (100 only once every byte is through)."""
        if self.total <= 0:
            return 100
        return min(100, self.done * 100 // self.total)

    def text(self) -> str:
        """'45% (120.0 of 266.7 MiB)'."""
        return f"{self.percent}% ({self.done / MIB:.1f} of {self.total / MIB:.1f} MiB)"


def state_of(row: Work) -> CopyState | None:
    """The copy under way for a work row, or None."""
    if row.progress_total is None or row.progress_done is None:
        return None
    return CopyState(int(row.progress_done), int(row.progress_total), float(row.progress_at or 0))


def image_copy(session: Session, image_id: str, site: str) -> CopyState | None:
    """The copy of image `image_id` into `site` under way, if any."""
    row = session.execute(
        select(Work.progress_done, Work.progress_total, Work.progress_at).where(
            Work.resource_id == image_id,
            Work.site == site,
            Work.progress_total.is_not(None),
        )
    ).first()
    if row is None or row.progress_done is None:
        return None
    return CopyState(int(row.progress_done), int(row.progress_total), float(row.progress_at or 0))
