"""Placement, pure: which site a new server or volume goes to. Every placement
decision Isthmus makes is written here, once; store/placement.py feeds it the
sites (and claims what a server takes), intent/ asks it.

Server policy (`choose_site`): an explicit availability zone names the site
(`pinned_site`: it must exist and be enabled; a site that is down still accepts
the server, which waits there). Without one, the site with the most free capacity
wins, among enabled sites that are not down and can hold the flavor. Free capacity
is what the site reports minus what placement already promised there
(`allocated`), compared by the smallest free fraction over vCPU, RAM and disk; ties
go to the name.

Capacity is Isthmus's decision in exactly one place, `Candidate.fits`, applied
only when Isthmus chooses (a pinned zone is the user's choice and skips it). A
site may still refuse a server when it realises it: the local driver answers "No
valid host was found" when its own usage leaves no room, as Nova's scheduler
does in an OpenStack site. That refusal is the site's truth, reported as the
server's fault by the engine; it is not a second Isthmus rule.

Server groups and scheduler hints (`Spread`, Nova's terms with a site as the
host): a group's `affinity` puts every member in the site of the members already
placed (the first one goes where capacity says); `anti-affinity` puts each in a
site holding fewer than `max_server_per_host` (default 1) members; the `soft-`
variants only rank the sites (most members first, fewest members first) after
capacity has filtered them. The `same_host` hint asks for a site holding one of
the named servers, `different_host` for one holding none of them. A hard rule
that leaves no site, or that the explicit zone breaks, is Nova's NoValidHost:
`NoValidHost` (a Conflict, so a caller that does not handle it answers 409);
intent/servers.py makes the server ERROR with Nova's fault instead, as Nova's
scheduler does after accepting the request. Capacity alone leaving no site stays
the 409 above (checked first), since it is not a rule of the group.

Volume policy (`choose_volume_site`, Cinder's answers): an explicit availability
zone must name an enabled site; without one, among enabled sites that are not
down, the one with the most free disk, where free disk is what the site reports
(`capacity.disk_gb`) minus what servers were promised there (`allocated.disk_gb`)
minus the gigabytes of the volumes placed there; ties go to the first name.
Volumes claim nothing in `sites.allocated`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


def pinned_site(candidates: Iterable[Candidate], availability_zone: str) -> str:
    """The site a server's explicit availability zone names; 400 when there is no
    such site or it is disabled (a down site still takes the server)."""
    sites = list(candidates)
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


AFFINITY = "affinity"
ANTI_AFFINITY = "anti-affinity"
SOFT_AFFINITY = "soft-affinity"
SOFT_ANTI_AFFINITY = "soft-anti-affinity"
GROUP_POLICIES = (AFFINITY, ANTI_AFFINITY, SOFT_AFFINITY, SOFT_ANTI_AFFINITY)
NO_VALID_HOST = "No valid host was found. There are not enough hosts available."


class NoValidHost(Conflict):
    """A server group's hard policy or a scheduler hint leaves no site for a server
    (Nova's NoValidHost, which Nova reports as the server's fault)."""


@dataclass(frozen=True)
class Spread:
    """What a server's group and scheduler hints ask of its site.

    `members`: site -> how many members of the server's group are there already;
    `same_host`: the sites of the servers a `same_host` hint names (None: no such
    hint); `different_host`: the sites of those a `different_host` hint names."""

    policy: str | None = None
    members: Mapping[str, int] = field(default_factory=dict)
    max_per_site: int = 1
    same_host: frozenset[str] | None = None
    different_host: frozenset[str] = frozenset()

    def allows(self, site: str) -> bool:
        """Whether the hard rules let a server go to `site`."""
        if self.same_host is not None and site not in self.same_host:
            return False
        if site in self.different_host:
            return False
        placed = {name for name, count in self.members.items() if count > 0}
        if self.policy == AFFINITY and placed and site not in placed:
            return False
        return not (self.policy == ANTI_AFFINITY and self.members.get(site, 0) >= self.max_per_site)

    def preference(self, site: str) -> int:
        """How much the soft policies like `site` (higher is better; 0 without one)."""
        count = int(self.members.get(site, 0))
        if self.policy == SOFT_AFFINITY:
            return count
        if self.policy == SOFT_ANTI_AFFINITY:
            return -count
        return 0


def choose_site(
    candidates: Iterable[Candidate],
    need: dict[str, int],
    availability_zone: str | None,
    spread: Spread | None = None,
) -> str:
    """The site for a server needing `need`; BadRequest/Conflict when none can,
    NoValidHost when `spread`'s hard rules leave none (see the module docstring)."""
    sites = list(candidates)
    spread = spread or Spread()
    if availability_zone:
        name = pinned_site(sites, availability_zone)
        if not spread.allows(name):
            raise NoValidHost(NO_VALID_HOST)
        return name
    usable = [s for s in sites if s.enabled and s.health != "down" and s.fits(need)]
    if not usable:
        raise Conflict(
            "No valid host was found: no site that is up has room for"
            f" {need.get('vcpus')} vCPU, {need.get('ram_mb')} MiB RAM,"
            f" {need.get('disk_gb')} GiB disk."
        )
    allowed = [s for s in usable if spread.allows(s.name)]
    if not allowed:
        raise NoValidHost(NO_VALID_HOST)
    return max(
        allowed,
        key=lambda s: (
            spread.preference(s.name),
            s.free_fraction(need),
            [-ord(c) for c in s.name],
        ),
    ).name


def choose_volume_site(
    candidates: Iterable[Candidate],
    availability_zone: str | None,
    volume_gb: Mapping[str, int],
) -> str:
    """The site for a new volume (see the module docstring); `candidates` in name
    order, `volume_gb` the gigabytes of the volumes already in each site."""
    sites = list(candidates)
    if availability_zone:
        for site in sites:
            if site.name == availability_zone and site.enabled:
                return site.name
        raise BadRequest(
            f"Availability zone '{availability_zone}' is invalid. Known zones: "
            f"{', '.join(s.name for s in sites if s.enabled) or 'none'}."
        )
    usable = [s for s in sites if s.enabled and s.health != "down"]
    if not usable:
        raise Conflict("No valid backend was found: no availability zone is up.")

    def free(site: Candidate) -> int:
        return site.free("disk_gb") - int(volume_gb.get(site.name, 0))

    best = max(free(s) for s in usable)
    return next(s.name for s in usable if free(s) == best)
