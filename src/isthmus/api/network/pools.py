"""Network v2.0 subnet pools (extension subnet_allocation, default-subnetpools) and
address scopes (address-scope): parse the bodies, look the pools and scopes up as
the caller may see them (its own and shared ones), render the answers. The rules
that need the store and the writes are intent/subnet_pools.py's; the prefix
arithmetic is model/ipam.py's. A subnet is made from a pool by
api/network/subnets.py (`subnetpool_id` with `prefixlen` or a `cidr`, or
`use_default_subnetpool`).

Admin only, as Neutron's policy: `shared` (pools and scopes) and `is_default`.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.intent import subnet_pools
from isthmus.model import ipam
from isthmus.store.tables import Resource

router = APIRouter(prefix="/network")

_POOL_POST = {
    "name",
    "description",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "default_quota",
    "address_scope_id",
    "is_default",
    "shared",
    "project_id",
    "tenant_id",
}
_POOL_PUT = {
    "name",
    "description",
    "prefixes",
    "default_prefixlen",
    "min_prefixlen",
    "max_prefixlen",
    "default_quota",
    "address_scope_id",
    "is_default",
}
_POOL_READ_ONLY = {
    "id",
    "ip_version",
    "shared",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
}
_SCOPE_POST = {"name", "description", "ip_version", "shared", "project_id", "tenant_id"}
_SCOPE_PUT = {"name", "description", "shared"}
_SCOPE_READ_ONLY = {
    "id",
    "ip_version",
    "project_id",
    "tenant_id",
    "created_at",
    "updated_at",
    "revision_number",
    "tags",
}


def pool_body(pool: Resource) -> dict[str, Any]:
    spec = pool.spec
    return {
        **nc.common_fields(pool),
        "prefixes": list(spec.get("prefixes") or []),
        "ip_version": spec.get("ip_version"),
        "min_prefixlen": spec.get("min_prefixlen"),
        "max_prefixlen": spec.get("max_prefixlen"),
        "default_prefixlen": spec.get("default_prefixlen"),
        "default_quota": spec.get("default_quota"),
        "address_scope_id": spec.get("address_scope_id"),
        "is_default": bool(spec.get("is_default", False)),
        "shared": bool(spec.get("shared", False)),
    }


def scope_body(scope: Resource) -> dict[str, Any]:
    return {
        **nc.common_fields(scope),
        "ip_version": scope.spec.get("ip_version"),
        "shared": bool(scope.spec.get("shared", False)),
    }


def address_scopes(session: Session, subnets: list[Resource]) -> dict[str, dict[int, str]]:
    """network id -> {IP version: address scope id} from its subnets' pools (a
    network's `ipv4_address_scope` / `ipv6_address_scope`)."""
    pool_ids = {s.spec.get("subnetpool_id") for s in subnets} - {None}
    if not pool_ids:
        return {}
    found = nc.by_ids(session, [str(p) for p in pool_ids])
    result: dict[str, dict[int, str]] = {}
    for subnet in subnets:
        pool = found.get(str(subnet.spec.get("subnetpool_id")))
        scope = pool.spec.get("address_scope_id") if pool is not None else None
        if scope and subnet.parent_id:
            result.setdefault(subnet.parent_id, {})[int(subnet.spec.get("ip_version", 4))] = scope
    return result


def _name(value: Any) -> str:
    name = nc.to_str("name", value)
    if not name:
        raise nc.invalid("name", "'' Blank strings are not permitted")
    return name


def _length(name: str, value: Any) -> int | None:
    return None if value is None else nc.to_int(name, value, low=0)


def _scope(session: Session, ctx: RequestContext, value: Any) -> Resource | None:
    if value is None:
        return None
    return nc.load(session, ctx, "address_scope", nc.to_id("address_scope_id", value))


# -- subnet pools ----------------------------------------------------------------------------


