"""Compute (Nova), admin only: hypervisors (`/os-hypervisors`), one per site.

Each site is one hypervisor (and one `nova-compute` service, api/compute/services.py)
whose host name is the site's name. Its figures are what the health loop last
recorded for the site (engine/health.py: `capacity` and `usage`, the site's own
accounting, whatever else it runs): vcpus / memory_mb / local_gb from capacity,
the `_used` ones and running_vms from usage, free_* the difference; `state` is
down when the site's health is down (or never checked), `status` disabled when
the site is disabled (no new placements).

By microversion, as Nova and Tempest's schemas have them:
- 2.28: `cpu_info` an object (a JSON string before);
- 2.33: `limit` / `marker` paging with `hypervisors_links`;
- 2.53: ids are UUIDs (integers before; a non-UUID id is 400), `with_servers` and
  `hypervisor_hostname_pattern` on the list replace `/{pattern}/search` and
  `/{pattern}/servers` (404 from 2.53);
- 2.75: `servers` shown even when empty (with `with_servers`);
- 2.88: the figures leave the hypervisor body (`uptime` joins it), `/statistics`
  and `/{id}/uptime` are 404.
The ids are derived from the site's name, so they stay the same across restarts.
"""

from __future__ import annotations

import ipaddress
import uuid
import zlib
from datetime import datetime
from typing import Any
from urllib.parse import urlparse

from fastapi import Depends, Request
from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.api.compute.common import (
    compute_router,
    next_links,
    page_after_marker,
    parse_bool,
    parse_limit,
    request_version,
)
from isthmus.api.context import RequestContext, get_context
from isthmus.errors import BadRequest, NotFound
from isthmus.store import repo
from isthmus.store.tables import Resource, Site

router = compute_router()

_NAMESPACE = uuid.UUID("6f1d3c1e-9a57-4c1b-8f0e-5e0d6c8b7a10")
FIGURES = (
    "vcpus",
    "memory_mb",
    "local_gb",
    "vcpus_used",
    "memory_mb_used",
    "local_gb_used",
    "free_ram_mb",
    "free_disk_gb",
    "current_workload",
    "running_vms",
    "disk_available_least",
)


def _service(request: Request) -> Any:
    return request.app.state.service


# -- ids and the facts of a site as Nova names them ---------------------------------------------


def legacy_id(kind: str, name: str) -> int:
    """The integer id (before 2.53) of a site's hypervisor or service: stable per name."""
    return zlib.crc32(f"{kind}:{name}".encode()) & 0x7FFFFFFF


def uuid_id(kind: str, name: str) -> str:
    """The UUID id (2.53 on) of a site's hypervisor or service."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{name}"))


def public_id(version: tuple[int, int], kind: str, name: str) -> int | str:
    return uuid_id(kind, name) if version >= (2, 53) else legacy_id(kind, name)


def find_site(sites: list[Site], version: tuple[int, int], kind: str, raw: str) -> Site:
    """The site whose hypervisor/service id is `raw`: 400 for a malformed UUID from
    2.53 on, 404 when none."""
    if version >= (2, 53):
        try:
            uuid.UUID(raw)
        except ValueError:
            raise BadRequest(f"Invalid uuid {raw}") from None
    for site in sites:
        if str(public_id(version, kind, site.name)) == raw:
            return site
    label = "Hypervisor" if kind == "hypervisor" else "Service"
    raise NotFound(f"{label} with ID {raw} could not be found.")


def state(site: Site) -> str:
    """Nova's service state: up unless the site is down or was never reached."""
    return "up" if site.health in ("up", "degraded") else "down"


def status(site: Site) -> str:
    return "enabled" if site.enabled else "disabled"


