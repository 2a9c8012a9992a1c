"""Shared plumbing of the Network v2.0 API (api/network*.py), no routes of its own.

- `transact`: one write transaction (retried on a unique-key race), then `wake()`.
- Request bodies: `items_of` (single or bulk), `check_attributes` (Neutron's 400 for
  unknown or read-only attributes), converters (`to_bool`, `to_str`, `to_int`, ...)
  and `owner_of` (project_id/tenant_id rules).
- Visibility: `load` finds one resource the caller may see (else 404 typed as
  Neutron does, e.g. "NetworkNotFound"); `require_owner` is the 403 for a resource
  the caller sees but does not own (a shared network). Admin sees every project; a
  member sees its own resources plus shared and external networks (and their
  subnets).
- Lists: `list_page` filters on any top-level field (a repeated parameter is an
  OR), trims with `fields=`, sorts with `sort_key`/`sort_dir` and pages with
  `limit`/`marker`, adding `<collection>_links`; `show_fields` trims a single body.
- `common_fields`: id, name, description, tenant_id/project_id, timestamps,
  revision_number (= generation) and tags, in every body.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Iterable
from typing import Any, TypeVar
from urllib.parse import urlencode

from fastapi import Request
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from isthmus.api.catalog import base_url_of
from isthmus.api.context import RequestContext
from isthmus.errors import BadRequest, Conflict, Forbidden, NotFound
from isthmus.intent import floating_ips, networks, routers
from isthmus.store import repo
from isthmus.store.tables import Binding, Resource

T = TypeVar("T")

DEFAULT_MTU = 1450  # VXLAN over a 1500-byte underlay
MIN_MTU_V4 = 68
MIN_MTU_V6 = 1280
MAX_NAME = 255
MAX_TAGS = 50
MAX_TAG_LENGTH = 255

ROUTER_INTERFACE = routers.ROUTER_INTERFACE  # written by intent/routers.py
ROUTER_GATEWAY = routers.ROUTER_GATEWAY
FLOATING_IP_OWNER = floating_ips.FLOATING_IP_OWNER  # written by intent/floating_ips.py
# ports Neutron creates itself: deleted through their router / floating IP only
L3_OWNERS = networks.L3_OWNERS

# kind -> (what the 404 message calls it, Neutron's error type, message template)
_NOT_FOUND = {
    "network": ("NetworkNotFound", "Network {id} could not be found."),
    "subnet": ("SubnetNotFound", "Subnet {id} could not be found."),
    "port": ("PortNotFound", "Port {id} could not be found."),
    "router": ("RouterNotFound", "Router {id} could not be found"),
    "floating_ip": ("FloatingIPNotFound", "Floating IP {id} could not be found"),
    "security_group": ("SecurityGroupNotFound", "Security group {id} does not exist"),
    "security_group_rule": (
        "SecurityGroupRuleNotFound",
        "Security group rule {id} does not exist",
    ),
    "subnet_pool": ("SubnetPoolNotFound", "Subnet pool {id} could not be found."),
    "address_scope": ("AddressScopeNotFound", "Address scope {id} could not be found."),
}

# collection name in URLs and bodies -> resource kind
COLLECTIONS = {
    "networks": "network",
    "subnets": "subnet",
    "ports": "port",
    "routers": "router",
    "floatingips": "floating_ip",
    "security-groups": "security_group",
    "security-group-rules": "security_group_rule",
    "subnetpools": "subnet_pool",
    "address-scopes": "address_scope",
}
# kinds a `shared` spec key makes visible to every project
SHAREABLE = ("subnet_pool", "address_scope")

_PAGING_PARAMS = frozenset(
    {
        "fields",
        "limit",
        "marker",
        "sort_key",
        "sort_dir",
        "page_reverse",
        "tags",
        "tags-any",
        "not-tags",
        "not-tags-any",
        "all_projects",
        "all_tenants",
    }
)


# -- transactions ----------------------------------------------------------------------------


def transact(request: Request, work: Callable[[Session], T], attempts: int = 3) -> T:
    """Run `work` in one write transaction, then wake the engine.

    A unique-key violation (two requests took the same address or MAC at once)
    rolls everything back and runs `work` again; after `attempts` it is a 409."""
    service = request.app.state.service
    for attempt in range(attempts):
        try:
            with service.db.session() as session:
                result = work(session)
            break
        except IntegrityError as exc:
            if attempt == attempts - 1:
                raise Conflict(
                    "The request conflicted with a concurrent change; retry it.", "Conflict"
                ) from exc
    service.wake()
    return result


def read_session(request: Request) -> Any:
    """A read-only unit of work (`with read_session(request) as session:`)."""
    return request.app.state.service.db.read()


# -- request bodies --------------------------------------------------------------------------


def items_of(body: Any, key: str, plural: str) -> tuple[list[dict[str, Any]], bool]:
    """The resource dicts of a create request, and whether it was a bulk request."""
    if not isinstance(body, dict) or not body:
        raise BadRequest("Resource body required", "BadRequest")
    if plural in body and key not in body:
        values = body[plural]
        if not isinstance(values, list) or not values:
            raise BadRequest(f"Invalid input: '{plural}' must be a non-empty list.", "BadRequest")
        if not all(isinstance(v, dict) for v in values):
            raise BadRequest(f"Invalid input: every item of '{plural}' must be an object.")
        return list(values), True
    return [object_of(body, key)], False


def object_of(body: Any, key: str) -> dict[str, Any]:
    """The `key` object of a request body (400 when missing or not an object)."""
    if not isinstance(body, dict) or not body:
        raise BadRequest("Resource body required", "BadRequest")
    value = body.get(key)
    if not isinstance(value, dict):
        raise BadRequest(f"Unable to find '{key}' in request body", "BadRequest")
    return value


def check_attributes(
    data: dict[str, Any], allowed: Iterable[str], read_only: Iterable[str] = (), *, put: bool
) -> None:
    """400 for an attribute the resource does not have, or cannot take here."""
    allowed_set = set(allowed)
    fixed = [k for k in data if k in set(read_only) and k not in allowed_set]
    if fixed:
        if put:
            raise BadRequest(f"Cannot update read-only attribute {fixed[0]}", "HTTPBadRequest")
        raise BadRequest(f"Attribute '{fixed[0]}' not allowed in POST", "HTTPBadRequest")
    unknown = sorted(k for k in data if k not in allowed_set)
    if unknown:
        raise BadRequest(f"Unrecognized attribute(s) '{', '.join(unknown)}'", "HTTPBadRequest")


def invalid(name: str, reason: str) -> BadRequest:
    return BadRequest(f"Invalid input for {name}. Reason: {reason}.", "HTTPBadRequest")


def to_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, int) and value in (0, 1):
        return bool(value)
    if isinstance(value, str) and value.lower() in ("true", "false", "1", "0"):
        return value.lower() in ("true", "1")
    raise invalid(name, f"'{value}' cannot be converted to boolean")


def to_str(name: str, value: Any, max_length: int = MAX_NAME) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise invalid(name, f"'{value}' is not a valid string")
    if len(value) > max_length:
        raise invalid(name, f"'{value[:40]}...' exceeds maximum length of {max_length}")
    return value


def standard_updates(data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """The update attributes Neutron resources share, from a checked PUT body:
    `name` (a column) and `description`, `admin_state_up` (spec keys), each only
    when given. Returns (column fields, spec fields) for repo.change."""
    fields: dict[str, Any] = {}
    spec: dict[str, Any] = {}
    if "name" in data:
        fields["name"] = to_str("name", data["name"])
    if "description" in data:
        spec["description"] = to_str("description", data["description"])
    if "admin_state_up" in data:
        spec["admin_state_up"] = to_bool("admin_state_up", data["admin_state_up"])
    return fields, spec


def to_int(name: str, value: Any, low: int | None = None, high: int | None = None) -> int:
    if isinstance(value, bool):
        raise invalid(name, f"'{value}' is not an integer")
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise invalid(name, f"'{value}' is not an integer") from None
    if isinstance(value, float) and number != value:
        raise invalid(name, f"'{value}' is not an integer")
    if (low is not None and number < low) or (high is not None and number > high):
        raise invalid(name, f"'{value}' is not in range {low} through {high}")
    return number


def to_list(name: str, value: Any) -> list[Any]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise invalid(name, f"'{value}' is not a list")
    return value


def to_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or not value or len(value) > 36:
        raise invalid(name, f"'{value}' is not a valid ID")
    return value


def to_tags(value: Any) -> list[str]:
    tags = to_list("tags", value)
    result: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag or len(tag) > MAX_TAG_LENGTH or "," in tag:
            raise invalid("tags", f"'{tag}' is not a valid tag")
        if tag not in result:
            result.append(tag)
    if len(result) > MAX_TAGS:
        raise invalid("tags", f"a resource can have at most {MAX_TAGS} tags")
    return result


def ip_address(name: str, value: Any, version: int | None = None) -> str:
    try:
        address = ipaddress.ip_address(str(value))
    except ValueError:
        raise invalid(name, f"'{value}' is not a valid IP address") from None
    if version is not None and address.version != version:
        raise invalid(name, f"'{value}' is not an IPv{version} address")
    return str(address)


def owner_of(ctx: RequestContext, data: dict[str, Any]) -> str:
    """The project a new resource belongs to: the caller's, or (admin) the one named."""
    project = data.get("project_id")
    tenant = data.get("tenant_id")
    if project is not None and tenant is not None and project != tenant:
        raise BadRequest("'project_id' and 'tenant_id' do not match", "HTTPBadRequest")
    requested = project if project is not None else tenant
    if requested is None or requested == ctx.project_id:
        return ctx.project_id
    if not isinstance(requested, str) or not requested or len(requested) > 64:
        raise invalid("project_id", f"'{requested}' is not a valid project ID")
    if not ctx.is_admin:
        raise BadRequest(
            "Specifying 'project_id' or 'tenant_id' other than the authenticated project"
            " in request requires admin privileges",
            "HTTPBadRequest",
        )
    return requested


