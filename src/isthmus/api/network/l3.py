"""Network v2.0 routers. The engine realises a router in every site where one of
its networks has a server (engine/l3.py): adding or removing an interface enqueues
the router in the sites it should be in now and those it is bound in; a gateway or
name change re-applies it where it is bound (`repo.change`).

A router's interfaces are ports with device_owner `network:router_interface`
(by subnet: a new port holding the subnet's gateway IP; by port: an existing
unattached port); its external gateway is a port `network:router_gateway` on an
external network (`router:external`), owned by no project, as in Neutron. Neutron's
rules apply: one interface per subnet, no overlapping subnets on a router (400),
"Router ... still has ports" (409) on delete, and a gateway or interface a
floating IP depends on cannot be removed (409).

A router's spec: description, admin_state_up, availability_zone_hints, tags and
`gateway` ({network_id, enable_snat, port_id} or None).

Floating IPs (api/network/floating_ips.py) use the helpers `live_port`, `subnet_ids_of`,
`external_network` and `bad_fip` of this module.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from sqlalchemy import delete
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.api.network.ports import device_of
from isthmus.engine.l3 import router_sites
from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound
from isthmus.store import ports as store_ports
from isthmus.store import quotas, repo
from isthmus.store.tables import IpAllocation, Resource

router = APIRouter(prefix="/network")

_ROUTER_POST = {
    "name",
    "description",
    "admin_state_up",
    "external_gateway_info",
    "availability_zone_hints",
    "project_id",
    "tenant_id",
}
_ROUTER_PUT = {"name", "description", "admin_state_up", "external_gateway_info"}
_ROUTER_READ_ONLY = {
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


def _bad_router(message: str) -> BadRequest:
    return BadRequest(f"Bad router request: {message}", "BadRequest")


def bad_fip(message: str) -> BadRequest:
    return BadRequest(f"Bad floatingip request: {message}", "BadRequest")


def live_port(session: Session, port_id: str | None) -> Resource | None:
    port = session.get(Resource, port_id) if port_id else None
    return port if port is not None and port.kind == "port" and not port.deleting else None


def _interfaces(session: Session, router_id: str) -> list[Resource]:
    return [
        p
        for p in nc.live(session, "port", device_id=router_id)
        if p.spec.get("device_owner") == nc.ROUTER_INTERFACE
    ]


def subnet_ids_of(port: Resource) -> list[str]:
    return [f["subnet_id"] for f in port.spec.get("fixed_ips") or []]


# -- routers: bodies -------------------------------------------------------------------------


def router_body(
    router_row: Resource, gateway_port: Resource | None, zones: list[str] | None = None
) -> dict[str, Any]:
    """The Neutron body of a router; `zones` are the sites it is realised in now."""
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
    return {
        **nc.common_fields(router_row),
        "status": router_row.status or "ACTIVE",
        "admin_state_up": bool(spec.get("admin_state_up", True)),
        "external_gateway_info": info,
        "routes": [],
        "availability_zone_hints": list(spec.get("availability_zone_hints") or []),
        "availability_zones": list(zones or []),
    }


def _show_router(session: Session, router_row: Resource) -> dict[str, Any]:
    gateway = router_row.spec.get("gateway") or {}
    zones = nc.zones_of(session, [router_row.id])[router_row.id]
    return router_body(router_row, live_port(session, gateway.get("port_id")), zones)


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


def _check_no_fip_needs_gateway(session: Session, router_row: Resource, network_id: str) -> None:
    for fip in nc.live(session, "floating_ip"):
        if (
            fip.spec.get("router_id") == router_row.id
            and fip.spec.get("floating_network_id") == network_id
            and live_port(session, fip.spec.get("port_id")) is not None
        ):
            raise Conflict(
                f"Gateway cannot be updated for router {router_row.id}, since a gateway to"
                f" external network {network_id} is required by one or more floating IPs.",
                "RouterExternalGatewayInUseByFloatingIp",
            )


def _check_overlap(
    session: Session, router_row: Resource, subnet_ids: list[str], with_gateway: bool = True
) -> None:
    """New subnets on a router may not duplicate or overlap its other subnets."""
    on_router: list[str] = []
    for port in _interfaces(session, router_row.id):
        on_router += subnet_ids_of(port)
    gateway_port = live_port(session, (router_row.spec.get("gateway") or {}).get("port_id"))
    if with_gateway and gateway_port is not None:
        on_router += subnet_ids_of(gateway_port)
    for subnet_id in subnet_ids:
        if subnet_id in on_router:
            raise _bad_router(f"Router already has a port on subnet {subnet_id}.")
        new = session.get(Resource, subnet_id)
        assert new is not None
        new_cidr = ipaddress.ip_network(new.spec["cidr"])
        for other_id in on_router:
            other = session.get(Resource, other_id)
            if other is None:
                continue
            if new_cidr.overlaps(ipaddress.ip_network(other.spec["cidr"])):
                raise _bad_router(
                    f"Cidr {new_cidr} of subnet {subnet_id} overlaps with cidr"
                    f" {other.spec['cidr']} of subnet {other_id}."
                )


def external_network(session: Session, ctx: RequestContext, network_id: str, what: str) -> Resource:
    network = nc.load(session, ctx, "network", network_id)
    if not network.spec.get("external"):
        message = f"Network {network_id} is not a valid external network."
        raise _bad_router(message) if what == "router" else bad_fip(message)
    return network


def _set_gateway(
    session: Session, ctx: RequestContext, router_row: Resource, info: dict[str, Any] | None
) -> dict[str, Any] | None:
    """Apply a gateway request; returns the router's new `gateway` spec."""
    current = router_row.spec.get("gateway")
    current_port = live_port(session, (current or {}).get("port_id"))
    if info is None:
        if current:
            _check_no_fip_needs_gateway(session, router_row, current["network_id"])
            if current_port is not None:
                repo.mark_deleting(session, current_port)
        return None
    network = external_network(session, ctx, info["network_id"], "router")
    requested = info.get("external_fixed_ips")
    gateway: dict[str, Any] = current or {}
    same = bool(gateway) and gateway["network_id"] == network.id and current_port is not None
    snat = info.get("enable_snat", gateway.get("enable_snat", True) if same else True)
    if same and current_port is not None:
        if requested is not None:
            session.execute(delete(IpAllocation).where(IpAllocation.port_id == current_port.id))
            session.flush()
            fixed = store_ports.allocate_fixed_ips(session, network, current_port.id, requested)
            _check_overlap(session, router_row, [f["subnet_id"] for f in fixed], False)
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
        device_owner=nc.ROUTER_GATEWAY,
        extra={"description": "", "tags": []},
    )
    session.flush()
    _check_overlap(session, router_row, subnet_ids_of(port), with_gateway=False)
    return {"network_id": network.id, "enable_snat": snat, "port_id": port.id}


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
            router_body(r, ports.get((r.spec.get("gateway") or {}).get("port_id", "")), zones[r.id])
            for r in rows
        ]
    return nc.list_page(request, "routers", "router", bodies)


