"""The server list of Compute v2.1 (GET /servers, /servers/detail).

Filters on columns (project, availability zone/host, uuid, changes-since) and
sorting run in SQL; the sort keys map to indexed columns, and `marker` becomes a
keyset condition on them, so a page costs the same however deep it is. Filters
on the rendered server (name regex, status, flavor, image, ip, ip6, key_name,
user_id, reservation_id, vm_state, task_state, power_state) scan the sorted rows
in chunks until the page is full.

Nova's rules: a member sees its project (asking for all_tenants is 403); an
admin sees its own project unless it asks for all_tenants or for a project_id /
tenant_id. Names are matched as regular expressions, like Nova's database does.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from fastapi import Request
from sqlalchemy import Select, and_, or_, select
from sqlalchemy.orm import Session

from isthmus.api.compute_common import next_links, parse_bool, parse_limit, ref_id
from isthmus.api.compute_views import ServerViews
from isthmus.api.context import RequestContext
from isthmus.errors import BadRequest, Forbidden
from isthmus.store.tables import Binding, Resource

SORT_COLUMNS = {
    "created_at": Resource.created_at,
    "updated_at": Resource.updated_at,
    "display_name": Resource.name,
    "uuid": Resource.id,
    "availability_zone": Resource.site,
    "host": Resource.site,
    "node": Resource.site,
    "project_id": Resource.project_id,
    "vm_state": Resource.status,
}
SCAN_CHUNK = 200


def _parse_time(name: str, value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip().replace(" ", "+"))
    except ValueError:
        raise BadRequest(f"Invalid filter field: {name}. Value {value} is not a time.") from None
    if moment.tzinfo is not None:
        moment = moment.astimezone(UTC).replace(tzinfo=None)
    return moment


def _regex(pattern: str) -> re.Pattern[str]:
    try:
        return re.compile(pattern)
    except re.error:
        return re.compile(re.escape(pattern))


def _sort(request: Request) -> list[tuple[Any, bool]]:
    """[(column, descending)] from sort_key/sort_dir; created_at desc by default."""
    keys = request.query_params.getlist("sort_key") or ["created_at"]
    dirs = request.query_params.getlist("sort_dir")
    order = []
    for index, key in enumerate(keys):
        if key not in SORT_COLUMNS:
            raise BadRequest(
                f"Invalid sort key {key!r}; Isthmus sorts servers by"
                f" {', '.join(sorted(SORT_COLUMNS))}."
            )
        direction = dirs[index] if index < len(dirs) else (dirs[-1] if dirs else "desc")
        if direction not in ("asc", "desc"):
            raise BadRequest(f"Invalid sort direction {direction!r}; use asc or desc.")
        order.append((SORT_COLUMNS[key], direction == "desc"))
    if not any(column is Resource.id for column, _ in order):
        order.append((Resource.id, order[-1][1]))
    return order


def _after_marker(order: list[tuple[Any, bool]], marker: Resource) -> Any:
    """Keyset condition: rows strictly after `marker` in `order`."""
    clauses = []
    for index, (column, descending) in enumerate(order):
        value = getattr(marker, column.key)
        equal = [c == getattr(marker, c.key) for c, _ in order[:index]]
        beyond = column < value if descending else column > value
        clauses.append(and_(*equal, beyond))
    return or_(*clauses)


def _filters(request: Request) -> list[Callable[[Resource, ServerViews], bool]]:
    """The list filters that need the rendered server (applied in Python)."""
    params = request.query_params
    tests: list[Callable[[Resource, ServerViews], bool]] = []
    if params.get("name"):
        name = _regex(params["name"])
        tests.append(lambda s, v: bool(name.search(s.name)))
    statuses = {s.upper() for s in params.getlist("status") if s}
    if statuses:
        tests.append(lambda s, v: v.state(s).status in statuses)
    if params.get("flavor"):
        flavor = ref_id(params["flavor"])
        tests.append(lambda s, v: str((s.spec.get("flavor") or {}).get("id")) == flavor)
    if params.get("image"):
        image = ref_id(params["image"])
        tests.append(lambda s, v: s.spec.get("image_id") == image)
    for key in ("ip", "ip6"):
        if params.get(key):
            pattern, six = _regex(params[key]), key == "ip6"
            tests.append(
                lambda s, v, p=pattern, six=six: any(
                    p.search(a) for a in v.ips(s) if (":" in a) == six
                )
            )
    for key in ("key_name", "user_id", "reservation_id"):
        if params.get(key):
            tests.append(lambda s, v, k=key, want=params[key]: s.spec.get(k) == want)
    if params.get("vm_state"):
        tests.append(lambda s, v: v.state(s).vm_state == params["vm_state"])
    if params.get("task_state"):
        tests.append(lambda s, v: v.state(s).task_state == params["task_state"])
    if params.get("power_state"):
        tests.append(lambda s, v: str(v.state(s).power_state) == params["power_state"])
    return tests


def _list_query(request: Request, ctx: RequestContext, session: Session) -> Select[Any]:
    params = request.query_params
    all_tenants = "all_tenants" in params and parse_bool("all_tenants", params["all_tenants"])
    if all_tenants and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:index:get_all_tenants.")
    project: str | None = ctx.project_id
    if ctx.is_admin:
        wanted = params.get("project_id") or params.get("tenant_id")
        project = wanted or (None if all_tenants else ctx.project_id)
    query = select(Resource).where(Resource.kind == "server")
    if project is not None:
        query = query.where(Resource.project_id == project)
    zone = params.get("availability_zone") or params.get("host") or params.get("node")
    if zone:
        query = query.where(Resource.site == zone)
    if params.get("uuid"):
        query = query.where(Resource.id == params["uuid"])
    if params.get("changes-since"):
        since = _parse_time("changes-since", params["changes-since"])
        changed = select(Binding.resource_id).where(Binding.updated_at >= since)
        query = query.where(or_(Resource.updated_at >= since, Resource.id.in_(changed)))
    order = _sort(request)
    marker_id = params.get("marker")
    if marker_id:
        marker = session.get(Resource, marker_id)
        if (
            marker is None
            or marker.kind != "server"
            or (project is not None and marker.project_id != project)
        ):
            raise BadRequest(f"marker [{marker_id}] not found")
        query = query.where(_after_marker(order, marker))
    return query.order_by(*[c.desc() if d else c.asc() for c, d in order])


def list_servers_page(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    """GET /servers and /servers/detail: one page, filtered and sorted."""
    limit = parse_limit(request)
    tests = _filters(request)
    with request.app.state.service.db.read() as session:
        query = _list_query(request, ctx, session)
        page: list[Resource] = []
        views = ServerViews(session, [])
        if not tests:
            page = list(session.scalars(query.limit(limit)))
            views = ServerViews(session, page)
        else:
            offset = 0
            while len(page) < limit:
                chunk = list(session.scalars(query.offset(offset).limit(SCAN_CHUNK)))
                offset += len(chunk)
                chunk_views = ServerViews(session, chunk)
                page += [s for s in chunk if all(t(s, chunk_views) for t in tests)]
                if len(chunk) < SCAN_CHUNK:
                    break
            page = page[:limit]
            views = ServerViews(session, page)
        body: dict[str, Any] = {
            "servers": [
                views.detail(request, ctx, s) if detail else views.brief(request, s) for s in page
            ]
        }
        next_link = next_links(request, "servers", [s.id for s in page], limit)
        if next_link:
            body["servers_links"] = next_link
        return body
