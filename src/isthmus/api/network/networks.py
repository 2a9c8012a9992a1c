"""Network v2.0 (Neutron): version discovery, extensions, availability zones and
networks. Subnets live in api/network/subnets.py, ports in api/network/ports.py,
security groups in api/network/security.py, routers in api/network/l3.py,
floating IPs in api/network/floating_ips.py, quotas and tags in api/network/extras.py;
shared plumbing in api/network/common.py.

A network is intent only: it is created in the store and reaches a site when a
port placed there needs it (the engine does that), so nothing is enqueued at
create time. Its `availability_zones` are the sites it is realised in now (its
bindings), so a network reaches a site with its first port there and leaves
after its last one; reads change nothing. Its `availability_zone_hints` (set at
create, names of sites: an unknown one is 404 AvailabilityZoneNotFound as in
Neutron) are the sites it may reach: Compute refuses (400) a server in another
zone on it and places a server without a zone among them (api/compute/create.py).
Empty hints: wherever a port needs it. An update goes through `repo.change`,
which enqueues the sites the network is in. The checks that need the store and
the writes are intent/networks.py's; this module parses and answers.
Errors use Neutron's body `{"NeutronError": {"type", "message", "detail"}}`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.api.network import extensions, pools
from isthmus.errors import BadRequest, NotFound
from isthmus.fabric import interconnect
from isthmus.intent import networks as intent_networks
from isthmus.store.ports import subnets_of
from isthmus.store.tables import Resource, Site

router = APIRouter(prefix="/network")

EXTENSIONS = extensions.EXTENSIONS


# -- versions, resources, extensions ---------------------------------------------------------


def _version(request: Request) -> dict[str, Any]:
    return {
        "id": "v2.0",
        "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{base_url_of(request)}/network/v2.0/"}],
    }


@router.get("")
@router.get("/")
def versions(request: Request) -> dict[str, Any]:
    return {"versions": [_version(request)]}


@router.get("/v2.0")
@router.get("/v2.0/")
def resources(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    base = f"{base_url_of(request)}/network/v2.0"
    names = {
        "network": "networks",
        "subnet": "subnets",
        "port": "ports",
        "router": "routers",
        "floatingip": "floatingips",
        "security_group": "security-groups",
        "security_group_rule": "security-group-rules",
        "availability_zone": "availability_zones",
        "quota": "quotas",
        "extension": "extensions",
    }
    return {
        "resources": [
            {
                "name": name,
                "collection": collection.replace("-", "_"),
                "links": [{"rel": "self", "href": f"{base}/{collection}"}],
            }
            for name, collection in names.items()
        ]
    }


def _extension(alias: str, name: str, description: str, updated: str) -> dict[str, Any]:
    return {
        "alias": alias,
        "name": name,
        "description": description,
        "updated": updated,
        "links": [],
    }


@router.get("/v2.0/extensions")
def list_extensions(ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return {"extensions": [_extension(*e) for e in EXTENSIONS]}


@router.get("/v2.0/extensions/{alias}")
def show_extension(alias: str, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    for extension in EXTENSIONS:
        if extension[0] == alias:
            return {"extension": _extension(*extension)}
    raise NotFound(f"Extension with alias {alias} does not exist", "HTTPNotFound")


# -- availability zones ----------------------------------------------------------------------


@router.get("/v2.0/availability_zones")
def list_availability_zones(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    """One zone per site, for networks and routers; unavailable while the site is down."""
    zones = []
    with nc.read_session(request) as session:
        for site in session.scalars(select(Site).order_by(Site.name)):
            state = "available" if site.enabled and site.health != "down" else "unavailable"
            for resource in ("network", "router"):
                zones.append({"name": site.name, "resource": resource, "state": state})
    params = request.query_params
    wanted = {
        "name": params.getlist("name") + params.getlist("availability_zone"),
        "resource": params.getlist("resource") + params.getlist("agent_type"),
        "state": params.getlist("state"),
    }
    for key, values in wanted.items():
        if values:
            zones = [z for z in zones if z[key] in values]
    return {"availability_zones": zones}


# -- networks --------------------------------------------------------------------------------

_NETWORK_POST = {
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "availability_zone_hints",
    "is_default",
    "project_id",
    "tenant_id",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "port_security_enabled",
}
_NETWORK_PUT = {
    "name",
    "description",
    "admin_state_up",
    "shared",
    "router:external",
    "mtu",
    "is_default",
    "port_security_enabled",
}
_NETWORK_READ_ONLY = {
    "id",
    "status",
    "subnets",
    "availability_zones",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
    "ipv4_address_scope",
    "ipv6_address_scope",
    "availability_zone_hints",
    "project_id",
    "tenant_id",
    "provider:network_type",
    "provider:physical_network",
    "provider:segmentation_id",
    "isthmus:interconnect",
}
_ADMIN_ONLY = ("shared", "router:external", "is_default")
_PROVIDER = ("provider:network_type", "provider:physical_network", "provider:segmentation_id")
MAX_VNI = 2**24 - 1


def network_body(
    network: Resource,
    subnets: list[str],
    zones: list[str],
    admin: bool,
    scopes: dict[int, str] | None = None,
) -> dict[str, Any]:
    """`scopes`: IP version -> the address scope of the network's subnets' pool."""
    spec = network.spec
    scopes = scopes or {}
    body = {
        **nc.common_fields(network),
        "status": network.status or "ACTIVE",
        "admin_state_up": bool(spec.get("admin_state_up", True)),
        "shared": bool(spec.get("shared", False)),
        "router:external": bool(spec.get("external", False)),
        "is_default": bool(spec.get("is_default", False)),
        "mtu": int(spec.get("mtu", nc.DEFAULT_MTU)),
        "subnets": subnets,
        "availability_zone_hints": list(spec.get("availability_zone_hints") or []),
        "availability_zones": zones,
        "ipv4_address_scope": scopes.get(4),
        "ipv6_address_scope": scopes.get(6),
        "port_security_enabled": bool(spec.get("port_security_enabled", True)),
    }
    if admin:
        body["provider:network_type"] = "vxlan"
        body["provider:physical_network"] = None
        body["provider:segmentation_id"] = spec.get("segmentation_id")
        # per site it is in: how that site joins the segment (fabric/interconnect.py)
        reports = interconnect.reports_of(network.observed)
        body["isthmus:interconnect"] = {site: dict(r) for site, r in reports.items()}
    return body


def show_network(session: Session, ctx: RequestContext, network: Resource) -> dict[str, Any]:
    rows = subnets_of(session, network.id)
    zones = nc.zones_of(session, [network.id])[network.id]
    scopes = pools.address_scopes(session, rows).get(network.id)
    return network_body(network, [s.id for s in rows], zones, ctx.is_admin, scopes)


def _mtu(value: Any, has_v6: bool) -> int:
    mtu = nc.to_int("mtu", value)
    low = nc.MIN_MTU_V6 if has_v6 else nc.MIN_MTU_V4
    if mtu > nc.DEFAULT_MTU:
        raise BadRequest(f"Requested MTU is too big, maximum is {nc.DEFAULT_MTU}", "InvalidInput")
    if mtu < low:
        raise BadRequest(
            f"Invalid input for operation: MTU {mtu} is below the minimum of {low}"
            f"{' for IPv6' if has_v6 else ''}.",
            "InvalidInput",
        )
    return mtu


def _segmentation_id(data: dict[str, Any]) -> int | None:
    """The VNI a create asks for (None: any), its form checked as Neutron does."""
    kind = data.get("provider:network_type")
    if kind is not None and kind != "vxlan":
        raise BadRequest(f"Network type value '{kind}' not supported", "InvalidInput")
    if data.get("provider:physical_network") is not None:
        raise BadRequest(
            "Invalid input for operation: physical_network not allowed for vxlan network.",
            "InvalidInput",
        )
    value = data.get("provider:segmentation_id")
    if value is None:
        return None
    return nc.to_int("provider:segmentation_id", value, low=1, high=MAX_VNI)


def _network_spec(data: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if "description" in data:
        spec["description"] = nc.to_str("description", data["description"])
    if "admin_state_up" in data:
        spec["admin_state_up"] = nc.to_bool("admin_state_up", data["admin_state_up"])
    if "shared" in data:
        spec["shared"] = nc.to_bool("shared", data["shared"])
    if "router:external" in data:
        spec["external"] = nc.to_bool("router:external", data["router:external"])
    if "is_default" in data:
        spec["is_default"] = nc.to_bool("is_default", data["is_default"])
    if "port_security_enabled" in data:  # the default of its new ports (port-security)
        spec["port_security_enabled"] = nc.to_bool(
            "port_security_enabled", data["port_security_enabled"]
        )
    return spec


@router.get("/v2.0/networks")
def list_networks(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        rows = nc.visible_rows(session, ctx, "network")
        ids = [r.id for r in rows]
        subnets: dict[str, list[str]] = {i: [] for i in ids}
        subnet_rows = nc.live(session, "subnet")
        for subnet in subnet_rows:
            if subnet.parent_id in subnets:
                subnets[subnet.parent_id].append(subnet.id)
        zones = nc.zones_of(session, ids)
        scopes = pools.address_scopes(session, subnet_rows)
        bodies = [
            network_body(r, subnets[r.id], zones[r.id], ctx.is_admin, scopes.get(r.id))
            for r in rows
        ]
    return nc.list_page(request, "networks", "network", bodies)


@router.get("/v2.0/networks/{network_id}")
def get_network(
    request: Request, network_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        network = nc.load(session, ctx, "network", network_id)
        return {"network": nc.show_fields(request, show_network(session, ctx, network))}


@router.post("/v2.0/networks", status_code=201)
def create_network(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_network")
    items, bulk = nc.items_of(body, "network", "networks")
    for data in items:
        nc.check_attributes(data, _NETWORK_POST, _NETWORK_READ_ONLY, put=False)
        nc.forbid_unless_admin(ctx, data, *_ADMIN_ONLY, *_PROVIDER)

    def work(session: Session) -> dict[str, Any]:
        created = []
        for data in items:  # one by one, so a bulk request is checked against itself
            project = nc.owner_of(ctx, data)
            spec = {
                "mtu": nc.DEFAULT_MTU,
                "admin_state_up": True,
                "shared": False,
                "external": False,
                "is_default": False,
                "description": "",
                "availability_zone_hints": [],
                "tags": [],
                **_network_spec(data),
            }
            if "mtu" in data:
                spec["mtu"] = _mtu(data["mtu"], has_v6=False)
            if "availability_zone_hints" in data:
                spec["availability_zone_hints"] = nc.validate_zone_hints(
                    session, data["availability_zone_hints"]
                )
            spec["segmentation_id"] = intent_networks.segment(  # every network has one
                session, _segmentation_id(data), request.app.state.service.config.vni_range
            )
            name = nc.to_str("name", data.get("name"))
            network = intent_networks.add_network(session, project_id=project, name=name, spec=spec)
            created.append(network_body(network, [], [], ctx.is_admin))
        return {"networks": created} if bulk else {"network": created[0]}

    return nc.transact(request, work)


@router.put("/v2.0/networks/{network_id}")
def update_network(
    request: Request,
    network_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_network")
    data = nc.object_of(body, "network")
    nc.check_attributes(data, _NETWORK_PUT, _NETWORK_READ_ONLY, put=True)
    nc.forbid_unless_admin(ctx, data, *_ADMIN_ONLY)

    def work(session: Session) -> dict[str, Any]:
        network = nc.load(session, ctx, "network", network_id)
        nc.require_owner(ctx, network, "update_network")
        spec = _network_spec(data)
        if "mtu" in data:
            spec["mtu"] = _mtu(data["mtu"], intent_networks.has_ipv6_subnet(session, network))
        intent_networks.check_network_update(session, network, spec)
        fields: dict[str, Any] = {"spec": spec}
        if "name" in data:
            fields["name"] = nc.to_str("name", data["name"])
        intent_networks.update(session, network, fields)
        return {"network": show_network(session, ctx, network)}

    return nc.transact(request, work)


@router.delete("/v2.0/networks/{network_id}", status_code=204)
def delete_network(
    request: Request, network_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_network")

    def work(session: Session) -> None:
        network = nc.load(session, ctx, "network", network_id)
        nc.require_owner(ctx, network, "delete_network")
        intent_networks.delete_network(session, network)

    nc.transact(request, work)
    return Response(status_code=204)
