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
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from openstack.config import OpenStackConfig
from openstack.connection import Connection

from isthmus.errors import PermanentError, SiteError, SiteUnavailable
from isthmus.model.specs import NetworkSpec, Spec
from isthmus.sites.base import ForeignObject, Observed, SiteReport
from isthmus.sites.openstack.common import Kind
from isthmus.sites.openstack.compute import Servers
from isthmus.sites.openstack.errors import site_errors
from isthmus.sites.openstack.interconnect import BgpVpnInterconnect
from isthmus.sites.openstack.l3 import FloatingIps, Routers
from isthmus.sites.openstack.network import Networks, Ports, SecurityGroups, Subnets
from isthmus.sites.openstack.storage import Images, Snapshots, Volumes

UNLIMITED = 1_000_000  # reported for a limit of -1 when the config names no capacity
DATA_PLANE = "the site's own (no Isthmus fabric to it yet)"


class OpenStackDriver:
    """The OpenStack site `name`, reached with the clouds.yaml entry its config names."""

    def __init__(self, name: str, config: dict[str, Any] | None = None) -> None:
        config = dict(config or {})
        self.name = name
        self.cloud = str(config.get("cloud") or "")
        self.clouds_yaml = config.get("clouds_yaml") or None
        self.region_name = config.get("region_name") or None
        self.availability_zone: str | None = config.get("availability_zone") or None
        self.flavor_map: dict[str, str] = {
            str(k): str(v) for k, v in (config.get("flavor_map") or {}).items()
        }
        self.default_image: str | None = config.get("default_image") or None
        self.settle_seconds = float(config.get("settle_seconds", 30.0))
        self.timeout = float(config.get("timeout", 30.0))
        self.capacity_config: dict[str, int] = {
            key: int(config[key]) for key in ("vcpus", "ram_mb", "disk_gb") if key in config
        }
        self.external_network: str | None = config.get("external_network") or None
        self.interconnect = BgpVpnInterconnect(self, config)
        self._local = threading.local()
        self._connections: list[Connection] = []
        self._lock = threading.Lock()
        self._cache: dict[str, tuple[float, Any]] = {}
        self.kinds: dict[str, Kind[Any]] = {
            kind.kind: kind
            for kind in (
                Networks(self),
                Subnets(self),
                SecurityGroups(self),
                Ports(self),
                Images(self),
                Servers(self),
                Volumes(self),
                Snapshots(self),
                Routers(self),
                FloatingIps(self),
            )
        }

    # -- plumbing shared by the kinds ------------------------------------------------------

    def errors(self, action: str, *, create: bool = False) -> AbstractContextManager[None]:
        """Map SDK errors raised inside to SiteError (see errors.py)."""
        return site_errors(self.name, action, create=create)

    def connection(self) -> Connection:
        """This thread's connection to the site (built, not yet authenticated, on first use)."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None:
            return conn
        if not self.cloud:
            raise SiteUnavailable(f"site {self.name}: its config names no `cloud` (clouds.yaml)")
        with self.errors("read the cloud configuration"):
            files = [self.clouds_yaml] if self.clouds_yaml else None
            config = OpenStackConfig(config_files=files, load_envvars=False)
            region = config.get_one(
                cloud=self.cloud, region_name=self.region_name, api_timeout=self.timeout
            )
            conn = Connection(config=region)
        self._local.conn = conn
        with self._lock:
            self._connections.append(conn)
        return conn

    def cached(self, key: str, load: Callable[[], Any], seconds: float = 60.0) -> Any:
        """`load()`, remembered for `seconds` (flavors, images by name, extensions)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < seconds:
            return hit[1]
        value = load()
        self._cache[key] = (now, value)
        return value

    def settle(
        self, obj: Any, fetch: Callable[[Any], Any], transient: Callable[[Any], bool]
    ) -> Any:
        """Poll `fetch(obj)` while `transient(obj)`, for at most `settle_seconds`."""
        deadline = time.monotonic() + self.settle_seconds
        delay = 0.1
        while obj is not None and transient(obj) and time.monotonic() < deadline:
            time.sleep(delay)
            delay = min(delay * 1.5, 2.0)
            obj = fetch(obj)
        return obj

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
        with self.errors("authenticate"):
            conn.authorize()
        problems: list[str] = []
        capacity: dict[str, int] = {}
        usage: dict[str, int] = {}

        def probe(service: str, call: Callable[[], object]) -> None:
            try:
                with self.errors(f"reach its {service} service"):
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
        configured = self.capacity_config.get(key)
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

    def retire(self) -> None:
        """Nothing to release: Isthmus runs no process or kernel object for an
        OpenStack site, and what it made in the cloud (including BGPVPNs) stays
        there, as the contract requires. The connections go with `close()`."""

    def close(self) -> None:
        with self._lock:
            connections, self._connections = self._connections, []
        for conn in connections:
            with contextlib.suppress(Exception):
                conn.close()
        self._local = threading.local()
        self.interconnect.close()
