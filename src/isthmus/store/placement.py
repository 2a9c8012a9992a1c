"""Placement in the store: picks a site (model/placement.py) and records the
promise in `sites.allocated` in the caller's transaction; `release` gives it
back when the server is gone."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.model.placement import DIMENSIONS, Candidate, choose_site
from isthmus.store.tables import Site


def place(
    session: Session,
    need: dict[str, int],
    availability_zone: str | None,
    among: Collection[str] | None = None,
) -> str:
    """The site for a server (see model/placement.py), claimed; `among`, when given,
    limits the choice to those sites (e.g. a network's availability_zone_hints)."""
    sites = list(session.scalars(select(Site).order_by(Site.name)))
    if among is not None:
        sites = [s for s in sites if s.name in among]
    candidates = [
        Candidate(s.name, s.enabled, s.health, dict(s.capacity or {}), dict(s.allocated or {}))
        for s in sites
    ]
    name = choose_site(candidates, need, availability_zone)
    claim(session, name, need)
    return name


def claim(session: Session, site_name: str, need: dict[str, int], sign: int = 1) -> None:
    site = session.get(Site, site_name, with_for_update=True)
    if site is None:
        return
    allocated = dict(site.allocated or {})
    for key in (*DIMENSIONS, "servers"):
        amount = need.get(key, 1 if key == "servers" else 0)
        allocated[key] = max(0, int(allocated.get(key, 0)) + sign * int(amount))
    site.allocated = allocated


def release(session: Session, site_name: str, need: dict[str, int]) -> None:
    claim(session, site_name, need, sign=-1)


def server_need(spec: Mapping[str, Any]) -> dict[str, int]:
    return {
        "vcpus": int(spec.get("vcpus", 0)),
        "ram_mb": int(spec.get("ram_mb", 0)),
        "disk_gb": int(spec.get("disk_gb", 0)),
        "servers": 1,
    }
