"""Nova's "List Security Groups By Server": GET /servers/{id}/os-security-groups.

As Nova does over Neutron, a server's groups are those of its ports (the union, in the
order the ports name them), each shown in Nova's security group shape (id, name,
description, tenant_id, rules) with its ingress rules only, as Nova converts Neutron's:
ip_protocol, from_port/to_port (null where Neutron has none), ip_range {cidr} for a
remote prefix (the whole family where the rule names neither prefix nor group) or group
{name, tenant_id} for a remote group. Every microversion has it (only the os-security-groups
proxy itself went away at 2.36). Errors: Nova's 404 for a server the caller cannot see.

Clients read it to compare a server's groups with the ones they want (openstacksdk's
fetch_server_security_groups, so Ansible's openstack.cloud.server on every run).
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute.actions import find_server
from isthmus.api.compute.common import compute_router
from isthmus.api.context import RequestContext, get_context
from isthmus.store.tables import Resource

router = compute_router()

_ANY = {"IPv4": "0.0.0.0/0", "IPv6": "::/0"}


def _live(session: Session, kind: str, column: Any, values: list[str]) -> list[Resource]:
    query = select(Resource).where(
        Resource.kind == kind, Resource.deleting.is_(False), column.in_(values)
    )
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


def rule_body(rule: Resource, groups: dict[str, Resource]) -> dict[str, Any]:
    """One ingress Neutron rule the way Nova shows it."""
    spec = rule.spec
    body: dict[str, Any] = {
        "id": rule.id,
        "parent_group_id": rule.parent_id,
        "ip_protocol": spec.get("protocol"),
        "from_port": spec.get("port_range_min"),
        "to_port": spec.get("port_range_max"),
        "ip_range": {},
        "group": {},
    }
    remote = groups.get(spec.get("remote_group_id") or "")
    if remote is not None:
        body["group"] = {"name": remote.name or "", "tenant_id": remote.project_id or ""}
    else:
        ethertype = spec.get("ethertype", "IPv4")
        body["ip_range"] = {"cidr": spec.get("remote_ip_prefix") or _ANY.get(ethertype, "")}
    return body


def groups_of_server(session: Session, server: Resource) -> list[dict[str, Any]]:
    """The security groups of the server's ports, in Nova's shape."""
    ids: list[str] = []
    for port in _live(session, "port", Resource.device_id, [server.id]):
        ids.extend(g for g in port.spec.get("security_groups") or [] if g not in ids)
    groups = {g.id: g for g in _live(session, "security_group", Resource.id, ids)}
    rules = _live(session, "security_group_rule", Resource.parent_id, list(groups))
    remote_ids = [r.spec["remote_group_id"] for r in rules if r.spec.get("remote_group_id")]
    remotes = {g.id: g for g in _live(session, "security_group", Resource.id, remote_ids)}
    return [
        {
            "id": group.id,
            "name": group.name or "",
            "description": group.spec.get("description") or "",
            "tenant_id": group.project_id or "",
            "rules": [
                rule_body(r, remotes)
                for r in rules
                if r.parent_id == group.id and r.spec.get("direction") == "ingress"
            ],
        }
        for group in (groups[i] for i in ids if i in groups)
    ]


@router.get("/v2.1/servers/{server_id}/os-security-groups")
def list_server_security_groups(
    request: Request, server_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with request.app.state.service.db.read() as session:
        server = find_server(session, ctx, server_id)
        return {"security_groups": groups_of_server(session, server)}
