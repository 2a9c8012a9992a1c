"""Observed state flowing back from the sites: drift, status changes made in a
site, and foreign objects.

`sweep_site(db, sites, name)` lists what one site holds, outside any transaction:
`driver.inventory()` (objects carrying an Isthmus id) and `driver.foreign()`
(objects made there outside Isthmus). It compares the inventory with the
bindings that say a server or volume (model/kinds.DRIFT_KINDS) was applied in
the site:

- bound, absent from the site: **drift**, the object was deleted in the site
  behind Isthmus' back. The binding is marked (`drifted_at`), the resource goes
  ERROR (a volume: error; `kinds.error_status`) with a fault saying so, and the
  engine never recreates it: engine/worker.py skips a drifted binding, and before
  every `ensure` of an already applied server or volume it checks with `observe()`
  that the object is still there, so a deletion no sweep has seen yet is caught
  the same way. The tenant can still delete the resource (nothing is left to
  remove in the site); an operator can have it made again (`recreate`: admin
  `POST /isthmus/v1/resources/{id}/recreate`, `isthmus resource recreate`).
- bound, present, with another status or fault than the binding recorded: the
  site's state flows back (a server the site put in ERROR shows ERROR with the
  site's fault message; one stopped there shows SHUTOFF).
- drifted, and present again (put back in the site by hand): drifted no longer.

Only pairs the engine is not working on are judged: no work queued for the pair
and the binding last written before the listing began (so the listing is at
least as new as the binding). Each pair is re-read under a row lock in the
transaction that changes it.

Foreign objects are never touched. The sweep stores their count per kind and the
first FOREIGN_LIST_LIMIT on the site row (`foreign_objects`), so the admin API's
site view reads them from the store, with no site call in the request path; when
a listing fails, the row keeps the last counts and says why they are old.

The health loop (engine/health.py) sweeps every site that is not down each
`sweep_interval` seconds (config; 0 turns sweeps off).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.engine.registry import SiteRegistry
from isthmus.errors import Conflict, SiteError
from isthmus.fabric.interconnect import OBSERVED_KEY
from isthmus.model import kinds
from isthmus.sites.base import ForeignObject, Observed
from isthmus.store import repo
from isthmus.store.db import Database
from isthmus.store.tables import Binding, Resource, Site, Work
from isthmus.store.work import enqueue

FOREIGN_LIST_LIMIT = 50
DRIFTED_STATUS = "DELETED"  # a drifted binding's observed_status


@dataclass
class SweepResult:
    """What one sweep of one site did."""

    site: str
    drifted: list[str] = field(default_factory=list)  # resource ids newly drifted
    refreshed: list[str] = field(default_factory=list)  # whose observed state changed
    foreign: int | None = None  # objects found that Isthmus did not make (None: unknown)
    error: str | None = None  # why the site could not be listed


def drift_fault(kind: str, site: str) -> str:
    """The fault a drifted resource shows."""
    return (
        f"The {kind.replace('_', ' ')} was deleted in site {site} outside Isthmus; Isthmus"
        " will not recreate it. Delete it, or ask an operator to recreate it."
    )


def show_observed(resource: Resource, observed: Observed, site: str) -> None:
    """Make `resource` (not being deleted) show what `site` reports: its status,
    and the site's fault message while that status is an error."""
    status = kinds.applied_status(observed.kind, observed.status)
    if status and status != resource.status:
        resource.status = status
        resource.updated_at = repo.utcnow()
    failed = kinds.is_error(resource.status)
    notes = {"fault": observed.fault, "site": site} if observed.fault and failed else {}
    kept = (resource.observed or {}).get(OBSERVED_KEY)
    if kept:  # how each site joins a network's segment, kept by the engine (worker.py)
        notes[OBSERVED_KEY] = kept
    if resource.observed != notes:
        resource.observed = notes


def mark_drifted(session: Session, resource: Resource | None, binding: Binding) -> bool:
    """Record that `binding`'s object left its site outside Isthmus; False if it
    was already recorded or the resource is on its way out anyway."""
    if binding.drifted_at is not None or resource is None or resource.deleting:
        return False
    now = repo.utcnow()
    message = drift_fault(binding.kind, binding.site)
    binding.drifted_at = now
    binding.observed_status = DRIFTED_STATUS
    binding.last_error = message
    binding.updated_at = now
    resource.status = kinds.error_status(binding.kind)
    resource.observed = {"fault": message, "site": binding.site, "drifted": True}
    resource.updated_at = now
    return True


def recreate(session: Session, resource: Resource) -> list[str]:
    """Have the engine make a drifted resource again in the site(s) it drifted
    from; returns those sites. 409 if it has not drifted anywhere."""
    if resource.deleting:
        raise Conflict(f"{resource.kind.capitalize()} {resource.id} is being deleted.")
    bindings = list(
        session.scalars(
            select(Binding)
            .where(Binding.resource_id == resource.id, Binding.drifted_at.is_not(None))
            .with_for_update()
        )
    )
    if not bindings:
        raise Conflict(
            f"{resource.kind.capitalize()} {resource.id} has not drifted from any site:"
            " there is nothing to recreate."
        )
    now = repo.utcnow()
    for binding in bindings:
        # generation 0: never applied, so the next ensure makes it without looking
        binding.drifted_at = None
        binding.applied_generation = 0
        binding.observed_status = ""
        binding.last_error = None
        binding.updated_at = now
        enqueue(session, resource.id, resource.kind, binding.site)
    resource.status = kinds.initial_status(resource.kind)
    resource.observed = {}
    resource.updated_at = now
    return [binding.site for binding in bindings]


