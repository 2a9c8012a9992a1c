"""Keystone v3, read-only views of the fixed layout: the one domain (`default`), the
services and endpoints of the catalog, the one region. Routes under /identity, next to
api/identity/routes.py."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request

from isthmus.api.catalog import REGION, base_url_of, catalog
from isthmus.api.context import RequestContext, get_context
from isthmus.api.identity.routes import DOMAIN
from isthmus.errors import NotFound

router = APIRouter(prefix="/identity")


@router.get("/v3/domains")
def list_domains(
    request: Request, name: str | None = None, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    domains = [] if name not in (None, "Default") else [_domain(request)]
    return {"domains": domains, "links": {"self": str(request.url), "next": None, "previous": None}}


def _domain(request: Request) -> dict[str, Any]:
    return {
        **DOMAIN,
        "description": "The default domain",
        "enabled": True,
        "tags": [],
        "options": {},
        "links": {"self": f"{base_url_of(request)}/identity/v3/domains/default"},
    }


@router.get("/v3/domains/{domain_id}")
def show_domain(
    request: Request, domain_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if domain_id not in ("default", "Default"):
        raise NotFound(f"Could not find domain: {domain_id}.")
    return {"domain": _domain(request)}


@router.get("/v3/services")
def list_services(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    entries = catalog(base_url_of(request), ctx.project_id)
    return {
        "services": [
            {"id": e["id"], "type": e["type"], "name": e["name"], "enabled": True} for e in entries
        ],
        "links": {"self": str(request.url)},
    }


@router.get("/v3/endpoints")
def list_endpoints(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    out = []
    for entry in catalog(base_url_of(request), "$(project_id)s"):
        for endpoint in entry["endpoints"]:
            out.append({**endpoint, "service_id": entry["id"], "enabled": True})
    return {"endpoints": out, "links": {"self": str(request.url)}}


@router.get("/v3/regions")
def list_regions(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    return {
        "regions": [{"id": REGION, "description": "", "parent_region_id": None}],
        "links": {"self": str(request.url)},
    }
