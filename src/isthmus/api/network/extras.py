"""Network v2.0 quotas and tags.

- Quotas (`quotas`, `quota_details`): Neutron's names (network, subnet, port,
  router, floatingip, security_group, security_group_rule) over the global quotas of
  store/quotas.py. A member reads its own project's; an admin reads any, sets them
  (PUT) and resets them to the defaults (DELETE). Usage counts what was accepted
  and not yet deleted.
- Tags (`standard-attr-tag`) on networks, subnets, ports, routers, floating IPs,
  security groups, subnet pools and address scopes: replace all (PUT .../tags), add
  or remove one, remove all, read or check one. A tag change bumps the resource's
  revision (`repo.change`).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Body, Depends, Request, Response
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.context import RequestContext, get_context
from isthmus.api.network import common as nc
from isthmus.errors import BadRequest, Forbidden, NotFound
from isthmus.store import quotas, repo
from isthmus.store.tables import Quota, Resource

router = APIRouter(prefix="/network")

# Neutron quota name -> store/quotas.py name
QUOTA_NAMES = {
    "network": "networks",
    "subnet": "subnets",
    "port": "ports",
    "router": "routers",
    "floatingip": "floatingips",
    "security_group": "security_groups",
    "security_group_rule": "security_group_rules",
}


# -- quotas ----------------------------------------------------------------------------------


def _quota_project(ctx: RequestContext, project_id: str) -> None:
    if project_id != ctx.project_id and not ctx.is_admin:
        raise Forbidden(
            "Non-admin is not authorised to access quotas for another project", "NotAuthorized"
        )


def _neutron_limits(values: dict[str, int]) -> dict[str, int]:
    return {name: values[store] for name, store in QUOTA_NAMES.items()}


@router.get("/v2.0/quotas")
def list_quotas(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    """Projects with a non-default network quota (admin only)."""
    ctx.require_admin("get_quota")
    with nc.read_session(request) as session:
        projects = sorted(
            set(
                session.scalars(
                    select(Quota.project_id).where(Quota.resource.in_(QUOTA_NAMES.values()))
                )
            )
        )
        result = []
        for project in projects:
            limits = _neutron_limits(quotas.limits(session, project))
            result.append({**limits, "project_id": project, "tenant_id": project})
    return {"quotas": result}


@router.get("/v2.0/quotas/{project_id}/default")
def default_quota(project_id: str, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    _quota_project(ctx, project_id)
    return {
        "quota": {
            **_neutron_limits(quotas.DEFAULTS),
            "project_id": project_id,
            "tenant_id": project_id,
        }
    }


@router.get("/v2.0/quotas/{project_id}/details")
def quota_details(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    _quota_project(ctx, project_id)
    with nc.read_session(request) as session:
        limits = quotas.limits(session, project_id)
        details = {
            name: {
                "limit": limits[store],
                "used": quotas.usage(session, project_id, store),
                "reserved": 0,
            }
            for name, store in QUOTA_NAMES.items()
        }
    return {"quota": details}


@router.get("/v2.0/quotas/{project_id}")
def show_quota(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    _quota_project(ctx, project_id)
    with nc.read_session(request) as session:
        limits = _neutron_limits(quotas.limits(session, project_id))
    return {"quota": limits}


@router.put("/v2.0/quotas/{project_id}")
def update_quota(
    request: Request,
    project_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    ctx.require_admin("update_quota")
    data = nc.object_of(body, "quota")
    values: dict[str, int] = {}
    for name, value in data.items():
        if name in ("project_id", "tenant_id", "check_limit", "force"):
            continue
        if name not in QUOTA_NAMES:
            raise BadRequest(f"Unrecognized attribute(s) '{name}'", "HTTPBadRequest")
        values[QUOTA_NAMES[name]] = nc.to_int(name, value, low=-1)

    def work(session: Session) -> dict[str, Any]:
        limits = quotas.set_limits(session, project_id, values)
        return {"quota": _neutron_limits(limits)}

    return nc.transact(request, work)


@router.delete("/v2.0/quotas/{project_id}", status_code=204)
def reset_quota(
    request: Request, project_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    ctx.require_admin("delete_quota")

    def work(session: Session) -> None:
        quotas.reset_limits(session, project_id, QUOTA_NAMES.values())

    nc.transact(request, work)
    return Response(status_code=204)


# -- tags (standard-attr-tag) ----------------------------------------------------------------

_TAGGABLE = (
    "networks",
    "subnets",
    "ports",
    "routers",
    "floatingips",
    "security-groups",
    "subnetpools",
    "address-scopes",
)


def _tag_target(
    session: Session, ctx: RequestContext, collection: str, resource_id: str
) -> Resource:
    if collection not in _TAGGABLE:
        raise NotFound(f"The resource could not be found: {collection}", "HTTPNotFound")
    resource = nc.load(session, ctx, nc.COLLECTIONS[collection], resource_id)
    return resource


def _set_tags(
    request: Request, ctx: RequestContext, collection: str, resource_id: str, change: Any
) -> list[str]:
    nc.require_member(ctx, "update_tags")

    def work(session: Session) -> list[str]:
        resource = _tag_target(session, ctx, collection, resource_id)
        nc.require_owner(ctx, resource, "update_tags")
        tags = change(list(resource.spec.get("tags") or []))
        if tags != list(resource.spec.get("tags") or []):
            repo.change(session, resource, spec={"tags": tags})
        return tags

    return nc.transact(request, work)


@router.get("/v2.0/{collection}/{resource_id}/tags")
def get_tags(
    request: Request, collection: str, resource_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    with nc.read_session(request) as session:
        resource = _tag_target(session, ctx, collection, resource_id)
        return {"tags": list(resource.spec.get("tags") or [])}


@router.get("/v2.0/{collection}/{resource_id}/tags/{tag}", status_code=204)
def check_tag(
    request: Request,
    collection: str,
    resource_id: str,
    tag: str,
    ctx: RequestContext = Depends(get_context),
) -> Response:
    with nc.read_session(request) as session:
        resource = _tag_target(session, ctx, collection, resource_id)
        if tag not in (resource.spec.get("tags") or []):
            raise NotFound(
                f"Tag {tag} could not be found for resource {resource_id}.", "TagNotFound"
            )
    return Response(status_code=204)


@router.put("/v2.0/{collection}/{resource_id}/tags")
def replace_tags(
    request: Request,
    collection: str,
    resource_id: str,
    body: Any = Body(None),
    ctx: RequestContext = Depends(get_context),
) -> dict[str, Any]:
    if not isinstance(body, dict) or "tags" not in body:
        raise BadRequest("Invalid input: the body must be {'tags': [...]}.", "HTTPBadRequest")
    tags = nc.to_tags(body["tags"])
    return {"tags": _set_tags(request, ctx, collection, resource_id, lambda _old: tags)}


@router.put("/v2.0/{collection}/{resource_id}/tags/{tag}", status_code=201, response_class=Response)
def add_tag(
    request: Request,
    collection: str,
    resource_id: str,
    tag: str,
    ctx: RequestContext = Depends(get_context),
) -> Response:
    nc.to_tags([tag])

    def change(old: list[str]) -> list[str]:
        return old if tag in old else nc.to_tags([*old, tag])

    _set_tags(request, ctx, collection, resource_id, change)
    return Response(status_code=201)


@router.delete("/v2.0/{collection}/{resource_id}/tags/{tag}", status_code=204)
def remove_tag(
    request: Request,
    collection: str,
    resource_id: str,
    tag: str,
    ctx: RequestContext = Depends(get_context),
) -> Response:
    def change(old: list[str]) -> list[str]:
        if tag not in old:
            raise NotFound(
                f"Tag {tag} could not be found for resource {resource_id}.", "TagNotFound"
            )
        return [t for t in old if t != tag]

    _set_tags(request, ctx, collection, resource_id, change)
    return Response(status_code=204)


@router.delete("/v2.0/{collection}/{resource_id}/tags", status_code=204)
def remove_all_tags(
    request: Request, collection: str, resource_id: str, ctx: RequestContext = Depends(get_context)
) -> Response:
    _set_tags(request, ctx, collection, resource_id, lambda _old: [])
    return Response(status_code=204)
