"""Subnet pools and address scopes below the API (api/network/pools.py parses and
renders; api/network/subnets.py asks here for a subnet's CIDR from a pool).

Isthmus has ONE address space over all its sites: a pool's subnets are subnets of
the store, wherever their networks reach, so a CIDR handed out from a pool
(`allocate_cidr`: the free space is the pool's prefixes less every live subnet
made from it, model/ipam.allocate_prefix) never overlaps another subnet of the
pool in any site. Allocations from one pool are serialised by locking the pool's
row (PostgreSQL `FOR UPDATE`; SQLite serialises writers anyway).

Neutron's rules, decided here once:
- at most one default pool per IP version (400 InvalidInput);
- a pool joins an address scope it may use (its own project's, or a shared one:
  400 IllegalSubnetPoolAssociationToAddressScope), of its IP version (400), whose
  other pools' prefixes it does not overlap (409 AddressScopePrefixConflict);
- a pool's prefixes may only grow (400 IllegalSubnetPoolPrefixUpdate);
- a pool with subnets cannot be deleted (400 SubnetPoolDeleteError, as Neutron
  answers), nor a scope with pools (409 AddressScopeInUse); a shared scope cannot
  be unshared (400 AddressScopeUpdateError);
- a subnet from a pool: the pool's IP version, a prefix length within the pool's
  bounds (400 Min/MaxPrefixSubnetAllocationError), the same pool as the other
  subnets of its network and IP version (400 NetworkSubnetPoolAffinityError).

A pool's spec: prefixes, ip_version, min/max/default_prefixlen, default_quota,
address_scope_id, is_default, shared, description, tags. A scope's: ip_version,
shared, description, tags. Neither is ever in a site.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.errors import BadRequest, Conflict
from isthmus.model import ipam
from isthmus.store import repo
from isthmus.store.tables import Resource

SUBNET_POOL = "subnet_pool"
ADDRESS_SCOPE = "address_scope"


def _live(session: Session, kind: str) -> list[Resource]:
    query = select(Resource).where(Resource.kind == kind, Resource.deleting.is_(False))
    return list(session.scalars(query.order_by(Resource.created_at, Resource.id)))


def pool_subnets(session: Session, pool_id: str) -> list[Resource]:
    """The live subnets made from the pool, in every project and site."""
    query = select(Resource).where(
        Resource.kind == "subnet",
        Resource.deleting.is_(False),
        Resource.spec["subnetpool_id"].as_string() == pool_id,
    )
    return list(session.scalars(query))


def scope_pools(session: Session, scope_id: str) -> list[Resource]:
    return [p for p in _live(session, SUBNET_POOL) if p.spec.get("address_scope_id") == scope_id]


def default_pool(session: Session, version: int) -> Resource | None:
    """The default pool of this IP version (None: there is none)."""
    return next(
        (
            p
            for p in _live(session, SUBNET_POOL)
            if p.spec.get("is_default") and p.spec.get("ip_version") == version
        ),
        None,
    )


# -- checks ----------------------------------------------------------------------------------


def _check_default(session: Session, version: int, pool_id: str | None) -> None:
    current = default_pool(session, version)
    if current is not None and current.id != pool_id:
        raise BadRequest(
            "Invalid input for operation: A default subnetpool for this IP family has already"
            " been set. Only one default may exist per IP family.",
            "InvalidInput",
        )


def _check_scope(
    session: Session, pool_id: str, project_id: str, spec: dict[str, Any], scope: Resource
) -> None:
    if scope.project_id != project_id and not scope.spec.get("shared"):
        raise BadRequest(
            f"Illegal subnetpool association: subnetpool {pool_id} cannot be associated with"
            f" address scope {scope.id}.",
            "IllegalSubnetPoolAssociationToAddressScope",
        )
    if scope.spec.get("ip_version") != spec["ip_version"]:
        raise BadRequest(
            f"Illegal subnetpool association: subnetpool {pool_id} cannot associate with"
            f" address scope {scope.id} because subnetpool ip_version is not"
            f" {scope.spec.get('ip_version')}.",
            "IllegalSubnetPoolIpVersionAssociationToAddressScope",
        )
    for other in scope_pools(session, scope.id):
        if other.id != pool_id and ipam.prefixes_overlap(
            other.spec.get("prefixes") or [], spec["prefixes"]
        ):
            raise Conflict(
                "Failed to associate address scope: subnetpools within an address scope must"
                " have unique prefixes.",
                "AddressScopePrefixConflict",
            )


# -- pools -----------------------------------------------------------------------------------


def add_pool(
    session: Session, *, project_id: str, name: str, spec: dict[str, Any], scope: Resource | None
) -> Resource:
    """A new pool (`spec` checked by the API: prefixes compacted, bounds filled in);
    `scope` is the address scope it joins, looked up as the caller may see it."""
    pool_id = repo.new_id()
    if spec.get("is_default"):
        _check_default(session, spec["ip_version"], None)
    if scope is not None:
        _check_scope(session, pool_id, project_id, spec, scope)
    return repo.add(
        session, SUBNET_POOL, project_id=project_id, name=name, spec=spec, resource_id=pool_id
    )


def update_pool(
    session: Session,
    pool: Resource,
    *,
    fields: dict[str, Any],
    spec: dict[str, Any],
    scope: Resource | None,
) -> Resource:
    """Apply a checked update: `spec` holds only what changes (new prefixes already
    compacted); `scope` is the pool's address scope after the update."""
    merged = {**pool.spec, **spec}
    if "prefixes" in spec and not ipam.covers(spec["prefixes"], pool.spec.get("prefixes") or []):
        raise BadRequest(
            "Illegal update to prefixes: Existing prefixes must be a subset of the new prefixes.",
            "IllegalSubnetPoolPrefixUpdate",
        )
    ipam.prefix_bounds(
        merged["ip_version"],
        merged["min_prefixlen"],
        merged["max_prefixlen"],
        merged["default_prefixlen"],
    )
    if spec.get("is_default") and not pool.spec.get("is_default"):
        _check_default(session, merged["ip_version"], pool.id)
    if scope is not None:
        _check_scope(session, pool.id, pool.project_id or "", merged, scope)
    return repo.change(session, pool, spec=spec, **fields)


