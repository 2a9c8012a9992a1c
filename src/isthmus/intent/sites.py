"""A site's scheduling switch as Nova's admin tools reach it: a site is the one
`nova-compute` service (and hypervisor) of its availability zone, and disabling
that service is disabling the site, which takes no new placements
(model/placement.py) while what it holds stays and is reconciled: the same flag
`PATCH /isthmus/v1/sites/{name}` sets.
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from isthmus.errors import NotFound
from isthmus.store.tables import Site


def set_scheduling(session: Session, name: str, enabled: bool, reason: str | None) -> Site:
    """Enable or disable a site's scheduling; a disabled site keeps `reason` (Nova's
    disabled_reason), enabling clears it. 404 when there is no such site."""
    site = session.get(Site, name, with_for_update=True)
    if site is None:
        raise NotFound(f"Compute host {name} could not be found.")
    site.enabled = enabled
    site.disabled_reason = None if enabled else reason
    return site
