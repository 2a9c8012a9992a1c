"""Compute v2.1 (Nova): flavors (with extra specs and access lists) and
availability zones.

- Flavors are resources of kind `flavor` with no project (the seeded m1 set is
  in service.py); a server keeps a copy of its flavor, so deleting one does not
  change existing servers. Creating, deleting and changing flavors is admin-only;
  a private flavor is visible to admins and to the projects on its access list.
  The writes and the checks that need the store are intent/flavors.py's.
- Each site is one availability zone; a zone is available when its site is
  enabled and not down. The detail view (admin) names the site as the zone's host.
"""

from __future__ import annotations

import re
from typing import Any

from fastapi import Depends, Request, Response
from sqlalchemy import select

from isthmus.api.compute.common import (
    compute_router,
    get_flavor,
    links,
    next_links,
    page_after_marker,
    parse_bool,
    parse_int,
    parse_limit,
    request_version,
    require_object,
)
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.intent import flavors as intent_flavors
from isthmus.store import repo
from isthmus.store.tables import Resource, Site

router = compute_router()

FLAVOR_SORT = {
    "flavorid": "id",
    "id": "id",
    "name": "name",
    "memory_mb": "ram",
    "root_gb": "disk",
    "vcpus": "vcpus",
    "ephemeral_gb": "ephemeral",
    "swap": "swap",
    "rxtx_factor": "rxtx_factor",
    "created_at": "created_at",
}


def _service(request: Request) -> Any:
    return request.app.state.service


# -- flavors ---------------------------------------------------------------------------------


def _flavor(request: Request, flavor: Resource, detail: bool = True) -> dict[str, Any]:
    """A flavor at the request's microversion: 2.55 adds `description` (list too),
    2.61 `extra_specs` (detail and show), 2.75 a swap of 0 instead of ""."""
    version = request_version(request)
    spec = flavor.spec
    body: dict[str, Any] = {
        "id": flavor.id,
        "name": flavor.name,
        "links": links(request, "flavors", flavor.id),
    }
    if version >= (2, 55):
        body["description"] = spec.get("description")
    if detail:
        swap = int(spec.get("swap", 0))
        body.update(
            {
                "vcpus": int(spec.get("vcpus", 0)),
                "ram": int(spec.get("ram", 0)),
                "disk": int(spec.get("disk", 0)),
                "swap": swap if swap or version >= (2, 75) else "",
                "OS-FLV-EXT-DATA:ephemeral": int(spec.get("ephemeral", 0)),
                "OS-FLV-DISABLED:disabled": False,
                "rxtx_factor": float(spec.get("rxtx_factor", 1.0)),
                "os-flavor-access:is_public": bool(spec.get("is_public", True)),
            }
        )
        if version >= (2, 61):
            body["extra_specs"] = dict(spec.get("extra_specs") or {})
    return body


def _flavor_description(value: Any) -> str | None:
    """A flavor description (2.55): null or up to 65535 printable characters."""
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 65535 or not value.isprintable():
        raise BadRequest(
            f"Invalid input for field/attribute description. Value: {value}. It must be null"
            " or at most 65535 printable characters."
        )
    return value


def _flavor_sort_value(flavor: Resource, key: str) -> Any:
    if key in ("id", "name"):
        return getattr(flavor, key)
    if key == "created_at":
        return flavor.created_at
    return float(flavor.spec.get(key, 0) or 0)