# -- the sweep ---------------------------------------------------------------------------


def sweep_site(db: Database, sites: SiteRegistry, name: str) -> SweepResult:
    """List site `name` and bring what it says back into the store (module docstring)."""
    result = SweepResult(name)
    started = repo.utcnow()
    driver = sites.get(name)
    try:
        present = {(o.kind, o.isthmus_id): o for o in driver.inventory()}
    except SiteError as exc:
        result.error = f"listing the site failed: {exc}"
        _store_foreign(db, name, None, result.error, started)
        return result
    try:
        foreign: list[ForeignObject] | None = driver.foreign()
        foreign_error = None
    except SiteError as exc:
        foreign, foreign_error = None, f"listing foreign objects failed: {exc}"
    _judge(db, name, present, started, result)
    _store_foreign(db, name, foreign, foreign_error, started)
    result.foreign = len(foreign) if foreign is not None else None
    return result


def _needs_look(binding: Binding, observed: Observed | None) -> bool:
    if observed is None:
        return binding.drifted_at is None
    return binding.drifted_at is not None or (observed.status, observed.fault) != (
        binding.observed_status,
        binding.last_error,
    )


def _judge(
    db: Database,
    site: str,
    present: dict[tuple[str, str], Observed],
    started: datetime,
    result: SweepResult,
) -> None:
    with db.read() as session:
        busy = set(session.scalars(select(Work.resource_id).where(Work.site == site)))
        suspects = [
            binding.resource_id
            for binding in session.scalars(
                select(Binding).where(
                    Binding.site == site,
                    Binding.kind.in_(kinds.DRIFT_KINDS),
                    Binding.applied_generation > 0,
                    Binding.updated_at < started,
                )
            )
            if binding.resource_id not in busy
            and _needs_look(binding, present.get((binding.kind, binding.resource_id)))
        ]
    if not suspects:
        return
    with db.session() as session:
        for resource_id in suspects:
            binding = session.get(Binding, (resource_id, site), with_for_update=True)
            if binding is None or binding.updated_at >= started or binding.applied_generation <= 0:
                continue  # the engine wrote it meanwhile: its view is newer than ours
            queued = session.scalar(
                select(Work.id).where(Work.resource_id == resource_id, Work.site == site)
            )
            resource = session.get(Resource, resource_id)
            if queued is not None or resource is None or resource.deleting:
                continue
            observed = present.get((binding.kind, resource_id))
            if observed is None:
                if mark_drifted(session, resource, binding):
                    result.drifted.append(resource_id)
                continue
            if not _needs_look(binding, observed):
                continue
            binding.drifted_at = None
            binding.site_resource_id = observed.site_id
            binding.observed_status = observed.status
            binding.last_error = observed.fault
            binding.updated_at = repo.utcnow()
            show_observed(resource, observed, site)
            if (
                observed.status in kinds.TRANSIENT_STATUSES
                or binding.applied_generation != resource.generation
            ):
                enqueue(session, resource_id, binding.kind, site)  # the engine takes over
            result.refreshed.append(resource_id)


def _store_foreign(
    db: Database,
    name: str,
    foreign: list[ForeignObject] | None,
    error: str | None,
    started: datetime,
) -> None:
    with db.session() as session:
        site = session.get(Site, name)
        if site is None:
            return
        if foreign is None:
            site.foreign_objects = {**(site.foreign_objects or {}), "error": error}
            return
        listed = sorted(foreign, key=lambda o: (o.kind, o.name, o.site_id))
        site.foreign_objects = {
            "total": len(listed),
            "counts": dict(sorted(Counter(o.kind for o in listed).items())),
            "items": [
                {"kind": o.kind, "id": o.site_id, "name": o.name}
                for o in listed[:FOREIGN_LIST_LIMIT]
            ],
            "checked_at": repo.isoformat(started),
            "error": None,
        }
        site.swept_at = started


def foreign_view(site: Site) -> dict[str, Any]:
    """What the admin API shows of a site's foreign objects (see FOREIGN_LIST_LIMIT)."""
    stored = dict(site.foreign_objects or {})
    if "total" not in stored:
        reason = stored.get("error") or (
            "the site was not swept yet" if site.health != "down" else "the site is down"
        )
        return {"known": False, "reason": reason, "total": None, "counts": {}, "items": []}
    reason = stored.get("error")
    if reason is None and site.health == "down":
        reason = f"the site is down: these are from {stored.get('checked_at')}"
    return {
        "known": True,
        "reason": reason,
        "total": int(stored["total"]),
        "counts": dict(stored.get("counts") or {}),
        "items": list(stored.get("items") or []),
        "checked_at": stored.get("checked_at"),
    }
