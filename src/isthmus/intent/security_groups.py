"""Neutron security group and rule writes below the API (api/network/security.py
parses and validates the bodies the way Neutron does, looks the groups up as the
caller may see them and renders the answers).

What needs the store is decided here once:
- `add_group`: one `default` group per project (409), the security_groups quota
  (413), then the group with Neutron's two egress rules (IPv4 and IPv6, any
  protocol);
- `rename_group`: the default group keeps its name and no other takes it (409);
- `delete_group`: 409 while a live port uses the group; its rules go, and so do
  other groups' rules naming it as their remote group (Neutron cascades these),
  those groups planned again;
- `check_rule_unique` (409 SecurityGroupRuleExists), `add_rule` (the
  security_group_rules quota of the group's project), `delete_rule`: a rule
  created or deleted changes its group (`repo.change`), so the engine re-applies
  the group in every site where a port uses it.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import Conflict
from isthmus.store import quotas, repo
from isthmus.store.tables import Resource

PROTOCOLS = {
    "ah": 51,
    "dccp": 33,
    "egp": 8,
    "esp": 50,
    "gre": 47,
    "hopopt": 0,
    "icmp": 1,
    "igmp": 2,
    "ip": 0,
    "ipip": 4,
    "ipv6-encap": 41,
    "ipv6-frag": 44,
    "ipv6-icmp": 58,
    "icmpv6": 58,
    "ipv6-nonxt": 59,
    "ipv6-opts": 60,
    "ipv6-route": 43,
    "ospf": 89,
    "pgm": 113,
    "rsvp": 46,
    "sctp": 132,
    "tcp": 6,
    "udp": 17,
    "udplite": 136,
    "vrrp": 112,
}
_ANY_PREFIXES = ("0.0.0.0/0", "::/0", None)


def protocol_number(protocol: str | None) -> int | None:
    """The IP protocol number of a rule's protocol (a name of PROTOCOLS or digits)."""
    if protocol is None:
        return None
    return PROTOCOLS[protocol] if protocol in PROTOCOLS else int(protocol)


def rule_key(spec: dict[str, Any], group_id: str) -> tuple[Any, ...]:
    """What makes two rules of a group the same rule for Neutron (a protocol by name
    or number, an any-address prefix or none)."""
    prefix = spec.get("remote_ip_prefix")
    return (
        spec.get("direction"),
        spec.get("ethertype"),
        spec.get("port_range_max"),
        spec.get("port_range_min"),
        protocol_number(spec.get("protocol")),
        spec.get("remote_group_id"),
        None if prefix in _ANY_PREFIXES else prefix,
        group_id,
    )


def _live(session: Session, kind: str, **columns: Any) -> list[Resource]:
    """Every live resource of `kind` whose columns equal `columns`, oldest first."""
    query = select(Resource).where(Resource.kind == kind, Resource.deleting.is_(False))
    for column, value in columns.items():
        query = query.where(getattr(Resource, column) == value)
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


def _default_exists() -> Conflict:
    return Conflict("Default security group already exists.", "SecurityGroupDefaultAlreadyExists")


# -- groups ----------------------------------------------------------------------------------


def add_group(
    session: Session, *, project_id: str, name: str, description: str
) -> tuple[Resource, list[Resource]]:
    """A new group of `project_id` and its two egress rules."""
    if name == "default" and _live(
        session, "security_group", project_id=project_id, name="default"
    ):
        raise _default_exists()
    quotas.check(session, project_id, {"security_groups": 1})
    group = repo.add(
        session,
        "security_group",
        project_id=project_id,
        name=name,
        status="ACTIVE",
        spec={"description": description, "stateful": True, "tags": []},
    )
    rules = []
    for ethertype in ("IPv4", "IPv6"):
        rules.append(
            repo.add(
                session,
                "security_group_rule",
                project_id=project_id,
                parent_id=group.id,
                status="ACTIVE",
                spec={
                    "direction": "egress",
                    "ethertype": ethertype,
                    "protocol": None,
                    "port_range_min": None,
                    "port_range_max": None,
                    "remote_ip_prefix": None,
                    "remote_group_id": None,
                    "description": "",
                },
            )
        )
    return group, rules


def check_rename(group: Resource, name: str) -> None:
    """409 when a rename would change the default group's name or give another
    group that name."""
    if group.name == "default" and name != "default":
        raise Conflict(
            "Updating default security group not allowed.", "SecurityGroupCannotUpdateDefault"
        )
    if group.name != "default" and (name or "").lower() == "default":
        raise _default_exists()


def update_group(session: Session, group: Resource, fields: dict[str, Any]) -> list[Resource]:
    """Apply a checked update; returns the group's rules."""
    repo.change(session, group, **fields)
    return rules_of(session, group)


def rules_of(session: Session, group: Resource) -> list[Resource]:
    return _live(session, "security_group_rule", parent_id=group.id)


def delete_group(session: Session, group: Resource, *, is_admin: bool) -> None:
    """Delete a group (only an admin deletes a `default` one, 409), unless a live
    port uses it (409)."""
    if group.name == "default" and not is_admin:
        raise Conflict(
            "Insufficient rights for removing default security group.",
            "SecurityGroupCannotRemoveDefault",
        )
    if any(group.id in (p.spec.get("security_groups") or []) for p in _live(session, "port")):
        raise Conflict(f"Security Group {group.id} in use.", "SecurityGroupInUse")
    touched: dict[str, Resource] = {}
    for rule in _live(session, "security_group_rule"):
        if rule.parent_id == group.id:
            repo.mark_deleting(session, rule)
        elif rule.spec.get("remote_group_id") == group.id:  # Neutron cascades these
            repo.mark_deleting(session, rule)
            other = session.get(Resource, rule.parent_id)
            if other is not None and not other.deleting:
                touched[other.id] = other
    for other in touched.values():
        repo.change(session, other)
    repo.mark_deleting(session, group)


# -- rules -----------------------------------------------------------------------------------


def check_rule_unique(session: Session, group: Resource, spec: dict[str, Any]) -> None:
    """409 SecurityGroupRuleExists when the group has the same rule (`rule_key`)."""
    wanted = rule_key(spec, group.id)
    for existing in rules_of(session, group):
        if rule_key(existing.spec, group.id) == wanted:
            raise Conflict(
                f"Security group rule already exists. Rule id is {existing.id}.",
                "SecurityGroupRuleExists",
            )


def add_rule(session: Session, group: Resource, spec: dict[str, Any]) -> Resource:
    """A new rule of `group` (its project's quota allowing), flushed so the next one
    of a bulk request is checked against it. The caller calls `rules_added` once."""
    quotas.check(session, group.project_id or "", {"security_group_rules": 1})
    rule = repo.add(
        session,
        "security_group_rule",
        project_id=group.project_id,
        parent_id=group.id,
        status="ACTIVE",
        spec=spec,
    )
    session.flush()
    return rule


def rules_added(session: Session, groups: list[Resource]) -> None:
    """Re-apply the groups that got new rules where they are present."""
    for group in groups:
        repo.change(session, group)


def delete_rule(session: Session, rule: Resource) -> None:
    """Delete a rule; its group is re-applied where it is present."""
    group = session.get(Resource, rule.parent_id) if rule.parent_id else None
    repo.mark_deleting(session, rule)
    if group is not None and not group.deleting:
        repo.change(session, group)
