"""The engine's workers: claim work, plan, call the site driver, record the result.

Each work item goes through three short steps so no database transaction is held
across a site call:
1. read: load the resource and plan it for the site (engine/reconcilers.py);
2. act: `driver.ensure(spec)` or `driver.delete(kind, id)`; a server or volume
   the site already holds is first looked at (`observe`): if it is gone, it was
   deleted outside Isthmus, and it is marked drifted instead of being made again
   (engine/drift.py); work for a drifted binding that should be present does
   nothing;
3. write: record the binding and the observed status, purge a deleted resource
   once no site holds it, enqueue follow-ups, and complete or retry the item.
A crash between 2 and 3 leaves the item leased; the lease runs out and the next
worker repeats it, and the driver finds the object by its Isthmus id.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from isthmus.engine import progress as copy_progress
from isthmus.engine import queue
from isthmus.engine.drift import mark_drifted, show_observed
from isthmus.engine.reconcilers import Plan, after, is_bound, plan
from isthmus.engine.registry import SiteRegistry
from isthmus.engine.retry import RetryPolicy
from isthmus.errors import PermanentError, SiteError, SiteUnavailable, TemporaryError
from isthmus.fabric import interconnect
from isthmus.model import kinds
from isthmus.sites.base import Observed
from isthmus.store import repo, work
from isthmus.store.db import Database
from isthmus.store.tables import Binding, Resource, Site, Work

log = logging.getLogger(__name__)

POLL_TRANSIENT_SECONDS = 0.5
WAIT_FOR_NEEDS_SECONDS = 2.0  # a fallback: a prerequisite that lands wakes its waiters


MAX_INLINE_DEPTH = 3
KIND_ORDER = {kind: rank for rank, kind in enumerate(kinds.SITE_KINDS)}


@dataclass(frozen=True)
class _Snapshot:
    """What the read step found for one item."""

    plan: Plan
    generation: int
    missing: list[tuple[str, str]]
    leaving: list[tuple[str, str]]
    up_to_date: bool
    drifted: bool  # the site lost the object outside Isthmus: never make it again
    applied: bool  # the site holds it (a server or volume): check it still does


@dataclass(frozen=True)
class EngineOptions:
    workers: int = 4
    batch: int = 16
    idle_poll_seconds: float = 0.5
    retry: RetryPolicy = RetryPolicy()


def _record_interconnect(
    session: Session, network: Resource, site: str, observed: Observed
) -> None:
    """Keep how `site` joins the network's segment (fabric/interconnect.py): what the
    driver reported, else what the site's data plane implies."""
    reported = interconnect.valid(observed.details.get(interconnect.OBSERVED_KEY))
    if reported is None:
        row = session.get(Site, site)
        driver, data_plane = (row.driver, row.data_plane) if row is not None else ("", None)
        reported = interconnect.report_for_site(site, driver, data_plane)
    network.observed = interconnect.record(network.observed, site, reported)


def snapshot_made(image: Resource, observed: Observed, site: str) -> None:
    """The site made an image of a server (Nova's createImage) and wrote its bytes
    where Isthmus keeps image data: the image is active, with the size and hashes
    the site reports, and stays stored in that site (its `stores`)."""
    stats = dict(observed.details["snapshot"])
    stores = [*(image.spec.get("stores") or []), site]
    image.spec = {
        **image.spec,
        **stats,
        "virtual_size": stats.get("size") if image.spec.get("disk_format") == "raw" else None,
        "stores": list(dict.fromkeys(stores)),
        "snapshot": None,
    }
    image.status = "active"
    image.updated_at = repo.utcnow()


