"""Network v2.0 security groups and rules.

Every project has a `default` group (store/identity.create_default_security_group
makes it with the project); a member cannot delete it (409) and nobody can rename
it. A new group gets Neutron's two egress rules (IPv4 and IPv6, any protocol).

Rules are validated as Neutron does: direction, ethertype, protocol by name or
number (0-255), port ranges (TCP/UDP/SCTP/DCCP: 1-65535, min <= max; ICMP:
type/code 0-255), remote_ip_prefix (a mask is added; its IP version must match the
ethertype), at most one remote (prefix or group), and an identical rule in the
group is 409 SecurityGroupRuleExists. Creating or deleting a rule bumps its group
(`repo.change`), so the engine re-applies the group in every site where a port
uses it. A group still used by a live port cannot be deleted (409). This module
parses, validates the bodies and answers; the checks that need the store and the
writes are intent/security_groups.py's.
"""

from __future__ import annotations

import ipaddress
from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.errors import BadRequest
from isthmus.intent import security_groups as intent_sg
from isthmus.store.tables import Resource

router = APIRouter(prefix="/network")

PROTOCOLS = intent_sg.PROTOCOLS
PORT_PROTOCOLS = {6, 17, 33, 132, 136}  # tcp, udp, dccp, sctp, udplite
ICMP_PROTOCOLS = {1, 58}
IPV6_ONLY = {41, 44, 58, 59, 60, 43}

_GROUP_POST = {"name", "description", "project_id", "tenant_id", "stateful"}
_GROUP_PUT = {"name", "description", "stateful"}
_GROUP_READ_ONLY = {
    "id",
    "project_id",
    "tenant_id",
    "security_group_rules",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
    "shared",
}
_RULE_POST = {
    "security_group_id",
    "direction",
    "ethertype",
    "protocol",
    "port_range_min",
    "port_range_max",
    "remote_ip_prefix",
    "remote_group_id",
    "remote_address_group_id",
    "description",
    "project_id",
    "tenant_id",
}
_RULE_READ_ONLY = {
    "id",
    "created_at",
    "updated_at",
    "revision_number",
    "normalized_cidr",
    "belongs_to_default_sg",
}


# -- bodies ----------------------------------------------------------------------------------


def rule_body(rule: Resource, group_name: str | None) -> dict[str, Any]:
    spec = rule.spec
    prefix = spec.get("remote_ip_prefix")
    body = nc.common_fields(rule)
    del body["name"]
    return {
        **body,
        "security_group_id": rule.parent_id,
        "direction": spec.get("direction"),
        "ethertype": spec.get("ethertype", "IPv4"),
        "protocol": spec.get("protocol"),
        "port_range_min": spec.get("port_range_min"),
        "port_range_max": spec.get("port_range_max"),
        "remote_ip_prefix": prefix,
        "normalized_cidr": str(ipaddress.ip_network(prefix, strict=False)) if prefix else None,
        "remote_group_id": spec.get("remote_group_id"),
        "remote_address_group_id": None,
        "belongs_to_default_sg": group_name == "default",
    }


def group_body(group: Resource, rules: list[Resource]) -> dict[str, Any]:
    return {
        **nc.common_fields(group),
        "stateful": bool(group.spec.get("stateful", True)),
        "shared": False,
        "security_group_rules": [rule_body(r, group.name) for r in rules],
    }


def rules_by_group(session: Session) -> dict[str, list[Resource]]:
    result: dict[str, list[Resource]] = {}
    for rule in nc.live(session, "security_group_rule"):
        result.setdefault(rule.parent_id or "", []).append(rule)
    return result


# -- rule validation -------------------------------------------------------------------------


def _protocol(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).lower() if isinstance(value, str | int) and value is not True else None
    if text in ("any", ""):
        return None
    if text is not None:
        if text in PROTOCOLS:
            return text
        if text.isdigit() and 0 <= int(text) <= 255:
            return str(int(text))
    names = ", ".join(sorted(PROTOCOLS))
    raise BadRequest(
        f"Security group rule protocol {value} not supported. Only protocol values"
        f" [None, {names}] and integer representations [0 to 255] are supported.",
        "SecurityGroupRuleInvalidProtocol",
    )


_number = intent_sg.protocol_number


