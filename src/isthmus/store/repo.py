"""Repository functions over the intent tables, shared by intent/ and the engine.

Every change to a resource's intent goes through `add`, `change` or
`mark_deleting`, in the caller's transaction. Who enqueues, the one rule: work
rows are written only by store/work.py's `enqueue`, called from inside these
write functions or by a caller of them in the same transaction. `change` and
`mark_deleting` bump `generation` and enqueue every site involved (the ones
named, the ones the resource is bound in or has work in); `add` enqueues only
the `sites` it is given, since a new resource is bound nowhere yet (most kinds
are intent only until something placed in a site needs them: the engine brings
them along).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import delete, event, select
from sqlalchemy.orm import Session

from isthmus.errors import NotFound
from isthmus.model import kinds
from isthmus.store.tables import Binding, IpAllocation, MacAllocation, Resource, Site, Work
from isthmus.store.work import enqueue, image_copy


def utcnow() -> datetime:
    """Now in UTC, without tzinfo (how the tables store time)."""
    return datetime.now(UTC).replace(tzinfo=None)


def new_id() -> str:
    return str(uuid.uuid4())


def isoformat(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ") if moment else None


def add(
    session: Session,
    kind: str,
    *,
    project_id: str | None,
    name: str = "",
    status: str = "",
    site: str | None = None,
    parent_id: str | None = None,
    device_id: str | None = None,
    spec: dict[str, Any] | None = None,
    resource_id: str | None = None,
    sites: Iterable[str] = (),
) -> Resource:
    """A new resource's intent, generation 1, with work enqueued for `sites` (none
    by default: a resource bound nowhere is reconciled once something asks for it
    in a site)."""
    now = utcnow()
    resource = Resource(
        id=resource_id or new_id(),
        kind=kind,
        project_id=project_id,
        name=name or "",
        status=status,
        site=site,
        parent_id=parent_id,
        device_id=device_id,
        generation=1,
        deleting=False,
        spec=spec or {},
        observed={},
        created_at=now,
        updated_at=now,
    )
    session.add(resource)
    for site in sites:
        enqueue(session, resource.id, kind, site)
    return resource


def get(
    session: Session,
    kind: str,
    resource_id: str,
    *,
    project_id: str | None = None,
    include_deleting: bool = False,
) -> Resource:
    """The resource, if the caller may see it (`project_id` None = any project)."""
    resource = session.get(Resource, resource_id)
    if (
        resource is None
        or resource.kind != kind
        or (resource.deleting and not include_deleting)
        or (project_id is not None and resource.project_id not in (project_id, None))
    ):
        raise NotFound(f"{kind.replace('_', ' ').capitalize()} {resource_id} could not be found.")
    return resource


def change(
    session: Session, resource: Resource, *, sites: Iterable[str] = (), **fields: Any
) -> Resource:
    """Apply `fields` (columns, or `spec` merged key by key), bump the generation
    and enqueue work for `sites` plus every site the resource is bound in."""
    spec_update = fields.pop("spec", None)
    for key, value in fields.items():
        setattr(resource, key, value)
    if spec_update:
        resource.spec = {**resource.spec, **spec_update}
    resource.generation += 1
    resource.updated_at = utcnow()
    for site in set(sites) | set(bound_sites(session, resource.id)):
        enqueue(session, resource.id, resource.kind, site)
    return resource


def bound_sites(session: Session, resource_id: str) -> list[str]:
    return list(session.scalars(select(Binding.site).where(Binding.resource_id == resource_id)))


def mark_deleting(session: Session, resource: Resource) -> None:
    """Accept a delete: the resource leaves every site, then its row goes.
    With no binding and no work anywhere it goes at once."""
    sites = set(bound_sites(session, resource.id))
    # work may be queued or under way in a site: let the engine settle it there
    sites |= set(session.scalars(select(Work.site).where(Work.resource_id == resource.id)))
    if resource.site:
        sites.add(resource.site)
    if sites:  # a site removed by force (store/site_removal.py) takes no more work
        sites &= set(session.scalars(select(Site.name).where(Site.name.in_(sites))))
    if not sites:
        purge(session, resource)
        return
    resource.deleting = True
    resource.generation += 1
    resource.updated_at = utcnow()
    for site in sites:
        enqueue(session, resource.id, resource.kind, site)


def purge(session: Session, resource: Resource) -> None:
    """Remove a resource row and what hangs off it (addresses, bindings)."""
    session.execute(delete(IpAllocation).where(IpAllocation.port_id == resource.id))
    session.execute(delete(MacAllocation).where(MacAllocation.port_id == resource.id))
    session.execute(delete(Binding).where(Binding.resource_id == resource.id))
    if resource.kind == "server" and resource.site:
        from isthmus.store.placement import release, server_need

        release(session, resource.site, server_need(resource.spec))
    if resource.kind == "image" and resource.spec.get("data_path"):
        # the image data goes with the row, once that is committed
        data_path = Path(resource.spec["data_path"])
        event.listen(session, "after_commit", lambda _s: data_path.unlink(missing_ok=True))
    session.delete(resource)


def pending_reason(session: Session, resource: Resource) -> str | None:
    """Why a resource is not (yet) what its intent says, for API views: its site
    being down wins over its image's copy into that site under way, which wins over
    the engine's last note. Derived at read time. A resource waits for its site
    while its status is one of `kinds.WAITING_STATUSES`."""
    if resource.site and resource.status in kinds.WAITING_STATUSES:
        site = session.get(Site, resource.site)
        if site is not None and site.health == "down":
            return f"site {site.name} is down: {site.last_error or 'no answer'}"
    copying = _image_copy_reason(session, resource)
    if copying:
        return copying
    reason = resource.observed.get("pending_reason")
    return str(reason) if reason else None


def _image_copy_reason(session: Session, resource: Resource) -> str | None:
    """'copying image NAME to SITE: 45% (...)' for a server in BUILD whose image is
    being copied into its site (engine/progress.py records it, store/work.py reads
    it), while bytes are still moving: once all are through (the checksum check and
    the server's own create follow at once) the reason goes, so a settling server
    shows no Isthmus field for long (Nova 2.1 clients that validate strictly, such
    as Tempest, refuse unknown keys)."""
    image_id = resource.spec.get("image_id") if resource.kind == "server" else None
    if not image_id or not resource.site or resource.status != "BUILD":
        return None
    state = image_copy(session, str(image_id), resource.site)
    if state is None or (state.total > 0 and state.done >= state.total):
        return None
    image = session.get(Resource, image_id)
    name = (image.name if image is not None else "") or str(image_id)
    return f"copying image {name} to {resource.site}: {state.text()}"
