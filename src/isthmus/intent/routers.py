"""Neutron router writes below the API (api/network/l3.py parses the bodies, looks
the router, port, subnet and external network up as the caller may see them, and
renders the answers).

The engine realises a router in every site where one of its networks has a server
(engine/l3.py): adding or removing an interface changes the router with the sites
it should be in now (`repo.change` also enqueues those it is bound in); a gateway
or name change re-applies it where it is bound.

A router's interfaces are ports with device_owner `network:router_interface` (by
subnet: a new port holding the subnet's gateway IP; by port: an existing unattached
port); its gateway is a port `network:router_gateway` on an external network, owned
by no project. Neutron's rules are decided here once: one interface per subnet and
no overlapping subnets on a router (`check_overlap`, 400), "still has ports" on
delete (409), a gateway or interface a floating IP depends on cannot be removed
(409); a port's address is checked by store/ports.py (`address_taken`), the port
quota by intent/ports.create_port.

- `check_quota` (413) then `add_router` (after the API has looked the gateway's
  external network up, the order Neutron answers in);
- `update_router`, `delete_router`;
- `add_interface_port`, `add_interface_subnet`, `remove_interface`;
- extra routes (extension extraroute / extraroute-atomic): `check_routes` (the
  nexthop on a subnet of one of the router's ports and not one of its addresses,
  at most MAX_ROUTES: Neutron's InvalidRoutes / RoutesExhausted), `merged_routes`
  and `without_routes` (add_extraroutes / remove_extraroutes); an interface a
  route's nexthop needs cannot be removed (409 RouterInterfaceInUseByRoute). The
  routes are the router's spec key `routes` ([{destination, nexthop}]), carried
  to every site with the router (model/specs.RouterSpec.routes).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from isthmus.engine.l3 import router_sites
from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.intent import ports as intent_ports
from isthmus.store import ports as store_ports
from isthmus.store import quotas, repo
from isthmus.store.tables import IpAllocation, Resource

ROUTER_INTERFACE = store_ports.ROUTER_INTERFACE
ROUTER_GATEWAY = "network:router_gateway"
MAX_ROUTES = 30  # Neutron's max_routes default


def bad_router(message: str) -> BadRequest:
    return BadRequest(f"Bad router request: {message}", "BadRequest")


def _live(session: Session, kind: str, **columns: Any) -> list[Resource]:
    """Every live resource of `kind` whose columns equal `columns`, oldest first."""
    query = select(Resource).where(Resource.kind == kind, Resource.deleting.is_(False))
    for column, value in columns.items():
        query = query.where(getattr(Resource, column) == value)
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


def interfaces(session: Session, router_id: str) -> list[Resource]:
    """The router's interface ports."""
    return [
        p
        for p in _live(session, "port", device_id=router_id)
        if p.spec.get("device_owner") == ROUTER_INTERFACE
    ]


def subnet_ids_of(port: Resource) -> list[str]:
    return [f["subnet_id"] for f in port.spec.get("fixed_ips") or []]


def gateway_port(session: Session, router_row: Resource) -> Resource | None:
    """The router's live gateway port (None: no gateway)."""
    return store_ports.live_port(session, (router_row.spec.get("gateway") or {}).get("port_id"))


# -- checks ----------------------------------------------------------------------------------


def check_quota(session: Session, project_id: str) -> None:
    """413 unless `project_id` may have one more router."""
    quotas.check(session, project_id, {"routers": 1})


def _check_no_fip_needs_gateway(session: Session, router_row: Resource, network_id: str) -> None:
    for fip in _live(session, "floating_ip"):
        if (
            fip.spec.get("router_id") == router_row.id
            and fip.spec.get("floating_network_id") == network_id
            and store_ports.live_port(session, fip.spec.get("port_id")) is not None
        ):
            raise Conflict(
                f"Gateway cannot be updated for router {router_row.id}, since a gateway to"
                f" external network {network_id} is required by one or more floating IPs.",
                "RouterExternalGatewayInUseByFloatingIp",
            )


