"""Reconcilers: for one resource kind, what should exist in a given site.

A reconciler only reads the store (in `plan`) and names follow-up work (in
`after`); the worker (engine/worker.py) calls the driver and records the result.

`plan(session, resource, site)` answers: should the resource be present in the
site, with which driver spec, and which other resources must be present there
first (`needs`; the worker enqueues those and waits). A resource is present in a
site when it is not being deleted and something there needs it:
- server, volume, snapshot, port: their `site` column names it (a server booted
  from a volume needs that volume there first, and that volume leaves after it);
- network: a live port of it is placed in the site; subnet: its network is there;
- security group: a live port in the site uses it; image: a live server there boots
  from it, a volume there is being made from it, or it was imported into the site
  (a store of Glance's import);
- router: one of its networks has a server port in the site (then all its networks
  are needed there too); floating IP: the site of its port's server (engine/l3.py).
Leaving a site waits for what hangs off it there (ports before networks).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from sqlalchemy import and_, exists, select, update
from sqlalchemy.orm import Session

from isthmus.engine import l3
from isthmus.fabric import interconnect
from isthmus.model.specs import (
    ImageSpec,
    NetworkSpec,
    PortSpec,
    SecurityGroupSpec,
    ServerSpec,
    SnapshotSpec,
    Spec,
    SubnetSpec,
    VolumeSpec,
)
from isthmus.store.tables import Binding, Resource, Work
from isthmus.store.work import enqueue, enqueue_many

MEMBERSHIP_SETTLE_SECONDS = 1.0


@dataclass
class Plan:
    present: bool
    spec: Spec | None = None
    needs: list[tuple[str, str]] = field(default_factory=list)  # (resource id, kind)
    waits_for: list[tuple[str, str]] = field(default_factory=list)  # must leave first


def is_bound(session: Session, resource_id: str, site: str) -> bool:
    return session.get(Binding, (resource_id, site)) is not None


def _live(kind: str):  # noqa: ANN202 - a SQLAlchemy clause
    return (Resource.kind == kind) & (Resource.deleting.is_(False))


def network_needed(session: Session, network_id: str, site: str) -> bool:
    """A live server port of the network is placed in the site, or a router that is
    needed there has an interface on it."""
    return bool(
        session.scalar(
            select(
                exists().where(
                    _live("port"), Resource.parent_id == network_id, Resource.site == site
                )
            )
        )
    ) or l3.network_needed_by_router(session, network_id, site)


def _bound_ports_of_network(session: Session, network_id: str, site: str) -> list[str]:
    return list(
        session.scalars(
            select(Resource.id)
            .join(Binding, Binding.resource_id == Resource.id)
            .where(Resource.kind == "port", Resource.parent_id == network_id, Binding.site == site)
        )
    )


def _subnets_of(session: Session, network_id: str, live_only: bool = True) -> list[Resource]:
    query = select(Resource).where(Resource.kind == "subnet", Resource.parent_id == network_id)
    if live_only:
        query = query.where(Resource.deleting.is_(False))
    return list(session.scalars(query))


def plan(session: Session, resource: Resource | None, kind: str, site: str) -> Plan:
    """What `resource` (None: already purged) should be in `site`."""
    if resource is None:
        return Plan(present=False)
    planner = PLANNERS[kind]
    return planner(session, resource, site)


def _plan_network(session: Session, net: Resource, site: str) -> Plan:
    if not net.deleting and network_needed(session, net.id, site):
        targets = interconnect.route_targets(net.spec.get("segmentation_id"))
        return Plan(True, NetworkSpec.from_intent(net, route_targets=targets))
    waits = [(p, "port") for p in _bound_ports_of_network(session, net.id, site)]
    waits += [
        (s.id, "subnet")
        for s in _subnets_of(session, net.id, live_only=False)
        if is_bound(session, s.id, site)
    ]
    routers = l3.routers_on_network(session, net.id)
    waits += [(r, "router") for r in l3.bound_in(session, "router", routers, site)]
    return Plan(False, waits_for=waits)


def _plan_subnet(session: Session, subnet: Resource, site: str) -> Plan:
    network_id = subnet.parent_id or ""
    if not subnet.deleting and network_needed(session, network_id, site):
        return Plan(True, SubnetSpec.from_intent(subnet), needs=[(network_id, "network")])
    waits = [(p, "port") for p in _bound_ports_of_network(session, network_id, site)]
    return Plan(False, waits_for=waits)


def _plan_port(session: Session, port: Resource, site: str) -> Plan:
    if port.deleting or port.site != site:
        return Plan(False)
    spec = PortSpec.from_intent(port)
    needs = [(spec.network_id, "network")]
    needs += [(f.subnet_id, "subnet") for f in spec.fixed_ips]
    needs += [(g, "security_group") for g in spec.security_group_ids]
    return Plan(True, spec, needs=needs)


def _plan_security_group(session: Session, group: Resource, site: str) -> Plan:
    if group.deleting:
        return Plan(False)
    ports = session.scalars(select(Resource.spec).where(_live("port"), Resource.site == site))
    if not any(group.id in (spec or {}).get("security_groups", []) for spec in ports):
        return Plan(False)
    rules = list(
        session.scalars(
            select(Resource)
            .where(_live("security_group_rule"), Resource.parent_id == group.id)
            .order_by(Resource.created_at)
        )
    )
    members = _group_members(session, SecurityGroupSpec.remote_groups(rules))
    return Plan(True, SecurityGroupSpec.from_intent(group, rules, members))


def _group_members(
    session: Session, group_ids: list[str]
) -> tuple[tuple[str, tuple[str, ...]], ...]:
    """(group id, sorted fixed IPs of its live ports, in any site) per group."""
    if not group_ids:
        return ()
    members: dict[str, set[str]] = {g: set() for g in group_ids}
    for spec in session.scalars(select(Resource.spec).where(_live("port"))):
        for group_id in (spec or {}).get("security_groups", []):
            if group_id in members:
                members[group_id].update(f["ip_address"] for f in spec.get("fixed_ips", []))
    return tuple((g, tuple(sorted(members[g]))) for g in group_ids)


def _refresh_groups_naming(session: Session, group_ids: list[str]) -> None:
    """A port joined or left `group_ids`: every group whose rules name one of them as
    remote group is re-applied wherever it is bound (its member addresses changed)."""
    if not group_ids:
        return
    naming = set(
        session.scalars(
            select(Resource.parent_id).where(
                _live("security_group_rule"),
                Resource.spec["remote_group_id"].as_string().in_(group_ids),
            )
        )
    )
    if not naming:
        return
    stale = and_(
        Binding.resource_id.in_(naming),
        Binding.kind == "security_group",
    )
    now = time.time()
    bound = session.execute(
        select(Binding.resource_id, Binding.site, Binding.applied_generation).where(stale)
    ).all()
    # lock the queued re-applies we may rely on, so no worker starts one (and reads
    # the members) before this transaction commits (PostgreSQL; SQLite is serial)
    leases = {
        (row.resource_id, row.site): row.lease_until
        for row in session.execute(
            select(Work.resource_id, Work.site, Work.lease_until)
            .where(Work.resource_id.in_(naming), Work.kind == "security_group")
            .order_by(Work.id)  # one lock order for every worker: no deadlock
            .with_for_update()
        )
    }
    # a pair already marked stale with a re-apply queued and not under way will pick
    # this change up too: nothing to write (the common case while a fleet boots)
    pairs = [
        (rid, site)
        for rid, site, applied in bound
        if applied != 0 or leases.get((rid, site)) is None or leases[(rid, site)] >= now
    ]
    if not pairs:
        return
    # the site copies are stale while the generation is unchanged: force a re-apply
    session.execute(
        update(Binding)
        .where(stale)
        .values(applied_generation=0)
        .execution_options(synchronize_session=False)
    )
    # members come and go in bursts (a fleet boots): re-apply at most once a second
    enqueue_many(
        session,
        [(rid, "security_group", site) for rid, site in pairs],
        delay=MEMBERSHIP_SETTLE_SECONDS,
        debounce=True,
    )


def _plan_image(session: Session, image: Resource, site: str) -> Plan:
    """An image with data (active, or deactivated: its copies stay) is present in a
    site where a live server boots from it, or that it was imported into (a store
    named in `spec["stores"]`, intent/image_imports.py) while it is not deleted.
    An image being made of a server (Nova's createImage, `spec["snapshot"]`) is
    present, while `saving`, in that server's site only: the site makes it."""
    snapshot = image.spec.get("snapshot") or {}
    if snapshot:
        if image.deleting or image.status != "saving" or snapshot.get("site") != site:
            return Plan(False)
        return Plan(True, ImageSpec.from_intent(image))
    if image.status not in ("active", "deactivated"):
        return Plan(False)
    imported = not image.deleting and site in (image.spec.get("stores") or [])
    used = imported or session.scalar(
        select(
            exists().where(
                _live("server"),
                Resource.site == site,
                Resource.spec["image_id"].as_string() == image.id,
            )
        )
    )
    used = used or session.scalar(  # a volume there is being made from it
        select(
            exists().where(
                _live("volume"),
                Resource.site == site,
                Resource.status == "creating",
                Resource.spec["image_id"].as_string() == image.id,
            )
        )
    )
    if not used:
        return Plan(False)
    return Plan(True, ImageSpec.from_intent(image))


def _plan_server(session: Session, server: Resource, site: str) -> Plan:
    if server.deleting or server.site != site:
        return Plan(False)
    ports = session.scalars(
        select(Resource).where(
            Resource.kind == "port", Resource.device_id == server.id, Resource.deleting.is_(False)
        )
    )
    spec = ServerSpec.from_intent(server, port_ids=ServerSpec.nic_order(ports))
    needs = [(p, "port") for p in spec.port_ids]
    if spec.image_id:
        needs.append((spec.image_id, "image"))
    if spec.root_volume_id:
        needs.append((spec.root_volume_id, "volume"))
    return Plan(True, spec, needs=needs)


def _booting(session: Session, volume: Resource, site: str) -> str | None:
    """The server a volume is the root disk of (intent/boot_volumes.py): while that
    server boots from it, or was deleted (the volume kept) but is still in the site."""
    root_of = volume.spec.get("root_of")
    if not root_of:
        return None
    if volume.device_id == root_of:
        return str(root_of)
    if volume.device_id is None and is_bound(session, root_of, site):
        return str(root_of)
    return None


def _plan_volume(session: Session, volume: Resource, site: str) -> Plan:
    if volume.deleting or volume.site != site:
        root_of = volume.spec.get("root_of")  # the server booted from it leaves first
        if root_of and is_bound(session, root_of, site):
            return Plan(False, waits_for=[(root_of, "server")])
        return Plan(False)
    spec = VolumeSpec.from_intent(volume, root_of=_booting(session, volume, site))
    attached = spec.attached_server_id
    needs = [(attached, "server")] if attached else []
    if volume.status == "creating":  # its source is needed while the site makes it
        if spec.snapshot_id:
            needs.append((spec.snapshot_id, "snapshot"))
        if spec.source_volid:
            needs.append((spec.source_volid, "volume"))
        if spec.image_id:
            needs.append((spec.image_id, "image"))
    return Plan(True, spec, needs=needs)


def _plan_snapshot(session: Session, snapshot: Resource, site: str) -> Plan:
    if snapshot.deleting or snapshot.site != site:
        return Plan(False)
    spec = SnapshotSpec.from_intent(snapshot)
    return Plan(True, spec, needs=[(spec.volume_id, "volume")])


def _plan_router(session: Session, router: Resource, site: str) -> Plan:
    if not l3.router_needed(session, router, site):
        fips = l3.floating_ips_bound(session, site, router_id=router.id)
        return Plan(False, waits_for=[(f, "floating_ip") for f in fips])
    spec, needs = l3.router_spec(session, router)
    return Plan(True, spec, needs=needs)


def _plan_floating_ip(session: Session, fip: Resource, site: str) -> Plan:
    planned = l3.floating_ip_spec(session, fip, site)
    if planned is None:
        return Plan(False)
    return Plan(True, planned[0], needs=planned[1])


PLANNERS = {
    "network": _plan_network,
    "subnet": _plan_subnet,
    "port": _plan_port,
    "security_group": _plan_security_group,
    "image": _plan_image,
    "server": _plan_server,
    "volume": _plan_volume,
    "snapshot": _plan_snapshot,
    "router": _plan_router,
    "floating_ip": _plan_floating_ip,
}


def after(
    session: Session,
    kind: str,
    resource: Resource | None,
    resource_id: str,
    site: str,
    present: bool,
) -> None:
    """Follow-up work once (resource, site) was applied."""
    if kind == "network" and present:
        for subnet in _subnets_of(session, resource_id):
            if not is_bound(session, subnet.id, site):
                enqueue(session, subnet.id, "subnet", site)
        for router_id in l3.routers_on_network(session, resource_id):
            if not is_bound(session, router_id, site):
                enqueue(session, router_id, "router", site)
    if kind == "router":
        _release_networks(session, site)
    if kind == "port" and not present:
        for fip in l3.floating_ips_bound(session, site, port_id=resource_id):
            enqueue(session, fip, "floating_ip", site)
    if kind == "port" and resource is not None:
        _refresh_groups_naming(session, list(resource.spec.get("security_groups", [])))
    if kind == "port" and not present and resource is not None:
        if resource.parent_id:
            enqueue(session, resource.parent_id, "network", site)
        for group in resource.spec.get("security_groups", []):
            enqueue(session, group, "security_group", site)
    if kind == "server" and resource is not None and resource.spec.get("root_volume_id"):
        enqueue(session, resource.spec["root_volume_id"], "volume", site)  # in-use, or not
    if kind in ("server", "volume") and resource is not None:
        image_id = resource.spec.get("image_id")
        if kind == "volume" and present and resource.status == "creating":
            image_id = None  # still being made from it
        elif kind == "server" and present:
            image_id = None
        if image_id and is_bound(session, image_id, site):
            enqueue(session, image_id, "image", site)


def _release_networks(session: Session, site: str) -> None:
    """A router changed in `site`: networks bound there that nothing needs any more
    (those it alone kept there) are asked to leave."""
    bound = session.scalars(
        select(Binding.resource_id).where(Binding.site == site, Binding.kind == "network")
    )
    for network_id in list(bound):
        if not network_needed(session, network_id, site):
            enqueue(session, network_id, "network", site, if_absent=True)
