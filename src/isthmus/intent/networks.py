"""Neutron network and subnet writes below the API (api/network/networks.py and
subnets.py parse the bodies, look the rows up as the caller may see them and
render the answers).

A network or subnet is intent only: nothing is enqueued at create time; the
engine brings it to a site when a port there needs it. An update goes through
`repo.change` (which enqueues the sites it is bound in). What needs the store is
decided here, once, and the API calls each check where Neutron answers it (the
pure checks of the body stay in the API, in Neutron's order around these):

- networks: `zone_hints` (a hint names a site: 404 AvailabilityZoneNotFound),
  `segment` (a requested VNI no other network holds, 409 TunnelIdInUse; else one
  from the fabric's range), `add_network` (the networks quota, 413), the
  un-share and un-external checks of an update (`check_network_update`, 409),
  `delete_network` (409 NetworkInUse while a port is on it; its subnets go too);
- subnets: `check_subnet_overlap` (400), `add_subnet` (the subnets quota),
  `check_gateway_change` (409 GatewayIpInUse), `delete_subnet` (409 SubnetInUse
  while a live port holds an address in it).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.intent.floating_ips import FLOATING_IP_OWNER
from isthmus.intent.routers import ROUTER_GATEWAY, ROUTER_INTERFACE
from isthmus.model import ipam
from isthmus.store import quotas, repo, segments
from isthmus.store.ports import subnets_of
from isthmus.store.tables import IpAllocation, Resource, Site

# device_owner of the ports Isthmus makes for routers and floating IPs
L3_OWNERS = (ROUTER_INTERFACE, ROUTER_GATEWAY, FLOATING_IP_OWNER)


def _live(session: Session, kind: str, **columns: Any) -> list[Resource]:
    """Every live resource of `kind` whose columns equal `columns`, oldest first."""
    query = select(Resource).where(Resource.kind == kind, Resource.deleting.is_(False))
    for column, value in columns.items():
        query = query.where(getattr(Resource, column) == value)
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


# -- networks --------------------------------------------------------------------------------


def zone_hints(session: Session, hints: list[Any]) -> list[str]:
    """Availability zone hints must name sites: an unknown one is 404
    AvailabilityZoneNotFound (neutron-lib's status for it, which clients and Tempest
    expect), naming the known zones; a hint that is not a non-empty string is 400.
    Returns them without repeats."""
    sites = set(session.scalars(select(Site.name)))
    result: list[str] = []
    for hint in hints:
        if not isinstance(hint, str) or not hint:
            raise BadRequest(
                "Invalid input for availability_zone_hints. Reason:"
                f" '{hint}' is not a valid zone name.",
                "HTTPBadRequest",
            )
        if hint not in sites:
            raise NotFound(
                f"AvailabilityZone {hint} could not be found. Known zones:"
                f" {', '.join(sorted(sites)) or 'none'}.",
                "AvailabilityZoneNotFound",
            )
        if hint not in result:
            result.append(hint)
    return result


def segment(
    session: Session, requested: int | None, vni_range: tuple[int, int], network_id: str = ""
) -> int:
    """The network's segment id (its VNI in the fabric): `requested` unless another
    network holds it (409 TunnelIdInUse); else one from `vni_range`."""
    if requested is not None:
        for other in _live(session, "network"):
            if other.id != network_id and other.spec.get("segmentation_id") == requested:
                raise Conflict(
                    f"Unable to create the network. The tunnel ID {requested} is in use.",
                    "TunnelIdInUse",
                )
        return requested
    return segments.allocate_vni(session, *vni_range)


def add_network(session: Session, *, project_id: str, name: str, spec: dict[str, Any]) -> Resource:
    """A new network (the project's networks quota allowing), flushed so the next
    one of a bulk request is checked against it."""
    quotas.check(session, project_id, {"networks": 1})
    network = repo.add(
        session, "network", project_id=project_id, name=name, status="ACTIVE", spec=spec
    )
    session.flush()
    return network


def has_ipv6_subnet(session: Session, network: Resource) -> bool:
    """Whether the network has an IPv6 subnet (its MTU may then not go below 1280)."""
    return any(s.spec.get("ip_version") == 6 for s in subnets_of(session, network.id))


def check_network_update(session: Session, network: Resource, spec: dict[str, Any]) -> None:
    """409 when an update would un-share a network other projects have ports on,
    or make internal an external network with router gateways or floating IPs."""
    ports = _live(session, "port", parent_id=network.id)
    if spec.get("shared") is False and network.spec.get("shared"):
        if any(p.project_id not in (network.project_id, "") for p in ports):
            raise Conflict(
                f"Unable to reconfigure sharing settings for network {network.id}."
                " Multiple projects are using it.",
                "InvalidSharedSetting",
            )
    if spec.get("external") is False and network.spec.get("external"):
        if any(p.spec.get("device_owner") in L3_OWNERS for p in ports):
            raise Conflict(
                f"External network {network.id} cannot be updated to be internal: it"
                " has floating IPs or router gateway ports.",
                "ExternalNetworkInUse",
            )


def update(session: Session, resource: Resource, fields: dict[str, Any]) -> Resource:
    """Apply a checked update of a network or subnet (`fields`: spec and columns)."""
    return repo.change(session, resource, **fields)


def delete_network(session: Session, network: Resource) -> None:
    """409 NetworkInUse while a port is on the network; its subnets go with it."""
    if _live(session, "port", parent_id=network.id):
        raise Conflict(
            f"Unable to complete operation on network {network.id}. There are one or more"
            " ports still in use on the network.",
            "NetworkInUse",
        )
    for subnet in subnets_of(session, network.id):
        repo.mark_deleting(session, subnet)
    repo.mark_deleting(session, network)


# -- subnets ---------------------------------------------------------------------------------


def check_subnet_overlap(session: Session, network: Resource, cidr: ipam.IPNetwork) -> None:
    """400 when `cidr` overlaps another subnet of `network`."""
    for other in subnets_of(session, network.id):
        if cidr.overlaps(ipaddress.ip_network(other.spec["cidr"])):
            raise BadRequest(
                f"Invalid input for operation: Requested subnet with cidr: {cidr} for"
                f" network: {network.id} overlaps with another subnet.",
                "InvalidInput",
            )


def add_subnet(
    session: Session, network: Resource, *, project_id: str, name: str, spec: dict[str, Any]
) -> Resource:
    """A new subnet of `network` (the project's subnets quota allowing), flushed so
    the next one of a bulk request is checked against it."""
    quotas.check(session, project_id, {"subnets": 1})
    subnet = repo.add(
        session,
        "subnet",
        project_id=project_id,
        name=name,
        status="ACTIVE",
        parent_id=network.id,
        spec=spec,
    )
    session.flush()
    return subnet


def _allocations(session: Session, subnet_id: str) -> dict[str, str]:
    """address -> port id, for the live ports holding an address in the subnet."""
    rows = session.execute(
        select(IpAllocation.ip_address, IpAllocation.port_id)
        .join(Resource, Resource.id == IpAllocation.port_id)
        .where(IpAllocation.subnet_id == subnet_id, Resource.deleting.is_(False))
    )
    return {address: port for address, port in rows}


def check_gateway_change(session: Session, subnet: Resource, new_gateway: str | None) -> None:
    """409 GatewayIpInUse when a port holds the subnet's current gateway address or
    the new one (called only when the gateway changes)."""
    gateway = subnet.spec.get("gateway_ip")
    taken = _allocations(session, subnet.id)
    if gateway in taken:
        raise Conflict(
            f"Current gateway ip {gateway} already in use by port {taken[gateway]}."
            " Unable to update.",
            "GatewayIpInUse",
        )
    if new_gateway in taken:
        raise Conflict(
            f"Gateway ip {new_gateway} is already allocated to port {taken[new_gateway]}.",
            "GatewayIpInUse",
        )


def delete_subnet(session: Session, subnet: Resource) -> None:
    """409 SubnetInUse while a live port holds an address in the subnet."""
    if _allocations(session, subnet.id):
        raise Conflict(
            f"Unable to complete operation on subnet {subnet.id}: One or more ports have"
            " an IP allocation from this subnet.",
            "SubnetInUse",
        )
    repo.mark_deleting(session, subnet)