class Engine:
    """Worker threads draining the work queue of one database."""

    def __init__(
        self,
        db: Database,
        sites: SiteRegistry,
        options: EngineOptions | None = None,
        owner: str | None = None,
    ) -> None:
        self.db = db
        self.sites = sites
        self.options = options or EngineOptions()
        self.owner = owner or f"engine-{uuid.uuid4().hex[:12]}"
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._threads: list[threading.Thread] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        for index in range(self.options.workers):
            thread = threading.Thread(
                target=self._work_loop, name=f"isthmus-worker-{index}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        renewer = threading.Thread(target=self._renew_loop, name="isthmus-lease", daemon=True)
        renewer.start()
        self._threads.append(renewer)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        for thread in self._threads:
            thread.join(timeout=10)
        self._threads.clear()

    def wake(self) -> None:
        """New work was committed: let idle workers look at once."""
        self._wake.set()

    def _work_loop(self) -> None:
        while not self._stop.is_set():
            try:
                done = self.run_batch()
            except Exception:  # a broken database connection must not kill the worker
                log.exception("engine batch failed")
                done = 0
            if done == 0:
                self._wake.wait(self.options.idle_poll_seconds)
                self._wake.clear()

    def _renew_loop(self) -> None:
        while not self._stop.wait(queue.LEASE_SECONDS / 3):
            try:
                with self.db.session() as session:
                    queue.renew(session, self.owner)
            except Exception:
                log.exception("lease renewal failed")

    # -- one batch -------------------------------------------------------------------------

    def run_batch(self) -> int:
        """Claim and process up to `batch` ready items; returns how many."""
        with self.db.session() as session:
            items = queue.claim(session, self.owner, self.options.batch)
        # prerequisites first, so a batch holding a port and its server needs one pass
        items.sort(key=lambda item: KIND_ORDER.get(item.kind, len(KIND_ORDER)))
        for item in items:
            self.process(item)
        return len(items)

    def run_until_idle(self, timeout: float = 30.0) -> bool:
        """Process work in this thread until none is left for sites that are
        registered and not down (for tools and tests); False if some is still left
        after `timeout`."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.run_batch() == 0:
                with self.db.read() as session:
                    waiting = session.scalar(
                        select(func.min(Work.not_before)).where(
                            Work.site.in_(queue.workable_sites())
                        )
                    )
                if waiting is None:
                    return True
                time.sleep(min(0.05, max(0.0, waiting - time.time())))
        return False

    def process(self, item: queue.WorkItem, depth: int = 0) -> None:
        try:
            self._process(item, depth)
        except Exception as exc:  # never lose the item: retry with backoff
            log.exception("work item %s failed unexpectedly", item)
            self._retry(item, f"internal error: {exc}", None)

    def _read(self, item: queue.WorkItem) -> _Snapshot:
        with self.db.read() as session:
            resource = session.get(Resource, item.resource_id)
            generation = resource.generation if resource else 0
            the_plan = plan(session, resource, item.kind, item.site)
            binding = session.get(Binding, (item.resource_id, item.site))
            missing = [
                (rid, kind) for rid, kind in the_plan.needs if not is_bound(session, rid, item.site)
            ]
            up_to_date = (
                binding is not None
                and the_plan.present
                and binding.applied_generation == generation
                and binding.observed_status not in kinds.TRANSIENT_STATUSES
                and not binding.last_error
            )
            drifted = binding is not None and binding.drifted_at is not None
            applied = (
                binding is not None
                and not drifted
                and binding.applied_generation > 0
                and item.kind in kinds.DRIFT_KINDS
            )
        return _Snapshot(
            the_plan, generation, missing, list(the_plan.waits_for), up_to_date, drifted, applied
        )

    def _bring_along(self, site: str, needs: list[tuple[str, str]], depth: int) -> bool:
        """Process missing prerequisites here and now when no other worker holds
        them (their own lease keeps this exclusive); True if any was processed."""
        processed = False
        for resource_id, kind in needs:
            with self.db.session() as session:
                dependency = queue.claim_pair(session, self.owner, resource_id, kind, site)
            if dependency is not None:
                self.process(dependency, depth + 1)
                processed = True
        return processed

    def _process(self, item: queue.WorkItem, depth: int = 0) -> None:
        # 1. read (bringing prerequisites along saves a round trip through the queue)
        snapshot = self._read(item)
        if snapshot.missing and depth < MAX_INLINE_DEPTH:
            if self._bring_along(item.site, snapshot.missing, depth):
                snapshot = self._read(item)
        the_plan, generation = snapshot.plan, snapshot.generation
        if snapshot.drifted and the_plan.present:
            with self.db.session() as session:
                queue.complete(session, item)  # recreate only when an operator asks
            return
        missing, leaving, up_to_date = snapshot.missing, snapshot.leaving, snapshot.up_to_date
        if missing or leaving:
            self._wait_for(item, missing + leaving, the_plan)
            return
        if up_to_date:
            with self.db.session() as session:
                queue.complete(session, item)
            return
        # 2. act
        driver = self.sites.get(item.site)
        observed: Observed | None = None
        try:
            if the_plan.present:
                assert the_plan.spec is not None
                if snapshot.applied and driver.observe(item.kind, item.resource_id) is None:
                    self._record_drift(item)
                    return
                with copy_progress.tracking(self.db, item):  # image copies show progress
                    observed = driver.ensure(the_plan.spec)
            else:
                driver.delete(item.kind, item.resource_id)
        except PermanentError as exc:
            self._record_failure(item, str(exc))
            return
        except (SiteUnavailable, TemporaryError, SiteError) as exc:
            self._retry(item, str(exc), exc)
            return
        # 3. write
        self._record(item, the_plan, generation, observed)

    def _wait_for(
        self, item: queue.WorkItem, others: list[tuple[str, str]], the_plan: Plan
    ) -> None:
        """Enqueue what must happen first in the site and look again shortly; the
        resource shows why it waits (including why its prerequisite is stuck)."""
        with self.db.session() as session:
            reasons = []
            for resource_id, kind in others:
                work.enqueue(session, resource_id, kind, item.site, if_absent=True)
                blocked = session.scalar(
                    select(Work.last_error).where(
                        Work.resource_id == resource_id, Work.site == item.site
                    )
                )
                reasons.append(f"{kind} {resource_id}" + (f" ({blocked})" if blocked else ""))
            verb = "waiting for" if the_plan.present else "waiting for removal of"
            reason = f"{verb} {', '.join(reasons)} in site {item.site}"
            resource = session.get(Resource, item.resource_id)
            if resource is not None and not resource.deleting:
                if resource.observed.get("pending_reason") != reason:
                    resource.observed = {
                        **resource.observed,
                        "pending_reason": reason,
                        "site": item.site,
                    }
            queue.retry_later(
                session,
                item,
                WAIT_FOR_NEEDS_SECONDS,
                reason,
                count_attempt=False,
                waiting_on=others[0][0],
            )
        self.wake()

    def _record(
        self, item: queue.WorkItem, the_plan: Plan, generation: int, observed: Observed | None
    ) -> None:
        transient = False
        with self.db.session() as session:
            resource = session.get(Resource, item.resource_id)
            binding = session.get(Binding, (item.resource_id, item.site))
            if observed is not None:
                if binding is None:
                    binding = Binding(resource_id=item.resource_id, site=item.site, kind=item.kind)
                    session.add(binding)
                binding.site_resource_id = observed.site_id
                binding.applied_generation = generation
                binding.observed_status = observed.status
                binding.last_error = observed.fault
                binding.updated_at = repo.utcnow()
                transient = observed.status in kinds.TRANSIENT_STATUSES
                if resource is not None and not resource.deleting:
                    show_observed(resource, observed, item.site)
                    if item.kind == kinds.IMAGE and observed.details.get("snapshot"):
                        snapshot_made(resource, observed, item.site)
                    if item.kind == "network":
                        _record_interconnect(session, resource, item.site, observed)
            elif binding is not None:
                session.delete(binding)
                session.flush()
                if resource is not None and item.kind == "network":
                    resource.observed = interconnect.record(resource.observed, item.site, None)
            queue.wake_waiters(session, item.resource_id, item.site)
            after(session, item.kind, resource, item.resource_id, item.site, observed is not None)
            if (
                resource is not None
                and resource.deleting
                and not repo.bound_sites(session, resource.id)
            ):
                repo.purge(session, resource)
            if transient:
                queue.retry_later(session, item, POLL_TRANSIENT_SECONDS, None, count_attempt=False)
            else:
                queue.complete(session, item)
        self.wake()

    def _record_drift(self, item: queue.WorkItem) -> None:
        with self.db.session() as session:
            binding = session.get(Binding, (item.resource_id, item.site), with_for_update=True)
            if binding is not None:
                mark_drifted(session, session.get(Resource, item.resource_id), binding)
            queue.wake_waiters(session, item.resource_id, item.site)
            queue.complete(session, item)

    def _record_failure(self, item: queue.WorkItem, message: str) -> None:
        with self.db.session() as session:
            resource = session.get(Resource, item.resource_id)
            binding = session.get(Binding, (item.resource_id, item.site))
            if binding is not None:
                binding.last_error = message
                binding.updated_at = repo.utcnow()
            if resource is not None and not resource.deleting:
                # an image's data stays whole in Isthmus: a copy that failed is that
                # site's, shown as a failed store (intent/image_imports.store_states)
                if item.kind != kinds.IMAGE:
                    resource.status = kinds.error_status(item.kind)
                resource.observed = {"fault": message, "site": item.site}
            queue.complete(session, item)

    def _retry(self, item: queue.WorkItem, message: str, exc: Exception | None) -> None:
        delay = (
            exc.delay
            if isinstance(exc, TemporaryError)
            else self.options.retry.delay(item.attempts + 1)
        )
        with self.db.session() as session:
            resource = session.get(Resource, item.resource_id)
            if resource is not None:
                resource.observed = {
                    **resource.observed,
                    "pending_reason": message,
                    "site": item.site,
                }
            if isinstance(exc, SiteUnavailable):
                # stop sending the site work until a health check finds it back
                site = session.get(Site, item.site)
                if site is not None and site.health != "down":
                    site.health = "down"
                    site.last_error = message
            queue.retry_later(session, item, delay, message)
