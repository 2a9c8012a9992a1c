"""Taking work: the engine's side of table `work` (one row per (resource, site)).

- Requests for work (a new row, or `seq` bumped on a queued one) are written only
  by store/work.py (`enqueue`, in the transaction that changes intent); this
  module claims, leases, completes and retries them.
- `claim` leases ready rows to one worker. On PostgreSQL it uses
  FOR UPDATE SKIP LOCKED so several processes never take the same row; on SQLite
  the transaction itself is exclusive (BEGIN IMMEDIATE).
- A lease expires unless renewed, so work held by a killed process is taken
  over by the next worker after `LEASE_SECONDS`.
- `complete` drops the row unless a newer request arrived meanwhile; `retry_later`
  releases it with a delay.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import CursorResult, Select, case, delete, func, select, update
from sqlalchemy.orm import Session

from isthmus.store.tables import Site, Work
from isthmus.store.work import enqueue

LEASE_SECONDS = 10.0


@dataclass(frozen=True)
class WorkItem:
    id: int
    resource_id: str
    kind: str
    site: str
    seq: int
    attempts: int


def workable_sites() -> Select[str]:
    """The sites work may be sent to: registered and not down. Work for a site
    removed by force (store/site_removal.py) waits, shown as for a removed site,
    instead of failing against a driver that is not there."""
    return select(Site.name).where(Site.health != "down")


def claim(session: Session, owner: str, limit: int) -> list[WorkItem]:
    """Lease up to `limit` ready rows of sites that are up to `owner` (`workable_sites`)."""
    now = time.time()
    query = (
        select(Work)
        .where(Work.not_before <= now, Work.lease_until < now, Work.site.in_(workable_sites()))
        .order_by(Work.not_before, Work.id)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Work)
    rows = session.scalars(query).all()
    if not rows:
        return []
    session.execute(
        update(Work)
        .execution_options(synchronize_session=False)
        .where(Work.id.in_([row.id for row in rows]))
        .values(lease_owner=owner, lease_until=now + LEASE_SECONDS)
    )
    return [WorkItem(r.id, r.resource_id, r.kind, r.site, r.seq, r.attempts) for r in rows]


def claim_pair(
    session: Session, owner: str, resource_id: str, kind: str, site: str
) -> WorkItem | None:
    """Lease the item for (resource, site) now, queueing it first if needed; None
    when another worker holds it. Lets a worker bring a prerequisite along."""
    enqueue(session, resource_id, kind, site, if_absent=True)
    now = time.time()
    # An UPDATE or DELETE answers a CursorResult (with rowcount); Session.execute's
    # stub only promises a Result.
    result = cast(
        CursorResult[Any],
        session.execute(
            update(Work)
            .execution_options(synchronize_session=False)
            .where(Work.resource_id == resource_id, Work.site == site, Work.lease_until < now)
            .values(lease_owner=owner, lease_until=now + LEASE_SECONDS)
        ),
    )
    if result.rowcount != 1:
        return None
    row = session.scalar(select(Work).where(Work.resource_id == resource_id, Work.site == site))
    if row is None:
        return None
    return WorkItem(row.id, row.resource_id, row.kind, row.site, row.seq, row.attempts)


def renew(session: Session, owner: str) -> None:
    """Extend every lease `owner` holds."""
    session.execute(
        update(Work)
        .execution_options(synchronize_session=False)
        .where(Work.lease_owner == owner)
        .values(lease_until=time.time() + LEASE_SECONDS)
    )


def complete(session: Session, item: WorkItem) -> None:
    """Done with `item`: drop it, or keep it for another pass if re-requested."""
    result = cast(
        CursorResult[Any],
        session.execute(
            delete(Work)
            .execution_options(synchronize_session=False)
            .where(Work.id == item.id, Work.seq == item.seq)
        ),
    )
    if result.rowcount == 0:
        session.execute(
            update(Work).where(Work.id == item.id).values(lease_owner=None, lease_until=0.0)
        )


def retry_later(
    session: Session,
    item: WorkItem,
    delay: float,
    error: str | None,
    count_attempt: bool = True,
    waiting_on: str | None = None,
) -> None:
    """Release `item` to run again after `delay` (at once if re-requested
    meanwhile, or when `waiting_on` lands in the site)."""
    now = time.time()
    session.execute(
        update(Work)
        .execution_options(synchronize_session=False)
        .where(Work.id == item.id)
        .values(
            lease_owner=None,
            lease_until=0.0,
            not_before=case((Work.seq == item.seq, now + delay), else_=now),
            attempts=Work.attempts + (1 if count_attempt else 0),
            last_error=error,
            waiting_on=waiting_on,
        )
    )


def wake_waiters(session: Session, resource_id: str, site: str) -> None:
    """Make the items of `site` that wait for `resource_id` ready now."""
    session.execute(
        update(Work)
        .execution_options(synchronize_session=False)
        .where(Work.waiting_on == resource_id, Work.site == site)
        .values(not_before=time.time(), waiting_on=None)
    )


def wake_site(session: Session, site: str) -> None:
    """Make every waiting row of `site` ready now (the site came back)."""
    session.execute(
        update(Work)
        .execution_options(synchronize_session=False)
        .where(Work.site == site, Work.not_before > time.time())
        .values(not_before=time.time())
    )


def pending_count(session: Session, site: str | None = None) -> int:
    query = select(func.count()).select_from(Work)
    if site is not None:
        query = query.where(Work.site == site)
    return int(session.scalar(query) or 0)