def forbid_unless_admin(ctx: RequestContext, data: dict[str, Any], *names: str) -> None:
    """Neutron's admin-only attributes (shared, router:external, provider:...); as in
    Neutron, giving one its default value (False / None) is not setting it."""
    if ctx.is_admin:
        return
    for name in names:
        if name in data and data[name] not in (None, False, "false", "False"):
            raise Forbidden(
                f"(rule:create_or_update:{name}) is disallowed by policy", "PolicyNotAuthorized"
            )


def require_member(ctx: RequestContext, action: str) -> None:
    if not ({"admin", "member"} & set(ctx.token.roles)):
        raise Forbidden(f"rule:{action} is disallowed by policy", "PolicyNotAuthorized")


# -- visibility ------------------------------------------------------------------------------


def not_found(kind: str, resource_id: str) -> NotFound:
    error_type, template = _NOT_FOUND[kind]
    return NotFound(template.format(id=resource_id), error_type)


def network_is_public(network: Resource | None) -> bool:
    """Shared and external networks are visible to every project."""
    return network is not None and bool(network.spec.get("shared") or network.spec.get("external"))


def visible(session: Session, ctx: RequestContext, resource: Resource) -> bool:
    if ctx.is_admin or resource.project_id == ctx.project_id:
        return True
    if resource.kind == "network":
        return network_is_public(resource)
    if resource.kind == "subnet" and resource.parent_id:
        return network_is_public(session.get(Resource, resource.parent_id))
    if resource.kind in SHAREABLE:
        return bool(resource.spec.get("shared"))
    return False


