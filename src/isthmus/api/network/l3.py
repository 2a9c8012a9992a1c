"""Network v2.0 routers: parse the bodies, look the router, port, subnet and
external network up as the caller may see them (404s, the 400 for a network that
is not external), and render the answers. The writes and the rules that need the
store (one interface per subnet, no overlapping subnets, "still has ports", a
gateway or interface a floating IP depends on) are intent/routers.py's.

A router's spec: description, admin_state_up, availability_zone_hints, tags,
`gateway` ({network_id, enable_snat, port_id} or None), `routes` (extraroute:
[{destination, nexthop}], set by PUT or the add_extraroutes / remove_extraroutes
actions; the shape is checked here, the nexthops by intent/routers.check_routes)
and, set by an admin only, `distributed` and `ha` (Neutron's policy: a member
giving either is 403; they are shown to admins only). Every Isthmus router is in
fact distributed over the sites its networks reach (engine/l3.py), whatever the flag.

Floating IPs (api/network/floating_ips.py) use the helpers `subnet_ids_of`,
`external_network` and `bad_fip` of this module.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.errors import BadRequest, Forbidden
from isthmus.intent import routers as intent_routers
from isthmus.store.tables import Resource

router = APIRouter(prefix="/network")

_ROUTER_POST = {
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "availability_zone_hints",
    "project_id",
    "tenant_id",
    "distributed",
    "ha",
}
_ROUTER_PUT = {
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "routes",
    "distributed",
    "ha",
}
_ROUTER_READ_ONLY = {
    "routes",
    "id",
    "status",
    "project_id",
    "tenant_id",
    "availability_zones",
    "availability_zone_hints",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
}


_bad_router = intent_routers.bad_router


def bad_fip(message: str) -> BadRequest:
    return BadRequest(f"Bad floatingip request: {message}", "BadRequest")


def subnet_ids_of(port: Resource) -> list[str]:
    return intent_routers.subnet_ids_of(port)


# -- routers: bodies -------------------------------------------------------------------------


def router_body(
    router_row: Resource,
    gateway_port: Resource | None,
    zones: list[str] | None = None,
    admin: bool = False,
) -> dict[str, Any]:
    """The Neutron body of a router; `zones` are the sites it is realised in now;
    `admin`: the caller sees `distributed` and `ha` (Neutron's policy)."""
    spec = router_row.spec
    gateway = spec.get("gateway")
    info = None
    if gateway:
        info = {
            "network_id": gateway["network_id"],
            "enable_snat": bool(gateway.get("enable_snat", True)),
            "external_fixed_ips": [
                dict(f) for f in (gateway_port.spec.get("fixed_ips") if gateway_port else []) or []
            ],
        }
    body = {
        **nc.common_fields(router_row),
        "status": router_row.status or "ACTIVE",
        "admin_state_up": bool(spec.get("admin_state_up", True)),
        "external_gateway_info": info,
        "routes": [dict(r) for r in spec.get("routes") or []],
        "availability_zone_hints": list(spec.get("availability_zone_hints") or []),
        "availability_zones": list(zones or []),
    }
    if admin:
        body["distributed"] = bool(spec.get("distributed", False))
        body["ha"] = bool(spec.get("ha", False))
    return body


def _show_router(session: Session, router_row: Resource, admin: bool) -> dict[str, Any]:
    zones = nc.zones_of(session, [router_row.id])[router_row.id]
    return router_body(router_row, intent_routers.gateway_port(session, router_row), zones, admin)


# -- routers: policy attributes and extra routes ---------------------------------------------


def _admin_flags(ctx: RequestContext, data: dict[str, Any], action: str) -> dict[str, bool]:
    """`distributed` and `ha`: admin only (any value a member gives is 403, as Neutron's
    policy enforces an attribute given explicitly)."""
    flags: dict[str, bool] = {}
    for name in ("distributed", "ha"):
        if name not in data:
            continue
        if not ctx.is_admin:
            raise Forbidden(
                f"(rule:{action} and rule:{action}:{name}) is disallowed by policy",
                "PolicyNotAuthorized",
            )
        flags[name] = nc.to_bool(name, data[name])
    return flags


def parse_routes(value: Any) -> list[dict[str, str]]:
    """A router's `routes` (None: no routes), shaped as Neutron's hostroutes
    validator wants: {destination: CIDR, nexthop: address}, no duplicate."""
    result: list[dict[str, str]] = []
    for route in nc.to_list("routes", value):
        if not isinstance(route, dict) or set(route) != {"destination", "nexthop"}:
            raise nc.invalid("routes", f"Invalid data format for hostroute: '{route}'")
        destination = route["destination"]
        try:
            network = ipaddress.ip_network(str(destination), strict=False)
        except ValueError:
            raise nc.invalid("routes", f"'{destination}' is not a valid IP subnet") from None
        if not isinstance(destination, str) or str(network) != destination.lower():
            raise nc.invalid(
                "routes",
                f"'{destination}' isn't a recognized IP subnet cidr, '{network}' is recommended",
            )
        nexthop = nc.ip_address("routes", route["nexthop"])
        if ipaddress.ip_address(nexthop).version != network.version:
            raise nc.invalid(
                "routes", f"the nexthop {nexthop} is not of the IP version of {destination}"
            )
        clean = {"destination": str(network), "nexthop": nexthop}
        if clean in result:
            raise nc.invalid("routes", f"Duplicate hostroute '{route}'")
        result.append(clean)
    return result


# -- routers: gateway ------------------------------------------------------------------------


def _gateway_request(ctx: RequestContext, value: Any) -> dict[str, Any] | None:
    if value is None or value == {}:
        return None
    if not isinstance(value, dict):
        raise nc.invalid("external_gateway_info", f"'{value}' is not a dictionary")
    unknown = set(value) - {"network_id", "enable_snat", "external_fixed_ips"}
    if unknown:
        raise nc.invalid("external_gateway_info", f"unexpected keys {sorted(unknown)}")
    if "network_id" not in value:
        raise nc.invalid("external_gateway_info", "a network_id is required")
    if not ctx.is_admin and ("enable_snat" in value or "external_fixed_ips" in value):
        raise Forbidden(
            "rule:update_router:external_gateway_info:external_fixed_ips is disallowed by policy",
            "PolicyNotAuthorized",
        )
    result: dict[str, Any] = {"network_id": nc.to_id("network_id", value["network_id"])}
    if "enable_snat" in value:
        result["enable_snat"] = nc.to_bool("enable_snat", value["enable_snat"])
    if value.get("external_fixed_ips") is not None:
        entries = nc.to_list("external_fixed_ips", value["external_fixed_ips"])
        for entry in entries:
            if not isinstance(entry, dict) or set(entry) - {"subnet_id", "ip_address"}:
                raise nc.invalid("external_fixed_ips", f"'{entry}' is not a valid entry")
            if "ip_address" in entry:
                nc.ip_address("external_fixed_ips", entry["ip_address"])
        result["external_fixed_ips"] = entries
    return result


def external_network(session: Session, ctx: RequestContext, network_id: str, what: str) -> Resource:
    network = nc.load(session, ctx, "network", network_id)
    if not network.spec.get("external"):
        message = f"Network {network_id} is not a valid external network."
        raise _bad_router(message) if what == "router" else bad_fip(message)
    return network


def _gateway_network(
    session: Session, ctx: RequestContext, info: dict[str, Any] | None
) -> Resource | None:
    """The external network a gateway request names, as the caller may see it."""
    return None if info is None else external_network(session, ctx, info["network_id"], "router")


# -- routers: handlers -----------------------------------------------------------------------


@router.get("/v2.0/routers")
def list_routers(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        rows = nc.visible_rows(session, ctx, "router")
        ports = {
            p.id: p
            for p in nc.by_ids(
                session, [(r.spec.get("gateway") or {}).get("port_id") or "" for r in rows]
            ).values()
            if not p.deleting
        }
        zones = nc.zones_of(session, [r.id for r in rows])
        bodies = [
            router_body(
                r,
                ports.get((r.spec.get("gateway") or {}).get("port_id", "")),
                zones[r.id],
                ctx.is_admin,
            )
            for r in rows
        ]
    return nc.list_page(request, "routers", "router", bodies)


@router.get("/v2.0/routers/{router_id}")
def get_router(
    request: Request, router_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        router_row = nc.load(session, ctx, "router", router_id)
        return {"router": nc.show_fields(request, _show_router(session, router_row, ctx.is_admin))}


@router.post("/v2.0/routers", status_code=201)
def create_router(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_router")
    data = nc.object_of(body, "router")
    nc.check_attributes(data, _ROUTER_POST, _ROUTER_READ_ONLY, put=False)
    flags = _admin_flags(ctx, data, "create_router")
    gateway = _gateway_request(ctx, data.get("external_gateway_info"))
    name = nc.to_str("name", data.get("name"))
    spec: dict[str, Any] = {
        "description": nc.to_str("description", data.get("description")),
        "admin_state_up": nc.to_bool("admin_state_up", data.get("admin_state_up", True)),
        "tags": [],
        "gateway": None,
        "routes": [],
        **flags,
    }

    def work(session: Session) -> dict[str, Any]:
        project = nc.owner_of(ctx, data)
        hints = nc.validate_zone_hints(session, data.get("availability_zone_hints"))
        intent_routers.check_quota(session, project)
        router_row = intent_routers.add_router(
            session,
            project_id=project,
            name=name,
            spec={**spec, "availability_zone_hints": hints},
            gateway_network=_gateway_network(session, ctx, gateway),
            gateway=gateway,
        )
        return {"router": _show_router(session, router_row, ctx.is_admin)}

    return nc.transact(request, work)


@router.put("/v2.0/routers/{router_id}")
def update_router(
    request: Request,
    router_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_router")
    data = nc.object_of(body, "router")
    nc.check_attributes(data, _ROUTER_PUT, _ROUTER_READ_ONLY, put=True)
    flags = _admin_flags(ctx, data, "update_router")
    routes = parse_routes(data["routes"]) if "routes" in data else None
    gateway = (
        _gateway_request(ctx, data["external_gateway_info"])
        if "external_gateway_info" in data
        else None
    )

    def work(session: Session) -> dict[str, Any]:
        router_row = nc.load(session, ctx, "router", router_id)
        fields, spec = nc.standard_updates(data)
        spec.update(flags)
        if routes is not None:
            spec["routes"] = routes
        change_gateway = "external_gateway_info" in data
        intent_routers.update_router(
            session,
            router_row,
            fields=fields,
            spec=spec,
            change_gateway=change_gateway,
            gateway_network=_gateway_network(session, ctx, gateway) if change_gateway else None,
            gateway=gateway,
        )
        return {"router": _show_router(session, router_row, ctx.is_admin)}

    return nc.transact(request, work)


def _extraroutes(
    request: Request, ctx: RequestContext, router_id: str, body: Any, add: bool
) -> dict[str, Any]:
    """add_extraroutes / remove_extraroutes (extraroute-atomic): the router's routes
    with these added (an exact duplicate once) or removed (an absent one is no error),
    checked as a whole as an update is."""
    action = "add_extraroutes" if add else "remove_extraroutes"
    nc.require_member(ctx, action)
    data = nc.object_of(body, "router")
    if set(data) != {"routes"}:
        raise nc.invalid("router", "the body must be {'router': {'routes': [...]}}")
    routes = parse_routes(data["routes"])

    def work(session: Session) -> dict[str, Any]:
        router_row = nc.load(session, ctx, "router", router_id)
        old = list(router_row.spec.get("routes") or [])
        new = (
            intent_routers.merged_routes(old, routes)
            if add
            else intent_routers.without_routes(old, routes)
        )
        intent_routers.update_router(session, router_row, fields={}, spec={"routes": new})
        return {"router": _show_router(session, router_row, ctx.is_admin)}

    return nc.transact(request, work)


@router.put("/v2.0/routers/{router_id}/add_extraroutes")
def add_extraroutes(
    request: Request,
    router_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    return _extraroutes(request, ctx, router_id, body, add=True)


@router.put("/v2.0/routers/{router_id}/remove_extraroutes")
def remove_extraroutes(
    request: Request,
    router_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    return _extraroutes(request, ctx, router_id, body, add=False)


@router.delete("/v2.0/routers/{router_id}", status_code=204)
def delete_router(
    request: Request, router_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_router")

    def work(session: Session) -> None:
        router_row = nc.load(session, ctx, "router", router_id)
        intent_routers.delete_router(session, router_row)

    nc.transact(request, work)
    return Response(status_code=204)


def _interface_body(router_row: Resource, port: Resource, subnet_ids: list[str]) -> dict[str, Any]:
    return {
        "id": router_row.id,
        "tenant_id": router_row.project_id or "",
        "project_id": router_row.project_id or "",
        "port_id": port.id,
        "network_id": port.parent_id,
        "subnet_id": subnet_ids[0] if subnet_ids else None,
        "subnet_ids": subnet_ids,
    }


def _interface_request(body: Any) -> tuple[str | None, str | None]:
    if not isinstance(body, dict):
        raise _bad_router("Either subnet_id or port_id must be specified.")
    subnet_id, port_id = body.get("subnet_id"), body.get("port_id")
    if subnet_id is None and port_id is None:
        raise _bad_router("Either subnet_id or port_id must be specified.")
    return (
        nc.to_id("subnet_id", subnet_id) if subnet_id is not None else None,
        nc.to_id("port_id", port_id) if port_id is not None else None,
    )


@router.put("/v2.0/routers/{router_id}/add_router_interface")
def add_router_interface(
    request: Request,
    router_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "add_router_interface")
    subnet_id, port_id = _interface_request(body)
    if subnet_id and port_id:
        raise _bad_router("Cannot specify both subnet-id and port-id.")

    def work(session: Session) -> dict[str, Any]:
        router_row = nc.load(session, ctx, "router", router_id)
        if port_id:
            port = nc.load(session, ctx, "port", port_id)
            if port.project_id != router_row.project_id:
                raise nc.not_found("port", port_id)
            subnet_ids = intent_routers.add_interface_port(session, router_row, port)
        else:
            assert subnet_id is not None
            subnet = nc.load(session, ctx, "subnet", subnet_id)
            port = intent_routers.add_interface_subnet(session, router_row, subnet)
            subnet_ids = [subnet.id]
        return _interface_body(router_row, port, subnet_ids)

    return nc.transact(request, work)


@router.put("/v2.0/routers/{router_id}/remove_router_interface")
def remove_router_interface(
    request: Request,
    router_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "remove_router_interface")
    subnet_id, port_id = _interface_request(body)

    def work(session: Session) -> dict[str, Any]:
        router_row = nc.load(session, ctx, "router", router_id)
        if not port_id:
            assert subnet_id is not None
            nc.load(session, ctx, "subnet", subnet_id)
        port, removed = intent_routers.remove_interface(
            session, router_row, port_id=port_id, subnet_id=subnet_id
        )
        return _interface_body(router_row, port, removed)

    return nc.transact(request, work)