def _check_no_fip_needs_interface(
    session: Session, router_row: Resource, subnet_ids: list[str]
) -> None:
    for fip in _live(session, "floating_ip"):
        if fip.spec.get("router_id") != router_row.id:
            continue
        target = store_ports.live_port(session, fip.spec.get("port_id"))
        if target is None:
            continue
        for fixed in target.spec.get("fixed_ips") or []:
            if (
                fixed["ip_address"] == fip.spec.get("fixed_ip_address")
                and fixed["subnet_id"] in subnet_ids
            ):
                raise Conflict(
                    f"Router interface for subnet {fixed['subnet_id']} on router"
                    f" {router_row.id} cannot be deleted, as it is required by one or more"
                    " floating IPs.",
                    "RouterInterfaceInUseByFloatingIP",
                )


def check_overlap(
    session: Session, router_row: Resource, subnet_ids: list[str], with_gateway: bool = True
) -> None:
    """New subnets on a router may not duplicate or overlap its other subnets."""
    on_router: list[str] = []
    for port in interfaces(session, router_row.id):
        on_router += subnet_ids_of(port)
    current_gateway = gateway_port(session, router_row)
    if with_gateway and current_gateway is not None:
        on_router += subnet_ids_of(current_gateway)
    for subnet_id in subnet_ids:
        if subnet_id in on_router:
            raise bad_router(f"Router already has a port on subnet {subnet_id}.")
        new = session.get(Resource, subnet_id)
        assert new is not None
        new_cidr = ipaddress.ip_network(new.spec["cidr"])
        for other_id in on_router:
            other = session.get(Resource, other_id)
            if other is None:
                continue
            if new_cidr.overlaps(ipaddress.ip_network(other.spec["cidr"])):
                raise bad_router(
                    f"Cidr {new_cidr} of subnet {subnet_id} overlaps with cidr"
                    f" {other.spec['cidr']} of subnet {other_id}."
                )


def check_routes(session: Session, router_row: Resource, routes: list[dict[str, str]]) -> None:
    """Neutron's extraroute rules for the router's whole new route list (shape
    already checked by the API): 400 RoutesExhausted above MAX_ROUTES, 400
    InvalidRoutes for a nexthop no port of the router is connected to, or one
    that is the router's own address."""
    if len(routes) > MAX_ROUTES:
        raise BadRequest(
            f"Unable to complete operation for {router_row.id}. The number of routes exceeds"
            f" the maximum {MAX_ROUTES}.",
            "RoutesExhausted",
        )
    cidrs: list[ipaddress.IPv4Network | ipaddress.IPv6Network] = []
    addresses: set[str] = set()
    for port in _live(session, "port", device_id=router_row.id):
        for fixed in port.spec.get("fixed_ips") or []:
            subnet = session.get(Resource, fixed["subnet_id"])
            if subnet is not None and not subnet.deleting:
                cidrs.append(ipaddress.ip_network(subnet.spec["cidr"]))
            addresses.add(fixed["ip_address"])
    for route in routes:
        nexthop = ipaddress.ip_address(route["nexthop"])
        if not any(nexthop in cidr for cidr in cidrs if cidr.version == nexthop.version):
            raise _invalid_routes(routes, "the nexthop is not connected with router")
        if str(nexthop) in addresses:
            raise _invalid_routes(routes, "the nexthop is used by router")


def _invalid_routes(routes: list[dict[str, str]], reason: str) -> BadRequest:
    return BadRequest(f"Invalid format for routes: {routes}, {reason}.", "InvalidRoutes")


def merged_routes(old: list[dict[str, str]], add: list[dict[str, str]]) -> list[dict[str, str]]:
    """add_extraroutes: `old` plus `add`, an exact duplicate once."""
    result = [dict(r) for r in old]
    for route in add:
        if route not in result:
            result.append(dict(route))
    return result


def without_routes(old: list[dict[str, str]], remove: list[dict[str, str]]) -> list[dict[str, str]]:
    """remove_extraroutes: `old` less `remove` (a route already absent is no error)."""
    return [dict(r) for r in old if r not in remove]


