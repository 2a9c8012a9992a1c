"""Server groups (Nova's os-server-groups) and the placement a server's group and
scheduler hints ask for.

A server group is a resource of kind `server_group` (intent only: it is in no
site), its `spec` holding `policy` (model/placement.GROUP_POLICIES), `rules`
(`max_server_per_host` for anti-affinity) and the creating `user_id`. A server
joins one at create through the `group` scheduler hint: the server's spec keeps
`server_group` (its id). The members of a group are the servers naming it that
are still there, so a deleted server leaves its group as in Nova, and deleting a
group leaves its servers where they are.

Quotas (store/quotas.py): `server_groups` per project (403 "Quota exceeded, too
many server groups." as Nova) and `server_group_members` per group (403 "Quota
exceeded, too many servers in group" at server create).

`spread` turns a server's group and its `same_host` / `different_host` hints into
the `model.placement.Spread` that placement applies (a site is the host); it is
read again for each server of a multiple create, so the servers already written
in this transaction count.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Forbidden, NotFound
from isthmus.intent import Caller
from isthmus.model.placement import ANTI_AFFINITY, Spread
from isthmus.store import quotas, repo
from isthmus.store.tables import Resource

KIND = "server_group"


@dataclass
class PlacementHints:
    """A server create's group and host hints, checked (api/compute/create.py)."""

    group: Resource | None = None
    # the sites of the servers a same_host hint names (None: no such hint)
    same_host: frozenset[str] | None = None
    # the sites of the servers a different_host hint names
    different_host: frozenset[str] = field(default_factory=frozenset)


# -- groups ------------------------------------------------------------------------------------


def create_group(
    session: Session, caller: Caller, name: str, policy: str, rules: dict[str, int]
) -> Resource:
    """A new group of the caller's project (checked shape: api/compute/server_groups.py);
    403 over the project's `server_groups` quota."""
    limit = quotas.limits(session, caller.project_id)["server_groups"]
    if 0 <= limit <= quotas.usage(session, caller.project_id, "server_groups"):
        raise Forbidden("Quota exceeded, too many server groups.")
    return repo.add(
        session,
        KIND,
        project_id=caller.project_id,
        name=name,
        spec={"policy": policy, "rules": dict(rules), "user_id": caller.user_id},
    )


def get_group(session: Session, caller: Caller, group_id: str) -> Resource:
    """The group if the caller may see it; 404 (Nova's message) otherwise."""
    group = session.get(Resource, group_id)
    project = caller.visible_project()
    if (
        group is None
        or group.kind != KIND
        or group.deleting
        or (project is not None and group.project_id != project)
    ):
        raise NotFound(f"Instance group {group_id} could not be found.")
    return group


def list_groups(session: Session, project_id: str | None) -> list[Resource]:
    """The groups of `project_id` (None: every project), oldest first."""
    query = select(Resource).where(Resource.kind == KIND, Resource.deleting.is_(False))
    if project_id is not None:
        query = query.where(Resource.project_id == project_id)
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


def delete_group(session: Session, group: Resource) -> None:
    """Remove a group; its servers stay where they are (and leave it)."""
    repo.purge(session, group)


def members(session: Session, groups: Sequence[Resource]) -> dict[str, list[Resource]]:
    """group id -> its member servers (not deleted), oldest first."""
    result: dict[str, list[Resource]] = {g.id: [] for g in groups}
    if not groups:
        return result
    projects = {g.project_id for g in groups}
    servers = session.scalars(
        select(Resource)
        .where(Resource.kind == "server", Resource.project_id.in_(projects))
        .order_by(Resource.created_at, Resource.id)
    )
    for server in servers:
        group_id = (server.spec or {}).get("server_group")
        if group_id in result:
            result[group_id].append(server)
    return result


def groups_of(session: Session, servers: Iterable[Resource]) -> dict[str, list[str]]:
    """server id -> the ids of the groups it is in (Nova 2.71's `server_groups`:
    at most one; empty once its group is deleted)."""
    wanted = {s.id: (s.spec or {}).get("server_group") for s in servers}
    ids = {g for g in wanted.values() if g}
    existing: set[str] = set()
    if ids:
        existing = set(
            session.scalars(select(Resource.id).where(Resource.kind == KIND, Resource.id.in_(ids)))
        )
    return {sid: ([gid] if gid in existing else []) for sid, gid in wanted.items()}


# -- at server create ----------------------------------------------------------------------------


def hint_group(session: Session, caller: Caller, group_id: str) -> Resource:
    """The group a `group` scheduler hint names (the caller's own; admins any), or
    Nova's 400."""
    group = session.get(Resource, group_id)
    if (
        group is None
        or group.kind != KIND
        or group.deleting
        or (not caller.is_admin and group.project_id != caller.project_id)
    ):
        raise BadRequest(f"Instance group {group_id} could not be found.")
    return group


def check_members_quota(session: Session, group: Resource, count: int) -> None:
    """403 when `count` more servers would pass the group's `server_group_members`
    quota (its project's limit)."""
    limit = quotas.limits(session, group.project_id or "")["server_group_members"]
    if limit < 0:
        return
    if len(members(session, [group])[group.id]) + count > limit:
        raise Forbidden("Quota exceeded, too many servers in group")


def spread(session: Session, hints: PlacementHints) -> Spread:
    """What placement must respect for one more server with `hints` (see the
    module docstring); members written earlier in this transaction count."""
    policy: str | None = None
    placed: dict[str, int] = {}
    max_per_site = 1
    if hints.group is not None:
        policy = str(hints.group.spec.get("policy"))
        rules: dict[str, Any] = dict(hints.group.spec.get("rules") or {})
        if policy == ANTI_AFFINITY:
            max_per_site = int(rules.get("max_server_per_host", 1))
        for server in members(session, [hints.group])[hints.group.id]:
            if server.site:
                placed[server.site] = placed.get(server.site, 0) + 1
    return Spread(policy, placed, max_per_site, hints.same_host, hints.different_host)


def host_sites(session: Session, caller: Caller, server_ids: Sequence[str]) -> frozenset[str]:
    """The sites (Nova's hosts) of the servers a same_host / different_host hint
    names, among those the caller may see; unknown ids name no site (as Nova's
    filters, which only compare them with each host's servers)."""
    if not server_ids:
        return frozenset()
    query = select(Resource.site).where(
        Resource.kind == "server",
        Resource.id.in_(list(server_ids)),
        Resource.deleting.is_(False),
    )
    project = caller.visible_project()
    if project is not None:
        query = query.where(Resource.project_id == project)
    return frozenset(site for site in session.scalars(query) if site)