def delete_pool(session: Session, pool: Resource) -> None:
    if pool_subnets(session, pool.id):
        raise BadRequest(
            "Unable to delete subnet pool: Subnet pool has existing allocations.",
            "SubnetPoolDeleteError",
        )
    repo.mark_deleting(session, pool)


# -- address scopes --------------------------------------------------------------------------


def add_scope(session: Session, *, project_id: str, name: str, spec: dict[str, Any]) -> Resource:
    return repo.add(session, ADDRESS_SCOPE, project_id=project_id, name=name, spec=spec)


def update_scope(
    session: Session, scope: Resource, *, fields: dict[str, Any], spec: dict[str, Any]
) -> Resource:
    if scope.spec.get("shared") and spec.get("shared") is False:
        raise BadRequest(
            f"Unable to update address scope {scope.id} : Shared address scope can't be unshared.",
            "AddressScopeUpdateError",
        )
    return repo.change(session, scope, spec=spec, **fields)


def delete_scope(session: Session, scope: Resource) -> None:
    if scope_pools(session, scope.id):
        raise Conflict(
            f"Unable to complete operation on address scope {scope.id}. There are one or more"
            " subnet pools in use on the address scope.",
            "AddressScopeInUse",
        )
    repo.mark_deleting(session, scope)


# -- subnets from a pool ---------------------------------------------------------------------


def allocate_cidr(
    session: Session,
    pool: Resource,
    network: Resource,
    *,
    version: int,
    cidr: ipam.IPNetwork | None,
    prefixlen: int | None,
) -> ipam.IPNetwork:
    """The CIDR of a new subnet of `network` from `pool`: `cidr` if the pool has it
    free, else the next free prefix of `prefixlen` (default: the pool's)."""
    session.execute(select(Resource.id).where(Resource.id == pool.id).with_for_update())
    spec = pool.spec
    if spec.get("ip_version") != version:
        raise BadRequest(
            f"Bad subnets request: Cannot allocate IPv{version} subnet from IPv"
            f"{spec.get('ip_version')} subnet pool.",
            "BadRequest",
        )
    for other in session.scalars(
        select(Resource).where(
            Resource.kind == "subnet",
            Resource.parent_id == network.id,
            Resource.deleting.is_(False),
        )
    ):
        if other.spec.get("ip_version") == version and other.spec.get("subnetpool_id") != pool.id:
            raise BadRequest(
                "Subnets hosted on the same network must be allocated from the same subnet pool.",
                "NetworkSubnetPoolAffinityError",
            )
    length = cidr.prefixlen if cidr is not None else prefixlen or int(spec["default_prefixlen"])
    if length > int(spec["max_prefixlen"]):
        raise BadRequest(
            f"Unable to allocate subnet with prefix length {length}, maximum allowed prefix is"
            f" {spec['max_prefixlen']}.",
            "MaxPrefixSubnetAllocationError",
        )
    if length < int(spec["min_prefixlen"]):
        raise BadRequest(
            f"Unable to allocate subnet with prefix length {length}, minimum allowed prefix is"
            f" {spec['min_prefixlen']}.",
            "MinPrefixSubnetAllocationError",
        )
    used = [s.spec["cidr"] for s in pool_subnets(session, pool.id)]
    return ipam.allocate_prefix(spec.get("prefixes") or [], used, length, cidr)