def load(session: Session, ctx: RequestContext, kind: str, resource_id: str) -> Resource:
    """The live resource, if the caller may see it; else Neutron's typed 404."""
    resource = session.get(Resource, resource_id) if isinstance(resource_id, str) else None
    if (
        resource is None
        or resource.kind != kind
        or resource.deleting
        or not visible(session, ctx, resource)
    ):
        raise not_found(kind, str(resource_id))
    return resource


def require_owner(ctx: RequestContext, resource: Resource, action: str) -> None:
    """403 when the caller sees `resource` (shared) but may not change it."""
    if not ctx.is_admin and resource.project_id != ctx.project_id:
        raise Forbidden(f"rule:{action} is disallowed by policy", "PolicyNotAuthorized")


def live(session: Session, kind: str, **columns: Any) -> list[Resource]:
    """Every live resource of `kind` whose columns equal `columns`, oldest first."""
    query = select(Resource).where(Resource.kind == kind, Resource.deleting.is_(False))
    for column, value in columns.items():
        query = query.where(getattr(Resource, column) == value)
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


def visible_rows(session: Session, ctx: RequestContext, kind: str) -> list[Resource]:
    """The live resources of `kind` the caller may list."""
    query = select(Resource).where(Resource.kind == kind, Resource.deleting.is_(False))
    if not ctx.is_admin and kind not in ("network", "subnet", *SHAREABLE):
        query = query.where(Resource.project_id == ctx.project_id)
    rows = list(session.scalars(query.order_by(Resource.created_at, Resource.id)))
    if kind in SHAREABLE and not ctx.is_admin:
        return [r for r in rows if r.project_id == ctx.project_id or r.spec.get("shared")]
    if ctx.is_admin or kind not in ("network", "subnet"):
        return rows
    if kind == "network":
        return [r for r in rows if r.project_id == ctx.project_id or network_is_public(r)]
    public = {n.id for n in live(session, "network") if network_is_public(n)}
    return [r for r in rows if r.project_id == ctx.project_id or r.parent_id in public]


