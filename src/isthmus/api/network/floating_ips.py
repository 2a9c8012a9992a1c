"""Network v2.0 floating IPs.

A floating IP takes an address on an external network (`router:external`)
through a port `network:floatingip` owned by no project (global IPAM): from the
first IPv4 subnet with a free address, or the subnet / address asked for (a
specific address is admin-only, as in Neutron). Associating it with a port needs
a router with a gateway on that network and an interface on the port's subnet
(else 404 ExternalGatewayForFloatingIPNotFound); a fixed IP takes one floating IP
per external network (409). Associating enqueues it in the site of the port's
server, where that site's copy of the router does the NAT (engine/l3.py); the
writes of a create are intent/floating_ips.py's. As in
Neutron it is DOWN until then and when not associated, and ACTIVE once the site
applied it (the engine sets that); a port in no site (no server) leaves it DOWN.
Deleting the port it points at disassociates it (and a port that vanished with
its server shows the floating IP disassociated).

A floating IP's spec: floating_network_id, floating_ip_address, fip_port_id (its
own port on the external network), port_id, fixed_ip_address, router_id,
description, tags.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request
from fastapi.responses import Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.api.network.l3 import bad_fip, external_network, subnet_ids_of
from isthmus.api.network.ports import device_of
from isthmus.errors import BadRequest, Conflict, NotFound
from isthmus.intent import floating_ips as intent_floating_ips
from isthmus.model import ipam
from isthmus.store import ports as store_ports
from isthmus.store.tables import Resource

router = APIRouter(prefix="/network")

_FIP_POST = {
    "floating_network_id",
    "floating_ip_address",
    "subnet_id",
    "port_id",
    "fixed_ip_address",
    "description",
    "project_id",
    "tenant_id",
}
_FIP_PUT = {"port_id", "fixed_ip_address", "description"}
_FIP_READ_ONLY = {
    "id",
    "status",
    "router_id",
    "floating_network_id",
    "floating_ip_address",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
    "port_details",
}


# -- floating IPs ----------------------------------------------------------------------------


def fip_body(fip: Resource, target: Resource | None) -> dict[str, Any]:
    spec = fip.spec
    associated = target is not None and not target.deleting
    body = nc.common_fields(fip)
    del body["name"]
    details = None
    if associated and target is not None:
        details = {
            "name": target.name,
            "network_id": target.parent_id,
            "mac_address": target.spec.get("mac_address"),
            "admin_state_up": bool(target.spec.get("admin_state_up", True)),
            "status": target.status or "DOWN",
            "device_id": device_of(target),
            "device_owner": target.spec.get("device_owner") or "",
        }
    return {
        **body,
        "floating_ip_address": spec.get("floating_ip_address"),
        "floating_network_id": spec.get("floating_network_id"),
        "port_id": spec.get("port_id") if associated else None,
        "fixed_ip_address": spec.get("fixed_ip_address") if associated else None,
        "router_id": spec.get("router_id") if associated else None,
        "status": (fip.status or "DOWN") if associated else "DOWN",
        "port_details": details,
    }


def _associate(
    session: Session, ctx: RequestContext, fip: Resource, port_id: Any, fixed_ip: Any
) -> dict[str, Any]:
    """The association spec for `fip` -> port (Neutron's checks), or none."""
    if port_id is None:
        return {"port_id": None, "fixed_ip_address": None, "router_id": None}
    port = nc.load(session, ctx, "port", nc.to_id("port_id", port_id))
    if port.project_id != fip.project_id:
        raise bad_fip(
            f"Cannot create floating IP and bind it to Port {port.id}, since that port is owned"
            " by a different project."
        )
    v4 = [f for f in port.spec.get("fixed_ips") or [] if ":" not in f["ip_address"]]
    if fixed_ip is not None:
        address = nc.ip_address("fixed_ip_address", fixed_ip, 4)
        chosen = next((f for f in v4 if f["ip_address"] == address), None)
        if chosen is None:
            raise bad_fip(f"Port {port.id} does not have fixed ip {address}.")
    elif not v4:
        raise bad_fip(f"Cannot add floating IP to port {port.id} that has no fixed IPv4 addresses.")
    elif len(v4) > 1:
        raise bad_fip(
            f"Port {port.id} has multiple fixed IPv4 addresses.  Must provide a specific IPv4"
            " address when assigning a floating IP."
        )
    else:
        chosen = v4[0]
    network_id = fip.spec["floating_network_id"]
    router_id = None
    for interface in nc.live(session, "port"):
        if interface.spec.get("device_owner") == nc.ROUTER_INTERFACE and chosen[
            "subnet_id"
        ] in subnet_ids_of(interface):
            owner = session.get(Resource, interface.device_id) if interface.device_id else None
            gateway = (owner.spec.get("gateway") or {}) if owner is not None else {}
            if owner is not None and not owner.deleting and gateway.get("network_id") == network_id:
                router_id = owner.id
                break
    if router_id is None:
        raise NotFound(
            f"External network {network_id} is not reachable from subnet"
            f" {chosen['subnet_id']}.  Therefore, cannot associate Port {port.id} with a"
            " Floating IP.",
            "ExternalGatewayForFloatingIPNotFound",
        )
    for other in nc.live(session, "floating_ip"):
        if (
            other.id != fip.id
            and other.spec.get("port_id") == port.id
            and other.spec.get("fixed_ip_address") == chosen["ip_address"]
            and other.spec.get("floating_network_id") == network_id
        ):
            raise Conflict(
                f"Cannot associate floating IP {fip.spec.get('floating_ip_address')} ({fip.id})"
                f" with port {port.id} using fixed IP {chosen['ip_address']}, as that fixed IP"
                f" already has a floating IP on external network {network_id}.",
                "FloatingIPPortAlreadyAssociated",
            )
    return {"port_id": port.id, "fixed_ip_address": chosen["ip_address"], "router_id": router_id}


def _floating_address_request(
    session: Session, network: Resource, subnet_id: Any, address: Any
) -> list[dict[str, Any]]:
    subnets = store_ports.subnets_of(session, network.id)
    if subnet_id is not None:
        subnet = next((s for s in subnets if s.id == subnet_id), None)
        if subnet is None:
            raise bad_fip(f"Subnet {subnet_id} is not a subnet of network {network.id}.")
        entry: dict[str, Any] = {"subnet_id": subnet.id}
        if address is not None:
            entry["ip_address"] = nc.ip_address("floating_ip_address", address, 4)
        return [entry]
    if address is not None:
        return [{"ip_address": nc.ip_address("floating_ip_address", address, 4)}]
    v4 = [s for s in subnets if s.spec.get("ip_version") == 4]
    if not v4:
        raise bad_fip(f"Network {network.id} does not contain any IPv4 subnet")
    for subnet in v4:  # the first IPv4 subnet with a free address
        pools = subnet.spec.get("allocation_pools") or []
        taken = store_ports.taken_addresses(session, subnet.id)
        try:
            ipam.next_free(pools, taken, subnet.id)
        except Conflict:
            continue
        return [{"subnet_id": subnet.id}]
    raise Conflict(
        f"No more IP addresses available on network {network.id}.", "IpAddressGenerationFailure"
    )


@router.get("/v2.0/floatingips")
def list_floating_ips(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        rows = nc.visible_rows(session, ctx, "floating_ip")
        targets = nc.by_ids(session, [r.spec.get("port_id") or "" for r in rows])
        bodies = [fip_body(r, targets.get(r.spec.get("port_id") or "")) for r in rows]
    return nc.list_page(request, "floatingips", "floating_ip", bodies)


@router.get("/v2.0/floatingips/{fip_id}")
def get_floating_ip(
    request: Request, fip_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        fip = nc.load(session, ctx, "floating_ip", fip_id)
        target = store_ports.live_port(session, fip.spec.get("port_id"))
        return {"floatingip": nc.show_fields(request, fip_body(fip, target))}


@router.post("/v2.0/floatingips", status_code=201)
def create_floating_ip(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_floatingip")
    data = nc.object_of(body, "floatingip")
    nc.check_attributes(data, _FIP_POST, _FIP_READ_ONLY, put=False)
    nc.forbid_unless_admin(ctx, data, "floating_ip_address")
    if "floating_network_id" not in data:
        raise BadRequest(
            "Failed to parse request. Required attribute 'floating_network_id' not specified"
        )
    if data.get("fixed_ip_address") is not None and data.get("port_id") is None:
        raise bad_fip("fixed_ip_address cannot be specified without a port_id")

    def work(session: Session) -> dict[str, Any]:
        network = external_network(
            session, ctx, nc.to_id("floating_network_id", data["floating_network_id"]), "fip"
        )
        project = nc.owner_of(ctx, data)
        requested = _floating_address_request(
            session, network, data.get("subnet_id"), data.get("floating_ip_address")
        )
        intent_floating_ips.check_quota(session, project)
        fip = intent_floating_ips.add_floating_ip(
            session,
            network,
            project_id=project,
            description=nc.to_str("description", data.get("description")),
            fixed_ips=requested,
        )
        association = _associate(
            session, ctx, fip, data.get("port_id"), data.get("fixed_ip_address")
        )
        target = intent_floating_ips.associate(session, fip, association)
        return {"floatingip": fip_body(fip, target)}

    return nc.transact(request, work)


@router.put("/v2.0/floatingips/{fip_id}")
def update_floating_ip(
    request: Request,
    fip_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_floatingip")
    data = nc.object_of(body, "floatingip")
    nc.check_attributes(data, _FIP_PUT, _FIP_READ_ONLY, put=True)

    def work(session: Session) -> dict[str, Any]:
        fip = nc.load(session, ctx, "floating_ip", fip_id)
        spec: dict[str, Any] = {}
        fields: dict[str, Any] = {}
        if "description" in data:
            spec["description"] = nc.to_str("description", data["description"])
        if "port_id" in data or "fixed_ip_address" in data:
            port_id = data["port_id"] if "port_id" in data else fip.spec.get("port_id")
            association = _associate(session, ctx, fip, port_id, data.get("fixed_ip_address"))
            spec.update(association)
            fields["status"] = "DOWN"  # ACTIVE again once its (new) site applied it
        target = intent_floating_ips.update_floating_ip(session, fip, spec=spec, fields=fields)
        return {"floatingip": fip_body(fip, target)}

    return nc.transact(request, work)


@router.delete("/v2.0/floatingips/{fip_id}", status_code=204)
def delete_floating_ip(
    request: Request, fip_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_floatingip")

    def work(session: Session) -> None:
        fip = nc.load(session, ctx, "floating_ip", fip_id)
        intent_floating_ips.delete_floating_ip(session, fip)

    nc.transact(request, work)
    return Response(status_code=204)
