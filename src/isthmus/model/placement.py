"""Placement, pure: which site a new server goes to.

Policy: an explicit availability zone names the site (it must exist and be
enabled; a site that is down still accepts the server, which waits there).
Without one, the site with the most free capacity wins, among enabled sites
that are not down and can hold the flavor. Free capacity is what the site
reports minus what placement already promised there (`allocated`), compared by
the smallest free fraction over vCPU, RAM and disk; ties go to the name.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from isthmus.errors import BadRequest, Conflict

DIMENSIONS = ("vcpus", "ram_mb", "disk_gb")


@dataclass(frozen=True)
class Candidate:
    name: str
    enabled: bool
    health: str
    capacity: dict[str, int]
    allocated: dict[str, int]

    def free(self, key: str) -> int:
        return int(self.capacity.get(key, 0)) - int(self.allocated.get(key, 0))

    def fits(self, need: dict[str, int]) -> bool:
        return all(self.free(key) >= need.get(key, 0) for key in DIMENSIONS)

    def free_fraction(self, need: dict[str, int]) -> float:
        fractions = []
        for key in DIMENSIONS:
            total = int(self.capacity.get(key, 0))
            if total <= 0:
                return 0.0
            fractions.append((self.free(key) - need.get(key, 0)) / total)
        return min(fractions)


def choose_site(
    candidates: Iterable[Candidate], need: dict[str, int], availability_zone: str | None
) -> str:
    """The site for a server needing `need`; BadRequest/Conflict when none can."""
    sites = list(candidates)
    if availability_zone:
        for site in sites:
            if site.name == availability_zone:
                if not site.enabled:
                    raise BadRequest(
                        f"The requested availability zone is not available:"
                        f" {availability_zone} is disabled."
                    )
                return site.name
        raise BadRequest(
            f"The requested availability zone is not available:"
            f" {availability_zone}. Known zones: "
            f"{', '.join(sorted(s.name for s in sites)) or 'none'}."
        )
    usable = [s for s in sites if s.enabled and s.health != "down" and s.fits(need)]
    if not usable:
        raise Conflict(
            "No valid host was found: no site that is up has room for"
            f" {need.get('vcpus')} vCPU, {need.get('ram_mb')} MiB RAM,"
            f" {need.get('disk_gb')} GiB disk."
        )
    return max(usable, key=lambda s: (s.free_fraction(need), [-ord(c) for c in s.name])).name