def figures(site: Site) -> dict[str, int]:
    """The hypervisor figures of a site (see the module docstring)."""
    capacity = dict(site.capacity or {})
    usage = dict(site.usage or {})
    vcpus, ram, disk = (int(capacity.get(k, 0)) for k in ("vcpus", "ram_mb", "disk_gb"))
    used_vcpus, used_ram, used_disk = (int(usage.get(k, 0)) for k in ("vcpus", "ram_mb", "disk_gb"))
    return {
        "vcpus": vcpus,
        "memory_mb": ram,
        "local_gb": disk,
        "vcpus_used": used_vcpus,
        "memory_mb_used": used_ram,
        "local_gb_used": used_disk,
        "free_ram_mb": ram - used_ram,
        "free_disk_gb": disk - used_disk,
        "current_workload": 0,
        "running_vms": int(usage.get("servers", 0)),
        "disk_available_least": disk - used_disk,
    }


def host_ip(site: Site) -> str:
    """The address a site is reached at where its config names one, else loopback
    for an embedded site and 0.0.0.0 for a site known by name only."""
    url = str((site.config or {}).get("auth_url") or "")
    host = urlparse(url).hostname if url else None
    if host:
        try:
            return str(ipaddress.ip_address(host))
        except ValueError:
            return "0.0.0.0"
    return "127.0.0.1" if site.driver == "local" else "0.0.0.0"


def uptime_text(site: Site, now: datetime | None = None) -> str:
    """An `uptime`-style line counted from when the site joined Isthmus."""
    now = now or repo.utcnow()
    seconds = max(0, int((now - site.created_at).total_seconds())) if site.created_at else 0
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    return (
        f" {now:%H:%M:%S} up {days} days, {hours:2d}:{minutes:02d},  0 users,"
        "  load average: 0.00, 0.00, 0.00"
    )


def sites_of(session: Session) -> list[Site]:
    return list(session.scalars(select(Site).order_by(Site.name)))


def servers_in(session: Session, names: list[str]) -> dict[str, list[dict[str, str]]]:
    """site -> [{uuid, name}] of the servers placed there (every project)."""
    result: dict[str, list[dict[str, str]]] = {n: [] for n in names}
    rows = session.execute(
        select(Resource.id, Resource.name, Resource.site)
        .where(Resource.kind == "server", Resource.site.in_(names))
        .order_by(Resource.created_at, Resource.id)
    )
    for server_id, name, site in rows:
        result[str(site)].append({"uuid": server_id, "name": name})
    return result


# -- views ------------------------------------------------------------------------------------


def summary(version: tuple[int, int], site: Site) -> dict[str, Any]:
    return {
        "id": public_id(version, "hypervisor", site.name),
        "hypervisor_hostname": site.name,
        "state": state(site),
        "status": status(site),
    }


def detail(version: tuple[int, int], site: Site) -> dict[str, Any]:
    body = summary(version, site)
    body.update(
        {
            "hypervisor_type": site.driver,
            "hypervisor_version": 1000,
            "host_ip": host_ip(site),
            "service": {
                "host": site.name,
                "id": public_id(version, "service", site.name),
                "disabled_reason": None if site.enabled else site.disabled_reason,
            },
        }
    )
    if version >= (2, 88):
        body["uptime"] = uptime_text(site)
        return body
    body.update(figures(site))
    body["cpu_info"] = {} if version >= (2, 28) else "{}"
    return body


def _with_servers(
    request: Request, version: tuple[int, int], session: Session, bodies: list[dict[str, Any]]
) -> None:
    raw = request.query_params.get("with_servers")
    if version < (2, 53) or raw is None or not parse_bool("with_servers", raw):
        return
    servers = servers_in(session, [b["hypervisor_hostname"] for b in bodies])
    for body in bodies:
        found = servers[body["hypervisor_hostname"]]
        if found or version >= (2, 75):
            body["servers"] = found