def _chunks(ids: list[str], size: int = 500) -> Iterable[list[str]]:
    for start in range(0, len(ids), size):
        yield ids[start : start + size]


def by_ids(session: Session, resource_ids: Iterable[str]) -> dict[str, Resource]:
    """The resources with these ids (any kind, deleting included), by id."""
    ids = sorted({i for i in resource_ids if i})
    found: dict[str, Resource] = {}
    for chunk in _chunks(ids):
        for resource in session.scalars(select(Resource).where(Resource.id.in_(chunk))):
            found[resource.id] = resource
    return found


def zones_of(session: Session, resource_ids: Iterable[str]) -> dict[str, list[str]]:
    """resource id -> the sites (availability zones) it is realised in now."""
    ids = list(resource_ids)
    zones: dict[str, list[str]] = {i: [] for i in ids}
    for chunk in _chunks(ids):
        rows = session.execute(
            select(Binding.resource_id, Binding.site).where(Binding.resource_id.in_(chunk))
        )
        for resource_id, site in rows:
            zones.setdefault(resource_id, []).append(site)
    return {k: sorted(v) for k, v in zones.items()}


def validate_zone_hints(session: Session, value: Any) -> list[str]:
    """Availability zone hints: a list (400), each naming a site
    (intent/networks.zone_hints: 400 or 404 AvailabilityZoneNotFound)."""
    return networks.zone_hints(session, to_list("availability_zone_hints", value))


# -- bodies ----------------------------------------------------------------------------------


def common_fields(resource: Resource) -> dict[str, Any]:
    project = resource.project_id or ""
    return {
        "id": resource.id,
        "name": resource.name,
        "description": resource.spec.get("description") or "",
        "tenant_id": project,
        "project_id": project,
        "created_at": repo.isoformat(resource.created_at),
        "updated_at": repo.isoformat(resource.updated_at),
        "revision_number": resource.generation,
        "tags": list(resource.spec.get("tags") or []),
    }


def requested_fields(request: Request) -> list[str]:
    fields: list[str] = []
    for value in request.query_params.getlist("fields"):
        fields.extend(f.strip() for f in value.split(",") if f.strip())
    return fields


def trim(body: dict[str, Any], fields: list[str]) -> dict[str, Any]:
    if not fields:
        return body
    return {k: v for k, v in body.items() if k in fields}


def show_fields(request: Request, body: dict[str, Any]) -> dict[str, Any]:
    return trim(body, requested_fields(request))


# -- lists -----------------------------------------------------------------------------------

Matcher = Callable[[dict[str, Any], list[str]], bool]


def _value_matches(value: Any, wanted: list[str]) -> bool:
    if isinstance(value, bool):
        options = {w.lower() for w in wanted}
        return ("true" if value else "false") in options or ("1" if value else "0") in options
    if value is None:
        return any(w in ("", "None", "null") for w in wanted)
    if isinstance(value, list):
        return any(str(item) in wanted for item in value if not isinstance(item, dict))
    if isinstance(value, dict):
        return True  # Neutron does not filter on dict attributes
    return str(value) in wanted