@router.get("/v2.0/routers/{router_id}")
def get_router(
    request: Request, router_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        router_row = nc.load(session, ctx, "router", router_id)
        return {"router": nc.show_fields(request, _show_router(session, router_row))}


@router.post("/v2.0/routers", status_code=201)
def create_router(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_router")
    data = nc.object_of(body, "router")
    nc.check_attributes(data, _ROUTER_POST, _ROUTER_READ_ONLY, put=False)
    gateway = _gateway_request(ctx, data.get("external_gateway_info"))
    name = nc.to_str("name", data.get("name"))
    spec = {
        "description": nc.to_str("description", data.get("description")),
        "admin_state_up": nc.to_bool("admin_state_up", data.get("admin_state_up", True)),
        "tags": [],
        "gateway": None,
    }

    def work(session: Session) -> dict[str, Any]:
        project = nc.owner_of(ctx, data)
        hints = nc.validate_zone_hints(session, data.get("availability_zone_hints"))
        quotas.check(session, project, {"routers": 1})
        router_row = repo.add(
            session,
            "router",
            project_id=project,
            name=name,
            status="ACTIVE",
            spec={**spec, "availability_zone_hints": hints},
        )
        session.flush()
        if gateway is not None:
            new_gateway = _set_gateway(session, ctx, router_row, gateway)
            router_row.spec = {**router_row.spec, "gateway": new_gateway}
        return {"router": _show_router(session, router_row)}

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
    gateway = (
        _gateway_request(ctx, data["external_gateway_info"])
        if "external_gateway_info" in data
        else None
    )

    def work(session: Session) -> dict[str, Any]:
        router_row = nc.load(session, ctx, "router", router_id)
        fields, spec = nc.standard_updates(data)
        if "external_gateway_info" in data:
            spec["gateway"] = _set_gateway(session, ctx, router_row, gateway)
        repo.change(session, router_row, spec=spec, **fields)
        return {"router": _show_router(session, router_row)}

    return nc.transact(request, work)


@router.delete("/v2.0/routers/{router_id}", status_code=204)
def delete_router(
    request: Request, router_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_router")

    def work(session: Session) -> None:
        router_row = nc.load(session, ctx, "router", router_id)
        if _interfaces(session, router_row.id):
            raise Conflict(f"Router {router_row.id} still has ports", "RouterInUse")
        _set_gateway(session, ctx, router_row, None)
        repo.mark_deleting(session, router_row)

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
            if device_of(port):
                raise Conflict(
                    f"Unable to complete operation on port {port.id} for network"
                    f" {port.parent_id}. Port already has an attached device {device_of(port)}.",
                    "PortInUse",
                )
            subnet_ids = subnet_ids_of(port)
            if not subnet_ids:
                raise _bad_router("Router port must have at least one fixed IP.")
            v4 = [f for f in port.spec["fixed_ips"] if ":" not in f["ip_address"]]
            if len(v4) > 1:
                raise _bad_router("Cannot have multiple IPv4 subnets on router port.")
            _check_overlap(session, router_row, subnet_ids)
            repo.change(
                session,
                port,
                device_id=router_row.id,
                spec={"device_owner": nc.ROUTER_INTERFACE, "device_id_text": None},
            )
        else:
            assert subnet_id is not None
            subnet = nc.load(session, ctx, "subnet", subnet_id)
            gateway = subnet.spec.get("gateway_ip")
            if not gateway:
                raise _bad_router("Subnet for router interface must have a gateway IP.")
            _check_overlap(session, router_row, [subnet.id])
            if gateway in store_ports.taken_addresses(session, subnet.id):
                raise Conflict(
                    f"IP address {gateway} already allocated in subnet {subnet.id}",
                    "IpAddressAlreadyAllocated",
                )
            network = session.get(Resource, subnet.parent_id)
            assert network is not None
            quotas.check(session, router_row.project_id or "", {"ports": 1})
            port = store_ports.create_port(
                session,
                network,
                project_id=router_row.project_id or "",
                fixed_ips=[],
                security_groups=[],
                device_id=router_row.id,
                device_owner=nc.ROUTER_INTERFACE,
                extra={"description": "", "tags": []},
            )
            session.add(IpAllocation(subnet_id=subnet.id, ip_address=gateway, port_id=port.id))
            port.spec = {
                **port.spec,
                "fixed_ips": [{"subnet_id": subnet.id, "ip_address": gateway}],
            }
            subnet_ids = [subnet.id]
        session.flush()
        repo.change(session, router_row, sites=router_sites(session, router_row.id))
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
        interfaces = _interfaces(session, router_row.id)
        if port_id:
            port = next((p for p in interfaces if p.id == port_id), None)
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
            nc.load(session, ctx, "subnet", subnet_id)
            port = next((p for p in interfaces if subnet_id in subnet_ids_of(p)), None)
            if port is None:
                raise NotFound(
                    f"Router {router_row.id} has no interface on subnet {subnet_id}",
                    "RouterInterfaceNotFoundForSubnet",
                )
            removed = [subnet_id]
        _check_no_fip_needs_interface(session, router_row, removed)
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
        session.flush()
        repo.change(session, router_row, sites=router_sites(session, router_row.id))
        return _interface_body(router_row, port, removed)

    return nc.transact(request, work)


def _check_no_fip_needs_interface(
    session: Session, router_row: Resource, subnet_ids: list[str]
) -> None:
    for fip in nc.live(session, "floating_ip"):
        if fip.spec.get("router_id") != router_row.id:
            continue
        target = live_port(session, fip.spec.get("port_id"))
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
