"""Resource kinds and their statuses: the vocabulary, written down once.

A resource's `status` column (store/tables.Resource) holds the status the
OpenStack API of its kind shows (Nova and Neutron upper case, Cinder and Glance
lower case). `STATES` below is the state map of each kind (as libcloud keeps one
per driver): the status a new resource starts in, the statuses a site reports
while it is still working on the object (`transient`), the statuses a resource
shows while it waits for its site (`waiting`), and the status it takes when the
site cannot realise it (`error`). Every rule about statuses elsewhere reads this
module:

- the engine looks at an object again shortly while the site reports a
  `TRANSIENT_STATUSES` status (engine/worker.py, engine/drift.py);
- a resource that waits in a `WAITING_STATUSES` status names its site being down
  as the reason (store/repo.pending_reason);
- a failed resource, or one drifted from its site, shows `error_status(kind)`
  (engine/worker.py, engine/drift.py, store/site_removal.py); `is_error(status)`
  tells one;
- once a site applied a resource, it shows `applied_status(kind, site_status)`.

`transient` and `waiting` differ on purpose: `saving` is what a site reports for
an image while its data is copied in (poll again), but an image is in no one site,
so it never waits for one; `DOWN` is what a port shows until its site applied it,
but a site reporting a port DOWN is done with it (an OpenStack port not yet bound
to a server is DOWN), so polling it again would never end.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

NETWORK = "network"
SUBNET = "subnet"
SECURITY_GROUP = "security_group"
SECURITY_GROUP_RULE = "security_group_rule"
IMAGE = "image"
PORT = "port"
ROUTER = "router"
FLOATING_IP = "floating_ip"
SERVER = "server"
VOLUME = "volume"
SNAPSHOT = "snapshot"
KEYPAIR = "keypair"
FLAVOR = "flavor"
VOLUME_TYPE = "volume_type"

SITE_KINDS: tuple[str, ...] = (
    NETWORK,
    SUBNET,
    SECURITY_GROUP,
    IMAGE,
    PORT,
    ROUTER,
    FLOATING_IP,
    SERVER,
    VOLUME,
    SNAPSHOT,
)
"""The kinds the engine makes in sites, prerequisites first (the order the engine
works a batch in: a port before its server, a network before its port)."""

DRIFT_KINDS: tuple[str, ...] = (SERVER, VOLUME)
"""The kinds whose loss in a site behind Isthmus' back is noticed (engine/drift.py)."""

# -- statuses ----------------------------------------------------------------------------

ACTIVE = "ACTIVE"
BUILD = "BUILD"
REBOOT = "REBOOT"
REBUILD = "REBUILD"
RESIZE = "RESIZE"
SHUTOFF = "SHUTOFF"
PAUSED = "PAUSED"
SUSPENDED = "SUSPENDED"
RESCUE = "RESCUE"
DOWN = "DOWN"
ERROR = "ERROR"  # Nova and Neutron
LOWER_ERROR = "error"  # Cinder, Glance, and the kinds below that have no status of their own
CREATING = "creating"
AVAILABLE = "available"
IN_USE = "in-use"
ATTACHING = "attaching"
DETACHING = "detaching"
EXTENDING = "extending"
QUEUED = "queued"
SAVING = "saving"
LOWER_ACTIVE = "active"  # Glance


@dataclass(frozen=True)
class States:
    """The state map of one kind."""

    initial: str  # what a new resource shows (the API writes it)
    error: str  # what a failed or drifted resource shows
    transient: frozenset[str] = frozenset()  # a site reports these while still working
    waiting: frozenset[str] = frozenset()  # the resource waits for its site in these
    settled: frozenset[str] = frozenset()  # where it rests once applied
    # once a site applied it, the resource shows the status that site reports
    # (`follows_site`), else `applied` (None: its status stays as it is)
    follows_site: bool = False
    applied: str | None = None


STATES: Mapping[str, States] = {
    SERVER: States(
        initial=BUILD,
        error=ERROR,
        transient=frozenset({BUILD, REBOOT, REBUILD, RESIZE}),
        waiting=frozenset({BUILD, REBOOT, REBUILD, RESIZE}),
        settled=frozenset({ACTIVE, SHUTOFF, PAUSED, SUSPENDED, RESCUE}),
        follows_site=True,
    ),
    PORT: States(
        initial=DOWN,
        error=ERROR,
        waiting=frozenset({DOWN}),  # until its site applied it
        settled=frozenset({ACTIVE}),
        applied=ACTIVE,
    ),
    ROUTER: States(initial=ACTIVE, error=ERROR, settled=frozenset({ACTIVE}), applied=ACTIVE),
    FLOATING_IP: States(
        initial=DOWN, error=ERROR, settled=frozenset({ACTIVE, DOWN}), applied=ACTIVE
    ),
    VOLUME: States(
        initial=CREATING,
        error=LOWER_ERROR,
        transient=frozenset({CREATING, ATTACHING, DETACHING}),
        waiting=frozenset({CREATING, ATTACHING, DETACHING}),
        settled=frozenset({AVAILABLE, IN_USE}),
        follows_site=True,
    ),
    SNAPSHOT: States(
        initial=CREATING,
        error=LOWER_ERROR,
        transient=frozenset({CREATING}),
        waiting=frozenset({CREATING}),
        settled=frozenset({AVAILABLE}),
        follows_site=True,
    ),
    IMAGE: States(
        initial=QUEUED,
        error=LOWER_ERROR,
        transient=frozenset({SAVING}),  # a site reports it while the data is copied in
        # an image is in no one site (no `site` column): it never waits for one
        settled=frozenset({LOWER_ACTIVE}),
    ),
    # Neutron shows networks ACTIVE; subnets and groups have no status of their own
    NETWORK: States(initial=ACTIVE, error=LOWER_ERROR, settled=frozenset({ACTIVE})),
    SUBNET: States(initial=ACTIVE, error=LOWER_ERROR, settled=frozenset({ACTIVE})),
    SECURITY_GROUP: States(initial=ACTIVE, error=LOWER_ERROR, settled=frozenset({ACTIVE})),
}

TRANSIENT_STATUSES: frozenset[str] = frozenset().union(*(s.transient for s in STATES.values()))
"""A site reporting one of these (for any kind) is still working: look again shortly."""

WAITING_STATUSES: frozenset[str] = frozenset().union(*(s.waiting for s in STATES.values()))
"""A resource showing one of these waits for its site (its site being down is why)."""

ERROR_STATUSES: frozenset[str] = frozenset(s.error for s in STATES.values())


def error_status(kind: str) -> str:
    """The status a resource of `kind` shows when its site cannot realise it, or when
    it was deleted in its site behind Isthmus' back."""
    states = STATES.get(kind)
    return states.error if states is not None else LOWER_ERROR


def initial_status(kind: str) -> str:
    """The status a new resource of `kind` (or one made again) starts in."""
    return STATES[kind].initial


def applied_status(kind: str, site_status: str) -> str | None:
    """The status a resource of `kind` shows once a site applied it and reports
    `site_status` for it (None: leave the resource's status as it is)."""
    states = STATES.get(kind)
    if states is None:
        return None
    return site_status if states.follows_site else states.applied


def is_error(status: str) -> bool:
    return status in ERROR_STATUSES