def _port(name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not str(value).isdigit() or not 0 <= int(value) <= 65535:
        raise BadRequest(f"Invalid value for port {value}", "SecurityGroupInvalidPortValue")
    return int(value)


def _validate_ports(protocol: str | None, low: int | None, high: int | None) -> None:
    if low is None and high is None:
        return
    number = _number(protocol)
    if number is None:
        raise BadRequest(
            "Must also specify protocol if port range is given.",
            "SecurityGroupProtocolRequiredWithPorts",
        )
    if number in PORT_PROTOCOLS:
        if low == 0 or high == 0:
            raise BadRequest("Invalid value for port 0", "SecurityGroupInvalidPortValue")
        if low is None or high is None or low > high:
            raise BadRequest(
                "For TCP/UDP protocols, port_range_min must be <= port_range_max",
                "SecurityGroupInvalidPortRange",
            )
    elif number in ICMP_PROTOCOLS:
        for attr, field, value in (
            ("port_range_min", "type", low),
            ("port_range_max", "code", high),
        ):
            if value is not None and not 0 <= value <= 255:
                raise BadRequest(
                    f"Invalid value for ICMP {field} ({attr}) {value}. It must be 0 to 255.",
                    "SecurityGroupInvalidIcmpValue",
                )
        if low is None and high is not None:
            raise BadRequest(
                f"ICMP code (port-range-max) {high} is provided but ICMP type"
                " (port-range-min) is missing.",
                "SecurityGroupMissingIcmpType",
            )
    else:
        raise BadRequest(
            f"Ports cannot be specified for protocol {number}. Valid protocols are: TCP, UDP,"
            " DCCP, SCTP, UDPLITE.",
            "SecurityGroupInvalidProtocolForPort",
        )


def _prefix(value: Any, ethertype: str) -> str | None:
    if value is None:
        return None
    try:
        interface = ipaddress.ip_interface(str(value))
    except ValueError:
        raise nc.invalid("remote_ip_prefix", f"'{value}' is not a valid IP prefix") from None
    if f"IPv{interface.version}" != ethertype:
        raise BadRequest(
            f"Conflicting value ethertype {ethertype} for CIDR {value}",
            "SecurityGroupRuleParameterConflict",
        )
    return interface.with_prefixlen


def _new_rule(session: Session, ctx: RequestContext, data: dict[str, Any]) -> tuple[Resource, dict]:
    """Validate one rule request: (group, spec)."""
    if "security_group_id" not in data:
        raise BadRequest(
            "Failed to parse request. Required attribute 'security_group_id' not specified"
        )
    group = nc.load(
        session, ctx, "security_group", nc.to_id("security_group_id", data["security_group_id"])
    )
    direction = data.get("direction")
    if direction not in ("ingress", "egress"):
        raise nc.invalid("direction", f"'{direction}' is not in ['ingress', 'egress']")
    ethertype = str(data.get("ethertype") or "IPv4")
    ethertype = {"ipv4": "IPv4", "ipv6": "IPv6"}.get(ethertype.lower(), ethertype)
    if ethertype not in ("IPv4", "IPv6"):
        raise nc.invalid("ethertype", f"'{ethertype}' is not in ['IPv4', 'IPv6']")
    protocol = _protocol(data.get("protocol"))
    if ethertype == "IPv6" and protocol in ("icmp", "icmpv6"):
        protocol = "ipv6-icmp"
    elif ethertype == "IPv6" and protocol == "1":
        protocol = "58"
    low = _port("port_range_min", data.get("port_range_min"))
    high = _port("port_range_max", data.get("port_range_max"))
    if low == 1 and high == 65535:
        low = high = None
    _validate_ports(protocol, low, high)
    prefix = _prefix(data.get("remote_ip_prefix"), ethertype)
    if ethertype == "IPv4" and _number(protocol) in IPV6_ONLY:
        raise BadRequest(
            f"Invalid ethertype {ethertype} for protocol {protocol}.",
            "SecurityGroupEthertypeConflictWithProtocol",
        )
    remote_group = data.get("remote_group_id")
    if data.get("remote_address_group_id") is not None:
        raise nc.invalid("remote_address_group_id", "address groups are not supported")
    if remote_group is not None and prefix is not None:
        raise BadRequest(
            "Only one of remote_ip_prefix or remote_group_id or remote_address_group_id may be"
            " provided.",
            "SecurityGroupMultipleRemoteEntites",
        )
    if remote_group is not None:
        remote = nc.load(session, ctx, "security_group", nc.to_id("remote_group_id", remote_group))
        remote_group = remote.id
    if "project_id" in data or "tenant_id" in data:
        nc.owner_of(ctx, data)
    spec = {
        "direction": direction,
        "ethertype": ethertype,
        "protocol": protocol,
        "port_range_min": low,
        "port_range_max": high,
        "remote_ip_prefix": prefix,
        "remote_group_id": remote_group,
        "description": nc.to_str("description", data.get("description")),
    }
    intent_sg.check_rule_unique(session, group, spec)
    return group, spec


# -- security groups -------------------------------------------------------------------------


def _stateful(data: dict[str, Any]) -> None:
    if "stateful" in data and not nc.to_bool("stateful", data["stateful"]):
        raise nc.invalid("stateful", "stateless security groups are not supported")


@router.get("/v2.0/security-groups")
def list_groups(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        rules = rules_by_group(session)
        bodies = [
            group_body(g, rules.get(g.id, []))
            for g in nc.visible_rows(session, ctx, "security_group")
        ]
    return nc.list_page(request, "security-groups", "security_group", bodies)


@router.get("/v2.0/security-groups/{group_id}")
def get_group(
    request: Request, group_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        group = nc.load(session, ctx, "security_group", group_id)
        rules = nc.live(session, "security_group_rule", parent_id=group.id)
        return {"security_group": nc.show_fields(request, group_body(group, rules))}


@router.post("/v2.0/security-groups", status_code=201)
def create_group(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_security_group")
    data = nc.object_of(body, "security_group")
    nc.check_attributes(data, _GROUP_POST, _GROUP_READ_ONLY, put=False)
    _stateful(data)
    name = nc.to_str("name", data.get("name"))
    description = nc.to_str("description", data.get("description"))

    def work(session: Session) -> dict[str, Any]:
        project = nc.owner_of(ctx, data)
        group, rules = intent_sg.add_group(
            session, project_id=project, name=name, description=description
        )
        return {"security_group": group_body(group, rules)}

    return nc.transact(request, work)


@router.put("/v2.0/security-groups/{group_id}")
def update_group(
    request: Request,
    group_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_security_group")
    data = nc.object_of(body, "security_group")
    nc.check_attributes(data, _GROUP_PUT, _GROUP_READ_ONLY, put=True)
    _stateful(data)

    def work(session: Session) -> dict[str, Any]:
        group = nc.load(session, ctx, "security_group", group_id)
        fields: dict[str, Any] = {"spec": {}}
        if "name" in data:
            name = nc.to_str("name", data["name"])
            intent_sg.check_rename(group, name)
            fields["name"] = name
        if "description" in data:
            fields["spec"]["description"] = nc.to_str("description", data["description"])
        rules = intent_sg.update_group(session, group, fields)
        return {"security_group": group_body(group, rules)}

    return nc.transact(request, work)


@router.delete("/v2.0/security-groups/{group_id}", status_code=204)
def delete_group(
    request: Request, group_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_security_group")

    def work(session: Session) -> None:
        group = nc.load(session, ctx, "security_group", group_id)
        intent_sg.delete_group(session, group, is_admin=ctx.is_admin)

    nc.transact(request, work)
    return Response(status_code=204)


# -- rules -----------------------------------------------------------------------------------


@router.get("/v2.0/security-group-rules")
def list_rules(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        names = {g.id: g.name for g in nc.live(session, "security_group")}
        bodies = [
            rule_body(r, names.get(r.parent_id or ""))
            for r in nc.visible_rows(session, ctx, "security_group_rule")
        ]
    return nc.list_page(request, "security-group-rules", "security_group_rule", bodies)


@router.get("/v2.0/security-group-rules/{rule_id}")
def get_rule(
    request: Request, rule_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        rule = nc.load(session, ctx, "security_group_rule", rule_id)
        group = session.get(Resource, rule.parent_id) if rule.parent_id else None
        body = rule_body(rule, group.name if group else None)
        return {"security_group_rule": nc.show_fields(request, body)}


@router.post("/v2.0/security-group-rules", status_code=201)
def create_rule(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_security_group_rule")
    items, bulk = nc.items_of(body, "security_group_rule", "security_group_rules")
    for data in items:
        nc.check_attributes(data, _RULE_POST, _RULE_READ_ONLY, put=False)

    def work(session: Session) -> dict[str, Any]:
        created = []
        groups: dict[str, Resource] = {}
        for data in items:  # one by one, so a bulk request cannot duplicate itself
            group, spec = _new_rule(session, ctx, data)
            rule = intent_sg.add_rule(session, group, spec)
            groups[group.id] = group
            created.append(rule_body(rule, group.name))
        intent_sg.rules_added(session, list(groups.values()))
        return {"security_group_rules": created} if bulk else {"security_group_rule": created[0]}

    return nc.transact(request, work)


@router.delete("/v2.0/security-group-rules/{rule_id}", status_code=204)
def delete_rule(
    request: Request, rule_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_security_group_rule")

    def work(session: Session) -> None:
        rule = nc.load(session, ctx, "security_group_rule", rule_id)
        intent_sg.delete_rule(session, rule)

    nc.transact(request, work)
    return Response(status_code=204)
