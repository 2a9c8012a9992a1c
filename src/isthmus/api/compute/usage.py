"""Compute (Nova): simple tenant usage (`/os-simple-tenant-usage`), what Horizon's
overview shows. An admin lists every project's usage (`detailed=1` adds each
server's); a member shows its own project's (another project's is 403).

Usage is counted from the servers Isthmus holds, in every site: a server is
charged from its `created_at` (Isthmus's launch, whatever site it went to) to the
end of the period, its flavor's vCPUs, RAM and root + ephemeral disk times its
hours. A deleted server is not counted: Isthmus removes its row once its site has
let it go, so the hours it ran are not kept (unlike Nova's soft-deleted rows);
one still being deleted counts until then. Periods: `start` / `end` in Nova's
formats (default: now), start after end is 400. 2.40: `limit` / `marker` (a
server id) page over the servers, with `tenant_usages_links` /
`tenant_usage_links` when the page is full.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import Depends, Request
from sqlalchemy import select

from isthmus.api.compute.common import (
    MIN_VERSION,
    compute_router,
    next_links,
    page_after_marker,
    parse_bool,
    parse_limit,
)
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest
from isthmus.intent.server_actions import server_state
from isthmus.store import repo
from isthmus.store.tables import Resource

router = compute_router()
FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f", "%Y-%m-%d %H:%M:%S.%f")


def _service(request: Request) -> Any:
    return request.app.state.service


def _version(request: Request) -> tuple[int, int]:
    return getattr(request.state, "compute_version", MIN_VERSION)


def parse_time(value: str | None, now: datetime) -> datetime:
    """A period bound in one of Nova's formats (naive UTC); `now` when absent."""
    if value is None or value == "":
        return now
    text = value.strip()
    if text.endswith("Z"):
        text = text[:-1]
    for fmt in FORMATS:
        try:
            return datetime.strptime(text, fmt)
        except ValueError:
            continue
    raise BadRequest(f"Datetime is in invalid format: {value!r}")


def period(request: Request) -> tuple[datetime, datetime]:
    now = repo.utcnow()
    start = parse_time(request.query_params.get("start"), now)
    stop = parse_time(request.query_params.get("end"), now)
    if start > stop or (start == stop and request.query_params.get("start")):
        raise BadRequest("Invalid start time. The start time cannot occur after the end time.")
    return start, stop


def hours_for(started: datetime, start: datetime, stop: datetime) -> float:
    """Hours a server started at `started` (and still there) ran within the period."""
    if started > stop:
        return 0.0
    return max(0.0, (stop - max(started, start)).total_seconds() / 3600.0)


def server_usage(
    server: Resource, start: datetime, stop: datetime, now: datetime
) -> dict[str, Any]:
    spec = server.spec or {}
    flavor = spec.get("flavor") or {}
    vcpus = int(flavor.get("vcpus", spec.get("vcpus", 0)))
    memory = int(flavor.get("ram", spec.get("ram_mb", 0)))
    disk = int(flavor.get("disk", spec.get("disk_gb", 0))) + int(flavor.get("ephemeral", 0))
    return {
        "instance_id": server.id,
        "name": server.name,
        "hours": hours_for(server.created_at, start, stop),
        "vcpus": vcpus,
        "memory_mb": memory,
        "local_gb": disk,
        "flavor": str(flavor.get("name") or ""),
        "tenant_id": server.project_id,
        "state": server_state(server, None).vm_state,
        "started_at": server.created_at.isoformat(),
        "ended_at": None,
        "uptime": max(0, int((now - server.created_at).total_seconds())),
    }


def _servers(
    request: Request, project_id: str | None, stop: datetime
) -> tuple[list[Resource], int | None]:
    """The servers that count (created before the period ends), paged from 2.40."""
    with _service(request).db.read() as session:
        query = select(Resource).where(Resource.kind == "server", Resource.created_at <= stop)
        if project_id is not None:
            query = query.where(Resource.project_id == project_id)
        servers = list(session.scalars(query.order_by(Resource.created_at, Resource.id)))
        session.expunge_all()
    limit = None
    params = request.query_params
    if _version(request) >= (2, 40) and ("limit" in params or "marker" in params):
        limit = parse_limit(request)
        page = page_after_marker([s.id for s in servers], params.get("marker"), limit)
        servers = [s for s in servers if s.id in set(page)]
    return servers, limit


def tenant_usage(
    project_id: str, usages: list[dict[str, Any]], start: datetime, stop: datetime, detailed: bool
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "tenant_id": project_id,
        "start": start.isoformat(),
        "stop": stop.isoformat(),
        "total_hours": sum(u["hours"] for u in usages),
        "total_vcpus_usage": sum(u["hours"] * u["vcpus"] for u in usages),
        "total_memory_mb_usage": sum(u["hours"] * u["memory_mb"] for u in usages),
        "total_local_gb_usage": sum(u["hours"] * u["local_gb"] for u in usages),
    }
    if detailed:
        body["server_usages"] = usages
    return body


def _links(request: Request, servers: list[Resource], limit: int | None) -> list[dict[str, str]]:
    if limit is None:
        return []
    return next_links(request, "os-simple-tenant-usage", [s.id for s in servers], limit)


@router.get("/v2.1/os-simple-tenant-usage")
def list_usage(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-simple-tenant-usage:list")
    start, stop = period(request)
    raw = request.query_params.get("detailed")
    detailed = raw is not None and raw != "" and parse_bool("detailed", raw)
    now = repo.utcnow()
    servers, limit = _servers(request, None, stop)
    by_project: dict[str, list[dict[str, Any]]] = {}
    for server in servers:
        by_project.setdefault(server.project_id or "", []).append(
            server_usage(server, start, stop, now)
        )
    answer: dict[str, Any] = {
        "tenant_usages": [
            tenant_usage(project, usages, start, stop, detailed)
            for project, usages in by_project.items()
        ]
    }
    links = _links(request, servers, limit)
    if links:
        answer["tenant_usages_links"] = links
    return answer


@router.get("/v2.1/os-simple-tenant-usage/{tenant_id}")
def show_usage(
    request: Request, tenant_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if tenant_id != ctx.project_id:
        ctx.require_admin("os_compute_api:os-simple-tenant-usage:show")
    start, stop = period(request)
    now = repo.utcnow()
    servers, limit = _servers(request, tenant_id, stop)
    usages = [server_usage(s, start, stop, now) for s in servers]
    answer: dict[str, Any] = {
        "tenant_usage": tenant_usage(tenant_id, usages, start, stop, True) if usages else {}
    }
    links = _links(request, servers, limit)
    if links:
        answer["tenant_usage_links"] = links
    return answer