def _check_no_route_needs_interface(
    session: Session, router_row: Resource, subnet_ids: list[str]
) -> None:
    for subnet_id in subnet_ids:
        subnet = session.get(Resource, subnet_id)
        if subnet is None:
            continue
        cidr = ipaddress.ip_network(subnet.spec["cidr"])
        for route in router_row.spec.get("routes") or []:
            nexthop = ipaddress.ip_address(route["nexthop"])
            if nexthop.version == cidr.version and nexthop in cidr:
                raise Conflict(
                    f"Router interface for subnet {subnet_id} on router {router_row.id} cannot"
                    " be deleted, as it is required by one or more routes.",
                    "RouterInterfaceInUseByRoute",
                )


# -- gateway ---------------------------------------------------------------------------------


def set_gateway(
    session: Session,
    router_row: Resource,
    network: Resource | None,
    info: dict[str, Any] | None,
) -> dict[str, Any] | None:
    """Apply a gateway request `info` (None: remove the gateway) on the external
    `network` the API looked up for it; returns the router's new `gateway` spec."""
    current = router_row.spec.get("gateway")
    current_port = store_ports.live_port(session, (current or {}).get("port_id"))
    if info is None or network is None:
        if current:
            _check_no_fip_needs_gateway(session, router_row, current["network_id"])
            if current_port is not None:
                repo.mark_deleting(session, current_port)
        return None
    requested = info.get("external_fixed_ips")
    gateway: dict[str, Any] = current or {}
    same = bool(gateway) and gateway["network_id"] == network.id and current_port is not None
    snat = info.get("enable_snat", gateway.get("enable_snat", True) if same else True)
    if same and current_port is not None:
        if requested is not None:
            session.execute(delete(IpAllocation).where(IpAllocation.port_id == current_port.id))
            session.flush()
            fixed = store_ports.allocate_fixed_ips(session, network, current_port.id, requested)
            check_overlap(session, router_row, [f["subnet_id"] for f in fixed], False)
            repo.change(session, current_port, spec={"fixed_ips": fixed})
        return {"network_id": network.id, "enable_snat": snat, "port_id": current_port.id}
    if current:
        _check_no_fip_needs_gateway(session, router_row, current["network_id"])
        if current_port is not None:
            repo.mark_deleting(session, current_port)
    port = store_ports.create_port(
        session,
        network,
        project_id="",
        fixed_ips=requested,
        security_groups=[],
        device_id=router_row.id,
        device_owner=ROUTER_GATEWAY,
        extra={"description": "", "tags": []},
    )
    session.flush()
    check_overlap(session, router_row, subnet_ids_of(port), with_gateway=False)
    return {"network_id": network.id, "enable_snat": snat, "port_id": port.id}


# -- routers ---------------------------------------------------------------------------------


def add_router(
    session: Session,
    *,
    project_id: str,
    name: str,
    spec: dict[str, Any],
    gateway_network: Resource | None = None,
    gateway: dict[str, Any] | None = None,
) -> Resource:
    """A new router (after `check_quota`), with its gateway on `gateway_network`
    when `gateway` asks for one."""
    router_row = repo.add(
        session, "router", project_id=project_id, name=name, status="ACTIVE", spec=spec
    )
    session.flush()
    if gateway is not None:
        new_gateway = set_gateway(session, router_row, gateway_network, gateway)
        router_row.spec = {**router_row.spec, "gateway": new_gateway}
    return router_row


def update_router(
    session: Session,
    router_row: Resource,
    *,
    fields: dict[str, Any],
    spec: dict[str, Any],
    change_gateway: bool = False,
    gateway_network: Resource | None = None,
    gateway: dict[str, Any] | None = None,
) -> Resource:
    """Apply a checked update; the gateway too when `change_gateway` (None: remove)."""
    spec = dict(spec)
    if change_gateway:
        spec["gateway"] = set_gateway(session, router_row, gateway_network, gateway)
    if "routes" in spec:
        session.flush()
        check_routes(session, router_row, spec["routes"])
    return repo.change(session, router_row, spec=spec, **fields)


def delete_router(session: Session, router_row: Resource) -> None:
    """409 while the router has interfaces; its gateway goes with it."""
    if interfaces(session, router_row.id):
        raise Conflict(f"Router {router_row.id} still has ports", "RouterInUse")
    set_gateway(session, router_row, None, None)
    repo.mark_deleting(session, router_row)


# -- interfaces ------------------------------------------------------------------------------


