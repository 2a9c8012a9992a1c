"""Placement in the store: reads the sites for the one placement policy
(model/placement.py) and records a server's promise in `sites.allocated` in the
caller's transaction; `release` gives it back when the server is gone.

- `check_zone`: a server's explicit availability zone, checked before anything
  is written (the rule itself is `model.placement.pinned_site`);
- `place`: the site for a server, capacity claimed;
- `volume_site`: the site for a volume (claims nothing).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from isthmus.model.placement import (
    DIMENSIONS,
    Candidate,
    Spread,
    choose_site,
    choose_volume_site,
    pinned_site,
)
from isthmus.model.specs import ServerSize
from isthmus.store.tables import Resource, Site


def candidates(session: Session, among: Collection[str] | None = None) -> list[Candidate]:
    """Every site (or those in `among`) as placement sees it, in name order."""
    sites = list(session.scalars(select(Site).order_by(Site.name)))
    if among is not None:
        sites = [s for s in sites if s.name in among]
    return [
        Candidate(s.name, s.enabled, s.health, dict(s.capacity or {}), dict(s.allocated or {}))
        for s in sites
    ]


def check_zone(session: Session, availability_zone: str) -> str:
    """The site a server's availability zone names (400 unless it exists and is
    enabled), without claiming anything."""
    return pinned_site(candidates(session), availability_zone)


def place(
    session: Session,
    need: dict[str, int],
    availability_zone: str | None,
    among: Collection[str] | None = None,
    spread: Spread | None = None,
) -> str:
    """The site for a server (see model/placement.py), claimed; `among`, when given,
    limits the choice to those sites (e.g. a network's availability_zone_hints);
    `spread`: what its server group and scheduler hints ask (NoValidHost)."""
    name = choose_site(candidates(session, among), need, availability_zone, spread)
    claim(session, name, need)
    return name


def volume_site(session: Session, availability_zone: str | None) -> str:
    """The site (= availability zone) a new volume goes to (model/placement.py's
    volume policy); volumes claim nothing."""
    placed: dict[str, int] = {}
    rows = session.execute(select(Resource.site, Resource.spec).where(Resource.kind == "volume"))
    for site_name, spec in rows:
        if site_name:
            placed[site_name] = placed.get(site_name, 0) + int((spec or {}).get("size", 0))
    return choose_volume_site(candidates(session), availability_zone, placed)


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
    """What a server claims of its site, read from its intent's spec by the same
    mapping that sizes it in the site (`model.specs.ServerSize`)."""
    return ServerSize.from_intent(spec).need()
