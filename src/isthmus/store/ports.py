"""Ports in the store: creating one allocates its MAC and fixed IPs (global
IPAM) in the caller's transaction, so Neutron's port create and Nova's server
create share one path. Unique keys on the allocation tables catch a race.

Whether an address can be a port's fixed IP is decided here once:
`subnet_holding` (which subnet of the network the address belongs to) and
`address_taken` (another port has it, or it is the subnet's gateway: only a
router interface port may hold that one). Nova's
early check (intent/servers.py) and Neutron's allocation (`allocate_fixed_ips`)
both ask them, each answering in its own API's words.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.model import ipam
from isthmus.store import repo
from isthmus.store.tables import IpAllocation, MacAllocation, Resource

ROUTER_INTERFACE = "network:router_interface"  # the device owner of a router's interface


def subnets_of(session: Session, network_id: str) -> list[Resource]:
    return list(
        session.scalars(
            select(Resource)
            .where(
                Resource.kind == "subnet",
                Resource.parent_id == network_id,
                Resource.deleting.is_(False),
            )
            .order_by(Resource.created_at, Resource.id)
        )
    )


def live_port(session: Session, port_id: str | None) -> Resource | None:
    """The port `port_id` names, unless it is missing, not a port or being deleted."""
    port = session.get(Resource, port_id) if port_id else None
    return port if port is not None and port.kind == "port" and not port.deleting else None


def taken_addresses(session: Session, subnet_id: str) -> set[str]:
    return set(
        session.scalars(select(IpAllocation.ip_address).where(IpAllocation.subnet_id == subnet_id))
    )


def subnet_holding(subnets: list[Resource], address: ipam.IPAddress) -> Resource | None:
    """The first of `subnets` whose CIDR holds `address` (None: none does)."""
    return next((s for s in subnets if address in ipam.parse_cidr(s.spec["cidr"])), None)


def address_taken(
    session: Session, subnet: Resource, address: str
) -> Literal["allocated", "gateway"] | None:
    """Why `address` on `subnet` cannot go to a new port: another port holds it
    ("allocated") or it is the subnet's gateway ("gateway"); None when it is free."""
    if address in taken_addresses(session, subnet.id):
        return "allocated"
    if address == subnet.spec.get("gateway_ip"):
        return "gateway"
    return None


def allocate_fixed_ips(
    session: Session,
    network: Resource,
    port_id: str,
    requested: list[dict[str, Any]] | None,
    *,
    gateway_ok: bool = False,
) -> list[dict[str, str]]:
    """Fixed IPs for a new port: as requested (subnet and/or address), or one from
    the first IPv4 subnet and one from each IPv6 subnet of the network.
    `gateway_ok`: the port is a router interface, which may hold a gateway address."""
    subnets = subnets_of(session, network.id)
    by_id = {s.id: s for s in subnets}
    chosen: list[tuple[Resource, str | None]] = []
    if requested is None:
        v4 = [s for s in subnets if s.spec.get("ip_version") == 4]
        chosen = [(s, None) for s in v4[:1]]
        chosen += [(s, None) for s in subnets if s.spec.get("ip_version") == 6]
    else:
        for entry in requested:
            if not isinstance(entry, dict):
                raise BadRequest(
                    "Invalid input for fixed_ips: each entry must be an object.", "InvalidInput"
                )
            subnet_id, address = entry.get("subnet_id"), entry.get("ip_address")
            if subnet_id:
                subnet = by_id.get(subnet_id)
                if subnet is None:
                    raise BadRequest(
                        f"Invalid input for operation: Failed to create port on"
                        f" network {network.id}, because fixed_ips included"
                        f" invalid subnet {subnet_id}.",
                        "InvalidInput",
                    )
            elif address:
                subnet = subnet_holding(subnets, ipam.parse_address(str(address)))
                if subnet is None:
                    raise BadRequest(
                        f"IP address {address} is not in any subnet of network {network.id}.",
                        "InvalidIpForNetwork",
                    )
            else:
                raise BadRequest(
                    "Invalid input for fixed_ips: give subnet_id or ip_address.", "InvalidInput"
                )
            chosen.append((subnet, str(address) if address else None))
    fixed_ips = []
    for subnet, address in chosen:
        if address is None:
            taken = taken_addresses(session, subnet.id)
            address = ipam.next_free(subnet.spec.get("allocation_pools") or [], taken, subnet.id)
        else:
            address = str(ipam.parse_address(address, ipam.parse_cidr(subnet.spec["cidr"])))
            problem = address_taken(session, subnet, address)
            if problem == "allocated":
                raise Conflict(
                    f"IP address {address} already allocated in subnet {subnet.id}",
                    "IpAddressAlreadyAllocated",
                )
            if problem == "gateway" and not gateway_ok:
                raise Conflict(
                    f"IP address {address} is the gateway of subnet {subnet.id}",
                    "IpAddressAlreadyAllocated",
                )
        session.add(IpAllocation(subnet_id=subnet.id, ip_address=address, port_id=port_id))
        fixed_ips.append({"subnet_id": subnet.id, "ip_address": address})
    session.flush()
    return fixed_ips


