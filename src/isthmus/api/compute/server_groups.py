"""Compute (Nova): server groups (`/os-server-groups`): create, list, show, delete.

Shapes by microversion, as Nova and Tempest's schemas have them:
- 2.1-2.14: `{"name", "policies": [one of affinity, anti-affinity]}`; the body
  shows `id, name, policies, members, metadata` ({} always);
- 2.13: the body adds `project_id` and `user_id`;
- 2.15: the soft-affinity and soft-anti-affinity policies;
- 2.64: `{"name", "policy", "rules"}` (rules only with anti-affinity:
  `max_server_per_host` >= 1); the body shows `id, name, policy, rules, members,
  project_id, user_id` (no `policies`, no `metadata`).

Create answers 200 (Nova's), over the `server_groups` quota 403. A group of another
project is 404 to a member; an admin sees it, and lists every project's with
`all_projects`. Lists page with `limit` and `offset`. What a group means for
placement (a site is the host) is model/placement.py's; the writes and member
lookups intent/server_groups.py's.
"""

from __future__ import annotations

from typing import Any

from fastapi import Depends, Request, Response

from isthmus.api.compute.common import MIN_VERSION, compute_router, parse_int
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest
from isthmus.intent import server_groups as intent_groups
from isthmus.model.placement import AFFINITY, ANTI_AFFINITY, GROUP_POLICIES
from isthmus.store.tables import Resource

router = compute_router()


def _version(request: Request) -> tuple[int, int]:
    return getattr(request.state, "compute_version", MIN_VERSION)


def _service(request: Request) -> Any:
    return request.app.state.service


def _invalid(field: str, value: Any, reason: str) -> BadRequest:
    return BadRequest(f"Invalid input for field/attribute {field}. Value: {value}. {reason}")


def _view(request: Request, group: Resource, members: list[Resource]) -> dict[str, Any]:
    version = _version(request)
    spec = group.spec
    body: dict[str, Any] = {"id": group.id, "name": group.name}
    if version >= (2, 64):
        body["policy"] = spec.get("policy")
        body["rules"] = dict(spec.get("rules") or {})
    else:
        body["policies"] = [spec.get("policy")]
    body["members"] = [m.id for m in members]
    if version < (2, 64):
        body["metadata"] = {}
    if version >= (2, 13):
        body["project_id"] = group.project_id
        body["user_id"] = spec.get("user_id")
    return body


def _name(value: Any) -> str:
    if not isinstance(value, str) or not 1 <= len(value) <= 255:
        raise _invalid("name", value, "'name' is a required string of 1 to 255 characters.")
    if value != value.strip():
        raise _invalid("name", value, "Leading or trailing whitespace is not allowed.")
    return value


def _max_per_host(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise _invalid("max_server_per_host", value, "It must be a positive integer.")
    return parse_int("max_server_per_host", value, 1)


def parse_create(version: tuple[int, int], body: Any) -> tuple[str, str, dict[str, int]]:
    """(name, policy, rules) of a create body, checked as Nova's schema for `version`."""
    if not isinstance(body, dict) or not isinstance(body.get("server_group"), dict):
        raise _invalid("server_group", body, "'server_group' is a required property.")
    extra = sorted(set(body) - {"server_group"})
    if extra:
        raise BadRequest(f"Additional properties are not allowed ({', '.join(extra)} unexpected)")
    group = body["server_group"]
    allowed = {"name", "policy", "rules"} if version >= (2, 64) else {"name", "policies"}
    extra = sorted(set(group) - allowed)
    if extra:
        raise _invalid(
            "server_group",
            group,
            f"Additional properties are not allowed ({', '.join(map(repr, extra))} unexpected)",
        )
    if "name" not in group:
        raise _invalid("server_group", group, "'name' is a required property")
    name = _name(group["name"])
    known = GROUP_POLICIES if version >= (2, 15) else (AFFINITY, ANTI_AFFINITY)
    rules: dict[str, int] = {}
    if version >= (2, 64):
        if "policy" not in group:
            raise _invalid("server_group", group, "'policy' is a required property")
        policy = group["policy"]
        if policy not in known:
            raise _invalid("policy", policy, f"{policy!r} is not one of {list(known)}")
        raw_rules = group.get("rules", {})
        if not isinstance(raw_rules, dict):
            raise _invalid("rules", raw_rules, f"{raw_rules!r} is not of type 'object'")
        extra = sorted(set(raw_rules) - {"max_server_per_host"})
        if extra:
            raise _invalid(
                "rules",
                raw_rules,
                f"Additional properties are not allowed ({', '.join(map(repr, extra))} unexpected)",
            )
        if "max_server_per_host" in raw_rules:
            rules["max_server_per_host"] = _max_per_host(raw_rules["max_server_per_host"])
        if policy != ANTI_AFFINITY and rules:
            raise BadRequest("Only anti-affinity policy supports rules.")
    else:
        policies = group.get("policies")
        if (
            not isinstance(policies, list)
            or len(policies) != 1
            or not isinstance(policies[0], str)
            or policies[0] not in known
        ):
            raise _invalid(
                "policies",
                policies,
                f"'policies' must be a list of exactly one of {list(known)}.",
            )
        policy = policies[0]
    return name, policy, rules


@router.post("/v2.1/os-server-groups")
def create_group(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_member("os_compute_api:os-server-groups:create")
    name, policy, rules = parse_create(_version(request), body)
    with _service(request).db.session() as session:
        group = intent_groups.create_group(session, ctx, name, policy, rules)
        return {"server_group": _view(request, group, [])}


def _page(request: Request, items: list[Resource]) -> list[Resource]:
    """Nova's `limit` / `offset` paging of the group list."""
    params = request.query_params
    offset = parse_int("offset", params["offset"], 0) if params.get("offset") else 0
    items = items[offset:]
    if params.get("limit"):
        items = items[: parse_int("limit", params["limit"], 1)]
    return items


@router.get("/v2.1/os-server-groups")
def list_groups(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    if _version(request) >= (2, 75):
        extra = sorted(set(request.query_params) - {"all_projects", "limit", "offset"})
        if extra:
            raise BadRequest(
                f"Invalid input for query parameters {extra[0]}. Additional properties are"
                " not allowed."
            )
    all_projects = "all_projects" in request.query_params and ctx.is_admin
    with _service(request).db.read() as session:
        groups = _page(
            request,
            intent_groups.list_groups(session, None if all_projects else ctx.project_id),
        )
        members = intent_groups.members(session, groups)
        return {"server_groups": [_view(request, g, members[g.id]) for g in groups]}


@router.get("/v2.1/os-server-groups/{group_id}")
def show_group(
    request: Request, group_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        group = intent_groups.get_group(session, ctx, group_id)
        members = intent_groups.members(session, [group])[group.id]
        return {"server_group": _view(request, group, members)}


@router.delete("/v2.1/os-server-groups/{group_id}", status_code=204)
def delete_group(
    request: Request, group_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_member("os_compute_api:os-server-groups:delete")
    with _service(request).db.session() as session:
        group = intent_groups.get_group(session, ctx, group_id)
        intent_groups.delete_group(session, group)
    return Response(status_code=204)