def _listing(request: Request, ctx: RequestContext, detailed: bool) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:list")
    version = request_version(request)
    params = request.query_params
    with _service(request).db.read() as session:
        sites = sites_of(session)
        pattern = params.get("hypervisor_hostname_pattern") if version >= (2, 53) else None
        if pattern is not None:
            sites = [s for s in sites if pattern in s.name]
            if not sites:
                raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
        paged = version >= (2, 33) and ("limit" in params or "marker" in params)
        if paged:
            if pattern is not None:
                raise BadRequest("Paging over sets of hypervisors is not supported with a pattern.")
            limit = parse_limit(request)
            ids = [str(public_id(version, "hypervisor", s.name)) for s in sites]
            page = page_after_marker(ids, params.get("marker"), limit)
            sites = [s for s in sites if str(public_id(version, "hypervisor", s.name)) in page]
        view = detail if detailed else summary
        bodies = [view(version, s) for s in sites]
        _with_servers(request, version, session, bodies)
    answer: dict[str, Any] = {"hypervisors": bodies}
    if paged:
        links = next_links(request, "os-hypervisors", [str(b["id"]) for b in bodies], limit)
        if links:
            answer["hypervisors_links"] = links
    return answer


@router.get("/v2.1/os-hypervisors")
def list_hypervisors(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return _listing(request, ctx, detailed=False)


@router.get("/v2.1/os-hypervisors/detail")
def list_hypervisors_detail(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    return _listing(request, ctx, detailed=True)


@router.get("/v2.1/os-hypervisors/statistics")
def hypervisor_statistics(
    request: Request, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:statistics")
    if request_version(request) >= (2, 88):
        raise NotFound("The resource could not be found.")
    with _service(request).db.read() as session:
        sites = sites_of(session)
        totals = {name: 0 for name in FIGURES}
        for site in sites:
            for name, value in figures(site).items():
                totals[name] += value
    return {"hypervisor_statistics": {"count": len(sites), **totals}}


@router.get("/v2.1/os-hypervisors/{hypervisor_id}")
def show_hypervisor(
    request: Request, hypervisor_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:show")
    version = request_version(request)
    with _service(request).db.read() as session:
        site = find_site(sites_of(session), version, "hypervisor", hypervisor_id)
        body = detail(version, site)
        _with_servers(request, version, session, [body])
    return {"hypervisor": body}


@router.get("/v2.1/os-hypervisors/{hypervisor_id}/uptime")
def hypervisor_uptime(
    request: Request, hypervisor_id: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:uptime")
    version = request_version(request)
    if version >= (2, 88):
        raise NotFound("The resource could not be found.")
    with _service(request).db.read() as session:
        site = find_site(sites_of(session), version, "hypervisor", hypervisor_id)
        return {"hypervisor": {**summary(version, site), "uptime": uptime_text(site)}}


def _matching(request: Request, session: Session, pattern: str) -> list[Site]:
    if request_version(request) >= (2, 53):
        raise NotFound("The resource could not be found.")
    sites = [s for s in sites_of(session) if pattern in s.name]
    if not sites:
        raise NotFound(f"No hypervisor matching '{pattern}' could be found.")
    return sites


@router.get("/v2.1/os-hypervisors/{pattern}/search")
def search_hypervisors(
    request: Request, pattern: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:search")
    with _service(request).db.read() as session:
        sites = _matching(request, session, pattern)
        return {"hypervisors": [summary(request_version(request), s) for s in sites]}


@router.get("/v2.1/os-hypervisors/{pattern}/servers")
def hypervisor_servers(
    request: Request, pattern: str, ctx: RequestContext = Depends(get_context)
) -> dict[str, Any]:
    ctx.require_admin("os_compute_api:os-hypervisors:servers")
    with _service(request).db.read() as session:
        sites = _matching(request, session, pattern)
        servers = servers_in(session, [s.name for s in sites])
        bodies = []
        for site in sites:
            body = summary(request_version(request), site)
            if servers[site.name]:
                body["servers"] = servers[site.name]
            bodies.append(body)
    return {"hypervisors": bodies}