def _replan(session: Session, router_row: Resource) -> None:
    session.flush()
    repo.change(session, router_row, sites=router_sites(session, router_row.id))


def add_interface_port(session: Session, router_row: Resource, port: Resource) -> list[str]:
    """Attach an existing unattached `port` as an interface; returns its subnet ids."""
    device = intent_ports.device_of(port)
    if device:
        raise Conflict(
            f"Unable to complete operation on port {port.id} for network"
            f" {port.parent_id}. Port already has an attached device {device}.",
            "PortInUse",
        )
    subnet_ids = subnet_ids_of(port)
    if not subnet_ids:
        raise bad_router("Router port must have at least one fixed IP.")
    v4 = [f for f in port.spec["fixed_ips"] if ":" not in f["ip_address"]]
    if len(v4) > 1:
        raise bad_router("Cannot have multiple IPv4 subnets on router port.")
    check_overlap(session, router_row, subnet_ids)
    repo.change(
        session,
        port,
        device_id=router_row.id,
        spec={"device_owner": ROUTER_INTERFACE, "device_id_text": None},
    )
    _replan(session, router_row)
    return subnet_ids


def add_interface_subnet(session: Session, router_row: Resource, subnet: Resource) -> Resource:
    """A new interface port holding `subnet`'s gateway IP; returns it."""
    address = subnet.spec.get("gateway_ip")
    if not address:
        raise bad_router("Subnet for router interface must have a gateway IP.")
    check_overlap(session, router_row, [subnet.id])
    if store_ports.address_taken(session, subnet, address) == "allocated":
        raise Conflict(
            f"IP address {address} already allocated in subnet {subnet.id}",
            "IpAddressAlreadyAllocated",
        )
    network = session.get(Resource, subnet.parent_id)
    assert network is not None
    port = intent_ports.create_port(
        session,
        network,
        project_id=router_row.project_id or "",
        fixed_ips=[],
        security_groups=[],
        device_id=router_row.id,
        device_owner=ROUTER_INTERFACE,
        extra={"description": "", "tags": []},
    )
    # The gateway address is the one a new port may not take (store/ports.address_taken):
    # only a router interface holds it.
    session.add(IpAllocation(subnet_id=subnet.id, ip_address=address, port_id=port.id))
    port.spec = {**port.spec, "fixed_ips": [{"subnet_id": subnet.id, "ip_address": address}]}
    _replan(session, router_row)
    return port


def remove_interface(
    session: Session, router_row: Resource, *, port_id: str | None, subnet_id: str | None
) -> tuple[Resource, list[str]]:
    """Detach the interface `port_id` names (or the one on `subnet_id`, which the API
    has looked up); returns the port and the subnet ids it left."""
    current = interfaces(session, router_row.id)
    if port_id:
        port = next((p for p in current if p.id == port_id), None)
        if port is None:
            raise NotFound(
                f"Router {router_row.id} does not have an interface with id {port_id}",
                "RouterInterfaceNotFound",
            )
        if subnet_id and subnet_id not in subnet_ids_of(port):
            raise BadRequest(
                f"Subnet on port {port_id} does not match the requested subnet {subnet_id}",
                "SubnetMismatchForPort",
            )
        removed = [subnet_id] if subnet_id else subnet_ids_of(port)
    else:
        assert subnet_id is not None
        port = next((p for p in current if subnet_id in subnet_ids_of(p)), None)
        if port is None:
            raise NotFound(
                f"Router {router_row.id} has no interface on subnet {subnet_id}",
                "RouterInterfaceNotFoundForSubnet",
            )
        removed = [subnet_id]
    _check_no_fip_needs_interface(session, router_row, removed)
    _check_no_route_needs_interface(session, router_row, removed)
    remaining = [f for f in port.spec["fixed_ips"] if f["subnet_id"] not in removed]
    if remaining:
        session.execute(
            delete(IpAllocation).where(
                IpAllocation.port_id == port.id, IpAllocation.subnet_id.in_(removed)
            )
        )
        repo.change(session, port, spec={"fixed_ips": remaining})
    else:
        repo.mark_deleting(session, port)
    _replan(session, router_row)
    return port, removed
