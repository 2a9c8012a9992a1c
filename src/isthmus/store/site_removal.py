"""What removing a site means for the store (api/admin/sites.py `DELETE /sites/{name}`).

`holdings(session, site)` counts what the site still holds: resources realised
there (bindings), resources placed there (servers, volumes, snapshots and the
ports of its servers: their `site`), and queued work for it, as the number of
distinct resources involved. A site holding anything is not removed unless the
operator forces it; then `let_go(session, site)` makes the store consistent
without the site, in the caller's transaction:

- its work rows and bindings go (nothing will ever act in that site again);
- a resource on its way out that is now in no site and has no work left is
  purged, as the engine would have done;
- a server, volume or snapshot placed there shows its kind's error status
  (ERROR, error: `kinds.error_status`) with a fault saying the site was removed:
  it is gone with its site, and deleting it succeeds at once
  (`repo.mark_deleting` sends no work to a removed site).
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from isthmus.model import kinds
from isthmus.store import repo
from isthmus.store.tables import Binding, Resource, Work

GONE_KINDS = (kinds.SERVER, kinds.VOLUME, kinds.SNAPSHOT)  # they show kinds.error_status


@dataclass(frozen=True)
class Holdings:
    """What one site still holds."""

    bound: int  # bindings: resources realised in the site
    placed: int  # resources whose `site` is this one
    queued: int  # work items queued for the site
    resources: int  # distinct resources among all of those

    def describe(self) -> str:
        return (
            f"{self.resources} resource(s): {self.bound} bound there, {self.placed} placed"
            f" there, {self.queued} work item(s) queued"
        )


def holdings(session: Session, site: str) -> Holdings:
    bound = set(session.scalars(select(Binding.resource_id).where(Binding.site == site)))
    placed = set(session.scalars(select(Resource.id).where(Resource.site == site)))
    queued = session.scalar(select(func.count()).where(Work.site == site)) or 0
    worked = set(session.scalars(select(Work.resource_id).where(Work.site == site).distinct()))
    return Holdings(len(bound), len(placed), queued, len(bound | placed | worked))


def gone_fault(kind: str, site: str) -> str:
    return (
        f"Site {site} was removed from Isthmus while this {kind} was in it; the {kind}"
        " went with the site. Delete it."
    )


def let_go(session: Session, site: str) -> None:
    """Forget everything the site held (see the module docstring)."""
    involved = set(session.scalars(select(Binding.resource_id).where(Binding.site == site)))
    involved |= set(session.scalars(select(Work.resource_id).where(Work.site == site)))
    session.execute(delete(Work).where(Work.site == site))
    session.execute(delete(Binding).where(Binding.site == site))
    now = repo.utcnow()
    for resource in session.scalars(select(Resource).where(Resource.site == site)):
        if resource.deleting:
            involved.add(resource.id)
        elif resource.kind in GONE_KINDS:
            resource.status = kinds.error_status(resource.kind)
            resource.observed = {"fault": gone_fault(resource.kind, site), "site": site}
            resource.updated_at = now
    session.flush()
    for resource_id in sorted(involved):
        held = session.get(Resource, resource_id)
        if held is None or not held.deleting:
            continue
        elsewhere = session.scalar(
            select(func.count()).where(Binding.resource_id == resource_id)
        ) or session.scalar(select(func.count()).where(Work.resource_id == resource_id))
        if not elsewhere:
            repo.purge(session, held)