def allocate_mac(session: Session, port_id: str, requested: Any = None) -> str:
    if requested is not None:
        mac = ipam.normalize_mac(requested)
        if session.get(MacAllocation, mac) is not None:
            raise Conflict(
                f"Unable to complete operation for network. The mac address {mac} is in use.",
                "MacAddressInUse",
            )
    else:
        mac = ipam.random_mac()
        while session.get(MacAllocation, mac) is not None:
            mac = ipam.random_mac()
    session.add(MacAllocation(mac_address=mac, port_id=port_id))
    return mac


def change_mac(session: Session, port: Resource, requested: Any) -> str:
    """The port's MAC after an update asking for `requested` (Neutron's rules through
    ipam.normalize_mac; 409 MacAddressInUse if another port has it; 409 PortBound while
    a server or router uses the port, as ML2 answers for bound OVS ports: the sites that
    realise it are never asked to renumber a live NIC). The caller writes the returned
    MAC into the port's spec."""
    mac = ipam.normalize_mac(requested)
    current = port.spec.get("mac_address")
    if mac == current:
        return mac
    if port.site or port.device_id:
        raise Conflict(
            f"Unable to complete operation on port {port.id}, port is already bound, port"
            f" type: ovs, old_mac {current}, new_mac {mac}.",
            "PortBound",
        )
    if session.get(MacAllocation, mac) is not None:
        raise Conflict(
            f"Unable to complete operation for network. The mac address {mac} is in use.",
            "MacAddressInUse",
        )
    if current:
        old = session.get(MacAllocation, current)
        if old is not None and old.port_id == port.id:
            session.delete(old)
            session.flush()
    session.add(MacAllocation(mac_address=mac, port_id=port.id))
    return mac


def default_security_group(session: Session, project_id: str) -> str:
    group_id = session.scalar(
        select(Resource.id).where(
            Resource.kind == "security_group",
            Resource.project_id == project_id,
            Resource.name == "default",
            Resource.deleting.is_(False),
        )
    )
    if group_id is None:
        raise NotFound(f"Project {project_id} has no default security group.")
    return group_id


def create_port(
    session: Session,
    network: Resource,
    *,
    project_id: str,
    name: str = "",
    fixed_ips: list[dict[str, Any]] | None = None,
    mac_address: str | None = None,
    security_groups: list[str] | None = None,
    device_id: str | None = None,
    device_owner: str = "",
    site: str | None = None,
    admin_state_up: bool = True,
    extra: dict[str, Any] | None = None,
) -> Resource:
    """A port on `network` with its addresses allocated. Work for it is enqueued
    when it has a site (the caller enqueues its server too)."""
    port_id = repo.new_id()
    groups = (
        security_groups
        if security_groups is not None
        else [default_security_group(session, project_id)]
    )
    spec = {
        "mac_address": allocate_mac(session, port_id, mac_address),
        "fixed_ips": allocate_fixed_ips(session, network, port_id, fixed_ips),
        "security_groups": groups,
        "admin_state_up": admin_state_up,
        "device_owner": device_owner,
        **(extra or {}),
    }
    port = repo.add(
        session,
        "port",
        project_id=project_id,
        name=name,
        status="DOWN",
        site=site,
        parent_id=network.id,
        device_id=device_id,
        spec=spec,
        resource_id=port_id,
    )
    if site:
        from isthmus.store.work import enqueue

        enqueue(session, port.id, "port", site)
    return port
