"""The server list of Compute v2.1 (GET /servers, /servers/detail).

Filters on columns (project, availability zone/host, uuid, changes-since,
changes-before from 2.66) and sorting run in SQL; the sort keys map to indexed
columns, and `marker` becomes a keyset condition on them, so a page costs the
same however deep it is. Filters on the rendered server (name regex, status,
flavor, image, ip, ip6 (a member's from 2.5), key_name, user_id, reservation_id,
vm_state, task_state, power_state, tags/tags-any/not-tags/not-tags-any from 2.26,
locked from 2.73) scan the sorted rows
in growing keyset chunks until the page is full (exactly `limit` rows, unless
the rows run out). Two of them narrow the scan in SQL first with a condition
every matching row meets, the exact test staying in Python: `status` (the
stored statuses the shown one can come from) and a `name` that is a plain
string, optionally anchored with ^ (a LIKE on it). A scan on names alone reads
only ids, names and sort keys, then the page's rows.

Rows are read as plain rows of the server columns (compute_views.SERVER_COLUMNS),
not ORM objects, and a brief list reads only ids and names.

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

from isthmus.api.compute.common import (
    next_links,
    parse_bool,
    parse_limit,
    ref_id,
    request_version,
)
from isthmus.api.compute.views import (
    SERVER_COLUMNS,
    ServerViews,
    records,
    with_site_binding,
)
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
SCAN_CHUNK = 200  # rows a filtered scan reads first (at least `limit`) ...
MAX_SCAN_CHUNK = 5000  # ... doubling up to this while the page is not full
REGEX_META = frozenset(".^$*+?{}[]\\|()")
# the stored statuses each shown status can come from (compute_views.server_state):
# besides itself, BUILD is shown for an empty status and a reboot the site has not
# applied shows ACTIVE and SHUTOFF servers as REBOOT or HARD_REBOOT
# (likewise a rebuild, a resize and its verify/revert step the site has not done or
# is doing; a shelved server keeps the status its site last showed)
_SETTLED = ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE", "ERROR")
STORED_STATUSES = {
    "BUILD": ("",),
    "REBOOT": ("ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE"),
    "HARD_REBOOT": ("REBOOT", "ACTIVE", "SHUTOFF", "PAUSED", "SUSPENDED", "RESCUE"),
    "REBUILD": _SETTLED,
    "RESIZE": ("ACTIVE", "SHUTOFF"),
    "VERIFY_RESIZE": ("ACTIVE", "SHUTOFF"),
    "REVERT_RESIZE": ("RESIZE", "ACTIVE", "SHUTOFF"),
    "SHELVED": (*_SETTLED, "BUILD", "REBOOT", "REBUILD", "RESIZE"),
    "SHELVED_OFFLOADED": (*_SETTLED, "BUILD", "REBOOT", "REBUILD", "RESIZE"),
}
Test = Callable[[Any, ServerViews], bool]


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


def _name_prefilter(pattern: re.Pattern[str]) -> Any:
    """A SQL condition every name `pattern` finds a match in meets, or None.

    Only for a plain string, optionally anchored: `^abc` -> LIKE 'abc%', `abc`
    -> LIKE '%abc%' (a trailing `$` is dropped, as it also matches before a final
    newline). LIKE may match more (SQLite ignores ASCII case): the regex decides.
    """
    source = pattern.pattern
    anchored = source.startswith("^")
    literal = source[1:] if anchored else source
    if literal.endswith("$") and not literal.endswith("\\$"):
        literal = literal[:-1]
    if not literal or any(c in REGEX_META for c in literal):
        return None
    if anchored:
        return Resource.name.startswith(literal, autoescape=True)
    return Resource.name.contains(literal, autoescape=True)


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


def _after_marker(order: list[tuple[Any, bool]], marker: Any) -> Any:
    """Keyset condition: rows strictly after `marker` (a Resource or a row) in
    `order`. The bound on the first sort key it implies is spelled out too, so
    both databases start the index scan at the marker (PostgreSQL cannot get a
    range out of the OR alone, and would read every row before it)."""
    clauses = []
    for index, (column, descending) in enumerate(order):
        value = getattr(marker, column.key)
        equal = [c == getattr(marker, c.key) for c, _ in order[:index]]
        beyond = column < value if descending else column > value
        clauses.append(and_(*equal, beyond))
    first, descending = order[0]
    start = getattr(marker, first.key)
    return and_(first <= start if descending else first >= start, or_(*clauses))


def _ip_matches(pattern: re.Pattern[str], six: bool) -> Test:
    return lambda s, v: any(pattern.search(a) for a in v.ips(s) if (":" in a) == six)


def _spec_is(key: str, want: str) -> Test:
    return lambda s, v: bool(s.spec.get(key) == want)


def _tag_filters(params: Any) -> list[Test]:
    """2.26's tag filters, each a comma-separated list: `tags` (has all), `tags-any`
    (has one), `not-tags` (lacks one of them), `not-tags-any` (has none)."""

    def wanted(key: str) -> set[str] | None:
        raw = params.get(key)
        return {t.strip() for t in raw.split(",") if t.strip()} if raw else None

    def tags(server: Any) -> set[str]:
        return set(server.spec.get("tags") or [])

    tests: list[Test] = []
    every, some = wanted("tags"), wanted("tags-any")
    not_every, not_some = wanted("not-tags"), wanted("not-tags-any")
    if every:
        tests.append(lambda s, v: every <= tags(s))
    if some:
        tests.append(lambda s, v: bool(some & tags(s)))
    if not_every:
        tests.append(lambda s, v: not not_every <= tags(s))
    if not_some:
        tests.append(lambda s, v: not not_some & tags(s))
    return tests


def _filters(request: Request, ctx: RequestContext) -> tuple[list[Test], bool]:
    """The list filters that need the rendered server (applied in Python), and
    whether they read nothing but the name."""
    params = request.query_params
    version = request_version(request)
    tests: list[Test] = []
    if params.get("name"):
        name = _regex(params["name"])
        tests.append(lambda s, v: bool(name.search(s.name)))
    name_only = bool(tests)
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
        if key == "ip6" and version < (2, 5) and not ctx.is_admin:
            continue  # below 2.5 Nova drops a member's ip6 filter
        if params.get(key):
            pattern, six = _regex(params[key]), key == "ip6"
            tests.append(_ip_matches(pattern, six))
    for key in ("key_name", "user_id", "reservation_id"):
        if params.get(key):
            tests.append(_spec_is(key, params[key]))
    if params.get("vm_state"):
        tests.append(lambda s, v: v.state(s).vm_state == params["vm_state"])
    if params.get("task_state"):
        tests.append(lambda s, v: v.state(s).task_state == params["task_state"])
    if params.get("power_state"):
        tests.append(lambda s, v: str(v.state(s).power_state) == params["power_state"])
    if version >= (2, 26):
        tests.extend(_tag_filters(params))
    if version >= (2, 73) and params.get("locked") is not None:
        locked = parse_bool("locked", params["locked"])
        tests.append(lambda s, v: bool(s.spec.get("locked")) == locked)
    return tests, name_only and len(tests) == 1


def _list_query(
    request: Request, ctx: RequestContext, session: Session
) -> tuple[Select[Any], list[tuple[Any, bool]]]:
    """The servers the caller asked for, sorted, after the marker (rows of
    SERVER_COLUMNS), and the sort order."""
    params = request.query_params
    all_tenants = "all_tenants" in params and parse_bool("all_tenants", params["all_tenants"])
    if all_tenants and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:servers:index:get_all_tenants.")
    project: str | None = ctx.project_id
    if ctx.is_admin:
        wanted = params.get("project_id") or params.get("tenant_id")
        project = wanted or (None if all_tenants else ctx.project_id)
    query = select(*SERVER_COLUMNS).where(Resource.kind == "server")
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
    if params.get("changes-before") and request_version(request) >= (2, 66):
        before = _parse_time("changes-before", params["changes-before"])
        if params.get("changes-since") and since > before:
            raise BadRequest(
                "The value of changes-since must be less than or equal to changes-before."
            )
        # changed at or before: the row's last change (and its binding's) is not later
        later = select(Binding.resource_id).where(Binding.updated_at > before)
        query = query.where(Resource.updated_at <= before, Resource.id.not_in(later))
    # narrowing only: the exact name and status tests run in Python (_filters)
    if params.get("name"):
        name_condition = _name_prefilter(_regex(params["name"]))
        if name_condition is not None:
            query = query.where(name_condition)
    statuses = {s.upper() for s in params.getlist("status") if s}
    if statuses:
        stored = {*statuses, *(x for s in statuses for x in STORED_STATUSES.get(s, ()))}
        query = query.where(Resource.status.in_(sorted(stored)))
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
    return query.order_by(*[c.desc() if d else c.asc() for c, d in order]), order


def _scan(
    session: Session,
    query: Select[Any],
    order: list[tuple[Any, bool]],
    tests: list[Test],
    limit: int,
) -> list[Any]:
    """The first `limit` rows of `query` that pass every test: read in chunks
    that double in size, each one after the last row of the one before: by keyset,
    or by offset when a sort key may be NULL (a keyset condition never reaches the
    NULLs, which PostgreSQL sorts last and SQLite first)."""
    keyset = not any(Resource.__table__.c[column.key].nullable for column, _ in order)
    page: list[Any] = []
    consumed = 0
    size = max(SCAN_CHUNK, limit)
    chunk_query = query
    while True:
        chunk = records(session.execute(chunk_query.limit(size)))
        consumed += len(chunk)
        views = ServerViews(session, chunk)
        for row in chunk:
            if all(test(row, views) for test in tests):
                page.append(row)
                if len(page) == limit:
                    return page
        if len(chunk) < size:
            return page
        if keyset:
            chunk_query = query.where(_after_marker(order, chunk[-1]))
        else:
            chunk_query = query.offset(consumed)
        size = min(size * 2, MAX_SCAN_CHUNK)


def _rows_by_id(session: Session, ids: list[str]) -> list[Any]:
    """The full rows (SERVER_COLUMNS and the site binding) of `ids`, in that order
    (gone ones left out)."""
    rows: dict[str, Any] = {}
    for start in range(0, len(ids), 1000):
        chunk = ids[start : start + 1000]
        rows.update(
            (r.id, r)
            for r in records(
                session.execute(
                    with_site_binding(select(*SERVER_COLUMNS)).where(Resource.id.in_(chunk))
                )
            )
        )
    return [rows[i] for i in ids if i in rows]


def list_servers_page(request: Request, ctx: RequestContext, detail: bool) -> dict[str, Any]:
    """GET /servers and /servers/detail: one page, filtered and sorted."""
    limit = parse_limit(request)
    if request.query_params.get("limit") == "0":
        return {"servers": []}  # Nova lists no servers for limit=0
    tests, name_only = _filters(request, ctx)
    with request.app.state.service.db.read() as session:
        query, order = _list_query(request, ctx, session)
        page: list[Any]
        if tests and name_only:
            # the names decide: scan ids, names and sort keys only
            keys = {c.key: c for c in (Resource.id, Resource.name, *(c for c, _ in order))}
            page = _scan(session, query.with_only_columns(*keys.values()), order, tests, limit)
            if detail:
                page = _rows_by_id(session, [r.id for r in page])
        elif tests:
            page = _scan(session, with_site_binding(query), order, tests, limit)
        elif detail:
            page = records(session.execute(with_site_binding(query).limit(limit)))
        else:
            page = records(
                session.execute(query.with_only_columns(Resource.id, Resource.name).limit(limit))
            )
        views = ServerViews(session, page)
        body: dict[str, Any] = {
            "servers": [
                views.detail(request, ctx, s, single=False) if detail else views.brief(request, s)
                for s in page
            ]
        }
        next_link = next_links(request, "servers", [s.id for s in page], limit)
        if next_link:
            body["servers_links"] = next_link
        return body
