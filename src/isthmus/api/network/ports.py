"""Network v2.0 ports.

A port's MAC and fixed IPs come from the global IPAM (store/ports.create_port), so
they are unique across every site. A port created here has no site: it stays
DOWN until a server uses it (the Compute API sets its site; the engine then
realises it and reports ACTIVE). Admins see the site as `binding:host_id`.

Port security (extension port-security: `port_security_enabled`, default the
network's) and allowed address pairs (`allowed_address_pairs`: {ip_address,
mac_address}, the port's MAC when none is given) are spec keys; the rules between
them and security groups are intent/ports.check_port_security's. A port without
port security gets no default security group.

An update of name, fixed IPs (re-allocated: an entry with only a `subnet_id`
keeps the port's address there), security groups, device or admin state goes
through intent/ports.update_port, which enqueues the sites the port is bound in; a
removed security group is re-planned there too. Ports owned by a router or a
floating IP are deleted through those (409 L3PortInUse here); deleting a port
(intent/ports.delete_port) disassociates its floating IPs. This module parses and
answers; the writes are intent/ports.py's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound
from isthmus.intent import ports as intent_ports
from isthmus.intent.ports import device_of
from isthmus.model import ipam
from isthmus.store import identity
from isthmus.store import ports as store_ports
from isthmus.store.tables import Resource

router = APIRouter(prefix="/network")

MAX_DEVICE = 255
_PORT_POST = {
    "name",
    "description",
    "network_id",
    "fixed_ips",
    "mac_address",
    "admin_state_up",
    "device_id",
    "device_owner",
    "security_groups",
    "project_id",
    "tenant_id",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "port_security_enabled",
    "allowed_address_pairs",
}
_PORT_PUT = {
    "name",
    "mac_address",
    "description",
    "fixed_ips",
    "admin_state_up",
    "device_id",
    "device_owner",
    "security_groups",
    "binding:host_id",
    "binding:vnic_type",
    "binding:profile",
    "port_security_enabled",
    "allowed_address_pairs",
}
_PORT_READ_ONLY = {
    "id",
    "status",
    "network_id",
    "mac_address",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
    "binding:vif_type",
    "binding:vif_details",
}
MAX_ADDRESS_PAIRS = 10  # Neutron's max_allowed_address_pair default


def port_body(port: Resource, admin: bool) -> dict[str, Any]:
    spec = port.spec
    admin_up = bool(spec.get("admin_state_up", True))
    status = (port.status or "DOWN") if admin_up else "DOWN"
    body: dict[str, Any] = {
        **nc.common_fields(port),
        "network_id": port.parent_id,
        "mac_address": spec.get("mac_address"),
        "admin_state_up": admin_up,
        "status": status,
        "device_id": device_of(port),
        "device_owner": spec.get("device_owner") or "",
        "fixed_ips": [dict(f) for f in spec.get("fixed_ips") or []],
        "security_groups": list(spec.get("security_groups") or []),
        "allowed_address_pairs": [dict(p) for p in spec.get("allowed_address_pairs") or []],
        "port_security_enabled": bool(spec.get("port_security_enabled", True)),
        "binding:vnic_type": "normal",
    }
    if admin:
        body["binding:host_id"] = port.site or ""
        body["binding:vif_type"] = "ovs" if port.site and port.status == "ACTIVE" else "unbound"
        body["binding:vif_details"] = {}
        body["binding:profile"] = {}
    return body


# -- validation ------------------------------------------------------------------------------


def _check_binding(data: dict[str, Any], port: Resource | None) -> None:
    host = data.get("binding:host_id")
    if host and host != (port.site if port else None):
        raise BadRequest(
            "Invalid input for binding:host_id. Reason: Isthmus binds a port to the site"
            " of the server that uses it.",
            "InvalidInput",
        )
    vnic = data.get("binding:vnic_type", "normal")
    if vnic != "normal":
        raise nc.invalid("binding:vnic_type", f"'{vnic}' is not in ['normal']")
    if data.get("binding:profile"):
        raise nc.invalid("binding:profile", "binding profiles are not supported")


def _device(data: dict[str, Any]) -> tuple[str | None, dict[str, Any]]:
    """The device id column value and spec for `device_id` (long ids live in spec)."""
    device = nc.to_str("device_id", data.get("device_id"), MAX_DEVICE)
    if len(device) <= 36:
        return (device or None), {"device_id_text": None}
    return None, {"device_id_text": device}


def _fixed_ips(session: Session, network: Resource, value: Any) -> list[dict[str, Any]] | None:
    """The requested fixed IPs, checked for shape and for addresses a port cannot hold."""
    if value is None:
        return None
    entries = nc.to_list("fixed_ips", value)
    subnets = {s.id: s for s in store_ports.subnets_of(session, network.id)}
    result: list[dict[str, Any]] = []
    for entry in entries:
        if not isinstance(entry, dict) or not entry or set(entry) - {"subnet_id", "ip_address"}:
            raise nc.invalid("fixed_ips", f"'{entry}' is not a {{subnet_id, ip_address}} object")
        clean: dict[str, Any] = {}
        if entry.get("subnet_id") is not None:
            clean["subnet_id"] = nc.to_id("fixed_ips", entry["subnet_id"])
        if entry.get("ip_address") is not None:
            address = ipaddress.ip_address(nc.ip_address("fixed_ips", entry["ip_address"]))
            clean["ip_address"] = str(address)
            subnet = subnets.get(clean.get("subnet_id", ""))
            if subnet is None:
                subnet = store_ports.subnet_holding(list(subnets.values()), address)
            if subnet is not None:
                cidr = ipam.parse_cidr(subnet.spec["cidr"])
                if address in cidr and (
                    address == cidr.network_address
                    or (cidr.version == 4 and address == cidr.broadcast_address)
                ):
                    raise BadRequest(
                        f"IP address {address} is not a valid IP for the specified subnet.",
                        "InvalidIpForSubnet",
                    )
        if not clean:
            raise nc.invalid("fixed_ips", "an entry needs a subnet_id or an ip_address")
        result.append(clean)
    return result


def _address_pairs(value: Any) -> list[dict[str, Any]]:
    """allowed_address_pairs as Neutron validates them: a list of at most
    MAX_ADDRESS_PAIRS {ip_address (address or CIDR), mac_address (optional: the
    port's)}, no pair twice. A pair without a MAC has mac_address None here."""
    if value is None:
        return []
    if not isinstance(value, list):
        raise BadRequest("Allowed address pairs must be a list.", "HTTPBadRequest")
    if len(value) > MAX_ADDRESS_PAIRS:
        raise BadRequest(
            f"The number of allowed address pair exceeds the maximum {MAX_ADDRESS_PAIRS}.",
            "AllowedAddressPairExhausted",
        )
    result: list[dict[str, Any]] = []
    for pair in value:
        if not isinstance(pair, dict):
            raise nc.invalid("allowed_address_pairs", f"'{pair}' is not a dictionary")
        mac = ipam.normalize_mac(pair["mac_address"]) if "mac_address" in pair else None
        if "ip_address" not in pair:
            raise BadRequest(
                "AllowedAddressPair must contain ip_address", "AllowedAddressPairsMissingIP"
            )
        address = pair["ip_address"]
        clean = {"ip_address": address, "mac_address": mac}
        if clean in result:
            raise BadRequest(
                f"Request contains duplicate address pair: mac_address {mac} ip_address {address}.",
                "DuplicateAddressPairInRequest",
            )
        unknown = set(pair) - {"ip_address", "mac_address"}
        if unknown:
            raise BadRequest(
                f"Unrecognized attribute(s) '{', '.join(sorted(unknown))}'", "HTTPBadRequest"
            )
        try:
            if not isinstance(address, str):
                raise ValueError(address)
            if "/" in address:  # host bits allowed, as netaddr keeps them
                ipaddress.ip_network(address, strict=False)
            else:
                ipaddress.ip_address(address)
        except ValueError:
            raise BadRequest(f"'{address}' is not a valid IP address", "HTTPBadRequest") from None
        result.append(clean)
    return result


def _with_macs(pairs: list[dict[str, Any]], mac: str) -> list[dict[str, Any]]:
    """Pairs given without a MAC take the port's."""
    return [{**p, "mac_address": p["mac_address"] or mac} for p in pairs]


def _requested_groups(data: dict[str, Any]) -> list[Any] | None:
    return (
        nc.to_list("security_groups", data["security_groups"])
        if "security_groups" in data
        else None
    )


def _security_groups(session: Session, ctx: RequestContext, value: Any, project: str) -> list[str]:
    groups: list[str] = []
    for group_id in nc.to_list("security_groups", value):
        group = nc.load(session, ctx, "security_group", nc.to_id("security_groups", group_id))
        if group.project_id != project:
            raise nc.not_found("security_group", group.id)
        if group.id not in groups:
            groups.append(group.id)
    return groups


def _default_group(session: Session, project: str) -> str:
    """The project's `default` group, made again if an admin deleted it (as Neutron does)."""
    try:
        return store_ports.default_security_group(session, project)
    except NotFound:
        identity.create_default_security_group(session, project)
        session.flush()
        return store_ports.default_security_group(session, project)


def _port_network(session: Session, ctx: RequestContext, network_id: Any) -> Resource:
    network = nc.load(session, ctx, "network", nc.to_id("network_id", network_id))
    if not ctx.is_admin and network.project_id != ctx.project_id and not network.spec.get("shared"):
        raise Forbidden("rule:create_port is disallowed by policy", "PolicyNotAuthorized")
    return network


# -- handlers --------------------------------------------------------------------------------


def _fixed_ip_matcher(body: dict[str, Any], wanted: list[str]) -> bool:
    constraints: dict[str, list[str]] = {}
    for value in wanted:
        key, _, needle = value.partition("=")
        constraints.setdefault(key, []).append(needle)
    for fixed in body.get("fixed_ips") or []:
        ok = True
        for key, needles in constraints.items():
            if key == "ip_address_substr":
                ok = ok and any(n in fixed["ip_address"] for n in needles)
            elif key in ("subnet_id", "ip_address"):
                ok = ok and fixed[key] in needles
        if ok:
            return True
    return False


def _mac_matcher(body: dict[str, Any], wanted: list[str]) -> bool:
    """Neutron compares MAC filters in its own spelling (any accepted form matches)."""
    return body.get("mac_address") in {ipam.filter_mac(value) for value in wanted}


_MATCHERS = {
    "fixed_ips": _fixed_ip_matcher,
    "mac_address": _mac_matcher,
    "ip_address": lambda b, w: _fixed_ip_matcher(b, [f"ip_address={v}" for v in w]),
    "subnet_id": lambda b, w: _fixed_ip_matcher(b, [f"subnet_id={v}" for v in w]),
}


@router.get("/v2.0/ports")
def list_ports(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        bodies = [port_body(p, ctx.is_admin) for p in nc.visible_rows(session, ctx, "port")]
    return nc.list_page(request, "ports", "port", bodies, _MATCHERS)


@router.get("/v2.0/ports/{port_id}")
def get_port(
    request: Request, port_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        port = nc.load(session, ctx, "port", port_id)
        return {"port": nc.show_fields(request, port_body(port, ctx.is_admin))}


@router.post("/v2.0/ports", status_code=201)
def create_port(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_port")
    items, bulk = nc.items_of(body, "port", "ports")
    for data in items:
        nc.check_attributes(data, _PORT_POST, _PORT_READ_ONLY, put=False)
        _check_binding(data, None)
        if "network_id" not in data:
            raise BadRequest(
                "Failed to parse request. Required attribute 'network_id' not specified"
            )

    def work(session: Session) -> dict[str, Any]:
        created = []
        for data in items:
            network = _port_network(session, ctx, data["network_id"])
            project = nc.owner_of(ctx, data)
            owner = nc.to_str("device_owner", data.get("device_owner"), MAX_DEVICE)
            device, device_spec = _device(data)
            fixed_ips = _fixed_ips(session, network, data.get("fixed_ips"))
            secured = nc.to_bool(
                "port_security_enabled",
                data.get("port_security_enabled", network.spec.get("port_security_enabled", True)),
            )
            pairs = _address_pairs(data.get("allowed_address_pairs"))
            intent_ports.check_port_security(
                secured,
                groups=_requested_groups(data) if data.get("security_groups") is not None else None,
                pairs=pairs,
            )
            if not secured:
                groups = []
            elif data.get("security_groups") is not None:
                groups = _security_groups(session, ctx, data["security_groups"], project)
            elif owner.startswith("network:"):
                groups = []
            else:
                groups = [_default_group(session, project)]
            mac = data.get("mac_address")  # checked by store_ports.allocate_mac (Neutron's rules)
            port = intent_ports.create_port(
                session,
                network,
                project_id=project,
                name=nc.to_str("name", data.get("name")),
                fixed_ips=fixed_ips,
                mac_address=mac,
                security_groups=groups,
                device_id=device,
                device_owner=owner,
                admin_state_up=nc.to_bool("admin_state_up", data.get("admin_state_up", True)),
                extra={
                    "description": nc.to_str("description", data.get("description")),
                    "tags": [],
                    "port_security_enabled": secured,
                    **device_spec,
                },
            )
            port.spec = {
                **port.spec,
                "allowed_address_pairs": _with_macs(pairs, port.spec["mac_address"]),
            }
            session.flush()
            created.append(port_body(port, ctx.is_admin))
        return {"ports": created} if bulk else {"port": created[0]}

    return nc.transact(request, work)


def _resolve_fixed_ips(port: Resource, requested: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Neutron's update rule: an entry with only a subnet_id keeps the port's
    current address on that subnet (if it has one not otherwise requested)."""
    current = [dict(f) for f in port.spec.get("fixed_ips") or []]
    named = {e["ip_address"] for e in requested if "ip_address" in e}
    spare: dict[str, list[str]] = {}
    for fixed in current:
        if fixed["ip_address"] not in named:
            spare.setdefault(fixed["subnet_id"], []).append(fixed["ip_address"])
    resolved = []
    for entry in requested:
        if "ip_address" not in entry and spare.get(entry["subnet_id"]):
            address = spare[entry["subnet_id"]].pop(0)
            resolved.append({"subnet_id": entry["subnet_id"], "ip_address": address})
        else:
            resolved.append(entry)
    return resolved


@router.put("/v2.0/ports/{port_id}")
def update_port(
    request: Request,
    port_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_port")
    data = nc.object_of(body, "port")
    nc.check_attributes(data, _PORT_PUT, _PORT_READ_ONLY, put=True)

    def work(session: Session) -> dict[str, Any]:
        port = nc.load(session, ctx, "port", port_id)
        nc.require_owner(ctx, port, "update_port")
        _check_binding(data, port)
        fields, spec = nc.standard_updates(data)
        if "mac_address" in data:  # admin only, as Neutron's update_port:mac_address policy
            if not ctx.is_admin:
                raise Forbidden(
                    "rule:update_port:mac_address is disallowed by policy", "PolicyNotAuthorized"
                )
            spec["mac_address"] = store_ports.change_mac(session, port, data["mac_address"])
        if "device_owner" in data:
            spec["device_owner"] = nc.to_str("device_owner", data["device_owner"], MAX_DEVICE)
        if "device_id" in data:
            device, device_spec = _device(data)
            if (
                port.site
                and device_of(port)
                and (device or device_spec["device_id_text"]) != (device_of(port))
            ):
                raise Conflict(
                    f"Unable to complete operation on port {port.id} for network"
                    f" {port.parent_id}. Port already has an attached device"
                    f" {device_of(port)}.",
                    "PortInUse",
                )
            fields["device_id"] = device
            spec.update(device_spec)
        if "port_security_enabled" in data:
            spec["port_security_enabled"] = nc.to_bool(
                "port_security_enabled", data["port_security_enabled"]
            )
        pairs = (
            _address_pairs(data["allowed_address_pairs"])
            if "allowed_address_pairs" in data
            else None
        )
        intent_ports.check_port_security(
            bool(spec.get("port_security_enabled", port.spec.get("port_security_enabled", True))),
            groups=_requested_groups(data),
            pairs=pairs,
            current=port,
        )
        if pairs is not None:
            mac = spec.get("mac_address") or port.spec.get("mac_address") or ""
            spec["allowed_address_pairs"] = _with_macs(pairs, mac)
        groups = None
        if "security_groups" in data:
            groups = _security_groups(session, ctx, data["security_groups"], port.project_id or "")
        resolved = None
        if data.get("fixed_ips") is not None:
            network = session.get(Resource, port.parent_id)
            assert network is not None
            requested = _fixed_ips(session, network, data["fixed_ips"]) or []
            resolved = _resolve_fixed_ips(port, requested)
        intent_ports.update_port(
            session, port, fields=fields, spec=spec, security_groups=groups, fixed_ips=resolved
        )
        return {"port": port_body(port, ctx.is_admin)}

    return nc.transact(request, work)


@router.delete("/v2.0/ports/{port_id}", status_code=204)
def delete_port(
    request: Request, port_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_port")

    def work(session: Session) -> None:
        port = nc.load(session, ctx, "port", port_id)
        nc.require_owner(ctx, port, "delete_port")
        owner = port.spec.get("device_owner") or ""
        device = session.get(Resource, port.device_id) if port.device_id else None
        if owner in nc.L3_OWNERS and device is not None and not device.deleting:
            raise Conflict(
                f"Port {port.id} cannot be deleted directly via the port API: has device owner"
                f" {owner}.",
                "L3PortInUse",
            )
        intent_ports.delete_port(session, port, device)

    nc.transact(request, work)
    return Response(status_code=204)