def _tags_match(body: dict[str, Any], request: Request) -> bool:
    tags = set(body.get("tags") or [])

    def values(name: str) -> list[set[str]]:
        return [{t for t in v.split(",") if t} for v in request.query_params.getlist(name) if v]

    if any(not group <= tags for group in values("tags")):
        return False
    if any(not group & tags for group in values("tags-any")):
        return False
    if any(group and group <= tags for group in values("not-tags")):
        return False
    return not any(group & tags for group in values("not-tags-any"))


def _by_field(key: str) -> Callable[[dict[str, Any]], tuple[int, Any]]:
    return lambda b: _sort_value(b.get(key))


def _sort_value(value: Any) -> tuple[int, Any]:
    if value is None:
        return (0, "")
    if isinstance(value, bool | int | float):
        return (1, value)
    return (2, str(value))


def list_page(
    request: Request,
    collection: str,
    kind: str,
    bodies: list[dict[str, Any]],
    matchers: dict[str, Matcher] | None = None,
) -> dict[str, Any]:
    """Neutron's list answer: filter, sort, page (limit/marker) and trim `bodies`."""
    params = request.query_params
    matchers = matchers or {}
    filters: dict[str, list[str]] = {}
    for key, value in params.multi_items():
        if key not in _PAGING_PARAMS:
            filters.setdefault(key, []).append(value)

    def keep(body: dict[str, Any]) -> bool:
        for key, wanted in filters.items():
            if key in matchers:
                if not matchers[key](body, wanted):
                    return False
            elif key in body and not _value_matches(body[key], wanted):
                return False
        return _tags_match(body, request)

    items = [b for b in bodies if keep(b)]
    items = _sorted(items, params.getlist("sort_key"), params.getlist("sort_dir"))
    limit = _limit(params.get("limit"))
    marker = params.get("marker")
    if marker:
        position = next((i for i, b in enumerate(items) if b["id"] == marker), None)
        if position is None:
            raise not_found(kind, marker)
        items = items[position + 1 :]
    page = items[:limit] if limit else items
    fields = requested_fields(request)
    result: dict[str, Any] = {collection.replace("-", "_"): [trim(b, fields) for b in page]}
    links = []
    if limit and len(items) > limit:
        links.append({"rel": "next", "href": _link(request, page[-1]["id"])})
    if links:
        result[f"{collection.replace('-', '_')}_links"] = links
    return result


def _limit(value: str | None) -> int:
    if value is None or value == "":
        return 0
    try:
        limit = int(value)
    except ValueError:
        raise BadRequest(f"Limit must be an integer 0 or greater and not '{value}'") from None
    if limit < 0:
        raise BadRequest(f"Limit must be an integer 0 or greater and not '{value}'")
    return limit


def _sorted(
    items: list[dict[str, Any]], keys: list[str], directions: list[str]
) -> list[dict[str, Any]]:
    if directions and len(directions) != len(keys):
        raise BadRequest("The number of sort_keys and sort_dirs must be same", "HTTPBadRequest")
    directions = directions or ["asc"] * len(keys)
    for direction in directions:
        if direction not in ("asc", "desc"):
            raise BadRequest(
                f"{direction} is an invalid value for sort_dir, valid values are 'asc' and 'desc'",
                "HTTPBadRequest",
            )
    for key in keys:
        if items and (key not in items[0] or isinstance(items[0][key], dict | list)):
            raise BadRequest(f"{key} is an invalid attribute for sort_key", "HTTPBadRequest")
    if not keys:
        return items  # as the rows came: oldest first
    result = sorted(items, key=lambda b: b["id"])
    for key, direction in reversed(list(zip(keys, directions, strict=True))):
        result.sort(key=_by_field(key), reverse=direction == "desc")
    return result


def _link(request: Request, marker: str) -> str:
    pairs = [(k, v) for k, v in request.query_params.multi_items() if k != "marker"]
    pairs.append(("marker", marker))
    return f"{base_url_of(request)}{request.url.path}?{urlencode(pairs)}"
