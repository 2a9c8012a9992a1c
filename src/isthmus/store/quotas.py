"""Global quotas per project, across all sites: a project over its limit gets
413 at the top, whatever each site's own quota says. Limits default to
`DEFAULTS` and can be set per project (table `quotas`); -1 means unlimited.

Usage is counted from intent (what was accepted and not yet deleted) in the
caller's transaction, so a burst of requests cannot overshoot.

A site's own quota (another cloud's, or a lower Isthmus' global quota for the
project Isthmus uses there) is a separate, lower limit that only the site knows.
When the site refuses a server or volume over it, the driver reports the
refusal as permanent and the resource goes ERROR (a volume: error) with the
site's own message as its fault. Placement does not then try another site, even
for a request that named no zone: the site is fixed when the request is
accepted (ports, addresses and the capacity claim go with it), and a retry
elsewhere would make the outcome depend on timing. The tenant deletes it and
asks again (in another zone), or the site's operator raises that quota.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, OverQuota
from isthmus.store.tables import Quota, Resource

DEFAULTS: dict[str, int] = {
    "instances": 100,
    "cores": 400,
    "ram": 1024 * 1024,  # MiB
    "key_pairs": 100,
    "networks": 100,
    "subnets": 100,
    "ports": 500,
    "routers": 20,
    "floatingips": 50,
    "security_groups": 20,
    "security_group_rules": 200,
    "volumes": 100,
    "gigabytes": 10000,
    "snapshots": 100,
    "server_groups": 10,  # Nova's defaults
    "server_group_members": 10,  # per group
}

# resource name -> kind counted (with `deleting` rows, as the space is not yet free)
KIND_OF = {
    "instances": "server",
    "key_pairs": "keypair",
    "networks": "network",
    "subnets": "subnet",
    "ports": "port",
    "routers": "router",
    "floatingips": "floating_ip",
    "security_groups": "security_group",
    "security_group_rules": "security_group_rule",
    "volumes": "volume",
    "snapshots": "snapshot",
    "server_groups": "server_group",
}


def limits(session: Session, project_id: str) -> dict[str, int]:
    overrides = dict(
        session.execute(
            select(Quota.resource, Quota.hard_limit).where(Quota.project_id == project_id)
        ).all()
    )
    return {name: int(overrides.get(name, default)) for name, default in DEFAULTS.items()}


def set_limits(session: Session, project_id: str, values: dict[str, int]) -> dict[str, int]:
    for name, value in values.items():
        if name not in DEFAULTS:
            raise BadRequest(f"Unknown quota resource {name!r}; known: {', '.join(DEFAULTS)}.")
        if not isinstance(value, int) or value < -1:
            raise BadRequest(f"Quota limit for {name} must be an integer >= -1.")
        row = session.get(Quota, (project_id, name))
        if row is None:
            session.add(Quota(project_id=project_id, resource=name, hard_limit=value))
        else:
            row.hard_limit = value
    session.flush()
    return limits(session, project_id)


def reset_limits(session: Session, project_id: str, names: Iterable[str] | None = None) -> None:
    """Give `project_id` the default limits again: for `names` only (one API's
    quotas), or for every quota (None)."""
    query = delete(Quota).where(Quota.project_id == project_id)
    if names is not None:
        query = query.where(Quota.resource.in_(list(names)))
    session.execute(query)


def _count(session: Session, project_id: str, kind: str) -> int:
    return int(
        session.scalar(
            select(func.count())
            .select_from(Resource)
            .where(Resource.kind == kind, Resource.project_id == project_id)
        )
        or 0
    )


def _server_sum(session: Session, project_id: str, key: str) -> int:
    specs = session.scalars(
        select(Resource.spec).where(Resource.kind == "server", Resource.project_id == project_id)
    )
    return sum(int((spec or {}).get(key, 0)) for spec in specs)


def _volume_gigabytes(session: Session, project_id: str) -> int:
    specs = session.scalars(
        select(Resource.spec).where(Resource.kind == "volume", Resource.project_id == project_id)
    )
    return sum(int((spec or {}).get("size", 0)) for spec in specs)


def _group_members(session: Session, project_id: str) -> int:
    """Servers of the project in one of its server groups (what Nova counts as the
    project's `server_group_members` in use; the limit applies per group)."""
    groups = set(
        session.scalars(
            select(Resource.id).where(
                Resource.kind == "server_group", Resource.project_id == project_id
            )
        )
    )
    if not groups:
        return 0
    specs = session.scalars(
        select(Resource.spec).where(Resource.kind == "server", Resource.project_id == project_id)
    )
    return sum(1 for spec in specs if (spec or {}).get("server_group") in groups)


USAGE: dict[str, Callable[[Session, str], int]] = {
    "server_group_members": _group_members,
    "cores": lambda s, p: _server_sum(s, p, "vcpus"),
    "ram": lambda s, p: _server_sum(s, p, "ram_mb"),
    "gigabytes": _volume_gigabytes,
}


def usage(session: Session, project_id: str, name: str) -> int:
    if name in USAGE:
        return USAGE[name](session, project_id)
    return _count(session, project_id, KIND_OF[name])


def check(session: Session, project_id: str, requested: dict[str, int]) -> None:
    """Raise OverQuota if adding `requested` would pass a limit of the project."""
    project_limits = limits(session, project_id)
    for name, amount in requested.items():
        if amount <= 0:
            continue
        limit = project_limits[name]
        if limit < 0:
            continue
        used = usage(session, project_id, name)
        if used + amount > limit:
            raise OverQuota(
                f"Quota exceeded for {name}: Requested {amount}, but already used"
                f" {used} of {limit} {name}.",
                "OverQuota",
            )
