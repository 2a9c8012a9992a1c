"""Network v2.0 subnets (IPv4 and IPv6), validated as Neutron does: the CIDR
(model/ipam), no overlap with another subnet of the network, the gateway
(default: first host; `null`: none), allocation pools (default: every host but
the gateway), DNS name servers, host routes and the IPv6 RA/address modes.

A subnet is intent only, like its network: nothing is enqueued at create time;
the engine brings it to a site together with its network when a port there needs
it. The checks that need the store (overlap, gateway in use, 409 SubnetInUse on
delete while a live port holds an address in it) and the writes are
intent/networks.py's; this module parses and answers.
Addresses are allocated by the global IPAM of store/ports.py. A subnet may come
from a subnet pool (`subnetpool_id`, or `use_default_subnetpool`): with a `cidr`
the pool must have it free, else it gets the pool's next free prefix of
`prefixlen` (default: the pool's default_prefixlen), from the one address space
of all sites (intent/subnet_pools.allocate_cidr).
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.errors import BadRequest
from isthmus.intent import networks as intent_networks
from isthmus.intent import subnet_pools
from isthmus.model import ipam
from isthmus.store.tables import Resource

router = APIRouter(prefix="/network")

IPV6_MODES = ("slaac", "dhcpv6-stateful", "dhcpv6-stateless")
AUTO_ADDRESS_MODES = ("slaac", "dhcpv6-stateless")
MAX_DNS_NAMESERVERS = 5
MAX_HOST_ROUTES = 20

_SUBNET_POST = {
    "name",
    "description",
    "network_id",
    "cidr",
    "ip_version",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "project_id",
    "tenant_id",
    "subnetpool_id",
    "use_default_subnetpool",
    "prefixlen",
    "service_types",
    "segment_id",
}
_SUBNET_PUT = {
    "name",
    "description",
    "gateway_ip",
    "allocation_pools",
    "enable_dhcp",
    "dns_nameservers",
    "host_routes",
}
_SUBNET_READ_ONLY = {
    "id",
    "network_id",
    "cidr",
    "ip_version",
    "ipv6_ra_mode",
    "ipv6_address_mode",
    "project_id",
    "tenant_id",
    "subnetpool_id",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
    "service_types",
    "segment_id",
    "router:external",
}


def subnet_body(subnet: Resource, external: bool) -> dict[str, Any]:
    """`external`: the subnet's network is external (extension subnet-external-network:
    such subnets are visible to every project, as their networks are)."""
    spec = subnet.spec
    return {
        **nc.common_fields(subnet),
        "network_id": subnet.parent_id,
        "ip_version": int(spec.get("ip_version", 4)),
        "cidr": spec.get("cidr"),
        "gateway_ip": spec.get("gateway_ip"),
        "allocation_pools": list(spec.get("allocation_pools") or []),
        "dns_nameservers": list(spec.get("dns_nameservers") or []),
        "host_routes": list(spec.get("host_routes") or []),
        "enable_dhcp": bool(spec.get("enable_dhcp", True)),
        "ipv6_ra_mode": spec.get("ipv6_ra_mode"),
        "ipv6_address_mode": spec.get("ipv6_address_mode"),
        "subnetpool_id": spec.get("subnetpool_id"),
        "service_types": [],
        "segment_id": None,
        "router:external": external,
    }


def _on_external(session: Session, subnet: Resource) -> bool:
    network = session.get(Resource, subnet.parent_id) if subnet.parent_id else None
    return bool(network is not None and network.spec.get("external"))


# -- validation ------------------------------------------------------------------------------


def _cidr(value: Any, version: int) -> ipam.IPNetwork:
    if not isinstance(value, str):
        raise nc.invalid("cidr", f"'{value}' is not a valid IP subnet")
    return ipam.parse_cidr(value, version)


def _gateway(value: Any, network: ipam.IPNetwork) -> str | None:
    if value is None:
        return None
    address = ipaddress.ip_address(nc.ip_address("gateway_ip", value, network.version))
    if network.version == 6 and address.is_link_local:
        return str(address)  # Neutron accepts an IPv6 link-local gateway off the subnet
    if (
        address not in network
        or address == network.network_address
        or (network.version == 4 and address == network.broadcast_address)
    ):
        raise BadRequest(
            f"Invalid input for operation: Gateway ip {value} is not valid on subnet {network}.",
            "InvalidInput",
        )
    return str(address)


def _pools(value: Any, network: ipam.IPNetwork, gateway: str | None) -> list[dict[str, str]]:
    pools = nc.to_list("allocation_pools", value)
    for pool in pools:
        if not isinstance(pool, dict) or set(pool) - {"start", "end"}:
            raise nc.invalid("allocation_pools", f"'{pool}' is not a {{start, end}} object")
    return ipam.validate_pools(network, pools, gateway)


def _nameservers(value: Any) -> list[str]:
    servers = nc.to_list("dns_nameservers", value)
    if len(servers) > MAX_DNS_NAMESERVERS:
        raise BadRequest(
            f"Number of DNS nameservers exceeds the limit {MAX_DNS_NAMESERVERS} for subnet.",
            "DNSNameServersExhausted",
        )
    result: list[str] = []
    for server in servers:
        address = nc.ip_address("dns_nameservers", server)
        if address in result:
            raise nc.invalid("dns_nameservers", f"Duplicate nameserver '{server}'")
        result.append(address)
    return result


def _host_routes(value: Any, version: int) -> list[dict[str, str]]:
    routes = nc.to_list("host_routes", value)
    if len(routes) > MAX_HOST_ROUTES:
        raise BadRequest(
            f"Unable to complete operation for subnet. The number of host routes exceeds the"
            f" limit {MAX_HOST_ROUTES}.",
            "HostRoutesExhausted",
        )
    result: list[dict[str, str]] = []
    for route in routes:
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise nc.invalid("host_routes", f"'{route}' is not a {{destination, nexthop}} object")
        try:
            destination = ipaddress.ip_network(str(route["destination"]), strict=True)
        except ValueError:
            raise nc.invalid(
                "host_routes", f"'{route['destination']}' is not a valid IP subnet"
            ) from None
        nexthop = nc.ip_address("host_routes", route["nexthop"])
        if destination.version != version or ipaddress.ip_address(nexthop).version != version:
            raise BadRequest(
                f"Invalid route {route} for a subnet of IP version {version}.",
                "InvalidInput",
            )
        entry = {"destination": str(destination), "nexthop": nexthop}
        if entry in result:
            raise nc.invalid("host_routes", f"Duplicate hostroute '{route}'")
        result.append(entry)
    return result


def _ipv6_modes(
    data: dict[str, Any], version: int, network: ipam.IPNetwork
) -> tuple[str | None, str | None]:
    ra_mode = data.get("ipv6_ra_mode")
    address_mode = data.get("ipv6_address_mode")
    for name, mode in (("ipv6_ra_mode", ra_mode), ("ipv6_address_mode", address_mode)):
        if mode is not None and mode not in IPV6_MODES:
            raise nc.invalid(name, f"'{mode}' is not in {list(IPV6_MODES)}")
    if version == 4 and (ra_mode or address_mode):
        raise BadRequest(
            "Invalid input for operation: ipv6_ra_mode or ipv6_address_mode cannot be set when"
            " ip_version is 4.",
            "InvalidInput",
        )
    if ra_mode and address_mode and ra_mode != address_mode:
        raise BadRequest(
            f"Invalid input for operation: ipv6_ra_mode set to '{ra_mode}' with"
            f" ipv6_address_mode set to '{address_mode}' is not valid. If both attributes are"
            " set, they must be the same value.",
            "InvalidInput",
        )
    auto = address_mode in AUTO_ADDRESS_MODES or (
        address_mode is None and ra_mode in AUTO_ADDRESS_MODES
    )
    if auto and network.prefixlen != 64:
        raise BadRequest(
            f"Invalid input for operation: Invalid CIDR {network} for IPv6 address mode."
            " OpenStack uses the EUI-64 address format, which requires the prefix to be /64.",
            "InvalidInput",
        )
    return ra_mode, address_mode


def _check_unsupported(data: dict[str, Any]) -> None:
    if nc.to_list("service_types", data.get("service_types")):
        raise nc.invalid("service_types", "service types are not supported")
    if data.get("segment_id") is not None:
        raise nc.invalid("segment_id", "segments are not supported")


def _pool(session: Session, ctx: RequestContext, data: dict[str, Any]) -> Resource | None:
    """The pool a subnet is made from (the caller's or a shared one), if any."""
    if data.get("subnetpool_id") is not None:
        pool_id = nc.to_id("subnetpool_id", data["subnetpool_id"])
        return nc.load(session, ctx, "subnet_pool", pool_id)
    if nc.to_bool("use_default_subnetpool", data.get("use_default_subnetpool", False)):
        version = nc.to_int("ip_version", data.get("ip_version", 4))
        pool = subnet_pools.default_pool(session, version)
        if pool is None:
            raise BadRequest(
                f"Bad subnets request: No default subnetpool found for IPv{version}.",
                "BadRequest",
            )
        return pool
    if data.get("prefixlen") is not None:
        raise BadRequest(
            "Bad subnets request: a cidr must be specified in the absence of a subnet pool.",
            "BadRequest",
        )
    return None


def _new_subnet(
    session: Session, ctx: RequestContext, data: dict[str, Any]
) -> tuple[Resource, str, dict[str, Any], str]:
    """Validate one create request: (network, project, spec, name)."""
    _check_unsupported(data)
    if "network_id" not in data:
        raise BadRequest("Failed to parse request. Required attribute 'network_id' not specified")
    net = nc.load(session, ctx, "network", nc.to_id("network_id", data["network_id"]))
    nc.require_owner(ctx, net, "create_subnet")
    pool = _pool(session, ctx, data)
    default_version = pool.spec.get("ip_version", 4) if pool is not None else 4
    version = nc.to_int("ip_version", data.get("ip_version", default_version))
    if version not in (4, 6):
        raise nc.invalid("ip_version", f"{version} is not in [4, 6]")
    if data.get("cidr") is None and pool is None:
        raise BadRequest(
            "Bad subnets request: a cidr must be specified in the absence of a subnet pool.",
            "BadRequest",
        )
    if pool is None:
        network = _cidr(data["cidr"], version)
    else:
        if data.get("cidr") is not None and data.get("prefixlen") is not None:
            raise BadRequest(
                "Bad subnets request: cidr and prefixlen must not be supplied together.",
                "BadRequest",
            )
        wanted = _cidr(data["cidr"], version) if data.get("cidr") is not None else None
        length = data.get("prefixlen")
        network = subnet_pools.allocate_cidr(
            session,
            pool,
            net,
            version=version,
            cidr=wanted,
            prefixlen=None if length is None else nc.to_int("prefixlen", length, 0, 128),
        )
        ipam.parse_cidr(str(network), version)  # a prefix too small to hold addresses: 400
    intent_networks.check_subnet_overlap(session, net, network)
    if version == 6 and int(net.spec.get("mtu", nc.DEFAULT_MTU)) < nc.MIN_MTU_V6:
        raise BadRequest(
            f"Invalid input for operation: IPv6 protocol requires a minimum MTU of"
            f" {nc.MIN_MTU_V6}, while the net {net.id} MTU is {net.spec.get('mtu')}.",
            "InvalidInput",
        )
    gateway = (
        _gateway(data["gateway_ip"], network)
        if "gateway_ip" in data
        else ipam.default_gateway(network)
    )
    pools = (
        _pools(data["allocation_pools"], network, gateway)
        if data.get("allocation_pools") is not None
        else ipam.default_pools(network, gateway)
    )
    ra_mode, address_mode = _ipv6_modes(data, version, network)
    spec = {
        "cidr": str(network),
        "ip_version": version,
        "gateway_ip": gateway,
        "allocation_pools": pools,
        "enable_dhcp": nc.to_bool("enable_dhcp", data.get("enable_dhcp", True)),
        "dns_nameservers": _nameservers(data.get("dns_nameservers")),
        "host_routes": _host_routes(data.get("host_routes"), version),
        "ipv6_ra_mode": ra_mode,
        "ipv6_address_mode": address_mode,
        "description": nc.to_str("description", data.get("description")),
        "tags": [],
        "subnetpool_id": pool.id if pool is not None else None,
    }
    if "project_id" in data or "tenant_id" in data:
        project = nc.owner_of(ctx, data)
    else:
        project = net.project_id or ctx.project_id  # the network owner's subnet
    return net, project, spec, nc.to_str("name", data.get("name"))


# -- handlers --------------------------------------------------------------------------------


@router.get("/v2.0/subnets")
def list_subnets(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        external = {n.id for n in nc.live(session, "network") if n.spec.get("external")}
        bodies = [
            subnet_body(s, s.parent_id in external) for s in nc.visible_rows(session, ctx, "subnet")
        ]
    return nc.list_page(request, "subnets", "subnet", bodies)


@router.get("/v2.0/subnets/{subnet_id}")
def get_subnet(
    request: Request, subnet_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        subnet = nc.load(session, ctx, "subnet", subnet_id)
        body = subnet_body(subnet, _on_external(session, subnet))
        return {"subnet": nc.show_fields(request, body)}


@router.post("/v2.0/subnets", status_code=201)
def create_subnet(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_subnet")
    items, bulk = nc.items_of(body, "subnet", "subnets")
    for data in items:
        nc.check_attributes(data, _SUBNET_POST, _SUBNET_READ_ONLY, put=False)

    def work(session: Session) -> dict[str, Any]:
        created = []
        for data in items:  # one by one, so a bulk request cannot overlap itself
            network, project, spec, name = _new_subnet(session, ctx, data)
            subnet = intent_networks.add_subnet(
                session, network, project_id=project, name=name, spec=spec
            )
            created.append(subnet_body(subnet, bool(network.spec.get("external"))))
        return {"subnets": created} if bulk else {"subnet": created[0]}

    return nc.transact(request, work)


@router.put("/v2.0/subnets/{subnet_id}")
def update_subnet(
    request: Request,
    subnet_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_subnet")
    data = nc.object_of(body, "subnet")
    nc.check_attributes(data, _SUBNET_PUT, _SUBNET_READ_ONLY, put=True)

    def work(session: Session) -> dict[str, Any]:
        subnet = nc.load(session, ctx, "subnet", subnet_id)
        nc.require_owner(ctx, subnet, "update_subnet")
        network = ipam.parse_cidr(subnet.spec["cidr"])
        version = network.version
        spec: dict[str, Any] = {}
        gateway = subnet.spec.get("gateway_ip")
        if "gateway_ip" in data:
            new_gateway = _gateway(data["gateway_ip"], network)
            if new_gateway != gateway:
                intent_networks.check_gateway_change(session, subnet, new_gateway)
                gateway = new_gateway
                spec["gateway_ip"] = gateway
        if data.get("allocation_pools") is not None:
            spec["allocation_pools"] = _pools(data["allocation_pools"], network, gateway)
        elif "gateway_ip" in spec:
            ipam.validate_pools(network, subnet.spec.get("allocation_pools") or [], gateway)
        if "enable_dhcp" in data:
            spec["enable_dhcp"] = nc.to_bool("enable_dhcp", data["enable_dhcp"])
        if "dns_nameservers" in data:
            spec["dns_nameservers"] = _nameservers(data["dns_nameservers"])
        if "host_routes" in data:
            spec["host_routes"] = _host_routes(data["host_routes"], version)
        if "description" in data:
            spec["description"] = nc.to_str("description", data["description"])
        fields: dict[str, Any] = {"spec": spec}
        if "name" in data:
            fields["name"] = nc.to_str("name", data["name"])
        intent_networks.update(session, subnet, fields)
        return {"subnet": subnet_body(subnet, _on_external(session, subnet))}

    return nc.transact(request, work)


@router.delete("/v2.0/subnets/{subnet_id}", status_code=204)
def delete_subnet(
    request: Request, subnet_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_subnet")

    def work(session: Session) -> None:
        subnet = nc.load(session, ctx, "subnet", subnet_id)
        nc.require_owner(ctx, subnet, "delete_subnet")
        intent_networks.delete_subnet(session, subnet)

    nc.transact(request, work)
    return Response(status_code=204)