def _list_flavors(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    params = request.query_params
    is_public: bool | None = True
    raw = params.get("is_public")
    if raw is not None and raw.lower() == "none":
        is_public = None
    elif raw is not None:
        is_public = parse_bool("is_public", raw)
    min_disk = parse_int("minDisk", params["minDisk"], 0) if params.get("minDisk") else 0
    min_ram = parse_int("minRam", params["minRam"], 0) if params.get("minRam") else 0
    sort_key = params.get("sort_key", "flavorid")
    if sort_key not in FLAVOR_SORT:
        raise BadRequest(f"Invalid sort key {sort_key!r}; use one of {sorted(FLAVOR_SORT)}.")
    sort_dir = params.get("sort_dir", "asc")
    if sort_dir not in ("asc", "desc"):
        raise BadRequest(f"Invalid sort direction {sort_dir!r}; use asc or desc.")
    limit = parse_limit(request)
    with _service(request).db.read() as session:
        flavors = list(
            session.scalars(
                select(Resource).where(Resource.kind == "flavor", Resource.deleting.is_(False))
            )
        )
        chosen = []
        for flavor in flavors:
            spec = flavor.spec
            public = bool(spec.get("is_public", True))
            if ctx.is_admin:
                if is_public is not None and public != is_public:
                    continue
            elif not public and ctx.project_id not in (spec.get("projects") or []):
                continue
            if int(spec.get("disk", 0)) < min_disk or int(spec.get("ram", 0)) < min_ram:
                continue
            chosen.append(flavor)
        key = FLAVOR_SORT[sort_key]
        chosen.sort(key=lambda f: (_flavor_sort_value(f, key), f.id), reverse=sort_dir == "desc")
        by_id = {f.id: f for f in chosen}
        page = page_after_marker([f.id for f in chosen], params.get("marker"), limit)
        body: dict[str, Any] = {"flavors": [_flavor(request, by_id[i], detail) for i in page]}
    more = next_links(request, "flavors", page, limit)
    if more:
        body["flavors_links"] = more
    return body


@router.get("/v2.1/flavors")
def list_flavors(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return _list_flavors(request, ctx, detail=False)


@router.get("/v2.1/flavors/detail")
def list_flavors_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return _list_flavors(request, ctx, detail=True)


@router.get("/v2.1/flavors/{flavor_id}")
def show_flavor(
    request: Request, flavor_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        return {"flavor": _flavor(request, get_flavor(session, ctx, flavor_id))}


@router.post("/v2.1/flavors")
def create_flavor(
    request: Request, body: dict[str, Any], ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-flavor-manage:create")
    ref = require_object(body, "flavor")
    name = ref.get("name")
    if not isinstance(name, str) or not name.strip() or len(name) > 255:
        raise BadRequest(f"Invalid input for field/attribute name. Value: {name}.")
    flavor_id = ref.get("id")
    if flavor_id in (None, "", "auto"):
        flavor_id = repo.new_id()
    if not isinstance(flavor_id, str) or not re.match(r"^[\w.\- ]{1,255}$", flavor_id):
        raise BadRequest(f"Invalid input for field/attribute id. Value: {flavor_id}.")
    spec = {
        "vcpus": parse_int("vcpus", ref.get("vcpus"), 1),
        "ram": parse_int("ram", ref.get("ram"), 1),
        "disk": parse_int("disk", ref.get("disk"), 0),
        "swap": parse_int("swap", ref.get("swap") or 0, 0),
        "ephemeral": parse_int(
            "OS-FLV-EXT-DATA:ephemeral", ref.get("OS-FLV-EXT-DATA:ephemeral", 0), 0
        ),
        "rxtx_factor": 1.0,
        "is_public": parse_bool("is_public", ref.get("os-flavor-access:is_public", True)),
        "extra_specs": {},
        "projects": [],
        "description": None,
    }
    if "description" in ref:
        if request_version(request) < (2, 55):
            raise BadRequest(
                "Invalid input for field/attribute flavor. Additional properties are not"
                " allowed ('description' was unexpected)"
            )
        spec["description"] = _flavor_description(ref["description"])
    try:
        spec["rxtx_factor"] = float(ref.get("rxtx_factor", 1.0))
    except (TypeError, ValueError):
        raise BadRequest("Invalid input for field/attribute rxtx_factor.") from None
    with _service(request).db.session() as session:
        flavor = intent_flavors.add_flavor(session, flavor_id, name, spec)
        return {"flavor": _flavor(request, flavor)}


@router.put("/v2.1/flavors/{flavor_id}")
def update_flavor(
    request: Request,
    flavor_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    """Nova's flavor update (2.55): the description only; no such API below 2.55."""
    if request_version(request) < (2, 55):
        raise NotFound("The resource could not be found.")
    ctx.require_admin("os_compute_api:os-flavor-manage:update")
    ref = require_object(body, "flavor")
    if "description" not in ref or set(ref) != {"description"}:
        raise BadRequest(
            "Invalid input for field/attribute flavor. 'description' is a required property"
            " and the only one allowed."
        )
    description = _flavor_description(ref["description"])
    with _service(request).db.session() as session:
        flavor = get_flavor(session, ctx, flavor_id)
        intent_flavors.set_description(session, flavor, description)
        return {"flavor": _flavor(request, flavor)}


@router.delete("/v2.1/flavors/{flavor_id}", status_code=202, response_class=Response)
def delete_flavor(
    request: Request, flavor_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("os_compute_api:os-flavor-manage:delete")
    with _service(request).db.session() as session:
        intent_flavors.delete_flavor(session, get_flavor(session, ctx, flavor_id))
    return Response(status_code=202)


@router.get("/v2.1/flavors/{flavor_id}/os-extra_specs")
def list_extra_specs(
    request: Request, flavor_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        flavor = get_flavor(session, ctx, flavor_id)
        return {"extra_specs": dict(flavor.spec.get("extra_specs") or {})}


@router.get("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
def show_extra_spec(
    request: Request, flavor_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with _service(request).db.read() as session:
        specs = get_flavor(session, ctx, flavor_id).spec.get("extra_specs") or {}
        if key not in specs:
            raise NotFound(f"Flavor {flavor_id} has no extra specs with key {key}.")
        return {key: specs[key]}


def _string_specs(specs: Any) -> dict[str, str]:
    if not isinstance(specs, dict) or not specs:
        raise BadRequest("Invalid input for field/attribute extra_specs: a non-empty object.")
    out = {}
    for key, value in specs.items():
        if not isinstance(key, str) or not 1 <= len(key) <= 255:
            raise BadRequest(f"Invalid extra spec key {key!r}: 1 to 255 characters.")
        if isinstance(value, bool):
            value = str(value).lower()
        if not isinstance(value, str | int | float) or len(str(value)) > 255:
            raise BadRequest(f"Invalid extra spec value for {key!r}: a string up to 255.")
        out[key] = str(value)
    return out


def _update_extra_specs(
    request: Request, ctx: RequestContext, flavor_id: str, update: dict[str, str | None]
) -> None:
    ctx.require_admin("os_compute_api:os-flavor-extra-specs:update")
    with _service(request).db.session() as session:
        intent_flavors.update_extra_specs(session, get_flavor(session, ctx, flavor_id), update)


@router.post("/v2.1/flavors/{flavor_id}/os-extra_specs")
def add_extra_specs(
    request: Request,
    flavor_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    specs = _string_specs(body.get("extra_specs"))
    _update_extra_specs(request, ctx, flavor_id, dict(specs))
    return {"extra_specs": specs}


@router.put("/v2.1/flavors/{flavor_id}/os-extra_specs/{key}")
def set_extra_spec(
    request: Request,
    flavor_id: str,
    key: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    specs = _string_specs(body)
    if list(specs) != [key]:
        raise BadRequest("Request body and URI mismatch")
    _update_extra_specs(request, ctx, flavor_id, dict(specs))
    return specs


@router.delete(
    "/v2.1/flavors/{flavor_id}/os-extra_specs/{key}", status_code=202, response_class=Response
)
def delete_extra_spec(
    request: Request, flavor_id: str, key: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    _update_extra_specs(request, ctx, flavor_id, {key: None})
    return Response(status_code=202)


def _access(flavor: Resource) -> dict[str, Any]:
    return {
        "flavor_access": [
            {"flavor_id": flavor.id, "tenant_id": p} for p in flavor.spec.get("projects") or []
        ]
    }


@router.get("/v2.1/flavors/{flavor_id}/os-flavor-access")
def list_flavor_access(
    request: Request, flavor_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-flavor-access")
    with _service(request).db.read() as session:
        flavor = get_flavor(session, ctx, flavor_id)
        if flavor.spec.get("is_public", True):
            raise NotFound("Access list not available for public flavors.")
        return _access(flavor)


@router.post("/v2.1/flavors/{flavor_id}/action")
def flavor_action(
    request: Request,
    flavor_id: str,
    body: dict[str, Any],
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-flavor-access:add_tenant_access")
    action = next(iter(body), "")
    if action not in ("addTenantAccess", "removeTenantAccess"):
        raise BadRequest(f"Unknown flavor action {action!r}.")
    tenant = require_object(body, action).get("tenant")
    if not isinstance(tenant, str) or not tenant:
        raise BadRequest(f"Invalid input for field/attribute {action}: 'tenant' is required.")
    with _service(request).db.session() as session:
        flavor = get_flavor(session, ctx, flavor_id)
        intent_flavors.change_access(session, flavor, tenant, add=action == "addTenantAccess")
        return _access(flavor)


# -- availability zones ----------------------------------------------------------------------


def _zone_available(site: Site) -> bool:
    return bool(site.enabled) and site.health != "down"


@router.get("/v2.1/os-availability-zone")
def list_zones(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    with _service(request).db.read() as session:
        sites = list(session.scalars(select(Site).order_by(Site.name)))
        return {
            "availabilityZoneInfo": [
                {"zoneName": s.name, "zoneState": {"available": _zone_available(s)}, "hosts": None}
                for s in sites
            ]
        }


@router.get("/v2.1/os-availability-zone/detail")
def list_zones_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-availability-zone:detail")
    with _service(request).db.read() as session:
        sites = [
            (s.name, _zone_available(s), bool(s.enabled), repo.isoformat(s.last_seen))
            for s in session.scalars(select(Site).order_by(Site.name))
        ]
    zones = []
    for name, available, enabled, last_seen in sites:
        service_state = {"available": available, "active": enabled, "updated_at": last_seen}
        zones.append(
            {
                "zoneName": name,
                "zoneState": {"available": available},
                "hosts": {name: {"nova-compute": service_state}},
            }
        )
    return {"availabilityZoneInfo": zones}
