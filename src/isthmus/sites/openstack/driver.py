"""`OpenStackDriver`: one OpenStack cloud region (or another Isthmus, see
`isthmus up --site-mode`) as a site, through openstacksdk.

Site config keys (validated by the admin API, api/admin/sites.py):
- `cloud` (required): the cloud's name in clouds.yaml. Credentials live only in
  that file, on the Isthmus server; they are never stored in the site row,
  logged or returned.
- `clouds_yaml`: path of that clouds.yaml (default: openstacksdk's search path).
- `region_name`: the region, when the cloud entry does not name one.
- `availability_zone`: the site's zone to put servers and volumes in.
- `flavor_map`: {Isthmus flavor name: site flavor name or id}; other servers get
  the site's smallest flavor that fits their vCPUs, RAM and disk.
- `default_image`: site image (name or id) for a server that names no image.
- `settle_seconds` (default 30): how long one `ensure` waits for a volume,
  snapshot or image to leave a transient state before returning it as it is
  (the engine polls transient states after that). Servers are never waited for.
- `timeout` (default 30): seconds one API call may take.
- `vcpus`, `ram_mb`, `disk_gb`: capacity to report where the site's project
  limits say unlimited (-1), or a lower cap.
- `external_network`: the site's external network (name or id) for routers'
  gateways and floating IPs (sites/openstack/l3.py).
- `admin_cloud`: a clouds.yaml entry (same file) with admin rights in the site,
  used only for what Neutron's default policy reserves to admins: the BGPVPN that
  joins a network to the other sites (sites/openstack/interconnect.py) and a
  floating IP at the address Isthmus chose.

How objects carry their Isthmus id: sites/openstack/common.py. Errors: errors.py.
What the kinds share (config, connections, the admin connection, the other
kinds): context.py's `SiteContext`, which the driver makes and hands to each.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from openstack.connection import Connection

from isthmus.errors import PermanentError, SiteError, SiteUnavailable
from isthmus.model.specs import NetworkSpec, Spec
from isthmus.sites.base import ForeignObject, Observed, SiteReport
from isthmus.sites.openstack.common import Kind
from isthmus.sites.openstack.compute import Servers
from isthmus.sites.openstack.context import SiteContext
from isthmus.sites.openstack.interconnect import BgpVpnInterconnect
from isthmus.sites.openstack.l3 import FloatingIps, Routers
from isthmus.sites.openstack.network import Networks, Ports, SecurityGroups, Subnets
from isthmus.sites.openstack.storage import Images, Snapshots, Volumes

UNLIMITED = 1_000_000  # reported for a limit of -1 when the config names no capacity
DATA_PLANE = "the site's own (no Isthmus fabric to it yet)"


class OpenStackDriver:
    """The OpenStack site `name`, reached with the clouds.yaml entry its config names."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        self.name = name
        # what the kinds share (config, connections, errors): one object they are made
        # with, so they never need the driver (context.py)
        self.site = SiteContext(name, config)
        self.interconnect = BgpVpnInterconnect(self.site)
        self.kinds: dict[str, Kind[Any]] = {
            kind.kind: kind
            for kind in (
                Networks(self.site),
                Subnets(self.site),
                SecurityGroups(self.site),
                Ports(self.site),
                Images(self.site),
                Servers(self.site),
                Volumes(self.site),
                Snapshots(self.site),
                Routers(self.site),
                FloatingIps(self.site),
            )
        }
        self.site.kinds.update(self.kinds)

    # -- the site's config and connection, as the site context holds them -----------------

    @property
    def cloud(self) -> str:
        return self.site.cloud

    @property
    def clouds_yaml(self) -> str | None:
        return self.site.clouds_yaml

    @property
    def default_image(self) -> str | None:
        return self.site.default_image

    def connection(self) -> Connection:
        """This thread's connection to the site (see context.py)."""
        return self.site.connection()

    def kind(self, kind: str) -> Kind:
        handler = self.kinds.get(kind)
        if handler is None:
            raise PermanentError(f"site {self.name} (openstack) has no {kind} objects")
        return handler

    # -- contract ------------------------------------------------------------------------

    def check(self) -> SiteReport:
        """Authenticate and probe each service. Compute or network failing: the site is
        unavailable (SiteUnavailable); image or block storage failing: `degraded`, with
        the site's words in the message. Capacity: the project's limits there."""
        conn = self.connection()
        with self.site.errors("authenticate"):
            conn.authorize()
        problems: list[str] = []
        capacity: dict[str, int] = {}
        usage: dict[str, int] = {}

        def probe(service: str, call: Callable[[], object]) -> None:
            try:
                with self.site.errors(f"reach its {service} service"):
                    call()
            except SiteError as exc:
                problems.append(str(exc))

        def compute() -> None:
            limits = conn.compute.get_limits().absolute
            capacity["vcpus"] = self._limit(limits.total_cores, "vcpus")
            capacity["ram_mb"] = self._limit(limits.total_ram, "ram_mb")
            usage["vcpus"] = int(limits.total_cores_used or 0)
            usage["ram_mb"] = int(limits.total_ram_used or 0)
            usage["servers"] = int(limits.instances_used or 0)

        def volume() -> None:
            limits = conn.block_storage.get_limits().absolute
            capacity["disk_gb"] = self._limit(limits.max_total_volume_gigabytes, "disk_gb")
            usage["disk_gb"] = int(limits.total_gigabytes_used or 0)
            usage["volumes"] = int(limits.total_volumes_used or 0)

        probe("compute", compute)
        probe("network", lambda: next(iter(conn.network.networks(limit=1)), None))
        essential = list(problems)  # no server can be made or kept without these two
        probe("image", lambda: next(iter(conn.image.images(limit=1)), None))
        probe("block-storage", volume)
        if essential:
            raise SiteUnavailable(f"site {self.name}: {'; '.join(essential)}")
        return SiteReport(
            health="degraded" if problems else "up",
            message="; ".join(problems),
            capacity=capacity,
            usage=usage,
            data_plane=DATA_PLANE,
        )

    def _limit(self, value: Any, key: str) -> int:
        limit = int(value if value is not None else -1)
        configured = self.site.capacity_config.get(key)
        if limit < 0:
            return configured if configured is not None else UNLIMITED
        return min(limit, configured) if configured is not None else limit

    def ensure(self, spec: Spec) -> Observed:
        """See sites/base.py; a network is also joined to its segment in the other
        sites (interconnect.py), and its details say how (or why not)."""
        observed = self.kind(spec.kind).ensure(spec)
        if isinstance(spec, NetworkSpec):
            return self.interconnect.join(spec, observed)
        return observed

    def delete(self, kind: str, isthmus_id: str) -> None:
        """See sites/base.py; a network's BGPVPN goes before the network."""
        if kind == "network":
            self.interconnect.leave(isthmus_id)
        self.kind(kind).delete(isthmus_id)

    def observe(self, kind: str, isthmus_id: str) -> Observed | None:
        return self.kind(kind).observe(isthmus_id)

    def inventory(self) -> list[Observed]:
        return [observed for kind in self.kinds.values() for observed in kind.inventory()]

    def foreign(self) -> list[ForeignObject]:
        return [obj for kind in self.kinds.values() for obj in kind.foreign()]

    def console_output(self, isthmus_id: str, length: int | None = None) -> str:
        """See sites/base.py: Nova's console output of the site server."""
        servers = self.kinds["server"]
        assert isinstance(servers, Servers)
        return servers.console_output(isthmus_id, length)

    def retire(self) -> None:
        """Nothing to release: Isthmus runs no process or kernel object for an
        OpenStack site, and what it made in the cloud (including BGPVPNs) stays
        there, as the contract requires. The connections go with `close()`."""

    def close(self) -> None:
        self.site.close()