@router.get("/v2.0/subnetpools")
def list_pools(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        bodies = [pool_body(p) for p in nc.visible_rows(session, ctx, "subnet_pool")]
    return nc.list_page(request, "subnetpools", "subnet_pool", bodies)


@router.get("/v2.0/subnetpools/{pool_id}")
def get_pool(
    request: Request, pool_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        pool = nc.load(session, ctx, "subnet_pool", pool_id)
        return {"subnetpool": nc.show_fields(request, pool_body(pool))}


@router.post("/v2.0/subnetpools", status_code=201)
def create_pool(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_subnetpool")
    items, bulk = nc.items_of(body, "subnetpool", "subnetpools")
    for data in items:
        nc.check_attributes(data, _POOL_POST, _POOL_READ_ONLY, put=False)
        nc.forbid_unless_admin(ctx, data, "shared", "is_default")
        if "prefixes" not in data:
            raise nc.invalid("prefixes", "the attribute is required")
        if "name" not in data:
            raise nc.invalid("name", "the attribute is required")

    def work(session: Session) -> dict[str, Any]:
        created = []
        for data in items:
            version, prefixes = ipam.pool_prefixes(data["prefixes"])
            low, high, default = ipam.prefix_bounds(
                version,
                _length("min_prefixlen", data.get("min_prefixlen")),
                _length("max_prefixlen", data.get("max_prefixlen")),
                _length("default_prefixlen", data.get("default_prefixlen")),
            )
            spec = {
                "prefixes": prefixes,
                "ip_version": version,
                "min_prefixlen": low,
                "max_prefixlen": high,
                "default_prefixlen": default,
                "default_quota": _length("default_quota", data.get("default_quota")),
                "address_scope_id": None,
                "is_default": nc.to_bool("is_default", data.get("is_default", False)),
                "shared": nc.to_bool("shared", data.get("shared", False)),
                "description": nc.to_str("description", data.get("description")),
                "tags": [],
            }
            scope = _scope(session, ctx, data.get("address_scope_id"))
            spec["address_scope_id"] = scope.id if scope is not None else None
            pool = subnet_pools.add_pool(
                session,
                project_id=nc.owner_of(ctx, data),
                name=_name(data["name"]),
                spec=spec,
                scope=scope,
            )
            created.append(pool_body(pool))
        return {"subnetpools": created} if bulk else {"subnetpool": created[0]}

    return nc.transact(request, work)


@router.put("/v2.0/subnetpools/{pool_id}")
def update_pool(
    request: Request,
    pool_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_subnetpool")
    data = nc.object_of(body, "subnetpool")
    nc.check_attributes(data, _POOL_PUT, _POOL_READ_ONLY, put=True)
    nc.forbid_unless_admin(ctx, data, "is_default")

    def work(session: Session) -> dict[str, Any]:
        pool = nc.load(session, ctx, "subnet_pool", pool_id)
        nc.require_owner(ctx, pool, "update_subnetpool")
        fields: dict[str, Any] = {}
        spec: dict[str, Any] = {}
        if "name" in data:
            fields["name"] = _name(data["name"])
        if "description" in data:
            spec["description"] = nc.to_str("description", data["description"])
        if "prefixes" in data:
            version, prefixes = ipam.pool_prefixes(data["prefixes"])
            if version != pool.spec.get("ip_version"):
                raise nc.invalid("prefixes", "Cannot mix IPv4 and IPv6 prefixes in a subnet pool")
            spec["prefixes"] = prefixes
        for name in ("min_prefixlen", "max_prefixlen", "default_prefixlen", "default_quota"):
            if name in data:
                spec[name] = _length(name, data[name])
        for name in ("min_prefixlen", "max_prefixlen", "default_prefixlen"):
            if name in spec and spec[name] is None:
                spec.pop(name)  # null keeps the current bound
        if "is_default" in data:
            spec["is_default"] = nc.to_bool("is_default", data["is_default"])
        scope_id = pool.spec.get("address_scope_id")
        if "address_scope_id" in data:
            scope_id = data["address_scope_id"]
            spec["address_scope_id"] = None
        scope = _scope(session, ctx, scope_id)
        if scope is not None and "address_scope_id" in data:
            spec["address_scope_id"] = scope.id
        subnet_pools.update_pool(session, pool, fields=fields, spec=spec, scope=scope)
        return {"subnetpool": pool_body(pool)}

    return nc.transact(request, work)


@router.delete("/v2.0/subnetpools/{pool_id}", status_code=204)
def delete_pool(
    request: Request, pool_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_subnetpool")

    def work(session: Session) -> None:
        pool = nc.load(session, ctx, "subnet_pool", pool_id)
        nc.require_owner(ctx, pool, "delete_subnetpool")
        subnet_pools.delete_pool(session, pool)

    nc.transact(request, work)
    return Response(status_code=204)


# -- address scopes --------------------------------------------------------------------------


@router.get("/v2.0/address-scopes")
def list_scopes(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with nc.read_session(request) as session:
        bodies = [scope_body(s) for s in nc.visible_rows(session, ctx, "address_scope")]
    return nc.list_page(request, "address-scopes", "address_scope", bodies)


@router.get("/v2.0/address-scopes/{scope_id}")
def get_scope(
    request: Request, scope_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        scope = nc.load(session, ctx, "address_scope", scope_id)
        return {"address_scope": nc.show_fields(request, scope_body(scope))}


@router.post("/v2.0/address-scopes", status_code=201)
def create_scope(
    request: Request, body: Any = Body(None), ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    nc.require_member(ctx, "create_address_scope")
    data = nc.object_of(body, "address_scope")
    nc.check_attributes(data, _SCOPE_POST, _SCOPE_READ_ONLY, put=False)
    nc.forbid_unless_admin(ctx, data, "shared")
    if "ip_version" not in data:
        raise nc.invalid("ip_version", "the attribute is required")
    version = nc.to_int("ip_version", data["ip_version"])
    if version not in (4, 6):
        raise nc.invalid("ip_version", f"{version} is not in [4, 6]")
    spec = {
        "ip_version": version,
        "shared": nc.to_bool("shared", data.get("shared", False)),
        "description": nc.to_str("description", data.get("description")),
        "tags": [],
    }

    def work(session: Session) -> dict[str, Any]:
        scope = subnet_pools.add_scope(
            session,
            project_id=nc.owner_of(ctx, data),
            name=nc.to_str("name", data.get("name")),
            spec=spec,
        )
        return {"address_scope": scope_body(scope)}

    return nc.transact(request, work)


@router.put("/v2.0/address-scopes/{scope_id}")
def update_scope(
    request: Request,
    scope_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    nc.require_member(ctx, "update_address_scope")
    data = nc.object_of(body, "address_scope")
    nc.check_attributes(data, _SCOPE_PUT, _SCOPE_READ_ONLY, put=True)
    nc.forbid_unless_admin(ctx, data, "shared")

    def work(session: Session) -> dict[str, Any]:
        scope = nc.load(session, ctx, "address_scope", scope_id)
        nc.require_owner(ctx, scope, "update_address_scope")
        fields, spec = nc.standard_updates(data)
        if "shared" in data:
            spec["shared"] = nc.to_bool("shared", data["shared"])
        subnet_pools.update_scope(session, scope, fields=fields, spec=spec)
        return {"address_scope": scope_body(scope)}

    return nc.transact(request, work)


@router.delete("/v2.0/address-scopes/{scope_id}", status_code=204)
def delete_scope(
    request: Request, scope_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    nc.require_member(ctx, "delete_address_scope")

    def work(session: Session) -> None:
        scope = nc.load(session, ctx, "address_scope", scope_id)
        nc.require_owner(ctx, scope, "delete_address_scope")
        subnet_pools.delete_scope(session, scope)

    nc.transact(request, work)
    return Response(status_code=204)
