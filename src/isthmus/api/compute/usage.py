"""Compute (Nova): simple tenant usage (`/os-simple-tenant-usage`), what Horizon's
overview shows. An admin lists every project's usage (`detailed=1` adds each
server's); a member shows its own project's (another project's is 403).

Usage is counted from the servers Isthmus holds, in every site, and from the
deleted ones (their usage is kept when the delete is accepted: store/usage.py,
since the server's own row is purged once its site let it go). A server is
charged from its `created_at` (Isthmus's launch, whatever site it went to) to the
end of the period or its deletion, as Nova charges a running instance up to the
end of the period (even a future one, as the CLI's default `end` is): its
flavor's vCPUs, RAM and root + ephemeral disk times its hours; a deleted one shows
state `terminated` and its `ended_at`. Periods: `start` / `end` in Nova's formats
(default: now), start after end is 400. 2.40: `limit` / `marker` (a server id)
page over the servers, with `tenant_usages_links` / `tenant_usage_links` when the
page is full.
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
from isthmus.errors import BadRequest, NotFound
from isthmus.intent.server_actions import server_state
from isthmus.store import repo
from isthmus.store import usage as kept_usage
from isthmus.store.tables import Resource, ServerUsage

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


Period = tuple[datetime, datetime, datetime]  # start, stop, now


def hours_for(started: datetime, ended: datetime | None, start: datetime, stop: datetime) -> float:
    """Hours a server that ran from `started` (to `ended`; None: still there) ran
    within the period."""
    if started > stop or (ended is not None and ended < start):
        return 0.0
    until = stop if ended is None else min(stop, ended)
    return max(0.0, (until - max(started, start)).total_seconds() / 3600.0)


def _usage(
    ids: tuple[str, str, str | None],
    flavor: dict[str, Any],
    ran: tuple[datetime, datetime | None],
    state: str,
    period: Period,
) -> dict[str, Any]:
    server_id, name, project_id = ids
    started, ended = ran
    start, stop, now = period
    return {
        "instance_id": server_id,
        "name": name,
        "hours": hours_for(started, ended, start, stop),
        "vcpus": int(flavor.get("vcpus", 0)),
        "memory_mb": int(flavor.get("ram", 0)),
        "local_gb": int(flavor.get("disk", 0)) + int(flavor.get("ephemeral", 0)),
        "flavor": str(flavor.get("name") or ""),
        "tenant_id": project_id,
        "state": state,
        "started_at": started.isoformat(),
        "ended_at": ended.isoformat() if ended is not None else None,
        "uptime": max(0, int(((ended or now) - started).total_seconds())),
    }


def live_usage(server: Resource, period: Period) -> dict[str, Any]:
    """The usage of a server Isthmus still holds (its flavor copy, else its size)."""
    spec = server.spec or {}
    flavor = dict(spec.get("flavor") or {})
    flavor.setdefault("vcpus", spec.get("vcpus", 0))
    flavor.setdefault("ram", spec.get("ram_mb", 0))
    flavor.setdefault("disk", spec.get("disk_gb", 0))
    state = server_state(server, None).vm_state
    ids = (server.id, server.name, server.project_id)
    return _usage(ids, flavor, (server.created_at, None), state, period)


def ended_usage(row: ServerUsage, period: Period) -> dict[str, Any]:
    """The usage of a deleted server, as store/usage.py kept it."""
    ids = (row.server_id, row.name, row.project_id)
    return _usage(ids, dict(row.flavor or {}), (row.started_at, row.ended_at), "terminated", period)


def _usages(
    request: Request, project_id: str | None, start: datetime, stop: datetime
) -> tuple[list[dict[str, Any]], int | None]:
    """The usages that count (servers created before the period ends, deleted ones
    that ran within it), oldest first, paged from 2.40."""
    period = (start, stop, repo.utcnow())
    with _service(request).db.read() as session:
        kept = kept_usage.ended(session, project_id, start, stop)
        usages = [ended_usage(row, period) for row in kept]
        query = select(Resource).where(Resource.kind == "server", Resource.created_at <= stop)
        if project_id is not None:
            query = query.where(Resource.project_id == project_id)
        for server in session.scalars(query):
            # a server whose delete was accepted counts by its kept usage
            if not (server.deleting and session.get(ServerUsage, server.id) is not None):
                usages.append(live_usage(server, period))
    usages.sort(key=lambda u: (u["started_at"], u["instance_id"]))
    limit = None
    params = request.query_params
    if _version(request) >= (2, 40) and ("limit" in params or "marker" in params):
        limit = parse_limit(request)
        ids = [u["instance_id"] for u in usages]
        page = set(page_after_marker(ids, params.get("marker"), limit))
        usages = [u for u in usages if u["instance_id"] in page]
    return usages, limit


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


def _links(
    request: Request, usages: list[dict[str, Any]], limit: int | None
) -> list[dict[str, str]]:
    if limit is None:
        return []
    ids = [u["instance_id"] for u in usages]
    return next_links(request, "os-simple-tenant-usage", ids, limit)


@router.get("/v2.1/os-simple-tenant-usage")
def list_usage(request: Request, ctx: RequestContext = Depends(get_context)) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-simple-tenant-usage:list")
    start, stop = period(request)
    raw = request.query_params.get("detailed")
    detailed = raw is not None and raw != "" and parse_bool("detailed", raw)
    usages, limit = _usages(request, None, start, stop)
    by_project: dict[str, list[dict[str, Any]]] = {}
    for item in usages:
        by_project.setdefault(item["tenant_id"] or "", []).append(item)
    answer: dict[str, Any] = {
        "tenant_usages": [
            tenant_usage(project, usages, start, stop, detailed)
            for project, usages in by_project.items()
        ]
    }
    links = _links(request, usages, limit)
    if links:
        answer["tenant_usages_links"] = links
    return answer


@router.get("/v2.1/os-simple-tenant-usage/")
def show_usage_without_tenant(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    """An empty tenant id (a trailing slash): Nova's router matches nothing, 404."""
    raise NotFound("The resource could not be found.")


@router.get("/v2.1/os-simple-tenant-usage/{tenant_id}")
def show_usage(
    request: Request, tenant_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    if tenant_id != ctx.project_id:
        ctx.require_admin("os_compute_api:os-simple-tenant-usage:show")
    start, stop = period(request)
    usages, limit = _usages(request, tenant_id, start, stop)
    answer: dict[str, Any] = {
        "tenant_usage": tenant_usage(tenant_id, usages, start, stop, True) if usages else {}
    }
    links = _links(request, usages, limit)
    if links:
        answer["tenant_usage_links"] = links
    return answer
